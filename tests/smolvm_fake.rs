//! The smolvm backend against a scripted FAKE `smolvm` (tests/fakes/smolvm: smolvm cannot be
//! installed here). The fake's machine is a Docker container, so exec, cp and an exec with a
//! TTY behave for real: provision, the session holder, attach, exec and kill run against it,
//! with the bundle on the real Docker engine. The fake also records every argv, so these
//! tests pin the env re-passed on every exec, the bundle published on the alias only, and
//! rollback when any step fails. What the fake cannot show: that a real smolvm keeps a
//! process started with setsid after its `machine exec` returns.

mod common;
use common::docker::{TEST_AGENT, docker, docker_ok, resources_of, unique_slug};
use common::tmux::Tmux;
use common::{Scratch, stderr, stdout};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_bottle-tui");

fn fake() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/smolvm")
}

fn scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("skills/review/SKILL.md"),
        "review carefully\n",
    )
    .expect("skill");
    s.write_config(&format!(
        "[agents.test]\nimage = \"{TEST_AGENT}\"\ncommand = [\"sh\"]\nprompt = \"You are a test.\"\nskills = [\"skills/review\"]\n\n\
         [bottles.demo]\nagent = \"test\"\nbackend = \"smolvm\"\nallow = [\"api.example.com\"]\n\
         [[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"EXAMPLE_TOKEN\"\n\
         [[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n"
    ));
    s
}

fn up(s: &Scratch, slug: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = s.command(&["up", "demo", "--name", slug]);
    c.env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .env("EXAMPLE_TOKEN", "tok-smolvm");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run up")
}

fn kill(s: &Scratch, slug: &str) -> std::process::Output {
    s.command(&["kill", slug])
        .env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .output()
        .expect("run kill")
}

fn calls(s: &Scratch) -> Vec<Vec<String>> {
    std::fs::read_to_string(s.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON argv line"))
        .collect()
}

/// The `-e K=V` pairs of one call, in order.
fn env_args(call: &[String]) -> Vec<String> {
    call.windows(2)
        .filter(|w| w[0] == "-e")
        .map(|w| w[1].clone())
        .collect()
}

/// The command after `--` of an exec.
fn exec_cmd(call: &[String]) -> Vec<String> {
    call.iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect()
}

/// Kills the bottle when the test ends, passed or not, so a failure leaves nothing behind
/// for the tests that count bottles.
struct Launched<'a> {
    s: &'a Scratch,
    slug: String,
}

impl<'a> Launched<'a> {
    fn up(s: &'a Scratch, prefix: &str, env: &[(&str, &str)]) -> Self {
        let slug = unique_slug(prefix);
        let out = up(s, &slug, env);
        let me = Self { s, slug };
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), me.slug);
        me
    }

    /// The fake's container that plays the machine.
    fn machine(&self) -> String {
        format!("fake-smolvm-bottle-{}", self.slug)
    }

    /// A root shell in the machine, past bottle-tui (to observe, not to provision).
    fn inside(&self, script: &str) -> String {
        docker_ok(&["exec", &self.machine(), "sh", "-c", script])
    }

    /// `bottle-tui exec` into the bottle.
    fn exec(&self, cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["exec", self.slug.as_str(), "--"];
        args.extend(cmd);
        self.s
            .command(&args)
            .env("BOTTLE_TUI_SMOLVM", fake())
            .env("FAKE_SMOLVM_LOG", self.s.path().join("calls.log"))
            .output()
            .expect("run exec")
    }

    fn agent(&self) -> serde_json::Value {
        let out = self
            .s
            .command(&["ls", "--json"])
            .env("BOTTLE_TUI_SMOLVM", fake())
            .env("FAKE_SMOLVM_LOG", self.s.path().join("calls.log"))
            .output()
            .expect("ls");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("ls json");
        all.as_array()
            .and_then(|a| a.iter().find(|b| b["slug"] == self.slug.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("{} not in ls: {all}", self.slug))
    }
}

impl Drop for Launched<'_> {
    fn drop(&mut self) {
        let _ = kill(self.s, &self.slug);
    }
}

fn fake_container_exists(name: &str) -> bool {
    docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .any(|l| l == name)
}

#[test]
fn launch_publishes_on_the_alias_repasses_env_on_every_exec_and_kill_removes_the_machine() {
    let s = scratch();
    let bottle = Launched::up(&s, "smol", &[]);
    let slug = bottle.slug.clone();
    let machine = format!("bottle-{slug}");
    let calls = calls(&s);
    let state = s.state_dir();
    let bundle = format!("bottle-{slug}-bundle");

    // The bundle publishes its entry ports on the bottle's own alias and nowhere else (on Linux
    // too: 127.0.0.1 would be shared by every bottle).
    let bindings: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PortBindings}}",
        &bundle,
    ]))
    .expect("json");
    let bindings = bindings.as_object().expect("bindings");
    let mut published: Vec<&String> = bindings.keys().collect();
    published.sort();
    assert_eq!(published, ["8888/tcp", "8900/tcp", "9418/tcp"]);
    let alias = bindings["8888/tcp"][0]["HostIp"]
        .as_str()
        .expect("host ip")
        .to_owned();
    let n: u8 = alias
        .strip_prefix("127.0.0.")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{alias} is not a loopback alias"));
    assert!((16..=31).contains(&n), "{alias} is outside the alias pool");
    for (_, b) in bindings {
        assert_eq!(b[0]["HostIp"], alias.as_str(), "{b}");
    }
    let gw_port = docker_ok(&["port", &bundle, "8888/tcp"]);
    let gw_port = gw_port.trim().rsplit(':').next().expect("port").to_owned();

    // 1. pack, cached by image reference.
    let cache = state.join("cache/smolmachines");
    let packed = calls[0]
        .last()
        .expect("-o path")
        .replace(".partial", ".smolmachine");
    assert_eq!(calls[0][..4], ["pack", "create", "--image", TEST_AGENT]);
    assert_eq!(calls[0][4], "-o");
    assert!(
        calls[0][5].starts_with(&cache.display().to_string()) && calls[0][5].ends_with(".partial")
    );
    // 2. create --from the pack, allowlisted to the alias alone, with the guest env.
    assert_eq!(
        calls[1][..6],
        ["machine", "create", "--name", &machine, "--from", &packed]
    );
    assert_eq!(calls[1][6..8], ["--allow-cidr", &format!("{alias}/32")]);
    let env = env_args(&calls[1]);
    assert!(
        env.contains(&format!("HTTPS_PROXY=http://{alias}:{gw_port}")),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("NO_PROXY=localhost,127.0.0.1,{alias}")),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e.starts_with("EXAMPLE_TOKEN=bottle-placeholder-")),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.contains("tok-smolvm")),
        "the real token reached the guest"
    );
    assert!(
        !calls.iter().flatten().any(|a| a.contains("tok-smolvm")),
        "the real token is on an argv"
    );
    // 3. start, then exec: every exec that runs provision or the agent re-passes exactly the
    // create-time env (smolvm does not keep it); the host's own reads of the holder's record
    // under /.bottle/run need none and get none.
    assert_eq!(calls[2], ["machine", "start", "--name", &machine]);
    let (reads, execs): (Vec<&Vec<String>>, Vec<&Vec<String>>) = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "exec"])
        .partition(|c| c.last().is_some_and(|a| a.starts_with("/.bottle/run/")));
    assert!(execs.len() >= 8, "{execs:?}");
    assert!(!reads.is_empty(), "launch waits for the holder's record");
    for e in &execs {
        assert_eq!(e[2..4], ["--name", &machine]);
        assert_eq!(env_args(e), env, "an exec without the guest env: {e:?}");
    }
    for r in &reads {
        assert_eq!(r[2..4], ["--name", &machine]);
        assert!(env_args(r).is_empty(), "a record read carries env: {r:?}");
    }
    assert_eq!(exec_cmd(&calls[3]), ["true"], "readiness is polled first");
    // Files go in as archives through `machine cp`, from the bottle's state dir, and neither
    // copy stays behind (they can hold settings).
    let dir = state.join(format!("bottles/{slug}"));
    let cps: Vec<&Vec<String>> = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "cp"])
        .collect();
    assert!(cps.len() >= 3, "sidecar, files, CA, done marker: {cps:?}");
    for c in &cps {
        assert!(
            c[2].starts_with(&dir.display().to_string()) && c[2].ends_with(".tar"),
            "{c:?}"
        );
        assert!(
            c[3].starts_with(&format!("{machine}:/.bottle-copy-in-")),
            "{c:?}"
        );
        assert!(!std::path::Path::new(&c[2]).exists(), "{} stayed", c[2]);
    }
    assert_eq!(
        bottle
            .inside("ls /.bottle-copy-in-* 2>/dev/null | wc -l")
            .trim(),
        "0"
    );
    // Provision is marked done before the session holder starts, which starts the agent.
    let done = calls
        .iter()
        .rposition(|c| c[..2] == ["machine", "cp"])
        .expect("the done marker goes in last");
    let holder = calls
        .iter()
        .position(|c| c[..2] == ["machine", "exec"] && exec_cmd(c).join(" ").contains("setsid"))
        .expect("the holder is started");
    assert!(
        done < holder,
        "the holder started before provision was done"
    );

    // ls shows it with its alias and a running agent; kill removes the machine and the bundle.
    let me = bottle.agent();
    assert_eq!(me["backend"], "smolvm");
    assert_eq!(me["alias"], alias.as_str());
    assert_eq!(me["state"], "running");
    assert_eq!(me["agent"]["state"], "running", "{me}");
    let out = kill(&s, &slug);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = calls_after(&s, calls.len());
    assert!(
        last.contains(&vec![
            "machine".into(),
            "rm".into(),
            "--force".into(),
            "--name".into(),
            machine.clone()
        ]),
        "{last:?}"
    );
    assert!(
        !fake_container_exists(&bottle.machine()),
        "the machine is still there"
    );
    assert_eq!(resources_of(&slug), Vec::<String>::new());
}

fn calls_after(s: &Scratch, n: usize) -> Vec<Vec<String>> {
    calls(s).into_iter().skip(n).collect()
}

/// A failure makes `up` exit 1 naming the cause, and leaves no container, network, token file
/// or machine (a machine that was created is removed).
fn assert_rolled_back(env: &[(&str, &str)], expect_in_error: &[&str]) {
    let s = scratch();
    let slug = unique_slug("smolf");
    let machine = format!("bottle-{slug}");
    let out = up(&s, &slug, env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{env:?}: {err}");
    assert!(err.contains("everything it created was removed"), "{err}");
    for needle in expect_in_error {
        assert!(
            err.contains(needle),
            "{env:?}: expected {needle:?} in:\n{err}"
        );
    }
    assert_eq!(resources_of(&slug), Vec::<String>::new(), "{env:?}");
    assert!(
        !s.state_dir()
            .join(format!("bottles/{slug}/secrets/route-0.token"))
            .exists()
    );
    assert!(
        !fake_container_exists(&format!("fake-smolvm-{machine}")),
        "{env:?}: the machine is still there"
    );
    let calls = calls(&s);
    if let Some(created) = calls.iter().position(|c| c[..2] == ["machine", "create"]) {
        let removed = calls[created..]
            .iter()
            .any(|c| c[..2] == ["machine", "rm"] && c.contains(&machine));
        assert!(
            removed,
            "{env:?}: the machine was created and never removed: {calls:?}"
        );
    }
}

#[test]
fn each_failing_smolvm_call_is_named_with_its_exit_and_stderr_and_rolled_back() {
    for sub in [
        "pack create",
        "machine create",
        "machine start",
        "machine cp",
    ] {
        assert_rolled_back(
            &[("FAKE_SMOLVM_FAIL", sub)],
            &[
                &format!("smolvm {sub}"),
                "exited 1",
                &format!("fake smolvm: injected failure of {sub}"),
            ],
        );
    }
    for (needle, what) in [
        ("chown -R", "repairing the ownership of /home/node"),
        ("tar -x", "unpacking files into /"),
        ("openssl x509", "installing the bottle CA failed (exit 1)"),
        ("setsid", "starting the session holder"),
    ] {
        assert_rolled_back(
            &[("FAKE_SMOLVM_FAIL_EXEC", needle)],
            &[what, "fake smolvm: injected failure of exec"],
        );
    }
}

#[test]
fn a_failure_injected_at_every_smolvm_step_is_rolled_back() {
    for step in bottle_tui::engine::smolvm_launch::STEPS {
        assert_rolled_back(
            &[(bottle_tui::engine::launch::FAIL_AT_ENV, step)],
            &[&format!("injected failure at step `{step}`")],
        );
    }
}

#[test]
fn readiness_is_polled_until_the_exec_channel_answers_and_packs_are_cached() {
    let s = scratch();
    let slug = unique_slug("smolw");
    let out = up(&s, &slug, &[("FAKE_SMOLVM_WARMUP", "3")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let calls = calls(&s);
    let trues = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "exec"] && exec_cmd(c) == ["true"])
        .count();
    assert_eq!(trues, 4, "three refused, the fourth answered");
    assert_eq!(kill(&s, &slug).status.code(), Some(0));

    // A second launch of the same image reuses the pack.
    let again = unique_slug("smolw2");
    let out = up(&s, &again, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let packs = self::calls(&s)
        .iter()
        .filter(|c| c[..2] == ["pack", "create"])
        .count();
    assert_eq!(packs, 1, "the .smolmachine is cached by image reference");
    assert_eq!(kill(&s, &again).status.code(), Some(0));
}

/// The test agent with a `~/.claude.json` of its own, which provision must keep.
fn agent_with_settings() -> &'static str {
    const TAG: &str = "bottle-test-agent-with-settings:1";
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {TEST_AGENT}\nRUN printf '{{\"keep\": \"mine\", \"mcpServers\": {{\"other\": {{\"type\": \"stdio\", \"command\": \"true\"}}}}}}' > /home/node/.claude.json && chown node:node /home/node/.claude.json\n"
            ),
        )
        .expect("Dockerfile");
        docker_ok(&["build", "-q", "-t", TAG, &dir.path().display().to_string()]);
    });
    TAG
}

#[test]
fn provision_in_a_machine_is_the_containers_and_exec_runs_as_the_agent() {
    let s = scratch();
    s.write_config(
        &std::fs::read_to_string(s.path().join("bottle.toml"))
            .expect("config")
            .replace(TEST_AGENT, agent_with_settings()),
    );
    let bottle = Launched::up(&s, "smolp", &[]);
    let bundle = format!("bottle-{}-bundle", bottle.slug);
    let port = |p: &str| {
        docker_ok(&["port", &bundle, p])
            .trim()
            .rsplit(':')
            .next()
            .expect("port")
            .to_owned()
    };
    let alias = bottle.agent()["alias"].as_str().expect("alias").to_owned();

    let out = bottle.exec(&[
        "sh",
        "-c",
        "id -un; pwd; cat ~/.bottle/prompt.md; echo; \
         git config --global --get-regexp 'url.*insteadof'; \
         stat -c %a /tmp; echo ssl=$SSL_CERT_FILE; cat ~/.claude.json; echo; \
         stat -c '%U %a' ~/.claude.json ~/.claude/skills/review/SKILL.md",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "node", "exec runs as the agent user: {text}");
    assert_eq!(
        lines[1], "/workspace",
        "exec runs in the agent's workdir: {text}"
    );
    assert!(text.contains("You are a test.\n"), "{text}");
    // git reaches the gate on the alias, read back from the agent's git config.
    assert!(
        text.contains(&format!(
            "url.git://{alias}:{}/web.git.insteadof",
            port("9418/tcp")
        )),
        "{text}"
    );
    assert!(text.contains("\n1777\n"), "{text}");
    assert!(
        text.contains("ssl=/etc/ssl/certs/ca-certificates.crt\n"),
        "{text}"
    );
    // ~/.claude.json is merged, not overwritten: the image's keys and server stay.
    let json_start = text.find('{').expect("claude.json");
    let json_end = text.rfind('}').expect("claude.json end");
    let doc: serde_json::Value =
        serde_json::from_str(&text[json_start..=json_end]).expect("claude.json is JSON");
    assert_eq!(doc["keep"], "mine", "{doc}");
    assert_eq!(doc["mcpServers"]["other"]["command"], "true", "{doc}");
    let servers = doc["mcpServers"].as_object().expect("servers");
    assert!(
        servers
            .values()
            .any(|v| v["url"] == format!("http://{alias}:{}/mcp", port("8900/tcp")).as_str()),
        "the supervise server on the alias: {doc}"
    );
    assert!(text.ends_with("node 600\nnode 644\n"), "{text}");

    // The system trust store SSL_CERT_FILE names holds the bottle CA exactly once.
    let ca = std::fs::read_to_string(
        s.state_dir()
            .join(format!("bottles/{}/ca/ca.pem", bottle.slug)),
    )
    .expect("ca.pem");
    let line = ca.lines().nth(1).expect("pem body");
    let out = bottle.exec(&["grep", "-cF", line, "/etc/ssl/certs/ca-certificates.crt"]);
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));

    // exec passes the command's exit status and both streams.
    let out = bottle.exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
}

#[test]
fn the_session_holder_is_the_agents_parent_and_the_agent_runs_as_its_user() {
    let s = scratch();
    let bottle = Launched::up(&s, "smolh", &[]);
    let holder: u32 = bottle
        .inside("cat /.bottle/run/holder.pid")
        .trim()
        .parse()
        .expect("a holder pid");
    let record: serde_json::Value =
        serde_json::from_str(&bottle.inside("cat /.bottle/run/session.json")).expect("record");
    assert_eq!(record["state"], "running", "{record}");
    let agent = record["pid"].as_u64().expect("agent pid");
    let cmdline = bottle.inside(&format!("tr '\\0' ' ' < /proc/{holder}/cmdline"));
    assert!(
        cmdline.starts_with("/.bottle/bottle-sidecar session -- sh"),
        "{cmdline}"
    );
    let status = bottle.inside(&format!("cat /proc/{agent}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(field("PPid:"), holder.to_string(), "{status}");
    let node = bottle.inside("id -u node");
    assert_eq!(field("Uid:"), node.trim(), "{status}");
    // The holder leads its own session: it does not end with the exec that started it.
    let sid = bottle.inside(&format!("cut -d' ' -f6 /proc/{holder}/stat"));
    assert_eq!(sid.trim(), holder.to_string());
}

#[test]
fn attach_in_tmux_types_detaches_and_the_exit_code_reaches_ls_and_attach() {
    let s = scratch();
    let bottle = Launched::up(&s, "smola", &[]);
    let slug = &bottle.slug;
    let tmux = Tmux::for_scratch(
        &s,
        slug,
        &[
            ("BOTTLE_TUI_SMOLVM", fake().display().to_string()),
            (
                "FAKE_SMOLVM_LOG",
                s.path().join("calls.log").display().to_string(),
            ),
            ("BOTTLE_ATTACH_PROBE", "1,3".to_owned()),
        ],
    );
    let attach = format!("{BIN} attach {slug}");
    tmux.line(&attach);
    let hint = format!("bottle {slug} · ctrl-q detaches");
    tmux.wait_for(&hint, WAIT);
    tmux.wait_gone(&hint, WAIT);
    tmux.line("echo hello-$((6*7)); id -un");
    tmux.wait_for("hello-42\nnode", WAIT);

    tmux.keys(&["C-q"]);
    tmux.wait_for(&format!("[detached from {slug}"), WAIT);
    assert_eq!(bottle.agent()["agent"]["state"], "running");
    // The machine's session holder reads the shell's terminal: quiet after the echo, idle;
    // `wait` polls the machine's record for it.
    let waited = s
        .command(&["wait", slug, "--for", "idle", "--timeout", "1m"])
        .env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .output()
        .expect("wait");
    assert!(
        waited.status.success(),
        "wait: {}{}",
        stdout(&waited),
        stderr(&waited)
    );
    assert!(
        stdout(&waited).contains(&format!("{slug}: idle")),
        "{}",
        stdout(&waited)
    );
    assert_eq!(bottle.agent()["agent"]["activity"]["status"], "idle");

    // A new client sees the screen at once, and the agent's exit reaches ls and attach.
    tmux.clear();
    tmux.line(&attach);
    tmux.wait_for("hello-42", WAIT);
    tmux.line("echo bye-$((6*7)); exit 7");
    let me = common::eventually("the agent exits", Duration::from_secs(60), || {
        let me = bottle.agent();
        (me["agent"]["state"] == "exited").then_some(me)
    });
    assert_eq!(me["agent"]["exit_code"], 7, "{me}");
    assert_eq!(me["state"], "exited", "{me}");
    assert_eq!(me["agent"]["activity"]["status"], "exited", "{me}");
    assert_eq!(me["agent"]["activity"]["reason"], "exit code 7", "{me}");
    let out = s
        .command(&["attach", slug])
        .env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .output()
        .expect("attach");
    assert!(
        stdout(&out).contains("bye-42"),
        "the last screen: {}",
        stdout(&out)
    );
}

#[test]
fn kill_gives_a_machine_agent_its_grace() {
    let s = Scratch::new();
    let agent = |name: &str, script: &str| {
        format!(
            "[agents.{name}]\nimage = \"{TEST_AGENT}\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n\n\
             [bottles.demo-{name}]\nagent = \"{name}\"\nbackend = \"smolvm\"\nallow = [\"api.example.com\"]\n"
        )
    };
    s.write_config(&format!(
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
    let launch = |bottle: &str| {
        let slug = unique_slug("smolk");
        let out = s
            .command(&["up", bottle, "--name", &slug])
            .env("BOTTLE_TUI_SMOLVM", fake())
            .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
            .output()
            .expect("up");
        let me = Launched { s: &s, slug };
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        common::eventually("the agent set its trap", Duration::from_secs(60), || {
            docker(&["exec", &me.machine(), "test", "-e", "/tmp/trapped"])
                .status
                .success()
                .then_some(())
        });
        me
    };
    let kill = |me: &Launched, grace: &str| {
        let out = s
            .command(&["kill", &me.slug, "--grace", grace])
            .env("BOTTLE_TUI_SMOLVM", fake())
            .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
            .output()
            .expect("kill");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!fake_container_exists(&me.machine()));
        assert_eq!(resources_of(&me.slug), Vec::<String>::new());
        stdout(&out)
    };
    let polite = launch("demo-polite");
    let said = kill(&polite, "60s");
    assert!(
        said.contains(&format!("{}: the agent stopped (exit 7) in ", polite.slug)),
        "{said}"
    );
    let stubborn = launch("demo-stubborn");
    let said = kill(&stubborn, "1s");
    assert!(
        said.contains(&format!(
            "{}: the agent did not stop within 1s and was killed",
            stubborn.slug
        )),
        "{said}"
    );
}

#[test]
fn a_machine_that_went_away_is_shown_broken_and_kill_still_cleans_up() {
    let s = scratch();
    let bottle = Launched::up(&s, "smolg", &[]);
    docker_ok(&["rm", "-f", &bottle.machine()]);
    let me = bottle.agent();
    assert_eq!(me["state"], "broken", "{me}");
    assert_eq!(me["agent"]["state"], "unreachable", "{me}");
    let out = s
        .command(&["attach", &bottle.slug])
        .env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .output()
        .expect("attach");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("machine exec --name"),
        "the failing call is named: {}",
        stderr(&out)
    );
    let out = kill(&s, &bottle.slug);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(resources_of(&bottle.slug), Vec::<String>::new());
}
