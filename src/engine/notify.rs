//! `[notify] command`: run when an agent comes to need you or goes idle, so users can wire
//! desktop notifications, a phone push or a chat message. No shell: the bottle, the status
//! and the reason (the agent's own words) are arguments after the configured ones, and
//! `BOTTLE_SLUG`, `BOTTLE_STATUS`, `BOTTLE_REASON` in its environment.

use crate::types::Slug;
use crate::wire::session::Activity;
use std::process::Stdio;
use std::time::Duration;

/// A notifier that hangs is killed after this long: the next change must not queue behind it.
const LIMIT: Duration = Duration::from_secs(60);

/// The command line for one change: the configured words, then bottle, status, reason.
pub fn argv(command: &[String], slug: &Slug, a: &Activity) -> Vec<String> {
    let mut argv = command.to_vec();
    argv.push(slug.to_string());
    argv.push(a.status.to_string());
    argv.push(a.reason.clone().unwrap_or_default());
    argv
}

/// Starts the notifier for this change, in the background; its failure is logged.
pub fn spawn(command: &[String], slug: &Slug, a: &Activity) {
    let argv = argv(command, slug, a);
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("BOTTLE_SLUG", slug.as_str())
        .env("BOTTLE_STATUS", a.status.as_str())
        .env("BOTTLE_REASON", a.reason.as_deref().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let program = program.clone();
    match cmd.spawn() {
        Err(e) => tracing::warn!("cannot run the notify command {program:?}: {e}"),
        Ok(mut child) => {
            tokio::spawn(async move {
                match tokio::time::timeout(LIMIT, child.wait()).await {
                    Ok(Ok(s)) if s.success() => {}
                    Ok(Ok(s)) => tracing::warn!("the notify command {program:?} failed: {s}"),
                    Ok(Err(e)) => tracing::warn!("the notify command {program:?}: {e}"),
                    Err(_) => tracing::warn!(
                        "the notify command {program:?} ran past {}s; killed",
                        LIMIT.as_secs()
                    ),
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::session::AgentStatus;

    #[test]
    fn the_bottle_status_and_reason_follow_the_configured_words() {
        let slug = Slug::parse("demo").expect("a slug");
        let a = Activity {
            status: AgentStatus::NeedsYou,
            since: "t".into(),
            reason: Some("Claude needs your permission to use Bash; rm -rf /".into()),
            guessed: false,
        };
        assert_eq!(
            argv(
                &["notify-send".into(), "-u".into(), "critical".into()],
                &slug,
                &a
            ),
            [
                "notify-send",
                "-u",
                "critical",
                "demo",
                "needs-you",
                "Claude needs your permission to use Bash; rm -rf /"
            ]
        );
    }
}
