//! The real token reaches the bundle as a 0600 file and nothing else: not the agent, not any
//! process's argv or environment (host or container, during launch and after), not
//! `docker inspect`, not the state dir beyond its own file — and kill removes that file.

mod common;
use common::docker::{Bottle, docker, docker_ok, scratch_with, unique_slug, up};
use common::{eventually, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn unique_token(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("REAL-{tag}-{}-{nanos}", std::process::id())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every host process (containers' included) whose environ or cmdline holds `token`.
fn procs_holding(token: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let entries = std::fs::read_dir("/proc").expect("/proc must be readable for this scan");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for file in ["environ", "cmdline"] {
            if let Ok(bytes) = std::fs::read(e.path().join(file)) {
                if contains(&bytes, token) {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    hits.push(format!("pid {name} ({}) {file}", comm.trim()));
                }
            }
        }
    }
    hits
}

fn files_holding(dir: &Path, token: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| contains(&b, token)) {
                hits.push(p);
            }
        }
    }
    hits
}

/// Files the agent's container added or changed, searched for `token`.
fn agent_files_holding(container: &str, token: &str) -> Vec<String> {
    let diff = docker_ok(&["diff", container]);
    let mut hits = Vec::new();
    for line in diff.lines() {
        let Some(path) = line.get(2..) else { continue };
        let out = docker(&["cp", &format!("{container}:{path}"), "-"]);
        if out.status.success() && contains(&out.stdout, token) {
            hits.push(path.to_owned());
        }
    }
    hits
}

/// The scans find what is there: a process planted with a marker in its environment and its
/// argv, and a file holding one, are found.
#[test]
fn the_secret_scans_find_a_planted_marker() {
    let marker = unique_token("control");
    let mut planted = std::process::Command::new("sleep")
        .arg("600")
        .env("PLANTED_MARKER", &marker)
        .spawn()
        .expect("sleep");
    // Until the child has exec'd, its /proc entry shows the parent's environment: wait for
    // the scan to name the planted pid itself, not for any count.
    let want = format!("pid {} ", planted.id());
    let by_env = eventually(
        "the scan finds the process planted with the marker in its environment",
        Duration::from_secs(30),
        || {
            let hits = procs_holding(&marker);
            hits.iter()
                .any(|h| h.starts_with(&want) && h.ends_with(" environ"))
                .then_some(hits)
        },
    );
    let _ = planted.kill();
    let _ = planted.wait();
    assert!(
        by_env.iter().all(|h| h.starts_with(&want)),
        "only the planted process holds the marker: {by_env:?}"
    );
    let mut planted = std::process::Command::new("sh")
        // A second command, so no shell can replace itself with `sleep` and drop the marker.
        .args(["-c", "sleep 600; :", &marker])
        .spawn()
        .expect("sh");
    let want = format!("pid {} ", planted.id());
    eventually(
        "the scan finds the process planted with the marker in its argv",
        Duration::from_secs(30),
        || {
            procs_holding(&marker)
                .iter()
                .any(|h| h.starts_with(&want) && h.ends_with(" cmdline"))
                .then_some(())
        },
    );
    let _ = planted.kill();
    let _ = planted.wait();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("deep")).expect("dir");
    std::fs::write(dir.path().join("deep/f"), format!("x{marker}y")).expect("file");
    assert_eq!(files_holding(dir.path(), &marker).len(), 1);
}

#[test]
fn a_file_sourced_token_is_only_in_its_0600_file_during_and_after_launch() {
    let token = unique_token("file");
    let scratch = scratch_with(
        "\n[[bottles.demo.routes]]\nhost = \"api.example.com\"\nplaceholder_env = \"EXAMPLE_TOKEN\"\ntoken_file = \"token.txt\"\n",
    );
    std::fs::write(scratch.path().join("token.txt"), format!("{token}\n")).expect("token file");
    std::fs::set_permissions(
        scratch.path().join("token.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    // Watch every process on the host while launch runs.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, token) = (done.clone(), token.clone());
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            let mut scans = 0;
            while !done.load(Ordering::SeqCst) {
                hits.extend(procs_holding(&token));
                scans += 1;
            }
            (hits, scans)
        })
    };
    let bottle = Bottle::up(&scratch, &unique_slug("tokf"), &[]);
    done.store(true, Ordering::SeqCst);
    let (hits, scans) = watcher.join().expect("watcher");
    assert!(
        scans > 3,
        "the watcher scanned the host only {scans} times during launch"
    );
    assert_eq!(
        hits,
        Vec::<String>::new(),
        "token in a process's argv or environment during launch"
    );
    assert_eq!(
        procs_holding(&token),
        Vec::<String>::new(),
        "token in a process after launch"
    );

    for c in [bottle.agent(), bottle.bundle()] {
        assert!(
            !docker_ok(&["inspect", &c]).contains(&token),
            "token in docker inspect of {c}"
        );
    }
    let state = scratch.state_dir().join(format!("bottles/{}", bottle.slug));
    let token_file = state.join("secrets/route-0.token");
    assert_eq!(
        files_holding(&scratch.state_dir(), &token),
        vec![token_file.clone()]
    );
    assert_eq!(
        std::fs::metadata(&token_file)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // The bundle has it, 0600, byte for byte; the agent has no trace of it.
    let in_bundle = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "stat",
        "-c",
        "%a",
        "/run/bottle/secrets/route-0.token",
    ]);
    assert_eq!(in_bundle.trim(), "600");
    let bundle_copy = docker(&[
        "exec",
        &bottle.bundle(),
        "cat",
        "/run/bottle/secrets/route-0.token",
    ]);
    assert_eq!(bundle_copy.stdout, token.as_bytes());
    assert_eq!(
        agent_files_holding(&bottle.agent(), &token),
        Vec::<String>::new()
    );
    let out = bottle.sh("ls /run/bottle 2>&1; env");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));

    let out = scratch.run(&["kill", &bottle.slug]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!token_file.exists(), "kill removes the token file");
    assert_eq!(
        files_holding(&scratch.state_dir(), &token),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn an_env_sourced_token_never_reaches_either_container() {
    let token = unique_token("env");
    let scratch = scratch_with(
        "\n[[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"EXAMPLE_TOKEN\"\n",
    );
    let bottle = Bottle::up(&scratch, &unique_slug("toke"), &[("EXAMPLE_TOKEN", &token)]);
    // `up` has exited: no process on the host or in either container holds it any more.
    assert_eq!(procs_holding(&token), Vec::<String>::new());
    for c in [bottle.agent(), bottle.bundle()] {
        assert!(
            !docker_ok(&["inspect", &c]).contains(&token),
            "token in docker inspect of {c}"
        );
    }
    let env = docker_ok(&["exec", &bottle.agent(), "env"]);
    let placeholder = env
        .lines()
        .find_map(|l| l.strip_prefix("EXAMPLE_TOKEN="))
        .expect("the agent holds a placeholder in EXAMPLE_TOKEN");
    assert!(placeholder.starts_with("bottle-placeholder-") && placeholder != token);
    assert_eq!(
        agent_files_holding(&bottle.agent(), &token),
        Vec::<String>::new()
    );
    let logs = scratch.state_dir().join("logs");
    assert_eq!(
        files_holding(&logs, &token),
        Vec::<std::path::PathBuf>::new(),
        "token in our logs"
    );
}

#[test]
fn a_missing_token_source_fails_before_anything_is_created() {
    let scratch = scratch_with(
        "\n[[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"BOTTLE_TEST_UNSET_TOKEN\"\n",
    );
    let slug = unique_slug("notok");
    let out = up(&scratch, &["demo", "--name", &slug], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("$BOTTLE_TEST_UNSET_TOKEN is not set"), "{err}");
    assert!(err.contains("route api.example.com"), "{err}");
    assert_eq!(common::docker::resources_of(&slug), Vec::<String>::new());
    assert!(
        !scratch
            .state_dir()
            .join(format!("bottles/{slug}/secrets/route-0.token"))
            .exists()
    );
}

#[test]
fn inside_a_bottle_the_routed_host_gets_the_real_token_and_the_agent_only_the_placeholder() {
    let token = unique_token("inject");
    let scratch = common::Scratch::new();
    common::pki::origin(scratch.path(), "secure.test");
    scratch.write_config(&common::docker::config("").replace(
        "allow = [\"api.example.com\"]",
        "allow = [\"secure.test\"]\nallow_private = [\"secure.test:8443\"]\nupstream_ca = \"origin-ca.pem\"\n\
         [[bottles.demo.routes]]\nhost = \"secure.test\"\ntoken_env = \"EXAMPLE_TOKEN\"",
    ));
    let bottle = Bottle::up(&scratch, &unique_slug("inj"), &[("EXAMPLE_TOKEN", &token)]);
    // The origin sits on the bundle's way out, under the name the route uses; `openssl
    // s_server` prints every byte it receives, so its log shows what the gateway sent.
    let origin = format!("{}-origin", bottle.slug);
    let files = scratch.path().display().to_string();
    docker_ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        &origin,
        "--network",
        &format!("bottle-{}-ext", bottle.slug),
        "--network-alias",
        "secure.test",
        "-v",
        &format!("{files}:/pki:ro"),
        "--user",
        "root",
        common::docker::TEST_AGENT,
        "stdbuf",
        "-o0",
        "openssl",
        "s_server",
        "-accept",
        "8443",
        "-cert",
        "/pki/origin.pem",
        "-key",
        "/pki/origin.key",
        "-ign_eof",
    ]);
    let logs_of = |name: &str| {
        let logs = docker(&["logs", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        )
    };
    // s_server says ACCEPT once it listens.
    common::eventually(
        "the origin listens",
        std::time::Duration::from_secs(60),
        || logs_of(&origin).contains("ACCEPT").then_some(()),
    );
    // The agent uses its placeholder, through the proxy, trusting only what provision installed.
    let out = bottle.sh("curl -sS --max-time 4 -H \"Authorization: Bearer $EXAMPLE_TOKEN\" https://secure.test:8443/hello; true");
    let agent_saw = format!("{}{}", stdout(&out), stderr(&out));
    // The request's head ends with its blank line; the origin has printed all of it by then.
    let origin_saw = common::eventually(
        &format!("the origin printed the request (the agent saw: {agent_saw})"),
        std::time::Duration::from_secs(30),
        || {
            let saw = logs_of(&origin);
            let head_done = saw
                .split_once("GET /hello HTTP/1.1")
                .is_some_and(|(_, rest)| rest.contains("\r\n\r\n"));
            head_done.then_some(saw)
        },
    );
    let _ = docker(&["rm", "-f", &origin]);
    assert!(
        origin_saw.contains("GET /hello HTTP/1.1"),
        "the request never reached the origin:\n{origin_saw}\nagent: {agent_saw}"
    );
    assert!(
        origin_saw.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            token.to_ascii_lowercase()
        )),
        "{origin_saw}"
    );
    assert!(
        !origin_saw.contains("bottle-placeholder-"),
        "the placeholder went out: {origin_saw}"
    );
    assert!(
        !agent_saw.contains(&token),
        "the agent saw the token: {agent_saw}"
    );
    assert!(
        !agent_saw.contains("certificate"),
        "the agent did not trust the bottle CA: {agent_saw}"
    );
    let gateway = stdout(&scratch.run(&["logs", &bottle.slug, "--daemon", "gateway"]));
    assert!(gateway.contains("\"decision\":\"inject\""), "{gateway}");
    assert!(!gateway.contains(&token), "the token is in the gateway log");
}
