//! cgroup v2 (unified hierarchy): usage and throttling from `cpu.stat`, the limit in `cpu.max`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::budget::{FdBudget, Fit, KeptFds};
use super::io::{self, ControlFile};
use super::parse;
use super::{clean_rel, glob_dirs, lower_burst, Cgroup, CgroupError, Hierarchy};
use super::{Quota, Sample, WriteOutcome};

/// The unified hierarchy mounted at `root`.
#[derive(Clone, Debug)]
pub struct V2Hierarchy {
    root: PathBuf,
    budget: Arc<FdBudget>,
}

impl V2Hierarchy {
    /// With a budget from the current open-file limit ([`FdBudget::from_rlimit`]).
    pub fn new(root: PathBuf) -> Self {
        Self::with_budget(root, FdBudget::from_rlimit())
    }

    /// With the given descriptor budget, shared by all handles this hierarchy opens.
    pub fn with_budget(root: PathBuf, budget: Arc<FdBudget>) -> Self {
        V2Hierarchy { root, budget }
    }
}

/// `+cpu` in `dir`'s `cgroup.subtree_control`, so that its children get `cpu.max`.
fn enable_cpu_for_children(dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = io::read_once(&path, "cgroup", |text| {
        Ok(text.split_whitespace().any(|c| c == "cpu"))
    })?;
    if enabled {
        return Ok(());
    }
    io::write_value(&path, "+cpu", "cgroup")
}

impl Hierarchy for V2Hierarchy {
    fn open(&self, rel: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(V2Cgroup::open(&self.root, rel, &self.budget)?))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, CgroupError> {
        glob_dirs(&self.root, pattern)
    }

    fn create(&self, rel: &str) -> Result<(), CgroupError> {
        io::create_dirs(&self.root, clean_rel(rel)?, enable_cpu_for_children)
    }

    fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = clean_rel(rel)?;
        if rel.is_empty() {
            return Err(CgroupError::InvalidPath {
                rel: rel.to_owned(),
                reason: "the root cgroup cannot be removed",
            });
        }
        io::remove_dir(&self.root.join(rel))
    }

    fn add_process(&self, rel: &str, pid: u32) -> Result<(), CgroupError> {
        let path = self.root.join(clean_rel(rel)?).join("cgroup.procs");
        io::write_value(&path, &pid.to_string(), "cgroup")
    }

    fn procs(&self, rel: &str) -> Result<Vec<u32>, CgroupError> {
        let path = self.root.join(clean_rel(rel)?).join("cgroup.procs");
        io::read_once(&path, "cgroup", parse::parse_procs)
    }

    fn open_files(&self) -> usize {
        self.budget.kept()
    }

    fn plan_handles(&self, handles: usize) {
        self.budget.plan(handles);
    }
}

/// An open v2 cgroup.
#[derive(Debug)]
pub struct V2Cgroup {
    rel: Box<str>,
    id: u64,
    dir: Box<Path>,
    /// Always kept open: every sample reads it.
    cpu_stat: ControlFile,
    /// Kept open as far as `fds` allows, else opened for each read.
    cpu_max: ControlFile,
    /// Absent on kernels before 5.14.
    cpu_max_burst: Option<ControlFile>,
    /// The descriptors counted in the hierarchy's budget for this handle, given back on drop.
    fds: KeptFds,
    /// The quota last written or read: a write of the same value is skipped.
    last: Option<Quota>,
}

impl V2Cgroup {
    /// Open the cgroup's control files (which checks that they exist); those `budget` has no
    /// room for are closed again at once.
    pub fn open(root: &Path, rel: &str, budget: &Arc<FdBudget>) -> Result<Self, CgroupError> {
        let rel = clean_rel(rel)?;
        let dir = root.join(rel);
        let id = std::fs::metadata(&dir)
            .map_err(|e| io::classify_read(e, &dir))?
            .ino();
        let mut cg = V2Cgroup {
            rel: rel.into(),
            id,
            cpu_stat: ControlFile::open(&dir, "cpu.stat", "cpu")?,
            cpu_max: ControlFile::open(&dir, "cpu.max", "cpu")?,
            cpu_max_burst: ControlFile::open_optional(&dir, "cpu.max.burst")?,
            dir: dir.into(),
            fds: budget.counter(),
            last: None,
        };
        cg.fit_fds(Fit::Claim);
        Ok(cg)
    }
}

/// `cpu.max`'s form: `"QUOTA PERIOD"` or `"max PERIOD"`.
fn cpu_max_value(quota: Quota) -> String {
    match quota.quota_us {
        Some(quota_us) => format!("{quota_us} {}", quota.period_us),
        None => format!("max {}", quota.period_us),
    }
}

impl Cgroup for V2Cgroup {
    fn path(&self) -> &str {
        &self.rel
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn sample(&mut self) -> Result<Sample, CgroupError> {
        let (stat, usage_usec) = self.cpu_stat.read(&self.dir, |text| {
            let stat = parse::parse_cpu_stat(text)?;
            let usage_usec = stat.usage_usec.ok_or("a usage_usec line")?;
            Ok((stat, usage_usec))
        })?;
        Ok(Sample {
            usage_ns: usage_usec.saturating_mul(1000),
            nr_periods: stat.nr_periods,
            nr_throttled: stat.nr_throttled,
            throttled_ns: stat.throttled_usec.unwrap_or(0).saturating_mul(1000),
        })
    }

    fn read_quota(&mut self) -> Result<Quota, CgroupError> {
        if self.fds.over() {
            self.fit_fds(Fit::Release);
        }
        let quota = self.cpu_max.read(&self.dir, parse::parse_cpu_max)?;
        self.last = Some(quota);
        Ok(quota)
    }

    fn write_quota(&mut self, quota: Quota) -> Result<WriteOutcome, CgroupError> {
        if self.last == Some(quota) {
            return Ok(WriteOutcome::Unchanged);
        }
        // Unknown until the write succeeds: a failed write must not be taken for a done one.
        self.last = None;
        lower_burst(self.cpu_max_burst.as_ref(), &self.dir, quota.quota_us)?;
        io::write_value(&self.cpu_max.path(&self.dir), &cpu_max_value(quota), "cpu")?;
        self.last = Some(quota);
        Ok(WriteOutcome::Written)
    }

    fn forget_written(&mut self) {
        self.last = None;
    }

    fn fit_fds(&mut self, pass: Fit) {
        let tiers = self
            .fds
            .fit(usize::from(self.cpu_max_burst.is_some()), pass);
        self.cpu_max.keep_open(&self.dir, tiers.quota);
        if let Some(burst) = &mut self.cpu_max_burst {
            burst.keep_open(&self.dir, tiers.rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_tree::FakeTree;
    use super::*;

    const CG: &str = "system.slice/app.service";

    fn tree() -> (FakeTree, Box<dyn Hierarchy>) {
        let tree = FakeTree::v2();
        tree.add(CG);
        let hierarchy = tree.layout.hierarchy();
        (tree, hierarchy)
    }

    /// Trees holding `CG`, one with handles that keep all their files open, one with lean ones.
    fn trees() -> [(FakeTree, Box<dyn Hierarchy>); 2] {
        [FdBudget::new(1000), FdBudget::new(0)].map(|budget| {
            let tree = FakeTree::v2();
            tree.add(CG);
            let hierarchy = tree.layout.hierarchy_with_budget(budget);
            (tree, hierarchy)
        })
    }

    #[test]
    fn sample_converts_usec_to_ns_and_ignores_unknown_keys() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            assert_eq!(cg.path(), CG);
            tree.set(
                CG,
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 31\nnr_throttled 30\n\
                 throttled_usec 2400\nnr_bursts 0\nburst_usec 0\nnew_key_2030 5\n",
            );
            let sample = cg.sample().unwrap();
            assert_eq!(
                sample,
                Sample {
                    usage_ns: 1_500_000,
                    nr_periods: 31,
                    nr_throttled: 30,
                    throttled_ns: 2_400_000,
                }
            );
            // Each read sees new values (on the kept descriptor too).
            tree.set(CG, "cpu.stat", "usage_usec 2000\n");
            assert_eq!(cg.sample().unwrap().usage_ns, 2_000_000);
            tree.set(CG, "cpu.stat", "user_usec 2000\n");
            let err = cg.sample().unwrap_err();
            assert!(matches!(err, CgroupError::Parse { .. }), "{err}");
        }
    }

    #[test]
    fn writes_cpu_max_forms_and_reads_them_back() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
            assert_eq!(
                cg.write_quota(Quota::limited(20_000, 100_000)).unwrap(),
                WriteOutcome::Written
            );
            assert_eq!(tree.get(CG, "cpu.max"), "20000 100000");
            assert_eq!(cg.read_quota().unwrap(), Quota::limited(20_000, 100_000));
            cg.write_quota(Quota::unlimited(50_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.max"), "max 50000");
        }
    }

    #[test]
    fn writes_only_on_change_until_forgotten() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            let q = Quota::limited(20_000, 100_000);
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
            // Another writer (systemd, kubelet) changes it; an unchanged write must not touch it.
            tree.set(CG, "cpu.max", "max 100000\n");
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Unchanged);
            assert_eq!(tree.get(CG, "cpu.max"), "max 100000\n");
            // Drift seen: forget, and the next write restores the value.
            cg.forget_written();
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
            assert_eq!(tree.get(CG, "cpu.max"), "20000 100000");
            // A value read counts as known too.
            tree.set(CG, "cpu.max", "30000 100000\n");
            let read = cg.read_quota().unwrap();
            assert_eq!(cg.write_quota(read).unwrap(), WriteOutcome::Unchanged);
            assert_eq!(tree.get(CG, "cpu.max"), "30000 100000\n");
        }
    }

    #[test]
    fn burst_is_lowered_before_the_quota() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            tree.set(CG, "cpu.max.burst", "50000\n");
            // Make cpu.max unwritable: the burst write must already have happened when it fails.
            std::fs::remove_file(tree.file(CG, "cpu.max")).unwrap();
            std::fs::create_dir(tree.file(CG, "cpu.max")).unwrap();
            assert!(cg.write_quota(Quota::limited(20_000, 100_000)).is_err());
            assert_eq!(tree.get(CG, "cpu.max.burst"), "20000");
            // The failed write left the quota unknown: the next attempt really writes.
            std::fs::remove_dir(tree.file(CG, "cpu.max")).unwrap();
            std::fs::write(tree.file(CG, "cpu.max"), "max 100000\n").unwrap();
            assert_eq!(
                cg.write_quota(Quota::limited(20_000, 100_000)).unwrap(),
                WriteOutcome::Written
            );
            assert_eq!(tree.get(CG, "cpu.max"), "20000 100000");
        }
    }

    #[test]
    fn burst_below_quota_and_unlimited_quota_leave_burst_alone() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            tree.set(CG, "cpu.max.burst", "5000\n");
            cg.write_quota(Quota::limited(20_000, 100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.max.burst"), "5000\n");
            tree.set(CG, "cpu.max.burst", "50000\n");
            cg.write_quota(Quota::unlimited(100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.max.burst"), "50000\n");
        }
    }

    #[test]
    fn kernel_without_burst_file_still_writes() {
        for (tree, h) in trees() {
            std::fs::remove_file(tree.file(CG, "cpu.max.burst")).unwrap();
            let mut cg = h.open(CG).unwrap();
            cg.write_quota(Quota::limited(20_000, 100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.max"), "20000 100000");
        }
    }

    #[test]
    fn removed_cgroup_is_gone() {
        for (lean, (tree, h)) in [false, true].into_iter().zip(trees()) {
            let mut cg = h.open(CG).unwrap();
            std::fs::remove_dir_all(tree.file(CG, "")).unwrap();
            assert!(h.open(CG).err().unwrap().is_gone());
            // Writes reopen by path, so they see it (reads on a kept fd only do on a kernel: ENODEV).
            assert!(cg
                .write_quota(Quota::limited(20_000, 100_000))
                .unwrap_err()
                .is_gone());
            // So do the reads of a lean handle.
            if lean {
                assert!(cg.read_quota().unwrap_err().is_gone());
            }
        }
    }

    #[test]
    fn controller_not_enabled_is_not_gone() {
        for (tree, h) in trees() {
            std::fs::remove_file(tree.file(CG, "cpu.max")).unwrap();
            let err = h.open(CG).err().unwrap();
            assert!(matches!(err, CgroupError::MissingFile { .. }), "{err}");
            assert!(err.to_string().contains("cpu controller"), "{err}");
        }
    }

    #[test]
    fn lean_handle_keeps_only_cpu_stat_open_and_still_works() {
        let tree = FakeTree::v2();
        tree.add(CG);
        let budget = FdBudget::new(0);
        let h = tree.layout.hierarchy_with_budget(Arc::clone(&budget));
        let mut cg = h.open(CG).unwrap();
        assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (1, 1, 1));
        tree.set(
            CG,
            "cpu.stat",
            "usage_usec 1500\nnr_periods 2\nnr_throttled 1\n",
        );
        assert_eq!(cg.sample_usage().unwrap(), 1_500_000);
        assert_eq!(cg.sample().unwrap().nr_throttled, 1);
        assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
        let q = Quota::limited(20_000, 100_000);
        tree.set(CG, "cpu.max.burst", "50000\n");
        assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
        assert_eq!(tree.get(CG, "cpu.max.burst"), "20000");
        assert_eq!(tree.get(CG, "cpu.max"), "20000 100000");
        tree.set(CG, "cpu.max", "max 100000\n");
        assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Unchanged);
        assert_eq!(tree.get(CG, "cpu.max"), "max 100000\n");
        assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
        tree.set(CG, "cpu.max", "lots\n");
        match cg.read_quota() {
            Err(CgroupError::Parse { path, content, .. }) => {
                assert_eq!(path, tree.file(CG, "cpu.max"));
                assert_eq!(content, "lots\n");
            }
            other => panic!("expected Parse, got {other:?}"),
        }
        assert_eq!(tree.open_fds(), 1);
        drop(cg);
        assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (0, 0, 0));
    }

    #[test]
    fn full_handles_keep_three_files_and_give_them_back_on_drop() {
        let tree = FakeTree::v2();
        tree.add(CG);
        let budget = FdBudget::new(1000);
        let h = tree.layout.hierarchy_with_budget(Arc::clone(&budget));
        let cg = h.open(CG).unwrap();
        assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (3, 3, 3));
        drop(cg);
        assert_eq!((budget.kept(), tree.open_fds()), (0, 0));
        // A kernel without cpu.max.burst: two.
        std::fs::remove_file(tree.file(CG, "cpu.max.burst")).unwrap();
        let cg = h.open(CG).unwrap();
        assert_eq!((budget.kept(), tree.open_fds()), (2, 2));
        drop(cg);
        assert_eq!(budget.kept(), 0);
    }

    #[test]
    fn recreated_cgroup_has_a_new_id() {
        let (tree, h) = tree();
        let first = h.open(CG).unwrap().id();
        // Keep a file alive in the old directory so the inode number cannot be reused at once.
        let _old = std::fs::File::open(tree.file(CG, "cpu.stat")).unwrap();
        let moved = tree.file("system.slice", "old");
        std::fs::rename(tree.file(CG, ""), &moved).unwrap();
        tree.add(CG);
        assert_ne!(h.open(CG).unwrap().id(), first);
    }

    #[test]
    fn create_enables_cpu_in_each_parent() {
        let tree = FakeTree::v2();
        let h = tree.layout.hierarchy();
        // An existing parent with the controller already on, and one with another controller.
        tree.add("a");
        tree.set("", "cgroup.subtree_control", "cpu memory\n");
        tree.set("a", "cgroup.subtree_control", "memory\n");
        h.create("a/b").unwrap();
        assert!(tree.file("a/b", "").is_dir());
        // Root untouched (already had cpu), `a` gained it.
        assert_eq!(tree.get("", "cgroup.subtree_control"), "cpu memory\n");
        assert_eq!(tree.get("a", "cgroup.subtree_control"), "+cpu");
        // Creating again is fine; the new `b` has no control files in a fake tree, so a
        // deeper create fails clearly on its missing cgroup.subtree_control.
        h.create("a/b").unwrap();
        let err = h.create("a/b/c").unwrap_err();
        assert!(matches!(err, CgroupError::MissingFile { .. }), "{err}");
    }

    #[test]
    fn remove_procs_and_add_process() {
        let (tree, h) = tree();
        h.create("new").unwrap();
        h.remove("new").unwrap();
        assert!(!tree.file("new", "").exists());
        h.remove("new").unwrap(); // already gone: fine
        assert!(h.remove("/").is_err());
        h.add_process(CG, 4242).unwrap();
        assert_eq!(tree.get(CG, "cgroup.procs"), "4242");
        tree.set(CG, "cgroup.procs", "1\n22\n333\n");
        assert_eq!(h.procs(CG).unwrap(), vec![1, 22, 333]);
        assert!(h.procs("nope").unwrap_err().is_gone());
    }

    #[test]
    fn glob_matches_within_elements_sorted() {
        let (tree, h) = tree();
        for rel in [
            "system.slice/docker-b.scope",
            "system.slice/docker-a.scope",
            "system.slice/docker-a.service",
            "user.slice/docker-c.scope",
        ] {
            tree.add(rel);
        }
        assert_eq!(
            h.glob("system.slice/docker-*.scope").unwrap(),
            vec!["system.slice/docker-a.scope", "system.slice/docker-b.scope"]
        );
        assert_eq!(
            h.glob("*/docker-?.scope").unwrap(),
            vec![
                "system.slice/docker-a.scope",
                "system.slice/docker-b.scope",
                "user.slice/docker-c.scope"
            ]
        );
        // Files (cpu.max) never match, only directories.
        assert_eq!(
            h.glob("system.slice/app.service/cpu.*").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(h.glob("system.slice").unwrap(), vec!["system.slice"]);
        assert_eq!(h.glob("nothing/*").unwrap(), Vec::<String>::new());
        assert!(h.glob("../*").is_err());
    }
}
