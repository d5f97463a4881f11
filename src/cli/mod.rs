//! The command line (clap). `anyhow` lives here, at the edge, and nowhere else.

mod bench;
mod doctor;
mod logs;
mod service;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Overrides;
use crate::daemon::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "openclawd",
    version,
    about = "Keeps a local LLM stack (Ollama + OpenClaw) running by itself",
    long_about = "openclawd supervises `ollama serve`, watches ~/.openclaw/openclaw.json, discovers \
                  Ollama models, and serves an OpenAI-compatible routing gateway with fallbacks on \
                  port 18789."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// State directory (default: $OPENCLAW_STATE_DIR, else ~/.openclaw).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// OpenClaw config file (default: $OPENCLAW_CONFIG_PATH, else <state>/openclaw.json).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Gateway port (default: $OPENCLAW_GATEWAY_PORT, gateway.port, 18789).
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Gateway bind: loopback, lan, or an IP address (non-loopback requires a token).
    #[arg(long, global = true)]
    pub bind: Option<String>,
    /// The ollama executable (default: $OPENCLAWD_OLLAMA_BIN, else `ollama` on PATH).
    #[arg(long, global = true, value_name = "PATH")]
    pub ollama_bin: Option<PathBuf>,
}

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            state_dir: self.state_dir.clone(),
            config: self.config.clone(),
            port: self.port,
            bind: self.bind.clone(),
            ollama_bin: self.ollama_bin.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run in the foreground (what launchd and systemd start).
    Run {
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        /// Reclaim the port even from a healthy OpenClaw gateway.
        #[arg(long)]
        force: bool,
        /// Take over from a running openclawd (it hands over and keeps Ollama warm).
        #[arg(long)]
        takeover: bool,
    },
    /// Show the running daemon's state (exit 0 healthy, 1 degraded, 3 not running).
    Status {
        /// Print the whole `/status` report as JSON (the same exit codes).
        #[arg(long)]
        json: bool,
    },
    /// Show openclawd's log (or Ollama's) from <state>/logs/; the journal when systemd runs it.
    Logs {
        /// Keep printing lines as they are written (like `tail -f`).
        #[arg(short, long)]
        follow: bool,
        /// Ollama's log (<state>/logs/ollama.log) instead of openclawd's.
        #[arg(long)]
        ollama: bool,
        /// How many of the last lines to print first.
        #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
        lines: usize,
    },
    /// List the model catalogue: source, tools, reasoning, context, availability.
    Models {
        /// Print the catalogue and the skipped models as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show each sessions.json: size, entries, overflowing entries, last action.
    Sessions {
        /// Print one report per sessions store as JSON.
        #[arg(long)]
        json: bool,
        /// Apply the sessions guard now (backup first), instead of only reporting.
        #[arg(long)]
        prune_now: bool,
        /// With --prune-now: say what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure each model's speed through the running gateway: load time, time to first
    /// token, tokens/s and total time, as a table sorted by speed.
    Bench {
        /// A model to test (ref, alias or id); repeat for several. Default: every model in the
        /// catalogue.
        #[arg(long = "model", value_name = "REF")]
        models: Vec<String>,
        /// Timed runs per model, after one warm-up.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        /// The prompt sent to every model (default: a fixed one, so results compare).
        #[arg(long)]
        prompt: Option<String>,
        /// At most this many tokens per answer.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        max_tokens: u32,
        /// Print the results as JSON (no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Install and start openclawd as a systemd user unit (Linux) or launchd agent (macOS).
    ///
    /// The environment the daemon needs (the ${VAR}s the config references, OLLAMA_*,
    /// OPENCLAW_*, NO_PROXY) goes into <state>/openclawd/service.env, mode 0600, which the unit
    /// or agent reads: services do not inherit your shell. Re-run after changing them.
    Install {
        /// Print what would be written and run; write and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// A system unit in /etc/systemd/system (needs root) instead of a user unit.
        #[arg(long)]
        system: bool,
        /// The service manager to write for (default: this OS's).
        #[arg(long, value_enum)]
        manager: Option<crate::service::ManagerKind>,
    },
    /// Stop and remove the service installed by `install`.
    Uninstall {
        /// The system unit instead of the user unit.
        #[arg(long)]
        system: bool,
        /// The service manager (default: this OS's).
        #[arg(long, value_enum)]
        manager: Option<crate::service::ManagerKind>,
    },
    /// Start openclawd in the background (through systemd/launchd when installed there).
    Start,
    /// Stop openclawd (and the Ollama it started), through systemd/launchd when they run it.
    Stop,
    /// Restart with a handover: the new instance takes over the port and the warm Ollama.
    Restart,
    /// Check the whole stack and say how to fix each problem (exit 1 when something fails).
    Doctor {
        /// Print every check (id, status, detail, fix) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write man pages generated from these definitions (stdout: openclawd.1).
    #[command(hide = true)]
    Manpage {
        /// Write every page (openclawd.1, openclawd-run.1, ...) into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `openclawd status | head -1`: a command that prints is ended by SIGPIPE when its reader goes
/// away, like any Unix tool (the shell sees 141), instead of Rust's default of ignoring SIGPIPE
/// and panicking in `println!` on the `EPIPE` that follows. This one call covers every printing
/// command and every writer (clap, serde_json, our tables), which a BrokenPipe check in each
/// writer would not. Sockets are unaffected (std sends with `MSG_NOSIGNAL` / `SO_NOSIGPIPE`).
/// Not for `run`: the daemon keeps ignoring SIGPIPE so a closed stderr never kills it.
fn quiet_on_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restores the default disposition before any other thread of ours exists; no
    // handler function is installed.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Run {
            log_format,
            force,
            takeover,
        } => crate::daemon::run(crate::daemon::RunOptions {
            overrides: cli.global.overrides(),
            log_format,
            force,
            takeover,
        }),
        Command::Status { json } => status::status(&cli.global, json),
        Command::Models { json } => status::models(&cli.global, json),
        Command::Logs {
            follow,
            ollama,
            lines,
        } => logs::logs(
            &cli.global,
            logs::LogsOptions {
                follow,
                ollama,
                lines,
            },
        ),
        Command::Sessions {
            json,
            prune_now,
            dry_run,
        } => status::sessions(&cli.global, json, prune_now, dry_run),
        Command::Bench {
            models,
            runs,
            prompt,
            max_tokens,
            json,
        } => bench::bench(
            &cli.global,
            bench::BenchOptions {
                models,
                runs,
                prompt: prompt.unwrap_or_else(|| bench::DEFAULT_PROMPT.to_string()),
                max_tokens,
                json,
            },
        ),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "openclawd",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Install {
            dry_run,
            system,
            manager,
        } => service::install(&cli.global, dry_run, system, manager),
        Command::Uninstall { system, manager } => service::uninstall(&cli.global, system, manager),
        Command::Start => service::start(&cli.global),
        Command::Stop => service::stop(&cli.global),
        Command::Restart => service::restart(&cli.global),
        Command::Doctor { json } => doctor::doctor(&cli.global, json),
        Command::Manpage { dir } => service::manpage(dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("openclawd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
