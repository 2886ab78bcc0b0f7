//! Memory stays bounded because a look at a workload allocates nothing: the control loop's
//! ticks (counter reads, bucket steps, drift checks, wake-up scheduling) are counted here with
//! a counting allocator, on a fake v1 tree of real files, for handles that keep their files
//! open and for handles short of descriptor budget that open them for each read.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::path::Path;

use burstd::agent::discover::Discoverer;
use burstd::agent::{Agent, AgentParts};
use burstd::cgroup::{FdBudget, Layout};

struct Counting;

thread_local! {
    /// Allocations made by this thread while counting is on (`None`: off).
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    // `try_with`: the thread-local may be gone while a thread exits.
    let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
    (out, n)
}

const S: u64 = 1_000_000_000;
const GROUPS: usize = 20;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write fake control file");
}

/// A v1 tree with `GROUPS` idle cgroups under `fleet/`, as a booted kernel shows them.
fn tree(root: &Path) -> Layout {
    for i in 0..GROUPS {
        let cpu = root.join("cpu/fleet").join(format!("w{i}"));
        let cpuacct = root.join("cpuacct/fleet").join(format!("w{i}"));
        write(&cpuacct.join("cpuacct.usage"), "0\n");
        write(&cpuacct.join("cgroup.procs"), "");
        write(&cpu.join("cgroup.procs"), "");
        write(
            &cpu.join("cpu.stat"),
            "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        );
        write(&cpu.join("cpu.cfs_quota_us"), "-1\n");
        write(&cpu.join("cpu.cfs_period_us"), "100000\n");
        write(&cpu.join("cpu.cfs_burst_us"), "0\n");
    }
    Layout::v1(root.join("cpu"), root.join("cpuacct"))
}

fn agent(layout: &Layout, budget: usize, state_dir: &Path) -> Agent {
    let text = format!(
        "[agent]\nstate_dir = {:?}\n\
         [[workload]]\nname = \"fleet\"\nmatch = \"fleet/*\"\nprofile = \"t3.micro\"\n",
        state_dir.display().to_string()
    );
    let config = match burstd::config::parse(Path::new("test.toml"), &text) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    };
    Agent::new(AgentParts {
        config: config.agent,
        specs: config.workloads,
        hierarchy: layout.hierarchy_with_budget(FdBudget::new(budget)),
        // Only a `match` source: discovery lists the tree, systemd is never asked.
        discover: Discoverer::system(),
        host_cpus: 2,
        own_cgroups: vec![],
        boot_id: "boot".into(),
    })
}

#[test]
fn looks_at_workloads_allocate_nothing_with_kept_or_per_read_files() {
    // 1,000: every file kept open. 0: only the counters; quota files opened per drift check.
    for budget in [1_000, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = tree(dir.path());
        let mut agent = agent(&layout, budget, dir.path());
        agent.rescan(S, 1);
        // Warm up: the first looks size the wake-up heap and this thread's buffers.
        let mut t = S;
        let mut looks = 0;
        while t < 30 * S {
            t += S / 10;
            looks += agent.tick(t, 1);
        }
        assert!(looks >= 2 * GROUPS, "budget {budget}: only {looks} looks");
        // Then a minute of looks, each with a drift check every 5 s, and some CPU used.
        let (mut looks, mut allocated) = (0, 0);
        while t < 90 * S {
            t += S / 10;
            if t % (10 * S) == 0 {
                let usage = format!("{}\n", t / 100);
                for i in 0..GROUPS {
                    let path = dir.path().join(format!("cpuacct/fleet/w{i}/cpuacct.usage"));
                    write(&path, &usage);
                }
            }
            let (n, a) = allocations(|| agent.tick(t, 1));
            looks += n;
            allocated += a;
        }
        assert!(looks >= 12 * GROUPS, "budget {budget}: only {looks} looks");
        assert_eq!(allocated, 0, "budget {budget}: {looks} looks allocated");
    }
}
