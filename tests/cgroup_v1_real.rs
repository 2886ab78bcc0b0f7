//! Real-kernel tests of the cgroup v1 implementation on this host's separate `cpu` and `cpuacct`
//! hierarchies: the kernel must enforce what burstd writes and report what burstd reads.
//!
//! They need root and a v1 cpu hierarchy. Elsewhere they skip with a printed reason, except when
//! `CI` is set: CI runs as root on such a host, so a missing prerequisite there is a failure.

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burstd::cgroup::{CgroupError, FdBudget, Hierarchy, Layout, Quota, Sample, WriteOutcome};

/// The hierarchy to test on, or `None` (after saying why) when this host cannot run the tests.
fn v1_hierarchy() -> Option<Box<dyn Hierarchy>> {
    v1_layout().map(|layout| layout.hierarchy())
}

/// This host's v1 layout, or `None` (after saying why) when it cannot run the tests.
fn v1_layout() -> Option<Layout> {
    let missing = |reason: String| {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but the real-kernel cgroup tests cannot run: {reason}");
        }
        eprintln!("skipped: {reason}");
        None
    };
    // /proc/self belongs to the effective uid: a safe way to ask "are we root?".
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        Ok(meta) => return missing(format!("not root (euid {})", meta.uid())),
        Err(e) => return missing(format!("cannot stat /proc/self: {e}")),
    }
    if !std::path::Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
        return missing("/sys/fs/cgroup/cpu/cpu.cfs_quota_us does not exist".to_owned());
    }
    match Layout::detect() {
        Ok(layout @ Layout::V1 { .. }) => Some(layout),
        Ok(other) => missing(format!("layout is {other:?}, not v1")),
        Err(e) => missing(format!("layout detection failed: {e}")),
    }
}

fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "burstd-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills the busy child and removes the test cgroups (deepest first) even when an assertion
/// fails, so that no test leaves a process or a cgroup behind on the host.
struct Cleanup<'h> {
    hierarchy: &'h dyn Hierarchy,
    cgroups: Vec<String>,
    child: Option<Child>,
}

impl Cleanup<'_> {
    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// rmdir, retrying briefly: a just-reaped task can keep the cgroup busy for a moment.
    fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.hierarchy.remove(rel) {
                Err(CgroupError::Directory { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                result => return result,
            }
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.stop_child();
        for rel in self.cgroups.iter().rev() {
            if let Err(e) = self.remove(rel) {
                eprintln!("cleanup: could not remove test cgroup {rel}: {e}");
            }
        }
    }
}

fn busy_loop() -> Child {
    Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh busy loop")
}

/// CPU share used between two samples over `wall`, and the throttled periods in between.
fn share(before: Sample, after: Sample, wall: Duration) -> (f64, u64) {
    let used = after.usage_ns.saturating_sub(before.usage_ns) as f64;
    (
        used / wall.as_nanos() as f64,
        after.nr_throttled.saturating_sub(before.nr_throttled),
    )
}

fn measure(cg: &mut dyn burstd::cgroup::Cgroup, wall: Duration) -> (f64, u64) {
    let before = cg.sample().expect("sample before");
    let start = Instant::now();
    std::thread::sleep(wall);
    let after = cg.sample().expect("sample after");
    share(before, after, start.elapsed())
}

#[test]
fn quota_caps_a_busy_loop_and_a_removed_cgroup_is_gone() {
    let Some(h) = v1_hierarchy() else { return };
    let rel = unique_name();
    let mut cleanup = Cleanup {
        hierarchy: h.as_ref(),
        cgroups: vec![rel.clone()],
        child: None,
    };
    h.create(&rel).expect("create test cgroup");
    let child = cleanup.child.insert(busy_loop());
    let pid = child.id();
    h.add_process(&rel, pid).expect("move busy loop in");
    assert_eq!(h.procs(&rel).expect("procs"), vec![pid]);

    let mut cg = h.open(&rel).expect("open test cgroup");
    assert_eq!(
        cg.read_quota().expect("read quota"),
        Quota::unlimited(100_000)
    );
    let capped = Quota::limited(20_000, 100_000);
    assert_eq!(cg.write_quota(capped).unwrap(), WriteOutcome::Written);
    assert_eq!(cg.write_quota(capped).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(cg.read_quota().unwrap(), capped);

    // Let the first period with the new quota start before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let (used, throttled) = measure(cg.as_mut(), Duration::from_secs(2));
    eprintln!(
        "capped at 20%: used {:.1}% of one CPU, throttled in {throttled} periods",
        used * 100.0
    );
    assert!(
        (0.18..=0.22).contains(&used),
        "a busy loop capped at 20% used {:.1}% of one CPU",
        used * 100.0
    );
    // About 20 periods in 2 s, nearly all throttled.
    assert!(throttled >= 10, "only {throttled} throttled periods in 2 s");

    assert_eq!(
        cg.write_quota(Quota::unlimited(100_000)).unwrap(),
        WriteOutcome::Written
    );
    let (used, throttled) = measure(cg.as_mut(), Duration::from_secs(1));
    eprintln!(
        "uncapped: used {:.1}% of one CPU, throttled in {throttled} periods",
        used * 100.0
    );
    assert!(
        throttled <= 1,
        "still throttled in {throttled} periods without a quota"
    );
    // Well above the old 20% cap; not "a full CPU", as the host is shared.
    assert!(
        used > 0.3,
        "an uncapped busy loop used only {:.1}%",
        used * 100.0
    );

    let id = cg.id();
    cleanup.stop_child();
    cleanup.remove(&rel).expect("remove test cgroup");
    // The kernel answers ENODEV on the kept-open descriptors, ENOENT on a new open.
    let err = cg.sample().expect_err("sample of a removed cgroup");
    assert!(err.is_gone(), "expected Gone, got {err:?}");
    let err = h.open(&rel).err().expect("open of a removed cgroup");
    assert!(err.is_gone(), "expected Gone, got {err:?}");

    // Recreated under the same name: a new id, and usage restarting from 0.
    h.create(&rel).expect("recreate");
    let mut again = h.open(&rel).expect("open recreated");
    assert_ne!(again.id(), id);
    assert_eq!(again.sample().unwrap().usage_ns, 0);
}

#[test]
fn v1_parent_limit_is_respected_by_retrying_the_other_write_order() {
    let Some(h) = v1_hierarchy() else { return };
    let parent = unique_name();
    let child = format!("{parent}/child");
    let _cleanup = Cleanup {
        hierarchy: h.as_ref(),
        cgroups: vec![parent.clone(), child.clone()],
        child: None,
    };
    h.create(&child).expect("create parent and child");
    let mut p = h.open(&parent).unwrap();
    p.write_quota(Quota::limited(50_000, 100_000)).unwrap();

    // v1 refuses a child above its parent's 50%.
    let mut c = h.open(&child).unwrap();
    let err = c
        .write_quota(Quota::limited(60_000, 100_000))
        .expect_err("60% under a 50% parent");
    assert!(matches!(err, CgroupError::Rejected { .. }), "{err:?}");

    // 40% with a longer period. The handle does not know the old period (nothing read), so it
    // tries the quota first: 100000 / 100000 = 100% is refused, and the retry writes the period
    // first: -1 / 250000, then 100000 / 250000 = 40%.
    c.forget_written();
    let wanted = Quota::limited(100_000, 250_000);
    assert_eq!(c.write_quota(wanted).unwrap(), WriteOutcome::Written);
    assert_eq!(c.read_quota().unwrap(), wanted);

    // Back to a shorter period, old value known: quota first (20000 / 250000), then period.
    let shorter = Quota::limited(20_000, 50_000);
    assert_eq!(c.write_quota(shorter).unwrap(), WriteOutcome::Written);
    assert_eq!(c.read_quota().unwrap(), shorter);
}

/// This process's descriptors open on files whose path contains `needle`.
fn fds_on(needle: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.to_string_lossy().contains(needle))
        .count()
}

#[test]
fn a_lean_handle_samples_and_writes_a_real_quota() {
    let Some(layout) = v1_layout() else { return };
    // No room for extras: the handle keeps only cpuacct.usage open.
    let budget = FdBudget::new(0);
    let h = layout.hierarchy_with_budget(Arc::clone(&budget));
    let rel = unique_name();
    let mut cleanup = Cleanup {
        hierarchy: h.as_ref(),
        cgroups: vec![rel.clone()],
        child: None,
    };
    h.create(&rel).expect("create test cgroup");
    let child = cleanup.child.insert(busy_loop());
    h.add_process(&rel, child.id()).expect("move busy loop in");

    let mut cg = h.open(&rel).expect("open test cgroup");
    let in_test_cgroup = format!("/{rel}/");
    assert_eq!((budget.kept(), h.open_files()), (1, 1));
    assert_eq!(fds_on(&in_test_cgroup), 1, "only cpuacct.usage stays open");

    assert_eq!(cg.read_quota().unwrap(), Quota::unlimited(100_000));
    let capped = Quota::limited(20_000, 100_000);
    assert_eq!(cg.write_quota(capped).unwrap(), WriteOutcome::Written);
    assert_eq!(cg.write_quota(capped).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(cg.read_quota().unwrap(), capped);
    let Layout::V1 { cpu_root, .. } = &layout else {
        unreachable!("v1_layout returns v1 layouts only")
    };
    let quota_file = cpu_root.join(&rel).join("cpu.cfs_quota_us");
    assert_eq!(
        std::fs::read_to_string(&quota_file).unwrap().trim(),
        "20000"
    );

    // The kernel enforces it, and the lean reads (cpu.stat opened per sample) report it.
    std::thread::sleep(Duration::from_millis(200));
    let usage_before = cg.sample_usage().unwrap();
    let (used, throttled) = measure(cg.as_mut(), Duration::from_secs(2));
    eprintln!(
        "lean handle, capped at 20%: used {:.1}% of one CPU, throttled in {throttled} periods",
        used * 100.0
    );
    assert!(
        (0.18..=0.22).contains(&used),
        "a busy loop capped at 20% used {:.1}% of one CPU",
        used * 100.0
    );
    assert!(throttled >= 10, "only {throttled} throttled periods in 2 s");
    assert!(cg.sample_usage().unwrap() > usage_before);
    // A new period as well: the period and quota files are written in a valid order.
    let shorter = Quota::limited(10_000, 50_000);
    assert_eq!(cg.write_quota(shorter).unwrap(), WriteOutcome::Written);
    assert_eq!(cg.read_quota().unwrap(), shorter);
    let period_file = quota_file.with_file_name("cpu.cfs_period_us");
    assert_eq!(
        std::fs::read_to_string(&period_file).unwrap().trim(),
        "50000"
    );
    assert_eq!(
        fds_on(&in_test_cgroup),
        1,
        "per-use opens were closed again"
    );

    cleanup.stop_child();
    cleanup.remove(&rel).expect("remove test cgroup");
    // Gone both on the kept descriptor (ENODEV) and on the per-use opens (ENOENT).
    for err in [
        cg.sample_usage().expect_err("usage of a removed cgroup"),
        cg.sample().expect_err("sample of a removed cgroup"),
        cg.read_quota().expect_err("quota of a removed cgroup"),
    ] {
        assert!(err.is_gone(), "expected Gone, got {err:?}");
    }
    drop(cg);
    assert_eq!((budget.kept(), fds_on(&in_test_cgroup)), (0, 0));
}
