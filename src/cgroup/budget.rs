//! The file-descriptor budget shared by a hierarchy and every cgroup handle it opens.
//!
//! A handle always keeps its usage counter open (v1 `cpuacct.usage`, v2 `cpu.stat`): the routine
//! sample is one `pread` on it. Its other control files (throttling counters, quota, period,
//! burst) are kept open too only while that leaves at least half of the budget free; past that
//! the handle opens them for each read, so that under a tight `RLIMIT_NOFILE` every workload
//! still gets its counter descriptor instead of failing with EMFILE.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::info;

/// Descriptors left out of the budget for the rest of burstd: sockets, the state file,
/// `systemctl` pipes, the transient files of an open or a write.
pub const RESERVE: usize = 256;

/// How many descriptors cgroup handles may keep open, and how many they keep now.
#[derive(Debug)]
pub struct FdBudget {
    limit: usize,
    kept: AtomicUsize,
    /// Whether the first handle opened lean was logged (once per budget, not per workload).
    lean_logged: AtomicBool,
}

impl FdBudget {
    /// A budget of `limit` descriptors (tests inject small ones; 0 makes every handle lean).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(FdBudget {
            limit,
            kept: AtomicUsize::new(0),
            lean_logged: AtomicBool::new(false),
        })
    }

    /// The process's current soft `RLIMIT_NOFILE` minus [`RESERVE`]. Read it after the daemon
    /// raised the limit: the budget does not follow later changes.
    pub fn from_rlimit() -> Arc<Self> {
        use rustix::process::{getrlimit, Resource};
        // `None` is RLIM_INFINITY.
        let soft = getrlimit(Resource::Nofile)
            .current
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Self::new(soft.saturating_sub(RESERVE))
    }

    /// The descriptors handles may keep open in total.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The descriptors all live handles keep open now.
    pub fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// Count a new handle's usage counter (always kept open: if the limit is really reached,
    /// its `open` fails with EMFILE on its own), and its `extras` other files if, with them,
    /// the handles keep at most half the limit: the other half stays free for the counters of
    /// workloads yet to come.
    pub(crate) fn keep(self: &Arc<Self>, extras: usize) -> KeptFds {
        let with_counter = self.kept.fetch_add(1, Ordering::Relaxed) + 1;
        let half = self.limit / 2;
        let kept_extras = self
            .kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(extras).filter(|&after| after <= half)
            })
            .is_ok();
        if !kept_extras && !self.lean_logged.swap(true, Ordering::Relaxed) {
            info!(
                limit = self.limit,
                kept = with_counter,
                "open-file budget half used: cgroups opened from now on keep only their usage counter open and open their other control files for each read (raise LimitNOFILE to keep them all open)"
            );
        }
        KeptFds {
            budget: Arc::clone(self),
            count: if kept_extras { 1 + extras } else { 1 },
        }
    }
}

/// The descriptors one handle counts in its budget; given back when the handle is dropped.
#[derive(Debug)]
pub(crate) struct KeptFds {
    budget: Arc<FdBudget>,
    count: usize,
}

impl KeptFds {
    /// Whether the handle may keep its other control files open (not only its usage counter).
    pub(crate) fn extras_kept(&self) -> bool {
        self.count > 1
    }
}

impl Drop for KeptFds {
    fn drop(&mut self) {
        self.budget.kept.fetch_sub(self.count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_are_kept_up_to_half_the_limit_and_given_back_on_drop() {
        // Half of 20 is 10: two v1 handles (1 + 4 each) fit exactly, the third is lean.
        let budget = FdBudget::new(20);
        let first = budget.keep(4);
        assert!(first.extras_kept());
        assert_eq!(budget.kept(), 5);
        let second = budget.keep(4);
        assert!(second.extras_kept());
        assert_eq!(budget.kept(), 10);
        let third = budget.keep(4);
        assert!(!third.extras_kept());
        assert_eq!(budget.kept(), 11);
        // Counters are always kept, far past half the limit.
        let lean: Vec<KeptFds> = (0..20).map(|_| budget.keep(4)).collect();
        assert!(lean.iter().all(|k| !k.extras_kept()));
        assert_eq!(budget.kept(), 31);
        drop(lean);
        drop(third);
        assert_eq!(budget.kept(), 10);
        // Freed room is used again: 5 + 1 + 4 = 10.
        drop(first);
        let again = budget.keep(4);
        assert!(again.extras_kept());
        assert_eq!(budget.kept(), 10);
        drop(again);
        drop(second);
        assert_eq!(budget.kept(), 0);
    }

    #[test]
    fn an_exhausted_budget_keeps_only_counters() {
        let budget = FdBudget::new(0);
        let kept = budget.keep(2);
        assert!(!kept.extras_kept());
        assert_eq!(budget.kept(), 1);
        drop(kept);
        assert_eq!(budget.kept(), 0);
    }

    #[test]
    fn the_limit_is_the_soft_rlimit_minus_the_reserve() {
        use rustix::process::{getrlimit, Resource};
        let budget = FdBudget::from_rlimit();
        match getrlimit(Resource::Nofile).current {
            Some(soft) => assert_eq!(budget.limit() as u64, soft.saturating_sub(RESERVE as u64)),
            None => assert_eq!(budget.limit(), usize::MAX - RESERVE),
        }
    }
}
