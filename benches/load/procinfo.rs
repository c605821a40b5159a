//! /proc, read with the `procfs` crate: CPU and memory of the server (one process, or a whole
//! tree for sshd), this process's own CPU, the load average and open-file limits.

use std::collections::HashMap;
use std::process::Command;

use procfs::process::{LimitValue, Process};
use procfs::{Current, LoadAverage};

/// Clock ticks per second, the unit of utime/stime in /proc/PID/stat.
fn tck() -> f64 {
    procfs::ticks_per_second() as f64
}

/// utime + stime + cutime + cstime of one process, in clock ticks.
fn cpu_ticks(p: &Process) -> u64 {
    p.stat().map_or(0, |s| {
        s.utime + s.stime + u64::try_from(s.cutime).unwrap_or(0) + u64::try_from(s.cstime).unwrap_or(0)
    })
}

/// Run time of every live thread of one process, in nanoseconds (finer than ticks).
fn cpu_ns_threads(p: &Process) -> u64 {
    let Ok(tasks) = p.tasks() else { return 0 };
    tasks.filter_map(Result::ok).filter_map(|t| t.schedstat().ok()).map(|s| s.sum_exec_runtime).sum()
}

/// `pid` and all its descendants.
fn process_tree(root: u32) -> Vec<Process> {
    let mut children: HashMap<i32, Vec<Process>> = HashMap::new();
    let mut root_process = None;
    if let Ok(all) = procfs::process::all_processes() {
        for p in all.filter_map(Result::ok) {
            if u32::try_from(p.pid).ok() == Some(root) {
                root_process = Some(p);
            } else if let Ok(stat) = p.stat() {
                children.entry(stat.ppid).or_default().push(p);
            }
        }
    }
    let mut out: Vec<Process> = root_process.into_iter().collect();
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.remove(&out[i].pid) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// Rss and Pss in KiB from smaps_rollup, summed over `processes`.
fn memory_kib(processes: &[Process]) -> (u64, u64) {
    let (mut rss, mut pss) = (0, 0);
    for p in processes {
        let Ok(rollup) = p.smaps_rollup() else { continue };
        for map in &rollup.memory_map_rollup.0 {
            rss += map.extension.map.get("Rss").copied().unwrap_or(0) / 1024;
            pss += map.extension.map.get("Pss").copied().unwrap_or(0) / 1024;
        }
    }
    (rss, pss)
}

/// A point-in-time reading of the server's resource use.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// All CPU including reaped children, seconds (tick resolution).
    pub cpu_s: f64,
    /// CPU of live threads in the tree, seconds (ns resolution).
    pub cpu_live_s: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Proportional share of memory (fair for sshd's forked children), KiB.
    pub pss_kib: u64,
    /// Processes in the tree.
    pub processes: usize,
}

pub fn usage(root: u32) -> Usage {
    let tree = process_tree(root);
    let ticks: u64 = tree.iter().map(cpu_ticks).sum();
    let ns: u64 = tree.iter().map(cpu_ns_threads).sum();
    let (rss_kib, pss_kib) = memory_kib(&tree);
    Usage {
        cpu_s: ticks as f64 / tck(),
        cpu_live_s: ns as f64 / 1e9,
        rss_kib,
        pss_kib,
        processes: tree.len(),
    }
}

/// CPU this process (the load generator's clients) has used, seconds (tick resolution).
pub fn self_cpu_s() -> f64 {
    Process::myself().and_then(|p| p.stat()).map_or(0.0, |s| (s.utime + s.stime) as f64 / tck())
}

/// CPU of this process's live threads, seconds (ns resolution, for windows of milliseconds).
pub fn self_cpu_live_s() -> f64 {
    Process::myself().map_or(0.0, |p| cpu_ns_threads(&p) as f64 / 1e9)
}

/// The 1/5/15-minute load averages: other work on the machine skews every figure.
pub fn loadavg() -> String {
    LoadAverage::current().map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen)).unwrap_or_default()
}

fn nofile_limit(pid: u32) -> Option<u64> {
    let limits = Process::new(i32::try_from(pid).ok()?).ok()?.limits().ok()?;
    match limits.max_open_files.soft_limit {
        LimitValue::Unlimited => Some(u64::MAX),
        LimitValue::Value(v) => Some(v),
    }
}

/// Raises RLIMIT_NOFILE of `pid` to at least `want` with util-linux `prlimit` (we may be root).
pub fn raise_nofile(pid: u32, want: u64) {
    if nofile_limit(pid).is_some_and(|l| l >= want) {
        return;
    }
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={want}:{want}")])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!(
            "warning: could not raise the open-file limit of {pid} to {want}; run under `ulimit -n {want}`"
        );
    }
}
