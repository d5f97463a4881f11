//! `install`, `uninstall`, `start`, `stop`, `restart` and `manpage`: openclawd as a service.
//! When systemd or launchd runs openclawd, `start`/`stop`/`restart` go through it and say so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::status::{daemon_endpoint, fetch_status, ollama_pid, ollama_summary, runtime};
use super::GlobalArgs;
use crate::procinfo::ProcessRef;
use crate::service::control::{self, Stopped};
use crate::service::{
    self, launchd, systemd, CommandError, ManagerKind, ServiceContext, START_TIMEOUT,
};

fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn failure() -> ExitCode {
    ExitCode::FAILURE
}

/// The openclawd the pid file names, when it is proven ours; an invalid or unprovable pid file
/// is reported and treated as "not running" (nothing is signalled).
fn running_daemon(state: &Path) -> Option<ProcessRef> {
    match control::running(state) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

pub fn install(
    global: &GlobalArgs,
    dry_run: bool,
    system: bool,
    manager: Option<ManagerKind>,
) -> anyhow::Result<ExitCode> {
    let mut env = env_map();
    let owner = if system {
        service::adopt_sudo_user(&mut env)
    } else {
        None
    };
    let overrides = global.overrides();
    let kind = manager.unwrap_or_else(ManagerKind::native);
    if system && kind == ManagerKind::Launchd {
        anyhow::bail!(
            "--system is for systemd; on macOS openclawd installs a LaunchAgent for your user"
        );
    }
    let ctx = ServiceContext::new(kind, system, &overrides, &env)?;
    let mut plan = service::plan_install(&ctx, &overrides, &env);
    plan.owner = owner;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    if dry_run {
        println!("# openclawd install --dry-run: nothing is written or run.");
        for f in &plan.files {
            println!();
            println!("# {} (mode {:04o})", f.path.display(), f.mode);
            print!("{}", f.shown);
        }
        println!();
        println!("# then:");
        for c in &plan.commands {
            println!("{}", c.display());
        }
        return Ok(ExitCode::SUCCESS);
    }

    // A running openclawd outside the service would keep the service's from binding: hand it
    // over (SIGUSR2 leaves Ollama warm) once we know the service manager answers. A running
    // service gets the new unit and environment by a handover restart after the install.
    let mut restart_service = false;
    if kind == ManagerKind::native() && manager_answers(&ctx) {
        if let Some(old) = running_daemon(&ctx.state_dir) {
            let pid = old.pid();
            if service_main_pid(&ctx) == Some(pid) {
                restart_service = kind == ManagerKind::Systemd;
            } else {
                println!("Handing the running openclawd (pid {pid}) over to the service; Ollama stays warm.");
                if old.signal(nix::sys::signal::Signal::SIGUSR2).is_ok()
                    && !runtime()?.block_on(old.wait_gone(control::STOP_WAIT))
                {
                    eprintln!(
                        "openclawd (pid {pid}) has not exited {} s after SIGUSR2; it is still draining.",
                        control::STOP_WAIT.as_secs()
                    );
                }
            }
        }
    }

    let report = service::apply_install(&plan)?;
    for f in &plan.files {
        println!("wrote {} (mode {:04o})", f.path.display(), f.mode);
    }
    for c in &report.ran {
        println!("ran   {c}");
    }
    if let Some((cmd, err)) = &report.failed {
        eprintln!(
            "openclawd's {} service files are written, but `{cmd}` failed: {err}",
            kind.name()
        );
        eprintln!(
            "The service is not loaded. Once {} is available, run:",
            kind.name()
        );
        for c in &report.remaining {
            eprintln!("  {c}");
        }
        return Ok(failure());
    }
    if restart_service {
        let code = restart_managed(&Managed { ctx: ctx.clone() }, global, &runtime()?)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    match kind {
        ManagerKind::Systemd => {
            let scope = if system { "" } else { "--user " };
            println!(
                "openclawd runs under systemd now: `systemctl {scope}status {}`, logs with `journalctl {scope}-u {}`.",
                systemd::UNIT,
                systemd::UNIT
            );
            if !system {
                linger_hint(ctx.user.as_deref());
            }
        }
        ManagerKind::Launchd => println!(
            "openclawd runs under launchd now (`launchctl print {}`), logs in {}.",
            launchd::target(ctx.uid),
            launchd::log_path(&ctx.state_dir).display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A user unit stops at logout unless lingering is on.
fn linger_hint(user: Option<&str>) {
    let user = user.unwrap_or("$USER");
    let lingering = service::run_command(
        &[
            "loginctl".into(),
            "show-user".into(),
            user.into(),
            "--property=Linger".into(),
            "--value".into(),
        ],
        service::COMMAND_TIMEOUT,
    )
    .is_ok_and(|out| out.trim() == "yes");
    if !lingering {
        println!(
            "To keep it running after you log out and start it at boot: `loginctl enable-linger {user}`"
        );
    }
}

pub fn uninstall(
    global: &GlobalArgs,
    system: bool,
    manager: Option<ManagerKind>,
) -> anyhow::Result<ExitCode> {
    let mut env = env_map();
    if system {
        service::adopt_sudo_user(&mut env);
    }
    let overrides = global.overrides();
    let kind = manager.unwrap_or_else(ManagerKind::native);
    let ctx = ServiceContext::new(kind, system, &overrides, &env)?;
    if !ctx.installed() && !ctx.env_file().exists() {
        println!(
            "openclawd is not installed as a {} service (no {}).",
            kind.name(),
            ctx.service_file().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let plan = service::plan_uninstall(&ctx);
    let report = service::apply_uninstall(&plan)?;
    for c in &report.ran {
        println!("ran     {c}");
    }
    for f in &report.removed {
        println!("removed {}", f.display());
    }
    match &report.failed {
        // No service manager at all: nothing can have loaded the files.
        Some((_, CommandError::NotFound { program })) => {
            println!("({program} is not installed here, so nothing was loaded.)");
            Ok(ExitCode::SUCCESS)
        }
        Some((cmd, err)) => {
            eprintln!("The files are removed, but `{cmd}` failed: {err}");
            eprintln!("If {} still runs openclawd, run:", kind.name());
            for c in plan
                .before
                .iter()
                .map(|c| c.display())
                .chain(report.remaining.iter().cloned())
            {
                eprintln!("  {c}");
            }
            Ok(failure())
        }
        None => {
            println!("openclawd is no longer a {} service.", kind.name());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The installed service for start/stop/restart, when its manager answers.
struct Managed {
    ctx: ServiceContext,
}

impl Managed {
    fn describe(&self) -> String {
        match self.ctx.kind {
            ManagerKind::Systemd => format!("systemd ({})", systemd::UNIT),
            ManagerKind::Launchd => format!("launchd ({})", launchd::LABEL),
        }
    }
}

fn manager_answers(ctx: &ServiceContext) -> bool {
    match ctx.kind {
        ManagerKind::Systemd => systemd::is_active(ctx.system).is_some(),
        ManagerKind::Launchd => !matches!(
            launchd::job_pid(ctx.uid),
            Err(CommandError::NotFound { .. } | CommandError::Spawn { .. })
        ),
    }
}

fn service_main_pid(ctx: &ServiceContext) -> Option<u32> {
    match ctx.kind {
        ManagerKind::Systemd => systemd::main_pid(ctx.system),
        ManagerKind::Launchd => launchd::job_pid(ctx.uid).ok().flatten(),
    }
}

/// The installed service (user unit first, then a system unit), if its manager answers.
fn managed_service(global: &GlobalArgs) -> Option<Managed> {
    let env = env_map();
    let overrides = global.overrides();
    let kind = ManagerKind::native();
    let systems: &[bool] = match kind {
        ManagerKind::Systemd => &[false, true],
        ManagerKind::Launchd => &[false],
    };
    for &system in systems {
        let Ok(ctx) = ServiceContext::new(kind, system, &overrides, &env) else {
            continue;
        };
        if !ctx.installed() {
            continue;
        }
        if manager_answers(&ctx) {
            return Some(Managed { ctx });
        }
        eprintln!(
            "note: {} is installed but {} does not answer; acting on openclawd directly.",
            ctx.service_file().display(),
            kind.name()
        );
    }
    None
}

/// Global flags, forwarded to the background `openclawd run`.
fn forwarded_args(global: &GlobalArgs) -> Vec<OsString> {
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let mut out: Vec<OsString> = Vec::new();
    if let Some(d) = &global.state_dir {
        out.extend(["--state-dir".into(), abs(d).into_os_string()]);
    }
    if let Some(c) = &global.config {
        out.extend(["--config".into(), abs(c).into_os_string()]);
    }
    if let Some(p) = global.port {
        out.extend(["--port".into(), p.to_string().into()]);
    }
    if let Some(b) = &global.bind {
        out.extend(["--bind".into(), b.into()]);
    }
    if let Some(b) = &global.ollama_bin {
        let b = if b.components().count() > 1 {
            abs(b)
        } else {
            b.clone()
        };
        out.extend(["--ollama-bin".into(), b.into_os_string()]);
    }
    out
}

fn state_dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    let env = env_map();
    let s = crate::config::degraded_snapshot(&global.overrides(), &env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(s.paths.state_dir)
}

/// The pid `/status` reports, when the daemon answers.
fn answering_pid(global: &GlobalArgs, rt: &tokio::runtime::Runtime) -> Option<u32> {
    let (base, token, _) = daemon_endpoint(global);
    let st = rt
        .block_on(fetch_status(&base, token.as_deref()))
        .report()?;
    Some(st.daemon.pid)
}

fn start_background(
    global: &GlobalArgs,
    state: &Path,
    takeover: bool,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<u32> {
    let exe = service::service_exe(std::env::var("PATH").ok().as_deref())?;
    let log = control::log_file(state);
    let log_len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut child = control::spawn_background(&exe, &forwarded_args(global), takeover, state)?;
    let pid = control::wait_started(&mut child, state, log_len, || answering_pid(global, rt))?;
    Ok(pid)
}

pub fn start(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let state = state_dir(global)?;
    // The daemon writes its pid file once it listens: a live pid there is a running daemon.
    if let Some(pid) = running_daemon(&state).map(|p| p.pid()) {
        if answering_pid(global, &rt) == Some(pid) {
            println!(
                "openclawd is already running (pid {pid}); `openclawd restart` restarts it (Ollama stays warm)."
            );
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "openclawd (pid {pid}) is running but does not answer /status; `openclawd restart` replaces it, `openclawd stop` ends it."
        );
        return Ok(failure());
    }
    if let Some(m) = managed_service(global) {
        let result = match m.ctx.kind {
            ManagerKind::Systemd => {
                systemd::run(m.ctx.system, &["start", systemd::UNIT]).map(|_| ())
            }
            ManagerKind::Launchd => launchd_start(&m.ctx),
        };
        return report_managed("start", &m, result);
    }
    let pid = start_background(global, &state, false, &rt)?;
    println!(
        "openclawd started in the background (pid {pid}){}; log: {}",
        ollama_summary(global, &rt, None),
        control::log_file(&state).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loaded: kickstart; not loaded: enable + bootstrap.
fn launchd_start(ctx: &ServiceContext) -> Result<(), CommandError> {
    let target = launchd::target(ctx.uid);
    if launchd::job_pid(ctx.uid).is_ok() {
        return service::run_command(&launchd::launchctl(&["kickstart", &target]), START_TIMEOUT)
            .map(|_| ());
    }
    service::run_command(&launchd::launchctl(&["enable", &target]), START_TIMEOUT)?;
    let plist = ctx.service_file().display().to_string();
    service::run_command(
        &launchd::launchctl(&["bootstrap", &launchd::domain(ctx.uid), &plist]),
        START_TIMEOUT,
    )
    .map(|_| ())
}

fn report_managed(
    what: &str,
    m: &Managed,
    result: Result<(), CommandError>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => {
            println!(
                "openclawd runs under {}: {what} went through it.",
                m.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "openclawd runs under {}, and the {what} through it failed: {e}",
                m.describe()
            );
            match m.ctx.kind {
                ManagerKind::Systemd => {
                    let scope = if m.ctx.system { "" } else { "--user " };
                    eprintln!(
                        "See `systemctl {scope}status {}` and `journalctl {scope}-u {}`.",
                        systemd::UNIT,
                        systemd::UNIT
                    );
                }
                ManagerKind::Launchd => eprintln!(
                    "See `launchctl print {}` and {}.",
                    launchd::target(m.ctx.uid),
                    launchd::log_path(&m.ctx.state_dir).display()
                ),
            }
            Ok(failure())
        }
    }
}

pub fn stop(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let state = state_dir(global)?;
    if let Some(m) = managed_service(global) {
        let active = match m.ctx.kind {
            ManagerKind::Systemd => systemd::is_active(m.ctx.system) == Some(true),
            ManagerKind::Launchd => launchd::job_pid(m.ctx.uid).is_ok(),
        };
        if active {
            // Stopping through the manager: a plain kill would only make it restart openclawd.
            let result = match m.ctx.kind {
                ManagerKind::Systemd => {
                    systemd::run(m.ctx.system, &["stop", systemd::UNIT]).map(|_| ())
                }
                ManagerKind::Launchd => service::run_command(
                    &launchd::launchctl(&["bootout", &launchd::target(m.ctx.uid)]),
                    START_TIMEOUT,
                )
                .map(|_| ()),
            };
            return report_managed("stop", &m, result);
        }
    }
    let recorded = crate::ollama::record::read(&state).ok().flatten();
    if let Some(daemon) = running_daemon(&state) {
        let pid = daemon.pid();
        let how = rt.block_on(control::stop(&daemon, control::STOP_WAIT));
        // Normally the daemon stopped its Ollama itself; after a SIGKILL it could not.
        let ollama = rt
            .block_on(crate::ollama::stop_recorded(&state))
            .ok()
            .flatten();
        let ollama_note = match (recorded.as_ref(), ollama) {
            (_, Some(opid)) => format!(" and its Ollama (pid {opid})"),
            (Some(rec), None) if ProcessRef::inspect(rec.pid).is_err_and(|e| e.is_stale()) => {
                format!(" and its Ollama (pid {})", rec.pid)
            }
            _ => String::new(),
        };
        match how {
            Stopped::Gracefully | Stopped::AlreadyGone => {
                println!("stopped openclawd (pid {pid}){ollama_note}.")
            }
            Stopped::Killed => println!(
                "openclawd (pid {pid}) did not stop within {} s and was killed{ollama_note}.",
                control::STOP_WAIT.as_secs()
            ),
            Stopped::StillRunning => {
                eprintln!(
                    "openclawd (pid {pid}) is still running after SIGTERM and SIGKILL; check `ps -o stat= -p {pid}` (a process stuck in the kernel shows D)."
                );
                return Ok(failure());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match rt.block_on(crate::ollama::stop_recorded(&state)) {
        Ok(Some(opid)) => println!(
            "openclawd was not running; stopped the Ollama it had started (pid {opid}, from {}).",
            crate::ollama::record::record_path(&state).display()
        ),
        Ok(None) => println!("openclawd is not running."),
        Err(e) => {
            eprintln!("openclawd is not running, and its Ollama record is unreadable: {e}");
            return Ok(failure());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restart(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let state = state_dir(global)?;
    if let Some(m) = managed_service(global) {
        return restart_managed(&m, global, &rt);
    }
    let old = running_daemon(&state).map(|p| p.pid());
    let before = ollama_pid(global, &rt);
    let new = start_background(global, &state, true, &rt)?;
    let ollama = ollama_summary(global, &rt, before);
    match old {
        Some(old) => println!(
            "restarted: openclawd pid {old} handed over to pid {new}{ollama}; log: {}",
            control::log_file(&state).display()
        ),
        None => println!(
            "openclawd was not running; started it (pid {new}){ollama}; log: {}",
            control::log_file(&state).display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Under a service manager, a restart is a handover too: SIGUSR2 to the main process (it
/// exits leaving Ollama warm; `KillMode=process` / its own process group keeps Ollama alive),
/// and the manager starts the new binary, which takes Ollama back.
fn restart_managed(
    m: &Managed,
    global: &GlobalArgs,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let ctx = &m.ctx;
    let Some(old) = service_main_pid(ctx) else {
        let result = match ctx.kind {
            ManagerKind::Systemd => {
                systemd::run(ctx.system, &["restart", systemd::UNIT]).map(|_| ())
            }
            ManagerKind::Launchd => launchd_start(ctx),
        };
        return report_managed("restart", m, result);
    };
    // Pinned before the signal, so the wait below cannot mistake a reused pid for it.
    let old_ref = ProcessRef::inspect(old).ok();
    let before = ollama_pid(global, rt);
    let signalled = match ctx.kind {
        ManagerKind::Systemd => systemd::run(
            ctx.system,
            &[
                "kill",
                "--kill-whom=main",
                "--signal=SIGUSR2",
                systemd::UNIT,
            ],
        )
        .map(|_| ()),
        ManagerKind::Launchd => service::run_command(
            &launchd::launchctl(&["kill", "SIGUSR2", &launchd::target(ctx.uid)]),
            START_TIMEOUT,
        )
        .map(|_| ()),
    };
    if let Err(e) = signalled {
        return report_managed("restart", m, Err(e));
    }
    let gone = match &old_ref {
        Some(r) => rt.block_on(r.wait_gone(control::STOP_WAIT)),
        None => true,
    };
    if !gone {
        eprintln!("openclawd (pid {old}) has not exited yet after SIGUSR2; it is still draining.");
    }
    // systemd restarts it after RestartSec; an explicit start does it now (and resets the
    // restart back-off). launchd's KeepAlive starts it by itself.
    if ctx.kind == ManagerKind::Systemd {
        if let Err(e) = systemd::run(ctx.system, &["start", systemd::UNIT]) {
            return report_managed("restart", m, Err(e));
        }
    }
    let deadline = std::time::Instant::now() + control::START_WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(pid) = answering_pid(global, rt).filter(|p| *p != old) {
            println!(
                "restarted through {}: pid {old} handed over to pid {pid}{}.",
                m.describe(),
                ollama_summary(global, rt, before)
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    report_managed(
        "restart",
        m,
        Err(CommandError::Timeout {
            command: format!("waiting for the new openclawd after pid {old} handed over"),
            secs: control::START_WAIT.as_secs(),
        }),
    )
}

/// Man pages from the clap definitions: `openclawd.1` on stdout, or every page into `dir`.
pub fn manpage(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
        }
        None => {
            let mut out = std::io::stdout();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
