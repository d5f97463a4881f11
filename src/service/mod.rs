//! Service integration (SPEC §7, §8): install openclawd as a systemd user unit or a launchd
//! agent with the environment it needs, start/stop/restart it (through the service manager
//! when one runs it, else as a background process with a pid file), and tell systemd how it is
//! doing (`notify`).
//!
//! The templates in `systemd/` and `launchd/` are what gets rendered. Service managers are
//! reached through `systemctl` / `launchctl` on `PATH`; when they are missing or fail, files
//! are still written and the failure is reported with the command to run.

pub mod control;
pub mod env;
pub mod launchd;
pub mod notify;
pub mod systemd;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{self, Overrides, Snapshot};

/// How long a quick `systemctl`/`launchctl` query may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a start may take (`systemctl start` waits for `READY=1`).
pub const START_TIMEOUT: Duration = Duration::from_secs(150);

/// Which service manager a service file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManagerKind {
    Systemd,
    Launchd,
}

impl ManagerKind {
    /// This OS's: launchd on macOS, systemd elsewhere.
    pub fn native() -> ManagerKind {
        if cfg!(target_os = "macos") {
            ManagerKind::Launchd
        } else {
            ManagerKind::Systemd
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ManagerKind::Systemd => "systemd",
            ManagerKind::Launchd => "launchd",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("`{program}` was not found on PATH")]
    NotFound { program: String },
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {secs} s")]
    Timeout { command: String, secs: u64 },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot find openclawd's own executable: {0}")]
    Exe(std::io::Error),
    #[error("cannot find the home directory: HOME is not set. Set HOME, or pass --state-dir.")]
    NoHome,
    #[error("cannot write {}: {source}. Check that the directory is writable{}.", path.display(), if path.starts_with("/etc") { " (a --system install needs root: sudo)" } else { "" })]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] config::ConfigError),
}

/// Runs `argv` (the program looked up on `PATH`), returning its stdout on success.
pub fn run_command(argv: &[String], limit: Duration) -> Result<String, CommandError> {
    let command = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandError::NotFound {
            program: String::new(),
        });
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::NotFound {
                program: program.clone(),
            })
        }
        Err(source) => return Err(CommandError::Spawn { command, source }),
    };
    // Drain the pipes on threads so a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout {
                    command,
                    secs: limit.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => return Err(CommandError::Spawn { command, source }),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(CommandError::Failed {
            command,
            status: match status.code() {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            },
            stdout,
            stderr: stderr.trim().to_string(),
        })
    }
}

/// The path a service should run: the path openclawd was started by when it names this same
/// executable (a stable symlink such as `/opt/homebrew/bin/openclawd` survives upgrades, its
/// versioned target does not), else the executable itself.
pub fn service_exe(path_env: Option<&str>) -> Result<PathBuf, ServiceError> {
    let exe = std::env::current_exe().map_err(ServiceError::Exe)?;
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    let invoked = std::env::args_os().next().map(PathBuf::from);
    let candidate = invoked.and_then(|a| {
        if a.components().count() > 1 {
            std::path::absolute(&a).ok()
        } else {
            path_env?
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(&a))
                .find(|p| p.is_file())
                .and_then(|p| std::path::absolute(p).ok())
        }
    });
    match candidate {
        Some(c) if std::fs::canonicalize(&c).ok().as_deref() == Some(real.as_path()) => Ok(c),
        _ => Ok(real),
    }
}

/// Under `sudo` (root, `SUDO_USER` set) a `--system` install is for the invoking user: their
/// home decides the state directory, and the files written there must be theirs. Points
/// `HOME` in `env` at that user's home and returns their uid and gid.
pub fn adopt_sudo_user(env: &mut BTreeMap<String, String>) -> Option<(u32, u32)> {
    if !nix::unistd::getuid().is_root() {
        return None;
    }
    let name = env
        .get("SUDO_USER")
        .filter(|u| !u.is_empty() && *u != "root")?;
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    env.insert("HOME".into(), user.dir.display().to_string());
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Everything `install`/`uninstall` decide from.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub kind: ManagerKind,
    pub system: bool,
    pub home: PathBuf,
    pub xdg_config_home: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub exe: PathBuf,
    /// Arguments after `run` (`--bind`, which has no environment variable).
    pub run_args: Vec<String>,
    pub uid: u32,
    /// `User=` of a system unit: `SUDO_USER` under sudo, else the current user.
    pub user: Option<String>,
}

impl ServiceContext {
    /// From the command line's overrides and the process environment.
    pub fn new(
        kind: ManagerKind,
        system: bool,
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<ServiceContext, ServiceError> {
        let home = env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or(ServiceError::NoHome)?;
        let snapshot = config::degraded_snapshot(overrides, env)?;
        let exe = service_exe(env.get("PATH").map(String::as_str))?;
        let mut run_args = Vec::new();
        if let Some(bind) = &overrides.bind {
            run_args.extend(["--bind".to_string(), bind.clone()]);
        }
        let uid = nix::unistd::getuid().as_raw();
        let user = env
            .get("SUDO_USER")
            .filter(|u| !u.is_empty() && uid == 0)
            .cloned()
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            });
        Ok(ServiceContext {
            kind,
            system,
            home,
            xdg_config_home: env.get("XDG_CONFIG_HOME").map(PathBuf::from),
            state_dir: snapshot.paths.state_dir,
            exe,
            run_args,
            uid,
            user,
        })
    }

    /// `<state>/openclawd/service.env`.
    pub fn env_file(&self) -> PathBuf {
        self.state_dir.join("openclawd").join("service.env")
    }

    /// The unit or plist.
    pub fn service_file(&self) -> PathBuf {
        match self.kind {
            ManagerKind::Systemd => {
                systemd::unit_path(self.system, &self.home, self.xdg_config_home.as_deref())
            }
            ManagerKind::Launchd => launchd::plist_path(&self.home),
        }
    }

    /// Human name of the service: `openclawd.service` / `ai.openclaw.openclawd`.
    pub fn service_name(&self) -> &'static str {
        match self.kind {
            ManagerKind::Systemd => systemd::UNIT,
            ManagerKind::Launchd => launchd::LABEL,
        }
    }

    /// True when the unit or plist is on disk.
    pub fn installed(&self) -> bool {
        self.service_file().exists()
    }
}

/// One file `install` writes.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: String,
    /// What `--dry-run` shows (secrets masked).
    pub shown: String,
    pub mode: u32,
}

/// One service-manager command, and what it is for.
#[derive(Debug, Clone)]
pub struct PlannedCommand {
    pub argv: Vec<String>,
    /// A failure of this one is not a failure (`bootout` of a job that is not loaded).
    pub may_fail: bool,
}

impl PlannedCommand {
    fn must(argv: Vec<String>) -> PlannedCommand {
        PlannedCommand {
            argv,
            may_fail: false,
        }
    }
    fn may(argv: Vec<String>) -> PlannedCommand {
        PlannedCommand {
            argv,
            may_fail: true,
        }
    }
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// What `install` will do.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    pub files: Vec<PlannedFile>,
    /// Directories created first (the launchd log directory).
    pub dirs: Vec<PathBuf>,
    pub commands: Vec<PlannedCommand>,
    /// Warnings for the person installing (a `${VAR}` set nowhere).
    pub warnings: Vec<String>,
    /// Who owns the env file and the state directories created for it (`sudo` installs).
    pub owner: Option<(u32, u32)>,
}

/// The text of `openclaw.json` and its includes, and the names `env.vars` provides.
fn config_sources(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> (
    Vec<String>,
    BTreeSet<String>,
    Option<Snapshot>,
    Option<String>,
) {
    match config::load(overrides, env) {
        Ok(s) => {
            let texts = std::iter::once(&s.paths.config_file)
                .chain(s.paths.included_files.iter())
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect();
            // Variables the config's env.vars filled in (present in the snapshot's env only).
            let from_config = s
                .env
                .keys()
                .filter(|k| !env.contains_key(*k))
                .cloned()
                .collect();
            (texts, from_config, Some(s), None)
        }
        Err(e) => {
            let texts = config::degraded_snapshot(overrides, env)
                .ok()
                .and_then(|s| std::fs::read_to_string(&s.paths.config_file).ok())
                .into_iter()
                .collect();
            (texts, BTreeSet::new(), None, Some(e.to_string()))
        }
    }
}

/// The service environment for the current shell (used by `install` and `doctor`).
pub fn service_env(
    ctx: &ServiceContext,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> (env::ServiceEnv, Vec<String>) {
    let (texts, from_config, snapshot, config_error) = config_sources(overrides, env);
    let mut override_vars: Vec<(&'static str, String)> = Vec::new();
    if let Some(c) = &overrides.config {
        if let Ok(abs) = std::path::absolute(c) {
            override_vars.push(("OPENCLAW_CONFIG_PATH", abs.display().to_string()));
        }
    }
    if let Some(p) = overrides.port {
        override_vars.push(("OPENCLAW_GATEWAY_PORT", p.to_string()));
    }
    if let Some(b) = &overrides.ollama_bin {
        let b = if b.components().count() > 1 {
            std::path::absolute(b).unwrap_or_else(|_| b.clone())
        } else {
            b.clone()
        };
        override_vars.push(("OPENCLAWD_OLLAMA_BIN", b.display().to_string()));
    }
    let ollama_bin = snapshot
        .as_ref()
        .map(|s| s.paths.ollama_bin.clone())
        .or_else(|| {
            config::degraded_snapshot(overrides, env)
                .ok()
                .map(|s| s.paths.ollama_bin)
        });
    let mut path_dirs = Vec::new();
    if let Some(dir) = ollama_bin
        .filter(|b| b.is_absolute())
        .and_then(|b| b.parent().map(Path::to_path_buf))
    {
        path_dirs.push(dir);
    }
    if let Some(dir) = ctx.exe.parent() {
        path_dirs.push(dir.to_path_buf());
    }
    let service_env = env::collect(&env::EnvInputs {
        process_env: env,
        config_texts: &texts,
        config_env_vars: &from_config,
        state_dir: &ctx.state_dir,
        overrides: &override_vars,
        path_dirs: &path_dirs,
    });
    let mut warnings = Vec::new();
    if let Some(e) = config_error {
        warnings.push(format!(
            "the config does not load ({e}); the service starts degraded until it is fixed"
        ));
    }
    for name in &service_env.missing {
        warnings.push(format!(
            "the config references ${{{name}}} but it is not set in this shell: export it and \
             run `openclawd install` again, or the service will not load the config"
        ));
    }
    (service_env, warnings)
}

/// Plans `install`: the env file, the unit or plist, and the commands that load it.
pub fn plan_install(
    ctx: &ServiceContext,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> InstallPlan {
    let (service_env, warnings) = service_env(ctx, overrides, env);
    let env_file = ctx.env_file();
    let mut files = vec![PlannedFile {
        path: env_file.clone(),
        contents: env::render(&service_env),
        shown: env::render_masked(&service_env),
        mode: 0o600,
    }];
    let mut dirs = Vec::new();
    let commands = match ctx.kind {
        ManagerKind::Systemd => {
            let mut args = vec!["run".to_string()];
            args.extend(ctx.run_args.iter().cloned());
            let unit = systemd::render(&systemd::UnitParams {
                exe: &ctx.exe,
                args: &args,
                env_file: &env_file,
                user: ctx.user.as_deref(),
                system: ctx.system,
                systemd_version: systemd::version(),
            });
            files.push(PlannedFile {
                path: ctx.service_file(),
                shown: unit.clone(),
                contents: unit,
                mode: 0o644,
            });
            vec![
                PlannedCommand::must(systemd::systemctl(ctx.system, &["daemon-reload"])),
                PlannedCommand::must(systemd::systemctl(
                    ctx.system,
                    &["enable", "--now", systemd::UNIT],
                )),
            ]
        }
        ManagerKind::Launchd => {
            let log_file = launchd::log_path(&ctx.state_dir);
            if let Some(d) = log_file.parent() {
                dirs.push(d.to_path_buf());
            }
            let plist = launchd::render(&launchd::PlistParams {
                exe: &ctx.exe,
                extra_args: &ctx.run_args,
                env_file: &env_file,
                state_dir: &ctx.state_dir,
                log_file: &log_file,
            });
            files.push(PlannedFile {
                path: ctx.service_file(),
                shown: plist.clone(),
                contents: plist,
                mode: 0o644,
            });
            let plist_path = ctx.service_file().display().to_string();
            // A reinstall replaces a loaded job; `enable` first, because a `bootout` can
            // leave the job disabled (openclaw/openclaw#80384).
            vec![
                PlannedCommand::may(launchd::launchctl(&["bootout", &launchd::target(ctx.uid)])),
                PlannedCommand::must(launchd::launchctl(&["enable", &launchd::target(ctx.uid)])),
                PlannedCommand::must(launchd::launchctl(&[
                    "bootstrap",
                    &launchd::domain(ctx.uid),
                    &plist_path,
                ])),
            ]
        }
    };
    InstallPlan {
        files,
        dirs,
        commands,
        warnings,
        owner: None,
    }
}

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub written: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub ran: Vec<String>,
    /// The first required command that failed, and why: the service is not loaded.
    pub failed: Option<(String, CommandError)>,
    /// Commands the person should run themselves after a failure.
    pub remaining: Vec<String>,
}

/// Writes the files, then runs the commands until one fails.
pub fn apply_install(plan: &InstallPlan) -> Result<ApplyReport, ServiceError> {
    let mut report = ApplyReport::default();
    for d in &plan.dirs {
        std::fs::create_dir_all(d).map_err(|source| ServiceError::Write {
            path: d.clone(),
            source,
        })?;
    }
    for f in &plan.files {
        // The private file lives in the user's state directory: under sudo it (and any
        // directory created for it) must belong to the user the service runs as, and root
        // writes it only through descriptors (never by path into the user's directory).
        let private = f.mode & 0o077 == 0;
        let owner = plan
            .owner
            .filter(|_| private)
            .map(|(uid, gid)| crate::fsutil::Owner { uid, gid });
        write_file(f, owner)?;
        report.written.push(f.path.clone());
    }
    run_planned(&plan.commands, &mut report);
    Ok(report)
}

fn write_file(f: &PlannedFile, owner: Option<crate::fsutil::Owner>) -> Result<(), ServiceError> {
    crate::fsutil::write_atomic_owned(&f.path, f.contents.as_bytes(), f.mode, owner).map_err(
        |source| ServiceError::Write {
            path: f.path.clone(),
            source,
        },
    )
}

fn run_planned(commands: &[PlannedCommand], report: &mut ApplyReport) {
    for (i, c) in commands.iter().enumerate() {
        match run_command(&c.argv, START_TIMEOUT) {
            Ok(_) => report.ran.push(c.display()),
            Err(_) if c.may_fail => report.ran.push(c.display()),
            Err(e) => {
                report.failed = Some((c.display(), e));
                report.remaining = commands[i..]
                    .iter()
                    .filter(|c| !c.may_fail)
                    .map(PlannedCommand::display)
                    .collect();
                return;
            }
        }
    }
}

/// What `uninstall` will do: unload, then remove the service file and the env file.
pub struct UninstallPlan {
    pub before: Vec<PlannedCommand>,
    pub files: Vec<PathBuf>,
    pub after: Vec<PlannedCommand>,
}

pub fn plan_uninstall(ctx: &ServiceContext) -> UninstallPlan {
    let (before, after) = match ctx.kind {
        ManagerKind::Systemd => (
            vec![PlannedCommand::must(systemd::systemctl(
                ctx.system,
                &["disable", "--now", systemd::UNIT],
            ))],
            vec![PlannedCommand::must(systemd::systemctl(
                ctx.system,
                &["daemon-reload"],
            ))],
        ),
        ManagerKind::Launchd => (
            vec![PlannedCommand::may(launchd::launchctl(&[
                "bootout",
                &launchd::target(ctx.uid),
            ]))],
            Vec::new(),
        ),
    };
    UninstallPlan {
        before,
        files: vec![ctx.service_file(), ctx.env_file()],
        after,
    }
}

/// Unloads (reporting, not stopping at, a manager that does not answer), then removes files.
pub fn apply_uninstall(plan: &UninstallPlan) -> Result<ApplyReport, ServiceError> {
    let mut report = ApplyReport::default();
    run_planned(&plan.before, &mut report);
    let unload_failed = report.failed.is_some();
    for f in &plan.files {
        match std::fs::remove_file(f) {
            Ok(()) => report.removed.push(f.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ServiceError::Remove {
                    path: f.clone(),
                    source,
                })
            }
        }
    }
    if !unload_failed {
        run_planned(&plan.after, &mut report);
    } else {
        report
            .remaining
            .extend(plan.after.iter().map(PlannedCommand::display));
    }
    Ok(report)
}
