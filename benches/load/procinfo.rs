//! /proc: CPU and memory of the server (one process, or a whole tree for sshd).

use std::collections::HashMap;
use std::process::Command;

pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields after the command name in /proc/PID/stat (index 0 is the state, field 3).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// utime + stime + cutime + cstime of one process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid).map(|f| (11..=14).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum()).unwrap_or(0)
}

/// Run time of every live thread of one process, in nanoseconds (finer than ticks).
pub fn cpu_ns_threads(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `pid` and all its descendants.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.filter_map(|e| e.ok()) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// Rss and Pss in KiB from smaps_rollup, summed over `pids`.
pub fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut pss = 0;
    for pid in pids {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else { continue };
        for line in s.lines() {
            let mut it = line.split_whitespace();
            let key = it.next().unwrap_or("");
            let value: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match key {
                "Rss:" => rss += value,
                "Pss:" => pss += value,
                _ => {}
            }
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
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub processes: usize,
}

pub fn usage(root: u32, tck: f64) -> Usage {
    let pids = process_tree(root);
    let ticks: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let ns: u64 = pids.iter().map(|p| cpu_ns_threads(*p)).sum();
    let (rss_kib, pss_kib) = memory_kib(&pids);
    Usage { cpu_s: ticks as f64 / tck, cpu_live_s: ns as f64 / 1e9, rss_kib, pss_kib, processes: pids.len() }
}

pub fn self_cpu_s(tck: f64) -> f64 {
    stat_fields(std::process::id())
        .map(|f| (11..=12).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum::<u64>() as f64 / tck)
        .unwrap_or(0.0)
}

/// The 1/5/15-minute load averages: other work on the machine skews every figure.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn nofile_limit(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
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
