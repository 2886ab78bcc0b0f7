//! Helpers for tests on the real kernel (cgroup v1 on the CI host): test cgroups and busy
//! processes that are removed even when a test fails.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CPU: &str = "/sys/fs/cgroup/cpu";
pub const CPUACCT: &str = "/sys/fs/cgroup/cpuacct";

/// Whether this host can run the real-kernel tests. Outside CI a missing prerequisite skips
/// the test with a printed reason; in CI (where the host has them) it fails it.
pub fn real_kernel_available(test: &str) -> bool {
    let reason = if !rustix::process::geteuid().is_root() {
        Some("not running as root")
    } else if !Path::new(CPU).join("cpu.cfs_quota_us").exists() {
        Some("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")
    } else if !Path::new(CPUACCT).join("cpuacct.usage").exists() {
        Some("no cgroup v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI must run real-kernel tests, but {r}")
        }
        Some(r) => {
            eprintln!("skipped {test}: {r}");
            false
        }
    }
}

/// A v1 test cgroup (in cpu and cpuacct) with busy-loop processes in it; Drop kills the
/// processes and removes the cgroups.
pub struct TestGroup {
    pub rel: String,
    pub children: Vec<Child>,
}

impl TestGroup {
    pub fn new(tag: &str) -> TestGroup {
        let rel = format!("burstd-test-{}-{tag}", std::process::id());
        for root in [CPU, CPUACCT] {
            let p = Path::new(root).join(&rel);
            let _ = fs::create_dir(&p);
        }
        TestGroup {
            rel,
            children: Vec::new(),
        }
    }

    pub fn cpu(&self, file: &str) -> PathBuf {
        Path::new(CPU).join(&self.rel).join(file)
    }

    pub fn cpuacct(&self, file: &str) -> PathBuf {
        Path::new(CPUACCT).join(&self.rel).join(file)
    }

    /// Starts one busy loop in the group.
    pub fn burn(&mut self) {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        for root in [CPU, CPUACCT] {
            fs::write(
                Path::new(root).join(&self.rel).join("cgroup.procs"),
                child.id().to_string(),
            )
            .expect("move to cgroup");
        }
        self.children.push(child);
    }

    pub fn usage_ns(&self) -> u64 {
        read_u64(&self.cpuacct("cpuacct.usage"))
    }

    pub fn quota(&self) -> i64 {
        fs::read_to_string(self.cpu("cpu.cfs_quota_us"))
            .expect("read quota")
            .trim()
            .parse()
            .expect("quota number")
    }

    pub fn nr_throttled(&self) -> u64 {
        let s = fs::read_to_string(self.cpu("cpu.stat")).expect("read cpu.stat");
        s.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for root in [CPU, CPUACCT] {
            let p = Path::new(root).join(&self.rel);
            // The kernel needs a moment after the last task exits before rmdir succeeds.
            for _ in 0..50 {
                if fs::remove_dir(&p).is_ok() || !p.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub fn read_u64(p: &Path) -> u64 {
    fs::read_to_string(p)
        .expect("read counter")
        .trim()
        .parse()
        .expect("counter number")
}

/// Polls `f` every 5 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
