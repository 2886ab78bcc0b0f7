//! `burstd advise`: one trace replayed on many instance types, ranked by monthly cost. Pure.
//!
//! The trace's utilisation is a percentage of `vcpus` vCPUs (the machine it was measured on),
//! so its demand is in cores. Each burstable option replays it through [`simulate`] exactly as
//! `burstd simulate --profile P --mode M` would, with every segment's utilisation rescaled to
//! P's vCPUs as `u * vcpus / P.vcpus` ([`rescale`]); a fixed-size option delivers the demand up
//! to its vCPUs. Costs are those of `simulate`'s price comparison (instance hours + surplus
//! charged + surplus still owed at the end), scaled from the trace's duration to a month of
//! [`MONTH_HOURS`] as if the trace repeated.

use super::engine::{simulate, ComparePrices, SimConfig, SimError, SimResult};
use super::prices::PriceTable;
use super::trace::{Event, Segment};
use crate::credit::{Family, Mode, Profile, NS_PER_SEC};
use serde::Serialize;

/// Hours in a billing month, as AWS's calculators count them.
pub const MONTH_HOURS: f64 = 730.0;

/// One row of the ranking.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdviseOption {
    pub instance_type: String,
    /// `standard`, `unlimited`, or `fixed` for a fixed-performance type.
    pub mode: String,
    pub vcpus: u32,
    pub hourly_usd: f64,
    /// `trace_cost_usd` × 730 h / the trace's duration.
    pub monthly_cost_usd: f64,
    pub held_at_baseline_s: f64,
    /// CPU-seconds demanded and not delivered: held at baseline (standard mode), or beyond
    /// the type's vCPUs.
    pub unserved_cpu_seconds: f64,
    /// Charged during the trace (at stops and switches), as `simulate` reports it.
    pub surplus_charged_credits: f64,
    /// Still owed at the end of the trace (billed at the stop); counted in the cost.
    pub surplus_owed_credits: f64,
    /// Instance hours + surplus charged + surplus owed, over the trace.
    pub trace_cost_usd: f64,
    pub credits_exhausted_at_s: Option<f64>,
    /// The replay, for the chart (burstable options).
    #[serde(skip)]
    pub result: Option<SimResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    pub instance_type: String,
    pub mode: String,
    pub why: String,
}

/// The trace as advise read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceInfo {
    pub vcpus: u32,
    pub duration_s: f64,
    pub running_s: f64,
    /// Highest demand, in vCPUs busy.
    pub peak_vcpus: f64,
    /// Mean demand over the running time, in vCPUs busy.
    pub mean_vcpus: f64,
    pub demanded_cpu_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceInfo {
    pub region: String,
    pub date: String,
    pub source: String,
    pub overridden_by: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    pub options: Vec<AdviseOption>,
    pub recommendation: Option<Recommendation>,
    pub trace: TraceInfo,
    pub prices: PriceInfo,
    /// Candidates left out, and why (no price, too few vCPUs).
    pub skipped: Vec<String>,
    /// `standard`/`unlimited` events of the trace left out: each option runs in its own mode.
    pub mode_switches_ignored: usize,
    /// The demand in vCPUs busy, averaged over [`CHART_STEP_S`] steps: (end s, vCPUs), for
    /// the chart.
    #[serde(skip)]
    pub demand_steps: Vec<(f64, f64)>,
}

/// Step of the chart's demand averages (and of each replay's steps): CloudWatch's 300 s.
pub const CHART_STEP_S: u64 = 300;

/// The demand averaged over steps of `step_s` seconds: (end s, vCPUs busy).
fn demand_steps(demand: &[(u64, f64, bool)], step_s: u64) -> Vec<(f64, f64)> {
    let step = step_s * NS_PER_SEC;
    let mut out = Vec::new();
    let (mut now, mut filled, mut sum) = (0u64, 0u64, 0.0f64);
    for &(ns, cores, _) in demand {
        let mut left = ns;
        while left > 0 {
            let piece = left.min(step - filled);
            sum += cores * piece as f64;
            filled += piece;
            now += piece;
            left -= piece;
            if filled == step {
                out.push((secs(now), sum / step as f64));
                filled = 0;
                sum = 0.0;
            }
        }
    }
    if filled > 0 {
        out.push((secs(now), sum / filled as f64));
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdviseError {
    #[error("the trace has no running time to price")]
    NoTime,
    #[error("{0}")]
    Sim(#[from] SimError),
    #[error("no price for {0}; give one with --prices FILE (instance_type,hourly_usd)")]
    NoPrice(String),
}

/// What to compare.
pub struct AdviseRequest<'a> {
    pub segments: &'a [Segment],
    /// vCPUs the trace's percentages are of.
    pub vcpus: u32,
    /// Burstable profiles to try; `None`: every EC2 burstable profile with a price that
    /// can carry the trace's peak.
    pub profiles: Option<Vec<Profile>>,
    pub prices: &'a PriceTable,
}

/// A segment's utilisation rescaled from `from` vCPUs to `to` vCPUs, at most 100.
pub fn rescale(utilization: f64, from: u32, to: u32) -> f64 {
    (utilization * from as f64 / to as f64).min(100.0)
}

/// The trace rescaled to `to` vCPUs (what `simulate --profile` of a `to`-vCPU type replays).
pub fn rescaled(segments: &[Segment], from: u32, to: u32) -> Vec<Segment> {
    segments
        .iter()
        .map(|s| Segment {
            utilization: rescale(s.utilization, from, to),
            ..*s
        })
        .collect()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NS_PER_SEC as f64
}

/// Demand of each segment in vCPUs, and whether it runs (stops and starts applied).
fn running_demand(segments: &[Segment], vcpus: u32) -> Vec<(u64, f64, bool)> {
    let mut running = true;
    segments
        .iter()
        .map(|s| {
            match s.event {
                Some(Event::Stop) => running = false,
                Some(Event::Start) => running = true,
                _ => {}
            }
            (s.duration_ns, s.utilization * vcpus as f64 / 100.0, running)
        })
        .collect()
}

/// CPU-seconds demanded beyond `cap` vCPUs.
fn beyond(demand: &[(u64, f64, bool)], cap: u32) -> f64 {
    demand
        .iter()
        .map(|&(ns, cores, _)| (cores - cap as f64).max(0.0) * secs(ns))
        .sum()
}

/// The trace without its mode switches (`standard`, `unlimited` events): each option runs
/// in one mode from start to end. Stops and starts stay. Returns how many were dropped.
pub fn without_mode_switches(segments: &[Segment]) -> (Vec<Segment>, usize) {
    let mut dropped = 0;
    let out = segments
        .iter()
        .map(|s| match s.event {
            Some(Event::Standard | Event::Unlimited) => {
                dropped += 1;
                Segment { event: None, ..*s }
            }
            _ => *s,
        })
        .collect();
    (out, dropped)
}

/// Replays the trace on every option and ranks them. Mode switches in the trace are ignored
/// ([`without_mode_switches`]): the mode is the option's.
pub fn advise(req: &AdviseRequest) -> Result<Advice, AdviseError> {
    let (segments, switches) = without_mode_switches(req.segments);
    let req = &AdviseRequest {
        segments: &segments,
        vcpus: req.vcpus,
        profiles: req.profiles.clone(),
        prices: req.prices,
    };
    let demand = running_demand(req.segments, req.vcpus);
    let duration_ns: u64 = demand.iter().map(|d| d.0).sum();
    let running_ns: u64 = demand.iter().filter(|d| d.2).map(|d| d.0).sum();
    if duration_ns == 0 || running_ns == 0 {
        return Err(AdviseError::NoTime);
    }
    let duration_s = secs(duration_ns);
    let running_s = secs(running_ns);
    let peak = demand
        .iter()
        .filter(|d| d.0 > 0)
        .map(|d| d.1)
        .fold(0.0, f64::max);
    let demanded: f64 = demand.iter().map(|&(ns, c, _)| c * secs(ns)).sum();
    let to_month = MONTH_HOURS * 3600.0 / duration_s;
    let mut skipped = Vec::new();
    let mut options = Vec::new();

    let explicit = req.profiles.is_some();
    let candidates = match &req.profiles {
        Some(list) => list.clone(),
        None => crate::credit::builtin_profiles()
            .into_iter()
            .filter(|p| {
                matches!(
                    p.family,
                    Family::T2 | Family::T3 | Family::T3a | Family::T4g
                )
            })
            .collect(),
    };
    for profile in candidates {
        if !explicit && (profile.vcpus as f64) < peak {
            skipped.push(format!(
                "{}: {} vCPU cannot carry the peak of {} vCPUs",
                profile.name,
                profile.vcpus,
                round6(peak)
            ));
            continue;
        }
        let Some(hourly) = req.prices.burstable_hourly(&profile.name) else {
            if explicit {
                return Err(AdviseError::NoPrice(profile.name.clone()));
            }
            skipped.push(format!("{}: no price in the table", profile.name));
            continue;
        };
        let segments = rescaled(req.segments, req.vcpus, profile.vcpus);
        let clipped = beyond(&demand, profile.vcpus);
        for mode in [Mode::Standard, Mode::Unlimited] {
            if !profile.allows(mode) {
                continue;
            }
            let mut config = SimConfig::new(profile.clone());
            config.mode = mode;
            config.compare = Some(ComparePrices {
                instance_hourly_usd: hourly,
                compare_hourly_usd: 0.0,
            });
            let result = simulate(&config, &segments)?;
            let s = &result.summary;
            let trace_cost = s.comparison.as_ref().map_or(0.0, |c| c.burstable_cost_usd);
            options.push(AdviseOption {
                instance_type: profile.name.clone(),
                mode: mode.as_str().to_string(),
                vcpus: profile.vcpus,
                hourly_usd: hourly,
                monthly_cost_usd: trace_cost * to_month,
                held_at_baseline_s: s.held_at_baseline_s,
                unserved_cpu_seconds: round6(
                    s.cpu_demanded_core_s - s.cpu_delivered_core_s + clipped,
                ),
                surplus_charged_credits: s.surplus_credits_charged,
                surplus_owed_credits: s.final_surplus_balance,
                trace_cost_usd: trace_cost,
                credits_exhausted_at_s: s.credits_exhausted_at_s,
                result: Some(result),
            });
        }
    }
    // Fixed types are alternatives: only those that carry the peak, --profiles or not.
    for (name, f) in &req.prices.fixed {
        if (f.vcpus as f64) < peak {
            skipped.push(format!(
                "{name}: {} vCPU cannot carry the peak of {} vCPUs",
                f.vcpus,
                round6(peak)
            ));
            continue;
        }
        let trace_cost = f.hourly_usd * running_s / 3600.0;
        options.push(AdviseOption {
            instance_type: name.clone(),
            mode: "fixed".to_string(),
            vcpus: f.vcpus,
            hourly_usd: f.hourly_usd,
            monthly_cost_usd: trace_cost * to_month,
            held_at_baseline_s: 0.0,
            unserved_cpu_seconds: round6(beyond(&demand, f.vcpus)),
            surplus_charged_credits: 0.0,
            surplus_owed_credits: 0.0,
            trace_cost_usd: trace_cost,
            credits_exhausted_at_s: None,
            result: None,
        });
    }
    options.sort_by(|a, b| {
        a.monthly_cost_usd
            .total_cmp(&b.monthly_cost_usd)
            .then(a.unserved_cpu_seconds.total_cmp(&b.unserved_cpu_seconds))
            .then_with(|| a.instance_type.cmp(&b.instance_type))
            .then_with(|| a.mode.cmp(&b.mode))
    });
    let recommendation = recommend(&options);
    Ok(Advice {
        options,
        recommendation,
        trace: TraceInfo {
            vcpus: req.vcpus,
            duration_s,
            running_s,
            peak_vcpus: round6(peak),
            mean_vcpus: round6(demanded / running_s),
            demanded_cpu_seconds: round6(demanded),
        },
        prices: PriceInfo {
            region: req.prices.region.clone(),
            date: req.prices.date.clone(),
            source: req.prices.source.clone(),
            overridden_by: req.prices.overridden_by.clone(),
        },
        skipped,
        mode_switches_ignored: switches,
        demand_steps: demand_steps(&demand, CHART_STEP_S),
    })
}

/// `$12.34`.
fn usd(x: f64) -> String {
    format!("${x:.2}")
}

/// The cheapest option that serves all the demand; the cheaper ones that do not are named
/// as the trade-off. When none serves it all: the one that leaves the least unserved.
fn recommend(options: &[AdviseOption]) -> Option<Recommendation> {
    let served = options.iter().position(|o| o.unserved_cpu_seconds == 0.0);
    let (pick, mut why) = match served {
        Some(i) => {
            let o = &options[i];
            (
                o,
                format!(
                    "the cheapest option that serves all the demand: {}/month",
                    usd(o.monthly_cost_usd)
                ),
            )
        }
        None => {
            let o = options.iter().min_by(|a, b| {
                a.unserved_cpu_seconds
                    .total_cmp(&b.unserved_cpu_seconds)
                    .then(a.monthly_cost_usd.total_cmp(&b.monthly_cost_usd))
            })?;
            (
                o,
                format!(
                    "no option serves all the demand; this one leaves the least unserved \
                     ({} CPU-seconds) for {}/month",
                    o.unserved_cpu_seconds,
                    usd(o.monthly_cost_usd)
                ),
            )
        }
    };
    if pick.mode == "unlimited" && pick.surplus_charged_credits + pick.surplus_owed_credits > 0.0 {
        why.push_str(&format!(
            ", {} surplus credits included",
            round6(pick.surplus_charged_credits + pick.surplus_owed_credits)
        ));
    }
    if let Some(cheapest) = options.first().filter(|_| served.is_some_and(|i| i > 0)) {
        why.push_str(&format!(
            "; {} {} is cheaper at {}/month but is held at its baseline for {:.0} s, leaving \
             {:.0} CPU-seconds unserved",
            cheapest.instance_type,
            cheapest.mode,
            usd(cheapest.monthly_cost_usd),
            cheapest.held_at_baseline_s,
            cheapest.unserved_cpu_seconds
        ));
    }
    Some(Recommendation {
        instance_type: pick.instance_type.clone(),
        mode: pick.mode.clone(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::prices;

    fn advice(segments: &[Segment], vcpus: u32, profiles: Option<&[&str]>) -> Advice {
        let prices = prices::builtin().unwrap();
        let profiles = profiles.map(|l| {
            l.iter()
                .map(|n| crate::credit::builtin_profile(n).unwrap())
                .collect()
        });
        advise(&AdviseRequest {
            segments,
            vcpus,
            profiles,
            prices: &prices,
        })
        .unwrap()
    }

    fn row<'a>(a: &'a Advice, t: &str, mode: &str) -> &'a AdviseOption {
        a.options
            .iter()
            .find(|o| o.instance_type == t && o.mode == mode)
            .unwrap()
    }

    #[test]
    fn five_percent_on_t3_micro_is_never_held_and_costs_its_hours() {
        let a = advice(&[Segment::secs(86_400, 5.0)], 2, None);
        let o = row(&a, "t3.micro", "standard");
        assert_eq!(o.held_at_baseline_s, 0.0);
        assert_eq!(o.unserved_cpu_seconds, 0.0);
        assert!((o.monthly_cost_usd - 0.0104 * 730.0).abs() < 1e-9);
        // 5% of 2 vCPUs is 0.1 vCPU, exactly the nano types' baseline (6 credits/h): the
        // cheapest of all, t4g.nano, serves it in standard mode.
        let r = a.recommendation.as_ref().unwrap();
        assert_eq!(a.options[0].instance_type, "t4g.nano");
        assert_eq!(
            (r.instance_type.as_str(), r.mode.as_str()),
            ("t4g.nano", "standard")
        );
        // Sorted by monthly cost.
        assert!(a
            .options
            .windows(2)
            .all(|w| w[0].monthly_cost_usd <= w[1].monthly_cost_usd));
    }

    #[test]
    fn half_load_for_a_day_is_held_on_t3_micro_standard() {
        // 50% of 2 vCPUs = 1 vCPU; t3.micro earns 12 credits/h (0.2 vCPU) from zero, so it is
        // held from the start: every second of the day, 0.8 vCPU short.
        let a = advice(&[Segment::secs(86_400, 50.0)], 2, None);
        let o = row(&a, "t3.micro", "standard");
        assert_eq!(o.held_at_baseline_s, 86_400.0);
        assert_eq!(o.unserved_cpu_seconds, 0.8 * 86_400.0);
        let u = row(&a, "t3.micro", "unlimited");
        assert_eq!((u.held_at_baseline_s, u.unserved_cpu_seconds), (0.0, 0.0));
        // 0.8 vCPU × 24 h = 19.2 vCPU-h = 1152 surplus credits at $0.05 per vCPU-h: beyond
        // the 288 the surplus balance may hold (24 h of earnings) they are charged at once,
        // the last 288 are still owed at the end and billed at the stop.
        assert_eq!(
            (u.surplus_charged_credits, u.surplus_owed_credits),
            (864.0, 288.0)
        );
        assert!((u.trace_cost_usd - (0.0104 * 24.0 + 19.2 * 0.05)).abs() < 1e-9);
        let r = a.recommendation.unwrap();
        assert!(r.why.contains("held at its baseline"), "{}", r.why);
    }

    #[test]
    fn a_peak_above_the_vcpus_skips_small_types_unless_asked() {
        let a = advice(&[Segment::secs(3600, 100.0)], 4, None);
        assert!(a.options.iter().all(|o| o.vcpus >= 4));
        assert!(a.skipped.iter().any(|s| s.starts_with("t3.micro: 2 vCPU")));
        let a = advice(&[Segment::secs(3600, 100.0)], 4, Some(&["t3.micro"]));
        let o = row(&a, "t3.micro", "unlimited");
        assert_eq!(o.unserved_cpu_seconds, 2.0 * 3600.0);
        assert_eq!(rescale(100.0, 4, 2), 100.0);
    }
}
