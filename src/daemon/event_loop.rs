//! The daemon's event loop: timers, signals, state saves, systemd notifications, and the
//! questions of the metrics endpoint and the control API.
//!
//! One task owns the [`Agent`]; everything else reaches it by message (signals as [`Control`],
//! the servers through their narrow [`Asker`](crate::ask::Asker) handles), so there are no
//! locks on the hot path and the servers do not know this loop's type.

use super::recorder::Recorder;
use super::saver::{Done, Saver};
use crate::agent::clock::Clock;
use crate::agent::persist::{SaveStats, Sections};
use crate::agent::state;
use crate::agent::view::workload_views;
use crate::agent::{Agent, Health, WorkloadEvent};
use crate::api::actions::Engine;
use crate::api::ApiQuery;
use crate::ask::Asker;
use crate::config;
use crate::containers::watch::Change;
use crate::metrics::{LoopHistograms, Probe, Scrape};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

const MS: u64 = 1_000_000;

/// What a signal asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration file (SIGHUP).
    Reload,
    /// Save, apply `on_exit`, and return (SIGTERM, SIGINT).
    Shutdown,
}

/// The loop's receiving ends: signals, the metrics endpoint's probes, the API's calls, what
/// the container source saw.
pub struct Inbox {
    control: mpsc::Receiver<Control>,
    probes: mpsc::Receiver<Probe>,
    api: mpsc::Receiver<ApiQuery>,
    containers: mpsc::Receiver<Change>,
}

/// The sending ends of an [`Inbox`]: one for the signals, one narrow handle per server.
#[derive(Clone)]
pub struct LoopHandles {
    pub control: mpsc::Sender<Control>,
    pub probes: Asker<Probe>,
    pub api: Asker<ApiQuery>,
    /// For the container source's watcher (see `containers::watch`).
    pub containers: mpsc::Sender<Change>,
}

/// The channels of one loop (16 messages each, as before the split).
pub fn channels() -> (LoopHandles, Inbox) {
    let (control, control_rx) = mpsc::channel(16);
    let (probes, probes_rx) = Asker::channel(16, crate::metrics::AGENT_TIMEOUT);
    let (api, api_rx) = Asker::channel(16, crate::api::AGENT_TIMEOUT);
    let (containers, containers_rx) = mpsc::channel(64);
    (
        LoopHandles {
            control,
            probes,
            api,
            containers,
        },
        Inbox {
            control: control_rx,
            probes: probes_rx,
            api: api_rx,
            containers: containers_rx,
        },
    )
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

/// The state file's bytes as of now, encoded from the live workloads (no I/O, no copy of them).
fn encode(agent: &Agent, sections: &Sections, wall: u64) -> Vec<u8> {
    match state::encode_ref(&agent.saved_state(wall, sections)) {
        Ok(bytes) => bytes,
        Err(e) => {
            // Cannot happen with the types saved (maps with string keys); an empty body is
            // refused by the writer, which counts a failed save and keeps the old file.
            error!(error = %e, "cannot encode the state");
            Vec::new()
        }
    }
}

/// Hands the state to the writer (no I/O here); `done` runs once it is on disk.
fn save(agent: &Agent, sections: &Sections, clock: &dyn Clock, saver: &Saver, done: Option<Done>) {
    let wall = clock.wall_s();
    saver.save(
        agent.config().state_dir.clone(),
        encode(agent, sections, wall),
        wall,
        done,
    );
}

/// Runs the agent until `Shutdown` (or the control channel closes). Saves the state on every
/// start, stop and mode switch and every `save_interval`; rescans every `rescan_interval`.
/// `sections` are the state file's sections other layers own, as restored (the API's is
/// loaded into its engine here and kept up to date).
pub async fn run_loop(
    mut agent: Agent,
    mut sections: Sections,
    opts: LoopOptions,
    clock: &dyn Clock,
    mut inbox: Inbox,
) -> SaveStats {
    let saver = Saver::start();
    let mut recorder = Recorder::new(agent.config().record_dir.clone());
    let mut api = Engine::load(&sections, &mut agent);
    let now = clock.now_ns();
    agent.rescan(now, clock.wall_s());
    agent.tick(now, clock.wall_s());
    agent.take_events();
    let wall = clock.wall_s();
    let first = encode(&agent, &sections, wall);
    saver
        .save_and_wait(agent.config().state_dir.clone(), first, wall)
        .await;
    let mut watchdog_usec = 0u64;
    let watchdog = opts.notify && sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let watchdog_ns = watchdog_usec.saturating_mul(1000) / 2;
    notify(opts.notify, &[sd_notify::NotifyState::Ready]);
    let mut status = String::new();
    let mut next_save = now + agent.config().save_interval_ms * MS;
    let mut next_rescan = now + agent.config().rescan_interval_ms * MS;
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
            next_rescan = now + agent.config().rescan_interval_ms * MS;
        }
        let recorded = agent.take_recorded();
        if !recorded.is_empty() {
            recorder.write(recorded, wall);
        }
        let events = agent.take_events();
        for e in &events {
            if let WorkloadEvent::Held(name) = e {
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
            .any(|e| !matches!(e, WorkloadEvent::Held(_) | WorkloadEvent::Released(_)));
        if eventful || now >= next_save {
            save(&agent, &sections, clock, &saver, None);
            next_save = now + agent.config().save_interval_ms * MS;
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
        // A server's channel that is closed (its handles all dropped) only disables its branch.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            msg = inbox.control.recv() => match msg {
                Some(Control::Reload) => {
                    reload(&mut agent, &opts, clock);
                    let recording: std::collections::HashSet<String> = agent
                        .workloads()
                        .filter(|w| agent.records(&w.name))
                        .map(|w| w.name.clone())
                        .collect();
                    recorder.reconfigure(agent.config().record_dir.clone(), &|n| recording.contains(n));
                }
                Some(Control::Shutdown) | None => break,
            },
            Some(probe) = inbox.probes.recv() => match probe {
                Probe::Scrape(reply) => {
                    let _ = reply.send(scrape(&mut agent, clock, &saver.stats(), &histograms));
                }
                Probe::Ping(reply) => {
                    let _ = reply.send(());
                }
            },
            Some(change) = inbox.containers.recv() => {
                crate::containers::bridge::apply(&mut agent, change, clock.now_ns(), clock.wall_s());
            }
            Some(ApiQuery { call, reply }) = inbox.api.recv() => {
                let (answer, changed) =
                    api.handle(&mut agent, clock.now_ns(), clock.wall_s(), call);
                if changed {
                    // Durable before the caller hears of it: answered by the writer.
                    api.store(&mut sections);
                    agent.take_events();
                    let done: Done = Box::new(move || {
                        let _ = reply.send(answer);
                    });
                    save(&agent, &sections, clock, &saver, Some(done));
                } else {
                    let _ = reply.send(answer);
                }
            }
        }
    }
    notify(opts.notify, &[sd_notify::NotifyState::Stopping]);
    agent.sample_all(clock.now_ns(), clock.wall_s());
    let wall = clock.wall_s();
    // The last interval of each recorded workload, up to the shutdown.
    recorder.write(agent.take_recorded(), wall);
    let stats = saver
        .finish(
            agent.config().state_dir.clone(),
            encode(&agent, &sections, wall),
            wall,
        )
        .await;
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
        workloads: workload_views(agent),
        health: Health {
            cgroup_files_open: agent.cgroup_files_open(),
            ..agent.health()
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
