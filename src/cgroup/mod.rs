//! Kernel I/O for cgroup CPU control: read a cgroup's CPU time and throttling, read and write
//! its CPU quota, and create, list and remove cgroups.
//!
//! The agent talks to the [`Hierarchy`] and [`Cgroup`] traits so that its control loop can run
//! against an in-memory fake; [`v1`] and [`v2`] are the kernel implementations and [`Layout`]
//! says which one this host needs. Every root path is injected, so the same code runs on fake
//! trees in tempdirs. A hierarchy and its handles share an [`FdBudget`]: how many control files
//! the handles may keep open.

pub mod budget;
mod io;
pub mod layout;
pub mod parse;
#[cfg(test)]
pub(crate) mod test_tree;
pub mod v1;
pub mod v2;

use std::path::PathBuf;

pub use budget::{FdBudget, Fit};
pub use layout::{
    is_self_or_ancestor, own_cgroup_paths, read_own_cgroup_paths, sched_ext_enabled, Layout,
    SCHED_EXT_STATE,
};

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

/// One open cgroup. Its usage counter stays open, so that the routine sample is one `pread`;
/// its other control files stay open too while the hierarchy's [`FdBudget`] allows, and are
/// otherwise opened for each read.
pub trait Cgroup: Send {
    /// The path relative to the hierarchy root, without leading or trailing `/`.
    fn path(&self) -> &str;
    /// The inode of the cgroup's directory (the cpuacct one on v1) at open time: a recreated
    /// cgroup gets a new one, and its counters restart from 0.
    fn id(&self) -> u64;
    /// Read the cumulative counters.
    fn sample(&mut self) -> Result<Sample, CgroupError>;
    /// Read only the CPU usage counter (ns): the routine look, cheaper than [`Cgroup::sample`]
    /// where throttling counters live in another file (v1).
    fn sample_usage(&mut self) -> Result<u64, CgroupError> {
        self.sample().map(|s| s.usage_ns)
    }
    /// Read the current quota (for drift detection and to restore it on exit); remembers it as
    /// the last known value.
    fn read_quota(&mut self) -> Result<Quota, CgroupError>;
    /// Whether no limit is in force: the cheap drift check while burstd's own value is "no
    /// limit" (the period does not matter then; v1 reads one file instead of two).
    fn quota_is_unlimited(&mut self) -> Result<bool, CgroupError> {
        self.read_quota().map(|q| q.quota_us.is_none())
    }
    /// Write `quota` unless it equals the last value this handle wrote or read. Never reads the
    /// quota before writing.
    fn write_quota(&mut self, quota: Quota) -> Result<WriteOutcome, CgroupError>;
    /// Forget the last known quota, so that the next [`Cgroup::write_quota`] really writes
    /// (after another writer was seen to change it).
    fn forget_written(&mut self);
    /// Keep open or close control files to fit the hierarchy's [`FdBudget`] plan (see
    /// [`budget`]): the agent calls this on every handle after [`Hierarchy::plan_handles`].
    fn fit_fds(&mut self, _pass: Fit) {}
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
    /// The descriptors kept open by all live handles this hierarchy opened ([`FdBudget::kept`]);
    /// 0 for implementations that keep none.
    fn open_files(&self) -> usize {
        0
    }
    /// Plan the descriptor budget for `handles` live handles ([`FdBudget::plan`]); then fit
    /// every live handle with [`Cgroup::fit_fds`], a [`Fit::Release`] pass before a
    /// [`Fit::Claim`] pass.
    fn plan_handles(&self, _handles: usize) {}
}

/// What went wrong, where, and with which value.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup does not exist (any more): ENOENT, or ENODEV/ESTALE on a file kept open (its
    /// directory was removed, and may have been made again: the agent reopens the path).
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
    #[error("{action} cgroup directory {path}: {source}")]
    Directory {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
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

/// Lower the burst allowance (`cpu.max.burst` / `cpu.cfs_burst_us`, µs) to `new_quota_us` if it
/// is above it: the kernel refuses a quota below the burst with EINVAL, so this comes first.
fn lower_burst(
    burst: Option<&io::ControlFile>,
    dir: &std::path::Path,
    new_quota_us: Option<u64>,
) -> Result<(), CgroupError> {
    let (Some(burst), Some(new_quota_us)) = (burst, new_quota_us) else {
        return Ok(());
    };
    if burst.read(dir, parse::parse_u64)? > new_quota_us {
        io::write_value(&burst.path(dir), &new_quota_us.to_string(), "cpu")?;
    }
    Ok(())
}

/// `rel` without leading/trailing `/`, refusing `..` and `.` so that no path leaves the root.
fn clean_rel(rel: &str) -> Result<&str, CgroupError> {
    let trimmed = rel.trim_matches('/');
    if trimmed.split('/').any(|element| {
        element == ".." || element == "." || (element.is_empty() && !trimmed.is_empty())
    }) {
        return Err(CgroupError::InvalidPath {
            rel: rel.to_owned(),
            reason: "elements must not be empty, '.' or '..'",
        });
    }
    Ok(trimmed)
}

/// Glob `pattern` below `root`: only directories, `*`/`?` within one element, sorted.
fn glob_dirs(root: &std::path::Path, pattern: &str) -> Result<Vec<String>, CgroupError> {
    let pattern = clean_rel(pattern)?;
    let mut found = vec![String::new()];
    if pattern.is_empty() {
        return Ok(found);
    }
    for element in pattern.split('/') {
        let mut next = Vec::new();
        for parent in &found {
            let dir = root.join(parent);
            let join = |name: &str| {
                if parent.is_empty() {
                    name.to_owned()
                } else {
                    format!("{parent}/{name}")
                }
            };
            if !element.contains(['*', '?']) {
                if dir.join(element).is_dir() {
                    next.push(join(element));
                }
                continue;
            }
            let entries = match std::fs::read_dir(&dir).map_err(|e| io::classify_read(e, &dir)) {
                Ok(entries) => entries,
                // A parent removed while we walk simply has no matches.
                Err(CgroupError::Gone { .. }) => continue,
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                    if wildcard_match(element, name) {
                        next.push(join(name));
                    }
                }
            }
        }
        found = next;
    }
    found.sort();
    Ok(found)
}

/// Shell-style match of one path element: `*` any run of characters, `?` one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was and which name position it currently stands for: on a mismatch
    // we let that star swallow one more character (classic linear-time backtracking).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((star_pi, star_ni)) = star {
            pi = star_pi + 1;
            ni = star_ni + 1;
            star = Some((star_pi, star_ni + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_within_an_element() {
        assert!(wildcard_match("docker-*.scope", "docker-abc.scope"));
        assert!(wildcard_match("docker-*.scope", "docker-.scope"));
        assert!(!wildcard_match("docker-*.scope", "docker-abc.service"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("*a*b", "xxaxxab"));
        assert!(!wildcard_match("*a*b", "xxaxxa"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    #[test]
    fn relative_paths_cannot_leave_the_root() {
        assert_eq!(clean_rel("/a/b/").unwrap(), "a/b");
        assert_eq!(clean_rel("").unwrap(), "");
        assert!(clean_rel("a/../../etc").is_err());
        assert!(clean_rel("a//b").is_err());
        assert!(clean_rel("./a").is_err());
    }

    #[test]
    fn gone_is_recognised() {
        let gone = CgroupError::Gone {
            path: PathBuf::from("/x"),
        };
        assert!(gone.is_gone());
        let denied = CgroupError::PermissionDenied {
            path: PathBuf::from("/x"),
        };
        assert!(!denied.is_gone());
        assert!(denied.to_string().contains("/x"));
    }
}
