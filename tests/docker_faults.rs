//! Launch is all-or-nothing: a failure injected at every step (a real failure inside the real
//! engine run, not a mock engine) leaves zero resources; so does an interrupted launch once
//! killed; bad inputs fail clearly and leave nothing.

mod common;
use common::docker::{Bottle, docker_ok, resources_of, scratch_with, unique_slug, up};
use common::{stderr, stdout};
use std::time::{Duration, Instant};

const WITH_EVERYTHING: &str = "\n[[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"EXAMPLE_TOKEN\"\n\
    [[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n";

fn fail_at(step: &str) {
    let scratch = scratch_with(WITH_EVERYTHING);
    let slug = unique_slug("f");
    let out = up(
        &scratch,
        &["demo", "--name", &slug],
        &[
            ("EXAMPLE_TOKEN", "tok-fault"),
            (bottle_tui::engine::launch::FAIL_AT_ENV, step),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{step}: {err}");
    assert!(
        err.contains(&format!("injected failure at step `{step}`")),
        "{step}: {err}"
    );
    assert!(
        err.contains("everything it created was removed"),
        "{step}: {err}"
    );
    assert_eq!(
        resources_of(&slug),
        Vec::<String>::new(),
        "leftovers after failing at {step}"
    );
    let token = scratch
        .state_dir()
        .join(format!("bottles/{slug}/secrets/route-0.token"));
    assert!(!token.exists(), "{step}: the token file was left behind");
}

macro_rules! fault_tests {
    ($($name:ident => $step:expr,)+) => {
        $(#[test] fn $name() { fail_at($step); })+

        #[test]
        fn every_launch_step_has_a_fault_test() {
            let covered = [$($step),+];
            assert_eq!(covered.as_slice(), bottle_tui::engine::launch::STEPS);
        }
    };
}

fault_tests! {
    fail_at_check_images => "check-images",
    fail_at_read_tokens => "read-tokens",
    fail_at_network_internal => "network-internal",
    fail_at_network_egress => "network-egress",
    fail_at_bundle_create => "bundle-create",
    fail_at_bundle_connect_egress => "bundle-connect-egress",
    fail_at_bundle_start => "bundle-start",
    fail_at_pipelock_start => "pipelock-start",
    fail_at_bundle_address => "bundle-address",
    fail_at_agent_create => "agent-create",
    fail_at_agent_copy_sidecar => "agent-copy-sidecar",
    fail_at_agent_start => "agent-start",
    fail_at_agent_seal => "agent-seal",
    fail_at_provision => "provision",
}

/// Starts `up` and waits until its bundle container exists, i.e. launch is midway.
fn up_until_bundle_exists(scratch: &common::Scratch, slug: &str) -> std::process::Child {
    let mut child = scratch
        .command(&["up", "demo", "--name", slug])
        .env("EXAMPLE_TOKEN", "tok-interrupt")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn up");
    let deadline = Instant::now() + Duration::from_secs(30);
    let bundle = format!("label=bottle.slug={slug}");
    while Instant::now() < deadline {
        let found = docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &bundle,
            "--filter",
            "label=bottle.role=bundle",
        ]);
        if !found.trim().is_empty() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the bundle of {slug} never appeared");
}

#[test]
fn a_launch_killed_midway_leaves_resources_that_kill_removes() {
    let scratch = scratch_with(WITH_EVERYTHING);
    let slug = unique_slug("sigkill");
    let mut child = up_until_bundle_exists(&scratch, &slug);
    child.kill().expect("SIGKILL up");
    let _ = child.wait();
    assert!(
        !resources_of(&slug).is_empty(),
        "the launch was cut before it made anything"
    );
    let out = scratch.run(&["kill", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(resources_of(&slug), Vec::<String>::new());
    assert!(
        !scratch
            .state_dir()
            .join(format!("bottles/{slug}/secrets/route-0.token"))
            .exists()
    );
}

#[test]
fn ctrl_c_during_launch_rolls_everything_back() {
    let scratch = scratch_with(WITH_EVERYTHING);
    let slug = unique_slug("sigint");
    let child = up_until_bundle_exists(&scratch, &slug);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("interrupted") && err.contains("everything it created was removed"),
        "{err}"
    );
    assert_eq!(resources_of(&slug), Vec::<String>::new());
}

#[test]
fn a_missing_image_is_a_clear_error_and_nothing_is_made() {
    let scratch = common::Scratch::new();
    scratch.write_config(
        &common::docker::config("").replace(common::docker::TEST_AGENT, "bottle-missing:nope"),
    );
    let slug = unique_slug("noimg");
    let out = up(&scratch, &["demo", "--name", &slug], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("image bottle-missing:nope is not present"),
        "{err}"
    );
    assert!(err.contains("never pull"), "{err}");
    assert_eq!(resources_of(&slug), Vec::<String>::new());
}

#[test]
fn a_name_clash_is_refused_and_the_running_bottle_is_untouched() {
    let scratch = scratch_with("");
    let slug = unique_slug("clash");
    let bottle = Bottle::up(&scratch, &slug, &[]);
    let ids = |s: &str| {
        docker_ok(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=bottle.slug={s}"),
        ])
    };
    let before = ids(&slug);
    let plan_before = std::fs::read(
        scratch
            .state_dir()
            .join(format!("bottles/{slug}/plan.json")),
    )
    .expect("plan");

    let out = up(&scratch, &["demo", "--name", &slug], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("a bottle named `{slug}` already exists")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ids(&slug),
        before,
        "the running bottle's containers changed"
    );
    let plan_after = std::fs::read(
        scratch
            .state_dir()
            .join(format!("bottles/{slug}/plan.json")),
    )
    .expect("plan");
    assert_eq!(plan_before, plan_after, "its state dir was re-rendered");
    let ls = scratch.run(&["ls", "--json"]);
    assert!(stdout(&ls).contains(&format!("\"slug\": \"{slug}\"")));
    drop(bottle);
}

#[test]
fn an_unreachable_engine_is_a_clear_error() {
    let scratch = scratch_with("");
    let slug = unique_slug("noeng");
    let out = up(
        &scratch,
        &["demo", "--name", &slug],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert_eq!(resources_of(&slug), Vec::<String>::new());
    for cmd in [&["ls"][..], &["kill", "x"], &["exec", "x", "--", "true"]] {
        let out = scratch
            .command(cmd)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert!(
            stderr(&out).contains("cannot reach the Docker engine"),
            "{cmd:?}: {}",
            stderr(&out)
        );
    }
}
