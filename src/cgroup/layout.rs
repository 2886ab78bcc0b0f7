//! Which cgroup layout this host has (v2 with the cpu controller, or the v1 `cpu` and `cpuacct`
//! hierarchies, separate or co-mounted), plus the host facts the agent checks before managing
//! a cgroup: its own cgroup, and whether a sched_ext scheduler may ignore quotas.
//!
//! Detection reads `/proc/self/mountinfo`; the parsing is pure so it is tested on captured texts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use procfs::process::MountInfo;
use procfs::FromBufRead;
use procfs::ProcessCGroups;

use super::{io, v1, v2, CgroupError, FdBudget, Hierarchy};

/// Where the CPU controllers are mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy, with `cpu` available in its `cgroup.controllers`.
    V2 { root: PathBuf },
    /// The v1 `cpu` and `cpuacct` hierarchies; the same path when co-mounted as `cpu,cpuacct`.
    V1 {
        cpu_root: PathBuf,
        cpuacct_root: PathBuf,
    },
}

impl Layout {
    /// An explicit v2 root (tests, the `cgroup_root` setting).
    pub fn v2(root: impl Into<PathBuf>) -> Self {
        Layout::V2 { root: root.into() }
    }

    /// Explicit v1 roots (tests, the `cgroup_root` setting).
    pub fn v1(cpu_root: impl Into<PathBuf>, cpuacct_root: impl Into<PathBuf>) -> Self {
        Layout::V1 {
            cpu_root: cpu_root.into(),
            cpuacct_root: cpuacct_root.into(),
        }
    }

    /// Detect this host's layout from `/proc/self/mountinfo`, and check that a v2 hierarchy
    /// really offers the cpu controller.
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(|e| io::classify_read(e, path))?;
        let layout = Self::from_mountinfo(&text)?;
        if let Layout::V2 { root } = &layout {
            let controllers_path = root.join("cgroup.controllers");
            let controllers = io::read_once(&controllers_path, "cgroup", |t| Ok(t.to_owned()))?;
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return Err(CgroupError::Layout {
                    reason: format!(
                        "the cgroup v2 hierarchy at {} has no cpu controller (cgroup.controllers: {:?}) and no v1 cpu hierarchy is mounted",
                        root.display(),
                        controllers.trim()
                    ),
                });
            }
        }
        Ok(layout)
    }

    /// The layout described by a `mountinfo` text. A controller can be bound to one hierarchy
    /// only, so a mounted v1 `cpu` hierarchy wins: on a hybrid host the v2 mount lacks cpu.
    /// Whether a v2 mount offers cpu is not in mountinfo; [`Layout::detect`] checks it.
    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        // Lenient: a line procfs cannot parse is not one of ours.
        let mounts: Vec<MountInfo> = text
            .lines()
            .filter_map(|line| MountInfo::from_line(line).ok())
            .collect();
        let v1_with = |controller: &str| {
            mounts
                .iter()
                .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key(controller))
                .map(|m| m.mount_point.clone())
        };
        match (v1_with("cpu"), v1_with("cpuacct")) {
            (Some(cpu_root), Some(cpuacct_root)) => {
                return Ok(Layout::V1 {
                    cpu_root,
                    cpuacct_root,
                })
            }
            (Some(cpu_root), None) => {
                return Err(CgroupError::Layout {
                    reason: format!(
                        "the v1 cpu hierarchy is mounted at {} but no cpuacct hierarchy is, so CPU usage cannot be read",
                        cpu_root.display()
                    ),
                })
            }
            _ => {}
        }
        mounts
            .iter()
            .find(|m| m.fs_type == "cgroup2")
            .map(|m| Layout::V2 {
                root: m.mount_point.clone(),
            })
            .ok_or_else(|| CgroupError::Layout {
                reason: "no cgroup v2 mount and no v1 cpu hierarchy in /proc/self/mountinfo"
                    .to_owned(),
            })
    }

    /// The `cgroup.procs` file(s) that move a process into cgroup `rel` (v1: one per distinct
    /// hierarchy). `burstd exec` opens them before forking so that the child can move itself
    /// with a single `write` before it executes the command.
    pub fn procs_files(&self, rel: &str) -> Result<Vec<PathBuf>, CgroupError> {
        let rel = super::clean_rel(rel)?;
        Ok(match self {
            Layout::V2 { root } => vec![root.join(rel).join("cgroup.procs")],
            Layout::V1 {
                cpu_root,
                cpuacct_root,
            } => {
                let mut files = vec![cpu_root.join(rel).join("cgroup.procs")];
                if cpuacct_root != cpu_root {
                    files.push(cpuacct_root.join(rel).join("cgroup.procs"));
                }
                files
            }
        })
    }

    /// The hierarchy implementation for this layout, with a descriptor budget from the
    /// process's soft open-file limit as it is now ([`FdBudget::from_rlimit`]): the daemon
    /// builds it after raising the limit.
    pub fn hierarchy(&self) -> Box<dyn Hierarchy> {
        self.hierarchy_with_budget(FdBudget::from_rlimit())
    }

    /// [`Layout::hierarchy`] with the given budget (tests inject small ones).
    pub fn hierarchy_with_budget(&self, budget: Arc<FdBudget>) -> Box<dyn Hierarchy> {
        match self {
            Layout::V2 { root } => Box::new(v2::V2Hierarchy::with_budget(root.clone(), budget)),
            Layout::V1 {
                cpu_root,
                cpuacct_root,
            } => Box::new(v1::V1Hierarchy::with_budget(
                cpu_root.clone(),
                cpuacct_root.clone(),
                budget,
            )),
        }
    }
}

/// The kernel's sched_ext state file (absent on kernels without sched_ext).
pub const SCHED_EXT_STATE: &str = "/sys/kernel/sched_ext/state";

/// Whether a sched_ext scheduler is loaded (`enabled`, or on its way: `enabling`); it may ignore
/// CPU quotas, so the agent warns. A missing file means a kernel without sched_ext: `false`.
pub fn sched_ext_enabled(state_path: &Path) -> Result<bool, CgroupError> {
    match std::fs::read_to_string(state_path) {
        Ok(state) => Ok(matches!(state.trim(), "enabled" | "enabling")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::classify_read(e, state_path)),
    }
}

/// The calling process's cgroup paths relevant to `layout`, from a `/proc/<pid>/cgroup` text:
/// the unified (`0::`) path on v2; the `cpu` and `cpuacct` paths on v1. Paths start with `/`.
pub fn own_cgroup_paths(layout: &Layout, proc_cgroup: &str) -> Result<Vec<String>, CgroupError> {
    let groups =
        ProcessCGroups::from_buf_read(proc_cgroup.as_bytes()).map_err(|_| CgroupError::Parse {
            path: PathBuf::from("/proc/self/cgroup"),
            content: proc_cgroup.to_owned(),
            expected: "`ID:CONTROLLERS:PATH` lines",
        })?;
    let wanted = |controllers: &[String], hierarchy: u32| match layout {
        Layout::V2 { .. } => hierarchy == 0 && controllers.is_empty(),
        Layout::V1 { .. } => controllers.iter().any(|c| c == "cpu" || c == "cpuacct"),
    };
    let mut paths: Vec<String> = groups
        .0
        .into_iter()
        .filter(|g| wanted(&g.controllers, g.hierarchy))
        .map(|g| g.pathname)
        .collect();
    paths.dedup();
    Ok(paths)
}

/// [`own_cgroup_paths`] for this process.
pub fn read_own_cgroup_paths(layout: &Layout) -> Result<Vec<String>, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = std::fs::read_to_string(path).map_err(|e| io::classify_read(e, path))?;
    own_cgroup_paths(layout, &text)
}

/// Is `candidate` (relative to the hierarchy root) the cgroup `own` (as in `/proc/self/cgroup`)
/// or one of its ancestors? Capping such a cgroup would cap burstd itself.
pub fn is_self_or_ancestor(own: &str, candidate: &str) -> bool {
    let own = own.trim_matches('/');
    let candidate = candidate.trim_matches('/');
    candidate.is_empty()
        || own == candidate
        || own
            .strip_prefix(candidate)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Why no layout could be had from a `cgroup_root` setting or from this host.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cgroup_root = {root:?} is neither a cgroup v2 mount (no cgroup.controllers) nor a directory with v1 cpu and cpuacct hierarchies")]
    NotAHierarchy { root: PathBuf },
    #[error(transparent)]
    Detect(#[from] CgroupError),
}

impl Layout {
    /// The one place that decides the layout: `cgroup_root` if given (a v2 mount, or a
    /// directory holding v1 `cpu` and `cpuacct` mounts, separate or co-mounted), otherwise
    /// detected from /proc/self/mountinfo.
    pub fn resolve(cgroup_root: Option<&Path>) -> Result<Layout, RootError> {
        let Some(root) = cgroup_root else {
            return Ok(Layout::detect()?);
        };
        if root.join("cgroup.controllers").exists() {
            return Ok(Layout::v2(root));
        }
        let cpu = [root.join("cpu"), root.join("cpu,cpuacct")]
            .into_iter()
            .find(|p| p.join("cpu.cfs_quota_us").exists());
        let acct = [root.join("cpuacct"), root.join("cpu,cpuacct")]
            .into_iter()
            .find(|p| p.join("cpuacct.usage").exists());
        match (cpu, acct) {
            (Some(c), Some(a)) => Ok(Layout::v1(c, a)),
            _ => Err(RootError::NotAHierarchy {
                root: root.to_path_buf(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_v2() {
        let text = include_str!("testdata/mountinfo-v2.txt");
        assert_eq!(
            Layout::from_mountinfo(text).unwrap(),
            Layout::v2("/sys/fs/cgroup")
        );
    }

    #[test]
    fn hybrid_with_separate_cpu_and_cpuacct_is_v1() {
        // Captured on the CI host: v1 cpu and cpuacct apart, a v2 mount with hugetlb only.
        let text = include_str!("testdata/mountinfo-hybrid-separate.txt");
        assert_eq!(
            Layout::from_mountinfo(text).unwrap(),
            Layout::v1("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct")
        );
    }

    #[test]
    fn v1_comounted_cpu_cpuacct() {
        let text = include_str!("testdata/mountinfo-v1-comounted.txt");
        assert_eq!(
            Layout::from_mountinfo(text).unwrap(),
            Layout::v1("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn cpu_without_cpuacct_or_nothing_at_all_is_an_error() {
        let cpu_only = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        let err = Layout::from_mountinfo(cpu_only).unwrap_err();
        assert!(err.to_string().contains("cpuacct"), "{err}");
        // `cpuset` must not be mistaken for `cpu`.
        let cpuset = "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";
        assert!(Layout::from_mountinfo(cpuset).is_err());
        assert!(Layout::from_mountinfo("garbage line\n").is_err());
    }

    #[test]
    fn detect_on_this_host_finds_a_usable_layout() {
        // Whatever the host, detection must either succeed or say why; on the CI host it is V1.
        match Layout::detect() {
            Ok(layout) => assert!(matches!(layout, Layout::V1 { .. } | Layout::V2 { .. })),
            Err(e) => assert!(matches!(e, CgroupError::Layout { .. }), "{e}"),
        }
    }

    #[test]
    fn sched_ext_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(
            !sched_ext_enabled(&state).unwrap(),
            "missing file = no sched_ext"
        );
        std::fs::write(&state, "disabled\n").unwrap();
        assert!(!sched_ext_enabled(&state).unwrap());
        std::fs::write(&state, "enabled\n").unwrap();
        assert!(sched_ext_enabled(&state).unwrap());
    }

    #[test]
    fn own_paths_per_layout() {
        let text = "9:name=systemd:/user.slice\n2:cpuacct:/burstd.service\n\
                    1:cpu:/burstd.service\n0::/system.slice/burstd.service\n";
        assert_eq!(
            own_cgroup_paths(&Layout::v2("/r"), text).unwrap(),
            vec!["/system.slice/burstd.service"]
        );
        assert_eq!(
            own_cgroup_paths(&Layout::v1("/c", "/a"), text).unwrap(),
            vec!["/burstd.service"]
        );
        let comounted = "4:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(
            own_cgroup_paths(&Layout::v1("/c", "/c"), comounted).unwrap(),
            vec!["/x"]
        );
        assert!(own_cgroup_paths(&Layout::v2("/r"), "nonsense").is_err());
    }

    #[test]
    fn self_or_ancestor() {
        let own = "/system.slice/burstd.service";
        assert!(is_self_or_ancestor(own, "system.slice/burstd.service"));
        assert!(is_self_or_ancestor(own, "system.slice"));
        assert!(is_self_or_ancestor(own, ""));
        assert!(is_self_or_ancestor(own, "/"));
        assert!(!is_self_or_ancestor(own, "system.slice/burstd"));
        assert!(!is_self_or_ancestor(own, "system"));
        assert!(!is_self_or_ancestor(
            own,
            "system.slice/burstd.service/child"
        ));
        assert!(!is_self_or_ancestor(own, "user.slice"));
    }
}
