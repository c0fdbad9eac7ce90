use super::{Failure, Outcome, exit, print_json};
use crate::engine::doctor::{self, Status};
use crate::state::StateRoot;
use color_eyre::eyre::WrapErr;

pub fn run(root: &StateRoot, json: bool) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    if !json {
        eprintln!("checking the engine (the DNS probe starts two throwaway containers)...");
    }
    let report = rt.block_on(doctor::run(root));
    if json {
        print_json(&report)?;
    } else {
        for c in &report.checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("[{mark}] {:<28} {}", c.name, c.detail);
        }
    }
    if report.ok {
        Ok(())
    } else {
        Err(Failure::Silent(exit::FAILURE))
    }
}
