//! `burstd record` on the real kernel (cgroup v1): a busy-then-idle workload in a capped test
//! cgroup, recorded until Ctrl-C; the trace's CPU-seconds agree with the kernel's own total
//! (cpuacct.usage) within 2%, the capping is reported, and the file is a valid trace.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_burstd");

#[test]
fn recording_matches_the_kernel_total_and_reports_the_cap() {
    if !real_kernel_available("recording_matches_the_kernel_total_and_reports_the_cap") {
        return;
    }
    let mut g = TestGroup::new("record");
    // Half a core: the busy loop is throttled, so usage is not demand.
    std::fs::write(g.cpu("cpu.cfs_quota_us"), "50000").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.csv");
    let rec = Command::new(BIN)
        .args([
            "record",
            "--cgroup",
            &g.rel,
            "--interval",
            "200ms",
            "--vcpus",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kills the recorder if the test fails before it ends.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let guard = Kill(rec.id());
    // The header is written before the first reading.
    wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|t| t.contains("seconds,utilization"))
    })
    .expect("record wrote its header");
    std::thread::sleep(Duration::from_millis(100));
    g.burn();
    std::thread::sleep(Duration::from_millis(1500));
    for c in &mut g.children {
        let _ = c.kill();
        let _ = c.wait();
    }
    g.children.clear();
    std::thread::sleep(Duration::from_millis(500));
    let kernel_s = g.usage_ns() as f64 / 1e9;
    Command::new("kill")
        .args(["-INT", &rec.id().to_string()])
        .status()
        .unwrap();
    let o = rec.wait_with_output().unwrap();
    drop(guard);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("capped while recording"), "{err}");

    let text = std::fs::read_to_string(&out).unwrap();
    let (mut wall, mut cpu) = (0.0, 0.0);
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let (s, u) = line.split_once(',').unwrap();
        let (s, u): (f64, f64) = (s.parse().unwrap(), u.parse().unwrap());
        wall += s;
        cpu += s * u / 100.0;
    }
    assert!(kernel_s > 0.3, "{kernel_s}");
    let mean = cpu / wall * 100.0;
    let kernel_mean = kernel_s / wall * 100.0;
    assert!(
        (mean - kernel_mean).abs() <= 2.0 && (cpu - kernel_s).abs() <= 0.02 * kernel_s,
        "trace {cpu} CPU-s (mean {mean}%), kernel {kernel_s} CPU-s (mean {kernel_mean}%)"
    );
    // A valid trace for simulate.
    let s = Command::new(BIN)
        .args(["simulate", "--profile", "t3.micro", "--trace"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
}

#[test]
fn exec_record_matches_the_kernel_total() {
    if !real_kernel_available("exec_record_matches_the_kernel_total") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exec.csv");
    // Busy for 1.5 s, idle for 1 s, on a profile that is never held (unlimited).
    let script = format!("{BIN} burn --seconds 1.5; sleep 1");
    let o = Command::new(BIN)
        .args(["exec", "--profile", "t3.large", "--mode", "unlimited"])
        .arg("--record")
        .arg(&out)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rows into"), "{err}");
    // The summary's "CPU used X s", measured by the kernel (cpuacct.usage of the exec cgroup).
    let kernel_s: f64 = err
        .split("CPU used ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("in % of 2 vCPUs"), "{text}");
    let mut cpu = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let (s, u) = line.split_once(',').unwrap();
        cpu += s.parse::<f64>().unwrap() * u.parse::<f64>().unwrap() / 100.0 * 2.0;
    }
    assert!(kernel_s > 0.3, "{kernel_s}");
    assert!(
        (cpu - kernel_s).abs() <= 0.02 * kernel_s + 0.001,
        "trace {cpu} CPU-s, kernel {kernel_s} CPU-s\n{text}"
    );
}
