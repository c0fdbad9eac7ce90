//! provision: fits out a started agent — ownership, prompt, skills, CA trust, git `insteadOf`
//! to the gate, the supervise MCP server — and marks it done. Every step checks its own result
//! and fails loudly: a step that silently did nothing is how the original tool lost its CA.

use super::agent_host::AgentHost;
use super::launch_parts::AGENT_SIDECAR_DIR;
use super::plan::Plan;
use crate::backend::ExecOutput;
use color_eyre::eyre::{Result, WrapErr, bail, ensure};
use std::path::Path;

/// Repairs /tmp (one root exec does both), then adds one CA to the system trust store as
/// `update-ca-certificates` would — the
/// `/etc/ssl/certs` link, its OpenSSL hash link, and the bundle — without re-processing every
/// certificate (which costs ~0.8 s of CPU per bottle). Falls back to `update-ca-certificates`
/// where `openssl` is missing. Then checks the bundle holds it. $1 cert, $2 bundle, $3 probe.
pub const INSTALL_CA: &str = r#"set -e
cert="$1"; bundle="$2"; probe="$3"
# /tmp must be world-writable with the sticky bit (smolvm packs lose it; some images too).
chmod 1777 /tmp /var/tmp 2>/dev/null || true
[ "$(stat -c %a /tmp)" = 1777 ] || { echo "/tmp is not 1777 after repair" >&2; exit 5; }
if command -v openssl >/dev/null 2>&1; then
  cd /etc/ssl/certs
  name=$(basename "$cert" .crt).pem
  ln -sf "$cert" "$name"
  ln -sf "$name" "$(openssl x509 -hash -noout -in "$cert").0"
  grep -qF "$probe" "$bundle" || printf '%s\n' "$(cat "$cert")" >> "$bundle"
else
  update-ca-certificates >&2 || exit 3
fi
grep -qF "$probe" "$bundle" || { echo "bundle lacks the CA" >&2; exit 4; }
"#;

/// Written last; the session holder waits for it before starting the agent command.
pub const DONE_MARKER: &str = "/.bottle/provisioned";

struct Agent<'a> {
    host: &'a dyn AgentHost,
    user: &'a str,
}

impl Agent<'_> {
    async fn run(&self, user: &str, cmd: &[&str]) -> Result<ExecOutput> {
        self.host.exec(user, cmd).await
    }

    /// Runs `cmd` and requires exit 0; the error carries the command and its stderr.
    async fn ok(&self, user: &str, what: &str, cmd: &[&str]) -> Result<String> {
        let out = self.run(user, cmd).await?;
        if out.code != 0 {
            bail!(
                "{what}: `{}` exited {} in {}: {}",
                cmd.join(" "),
                out.code,
                self.host.name(),
                out.stderr_text().trim()
            );
        }
        Ok(out.stdout_text())
    }
}

/// Who the agent runs as, learnt during provision.
#[derive(Debug, Clone, Copy)]
pub struct AgentIds {
    pub uid: u64,
    pub gid: u64,
}

/// Fits out the agent wherever it runs. `plan` is the plan as the agent sees it (on smolvm
/// its gate and supervise URLs name the loopback alias and published ports).
pub async fn provision(
    host: &dyn AgentHost,
    plan: &Plan,
    progress: super::launch_parts::Progress<'_>,
) -> Result<AgentIds> {
    let a = Agent {
        host,
        user: &plan.agent.user,
    };
    let user = a.user;

    progress("provision: user");
    // One exec for who the agent is and who owns its home (each exec costs a round trip).
    let ids = a
        .ok(
            user,
            "finding the agent user",
            &[
                "sh",
                "-c",
                "id -u; id -g; printf '%s\\n' \"$HOME\"; stat -c %u \"$HOME\"",
            ],
        )
        .await?;
    let mut lines = ids.lines();
    let (uid, gid, home, owner) = match (lines.next(), lines.next(), lines.next(), lines.next()) {
        (Some(u), Some(g), Some(h), Some(o)) => (
            u.trim()
                .parse::<u64>()
                .wrap_err("the agent's uid is not a number")?,
            g.trim()
                .parse::<u64>()
                .wrap_err("the agent's gid is not a number")?,
            h.trim().to_owned(),
            o.trim().to_owned(),
        ),
        _ => bail!("cannot tell the agent user's uid, gid and home from `id`: {ids:?}"),
    };
    ensure!(
        home.starts_with('/'),
        "the agent user {user} has no home folder ({home:?})"
    );
    ensure!(
        owner == uid.to_string(),
        "{home} is owned by uid {owner} but the agent runs as uid {uid}; fix the image (chown -R {user} {home})"
    );

    // The CA step is the slow one: run it beside the file steps rather than after them.
    let files = async {
        if plan.agent.workspace.is_none() {
            // A folder of the agent's own to work in. The engine unpacks the archive with its
            // own privileges, so this works although the agent (even as root) has no CAP_CHOWN.
            let workdir = plan.agent.workdir.display().to_string();
            let (parent, name) = split(&workdir)?;
            host.copy_in(parent, owned_tar(&[(name, Content::Dir(0o755))], uid, gid)?)
                .await?;
            a.ok(
                user,
                "checking the workdir",
                &[
                    "sh",
                    "-c",
                    "test -d \"$1\" && test -w \"$1\"",
                    "sh",
                    &workdir,
                ],
            )
            .await
            .wrap_err_with(|| format!("the agent cannot write its workdir {workdir}"))?;
        }
        if let Some(prompt) = &plan.agent.prompt {
            progress("provision: prompt");
            let text = std::fs::read(&prompt.host)
                .wrap_err_with(|| format!("cannot read the prompt {}", prompt.host.display()))?;
            let rel = relative_to_home(&prompt.container, &home)?;
            let tar = owned_tar(&[(rel.as_str(), Content::File(&text, 0o644))], uid, gid)?;
            host.copy_in(&home, tar).await?;
            let back = a
                .run(user, &["cat", &prompt.container.display().to_string()])
                .await?;
            ensure!(
                back.code == 0 && back.stdout == text,
                "the prompt did not arrive intact at {}",
                prompt.container.display()
            );
        }

        if !plan.agent.skills.is_empty() {
            progress("provision: skills");
            let mut expected = 0usize;
            let mut entries: Vec<(String, Vec<u8>, u32)> = Vec::new();
            for skill in &plan.agent.skills {
                let rel = relative_to_home(&skill.container, &home)?;
                collect_dir(&skill.host, &rel, &mut entries)
                    .wrap_err_with(|| format!("cannot read the skill {}", skill.host.display()))?;
            }
            let files: Vec<(&str, Content<'_>)> = entries
                .iter()
                .map(|(p, bytes, mode)| {
                    if *mode == 0 {
                        (p.as_str(), Content::Dir(0o755))
                    } else {
                        expected += 1;
                        (p.as_str(), Content::File(bytes, *mode))
                    }
                })
                .collect();
            host.copy_in(&home, owned_tar(&files, uid, gid)?).await?;
            for skill in &plan.agent.skills {
                let dir = skill.container.display().to_string();
                let n = a
                    .ok(
                        user,
                        "checking skills",
                        &["sh", "-c", "find \"$1\" -type f | wc -l", "sh", &dir],
                    )
                    .await?;
                ensure!(
                    n.trim().parse::<usize>().unwrap_or(0) > 0 || expected == 0,
                    "skill {dir} arrived empty"
                );
            }
        }

        if let Some(gate) = &plan.git_gate {
            progress("provision: git");
            for repo in &gate.repos {
                let key = format!("url.{}.insteadOf", repo.gate_url);
                a.ok(
                    user,
                    "pointing git at the gate",
                    &[
                        "git",
                        "config",
                        "--global",
                        "--replace-all",
                        &key,
                        &repo.upstream,
                    ],
                )
                .await?;
                let got = a
                    .ok(
                        user,
                        "checking git insteadOf",
                        &["git", "config", "--global", "--get", &key],
                    )
                    .await?;
                ensure!(
                    got.trim() == repo.upstream,
                    "git insteadOf for {} reads back as {:?}",
                    repo.name,
                    got.trim()
                );
            }
        }

        if plan.supervise.is_some() || plan.agent.claude.is_some() {
            progress("provision: Claude Code settings");
            claude_settings(&a, plan, &home, uid, gid).await?;
        }

        Ok::<(), color_eyre::Report>(())
    };
    let ca = async {
        progress("provision: CA trust");
        let ca = std::fs::read_to_string(&plan.gateway.ca_cert).wrap_err_with(|| {
            format!(
                "cannot read the bottle CA {}",
                plan.gateway.ca_cert.display()
            )
        })?;
        let ca_path = plan.agent.ca_cert_in_agent.display().to_string();
        let (ca_dir, ca_name) = split(&ca_path)?;
        host.copy_in(
            ca_dir,
            owned_tar(&[(ca_name, Content::File(ca.as_bytes(), 0o644))], 0, 0)?,
        )
        .await?;
        // One line of the certificate's base64 body identifies it in the system bundle.
        let probe = ca
            .lines()
            .find(|l| l.len() > 40 && !l.starts_with("-----"))
            .unwrap_or_default()
            .to_owned();
        let bundle = plan
            .agent
            .env
            .get("SSL_CERT_FILE")
            .cloned()
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let installed = a
            .run(
                "root",
                &["sh", "-c", INSTALL_CA, "sh", &ca_path, &bundle, &probe],
            )
            .await?;
        match installed.code {
            0 => {}
            5 => bail!("repairing /tmp: {}", installed.stderr_text().trim()),
            3 => bail!(
                "installing the bottle CA: update-ca-certificates failed: {}",
                installed.stderr_text().trim()
            ),
            4 => bail!(
                "the bottle CA was installed but {bundle} does not contain it: {}",
                installed.stderr_text().trim()
            ),
            code => bail!(
                "installing the bottle CA failed (exit {code}): {}",
                installed.stderr_text().trim()
            ),
        }
        Ok::<(), color_eyre::Report>(())
    };
    tokio::try_join!(files, ca)?;
    Ok(AgentIds { uid, gid })
}

/// Reads a JSON object from the agent (an absent or empty file is `{}`).
async fn read_json(
    a: &Agent<'_>,
    path: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let existing = a.run(a.user, &["cat", path]).await?;
    if existing.code != 0 || existing.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&existing.stdout)
        .wrap_err_with(|| format!("{path} in the agent is not JSON"))?
    {
        serde_json::Value::Object(m) => Ok(m),
        _ => bail!("{path} in the agent is not a JSON object"),
    }
}

/// Sets `key` in `obj` to an object (keeping one that is there) and returns it.
fn object<'m>(
    obj: &'m mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Result<&'m mut serde_json::Map<String, serde_json::Value>> {
    obj.entry(key)
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| color_eyre::eyre::eyre!("{path}: {key} is not an object"))
}

/// Merges what Claude Code needs into the agent's `~/.claude.json` (the supervise MCP server,
/// and for Claude Code its first-run answers) and `~/.claude/settings.json`, keeping whatever
/// the image put there, then reads both back.
async fn claude_settings(a: &Agent<'_>, plan: &Plan, home: &str, uid: u64, gid: u64) -> Result<()> {
    let path = format!("{home}/.claude.json");
    let mut doc = read_json(a, &path).await?;
    if let Some(s) = &plan.supervise {
        object(&mut doc, "mcpServers", &path)?.insert(
            "supervise".into(),
            serde_json::json!({ "type": "http", "url": s.url }),
        );
    }
    let workdir = plan.agent.workdir.display().to_string();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(seed) = &plan.agent.claude {
        for (k, v) in [
            ("hasCompletedOnboarding", serde_json::json!(true)),
            (
                "lastOnboardingVersion",
                serde_json::json!(super::claude_code::VERSION),
            ),
            ("autoUpdates", serde_json::json!(false)),
        ] {
            doc.insert(k.into(), v);
        }
        // A theme the image chose is kept; without one Claude Code would ask.
        doc.entry("theme").or_insert(serde_json::json!("dark"));
        if seed.skip_permissions {
            doc.insert(
                "bypassPermissionsModeAccepted".into(),
                serde_json::json!(true),
            );
        }
        let project = object(object(&mut doc, "projects", &path)?, &workdir, &path)?;
        project.insert("hasTrustDialogAccepted".into(), serde_json::json!(true));
        project.insert(
            "hasCompletedProjectOnboarding".into(),
            serde_json::json!(true),
        );
        if let Some(suffix) = &seed.approved_key_suffix {
            let responses = object(&mut doc, "customApiKeyResponses", &path)?;
            let approved = responses
                .entry("approved")
                .or_insert_with(|| serde_json::json!([]));
            match approved.as_array_mut() {
                Some(list) if !list.iter().any(|v| v == suffix.as_str()) => {
                    list.push(serde_json::json!(suffix))
                }
                Some(_) => {}
                None => bail!("{path}: customApiKeyResponses.approved is not a list"),
            }
        }
        let settings_path = format!("{home}/.claude/settings.json");
        let mut settings = read_json(a, &settings_path).await?;
        if seed.skip_permissions {
            // Claude Code 2.1 moved this answer from ~/.claude.json to its settings.
            settings.insert(
                "skipDangerousModePermissionPrompt".into(),
                serde_json::json!(true),
            );
        }
        add_status_hooks(&mut settings, &settings_path)?;
        files.push((
            ".claude/settings.json".into(),
            serde_json::to_vec_pretty(&settings).wrap_err("cannot encode settings.json")?,
        ));
    }
    files.push((
        ".claude.json".into(),
        serde_json::to_vec_pretty(&doc).wrap_err("cannot encode .claude.json")?,
    ));
    // The prompt and skill mounts make Docker create ~/.claude as root; Claude Code writes its
    // sessions there, so the directory entry hands it to the agent (files inside stay as mounted).
    let mut entries: Vec<(&str, Content<'_>)> = Vec::new();
    if plan.agent.claude.is_some() {
        entries.push((".claude", Content::Dir(0o700)));
    }
    entries.extend(
        files
            .iter()
            .map(|(p, bytes)| (p.as_str(), Content::File(bytes, 0o600))),
    );
    a.host.copy_in(home, owned_tar(&entries, uid, gid)?).await?;
    // Read back in one exec: each file, then a separator.
    let script = "for f in \"$@\"; do cat \"$f\"; printf '\\n\\036\\n'; done";
    let mut argv = vec!["sh", "-c", script, "sh"];
    let full: Vec<String> = files.iter().map(|(p, _)| format!("{home}/{p}")).collect();
    argv.extend(full.iter().map(String::as_str));
    let back = a
        .ok(a.user, "reading Claude Code's settings back", &argv)
        .await?;
    let parts: Vec<&str> = back.split("\n\u{1e}\n").collect();
    for ((p, _), text) in files.iter().zip(&parts) {
        let parsed: serde_json::Value = serde_json::from_str(text)
            .wrap_err_with(|| format!("{home}/{p} as written is not JSON"))?;
        let ok = match p.as_str() {
            ".claude.json" => {
                plan.supervise
                    .as_ref()
                    .is_none_or(|s| parsed["mcpServers"]["supervise"]["url"] == s.url.as_str())
                    && plan.agent.claude.as_ref().is_none_or(|_| {
                        parsed["hasCompletedOnboarding"] == true
                            && parsed["projects"][workdir.as_str()]["hasTrustDialogAccepted"]
                                == true
                    })
            }
            _ => {
                plan.agent.claude.as_ref().is_none_or(|seed| {
                    !seed.skip_permissions || parsed["skipDangerousModePermissionPrompt"] == true
                }) && STATUS_EVENTS.iter().all(|(event, _)| {
                    parsed["hooks"][event].as_array().is_some_and(|groups| {
                        groups
                            .iter()
                            .any(|g| g["hooks"][0]["command"] == STATUS_HOOK)
                    })
                })
            }
        };
        ensure!(ok, "{home}/{p} does not hold what provision wrote");
    }
    Ok(())
}

/// The command Claude Code runs on its events to tell the session holder what it is doing.
const STATUS_HOOK: &str = "/.bottle/bottle-sidecar session hook";
/// Claude Code's events that say what it is doing, and whether each takes a tool matcher.
const STATUS_EVENTS: [(&str, bool); 6] = [
    ("SessionStart", false),
    ("UserPromptSubmit", false),
    ("PostToolUse", true),
    ("Notification", false),
    ("PermissionRequest", true),
    ("Stop", false),
];

/// Adds the status hook to each of [`STATUS_EVENTS`] in Claude Code's `settings.json`,
/// keeping the hooks the image set (and adding ours once, however often provision runs).
fn add_status_hooks(
    settings: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Result<()> {
    let hooks = object(settings, "hooks", path)?;
    for (event, matcher) in STATUS_EVENTS {
        let groups = hooks.entry(event).or_insert_with(|| serde_json::json!([]));
        let Some(list) = groups.as_array_mut() else {
            bail!("{path}: hooks.{event} is not a list");
        };
        let ours = |g: &serde_json::Value| {
            g["hooks"]
                .as_array()
                .is_some_and(|h| h.iter().any(|x| x["command"] == STATUS_HOOK))
        };
        if !list.iter().any(ours) {
            let hook =
                serde_json::json!({ "type": "command", "command": STATUS_HOOK, "timeout": 5 });
            list.push(if matcher {
                serde_json::json!({ "matcher": "*", "hooks": [hook] })
            } else {
                serde_json::json!({ "hooks": [hook] })
            });
        }
    }
    Ok(())
}

/// Tells the session holder provision is complete: the agent command may start.
/// The session's run folder (agent-owned, 0700) comes first, so the holder finds it ready.
pub async fn mark_done(
    host: &dyn AgentHost,
    plan: &Plan,
    ids: AgentIds,
    progress: super::launch_parts::Progress<'_>,
) -> Result<()> {
    progress("provision: done");
    let (dir, name) = split(DONE_MARKER)?;
    debug_assert_eq!(dir, AGENT_SIDECAR_DIR);
    debug_assert_eq!(name, crate::sidecar::session::READY_MARKER);
    // How the holder tells the agent's status, read once it sees the marker.
    let status =
        serde_json::to_vec(&plan.agent.status).wrap_err("cannot encode the status config")?;
    host.copy_in(
        dir,
        owned_tar(
            &[
                (crate::sidecar::session::RUN_DIR, Content::Dir(0o700)),
                (
                    crate::wire::session::STATUS_CONFIG,
                    Content::File(&status, 0o644),
                ),
                (name, Content::File(b"ok\n", 0o644)),
            ],
            ids.uid,
            ids.gid,
        )?,
    )
    .await?;
    Ok(())
}

enum Content<'a> {
    File(&'a [u8], u32),
    Dir(u32),
}

/// A tar whose entries belong to `uid:gid`, with every parent folder listed (so the engine
/// creates them with that owner rather than root).
fn owned_tar(entries: &[(&str, Content<'_>)], uid: u64, gid: u64) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, content) in entries {
        let p = Path::new(path);
        let mut parents: Vec<&Path> = p
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        let own_mode = match content {
            Content::Dir(mode) => {
                parents.insert(0, p);
                Some(*mode)
            }
            Content::File(..) => None,
        };
        for dir in parents.into_iter().rev() {
            if dirs_done.insert(dir.to_owned()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(if dir == p {
                    own_mode.unwrap_or(0o755)
                } else {
                    0o755
                });
                h.set_uid(uid);
                h.set_gid(gid);
                h.set_size(0);
                h.set_mtime(0);
                h.set_cksum();
                tar.append_data(&mut h, format!("{}/", dir.display()), std::io::empty())
                    .wrap_err("cannot build an archive")?;
            }
        }
        if let Content::File(bytes, mode) = content {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(*mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, path, *bytes)
                .wrap_err("cannot build an archive")?;
        }
    }
    tar.into_inner().wrap_err("cannot build an archive")
}

/// Walks a host folder into (relative path, bytes, mode) entries; mode 0 marks a folder.
fn collect_dir(host: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>, u32)>) -> Result<()> {
    out.push((rel.to_owned(), Vec::new(), 0));
    let mut entries: Vec<_> = std::fs::read_dir(host)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let child = format!("{rel}/{name}");
        let kind = e.file_type()?;
        if kind.is_dir() {
            collect_dir(&e.path(), &child, out)?;
        } else if kind.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = e.metadata()?.permissions().mode() & 0o755 | 0o644;
            out.push((child, std::fs::read(e.path())?, mode));
        }
        // Symlinks are skipped: they could point anywhere on the host.
    }
    Ok(())
}

fn relative_to_home(path: &Path, home: &str) -> Result<String> {
    let p = path.display().to_string();
    let plan_home = super::prepare::in_agent::HOME;
    let rest = p
        .strip_prefix(&format!("{plan_home}/"))
        .or_else(|| p.strip_prefix(&format!("{home}/")))
        .ok_or_else(|| color_eyre::eyre::eyre!("{p} is not under the agent's home"))?;
    Ok(rest.to_owned())
}

fn split(path: &str) -> Result<(&str, &str)> {
    path.rsplit_once('/')
        .map(|(d, n)| (if d.is_empty() { "/" } else { d }, n))
        .ok_or_else(|| color_eyre::eyre::eyre!("{path} is not an absolute path"))
}
