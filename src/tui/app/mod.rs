//! The dashboard's whole state, and how keys and messages change it. No I/O here: what needs
//! the engine, the agent's terminal or the disk comes back as `Effect`s that the UI loop
//! performs, so every transition is testable.

mod approvals_keys;
mod launch;
mod logs_keys;

pub use approvals_keys::{ApprovalsKey, ApprovalsView};
pub use launch::{LaunchForm, LaunchKey};
pub use logs_keys::LogsKey;

use super::keymap::{Action, Context, Keymap};
use super::logs::LogBook;
pub use super::logs::LogsView;
use super::msg::{Command, Effect, Msg, engine};
use super::pane::{Pane, PaneEvent};
use super::text::plural;
use super::theme::Theme;
use crate::backend::docker::stats::Usage;
use crate::engine::approvals::{Pending, Unread};
use crate::engine::reconcile::BottleStatus;
use crate::sidecar::supervise::queue::Decision;
use crate::types::{AgentState, Slug};
use crate::wire::daemon::Daemon;
use crate::wire::session::{Activity, AgentStatus};

/// How many CPU and memory samples the chart keeps (about a second each).
pub const USAGE_SAMPLES: usize = 120;
/// Minutes of egress a row's sparkline shows.
pub const EGRESS_MINUTES: usize = 10;

/// One bottle's requests and refusals per minute, the newest minute last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    /// The minute (seconds since the epoch / 60) of the last slot.
    last: i64,
    requests: [u32; EGRESS_MINUTES],
    denied: [u32; EGRESS_MINUTES],
}

impl Egress {
    /// A request at `at` (seconds since the epoch); lines older than the window are dropped.
    pub fn count(&mut self, at: i64, denied: bool, now: i64) {
        let minute = at.div_euclid(60);
        self.advance(minute.max(now.div_euclid(60)));
        let back = self.last - minute;
        let Some(slot) = usize::try_from(back)
            .ok()
            .filter(|b| *b < EGRESS_MINUTES)
            .map(|b| EGRESS_MINUTES - 1 - b)
        else {
            return;
        };
        self.requests[slot] += 1;
        self.denied[slot] += u32::from(denied);
    }

    /// Moves the window so its last slot is `minute`.
    fn advance(&mut self, minute: i64) {
        if minute <= self.last {
            return;
        }
        let shift = usize::try_from(minute - self.last).unwrap_or(EGRESS_MINUTES);
        if shift >= EGRESS_MINUTES {
            self.requests = [0; EGRESS_MINUTES];
            self.denied = [0; EGRESS_MINUTES];
        } else {
            self.requests.rotate_left(shift);
            self.denied.rotate_left(shift);
            for i in EGRESS_MINUTES - shift..EGRESS_MINUTES {
                self.requests[i] = 0;
                self.denied[i] = 0;
            }
        }
        self.last = minute;
    }

    /// (requests, refused) per minute, oldest first, as of `now`.
    pub fn minutes(&self, now: i64) -> Vec<(u32, u32)> {
        let mut e = self.clone();
        e.advance(now.div_euclid(60));
        e.requests.into_iter().zip(e.denied).collect()
    }
}
use crossterm::event::{KeyCode, KeyEvent, MouseEvent, MouseEventKind};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// What the agents are doing, who needs you first (the default).
    Status,
    Slug,
    State,
    Created,
}

impl SortKey {
    fn next(self) -> Self {
        match self {
            Self::Status => Self::Slug,
            Self::Slug => Self::State,
            Self::State => Self::Created,
            Self::Created => Self::Status,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Slug => "slug",
            Self::State => "state",
            Self::Created => "age",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Table,
    Filter,
    Help,
    ConfirmKill(Vec<Slug>),
    Launch(LaunchForm),
    Logs(LogsView),
    Aliases,
    Approvals(ApprovalsView),
    /// Keys go to the agent in the pane.
    Pane,
    /// What a launch needs and this machine lacks, and building it.
    Setup,
}

/// What a first launch needs on this machine (the sidecar, images), and building it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setup {
    /// What is missing; empty when a launch has all it needs.
    pub needs: Vec<String>,
    /// Checked at least once since the engine answered.
    pub checked: bool,
    pub building: bool,
    /// The build's progress, newest last (the last [`SETUP_LINES`]).
    pub lines: Vec<String>,
    pub error: Option<String>,
}

/// Progress lines the setup dialog keeps.
pub const SETUP_LINES: usize = 200;

/// Notices the approvals dialog lists (the newest); `r` marks exactly these read.
pub const NOTICES_SHOWN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Connecting,
    Up,
    Down(String),
}

/// An attach client running in a pane, for one bottle.
pub struct PaneSlot {
    pub slug: Slug,
    pub pane: Pane,
    pub zoomed: bool,
}

pub struct App {
    pub bottles: Vec<BottleStatus>,
    /// The selected row, by slug so it survives re-sorting and refreshes.
    pub selected: Option<Slug>,
    pub marked: BTreeSet<Slug>,
    pub sort: SortKey,
    pub filter: String,
    pub mode: Mode,
    pub engine: Engine,
    pub logs: LogBook,
    pub config_bottles: Vec<Slug>,
    pub pane: Option<PaneSlot>,
    pub preview: Option<PaneSlot>,
    /// Plan summaries by slug, read once per bottle.
    pub plans: BTreeMap<Slug, Vec<(String, String)>>,
    /// The selected bottle's CPU and memory samples, oldest first (at most [`USAGE_SAMPLES`]).
    pub usage: Option<(Slug, std::collections::VecDeque<Usage>)>,
    /// Requests and refusals per minute per bottle, from its gateway's lines.
    pub egress: BTreeMap<Slug, Egress>,
    /// What each agent is doing, as its session holder says (followed live).
    pub activities: BTreeMap<Slug, Activity>,
    /// Recent history by slug (time, one line), newest first: read when a bottle is first
    /// selected, sent again whenever something is recorded for it.
    pub history: BTreeMap<Slug, Vec<(String, String)>>,
    /// The pane being opened should be full screen.
    pub pending_zoom: bool,
    /// A preview of this bottle failed; not retried until the selection moves.
    pub preview_failed: Option<Slug>,
    /// A one-line message for the footer (errors of background work, saved files).
    pub status: Option<String>,
    pub keymap: Keymap,
    pub theme: Theme,
    /// Seconds since the Unix epoch, for uptimes (set by the loop, fixed in tests).
    pub now: i64,
    /// Where `s` in the logs view saves.
    pub save_dir: std::path::PathBuf,
    /// Requests agents wait on, oldest first.
    pub approvals: Vec<Pending>,
    /// Request files that cannot be read: shown in the header, named by `bottle-tui queue`.
    pub unreadable_requests: Vec<String>,
    /// Why the approvals queues cannot be read now (the pending count may be stale).
    pub queue_trouble: Option<String>,
    /// What agents told the operator (supervise's `notify`) and nobody read yet, newest first.
    pub notices: Vec<Unread>,
    /// Ring the terminal's bell when a new request arrives (`[dashboard] bell`).
    pub bell: bool,
    /// A bell is due (the loop rings it once and clears this).
    pub ring: bool,
    /// Which config is in use when it is not a file (the built-in default), shown on top.
    pub banner: Option<String>,
    pub setup: Setup,
    /// Every request seen since the dashboard started, by `slug/id`: a request rings once,
    /// and those already waiting at start ring no bell.
    seen_requests: Option<BTreeSet<String>>,
    pub quit: bool,
}

impl App {
    /// A change an agent made, seen live (`news`) or found; one worth telling (needs-you, or
    /// an idle the agent said) rings the bell (`[dashboard] bell`).
    fn note_activity(&mut self, slug: Slug, activity: Activity, news: bool) {
        let before = self.activities.get(&slug).map(|a| a.status);
        let changed = before != Some(activity.status);
        self.ring |= self.bell && news && changed && activity.worth_telling();
        self.activities.insert(slug, activity);
    }

    pub fn new(keymap: Keymap, theme: Theme, config_bottles: Vec<Slug>) -> Self {
        Self {
            bottles: Vec::new(),
            selected: None,
            marked: BTreeSet::new(),
            sort: SortKey::Status,
            filter: String::new(),
            mode: Mode::Table,
            engine: Engine::Connecting,
            logs: LogBook::default(),
            config_bottles,
            pane: None,
            preview: None,
            plans: BTreeMap::new(),
            history: BTreeMap::new(),
            activities: BTreeMap::new(),
            usage: None,
            egress: BTreeMap::new(),
            pending_zoom: false,
            preview_failed: None,
            status: None,
            keymap,
            theme,
            now: 0,
            save_dir: std::env::temp_dir(),
            approvals: Vec::new(),
            unreadable_requests: Vec::new(),
            queue_trouble: None,
            notices: Vec::new(),
            bell: true,
            ring: false,
            seen_requests: None,
            banner: None,
            setup: Setup::default(),
            quit: false,
        }
    }

    /// The rows on screen: filtered by `/`, sorted by the sort key.
    pub fn visible(&self) -> Vec<&BottleStatus> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&BottleStatus> = self
            .bottles
            .iter()
            .filter(|b| {
                needle.is_empty()
                    || b.slug.as_str().contains(&needle)
                    || b.bottle.to_lowercase().contains(&needle)
                    || b.state.as_str().contains(&needle)
                    || self
                        .activity(b)
                        .is_some_and(|a| a.status.as_str().contains(&needle))
            })
            .collect();
        match self.sort {
            // Bottles whose agent has said nothing yet come last.
            SortKey::Status => rows.sort_by(|a, b| {
                let key = |x: &BottleStatus| self.activity(x).map(|a| a.status);
                match (key(a), key(b)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
                .then(a.slug.cmp(&b.slug))
            }),
            SortKey::Slug => rows.sort_by(|a, b| a.slug.cmp(&b.slug)),
            SortKey::State => rows.sort_by(|a, b| a.state.cmp(&b.state).then(a.slug.cmp(&b.slug))),
            SortKey::Created => rows.sort_by(|a, b| b.created.cmp(&a.created)),
        }
        rows
    }

    /// What `b`'s agent is doing, if it has said.
    pub fn activity(&self, b: &BottleStatus) -> Option<&Activity> {
        self.activities.get(&b.slug)
    }

    /// How many agents wait for the human.
    pub fn needing_you(&self) -> usize {
        self.bottles
            .iter()
            .filter(|b| {
                self.activity(b)
                    .is_some_and(|a| a.status == AgentStatus::NeedsYou)
            })
            .count()
    }

    pub fn selected_bottle(&self) -> Option<&BottleStatus> {
        let sel = self.selected.as_ref()?;
        self.bottles.iter().find(|b| &b.slug == sel)
    }

    fn selected_index(&self) -> Option<usize> {
        let sel = self.selected.as_ref()?;
        self.visible().iter().position(|b| &b.slug == sel)
    }

    fn select_index(&mut self, i: usize) -> Vec<Command> {
        let rows = self.visible();
        let next = rows.get(i).map(|b| b.slug.clone());
        self.select(next)
    }

    /// Changes the selection; the preview follows it.
    fn select(&mut self, slug: Option<Slug>) -> Vec<Command> {
        if slug == self.selected {
            return Vec::new();
        }
        self.selected = slug;
        self.preview = None;
        self.preview_failed = None;
        self.usage = None;
        let mut out = self.preview_command();
        out.push(Command::Usage(self.selected.clone()));
        out
    }

    fn preview_command(&self) -> Vec<Command> {
        let mut out = Vec::new();
        if let Some(s) = &self.selected {
            if !self.plans.contains_key(s) {
                out.push(Command::Plan(s.clone()));
            }
            if !self.history.contains_key(s) {
                out.push(Command::History(s.clone()));
            }
        }
        out.extend(self.preview_only());
        out
    }

    fn preview_only(&self) -> Vec<Command> {
        match self.selected_bottle() {
            Some(b)
                if b.agent.state == AgentState::Running
                    && self.pane.is_none()
                    && self.preview_failed.as_ref() != Some(&b.slug) =>
            {
                vec![Command::Attach {
                    slug: b.slug.clone(),
                    preview: true,
                }]
            }
            _ => Vec::new(),
        }
    }

    fn move_selection(&mut self, delta: isize) -> Vec<Command> {
        let n = self.visible().len();
        if n == 0 {
            return self.select(None);
        }
        let i = self
            .selected_index()
            .map_or(0, |i| i.saturating_add_signed(delta).min(n - 1));
        self.select_index(i)
    }

    /// Pending approvals across bottles.
    pub fn pending_approvals(&self) -> usize {
        self.approvals.len()
    }

    /// Pending approvals of one bottle.
    pub fn pending_of(&self, slug: &str) -> usize {
        self.approvals
            .iter()
            .filter(|p| p.slug.as_str() == slug)
            .count()
    }

    pub fn on_msg(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Attach {
                slug,
                preview,
                target,
            } => self.on_attach(slug, preview, target),
            other => engine(self.on_state_msg(other)),
        }
    }

    /// Where an agent's session is: open its pane (or the preview, if that row is still
    /// selected and no pane is open), or say why not.
    fn on_attach(
        &mut self,
        slug: Slug,
        preview: bool,
        target: Result<crate::engine::attach::AttachCommand, String>,
    ) -> Vec<Effect> {
        match target {
            Ok(command) => {
                let wanted =
                    !preview || (self.selected.as_ref() == Some(&slug) && self.pane.is_none());
                if !wanted {
                    return Vec::new();
                }
                let zoomed = !preview && self.pending_zoom;
                vec![Effect::OpenPane {
                    slug,
                    preview,
                    zoomed,
                    command,
                }]
            }
            Err(e) => {
                if !preview {
                    self.status = Some(format!("{slug}: {e}"));
                }
                Vec::new()
            }
        }
    }

    /// The loop started (or could not start) the pane an `Effect::OpenPane` asked for.
    pub fn pane_opened(
        &mut self,
        slug: Slug,
        preview: bool,
        zoomed: bool,
        pane: color_eyre::eyre::Result<Pane>,
    ) {
        match pane {
            Ok(pane) => {
                let slot = PaneSlot { slug, pane, zoomed };
                if preview {
                    self.preview = Some(slot);
                } else {
                    self.preview = None;
                    self.pane = Some(slot);
                    self.mode = Mode::Pane;
                }
            }
            Err(e) => self.status = Some(format!("{slug}: {e:#}")),
        }
    }

    /// How writing an `Effect::Save` went.
    pub fn saved(&mut self, result: std::io::Result<std::path::PathBuf>) {
        self.status = Some(match result {
            Ok(path) => format!("saved the log to {}", path.display()),
            Err(e) => format!("could not save the log: {e:#}"),
        });
    }

    fn on_state_msg(&mut self, msg: Msg) -> Vec<Command> {
        match msg {
            Msg::Setup(needs) => {
                // The first check that finds something missing opens the dialog (once).
                let first = !self.setup.checked;
                self.setup.checked = true;
                self.setup.needs = needs;
                if first && !self.setup.needs.is_empty() && self.mode == Mode::Table {
                    self.mode = Mode::Setup;
                }
                Vec::new()
            }
            Msg::SetupLine(line) => {
                self.setup.lines.push(line);
                if self.setup.lines.len() > SETUP_LINES {
                    let extra = self.setup.lines.len() - SETUP_LINES;
                    self.setup.lines.drain(..extra);
                }
                Vec::new()
            }
            Msg::SetupDone(error) => {
                self.setup.building = false;
                self.setup.error = error;
                match &self.setup.error {
                    None => {
                        self.status = Some("built what a launch needs".into());
                        if self.mode == Mode::Setup {
                            self.mode = Mode::Table;
                        }
                    }
                    Some(e) => self.status = Some(format!("building failed: {e}")),
                }
                vec![Command::CheckSetup]
            }
            Msg::Bottles(bottles) => {
                self.engine = Engine::Up;
                self.bottles = bottles;
                let present: BTreeSet<Slug> = self.bottles.iter().map(|b| b.slug.clone()).collect();
                self.marked.retain(|s| present.contains(s));
                self.logs.retain(&present);
                self.plans.retain(|s, _| present.contains(s));
                self.activities.retain(|s, _| present.contains(s));
                self.egress.retain(|s, _| present.contains(s));
                // smolvm agents' status comes with the refresh (Docker agents' is followed).
                let read: Vec<(Slug, Activity)> = self
                    .bottles
                    .iter()
                    .filter_map(|b| Some((b.slug.clone(), b.agent.activity.clone()?)))
                    .collect();
                for (slug, activity) in read {
                    let news = self.activities.contains_key(&slug);
                    self.note_activity(slug, activity, news);
                }
                if let Some(p) = &self.pane {
                    if !present.contains(&p.slug) {
                        self.pane = None;
                        if self.mode == Mode::Pane {
                            self.mode = Mode::Table;
                        }
                    }
                }
                let keep = self.selected.clone().filter(|s| present.contains(s));
                match keep {
                    Some(_) => {
                        self.selected = keep;
                        // A preview ends when its agent does; start one when it runs again.
                        if self.preview.is_none() {
                            return self.preview_command();
                        }
                        Vec::new()
                    }
                    None => {
                        let first = self.visible().first().map(|b| b.slug.clone());
                        self.selected = None;
                        self.select(first)
                    }
                }
            }
            Msg::EngineDown(why) => {
                self.engine = Engine::Down(why);
                Vec::new()
            }
            Msg::Log { slug, line } => {
                if line.source()
                    == Some(crate::wire::daemon::LogSource::Daemon(
                        crate::wire::daemon::Daemon::Gateway,
                    ))
                    && line.msg == crate::wire::log::REQUEST
                    && let Some(at) = line.time.as_deref().and_then(crate::types::age::epoch)
                {
                    self.egress.entry(slug.clone()).or_default().count(
                        at,
                        line.is_gateway_deny(),
                        self.now,
                    );
                }
                self.logs.push(&slug, &line);
                Vec::new()
            }
            Msg::Usage { slug, usage } => {
                if self.selected.as_ref() == Some(&slug) {
                    let (_, samples) = self
                        .usage
                        .get_or_insert_with(|| (slug, std::collections::VecDeque::new()));
                    if samples.len() == USAGE_SAMPLES {
                        samples.pop_front();
                    }
                    samples.push_back(usage);
                }
                Vec::new()
            }
            Msg::LaunchStep { slug, step } => {
                if let Mode::Launch(f) = &mut self.mode {
                    if f.launching.as_deref() == Some(slug.as_str()) {
                        f.steps.push(step);
                    }
                }
                Vec::new()
            }
            Msg::LaunchDone { slug, error } => {
                match error {
                    None => {
                        if matches!(&self.mode, Mode::Launch(f) if f.launching.as_deref() == Some(slug.as_str()))
                        {
                            self.mode = Mode::Table;
                        }
                        self.status = Some(format!("launched {slug}"));
                        self.selected = Some(slug);
                        self.preview = None;
                        return vec![Command::Refresh];
                    }
                    Some(e) => {
                        if let Mode::Launch(f) = &mut self.mode {
                            f.error = Some(e);
                            f.launching = None;
                        } else {
                            self.status = Some(format!("launching {slug} failed: {e}"));
                        }
                    }
                }
                vec![Command::Refresh]
            }
            Msg::KillDone { slug, error } => {
                self.status = Some(match error {
                    None => format!("killed {slug}"),
                    Some(e) => format!("killing {slug} failed: {e}"),
                });
                vec![Command::Refresh]
            }
            Msg::Plan { slug, lines } => {
                self.plans.insert(slug, lines);
                Vec::new()
            }
            Msg::Activity {
                slug,
                activity,
                news,
            } => {
                self.note_activity(slug, activity, news);
                Vec::new()
            }
            Msg::History { slug, lines } => {
                self.history.insert(slug, lines);
                Vec::new()
            }
            Msg::Approvals(list) => {
                let first = self.seen_requests.is_none();
                let seen = self.seen_requests.get_or_insert_with(BTreeSet::new);
                let mut new = false;
                for p in &list {
                    new |= seen.insert(format!("{}/{}", p.slug, p.request.id));
                }
                self.ring |= self.bell && new && !first;
                self.approvals = list;
                if let Mode::Approvals(v) = &mut self.mode {
                    v.selected = v.selected.min(self.approvals.len().saturating_sub(1));
                }
                Vec::new()
            }
            Msg::Notices(unread) => {
                self.notices = unread;
                Vec::new()
            }
            Msg::MarkedRead(result) => {
                self.status = Some(match result {
                    Ok(n) => format!("{} marked read", plural(n, "notice")),
                    Err(e) => format!("marking notices read failed: {e}"),
                });
                Vec::new()
            }
            Msg::QueueTrouble(why) => {
                self.queue_trouble = why;
                Vec::new()
            }
            Msg::UnreadableRequests(files) => {
                self.unreadable_requests = files;
                Vec::new()
            }
            Msg::Answered { slug, id, result } => {
                self.status = Some(match result {
                    Ok(summary) => format!("{slug} {id}: {summary}"),
                    Err(e) => format!("{slug} {id}: {e}"),
                });
                Vec::new()
            }
            Msg::Attach { .. } => Vec::new(),
        }
    }

    /// A pane's program ended: the agent's attach client left (detach, or the agent exited).
    pub fn on_pane_event(&mut self, ev: &PaneEvent) {
        if let PaneEvent::Exited(id, exit) = ev {
            if self.pane.as_ref().is_some_and(|p| p.pane.id() == *id) {
                let slug = self.pane.take().map(|p| p.slug);
                if self.mode == Mode::Pane {
                    self.mode = Mode::Table;
                }
                if let Some(slug) = slug.filter(|_| exit.code != 0) {
                    self.status = Some(format!("{slug}: the agent's terminal {exit}"));
                }
            }
            if self.preview.as_ref().is_some_and(|p| p.pane.id() == *id) {
                let slug = self.preview.take().map(|p| p.slug);
                if exit.code != 0 {
                    self.preview_failed = slug;
                }
            }
        }
    }

    pub fn on_mouse(&mut self, ev: &MouseEvent, table_top: u16) -> Vec<Effect> {
        engine(self.on_table_mouse(ev, table_top))
    }

    fn on_table_mouse(&mut self, ev: &MouseEvent, table_top: u16) -> Vec<Command> {
        match ev.kind {
            MouseEventKind::ScrollDown if self.mode == Mode::Table => self.move_selection(1),
            MouseEventKind::ScrollUp if self.mode == Mode::Table => self.move_selection(-1),
            MouseEventKind::Down(_) if self.mode == Mode::Table && ev.row > table_top => {
                self.select_index(usize::from(ev.row - table_top - 1))
            }
            _ => Vec::new(),
        }
    }

    /// The key context of the current mode (text inputs and dialogs take their keys first).
    fn context(&self) -> Context {
        match &self.mode {
            Mode::Pane => Context::Pane,
            Mode::Logs(_) => Context::Logs,
            Mode::Approvals(_) => Context::Approvals,
            _ => Context::Table,
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let typing = matches!(&self.mode, Mode::Filter | Mode::Launch(_))
            || matches!(&self.mode, Mode::Logs(v) if v.searching)
            || matches!(&self.mode, Mode::Approvals(v) if v.reason.is_some());
        let action = self.keymap.action(self.context(), key);
        // Quits from anywhere but the agent's pane, even while typing.
        if action == Some(Action::QuitNow)
            || (typing
                && self
                    .keymap
                    .action(Context::Table, key)
                    .is_some_and(|a| a == Action::QuitNow))
        {
            self.quit = true;
            return Vec::new();
        }
        match self.mode.clone() {
            Mode::Pane => {
                if action == Some(Action::Detach) {
                    // Ending the attach client detaches; the agent keeps running.
                    self.pane = None;
                    self.mode = Mode::Table;
                    return engine(self.preview_command());
                }
                if self.pane.is_some() {
                    vec![Effect::PaneKey(*key)]
                } else {
                    Vec::new()
                }
            }
            Mode::Filter => {
                match key.code {
                    KeyCode::Esc => {
                        self.filter.clear();
                        self.mode = Mode::Table;
                    }
                    KeyCode::Enter => self.mode = Mode::Table,
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) => self.filter.push(c),
                    _ => {}
                }
                let first = self.visible().first().map(|b| b.slug.clone());
                if self.selected_index().is_none() {
                    return engine(self.select(first));
                }
                Vec::new()
            }
            Mode::Help => {
                self.mode = Mode::Table;
                Vec::new()
            }
            Mode::Aliases => {
                if action.is_some() {
                    self.mode = Mode::Table;
                }
                Vec::new()
            }
            Mode::ConfirmKill(slugs) => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                    self.mode = Mode::Table;
                    self.marked.clear();
                    self.status = Some(format!("killing {}", slugs.join(", ")));
                    vec![Effect::Engine(Command::Kill(slugs))]
                }
                _ => {
                    self.mode = Mode::Table;
                    Vec::new()
                }
            },
            Mode::Launch(mut form) => {
                let asked = form.on_key(key);
                self.mode = Mode::Launch(form);
                match asked {
                    LaunchKey::Stay => Vec::new(),
                    LaunchKey::Close => {
                        self.mode = Mode::Table;
                        Vec::new()
                    }
                    LaunchKey::Launch { bottle, name } => {
                        vec![Effect::Engine(Command::Launch { bottle, name })]
                    }
                }
            }
            Mode::Setup => engine(self.on_setup_key(action)),
            Mode::Approvals(mut view) => {
                let asked =
                    view.on_key(key, action, self.approvals.len(), !self.notices.is_empty());
                self.mode = Mode::Approvals(view);
                engine(match asked {
                    ApprovalsKey::Stay => Vec::new(),
                    ApprovalsKey::Close => {
                        self.mode = Mode::Table;
                        Vec::new()
                    }
                    ApprovalsKey::Answer {
                        index,
                        decision,
                        reason,
                    } => self.answer(index, decision, reason),
                    ApprovalsKey::MarkRead => self.mark_read(),
                })
            }
            Mode::Logs(mut view) => {
                let asked = view.on_key(key, action);
                let effects = match asked {
                    LogsKey::Stay => Vec::new(),
                    LogsKey::Close => {
                        self.mode = Mode::Table;
                        return Vec::new();
                    }
                    LogsKey::Save => {
                        let (name, text) = self.logs.export(&view, self.now);
                        vec![Effect::Save {
                            path: self.save_dir.join(name),
                            text,
                        }]
                    }
                };
                self.mode = Mode::Logs(view);
                effects
            }
            Mode::Table => engine(self.on_table_key(action)),
        }
    }

    fn on_table_key(&mut self, action: Option<Action>) -> Vec<Command> {
        let Some(action) = action else {
            return Vec::new();
        };
        match action {
            Action::Quit | Action::QuitNow => {
                self.quit = true;
            }
            Action::Help => self.mode = Mode::Help,
            Action::Filter => self.mode = Mode::Filter,
            Action::Aliases => self.mode = Mode::Aliases,
            Action::Logs => {
                self.mode = Mode::Logs(LogsView::following(self.selected.clone()));
            }
            Action::Launch => {
                self.mode = Mode::Launch(LaunchForm::new(self.config_bottles.clone()));
            }
            Action::Kill => {
                let slugs: Vec<Slug> = if self.marked.is_empty() {
                    self.selected.iter().cloned().collect()
                } else {
                    self.marked.iter().cloned().collect()
                };
                if !slugs.is_empty() {
                    self.mode = Mode::ConfirmKill(slugs);
                }
            }
            Action::Attach | Action::Zoom => {
                if let Some(b) = self.selected_bottle() {
                    if b.agent.state == AgentState::Running {
                        let slug = b.slug.clone();
                        self.preview = None;
                        self.status = None;
                        self.pending_zoom = action == Action::Zoom;
                        return vec![Command::Attach {
                            slug,
                            preview: false,
                        }];
                    }
                    self.status = Some(match b.agent.exit_code {
                        Some(c) => format!(
                            "{}: the agent exited with code {c}; `bottle-tui attach {}` shows its last screen",
                            b.slug, b.slug
                        ),
                        None => format!("{}: the agent is {}", b.slug, b.agent.state),
                    });
                }
            }
            Action::Inspect => {
                self.status = Some("inspect: the detail panel shows the selection".into());
            }
            Action::Approvals => {
                self.status = None;
                self.mode = Mode::Approvals(ApprovalsView::default());
            }
            Action::Build => {
                // Shows what is missing (or that nothing is); building starts from the dialog.
                self.mode = Mode::Setup;
                return vec![Command::CheckSetup];
            }
            Action::Down => return self.move_selection(1),
            Action::Up => return self.move_selection(-1),
            Action::Top => return self.select_index(0),
            Action::Bottom => {
                let n = self.visible().len();
                return self.select_index(n.saturating_sub(1));
            }
            Action::Mark => {
                if let Some(s) = self.selected.clone()
                    && !self.marked.remove(&s)
                {
                    self.marked.insert(s);
                }
            }
            Action::Sort => self.sort = self.sort.next(),
            Action::Back => {
                self.marked.clear();
                self.status = None;
            }
            // Keys of other views.
            _ => {}
        }
        Vec::new()
    }

    /// The setup dialog: the build key (or enter) builds, esc hides it (a build goes on).
    fn on_setup_key(&mut self, action: Option<Action>) -> Vec<Command> {
        if matches!(action, Some(Action::Back | Action::Quit)) {
            self.mode = Mode::Table;
            return Vec::new();
        }
        if matches!(action, Some(Action::Build | Action::Attach)) && !self.setup.building {
            return self.start_build();
        }
        Vec::new()
    }

    fn start_build(&mut self) -> Vec<Command> {
        if self.setup.building {
            return Vec::new();
        }
        self.setup.building = true;
        self.setup.error = None;
        self.setup.lines.clear();
        self.mode = Mode::Setup;
        vec![Command::BuildSetup]
    }

    /// The notices shown are read now. They leave the list when the worker's next read finds
    /// them moved (at once), so a failure leaves them in view.
    fn mark_read(&mut self) -> Vec<Command> {
        let read: Vec<_> = self
            .notices
            .iter()
            .take(NOTICES_SHOWN)
            .map(|u| (u.slug.clone(), u.notice.id.clone()))
            .collect();
        self.status = Some(format!("marking {} read…", plural(read.len(), "notice")));
        vec![Command::MarkRead(read)]
    }

    fn answer(&mut self, index: usize, decision: Decision, reason: Option<String>) -> Vec<Command> {
        let Some(p) = self.approvals.get(index) else {
            return Vec::new();
        };
        let (slug, id) = (p.slug.clone(), p.request.id.clone());
        self.status = Some(format!("{slug} {id}: sending {}…", decision.as_str()));
        // Gone from the list at once; the next queue read confirms it.
        self.approvals.remove(index);
        vec![Command::Answer {
            slug,
            id,
            decision,
            reason,
        }]
    }

    /// Blocked requests seen in a bottle's gateway log.
    pub fn blocked(&self, slug: &str) -> usize {
        self.logs.denied(slug)
    }

    /// Each daemon's state: the engine's health check, overridden by init's own report when
    /// a daemon has died (or is being restarted) since — that arrives at once in the log.
    pub fn health(&self, b: &BottleStatus) -> BTreeMap<Daemon, String> {
        use super::logs::Lifecycle;
        b.health
            .iter()
            .map(|(d, s)| {
                let s = match self.logs.lifecycle(&b.slug, *d) {
                    Some(Lifecycle::Exited) => "exited".to_owned(),
                    Some(Lifecycle::Restarting) => "down, restarting".to_owned(),
                    _ => s.clone(),
                };
                (*d, s)
            })
            .collect()
    }
}
