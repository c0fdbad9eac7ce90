use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Plain text when stderr is not a terminal (scripts, CI logs); no env advice section.
    let theme = if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        color_eyre::config::Theme::dark()
    } else {
        color_eyre::config::Theme::new()
    };
    let _ = color_eyre::config::HookBuilder::default()
        .display_env_section(false)
        .theme(theme)
        .install();
    bottle_tui::cli::main(bottle_tui::cli::args::Cli::parse())
}
