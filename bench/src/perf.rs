//! Where openclawd's CPU goes, by item (issue 18's "remaining cost per item"): `perf record`
//! samples openclawd's threads during one extra window of load, and every sample is put in one
//! bucket by the first frame of its stack (leaf first) that names an item.
//!
//! Kernel samples are bucketed by their kernel frames (scheduling and wake-ups before epoll
//! before the network stack, as met from the leaf: a wake-up done inside a TCP send counts as a
//! wake-up); user samples by the crate of their first frame that is not generic (`core`,
//! `alloc`, `std`, `bytes`, `http`, libc's `memcpy`… are skipped, so a copy counts for the code
//! that asked for it). Release builds have no frame pointers, so stacks come from DWARF
//! unwinding (`--call-graph dwarf`); where that gives nothing, from frame pointers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// One bucket of CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    KernelNetwork,
    KernelEpoll,
    KernelScheduling,
    KernelOther,
    HttpServer,
    HttpClient,
    Json,
    Allocator,
    Tokio,
    TracingMetrics,
    Gateway,
    Other,
}

impl Item {
    pub const ALL: [Item; 12] = [
        Item::KernelNetwork,
        Item::KernelEpoll,
        Item::KernelScheduling,
        Item::KernelOther,
        Item::HttpServer,
        Item::HttpClient,
        Item::Json,
        Item::Allocator,
        Item::Tokio,
        Item::TracingMetrics,
        Item::Gateway,
        Item::Other,
    ];

    /// A few words, for the goals table.
    pub fn short(self) -> &'static str {
        match self {
            Item::KernelNetwork => "kernel network",
            Item::KernelEpoll => "kernel epoll",
            Item::KernelScheduling => "kernel scheduling and wake-ups",
            Item::KernelOther => "kernel other",
            Item::HttpServer => "HTTP server",
            Item::HttpClient => "upstream HTTP client",
            Item::Json => "JSON",
            Item::Allocator => "allocator",
            Item::Tokio => "tokio runtime",
            Item::TracingMetrics => "tracing and metrics",
            Item::Gateway => "gateway code",
            Item::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Item::KernelNetwork => {
                "kernel: network send/receive (TCP over loopback, socket syscalls)"
            }
            Item::KernelEpoll => "kernel: epoll",
            Item::KernelScheduling => {
                "kernel: scheduling and wake-ups (context switches, futex, waking a peer)"
            }
            Item::KernelOther => {
                "kernel: other (syscall entry/exit, timers, interrupts, page faults)"
            }
            Item::HttpServer => {
                "HTTP server: hyper server (parse, encode, dispatch) and axum routing"
            }
            Item::HttpClient => {
                "upstream HTTP client: hyper client and its pool, reqwest, `url`, openclawd's \
                 `providers::http`"
            }
            Item::Json => "JSON: serde_json and serde (derived (de)serializers)",
            Item::Allocator => "allocator: jemalloc / malloc / free",
            Item::Tokio => "tokio runtime: scheduler, I/O driver, timers",
            Item::TracingMetrics => "tracing, metrics and the request log (`measure`, `requests`)",
            Item::Gateway => "openclawd's own gateway code (routing, chain walk, translation)",
            Item::Other => "other: libc, std, unresolved frames",
        }
    }
}

/// One frame of a sampled stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sym: String,
    pub kernel: bool,
    pub dso: String,
}

/// Samples (weighted by their period) per item, and the leaf symbols that weigh most.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub total: u64,
    pub samples: u64,
    pub items: BTreeMap<Item, u64>,
    pub leaves: BTreeMap<String, u64>,
    /// How the stacks were unwound (`dwarf` or `fp`).
    pub call_graph: &'static str,
}

impl Profile {
    pub fn share(&self, i: Item) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.items.get(&i).copied().unwrap_or(0) as f64 / self.total as f64
    }

    /// The `n` heaviest leaf symbols with their share.
    pub fn top_leaves(&self, n: usize) -> Vec<(String, f64)> {
        let mut v: Vec<(&String, &u64)> = self.leaves.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(s, w)| (s.clone(), *w as f64 / self.total.max(1) as f64))
            .collect()
    }
}

pub fn perf_binary() -> Option<PathBuf> {
    ["/usr/bin/perf", "/usr/local/bin/perf"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts `perf record` of every thread of `pid` for `secs`, call graphs by `mode` (`dwarf` or
/// `fp`), writing `perf-<mode>.data` in `dir`; [`finish`] waits for it.
pub async fn record(
    perf: &Path,
    pid: i32,
    secs: f64,
    mode: &str,
    dir: &Path,
) -> Result<tokio::process::Child, String> {
    let data = dir.join(format!("perf-{mode}.data"));
    let call_graph = if mode == "dwarf" {
        "dwarf,16384".to_string()
    } else {
        "fp".to_string()
    };
    tokio::process::Command::new(perf)
        .args(["record", "-e", "cpu-clock", "-F", "999", "--call-graph"])
        .arg(&call_graph)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep", &format!("{secs:.2}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not run {}: {e}", perf.display()))
}

/// Waits for a `record` child; `Err` with perf's own words when it failed (not permitted…).
pub async fn finish(child: tokio::process::Child) -> Result<(), String> {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| "perf record did not end within 120 s".to_string())?
        .map_err(|e| format!("perf record: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let why: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    Err(format!(
        "perf record failed ({}): {}",
        out.status,
        why.join(" ")
    ))
}

/// `perf script` of the data `record` wrote, bucketed.
pub async fn analyse(perf: &Path, mode: &'static str, dir: &Path) -> Result<Profile, String> {
    let data = dir.join(format!("perf-{mode}.data"));
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(perf)
            // `--no-inline`: resolving inlined frames runs `addr2line` per address (minutes).
            .args(["script", "--no-inline", "-F", "period,ip,sym,dso", "-i"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "perf script did not end within 300 s".to_string())?
    .map_err(|e| format!("perf script: {e}"))?;
    if !out.status.success() {
        return Err(format!("perf script failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut p = Profile {
        call_graph: mode,
        ..Default::default()
    };
    for (period, stack) in parse_script(&text) {
        p.total += period;
        p.samples += 1;
        *p.items.entry(classify(&stack)).or_default() += period;
        if let Some(leaf) = stack.first() {
            *p.leaves.entry(short(&leaf.sym)).or_default() += period;
        }
    }
    if p.samples == 0 {
        return Err("perf recorded no samples of openclawd".into());
    }
    Ok(p)
}

/// `perf script -F period,ip,sym,dso` output: a sample is a line with its period, then one
/// line per frame (`addr sym+off (dso)` or `addr sym (dso)`), then a blank line.
pub fn parse_script(text: &str) -> Vec<(u64, Vec<Frame>)> {
    let mut out = Vec::new();
    let mut cur: Option<(u64, Vec<Frame>)> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            if let Some(s) = cur.take() {
                out.push(s);
            }
            continue;
        }
        // Frames are tab-indented; the sample's own line is indented with spaces.
        let is_frame = line.starts_with('\t');
        match (&mut cur, is_frame) {
            (Some((_, frames)), true) => frames.push(parse_frame(t)),
            (_, false) => {
                if let Some(s) = cur.take() {
                    out.push(s);
                }
                // The period alone, or the period followed by the leaf frame (no call graph).
                let mut parts = t.splitn(2, char::is_whitespace);
                let period = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
                let mut frames = Vec::new();
                if let Some(rest) = parts.next().map(str::trim).filter(|r| !r.is_empty()) {
                    frames.push(parse_frame(rest));
                }
                cur = Some((period, frames));
            }
            (None, true) => {}
        }
    }
    if let Some(s) = cur.take() {
        out.push(s);
    }
    out
}

fn parse_frame(t: &str) -> Frame {
    // `ffffffff81234567 tcp_sendmsg+0x2d ([kernel.kallsyms])`
    let rest = t.split_once(char::is_whitespace).map(|x| x.1).unwrap_or(t);
    let (sym, dso) = match rest.rfind(" (") {
        Some(i) if rest.ends_with(')') => (&rest[..i], &rest[i + 2..rest.len() - 1]),
        _ => (rest, ""),
    };
    let sym = match sym.rfind("+0x") {
        Some(i) => &sym[..i],
        None => sym,
    };
    Frame {
        sym: sym.trim().to_string(),
        kernel: dso.contains("kernel.kallsyms") || dso.starts_with("[kernel"),
        dso: dso.to_string(),
    }
}

/// A symbol without its generic arguments' noise, for the "heaviest leaves" list.
fn short(sym: &str) -> String {
    let mut s = sym.to_string();
    if s.len() > 110 {
        s.truncate(107);
        s.push('…');
    }
    s
}

pub fn classify(stack: &[Frame]) -> Item {
    match stack.first() {
        None => Item::Other,
        Some(leaf) if leaf.kernel => kernel_item(stack),
        Some(_) => user_item(stack),
    }
}

fn kernel_item(stack: &[Frame]) -> Item {
    // `sock_def_readable` / `sock_def_write_space` wake the socket's waiters (their spinlock
    // release is where cpu-clock samples taken with interrupts off land).
    const SCHED: &[&str] = &[
        "sock_def_readable",
        "sock_def_write_space",
        "ep_poll_callback",
        "schedule",
        "finish_task_switch",
        "try_to_wake_up",
        "ttwu",
        "wake_up",
        "futex",
        "sched_",
        "enqueue_task",
        "dequeue_task",
        "pick_next",
        "switch_to",
        "switch_mm",
        "context_switch",
        "select_task_rq",
        "update_curr",
        "psi_",
    ];
    const EPOLL: &[&str] = &[
        "epoll",
        "ep_poll",
        "ep_send_events",
        "ep_item_poll",
        "ep_done_scan",
        "ep_start_scan",
    ];
    const NET: &[&str] = &[
        "tcp_",
        "inet_",
        "sock_",
        "sk_",
        "skb",
        "ip_",
        "ip6_",
        "__sys_send",
        "__sys_recv",
        "sendmsg",
        "recvmsg",
        "sendto",
        "recvfrom",
        "net_rx",
        "netif",
        "napi",
        "dev_queue",
        "loopback_xmit",
        "dev_hard_start_xmit",
        "nf_hook",
        "dst_",
        "lock_sock",
        "release_sock",
    ];
    for f in stack.iter().take_while(|f| f.kernel) {
        let s = f.sym.as_str();
        if SCHED.iter().any(|p| s.contains(p)) {
            return Item::KernelScheduling;
        }
        if EPOLL.iter().any(|p| s.contains(p)) {
            return Item::KernelEpoll;
        }
        if NET.iter().any(|p| s.contains(p)) {
            return Item::KernelNetwork;
        }
    }
    Item::KernelOther
}

/// The crate a Rust symbol belongs to: `<hyper::proto::h1::X as core::Y>::f` → `hyper`.
fn crate_of(sym: &str) -> &str {
    let s = sym.trim_start_matches(['<', '&', '*', ' ', '_']);
    let s = s.strip_prefix("mut ").unwrap_or(s);
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn is_allocator(f: &Frame) -> bool {
    const SYMS: &[&str] = &[
        "malloc",
        "free",
        "realloc",
        "calloc",
        "cfree",
        "_int_malloc",
        "_int_free",
        "_int_realloc",
        "__libc_malloc",
        "__libc_free",
        "__libc_calloc",
        "__libc_realloc",
        "malloc_consolidate",
        "unlink_chunk",
        "tcache_get",
        "tcache_put",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rdl_alloc",
        "__rdl_dealloc",
        "__rdl_realloc",
        "sdallocx",
        "mallocx",
        "rallocx",
    ];
    let s = f.sym.as_str();
    SYMS.contains(&s)
        || s.starts_with("_rjem_")
        || s.starts_with("je_")
        || s.starts_with("mi_")
        || s.starts_with("_mi_")
        || s.contains("jemalloc")
        || s.contains("mimalloc")
        || f.dso.contains("jemalloc")
        || f.dso.contains("mimalloc")
}

/// A hyper frame is the server's or the upstream client's: the stack says which.
fn hyper_side(stack: &[Frame]) -> Item {
    let client = stack.iter().any(|f| {
        let s = f.sym.as_str();
        s.contains("hyper::client")
            || s.contains("hyper_util::client")
            || s.contains("reqwest")
            || s.contains("role::Client")
    });
    if client {
        Item::HttpClient
    } else {
        Item::HttpServer
    }
}

fn user_item(stack: &[Frame]) -> Item {
    for f in stack.iter().filter(|f| !f.kernel) {
        if is_allocator(f) {
            return Item::Allocator;
        }
        let s = f.sym.as_str();
        // Derived (de)serializers are named after the type: `<openclawd::X as serde::…>`.
        if s.contains(" as serde::") || s.contains("serde_json") {
            return Item::Json;
        }
        let item = match crate_of(s) {
            "serde" | "serde_json" | "serde_path_to_error" | "json5" => Some(Item::Json),
            "tracing" | "tracing_core" | "tracing_subscriber" | "tracing_log" | "sharded_slab"
            | "prometheus_client" => Some(Item::TracingMetrics),
            "reqwest" | "url" | "idna" | "rustls" | "ipnet" | "percent_encoding" => {
                Some(Item::HttpClient)
            }
            "hyper_util" if s.contains("hyper_util::client") => Some(Item::HttpClient),
            "hyper_util" if s.contains("hyper_util::server") => Some(Item::HttpServer),
            "hyper" | "httparse" | "h2" => Some(hyper_side(stack)),
            "axum" | "axum_core" | "matchit" | "tower_http" => Some(Item::HttpServer),
            "tokio" | "mio" | "tokio_util" => Some(Item::Tokio),
            "openclawd" => Some(
                if s.contains("::measure::") || s.contains("::requests::") || s.contains("metrics")
                {
                    Item::TracingMetrics
                } else if s.contains("::providers::http::") {
                    Item::HttpClient
                } else {
                    Item::Gateway
                },
            ),
            // Generic code (core, alloc, std, bytes, http, futures, libc's memcpy, unresolved):
            // it counts for its caller.
            _ => None,
        };
        if let Some(i) = item {
            return i;
        }
    }
    Item::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(sym: &str) -> Frame {
        Frame {
            sym: sym.into(),
            kernel: true,
            dso: "[kernel.kallsyms]".into(),
        }
    }
    fn u(sym: &str) -> Frame {
        Frame {
            sym: sym.into(),
            kernel: false,
            dso: "/x/openclawd".into(),
        }
    }

    #[test]
    fn perf_script_output_is_read_sample_by_sample() {
        let text = "   2004008 \n\
            \tffffffff81a0 _raw_spin_unlock_irqrestore+0x1d ([kernel.kallsyms])\n\
            \tffffffff81a1 try_to_wake_up+0x2a0 ([kernel.kallsyms])\n\
            \t55d5c0 tokio::runtime::park::Inner::unpark+0x12 (/t/openclawd)\n\
            \n\
               1000 \n\
            \t7f00 __memmove_avx_unaligned_erms+0x1e (/usr/lib/x86_64-linux-gnu/libc.so.6)\n\
            \t55d5 serde_json::de::from_slice+0x40 (/t/openclawd)\n\n";
        let s = parse_script(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, 2004008);
        assert_eq!(s[0].1[0].sym, "_raw_spin_unlock_irqrestore");
        assert!(s[0].1[0].kernel && !s[0].1[2].kernel);
        assert_eq!(classify(&s[0].1), Item::KernelScheduling);
        assert_eq!(classify(&s[1].1), Item::Json);
    }

    #[test]
    fn kernel_samples_go_to_what_the_kernel_was_doing() {
        let send = [
            k("copy_user_enhanced_fast_string"),
            k("_copy_from_iter"),
            k("tcp_sendmsg_locked"),
            k("__sys_sendto"),
            k("entry_SYSCALL_64"),
        ];
        assert_eq!(classify(&send), Item::KernelNetwork);
        let wake_in_send = [
            k("_raw_spin_unlock_irqrestore"),
            k("try_to_wake_up"),
            k("sock_def_readable"),
            k("tcp_sendmsg"),
        ];
        assert_eq!(classify(&wake_in_send), Item::KernelScheduling);
        // cpu-clock charges the wake-up done with interrupts off to the lock's release.
        let wake_peer = [
            k("_raw_spin_unlock_irqrestore"),
            k("sock_def_readable"),
            k("tcp_rcv_established"),
        ];
        assert_eq!(classify(&wake_peer), Item::KernelScheduling);
        assert_eq!(
            classify(&[k("ep_poll"), k("do_epoll_wait")]),
            Item::KernelEpoll
        );
        assert_eq!(
            classify(&[k("syscall_return_via_sysret")]),
            Item::KernelOther
        );
    }

    #[test]
    fn user_samples_go_to_the_first_frame_that_is_not_generic() {
        assert_eq!(
            classify(&[u("_rjem_malloc"), u("serde_json::de::x")]),
            Item::Allocator
        );
        assert_eq!(
            classify(&[u("__memmove_avx_unaligned_erms"), u("bytes::bytes_mut::BytesMut::extend_from_slice"), u("<openclawd::gateway::wire::ir::ChatRequest as serde::de::Deserialize>::deserialize")]),
            Item::Json
        );
        let parse = [
            u("httparse::parse_headers_iter_uninit"),
            u("hyper::proto::h1::role::<impl hyper::proto::h1::Http1Transaction for hyper::proto::h1::role::Server>::parse"),
            u("hyper::proto::h1::conn::Conn<I,B,T>::poll_read_head"),
            u("<hyper_util::server::conn::auto::UpgradeableConnection<I,S,E> as core::future::Future>::poll"),
        ];
        assert_eq!(classify(&parse), Item::HttpServer);
        let client = [
            u("hyper::proto::h1::io::Buffered<T,B>::poll_read_from_io"),
            u("hyper::proto::h1::dispatch::Dispatcher::poll_catch"),
            u("<hyper::client::conn::http1::Connection<T,B> as core::future::Future>::poll"),
        ];
        assert_eq!(classify(&client), Item::HttpClient);
        assert_eq!(
            classify(&[
                u("idna::uts46::Uts46::process"),
                u("url::parser::Parser::parse_host")
            ]),
            Item::HttpClient
        );
        assert_eq!(
            classify(&[u(
                "tokio::runtime::scheduler::multi_thread::worker::Context::run"
            )]),
            Item::Tokio
        );
        assert_eq!(
            classify(&[u("openclawd::gateway::chat::walk::{{closure}}")]),
            Item::Gateway
        );
        assert_eq!(
            classify(&[u(
                "openclawd::gateway::providers::http::Outbound::send::{{closure}}"
            )]),
            Item::HttpClient
        );
        assert_eq!(
            classify(&[u("openclawd::gateway::requests::RequestLog::record")]),
            Item::TracingMetrics
        );
        assert_eq!(
            classify(&[u("tracing_core::dispatcher::get_default")]),
            Item::TracingMetrics
        );
        assert_eq!(classify(&[u("[unknown]")]), Item::Other);
        assert_eq!(
            crate_of("<&mut serde_json::de::Deserializer<R> as x>::y"),
            "serde_json"
        );
    }
}
