//! The config used when no file exists, so a first run works with no setup: one bottle,
//! `claude`, with the credential kind the user's environment holds.

use super::{Config, ConfigErrors};
use std::path::Path;

/// What `Config::path` says for the built-in default.
pub const PATH: &str = "<built-in default>";
const TEMPLATE: &str = include_str!("../../assets/default.toml");

/// The credential the default bottle's route injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `CLAUDE_CODE_OAUTH_TOKEN` (from `claude setup-token`), as `Authorization: Bearer`.
    OAuthToken,
    /// `ANTHROPIC_API_KEY`, as `x-api-key`.
    ApiKey,
}

impl Credential {
    /// The OAuth token when it is set or neither is; the API key when only it is set.
    pub fn from_env() -> Self {
        let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
        if !set("CLAUDE_CODE_OAUTH_TOKEN") && set("ANTHROPIC_API_KEY") {
            Self::ApiKey
        } else {
            Self::OAuthToken
        }
    }

    pub fn env_var(self) -> &'static str {
        match self {
            Self::OAuthToken => "CLAUDE_CODE_OAUTH_TOKEN",
            Self::ApiKey => "ANTHROPIC_API_KEY",
        }
    }
}

/// The default config's text for `credential`.
pub fn text(credential: Credential) -> String {
    let (header, format) = match credential {
        Credential::OAuthToken => ("Authorization", "Bearer {token}"),
        Credential::ApiKey => ("x-api-key", "{token}"),
    };
    TEMPLATE
        .replace("@HEADER@", header)
        .replace("@FORMAT@", format)
        .replace("@TOKEN_ENV@", credential.env_var())
}

/// The default config, read as if from [`PATH`] in the current folder.
pub fn config(credential: Credential) -> Result<Config, ConfigErrors> {
    super::parse_str(Path::new(PATH), text(credential))
}

/// One line for the dashboard and stderr: which config is in use and how to write one.
pub fn banner(credential: Credential) -> String {
    format!(
        "no config file: using the built-in default (bottle `claude`, credential from ${}); `bottle-tui config init` writes one to {}",
        credential.env_var(),
        super::user_config_path().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_defaults_are_valid_configs_with_one_claude_bottle() {
        for c in [Credential::OAuthToken, Credential::ApiKey] {
            let config = config(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            let names: Vec<&str> = config.bottles.keys().map(|s| s.as_str()).collect();
            assert_eq!(names, ["claude"]);
            let bottle = &config.bottles[&crate::types::Slug::parse("claude").unwrap()];
            assert_eq!(bottle.routes.len(), 1);
            assert_eq!(bottle.routes[0].placeholder_env, c.env_var());
            assert!(config.agent_of(bottle).is_claude_code());
            assert!(bottle.supervise.enabled);
        }
        assert!(text(Credential::ApiKey).contains("header = \"x-api-key\""));
    }
}
