//! cgroup v1: usage from `cpuacct.usage` in the cpuacct hierarchy, throttling from `cpu.stat` and
//! the limit in `cpu.cfs_quota_us` / `cpu.cfs_period_us` in the cpu hierarchy. The two may be
//! separate mounts (hybrid hosts) or one co-mounted `cpu,cpuacct`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::io::{self, ControlFile};
use super::parse;
use super::{clean_rel, glob_dirs, lower_burst, Cgroup, CgroupError, Hierarchy};
use super::{Quota, Sample, WriteOutcome};

/// The v1 `cpu` and `cpuacct` hierarchies (equal paths when co-mounted).
#[derive(Clone, Debug)]
pub struct V1Hierarchy {
    cpu_root: PathBuf,
    cpuacct_root: PathBuf,
}

impl V1Hierarchy {
    pub fn new(cpu_root: PathBuf, cpuacct_root: PathBuf) -> Self {
        V1Hierarchy {
            cpu_root,
            cpuacct_root,
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
        )?))
    }

    /// Matches in the cpu hierarchy that also exist in the cpuacct one (both are needed to
    /// open them).
    fn glob(&self, pattern: &str) -> Result<Vec<String>, CgroupError> {
        let mut found = glob_dirs(&self.cpu_root, pattern)?;
        found.retain(|rel| self.cpuacct_root.join(rel).is_dir());
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
}

/// An open v1 cgroup (its directories in both hierarchies).
#[derive(Debug)]
pub struct V1Cgroup {
    rel: String,
    id: u64,
    cpuacct_usage: ControlFile,
    cpu_stat: ControlFile,
    cfs_quota_us: ControlFile,
    cfs_period_us: ControlFile,
    /// Absent on kernels before 5.14.
    cfs_burst_us: Option<ControlFile>,
    buf: Vec<u8>,
    /// The quota last written or read: a write of the same value is skipped.
    last: Option<Quota>,
}

impl V1Cgroup {
    pub fn open(cpu_root: &Path, cpuacct_root: &Path, rel: &str) -> Result<Self, CgroupError> {
        let rel = clean_rel(rel)?;
        let cpu_dir = cpu_root.join(rel);
        let cpuacct_dir = cpuacct_root.join(rel);
        let id = std::fs::metadata(&cpuacct_dir)
            .map_err(|e| io::classify_read(e, &cpuacct_dir))?
            .ino();
        Ok(V1Cgroup {
            rel: rel.to_owned(),
            id,
            cpuacct_usage: ControlFile::open(cpuacct_dir.join("cpuacct.usage"), "cpuacct")?,
            cpu_stat: ControlFile::open(cpu_dir.join("cpu.stat"), "cpu")?,
            cfs_quota_us: ControlFile::open(cpu_dir.join("cpu.cfs_quota_us"), "cpu")?,
            cfs_period_us: ControlFile::open(cpu_dir.join("cpu.cfs_period_us"), "cpu")?,
            cfs_burst_us: ControlFile::open_optional(cpu_dir.join("cpu.cfs_burst_us"))?,
            buf: Vec::new(),
            last: None,
        })
    }

    fn write_quota_us(&self, quota_us: Option<u64>) -> Result<(), CgroupError> {
        let value = quota_us.map_or_else(|| "-1".to_owned(), |q| q.to_string());
        io::write_value(&self.cfs_quota_us.path, &value, "cpu")
    }

    fn write_period_us(&self, period_us: u64) -> Result<(), CgroupError> {
        io::write_value(&self.cfs_period_us.path, &period_us.to_string(), "cpu")
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
        let usage_ns = self.cpuacct_usage.read(&mut self.buf, parse::parse_u64)?;
        let stat = self.cpu_stat.read(&mut self.buf, parse::parse_cpu_stat)?;
        Ok(Sample {
            usage_ns,
            nr_periods: stat.nr_periods,
            nr_throttled: stat.nr_throttled,
            throttled_ns: stat.throttled_time_ns.unwrap_or(0),
        })
    }

    fn sample_usage(&mut self) -> Result<u64, CgroupError> {
        self.cpuacct_usage.read(&mut self.buf, parse::parse_u64)
    }

    fn read_quota(&mut self) -> Result<Quota, CgroupError> {
        let quota_us = self
            .cfs_quota_us
            .read(&mut self.buf, parse::parse_cfs_quota_us)?;
        let period_us = self.cfs_period_us.read(&mut self.buf, parse::parse_u64)?;
        let quota = Quota {
            quota_us,
            period_us,
        };
        self.last = Some(quota);
        Ok(quota)
    }

    fn write_quota(&mut self, quota: Quota) -> Result<WriteOutcome, CgroupError> {
        if self.last == Some(quota) {
            return Ok(WriteOutcome::Unchanged);
        }
        // Unknown until the writes succeed: a failed write must not be taken for a done one.
        let old = self.last.take();
        lower_burst(self.cfs_burst_us.as_ref(), &mut self.buf, quota.quota_us)?;
        match old {
            // Only the quota changed: one write, no period write (each write refills runtime).
            Some(old) if old.period_us == quota.period_us => self.write_quota_us(quota.quota_us)?,
            _ => self.write_quota_and_period(quota, old)?,
        }
        self.last = Some(quota);
        Ok(WriteOutcome::Written)
    }

    fn forget_written(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_tree::FakeTree;
    use super::*;

    const CG: &str = "docker/abc";

    fn trees() -> [FakeTree; 2] {
        let trees = [FakeTree::v1_separate(), FakeTree::v1_comounted()];
        for tree in &trees {
            tree.add(CG);
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
        for tree in trees() {
            let h = tree.layout.hierarchy();
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
        for tree in trees() {
            let h = tree.layout.hierarchy();
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
        for tree in trees() {
            let h = tree.layout.hierarchy();
            let mut cg = h.open(CG).unwrap();
            assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
            // Hand-mark the period: an unchanged period must not be rewritten.
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
    fn writes_only_on_change_until_forgotten() {
        for tree in trees() {
            let h = tree.layout.hierarchy();
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
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        let mut cg = tree.layout.hierarchy().open(CG).unwrap();
        cg.read_quota().unwrap(); // -1 / 100000
        break_file(&tree, "cpu.cfs_quota_us");
        assert!(cg.write_quota(Quota::limited(50_000, 200_000)).is_err());
        assert_eq!(tree.get(CG, "cpu.cfs_period_us"), "200000");
    }

    #[test]
    fn shrinking_period_is_written_after_the_quota() {
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        let mut cg = tree.layout.hierarchy().open(CG).unwrap();
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

    #[test]
    fn burst_is_lowered_first_and_only_when_above_the_quota() {
        let tree = FakeTree::v1_separate();
        tree.add(CG);
        let mut cg = tree.layout.hierarchy().open(CG).unwrap();
        cg.read_quota().unwrap();
        tree.set(CG, "cpu.cfs_burst_us", "5000\n");
        cg.write_quota(Quota::limited(20_000, 100_000)).unwrap();
        assert_eq!(tree.get(CG, "cpu.cfs_burst_us"), "5000\n");
        tree.set(CG, "cpu.cfs_burst_us", "50000\n");
        break_file(&tree, "cpu.cfs_quota_us");
        assert!(cg.write_quota(Quota::limited(10_000, 100_000)).is_err());
        assert_eq!(tree.get(CG, "cpu.cfs_burst_us"), "10000");
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
        for file in ["cpuacct.usage", "cpu.stat"] {
            let tree = FakeTree::v1_separate();
            tree.add(CG);
            let h = tree.layout.hierarchy();
            let mut cg = h.open(CG).unwrap();
            std::fs::remove_dir_all(tree.file(CG, file).parent().unwrap()).unwrap();
            assert!(h.open(CG).err().unwrap().is_gone(), "{file}");
            // Quota writes go to the cpu hierarchy only.
            let write = cg.write_quota(Quota::limited(20_000, 100_000));
            if file == "cpu.stat" {
                assert!(write.unwrap_err().is_gone());
            }
        }
    }

    #[test]
    fn create_remove_and_procs_touch_both_hierarchies_once() {
        for tree in trees() {
            let h = tree.layout.hierarchy();
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
        // Only in the cpu hierarchy: cannot be opened, so not listed.
        std::fs::create_dir_all(tree.file("docker/c", "cpu.stat").parent().unwrap()).unwrap();
        let h = tree.layout.hierarchy();
        assert_eq!(h.glob("docker/*").unwrap(), vec!["docker/a", "docker/b"]);
    }
}
