//! `bench`: measures openclawd beside direct access and the LiteLLM proxy, and writes
//! BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p bench -- all      # the full run (builds openclawd, installs LiteLLM)
//! cargo run --release -p bench -- mock     # the mock upstream alone
//! bench smoke --openclawd … --ollama …     # ~10 s, what CI runs (bench/tests/smoke.rs)
//! ```

mod clouds;
mod load;
mod mock;
mod perf;
mod procfs;
mod reference;
mod report;
mod scenarios;
mod stats;
mod supervisor;
mod systems;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tokio::time::Instant;

use report::{mb, secs, us, Section, Table};
use scenarios::{Figures, Memory, Plan, Rig};

#[derive(Parser)]
#[command(
    about = "openclawd's benchmark: direct vs openclawd vs LiteLLM, written to BENCHMARKS.md"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every scenario, interleaved, written to BENCHMARKS.md (several minutes).
    All {
        #[command(flatten)]
        common: Common,
        /// Do not run `cargo build --release` for openclawd and the ollama double first.
        #[arg(long)]
        no_build: bool,
    },
    /// A ~10 s run of every code path (CI); fails on any error, never on a speed.
    Smoke {
        #[command(flatten)]
        common: Common,
    },
    /// Scenario 7 alone, for comparing openclawd builds or settings against the same nginx and
    /// mock in one interleaved run; prints the section (issue 18).
    Cpu {
        /// `NAME=BINARY[,KEY=VALUE…]`, repeated (e.g. `w1=target/release/openclawd,TOKIO_WORKER_THREADS=1`).
        #[arg(long = "variant", required = true)]
        variants: Vec<String>,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds per window.
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
        /// Skip the `wrk` windows.
        #[arg(long)]
        no_wrk: bool,
        /// Skip the `perf record` window (the cost per item).
        #[arg(long)]
        no_profile: bool,
        /// Concurrency levels.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64])]
        levels: Vec<usize>,
    },
    /// Serve the mock upstream until killed; prints `listening on ADDR` first.
    Mock {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Where to write the report.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The openclawd binary (default: target/release/openclawd).
    #[arg(long)]
    openclawd: Option<PathBuf>,
    /// The `ollama` test double (default: target/release/ollama).
    #[arg(long)]
    ollama: Option<PathBuf>,
    /// The Gemini double, `gemini-double` of tests/cloud-doubles (default:
    /// target/release/gemini-double), for scenario 8.
    #[arg(long)]
    gemini: Option<PathBuf>,
    /// Skip LiteLLM (the tables then say so).
    #[arg(long)]
    no_litellm: bool,
    /// The virtualenv holding LiteLLM (default: target/bench-litellm-venv).
    #[arg(long)]
    litellm_venv: Option<PathBuf>,
    /// Rounds per scenario (default 5; the smoke runs 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Run only these scenarios (e.g. `--only 1,3`); the report then holds only their tables.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// More openclawd builds or settings for scenario 7, `NAME=BINARY[,KEY=VALUE…]`, each
    /// measured beside the one under test (e.g. the allocator or runtime shape it replaced).
    #[arg(long = "variant")]
    variants: Vec<String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Mock { listen } => rt.block_on(async move {
            let l = tokio::net::TcpListener::bind(listen).await?;
            println!("listening on {}", l.local_addr()?);
            exit_with_parent();
            mock::serve(l).await;
            Ok(())
        }),
        Cmd::All { common, no_build } => {
            rt.block_on(interruptible(run_all(common, no_build, false)))
        }
        Cmd::Smoke { common } => rt.block_on(interruptible(run_all(common, true, true))),
        Cmd::Cpu {
            variants,
            rounds,
            secs,
            no_wrk,
            no_profile,
            levels,
        } => rt.block_on(interruptible(run_cpu(
            variants, rounds, secs, no_wrk, no_profile, levels,
        ))),
    }
}

/// Ctrl-C drops the run, and with it every process it started.
async fn interruptible(
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        r = fut => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; stopped every process this run started"),
    }
}

/// The mock ends when the bench that started it is gone (reparented).
fn exit_with_parent() {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                std::process::exit(0);
            }
        }
    });
}

async fn run_cpu(
    variants: Vec<String>,
    rounds: usize,
    secs: f64,
    no_wrk: bool,
    no_profile: bool,
    levels: Vec<usize>,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("openclawd-bench-")
        .tempdir()?;
    let nginx_bin = reference::nginx_binary()
        .context("nginx is not installed: run scripts/bench-nginx-install.sh (as root)")?;
    let nginx = reference::spawn_nginx(&nginx_bin).await?;
    let (mock_proc, mock_addr) = systems::spawn_mock(&std::env::current_exe()?, dir.path())?;
    let dead_port = systems::free_port()?;
    let mut procs = Vec::new();
    let mut vs = Vec::new();
    for v in &variants {
        let spec = reference::parse_variant(v)?;
        let (oc, _) = systems::spawn_openclawd(
            &spec.bin,
            mock_addr,
            systems::Upstreams {
                nginx: Some(nginx.addr),
                gemini: None,
            },
            dead_port,
            2,
            &spec.env,
        )
        .await?;
        vs.push(reference::Variant {
            name: spec.name,
            addr: oc.addr,
            pid: oc.proc.pid(),
        });
        procs.push(oc);
    }
    let rig = reference::RefRig {
        nginx: nginx.addr,
        nginx_pid: nginx.proc.pid(),
        mock: mock_addr,
        mock_pid: mock_proc.pid(),
        variants: &vs,
    };
    let plan = reference::RefPlan {
        rounds: rounds.max(1),
        duration: Duration::from_secs_f64(secs.max(0.1)),
        wrk: !no_wrk,
        levels,
        profile: (!no_profile).then_some(Duration::from_secs(3)),
        ..reference::RefPlan::full()
    };
    // Warm every path (connections, pools, caches) before the first window.
    for v in &vs {
        for model in ["nginx/fast", "mock/fast"] {
            let t = load::Target::chat(
                v.addr,
                "/v1/chat/completions",
                model,
                false,
                load::Framing::Sse,
                None,
            );
            load::closed_loop(&t, 64, Duration::from_millis(300)).await;
        }
    }
    let load_start = loadavg();
    let mut figs = reference::RefFigures::default();
    let sec = reference::s7_reference(&rig, &plan, &mut figs).await;
    println!(
        "load average at start / end: {load_start} / {}\n\n{}",
        loadavg(),
        sec.render()
    );
    for p in &sec.problems {
        eprintln!("problem: {p}");
    }
    drop(procs);
    drop(mock_proc);
    drop(nginx);
    Ok(())
}

fn build_binaries(ws: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "[bench] cargo build --release -p openclawd -p ollama-double -p cloud-doubles --bins"
    );
    let mut cmd = Command::new(cargo);
    // `cargo run` hands its package's variables to the bench; a nested build must not see them
    // or its fingerprints differ from a plain `cargo build --release` and it rebuilds the world.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "LD_LIBRARY_PATH"
                    | "RUST_RECURSION_COUNT"
            )
        {
            cmd.env_remove(k);
        }
    }
    let st = cmd
        .args([
            "build",
            "--release",
            "-p",
            "openclawd",
            "-p",
            "ollama-double",
            "-p",
            "cloud-doubles",
            "--bins",
        ])
        .current_dir(ws)
        .status()
        .context("running cargo build")?;
    if !st.success() {
        bail!("cargo build --release failed ({st})");
    }
    Ok(())
}

fn install_litellm(ws: &Path, venv: &Path) -> Result<(), String> {
    eprintln!("[bench] scripts/bench-litellm-install.sh (pip; ~1–2 min the first time)");
    let out = Command::new("sh")
        .arg(ws.join("scripts/bench-litellm-install.sh"))
        .arg(venv)
        .output()
        .map_err(|e| format!("could not run the install script: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        Err(format!(
            "`pip install litellm[proxy]` failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    systems::command_line(Path::new(cmd), args).unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1_048_576.0))
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn memory_snapshot(rig: &Rig) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    m.insert("openclawd", procfs::tree_rss_bytes(rig.openclawd_pid));
    m.insert("mock upstream", procfs::tree_rss_bytes(rig.mock_pid));
    if let Some((_, pid)) = rig.litellm {
        m.insert("LiteLLM", procfs::tree_rss_bytes(pid));
    }
    m
}

async fn run_all(common: Common, no_build: bool, smoke: bool) -> anyhow::Result<()> {
    let run_started = Instant::now();
    let ws = workspace();
    let mut plan = if smoke { Plan::smoke() } else { Plan::full() };
    if let Some(r) = common.rounds {
        plan.rounds = r.max(1);
    }
    let out = common
        .out
        .clone()
        .unwrap_or_else(|| ws.join("BENCHMARKS.md"));
    if !no_build {
        build_binaries(&ws)?;
    }
    let release = ws.join("target").join("release");
    let openclawd = common
        .openclawd
        .clone()
        .unwrap_or_else(|| release.join("openclawd"));
    let double = common
        .ollama
        .clone()
        .unwrap_or_else(|| release.join("ollama"));
    let gemini = common
        .gemini
        .clone()
        .unwrap_or_else(|| release.join("gemini-double"));
    for (what, p) in [
        ("openclawd", &openclawd),
        ("the ollama double", &double),
        ("the Gemini double", &gemini),
    ] {
        if !p.exists() {
            bail!(
                "{what} is not built at {}: run `cargo build --release -p openclawd -p ollama-double -p cloud-doubles`",
                p.display()
            );
        }
    }
    let load_start = loadavg();
    let dir = tempfile::Builder::new()
        .prefix("openclawd-bench-")
        .tempdir()?;

    // LiteLLM: installed by the script unless told otherwise; the table says why it is absent.
    let venv = common
        .litellm_venv
        .clone()
        .unwrap_or_else(|| ws.join("target").join("bench-litellm-venv"));
    let mut litellm_absent: Option<String> = None;
    if common.no_litellm {
        litellm_absent = Some("skipped (`--no-litellm`)".into());
    } else if !smoke {
        if let Err(e) = install_litellm(&ws, &venv) {
            litellm_absent = Some(e);
        }
    } else {
        litellm_absent = Some("not part of the smoke".into());
    }

    eprintln!(
        "[bench] starting the mock, openclawd{}",
        if litellm_absent.is_none() {
            " and LiteLLM"
        } else {
            ""
        }
    );
    let bench_exe = std::env::current_exe()?;
    let (mock_proc, mock_addr) = systems::spawn_mock(&bench_exe, dir.path())?;
    let (gemini_proc, gemini_addr) = systems::spawn_gemini(&gemini, dir.path())?;
    // nginx (issue 18's reference) if installed; the smoke runs without it unless present.
    let nginx = match reference::nginx_binary() {
        Some(b) => Some(reference::spawn_nginx(&b).await?),
        None => {
            eprintln!("[bench] nginx absent (scripts/bench-nginx-install.sh): no scenario 7");
            None
        }
    };
    let nginx_addr = nginx.as_ref().map(|n| n.addr);
    let dead_port = systems::free_port()?;
    let (oc, oc_start) = systems::spawn_openclawd(
        &openclawd,
        mock_addr,
        systems::Upstreams {
            nginx: nginx_addr,
            gemini: Some(gemini_addr),
        },
        dead_port,
        plan.dead_models(),
        &[],
    )
    .await?;
    let mut litellm = None;
    let mut litellm_start = None;
    if litellm_absent.is_none() {
        match systems::spawn_litellm(
            &venv,
            &ws.join("scripts/bench-litellm-config.yaml"),
            mock_addr,
            dir.path(),
        )
        .await
        {
            Ok((l, took)) => {
                // One request proves the route works before anything is measured.
                let t = load::Target::chat(
                    l.addr,
                    "/v1/chat/completions",
                    systems::FAST,
                    false,
                    load::Framing::Sse,
                    Some(systems::LITELLM_KEY),
                );
                match load::sequential(&t, 0, 1, Instant::now() + Duration::from_secs(60)).await {
                    Ok(_) => {
                        litellm_start = Some(took);
                        litellm = Some(l);
                    }
                    Err(e) => {
                        litellm_absent =
                            Some(format!("LiteLLM started but its first request failed: {e}"))
                    }
                }
            }
            Err(e) => litellm_absent = Some(format!("LiteLLM did not start: {e:#}")),
        }
    }
    let rig = Rig {
        mock: mock_addr,
        mock_pid: mock_proc.pid(),
        openclawd: oc.addr,
        openclawd_pid: oc.proc.pid(),
        litellm: litellm.as_ref().map(|l| (l.addr, l.proc.pid())),
    };
    tokio::time::sleep(Duration::from_secs(if smoke { 0 } else { 1 })).await;
    let idle = memory_snapshot(&rig);

    let mut figs = Figures::default();
    let mut sections: Vec<Section> = Vec::new();
    let wanted = |n: u8| common.only.is_empty() || common.only.contains(&n);
    let watched = vec![
        rig.openclawd_pid,
        rig.litellm.map(|l| l.1).unwrap_or(rig.mock_pid),
        rig.mock_pid,
    ];
    if wanted(1) {
        eprintln!("[bench] scenario 1: added latency at concurrency 1");
        sections.push(scenarios::s1_latency(&rig, &plan, &mut figs).await);
    }
    let mut s2_peaks = Vec::new();
    if wanted(2) {
        eprintln!("[bench] scenario 2: throughput");
        let w = scenarios::RssWatch::start(watched.clone());
        sections.push(scenarios::s2_throughput(&rig, &plan, &mut figs).await);
        s2_peaks = w.finish().await;
        figs.rss_s2 = s2_peaks.first().copied();
    }
    let mut s3_peaks = Vec::new();
    if wanted(3) {
        eprintln!("[bench] scenario 3: streaming");
        let w = scenarios::RssWatch::start(watched.clone());
        sections.push(scenarios::s3_streaming(&rig, &plan, &mut figs).await);
        s3_peaks = w.finish().await;
    }
    if wanted(4) {
        eprintln!("[bench] scenario 4: failover");
        sections.push(scenarios::s4_failover(&rig, &plan, &mut figs).await);
    }
    let mut ref_figs = reference::RefFigures::default();
    let mut variant_procs = Vec::new();
    if let (true, Some(n)) = (wanted(7), &nginx) {
        eprintln!("[bench] scenario 7: CPU per request beside nginx");
        let mut vs = vec![reference::Variant {
            name: "openclawd".into(),
            addr: rig.openclawd,
            pid: rig.openclawd_pid,
        }];
        for v in &common.variants {
            let spec = reference::parse_variant(v)?;
            let (oc, _) = systems::spawn_openclawd(
                &spec.bin,
                rig.mock,
                systems::Upstreams {
                    nginx: Some(n.addr),
                    gemini: None,
                },
                dead_port,
                2,
                &spec.env,
            )
            .await?;
            vs.push(reference::Variant {
                name: spec.name,
                addr: oc.addr,
                pid: oc.proc.pid(),
            });
            variant_procs.push(oc);
        }
        for v in vs.iter().skip(1) {
            for model in ["nginx/fast", "mock/fast"] {
                let t = load::Target::chat(
                    v.addr,
                    "/v1/chat/completions",
                    model,
                    false,
                    load::Framing::Sse,
                    None,
                );
                load::closed_loop(&t, 64, Duration::from_millis(300)).await;
            }
        }
        let rr = reference::RefRig {
            nginx: n.addr,
            nginx_pid: n.proc.pid(),
            mock: rig.mock,
            mock_pid: rig.mock_pid,
            variants: &vs,
        };
        let rplan = if smoke {
            reference::RefPlan::smoke()
        } else {
            reference::RefPlan {
                rounds: plan.rounds.min(3),
                ..reference::RefPlan::full()
            }
        };
        sections.push(reference::s7_reference(&rr, &rplan, &mut ref_figs).await);
    }
    drop(variant_procs);
    let mut cloud_figs = clouds::CloudFigures::default();
    if wanted(8) {
        eprintln!("[bench] scenario 8: other inbound APIs and clouds");
        let cr = clouds::CloudRig {
            mock: rig.mock,
            mock_pid: rig.mock_pid,
            gemini: gemini_addr,
            gemini_pid: gemini_proc.pid(),
            openclawd: rig.openclawd,
            openclawd_pid: rig.openclawd_pid,
        };
        let cplan = if smoke {
            clouds::CloudPlan::smoke()
        } else {
            clouds::CloudPlan {
                rounds: plan.rounds,
                ..clouds::CloudPlan::full()
            }
        };
        sections.push(clouds::s8_clouds(&cr, &cplan, &mut cloud_figs).await);
    }
    tokio::time::sleep(Duration::from_secs(if smoke { 1 } else { 3 })).await;
    let after = memory_snapshot(&rig);
    let peaks = |p: &[u64]| {
        let mut m = BTreeMap::new();
        if p.is_empty() {
            return m;
        }
        m.insert("openclawd", p.first().copied().unwrap_or(0));
        if rig.litellm.is_some() {
            m.insert("LiteLLM", p.get(1).copied().unwrap_or(0));
        }
        m.insert("mock upstream", p.get(2).copied().unwrap_or(0));
        m
    };
    let memory = Memory {
        idle,
        after,
        s2: peaks(&s2_peaks),
        s3: peaks(&s3_peaks),
    };
    let top = plan
        .s3_levels
        .iter()
        .chain(plan.s3_ladder.iter())
        .max()
        .copied()
        .unwrap_or(1);
    if wanted(5) {
        sections.push(scenarios::s5_memory(&memory, &mut figs, top));
    }
    let oc_version = first_line(openclawd.to_str().unwrap_or("openclawd"), &["--version"]);
    let oc_log_warnings = std::fs::read_to_string(&oc.proc.log)
        .map(|s| s.lines().filter(|l| l.contains("WARN")).count())
        .unwrap_or(0);
    let nginx_version = nginx.as_ref().map(|n| n.version.clone());
    drop(nginx);
    drop(litellm);
    drop(oc);
    drop(gemini_proc);
    drop(mock_proc);

    let mut sup = supervisor::SupervisorFigures::default();
    if wanted(6) {
        eprintln!(
            "[bench] scenario 6: supervisor ({} iterations)",
            plan.s6_iterations
        );
        sup = supervisor::run(&openclawd, &double, plan.s6_iterations).await;
        sections.push(s6_section(&sup));
    }
    let load_end = loadavg();

    let litellm_version = systems::command_line(
        &venv.join("bin/python"),
        &[
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
    );
    let python_version = systems::command_line(&venv.join("bin/python"), &["--version"]);
    let mut md = String::new();
    let _ = writeln!(md, "# openclawd benchmarks\n");
    let cmd = if smoke {
        "bench smoke (CI smoke: one short round, not a measurement)".to_string()
    } else {
        let args: Vec<String> = std::env::args().skip(1).collect();
        format!("cargo run --release -p bench -- {}", args.join(" "))
    };
    let _ = writeln!(
        md,
        "Written by `{cmd}` on {} (UTC); the run took {:.0} s. Every figure below comes from that \
         one run: direct access, openclawd and LiteLLM measured in the same interleaved rounds \
         against the same mock upstream (`bench/src/mock.rs`, hyper, no delay unless the model id \
         asks for one), by the same load client (`bench/src/load.rs`, hyper, one keep-alive \
         connection per worker, `TCP_NODELAY`). All traffic is on 127.0.0.1.\n",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M"]),
        run_started.elapsed().as_secs_f64()
    );
    let mut machine = Table::new(&["", ""]);
    machine.row(vec![
        "machine".into(),
        format!(
            "{} cores ({}), {} RAM, {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model(),
            mem_total(),
            first_line("uname", &["-sr"])
        ),
    ]);
    machine.row(vec![
        "load average (1/5/15 min) at start / end".into(),
        format!("{load_start} / {load_end}"),
    ]);
    machine.row(vec![
        "openclawd".into(),
        format!(
            "{oc_version} (git {}), `{}`, started in {}",
            first_line(
                "git",
                &[
                    "-C",
                    ws.to_str().unwrap_or("."),
                    "rev-parse",
                    "--short",
                    "HEAD"
                ]
            ),
            openclawd.display(),
            secs(Some(oc_start.as_secs_f64()))
        ),
    ]);
    machine.row(vec!["LiteLLM".into(), match (&litellm_absent, litellm_start) {
        (None, Some(t)) => format!("{} on {}, `litellm --config scripts/bench-litellm-config.yaml` (one uvicorn worker, its default), started in {}", litellm_version.clone().unwrap_or("unknown".into()), python_version.clone().unwrap_or_default(), secs(Some(t.as_secs_f64()))),
        (Some(why), _) => format!("absent: {why}"),
        _ => "absent".into(),
    }]);
    machine.row(vec![
        "nginx (scenario 7)".into(),
        nginx_version.unwrap_or_else(|| "absent (scripts/bench-nginx-install.sh)".into()),
    ]);
    machine.row(vec!["Rust".into(), first_line("rustc", &["--version"])]);
    machine.row(vec![
        "ollama double (scenario 6)".into(),
        format!("`{}`", double.display()),
    ]);
    machine.row(vec![
        "Gemini double (scenario 8)".into(),
        format!("`{}`", gemini.display()),
    ]);
    let _ = writeln!(md, "{}", machine.render());
    let _ = writeln!(
        md,
        "**Noise.** The machine has 2 cores, shared during this run with the load client, the mock \
         and — at the time — other agents' builds (see the load average above). Latency \
         percentiles move with that; the CPU-time figures (scenario 2) and the *added* figures \
         (each taken against direct in the same round) are the ones to trust. The load client \
         and the mock run on the same 2 cores as the gateway, which makes every gateway look \
         slower than on a dedicated rig, never faster.\n"
    );
    md.push_str(&goals_section(&figs, &ref_figs, litellm_absent.as_deref()).render());
    for s in &sections {
        md.push_str(&s.render());
    }
    let _ = writeln!(
        md,
        "## Reproduce\n\n```sh\ncargo run --release -p bench -- all      # builds openclawd + the ollama and Gemini doubles, installs LiteLLM into target/bench-litellm-venv (pip), writes BENCHMARKS.md\ncargo run --release -p bench -- all --no-litellm   # without the Python peer\ncargo test -p bench                      # the ~15 s smoke CI runs (needs `cargo build --workspace` first)\nscripts/bench-nginx-install.sh           # as root: nginx, perf, wrk (Debian) for scenario 7\nscripts/bench-all.sh                     # this file: builds the before-this-round and mimalloc variants, runs `all` with them, then §9\nscripts/bench-instructions.py BIN...     # §9 alone: instructions per request under callgrind (valgrind), e.g. to judge one change\nscripts/bench-flamegraph.sh              # docs/flamegraph-c64.svg (perf record + inferno; a separate run)\n```\n\nopenclawd runs as the real binary (`openclawd run`) with a temporary HOME, `ollama.manage: false`, and providers `mock` (`openai-completions`), `ollama` (native `/api/chat`), `gemini` (`google-generative-ai`, the Gemini double), `nginx` (scenario 7) and `dead` (a refused port) all on loopback; its log had {oc_log_warnings} warning lines (the failover scenario logs one per failed attempt). Scenario 6 starts one openclawd per iteration managing the `ollama` test double."
    );
    std::fs::write(&out, &md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "[bench] wrote {} in {:.0} s",
        out.display(),
        run_started.elapsed().as_secs_f64()
    );

    if smoke {
        let mut problems: Vec<String> = sections.iter().flat_map(|s| s.problems.clone()).collect();
        problems.extend(sup.errors.iter().cloned());
        let missing = [
            ("added p99", figs.added_p99_c1_us),
            ("CPU per request", figs.cpu_per_request_us),
            ("added TTFT", figs.added_ttft_p99_c1_us),
            ("failover", figs.failover_added_p99_us),
            (
                "added latency of /v1/messages → Ollama",
                cloud_figs.messages_added_c1.map(|a| a.1),
            ),
            (
                "added latency of chat completions → Gemini",
                cloud_figs.gemini_added_c1.map(|a| a.1),
            ),
            ("CPU per /v1/messages request", cloud_figs.messages_cpu_us),
            ("CPU per Gemini request", cloud_figs.gemini_cpu_us),
        ];
        for (what, v) in missing {
            if v.is_none() {
                problems.push(format!("no figure for {what}"));
            }
        }
        if sup.sigkill.is_empty() || sup.config_edit.is_empty() || sup.pull.is_empty() {
            problems.push("scenario 6 produced no figure".into());
        }
        if !problems.is_empty() {
            bail!("the smoke found problems:\n- {}", problems.join("\n- "));
        }
    }
    Ok(())
}

fn s6_section(f: &supervisor::SupervisorFigures) -> Section {
    let mut sec = Section {
        title: "6. Supervisor".into(),
        text: format!(
            "Each of {} iterations starts a fresh openclawd managing the `ollama` test double \
             (real processes, temp HOME, free ports) and times, by polling `/status` every 10 ms: \
             start → Ollama running and the primary routable; SIGKILL of `ollama serve` → \
             `running` again with a new pid (the first restart waits the 1 s ±10 % backoff step of \
             SPEC §3, which dominates this figure); an atomic config edit of the primary → the new \
             primary in `/status`; `ollama pull` (the double's catalogue gains a model, then its \
             manifest appears under `OLLAMA_MODELS`) → the model listed as available. No direct \
             counterpart exists: without openclawd nothing restarts Ollama or re-reads the \
             config.",
            f.start.len().max(f.errors.len())
        ),
        ..Default::default()
    };
    let mut t = Table::new(&["event", "median", "max", "n"]);
    for (label, v) in [
        ("start → Ollama running, primary routable", &f.start),
        ("SIGKILL of `ollama serve` → running again", &f.sigkill),
        ("config edit → new routing live", &f.config_edit),
        ("`ollama pull` → model routable", &f.pull),
    ] {
        let (med, max) = scenarios::median_max(v);
        t.row(vec![
            label.into(),
            secs(med),
            secs(max),
            v.len().to_string(),
        ]);
    }
    sec.tables.push(t);
    for e in &f.errors {
        sec.notes.push(format!("error: {e}"));
    }
    sec
}

fn verdict(v: Option<f64>, ok: impl Fn(f64) -> bool) -> &'static str {
    match v {
        Some(x) if ok(x) => "**met**",
        Some(_) => "**missed**",
        None => "not measured",
    }
}

/// `; largest items: kernel: … 9.6 µs, …` from §7's cost per item (the three largest).
fn largest_items(items: &[(perf::Item, f64, f64)]) -> String {
    let mut v: Vec<&(perf::Item, f64, f64)> = items.iter().filter(|i| i.2.is_finite()).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    let top: Vec<String> = v
        .iter()
        .take(3)
        .map(|(item, _, per)| format!("{} {}", item.short(), us(*per)))
        .collect();
    format!(
        "; largest items per request: {} (§7, cost per item)",
        top.join(", ")
    )
}

fn goals_section(f: &Figures, r: &reference::RefFigures, litellm_absent: Option<&str>) -> Section {
    let mut sec = Section {
        title: "Goals (issue 8)".into(),
        text: "The targets come from independent measurements of the best gateways \
               (`shared/notes/anchors.md` §0, §1.2); the figures are openclawd's on its \
               `openai-completions` path unless noted."
            .into(),
        ..Default::default()
    };
    let mut t = Table::new(&["goal", "target", "measured", "verdict"]);
    t.row(vec![
        "CPU per request at concurrency 64 ÷ nginx's serving the same answer (issue 18)".into(),
        "≤ 3×".into(),
        match (r.cpu_ratio_c64, r.cpu_us_c64, r.nginx_cpu_us_c64) {
            (Some(x), Some(g), Some(n)) => format!(
                "{x:.1}× ({} vs {}; {:.2} context switches per request), §7{}",
                us(g),
                us(n),
                r.switches_c64.unwrap_or(f64::NAN),
                largest_items(&r.cost_items)
            ),
            _ => "not measured (nginx absent)".into(),
        },
        verdict(r.cpu_ratio_c64, |x| x <= 3.0).into(),
    ]);
    t.row(vec![
        "added latency at concurrency 1 over nginx direct, p50 / p99 (issue 18)".into(),
        "≤ 60 µs / ≤ 100 µs".into(),
        format!(
            "{} / {}, §7",
            scenarios::added_row(r.added_p50_c1),
            scenarios::added_row(r.added_p99_c1)
        ),
        verdict(
            r.added_p50_c1
                .zip(r.added_p99_c1)
                .map(|(a, b)| if a <= 60.0 && b <= 100.0 { 0.0 } else { 1.0 }),
            |x| x == 0.0,
        )
        .into(),
    ]);
    t.row(vec![
        "added time to first token p50, 512 concurrent streams (issue 18)".into(),
        "≤ 1 ms".into(),
        match r.cpu_us_c64 {
            Some(c) => format!(
                "{}, §3. Cause: the 512 requests arrive within one 20 ms pace period; at {} of \
                 openclawd CPU each (§7, concurrency 64) the burst alone needs {:.0} ms of \
                 openclawd CPU, on 2 cores shared with the client and the mock, and the median \
                 stream waits for about half of it (direct: the mock's {} each). The upstream \
                 pool keeps up to 1024 idle connections for 90 s, so only the first round opens \
                 new upstream connections. Remaining cost = CPU per request (see §7).",
                scenarios::added_row(f.added_ttft_p50_512_us),
                us(c),
                512.0 * c / 1000.0,
                r.mock_cpu_us_c64.map(us).unwrap_or("—".into())
            ),
            None => format!("{}, §3", scenarios::added_row(f.added_ttft_p50_512_us)),
        },
        verdict(f.added_ttft_p50_512_us, |x| x <= 1000.0).into(),
    ]);
    t.row(vec![
        "added latency p99, non-streaming, concurrency 1".into(),
        "≤ 100 µs".into(),
        format!(
            "{} (p50 {})",
            scenarios::added_row(f.added_p99_c1_us),
            scenarios::added_row(f.added_p50_c1_us)
        ),
        verdict(f.added_p99_c1_us, |x| x <= 100.0).into(),
    ]);
    t.row(vec![
        "added time to first token p99".into(),
        "≤ 200 µs".into(),
        format!(
            "{} at concurrency 1 ({} at 64); every stream starts after ≥ 20 ms idle, and a \
             non-streaming request after 20 ms idle adds {} (p50) too: wake-ups, see §1",
            scenarios::added_row(f.added_ttft_p99_c1_us),
            scenarios::added_row(f.added_ttft_p99_c64_us),
            scenarios::added_row(f.added_p50_idle_us)
        ),
        verdict(f.added_ttft_p99_c1_us, |x| x <= 200.0).into(),
    ]);
    t.row(vec![
        "added inter-chunk gap p99 with 512 concurrent streams".into(),
        "≤ 10 µs".into(),
        format!(
            "{}; most stall-free streams: {}",
            scenarios::added_row(f.added_gap_p99_512_us),
            f.max_streams_openclawd
                .map(|m| m.to_string())
                .unwrap_or("—".into())
        ),
        verdict(f.added_gap_p99_512_us, |x| x <= 10.0).into(),
    ]);
    t.row(vec![
        "CPU time per non-streaming request".into(),
        "≤ 50 µs".into(),
        format!(
            "{} (`ollama` native path: {})",
            f.cpu_per_request_us.map(us).unwrap_or("—".into()),
            f.cpu_per_request_ollama_us.map(us).unwrap_or("—".into())
        ),
        verdict(f.cpu_per_request_us, |x| x <= 50.0).into(),
    ]);
    t.row(vec![
        "idle RSS".into(),
        "≤ 15 MB".into(),
        mb(f.idle_rss),
        verdict(f.idle_rss.map(|b| b as f64), |x| x <= 15.0 * 1_048_576.0).into(),
    ]);
    t.row(vec![
        "RSS under 512 concurrent streams".into(),
        "≤ 40 MB".into(),
        format!("{} (after the load: {})", mb(f.rss_512), mb(f.rss_after)),
        verdict(f.rss_512.map(|b| b as f64), |x| x <= 40.0 * 1_048_576.0).into(),
    ]);
    let per_cpu = f
        .cpu_per_request_us
        .zip(f.litellm_cpu_per_request_us)
        .map(|(o, l)| l / o);
    t.row(vec![
        "throughput per CPU vs LiteLLM".into(),
        "≥ 20×".into(),
        match (per_cpu, litellm_absent) {
            (Some(r), _) => format!(
                "{r:.0}× ({} vs {} CPU per request)",
                f.cpu_per_request_us.map(us).unwrap_or_default(),
                f.litellm_cpu_per_request_us.map(us).unwrap_or_default()
            ),
            (None, Some(why)) => format!("LiteLLM absent: {why}"),
            (None, None) => "—".into(),
        },
        verdict(per_cpu, |x| x >= 20.0).into(),
    ]);
    sec.tables.push(t);
    sec
}
