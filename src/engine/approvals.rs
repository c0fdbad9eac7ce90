//! The host's side of supervise: list what agents wait for, answer it, keep the audit trail.
//! Works on the queue folders in the state dir (what the bundles mount), so it needs no engine
//! call and answers reach a waiting agent within supervise's poll interval.

use super::prepare::files;
use crate::sidecar::supervise::queue::{
    Answer, Answered, Decision, Notice, Queue, Request, RequestId, Unreadable, instant,
};
use crate::state::StateRoot;
use crate::store::{DecisionRecord, Store};
use crate::types::Slug;
use color_eyre::eyre::{Result, WrapErr, bail};
use serde::Serialize;

/// A request some agent waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub slug: Slug,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Listing {
    pub pending: Vec<Pending>,
    /// Request files that cannot be read, named with their error.
    pub unreadable: Vec<Unreadable>,
}

pub fn queue_of(root: &StateRoot, slug: &Slug) -> Queue {
    Queue::new(root.bottle_dir(slug).join(files::QUEUE))
}

/// Every bottle in the state dir that has a queue folder.
fn queues(root: &StateRoot) -> Result<Vec<(Slug, Queue)>> {
    let dir = root.path().join("bottles");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(slug) = entry.file_name().to_string_lossy().parse::<Slug>() else {
            continue;
        };
        let q = queue_of(root, &slug);
        if q.dir().is_dir() {
            out.push((slug, q));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Pending requests of every bottle, oldest first.
pub fn pending(root: &StateRoot) -> Result<Listing> {
    let mut listing = Listing::default();
    for (slug, q) in queues(root)? {
        let (reqs, bad) = q.pending()?;
        listing
            .pending
            .extend(reqs.into_iter().map(|request| Pending {
                slug: slug.clone(),
                request,
            }));
        listing.unreadable.extend(bad);
    }
    listing
        .pending
        .sort_by_cached_key(|p| instant(&p.request.created));
    Ok(listing)
}

/// Pending counts per bottle (cheap: directory listings and stats).
pub fn pending_counts(root: &StateRoot) -> Vec<(Slug, usize)> {
    queues(root)
        .unwrap_or_default()
        .into_iter()
        .map(|(slug, q)| {
            let n = q.pending_count();
            (slug, n)
        })
        .collect()
}

/// A notice an agent filed with supervise's `notify`, not yet read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unread {
    pub slug: Slug,
    #[serde(flatten)]
    pub notice: Notice,
}

/// Unread notices of one bottle or of all, newest first.
pub fn notices(root: &StateRoot, only: Option<&Slug>) -> Result<Vec<Unread>> {
    let mut out = Vec::new();
    for (slug, q) in queues(root)? {
        if only.is_some_and(|o| *o != slug) {
            continue;
        }
        out.extend(q.notices()?.into_iter().map(|notice| Unread {
            slug: slug.clone(),
            notice,
        }));
    }
    out.sort_by_cached_key(|u| std::cmp::Reverse(instant(&u.notice.created)));
    Ok(out)
}

/// Every bottle's unread notice files, unopened: changes whenever a notice is filed or read.
pub fn notice_files(root: &StateRoot) -> Vec<std::path::PathBuf> {
    queues(root)
        .unwrap_or_default()
        .iter()
        .flat_map(|(_, q)| q.notice_files())
        .collect()
}

/// Marks notices read, a batch per bottle; returns how many were still unread.
pub fn mark_read<'n>(
    root: &StateRoot,
    notices: impl IntoIterator<Item = (&'n Slug, &'n RequestId)>,
) -> Result<usize> {
    let mut by_bottle: std::collections::BTreeMap<&Slug, Vec<RequestId>> = Default::default();
    for (slug, id) in notices {
        by_bottle.entry(slug).or_default().push(id.clone());
    }
    let mut n = 0;
    for (slug, ids) in by_bottle {
        n += queue_of(root, slug).mark_read(&ids)?;
    }
    Ok(n)
}

/// Agent-written text as one line of at most `max` characters: control characters become
/// spaces, so a request cannot move the cursor or repaint the operator's terminal.
pub fn one_line(text: &str, max: usize) -> String {
    // Format characters (bidi overrides, zero-width) could make the text read differently.
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() > max {
        let cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        clean.to_owned()
    }
}

/// `user@host`, for the audit trail.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            let uid = std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or_default();
            format!("uid{uid}")
        });
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// Answers one request as `by`, records it in the audit trail, and returns the answer. An
/// already answered request is an error that says who answered it and how.
pub fn answer(
    root: &StateRoot,
    store: &Store,
    slug: &Slug,
    id: &RequestId,
    decision: Decision,
    reason: Option<String>,
    by: &str,
) -> Result<Answer> {
    let q = queue_of(root, slug);
    if !q.dir().is_dir() {
        bail!(
            "bottle `{slug}` has no approvals queue ({} does not exist): is it a bottle with [supervise] enabled?",
            q.dir().display()
        );
    }
    let request = q.request(id)?.ok_or_else(|| {
        color_eyre::eyre::eyre!("bottle `{slug}` has no request {id} (see `bottle-tui queue`)")
    })?;
    match q.answer_with(Answer::new(id.clone(), decision, reason, by))? {
        Answered::Recorded(a) => {
            store.record_decision(&record(slug, &request, &a))?;
            Ok(a)
        }
        Answered::Already(a) => {
            // Supervise's own answers reach the trail here too.
            store.record_decision(&record(slug, &request, &a))?;
            bail!(
                "request {id} of `{slug}` was already answered: {} by {} at {}",
                a.summary(),
                a.by,
                a.decided
            )
        }
    }
}

/// Records every answered request not in the audit trail yet (supervise's timeouts and
/// withdrawals, answers given while the host was away), and removes the files of those the
/// trail holds once they are settled, so a long-lived bottle's queue stays small. Returns how
/// many were new.
pub fn sync(root: &StateRoot, store: &Store) -> Result<usize> {
    let mut n = 0;
    for (slug, q) in queues(root)? {
        n += sync_queue(&slug, &q, store)?;
    }
    Ok(n)
}

fn sync_queue(slug: &Slug, q: &Queue, store: &Store) -> Result<usize> {
    let mut n = 0;
    for r in q.requests()?.0 {
        // A corrupt answer is set aside by `answer` and the request is pending again.
        let Ok(Some(a)) = q.answer(&r.id) else {
            continue;
        };
        if store.record_decision(&record(slug, &r, &a))? {
            n += 1;
        }
        // In the trail now, so the files are no longer the only record.
        if q.settled(&r.id) {
            q.forget(&r.id)?;
        }
    }
    Ok(n)
}

/// Closes a bottle's pending requests (it was killed: nobody waits for them any more).
/// They reach the audit trail with the next [`sync`]. Returns how many were closed.
pub fn close_all(root: &StateRoot, slug: &Slug, reason: &str) -> Result<usize> {
    let q = queue_of(root, slug);
    if !q.dir().is_dir() {
        return Ok(0);
    }
    let mut closed = 0;
    for r in q.pending()?.0 {
        if let Answered::Recorded(_) = q.close(&r.id, reason, "bottle-tui kill")? {
            closed += 1;
        }
    }
    Ok(closed)
}

fn record(slug: &Slug, r: &Request, a: &Answer) -> DecisionRecord {
    DecisionRecord {
        slug: slug.to_string(),
        request_id: r.id.to_string(),
        requested: r.created.clone(),
        action: r.action.clone(),
        details: r.details.clone(),
        decision: a.decision.as_str().to_owned(),
        reason: a.reason.clone(),
        by: a.by.clone(),
        decided: a.decided.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Result<(tempfile::TempDir, StateRoot, Store, Slug)> {
        let dir = tempfile::tempdir()?;
        let root = StateRoot::new(Some(dir.path().to_owned()));
        let store = Store::open(&root.db_path())?;
        let slug: Slug = "demo".parse().map_err(|e| color_eyre::eyre::eyre!("{e}"))?;
        queue_of(&root, &slug).ensure()?;
        Ok((dir, root, store, slug))
    }

    #[test]
    fn agent_text_cannot_repaint_the_terminal() {
        assert_eq!(one_line("rm\x1b[2J -rf\n/", 100), "rm [2J -rf /");
        assert_eq!(
            one_line("push \u{202E}niam\u{202C} ok", 100),
            "push niam ok"
        );
        assert_eq!(one_line(&"x".repeat(300), 100).chars().count(), 100);
    }

    #[test]
    fn answer_lists_and_audits() -> Result<()> {
        let (_d, root, store, slug) = setup()?;
        let q = queue_of(&root, &slug);
        let a = q.submit("push", "bottle/x", 60_000)?;
        let b = q.submit("deploy", "", 60_000)?;
        assert_eq!(pending(&root)?.pending.len(), 2);
        answer(
            &root,
            &store,
            &slug,
            &a.id,
            Decision::Approved,
            None,
            "me@h",
        )?;
        let left = pending(&root)?.pending;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].request.id, b.id);
        let err = answer(&root, &store, &slug, &a.id, Decision::Denied, None, "you@h")
            .expect_err("answered twice");
        assert!(
            format!("{err}").contains("already answered: approved by me@h"),
            "{err}"
        );
        let trail = store.decisions(None, 10)?;
        assert_eq!(trail.len(), 1);
        assert_eq!(
            (trail[0].decision.as_str(), trail[0].by.as_str()),
            ("approved", "me@h")
        );
        Ok(())
    }

    #[test]
    fn supervise_answers_reach_the_trail_on_sync_and_kill_closes_the_rest() -> Result<()> {
        let (_d, root, store, slug) = setup()?;
        let q = queue_of(&root, &slug);
        let mut a = q.submit("a", "", 0)?;
        // Long expired (the sweep leaves a grace period to the waiting call).
        a.expires_ms = 1;
        std::fs::write(q.request_file(&a.id), serde_json::to_vec(&a)?)?;
        let _b = q.submit("b", "", 60_000)?;
        crate::sidecar::supervise::close_expired(&q)?;
        assert_eq!(sync(&root, &store)?, 1);
        assert_eq!(sync(&root, &store)?, 0, "idempotent");
        assert_eq!(close_all(&root, &slug, "the bottle was killed")?, 1);
        assert_eq!(sync(&root, &store)?, 1);
        assert!(pending(&root)?.pending.is_empty());
        let trail = store.decisions(Some("demo"), 10)?;
        assert_eq!(trail.len(), 2);
        let timed_out = trail
            .iter()
            .find(|d| d.request_id == a.id.as_str())
            .map(|d| (d.reason.clone(), d.by.clone()));
        assert_eq!(
            timed_out,
            Some((Some("timed out".into()), "supervise".into()))
        );
        Ok(())
    }

    #[test]
    fn sync_removes_only_settled_requests_and_only_after_the_trail_holds_them() -> Result<()> {
        use crate::sidecar::supervise::queue::{ANSWER_KEPT, HOUR};
        let (_d, root, store, slug) = setup()?;
        let q = queue_of(&root, &slug);
        let old = q.submit("old", "", 60_000)?;
        let fresh = q.submit("fresh", "", 60_000)?;
        let waiting = q.submit("waiting", "", 60_000)?;
        for r in [&old, &fresh] {
            q.answer_with(Answer::new(r.id.clone(), Decision::Denied, None, "me"))?;
        }
        let backdate = |p: &std::path::Path, ago| -> Result<()> {
            let f = std::fs::File::options().write(true).open(p)?;
            f.set_modified(std::time::SystemTime::now() - ago)?;
            Ok(())
        };
        backdate(&q.request_file(&old.id), 2 * HOUR)?;
        backdate(&q.answer_file(&old.id), ANSWER_KEPT)?;
        assert_eq!(sync(&root, &store)?, 2);
        let left: Vec<String> = q.requests()?.0.into_iter().map(|r| r.action).collect();
        assert_eq!(left, ["fresh", "waiting"]);
        // The removed one is in the trail, with its answer.
        let trail = store.decisions(Some("demo"), 10)?;
        assert!(
            trail
                .iter()
                .any(|d| d.request_id == old.id.as_str() && d.decision == "denied"),
            "{trail:?}"
        );
        assert_eq!(pending(&root)?.pending.len(), 1, "{:?}", waiting.id);
        Ok(())
    }

    #[test]
    fn unknown_bottle_and_request_are_clear_errors() -> Result<()> {
        let (_d, root, store, slug) = setup()?;
        let id: RequestId = "0123abcd"
            .parse()
            .map_err(|e: String| color_eyre::eyre::eyre!(e))?;
        let err = answer(&root, &store, &slug, &id, Decision::Approved, None, "me")
            .expect_err("no request");
        assert!(
            format!("{err}").contains("has no request 0123abcd"),
            "{err}"
        );
        let other: Slug = "nope".parse().map_err(|e| color_eyre::eyre::eyre!("{e}"))?;
        let err = answer(&root, &store, &other, &id, Decision::Approved, None, "me")
            .expect_err("no queue");
        assert!(format!("{err}").contains("has no approvals queue"), "{err}");
        Ok(())
    }
}
