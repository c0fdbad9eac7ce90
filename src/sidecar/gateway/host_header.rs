//! The host a request goes to is the one the gateway checked, never one the agent names in a
//! header: a front end that picks a site by `Host` (shared CDNs, reverse proxies) would
//! otherwise hand a routed request — and its real token — to another site.

use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Uri};

/// Why a request's host naming was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The URI or a `Host` header names another host (or port).
    Mismatch(String),
    /// More than one `Host` header.
    Duplicate,
}

impl Refusal {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::Mismatch(_) => "host-mismatch",
            Self::Duplicate => "host-duplicate",
        }
    }

    pub(super) fn message(&self, host: &str, port: u16) -> String {
        match self {
            Self::Mismatch(named) => {
                format!("bottle gateway: this request goes to {host}:{port}; it names {named:?}")
            }
            Self::Duplicate => "bottle gateway: a request may carry one Host header".into(),
        }
    }
}

/// How a `Host` header that disagrees with an absolute-form URI is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AbsoluteForm {
    /// Refused: inside a routed tunnel, where the request carries a credential.
    Strict,
    /// Replaced, as RFC 9112 §3.2.2 asks of a proxy: plain HTTP, where the URI's host is the
    /// one checked and the only one the request goes to.
    Replace,
}

/// Checks that the URI (absolute form) and the one `Host` header, where present, name
/// `host:port`, then sets `Host` to exactly that (`:port` omitted when it is `default_port`).
/// With [`AbsoluteForm::Replace`] an absolute-form request's `Host` headers are not checked.
pub(super) fn pin(
    uri: &Uri,
    headers: &mut HeaderMap,
    host: &str,
    port: u16,
    default_port: u16,
    form: AbsoluteForm,
) -> Result<(), Refusal> {
    if let Some(named) = uri.host() {
        let named_port = uri.port_u16().unwrap_or(default_port);
        if !same_host(named, host) || named_port != port {
            return Err(Refusal::Mismatch(
                uri.authority()
                    .map_or_else(|| named.to_owned(), |a| a.as_str().to_owned()),
            ));
        }
    }
    if uri.host().is_some() && form == AbsoluteForm::Replace {
        headers.remove(header::HOST);
    }
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::Duplicate);
    }
    if let Some(v) = first {
        let text = v
            .to_str()
            .map_err(|_| Refusal::Mismatch("<not text>".into()))?;
        let (name, named_port) = split_authority(text, default_port)
            .ok_or_else(|| Refusal::Mismatch(text.to_owned()))?;
        if !same_host(name, host) || named_port != port {
            return Err(Refusal::Mismatch(text.to_owned()));
        }
    }
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let value = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    let value = HeaderValue::from_str(&value).map_err(|_| Refusal::Mismatch(host.to_owned()))?;
    headers.insert(header::HOST, value);
    Ok(())
}

fn same_host(named: &str, host: &str) -> bool {
    let named = named.trim_start_matches('[').trim_end_matches(']');
    let named = named.strip_suffix('.').unwrap_or(named);
    named.eq_ignore_ascii_case(host)
}

/// `name[:port]` or `[v6][:port]`; None when the port is not a number.
fn split_authority(text: &str, default_port: u16) -> Option<(&str, u16)> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((name, p.parse().ok()?)),
            None if after.is_empty() => Some((name, default_port)),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((name, p)) => Some((name, p.parse().ok()?)),
        None => Some((text, default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pin` on a request with `hosts` as its Host headers: the result and the Host after.
    fn pin_with(
        uri: &str,
        hosts: &[&str],
        (host, port, default_port): (&str, u16, u16),
        form: AbsoluteForm,
    ) -> (Result<(), Refusal>, Vec<String>) {
        let uri: Uri = uri.parse().expect("uri");
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, HeaderValue::from_str(h).expect("value"));
        }
        let got = pin(&uri, &mut headers, host, port, default_port, form);
        let after = headers
            .get_all(header::HOST)
            .iter()
            .map(|v| v.to_str().expect("text").to_owned())
            .collect();
        (got, after)
    }

    fn run(uri: &str, hosts: &[&str], host: &str, port: u16) -> (Result<(), Refusal>, Vec<String>) {
        pin_with(uri, hosts, (host, port, 443), AbsoluteForm::Strict)
    }

    #[test]
    fn a_proxy_replaces_the_host_of_an_absolute_form_request_on_plain_http() {
        let target = ("origin.example", 80, 80);
        assert_eq!(
            pin_with(
                "http://origin.example/x",
                &["127.0.0.1:8888", "evil.example"],
                target,
                AbsoluteForm::Replace
            ),
            (Ok(()), vec!["origin.example".to_owned()])
        );
        // Origin form still needs the one right Host.
        let (got, _) = pin_with("/x", &["evil.example"], target, AbsoluteForm::Replace);
        assert!(matches!(got, Err(Refusal::Mismatch(_))));
    }

    #[test]
    fn the_checked_host_is_the_only_host() {
        // Origin form with a matching Host: Host is rewritten to the checked name.
        assert_eq!(
            run("/v1/x", &["API.example.com:443"], "api.example.com", 443),
            (Ok(()), vec!["api.example.com".to_owned()])
        );
        // No Host at all: one is set.
        assert_eq!(
            run("/", &[], "api.example.com", 8443),
            (Ok(()), vec!["api.example.com:8443".to_owned()])
        );
        // Absolute form naming the route with another Host: refused (the attack).
        let (got, _) = run(
            "https://api.example.com/echo",
            &["evil.example"],
            "api.example.com",
            443,
        );
        assert_eq!(got, Err(Refusal::Mismatch("evil.example".into())));
        // Two Host headers, the first right: refused.
        let (got, _) = run(
            "/",
            &["api.example.com", "evil.example"],
            "api.example.com",
            443,
        );
        assert_eq!(got, Err(Refusal::Duplicate));
        // Another port in Host or URI: refused.
        let (got, _) = run("/", &["api.example.com:25"], "api.example.com", 443);
        assert!(matches!(got, Err(Refusal::Mismatch(_))));
        let (got, _) = run("https://api.example.com:8443/", &[], "api.example.com", 443);
        assert!(matches!(got, Err(Refusal::Mismatch(_))));
        // A URI naming another host: refused.
        let (got, _) = run("https://evil.example/", &[], "api.example.com", 443);
        assert!(matches!(got, Err(Refusal::Mismatch(_))));
        // A trailing dot is the same name; IPv6 literals are bracketed.
        assert_eq!(
            run("/", &["api.example.com."], "api.example.com", 443).0,
            Ok(())
        );
        assert_eq!(
            run("/", &["[fd00::1]:8080"], "fd00::1", 8080),
            (Ok(()), vec!["[fd00::1]:8080".to_owned()])
        );
        let (got, _) = run("/", &["api.example.com:x"], "api.example.com", 443);
        assert!(matches!(got, Err(Refusal::Mismatch(_))));
    }
}
