//! Kernel I/O for cgroup CPU control: read a cgroup's CPU time and throttling, read and write
//! its CPU quota, and create, list and remove cgroups.
//!
//! The agent talks to the [`Hierarchy`] and [`Cgroup`] traits so that its control loop can run
//! against an in-memory fake; [`v1`] and [`v2`] are the kernel implementations and [`Layout`]
//! says which one this host needs. Every root path is injected, so the same code runs on fake
//! trees in tempdirs.

// TEMPORARY: trait definitions only, replaced by the cgroup branch at merge.
use std::path::PathBuf;

/// Cumulative counters of one cgroup, as the kernel reports them (they only grow, until the
/// cgroup is recreated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU time used by the cgroup's tasks, in nanoseconds.
    pub usage_ns: u64,
    /// Enforcement periods in which the cgroup had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the cgroup ran out of quota.
    pub nr_throttled: u64,
    /// Total time the cgroup's tasks spent throttled, in nanoseconds.
    pub throttled_ns: u64,
}

/// A CFS bandwidth limit: `quota_us` of CPU time per `period_us` of wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// CPU time per period in microseconds; `None` means no limit.
    pub quota_us: Option<u64>,
    /// Length of the enforcement period in microseconds (the kernel accepts 1000..=1_000_000).
    pub period_us: u64,
}

impl Quota {
    /// The kernel's default period: 100 ms.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;

    /// No limit, with the given period.
    pub fn unlimited(period_us: u64) -> Self {
        Quota {
            quota_us: None,
            period_us,
        }
    }

    /// `quota_us` of CPU time per `period_us`.
    pub fn limited(quota_us: u64, period_us: u64) -> Self {
        Quota {
            quota_us: Some(quota_us),
            period_us,
        }
    }
}

/// Whether [`Cgroup::write_quota`] reached the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The value was written.
    Written,
    /// The value equals the last one this handle wrote or read, so nothing was written: every
    /// write refills the group's runtime and unthrottles it, so a rewrite would hand out free CPU.
    Unchanged,
}

/// One open cgroup: its counters stay open so that a sample costs a few `pread`s.
pub trait Cgroup: Send {
    /// The path relative to the hierarchy root, without leading or trailing `/`.
    fn path(&self) -> &str;
    /// The inode of the cgroup's directory (the cpuacct one on v1) at open time: a recreated
    /// cgroup gets a new one, and its counters restart from 0.
    fn id(&self) -> u64;
    /// Read the cumulative counters.
    fn sample(&mut self) -> Result<Sample, CgroupError>;
    /// Read the current quota (for drift detection and to restore it on exit); remembers it as
    /// the last known value.
    fn read_quota(&mut self) -> Result<Quota, CgroupError>;
    /// Write `quota` unless it equals the last value this handle wrote or read. Never reads the
    /// quota before writing.
    fn write_quota(&mut self, quota: Quota) -> Result<WriteOutcome, CgroupError>;
    /// Forget the last known quota, so that the next [`Cgroup::write_quota`] really writes
    /// (after another writer was seen to change it).
    fn forget_written(&mut self);
}

/// A cgroup hierarchy (v1: the `cpu` and `cpuacct` hierarchies together) with its root injected.
pub trait Hierarchy: Send + Sync {
    /// Open the cgroup at `rel` (relative to the root) for sampling and quota writes.
    fn open(&self, rel: &str) -> Result<Box<dyn Cgroup>, CgroupError>;
    /// The existing cgroups matching `pattern`, e.g. `system.slice/docker-*.scope`: `*` and `?`
    /// match within one path element. Relative paths, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, CgroupError>;
    /// Create the cgroup and any missing parents (v1: in both hierarchies; v2: with `+cpu` in
    /// each parent's `cgroup.subtree_control`). An existing cgroup is not an error.
    fn create(&self, rel: &str) -> Result<(), CgroupError>;
    /// Remove the (empty) cgroup; one that is already gone is not an error.
    fn remove(&self, rel: &str) -> Result<(), CgroupError>;
    /// Move process `pid` into the cgroup (v1: in both hierarchies).
    fn add_process(&self, rel: &str, pid: u32) -> Result<(), CgroupError>;
    /// The processes in the cgroup.
    fn procs(&self, rel: &str) -> Result<Vec<u32>, CgroupError>;
}

/// What went wrong, where, and with which value.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup does not exist (any more): ENOENT, or ENODEV on a file kept open. A stopped
    /// workload, a normal event.
    #[error("cgroup is gone: {path}")]
    Gone { path: PathBuf },
    /// EACCES or EPERM.
    #[error(
        "permission denied on {path}: run burstd as root, or delegate the cgroup subtree to its user"
    )]
    PermissionDenied { path: PathBuf },
    /// The cgroup directory exists but a control file does not.
    #[error("{path} does not exist although its cgroup does: is the {controller} controller enabled for it?")]
    MissingFile {
        path: PathBuf,
        controller: &'static str,
    },
    /// The kernel refused a value with EINVAL.
    #[error("the kernel rejected {value:?} for {path}: a quota must be at least 1000 µs, a period 1000..=1000000 µs, burst at most the quota, and (v1) a child's quota/period at most its parent's")]
    Rejected { path: PathBuf, value: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {content:?}, expected {expected}")]
    Parse {
        path: PathBuf,
        content: String,
        expected: &'static str,
    },
    /// A relative cgroup path or glob pattern that could leave the hierarchy.
    #[error("invalid cgroup path {rel:?}: {reason}")]
    InvalidPath { rel: String, reason: &'static str },
    /// The host's cgroup layout cannot be used.
    #[error("cgroup layout: {reason}")]
    Layout { reason: String },
}

impl CgroupError {
    /// The cgroup went away: treat it as the workload stopping, not as a failure.
    pub fn is_gone(&self) -> bool {
        matches!(self, CgroupError::Gone { .. })
    }
}
