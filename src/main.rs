use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let _ = color_eyre::install();
    bottle_tui::cli::main(bottle_tui::cli::args::Cli::parse())
}
