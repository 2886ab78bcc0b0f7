//! A container's cgroup, found from its main process (`/proc/<pid>/cgroup`) rather than
//! guessed from the runtime's naming: it is right for the systemd and cgroupfs drivers, cgroup
//! v1 and v2, Docker and Podman alike.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cgroup::layout::{own_cgroup_paths, Layout};

/// `/proc/<pid>/cgroup` is a few hundred bytes; more than this is not a cgroup file.
const MAX_PROC_CGROUP: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PidCgroupError {
    /// The process exited (the container stopped): a normal event.
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
}

impl PidCgroupError {
    pub fn is_gone(&self) -> bool {
        matches!(self, PidCgroupError::Gone { .. })
    }
}

/// The cgroup of process `pid`, relative to the root of the hierarchy `layout` manages (no
/// leading `/`). `proc_root` is `/proc` except in tests.
pub fn cgroup_of_pid(
    layout: &Layout,
    proc_root: &Path,
    pid: u32,
) -> Result<String, PidCgroupError> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let mut text = String::new();
    let read =
        std::fs::File::open(&path).and_then(|f| f.take(MAX_PROC_CGROUP).read_to_string(&mut text));
    match read {
        Ok(_) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            return Err(PidCgroupError::Gone { pid })
        }
        Err(e) => {
            return Err(PidCgroupError::Read {
                path,
                reason: e.to_string(),
            })
        }
    }
    // An exited process can leave an empty file behind while it is reaped.
    if text.trim().is_empty() {
        return Err(PidCgroupError::Gone { pid });
    }
    cgroup_from_text(layout, &text).map_err(|reason| PidCgroupError::Unusable { path, reason })
}

/// The pure part of [`cgroup_of_pid`]: the path in a `/proc/<pid>/cgroup` text. On v1 the
/// `cpu` and `cpuacct` hierarchies must agree (burstd reads one and writes the other at the
/// same relative path); a process in the root cgroup shares it with the host and is refused.
pub fn cgroup_from_text(layout: &Layout, text: &str) -> Result<String, String> {
    let paths = own_cgroup_paths(layout, text).map_err(|e| e.to_string())?;
    let wanted = match layout {
        Layout::V2 { .. } => "the unified (0::) line",
        Layout::V1 { .. } => "a cpu or cpuacct line",
    };
    let path = match paths.as_slice() {
        [] => return Err(format!("no {wanted} in {text:?}")),
        [one] => one,
        [first, rest @ ..] => match rest.iter().find(|p| *p != first) {
            None => first,
            Some(other) => {
                return Err(format!(
                    "the cpu and cpuacct cgroups differ ({first} and {other}); burstd needs them at one path"
                ))
            }
        },
    };
    let rel = path.trim_matches('/');
    if rel.is_empty() {
        return Err("the process is in the root cgroup (a container without its own cgroup, e.g. --cgroups=disabled)".to_string());
    }
    if rel
        .split('/')
        .any(|e| e.is_empty() || e == "." || e == "..")
    {
        return Err(format!("{path:?} is not a plain cgroup path"));
    }
    Ok(rel.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Layout {
        Layout::v1("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct")
    }
    fn v2() -> Layout {
        Layout::v2("/sys/fs/cgroup")
    }

    const PODMAN_CGROUPFS_HYBRID: &str = "\
9:name=systemd:/libpod_parent/libpod-8a11ee3f
8:pids:/libpod_parent/libpod-8a11ee3f
2:cpuacct:/libpod_parent/libpod-8a11ee3f
1:cpu:/libpod_parent/libpod-8a11ee3f
0::/libpod_parent/libpod-8a11ee3f
";

    #[test]
    fn podman_cgroupfs_on_a_hybrid_v1_host() {
        assert_eq!(
            cgroup_from_text(&v1(), PODMAN_CGROUPFS_HYBRID).unwrap(),
            "libpod_parent/libpod-8a11ee3f"
        );
    }

    #[test]
    fn docker_cgroupfs_v1_comounted() {
        let text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(cgroup_from_text(&v1(), text).unwrap(), "docker/abc");
    }

    #[test]
    fn docker_systemd_driver_v2() {
        let text = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            cgroup_from_text(&v2(), text).unwrap(),
            "system.slice/docker-abc.scope"
        );
    }

    #[test]
    fn podman_systemd_driver_v2_rootless() {
        let text = "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-abc.scope/container\n";
        assert_eq!(
            cgroup_from_text(&v2(), text).unwrap(),
            "user.slice/user-1000.slice/user@1000.service/user.slice/libpod-abc.scope/container"
        );
    }

    #[test]
    fn v1_hierarchies_that_disagree_are_refused() {
        let text = "2:cpuacct:/docker/abc\n1:cpu:/other/abc\n";
        let e = cgroup_from_text(&v1(), text).unwrap_err();
        assert!(e.contains("/docker/abc") && e.contains("/other/abc"), "{e}");
    }

    #[test]
    fn root_cgroup_is_refused() {
        let e = cgroup_from_text(&v2(), "0::/\n").unwrap_err();
        assert!(e.contains("root cgroup"), "{e}");
    }

    #[test]
    fn missing_line_names_what_was_wanted() {
        let e = cgroup_from_text(&v1(), "0::/x\n").unwrap_err();
        assert!(e.contains("cpu or cpuacct"), "{e}");
        let e = cgroup_from_text(&v2(), "1:cpu:/x\n").unwrap_err();
        assert!(e.contains("0::"), "{e}");
    }

    #[test]
    fn reads_a_fake_proc_tree_and_tells_a_gone_process() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/cgroup"), PODMAN_CGROUPFS_HYBRID).unwrap();
        assert_eq!(
            cgroup_of_pid(&v1(), dir.path(), 42).unwrap(),
            "libpod_parent/libpod-8a11ee3f"
        );
        let gone = cgroup_of_pid(&v1(), dir.path(), 43).unwrap_err();
        assert!(gone.is_gone(), "{gone}");
        std::fs::create_dir(dir.path().join("44")).unwrap();
        std::fs::write(dir.path().join("44/cgroup"), "").unwrap();
        assert!(cgroup_of_pid(&v1(), dir.path(), 44).unwrap_err().is_gone());
    }
}
