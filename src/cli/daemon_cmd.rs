//! `burstd daemon` and `burstd check`: the agent's entry points on the command line. The
//! daemon itself is [`crate::daemon`]; this file only maps its errors to exit codes.

use super::exit::{self, EX_UNAVAILABLE, EX_USAGE};
use super::logging::init_logging;
use crate::agent::discover::{Discoverer, Lookup};
use crate::agent::state;
use crate::cgroup::{layout::SCHED_EXT_STATE, sched_ext_enabled, Layout};
use crate::config;
use crate::daemon::{self, describe_layout, DaemonError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// The configuration file (TOML; see config/burstd.toml).
    #[arg(long, short, default_value = "/etc/burstd/burstd.toml")]
    pub config: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The configuration file to validate against this host.
    #[arg(long, short, default_value = "/etc/burstd/burstd.toml")]
    pub config: PathBuf,
}

pub fn run_daemon(args: DaemonArgs) -> ExitCode {
    init_logging();
    match daemon::run(&args.config) {
        Ok(()) => ExitCode::SUCCESS,
        // Each failed save was logged as it happened.
        Err(DaemonError::NeverSaved) => ExitCode::FAILURE,
        Err(e) => exit::fail(exit::of_daemon(&e), e),
    }
}

pub fn run_check(args: CheckArgs) -> ExitCode {
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("burstd: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let mut problems = 0;
    println!(
        "config        {}: OK ({} workloads, {} custom profiles)",
        args.config.display(),
        cfg.workloads.len(),
        cfg.custom_profiles.len()
    );
    let layout = match Layout::resolve(cfg.agent.cgroup_root.as_deref()) {
        Ok(l) => {
            println!("cgroups       {}", describe_layout(&l));
            l
        }
        Err(e) => {
            println!("cgroups       PROBLEM: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let quota_dir = match &layout {
        Layout::V2 { root } => root.clone(),
        Layout::V1 { cpu_root, .. } => cpu_root.clone(),
    };
    let writable = rustix::fs::access(&quota_dir, rustix::fs::Access::WRITE_OK).is_ok();
    if writable {
        println!("permissions   can write below {}", quota_dir.display());
    } else {
        problems += 1;
        println!(
            "permissions   PROBLEM: cannot write below {}: run as root or delegate the subtree",
            quota_dir.display()
        );
    }
    match sched_ext_enabled(Path::new(SCHED_EXT_STATE)) {
        Ok(true) => println!(
            "sched_ext     WARNING: a sched_ext scheduler is loaded and may ignore CPU quotas"
        ),
        Ok(false) => println!("sched_ext     not loaded"),
        Err(e) => println!("sched_ext     unknown ({e})"),
    }
    match state::load(&cfg.agent.state_dir) {
        Ok(Some(s)) => println!(
            "state         {}: {} saved workloads",
            state::state_path(&cfg.agent.state_dir).display(),
            s.workloads.len()
        ),
        Ok(None) => println!(
            "state         none yet in {} (fresh balances at first start)",
            cfg.agent.state_dir.display()
        ),
        Err(e) => {
            problems += 1;
            println!("state         PROBLEM: {e}");
        }
    }
    let hierarchy = layout.hierarchy();
    let mut discover = Discoverer::system();
    // Workload name → the cgroup that has it: a second cgroup deriving the same name (two
    // glob matches with one last element) is refused by the agent, so it is a problem here.
    let mut named: std::collections::HashMap<String, String> = Default::default();
    for w in &cfg.workloads {
        // What the agent's rescan would find now; a source that cannot be asked finds nothing.
        let found = match discover.lookup(w, &*hierarchy) {
            Ok(Lookup::Cgroups(found)) => found,
            Ok(Lookup::NotRunning) | Err(_) => Vec::new(),
        };
        let what = format!("{} ({}, {})", w.name, w.profile.name, w.mode);
        if found.is_empty() {
            println!("workload      {what}: no cgroup now (treated as stopped until it appears)");
        }
        for f in found {
            let p = f.cgroup;
            if let Some(first) = named.get(&f.name) {
                problems += 1;
                println!(
                    "workload      {what}: {p} REFUSED: its name {:?} is {first}'s; rename the cgroup or narrow the match",
                    f.name
                );
                continue;
            }
            named.insert(f.name, p.clone());
            match hierarchy.open(&p) {
                Ok(mut h) => {
                    let q = h
                        .read_quota()
                        .map(|q| format!("{q:?}"))
                        .unwrap_or_else(|e| e.to_string());
                    println!("workload      {what}: {p} found, quota now {q}");
                }
                Err(e) if e.is_gone() => println!(
                    "workload      {what}: {p} not found (treated as stopped until it appears)"
                ),
                Err(e) => {
                    problems += 1;
                    println!("workload      {what}: {p} PROBLEM: {e}");
                }
            }
        }
    }
    if let Some(socket) = &cfg.containers.docker {
        problems += check_containers(socket, &cfg.custom_profiles);
    }
    if problems > 0 {
        println!("{problems} problem(s) found");
        ExitCode::FAILURE
    } else {
        println!("no problems found");
        ExitCode::SUCCESS
    }
}

/// `burstd check`'s container lines: every running container with `burstd.profile`, and what
/// burstd makes of its labels. Returns the number of problems.
fn check_containers(
    socket: &Path,
    custom: &std::collections::BTreeMap<String, crate::credit::Profile>,
) -> usize {
    use crate::containers::docker::{Client, Limits};
    let client = Client::new(socket, Limits::default());
    let rows = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(crate::containers::watch::check(&client, custom))
                .map_err(|e| e.to_string())
        });
    match rows {
        Err(e) => {
            println!("containers    PROBLEM: {e} (burstd keeps running without them and retries)");
            1
        }
        Ok(rows) => {
            println!(
                "containers    {}: {} labelled container(s) running",
                socket.display(),
                rows.len()
            );
            let mut problems = 0;
            for r in rows {
                match r.outcome {
                    Ok(what) => println!("container     {}: {what}", r.container),
                    Err(e) => {
                        problems += 1;
                        println!("container     {} PROBLEM: {e}; left alone", r.container);
                    }
                }
            }
            problems
        }
    }
}
