//! Control-core and loop tests against the in-memory hierarchy.

use super::control::{Agent, AgentParts};
use super::discover::Discoverer;
use super::fake::Fake;
use super::persist::Sections;
use super::state;
use super::workload::WorkloadEvent;
use crate::cgroup::Quota;
use crate::config::Config;
use crate::credit::{Credits, Mode};
use crate::testkit::{cfg, NoUnits};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

pub(super) struct Manual {
    pub(super) now: Arc<AtomicU64>,
    pub(super) fake: Fake,
}

impl Manual {
    pub(super) fn new(host: u64) -> Manual {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let t = now.clone();
        Manual {
            fake: Fake::new(Arc::new(move || t.load(Ordering::SeqCst)), host),
            now,
        }
    }
    pub(super) fn t(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    pub(super) fn agent(&self, c: &Config, own: Vec<String>) -> Agent {
        Agent::new(AgentParts {
            config: c.agent.clone(),
            specs: c.workloads.clone(),
            hierarchy: Box::new(self.fake.clone()),
            discover: Discoverer::with_units(Box::new(NoUnits)),
            host_cpus: 4,
            own_cgroups: own,
            boot_id: "boot-1".into(),
        })
    }
    /// Advance time, running the agent's due ticks on the way. Returns the looks taken.
    pub(super) fn run(&self, agent: &mut Agent, ns: u64) -> usize {
        let end = self.t() + ns;
        let mut looks = 0;
        loop {
            let next = agent.next_wake().unwrap_or(u64::MAX).min(end);
            self.now.store(next.max(self.t()), Ordering::SeqCst);
            looks += agent.tick(self.t(), self.t() / S);
            if self.t() >= end {
                return looks;
            }
        }
    }
}

pub(super) const STD: &str = "time_scale = 60.0\n[[workload]]\nname = \"burn\"\ncgroup = \"burn\"\nprofile = \"t3.micro\"\nmode = \"standard\"\ninitial_credits = 1\n";

#[test]
fn standard_workload_is_held_at_baseline_when_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000); // one busy core
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    // t3.micro: 2 vCPU on a 4-CPU host → limited to 2 cores while it has credits.
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(200_000, 100_000)
    );
    // 1 credit at a net 0.8 core, 60× faster: 75 s of credit time = 1.25 s.
    m.run(&mut a, 1249 * MS);
    assert!(!a.get("burn").unwrap().bucket.held);
    m.run(&mut a, 2 * MS);
    let w = a.get("burn").unwrap();
    assert!(w.bucket.held);
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
    // The cap landed within a millisecond of CPU past zero (scaled: 60 ms of credit-clock CPU).
    assert!(
        w.bucket.totals.overdrawn <= Credits::from_cpu_ns(60 * MS),
        "{:?}",
        w.bucket.totals.overdrawn
    );
    assert!(a
        .take_events()
        .contains(&WorkloadEvent::Held("burn".into())));
    // Held: over the next 10 s it gets its baseline, 0.2 cores.
    let before = m.fake.group("burn").unwrap().usage_ns;
    m.run(&mut a, 10 * S);
    let used = m.fake.group("burn").unwrap().usage_ns - before;
    assert!(used.abs_diff(2 * S) < 1000, "{used}");
    // Write only on change: 2 cores at start, baseline at zero; nothing since.
    assert_eq!(m.fake.group("burn").unwrap().writes, 2);
}

#[test]
fn unlimited_workload_is_never_capped_and_builds_surplus() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 2000);
    let c = cfg(
        &STD.replace("mode = \"standard\"", "mode = \"unlimited\""),
        dir.path(),
    );
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 10 * S);
    let w = a.get("burn").unwrap();
    assert_eq!(w.bucket.earned, Credits::ZERO);
    // 10 s × 60 = 600 s of credit time at 2 − 0.2 cores = 1080 core-s = 18 credits, minus the initial 1.
    assert_eq!(w.bucket.surplus, Credits::whole(17));
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(200_000, 100_000)
    );
    assert_eq!(m.fake.group("burn").unwrap().writes, 1);
}

#[test]
fn drift_is_detected_counted_and_reapplied() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    m.fake.external_write("burn", Quota::unlimited(100_000));
    m.run(&mut a, 5 * S + 10 * MS); // drift_check_s defaults to 5
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
    assert_eq!(a.health.external_quota_changes, 1);
}

#[test]
fn stop_and_start_follow_the_profile_rules() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 0);
    let c = cfg(
        &STD.replace("initial_credits = 1", "initial_credits = 50"),
        dir.path(),
    );
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.fake.remove_group("burn");
    m.run(&mut a, 6 * S);
    assert!(!a.get("burn").unwrap().is_running());
    assert!(a
        .take_events()
        .contains(&WorkloadEvent::Stopped("burn".into())));
    m.fake.add("burn", 0);
    a.rescan(m.t(), 10);
    let w = a.get("burn").unwrap();
    assert!(w.is_running());
    // T3 keeps its earned credits across a short stop (no earning while stopped).
    assert!(w.bucket.balance() >= Credits::whole(50));
    assert!(a
        .take_events()
        .contains(&WorkloadEvent::Started("burn".into())));
}

#[test]
fn restart_carries_the_balance_and_accounts_the_time_away() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 2000);
    let c = cfg(
        &STD.replace("mode = \"standard\"", "mode = \"unlimited\""),
        dir.path(),
    );
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 5 * S);
    let before = a.get("burn").unwrap().bucket.clone();
    state::save(dir.path(), &a.snapshot(5, &Sections::new())).unwrap();
    drop(a);
    // Down for 5 s while the workload keeps burning, then a new agent.
    m.now.fetch_add(5 * S, Ordering::SeqCst);
    let mut b = m.agent(&c, vec![]);
    b.restore(state::load(dir.path()).unwrap().unwrap());
    b.rescan(m.t(), 10);
    let after = &b.get("burn").unwrap().bucket;
    // Each 5 s at 2 cores, net 1.8 × 300 s = 540 core-s = 9 credits of surplus.
    assert_eq!(before.surplus, Credits::whole(8));
    assert_eq!(after.surplus, Credits::whole(17));
    assert_eq!(
        after.totals.charged,
        Credits::ZERO,
        "not a stop: nothing charged"
    );
}

#[test]
fn glob_matches_are_separate_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("system.slice/docker-a.scope", 0);
    m.fake.add("system.slice/docker-b.scope", 0);
    m.fake.add("system.slice/other.service", 0);
    let c = cfg("[[workload]]\nname = \"containers\"\nmatch = \"system.slice/docker-*.scope\"\nprofile = \"t3.small\"\n", dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    let mut names: Vec<_> = a
        .workloads
        .iter()
        .filter(|w| w.is_running())
        .map(|w| w.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["containers/docker-a.scope", "containers/docker-b.scope"]
    );
}

#[test]
fn own_cgroup_and_ancestors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("system.slice", 0);
    let c = cfg(
        "[[workload]]\nname = \"s\"\ncgroup = \"system.slice\"\n",
        dir.path(),
    );
    let mut a = m.agent(&c, vec!["system.slice/burstd.service".into()]);
    a.rescan(m.t(), 0);
    assert!(!a.get("s").unwrap().is_running());
    assert_eq!(m.fake.group("system.slice").unwrap().writes, 0);
}

#[test]
fn mode_switch_on_reconfigure_charges_surplus() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 2000);
    let unl = cfg(
        &STD.replace("mode = \"standard\"", "mode = \"unlimited\""),
        dir.path(),
    );
    let mut a = m.agent(&unl, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 5 * S);
    let std = cfg(STD, dir.path());
    a.reconfigure(std.agent.clone(), std.workloads.clone(), m.t(), 5);
    let w = a.get("burn").unwrap();
    assert_eq!(w.bucket.mode, Mode::Standard);
    assert_eq!(w.bucket.totals.charged, Credits::whole(8));
    assert!(w.bucket.held);
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
}

#[test]
fn a_workload_gone_while_the_agent_was_down_is_stopped_at_the_save_time() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 2000);
    let c = cfg(
        &STD.replace("mode = \"standard\"", "mode = \"unlimited\""),
        dir.path(),
    );
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 5 * S);
    state::save(dir.path(), &a.snapshot(5, &Sections::new())).unwrap();
    drop(a);
    m.fake.remove_group("burn");
    let mut b = m.agent(&c, vec![]);
    b.restore(state::load(dir.path()).unwrap().unwrap());
    b.rescan(m.t(), 10);
    let w = b.get("burn").unwrap();
    assert!(!w.bucket.is_running());
    // Its surplus (8 credits after 5 s) was charged at the stop.
    assert_eq!(w.bucket.totals.charged, Credits::whole(8));
    assert_eq!(
        b.snapshot(10, &Sections::new()).workloads["burn"]
            .bucket
            .totals
            .charged,
        Credits::whole(8)
    );
}

#[test]
fn tiny_baselines_get_a_longer_period_not_the_1ms_floor() {
    use super::decide::quota_for;
    use crate::credit::Rate;
    // t3.micro's 0.2 cores: 20 ms per 100 ms.
    assert_eq!(
        quota_for(Rate::from_cores_f64(0.2).unwrap(), 100_000, 4),
        Quota::limited(20_000, 100_000)
    );
    // 0.005 cores: 0.5 ms per 100 ms is below the kernel's minimum → 1 ms per 200 ms.
    assert_eq!(
        quota_for(Rate::from_cores_f64(0.005).unwrap(), 100_000, 4),
        Quota::limited(1000, 200_000)
    );
    // 0.0005 cores: even 1 s periods only allow 0.1% → the floor, 1 ms per 1 s.
    assert_eq!(
        quota_for(Rate::from_cores_f64(0.0005).unwrap(), 100_000, 4),
        Quota::limited(1000, 1_000_000)
    );
    // At or above the host's CPUs: no limit.
    assert_eq!(
        quota_for(Rate::cores(4), 100_000, 4),
        Quota::unlimited(100_000)
    );
}

#[test]
fn a_reload_with_nothing_changed_writes_no_quota() {
    // Every quota write refills the kernel's runtime: a reload must not hand out free CPU.
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    let writes = m.fake.group("burn").unwrap().writes;
    a.reconfigure(c.agent.clone(), c.workloads.clone(), m.t(), 2);
    m.run(&mut a, S);
    assert_eq!(m.fake.group("burn").unwrap().writes, writes);
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
}

#[test]
fn throttling_counters_are_read_only_while_a_quota_can_move_them() {
    let dir = tempfile::tempdir().unwrap();
    // t3.xlarge (4 vCPU) on a 4-CPU host: while it has credits, no limit at all.
    let m = Manual::new(4);
    m.fake.add("burn", 500);
    let c = cfg(&STD.replace("t3.micro", "t3.xlarge"), dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::unlimited(100_000)
    );
    let reads = || m.fake.group("burn").unwrap().full_reads;
    assert_eq!(reads(), 1, "opening reads every counter");
    for _ in 0..3 {
        m.run(&mut a, 100 * MS);
        a.sample_all(m.t(), 0);
    }
    assert_eq!(
        reads(),
        1,
        "no quota in force since they were read at opening: they cannot move, not read again"
    );
    // Another writer limits it to 0.1 core: throttled from now on, seen at the drift check.
    m.fake
        .external_write("burn", Quota::limited(10_000, 100_000));
    m.run(&mut a, 6 * S); // drift_check_s defaults to 5
    assert_eq!(a.health.external_quota_changes, 1);
    a.sample_all(m.t(), 0);
    assert_eq!(reads(), 2);
    // The throttled time under the other writer's quota is reported (~5 s).
    let throttled = a.get("burn").unwrap().last.throttled_ns;
    assert!(throttled >= 5 * S, "{throttled}");
    // Held at baseline: a quota is in force, so every full look reads them.
    m.fake.group("burn").unwrap();
    if let Some(g) = m.fake.inner.lock().unwrap().groups.get_mut("burn") {
        g.demand_milli = 4000;
    }
    m.run(&mut a, 20 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    let before = reads();
    a.sample_all(m.t(), 0);
    a.sample_all(m.t() + MS, 0);
    assert_eq!(reads(), before + 2);
}

#[test]
fn a_cgroup_opened_under_another_writers_limit_has_its_throttling_counters_reread() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 500);
    // A limit set before burstd opens it (e.g. systemd's CPUQuota=): the counters can move
    // between the reading at opening and burstd's own write, so the first full look reads them.
    m.fake
        .external_write("burn", Quota::limited(10_000, 100_000));
    let c = cfg(&STD.replace("t3.micro", "t3.xlarge"), dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    let reads = || m.fake.group("burn").unwrap().full_reads;
    assert_eq!(reads(), 1);
    m.run(&mut a, 100 * MS);
    a.sample_all(m.t(), 0);
    assert_eq!(reads(), 2);
    a.sample_all(m.t() + MS, 0);
    assert_eq!(
        reads(),
        2,
        "burstd's own value is no limit since: not read again"
    );
}

#[test]
fn a_hold_records_how_it_landed() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    let w = a.get("burn").unwrap();
    assert!(w.bucket.held);
    let l = w.last_landing.expect("landing recorded");
    // The agent wakes at the predicted zero (1 ms minimum interval): at most 1 ms late, and at
    // one core at most 1 ms of CPU past zero.
    assert!(l.late_ns <= MS, "{l:?}");
    assert!(l.overshoot_cpu_ns <= MS, "{l:?}");
    // The overshoot in real CPU equals the model's overdrawn credits scaled back (×1/60).
    let over = w.bucket.totals.overdrawn;
    assert_eq!(
        l.overshoot_cpu_ns as i128,
        over.units() / 60_000 * 1000 / 60_000
    );
}

#[test]
fn a_full_idle_bucket_is_looked_at_every_full_interval_and_a_burst_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("idle", 0);
    // t3.micro at its accrual limit (288 credits), idle; real time (no time scale).
    let text = "[[workload]]\nname = \"idle\"\ncgroup = \"idle\"\nprofile = \"t3.micro\"\nmode = \"standard\"\ninitial_credits = 288\n";
    let c = cfg(text, dir.path());
    assert_eq!(c.agent.full_interval_ms, 5000);
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    // 60 s idle at the limit: 12 looks, not 60.
    assert_eq!(m.run(&mut a, 60 * S), 12);
    // It starts burning one core: the next look comes within full_interval. From then on it is
    // no longer full, but far from both clamps (hours from zero flat out; 20 s from the limit
    // using nothing, once it has spent 5 s × 0.8 core): looked at every drift_check (5 s).
    m.fake.group("idle").unwrap();
    if let Some(g) = m.fake.inner.lock().unwrap().groups.get_mut("idle") {
        g.demand_milli = 1000;
    }
    assert_eq!(m.run(&mut a, 5 * S), 1);
    assert_eq!(m.run(&mut a, 10 * S), 2);
    // Its balance: 288 − 15 s × (1 − 0.2 core) = 288 − 0.2 credits, give or take what one
    // coarse first look credits (at most baseline × full_interval = 1 CPU-s = 1/60 credit).
    let bal = a.get("idle").unwrap().bucket.balance().as_f64();
    let exact = 288.0 - 15.0 * 0.8 / 60.0;
    assert!(
        bal >= exact - 1e-9 && bal <= exact + 1.0 / 60.0 + 1e-9,
        "{bal} vs {exact}"
    );
}

/// On real files (a fake v1 tree): a rescan plans the descriptor budget for every cgroup it is
/// about to open, so that each handle keeps its quota file before any keeps its other files,
/// and handles already open give back room before the new ones open.
#[test]
fn a_rescan_plans_the_fd_budget_before_opening_new_cgroups() {
    use crate::cgroup::test_tree::FakeTree;
    use crate::cgroup::FdBudget;
    let tree = FakeTree::v1_separate();
    for i in 0..10 {
        tree.add(&format!("fleet/w{i}"));
    }
    let budget = FdBudget::new(25);
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(
        "[[workload]]\nname = \"fleet\"\nmatch = \"fleet/*\"\nprofile = \"t3.micro\"\n",
        dir.path(),
    );
    let mut agent = Agent::new(AgentParts {
        config: c.agent,
        specs: c.workloads,
        hierarchy: tree.layout.hierarchy_with_budget(Arc::clone(&budget)),
        discover: Discoverer::with_units(Box::new(NoUnits)),
        host_cpus: 4,
        own_cgroups: vec![],
        boot_id: "b".into(),
    });
    agent.rescan(S, 0);
    let running = |a: &Agent| a.workloads.iter().filter(|w| w.is_running()).count();
    assert_eq!(running(&agent), 10);
    // 10 counters, 10 quota files, and the 5 left hold one handle's 3 other files.
    assert_eq!(
        (budget.kept(), budget.quota_kept(), tree.open_fds()),
        (23, 10, 23)
    );
    for i in 10..20 {
        tree.add(&format!("fleet/w{i}"));
    }
    agent.rescan(2 * S, 0);
    assert_eq!(running(&agent), 20);
    // 20 counters leave room for 5 quota files: the old handles gave the rest back first.
    assert_eq!(
        (budget.kept(), budget.quota_kept(), tree.open_fds()),
        (25, 5, 25)
    );
    // Every workload still reads its quota (the lean ones by opening it).
    assert_eq!(agent.tick(8 * S, 0), 20);
    assert_eq!(tree.open_fds(), 25);
    // The gauge the metrics export.
    assert_eq!(agent.cgroup_files_open(), 25);
    // Half of them go: the next rescan hands their room back out.
    for i in 10..20 {
        let name = format!("fleet/w{i}");
        assert!(agent.stop_workload(&name, 0));
        for root in ["cpu", "cpuacct"] {
            let dir = tree.file(&name, &format!("{root}.x"));
            std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
        }
    }
    // The 10 left: their counters and the 5 quota files they kept.
    assert_eq!((budget.kept(), tree.open_fds()), (15, 15));
    agent.rescan(9 * S, 0);
    assert_eq!(
        (budget.kept(), budget.quota_kept(), tree.open_fds()),
        (23, 10, 23)
    );
}

/// The daemon's periodic save streams the state from the live workloads; the file must be
/// byte for byte what serializing the owned snapshot gives (running, stopped and restored
/// not-yet-seen workloads, extra sections), and load back to it.
#[test]
fn streamed_save_writes_exactly_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    let c = cfg(
        "time_scale = 60.0\n[[workload]]\nname = \"fleet\"\nmatch = \"fleet/*\"\nprofile = \"t3.micro\"\n[[workload]]\nname = \"burn\"\ncgroup = \"burn\"\nprofile = \"t3.small\"\nmode = \"unlimited\"\n",
        dir.path(),
    );
    // A first run, with only the fleet configured, saw only fleet/b.
    let fleet_only = cfg(
        "time_scale = 60.0\n[[workload]]\nname = \"fleet\"\nmatch = \"fleet/*\"\nprofile = \"t3.micro\"\n",
        dir.path(),
    );
    m.fake.add("fleet/b", 500);
    let mut a = m.agent(&fleet_only, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 3 * S);
    let earlier = a.snapshot(3, &Sections::new());
    assert_eq!(earlier.workloads.len(), 1);
    m.fake.remove_group("fleet/b");
    // The live agent: running workloads, one stopped, then fleet/b restored and not yet seen.
    for (path, demand) in [
        ("fleet/a", 0),
        ("fleet/c", 1500),
        ("fleet/d", 0),
        ("burn", 2000),
    ] {
        m.fake.add(path, demand);
    }
    let mut b = m.agent(&c, vec![]);
    b.rescan(m.t(), 3);
    m.run(&mut b, 2 * S);
    m.fake.remove_group("fleet/d");
    m.run(&mut b, 60 * S);
    let mut sections = b.restore(earlier.clone());
    sections.insert("api".into(), serde_json::json!({"tokens": ["x"], "n": 1}));
    assert!(!b.get("fleet/d").unwrap().is_running());
    assert!(b.get("fleet/b").unwrap().awaiting_reconcile());

    let owned = b.snapshot(70, &sections);
    assert_eq!(owned.workloads.len(), 5);
    assert_eq!(owned.workloads["fleet/b"], earlier.workloads["fleet/b"]);
    state::save_ref(dir.path(), &b.saved_state(70, &sections)).unwrap();
    let bytes = std::fs::read(dir.path().join(state::STATE_FILE)).unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        serde_json::to_string(&owned).unwrap()
    );
    assert_eq!(state::load(dir.path()).unwrap(), Some(owned));
}

/// 10,000 workloads live in one `Vec` that doubles as it grows (old and new buffers side by
/// side while it moves): keep a workload small. It was 944 bytes before the profile was shared
/// and the saved position boxed.
#[test]
fn a_workload_stays_small() {
    let n = std::mem::size_of::<super::Workload>();
    assert!(n <= 528, "Workload is {n} bytes");
}

/// Issue 13 item 9: the state file moved away (burstd's own advice for a corrupt one) while a
/// workload was held. The cgroup still has the hold; it must not become the "original" that
/// the exit writes back, leaving the workload capped with no burstd to release it.
#[test]
fn a_hold_left_by_an_earlier_burstd_is_not_recorded_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    // What an earlier burstd wrote for t3.micro at zero credits: the 0.2-core baseline.
    m.fake
        .external_write("burn", Quota::limited(20_000, 100_000));
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    assert_eq!(
        a.get("burn").unwrap().original_quota,
        Some(Quota::unlimited(100_000))
    );
    a.on_exit();
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::unlimited(100_000)
    );

    // Any other limit the owner set is the original, and comes back at exit.
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    m.fake
        .external_write("burn", Quota::limited(30_000, 100_000));
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    a.on_exit();
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(30_000, 100_000)
    );
}

/// Issue 13 item 8: with the quota file read-only (a bind mount over it), the model says held
/// but the kernel holds nothing: the view (and so `burstd_workload_held_at_baseline`) must say
/// what the kernel has, and the write is retried and counted until it succeeds.
#[test]
fn held_is_reported_only_once_the_kernel_has_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.fake.set_read_only("burn", true);
    m.run(&mut a, 2 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    let view = |a: &Agent| {
        super::view::workload_views(a)
            .into_iter()
            .find(|v| v.instance_id == "burn")
            .unwrap()
    };
    let v = view(&a);
    assert!(!v.held_at_baseline);
    // In force: the 2-core limit written at the start, not the 0.2-core baseline.
    assert_eq!(v.ceiling_cores, Some(2.0));
    assert!(a.health.cgroup_write_errors > 0);
    m.fake.set_read_only("burn", false);
    m.run(&mut a, S);
    let v = view(&a);
    assert!(v.held_at_baseline);
    assert_eq!(v.ceiling_cores, Some(0.2));
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
}

/// Issue 13 item 5 at run time: two cgroups a glob derives one name from (`*/w` matching
/// `a/w` and `b/w`). The first keeps the name for as long as it lives; the other is refused,
/// counted once and listed, never started in turn — no flapping, launch credits granted once.
#[test]
fn two_matches_with_one_name_do_not_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("a/w", 100);
    m.fake.add("b/w", 100);
    let c = cfg(
        "[[workload]]\nname = \"g\"\nmatch = \"*/w\"\nprofile = \"t2.micro\"\n",
        dir.path(),
    );
    let mut a = m.agent(&c, vec![]);
    for k in 0..10 {
        a.rescan(m.t(), k);
        m.run(&mut a, S);
    }
    let w = a.get("g/w").unwrap();
    let first = w.cgroup.clone().unwrap();
    assert!(w.is_running());
    // t2.micro: 30 launch credits, once.
    assert_eq!(w.bucket.totals.launch_granted, Credits::whole(30));
    assert_eq!(a.health().name_collisions, 1);
    let other = if first == "a/w" { "b/w" } else { "a/w" };
    assert_eq!(
        a.refused_names().iter().collect::<Vec<_>>(),
        [&("g/w".to_string(), other.to_string())]
    );
    // The first cgroup goes: the name is free, and the other cgroup gets it.
    m.fake.remove_group(&first);
    m.run(&mut a, 2 * S);
    a.rescan(m.t(), 20);
    let w = a.get("g/w").unwrap();
    assert_eq!(w.cgroup.as_deref(), Some(other));
    assert!(w.is_running());
    assert!(a.refused_names().is_empty());
}

/// Issue 13 item 4: a `match`'s stopped workloads are forgotten when EC2 would have nothing
/// left for them (a T2 at its stop, a T3 after 7 days, a kept profile after
/// `forget_stopped_after_s`), so cgroup churn does not grow the table or the state file;
/// workloads named one by one stay.
#[test]
fn stopped_workloads_of_a_match_are_forgotten_as_ec2_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    let c = cfg(
        "forget_stopped_after_s = 3600\n\
         [[workload]]\nname = \"t2\"\nmatch = \"t2/*\"\nprofile = \"t2.micro\"\n\
         [[workload]]\nname = \"t3\"\nmatch = \"t3/*\"\nprofile = \"t3.micro\"\nmode = \"standard\"\n\
         [[workload]]\nname = \"b\"\nmatch = \"b/*\"\nprofile = \"B1s\"\n\
         [[workload]]\nname = \"solo\"\ncgroup = \"solo\"\nprofile = \"t2.micro\"\n",
        dir.path(),
    );
    let paths = ["t2/x", "t3/x", "b/x", "solo"];
    for p in paths {
        m.fake.add(p, 100);
    }
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 12 * S);
    assert_eq!(a.workloads().count(), 4);
    for p in paths {
        m.fake.remove_group(p);
    }
    m.run(&mut a, 6 * S);
    let stopped_at = m.t() / S;
    a.rescan(m.t(), stopped_at);
    let mut known: Vec<&str> = a.workloads().map(|w| w.name.as_str()).collect();
    known.sort();
    // T2 kept nothing: gone at once. The others keep their credits for now.
    assert_eq!(known, ["b/x", "solo", "t3/x"]);
    assert!(a.get("t3/x").unwrap().bucket.earned.is_positive());
    // One hour later (this config's forget_stopped_after_s): the B-series one goes.
    a.rescan(m.t(), stopped_at + 3601);
    let mut known: Vec<&str> = a.workloads().map(|w| w.name.as_str()).collect();
    known.sort();
    assert_eq!(known, ["solo", "t3/x"]);
    // A T3's credits last 7 days after its stop: so does its workload.
    let crate::credit::RunState::Stopped { since_s } = a.get("t3/x").unwrap().bucket.run else {
        panic!("t3/x is not stopped");
    };
    a.rescan(m.t(), since_s + 7 * 24 * 3600);
    assert!(a.get("t3/x").is_some());
    a.rescan(m.t(), since_s + 7 * 24 * 3600 + 1);
    assert!(a.get("t3/x").is_none());
    // The one named in the config is never forgotten.
    assert!(a.get("solo").is_some());
    let events = a.take_events();
    assert!(events.contains(&WorkloadEvent::Forgotten("t2/x".into())));
    // It comes back: a new start, with its launch credits, in a reused slot.
    m.fake.add("t2/x", 100);
    a.rescan(m.t(), stopped_at + 8 * 24 * 3600);
    let w = a.get("t2/x").unwrap();
    assert!(w.is_running());
    assert_eq!(w.bucket.launch + w.bucket.earned, Credits::whole(30));
    assert_eq!(a.workloads.len(), 4);
}

/// Issue 13 item 4: a reload that removes workloads and one that adds them back reuse the
/// released slots; 20 such cycles of 200 workloads leave a table of 200, not 4,200.
#[test]
fn reload_cycles_reuse_released_slots() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    let mut text = String::new();
    for k in 0..200 {
        text.push_str(&format!(
            "[[workload]]\nname = \"w{k}\"\ncgroup = \"w{k}\"\nprofile = \"t3.micro\"\n"
        ));
        m.fake.add(&format!("w{k}"), 0);
    }
    let full = cfg(&text, dir.path());
    let empty = cfg("", dir.path());
    let mut a = m.agent(&full, vec![]);
    a.rescan(m.t(), 0);
    for cycle in 0..20 {
        a.reconfigure(empty.agent.clone(), empty.workloads.clone(), m.t(), cycle);
        assert_eq!(a.workloads().count(), 0);
        a.reconfigure(full.agent.clone(), full.workloads.clone(), m.t(), cycle);
        assert_eq!(a.workloads().filter(|w| w.is_running()).count(), 200);
        m.run(&mut a, S);
    }
    assert_eq!(a.workloads.len(), 200);
}

/// Benchmark for BENCHMARKS.md ("under abuse"): a state of 100,000 workloads of a `match`
/// whose cgroups are all gone. Prints the state file's size and what a save costs the control
/// loop before (every stopped workload kept, the file written on the loop) and after (the
/// stopped ones forgotten as EC2 forgets; the loop only encodes the bytes, the writer task does
/// the I/O). `cargo test --release --lib -- --ignored --nocapture state_of_100k`
#[test]
#[ignore = "benchmark"]
fn bench_state_of_100k_stopped_workloads() {
    use super::state::SavedWorkload;
    use crate::credit::{Bucket, LaunchLimiter};
    use std::time::Instant;
    for profile in ["t2.micro", "t3.micro"] {
        let dir = tempfile::tempdir().unwrap();
        let m = Manual::new(4);
        let c = cfg(
            &format!("[[workload]]\nname = \"fleet\"\nmatch = \"fleet/*\"\nprofile = \"{profile}\"\nmode = \"standard\"\n"),
            dir.path(),
        );
        let p = c.workloads[0].profile.clone();
        let mut a = m.agent(&c, vec![]);
        let mut s = a.snapshot(0, &Sections::new());
        for k in 0..100_000u64 {
            let mut b = Bucket::new_or_standard(&p, Mode::Standard, Credits::whole(10));
            b.start(&p, &c.agent.policy, 0, &mut LaunchLimiter::unlimited());
            s.workloads.insert(
                format!("fleet/w{k:06}"),
                SavedWorkload {
                    profile: p.name.clone(),
                    bucket: b,
                    cgroup: Some(format!("fleet/w{k:06}")),
                    cgroup_id: 1000 + k,
                    usage_ns: 5_000_000_000,
                    accounted_at_boot_ns: 0,
                    original_quota: None,
                    container: None,
                },
            );
        }
        a.restore(s);
        let sections = Sections::new();
        let file = dir.path().join(state::STATE_FILE);
        let mut stats = super::persist::SaveStats::default();
        let t = Instant::now();
        super::persist::save(&a, 10, &sections, &mut stats);
        let before_s = t.elapsed().as_secs_f64();
        let before_bytes = std::fs::metadata(&file).unwrap().len();
        a.rescan(m.t(), 10);
        let kept = a.workloads().count();
        let t = Instant::now();
        let bytes = state::encode_ref(&a.saved_state(10, &sections)).unwrap();
        let loop_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        state::save_encoded(dir.path(), &bytes).unwrap();
        let writer_s = t.elapsed().as_secs_f64();
        let after_bytes = std::fs::metadata(&file).unwrap().len();
        println!(
            "{{\"profile\":\"{profile}\",\"workloads\":100000,\"before_file_bytes\":{before_bytes},\
             \"before_save_on_loop_s\":{before_s:.4},\"kept_after_stop\":{kept},\
             \"after_file_bytes\":{after_bytes},\"after_on_loop_s\":{loop_s:.4},\
             \"after_writer_s\":{writer_s:.4}}}"
        );
    }
}
