//! The Prometheus endpoint: `GET /metrics` and `GET /healthz`.
//!
//! A scrape asks the agent's task for a fresh [`Scrape`] through a narrow handle,
//! [`Asker<Probe>`] (the loop samples every workload's counters at that moment), and builds a
//! new registry from it, so a workload that stopped is simply absent from the next scrape.
//! The rendered body is shared with concurrent scrapes of the next [`RENDER_REUSE`] ([`Rendered`]). Encoding is `prometheus-client`'s OpenMetrics text;
//! a client that does not ask for OpenMetrics gets the classic text format (0.0.4).

use crate::agent::persist::SaveStats;
use crate::agent::view::WorkloadView;
use crate::agent::Health;
use crate::ask::{Asker, Reply};
use crate::http::{self, Body};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a scrape waits for the agent's task before answering 503.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint asks of the control loop, through its [`Asker<Probe>`].
#[derive(Debug)]
pub enum Probe {
    /// Sample every workload now and answer with the metrics (a Prometheus scrape).
    Scrape(Reply<Scrape>),
    /// Answer at once: the loop is alive (`/healthz`).
    Ping(Reply<()>),
}

/// Everything one scrape exports, gathered by the agent's task.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub workloads: Vec<WorkloadView>,
    pub health: Health,
    pub saves: SaveStats,
    /// Shared with the loop, which observes into them.
    pub histograms: LoopHistograms,
}

/// The loop's histograms (cheap clones share the counts).
#[derive(Clone, Debug)]
pub struct LoopHistograms {
    /// Duration of each control-loop turn, seconds.
    pub tick: Histogram,
    /// CPU used beyond the balance before each hold's cap, seconds.
    pub hold_overshoot: Histogram,
    /// From a balance reaching zero to its cap being written, seconds.
    pub hold_late: Histogram,
}

impl LoopHistograms {
    pub fn new() -> Self {
        // 50 µs to ~0.8 s.
        let buckets =
            || prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 15);
        LoopHistograms {
            tick: Histogram::new(buckets()),
            hold_overshoot: Histogram::new(buckets()),
            hold_late: Histogram::new(buckets()),
        }
    }
}

impl Default for LoopHistograms {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// Every metric name burstd exports (as a sample name, counters with `_total`), for tests and
/// the alert-rule check.
pub const METRIC_NAMES: &[&str] = &[
    "burstd_cpu_credit_balance",
    "burstd_cpu_credit_earned_balance",
    "burstd_cpu_launch_credit_balance",
    "burstd_cpu_surplus_credit_balance",
    "burstd_cpu_credit_usage_total",
    "burstd_cpu_credits_earned_total",
    "burstd_cpu_credits_discarded_total",
    "burstd_cpu_surplus_credits_charged_total",
    "burstd_surplus_cost_dollars_total",
    "burstd_cpu_usage_seconds_total",
    "burstd_cpu_throttled_seconds_total",
    "burstd_cpu_throttled_periods_total",
    "burstd_cpu_ceiling_cores",
    "burstd_cpu_baseline_cores",
    "burstd_workload_held_at_baseline",
    "burstd_seconds_until_exhausted",
    "burstd_workload_info",
    "burstd_build_info",
    "burstd_workloads",
    "burstd_cgroup_write_errors_total",
    "burstd_cgroup_read_errors_total",
    "burstd_external_quota_changes_total",
    "burstd_container_label_errors_total",
    "burstd_workload_name_collisions_total",
    "burstd_cpu_usage_resets_total",
    "burstd_cgroup_reopens_total",
    "burstd_cgroup_files_open",
    "burstd_state_saves_total",
    "burstd_state_save_failures_total",
    "burstd_last_state_save_timestamp_seconds",
    "burstd_tick_duration_seconds",
    "burstd_hold_overshoot_cpu_seconds",
    "burstd_hold_late_seconds",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One per-workload metric family: rendered straight into the body (at 10,000 workloads a
/// registry of labelled families costs more than the sampling; see BENCHMARKS.md §4).
struct WorkloadFamily {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    /// `None`: no sample for this workload.
    value: fn(&WorkloadView) -> Option<f64>,
}

const WORKLOAD_FAMILIES: &[WorkloadFamily] = &[
    WorkloadFamily {
        name: "burstd_cpu_credit_balance",
        help: "Credit balance E + L (EC2 CPUCreditBalance), credits",
        kind: Kind::Gauge,
        value: |w| Some(w.cpu_credit_balance),
    },
    WorkloadFamily {
        name: "burstd_cpu_credit_earned_balance",
        help: "Earned credits E, credits",
        kind: Kind::Gauge,
        value: |w| Some(w.earned_credits),
    },
    WorkloadFamily {
        name: "burstd_cpu_launch_credit_balance",
        help: "Launch credits L, credits",
        kind: Kind::Gauge,
        value: |w| Some(w.launch_credits),
    },
    WorkloadFamily {
        name: "burstd_cpu_surplus_credit_balance",
        help: "Surplus credits S (EC2 CPUSurplusCreditBalance), credits",
        kind: Kind::Gauge,
        value: |w| Some(w.surplus_credit_balance),
    },
    WorkloadFamily {
        name: "burstd_cpu_credit_usage",
        help: "Credits spent (EC2 CPUCreditUsage, cumulative)",
        kind: Kind::Counter,
        value: |w| Some(w.credits_spent),
    },
    WorkloadFamily {
        name: "burstd_cpu_credits_earned",
        help: "Credits earned, before the accrual limit",
        kind: Kind::Counter,
        value: |w| Some(w.credits_earned),
    },
    WorkloadFamily {
        name: "burstd_cpu_credits_discarded",
        help: "Earned credits discarded at the accrual limit",
        kind: Kind::Counter,
        value: |w| Some(w.credits_discarded),
    },
    WorkloadFamily {
        name: "burstd_cpu_surplus_credits_charged",
        help: "Surplus credits charged (EC2 CPUSurplusCreditsCharged, cumulative)",
        kind: Kind::Counter,
        value: |w| Some(w.surplus_credits_charged),
    },
    WorkloadFamily {
        name: "burstd_surplus_cost_dollars",
        help: "Cost of the surplus credits charged, dollars",
        kind: Kind::Counter,
        value: |w| Some(w.surplus_cost_dollars),
    },
    WorkloadFamily {
        name: "burstd_cpu_usage_seconds",
        help: "CPU time used by the workload's current cgroup, seconds",
        kind: Kind::Counter,
        value: |w| Some(w.cpu_usage_seconds),
    },
    WorkloadFamily {
        name: "burstd_cpu_throttled_seconds",
        help: "Time the workload's current cgroup spent throttled, seconds",
        kind: Kind::Counter,
        value: |w| Some(w.cpu_throttled_seconds),
    },
    WorkloadFamily {
        name: "burstd_cpu_throttled_periods",
        help: "Enforcement periods in which the workload's current cgroup was throttled",
        kind: Kind::Counter,
        value: |w| Some(w.cpu_throttled_periods as f64),
    },
    WorkloadFamily {
        name: "burstd_cpu_ceiling_cores",
        help: "CPU limit written to the cgroup now, cores (no limit reads as the host's CPU count)",
        kind: Kind::Gauge,
        value: |w| w.ceiling_cores,
    },
    WorkloadFamily {
        name: "burstd_cpu_baseline_cores",
        help: "The profile's baseline, cores",
        kind: Kind::Gauge,
        value: |w| Some(w.baseline_cores),
    },
    WorkloadFamily {
        name: "burstd_workload_held_at_baseline",
        help: "1 while a standard workload is held at its baseline by a quota the kernel accepted",
        kind: Kind::Gauge,
        value: |w| Some(f64::from(u8::from(w.held_at_baseline))),
    },
    WorkloadFamily {
        name: "burstd_cpu_usage_resets",
        help: "Looks at which the cgroup's usage counter had gone backwards (zeroed by its owner): each interval charged at the ceiling in force",
        kind: Kind::Counter,
        value: |w| Some(w.usage_counter_resets as f64),
    },
    WorkloadFamily {
        name: "burstd_seconds_until_exhausted",
        help:
            "Real seconds until the balance runs out at the current CPU rate (+Inf: not draining)",
        kind: Kind::Gauge,
        value: |w| Some(w.seconds_until_exhausted.unwrap_or(f64::INFINITY)),
    },
];

/// Appends `v` escaped as a label value (backslash, double quote and newline, as both text
/// formats require).
fn push_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The identity labels of one workload's series: `{workload="…"}`, with `container="…"`
/// after it for an instance of the `[containers]` source. Only labels that stay the same for
/// the series' life: attributes that change (profile, mode) are on `burstd_workload_info`, so a
/// mode switch continues the same counter series (issue 17 item 1).
fn label_set(w: &WorkloadView) -> String {
    let mut s = String::with_capacity(w.instance_id.len() + 32);
    push_identity(&mut s, w);
    s.push('}');
    s
}

/// `{workload="…"[,container="…"]` without the closing brace.
fn push_identity(s: &mut String, w: &WorkloadView) {
    s.push_str("{workload=\"");
    push_label_value(s, &w.instance_id);
    if let Some(c) = &w.container {
        s.push_str("\",container=\"");
        push_label_value(s, c);
    }
    s.push('"');
}

/// The info series' labels: the identity, then `profile`, `mode` and `family`.
fn info_label_set(w: &WorkloadView) -> String {
    let mut s = String::with_capacity(w.instance_id.len() + w.profile.len() + 64);
    push_identity(&mut s, w);
    s.push_str(",profile=\"");
    push_label_value(&mut s, &w.profile);
    s.push_str("\",mode=\"");
    push_label_value(&mut s, &w.cpu_credits);
    s.push_str("\",family=\"");
    push_label_value(&mut s, &w.family);
    s.push_str("\"}");
    s
}

/// Name and help of the per-workload info series (always 1; join it with
/// `* on(workload) group_left(profile, mode) burstd_workload_info`).
const WORKLOAD_INFO: &str = "burstd_workload_info";
const WORKLOAD_INFO_HELP: &str =
    "A workload's changeable attributes as labels: profile, mode (standard or unlimited), family (always 1)";

/// A sample value: shortest round-trip decimal, `+Inf`/`-Inf`/`NaN` as both formats spell them.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// Writes every per-workload family. `openmetrics`: a counter family is named without
/// `_total` in HELP/TYPE (its samples carry it); classic text names it with `_total`.
fn encode_workloads(out: &mut String, views: &[WorkloadView], openmetrics: bool) {
    // OpenMetrics has an info type: family `burstd_workload`, samples `burstd_workload_info`;
    // the classic format has none, so there it is a gauge named like its samples.
    let (family, kind) = match openmetrics {
        true => (WORKLOAD_INFO.trim_end_matches("_info"), "info"),
        false => (WORKLOAD_INFO, "gauge"),
    };
    for (head, tail) in [("# HELP ", WORKLOAD_INFO_HELP), ("# TYPE ", kind)] {
        out.push_str(head);
        out.push_str(family);
        out.push(' ');
        out.push_str(tail);
        out.push_str(if head == "# HELP " { ".\n" } else { "\n" });
    }
    for w in views {
        out.push_str(WORKLOAD_INFO);
        out.push_str(&info_label_set(w));
        out.push_str(" 1\n");
    }
    let labels: Vec<String> = views.iter().map(label_set).collect();
    for f in WORKLOAD_FAMILIES {
        let (kind, total) = match f.kind {
            Kind::Gauge => ("gauge", ""),
            Kind::Counter => ("counter", "_total"),
        };
        let family_suffix = if openmetrics { "" } else { total };
        for head in ["# HELP ", "# TYPE "] {
            out.push_str(head);
            out.push_str(f.name);
            out.push_str(family_suffix);
            out.push(' ');
            if head == "# HELP " {
                out.push_str(f.help);
                out.push('.');
            } else {
                out.push_str(kind);
            }
            out.push('\n');
        }
        for (w, l) in views.iter().zip(&labels) {
            let Some(mut v) = (f.value)(w) else {
                continue;
            };
            if f.kind == Kind::Counter {
                // A counter never goes negative.
                v = v.max(0.0);
            }
            out.push_str(f.name);
            out.push_str(total);
            out.push_str(l);
            out.push(' ');
            push_value(out, v);
            out.push('\n');
        }
    }
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = FGauge::default();
    g.set(v);
    reg.register(name, help, g);
}

/// Builds this scrape's registry of the agent-wide metrics (the per-workload families are
/// written by [`encode_workloads`]). Names are registered without `_total`: the encoder adds it.
pub fn registry(s: &Scrape) -> Registry {
    let mut r = Registry::default();
    let v = &s.workloads;
    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .set(1);
    r.register("burstd_build_info", "burstd's version (always 1)", build);
    gauge(
        &mut r,
        "burstd_workloads",
        "Workloads running now",
        v.len() as f64,
    );
    counter(
        &mut r,
        "burstd_cgroup_write_errors",
        "Failed CPU quota writes",
        s.health.cgroup_write_errors,
    );
    counter(
        &mut r,
        "burstd_cgroup_read_errors",
        "Failed cgroup reads",
        s.health.cgroup_read_errors,
    );
    counter(
        &mut r,
        "burstd_external_quota_changes",
        "Quotas found changed by another writer (and put back)",
        s.health.external_quota_changes,
    );
    counter(
        &mut r,
        "burstd_container_label_errors",
        "Containers left alone because of a bad burstd.* label (each container counted once)",
        s.health.container_label_errors,
    );
    counter(
        &mut r,
        "burstd_workload_name_collisions",
        "Cgroups left alone because another cgroup already had their workload name (each counted once)",
        s.health.name_collisions,
    );
    counter(
        &mut r,
        "burstd_cgroup_reopens",
        "Cgroups reopened because a control file kept open answered ENODEV/ENOENT (a directory removed, perhaps made again)",
        s.health.cgroup_reopens,
    );
    gauge(
        &mut r,
        "burstd_cgroup_files_open",
        "Control files kept open: every usage counter, then quota files, then the rest, as the open-file limit allows",
        s.health.cgroup_files_open as f64,
    );
    counter(
        &mut r,
        "burstd_state_saves",
        "State file saves",
        s.saves.saves,
    );
    counter(
        &mut r,
        "burstd_state_save_failures",
        "Failed state file saves",
        s.saves.failures,
    );
    gauge(
        &mut r,
        "burstd_last_state_save_timestamp_seconds",
        "Time of the last successful state save, seconds since the epoch",
        s.saves.last_success_unix_s as f64,
    );
    r.register(
        "burstd_tick_duration_seconds",
        "Duration of one control-loop turn, seconds",
        s.histograms.tick.clone(),
    );
    r.register(
        "burstd_hold_overshoot_cpu_seconds",
        "CPU a workload used beyond its balance (net of earnings) before its cap was written, per hold, seconds",
        s.histograms.hold_overshoot.clone(),
    );
    r.register(
        "burstd_hold_late_seconds",
        "Time from a balance reaching zero (estimated from the last interval's rate) to its cap being written, per hold, seconds",
        s.histograms.hold_late.clone(),
    );
    r
}

/// Encodes a scrape: OpenMetrics text, or the classic Prometheus text format.
pub fn encode(s: &Scrape, openmetrics: bool) -> String {
    // ~150 bytes per workload and family line.
    let mut out = String::with_capacity(4096 + s.workloads.len() * WORKLOAD_FAMILIES.len() * 150);
    encode_workloads(&mut out, &s.workloads, openmetrics);
    let mut global = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut global, &registry(s));
    if openmetrics {
        out.push_str(&global);
    } else {
        out.push_str(&to_classic_text(&global));
    }
    out
}

/// OpenMetrics text → Prometheus text format 0.0.4: no `# EOF` or `# UNIT`, and a counter's
/// family is named with its `_total` suffix (the name its samples carry).
fn to_classic_text(om: &str) -> String {
    let counters: HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Whether the client asked for OpenMetrics (Prometheus does when it may).
fn wants_openmetrics(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// Asks the agent's task for a fresh scrape.
pub async fn ask_scrape(probes: &Asker<Probe>) -> Option<Scrape> {
    probes.ask(Probe::Scrape).await.ok()
}

/// How long a rendered scrape is served again to other scrapes.
pub const RENDER_REUSE: Duration = Duration::from_secs(1);

/// The last rendered body of each format, shared by every connection: scrapes within
/// [`RENDER_REUSE`] of a rendering get the same bytes while any connection still holds them
/// (one body however many clients are sent it), and only one rendering runs at a time (the
/// others wait for it). The cache itself holds no body: once the last connection sending it
/// is done, the body is freed.
#[derive(Clone, Default)]
pub struct Rendered {
    /// Index: 0 classic text, 1 OpenMetrics.
    slots: Arc<tokio::sync::Mutex<[Slot; 2]>>,
}

/// When a body was rendered, and the body (`None`: the loop did not answer then).
type Slot = Option<(Instant, Option<Weak<String>>)>;

/// A shared body as hyper sends it (no copy).
struct SharedBody(Arc<String>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Rendered {
    /// The body for `openmetrics`, rendered now or within the last [`RENDER_REUSE`]; `None`:
    /// the control loop did not answer (also remembered for [`RENDER_REUSE`]).
    pub async fn get(&self, probes: &Asker<Probe>, openmetrics: bool) -> Option<Bytes> {
        let mut slots = self.slots.lock().await;
        let slot = &mut slots[usize::from(openmetrics)];
        if let Some((at, body)) = slot {
            if at.elapsed() < RENDER_REUSE {
                match body {
                    None => return None,
                    Some(weak) => {
                        if let Some(body) = weak.upgrade() {
                            return Some(Bytes::from_owner(SharedBody(body)));
                        }
                    }
                }
            }
        }
        // Arc::new moves the String: the body is not copied.
        let body: Option<Arc<String>> = ask_scrape(probes)
            .await
            .map(|s| Arc::new(encode(&s, openmetrics)));
        *slot = Some((Instant::now(), body.as_ref().map(Arc::downgrade)));
        body.map(|b| Bytes::from_owner(SharedBody(b)))
    }
}

async fn handle(
    req: Request<Incoming>,
    probes: Asker<Probe>,
    rendered: Rendered,
) -> Response<Body> {
    let text =
        |status, body: &'static str| http::response(status, "text/plain; charset=utf-8", body);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let om = wants_openmetrics(&req);
            match rendered.get(&probes, om).await {
                Some(body) => {
                    let ct = if om { OPENMETRICS_TYPE } else { TEXT_TYPE };
                    http::response(StatusCode::OK, ct, body)
                }
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the agent's control loop does not answer\n",
                ),
            }
        }
        // Healthy = the control loop answers within the timeout.
        "/healthz" => match probes.ask(Probe::Ping).await {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent's control loop does not answer\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "burstd serves /metrics and /healthz\n",
        ),
    }
}

/// Serves the endpoint on `listener` until the task is dropped, at most `max_connections`
/// connections at once (see [`crate::http`] for every limit).
pub async fn serve(listener: TcpListener, probes: Asker<Probe>, max_connections: usize) {
    let gate = http::Gate::new(
        "metrics",
        max_connections,
        "text/plain; charset=utf-8",
        "too many connections; try again later\n",
    );
    let rendered = Rendered::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Some(permit) = gate.admit(&stream) else {
                    continue;
                };
                let probes = probes.clone();
                let rendered = rendered.clone();
                tokio::spawn(http::serve_connection(stream, permit, move |req| {
                    handle(req, probes.clone(), rendered.clone())
                }));
            }
            Err(e) => http::accept_failed("metrics", e).await,
        }
    }
}

#[cfg(test)]
mod tests;
