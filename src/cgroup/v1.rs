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
