//! A workload's owner tampering with its own cgroup (issue 13 items 6 and 7), against the
//! in-memory kernel.

use super::tests::{Manual, STD};
use crate::cgroup::Quota;
use crate::credit::Credits;
use crate::testkit::cfg;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Issue 13 item 6: a held workload that zeroes its usage counter every 50 ms (on v1 the owner
/// of a delegated cgroup can write 0 to `cpuacct.usage`) ran at 0.91 cores, charged almost
/// nothing. A counter that went backwards is charged at the ceiling in force from then on.
#[test]
fn a_usage_counter_zeroed_by_its_owner_is_charged_at_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    a.sample_all(m.t(), m.t() / S);
    let w = a.get("burn").unwrap();
    assert!(w.bucket.held);
    let spent_before = w.bucket.totals.spent;
    // 10 s of zeroing every 50 ms while held at the 0.2-core baseline.
    for _ in 0..200 {
        m.run(&mut a, 50 * MS);
        m.fake.zero_usage("burn");
    }
    a.sample_all(m.t(), m.t() / S);
    let w = a.get("burn").unwrap();
    // Charged at the ceiling in force (the baseline, 0.2 cores) for 10 s, 60× faster: 120
    // CPU-s = 2 credits. Before the fix the backwards reads were charged 0, the balance grew
    // by what it earned and the workload was released to its full 2 cores.
    assert_eq!(w.bucket.totals.spent - spent_before, Credits::whole(2));
    assert!(w.bucket.held);
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::limited(20_000, 100_000)
    );
    assert!(w.usage_counter_resets >= 1);
    assert_eq!(
        a.health().usage_counter_resets,
        u64::from(w.usage_counter_resets)
    );
}

/// Issue 13 item 7: on v1 the tasks moved out of the cpu hierarchy, the cpu directory removed
/// and made again and the tasks moved back: the drift check's kept descriptor answered ENODEV,
/// which was ignored, and the workload ran without its hold (0.89 cores instead of 0.10). A
/// kept file that is gone means the cgroup is reopened at once and the hold written again;
/// the cpuacct directory (the accounting) is the same, so the bucket goes on untouched.
#[test]
fn a_recreated_cpu_directory_gets_the_hold_again_at_the_next_drift_check() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    let held = Quota::limited(20_000, 100_000);
    assert_eq!(m.fake.group("burn").unwrap().quota, held);
    a.take_events();
    let writes = m.fake.group("burn").unwrap().writes;
    m.fake.recreate_cpu_dir("burn");
    assert_eq!(
        m.fake.group("burn").unwrap().quota,
        Quota::unlimited(100_000)
    );
    // drift_check_s defaults to 5: the hold is back by the first look after it.
    m.run(&mut a, 5 * S + 100 * MS);
    assert_eq!(m.fake.group("burn").unwrap().quota, held);
    assert_eq!(m.fake.group("burn").unwrap().writes, writes + 1);
    assert_eq!(a.health().cgroup_reopens, 1);
    let w = a.get("burn").unwrap();
    assert!(w.is_running() && w.bucket.held);
    // The same cgroup for accounting: no stop (no charge, no launch credits), no start.
    assert_eq!(a.take_events(), vec![]);
    // Held again: the next 10 s get the 0.2-core baseline.
    let before = m.fake.group("burn").unwrap().usage_ns;
    m.run(&mut a, 10 * S);
    let used = m.fake.group("burn").unwrap().usage_ns - before;
    assert_eq!(used, 2 * S);
    assert_eq!(a.health().cgroup_reopens, 1);
}

/// A cgroup removed and made again at the same path (a new id) while a kept file is read: a
/// stop, then at once a start on the new cgroup, with the quota in force written to it.
#[test]
fn a_cgroup_recreated_under_its_handle_is_a_stop_and_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    assert!(a.get("burn").unwrap().bucket.held);
    a.take_events();
    m.fake.add("burn", 1000); // a new cgroup at the same path, counter at 0
    m.run(&mut a, 1100 * MS);
    use super::workload::WorkloadEvent::{Started, Stopped};
    assert_eq!(
        a.take_events(),
        vec![Stopped("burn".into()), Started("burn".into())]
    );
    assert_eq!(a.health().cgroup_reopens, 1);
    assert!(a.get("burn").unwrap().is_running());
}

/// Zeroing the counter while burstd is not running is no way around the rule: the same cgroup
/// (same id, same path) found with a smaller counter than was saved is resumed with the time
/// away charged at the ceiling in force, not restarted (no launch credits, no stop charge).
#[test]
fn a_usage_counter_zeroed_while_burstd_was_away_is_charged_at_the_ceiling() {
    use super::persist::Sections;
    use super::state;
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let m = Manual::new(4);
    m.fake.add("burn", 1000);
    let c = cfg(STD, dir.path());
    let mut a = m.agent(&c, vec![]);
    a.rescan(m.t(), 0);
    m.run(&mut a, 2 * S);
    a.sample_all(m.t(), 2);
    let before = a.get("burn").unwrap().bucket.clone();
    assert!(before.held);
    state::save(dir.path(), &a.snapshot(2, &Sections::new())).unwrap();
    drop(a);
    // Down for 5 s, held at its 0.2-core baseline; the counter zeroed just before the restart.
    m.now.fetch_add(5 * S, Ordering::SeqCst);
    m.fake.zero_usage("burn");
    let mut b = m.agent(&c, vec![]);
    b.restore(state::load(dir.path()).unwrap().unwrap());
    b.rescan(m.t(), 7);
    let w = b.get("burn").unwrap();
    // 5 s at 0.2 cores, 60× faster: 60 CPU-s = 1 credit.
    assert_eq!(
        w.bucket.totals.spent - before.totals.spent,
        Credits::whole(1)
    );
    assert_eq!(w.bucket.totals.charged, before.totals.charged);
    assert!(w.bucket.held);
    assert_eq!(w.usage_counter_resets, 1);
    assert_eq!(
        b.take_events(),
        vec![super::workload::WorkloadEvent::Started("burn".into())]
    );
}
