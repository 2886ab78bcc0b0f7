//! The Prometheus endpoint: `GET /metrics` and `GET /healthz`.
//!
//! Every scrape asks the agent's task for a fresh [`Scrape`] (it samples every workload's
//! counters at that moment) and builds a new registry from it, so a workload that stopped
//! is simply absent from the next scrape. Encoding is `prometheus-client`'s OpenMetrics text;
//! a client that does not ask for OpenMetrics gets the classic text format (0.0.4).

use crate::agent::daemon::{Control, SaveStats};
use crate::agent::view::WorkloadView;
use crate::agent::Health;
use crate::http::{self, Body};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a scrape waits for the agent's task before answering 503.
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything one scrape exports, gathered by the agent's task.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub workloads: Vec<WorkloadView>,
    pub health: Health,
    pub saves: SaveStats,
    /// Shared with the loop, which observes every turn into it.
    pub tick_duration: Histogram,
}

/// The histogram of control-loop turn durations, in seconds (50 µs to ~0.8 s).
pub fn tick_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_05, 2.0, 15,
    ))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    profile: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type FGauge = Gauge<f64, AtomicU64>;
type FCounter = Counter<f64, AtomicU64>;

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
    "burstd_build_info",
    "burstd_workloads",
    "burstd_cgroup_write_errors_total",
    "burstd_cgroup_read_errors_total",
    "burstd_external_quota_changes_total",
    "burstd_state_saves_total",
    "burstd_state_save_failures_total",
    "burstd_last_state_save_timestamp_seconds",
    "burstd_tick_duration_seconds",
];

fn labels(w: &WorkloadView) -> WorkloadLabels {
    WorkloadLabels {
        workload: w.instance_id.clone(),
        profile: w.profile.clone(),
        mode: w.cpu_credits.clone(),
    }
}

fn per_workload_gauge(
    reg: &mut Registry,
    name: &str,
    help: &str,
    views: &[WorkloadView],
    value: impl Fn(&WorkloadView) -> Option<f64>,
) {
    let family = Family::<WorkloadLabels, FGauge>::default();
    for w in views {
        if let Some(v) = value(w) {
            family.get_or_create(&labels(w)).set(v);
        }
    }
    reg.register(name, help, family);
}

fn per_workload_counter(
    reg: &mut Registry,
    name: &str,
    help: &str,
    views: &[WorkloadView],
    value: impl Fn(&WorkloadView) -> f64,
) {
    let family = Family::<WorkloadLabels, FCounter>::default();
    for w in views {
        family.get_or_create(&labels(w)).inc_by(value(w).max(0.0));
    }
    reg.register(name, help, family);
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

/// Builds this scrape's registry. Names are registered without `_total`: the encoder adds it.
pub fn registry(s: &Scrape) -> Registry {
    let mut r = Registry::default();
    let v = &s.workloads;
    per_workload_gauge(
        &mut r,
        "burstd_cpu_credit_balance",
        "Credit balance E + L (EC2 CPUCreditBalance), credits",
        v,
        |w| Some(w.cpu_credit_balance),
    );
    per_workload_gauge(
        &mut r,
        "burstd_cpu_credit_earned_balance",
        "Earned credits E, credits",
        v,
        |w| Some(w.earned_credits),
    );
    per_workload_gauge(
        &mut r,
        "burstd_cpu_launch_credit_balance",
        "Launch credits L, credits",
        v,
        |w| Some(w.launch_credits),
    );
    per_workload_gauge(
        &mut r,
        "burstd_cpu_surplus_credit_balance",
        "Surplus credits S (EC2 CPUSurplusCreditBalance), credits",
        v,
        |w| Some(w.surplus_credit_balance),
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_credit_usage",
        "Credits spent (EC2 CPUCreditUsage, cumulative)",
        v,
        |w| w.credits_spent,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_credits_earned",
        "Credits earned, before the accrual limit",
        v,
        |w| w.credits_earned,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_credits_discarded",
        "Earned credits discarded at the accrual limit",
        v,
        |w| w.credits_discarded,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_surplus_credits_charged",
        "Surplus credits charged (EC2 CPUSurplusCreditsCharged, cumulative)",
        v,
        |w| w.surplus_credits_charged,
    );
    per_workload_counter(
        &mut r,
        "burstd_surplus_cost_dollars",
        "Cost of the surplus credits charged, dollars",
        v,
        |w| w.surplus_cost_dollars,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_usage_seconds",
        "CPU time used by the workload's current cgroup, seconds",
        v,
        |w| w.cpu_usage_seconds,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_throttled_seconds",
        "Time the workload's current cgroup spent throttled, seconds",
        v,
        |w| w.cpu_throttled_seconds,
    );
    per_workload_counter(
        &mut r,
        "burstd_cpu_throttled_periods",
        "Enforcement periods in which the workload's current cgroup was throttled",
        v,
        |w| w.cpu_throttled_periods as f64,
    );
    per_workload_gauge(
        &mut r,
        "burstd_cpu_ceiling_cores",
        "CPU limit written to the cgroup now, cores (no limit reads as the host's CPU count)",
        v,
        |w| w.ceiling_cores,
    );
    per_workload_gauge(
        &mut r,
        "burstd_cpu_baseline_cores",
        "The profile's baseline, cores",
        v,
        |w| Some(w.baseline_cores),
    );
    per_workload_gauge(
        &mut r,
        "burstd_workload_held_at_baseline",
        "1 while a standard workload is held at its baseline",
        v,
        |w| Some(f64::from(u8::from(w.held_at_baseline))),
    );
    per_workload_gauge(
        &mut r,
        "burstd_seconds_until_exhausted",
        "Real seconds until the balance runs out at the current CPU rate (+Inf: not draining)",
        v,
        |w| Some(w.seconds_until_exhausted.unwrap_or(f64::INFINITY)),
    );

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
        s.tick_duration.clone(),
    );
    r
}

/// Encodes a scrape: OpenMetrics text, or the classic Prometheus text format.
pub fn encode(s: &Scrape, openmetrics: bool) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(s));
    let out = out
        .replace(" inf\n", " +Inf\n")
        .replace(" -inf\n", " -Inf\n");
    if openmetrics {
        out
    } else {
        to_classic_text(&out)
    }
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
pub async fn ask_scrape(tx: &mpsc::Sender<Control>) -> Option<Scrape> {
    let (reply, rx) = oneshot::channel();
    tx.send(Control::Scrape(reply)).await.ok()?;
    tokio::time::timeout(AGENT_TIMEOUT, rx).await.ok()?.ok()
}

async fn ask_ping(tx: &mpsc::Sender<Control>) -> Option<()> {
    let (reply, rx) = oneshot::channel();
    tx.send(Control::Ping(reply)).await.ok()?;
    tokio::time::timeout(AGENT_TIMEOUT, rx).await.ok()?.ok()
}

async fn handle(req: Request<Incoming>, tx: mpsc::Sender<Control>) -> Response<Body> {
    let text =
        |status, body: &'static str| http::response(status, "text/plain; charset=utf-8", body);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => match ask_scrape(&tx).await {
            Some(s) => {
                let om = wants_openmetrics(&req);
                let ct = if om { OPENMETRICS_TYPE } else { TEXT_TYPE };
                http::response(StatusCode::OK, ct, encode(&s, om))
            }
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent's control loop does not answer\n",
            ),
        },
        // Healthy = the control loop answers within the timeout.
        "/healthz" => match ask_ping(&tx).await {
            Some(()) => text(StatusCode::OK, "ok\n"),
            None => text(
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

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tx: mpsc::Sender<Control>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let tx = tx.clone();
                tokio::spawn(http::serve_connection(stream, move |req| {
                    handle(req, tx.clone())
                }));
            }
            Err(e) => http::accept_failed("metrics", e).await,
        }
    }
}

#[cfg(test)]
mod tests;
