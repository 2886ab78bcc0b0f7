//! A read-only picture of every workload at one moment, in plain numbers: what the metrics
//! endpoint exports and what the API's DescribeCreditBalances answers. One place computes it,
//! so the two never disagree.

use super::control::Agent;
use super::decide::quota_for;
use crate::credit::{time_to_exhaustion, NS_PER_SEC};
use serde::{Deserialize, Serialize};

/// One workload as of its last sample. Credits are in credits, CPU in cores, time in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkloadView {
    /// The workload name (the API's InstanceId).
    pub instance_id: String,
    /// The container's name, for an instance of the `[containers]` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub profile: String,
    /// The profile's family (`t2`, `t3`, `t3a`, `t4g`, `azure-b`, `custom`).
    pub family: String,
    /// `standard` or `unlimited`.
    pub cpu_credits: String,
    pub running: bool,
    /// E + L (EC2's CPUCreditBalance).
    pub cpu_credit_balance: f64,
    /// E, the earned part of the balance (a balance, not a total). `EarnedCreditBalance` in
    /// the API; its old name `EarnedCredits` is still sent and read until the next release.
    #[serde(rename = "EarnedCreditBalance")]
    pub earned_credits: f64,
    pub launch_credits: f64,
    /// S (EC2's CPUSurplusCreditBalance).
    pub surplus_credit_balance: f64,
    /// Totals since the workload was first managed (state file included).
    pub credits_spent: f64,
    /// Credits earned since first managed, before the accrual limit (a running total).
    /// `CreditsEarnedTotal` in the API; old name `CreditsEarned`, as for `EarnedCreditBalance`.
    #[serde(rename = "CreditsEarnedTotal")]
    pub credits_earned: f64,
    pub credits_discarded: f64,
    pub surplus_credits_charged: f64,
    pub surplus_cost_dollars: f64,
    /// The kernel's counters of the current cgroup (they restart at 0 in a new cgroup).
    pub cpu_usage_seconds: f64,
    pub cpu_throttled_seconds: f64,
    pub cpu_throttled_periods: u64,
    /// The CPU limit written now, in cores; no limit (or nothing written yet) reads as the
    /// host's CPU count, all it could use. `None` while the workload is not running.
    pub ceiling_cores: Option<f64>,
    pub baseline_cores: f64,
    /// CPU used over the last sampling interval, in cores.
    pub usage_cores: f64,
    pub held_at_baseline: bool,
    /// Real seconds until the balance (standard) or E (unlimited) runs out at `usage_cores`;
    /// `None`: not draining at that rate (shown as +Inf in metrics).
    pub seconds_until_exhausted: Option<f64>,
    /// Looks at which the usage counter had gone backwards on the same cgroup (each charged
    /// at the ceiling in force). Metrics only: not part of the API's answer.
    #[serde(skip)]
    pub usage_counter_resets: u64,
}

/// Every configured workload that is running now, in name order.
pub fn workload_views(agent: &Agent) -> Vec<WorkloadView> {
    let k = agent.config.time_scale_milli.max(1) as f64 / 1000.0;
    let host = agent.host_cpus() as f64;
    let mut out: Vec<WorkloadView> = agent
        .workloads()
        .filter(|w| w.is_running())
        .map(|w| {
            let b = &w.bucket;
            let t = &b.totals;
            let ceiling = match w.written {
                Some(q) => match q.quota_us {
                    Some(quota) => quota as f64 / q.period_us.max(1) as f64,
                    None => host,
                },
                None => host,
            };
            let secs = |ns: u64| ns as f64 / NS_PER_SEC as f64;
            WorkloadView {
                instance_id: w.name.clone(),
                container: w.container.as_ref().map(|c| c.name.clone()),
                profile: w.profile.name.clone(),
                family: w.profile.family.as_str().to_string(),
                cpu_credits: b.mode.as_str().to_string(),
                running: w.is_running(),
                cpu_credit_balance: b.balance().as_f64(),
                earned_credits: b.earned.as_f64(),
                launch_credits: b.launch.as_f64(),
                surplus_credit_balance: b.surplus.as_f64(),
                credits_spent: t.spent.as_f64(),
                credits_earned: t.earned.as_f64(),
                credits_discarded: t.discarded.as_f64(),
                surplus_credits_charged: t.charged.as_f64(),
                surplus_cost_dollars: w.profile.surplus_cost_usd(t.charged),
                cpu_usage_seconds: secs(w.last.usage_ns),
                cpu_throttled_seconds: secs(w.last.throttled_ns),
                cpu_throttled_periods: w.last.nr_throttled,
                ceiling_cores: Some(ceiling),
                baseline_cores: w.profile.baseline().as_cores(),
                usage_cores: w.usage_rate.as_cores(),
                // Held as the kernel sees it: the model says held and the quota that holds it
                // was written (not while the write fails: the cores say what is in force).
                held_at_baseline: b.held
                    && w.written
                        == Some(quota_for(
                            w.ceiling_in_force(&agent.config.policy),
                            agent.config.period_us,
                            agent.host_cpus(),
                        )),
                // Held: exhausted now, although at its baseline it no longer drains. The model
                // runs on the scaled clock: real time = scaled / time_scale.
                seconds_until_exhausted: if b.held {
                    Some(0.0)
                } else {
                    time_to_exhaustion(b, &w.profile, w.usage_rate)
                        .map(|scaled_ns| secs(scaled_ns) / k)
                },
                usage_counter_resets: u64::from(w.usage_counter_resets),
            }
        })
        .collect();
    out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    out
}
