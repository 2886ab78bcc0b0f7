//! Loop tests: the real event loop on tokio's paused clock and the in-memory kernel.

use super::event_loop::{channels, run_loop, Control, LoopOptions};
use crate::agent::clock::TokioClock;
use crate::agent::discover::Discoverer;
use crate::agent::fake::Fake;
use crate::agent::{state, Agent, AgentParts};
use crate::cgroup::Quota;
use crate::config;
use crate::credit::Mode;
use crate::testkit::NoUnits;
use std::sync::Arc;
use std::time::Duration;

const STD: &str = "time_scale = 60.0\n[[workload]]\nname = \"burn\"\ncgroup = \"burn\"\nprofile = \"t3.micro\"\nmode = \"standard\"\ninitial_credits = 1\n";

/// The real loop on tokio's paused clock: capping time, SIGHUP-style reload, shutdown.
#[tokio::test(start_paused = true)]
async fn loop_caps_reloads_and_saves_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::new(0, 1_000);
    let origin = tokio::time::Instant::now();
    let fake = Fake::new(Arc::new(move || origin.elapsed().as_nanos() as u64), 4);
    fake.add("burn", 1000);
    let path = dir.path().join("burstd.toml");
    let text = format!(
        "[agent]\nstate_dir = {:?}\n{STD}",
        dir.path().display().to_string()
    );
    std::fs::write(&path, &text).unwrap();
    let c = config::load(&path).unwrap();
    let agent = Agent::new(AgentParts {
        config: c.agent,
        specs: c.workloads,
        hierarchy: Box::new(fake.clone()),
        discover: Discoverer::with_units(Box::new(NoUnits)),
        host_cpus: 4,
        own_cgroups: vec![],
        boot_id: "b".into(),
    });
    let (handles, inbox) = channels();
    let tx = handles.control.clone();
    let opts = LoopOptions {
        config_path: Some(path.clone()),
        notify: false,
    };
    let driver = async {
        tokio::time::sleep(Duration::from_millis(1240)).await;
        assert_eq!(
            fake.group("burn").unwrap().quota,
            Quota::limited(200_000, 100_000)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            fake.group("burn").unwrap().quota,
            Quota::limited(20_000, 100_000)
        );
        std::fs::write(
            &path,
            text.replace("mode = \"standard\"", "mode = \"unlimited\""),
        )
        .unwrap();
        tx.send(Control::Reload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            fake.group("burn").unwrap().quota,
            Quota::limited(200_000, 100_000)
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    let (stats, ()) = tokio::join!(
        run_loop(agent, Default::default(), opts, &clock, inbox),
        driver
    );
    assert_eq!(stats.failures, 0);
    let saved = state::load(dir.path()).unwrap().unwrap();
    let w = &saved.workloads["burn"];
    assert_eq!(w.bucket.mode, Mode::Unlimited);
    // ~3 s at 1 core unlimited, 60×: net 0.8 × 180 s = 2.4 credits of surplus.
    let s = w.bucket.surplus.as_f64();
    assert!((2.3..2.5).contains(&s), "{s}");
    // on_exit = restore: the cgroup had no limit before burstd.
    assert_eq!(fake.group("burn").unwrap().quota, Quota::unlimited(100_000));
}

/// Issue 19: a workload with `record = true` gets its measured CPU use written by the daemon
/// as a trace that `simulate`/`advise` read: 30 s of a workload at half a core on a 2-vCPU
/// t3.micro are rows adding up to 30 s at 25%; one without `record` gets no file.
#[tokio::test(start_paused = true)]
async fn the_daemon_records_a_workload_as_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::new(0, 1_000);
    let origin = tokio::time::Instant::now();
    let fake = Fake::new(Arc::new(move || origin.elapsed().as_nanos() as u64), 4);
    fake.add("web", 500);
    fake.add("quiet", 500);
    let text = format!(
        "[agent]\nstate_dir = {:?}\n[[workload]]\nname = \"web\"\ncgroup = \"web\"\nprofile = \"t3.micro\"\nrecord = true\n\
         [[workload]]\nname = \"quiet\"\ncgroup = \"quiet\"\nprofile = \"t3.micro\"\n",
        dir.path().display().to_string()
    );
    let c = config::parse(std::path::Path::new("t.toml"), &text).unwrap();
    assert_eq!(c.agent.record_dir, dir.path().join("traces"));
    let agent = crate::testkit::agent(&c, &fake);
    let (handles, inbox) = channels();
    let tx = handles.control.clone();
    let opts = LoopOptions {
        config_path: None,
        notify: false,
    };
    let driver = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        tx.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(
        run_loop(agent, Default::default(), opts, &clock, inbox),
        driver
    );
    let file = dir.path().join("traces/web.csv");
    let trace = crate::sim::trace::load_trace(&file.display().to_string()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("in % of 2 vCPUs"), "{text}");
    let total_s: f64 = trace.iter().map(|s| s.duration_ns as f64 / 1e9).sum();
    let busy: f64 = trace
        .iter()
        .map(|s| s.duration_ns as f64 / 1e9 * s.utilization)
        .sum();
    assert!((total_s - 30.0).abs() < 0.01, "{total_s} s recorded");
    assert!((busy / total_s - 25.0).abs() < 0.01, "{} %", busy / total_s);
    assert!(!dir.path().join("traces/quiet.csv").exists());
}
