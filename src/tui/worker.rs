//! The dashboard's engine worker: every engine call runs here, in tasks, and reports back as a
//! `Msg`. Docker's event stream drives refreshes (debounced), a slow timer is the safety net,
//! bundle logs are followed per bottle, and a lost engine is retried until it answers again.

use super::msg::{Command, Msg};
use crate::backend::Backend;
use crate::backend::ContainerState;
use crate::backend::docker::DockerBackend;
use crate::backend::{label, role};
use crate::config::Config;
use crate::engine::attach::{self, Target};
use crate::engine::history::{self, Happened};
use crate::engine::{approvals, kill, reconcile, setup, sidecar_bin, up};
use crate::sidecar::session::DetachKey;
use crate::state::StateRoot;
use crate::store::Store;
use crate::types::Slug;
use crate::wire::log::LogLine;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, RwLock, mpsc};
use tokio::task::JoinHandle;

/// Events closer together than this cause one refresh.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The safety net under the event stream; health changes arrive as events.
const SLOW: Duration = Duration::from_secs(30);
/// Engine events that change nothing the dashboard shows: health-check and attach execs (every
/// bundle runs one every 5 s; previews and panes make more), copies, resizes.
const IGNORED: &[&str] = &[
    "exec_create",
    "exec_start",
    "exec_die",
    "exec_detach",
    "attach",
    "detach",
    "resize",
    "top",
    "archive-path",
    "extract-to-dir",
    "copy",
    "commit",
    "export",
];

fn matters(ev: &crate::backend::EngineEvent) -> bool {
    let action = ev.action.split(':').next().unwrap_or("").trim();
    !IGNORED.contains(&action)
}
const RETRY: Duration = Duration::from_secs(2);
/// How long the selection must rest before its preview starts.
const PREVIEW_SETTLE: Duration = Duration::from_millis(250);
/// Log lines read back when a bundle is first seen.
const LOG_TAIL: usize = 200;

pub struct Context {
    pub config: Arc<Config>,
    pub root: StateRoot,
    pub detach_key: DetachKey,
}

struct Shared {
    ctx: Context,
    backend: RwLock<Option<Arc<DockerBackend>>>,
    refresh: Notify,
    /// Read the approvals queues now (an answer was just given).
    requeue: Notify,
    out: mpsc::UnboundedSender<Msg>,
    /// Jobs for the history store's thread (see [`on_store`]).
    store: std::sync::mpsc::Sender<StoreJob>,
    /// The one stats stream, of the charted bottle.
    charting: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Starts the worker; commands go in through the returned sender.
pub fn spawn(ctx: Context, out: mpsc::UnboundedSender<Msg>) -> mpsc::UnboundedSender<Command> {
    let store = store_thread(ctx.root.db_path());
    let shared = Arc::new(Shared {
        ctx,
        backend: RwLock::new(None),
        refresh: Notify::new(),
        requeue: Notify::new(),
        out,
        store,
        charting: std::sync::Mutex::new(None),
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    tokio::spawn(watch(Arc::clone(&shared)));
    tokio::spawn(watch_approvals(Arc::clone(&shared)));
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            let s = Arc::clone(&shared);
            // In order, here: the last selection's chart must be the one that stays.
            if matches!(cmd, Command::Usage(_)) {
                run(s, cmd).await;
                continue;
            }
            tokio::spawn(async move { run(s, cmd).await });
        }
    });
    tx
}

/// Runs `f` on the history store, on the store's own thread (off the async threads, and one
/// job at a time without parking a blocking-pool thread per waiting job). The store is
/// opened (folder made, schema migrated) once, on first use, and kept; one that cannot be
/// opened is tried again on the next job.
async fn on_store<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Store) -> color_eyre::Result<T> + Send + 'static,
) -> color_eyre::Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: StoreJob = Box::new(move |store| {
        let _ = reply.send(store.and_then(f));
    });
    s.store
        .send(job)
        .map_err(|_| color_eyre::eyre::eyre!("the history store's thread has stopped"))?;
    answer
        .await
        .map_err(|_| color_eyre::eyre::eyre!("the history store's thread has stopped"))?
}

/// A piece of work for the store's thread: it gets the store, or why it cannot be opened.
type StoreJob = Box<dyn FnOnce(color_eyre::Result<&Store>) + Send>;

/// The thread that owns the worker's store and runs its jobs in order.
fn store_thread(db: std::path::PathBuf) -> std::sync::mpsc::Sender<StoreJob> {
    let (tx, rx) = std::sync::mpsc::channel::<StoreJob>();
    let spawned = std::thread::Builder::new()
        .name("history-store".into())
        .spawn(move || {
            let mut store: Option<Store> = None;
            while let Ok(job) = rx.recv() {
                let opened = match store.take() {
                    Some(st) => Ok(st),
                    None => Store::open(&db),
                };
                match opened {
                    Ok(st) => job(Ok(store.insert(st))),
                    Err(e) => job(Err(e)),
                }
            }
        });
    if let Err(e) = spawned {
        // Every job then fails with "the thread has stopped"; the dashboard goes on.
        tracing::warn!(error = %e, "cannot start the history store's thread");
    }
    tx
}

/// Logs what the history could not do: it costs the history, never the dashboard.
fn history_failed(what: &str, e: &color_eyre::Report) {
    tracing::warn!(error = %format!("{e:#}"), "history: cannot {what}");
}

async fn backend(s: &Shared) -> Option<Arc<DockerBackend>> {
    s.backend.read().await.clone()
}

/// The agent images the config's bottles run (what setup may need to build).
fn agent_images(config: &Config) -> Vec<String> {
    config
        .bottles
        .values()
        .map(|b| config.agent_of(b).image.clone())
        .collect()
}

async fn check_setup(s: &Shared) {
    let Some(b) = backend(s).await else { return };
    let images = agent_images(&s.ctx.config);
    match setup::missing(b.client(), &images).await {
        Ok(needs) => {
            let _ = s.out.send(Msg::Setup(
                needs.iter().map(setup::Need::describe).collect(),
            ));
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "setup check failed"),
    }
}

async fn build_setup(s: &Shared) -> Result<(), String> {
    let b = backend(s)
        .await
        .ok_or_else(|| "the engine is unreachable".to_owned())?;
    let needs = setup::missing(b.client(), &agent_images(&s.ctx.config))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let out = s.out.clone();
    let mut progress = move |line: &str| {
        let _ = out.send(Msg::SetupLine(line.to_owned()));
    };
    let kinds: Vec<_> = needs
        .iter()
        .filter_map(|n| match n {
            setup::Need::Image(k) => Some(*k),
            setup::Need::Sidecar => None,
        })
        .collect();
    if needs.contains(&setup::Need::Sidecar) {
        setup::ensure_sidecar(&mut progress)
            .await
            .map_err(|e| format!("{e:#}"))?;
    }
    setup::build(
        b.client(),
        &kinds,
        &setup::ClaudeSource::default(),
        &mut progress,
    )
    .await
    .map_err(|e| format!("{e:#}"))
}

async fn run(s: Arc<Shared>, cmd: Command) {
    match cmd {
        Command::CheckSetup => check_setup(&s).await,
        Command::BuildSetup => {
            let error = build_setup(&s).await.err();
            let _ = s.out.send(Msg::SetupDone(error));
        }
        Command::Refresh => s.refresh.notify_one(),
        Command::Plan(slug) => {
            let path = s
                .ctx
                .root
                .bottle_dir(&slug)
                .join(crate::engine::prepare::files::PLAN);
            let lines = match tokio::fs::read(&path).await {
                Ok(bytes) => plan_summary(&bytes),
                Err(e) => vec![("plan".into(), format!("{}: {e}", path.display()))],
            };
            let _ = s.out.send(Msg::Plan { slug, lines });
        }
        Command::History(slug) => send_history(&s, slug).await,
        Command::Launch { bottle, name } => {
            let slug = name.clone().unwrap_or_else(|| bottle.clone());
            let error = launch(&s, &bottle, name.as_ref(), &slug).await.err();
            let what = match &error {
                None => Happened::Launched {
                    bottle: bottle.to_string(),
                },
                Some(e) => Happened::LaunchFailed {
                    bottle: bottle.to_string(),
                    error: e.clone(),
                },
            };
            note(&s, vec![(slug.clone(), vec![what])]).await;
            let _ = s.out.send(Msg::LaunchDone { slug, error });
        }
        Command::Usage(slug) => {
            let task = match (slug, backend(&s).await) {
                (Some(slug), Some(b)) => {
                    let out = s.out.clone();
                    Some(tokio::spawn(async move {
                        let mut samples = b.usage(&format!("bottle-{slug}-agent"));
                        while let Some(Ok(usage)) = samples.next().await {
                            let msg = Msg::Usage {
                                slug: slug.clone(),
                                usage,
                            };
                            if out.send(msg).is_err() {
                                return;
                            }
                        }
                    }))
                }
                _ => None,
            };
            let mut charting = s
                .charting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(old) = std::mem::replace(&mut *charting, task) {
                old.abort();
            }
        }
        Command::Kill(slugs) => {
            let Some(b) = backend(&s).await else {
                for slug in slugs {
                    let _ = s.out.send(Msg::KillDone {
                        slug,
                        error: Some("the engine is unreachable".into()),
                    });
                }
                return;
            };
            let kills = slugs.into_iter().map(|slug| {
                let b = Arc::clone(&b);
                let s = Arc::clone(&s);
                async move {
                    let ending = kill::stop_agent(b.as_ref(), &slug, kill::DEFAULT_GRACE).await;
                    // What the agent said on its way out goes with its container's log.
                    let agent = format!("bottle-{slug}-agent");
                    if let Ok(said) =
                        crate::engine::ingest::agent_status_lines(b.as_ref(), &agent).await
                    {
                        let who = slug.clone();
                        if let Err(e) = on_store(&s, move |store| {
                            crate::engine::ingest::record_lines(store, &who, &said)
                        })
                        .await
                        {
                            history_failed("keep the agent's last status changes", &e);
                        }
                    }
                    let error = match kill::kill(b.as_ref(), &slug, &s.ctx.root).await {
                        Ok(removed) => {
                            let what = Happened::Killed {
                                removed: removed.len(),
                                agent_state: ending.as_ref().map(|e| e.state),
                                agent_exit_code: ending.as_ref().and_then(|e| e.exit_code),
                            };
                            note(&s, vec![(slug.clone(), vec![what])]).await;
                            None
                        }
                        Err(e) => Some(format!("{e:#}")),
                    };
                    let _ = s.out.send(Msg::KillDone { slug, error });
                }
            });
            futures_util::future::join_all(kills).await;
            s.refresh.notify_one();
        }
        Command::Answer {
            slug,
            id,
            decision,
            reason,
        } => {
            let root = s.ctx.root.clone();
            let (slug2, id2) = (slug.clone(), id.clone());
            let result = on_store(&s, move |store| {
                let (slug, id) = (slug2, id2);
                let by = approvals::operator();
                approvals::answer(&root, store, &slug, &id, decision, reason, &by)
                    .map(|a| format!("{} (by {by})", a.summary()))
            })
            .await
            .map_err(|e| format!("{e:#}"));
            let _ = s.out.send(Msg::Answered { slug, id, result });
            s.requeue.notify_one();
        }
        Command::MarkRead(notices) => {
            let root = s.ctx.root.clone();
            let result = tokio::task::spawn_blocking(move || {
                approvals::mark_read(&root, notices.iter().map(|(s, i)| (s, i)))
                    .map_err(|e| format!("{e:#}"))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let _ = s.out.send(Msg::MarkedRead(result));
            s.requeue.notify_one();
        }
        Command::Attach { slug, preview } => {
            if preview {
                // Let the selection rest first: scrolling through the table must not start a
                // `docker exec` per row passed (the loop drops previews no longer wanted).
                tokio::time::sleep(PREVIEW_SETTLE).await;
            }
            let target = match backend(&s).await {
                Some(b) => match attach::resolve(b.as_ref(), &slug, s.ctx.detach_key).await {
                    Ok(Target::Live { place, .. }) if preview => {
                        Ok(place.preview(&slug, s.ctx.detach_key))
                    }
                    Ok(Target::Live { command, .. }) => Ok(command),
                    Ok(Target::Finished { exit_code, .. }) => Err(format!(
                        "the agent has exited (code {}); `bottle-tui attach {slug}` shows its last screen",
                        exit_code.map_or_else(|| "unknown".into(), |c| c.to_string())
                    )),
                    Err(e) => Err(format!("{e:#}")),
                },
                None => Err("the engine is unreachable".into()),
            };
            let _ = s.out.send(Msg::Attach {
                slug,
                preview,
                target,
            });
        }
    }
}

async fn launch(s: &Shared, bottle: &Slug, name: Option<&Slug>, slug: &Slug) -> Result<(), String> {
    let b = backend(s)
        .await
        .ok_or_else(|| "the engine is unreachable".to_owned())?;
    let sidecar = sidecar_bin::locate().map_err(|e| format!("{e:#}"))?;
    let out = s.out.clone();
    let owned = slug.clone();
    let progress = move |step: &str| {
        let _ = out.send(Msg::LaunchStep {
            slug: owned.clone(),
            step: step.to_owned(),
        });
    };
    up::up(
        b.as_ref(),
        &s.ctx.config,
        bottle,
        name.cloned(),
        &s.ctx.root,
        &sidecar,
        &progress,
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("{e:#}"))
}

/// Attempts per minute (of the lines' own time) a follower makes to record refused requests.
/// The store keeps at most [`history::BLOCKED_PER_MINUTE`] of them; this only spares it a
/// flood of writes, with room for lines a replayed log tail already recorded.
const BLOCKED_ATTEMPTS: usize = 2 * history::BLOCKED_PER_MINUTE;

/// At most `max` events per minute, keyed by each event's own minute (`2026-11-28T07:01`), so
/// a replayed log tail counts against the minutes it comes from.
struct PerMinute {
    max: usize,
    minute: String,
    used: usize,
}

impl PerMinute {
    fn new(max: usize) -> Self {
        Self {
            max,
            minute: String::new(),
            used: 0,
        }
    }

    fn allow(&mut self, time: &str) -> bool {
        let minute = time.get(..16).unwrap_or(time);
        if minute != self.minute {
            minute.clone_into(&mut self.minute);
            self.used = 0;
        }
        self.used += 1;
        self.used <= self.max
    }
}

/// Events the detail panel shows for the selected bottle.
const HISTORY_SHOWN: usize = 6;

/// Records what happened in the history (SQLite, off the async threads), then sends the
/// touched bottles' recent history to the UI. A store that cannot be written costs the
/// history, never the dashboard.
async fn note(s: &Arc<Shared>, happened: Vec<(Slug, Vec<Happened>)>) {
    if happened.is_empty() {
        return;
    }
    let slugs: Vec<Slug> = happened.iter().map(|(slug, _)| slug.clone()).collect();
    let written = on_store(s, move |store| {
        for (slug, events) in &happened {
            for what in events {
                history::record(store, slug, what)?;
            }
            store.prune_events(slug, history::KEEP)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = written {
        history_failed("record what the engine showed", &e);
    }
    for slug in slugs {
        send_history(s, slug).await;
    }
}

/// Records what a log line says happened (once, at the line's time: the log is read again
/// whenever a dashboard starts), and sends the bottle's history when it was new.
async fn note_logged(s: &Arc<Shared>, slug: Slug, time: String, what: Happened) {
    let key = slug.clone();
    let new = on_store(s, move |store| {
        let new = history::record_logged(store, &key, &time, &what)?;
        store.prune_events(&key, history::KEEP)?;
        Ok(new)
    })
    .await;
    match new {
        Ok(true) => send_history(s, slug).await,
        Ok(false) => {}
        Err(e) => history_failed("record a log line's event", &e),
    }
}

async fn send_history(s: &Arc<Shared>, slug: Slug) {
    let key = slug.clone();
    match on_store(s, move |store| store.events(Some(&key), HISTORY_SHOWN)).await {
        Ok(events) => {
            let lines = events
                .iter()
                .map(|e| (e.time.clone(), history::summary(e)))
                .collect();
            let _ = s.out.send(Msg::History { slug, lines });
        }
        Err(e) => history_failed("read a bottle's events", &e),
    }
}

/// How often the approvals queues are read (directory listings: cheap).
const QUEUE_POLL: Duration = Duration::from_secs(1);

/// Sends the pending approvals and the unread notices whenever they change; answers
/// supervise gave itself (timeouts) go to the audit trail then.
async fn watch_approvals(s: Arc<Shared>) {
    let mut last: Option<Vec<approvals::Pending>> = None;
    let mut last_unreadable: Vec<String> = Vec::new();
    let mut last_notices: Option<Vec<std::path::PathBuf>> = None;
    // Why the last read failed, so a failure is said once (and its end too).
    let mut failing: Option<String> = None;
    loop {
        let root = s.ctx.root.clone();
        let read = tokio::task::spawn_blocking(move || {
            approvals::pending(&root).map(|l| (l, approvals::notice_files(&root)))
        })
        .await
        .map_err(|e| color_eyre::eyre::eyre!("the queue task failed: {e}"))
        .and_then(|r| r);
        let (listing, files) = match read {
            Ok(read) => read,
            Err(e) => {
                let why = format!("cannot read the approvals queues: {e:#}");
                if failing.as_ref() != Some(&why) {
                    tracing::warn!("{why}");
                    let _ = s.out.send(Msg::QueueTrouble(Some(why.clone())));
                    failing = Some(why);
                }
                tokio::select! {
                    () = tokio::time::sleep(QUEUE_POLL) => {}
                    () = s.requeue.notified() => {}
                }
                continue;
            }
        };
        if failing.take().is_some() {
            let _ = s.out.send(Msg::QueueTrouble(None));
        }
        {
            if last.as_ref() != Some(&listing.pending) {
                let root = s.ctx.root.clone();
                if let Err(e) = on_store(&s, move |st| approvals::sync(&root, st)).await {
                    history_failed("record answers in the audit trail", &e);
                }
                let _ = s.out.send(Msg::Approvals(listing.pending.clone()));
                last = Some(listing.pending);
            }
            // The notices are opened only when their files changed (filed or read).
            if last_notices.as_ref() != Some(&files) {
                let root = s.ctx.root.clone();
                let read =
                    tokio::task::spawn_blocking(move || approvals::notices(&root, None)).await;
                match read {
                    Ok(Ok(unread)) => {
                        let _ = s.out.send(Msg::Notices(unread));
                        last_notices = Some(files);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot read the notices")
                    }
                    Err(e) => tracing::warn!(error = %e, "the notices task failed"),
                }
            }
            let unreadable: Vec<String> = listing
                .unreadable
                .iter()
                .map(|u| u.file.display().to_string())
                .collect();
            if unreadable != last_unreadable {
                let _ = s.out.send(Msg::UnreadableRequests(unreadable.clone()));
                last_unreadable = unreadable;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(QUEUE_POLL) => {}
            () = s.requeue.notified() => {}
        }
    }
}

/// Connects (and reconnects), refreshes on engine events, follows bundle logs.
async fn watch(s: Arc<Shared>) {
    let mut followers: BTreeMap<Slug, JoinHandle<()>> = BTreeMap::new();
    let mut agent_followers: BTreeMap<Slug, JoinHandle<()>> = BTreeMap::new();
    // The last read of each bottle, to see what changed (health, the agent) for the history.
    let mut seen: BTreeMap<Slug, reconcile::BottleStatus> = BTreeMap::new();
    loop {
        let b = match DockerBackend::connect().await {
            Ok(b) => Arc::new(b),
            Err(e) => {
                *s.backend.write().await = None;
                let _ = s.out.send(Msg::EngineDown(format!("{e:#}")));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        *s.backend.write().await = Some(Arc::clone(&b));
        // Off the refresh path: the first frame does not wait for it.
        tokio::spawn({
            let s = Arc::clone(&s);
            async move { check_setup(&s).await }
        });

        let mut events = b.events(label::SLUG);
        let mut caught_up = false;
        let mut slow = tokio::time::interval(SLOW);
        let why = loop {
            match reconcile::reconcile(b.as_ref()).await {
                Ok(bottles) => {
                    // The table first: following and catching up come after the first frame.
                    let changed = seen_changes(&mut seen, &bottles);
                    let _ = s.out.send(Msg::Bottles(bottles.clone()));
                    if !caught_up {
                        // What the bottles did while no dashboard watched, into the history.
                        caught_up = true;
                        tokio::spawn({
                            let s = Arc::clone(&s);
                            let b = Arc::clone(&b);
                            async move { catch_up(&s, b.as_ref()).await }
                        });
                    }
                    follow_logs(&s, &b, &bottles, &mut followers);
                    follow_agents(&s, &b, &bottles, &mut agent_followers);
                    note(&s, changed).await;
                }
                Err(e) => break format!("{e:#}"),
            }
            // Wait for a reason to look again, then let a burst of events settle.
            let woke = loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(Ok(ev)) if matters(&ev) => break Ok(()),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Err(format!("{e:#}")),
                        None => break Err("the engine closed its event stream".to_owned()),
                    },
                    _ = slow.tick() => break Ok(()),
                    () = s.refresh.notified() => break Ok(()),
                }
            };
            if let Err(why) = woke {
                break why;
            }
            let settle = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    () = &mut settle => break,
                    ev = events.next() => if !matches!(ev, Some(Ok(_))) { break },
                }
            }
        };
        *s.backend.write().await = None;
        for (_, h) in std::mem::take(&mut followers)
            .into_iter()
            .chain(std::mem::take(&mut agent_followers))
        {
            h.abort();
        }
        let _ = s.out.send(Msg::EngineDown(why));
        tokio::time::sleep(RETRY).await;
    }
}

/// Records what the bottles' kept files and agent logs hold that the history lacks.
async fn catch_up(s: &Arc<Shared>, b: &DockerBackend) {
    match crate::engine::ingest::gather(&s.ctx.root, Some(b)).await {
        Err(e) => history_failed("catch up", &e),
        Ok(found) => {
            let recorded = on_store(s, move |store| {
                crate::engine::ingest::record_all(store, &found)
            })
            .await;
            if let Err(e) = recorded {
                history_failed("catch up", &e);
            }
        }
    }
}

/// What changed since the last read, per bottle; bottles seen for the first time have no
/// "before" (the dashboard just started, or they were just launched) and record nothing.
fn seen_changes(
    seen: &mut BTreeMap<Slug, reconcile::BottleStatus>,
    now: &[reconcile::BottleStatus],
) -> Vec<(Slug, Vec<Happened>)> {
    let mut out = Vec::new();
    for b in now {
        if let Some(before) = seen.get(&b.slug) {
            let changes = history::changes(before, b);
            if !changes.is_empty() {
                out.push((b.slug.clone(), changes));
            }
        }
    }
    *seen = now.iter().map(|b| (b.slug.clone(), b.clone())).collect();
    out
}

/// One log follower per running bundle; followers of bundles that went away stop.
fn follow_logs(
    s: &Arc<Shared>,
    b: &Arc<DockerBackend>,
    bottles: &[reconcile::BottleStatus],
    followers: &mut BTreeMap<Slug, JoinHandle<()>>,
) {
    followers.retain(|slug, h| {
        let keep = !h.is_finished()
            && bottles.iter().any(|x| {
                &x.slug == slug
                    && x.bundle
                        .as_ref()
                        .is_some_and(|c| c.state == ContainerState::Running)
            });
        if !keep {
            h.abort();
        }
        keep
    });
    for bottle in bottles {
        let Some(bundle) = bottle
            .bundle
            .as_ref()
            .filter(|c| c.state == ContainerState::Running)
        else {
            continue;
        };
        if followers.contains_key(&bottle.slug)
            || bundle.labels.get(label::ROLE).map(String::as_str) != Some(role::BUNDLE)
        {
            continue;
        }
        let mut lines = b.logs(&bundle.name, true, Some(LOG_TAIL));
        let out = s.out.clone();
        let slug = bottle.slug.clone();
        let s = Arc::clone(s);
        let handle = tokio::spawn(async move {
            let mut blocked = PerMinute::new(BLOCKED_ATTEMPTS);
            while let Some(Ok(line)) = lines.next().await {
                for text in line.text.lines().filter(|l| !l.trim().is_empty()) {
                    let line = LogLine::parse(text);
                    if let Some((time, what)) = history::from_log_line(&line) {
                        // An agent hammering blocked hosts must not turn into a write storm.
                        let keep =
                            !matches!(what, Happened::Blocked { .. }) || blocked.allow(&time);
                        if keep {
                            note_logged(&s, slug.clone(), time, what).await;
                        }
                    }
                    if out
                        .send(Msg::Log {
                            slug: slug.clone(),
                            line: Box::new(line),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        followers.insert(bottle.slug.clone(), handle);
    }
}

/// One follower per running Docker agent: what its session holder says it is doing, read from
/// its record once and then from its log as it changes. A change seen live is recorded in the
/// history and, into needs-you or idle, runs the notify command. (smolvm agents' status comes
/// with each refresh, from the record `reconcile` reads.)
fn follow_agents(
    s: &Arc<Shared>,
    b: &Arc<DockerBackend>,
    bottles: &[reconcile::BottleStatus],
    followers: &mut BTreeMap<Slug, JoinHandle<()>>,
) {
    let running = |x: &reconcile::BottleStatus| {
        x.agent_container
            .as_ref()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.name.clone())
    };
    followers.retain(|slug, h| {
        let keep = !h.is_finished()
            && bottles
                .iter()
                .any(|x| &x.slug == slug && running(x).is_some());
        if !keep {
            h.abort();
        }
        keep
    });
    for bottle in bottles {
        let Some(name) = running(bottle) else {
            continue;
        };
        if followers.contains_key(&bottle.slug) {
            continue;
        }
        let slug = bottle.slug.clone();
        let s = Arc::clone(s);
        let b = Arc::clone(b);
        let handle = tokio::spawn(async move {
            let (first, mut changes) = crate::engine::activity::follow(b.as_ref(), &name).await;
            let mut status = first.as_ref().map(|a| a.status);
            if let Some(a) = first {
                let _ = s.out.send(Msg::Activity {
                    slug: slug.clone(),
                    activity: a,
                    news: false,
                });
            }
            while let Some(Ok(a)) = changes.next().await {
                let changed = status != Some(a.status);
                status = Some(a.status);
                if changed && a.worth_telling() && !s.ctx.config.notify.command.is_empty() {
                    crate::engine::notify::spawn(&s.ctx.config.notify.command, &slug, &a);
                }
                let what = Happened::Status {
                    status: a.status,
                    reason: a.reason.clone(),
                };
                note_logged(&s, slug.clone(), a.since.clone(), what).await;
                let msg = Msg::Activity {
                    slug: slug.clone(),
                    activity: a,
                    news: true,
                };
                if s.out.send(msg).is_err() {
                    return;
                }
            }
        });
        followers.insert(bottle.slug.clone(), handle);
    }
}

/// The plan's gist for the detail panel, read as plain JSON so an older plan still shows.
fn plan_summary(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(p) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return vec![("plan".into(), "unreadable plan.json".into())];
    };
    let list = |v: &serde_json::Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_str().map_or_else(
                            || {
                                x.get("host")
                                    .and_then(|h| h.as_str())
                                    .unwrap_or("?")
                                    .to_owned()
                            },
                            str::to_owned,
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "–".into())
    };
    let mut out = vec![
        (
            "image".to_owned(),
            p["agent"]["image"].as_str().unwrap_or("?").to_owned(),
        ),
        ("command".to_owned(), list(&p["agent"]["command"])),
        ("allow".to_owned(), list(&p["gateway"]["allow"])),
        ("routes".to_owned(), list(&p["gateway"]["routes"])),
    ];
    let on = |k: &str| if p[k].is_null() { "off" } else { "on" };
    out.push((
        "daemons".to_owned(),
        format!(
            "pipelock {} · git-gate {} · supervise {}",
            on("pipelock"),
            on("git_gate"),
            on("supervise")
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_per_minute_of_the_lines_own_time() {
        let mut r = PerMinute::new(3);
        let allowed = (0..10)
            .filter(|i| r.allow(&format!("2026-11-28T07:01:{i:02}Z")))
            .count();
        assert_eq!(allowed, 3);
        assert!(r.allow("2026-11-28T07:02:00Z"), "the next minute");
        assert!(
            r.allow("2026-11-28T07:00:59Z"),
            "an older line's own minute"
        );
    }
}
