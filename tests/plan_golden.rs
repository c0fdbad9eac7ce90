//! prepare → plan, pinned: the plan and every rendered file for several configs, and the state
//! dir's promises (modes, no real token, stable CA and placeholders).

mod common;
use bottle_tui::config;
use bottle_tui::engine::{self, Plan};
use bottle_tui::state::StateRoot;
use bottle_tui::types::Slug;
use common::{Scratch, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const MINIMAL: &str = r#"
[bottles.demo]
allow = ["api.anthropic.com"]
"#;

const FULL: &str = r#"
[defaults]
backend = "smolvm"
agent = "reviewer"

[agents.reviewer]
image = "registry.local/reviewer:1.4"
command = ["reviewer", "--watch"]
prompt_file = "prompt.md"
skills = ["skills/review"]
env = { EDITOR = "vi", LANG = "C.UTF-8" }
memory = "1.5g"
pids = 256
cpus = 2.5

[bottles.full]
workspace = "upstream"
allow = ["api.example.com", "*.pkg.example.org", "uploads.example.net"]
allow_private = ["192.168.7.0/24", "nas.lan:8443"]

[[bottles.full.routes]]
host = "api.example.com"
token_env = "EXAMPLE_TOKEN"

[[bottles.full.routes]]
host = "uploads.example.net"
header = "X-Api-Key"
format = "{token}"
placeholder_env = "UPLOAD_KEY"
token_file = "upload.token"

[[bottles.full.git]]
name = "web"
upstream = "git@git.example.com:me/web.git"
identity = "id_web"
push = ["bottle/*", "feature/*"]
protect = ["main", "release/*"]

[[bottles.full.git]]
name = "local"
upstream = "file://upstream"

[bottles.full.supervise]
enabled = false

[bottles.full.pipelock]
enabled = true
image = "ghcr.io/luckypipewrench/pipelock@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
mode = "strict"
"#;

struct Prepared {
    scratch: Scratch,
    plan: Plan,
}

fn prepare(toml: &str, bottle: &str) -> Prepared {
    let scratch = Scratch::new();
    let path = scratch.write_config(toml);
    let config = config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    let root = StateRoot::new(Some(scratch.state_dir()));
    let bottle = Slug::parse(bottle).expect("slug");
    let plan = engine::prepare(&config, &bottle, None, &root).expect("prepare");
    Prepared { scratch, plan }
}

impl Prepared {
    /// Text with the run-specific parts (scratch folder, placeholders, hash) made stable.
    fn stable(&self, text: &str) -> String {
        let mut out = text.replace(&self.scratch.path().display().to_string(), "[scratch]");
        out = out.replace(&self.plan.config_hash, "[config-hash]");
        out = out.replace(bottle_tui::VERSION, "[version]");
        for r in &self.plan.gateway.routes {
            if let Some(p) = self.plan.agent.env.get(&r.placeholder_env) {
                out = out.replace(p, &format!("[placeholder {}]", r.placeholder_env));
            }
        }
        out
    }

    fn file(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.plan.state_dir.join(name))
            .unwrap_or_else(|e| panic!("read {name}: {e}"));
        self.stable(&text)
    }

    fn plan_json(&self) -> String {
        self.stable(&serde_json::to_string_pretty(&self.plan).expect("plan json"))
    }
}

#[test]
fn minimal_config_plan_and_files() {
    let p = prepare(MINIMAL, "demo");
    insta::assert_snapshot!("minimal_plan", p.plan_json());
    insta::assert_snapshot!("minimal_gateway", p.file("gateway.json"));
    insta::assert_snapshot!("minimal_supervise", p.file("supervise.json"));
    let dir = &p.plan.state_dir;
    assert!(
        !dir.join("pipelock.yaml").exists(),
        "pipelock is off by default"
    );
    assert!(
        !dir.join("git-gate.json").exists(),
        "no git upstreams, no git-gate config"
    );
    assert!(p.plan.pipelock.is_none() && p.plan.git_gate.is_none());
}

#[test]
fn full_config_plan_and_files() {
    let p = prepare(FULL, "full");
    insta::assert_snapshot!("full_plan", p.plan_json());
    insta::assert_snapshot!("full_gateway", p.file("gateway.json"));
    insta::assert_snapshot!("full_pipelock", p.file("pipelock.yaml"));
    insta::assert_snapshot!("full_git_gate", p.file("git-gate.json"));
    insta::assert_snapshot!("full_pre_receive", p.file("git-hooks/pre-receive"));
    assert_eq!(
        p.file("prompt.md"),
        "Be careful.\n",
        "prompt_file copied into the state dir"
    );
    assert!(p.plan.supervise.is_none());
    assert!(!p.plan.state_dir.join("supervise.json").exists());
}

#[test]
fn example_config_plan_and_files() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example.toml");
    let text = std::fs::read_to_string(example).expect("example");
    let p = prepare(&text, "demo");
    // Shipped with pipelock commented out (its image cannot be built here); uncommenting the
    // documented block must give a working pipelock config.
    assert!(!p.plan.state_dir.join("pipelock.yaml").exists());
    let uncommented = text.replace("#[bottles.demo.pipelock]", "[bottles.demo.pipelock]");
    let uncommented = uncommented
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if ["enabled", "image", "mode"]
                    .iter()
                    .any(|k| rest.starts_with(k)) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let with_pipelock = prepare(&uncommented, "demo");
    insta::assert_snapshot!("example_pipelock", with_pipelock.file("pipelock.yaml"));
    insta::assert_snapshot!("example_git_gate", p.file("git-gate.json"));
    insta::assert_snapshot!("example_prompt", p.file("prompt.md"));
    insta::assert_snapshot!("example_plan", p.plan_json());
}

#[test]
fn plan_round_trips_through_json() {
    let p = prepare(FULL, "full");
    let stored = std::fs::read(p.plan.state_dir.join("plan.json")).expect("plan.json");
    let back: Plan = serde_json::from_slice(&stored).expect("plan.json parses as a Plan");
    assert_eq!(
        serde_json::to_value(&back).expect("json"),
        serde_json::to_value(&p.plan).expect("json")
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn secret_files_are_0600_and_folders_0700() {
    let p = prepare(FULL, "full");
    let dir = &p.plan.state_dir;
    for secret in [
        "ca/ca.key",
        "gateway.json",
        "placeholders.json",
        "pipelock.yaml",
        "plan.json",
    ] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    for folder in ["", "ca", "secrets", "git-hooks"] {
        assert_eq!(mode(&dir.join(folder)), 0o700, "{folder}/");
    }
    assert_eq!(
        mode(&dir.join("ca/ca.pem")),
        0o644,
        "the CA certificate is public"
    );
    let m = prepare(MINIMAL, "demo");
    for folder in ["queue", "queue/requests", "queue/answers"] {
        assert_eq!(mode(&m.plan.state_dir.join(folder)), 0o700, "{folder}/");
    }
}

#[test]
fn the_ca_is_a_real_ca_and_its_key_matches() {
    let p = prepare(MINIMAL, "demo");
    let cert = std::fs::read_to_string(p.plan.gateway.ca_cert.clone()).expect("ca.pem");
    let key = std::fs::read_to_string(p.plan.gateway.ca_key.clone()).expect("ca.key");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    // Sign a leaf with it: proves the key and certificate belong together and the cert is a CA.
    let issuer_key = rcgen::KeyPair::from_pem(&key).expect("key parses");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&cert, issuer_key).expect("cert parses as issuer");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["api.anthropic.com".into()])
        .expect("params")
        .signed_by(&leaf_key, &issuer);
    assert!(
        leaf.is_ok(),
        "the bottle CA can sign a leaf: {:?}",
        leaf.err()
    );
}

#[test]
fn reprepare_keeps_the_ca_and_placeholders_but_rewrites_config() {
    let scratch = Scratch::new();
    let root = StateRoot::new(Some(scratch.state_dir()));
    let demo = Slug::parse("demo").expect("slug");
    let path = scratch.write_config(FULL.replace("full", "demo").as_str());
    let first = engine::prepare(&config::load(&path).expect("config"), &demo, None, &root)
        .expect("prepare");
    let ca1 = std::fs::read(&first.gateway.ca_key).expect("key");
    let pipelock1 = first.state_dir.join("pipelock.yaml");
    assert!(pipelock1.exists());

    let edited = FULL
        .replace("full", "demo")
        .replace("enabled = true", "enabled = false");
    let path = scratch.write_config(&edited);
    let second = engine::prepare(&config::load(&path).expect("config"), &demo, None, &root)
        .expect("prepare");
    assert_eq!(
        std::fs::read(&second.gateway.ca_key).expect("key"),
        ca1,
        "CA kept"
    );
    assert_eq!(
        first.agent.env["UPLOAD_KEY"], second.agent.env["UPLOAD_KEY"],
        "placeholder kept"
    );
    assert_ne!(
        first.config_hash, second.config_hash,
        "config hash follows the config"
    );
    assert!(
        !pipelock1.exists(),
        "a disabled pipelock leaves no stale pipelock.yaml"
    );
}

#[test]
fn placeholders_are_random_per_bottle() {
    let a = prepare(
        MINIMAL
            .replace(
                "allow = [\"api.anthropic.com\"]",
                "allow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"",
            )
            .as_str(),
        "demo",
    );
    let b = prepare(
        MINIMAL
            .replace(
                "allow = [\"api.anthropic.com\"]",
                "allow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"",
            )
            .as_str(),
        "demo",
    );
    let pa = &a.plan.agent.env["T"];
    let pb = &b.plan.agent.env["T"];
    assert!(
        pa.starts_with("bottle-placeholder-") && pa.len() > 40,
        "{pa}"
    );
    assert_ne!(pa, pb);
}

/// Walks every file under `dir`, returning the paths whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .expect("read")
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn cli_plan_json_has_inner_plans_and_no_real_token_anywhere() {
    const ENV_TOKEN: &str = "sk-ant-oat01-REAL-TOKEN-FROM-ENV-6f1d2c";
    const FILE_TOKEN: &str = "REAL-UPLOAD-TOKEN-IN-FILE-93ab77";
    let scratch = Scratch::new();
    std::fs::write(scratch.path().join("upload.token"), FILE_TOKEN).expect("token file");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example.toml");
    let out = scratch
        .command(&[
            "--config",
            example.to_str().expect("utf-8"),
            "plan",
            "demo",
            "--json",
        ])
        .env("CLAUDE_CODE_OAUTH_TOKEN", ENV_TOKEN)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("plan JSON");
    for inner in ["gateway", "git_gate", "supervise", "agent"] {
        assert!(v[inner].is_object(), "inner plan {inner} in {v}");
    }
    assert!(
        v["pipelock"].is_null(),
        "the example ships pipelock off: {v}"
    );
    assert_eq!(
        v["gateway"]["routes"][0]["token_source"]["env"],
        "CLAUDE_CODE_OAUTH_TOKEN"
    );
    assert!(!stdout(&out).contains(ENV_TOKEN) && !stderr(&out).contains(ENV_TOKEN));
    let state = scratch.state_dir();
    assert!(
        files_containing(&state, ENV_TOKEN).is_empty(),
        "token found in the state dir"
    );

    // Same for a file-sourced token, through the FULL config.
    let path = scratch.write_config(FULL);
    let out = scratch
        .command(&[
            "--config",
            path.to_str().expect("utf-8"),
            "plan",
            "full",
            "--json",
        ])
        .env("EXAMPLE_TOKEN", ENV_TOKEN)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("plan JSON");
    assert!(v["pipelock"].is_object(), "inner plan pipelock in {v}");
    assert!(!stdout(&out).contains(FILE_TOKEN) && !stdout(&out).contains(ENV_TOKEN));
    for token in [ENV_TOKEN, FILE_TOKEN] {
        assert!(
            files_containing(&state, token).is_empty(),
            "{token} found in the state dir"
        );
    }
    // The log file the CLI wrote is in the state dir too, so it is covered by the walk above.
    assert!(state.join("logs").is_dir());
}

#[test]
fn config_hash_is_stable_for_the_same_config() {
    let a = prepare(MINIMAL, "demo");
    let root = StateRoot::new(Some(a.scratch.state_dir()));
    let config = config::load(&a.scratch.path().join("bottle.toml")).expect("config");
    let again = engine::prepare(&config, &Slug::parse("demo").expect("slug"), None, &root)
        .expect("prepare");
    assert_eq!(a.plan.config_hash, again.config_hash);
    assert_eq!(a.plan.labels["bottle.config-hash"], a.plan.config_hash);
}

#[test]
fn a_custom_slug_names_every_resource() {
    let scratch = Scratch::new();
    let path = scratch.write_config(MINIMAL);
    let out = scratch.run(&[
        "--config",
        path.to_str().expect("utf-8"),
        "plan",
        "demo",
        "--name",
        "demo-2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["slug"], "demo-2");
    assert_eq!(v["bottle"], "demo");
    assert_eq!(v["network"]["internal"], "bottle-demo-2-int");
    assert_eq!(v["agent"]["container"], "bottle-demo-2-agent");
    assert!(
        scratch
            .state_dir()
            .join("bottles/demo-2/plan.json")
            .is_file()
    );
}
