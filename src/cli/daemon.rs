//! `burstd daemon` and `burstd check`: the agent's entry points.

use super::exit::{EX_DATAERR, EX_UNAVAILABLE, EX_USAGE};
use super::servers::Servers;
use crate::agent::daemon::{run_loop, Control, LoopOptions, SystemClock};
use crate::agent::units::Systemctl;
use crate::agent::{state, Agent};
use crate::cgroup::{layout::SCHED_EXT_STATE, read_own_cgroup_paths, sched_ext_enabled, Layout};
use crate::config::{self, Source};
use crate::host;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::{error, info, warn};

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

/// Logs to stderr; under systemd (JOURNAL_STREAM set) without timestamps or colours, since
/// the journal adds its own.
pub fn init_logging() {
    init_logging_with("info")
}

/// [`init_logging`] with another default level (`BURSTD_LOG` still wins): `exec` and `demo`
/// show their own status lines and keep the agent's info logs out of them.
pub fn init_logging_with(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BURSTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .without_time()
            .with_ansi(false)
            .with_target(false)
            .try_init()
    } else {
        // Colours only for a terminal: a log redirected to a file stays plain text.
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init()
    };
}

fn describe(layout: &Layout) -> String {
    match layout {
        Layout::V2 { root } => format!("cgroup v2 at {}", root.display()),
        Layout::V1 {
            cpu_root,
            cpuacct_root,
        } => {
            format!(
                "cgroup v1: cpu at {}, cpuacct at {}",
                cpu_root.display(),
                cpuacct_root.display()
            )
        }
    }
}

pub fn run_daemon(args: DaemonArgs) -> ExitCode {
    init_logging();
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("burstd: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let layout = match Layout::resolve(cfg.agent.cgroup_root.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("burstd: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let files = host::raise_open_file_limit();
    info!(layout = %describe(&layout), workloads = cfg.workloads.len(), config = %args.config.display(),
        open_file_limit = ?files, "burstd starting");
    if sched_ext_enabled(Path::new(SCHED_EXT_STATE)).unwrap_or(false) {
        warn!("a sched_ext scheduler is loaded: it may ignore CPU quotas, so baselines may not be enforced");
    }
    let own = read_own_cgroup_paths(&layout).unwrap_or_default();
    let saved = match state::load(&cfg.agent.state_dir) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            eprintln!("burstd: {e}");
            return ExitCode::from(EX_DATAERR);
        }
    };
    let mut agent = Agent::new(
        cfg.agent.clone(),
        cfg.workloads.clone(),
        layout.hierarchy(),
        Box::new(Systemctl),
        host::host_cpus(),
        own,
        state::boot_id(),
    );
    if let Some(s) = saved {
        info!(
            workloads = s.workloads.len(),
            "balances restored from the state file"
        );
        agent.restore(s);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("burstd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (hup_tx, mut hup_rx) = tokio::sync::mpsc::channel(1);
        if let Err(e) = forward_signals(tx.clone(), hup_tx) {
            eprintln!("burstd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        let servers = match Servers::start(&cfg, tx.clone()).await {
            Ok(s) => std::sync::Arc::new(tokio::sync::Mutex::new(s)),
            Err(e) => {
                eprintln!("burstd: {}", e.message);
                return ExitCode::from(e.code);
            }
        };
        // A reload moves the endpoint or the socket if their sections changed (the control
        // loop reloads the rest, and logs an invalid file).
        let reloading = std::sync::Arc::clone(&servers);
        let config_path = args.config.clone();
        tokio::spawn(async move {
            while hup_rx.recv().await.is_some() {
                if let Ok(cfg) = config::load(&config_path) {
                    reloading.lock().await.reload(&cfg).await;
                }
            }
        });
        let opts = LoopOptions {
            config_path: Some(args.config.clone()),
            notify: true,
        };
        let stats = run_loop(agent, opts, &SystemClock, rx).await;
        servers.lock().await.remove_api_socket();
        if stats.saves == 0 {
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    })
}

/// SIGHUP → reload (also told to `on_hup`); SIGTERM, SIGINT → shutdown.
pub fn forward_signals(
    tx: tokio::sync::mpsc::Sender<Control>,
    on_hup: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
            };
            let stop = matches!(msg, Control::Shutdown);
            if matches!(msg, Control::Reload) {
                // Full: a reload is already pending, and it reads the file anew.
                let _ = on_hup.try_send(());
            }
            if tx.send(msg).await.is_err() || stop {
                break;
            }
        }
    });
    Ok(())
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
            println!("cgroups       {}", describe(&l));
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
    let mut resolver = Systemctl;
    for w in &cfg.workloads {
        use crate::agent::units::UnitResolver;
        let paths: Vec<String> = match &w.source {
            Source::Cgroup(p) => vec![p.clone()],
            Source::Unit(u) => resolver.cgroup_of(u).into_iter().collect(),
            Source::Match(pat) => hierarchy.glob(pat).unwrap_or_default(),
        };
        let what = format!("{} ({}, {})", w.name, w.profile.name, w.mode);
        if paths.is_empty() {
            println!("workload      {what}: no cgroup now (treated as stopped until it appears)");
        }
        for p in paths {
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
    if problems > 0 {
        println!("{problems} problem(s) found");
        ExitCode::FAILURE
    } else {
        println!("no problems found");
        ExitCode::SUCCESS
    }
}
