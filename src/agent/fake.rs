//! An in-memory cgroup hierarchy that behaves like the kernel where it matters: usage grows
//! at the workload's demand, capped by the quota currently written; writes are counted.

use crate::cgroup::{Cgroup, CgroupError, Hierarchy, Quota, Sample, WriteOutcome};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Clone, Debug)]
pub struct FakeGroup {
    pub id: u64,
    /// Demanded CPU, in milli-cores.
    pub demand_milli: u64,
    pub quota: Quota,
    pub usage_ns: u64,
    pub throttled_ns: u64,
    pub writes: u64,
    /// Full samples (usage and throttling counters) taken.
    pub full_reads: u64,
    /// Quota writes fail with EROFS (a read-only bind mount over the file).
    pub read_only: bool,
    /// Bumped when the cpu directory alone is made again (v1): files a handle opened in the
    /// old one answer ENODEV, the usage counter (cpuacct) goes on.
    pub cpu_dir_generation: u64,
    at_ns: u64,
}

#[derive(Default)]
pub struct FakeInner {
    pub groups: HashMap<String, FakeGroup>,
    next_id: u64,
}

#[derive(Clone)]
pub struct Fake {
    pub inner: Arc<Mutex<FakeInner>>,
    time: TimeSource,
    host_milli: u64,
}

fn gone(path: &str) -> CgroupError {
    CgroupError::Gone {
        path: PathBuf::from(path),
    }
}

impl FakeGroup {
    /// Integrate usage up to `now` at min(demand, quota, host).
    fn advance(&mut self, now: u64, host_milli: u64) {
        let dt = now.saturating_sub(self.at_ns);
        self.at_ns = now;
        let cap = match self.quota.quota_us {
            Some(q) => q * 1000 / self.quota.period_us,
            None => host_milli,
        };
        let rate = self.demand_milli.min(cap).min(host_milli);
        self.usage_ns += (dt as u128 * rate as u128 / 1000) as u64;
        if self.demand_milli > cap {
            self.throttled_ns += dt;
        }
    }
}

impl Fake {
    pub fn new(time: TimeSource, host_cpus: u64) -> Fake {
        Fake {
            inner: Arc::new(Mutex::new(FakeInner::default())),
            time,
            host_milli: host_cpus * 1000,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates (or recreates, with a new id and a zero counter) a cgroup with this demand.
    pub fn add(&self, path: &str, demand_milli: u64) {
        let now = (self.time)();
        let mut g = self.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.groups.insert(
            path.to_string(),
            FakeGroup {
                id,
                demand_milli,
                quota: Quota::unlimited(100_000),
                usage_ns: 0,
                throttled_ns: 0,
                writes: 0,
                full_reads: 0,
                read_only: false,
                cpu_dir_generation: 0,
                at_ns: now,
            },
        );
    }

    pub fn remove_group(&self, path: &str) {
        self.lock().groups.remove(path);
    }

    /// Another writer sets the quota (systemd on daemon-reload).
    pub fn external_write(&self, path: &str, q: Quota) {
        let now = (self.time)();
        let host = self.host_milli;
        if let Some(g) = self.lock().groups.get_mut(path) {
            g.advance(now, host);
            g.quota = q;
        }
    }

    /// v1: the tasks moved out of the cpu hierarchy, the cpu directory removed and made again
    /// (no limit in it) and the tasks moved back. The cpuacct directory, the cgroup's id and its
    /// usage counter are unchanged; descriptors kept on the old cpu files answer ENODEV.
    pub fn recreate_cpu_dir(&self, path: &str) {
        let now = (self.time)();
        let host = self.host_milli;
        if let Some(g) = self.lock().groups.get_mut(path) {
            g.advance(now, host);
            g.cpu_dir_generation += 1;
            g.quota = Quota::unlimited(100_000);
        }
    }

    /// The owner writes 0 to the usage counter (`cpuacct.usage` on v1).
    pub fn zero_usage(&self, path: &str) {
        let now = (self.time)();
        let host = self.host_milli;
        if let Some(g) = self.lock().groups.get_mut(path) {
            g.advance(now, host);
            g.usage_ns = 0;
        }
    }

    /// Makes the cgroup's quota file refuse writes (or accept them again).
    pub fn set_read_only(&self, path: &str, read_only: bool) {
        if let Some(g) = self.lock().groups.get_mut(path) {
            g.read_only = read_only;
        }
    }

    pub fn group(&self, path: &str) -> Option<FakeGroup> {
        let now = (self.time)();
        let host = self.host_milli;
        let mut inner = self.lock();
        let g = inner.groups.get_mut(path)?;
        g.advance(now, host);
        Some(g.clone())
    }
}

struct FakeHandle {
    fake: Fake,
    path: String,
    id: u64,
    /// The cpu directory its kept cpu files are in.
    cpu_dir_generation: u64,
    last: Option<Quota>,
}

impl FakeHandle {
    fn with<T>(&self, f: impl FnOnce(&mut FakeGroup) -> T) -> Result<T, CgroupError> {
        let now = (self.fake.time)();
        let host = self.fake.host_milli;
        let mut inner = self.fake.lock();
        match inner.groups.get_mut(&self.path) {
            Some(g) if g.id == self.id => {
                g.advance(now, host);
                Ok(f(g))
            }
            _ => Err(gone(&self.path)),
        }
    }

    /// As [`Self::with`], for a file in the cpu directory kept open since the handle was made
    /// (`cpu.stat`, the quota files): ENODEV once that directory was made again.
    fn with_cpu<T>(&self, f: impl FnOnce(&mut FakeGroup) -> T) -> Result<T, CgroupError> {
        let generation = self.cpu_dir_generation;
        self.with(|g| (g.cpu_dir_generation == generation).then(|| f(g)))?
            .ok_or_else(|| gone(&self.path))
    }
}

impl Cgroup for FakeHandle {
    fn path(&self) -> &str {
        &self.path
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn sample(&mut self) -> Result<Sample, CgroupError> {
        self.with_cpu(|g| {
            g.full_reads += 1;
            Sample {
                usage_ns: g.usage_ns,
                nr_periods: 0,
                nr_throttled: 0,
                throttled_ns: g.throttled_ns,
            }
        })
    }

    fn sample_usage(&mut self) -> Result<u64, CgroupError> {
        self.with(|g| g.usage_ns)
    }

    fn read_quota(&mut self) -> Result<Quota, CgroupError> {
        let q = self.with_cpu(|g| g.quota)?;
        self.last = Some(q);
        Ok(q)
    }

    fn write_quota(&mut self, q: Quota) -> Result<WriteOutcome, CgroupError> {
        if self.last == Some(q) {
            return Ok(WriteOutcome::Unchanged);
        }
        let path = self.path.clone();
        self.with(|g| {
            if g.read_only {
                return Err(CgroupError::Write {
                    path: PathBuf::from(&path),
                    value: format!("{q:?}"),
                    source: std::io::Error::from_raw_os_error(30), // EROFS
                });
            }
            g.quota = q;
            g.writes += 1;
            Ok(())
        })??;
        self.last = Some(q);
        Ok(WriteOutcome::Written)
    }

    fn forget_written(&mut self) {
        self.last = None;
    }
}

impl Hierarchy for Fake {
    fn open(&self, rel: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
        let (id, cpu_dir_generation) = self
            .lock()
            .groups
            .get(rel)
            .map(|g| (g.id, g.cpu_dir_generation))
            .ok_or_else(|| gone(rel))?;
        Ok(Box::new(FakeHandle {
            fake: self.clone(),
            path: rel.to_string(),
            id,
            cpu_dir_generation,
            last: None,
        }))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, CgroupError> {
        // Element by element, each with at most one `*` (enough for the tests' patterns).
        let element = |pat: &str, name: &str| {
            let (pre, post) = pat.split_once('*').unwrap_or((pat, ""));
            if !pat.contains('*') {
                return pat == name;
            }
            name.starts_with(pre) && name.ends_with(post) && name.len() >= pre.len() + post.len()
        };
        let pats: Vec<&str> = pattern.split('/').collect();
        let mut out: Vec<String> = self
            .lock()
            .groups
            .keys()
            .filter(|k| {
                let names: Vec<&str> = k.split('/').collect();
                names.len() == pats.len() && pats.iter().zip(&names).all(|(p, n)| element(p, n))
            })
            .cloned()
            .collect();
        out.sort();
        Ok(out)
    }

    fn create(&self, rel: &str) -> Result<(), CgroupError> {
        if !self.lock().groups.contains_key(rel) {
            self.add(rel, 0);
        }
        Ok(())
    }

    fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        self.remove_group(rel);
        Ok(())
    }

    fn add_process(&self, _rel: &str, _pid: u32) -> Result<(), CgroupError> {
        Ok(())
    }

    fn procs(&self, _rel: &str) -> Result<Vec<u32>, CgroupError> {
        Ok(Vec::new())
    }
}
