//! The file-descriptor budget shared by a hierarchy and every cgroup handle it opens.
//!
//! A handle keeps its control files open so that a read is one `pread` (opening a cgroup file
//! by path and closing it again costs 5–10× that). Under a tight `RLIMIT_NOFILE` not every file
//! of every handle fits, so the files are kept in three tiers, by how often they are read:
//!
//! 1. the usage counter (v1 `cpuacct.usage`, v2 `cpu.stat`), read at every look: always kept;
//! 2. the quota (v1 `cpu.cfs_quota_us`, v2 `cpu.max`), read at every drift check: kept by as
//!    many handles as fit once every handle's counter is counted;
//! 3. the rest (v1 `cpu.stat`, `cpu.cfs_period_us`, burst; v2 `cpu.max.burst`), read while a
//!    limit is in force or on a write: kept only if every handle can keep tiers 1 and 2.
//!
//! A file not kept is opened for each read, with the same results and errors.
//!
//! The agent tells the budget how many handles to plan for ([`FdBudget::plan`]) before it
//! opens a rescan's new cgroups, and then has every handle fit itself to the plan: first all give
//! back what the plan no longer allows ([`Fit::Release`]), then all claim what it has room for
//! ([`Fit::Claim`]). Handles opened beyond the plan (between rescans) assume the fleet may double
//! before the next one, and a handle over its tier's allowance gives it back at its next read.

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
    /// The handle count the agent planned for (0: none yet).
    planned: AtomicUsize,
    /// Live handles, each keeping its usage counter (tier 1).
    counters: AtomicUsize,
    /// Quota files kept (tier 2, one per handle).
    quota: AtomicUsize,
    /// Other files kept (tier 3).
    rest: AtomicUsize,
    /// Whether a handle short of its quota file was logged (once per budget, not per workload).
    lean_logged: AtomicBool,
}

/// A pass of [`KeptFds::fit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Give back files beyond what the plan allows.
    Release,
    /// Release, then keep more files where the plan has room.
    Claim,
}

/// Which of a handle's files it keeps open, besides its usage counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tiers {
    pub(crate) quota: bool,
    pub(crate) rest: bool,
}

impl FdBudget {
    /// A budget of `limit` descriptors (tests inject small ones; 0 keeps only counters).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(FdBudget {
            limit,
            planned: AtomicUsize::new(0),
            counters: AtomicUsize::new(0),
            quota: AtomicUsize::new(0),
            rest: AtomicUsize::new(0),
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
        self.counters.load(Ordering::Relaxed)
            + self.quota.load(Ordering::Relaxed)
            + self.rest.load(Ordering::Relaxed)
    }

    /// Live handles that keep their quota file open.
    pub fn quota_kept(&self) -> usize {
        self.quota.load(Ordering::Relaxed)
    }

    /// Plan for `handles` live handles (those open now that stay, plus those about to be
    /// opened). Then fit every live handle: [`Fit::Release`] on all, then [`Fit::Claim`].
    pub fn plan(&self, handles: usize) {
        self.planned.store(handles, Ordering::Relaxed);
    }

    /// The handle count the allowances are for: the plan while the handles are within it; past
    /// it, room for the fleet to double before the next plan.
    fn planned_for(&self) -> usize {
        let counters = self.counters.load(Ordering::Relaxed);
        let planned = self.planned.load(Ordering::Relaxed);
        if counters <= planned {
            planned
        } else {
            counters.saturating_mul(2)
        }
    }

    /// (quota files, other files) the plan allows: every counter first, then a quota file for
    /// as many handles as fit, then other files only if every handle has its quota file.
    fn allowances(&self) -> (usize, usize) {
        let n = self.planned_for();
        let quota = n.min(self.limit.saturating_sub(n));
        let rest = self.limit.saturating_sub(n.saturating_mul(2));
        (quota, rest)
    }

    /// Count a new handle's usage counter. Always kept: if the process limit is really reached,
    /// its `open` fails with EMFILE on its own.
    pub(crate) fn counter(self: &Arc<Self>) -> KeptFds {
        self.counters.fetch_add(1, Ordering::Relaxed);
        KeptFds {
            budget: Arc::clone(self),
            tiers: Tiers::default(),
            rest: 0,
        }
    }

    fn claim(count: &AtomicUsize, n: usize, allowed: usize) -> bool {
        count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(n).filter(|&after| after <= allowed)
            })
            .is_ok()
    }
}

/// The descriptors one handle counts in its budget; given back when the handle is dropped.
#[derive(Debug)]
pub(crate) struct KeptFds {
    budget: Arc<FdBudget>,
    tiers: Tiers,
    /// Other files counted while `tiers.rest`.
    rest: usize,
}

impl KeptFds {
    /// The tiers this handle keeps now.
    #[cfg(test)]
    pub(crate) fn tiers(&self) -> Tiers {
        self.tiers
    }

    /// Fit this handle to the plan: give back a tier its count is over the allowance of and,
    /// with [`Fit::Claim`], keep the tiers there is room for. `rest` is how many other files
    /// the handle has. Returns the tiers to keep; the caller opens or closes files to match.
    pub(crate) fn fit(&mut self, rest: usize, pass: Fit) -> Tiers {
        let b = &*self.budget;
        let (quota_allowed, rest_allowed) = b.allowances();
        if self.tiers.rest && b.rest.load(Ordering::Relaxed) > rest_allowed {
            b.rest.fetch_sub(self.rest, Ordering::Relaxed);
            self.tiers.rest = false;
            self.rest = 0;
        }
        if self.tiers.quota && b.quota.load(Ordering::Relaxed) > quota_allowed {
            b.quota.fetch_sub(1, Ordering::Relaxed);
            self.tiers.quota = false;
        }
        if pass == Fit::Release {
            return self.tiers;
        }
        if !self.tiers.quota {
            self.tiers.quota = FdBudget::claim(&b.quota, 1, quota_allowed);
            if !self.tiers.quota && !b.lean_logged.swap(true, Ordering::Relaxed) {
                info!(
                    limit = b.limit,
                    kept = b.kept(),
                    "open-file budget short: some cgroups keep only their usage counter open and open their quota file for each drift check (raise LimitNOFILE to keep them all open)"
                );
            }
        }
        if self.tiers.quota && !self.tiers.rest && FdBudget::claim(&b.rest, rest, rest_allowed) {
            self.tiers.rest = true;
            self.rest = rest;
        }
        self.tiers
    }

    /// A handle whose tier is over its allowance gives it back at its next read: cheap enough
    /// to ask on every quota read (two relaxed loads when nothing is over).
    pub(crate) fn over(&self) -> bool {
        let b = &*self.budget;
        if !self.tiers.quota {
            return false;
        }
        let (quota_allowed, rest_allowed) = b.allowances();
        b.quota.load(Ordering::Relaxed) > quota_allowed
            || (self.tiers.rest && b.rest.load(Ordering::Relaxed) > rest_allowed)
    }
}

impl Drop for KeptFds {
    fn drop(&mut self) {
        let b = &*self.budget;
        b.counters.fetch_sub(1, Ordering::Relaxed);
        if self.tiers.quota {
            b.quota.fetch_sub(1, Ordering::Relaxed);
        }
        if self.tiers.rest {
            b.rest.fetch_sub(self.rest, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Tiers = Tiers {
        quota: true,
        rest: true,
    };
    const QUOTA: Tiers = Tiers {
        quota: true,
        rest: false,
    };
    const LEAN: Tiers = Tiers {
        quota: false,
        rest: false,
    };

    fn open(budget: &Arc<FdBudget>, rest: usize) -> KeptFds {
        let mut kept = budget.counter();
        kept.fit(rest, Fit::Claim);
        kept
    }

    #[test]
    fn a_plan_gives_every_handle_its_quota_file_before_any_other_file() {
        // 10 handles in 25: 10 counters, 10 quota files, 5 left: one handle's 3 other files.
        let budget = FdBudget::new(25);
        budget.plan(10);
        let handles: Vec<KeptFds> = (0..10).map(|_| open(&budget, 3)).collect();
        let tiers: Vec<Tiers> = handles.iter().map(KeptFds::tiers).collect();
        assert_eq!(tiers[0], FULL);
        assert!(tiers[1..].iter().all(|&t| t == QUOTA), "{tiers:?}");
        assert_eq!((budget.kept(), budget.quota_kept()), (23, 10));
        drop(handles);
        assert_eq!(budget.kept(), 0);
    }

    #[test]
    fn past_half_the_limit_the_quota_files_that_fit_are_kept() {
        // The sandbox case: 10,000 handles in 19,744 descriptors keep 9,744 quota files.
        let budget = FdBudget::new(19_744);
        budget.plan(10_000);
        let handles: Vec<KeptFds> = (0..10_000).map(|_| open(&budget, 3)).collect();
        assert_eq!(budget.quota_kept(), 9_744);
        assert_eq!(budget.kept(), 19_744);
        assert!(handles[..9_744].iter().all(|h| h.tiers() == QUOTA));
        assert!(handles[9_744..].iter().all(|h| h.tiers() == LEAN));
    }

    #[test]
    fn a_bigger_plan_takes_files_back_before_new_handles_open() {
        let budget = FdBudget::new(30);
        budget.plan(2);
        let mut old: Vec<KeptFds> = (0..2).map(|_| open(&budget, 3)).collect();
        assert!(old.iter().all(|h| h.tiers() == FULL));
        assert_eq!(budget.kept(), 10);
        // 13 handles in 30: 13 counters + 13 quota files leave 4: one handle's 3 other files.
        budget.plan(13);
        assert!(old.iter().all(KeptFds::over));
        for h in &mut old {
            h.fit(3, Fit::Release);
        }
        // The first gave its other files back; that was enough for the second to keep them.
        assert_eq!(old[0].tiers(), QUOTA);
        assert_eq!(old[1].tiers(), FULL);
        for h in &mut old {
            h.fit(3, Fit::Claim);
        }
        assert_eq!(old[0].tiers(), QUOTA);
        let new: Vec<KeptFds> = (0..11).map(|_| open(&budget, 3)).collect();
        assert!(new.iter().all(|h| h.tiers() == QUOTA));
        assert_eq!(budget.kept(), 13 + 13 + 3);
        // A smaller plan: the room comes back at the next claim pass.
        drop(new);
        budget.plan(2);
        assert_eq!(budget.kept(), 2 + 2 + 3);
        old[0].fit(3, Fit::Claim);
        assert_eq!(old[0].tiers(), FULL);
        assert_eq!(budget.kept(), 10);
    }

    #[test]
    fn handles_past_the_plan_assume_the_fleet_doubles_and_give_back_when_over() {
        let budget = FdBudget::new(20);
        // No plan: the first handle plans for 2 (quota 2, rest 16).
        let mut handles = vec![open(&budget, 3)];
        assert_eq!(handles[0].tiers(), FULL);
        for _ in 0..4 {
            handles.push(open(&budget, 3));
        }
        // 5 handles planned as 10: 10 quota files allowed, no other files for new ones.
        assert_eq!(handles[4].tiers(), QUOTA);
        // 10 handles: planned as 20, so no quota files allowed at all; those kept are over
        // and each goes at its owner's next read.
        for _ in 0..5 {
            handles.push(open(&budget, 3));
        }
        assert_eq!(handles[9].tiers(), LEAN);
        assert!(handles[0].over());
        for h in &mut handles {
            if h.over() {
                h.fit(3, Fit::Release);
            }
        }
        assert_eq!(budget.kept(), 10);
        assert!(handles.iter().all(|h| h.tiers() == LEAN));
    }

    #[test]
    fn an_exhausted_budget_keeps_only_counters() {
        let budget = FdBudget::new(0);
        let kept = open(&budget, 2);
        assert_eq!(kept.tiers(), LEAN);
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
