//! The approvals queue on disk, shared by supervise (in the bundle) and the host (CLI, TUI).
//!
//! ```text
//! queue/requests/<id>.json   written by supervise when an agent asks
//! queue/answers/<id>.json    written by whoever answers first: a human on the host, or
//!                            supervise itself (timed out, withdrawn, bottle killed)
//! queue/notices/<id>.json    `notify` calls: nothing waits for them
//! ```
//!
//! Every file is written to a temporary name and then hard-linked into place, which fails if
//! the name exists: a reader never sees half a file, and of two answers racing for one request
//! exactly one wins — the other side reads the winner. A request is pending while it has no
//! answer. Files are never rewritten; a corrupt one is moved aside (named in the error), never
//! silently dropped.

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const REQUESTS: &str = "requests";
pub const ANSWERS: &str = "answers";
pub const NOTICES: &str = "notices";
/// Notices a human has read, under `notices/`; they no longer count against the agent's limit.
pub const READ: &str = "read";

/// Longest `action`/`details`/`message` an agent may send (bytes); longer text is refused.
pub const MAX_TEXT: usize = 16 * 1024;
/// Requests one bottle may have waiting at once, and notices it may leave unread (and the
/// read ones kept): the queue lives in the host's state dir, so an agent must not be able to
/// fill the host's disk.
pub const MAX_PENDING: usize = 64;
pub const MAX_NOTICES: usize = 1000;
/// Request files kept at once, answered or not. The host removes answered requests once its
/// audit trail holds them ([`Queue::settled`]); with no host collecting, the agent stops here.
pub const MAX_KEPT: usize = 2000;
/// The window [`Queue::with_hourly_limit`] counts in; answered requests are kept at least this
/// long so the count sees them.
pub const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
/// How long an answer stays after it was given, for the call waiting on it to read.
pub const ANSWER_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// A request id: 8 lowercase hex digits, random. Short enough to type in `approve SLUG ID`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 4];
        // SystemRandom only fails when the OS has no entropy source; a time-derived id is
        // still unique enough within one queue, and creation is exclusive anyway.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            bytes = nanos.to_le_bytes();
        }
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RequestId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 8
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a request id (8 lowercase hex digits, as `bottle-tui queue` shows)"
            ))
        }
    }
}

impl TryFrom<String> for RequestId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What an agent asked a human to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub action: String,
    #[serde(default)]
    pub details: String,
    /// RFC 3339.
    pub created: String,
    /// Unix milliseconds after which supervise answers "denied: timed out".
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approved,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub id: RequestId,
    pub decision: Decision,
    #[serde(default)]
    pub reason: Option<String>,
    /// Who answered: `user@host` for a human, `supervise` for a timeout, `bottle-tui kill`.
    pub by: String,
    /// RFC 3339.
    pub decided: String,
}

impl Answer {
    pub fn new(id: RequestId, decision: Decision, reason: Option<String>, by: &str) -> Self {
        Self {
            id,
            decision,
            reason: reason.filter(|r| !r.trim().is_empty()),
            by: by.to_owned(),
            decided: now_rfc3339(),
        }
    }

    /// What the agent reads: `approved`, `approved: REASON`, `denied: REASON`.
    pub fn summary(&self) -> String {
        match &self.reason {
            Some(r) => format!("{}: {r}", self.decision.as_str()),
            None if self.decision == Decision::Denied => "denied: no reason given".into(),
            None => self.decision.as_str().into(),
        }
    }
}

/// A `notify` call: something the agent wants a human to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: RequestId,
    pub message: String,
    pub created: String,
}

/// A request file that could not be read, kept for the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub file: PathBuf,
    pub error: String,
}

/// How answering went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Ours is the answer.
    Recorded(Answer),
    /// Someone answered first; theirs stands.
    Already(Answer),
}

/// One bottle's queue folder.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
    /// Requests that may be filed per [`HOUR`].
    per_hour: usize,
}

impl Queue {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            per_hour: usize::MAX,
        }
    }

    /// At most `n` requests filed per rolling hour. Withdrawn and answered requests count, so
    /// filing and hanging up in a loop does not get around it.
    pub fn with_hourly_limit(mut self, n: usize) -> Self {
        self.per_hour = n;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the subfolders (supervise does at start; prepare does on the host).
    pub fn ensure(&self) -> Result<()> {
        for sub in [REQUESTS, ANSWERS, NOTICES] {
            let d = self.dir.join(sub);
            std::fs::create_dir_all(&d)
                .wrap_err_with(|| format!("cannot create the queue folder {}", d.display()))?;
        }
        Ok(())
    }

    fn file(&self, sub: &str, id: &RequestId) -> PathBuf {
        self.dir.join(sub).join(format!("{id}.json"))
    }

    pub fn request_file(&self, id: &RequestId) -> PathBuf {
        self.file(REQUESTS, id)
    }

    pub fn answer_file(&self, id: &RequestId) -> PathBuf {
        self.file(ANSWERS, id)
    }

    /// Files a new request under a fresh id.
    pub fn submit(&self, action: &str, details: &str, timeout_ms: u64) -> Result<Request> {
        check_text("action", action)?;
        check_text("details", details)?;
        if action.trim().is_empty() {
            bail!("`action` is empty: say what you want to do");
        }
        if self.pending_count() >= MAX_PENDING {
            bail!("{MAX_PENDING} requests are already waiting for an answer; wait for them first");
        }
        self.check_rate()?;
        self.create_new(REQUESTS, |id| Request {
            id,
            action: action.to_owned(),
            details: details.to_owned(),
            created: now_rfc3339(),
            expires_ms: now_ms().saturating_add(timeout_ms),
        })
    }

    /// Refuses a request over [`MAX_KEPT`] files or over the hourly limit. A request file is
    /// written once, so its mtime is when it was filed.
    fn check_rate(&self) -> Result<()> {
        let files = json_files(&self.dir.join(REQUESTS))?;
        if files.len() >= MAX_KEPT {
            bail!(
                "{MAX_KEPT} requests are kept and none can be filed until the host collects the \
                 answered ones (open the dashboard or run `bottle-tui queue`)"
            );
        }
        if self.per_hour == usize::MAX {
            return Ok(());
        }
        let now = std::time::SystemTime::now();
        let mut recent: Vec<std::time::Duration> = files
            .iter()
            .filter_map(|p| age(p, now))
            .filter(|a| *a < HOUR)
            .collect();
        if recent.len() >= self.per_hour {
            // The slot that frees first is the oldest in the window.
            recent.sort();
            let wait = recent
                .last()
                .map_or(HOUR, |oldest| HOUR.saturating_sub(*oldest));
            bail!(
                "{} requests were filed in the last hour and this bottle allows {}; \
                 the next can be filed in {} min",
                recent.len(),
                self.per_hour,
                wait.as_secs().div_ceil(60)
            );
        }
        Ok(())
    }

    /// True when `id` is answered and its files may go: the answer was given
    /// [`ANSWER_KEPT`] ago (whoever waited has read it) and the request is out of the hourly
    /// window. The caller must hold the answer elsewhere (the host's audit trail).
    pub fn settled(&self, id: &RequestId) -> bool {
        let now = std::time::SystemTime::now();
        let old = |path: &Path, min| age(path, now).is_some_and(|a| a >= min);
        old(&self.answer_file(id), ANSWER_KEPT) && old(&self.request_file(id), HOUR)
    }

    /// Removes an answered request's files: the request first, so it never reads as pending.
    pub fn forget(&self, id: &RequestId) -> Result<()> {
        for path in [self.request_file(id), self.answer_file(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot remove {}", path.display()));
                }
            }
        }
        Ok(())
    }

    /// Files `make(id)` under a fresh id in `sub`.
    fn create_new<T: Serialize>(&self, sub: &str, make: impl Fn(RequestId) -> T) -> Result<T> {
        for _ in 0..16 {
            let id = RequestId::random();
            let path = self.file(sub, &id);
            let value = make(id);
            if create_exclusive(&path, &to_json(&value)?)? {
                return Ok(value);
            }
        }
        bail!("cannot find a free id in {}", self.dir.join(sub).display())
    }

    /// Joins an identical pending request (same action and details, not expired) or files a
    /// new one. An agent that retries after losing its connection — or after supervise
    /// restarted — so waits for the answer a human may already be giving, instead of asking
    /// twice. True when joined.
    pub fn submit_or_join(
        &self,
        action: &str,
        details: &str,
        timeout_ms: u64,
    ) -> Result<(Request, bool)> {
        let now = now_ms();
        if let Some(r) = self
            .pending()?
            .0
            .into_iter()
            .find(|r| r.action == action && r.details == details && r.expires_ms > now)
        {
            return Ok((r, true));
        }
        Ok((self.submit(action, details, timeout_ms)?, false))
    }

    /// Files a notice.
    pub fn notice(&self, message: &str) -> Result<Notice> {
        check_text("message", message)?;
        if message.trim().is_empty() {
            bail!("`message` is empty");
        }
        if json_files(&self.dir.join(NOTICES))?.len() >= MAX_NOTICES {
            bail!("{MAX_NOTICES} notices are unread; no more are kept until a human reads them");
        }
        self.create_new(NOTICES, |id| Notice {
            id,
            message: message.to_owned(),
            created: now_rfc3339(),
        })
    }

    pub fn request(&self, id: &RequestId) -> Result<Option<Request>> {
        read_json(&self.request_file(id))
    }

    /// The answer, if there is one. A corrupt answer file is moved aside (so the request is
    /// pending again and can be answered anew) and reported as an error naming both files.
    pub fn answer(&self, id: &RequestId) -> Result<Option<Answer>> {
        let path = self.answer_file(id);
        match read_json::<Answer>(&path) {
            Ok(Some(a)) if &a.id == id => Ok(Some(a)),
            Ok(None) => Ok(None),
            Ok(Some(a)) => Err(self.set_aside(&path, &format!("it answers {} instead", a.id))),
            Err(e) => Err(self.set_aside(&path, &format!("{e:#}"))),
        }
    }

    fn set_aside(&self, path: &Path, why: &str) -> color_eyre::Report {
        let aside = path.with_extension(format!("json.corrupt-{}", now_ms()));
        match std::fs::rename(path, &aside) {
            Ok(()) => eyre!(
                "the answer file {} is corrupt ({why}); moved it to {} — the request is pending again",
                path.display(),
                aside.display()
            ),
            Err(e) => eyre!(
                "the answer file {} is corrupt ({why}) and cannot be moved aside: {e}",
                path.display()
            ),
        }
    }

    /// Answers `id` unless someone already has. The request must exist.
    pub fn answer_with(&self, answer: Answer) -> Result<Answered> {
        if !self.request_file(&answer.id).exists() {
            bail!(
                "no request {} in {} (see `bottle-tui queue`)",
                answer.id,
                self.dir.display()
            );
        }
        let mut last_error = None;
        for _ in 0..3 {
            if create_exclusive(&self.answer_file(&answer.id), &to_json(&answer)?)? {
                return Ok(Answered::Recorded(answer));
            }
            // Taken: read the winner. A corrupt winner is set aside and we try again.
            match self.answer(&answer.id) {
                Ok(Some(theirs)) => return Ok(Answered::Already(theirs)),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| eyre!("the answer to {} keeps changing", answer.id)))
    }

    /// Answers "denied: REASON" on `by`'s behalf (timeouts, withdrawals, kills) unless an
    /// answer stands already; returns the one that stands.
    pub fn close(&self, id: &RequestId, reason: &str, by: &str) -> Result<Answered> {
        self.answer_with(Answer::new(
            id.clone(),
            Decision::Denied,
            Some(reason.to_owned()),
            by,
        ))
    }

    /// Every request file, oldest first, with the unreadable ones listed apart.
    pub fn requests(&self) -> Result<(Vec<Request>, Vec<Unreadable>)> {
        self.read_requests(|_| false)
    }

    /// Requests without an answer, oldest first.
    ///
    /// Answered requests are never opened: the dashboard and the sweep call this every second,
    /// and a long-lived bottle keeps every request it ever made.
    pub fn pending(&self) -> Result<(Vec<Request>, Vec<Unreadable>)> {
        let answered: std::collections::HashSet<std::ffi::OsString> =
            json_files(&self.dir.join(ANSWERS))?
                .into_iter()
                .filter_map(|p| p.file_name().map(ToOwned::to_owned))
                .collect();
        self.read_requests(|path| path.file_name().is_some_and(|n| answered.contains(n)))
    }

    /// The request files `skip` leaves, opened, oldest first; the unreadable ones apart.
    fn read_requests(
        &self,
        skip: impl Fn(&Path) -> bool,
    ) -> Result<(Vec<Request>, Vec<Unreadable>)> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for path in json_files(&self.dir.join(REQUESTS))? {
            if skip(&path) {
                continue;
            }
            match read_json::<Request>(&path) {
                Ok(Some(r)) => ok.push(r),
                Ok(None) => {}
                Err(e) => bad.push(Unreadable {
                    file: path,
                    error: format!("{e:#}"),
                }),
            }
        }
        ok.sort_by_cached_key(|r| (instant(&r.created), r.id.clone()));
        Ok((ok, bad))
    }

    /// How many requests wait for an answer — a cheap count for the dashboard.
    pub fn pending_count(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.dir.join(REQUESTS)) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")
                    .filter(|stem| !stem.starts_with('.'))
                    .map(str::to_owned)
            })
            .filter(|stem| !self.dir.join(ANSWERS).join(format!("{stem}.json")).exists())
            .count()
    }

    /// Marks notices read: each moved to `notices/read/` (one rename, so it is never half
    /// there). Returns how many were unread (not already read, and not gone). The oldest read
    /// notices beyond [`MAX_NOTICES`] are dropped.
    pub fn mark_read(&self, ids: &[RequestId]) -> Result<usize> {
        let read = self.dir.join(NOTICES).join(READ);
        let mut moved = 0;
        for id in ids {
            let from = self.file(NOTICES, id);
            if !from.is_file() {
                // Already read, or gone with its bottle: nothing is created for it.
                continue;
            }
            std::fs::create_dir_all(&read)
                .wrap_err_with(|| format!("cannot create {}", read.display()))?;
            match std::fs::rename(&from, read.join(format!("{id}.json"))) {
                Ok(()) => moved += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot move {}", from.display()));
                }
            }
        }
        if moved > 0 {
            self.prune_read(&read)?;
        }
        Ok(moved)
    }

    /// Keeps the newest [`MAX_NOTICES`] read notices.
    fn prune_read(&self, read: &Path) -> Result<()> {
        let mut kept: Vec<(std::time::SystemTime, PathBuf)> = json_files(read)?
            .into_iter()
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        if kept.len() > MAX_NOTICES {
            kept.sort();
            for (_, p) in &kept[..kept.len() - MAX_NOTICES] {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(())
    }

    /// The unread notices' files, unopened: a watcher compares these to skip reading the
    /// notices when nothing was filed or read.
    pub fn notice_files(&self) -> Vec<PathBuf> {
        let mut files = json_files(&self.dir.join(NOTICES)).unwrap_or_default();
        files.sort();
        files
    }

    /// Unread notices, oldest first.
    pub fn notices(&self) -> Result<Vec<Notice>> {
        let mut out: Vec<Notice> = json_files(&self.dir.join(NOTICES))?
            .iter()
            .filter_map(|p| read_json(p).ok().flatten())
            .collect();
        out.sort_by_cached_key(|n| (instant(&n.created), n.id.clone()));
        Ok(out)
    }
}

/// How long ago `path` was last written; None when it is gone or the clock went back.
fn age(path: &Path, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    now.duration_since(modified).ok()
}

fn check_text(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_TEXT {
        bail!(
            "`{what}` is {} bytes; at most {MAX_TEXT} are accepted",
            text.len()
        );
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(value).wrap_err("cannot encode a queue file")?;
    v.push(b'\n');
    Ok(v)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .wrap_err_with(|| format!("{} is not a valid queue file", path.display()))
}

/// `*.json` in `dir`, skipping our temporaries (dot files). A missing folder is empty.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.wrap_err_with(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".json") && !name.starts_with('.') {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Writes `bytes` to a temporary file beside `path`, then links it to `path`. False when
/// `path` already exists (nothing is changed then).
fn create_exclusive(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| eyre!("{} has no parent folder", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        RequestId::random()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // Readable by the host user: the bundle writes as root into a folder the host owns.
        .mode(0o644)
        .open(&tmp)
        .wrap_err_with(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // Some shared-folder filesystems (Docker Desktop) refuse hard links: rename without
        // replacing instead, still exclusive.
        Err(e)
            if e.raw_os_error().is_some_and(|n| {
                n == nix::errno::Errno::EPERM as i32 || n == nix::errno::Errno::EOPNOTSUPP as i32
            }) =>
        {
            rename_noreplace(&tmp, path)
        }
        Err(e) => Err(e).wrap_err_with(|| format!("cannot link {} into place", path.display())),
    };
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Renames unless `to` exists; false when it does.
fn rename_noreplace(from: &Path, to: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::EEXIST) => Ok(false),
            Err(e) => Err(e).wrap_err_with(|| format!("cannot move {} into place", to.display())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No exclusive rename here: check, rename, and read back (a racing writer that
        // renamed in between is seen and wins).
        if to.exists() {
            return Ok(false);
        }
        let ours =
            std::fs::read(from).wrap_err_with(|| format!("cannot read {}", from.display()))?;
        std::fs::rename(from, to)
            .wrap_err_with(|| format!("cannot move {} into place", to.display()))?;
        Ok(std::fs::read(to).is_ok_and(|now| now == ours))
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// An RFC 3339 time as nanoseconds since the epoch, for ordering (the text does not sort:
/// its fraction has as many digits as it needs, none at all on a whole second). 0 if it is not
/// one.
pub fn instant(rfc3339: &str) -> i128 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp_nanos)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Queue::new(dir.path().join("queue"));
        q.ensure().expect("ensure");
        (dir, q)
    }

    /// Makes `path` look written `ago`.
    pub(crate) fn backdate(path: &Path, ago: std::time::Duration) -> Result<()> {
        let f = std::fs::File::options().write(true).open(path)?;
        f.set_modified(std::time::SystemTime::now() - ago)?;
        Ok(())
    }

    #[test]
    fn the_hourly_limit_counts_withdrawn_requests_and_frees_as_the_hour_passes() -> Result<()> {
        let (_d, q) = queue();
        let q = q.with_hourly_limit(3);
        let mut ids = Vec::new();
        for i in 0..3 {
            let r = q.submit(&format!("ask {i}"), "", 60_000)?;
            // Filed and withdrawn at once: the loop an agent would use to get around a
            // limit on pending requests.
            q.close(&r.id, "withdrawn: the agent stopped waiting", "supervise")?;
            ids.push(r.id);
        }
        assert_eq!(q.pending_count(), 0);
        let err = q
            .submit("one more", "", 60_000)
            .expect_err("over the limit");
        let said = format!("{err:#}");
        assert!(
            said.contains("3 requests were filed in the last hour and this bottle allows 3")
                && said.contains("next can be filed in 60 min"),
            "{said}"
        );
        // The oldest leaves the window: one slot frees, and only one.
        backdate(
            &q.request_file(&ids[0]),
            HOUR + std::time::Duration::from_secs(1),
        )?;
        q.submit("one more", "", 60_000)?;
        assert!(q.submit("and another", "", 60_000).is_err());
        Ok(())
    }

    #[test]
    fn an_answer_is_settled_only_after_it_was_read_and_the_request_left_the_hour() -> Result<()> {
        let (_d, q) = queue();
        let r = q.submit("deploy", "", 60_000)?;
        assert!(!q.settled(&r.id), "pending");
        q.answer_with(Answer::new(r.id.clone(), Decision::Approved, None, "me"))?;
        assert!(!q.settled(&r.id), "just answered");
        backdate(&q.request_file(&r.id), 2 * HOUR)?;
        assert!(
            !q.settled(&r.id),
            "answered a moment ago: the waiting call may not have read it"
        );
        backdate(&q.answer_file(&r.id), ANSWER_KEPT)?;
        assert!(q.settled(&r.id));
        q.forget(&r.id)?;
        assert!(!q.request_file(&r.id).exists() && !q.answer_file(&r.id).exists());
        assert_eq!(q.requests()?.0, vec![]);
        q.forget(&r.id)?;
        Ok(())
    }

    #[test]
    fn submit_answer_and_pending() -> Result<()> {
        let (_d, q) = queue();
        let a = q.submit("deploy", "to staging", 60_000)?;
        let b = q.submit("rm -rf build", "", 60_000)?;
        assert_eq!(q.pending()?.0.len(), 2);
        assert_eq!(q.pending_count(), 2);
        let got = q.answer_with(Answer::new(a.id.clone(), Decision::Approved, None, "me"))?;
        assert!(matches!(got, Answered::Recorded(_)));
        let pending = q.pending()?.0;
        assert_eq!(pending, vec![b.clone()]);
        assert_eq!(q.pending_count(), 1);
        assert_eq!(
            q.answer(&a.id)?.map(|a| a.decision),
            Some(Decision::Approved)
        );
        Ok(())
    }

    #[test]
    fn the_first_answer_wins_and_the_second_reads_it() -> Result<()> {
        let (_d, q) = queue();
        let r = q.submit("push", "", 60_000)?;
        q.answer_with(Answer::new(
            r.id.clone(),
            Decision::Denied,
            Some("timed out".into()),
            "supervise",
        ))?;
        match q.answer_with(Answer::new(r.id.clone(), Decision::Approved, None, "me"))? {
            Answered::Already(a) => {
                assert_eq!(a.decision, Decision::Denied);
                assert_eq!(a.by, "supervise");
            }
            other => panic!("expected Already, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn concurrent_answers_never_both_win() -> Result<()> {
        let (_d, q) = queue();
        for _ in 0..20 {
            let r = q.submit("x", "", 60_000)?;
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let q = q.clone();
                    let id = r.id.clone();
                    std::thread::spawn(move || {
                        q.answer_with(Answer::new(id, Decision::Approved, None, &format!("t{i}")))
                    })
                })
                .collect();
            let mut recorded = 0;
            for h in handles {
                if let Answered::Recorded(_) = h.join().map_err(|_| eyre!("panicked"))?? {
                    recorded += 1;
                }
            }
            assert_eq!(recorded, 1);
        }
        Ok(())
    }

    #[test]
    fn a_corrupt_answer_is_set_aside_and_the_request_is_pending_again() -> Result<()> {
        let (_d, q) = queue();
        let r = q.submit("x", "", 60_000)?;
        std::fs::write(q.answer_file(&r.id), b"{\"id\": \"trunc")?;
        let err = q.answer(&r.id).expect_err("corrupt");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("is corrupt") && msg.contains("pending again"),
            "{msg}"
        );
        assert_eq!(q.pending()?.0.len(), 1);
        let aside: Vec<_> = std::fs::read_dir(q.dir().join(ANSWERS))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "the corrupt file is kept");
        let again = q.answer_with(Answer::new(r.id.clone(), Decision::Approved, None, "me"))?;
        assert!(matches!(again, Answered::Recorded(_)));
        Ok(())
    }

    #[test]
    fn answered_requests_are_not_opened_when_listing_pending() -> Result<()> {
        let (_d, q) = queue();
        let r = q.submit("done", "", 60_000)?;
        q.answer_with(Answer::new(r.id.clone(), Decision::Approved, None, "me"))?;
        // Were it opened, this garbage would be listed as unreadable.
        std::fs::write(q.request_file(&r.id), b"garbage")?;
        let (ok, bad) = q.pending()?;
        assert!(ok.is_empty() && bad.is_empty(), "{ok:?} {bad:?}");
        Ok(())
    }

    #[test]
    fn a_corrupt_request_is_listed_apart() -> Result<()> {
        let (_d, q) = queue();
        q.submit("fine", "", 60_000)?;
        std::fs::write(q.dir().join(REQUESTS).join("deadbeef.json"), b"garbage")?;
        let (ok, bad) = q.pending()?;
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].error.contains("deadbeef.json"), "{:?}", bad[0]);
        Ok(())
    }

    #[test]
    fn a_retried_request_joins_the_pending_one() -> Result<()> {
        let (_d, q) = queue();
        let (a, joined) = q.submit_or_join("deploy", "v2", 60_000)?;
        assert!(!joined);
        let (b, joined) = q.submit_or_join("deploy", "v2", 60_000)?;
        assert!(joined);
        assert_eq!(a.id, b.id);
        let (c, joined) = q.submit_or_join("deploy", "v3", 60_000)?;
        assert!(!joined && c.id != a.id);
        q.answer_with(Answer::new(a.id.clone(), Decision::Denied, None, "me"))?;
        let (d, joined) = q.submit_or_join("deploy", "v2", 60_000)?;
        assert!(!joined && d.id != a.id, "an answered request is not joined");
        Ok(())
    }

    #[test]
    fn an_agent_cannot_fill_the_host_disk() -> Result<()> {
        let (_d, q) = queue();
        for i in 0..MAX_PENDING {
            q.submit(&format!("a{i}"), "", 60_000)?;
        }
        let err = q.submit("one more", "", 60_000).expect_err("capped");
        assert!(format!("{err}").contains("already waiting"), "{err}");
        Ok(())
    }

    #[test]
    fn reading_a_notice_moves_it_aside_and_frees_the_agents_limit() -> Result<()> {
        let (_d, q) = queue();
        let first = q.notice("tests are green")?;
        let second = q.notice("pushed bottle/x")?;
        assert_eq!(q.notice_files().len(), 2);
        assert_eq!(q.mark_read(std::slice::from_ref(&first.id))?, 1);
        assert_eq!(
            q.mark_read(std::slice::from_ref(&first.id))?,
            0,
            "read twice: nothing to do"
        );
        assert_eq!(q.notices()?, vec![second.clone()]);
        let read = q.dir().join(NOTICES).join(READ);
        assert!(
            read.join(format!("{}.json", first.id)).is_file(),
            "kept, read"
        );

        // The limit counts unread notices only.
        let dir = q.dir().join(NOTICES);
        for i in 0..MAX_NOTICES - 1 {
            std::fs::write(dir.join(format!("f{i:07}.json")), b"{}").expect("fill");
        }
        let err = q.notice("one more").expect_err("capped");
        assert!(format!("{err}").contains("unread"), "{err}");
        assert_eq!(q.mark_read(std::slice::from_ref(&second.id))?, 1);
        let newest = q.notice("one more")?;

        // Read notices beyond the limit: the oldest go.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        for i in 0..MAX_NOTICES {
            let p = read.join(format!("r{i:07}.json"));
            std::fs::write(&p, b"{}").expect("fill read");
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(old + std::time::Duration::from_secs(i as u64)))
                .expect("mtime");
        }
        assert_eq!(q.mark_read(std::slice::from_ref(&newest.id))?, 1);
        assert_eq!(json_files(&read)?.len(), MAX_NOTICES);
        // first, second and newest are recent: the three oldest by time went.
        for gone in ["r0000000", "r0000001", "r0000002"] {
            assert!(!read.join(format!("{gone}.json")).exists(), "{gone}");
        }
        assert!(read.join("r0000003.json").is_file());
        for kept in [&first.id, &second.id, &newest.id] {
            assert!(read.join(format!("{kept}.json")).is_file(), "{kept}");
        }
        Ok(())
    }

    #[test]
    fn marking_a_gone_bottles_notice_creates_nothing() -> Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Queue::new(dir.path().join("gone/queue"));
        assert_eq!(q.mark_read(&[RequestId("0123abcd".into())])?, 0);
        assert!(!dir.path().join("gone").exists());
        Ok(())
    }

    #[test]
    fn times_order_by_instant_not_by_text() {
        // A whole second has no fraction: as text it would sort after its own tenths.
        assert!(instant("2026-11-28T07:00:00Z") < instant("2026-11-28T07:00:00.1Z"));
        assert!(instant("2026-11-28T07:00:00.9Z") < instant("2026-11-28T07:00:01Z"));
        assert_eq!(instant("not a time"), 0);
    }

    #[test]
    fn bad_input_is_refused() {
        let (_d, q) = queue();
        assert!(q.submit("", "x", 1).is_err());
        assert!(q.submit(&"a".repeat(MAX_TEXT + 1), "", 1).is_err());
        assert!(q.notice("").is_err());
        assert!("ABCDEF12".parse::<RequestId>().is_err());
        assert!("../etc/x".parse::<RequestId>().is_err());
        assert!("0123abcd".parse::<RequestId>().is_ok());
        let err = q
            .answer_with(Answer::new(
                RequestId("0123abcd".into()),
                Decision::Approved,
                None,
                "me",
            ))
            .expect_err("no such request");
        assert!(format!("{err}").contains("no request 0123abcd"));
    }

    #[test]
    fn summaries() {
        let id = RequestId("0123abcd".into());
        let a = Answer::new(id.clone(), Decision::Approved, None, "me");
        assert_eq!(a.summary(), "approved");
        let d = Answer::new(id, Decision::Denied, Some("timed out".into()), "supervise");
        assert_eq!(d.summary(), "denied: timed out");
    }
}
