//! Launch, list, inspect, exec, logs and kill real bottles on this machine's Docker engine.

mod common;
use common::docker::{Bottle, docker_ok, resources_of, scratch_with, unique_slug, up};
use common::{stderr, stdout};

#[test]
fn up_lists_running_and_kill_leaves_nothing_twice() {
    let scratch = scratch_with("");
    let slug = unique_slug("life");
    let bottle = Bottle::up(&scratch, &slug, &[]);

    let out = scratch.run(&["ls", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("ls --json");
    let me = all
        .as_array()
        .expect("array")
        .iter()
        .find(|b| b["slug"] == slug.as_str())
        .unwrap_or_else(|| panic!("{slug} not in ls: {all}"));
    assert_eq!(me["state"], "running", "{me}");
    assert_eq!(me["bottle"], "demo");
    assert_eq!(me["backend"], "docker");
    assert!(
        me["health"].is_object() && me["health"]["gateway"].is_string(),
        "{me}"
    );
    assert!(
        me["alias"].is_null(),
        "the docker backend uses no alias: {me}"
    );
    assert!(
        me["created"].as_str().is_some_and(|c| c.starts_with("20")),
        "{me}"
    );
    assert_eq!(
        resources_of(&slug).len(),
        4,
        "bundle, agent and two networks: {:?}",
        resources_of(&slug)
    );

    let out = scratch.run(&["kill", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(resources_of(&slug), Vec::<String>::new());
    let again = scratch.run(&["kill", &slug]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "kill is idempotent: {}",
        stderr(&again)
    );
    assert!(stdout(&again).contains("nothing to remove"));
    drop(bottle);
}

#[test]
fn exec_passes_output_and_exit_status() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("exec"), &[]);
    let out = bottle.sh("echo out; echo err >&2; exit 7");
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let none = scratch.run(&["exec", "no-such-bottle", "--", "true"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no bottle `no-such-bottle` is running"));
}

#[test]
fn the_agent_runs_unprivileged_with_limits_labels_and_no_ports() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("priv"), &[]);
    let inspect = docker_ok(&["inspect", &bottle.agent()]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    let c = &v[0];
    let host = &c["HostConfig"];
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert!(host["CapAdd"].is_null(), "{}", host["CapAdd"]);
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges:true"])
    );
    assert_eq!(host["PidsLimit"], 512);
    assert_eq!(host["Memory"], 4_i64 << 30);
    assert_eq!(host["Privileged"], false);
    assert!(
        host["PortBindings"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{}",
        host["PortBindings"]
    );
    assert_eq!(c["Config"]["User"], "node");
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["bottle.slug"], bottle.slug.as_str());
    assert_eq!(labels["bottle.role"], "agent");
    assert!(
        labels["bottle.config-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 16)
    );
    assert_eq!(labels["bottle.version"], env!("CARGO_PKG_VERSION"));
    let nets = c["NetworkSettings"]["Networks"]
        .as_object()
        .expect("networks");
    assert_eq!(
        nets.keys().collect::<Vec<_>>(),
        [&format!("bottle-{}-int", bottle.slug)],
        "internal network only"
    );

    // From inside: no capabilities at all, and no way to gain them.
    let out = bottle.sh("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status");
    let status = stdout(&out);
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("CapBnd:\t0000000000000000"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
}

#[test]
fn provision_installs_prompt_ca_git_mcp_and_env() {
    let scratch = scratch_with(
        // A local upstream: the gate fetches it at start, and tests reach no public address.
        "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n",
    );
    let bottle = Bottle::up(&scratch, &unique_slug("prov"), &[]);
    let out = bottle.sh("cat ~/.bottle/prompt.md; echo; \
         git config --global --get url.git://git-gate/web.git.insteadOf; \
         stat -c %a /tmp; \
         cat ~/.claude.json; \
         echo proxy=$HTTPS_PROXY no_proxy=$NO_PROXY ca=$NODE_EXTRA_CA_CERTS; \
         getent hosts gateway git-gate supervise | wc -l");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("You are a test.\n"), "{text}");
    let upstream = format!("file://{}/upstream\n", scratch.path().display());
    assert!(text.contains(&upstream), "{text}");
    assert!(text.contains("1777\n"), "{text}");
    assert!(
        text.contains("\"url\": \"http://supervise:8900/mcp\""),
        "{text}"
    );
    assert!(text.contains("proxy=http://gateway:8888 no_proxy=localhost,127.0.0.1,git-gate,supervise ca=/usr/local/share/ca-certificates/bottle-ca.crt"), "{text}");
    assert!(
        text.trim_end().ends_with('3'),
        "the three in-bottle names resolve: {text}"
    );

    // The system trust store holds the bottle CA: openssl-free check through curl's view of it.
    let ca = std::fs::read_to_string(
        scratch
            .state_dir()
            .join(format!("bottles/{}/ca/ca.pem", bottle.slug)),
    )
    .expect("ca.pem");
    let line = ca.lines().nth(1).expect("pem body");
    let out = bottle.sh(&format!(
        "grep -cF '{line}' /etc/ssl/certs/ca-certificates.crt"
    ));
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));
    // ~/.claude.json belongs to the agent and is private.
    let out = bottle.sh("stat -c '%U %a' ~/.claude.json ~/.bottle/prompt.md");
    assert_eq!(stdout(&out), "node 600\nnode 644\n");
}

#[test]
fn inspect_shows_resources_and_redacts_credentials() {
    let scratch = scratch_with(
        "\n[[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"EXAMPLE_TOKEN\"\n",
    );
    let bottle = Bottle::up(
        &scratch,
        &unique_slug("insp"),
        &[("EXAMPLE_TOKEN", "tok-inspect-5551")],
    );
    let out = scratch.run(&["inspect", &bottle.slug, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("tok-inspect-5551"));
    assert!(
        !text.contains("bottle-placeholder-"),
        "placeholders are redacted too"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["status"]["state"], "running");
    let agent = v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["role"] == "agent")
        .expect("agent");
    assert!(
        agent["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e == "EXAMPLE_TOKEN=[redacted]"),
        "{agent}"
    );
    assert!(agent["networks"].as_object().is_some_and(|n| n.len() == 1));
    assert_eq!(v["plan"]["slug"], bottle.slug.as_str());
}

#[test]
fn logs_are_json_lines_split_by_daemon() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("logs"), &[]);
    let all = scratch.run(&["logs", &bottle.slug]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let lines: Vec<serde_json::Value> = stdout(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["daemon"] == "init" && l["msg"] == "starting"),
        "{lines:?}"
    );
    let only_init = scratch.run(&["logs", &bottle.slug, "--daemon", "init"]);
    for l in stdout(&only_init).lines() {
        assert!(l.contains("\"daemon\":\"init\""), "{l}");
    }
}

#[test]
fn several_bottles_launch_concurrently_from_one_command() {
    // Bottle definitions named uniquely, since their names are the default slugs.
    let (a, b) = (unique_slug("ca"), unique_slug("cb"));
    let scratch = common::Scratch::new();
    scratch.write_config(&format!(
        "{}\n[bottles.{a}]\nagent = \"test\"\n[bottles.{b}]\nagent = \"test\"\n",
        common::docker::config("")
    ));
    let out = up(&scratch, &[&a, &b], &[]);
    let _guards = [&a, &b].map(|s| Bottle {
        scratch: &scratch,
        slug: s.clone(),
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [a.as_str(), b.as_str()]
    );
    for s in [&a, &b] {
        assert_eq!(resources_of(s).len(), 4, "{s}");
    }
}

#[test]
fn the_gateway_runs_in_the_bundle_and_answers_the_agent() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("gw"), &[]);
    // Through the proxy variables the agent already has.
    let out = bottle.sh("curl -sS --max-time 5 -w ' %{http_code}' http://not-allowed.example/");
    assert_eq!(
        stdout(&out).trim(),
        "bottle gateway: not-allowed.example is not on this bottle's allowlist\n 403",
        "{}",
        stderr(&out)
    );
    // Metadata is refused at the gateway's policy layer; nothing is sent toward it.
    let out = bottle.sh("curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/");
    assert_eq!(stdout(&out), "403");
    // The health check reports the gateway running and the daemons this build lacks.
    let health = common::docker::wait_healthy(&scratch, &bottle.slug, "gateway");
    assert_eq!(health["supervise"], "healthy", "{health}");
    // The gateway logged both refusals as JSON lines.
    let logs = stdout(&scratch.run(&["logs", &bottle.slug, "--daemon", "gateway"]));
    assert!(
        logs.lines()
            .filter(|l| l.contains("\"decision\":\"deny\""))
            .count()
            >= 2,
        "{logs}"
    );
}

/// A daemon crash-looping makes the bundle unhealthy; `ls` shows that daemon down and the
/// others healthy (the health check names each daemon's state, healthy or not).
#[test]
fn a_crash_looping_daemon_is_the_only_one_shown_down() {
    let scratch = scratch_with("[bottles.demo.supervise]\nenabled = true\n");
    let bottle = Bottle::up(&scratch, &unique_slug("loop"), &[]);
    let kill = "for p in /proc/[0-9]*; do \
                  if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/usr/local/bin/bottle-sidecar gateway'; then kill -9 ${p#/proc/}; fi; \
                done";
    // First healthy (a check that never passed leaves the container `starting`).
    common::docker::wait_healthy(&scratch, &bottle.slug, "supervise");
    // Each kill doubles init's wait before the next start (1 s, 2 s, 4 s, …): soon the gateway
    // is down for longer than two health checks (5 s apart) and the container is unhealthy.
    let container_health = || {
        docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &bottle.bundle(),
        ])
        .trim()
        .to_owned()
    };
    let seen = common::eventually(
        "the gateway shown down, restarting",
        std::time::Duration::from_secs(120),
        || {
            docker_ok(&["exec", &bottle.bundle(), "sh", "-c", kill]);
            if container_health() != "unhealthy" {
                return None;
            }
            Some(common::docker::health_of(&scratch, &bottle.slug))
                .filter(|h| h["gateway"] == "down, restarting")
        },
    );
    assert_eq!(seen["supervise"], "healthy", "{seen}");
}

#[test]
fn init_restarts_a_killed_daemon_and_the_bundle_stops_within_a_second() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("init"), &[]);
    // Kill the gateway from outside, as a crash would.
    let kill = "for p in /proc/[0-9]*; do \
                  if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/usr/local/bin/bottle-sidecar gateway'; then kill -9 ${p#/proc/}; echo killed; fi; \
                done";
    let out = docker_ok(&["exec", &bottle.bundle(), "sh", "-c", kill]);
    assert_eq!(out.trim(), "killed", "found the gateway process");
    common::eventually(
        "init logs the restart",
        std::time::Duration::from_secs(60),
        || {
            let logs = stdout(&scratch.run(&["logs", &bottle.slug, "--daemon", "init"]));
            let starts = logs
                .lines()
                .filter(|l| {
                    l.contains("\"msg\":\"daemon started\"") && l.contains("\"target\":\"gateway\"")
                })
                .count();
            (logs.contains("\"msg\":\"daemon exited\"")
                && logs.contains("\"msg\":\"restarting daemon\"")
                && starts >= 2)
                .then_some(())
        },
    );
    let out = bottle
        .sh("curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://not-allowed.example/");
    assert_eq!(stdout(&out), "403", "the restarted gateway serves again");

    let started = std::time::Instant::now();
    docker_ok(&["stop", &bottle.bundle()]);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(1),
        "docker stop took {took:?}"
    );
    let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &bottle.bundle()]);
    assert_eq!(code.trim(), "143", "init exits 143 on SIGTERM");
}

/// `kill` asks the agent to stop before removing its bottle: an agent that traps SIGTERM
/// finishes its way (exit 7), one that ignores it is killed when --grace runs out, and
/// `--grace 0` kills at once without asking. Each time everything is removed and the operator
/// is told what is lost.
#[test]
fn kill_gives_the_agent_its_grace_then_removes_everything() {
    let agent = |name: &str, script: &str| {
        format!(
            "[agents.{name}]\nimage = \"{}\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n\
             prompt = \"You are a test.\"\n\n[bottles.{name}]\nagent = \"{name}\"\n\
             allow = [\"api.example.com\"]\n",
            common::docker::TEST_AGENT
        )
    };
    let scratch = scratch_with(&format!(
        "{}\n{}",
        agent(
            "polite",
            "trap 'exit 7' TERM HUP; touch /tmp/trapped; while :; do sleep 1; done"
        ),
        agent(
            "stubborn",
            "trap '' TERM HUP; touch /tmp/trapped; while :; do sleep 1; done"
        ),
    ));
    let launch = |bottle: &str, prefix: &str| {
        let slug = unique_slug(prefix);
        let out = up(&scratch, &[bottle, "--name", &slug], &[]);
        assert_eq!(out.status.code(), Some(0), "up {bottle}: {}", stderr(&out));
        // `up` returns once provision is done; the agent's shell sets its trap just after.
        let agent = format!("bottle-{slug}-agent");
        common::eventually(
            "the agent has set its SIGTERM trap",
            std::time::Duration::from_secs(60),
            || {
                common::docker::docker(&["exec", &agent, "test", "-e", "/tmp/trapped"])
                    .status
                    .success()
                    .then_some(())
            },
        );
        slug
    };
    let kill = |slug: &str, grace: &str| {
        let out = scratch.run(&["kill", slug, "--grace", grace]);
        assert_eq!(out.status.code(), Some(0), "kill: {}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "has not written to its workspace or pushed through the git gate is lost"
            ),
            "the operator is told what is lost: {}",
            stderr(&out)
        );
        assert_eq!(
            resources_of(slug),
            Vec::<String>::new(),
            "{slug} left things"
        );
        stdout(&out)
    };

    let polite = launch("polite", "killp");
    let said = kill(&polite, "60s");
    assert!(
        said.contains(&format!("{polite}: the agent stopped (exit 7) in ")),
        "{said}"
    );

    let stubborn = launch("stubborn", "kills");
    let said = kill(&stubborn, "1s");
    assert!(
        said.contains(&format!(
            "{stubborn}: the agent did not stop within 1s and was killed (exit 137)"
        )),
        "{said}"
    );

    let at_once = launch("polite", "kill0");
    let said = kill(&at_once, "0");
    assert!(
        !said.contains("the agent stopped"),
        "it was asked to stop: {said}"
    );
}
