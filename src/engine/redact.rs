//! What never leaves the engine unredacted: values of variables that look like credentials,
//! the ones a plan names as placeholders, and any placeholder value.

/// Variables whose values never leave `inspect` unredacted.
pub fn redact(entry: &str, placeholder_vars: &[String]) -> String {
    let Some((k, v)) = entry.split_once('=') else {
        return entry.to_owned();
    };
    let upper = k.to_ascii_uppercase();
    let secretish = ["TOKEN", "KEY", "SECRET", "PASSWORD", "CREDENTIAL"]
        .iter()
        .any(|w| upper.contains(w));
    if secretish
        || placeholder_vars.iter().any(|p| p == k)
        || v.starts_with(crate::engine::placeholders::PREFIX)
    {
        format!("{k}=[redacted]")
    } else {
        entry.to_owned()
    }
}
