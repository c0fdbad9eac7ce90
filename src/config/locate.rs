use std::path::PathBuf;

/// Where the config was looked for and what was found, in the order of DESIGN §12:
/// `--config` / `BOTTLE_TUI_CONFIG`, then `./bottle.toml`, then
/// `$XDG_CONFIG_HOME/bottle-tui/config.toml`.
#[derive(Debug, Clone)]
pub struct ConfigLocation {
    pub path: Option<PathBuf>,
    pub searched: Vec<PathBuf>,
    /// True when the path came from `--config` or the environment (so it must exist).
    pub explicit: bool,
}

pub fn locate(explicit: Option<PathBuf>) -> ConfigLocation {
    if let Some(p) = explicit {
        return ConfigLocation {
            searched: vec![p.clone()],
            path: Some(p),
            explicit: true,
        };
    }
    let searched = vec![PathBuf::from("bottle.toml"), user_config_path()];
    ConfigLocation {
        path: searched.iter().find(|p| p.is_file()).cloned(),
        searched,
        explicit: false,
    }
}

pub fn user_config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("bottle-tui").join("config.toml")
}
