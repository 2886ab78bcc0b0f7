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
