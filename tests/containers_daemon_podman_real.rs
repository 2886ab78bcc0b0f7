//! `burstd daemon` with `[containers]` on real Podman (cgroup v1, runc, cgroupfs): a labelled
//! busy container drains and is held at its baseline (measured from its cgroup's counters), an
//! unlabelled one is never touched, an unlimited one is never capped, a stop and a start give a
//! T2 instance launch credits again while a T3 keeps its balance, a container created while
//! burstd was down is picked up at its start, and one removed meanwhile is a stop.

mod common;
#[path = "common/podman.rs"]
mod podman;

use burstd::agent::state;
use common::{wait_for, Reaped};
use podman::{cgroup_u64, Podman};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, socket: &Path, metrics: &str) -> String {
    format!(
        r#"[agent]
state_dir = {dir:?}
time_scale = 60.0
save_interval_s = 0.2
max_interval_ms = 100
drift_check_s = 1.0

[metrics]
listen = "{metrics}"

[api]
socket = {api:?}

[containers]
docker = {socket:?}

# t2.micro's figures without launch credits, so 1 credit is the whole balance.
[profiles.tiny]
vcpus = 1
credits_per_hour = 6
"#,
        dir = dir.display().to_string(),
        socket = socket.display().to_string(),
        api = dir.join("api.sock").display().to_string()
    )
}

fn start_daemon(cfg: &Path) -> Reaped {
    Reaped(
        Command::new(env!("CARGO_BIN_EXE_burstd"))
            .args(["daemon", "--config"])
            .arg(cfg)
            .env("BURSTD_LOG", "info")
            .stdin(Stdio::null())
            .spawn()
            .expect("start burstd daemon"),
    )
}

fn burstd(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_burstd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run burstd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// A free loopback port for the metrics endpoint.
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// `GET /metrics` (classic text).
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn saved(dir: &Path) -> Option<state::State> {
    state::load(dir).ok().flatten()
}

fn quota(rel: &str) -> i64 {
    fs::read_to_string(
        Path::new("/sys/fs/cgroup/cpu")
            .join(rel)
            .join("cpu.cfs_quota_us"),
    )
    .map(|s| s.trim().parse().unwrap_or(0))
    .unwrap_or(0)
}

/// Waits until the state file shows instance `name` running (or not).
fn until_running(dir: &Path, name: &str, running: bool, limit: Duration) -> state::State {
    wait_for(limit, || {
        saved(dir).filter(|s| {
            s.workloads
                .get(name)
                .is_some_and(|w| w.bucket.is_running() == running)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never {}",
            if running { "started" } else { "stopped" }
        )
    })
}

#[test]
fn daemon_manages_labelled_podman_containers() {
    if !podman::available("daemon_manages_labelled_podman_containers") {
        return;
    }
    let mut pm = Podman::new();
    pm.start_service();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("burstd.toml");
    let metrics = free_port();
    fs::write(&cfg, config(dir.path(), &pm.socket, &metrics)).unwrap();
    let tag = std::process::id();
    let name = |n: &str| format!("{n}-{tag}");
    let (std_c, unl_c, plain_c) = (name("std"), name("unl"), name("plain"));
    pm.run_busy(
        &std_c,
        &[
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=standard",
            "--label",
            "burstd.initial-credits=1",
        ],
    );
    pm.run_busy(
        &unl_c,
        &[
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=unlimited",
        ],
    );
    pm.run_busy(&plain_c, &[]);
    let (std_g, unl_g, plain_g) = (pm.cgroup(&std_c), pm.cgroup(&unl_c), pm.cgroup(&plain_c));
    let started = Instant::now();
    let daemon = start_daemon(&cfg);

    // 1. Drained (1 credit at one busy core on a 60× clock: ~1.1 s), then held at the
    //    baseline: 10% of a 100 ms period.
    let capped_after = wait_for(Duration::from_secs(30), || {
        (quota(&std_g) == 10_000).then(|| started.elapsed())
    })
    .expect("the labelled standard container was never held at baseline");
    eprintln!(
        "standard container held at baseline {} ms after burstd started",
        capped_after.as_millis()
    );
    let st = until_running(dir.path(), &std_c, true, Duration::from_secs(5));
    assert_eq!(
        st.workloads[&std_c].container.as_deref(),
        Some(std_c.as_str())
    );
    let usage = |g: &str| cgroup_u64("cpuacct", g, "cpuacct.usage");
    let (u0, t0) = (usage(&std_g), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (usage(&std_g) - u0) as f64 / t0.elapsed().as_nanos() as f64;
    eprintln!("held container used {share:.4} cores (baseline 0.1)");
    assert!(
        (0.09..=0.11).contains(&share),
        "held usage {share:.4} cores, expected 0.1 ±10%"
    );

    // 2. Unlimited: never capped below its vCPU; builds surplus. Unlabelled: never touched.
    assert_eq!(quota(&unl_g), 100_000);
    let surplus = saved(dir.path()).unwrap().workloads[&unl_c].bucket.surplus;
    assert!(surplus.is_positive(), "surplus {surplus}");
    assert_eq!(quota(&plain_g), -1);
    assert!(!saved(dir.path()).unwrap().workloads.contains_key(&plain_c));

    // 3. `burstd check` lists each labelled container and each label error; the container
    //    with the bad label is left alone, counted once.
    let bad_c = name("bad");
    pm.run_busy(
        &bad_c,
        &[
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=turbo",
        ],
    );
    let bad_g = pm.cgroup(&bad_c);
    let (ok, out) = burstd(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok, "a label error is a problem: {out}");
    assert!(
        out.contains(&format!(
            "container     {std_c}: instance {std_c} profile tiny mode standard"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("container     {bad_c} PROBLEM: label burstd.mode=\"turbo\": allowed are \"standard\" and \"unlimited\"; left alone")),
        "{out}"
    );
    assert!(!out.contains(&plain_c), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(quota(&bad_g), -1);
    pm.ok(&["rm", "-f", "-t", "0", &bad_c]);

    // A mode switch through the API (labels cannot change on a running container): the held
    // container is released to its vCPU.
    let api = dir.path().join("api.sock");
    let (ok, out) = burstd(&[
        "modify-instance-credit-specification",
        "--socket",
        api.to_str().unwrap(),
        "--instance-credit-specification",
        &format!("InstanceId={std_c},CpuCredits=unlimited"),
    ]);
    assert!(ok, "{out}");
    wait_for(Duration::from_secs(5), || {
        (quota(&std_g) == 100_000).then_some(())
    })
    .expect("switching the container to unlimited did not lift its cap");
    let (ok, out) = burstd(&[
        "modify-instance-credit-specification",
        "--socket",
        api.to_str().unwrap(),
        "--instance-credit-specification",
        &format!("InstanceId={std_c},CpuCredits=standard"),
    ]);
    assert!(ok, "{out}");
    wait_for(Duration::from_secs(5), || {
        (quota(&std_g) == 10_000).then_some(())
    })
    .expect("switching back to standard did not hold it again");

    // 4. A new labelled container is managed: the time from `podman run` returning to its
    //    start being saved (polled every 5 ms) is reported, not asserted.
    let (t2_c, t3_c) = (name("t2"), name("t3"));
    let run_at = Instant::now();
    pm.run(
        &t2_c,
        &[
            "--label",
            "burstd.profile=t2.micro",
            "--label",
            "burstd.mode=standard",
        ],
        "sleep 3600",
    );
    let returned = run_at.elapsed();
    until_running(dir.path(), &t2_c, true, Duration::from_secs(10));
    eprintln!(
        "podman run took {} ms; managed {} ms after it returned",
        returned.as_millis(),
        run_at.elapsed().saturating_sub(returned).as_millis()
    );
    pm.run(
        &t3_c,
        &[
            "--label",
            "burstd.profile=t3.micro",
            "--label",
            "burstd.mode=standard",
            "--label",
            "burstd.initial-credits=50",
        ],
        "sleep 3600",
    );
    let before = until_running(dir.path(), &t3_c, true, Duration::from_secs(10));
    let t2_before = &before.workloads[&t2_c].bucket;
    assert_eq!(
        t2_before.launch.as_f64(),
        30.0,
        "t2.micro starts with 30 launch credits"
    );

    // 5. Stop and start: T2 loses its credits and gets launch credits again; T3 keeps its balance.
    // Its series are in /metrics with a `container` label while it runs, and go when it stops.
    // Identity labels only on the series; profile and mode on the info series (issue 17).
    let series = format!("burstd_cpu_credit_balance{{workload=\"{t2_c}\",container=\"{t2_c}\"}}");
    let info = format!("burstd_workload_info{{workload=\"{t2_c}\",container=\"{t2_c}\",profile=\"t2.micro\",mode=\"standard\",family=\"t2\"}} 1");
    let text = scrape(&metrics);
    assert!(text.contains(&series), "{series} not in:\n{text}");
    assert!(text.contains(&info), "{info} not in:\n{text}");
    pm.stop(&t2_c);
    pm.stop(&t3_c);
    until_running(dir.path(), &t2_c, false, Duration::from_secs(10));
    let text = scrape(&metrics);
    assert!(text.contains("burstd_cpu_credit_balance{"), "{text}");
    assert!(!text.contains(&format!("container=\"{t2_c}\"")), "{text}");
    let stopped = until_running(dir.path(), &t3_c, false, Duration::from_secs(10));
    let t2_stopped = &stopped.workloads[&t2_c].bucket;
    assert_eq!(
        t2_stopped.balance().as_f64(),
        0.0,
        "a stopped T2 has no credits"
    );
    let t3_kept = stopped.workloads[&t3_c].bucket.balance().as_f64();
    assert!(t3_kept >= 50.0, "T3 balance at the stop {t3_kept}");
    pm.ok(&["start", &t2_c]);
    pm.ok(&["start", &t3_c]);
    until_running(dir.path(), &t2_c, true, Duration::from_secs(10));
    let after = until_running(dir.path(), &t3_c, true, Duration::from_secs(10));
    let t2_after = &after.workloads[&t2_c].bucket;
    assert_eq!(
        t2_after.launch.as_f64(),
        30.0,
        "launch credits again after the start"
    );
    assert!(
        t2_after.earned.as_f64() < 0.5,
        "T2 earned {}",
        t2_after.earned
    );
    let t3_after = after.workloads[&t3_c].bucket.balance().as_f64();
    assert!(
        (t3_after - t3_kept).abs() < 1.0,
        "T3 balance {t3_kept} at the stop, {t3_after} after the start"
    );

    // `podman restart` is a stop and a start of the same instance, and it stays managed.
    pm.ok(&["restart", "-t", "0", &t3_c]);
    std::thread::sleep(Duration::from_secs(2));
    let st = until_running(dir.path(), &t3_c, true, Duration::from_secs(10));
    let t3_restarted = st.workloads[&t3_c].bucket.balance().as_f64();
    assert!(
        (t3_restarted - t3_after).abs() < 1.0,
        "T3 balance {t3_after} before the restart, {t3_restarted} after"
    );
    assert_eq!(
        st.workloads[&t3_c].cgroup.as_deref(),
        Some(pm.cgroup(&t3_c).as_str())
    );

    // 6. Created while burstd is down: picked up at the next start (standard, no credits:
    //    held at baseline at once).
    drop(daemon);
    // Removed while burstd is down: a stop at the last save (T2: its credits are lost, and
    // with them the instance).
    pm.ok(&["rm", "-f", "-t", "0", &t2_c]);
    let late_c = name("late");
    pm.run_busy(
        &late_c,
        &[
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=standard",
        ],
    );
    let late_g = pm.cgroup(&late_c);
    let _daemon = start_daemon(&cfg);
    wait_for(Duration::from_secs(15), || {
        (quota(&late_g) == 10_000).then_some(())
    })
    .expect("a container created while burstd was down was not picked up");
    // The held one kept its hold across the restart.
    assert_eq!(quota(&std_g), 10_000);
    // A stopped T2 keeps nothing, so it is forgotten (issue 13 item 4): gone from the state.
    let st = wait_for(Duration::from_secs(10), || {
        saved(dir.path()).filter(|s| !s.workloads.contains_key(&t2_c))
    })
    .unwrap_or_else(|| panic!("{t2_c} was never forgotten"));
    assert!(st.workloads[&t3_c].bucket.is_running());
}
