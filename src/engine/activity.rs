//! Following what a Docker agent is doing: its holder's record, then every change its log
//! shows after it. One place for the ordering rule the dashboard and `wait` both need.

use super::reconcile;
use crate::backend::Backend;
use crate::wire::session::Activity;
use color_eyre::eyre::Result;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// The holder's own lines replayed before following: far more than enough to cover the
/// moment between reading its record and the log stream starting.
const REPLAY: usize = 200;

/// The activity in the record of the holder in container `name` (if it has written one), and
/// the changes after it. The record comes first, then the log from a little before it:
/// replayed lines that began no later than the last activity seen are skipped by their time,
/// so no change between the two is missed or told twice. The stream ends with the container.
pub async fn follow(
    backend: &dyn Backend,
    name: &str,
) -> (Option<Activity>, BoxStream<'static, Result<Activity>>) {
    let first = reconcile::agent_activity(backend, name).await;
    let mut last = first.clone();
    let changes = backend
        .logs(name, true, Some(REPLAY))
        .flat_map(|chunk| {
            let found: Vec<Result<Activity>> = match chunk {
                Err(e) => vec![Err(e)],
                Ok(c) => c
                    .text
                    .lines()
                    .filter_map(Activity::from_log_line)
                    .map(Ok)
                    .collect(),
            };
            futures_util::stream::iter(found)
        })
        .filter(move |item| {
            let keep = match item {
                Ok(a) if last.as_ref().is_some_and(|l| !a.began_after(l)) => false,
                Ok(a) => {
                    last = Some(a.clone());
                    true
                }
                Err(_) => true,
            };
            std::future::ready(keep)
        })
        .boxed();
    (first, changes)
}
