//! The TOML config: where it is found, how it is read, what it means.

pub mod builtin;
mod error;
pub mod keys;
mod locate;
mod model;
mod parse;
mod paths;
mod reader;
mod source;

pub use error::{ConfigError, ConfigErrors, did_you_mean, nearest};
pub use locate::{ConfigLocation, locate, user_config_path};
pub use model::*;
pub use parse::{
    BUILTIN_AGENT, DEFAULT_AGENT_IMAGE, DEFAULT_MAX_PER_HOUR, DEFAULT_MAX_PUSH, bottle_names,
};
pub use source::Source;

use std::path::Path;

/// Reads and validates a config file. I/O failures are reported like config errors, at 1:1.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            key: None,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    parse_str(path, text)
}

/// Validates config text as if read from `path` (relative paths resolve against its folder).
pub fn parse_str(path: &Path, text: String) -> Result<Config, ConfigErrors> {
    parse::parse(&Source::new(path, text))
}
