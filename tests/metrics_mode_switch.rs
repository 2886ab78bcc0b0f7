//! Issue 17 item 1 on the real daemon: `burstd daemon` on a fake cgroup v2 tree in a tempdir,
//! scraped over TCP before and after a mode switch made with the real CLI through the API
//! socket. Every per-workload metric is exactly one series per workload, with the same label
//! set on both sides of the switch; only `burstd_workload_info`'s `mode` label changes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_burstd");

fn cgroup(dir: &Path, usage_usec: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for (f, text) in [
        ("cgroup.procs", String::new()),
        ("cgroup.controllers", "cpu io memory pids\n".into()),
        ("cgroup.subtree_control", String::new()),
        ("cpu.max", "max 100000\n".into()),
        ("cpu.max.burst", "0\n".into()),
    ] {
        std::fs::write(dir.join(f), text).unwrap();
    }
    set_usage(dir, usage_usec);
}

fn set_usage(dir: &Path, usage_usec: u64) {
    std::fs::write(
        dir.join("cpu.stat"),
        format!("usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"),
    )
    .unwrap();
}

/// `GET /metrics` (classic text) on `port`; `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then_some(answer)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Scrapes until `done` holds for the text (15 s at most).
fn scrape_until(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        if let Some(text) = scrape(port).filter(|t| done(t)) {
            return text;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every sample with a `workload` label: (name, label set) in the order scraped.
fn workload_series(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("{workload=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once('{')?;
            let (labels, _) = rest.rsplit_once("} ")?;
            Some((name.to_string(), labels.to_string()))
        })
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(series))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn a_mode_switch_through_the_api_keeps_one_series_per_metric_per_workload() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cgroup(&root.join("cg"), 0);
    cgroup(&root.join("cg/web"), 0);
    cgroup(&root.join("cg/db"), 0);
    let socket = root.join("run/api.sock");
    let port = free_port();
    let cfg = root.join("burstd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ncgroup_root = {:?}\nstate_dir = {:?}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[api]\nsocket = {:?}\n\
             [[workload]]\nname = \"web\"\ncgroup = \"web\"\nprofile = \"t3.micro\"\nmode = \"standard\"\n\
             [[workload]]\nname = \"db\"\ncgroup = \"db\"\nprofile = \"t2.micro\"\nmode = \"standard\"\n",
            root.join("cg").display().to_string(),
            root.join("state").display().to_string(),
            socket.display().to_string(),
        ),
    )
    .unwrap();
    let _daemon = Reaped(
        Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let web_info = |mode: &str| {
        format!("burstd_workload_info{{workload=\"web\",profile=\"t3.micro\",mode=\"{mode}\",family=\"t3\"}} 1")
    };
    let before = scrape_until(port, "both workloads in standard mode", |t| {
        t.contains(&web_info("standard")) && t.contains("burstd_workloads 2")
    });
    let t = Instant::now();
    while !socket.exists() {
        assert!(t.elapsed() < Duration::from_secs(15), "no API socket");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The switch, by the CLI over the API socket; then web's cgroup uses 2.5 s of CPU.
    let o = Command::new(BIN)
        .args([
            "modify-instance-credit-specification",
            "--instance-credit-specification",
            "InstanceId=web,CpuCredits=unlimited",
            "--socket",
        ])
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    set_usage(&root.join("cg/web"), 2_500_000);
    let usage = "burstd_cpu_usage_seconds_total{workload=\"web\"} ";
    let after = scrape_until(port, "web unlimited and its usage read", |t| {
        t.contains(&web_info("unlimited")) && value(t, usage) == Some(2.5)
    });

    let (b, a) = (workload_series(&before), workload_series(&after));
    for (text, series) in [(&before, &b), (&after, &a)] {
        let unique: BTreeSet<_> = series.iter().collect();
        assert_eq!(unique.len(), series.len(), "a duplicated series in\n{text}");
        let names: BTreeSet<_> = series.iter().map(|(n, _)| n).collect();
        // One series per metric per workload: 2 workloads × every per-workload name.
        assert_eq!(series.len(), 2 * names.len(), "{text}");
        assert!(names.len() >= 17, "{names:?}");
    }
    let not_info = |s: &[(String, String)]| -> Vec<(String, String)> {
        s.iter()
            .filter(|(n, _)| n != "burstd_workload_info")
            .cloned()
            .collect()
    };
    assert_eq!(not_info(&b), not_info(&a), "the switch changed a series");
    for (name, labels) in not_info(&a) {
        assert!(
            labels == "workload=\"web\"" || labels == "workload=\"db\"",
            "{name}{{{labels}}} has more than identity labels"
        );
    }
    // The counter continued in the same series.
    assert_eq!(value(&before, usage), Some(0.0));
    assert_eq!(value(&after, usage), Some(2.5));
    println!(
        "{} per-workload series before and after the switch, same label sets",
        a.len()
    );
}
