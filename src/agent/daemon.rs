//! The daemon's event loop: timers, signals, state saves, systemd notifications.
//!
//! One task owns the [`Agent`]; everything else (signals now, the API later) reaches it by
//! message, so there are no locks on the hot path.

use super::control::{Agent, Event};
use super::state;
use crate::config;
use crate::metrics::{LoopHistograms, Scrape};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

const MS: u64 = 1_000_000;

/// What can be asked of the loop from outside.
#[derive(Debug)]
pub enum Control {
    /// Re-read the configuration file (SIGHUP).
    Reload,
    /// Save, apply `on_exit`, and return (SIGTERM, SIGINT).
    Shutdown,
    /// Sample every workload now and answer with the metrics (a Prometheus scrape).
    Scrape(oneshot::Sender<Scrape>),
    /// Answer at once: the loop is alive (`/healthz`).
    Ping(oneshot::Sender<()>),
    /// An API request; a change is saved to the state file before the answer is sent.
    Api(
        crate::api::engine::Call,
        oneshot::Sender<crate::api::engine::Answer>,
    ),
    /// What the container source saw (a container started or stopped, a label error).
    Container(crate::containers::watch::Change),
}

/// The loop's clocks: a monotonic one that keeps running across agent restarts within one
/// boot (CLOCK_BOOTTIME in production), and the wall clock for the model's stop/start rules.
pub trait Clock {
    fn now_ns(&self) -> u64;
    fn wall_s(&self) -> u64;
}

/// CLOCK_BOOTTIME and the system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }

    fn wall_s(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Tokio's clock (pausable in tests) from an origin, and a fixed wall clock origin.
pub struct TokioClock {
    origin: tokio::time::Instant,
    pub boot_offset_ns: u64,
    pub wall_origin_s: u64,
}

impl TokioClock {
    pub fn new(boot_offset_ns: u64, wall_origin_s: u64) -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
            boot_offset_ns,
            wall_origin_s,
        }
    }
}

impl Clock for TokioClock {
    fn now_ns(&self) -> u64 {
        self.boot_offset_ns + self.origin.elapsed().as_nanos() as u64
    }

    fn wall_s(&self) -> u64 {
        self.wall_origin_s + self.origin.elapsed().as_secs()
    }
}

/// Counters of state saving, for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SaveStats {
    pub saves: u64,
    pub failures: u64,
    pub last_success_unix_s: u64,
}

/// Options of the loop.
pub struct LoopOptions {
    pub config_path: Option<PathBuf>,
    /// Send sd_notify messages (READY, STATUS, WATCHDOG, RELOADING).
    pub notify: bool,
}

fn notify(on: bool, states: &[sd_notify::NotifyState]) {
    if on {
        if let Err(e) = sd_notify::notify(false, states) {
            warn!(error = %e, "sd_notify failed");
        }
    }
}

fn save(agent: &Agent, clock: &dyn Clock, stats: &mut SaveStats) {
    let wall = clock.wall_s();
    // Streamed from the live workloads: no copy of them, no whole body in memory.
    match state::save_ref(&agent.config.state_dir, &agent.saved_state(wall)) {
        Ok(()) => {
            stats.saves += 1;
            stats.last_success_unix_s = wall;
        }
        Err(e) => {
            stats.failures += 1;
            error!(error = %e, "state save failed; balances since the last save would be lost on a crash");
        }
    }
}

/// Runs the agent until `Shutdown` (or the channel closes). Saves the state on every start,
/// stop and mode switch and every `save_interval`; rescans every `rescan_interval`.
pub async fn run_loop(
    mut agent: Agent,
    opts: LoopOptions,
    clock: &dyn Clock,
    mut rx: mpsc::Receiver<Control>,
) -> SaveStats {
    let mut stats = SaveStats::default();
    let mut api = crate::api::engine::Engine::load(&mut agent);
    let now = clock.now_ns();
    agent.rescan(now, clock.wall_s());
    agent.tick(now, clock.wall_s());
    agent.take_events();
    save(&agent, clock, &mut stats);
    let mut watchdog_usec = 0u64;
    let watchdog = opts.notify && sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let watchdog_ns = watchdog_usec.saturating_mul(1000) / 2;
    notify(opts.notify, &[sd_notify::NotifyState::Ready]);
    let mut status = String::new();
    let mut next_save = now + agent.config.save_interval_ms * MS;
    let mut next_rescan = now + agent.config.rescan_interval_ms * MS;
    let mut next_watchdog = now;
    let mut next_status = now;
    let histograms = LoopHistograms::new();
    loop {
        // Measured in real time, whatever clock the loop runs on.
        let turn = std::time::Instant::now();
        let now = clock.now_ns();
        let wall = clock.wall_s();
        agent.tick(now, wall);
        if now >= next_rescan {
            agent.rescan(now, wall);
            next_rescan = now + agent.config.rescan_interval_ms * MS;
        }
        let events = agent.take_events();
        for e in &events {
            if let Event::Held(name) = e {
                if let Some(l) = agent.get(name).and_then(|w| w.last_landing) {
                    histograms
                        .hold_overshoot
                        .observe(l.overshoot_cpu_ns as f64 / 1e9);
                    histograms.hold_late.observe(l.late_ns as f64 / 1e9);
                }
            }
        }
        // Starts, stops and switches are saved at once. A hold or release is not: it follows
        // from the balance, which a restart recomputes from the counters (and saving 100
        // holds landing together would stall the loop for 100 fsyncs).
        let eventful = events
            .iter()
            .any(|e| !matches!(e, Event::Held(_) | Event::Released(_)));
        if eventful || now >= next_save {
            save(&agent, clock, &mut stats);
            next_save = now + agent.config.save_interval_ms * MS;
        }
        if watchdog && now >= next_watchdog {
            notify(true, &[sd_notify::NotifyState::Watchdog]);
            next_watchdog = now + watchdog_ns.max(100 * MS);
        }
        // STATUS= is for humans: once a second is plenty (counting is O(workloads)).
        if now >= next_status {
            next_status = now + 1000 * MS;
            let (running, held) = agent.counts();
            let s = format!("{running} workloads, {held} held at baseline");
            if s != status {
                notify(opts.notify, &[sd_notify::NotifyState::Status(&s)]);
                status = s;
            }
        }
        let mut next = next_save.min(next_rescan);
        if watchdog {
            next = next.min(next_watchdog);
        }
        if let Some(w) = agent.next_wake() {
            next = next.min(w);
        }
        histograms.tick.observe(turn.elapsed().as_secs_f64());
        let wait = Duration::from_nanos(next.saturating_sub(clock.now_ns()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            msg = rx.recv() => match msg {
                Some(Control::Reload) => reload(&mut agent, &opts, clock),
                Some(Control::Shutdown) | None => break,
                Some(Control::Scrape(reply)) => {
                    let _ = reply.send(scrape(&mut agent, clock, &stats, &histograms));
                }
                Some(Control::Ping(reply)) => {
                    let _ = reply.send(());
                }
                Some(Control::Container(change)) => {
                    crate::containers::bridge::apply(&mut agent, change, clock.now_ns(), clock.wall_s());
                }
                Some(Control::Api(call, reply)) => {
                    let (answer, changed) =
                        api.handle(&mut agent, clock.now_ns(), clock.wall_s(), call);
                    if changed {
                        // Durable before the caller hears of it.
                        agent.take_events();
                        save(&agent, clock, &mut stats);
                    }
                    let _ = reply.send(answer);
                }
            }
        }
    }
    notify(opts.notify, &[sd_notify::NotifyState::Stopping]);
    agent.sample_all(clock.now_ns(), clock.wall_s());
    save(&agent, clock, &mut stats);
    agent.on_exit();
    info!(saves = stats.saves, "burstd stopped; state saved");
    stats
}

/// Samples every workload now (no waiting for its next tick) and gathers the metrics.
fn scrape(
    agent: &mut Agent,
    clock: &dyn Clock,
    stats: &SaveStats,
    histograms: &LoopHistograms,
) -> Scrape {
    agent.sample_all(clock.now_ns(), clock.wall_s());
    Scrape {
        workloads: super::view::workload_views(agent),
        health: super::Health {
            cgroup_files_open: agent.cgroup_files_open(),
            ..agent.health
        },
        saves: *stats,
        histograms: histograms.clone(),
    }
}

fn reload(agent: &mut Agent, opts: &LoopOptions, clock: &dyn Clock) {
    let Some(path) = &opts.config_path else {
        return;
    };
    notify(
        opts.notify,
        &[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::Status("reloading")),
        ],
    );
    match config::load(path) {
        Ok(cfg) => {
            info!(config = %path.display(), workloads = cfg.workloads.len(), "configuration reloaded");
            agent.reconfigure(cfg.agent, cfg.workloads, clock.now_ns(), clock.wall_s());
        }
        Err(e) => {
            error!(error = %e, "configuration not reloaded; still running on the previous one")
        }
    }
    notify(opts.notify, &[sd_notify::NotifyState::Ready]);
}
