//! Facts about the host and limits of this process, asked of the kernel once at start.

/// Raise the soft open-file limit to the most the kernel allows (`fs.nr_open`), or at least to
/// the hard limit; returns the new soft limit. Call it before [`crate::cgroup::Layout::hierarchy`]: the
/// hierarchy's descriptor budget ([`crate::cgroup::FdBudget`]) is this limit, read once, minus a
/// reserve. Each managed cgroup keeps its usage counter open (the routine sample is one
/// `pread`) and its other 1–4 control files only while all handles keep at most half the
/// budget; past that they are opened for each read. So a low hard limit (systemd's
/// `LimitNOFILE=`, no `CAP_SYS_RESOURCE`) costs the later workloads slower throttling and quota
/// reads, not EMFILE: 10,000 v1 workloads fit in 20,000 descriptors.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let all = Rlimit {
        current: Some(nr_open),
        maximum: Some(nr_open),
    };
    if setrlimit(Resource::Nofile, all).is_err() {
        // Without CAP_SYS_RESOURCE (systemd's LimitNOFILE= sets the hard limit then).
        let hard = getrlimit(Resource::Nofile).maximum;
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

/// The CPUs this process may run on (at least 1).
pub fn host_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
