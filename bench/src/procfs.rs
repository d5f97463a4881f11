//! CPU time and resident memory of the processes under test, from `/proc`.

use std::fs;

/// Clock ticks per second of `utime`/`stime`.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `(ppid, utime + stime)` from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `pid` and all its live descendants.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if let Some((ppid, _)) = stat(p) {
                    parent_of.push((p, ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for (p, pp) in &parent_of {
            if *pp == parent && !out.contains(p) {
                out.push(*p);
            }
        }
        i += 1;
    }
    out
}

/// CPU seconds used so far by `pid` and its live descendants.
pub fn cpu_secs(pid: i32) -> f64 {
    let ticks: u64 = tree(pid).iter().filter_map(|p| stat(*p)).map(|s| s.1).sum();
    ticks as f64 / clock_ticks()
}

/// Exact CPU time and context switches of a process tree, summed over every thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Time on CPU in ns: the scheduler's `sum_exec_runtime` (`/proc/<pid>/task/<tid>/schedstat`,
    /// the same counter `perf stat -e task-clock` reads), not 100 Hz ticks.
    pub cpu_ns: u64,
    /// Voluntary + involuntary context switches (`/proc/<pid>/task/<tid>/status`).
    pub switches: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(o.cpu_ns),
            switches: self.switches.saturating_sub(o.switches),
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.cpu_ns += o.cpu_ns;
        self.switches += o.switches;
    }
}

fn task_usage(pid: i32, tid: &str) -> Option<Usage> {
    let sched = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
    let cpu_ns = sched.split_whitespace().next()?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let switches = status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Some(Usage { cpu_ns, switches })
}

/// Exact usage so far of `pid` and its live descendants, every thread of each. (A thread that
/// ended takes its share with it; the processes measured keep their threads.)
pub fn usage(pid: i32) -> Usage {
    let mut u = Usage::default();
    for p in tree(pid) {
        if let Ok(dir) = fs::read_dir(format!("/proc/{p}/task")) {
            for t in dir.flatten() {
                if let Some(tu) = t.file_name().to_str().and_then(|tid| task_usage(p, tid)) {
                    u += tu;
                }
            }
        }
    }
    u
}

/// The machine's (busy, steal, total) jiffies from `/proc/stat`: steal is time the hypervisor
/// ran something else while a vCPU wanted to run (it inflates every CPU figure of a VM).
pub fn machine_jiffies() -> (u64, u64, u64) {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let total: u64 = f.iter().take(8).sum();
    let idle = get(3) + get(4);
    (total.saturating_sub(idle), get(7), total)
}

/// Resident set (`VmRSS`) in bytes of one process.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident set of `pid` and its live descendants (LiteLLM may run workers).
pub fn tree_rss_bytes(pid: i32) -> u64 {
    tree(pid).iter().filter_map(|p| rss_bytes(*p)).sum()
}

/// The environment of a process, when readable (to find the processes a run started).
pub fn environ_contains(pid: i32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|e| e.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        .unwrap_or(false)
}

/// Every process whose environment holds `needle` (`KEY=value`).
pub fn processes_with_env(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if environ_contains(p, needle) {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id() as i32;
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_secs(me) >= 0.0);
        assert!(rss_bytes(me).unwrap() > 1024 * 1024);
        assert!(tree(me).contains(&me));
        let u = usage(me);
        assert!(u.cpu_ns > 0 && u.switches > 0, "{u:?}");
    }
}
