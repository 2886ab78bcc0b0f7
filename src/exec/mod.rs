//! `burstd exec`: run one command in a fresh cgroup under the credit rules of a profile, for
//! its lifetime, with the agent's control core (`Agent`) doing the accounting and enforcement.
//!
//! `place` makes and removes the cgroup, `spawn` starts the command inside it with no escape
//! window, `report` formats what is shown; this file runs the command and the agent together.

pub mod place;
pub mod report;
pub mod spawn;
pub mod trace_out;

use crate::agent::clock::{Clock, SystemClock};
use crate::agent::discover::Discoverer;
use crate::agent::state::{self, StateError};
use crate::agent::{Agent, AgentParts, WorkloadEvent};
use crate::cgroup::{read_own_cgroup_paths, CgroupError, Layout};
use crate::config::{self, Source, WorkloadSpec};
use crate::credit::{time_to_exhaustion, Credits, Mode, Profile};
use report::{RunSummary, Status};
use rustix::process::Signal;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

/// The workload's name inside the agent and in `--state` files.
pub const WORKLOAD: &str = "exec";
const MS: u64 = 1_000_000;

/// How much to show while the command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Only the summary and errors.
    Quiet,
    /// A live line on a terminal, periodic lines otherwise.
    Live,
}

/// Everything `burstd exec` needs.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub profile: Profile,
    /// None: the profile's default mode (or the one saved in `state_file`).
    pub mode: Option<Mode>,
    pub initial_credits: Credits,
    pub time_scale_milli: u64,
    pub state_file: Option<PathBuf>,
    pub parent: Option<String>,
    /// Write the measured usage as a trace here (`burstd exec --record`).
    pub record: Option<PathBuf>,
    pub output: Output,
    /// Seconds between plain status lines when stderr is not a terminal.
    pub log_every_s: f64,
    /// Prefix of every line shown (`burstd exec`, `demo standard`).
    pub label: String,
    pub command: Vec<OsString>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The command's exit status, or 128 + N when a signal N ended it.
    pub exit_code: u8,
    pub summary: RunSummary,
}

/// Why `burstd exec` could not run the command (the command's own exit status is not an
/// error: it is in [`Outcome`]). The exit code for each is chosen by the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The host cannot give the command a cgroup.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    State(#[from] StateError),
    /// The options ask for something the profile or the command line does not allow.
    #[error("{0}")]
    Usage(String),
    #[error("cannot run {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl From<CgroupError> for ExecError {
    fn from(e: CgroupError) -> Self {
        ExecError::Unavailable(place::unavailable_message(&e))
    }
}

/// Where the lines go: stderr, redrawn in place on a terminal.
struct Screen {
    output: Output,
    tty: bool,
    label: String,
    drawn: bool,
}

impl Screen {
    fn line(&mut self, text: &str) {
        if self.output == Output::Quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let clear = if self.drawn { "\r\x1b[K" } else { "" };
        let _ = writeln!(err, "{clear}{}: {text}", self.label);
        self.drawn = false;
    }

    fn status(&mut self, text: &str) {
        if self.output == Output::Quiet {
            return;
        }
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{}: {text}", self.label);
            let _ = err.flush();
            self.drawn = true;
        } else {
            self.line(text);
        }
    }

    fn end_status(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

/// Runs the command under the credit rules and returns its exit status and what was measured.
pub fn run(opts: &ExecOptions) -> Result<Outcome, ExecError> {
    let Some((program, args)) = opts.command.split_first() else {
        return Err(ExecError::Usage("no command given after --".into()));
    };
    if opts.mode == Some(Mode::Unlimited) && !opts.profile.unlimited_allowed {
        return Err(ExecError::Usage(format!(
            "profile {} has no unlimited mode; use --mode standard",
            opts.profile.name
        )));
    }
    let layout = Layout::detect()?;
    let saved = match &opts.state_file {
        Some(p) => state::load_file(p)?,
        None => None,
    };
    let own = read_own_cgroup_paths(&layout).unwrap_or_default();
    let parent = place::choose_parent(&layout, opts.parent.as_deref(), &own);
    let mut group = place::ExecGroup::create(&layout, &parent, &own)?;
    let procs = spawn::open_procs(&layout.procs_files(&group.rel)?).map_err(|e| {
        ExecError::Unavailable(format!("cannot open cgroup.procs of {}: {e}", group.rel))
    })?;

    let mut agent = new_agent(opts, &layout, &group.rel, own)?;
    // The sections other layers own (the API's, from a daemon's state file) are kept as found.
    let sections = saved.map(|s| agent.restore(s)).unwrap_or_default();
    let clock = SystemClock;
    let start_ns = clock.now_ns();
    agent.rescan(start_ns, clock.wall_s());
    if let Some(mode) = opts.mode {
        let current = agent.get(WORKLOAD).map(|w| w.bucket.mode);
        if current.is_some_and(|m| m != mode) {
            agent
                .switch_mode(WORKLOAD, mode, start_ns, clock.wall_s())
                .map_err(|e| ExecError::Usage(e.to_string()))?;
        }
    }
    let Some(w) = agent.get(WORKLOAD).filter(|w| w.is_running()) else {
        return Err(ExecError::Failed(format!(
            "the agent could not take over cgroup {} (see the log above)",
            group.rel
        )));
    };
    let start = Start {
        at_ns: start_ns,
        usage_ns: w.last.usage_ns,
        balance: w.bucket.balance(),
        totals: w.bucket.totals,
    };
    let mut screen = Screen {
        output: opts.output,
        tty: std::io::stderr().is_terminal(),
        label: opts.label.clone(),
        drawn: false,
    };
    screen.line(&format!(
        "{} {} in cgroup {} (baseline {:.2} of {} vCPU{}): balance {:.3} credits",
        w.profile.name,
        w.bucket.mode,
        group.rel,
        w.profile.baseline().as_cores(),
        w.profile.vcpus,
        scale_note(opts.time_scale_milli),
        w.bucket.balance()
    ));

    let mut trace = match &opts.record {
        None => None,
        Some(path) => Some(
            trace_out::TraceWriter::create(
                path,
                &format!(
                    "burstd exec {} under {} {}",
                    program.to_string_lossy(),
                    w.profile.name,
                    w.bucket.mode
                ),
                w.profile.vcpus,
                RECORD_EVERY_NS,
                start.usage_ns,
                start_ns,
            )
            .map_err(|e| ExecError::Usage(format!("--record {}: {e}", path.display())))?,
        ),
    };

    let cmd = spawn::command_in_cgroup(program, args, procs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ExecError::Failed(format!("cannot start the runtime: {e}")))?;
    let watch = rt.block_on(supervise(
        cmd,
        &mut agent,
        &group,
        &mut screen,
        opts,
        start_ns,
        &mut trace,
    ));
    let watch = watch.map_err(|source| ExecError::Spawn {
        command: program.to_string_lossy().into_owned(),
        source,
    })?;
    screen.end_status();

    // Whatever the command left behind dies with it; then the counters are final.
    if let Err(left) = group.kill_all(Duration::from_secs(5)) {
        screen.line(&format!("processes {left:?} would not die"));
    }
    let end_ns = clock.now_ns();
    let wall = clock.wall_s();
    agent.sample_all(end_ns, wall);
    if let (Some(t), Some(w)) = (&mut trace, agent.get(WORKLOAD)) {
        match t.finish(w.last.usage_ns, w.last_at_ns) {
            Ok(()) => screen.line(&format!(
                "recorded {} rows into {}",
                t.rows,
                t.path.display()
            )),
            Err(e) => screen.line(&format!("--record {}: {e}", t.path.display())),
        }
        if watch.held_total_ns > 0 {
            screen.line(&format!(
                "held at its baseline for {} while recording: there usage is not demand, \
                 the trace is a lower bound",
                report::duration(watch.held_total_ns as f64 / 1e9)
            ));
        }
    }
    let summary = finish(&mut agent, opts, &start, &watch, end_ns, wall);
    if let Some(path) = &opts.state_file {
        state::save_file(path, &agent.snapshot(wall, &sections))?;
    }
    drop(agent);
    if let Err(e) = group.remove() {
        screen.line(&format!("cannot remove cgroup {}: {e}", group.rel));
    }
    let text = report::summary_text(&summary);
    let mut err = std::io::stderr().lock();
    for line in text.lines() {
        let _ = writeln!(err, "{}: {line}", opts.label);
    }
    Ok(Outcome {
        exit_code: watch.exit_code,
        summary,
    })
}

/// Rows of `exec --record`: one a second.
const RECORD_EVERY_NS: u64 = 1_000_000_000;

fn scale_note(k_milli: u64) -> String {
    if k_milli == 1000 {
        String::new()
    } else {
        format!(", credit clock {}× real time", k_milli as f64 / 1000.0)
    }
}

/// The agent for one workload: the config file's defaults, with exec's time scale and a
/// shorter sampling interval (a status line wants fresh numbers).
fn new_agent(
    opts: &ExecOptions,
    layout: &Layout,
    rel: &str,
    own: Vec<String>,
) -> Result<Agent, ExecError> {
    // An empty configuration is the defaults: one source of them for daemon and exec.
    let mut cfg = config::parse(std::path::Path::new("<burstd exec>"), "")
        .map_err(|e| ExecError::Failed(e.to_string()))?
        .agent;
    cfg.time_scale_milli = opts.time_scale_milli.max(1);
    cfg.max_interval_ms = 100;
    cfg.drift_check_ms = 1000;
    cfg.on_exit = config::OnExit::Keep;
    let spec = WorkloadSpec {
        name: WORKLOAD.to_string(),
        source: Source::Cgroup(rel.to_string()),
        profile: opts.profile.clone(),
        mode: opts.mode.unwrap_or(opts.profile.default_mode),
        mode_explicit: opts.mode.is_some(),
        initial_credits: opts.initial_credits,
        // `exec --record` writes its own trace.
        record: false,
    };
    Ok(Agent::new(AgentParts {
        config: cfg,
        specs: vec![spec],
        hierarchy: layout.hierarchy(),
        discover: Discoverer::system(),
        host_cpus: crate::host::host_cpus(),
        own_cgroups: own,
        boot_id: state::boot_id(),
    }))
}

struct Start {
    at_ns: u64,
    usage_ns: u64,
    balance: Credits,
    totals: crate::credit::Totals,
}

/// What the supervision loop saw.
#[derive(Default)]
struct Watch {
    exit_code: u8,
    exit: String,
    held_first_ns: Option<u64>,
    usage_at_first_held: u64,
    held_since_ns: Option<u64>,
    held_total_ns: u64,
}

/// Starts the command and runs the agent until it exits, forwarding signals.
async fn supervise(
    cmd: std::process::Command,
    agent: &mut Agent,
    group: &place::ExecGroup,
    screen: &mut Screen,
    opts: &ExecOptions,
    start_ns: u64,
    trace: &mut Option<trace_out::TraceWriter>,
) -> std::io::Result<Watch> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut child = tokio::process::Command::from(cmd).spawn()?;
    let clock = SystemClock;
    let every_ns = if screen.tty {
        250 * MS
    } else {
        (opts.log_every_s * 1000.0) as u64 * MS
    };
    let mut next_status = start_ns + every_ns.min(1000 * MS);
    let mut prev = agent
        .get(WORKLOAD)
        .map(|w| (w.last.usage_ns, w.last_at_ns))
        .unwrap_or((0, start_ns));
    let mut usage_vcpu = 0.0;
    let mut watch = Watch::default();
    if agent.get(WORKLOAD).is_some_and(|w| w.bucket.held) {
        // No credits at all from the start: held before the first instruction.
        watch.held_first_ns = Some(start_ns);
        watch.usage_at_first_held = prev.0;
        watch.held_since_ns = Some(start_ns);
        screen.line("no credits: HELD AT BASELINE from the start");
    }
    let status = loop {
        let now = clock.now_ns();
        agent.tick(now, clock.wall_s());
        let usage_now = agent.get(WORKLOAD).map_or(0, |w| w.last.usage_ns);
        if let (Some(t), Some(w)) = (trace.as_mut(), agent.get(WORKLOAD)) {
            if let Err(e) = t.observe(w.last.usage_ns, w.last_at_ns) {
                screen.line(&format!(
                    "--record {}: {e}; recording stopped",
                    t.path.display()
                ));
                *trace = None;
            }
        }
        for e in agent.take_events() {
            match e {
                WorkloadEvent::Held(_) => {
                    if watch.held_first_ns.is_none() {
                        watch.held_first_ns = Some(now);
                        watch.usage_at_first_held = usage_now;
                    }
                    watch.held_since_ns = Some(now);
                    screen.line(&format!(
                        "credits exhausted after {}: HELD AT BASELINE ({:.2} vCPU)",
                        report::duration((now - start_ns) as f64 / 1e9),
                        opts.profile.baseline().as_cores()
                    ));
                }
                WorkloadEvent::Released(_) => {
                    if let Some(since) = watch.held_since_ns.take() {
                        watch.held_total_ns += now - since;
                    }
                    screen.line(&format!(
                        "credits available again after {}: released from baseline",
                        report::duration((now - start_ns) as f64 / 1e9)
                    ));
                }
                _ => {}
            }
        }
        if now >= next_status {
            if let Some(w) = agent.get(WORKLOAD) {
                let (u, at) = (w.last.usage_ns, w.last_at_ns);
                if at > prev.1 + 50 * MS {
                    usage_vcpu = (u - prev.0.min(u)) as f64 / (at - prev.1) as f64;
                    prev = (u, at);
                }
                screen.status(&report::status_line(&status_of(
                    agent,
                    usage_vcpu,
                    now - start_ns,
                    opts,
                )));
            }
            next_status = now + every_ns;
        }
        let mut next = next_status;
        if let Some(w) = agent.next_wake() {
            next = next.min(w);
        }
        let wait = Duration::from_nanos(next.saturating_sub(clock.now_ns()));
        tokio::select! {
            st = child.wait() => break st?,
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => { group.signal_all(Signal::TERM); }
            _ = hup.recv() => { group.signal_all(Signal::HUP); }
            _ = int.recv() => if !terminal_sent_it() { group.signal_all(Signal::INT); },
            _ = quit.recv() => if !terminal_sent_it() { group.signal_all(Signal::QUIT); },
        }
    };
    let end = clock.now_ns();
    if let Some(since) = watch.held_since_ns.take() {
        watch.held_total_ns += end - since;
    }
    (watch.exit_code, watch.exit) = match (status.code(), status.signal()) {
        (Some(c), _) => (c.clamp(0, 255) as u8, format!("exit status {c}")),
        (None, Some(s)) => (
            (128 + s).clamp(0, 255) as u8,
            format!("killed by signal {s}"),
        ),
        (None, None) => (1, "ended".into()),
    };
    Ok(watch)
}

/// A SIGINT or SIGQUIT typed at the terminal reaches the whole foreground process group, the
/// command included (it stays in burstd's group so that it can read the terminal): passing it
/// on again would deliver it twice. Sent any other way (`kill -INT`), it is passed on.
fn terminal_sent_it() -> bool {
    let stdin = std::io::stdin();
    stdin.is_terminal()
        && rustix::termios::tcgetpgrp(&stdin).is_ok_and(|fg| fg == rustix::process::getpgrp())
}

fn status_of(agent: &Agent, usage_vcpu: f64, elapsed_ns: u64, opts: &ExecOptions) -> Status {
    let policy = agent.config().policy;
    let k = agent.config().time_scale_milli.max(1) as f64 / 1000.0;
    let Some(w) = agent.get(WORKLOAD) else {
        return Status {
            elapsed_s: elapsed_ns as f64 / 1e9,
            mode: Mode::Standard,
            balance: Credits::ZERO,
            surplus: Credits::ZERO,
            ceiling_vcpu: 0.0,
            usage_vcpu,
            baseline_vcpu: opts.profile.baseline().as_cores(),
            held: false,
            to_zero_s: None,
        };
    };
    let rate = crate::credit::Rate::from_cores_f64(usage_vcpu).unwrap_or(crate::credit::Rate::ZERO);
    Status {
        elapsed_s: elapsed_ns as f64 / 1e9,
        mode: w.bucket.mode,
        balance: w.bucket.balance(),
        surplus: w.bucket.surplus,
        ceiling_vcpu: w.ceiling(&policy).as_cores(),
        usage_vcpu,
        baseline_vcpu: w.profile.baseline().as_cores(),
        held: w.bucket.held,
        to_zero_s: time_to_exhaustion(&w.bucket, &w.profile, rate).map(|ns| ns as f64 / 1e9 / k),
    }
}

/// Stops the workload (its surplus is charged, T2 credits are lost) and sums the run up.
fn finish(
    agent: &mut Agent,
    opts: &ExecOptions,
    start: &Start,
    watch: &Watch,
    end_ns: u64,
    wall_s: u64,
) -> RunSummary {
    let (usage_end, surplus_at_end, end_balance_running, last_at) = agent
        .get(WORKLOAD)
        .map(|w| {
            (
                w.last.usage_ns,
                w.bucket.surplus,
                w.bucket.balance(),
                w.last_at_ns,
            )
        })
        .unwrap_or((start.usage_ns, Credits::ZERO, Credits::ZERO, end_ns));
    agent.stop_workload(WORKLOAD, wall_s);
    let (totals, mode) = agent
        .get(WORKLOAD)
        .map(|w| (w.bucket.totals, w.bucket.mode))
        .unwrap_or((start.totals, Mode::Standard));
    let charged = totals.charged - start.totals.charged;
    let run_ns = last_at.saturating_sub(start.at_ns).max(1);
    let cpu_ns = usage_end.saturating_sub(start.usage_ns);
    let (usage_before, usage_held) = match watch.held_first_ns {
        Some(h) => {
            let before = watch.usage_at_first_held.saturating_sub(start.usage_ns);
            let after = usage_end.saturating_sub(watch.usage_at_first_held);
            let held_span = last_at.saturating_sub(h).max(1);
            (
                Some(before as f64 / h.saturating_sub(start.at_ns).max(1) as f64),
                Some(after as f64 / held_span as f64),
            )
        }
        None => (None, None),
    };
    RunSummary {
        profile: opts.profile.name.clone(),
        mode,
        time_scale: opts.time_scale_milli as f64 / 1000.0,
        run_s: run_ns as f64 / 1e9,
        cpu_s: cpu_ns as f64 / 1e9,
        start_balance: start.balance,
        end_balance: end_balance_running,
        spent: totals.spent - start.totals.spent,
        earned: totals.earned - start.totals.earned,
        held_after_s: watch
            .held_first_ns
            .map(|h| h.saturating_sub(start.at_ns) as f64 / 1e9),
        held_s: watch.held_total_ns as f64 / 1e9,
        usage_before_held: usage_before,
        usage_while_held: usage_held,
        surplus_at_end,
        charged,
        cost_usd: opts.profile.surplus_cost_usd(charged),
        exit: watch.exit.clone(),
    }
}
