//! One managed workload at run time, what the agent counts about itself, and the events it
//! reports.

use super::decide::{HoldLanding, Scaled};
use super::state::SavedWorkload;
use crate::cgroup::{Cgroup, Quota, Sample};
use crate::credit::{Bucket, Mode, Policy, Profile, Rate};
use std::sync::Arc;

/// Counters of the agent's own health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub cgroup_write_errors: u64,
    pub cgroup_read_errors: u64,
    pub external_quota_changes: u64,
    /// Control files the cgroup handles keep open now (a gauge; set when scraped).
    pub cgroup_files_open: u64,
    /// Containers left alone because of their `burstd.*` labels.
    pub container_label_errors: u64,
    /// Cgroups refused because another cgroup already had their derived workload name (two
    /// glob matches with the same last element); each cgroup counted once.
    pub name_collisions: u64,
    /// Looks at which a workload's usage counter had gone backwards on the same open cgroup
    /// (zeroed by whoever can write it): each charged at the ceiling in force.
    pub usage_counter_resets: u64,
    /// Cgroups reopened because a file their handle keeps open answered ENODEV/ENOENT/ESTALE
    /// (a directory removed, perhaps made again under the running tasks).
    pub cgroup_reopens: u64,
}

/// A managed workload at run time. There can be 10,000 of them in one `Vec`: keep it small
/// (shared profile, rarely used parts boxed); `size_of` is checked by a test.
pub struct Workload {
    pub name: String,
    /// Shared by every workload with the same profile (see `Agent::shared_profile`).
    pub profile: Arc<Profile>,
    pub bucket: Bucket,
    /// The cgroup path it was last seen at.
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub(super) handle: Option<Box<dyn Cgroup>>,
    /// Last sample and when it was taken.
    pub last: Sample,
    pub last_at_ns: u64,
    pub(super) usage_scale: Scaled,
    pub(super) time_scale: Scaled,
    /// The quota this agent wrote last (None: nothing written yet).
    pub written: Option<Quota>,
    pub original_quota: Option<Quota>,
    /// Observed CPU rate over the last interval.
    pub usage_rate: Rate,
    /// Looks at which its usage counter had gone backwards on the same open cgroup (each
    /// interval charged at the ceiling in force, see `decide::charge_for_backwards_counter`);
    /// saturates at 65,535 (the health counter keeps the exact total).
    pub usage_counter_resets: u16,
    /// How the last hold at baseline landed.
    pub last_landing: Option<HoldLanding>,
    /// The throttling counters may have moved since they were last read: a quota was in force
    /// (ours or another writer's). While the quota is unlimited they cannot move, so a full
    /// sample skips reading them (v1: a second file, formatted by the kernel on each read).
    pub(super) throttle_stale: bool,
    pub(super) next_wake_ns: u64,
    pub(super) last_drift_check_ns: u64,
    pub(super) drift_logged: bool,
    pub(super) refused_logged: bool,
    /// Its usage counter went backwards on the cgroup it runs on: every interval is charged
    /// at the ceiling in force until it runs on another cgroup.
    pub(super) usage_distrusted: bool,
    /// Its measured CPU is handed out as trace rows (`record = true`).
    pub(super) record: bool,
    /// Saved position to reconcile with when the cgroup is first seen after a restart (boxed:
    /// only restored workloads have one, and only until their first rescan).
    pub(super) pending: Option<Box<SavedWorkload>>,
    /// Its cgroup has been looked for since the agent started (until then a restored
    /// workload's saved state is kept as it was).
    pub seen: bool,
    /// A container instance's name and own CPU limit (boxed: most workloads are not one).
    pub container: Option<Box<ContainerRun>>,
}

/// What a container instance adds to a workload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ContainerRun {
    pub name: String,
    /// The container's own CPU limit: the quota written is never above it.
    pub cpu_limit: Option<Rate>,
}

impl Workload {
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// Restored from the state file but its cgroup not yet seen since: its saved position is
    /// still to be reconciled, so its bucket must not change before that.
    pub fn awaiting_reconcile(&self) -> bool {
        !self.seen && self.pending.is_some()
    }

    pub fn ceiling(&self, policy: &Policy) -> Rate {
        self.bucket.ceiling(&self.profile, policy)
    }

    /// The ceiling in force: the model's, or the container's own limit when that is lower.
    pub fn ceiling_in_force(&self, policy: &Policy) -> Rate {
        let ceiling = self.ceiling(policy);
        match self.container.as_ref().and_then(|c| c.cpu_limit) {
            Some(limit) => ceiling.min(limit),
            None => ceiling,
        }
    }
}

/// One interval of a recorded workload's measured CPU use (`record = true`), for the daemon
/// to write as a trace row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub name: String,
    /// End of the interval, on the agent's monotonic clock (real ns).
    pub end_ns: u64,
    /// Its length (real ns) and the CPU time the kernel counted in it.
    pub wall_ns: u64,
    pub cpu_ns: u64,
    /// The profile's vCPUs: the trace's utilisation is in % of them.
    pub vcpus: u32,
}

/// Events the caller may want to act on (save state at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadEvent {
    Started(String),
    Stopped(String),
    Held(String),
    Released(String),
    Switched(String, Mode),
    /// Stopped with nothing left to keep (a `match`'s or a container's): no longer known.
    Forgotten(String),
}
