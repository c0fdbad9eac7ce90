//! `queue`, `approve`, `deny`, `audit`, `notices`: what agents ask and tell through supervise.

use super::{Outcome, print_json};
use crate::engine::approvals;
use crate::sidecar::supervise::queue::{Decision, RequestId, now_ms};
use crate::state::StateRoot;
use crate::store::Store;
use crate::types::Slug;
use std::io::Write;

/// Longest action/details shown per line in the text listing (the JSON has them whole).
const SHOWN: usize = 100;

pub fn queue_cmd(root: &StateRoot, json: bool) -> Outcome {
    let store = Store::open(&root.db_path())?;
    // Supervise's own answers (timeouts) reach the audit trail whenever the queue is read.
    approvals::sync(root, &store)?;
    let listing = approvals::pending(root)?;
    for bad in &listing.unreadable {
        eprintln!(
            "warning: unreadable request {}: {}",
            bad.file.display(),
            bad.error
        );
    }
    if json {
        return print_json(&listing.pending);
    }
    let mut out = std::io::stdout().lock();
    if listing.pending.is_empty() {
        writeln!(out, "no pending requests").ok();
        return Ok(());
    }
    let now = now_ms();
    let slug_w = listing
        .pending
        .iter()
        .map(|p| p.slug.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:slug_w$}  {:8}  {:>6}  {:>7}  ACTION",
        "SLUG", "ID", "AGE", "EXPIRES"
    )
    .ok();
    for p in &listing.pending {
        let r = &p.request;
        let age = crate::tui::views::epoch(&r.created)
            .map(|t| crate::tui::views::age(now as i64 / 1000 - t))
            .unwrap_or_else(|| "?".into());
        let left = secs(r.expires_ms.saturating_sub(now) / 1000);
        writeln!(
            out,
            "{:slug_w$}  {:8}  {age:>6}  {left:>7}  {}",
            p.slug,
            r.id,
            shorten(&r.action)
        )
        .ok();
        if !r.details.trim().is_empty() {
            writeln!(out, "{:slug_w$}  {:8}  {}", "", "", shorten(&r.details)).ok();
        }
    }
    writeln!(
        out,
        "\nanswer with: bottle-tui approve SLUG ID | bottle-tui deny SLUG ID --reason \"...\""
    )
    .ok();
    Ok(())
}

pub fn answer_cmd(
    root: &StateRoot,
    slug: &Slug,
    id: &RequestId,
    decision: Decision,
    reason: Option<String>,
) -> Outcome {
    let store = Store::open(&root.db_path())?;
    let by = approvals::operator();
    let a = approvals::answer(root, &store, slug, id, decision, reason, &by)?;
    println!("{slug} {id}: {} (by {by})", a.summary());
    Ok(())
}

pub fn audit_cmd(root: &StateRoot, slug: Option<&Slug>, limit: usize, json: bool) -> Outcome {
    let store = Store::open(&root.db_path())?;
    approvals::sync(root, &store)?;
    let rows = store.decisions(slug.map(Slug::as_str), limit)?;
    if json {
        return print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "no answered requests yet").ok();
        return Ok(());
    }
    for d in &rows {
        let answer = match &d.reason {
            Some(r) => format!("{}: {r}", d.decision),
            None => d.decision.clone(),
        };
        writeln!(
            out,
            "{}  {} {}  {}  → {answer}  (by {})",
            d.decided,
            d.slug,
            d.request_id,
            shorten(&d.action),
            d.by
        )
        .ok();
    }
    Ok(())
}

pub fn notices_cmd(root: &StateRoot, slug: Option<&Slug>, mark_read: bool, json: bool) -> Outcome {
    let unread = approvals::notices(root, slug)?;
    if json {
        print_json(&unread)?;
    } else {
        let mut out = std::io::stdout().lock();
        if unread.is_empty() {
            writeln!(out, "no unread notices").ok();
        }
        let now = now_ms() as i64 / 1000;
        for u in &unread {
            let age = crate::tui::views::epoch(&u.notice.created)
                .map(|t| crate::tui::views::age(now - t))
                .unwrap_or_else(|| "?".into());
            writeln!(
                out,
                "{} {}  {age:>6} ago  {}",
                u.slug,
                u.notice.id,
                shorten(&u.notice.message)
            )
            .ok();
        }
    }
    if mark_read && !unread.is_empty() {
        let n = approvals::mark_read(root, unread.iter().map(|u| (&u.slug, &u.notice.id)))?;
        // On stderr: --json output stays data.
        eprintln!("marked {n} read");
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    approvals::one_line(text, SHOWN)
}

/// "9m48s", "1h02m", "45s".
fn secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
