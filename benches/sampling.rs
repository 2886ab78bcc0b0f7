//! Benchmark: the CPU cost of one workload sample on real cgroups (cgroup v1 here:
//! `cpuacct.usage` and `cpu.stat`), burstd's path against the floor (one pread of the same
//! files on kept fds, no parsing) and the naive way (open, read, close each time). CPU time is
//! the thread's own (CLOCK_THREAD_CPUTIME_ID), so other load on the machine does not count.
//!
//! Needs root and cgroup v1; prints one JSON line per run for `bench/run.py`.
//! `cargo bench --bench sampling` (`-- --groups N --rounds R --runs K`).

use burstd::cgroup::Layout;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

const CPU: &str = "/sys/fs/cgroup/cpu";
const CPUACCT: &str = "/sys/fs/cgroup/cpuacct";

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Groups(Vec<String>);

impl Drop for Groups {
    fn drop(&mut self) {
        for rel in &self.0 {
            for root in [CPU, CPUACCT] {
                let _ = fs::remove_dir(Path::new(root).join(rel));
            }
        }
        for root in [CPU, CPUACCT] {
            let _ = fs::remove_dir(Path::new(root).join("burstd-bench-sampling"));
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--bench") && !Path::new(CPU).join("cpu.cfs_quota_us").exists()
    {
        eprintln!("skipped: no cgroup v1 cpu hierarchy");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped sampling benchmark: needs root to create cgroups");
        return;
    }
    let n = arg("--groups", 100);
    let rounds = arg("--rounds", 200);
    let runs = arg("--runs", 5);
    let layout = Layout::v1(CPU, CPUACCT);
    let h = layout.hierarchy();
    let mut groups = Groups(Vec::new());
    for i in 0..n {
        let rel = format!("burstd-bench-sampling/g{i}");
        if let Err(e) = h.create(&rel) {
            eprintln!("cannot create {rel}: {e}");
            return;
        }
        groups.0.push(rel);
    }
    // burstd's handles.
    let mut handles: Vec<_> = groups.0.iter().filter_map(|r| h.open(r).ok()).collect();
    // The floor: the same two files kept open, one pread each, no parsing.
    let files: Vec<(File, File)> = groups
        .0
        .iter()
        .filter_map(|r| {
            let a = File::open(Path::new(CPUACCT).join(r).join("cpuacct.usage")).ok()?;
            let b = File::open(Path::new(CPU).join(r).join("cpu.stat")).ok()?;
            Some((a, b))
        })
        .collect();
    let mut buf = [0u8; 512];
    for run in 0..runs {
        let samples = (n * rounds) as f64;
        let t0 = thread_cpu_ns();
        for _ in 0..rounds {
            for (a, b) in &files {
                let x = a.read_at(&mut buf, 0).unwrap_or(0);
                let y = b.read_at(&mut buf, 0).unwrap_or(0);
                std::hint::black_box((x, y));
            }
        }
        let floor = (thread_cpu_ns() - t0) as f64 / samples;
        let t0 = thread_cpu_ns();
        for _ in 0..rounds {
            for c in handles.iter_mut() {
                std::hint::black_box(c.sample().ok());
            }
        }
        let ours = (thread_cpu_ns() - t0) as f64 / samples;
        let t0 = thread_cpu_ns();
        for _ in 0..rounds {
            for r in &groups.0 {
                let a = fs::read_to_string(Path::new(CPUACCT).join(r).join("cpuacct.usage")).ok();
                let b = fs::read_to_string(Path::new(CPU).join(r).join("cpu.stat")).ok();
                std::hint::black_box((a, b));
            }
        }
        let naive = (thread_cpu_ns() - t0) as f64 / samples;
        println!(
            "{{\"bench\":\"sampling\",\"run\":{run},\"groups\":{n},\"floor_ns\":{floor:.0},\"burstd_ns\":{ours:.0},\"naive_ns\":{naive:.0},\"ratio_floor\":{:.3},\"ratio_naive\":{:.3}}}",
            ours / floor,
            ours / naive
        );
    }
}
