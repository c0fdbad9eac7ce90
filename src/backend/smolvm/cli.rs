//! A typed wrapper over the `smolvm` CLI. Every failure names the command, its exit code and
//! its stderr. `$BOTTLE_TUI_SMOLVM` overrides the program (tests point it at a fake).

use color_eyre::eyre::{Result, WrapErr, eyre};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

pub const PROGRAM_ENV: &str = "BOTTLE_TUI_SMOLVM";

/// The smolvm program: `$BOTTLE_TUI_SMOLVM`, else `smolvm` on the PATH.
pub fn program() -> PathBuf {
    std::env::var_os(PROGRAM_ENV).map_or_else(|| PathBuf::from("smolvm"), PathBuf::from)
}

/// The arguments of `machine exec` running `cmd` in `name` with `env` (smolvm gives an exec
/// none of the machine's create-time environment, so callers pass it every time).
pub fn exec_args(name: &str, env: &BTreeMap<String, String>, cmd: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "machine".into(),
        "exec".into(),
        "--name".into(),
        name.into(),
    ];
    args.extend(Smolvm::env_args(env));
    args.push("--".into());
    args.extend(cmd.iter().map(|s| s.to_string()));
    args
}

/// A machine's image: a packed `.smolmachine`, or a Smolfile. smolvm refuses both at once
/// (`--from` and `--smolfile` are mutually exclusive), so the type holds exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineSource {
    From(PathBuf),
    Smolfile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct MachineCreate {
    pub name: String,
    pub source: MachineSource,
    pub allow_cidrs: Vec<IpNet>,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One failed smolvm call.
#[derive(Debug, Clone)]
pub struct CallError {
    pub argv: Vec<String>,
    pub code: Option<i32>,
    pub stderr: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self
            .code
            .map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
        write!(f, "`{}` {code}", self.argv.join(" "))?;
        if !self.stderr.trim().is_empty() {
            write!(f, ": {}", self.stderr.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

#[derive(Debug, Clone)]
pub struct Smolvm {
    program: PathBuf,
    pack_cache: PathBuf,
}

impl Smolvm {
    pub fn new(pack_cache: PathBuf) -> Self {
        Self {
            program: program(),
            pack_cache,
        }
    }

    fn argv(&self, args: &[String]) -> Vec<String> {
        std::iter::once(self.program.display().to_string())
            .chain(args.iter().cloned())
            .collect()
    }

    /// Runs `smolvm ARGS`; a non-zero exit is a [`CallError`].
    async fn call(&self, args: Vec<String>) -> Result<Output> {
        let out = self.run(args.clone()).await?;
        if out.code != 0 {
            return Err(CallError {
                argv: self.argv(&args),
                code: Some(out.code),
                stderr: out.stderr,
            }
            .into());
        }
        Ok(out)
    }

    /// Runs `smolvm ARGS` and returns its output whatever the exit code.
    async fn run(&self, args: Vec<String>) -> Result<Output> {
        let out = Command::new(&self.program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .wrap_err_with(|| {
                format!(
                    "cannot run `{}` (is smolvm installed?)",
                    self.argv(&args).join(" ")
                )
            })?;
        match out.status.code() {
            Some(code) => Ok(Output {
                code,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            None => Err(CallError {
                argv: self.argv(&args),
                code: None,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
            .into()),
        }
    }

    fn env_args(env: &BTreeMap<String, String>) -> Vec<String> {
        env.iter()
            .flat_map(|(k, v)| ["-e".to_owned(), format!("{k}={v}")])
            .collect()
    }

    pub async fn machine_create(&self, spec: &MachineCreate) -> Result<()> {
        let mut args: Vec<String> = vec![
            "machine".into(),
            "create".into(),
            "--name".into(),
            spec.name.clone(),
        ];
        match &spec.source {
            MachineSource::From(p) => args.extend(["--from".into(), p.display().to_string()]),
            MachineSource::Smolfile(p) => {
                args.extend(["--smolfile".into(), p.display().to_string()])
            }
        }
        for cidr in &spec.allow_cidrs {
            args.extend(["--allow-cidr".into(), cidr.to_string()]);
        }
        args.extend(Self::env_args(&spec.env));
        self.call(args).await.map(drop)
    }

    pub async fn machine_start(&self, name: &str) -> Result<()> {
        self.call(vec![
            "machine".into(),
            "start".into(),
            "--name".into(),
            name.into(),
        ])
        .await
        .map(drop)
    }

    /// Runs a command in the guest. `env` is passed on every exec: the env given at create
    /// reaches only the guest's PID 1, not processes exec starts.
    pub async fn machine_exec(
        &self,
        name: &str,
        env: &BTreeMap<String, String>,
        cmd: &[&str],
    ) -> Result<Output> {
        self.run(exec_args(name, env, cmd)).await
    }

    /// Copies a host file into the guest.
    pub async fn machine_cp(&self, name: &str, src: &Path, dst: &str) -> Result<()> {
        self.call(vec![
            "machine".into(),
            "cp".into(),
            src.display().to_string(),
            format!("{name}:{dst}"),
        ])
        .await
        .map(drop)
    }

    /// Removes a machine; a machine that does not exist is not an error.
    pub async fn machine_rm(&self, name: &str) -> Result<()> {
        let args: Vec<String> = vec![
            "machine".into(),
            "rm".into(),
            "--force".into(),
            "--name".into(),
            name.into(),
        ];
        let out = self.run(args.clone()).await?;
        if out.code == 0 || out.stderr.to_ascii_lowercase().contains("not found") {
            Ok(())
        } else {
            Err(CallError {
                argv: self.argv(&args),
                code: Some(out.code),
                stderr: out.stderr,
            }
            .into())
        }
    }

    /// The packed `.smolmachine` for an image, made once and cached by image reference.
    pub async fn pack(&self, image: &str) -> Result<PathBuf> {
        let digest = hex::encode(&Sha256::digest(image.as_bytes())[..8]);
        let safe: String = image
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.pack_cache.join(format!("{safe}-{digest}.smolmachine"));
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.pack_cache).wrap_err_with(|| {
            format!("cannot create the pack cache {}", self.pack_cache.display())
        })?;
        // Pack to a temporary name, then rename: an interrupted pack never poisons the cache.
        let partial = path.with_extension("partial");
        self.call(vec![
            "pack".into(),
            "create".into(),
            "--image".into(),
            image.into(),
            "-o".into(),
            partial.display().to_string(),
        ])
        .await?;
        std::fs::rename(&partial, &path).map_err(|e| {
            eyre!(
                "smolvm pack reported success but {} is not there: {e}",
                partial.display()
            )
        })?;
        Ok(path)
    }
}
