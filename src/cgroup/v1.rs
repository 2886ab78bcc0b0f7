//! cgroup v1: usage from `cpuacct.usage` in the cpuacct hierarchy, throttling from `cpu.stat` and
//! the limit in `cpu.cfs_quota_us` / `cpu.cfs_period_us` in the cpu hierarchy. The two may be
//! separate mounts (hybrid hosts) or one co-mounted `cpu,cpuacct`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::budget::{FdBudget, Fit, KeptFds};
use super::io::{self, ControlFile};
use super::parse;
use super::{clean_rel, glob_dirs, lower_burst, Cgroup, CgroupError, Hierarchy};
use super::{Quota, Sample, WriteOutcome};

/// The v1 `cpu` and `cpuacct` hierarchies (equal paths when co-mounted).
#[derive(Clone, Debug)]
pub struct V1Hierarchy {
    cpu_root: PathBuf,
    cpuacct_root: PathBuf,
    budget: Arc<FdBudget>,
}

impl V1Hierarchy {
    /// With a budget from the current open-file limit ([`FdBudget::from_rlimit`]).
    pub fn new(cpu_root: PathBuf, cpuacct_root: PathBuf) -> Self {
        Self::with_budget(cpu_root, cpuacct_root, FdBudget::from_rlimit())
    }

    /// With the given descriptor budget, shared by all handles this hierarchy opens.
    pub fn with_budget(cpu_root: PathBuf, cpuacct_root: PathBuf, budget: Arc<FdBudget>) -> Self {
        V1Hierarchy {
            cpu_root,
            cpuacct_root,
            budget,
        }
    }

    /// Each distinct hierarchy root once: a co-mounted root must not get every operation twice.
    fn roots(&self) -> impl Iterator<Item = &Path> {
        let separate = (self.cpuacct_root != self.cpu_root).then_some(self.cpuacct_root.as_path());
        std::iter::once(self.cpu_root.as_path()).chain(separate)
    }
}

impl Hierarchy for V1Hierarchy {
    fn open(&self, rel: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(V1Cgroup::open(
            &self.cpu_root,
            &self.cpuacct_root,
            rel,
            &self.budget,
        )?))
    }

    /// Matches in the cpu hierarchy that also exist in the cpuacct one (both are needed to
    /// open them). Both hierarchies are globbed by directory listing and the sorted lists
    /// intersected: a `stat` of each match was a sixth of the idle daemon's CPU.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, CgroupError> {
        let mut found = glob_dirs(&self.cpu_root, pattern)?;
        if self.cpuacct_root != self.cpu_root {
            let in_cpuacct = glob_dirs(&self.cpuacct_root, pattern)?;
            found.retain(|rel| in_cpuacct.binary_search(rel).is_ok());
        }
        Ok(found)
    }

    fn create(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = clean_rel(rel)?;
        self.roots()
            .try_for_each(|root| io::create_dirs(root, rel, |_| Ok(())))
    }

    fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = clean_rel(rel)?;
        if rel.is_empty() {
            return Err(CgroupError::InvalidPath {
                rel: rel.to_owned(),
                reason: "the root cgroup cannot be removed",
            });
        }
        self.roots()
            .try_for_each(|root| io::remove_dir(&root.join(rel)))
    }

    fn add_process(&self, rel: &str, pid: u32) -> Result<(), CgroupError> {
        let rel = clean_rel(rel)?;
        let pid = pid.to_string();
        self.roots().try_for_each(|root| {
            io::write_value(&root.join(rel).join("cgroup.procs"), &pid, "cgroup")
        })
    }

    fn procs(&self, rel: &str) -> Result<Vec<u32>, CgroupError> {
        let path = self.cpu_root.join(clean_rel(rel)?).join("cgroup.procs");
        io::read_once(&path, "cgroup", parse::parse_procs)
    }

    fn open_files(&self) -> usize {
        self.budget.kept()
    }

    fn plan_handles(&self, handles: usize) {
        self.budget.plan(handles);
    }
}

/// An open v1 cgroup (its directories in both hierarchies).
#[derive(Debug)]
pub struct V1Cgroup {
    rel: Box<str>,
    id: u64,
    cpu_dir: Box<Path>,
    cpuacct_dir: Box<Path>,
    /// In `cpuacct_dir`, always kept open: the routine sample reads only this file.
    cpuacct_usage: ControlFile,
    /// In `cpu_dir`; kept open as far as `fds` allows, else opened for each read.
    cfs_quota_us: ControlFile,
    cpu_stat: ControlFile,
    cfs_period_us: ControlFile,
    /// Absent on kernels before 5.14.
    cfs_burst_us: Option<ControlFile>,
    /// The descriptors counted in the hierarchy's budget for this handle, given back on drop.
    fds: KeptFds,
    /// The quota last written or read: a write of the same value is skipped.
    last: Option<Quota>,
}

impl V1Cgroup {
    /// Open the cgroup's control files (which checks that they exist); those `budget` has no
    /// room for are closed again at once.
    pub fn open(
        cpu_root: &Path,
        cpuacct_root: &Path,
        rel: &str,
        budget: &Arc<FdBudget>,
    ) -> Result<Self, CgroupError> {
        let rel = clean_rel(rel)?;
        let cpu_dir = cpu_root.join(rel);
        let cpuacct_dir = cpuacct_root.join(rel);
        let id = std::fs::metadata(&cpuacct_dir)
            .map_err(|e| io::classify_read(e, &cpuacct_dir))?
            .ino();
        let mut cg = V1Cgroup {
            rel: rel.into(),
            id,
            cpuacct_usage: ControlFile::open(&cpuacct_dir, "cpuacct.usage", "cpuacct")?,
            cfs_quota_us: ControlFile::open(&cpu_dir, "cpu.cfs_quota_us", "cpu")?,
            cpu_stat: ControlFile::open(&cpu_dir, "cpu.stat", "cpu")?,
            cfs_period_us: ControlFile::open(&cpu_dir, "cpu.cfs_period_us", "cpu")?,
            cfs_burst_us: ControlFile::open_optional(&cpu_dir, "cpu.cfs_burst_us")?,
            cpu_dir: cpu_dir.into(),
            cpuacct_dir: cpuacct_dir.into(),
            fds: budget.counter(),
            last: None,
        };
        cg.fit_fds(Fit::Claim);
        Ok(cg)
    }

    /// A tier over the budget's allowance is given back at the next quota read.
    fn release_if_over(&mut self) {
        if self.fds.over() {
            self.fit_fds(Fit::Release);
        }
    }

    fn write_quota_us(&self, quota_us: Option<u64>) -> Result<(), CgroupError> {
        let value = quota_us.map_or_else(|| "-1".to_owned(), |q| q.to_string());
        io::write_value(&self.cfs_quota_us.path(&self.cpu_dir), &value, "cpu")
    }

    fn write_period_us(&self, period_us: u64) -> Result<(), CgroupError> {
        io::write_value(
            &self.cfs_period_us.path(&self.cpu_dir),
            &period_us.to_string(),
            "cpu",
        )
    }

    /// Write quota and period in the order that keeps every intermediate state valid: the
    /// kernel checks each write on its own, and v1 refuses a child whose quota/period exceeds
    /// its parent's. A growing period goes first (old quota / new period is below both old and
    /// new ratios), a shrinking one last (new quota / old period is below the new ratio). If the
    /// old period is unknown the guess may be wrong, so an EINVAL on the first write retries in
    /// the other order.
    fn write_quota_and_period(&self, quota: Quota, old: Option<Quota>) -> Result<(), CgroupError> {
        let period_first = old.is_some_and(|old| quota.period_us > old.period_us);
        let first = |this: &Self| {
            if period_first {
                this.write_period_us(quota.period_us)
            } else {
                this.write_quota_us(quota.quota_us)
            }
        };
        let second = |this: &Self| {
            if period_first {
                this.write_quota_us(quota.quota_us)
            } else {
                this.write_period_us(quota.period_us)
            }
        };
        match first(self) {
            Ok(()) => second(self),
            Err(CgroupError::Rejected { .. }) => {
                second(self)?;
                first(self)
            }
            Err(e) => Err(e),
        }
    }
}

impl Cgroup for V1Cgroup {
    fn path(&self) -> &str {
        &self.rel
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn sample(&mut self) -> Result<Sample, CgroupError> {
        let usage_ns = self
            .cpuacct_usage
            .read(&self.cpuacct_dir, parse::parse_u64)?;
        let stat = self.cpu_stat.read(&self.cpu_dir, parse::parse_cpu_stat)?;
        Ok(Sample {
            usage_ns,
            nr_periods: stat.nr_periods,
            nr_throttled: stat.nr_throttled,
            throttled_ns: stat.throttled_time_ns.unwrap_or(0),
        })
    }

    fn sample_usage(&mut self) -> Result<u64, CgroupError> {
        self.cpuacct_usage.read(&self.cpuacct_dir, parse::parse_u64)
    }

    fn read_quota(&mut self) -> Result<Quota, CgroupError> {
        self.release_if_over();
        let quota_us = self
            .cfs_quota_us
            .read(&self.cpu_dir, parse::parse_cfs_quota_us)?;
        let period_us = self.cfs_period_us.read(&self.cpu_dir, parse::parse_u64)?;
        let quota = Quota {
            quota_us,
            period_us,
        };
        self.last = Some(quota);
        Ok(quota)
    }

    /// One file: with no limit in force the period does not matter.
    fn quota_is_unlimited(&mut self) -> Result<bool, CgroupError> {
        self.release_if_over();
        let quota_us = self
            .cfs_quota_us
            .read(&self.cpu_dir, parse::parse_cfs_quota_us)?;
        Ok(quota_us.is_none())
    }

    fn write_quota(&mut self, quota: Quota) -> Result<WriteOutcome, CgroupError> {
        if self.last == Some(quota) {
            return Ok(WriteOutcome::Unchanged);
        }
        // Unknown until the writes succeed: a failed write must not be taken for a done one.
        let old = self.last.take();
        lower_burst(self.cfs_burst_us.as_ref(), &self.cpu_dir, quota.quota_us)?;
        match old {
            // Only the quota changed: one write, no period write (each write refills runtime).
            // From no limit, the period is written too: a drift check while no limit is in
            // force reads only the quota, so another writer's period may be unseen.
            Some(old) if old.period_us == quota.period_us && old.quota_us.is_some() => {
                self.write_quota_us(quota.quota_us)?
            }
            _ => self.write_quota_and_period(quota, old)?,
        }
        self.last = Some(quota);
        Ok(WriteOutcome::Written)
    }

    fn forget_written(&mut self) {
        self.last = None;
    }

    fn fit_fds(&mut self, pass: Fit) {
        let rest = 2 + usize::from(self.cfs_burst_us.is_some());
        let tiers = self.fds.fit(rest, pass);
        let V1Cgroup {
            cpu_dir,
            cfs_quota_us,
            cpu_stat,
            cfs_period_us,
            cfs_burst_us,
            ..
        } = self;
        cfs_quota_us.keep_open(cpu_dir, tiers.quota);
        [cpu_stat, cfs_period_us]
            .into_iter()
            .chain(cfs_burst_us.as_mut())
            .for_each(|f| f.keep_open(cpu_dir, tiers.rest));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_tree::FakeTree;
    use super::*;

    const CG: &str = "docker/abc";

    /// A budget whose handles keep all their files open, and one whose handles are all lean.
    fn budgets() -> [Arc<FdBudget>; 2] {
        [FdBudget::new(1000), FdBudget::new(0)]
    }

    /// Separate and co-mounted trees holding `CG`, each with full and with lean handles.
    fn trees() -> Vec<(FakeTree, Box<dyn Hierarchy>)> {
        let mut trees = Vec::new();
        for make in [FakeTree::v1_separate, FakeTree::v1_comounted] {
            for budget in budgets() {
                let tree = make();
                tree.add(CG);
                let hierarchy = tree.layout.hierarchy_with_budget(budget);
                trees.push((tree, hierarchy));
            }
        }
        trees
    }

    /// Replace a control file by a directory so that writing it fails: shows write order.
    fn break_file(tree: &FakeTree, file: &str) {
        std::fs::remove_file(tree.file(CG, file)).unwrap();
        std::fs::create_dir(tree.file(CG, file)).unwrap();
    }

    #[test]
    fn sample_usage_reads_only_cpuacct_usage() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            tree.set(CG, "cpuacct.usage", "777000000123\n");
            // A cpu.stat it cannot parse does not matter to the routine look.
            tree.set(CG, "cpu.stat", "nr_periods x\n");
            assert_eq!(cg.sample_usage().unwrap(), 777_000_000_123);
            assert!(cg.sample().is_err());
        }
    }

    #[test]
    fn sample_reads_cpuacct_usage_and_cpu_stat() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            tree.set(CG, "cpuacct.usage", "2000000123\n");
            tree.set(
                CG,
                "cpu.stat",
                "nr_periods 31\nnr_throttled 30\nthrottled_time 2400000000\nnr_bursts 0\nburst_time 0\n",
            );
            assert_eq!(
                cg.sample().unwrap(),
                Sample {
                    usage_ns: 2_000_000_123,
                    nr_periods: 31,
                    nr_throttled: 30,
                    throttled_ns: 2_400_000_000,
                }
            );
        }
    }

    #[test]
    fn quota_formats_and_only_changed_period_is_written() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
            // From no limit the period is written too (a cheap drift check reads only the
            // quota while no limit is in force, so a changed period may have gone unseen).
            tree.set(CG, "cpu.cfs_period_us", "100000 untouched\n");
            cg.write_quota(Quota::limited(30_000, 100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "30000");
            assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "100000");
            // Between limits, an unchanged period is not rewritten.
            tree.set(CG, "cpu.cfs_period_us", "100000 untouched\n");
            cg.write_quota(Quota::limited(20_000, 100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "20000");
            assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "100000 untouched\n");
            cg.write_quota(Quota::unlimited(100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "-1");
            cg.write_quota(Quota::limited(10_000, 50_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "10000");
            assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "50000");
            assert_eq!(cg.read_quota().unwrap(), Quota::limited(10_000, 50_000));
        }
    }

    #[test]
    fn the_cheap_drift_check_reads_only_the_quota() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            assert!(cg.quota_is_unlimited().unwrap());
            // A broken period file is not read: only the quota matters with no limit.
            tree.set(CG, "cpu.cfs_period_us", "garbage\n");
            assert!(cg.quota_is_unlimited().unwrap());
            tree.set(CG, "cpu.cfs_quota_us", "50000\n");
            assert!(!cg.quota_is_unlimited().unwrap());
        }
    }

    #[test]
    fn writes_only_on_change_until_forgotten() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            let q = Quota::limited(20_000, 100_000);
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
            tree.set(CG, "cpu.cfs_quota_us", "-1\n");
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Unchanged);
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "-1\n");
            cg.forget_written();
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "20000");
        }
    }

    #[test]
    fn growing_period_is_written_before_the_quota() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            cg.read_quota().unwrap(); // -1 / 100000
            break_file(&tree, "cpu.cfs_quota_us");
            assert!(cg.write_quota(Quota::limited(50_000, 200_000)).is_err());
            assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "200000");
        }
    }

    #[test]
    fn shrinking_period_is_written_after_the_quota() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            cg.read_quota().unwrap(); // -1 / 100000
            break_file(&tree, "cpu.cfs_period_us");
            assert!(cg.write_quota(Quota::limited(10_000, 50_000)).is_err());
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "10000");
            // The failure left the quota unknown, so the retry writes both again.
            std::fs::remove_dir(tree.file(CG, "cpu.cfs_period_us")).unwrap();
            std::fs::write(tree.file(CG, "cpu.cfs_period_us"), "100000\n").unwrap();
            assert_eq!(
                cg.write_quota(Quota::limited(10_000, 50_000)).unwrap(),
                WriteOutcome::Written
            );
            assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "50000");
        }
    }

    #[test]
    fn burst_is_lowered_first_and_only_when_above_the_quota() {
        for (tree, h) in trees() {
            let mut cg = h.open(CG).unwrap();
            cg.read_quota().unwrap();
            tree.set(CG, "cpu.cfs_burst_us", "5000\n");
            cg.write_quota(Quota::limited(20_000, 100_000)).unwrap();
            assert_eq!(tree.get(CG, "cpu.cfs_burst_us"), "5000\n");
            tree.set(CG, "cpu.cfs_burst_us", "50000\n");
            break_file(&tree, "cpu.cfs_quota_us");
            assert!(cg.write_quota(Quota::limited(10_000, 100_000)).is_err());
            assert_eq!(tree.get(CG, "cpu.cfs_burst_us"), "10000");
        }
    }

    #[test]
    fn id_is_the_cpuacct_directory_inode() {
        use std::os::unix::fs::MetadataExt;
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        let cg = tree.layout.hierarchy().open(CG).unwrap();
        let acct_dir = tree.file(CG, "cpuacct.usage");
        let ino = std::fs::metadata(acct_dir.parent().unwrap()).unwrap().ino();
        assert_eq!(cg.id(), ino);
    }

    #[test]
    fn removed_in_either_hierarchy_is_gone() {
        for (file, budget) in ["cpuacct.usage", "cpu.stat"]
            .into_iter()
            .flat_map(|file| budgets().map(|budget| (file, budget)))
        {
            let lean = budget.limit() == 0;
            let tree = FakeTree::v1_separate();
            tree.add(CG);
            let h = tree.layout.hierarchy_with_budget(budget);
            let mut cg = h.open(CG).unwrap();
            std::fs::remove_dir_all(tree.file(CG, file).parent().unwrap()).unwrap();
            assert!(h.open(CG).err().unwrap().is_gone(), "{file}");
            if file == "cpu.stat" {
                // Quota writes go to the cpu hierarchy only.
                let write = cg.write_quota(Quota::limited(20_000, 100_000));
                assert!(write.unwrap_err().is_gone());
                // A lean handle opens cpu.stat and the quota by path, so it sees it too (a
                // kept descriptor only does on a kernel: ENODEV).
                if lean {
                    assert!(cg.sample().unwrap_err().is_gone());
                    assert!(cg.read_quota().unwrap_err().is_gone());
                }
            }
        }
    }

    #[test]
    fn create_remove_and_procs_touch_both_hierarchies_once() {
        for (tree, h) in trees() {
            h.create("new/child").unwrap();
            assert!(tree
                .file("new/child", "cpu.stat")
                .parent()
                .unwrap()
                .is_dir());
            assert!(tree
                .file("new/child", "cpuacct.usage")
                .parent()
                .unwrap()
                .is_dir());
            h.create("new/child").unwrap();
            h.remove("new/child").unwrap();
            assert!(!tree
                .file("new/child", "cpu.stat")
                .parent()
                .unwrap()
                .exists());
            assert!(!tree
                .file("new/child", "cpuacct.usage")
                .parent()
                .unwrap()
                .exists());
            h.remove("new/child").unwrap();

            h.add_process(CG, 77).unwrap();
            assert_eq!(tree.get(CG, "cgroup.procs"), "77");
            let acct_procs = tree
                .file(CG, "cpuacct.usage")
                .with_file_name("cgroup.procs");
            assert_eq!(std::fs::read_to_string(acct_procs).unwrap(), "77");
            assert_eq!(h.procs(CG).unwrap(), vec![77]);
        }
    }

    #[test]
    fn glob_needs_both_hierarchies() {
        let tree = FakeTree::v1_separate();
        tree.add("docker/a");
        tree.add("docker/b");
        let only_in = |root: &str, rel: &str| {
            let file = if root == "cpu" {
                "cpu.stat"
            } else {
                "cpuacct.usage"
            };
            std::fs::create_dir_all(tree.file(rel, file).parent().unwrap()).unwrap();
        };
        // Only in one hierarchy: cannot be opened, so not listed.
        only_in("cpu", "docker/c");
        only_in("cpuacct", "docker/d");
        only_in("cpu", "other/a");
        // A directory in cpu whose cpuacct namesake is a file.
        only_in("cpu", "docker/e");
        std::fs::write(tree.file("docker/e", "cpuacct.usage").parent().unwrap(), "").unwrap();
        let h = tree.layout.hierarchy();
        assert_eq!(h.glob("docker/*").unwrap(), vec!["docker/a", "docker/b"]);
        assert_eq!(h.glob("*/a").unwrap(), vec!["docker/a"]);
        assert_eq!(h.glob("docker/?").unwrap(), vec!["docker/a", "docker/b"]);
        assert_eq!(h.glob("docker/b").unwrap(), vec!["docker/b"]);
        assert_eq!(h.glob("docker/c").unwrap(), Vec::<String>::new());
        assert_eq!(h.glob("").unwrap(), vec![""]);
    }

    #[test]
    fn glob_lists_comounted_cgroups_once() {
        let tree = FakeTree::v1_comounted();
        tree.add("docker/b");
        tree.add("docker/a");
        let h = tree.layout.hierarchy();
        assert_eq!(h.glob("docker/*").unwrap(), vec!["docker/a", "docker/b"]);
    }

    #[test]
    fn lean_handle_keeps_only_cpuacct_usage_open_and_still_works() {
        for make in [FakeTree::v1_separate, FakeTree::v1_comounted] {
            let tree = make();
            tree.add(CG);
            let budget = FdBudget::new(0);
            let h = tree.layout.hierarchy_with_budget(Arc::clone(&budget));
            let mut cg = h.open(CG).unwrap();
            assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (1, 1, 1));

            tree.set(CG, "cpuacct.usage", "5000000\n");
            tree.set(
                CG,
                "cpu.stat",
                "nr_periods 7\nnr_throttled 3\nthrottled_time 900\n",
            );
            assert_eq!(cg.sample_usage().unwrap(), 5_000_000);
            let sample = Sample {
                usage_ns: 5_000_000,
                nr_periods: 7,
                nr_throttled: 3,
                throttled_ns: 900,
            };
            assert_eq!(cg.sample().unwrap(), sample);

            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
            let q = Quota::limited(20_000, 100_000);
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Written);
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "20000");
            // Write-on-change still holds: another writer's value is not overwritten...
            tree.set(CG, "cpu.cfs_quota_us", "-1\n");
            assert_eq!(cg.write_quota(q).unwrap(), WriteOutcome::Unchanged);
            assert_eq!(tree.get(CG, "cpu.cfs_quota_us"), "-1\n");
            // ...but the drift check, a fresh open, sees it.
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));

            // Errors as from a kept descriptor: the path and the content.
            tree.set(CG, "cpu.cfs_period_us", "soon\n");
            match cg.read_quota() {
                Err(CgroupError::Parse { path, content, .. }) => {
                    assert_eq!(path, tree.file(CG, "cpu.cfs_period_us"));
                    assert_eq!(content, "soon\n");
                }
                other => panic!("expected Parse, got {other:?}"),
            }
            std::fs::remove_file(tree.file(CG, "cpu.stat")).unwrap();
            let err = cg.sample().unwrap_err();
            assert!(matches!(err, CgroupError::MissingFile { .. }), "{err:?}");

            // Each read closed what it opened.
            assert_eq!(tree.open_fds(), 1);
            drop(cg);
            assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (0, 0, 0));
        }
    }

    #[test]
    fn full_handles_keep_five_files_and_give_them_back_on_drop() {
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        tree.add("other");
        let budget = FdBudget::new(1000);
        let h = tree.layout.hierarchy_with_budget(Arc::clone(&budget));
        let first = h.open(CG).unwrap();
        assert_eq!((budget.kept(), h.open_files(), tree.open_fds()), (5, 5, 5));
        let second = h.open("other").unwrap();
        assert_eq!((budget.kept(), tree.open_fds()), (10, 10));
        drop(first);
        assert_eq!((budget.kept(), tree.open_fds()), (5, 5));
        drop(second);
        assert_eq!((budget.kept(), tree.open_fds()), (0, 0));
        // A kernel without cpu.cfs_burst_us: four.
        std::fs::remove_file(tree.file(CG, "cpu.cfs_burst_us")).unwrap();
        let old_kernel = h.open(CG).unwrap();
        assert_eq!((budget.kept(), tree.open_fds()), (4, 4));
        drop(old_kernel);
        assert_eq!(budget.kept(), 0);
    }

    #[test]
    fn handles_keep_files_by_tier_as_the_plan_allows_and_give_them_back() {
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        // 5 handles in 20: 5 counters, 5 quota files, 10 left: three handles' 3 other files.
        let budget = FdBudget::new(20);
        let h = tree.layout.hierarchy_with_budget(Arc::clone(&budget));
        h.plan_handles(5);
        let mut handles = Vec::new();
        for kept in [5, 10, 15, 17, 19] {
            handles.push(h.open(CG).unwrap());
            assert_eq!((budget.kept(), tree.open_fds()), (kept, kept));
        }
        for cg in &mut handles {
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
            assert_eq!(cg.sample().unwrap().usage_ns, 0);
        }
        // Planned for 10: a quota file each, nothing else.
        h.plan_handles(10);
        handles.iter_mut().for_each(|cg| cg.fit_fds(Fit::Release));
        assert_eq!((budget.kept(), tree.open_fds()), (10, 10));
        // Planned for 18 (fewer than planned are open, so no doubling): room for 2 quota
        // files. No pass: each handle over the allowance gives its file back at its next read.
        h.plan_handles(18);
        for cg in &mut handles {
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
        }
        assert_eq!((budget.kept(), tree.open_fds()), (7, 7));
        // Back to 5: a claim pass reopens what fits.
        h.plan_handles(5);
        handles.iter_mut().for_each(|cg| cg.fit_fds(Fit::Claim));
        assert_eq!((budget.kept(), tree.open_fds()), (19, 19));
        drop(handles);
        assert_eq!((budget.kept(), tree.open_fds()), (0, 0));
    }
}
