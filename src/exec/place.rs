//! The command's own cgroup: where it goes, creating it, signalling and killing everything in
//! it, removing it; and, when the host cannot do this, a message that says which way works.

use crate::cgroup::{is_self_or_ancestor, CgroupError, Hierarchy, Layout};
use rustix::process::{kill_process, Pid, Signal};
use std::time::{Duration, Instant};

/// The parent of exec cgroups on v1, and on v2 when running as root.
pub const DEFAULT_PARENT: &str = "burstd";

/// A cgroup created for one command; dropping it kills what is left in it and removes it.
pub struct ExecGroup {
    hierarchy: Box<dyn Hierarchy>,
    /// Path relative to the hierarchy root(s), e.g. `burstd/exec-1234`.
    pub rel: String,
    /// The parent, if this command created it: removed with the command's cgroup when no other
    /// command uses it (rmdir of a non-empty cgroup fails, and that failure is ignored).
    created_parent: Option<String>,
    removed: bool,
}

/// Which parent to use: `--parent`, else `burstd` on v1 or as root, else (v2, delegated) the
/// cgroup burstd runs in.
pub fn choose_parent(layout: &Layout, parent: Option<&str>, own: &[String]) -> String {
    if let Some(p) = parent {
        return p.trim_matches('/').to_string();
    }
    let root = rustix::process::geteuid().is_root();
    match (layout, own.first()) {
        (Layout::V2 { .. }, Some(own)) if !root => own.trim_matches('/').to_string(),
        _ => DEFAULT_PARENT.to_string(),
    }
}

impl ExecGroup {
    /// Creates `<parent>/exec-<pid>`. On v2, when burstd itself sits in the parent (or above
    /// it) and the cpu controller is not yet enabled for the parent's children, burstd first
    /// moves itself into a leaf `<own>/burstd-<pid>`: the kernel refuses to enable a controller
    /// for the children of a cgroup that has processes of its own.
    pub fn create(layout: &Layout, parent: &str, own: &[String]) -> Result<ExecGroup, CgroupError> {
        let pid = std::process::id();
        let hierarchy = layout.hierarchy();
        if let (Layout::V2 { root }, Some(own)) = (layout, own.first()) {
            let own = own.trim_matches('/');
            let enabled = std::fs::read_to_string(root.join(own).join("cgroup.subtree_control"))
                .map(|t| t.split_whitespace().any(|c| c == "cpu"))
                .unwrap_or(false);
            if is_self_or_ancestor(parent, own) && !enabled {
                let leaf = join(own, &format!("burstd-{pid}"));
                hierarchy.create(&leaf)?;
                hierarchy.add_process(&leaf, pid)?;
            }
        }
        let parent = parent.trim_matches('/');
        let created_parent =
            (!parent.is_empty() && hierarchy.glob(parent)?.is_empty()).then(|| parent.to_string());
        let rel = join(parent, &format!("exec-{pid}"));
        // Another command may remove the shared parent between our creating it and our child:
        // the child's mkdir then finds it gone. Once more creates both.
        match hierarchy.create(&rel) {
            Err(e) if e.is_gone() => hierarchy.create(&rel)?,
            other => other?,
        }
        // v2 needs the cpu files in the new cgroup: fail now with a clear error, not later.
        hierarchy.open(&rel)?;
        Ok(ExecGroup {
            hierarchy,
            rel,
            created_parent,
            removed: false,
        })
    }

    /// Sends `sig` to every process in the cgroup. Returns how many were signalled.
    pub fn signal_all(&self, sig: Signal) -> usize {
        let pids = self.hierarchy.procs(&self.rel).unwrap_or_default();
        pids.into_iter()
            .filter_map(|p| Pid::from_raw(p as i32))
            .filter(|&p| kill_process(p, sig).is_ok())
            .count()
    }

    /// SIGKILLs everything in the cgroup until it is empty (a process may fork while we
    /// kill). Returns the number of processes killed, or the pids still there after `limit`.
    pub fn kill_all(&self, limit: Duration) -> Result<usize, Vec<u32>> {
        let start = Instant::now();
        let mut killed = 0;
        loop {
            let pids = match self.hierarchy.procs(&self.rel) {
                Ok(p) => p,
                Err(_) => return Ok(killed),
            };
            if pids.is_empty() {
                return Ok(killed);
            }
            if start.elapsed() > limit {
                return Err(pids);
            }
            for p in pids.iter().filter_map(|&p| Pid::from_raw(p as i32)) {
                if kill_process(p, Signal::KILL).is_ok() {
                    killed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes the (empty) cgroup. The kernel may need a moment after the last task exits.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        let mut last = Ok(());
        for _ in 0..100 {
            last = self.hierarchy.remove(&self.rel);
            if last.is_ok() {
                self.removed = true;
                if let Some(parent) = &self.created_parent {
                    // Busy: another command's cgroup is in it. The parent then stays (empty and
                    // harmless once that one ends), as it does for a parent that was there before.
                    let _ = self.hierarchy.remove(parent);
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    }
}

impl Drop for ExecGroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.kill_all(Duration::from_secs(5));
            let _ = self.remove();
        }
    }
}

fn join(parent: &str, child: &str) -> String {
    let parent = parent.trim_matches('/');
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// What to tell a user whose host cannot give the command a cgroup, and which way works.
pub fn unavailable_message(e: &CgroupError) -> String {
    let ways = "burstd exec needs a cgroup it may write, with the cpu controller. Either:\n  \
        - run it as root:                     sudo burstd exec …\n  \
        - in a cgroup delegated to your user: systemd-run --user --scope -p Delegate=yes burstd exec …\n  \
        - in a container with a writable cgroupfs:\n      \
          docker run --cgroupns=private -v /sys/fs/cgroup:/sys/fs/cgroup:rw … burstd exec …\n  \
        - or pass --parent PATH, a cgroup you may write (relative to the cgroup root).\n\
        See docs/exec.md. Without any of these, `burstd simulate --profile t2.micro --trace \
        config/example-trace.csv` shows the same credit rules on a trace.";
    let why = match e {
        CgroupError::PermissionDenied { path } => {
            let who = if rustix::process::geteuid().is_root() {
                "root"
            } else {
                "not root"
            };
            format!("cannot write {} (running as {who})", path.display())
        }
        CgroupError::Layout { reason } => format!("no usable cpu controller: {reason}"),
        CgroupError::MissingFile { path, .. } => format!(
            "the cpu controller is not enabled for the new cgroup ({} is missing): the parent does not delegate cpu",
            path.display()
        ),
        CgroupError::Directory { path, source, .. } | CgroupError::Write { path, source, .. }
            if source.raw_os_error() == Some(libc::EROFS) =>
        {
            format!(
                "the cgroup filesystem is read-only here ({}): a container without a writable /sys/fs/cgroup?",
                path.display()
            )
        }
        other => other.to_string(),
    };
    format!("cannot give the command its own cgroup: {why}\n{ways}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_choice() {
        let v1 = Layout::v1("/c", "/a");
        assert_eq!(choose_parent(&v1, None, &["/".into()]), "burstd");
        assert_eq!(choose_parent(&v1, Some("/x/y/"), &[]), "x/y");
        assert_eq!(join("", "exec-1"), "exec-1");
        assert_eq!(join("/a/b/", "exec-1"), "a/b/exec-1");
    }

    #[test]
    fn messages_name_the_cause_and_the_ways() {
        let e = CgroupError::Directory {
            action: "creating",
            path: "/sys/fs/cgroup/cpu/burstd".into(),
            source: std::io::Error::from_raw_os_error(libc::EROFS),
        };
        let m = unavailable_message(&e);
        assert!(m.contains("read-only"), "{m}");
        assert!(m.contains("Delegate=yes") && m.contains("simulate"), "{m}");
        let e = CgroupError::Layout {
            reason: "no cpu".into(),
        };
        assert!(unavailable_message(&e).contains("no usable cpu controller"));
    }
}
