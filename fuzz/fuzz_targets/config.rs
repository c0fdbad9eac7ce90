//! The config reader: any text either loads or yields located errors — never a panic, and
//! every error names a line and column inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count().max(1) + 1;
    if let Err(errors) = bottle_tui::config::parse_str(std::path::Path::new("/fuzz/bottle.toml"), text.to_owned()) {
        for e in errors.0 {
            assert!(e.line >= 1 && e.line <= lines, "line {} out of range", e.line);
            assert!(e.column >= 1);
        }
    }
});
