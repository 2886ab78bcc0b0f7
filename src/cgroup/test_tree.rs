//! Fake cgroup trees in tempdirs (v2, v1 with separate roots, v1 co-mounted), filled with the
//! control files a kernel would show, for I/O tests without a kernel.

use std::path::PathBuf;

use tempfile::TempDir;

use super::Layout;

/// A fake hierarchy; the tempdir is removed when it is dropped.
pub(crate) struct FakeTree {
    dir: TempDir,
    pub(crate) layout: Layout,
}

impl FakeTree {
    fn new(make: impl FnOnce(&std::path::Path) -> Layout) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = make(dir.path());
        let tree = FakeTree { dir, layout };
        tree.add("");
        tree
    }

    pub(crate) fn v2() -> Self {
        Self::new(|d| Layout::v2(d.join("unified")))
    }

    pub(crate) fn v1_separate() -> Self {
        Self::new(|d| Layout::v1(d.join("cpu"), d.join("cpuacct")))
    }

    pub(crate) fn v1_comounted() -> Self {
        Self::new(|d| {
            let root = d.join("cpu,cpuacct");
            Layout::v1(root.clone(), root)
        })
    }

    /// Where `file` of cgroup `rel` lives: `cpuacct.*` in the cpuacct hierarchy, the rest in
    /// the cpu one (v2: the single root).
    pub(crate) fn file(&self, rel: &str, file: &str) -> PathBuf {
        let root = match &self.layout {
            Layout::V2 { root } => root,
            Layout::V1 { cpuacct_root, .. } if file.starts_with("cpuacct.") => cpuacct_root,
            Layout::V1 { cpu_root, .. } => cpu_root,
        };
        root.join(rel).join(file)
    }

    /// Create cgroup `rel` with a freshly booted kernel's values.
    pub(crate) fn add(&self, rel: &str) -> &Self {
        let files: &[(&str, &str)] = match &self.layout {
            Layout::V2 { .. } => &[
                ("cgroup.procs", ""),
                ("cgroup.controllers", "cpu io memory pids\n"),
                ("cgroup.subtree_control", ""),
                (
                    "cpu.stat",
                    "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                ),
                ("cpu.max", "max 100000\n"),
                ("cpu.max.burst", "0\n"),
            ],
            Layout::V1 { .. } => &[
                ("cgroup.procs", ""),
                (
                    "cpu.stat",
                    "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
                ),
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("cpu.cfs_burst_us", "0\n"),
                ("cpuacct.usage", "0\n"),
            ],
        };
        for (name, content) in files {
            let path = self.file(rel, name);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write fake control file");
        }
        if let Layout::V1 { cpuacct_root, .. } = &self.layout {
            // cgroup.procs exists in both v1 hierarchies.
            std::fs::write(cpuacct_root.join(rel).join("cgroup.procs"), "").expect("write");
        }
        self
    }

    pub(crate) fn set(&self, rel: &str, file: &str, content: &str) {
        std::fs::write(self.file(rel, file), content).expect("write fake control file");
    }

    pub(crate) fn get(&self, rel: &str, file: &str) -> String {
        std::fs::read_to_string(self.file(rel, file)).expect("read fake control file")
    }

    /// How many descriptors of this process are open on files of this tree: the truth the
    /// budget's count must match (other tests' trees are other tempdirs, so parallel tests do
    /// not disturb it).
    pub(crate) fn open_fds(&self) -> usize {
        let dir = self.dir.path().canonicalize().expect("canonical tempdir");
        std::fs::read_dir("/proc/self/fd")
            .expect("list /proc/self/fd")
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| target.starts_with(&dir))
            .count()
    }
}
