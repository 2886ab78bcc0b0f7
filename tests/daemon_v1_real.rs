//! `burstd daemon` on the real kernel (cgroup v1, as on the CI host): the quota lands when
//! the balance runs out, the workload then gets its baseline, unlimited is never capped,
//! SIGHUP switches modes, a kill -9 loses no balance, and a workload's owner cannot escape
//! its hold by zeroing its usage counter or recreating its cpu directory (issue 13 items 6, 7).

mod common;

use burstd::agent::state;
use burstd::credit::Mode;
use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, std_group: &str, unl_group: &str, std_mode: &str) -> String {
    format!(
        r#"[agent]
cgroup_root = "/sys/fs/cgroup"
state_dir = {dir:?}
time_scale = 60.0
save_interval_s = 0.2
max_interval_ms = 100
drift_check_s = 1.0

[metrics]
listen = ""

[api]
socket = ""

[[workload]]
name = "std"
cgroup = "{std_group}"
profile = "tiny"
mode = "{std_mode}"
initial_credits = 1

[[workload]]
name = "unl"
cgroup = "{unl_group}"
profile = "tiny"
mode = "unlimited"

# t2.micro's figures without launch credits, so 1 credit is the whole balance.
[profiles.tiny]
vcpus = 1
credits_per_hour = 6
"#,
        dir = dir.display().to_string()
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

fn saved(dir: &Path) -> state::State {
    state::load(dir)
        .expect("state readable")
        .expect("state saved")
}

#[test]
fn daemon_enforces_credits_on_real_cgroups() {
    if !real_kernel_available("daemon_enforces_credits_on_real_cgroups") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut std_g = TestGroup::new("std");
    let mut unl_g = TestGroup::new("unl");
    std_g.burn();
    unl_g.burn();
    let cfg = dir.path().join("burstd.toml");
    fs::write(&cfg, config(dir.path(), &std_g.rel, &unl_g.rel, "standard")).unwrap();
    let started = Instant::now();
    let mut daemon = start_daemon(&cfg);

    // 1. 1 vCPU earning 6/h (t2.micro), 1 credit, one busy core, 60× clock: zero after 1/0.9 min of credit time
    //    = 1.11 s. The quota must then be the baseline: 10% of a 100 ms period.
    let capped_after = wait_for(Duration::from_secs(15), || {
        (std_g.quota() == 10_000).then(|| started.elapsed())
    })
    .expect("standard workload was never held at baseline");
    assert!(
        capped_after > Duration::from_millis(900),
        "capped too early: {capped_after:?}"
    );
    // The state file follows the quota write within the same loop turn.
    let st = wait_for(Duration::from_secs(2), || {
        Some(saved(dir.path())).filter(|s| s.workloads["std"].bucket.held)
    })
    .expect("state file never showed the workload held");
    let w = &st.workloads["std"];
    // Overshoot: CPU used after zero before the cap landed, at most 50 ms of real CPU (3 credits/60).
    let over = w.bucket.totals.overdrawn.as_f64();
    assert!(over < 0.05, "overdrawn {over} credits");

    // 2. Held: usage over the next 3 s is the baseline, 0.1 core ±10%.
    let (u0, thr0, t0) = (std_g.usage_ns(), std_g.nr_throttled(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (u1, thr1) = (std_g.usage_ns(), std_g.nr_throttled());
    let share = (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(
        (0.09..=0.11).contains(&share),
        "held usage {share:.4} cores, expected 0.1 ±10%"
    );
    assert!(thr1 > thr0 + 20, "throttled periods {thr0} → {thr1}");

    // 3. Unlimited: never capped below its 1 vCPU (100 ms per 100 ms); surplus grows.
    assert_eq!(unl_g.quota(), 100_000);
    let s1 = saved(dir.path()).workloads["unl"].bucket.surplus;
    assert!(s1.is_positive());

    // 4. SIGHUP with the standard workload switched to unlimited.
    fs::write(
        &cfg,
        config(dir.path(), &std_g.rel, &unl_g.rel, "unlimited"),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        (std_g.quota() == 100_000).then_some(())
    })
    .expect("mode switch by SIGHUP did not lift the cap");
    wait_for(Duration::from_secs(2), || {
        (saved(dir.path()).workloads["std"].bucket.mode == Mode::Unlimited).then_some(())
    })
    .expect("state file never showed the switch to unlimited");

    // 5. kill -9, 0.5 s down, restart: the balance carries over and the CPU used while down
    //    is accounted exactly once.
    let before = saved(dir.path());
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    std::thread::sleep(Duration::from_millis(500));
    daemon = start_daemon(&cfg);
    std::thread::sleep(Duration::from_millis(1500));
    drop(daemon);
    let after = saved(dir.path());
    let (b, a) = (&before.workloads["unl"], &after.workloads["unl"]);
    assert_eq!(a.cgroup_id, b.cgroup_id, "same cgroup");
    // Surplus grows by (CPU used − baseline × time) × 60 / 60 s per credit.
    let du_s = (a.usage_ns - b.usage_ns) as f64 / 1e9;
    let dt_s = (a.accounted_at_boot_ns - b.accounted_at_boot_ns) as f64 / 1e9;
    let expected = b.bucket.surplus.as_f64() + du_s - 0.1 * dt_s;
    let got = a.bucket.surplus.as_f64();
    assert!(
        du_s > 0.1,
        "the workload kept running: {du_s} s of CPU in {dt_s} s"
    );
    assert!(
        (got - expected).abs() < 0.001,
        "surplus after restart {got}, expected {expected}"
    );
    assert_eq!(
        a.bucket.totals.charged, b.bucket.totals.charged,
        "a restart is not a stop"
    );
}

/// Starts the daemon on one burning standard workload (`tiny`: 1 vCPU, baseline 0.1 core, 1
/// credit) and waits until it is held at its baseline (10 ms per 100 ms period).
fn held_workload(dir: &Path, tag: &str) -> (TestGroup, TestGroup, Reaped) {
    let mut std_g = TestGroup::new(tag);
    let unl_g = TestGroup::new(&format!("{tag}-unl"));
    std_g.burn();
    let cfg = dir.join("burstd.toml");
    fs::write(&cfg, config(dir, &std_g.rel, &unl_g.rel, "standard")).unwrap();
    let daemon = start_daemon(&cfg);
    wait_for(Duration::from_secs(15), || {
        (std_g.quota() == 10_000).then_some(())
    })
    .expect("standard workload was never held at baseline");
    (std_g, unl_g, daemon)
}

/// Issue 13 item 7: move the tasks out of the cpu hierarchy only, rmdir + mkdir the cpu
/// directory (no limit in the new one), move them back. burstd's kept descriptors on the old
/// files answer ENODEV; that reopens the cgroup and writes the hold again (before: ignored,
/// and the workload ran at a whole core until something else noticed).
#[test]
fn a_recreated_cpu_directory_gets_the_hold_again() {
    if !real_kernel_available("a_recreated_cpu_directory_gets_the_hold_again") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (std_g, _unl_g, _daemon) = held_workload(dir.path(), "recreate");
    let pids: Vec<String> = std_g.children.iter().map(|c| c.id().to_string()).collect();
    let cpu_dir = Path::new(CPU).join(&std_g.rel);
    for pid in &pids {
        fs::write(Path::new(CPU).join("cgroup.procs"), pid).expect("move out of the cpu cgroup");
    }
    wait_for(Duration::from_secs(2), || fs::remove_dir(&cpu_dir).ok())
        .expect("rmdir of the emptied cpu directory");
    fs::create_dir(&cpu_dir).expect("mkdir the cpu directory again");
    for pid in &pids {
        fs::write(cpu_dir.join("cgroup.procs"), pid).expect("move back");
    }
    assert_eq!(std_g.quota(), -1, "a new cpu directory has no limit");
    // drift_check_s = 1: the hold is back at the first check (waited for up to 10 s).
    wait_for(Duration::from_secs(10), || {
        (std_g.quota() == 10_000).then_some(())
    })
    .expect("the recreated cpu directory never got the hold back");
    // Held again: the next 2 s are at the 0.1-core baseline.
    let (u0, t0) = (std_g.usage_ns(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let share = (std_g.usage_ns() - u0) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(
        (0.09..=0.11).contains(&share),
        "usage {share:.4} cores after the hold came back, expected 0.1 ±10%"
    );
    // The same cgroup for accounting: its bucket went on (no stop, no start).
    let st = saved(dir.path());
    assert!(st.workloads["std"].bucket.held);
    assert_eq!(
        st.workloads["std"].bucket.totals.charged,
        burstd::credit::Credits::ZERO
    );
}

/// Issue 13 item 6: the owner of a held workload writes 0 to `cpuacct.usage` every 50 ms.
/// The backwards counter is charged at the ceiling in force (the 0.1-core baseline), so the
/// workload spends what it earns and stays held (before: charged almost nothing, released to
/// a whole core).
#[test]
fn a_zeroed_usage_counter_is_charged_at_the_ceiling() {
    if !real_kernel_available("a_zeroed_usage_counter_is_charged_at_the_ceiling") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (std_g, _unl_g, _daemon) = held_workload(dir.path(), "zero");
    let usage = std_g.cpuacct("cpuacct.usage");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let zeroer = {
        let (usage, stop) = (usage.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::write(&usage, "0");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Stops the zeroing thread even if an assertion fails.
    struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(stop);
    // Let the first backwards reading be seen, then measure over 4 s of saved looks.
    std::thread::sleep(Duration::from_millis(500));
    let before = saved(dir.path()).workloads["std"].clone();
    std::thread::sleep(Duration::from_secs(4));
    let after = saved(dir.path()).workloads["std"].clone();
    drop(stopper);
    let _ = zeroer.join();
    let dt_s = (after.accounted_at_boot_ns - before.accounted_at_boot_ns) as f64 / 1e9;
    let spent = after.bucket.totals.spent.as_f64() - before.bucket.totals.spent.as_f64();
    // 0.1 core for dt_s real seconds on a 60× clock: 0.1 × dt_s × 60 CPU-s = 0.1 × dt_s credits.
    assert!(dt_s > 3.0, "looks saved over {dt_s} s");
    assert!(
        (spent - 0.1 * dt_s).abs() < 0.005,
        "spent {spent:.4} credits in {dt_s:.3} s, expected {:.4} (the baseline)",
        0.1 * dt_s
    );
    assert!(
        after.bucket.held,
        "released: the zeroing was taken for idle time"
    );
    assert_eq!(std_g.quota(), 10_000);
}
