//! `burstd daemon` on the real kernel (cgroup v1, as on the CI host): the quota lands when
//! the balance runs out, the workload then gets its baseline, unlimited is never capped,
//! SIGHUP switches modes, and a kill -9 loses no balance.

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
