//! The bundles' log lines, per bottle, in bounded ring buffers: parsed once on arrival (daemon,
//! decision, a short display text), counted for blocked requests, filtered and searched when
//! drawn. Each ring is bounded by lines and by bytes, and a line by [`LINE_MAX`], so what an
//! agent can make its bundle log costs the dashboard at most [`MAX_BYTES`] per bottle.

use crate::types::Slug;
use crate::wire::daemon::{Daemon, LogSource};
use crate::wire::log::{InitEvent, LogLine};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the logs view shows: whose lines, which daemon, and where it is scrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsView {
    /// None: every bottle, merged.
    pub slug: Option<Slug>,
    /// None: every daemon.
    pub daemon: Option<LogSource>,
    pub deny_only: bool,
    pub follow: bool,
    /// Lines up from the newest, when not following.
    pub scroll: usize,
    pub search: String,
    pub searching: bool,
}

impl LogsView {
    /// Every daemon's lines of `slug` (or of every bottle), following the newest.
    pub fn following(slug: Option<Slug>) -> Self {
        Self {
            slug,
            daemon: None,
            deny_only: false,
            follow: true,
            scroll: 0,
            search: String::new(),
            searching: false,
        }
    }
}

/// Lines kept per bottle.
pub const CAPACITY: usize = 5000;
/// Bytes of text kept per bottle (the oldest lines go first).
pub const MAX_BYTES: usize = 2 << 20;
/// The longest display text kept of one line; the rest is counted, not kept.
pub const LINE_MAX: usize = 8 * 1024;

/// One bottle's lines and what their text weighs.
#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<Entry>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, e: Entry) {
        self.bytes += e.weight();
        self.lines.push_back(e);
        while self.lines.len() > CAPACITY || self.bytes > MAX_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.weight(),
                None => break,
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub slug: Slug,
    /// Who wrote it, as the line says (`?` for none).
    pub daemon: String,
    pub source: Option<LogSource>,
    pub deny: bool,
    /// What the line says, flattened for one screen row.
    pub text: String,
    /// Arrival order across bottles, for the merged view.
    pub seq: u64,
}

impl Entry {
    /// What the entry holds on the heap, near enough to bound a ring by.
    fn weight(&self) -> usize {
        self.slug.len() + self.daemon.len() + self.text.len() + std::mem::size_of::<Self>()
    }
}

#[derive(Debug, Default)]
pub struct LogBook {
    per: BTreeMap<Slug, Ring>,
    denied: BTreeMap<Slug, usize>,
    /// (slug, daemon) → what init last said of it: the moment a daemon dies, not at the next
    /// health check.
    lifecycle: BTreeMap<(Slug, Daemon), Lifecycle>,
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Started,
    Exited,
    Restarting,
}

impl LogBook {
    pub fn push(&mut self, slug: &Slug, line: &LogLine) {
        if let Some((daemon, event)) = line.init_event() {
            let state = match event {
                InitEvent::Started => Some(Lifecycle::Started),
                InitEvent::Exited | InitEvent::CannotStart => Some(Lifecycle::Exited),
                InitEvent::Restarting => Some(Lifecycle::Restarting),
                InitEvent::NotAvailable => None,
            };
            if let Some(state) = state {
                self.lifecycle.insert((slug.clone(), daemon), state);
            }
        }
        let source = line.source();
        let deny = line.is_deny();
        if deny && source == Some(LogSource::Daemon(Daemon::Gateway)) {
            *self.denied.entry(slug.clone()).or_default() += 1;
        }
        let mut text = line.text();
        cut(&mut text);
        self.seq += 1;
        self.per.entry(slug.clone()).or_default().push(Entry {
            slug: slug.clone(),
            daemon: line.daemon.clone().unwrap_or_else(|| "?".to_owned()),
            source,
            deny,
            text,
            seq: self.seq,
        });
    }

    /// Forgets bottles that are gone.
    pub fn retain(&mut self, present: &BTreeSet<Slug>) {
        self.per.retain(|s, _| present.contains(s));
        self.denied.retain(|s, _| present.contains(s));
        self.lifecycle.retain(|(s, _), _| present.contains(s));
    }

    /// What init last said about a bottle's daemon, if anything.
    pub fn lifecycle(&self, slug: &Slug, daemon: Daemon) -> Option<Lifecycle> {
        self.lifecycle.get(&(slug.clone(), daemon)).copied()
    }

    pub fn denied(&self, slug: &str) -> usize {
        self.denied.get(slug).copied().unwrap_or(0)
    }

    /// A bottle's newest `n` lines, oldest first (the detail panel's: no copy of the ring).
    pub fn recent(&self, slug: &str, n: usize) -> impl Iterator<Item = &Entry> {
        let ring = self.per.get(slug).map(|r| &r.lines);
        let len = ring.map_or(0, VecDeque::len);
        ring.into_iter().flatten().skip(len.saturating_sub(n))
    }

    /// Bytes of text the book holds for a bottle.
    pub fn bytes(&self, slug: &str) -> usize {
        self.per.get(slug).map_or(0, |r| r.bytes)
    }

    /// The lines a view shows, oldest first.
    pub fn select<'a>(&'a self, view: &LogsView) -> Vec<&'a Entry> {
        let mut out: Vec<&Entry> = match &view.slug {
            Some(s) => self
                .per
                .get(s)
                .map(|r| r.lines.iter().collect())
                .unwrap_or_default(),
            None => {
                let mut all: Vec<&Entry> = self.per.values().flat_map(|r| &r.lines).collect();
                all.sort_by_key(|e| e.seq);
                all
            }
        };
        out.retain(|e| {
            view.daemon.is_none_or(|d| e.source == Some(d)) && (!view.deny_only || e.deny)
        });
        out
    }

    /// Writes what the view shows to a file under `dir`.
    /// A log view as a file: its name (by bottle and time) and its text. The UI loop writes it.
    pub fn export(&self, view: &LogsView, now: i64) -> (String, String) {
        let name = format!(
            "bottle-logs-{}-{now}.log",
            view.slug.as_deref().unwrap_or("all")
        );
        let mut text = String::new();
        for e in self.select(view) {
            text.push_str(&format!("{} {} {}\n", e.slug, e.daemon, e.text));
        }
        (name, text)
    }
}

/// Cuts `text` to [`LINE_MAX`] bytes (on a char boundary), saying how much was left out.
fn cut(text: &mut String) {
    if text.len() <= LINE_MAX {
        return;
    }
    let mut end = LINE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(" … ({dropped} bytes more)"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug_of(s: &str) -> Slug {
        Slug::parse(s).expect("a slug")
    }

    impl LogBook {
        fn push_raw(&mut self, slug: &str, raw: &str) {
            self.push(&slug_of(slug), &LogLine::parse(raw));
        }
    }

    fn view(slug: Option<&str>) -> LogsView {
        LogsView::following(slug.map(slug_of))
    }

    #[test]
    fn lines_are_parsed_counted_bounded_and_filtered() {
        let mut book = LogBook::default();
        book.push_raw("a", r#"{"daemon":"gateway","decision":"deny","host":"x.com","msg":"request","time":"2026-11-28T01:02:03Z"}"#);
        book.push_raw("a", r#"{"daemon":"init","msg":"started"}"#);
        book.push_raw("b", "not json at all");
        assert_eq!(book.denied("a"), 1);
        let recent: Vec<&str> = book.recent("a", 1).map(|e| e.daemon.as_str()).collect();
        assert_eq!(recent, ["init"]);
        let mut v = view(Some("a"));
        v.deny_only = true;
        let lines = book.select(&v);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "01:02:03 request decision=deny host=x.com");
        assert_eq!(book.select(&view(None)).len(), 3);
        for i in 0..CAPACITY + 10 {
            book.push_raw("b", &format!("line {i}"));
        }
        assert_eq!(book.select(&view(Some("b"))).len(), CAPACITY);
        let long = "y".repeat(90_000);
        book.push_raw("a", &long);
        let kept = &book.select(&view(Some("a"))).last().unwrap().text;
        assert!(kept.starts_with(&"y".repeat(LINE_MAX)), "the start is kept");
        assert!(
            kept.ends_with(" … (81808 bytes more)"),
            "{}",
            &kept[LINE_MAX..]
        );
        book.push_raw(
            "a",
            r#"{"daemon":"init","msg":"daemon exited","target":"gateway","code":137}"#,
        );
        assert_eq!(
            book.lifecycle(&slug_of("a"), Daemon::Gateway),
            Some(Lifecycle::Exited)
        );
        book.push_raw(
            "a",
            r#"{"daemon":"init","msg":"daemon started","target":"gateway","pid":9}"#,
        );
        assert_eq!(
            book.lifecycle(&slug_of("a"), Daemon::Gateway),
            Some(Lifecycle::Started)
        );
        book.retain(&BTreeSet::from([slug_of("b")]));
        assert_eq!(book.denied("a"), 0);
    }

    /// An agent that makes its bundle log long lines (a git-gate path, a request URL) costs
    /// the dashboard at most MAX_BYTES, and the newest lines are the ones kept.
    #[test]
    fn a_ring_is_bounded_by_bytes_as_well_as_lines() {
        let mut book = LogBook::default();
        for i in 0..CAPACITY {
            book.push_raw("a", &format!("{i:05} {}", "z".repeat(LINE_MAX)));
        }
        assert!(book.bytes("a") <= MAX_BYTES, "{} bytes", book.bytes("a"));
        let lines = book.select(&view(Some("a")));
        assert!(
            lines.len() < CAPACITY && lines.len() > 100,
            "{}",
            lines.len()
        );
        assert!(lines.last().unwrap().text.starts_with("04999 "));
        let held: usize = lines.iter().map(|e| e.weight()).sum();
        assert_eq!(held, book.bytes("a"), "the count matches what is held");
        // Multi-byte text is cut on a char boundary.
        let mut s = "é".repeat(LINE_MAX);
        cut(&mut s);
        assert!(s.starts_with(&"é".repeat(LINE_MAX / 2)), "{}", &s[..10]);
    }
}
