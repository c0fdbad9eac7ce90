//! Every dashboard view and dialog, drawn with ratatui's TestBackend at two terminal sizes with
//! bottles in different states, pinned by insta snapshots. Views are pure functions of `App`.

use bottle_tui::backend::{ContainerInfo, ContainerState};
use bottle_tui::engine::approvals::{Pending, Unread};
use bottle_tui::engine::attach::AttachCommand;
use bottle_tui::engine::reconcile::BottleStatus;
use bottle_tui::sidecar::supervise::queue::{Decision, Notice, Request, RequestId};
use bottle_tui::tui::app::{App, ApprovalsView, Engine, LaunchForm, LogsView, Mode, PaneSlot};
use bottle_tui::tui::keymap::Keymap;
use bottle_tui::tui::msg::Msg;
use bottle_tui::tui::msg::{Command, Effect};
use bottle_tui::tui::pane::{Pane, PaneEvent, PaneSize};
use bottle_tui::tui::theme::Theme;
use bottle_tui::tui::views;
use bottle_tui::types::{AgentState, BottleState, KeySpec, Slug};
use bottle_tui::wire::daemon::Daemon;
use bottle_tui::wire::log::LogLine;
use bottle_tui::wire::session::{Activity, AgentStatus};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::BTreeMap;

const SIZES: [(u16, u16); 2] = [(160, 40), (100, 30)];
/// 2026-11-28T02:00:00Z
const NOW: i64 = 1_795_831_200;

fn sl(s: &str) -> Slug {
    Slug::parse(s).expect("a slug")
}

fn rid(s: &str) -> RequestId {
    s.parse().expect("a request id")
}

fn bottle(
    slug: &str,
    state: &str,
    agent: &str,
    code: Option<i64>,
    health: &[(&str, &str)],
) -> BottleStatus {
    let mut networks = BTreeMap::new();
    networks.insert(format!("bottle-{slug}-int"), "172.30.0.3".parse().ok());
    BottleStatus {
        slug: sl(slug),
        bottle: "demo".into(),
        backend: "docker".into(),
        state: match state {
            "running" => BottleState::Running,
            "exited" => BottleState::Exited,
            "created" => BottleState::Created,
            _ => BottleState::Broken,
        },
        agent: bottle_tui::engine::reconcile::AgentPart {
            state: match agent {
                "missing" => AgentState::Missing,
                other => ContainerState::parse(other).into(),
            },
            exit_code: code,
            activity: None,
        },
        health: health
            .iter()
            .filter_map(|(d, s)| Some((Daemon::parse(d)?, (*s).to_owned())))
            .collect(),
        alias: None,
        created: "2026-11-28T01:15:00Z".into(),
        config_hash: "6a6456dc2ac5f00d".into(),
        version: "0.1.0".into(),
        containers: vec![
            format!("bottle-{slug}-bundle"),
            format!("bottle-{slug}-agent"),
        ],
        networks: vec![format!("bottle-{slug}-int"), format!("bottle-{slug}-ext")],
        bundle: None,
        agent_container: Some(ContainerInfo {
            name: format!("bottle-{slug}-agent"),
            state: ContainerState::parse(agent),
            networks,
            env: vec![
                format!("BOTTLE_SLUG={slug}"),
                "HTTPS_PROXY=http://gateway:8888".into(),
                "GITHUB_TOKEN=ghp_not_a_real_one".into(),
            ],
            ..Default::default()
        }),
    }
}

fn app() -> App {
    let mut app = App::new(
        Keymap::new(&BTreeMap::new()),
        Theme { color: true },
        vec![sl("demo"), sl("review")],
    );
    app.now = NOW;
    let mut smol = bottle("vm", "running", "running", None, &[("gateway", "healthy")]);
    smol.backend = "smolvm".into();
    smol.alias = Some("127.0.0.16".into());
    let mut young = bottle(
        "fresh",
        "running",
        "running",
        None,
        &[("gateway", "starting"), ("supervise", "starting")],
    );
    young.created = "2026-11-28T01:59:30Z".into();
    let _ = app.on_msg(Msg::Bottles(vec![
        bottle(
            "alpha",
            "running",
            "running",
            None,
            &[("gateway", "healthy"), ("supervise", "healthy")],
        ),
        bottle(
            "beta",
            "exited",
            "exited",
            Some(137),
            &[("gateway", "healthy")],
        ),
        bottle(
            "gamma",
            "broken",
            "missing",
            None,
            &[("gateway", "unhealthy")],
        ),
        young,
        smol,
    ]));
    for (slug, status, since, reason) in [
        ("alpha", AgentStatus::Working, "2026-11-28T01:58:00Z", None),
        (
            "vm",
            AgentStatus::NeedsYou,
            "2026-11-28T01:45:00Z",
            Some("Claude needs your permission to use Bash"),
        ),
        (
            "beta",
            AgentStatus::Exited,
            "2026-11-28T01:30:00Z",
            Some("exit code 137"),
        ),
        ("fresh", AgentStatus::Idle, "2026-11-28T01:59:40Z", None),
    ] {
        let _ = app.on_msg(Msg::Activity {
            slug: sl(slug),
            activity: activity(status, since, reason),
            news: false,
        });
    }
    for (slug, line) in [
        (
            "alpha",
            r#"{"time":"2026-11-28T01:20:00Z","daemon":"gateway","msg":"request","decision":"allow","host":"api.anthropic.com","status":200}"#,
        ),
        (
            "alpha",
            r#"{"time":"2026-11-28T01:20:01Z","daemon":"gateway","msg":"request","decision":"deny","host":"evil.example","reason":"not on this bottle's allowlist"}"#,
        ),
        (
            "beta",
            r#"{"time":"2026-11-28T01:20:02Z","daemon":"init","msg":"daemon started"}"#,
        ),
        (
            "alpha",
            r#"{"time":"2026-11-28T01:20:03Z","daemon":"gateway","msg":"request","decision":"deny","host":"169.254.169.254","reason":"metadata address"}"#,
        ),
    ] {
        let _ = app.on_msg(Msg::Log {
            slug: sl(slug),
            line: Box::new(LogLine::parse(line)),
        });
    }
    let _ = app.on_msg(Msg::Plan {
        slug: sl("alpha"),
        lines: vec![
            ("image".into(), "bottle-agent:latest".into()),
            ("allow".into(), "api.anthropic.com, *.github.com".into()),
            ("routes".into(), "api.github.com".into()),
        ],
    });
    let long = format!(
        "{{\"daemon\":\"gateway\",\"msg\":\"{}\"}}",
        "x".repeat(90_000)
    );
    let _ = app.on_msg(Msg::Log {
        slug: sl("alpha"),
        line: Box::new(LogLine::parse(&long)),
    });
    let _ = app.on_msg(Msg::Approvals(vec![
        pending(
            "alpha",
            "0a1b2c3d",
            "push branch bottle/fix-login to origin",
            "One commit: fixes the login redirect loop; tests pass.\nNothing else changes.",
            180,
        ),
        pending("alpha", "4e5f6a7b", "run the database migration", "", 60),
        pending(
            "gamma",
            "8c9d0e1f",
            "delete \u{1b}[2J/workspace/tmp",
            "",
            20,
        ),
    ]));
    app
}

fn activity(status: AgentStatus, since: &str, reason: Option<&str>) -> Activity {
    Activity {
        status,
        since: since.into(),
        reason: reason.map(str::to_owned),
        guessed: false,
    }
}

/// A request made `ago` seconds before NOW that expires 10 minutes after it was made.
fn pending(slug: &str, id: &str, action: &str, details: &str, ago: i64) -> Pending {
    let created = time::OffsetDateTime::from_unix_timestamp(NOW - ago)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    Pending {
        slug: slug.parse().expect("slug"),
        request: Request {
            id: id.parse().expect("id"),
            action: action.into(),
            details: details.into(),
            created,
            expires_ms: u64::try_from(NOW - ago + 600).expect("positive") * 1000,
        },
    }
}

fn snap(name: &str, app: &App) {
    for (w, h) in SIZES {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        term.draw(|f| views::draw(f, app)).expect("draw");
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), term.backend());
    }
}

fn logs(slug: Option<&str>) -> LogsView {
    LogsView::following(slug.map(sl))
}

#[test]
fn table_with_detail_for_bottles_in_every_state() {
    snap("table", &app());
}

/// A queue that cannot be read is said in the header (the pending count may be stale) until
/// a read works again.
#[test]
fn an_unreadable_queue_is_shown_until_it_reads_again() {
    let header = |a: &App| {
        let mut term = Terminal::new(TestBackend::new(200, 40)).expect("terminal");
        term.draw(|f| views::draw(f, a)).expect("draw");
        let buf = term.backend().buffer().clone();
        (0..buf.area.width)
            .map(|x| buf[(x, 0)].symbol().to_owned())
            .collect::<String>()
    };
    let mut a = app();
    let _ = a.on_msg(Msg::QueueTrouble(Some(
        "cannot read the approvals queues: permission denied".into(),
    )));
    let top = header(&a);
    assert!(
        top.contains("cannot read the approvals queues: permission denied")
            && top.contains("may be stale"),
        "{top}"
    );
    let _ = a.on_msg(Msg::QueueTrouble(None));
    assert!(!header(&a).contains("cannot read"), "{}", header(&a));
}

/// A narrow table of bottles without aliases gives up the alias column (only dashes) before
/// the backend; with an alias shown, the backend goes first.
#[test]
fn a_narrow_table_drops_an_alias_column_of_dashes_before_the_backend() {
    let screen = |a: &App| {
        let mut term = Terminal::new(TestBackend::new(109, 20)).expect("terminal");
        term.draw(|f| views::draw(f, a)).expect("draw");
        let buf = term.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut docker_only = app();
    docker_only.bottles.retain(|b| b.alias.is_none());
    let text = screen(&docker_only);
    assert!(
        text.contains("BACKEND") && !text.contains("ALIAS"),
        "{text}"
    );
    let text = screen(&app());
    assert!(
        text.contains("ALIAS") && !text.contains("BACKEND"),
        "{text}"
    );
}

#[test]
fn selection_moves_marks_and_sorts() {
    let mut a = app();
    for key in ['j', 'j', ' ', 'j', ' ', 's'] {
        let _ = a.on_key(&crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char(key),
        ));
    }
    assert_eq!(a.marked.len(), 2);
    snap("table_marked_sorted", &a);
}

#[test]
fn filter_line_and_an_empty_result() {
    let mut a = app();
    a.mode = Mode::Filter;
    a.filter = "zzz".into();
    snap("filter_empty", &a);
    a.filter = "al".into();
    snap("filter_alpha", &a);
}

#[test]
fn no_bottles_and_the_engine_down() {
    let mut a = App::new(
        Keymap::new(&BTreeMap::new()),
        Theme { color: true },
        vec![sl("demo")],
    );
    a.now = NOW;
    a.engine = Engine::Down("cannot reach the Docker engine at unix:///var/run/docker.sock".into());
    snap("engine_down", &a);
}

#[test]
fn help_overlay() {
    let mut a = app();
    a.mode = Mode::Help;
    snap("help", &a);
}

#[test]
fn approvals_dialog_and_a_denial_being_typed() {
    let mut a = app();
    a.mode = Mode::Approvals(ApprovalsView::default());
    snap("approvals", &a);
    a.mode = Mode::Approvals(ApprovalsView {
        selected: 1,
        reason: Some("not on a Friday".into()),
        decision: Some(Decision::Denied),
    });
    snap("approvals_deny_reason", &a);
    a.approvals.clear();
    let _ = a.on_msg(Msg::UnreadableRequests(vec![
        "/state/bottles/alpha/queue/requests/deadbeef.json".into(),
    ]));
    a.mode = Mode::Approvals(ApprovalsView::default());
    snap("approvals_empty", &a);
}

/// A notice filed `ago` seconds before NOW.
fn notice(slug: &str, id: &str, message: &str, ago: i64) -> Unread {
    Unread {
        slug: slug.parse().expect("slug"),
        notice: Notice {
            id: id.parse().expect("id"),
            message: message.into(),
            created: time::OffsetDateTime::from_unix_timestamp(NOW - ago)
                .expect("time")
                .format(&time::format_description::well_known::Rfc3339)
                .expect("format"),
        },
    }
}

/// Ten notices, newest first: the header counts them, the dialog shows eight and says how
/// many more; an escape sequence in one stays text on one line.
fn with_notices(mut a: App) -> App {
    let mut unread = vec![
        notice("alpha", "00000001", "tests are green on bottle/x", 30),
        notice(
            "gamma",
            "00000002",
            "need a token for\n\u{1b}[2Jstaging",
            200,
        ),
    ];
    for i in 3..=10 {
        unread.push(notice(
            "alpha",
            &format!("0000000{}", i % 10),
            &format!("step {i} done"),
            300 * i,
        ));
    }
    let _ = a.on_msg(Msg::Notices(unread));
    a
}

/// A request that arrives while the dashboard runs rings the terminal's bell, once; those
/// already waiting at start do not, nor do any with `[dashboard] bell = false`.
#[test]
fn a_new_request_rings_the_bell_once() {
    let mut a = app();
    assert!(!a.ring, "requests waiting at start ring no bell");
    let before = a.approvals.clone();
    let mut more = before.clone();
    more.push(pending("beta", "99aa88bb", "push to bottle/x", "", 1));
    let _ = a.on_msg(Msg::Approvals(more.clone()));
    assert!(std::mem::take(&mut a.ring), "a new request rings");
    let _ = a.on_msg(Msg::Approvals(more.clone()));
    assert!(!a.ring, "the same list again does not");
    // Answered here (gone from the list), then listed once more before the answer was seen.
    let _ = a.on_msg(Msg::Approvals(before));
    let _ = a.on_msg(Msg::Approvals(more.clone()));
    assert!(!a.ring, "a request rings once");
    a.bell = false;
    more.push(pending("gamma", "77cc66dd", "rm -rf build", "", 1));
    let _ = a.on_msg(Msg::Approvals(more));
    assert!(!a.ring, "no bell when it is off");
}

#[test]
fn agents_needing_you_sort_first_count_in_the_header_and_a_live_change_rings() {
    let mut a = app();
    let order: Vec<String> = a.visible().iter().map(|b| b.slug.to_string()).collect();
    // needs-you, working, idle, exited; then the agent that has said nothing.
    assert_eq!(order, ["vm", "alpha", "fresh", "beta", "gamma"]);
    assert_eq!(a.needing_you(), 1);
    assert!(!a.ring, "statuses found at start ring no bell");
    let _ = a.on_msg(Msg::Activity {
        slug: sl("alpha"),
        activity: activity(AgentStatus::Working, "2026-11-28T01:59:00Z", None),
        news: true,
    });
    assert!(!a.ring, "still working: nothing to tell");
    let _ = a.on_msg(Msg::Activity {
        slug: sl("alpha"),
        activity: activity(
            AgentStatus::NeedsYou,
            "2026-11-28T01:59:30Z",
            Some("Claude needs your permission to use Write"),
        ),
        news: true,
    });
    assert!(std::mem::take(&mut a.ring), "a change into needs-you rings");
    assert_eq!(a.needing_you(), 2);
    a.selected = Some(sl("alpha"));
    snap("two_agents_need_you", &a);
    let _ = a.on_msg(Msg::Activity {
        slug: sl("alpha"),
        activity: activity(AgentStatus::Idle, "2026-11-28T01:59:50Z", None),
        news: true,
    });
    assert!(std::mem::take(&mut a.ring), "a change into idle rings");
    // An idle read from a quiet terminal does not: a shell pauses whenever its user does.
    let _ = a.on_msg(Msg::Activity {
        slug: sl("fresh"),
        activity: activity(AgentStatus::Working, "2026-11-28T01:59:51Z", None),
        news: true,
    });
    let _ = a.on_msg(Msg::Activity {
        slug: sl("fresh"),
        activity: Activity {
            guessed: true,
            ..activity(AgentStatus::Idle, "2026-11-28T01:59:55Z", None)
        },
        news: true,
    });
    assert!(!a.ring, "a guessed idle rings no bell");
    // The filter finds status words too.
    a.filter = "needs".into();
    let only: Vec<String> = a.visible().iter().map(|b| b.slug.to_string()).collect();
    assert_eq!(only, ["vm"]);
}

#[test]
fn sparklines_scale_to_the_largest_and_show_anything_above_nothing() {
    assert_eq!(views::spark(&[0, 1, 50, 100]), "▁▂▅█");
    assert_eq!(views::spark(&[0, 0]), "▁▁");
    assert_eq!(views::spark(&[]), "");
}

#[test]
fn a_burst_of_refusals_shows_red_in_the_rows_egress_and_usage_in_the_detail() {
    let mut a = app();
    a.selected = Some(sl("alpha"));
    // Ten minutes: a quiet past, then a burst of refusals this minute.
    let now = "2026-11-28T02:00:00Z";
    for i in 0..40 {
        let line = format!(
            r#"{{"time":"{now}","daemon":"gateway","msg":"request","decision":"deny","host":"h{i}.example","reason":"not on this bottle's allowlist"}}"#
        );
        let _ = a.on_msg(Msg::Log {
            slug: sl("alpha"),
            line: Box::new(LogLine::parse(&line)),
        });
    }
    let minutes = a
        .egress
        .get(&sl("alpha"))
        .expect("alpha's egress")
        .minutes(a.now);
    assert_eq!(
        minutes.last(),
        Some(&(40, 40)),
        "this minute: 40 requests, all refused"
    );
    for (cpu, mem) in [(5.0, 100u64), (97.0, 120), (96.4, 121)] {
        let _ = a.on_msg(Msg::Usage {
            slug: sl("alpha"),
            usage: bottle_tui::backend::docker::stats::Usage {
                cpu_percent: cpu,
                memory_bytes: mem << 20,
                memory_limit: 2048 << 20,
            },
        });
    }
    // A sample for a bottle no longer selected is not charted.
    let _ = a.on_msg(Msg::Usage {
        slug: sl("beta"),
        usage: bottle_tui::backend::docker::stats::Usage {
            cpu_percent: 1.0,
            memory_bytes: 1,
            memory_limit: 1,
        },
    });
    assert_eq!(a.usage.as_ref().map(|(_, s)| s.len()), Some(3));
    let mut term = Terminal::new(TestBackend::new(200, 40)).expect("terminal");
    term.draw(|f| views::draw(f, &a)).expect("draw");
    let buf = term.backend().buffer().clone();
    let rows: Vec<String> = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect()
        })
        .collect();
    let (y, row) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.contains("│  alpha"))
        .expect("alpha's row");
    let x = row
        .chars()
        .position(|c| c == '█')
        .expect("a full bar this minute");
    assert_eq!(
        buf[(u16::try_from(x).expect("x"), u16::try_from(y).expect("y"))].fg,
        a.theme.bad().fg.expect("a colour"),
        "a minute with refusals is red"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("cpu") && r.contains("▂██ 96%")),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r.contains("121 MiB of 2048 MiB")),
        "{rows:#?}"
    );
    snap("egress_and_usage", &a);
}

#[test]
fn the_status_column_colours_who_needs_you() {
    let a = app();
    let backend = TestBackend::new(160, 40);
    let mut term = Terminal::new(backend).expect("terminal");
    term.draw(|f| views::draw(f, &a)).expect("draw");
    let buf = term.backend().buffer().clone();
    let find = |word: &str| {
        (0..buf.area.height).find_map(|y| {
            let row: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect();
            row.find(word)
                .map(|i| (u16::try_from(row[..i].chars().count()).unwrap_or(0), y))
        })
    };
    let (x, y) = find("needs-you").expect("a needs-you cell");
    let (wx, wy) = find("working").expect("a working cell");
    assert_eq!(buf[(x, y)].fg, a.theme.bad().fg.expect("a colour"));
    assert_eq!(buf[(wx, wy)].fg, a.theme.good().fg.expect("a colour"));
}

#[test]
fn the_detail_panel_shows_the_bottles_history() {
    let mut a = app();
    let at = |ago: i64| {
        time::OffsetDateTime::from_unix_timestamp(NOW - ago)
            .expect("time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let _ = a.on_msg(Msg::History {
        slug: sl("alpha"),
        lines: vec![
            (at(20), "gateway healthy → unhealthy".into()),
            (at(400), "agent exited with code 0".into()),
            (at(2700), "launched from demo".into()),
        ],
    });
    snap("detail_history", &a);
}

#[test]
fn notices_in_the_header_and_the_approvals_dialog() {
    let mut a = with_notices(app());
    snap("notices_table", &a);
    a.mode = Mode::Approvals(ApprovalsView::default());
    snap("approvals_with_notices", &a);
}

#[test]
fn r_in_the_approvals_dialog_marks_the_notices_shown_read() {
    let mut a = with_notices(app());
    press(&mut a, KeyCode::Char('a'));
    let cmds = press(&mut a, KeyCode::Char('r'));
    let [Command::MarkRead(read)] = cmds.as_slice() else {
        panic!("expected one MarkRead, got {cmds:?}");
    };
    // The eight shown, not the two the operator never saw.
    assert_eq!(read.len(), 8);
    assert_eq!(
        (read[0].0.as_str(), read[0].1.as_str()),
        ("alpha", "00000001")
    );
    assert!(
        matches!(a.mode, Mode::Approvals(_)),
        "the dialog stays open"
    );
    // They stay in view until the worker finds them moved: a failure loses nothing.
    let _ = a.on_msg(Msg::MarkedRead(Err("permission denied".into())));
    assert_eq!(a.notices.len(), 10);
    assert_eq!(
        a.status.as_deref(),
        Some("marking notices read failed: permission denied")
    );
    let _ = a.on_msg(Msg::MarkedRead(Ok(8)));
    assert_eq!(a.status.as_deref(), Some("8 notices marked read"));
    let left = a.notices.split_off(8);
    let _ = a.on_msg(Msg::Notices(left));
    let cmds = press(&mut a, KeyCode::Char('r'));
    assert!(matches!(cmds.as_slice(), [Command::MarkRead(r)] if r.len() == 2));
    let _ = a.on_msg(Msg::Notices(Vec::new()));
    // Nothing left to mark: `r` does nothing.
    assert!(press(&mut a, KeyCode::Char('r')).is_empty());
}

fn press(a: &mut App, code: KeyCode) -> Vec<Command> {
    commands(a.on_key(&KeyEvent::new(code, KeyModifiers::NONE)))
}

/// The engine commands among `effects`, which must hold nothing else.
fn commands(effects: Vec<Effect>) -> Vec<Command> {
    effects
        .into_iter()
        .map(|e| match e {
            Effect::Engine(c) => c,
            other => panic!("expected only engine commands, got {other:?}"),
        })
        .collect()
}

#[test]
fn approvals_keys_answer_the_selected_request() {
    let mut a = app();
    assert!(press(&mut a, KeyCode::Char('a')).is_empty());
    assert!(matches!(a.mode, Mode::Approvals(_)));
    // move to the second, deny it with a reason
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Char('n'));
    for c in "later".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    let cmds = press(&mut a, KeyCode::Enter);
    assert_eq!(
        cmds,
        vec![Command::Answer {
            slug: sl("alpha"),
            id: rid("4e5f6a7b"),
            decision: Decision::Denied,
            reason: Some("later".into()),
        }]
    );
    assert_eq!(a.pending_approvals(), 2, "answered requests leave the list");
    // `y` approves the selected one at once, without a reason
    press(&mut a, KeyCode::Up);
    let cmds = press(&mut a, KeyCode::Char('y'));
    assert_eq!(
        cmds,
        vec![Command::Answer {
            slug: sl("alpha"),
            id: rid("0a1b2c3d"),
            decision: Decision::Approved,
            reason: None,
        }]
    );
    // esc while typing cancels the reason, not the dialog; esc again closes
    press(&mut a, KeyCode::Char('n'));
    press(&mut a, KeyCode::Esc);
    assert!(matches!(
        a.mode,
        Mode::Approvals(ApprovalsView { reason: None, .. })
    ));
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Table);
    assert_eq!(a.pending_of("gamma"), 1);
}

#[test]
fn confirm_kill_of_several() {
    let mut a = app();
    a.mode = Mode::ConfirmKill(vec![sl("alpha"), sl("gamma")]);
    snap("confirm_kill", &a);
}

#[test]
fn launch_dialog_picking_launching_and_failing() {
    let mut a = app();
    let form = LaunchForm {
        choices: vec![sl("demo"), sl("review")],
        selected: 1,
        name: "rev-2".into(),
        naming: true,
        launching: None,
        steps: vec![],
        error: None,
    };
    a.mode = Mode::Launch(form.clone());
    snap("launch_pick", &a);
    a.mode = Mode::Launch(LaunchForm {
        launching: Some(sl("rev-2")),
        steps: vec![
            "prepare".into(),
            "network-internal".into(),
            "bundle-start".into(),
        ],
        naming: false,
        ..form.clone()
    });
    snap("launch_progress", &a);
    a.mode = Mode::Launch(LaunchForm {
        error: Some(
            "image bottle-agent:latest is not present; run `bottle-tui image build`".into(),
        ),
        naming: false,
        ..form
    });
    snap("launch_error", &a);
}

#[test]
fn logs_merged_single_denied_and_searched() {
    let mut a = app();
    a.mode = Mode::Logs(logs(None));
    snap("logs_merged", &a);
    let mut v = logs(Some("alpha"));
    v.deny_only = true;
    v.search = "evil".into();
    a.mode = Mode::Logs(v);
    snap("logs_alpha_denied_search", &a);
    assert_eq!(a.blocked("alpha"), 2);
}

#[test]
fn alias_allocations() {
    let mut a = app();
    a.mode = Mode::Aliases;
    snap("aliases", &a);
}

#[tokio::test]
async fn the_agent_pane_with_its_detach_key_in_the_border() {
    let mut a = app();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cmd = AttachCommand {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            "printf 'agent$ echo hi\\r\\nhi\\r\\nagent$ '; sleep 5".into(),
        ],
    };
    let pane = Pane::spawn(7, &cmd, PaneSize { rows: 20, cols: 90 }, tx).expect("pane");
    loop {
        if let Some(PaneEvent::Output(_)) = rx.recv().await {
            if pane
                .screen()
                .screen()
                .contents()
                .contains("agent$ echo hi\nhi\nagent$")
            {
                break;
            }
        }
    }
    a.pane = Some(PaneSlot {
        slug: sl("alpha"),
        pane,
        zoomed: false,
    });
    a.mode = Mode::Pane;
    snap("pane", &a);
    if let Some(p) = a.pane.as_mut() {
        p.zoomed = true;
    }
    snap("pane_zoomed", &a);
}

#[test]
fn every_view_draws_in_a_tiny_terminal_without_panicking() {
    let modes = vec![
        Mode::Table,
        Mode::Filter,
        Mode::Help,
        Mode::ConfirmKill(vec![sl("alpha")]),
        Mode::Launch(LaunchForm {
            choices: vec![sl("demo")],
            selected: 0,
            name: String::new(),
            naming: false,
            launching: Some(sl("demo")),
            steps: vec!["prepare".into()],
            error: Some("boom".into()),
        }),
        Mode::Logs(logs(None)),
        Mode::Aliases,
        Mode::Approvals(ApprovalsView {
            selected: 2,
            reason: Some("x".repeat(300)),
            decision: Some(Decision::Denied),
        }),
    ];
    for mode in modes {
        let mut a = app();
        a.mode = mode.clone();
        for (w, h) in [(1, 1), (2, 2), (20, 5), (30, 8), (60, 12)] {
            let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
            term.draw(|f| views::draw(f, &a))
                .unwrap_or_else(|e| panic!("{mode:?} at {w}x{h}: {e}"));
        }
    }
}

#[test]
fn first_run_banner_and_the_setup_dialog_check_build_and_finish() {
    let mut a = app();
    a.banner = Some(
        "no config file: using the built-in default (bottle `claude`, credential from $CLAUDE_CODE_OAUTH_TOKEN); `bottle-tui config init` writes one to ~/.config/bottle-tui/config.toml".into(),
    );
    snap("first_run_banner", &a);

    // The first check that finds something missing opens the dialog.
    let needs = vec![
        "bottle-bundle:latest (gateway, git gate, supervise)".to_owned(),
        "bottle-agent:latest (Claude Code 2.1.334)".to_owned(),
    ];
    assert!(a.on_msg(Msg::Setup(needs.clone())).is_empty());
    assert_eq!(a.mode, Mode::Setup);
    snap("setup_missing", &a);

    // b builds; progress lines show; a second b while building does nothing.
    assert_eq!(press(&mut a, KeyCode::Char('b')), vec![Command::BuildSetup]);
    assert!(press(&mut a, KeyCode::Char('b')).is_empty());
    for line in [
        "Claude Code 2.1.334: downloading 183 MiB",
        "Claude Code 2.1.334: verified sha512",
        "building bottle-agent:latest ...",
        "  Step 3/6 : ADD claude-code.archive /opt/claude-code/",
    ] {
        assert!(a.on_msg(Msg::SetupLine(line.into())).is_empty());
    }
    snap("setup_building", &a);

    // Esc hides the dialog while the build goes on; the header still says what is missing.
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Table);
    assert!(a.setup.building);
    snap("setup_hidden_while_building", &a);

    // A failure says why and keeps the dialog's lines; success re-checks and says so.
    assert_eq!(
        commands(a.on_msg(Msg::SetupDone(Some(
            "cannot reach registry.npmjs.org".into()
        )))),
        vec![Command::CheckSetup]
    );
    assert!(!a.setup.building);
    press(&mut a, KeyCode::Char('b'));
    assert_eq!(a.mode, Mode::Setup);
    assert_eq!(
        commands(a.on_msg(Msg::SetupDone(None))),
        vec![Command::CheckSetup]
    );
    assert_eq!(a.mode, Mode::Table);
    assert!(a.on_msg(Msg::Setup(Vec::new())).is_empty());
    assert_eq!(
        a.mode,
        Mode::Table,
        "a later check never reopens the dialog"
    );
    assert!(a.setup.needs.is_empty());
}

/// Keys act through the one table: with `launch = "s"` and sort moved to `o`, `s` opens the
/// launch dialog and does not also cycle the sort (each key does one thing); the commands
/// the table's keys send are the ones the worker must run.
#[test]
fn keys_act_once_through_the_table_and_send_the_right_commands() {
    let mut over = BTreeMap::new();
    over.insert("launch".to_owned(), KeySpec::parse("s").expect("key"));
    over.insert("sort".to_owned(), KeySpec::parse("o").expect("key"));
    let mut a = app();
    a.keymap = Keymap::new(&over);
    let sort = a.sort;
    assert!(press(&mut a, KeyCode::Char('s')).is_empty());
    assert!(matches!(a.mode, Mode::Launch(_)), "{:?}", a.mode);
    assert_eq!(a.sort, sort, "s also cycled the sort");
    press(&mut a, KeyCode::Esc);
    assert!(matches!(a.mode, Mode::Table));
    press(&mut a, KeyCode::Char('o'));
    assert_ne!(a.sort, sort, "o sorts");

    // enter on a running agent attaches to it (no preview); x, then y, kills the selection.
    let selected = a.selected.clone().expect("a selection");
    assert_eq!(
        press(&mut a, KeyCode::Enter),
        vec![Command::Attach {
            slug: selected.clone(),
            preview: false
        }]
    );
    let mut a = app();
    let selected = a.selected.clone().expect("a selection");
    assert!(press(&mut a, KeyCode::Char('x')).is_empty());
    assert!(matches!(a.mode, Mode::ConfirmKill(_)));
    assert_eq!(
        press(&mut a, KeyCode::Char('y')),
        vec![Command::Kill(vec![selected])]
    );
}

/// App does no I/O: a key in the agent's pane, saving the logs and a session's address come
/// back as effects for the loop, and the loop's report of how they went lands in the state.
#[test]
fn keys_and_attach_answers_come_back_as_effects_for_the_loop() {
    let mut a = app();
    let slug = a.selected.clone().expect("a selection");
    let attach = AttachCommand {
        program: "docker".into(),
        args: vec!["exec".into(), "-it".into()],
    };
    // The pane's address opens the pane (zoomed when asked for with the zoom key).
    a.pending_zoom = true;
    assert_eq!(
        a.on_msg(Msg::Attach {
            slug: slug.clone(),
            preview: false,
            target: Ok(attach.clone()),
        }),
        vec![Effect::OpenPane {
            slug: slug.clone(),
            preview: false,
            zoomed: true,
            command: attach.clone(),
        }]
    );
    // A preview whose row is no longer selected is not opened; a failed attach is said.
    assert!(
        a.on_msg(Msg::Attach {
            slug: sl("not-selected"),
            preview: true,
            target: Ok(attach.clone()),
        })
        .is_empty()
    );
    assert!(
        a.on_msg(Msg::Attach {
            slug: slug.clone(),
            preview: false,
            target: Err("the agent has exited".into()),
        })
        .is_empty()
    );
    assert_eq!(
        a.status.as_deref(),
        Some(format!("{slug}: the agent has exited").as_str())
    );
    a.pane_opened(
        slug.clone(),
        false,
        false,
        Err(color_eyre::eyre::eyre!("cannot open a PTY")),
    );
    assert_eq!(
        a.status.as_deref(),
        Some(format!("{slug}: cannot open a PTY").as_str())
    );
    assert!(
        matches!(a.mode, Mode::Table),
        "a failed pane leaves the table"
    );

    // In the pane every key but detach is the agent's, handed to the loop to write.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let pane = Pane::spawn(
        9,
        &AttachCommand {
            program: "cat".into(),
            args: Vec::new(),
        },
        PaneSize { rows: 5, cols: 20 },
        tx,
    );
    a.pane_opened(slug.clone(), false, false, pane);
    assert!(matches!(a.mode, Mode::Pane));
    let key = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE);
    assert_eq!(a.on_key(&key), vec![Effect::PaneKey(key)]);

    // `s` in the logs view asks for the file; the loop's answer is shown.
    let mut a = app();
    a.save_dir = std::path::PathBuf::from("/saved");
    a.mode = Mode::Logs(logs(None));
    let effects = a.on_key(&key);
    let [Effect::Save { path, text }] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(
        path,
        &std::path::PathBuf::from(format!("/saved/bottle-logs-all-{NOW}.log"))
    );
    assert!(text.lines().count() >= 2, "{text}");
    assert!(
        a.status.is_none(),
        "nothing is written or said before the loop writes"
    );
    a.saved(Err(std::io::Error::other("disk full")));
    assert_eq!(
        a.status.as_deref(),
        Some("could not save the log: disk full")
    );
}
