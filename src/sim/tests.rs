//! Engine tests: the SPEC's worked examples through whole traces, with numbers.

use super::engine::{simulate, ComparePrices, SimConfig, SimError, SimResult};
use super::trace::{parse_trace, Event, Segment};
use crate::credit::{builtin_profile, Credits, Landing, Mode, NS_PER_SEC};

fn config(name: &str) -> SimConfig {
    SimConfig::new(builtin_profile(name).unwrap())
}

fn run(config: &SimConfig, segments: &[Segment]) -> SimResult {
    simulate(config, segments).unwrap()
}

/// `total` seconds at `util` cut into segments of `size` seconds (the last one shorter).
fn cut(total: u64, size: u64, util: f64) -> Vec<Segment> {
    (0..total)
        .step_by(size as usize)
        .map(|start| Segment::secs(size.min(total - start), util))
        .collect()
}

fn ms(ms: u64, util: f64) -> Segment {
    Segment {
        line: 0,
        duration_ns: ms * 1_000_000,
        utilization: util,
        event: None,
    }
}

#[test]
fn t2_micro_full_bank_at_100_percent_is_held_after_160_minutes_whatever_the_segments() {
    let mut cfg = config("t2.micro");
    cfg.initial_credits = Credits::whole(144);
    cfg.launch_credits = Some(Credits::ZERO);
    let one = run(&cfg, &[Segment::secs(20_000, 100.0)]);
    let s = &one.summary;
    assert_eq!(s.credits_exhausted_at_s, Some(9600.0));
    assert_eq!(s.held_at_baseline_s, 20_000.0 - 9600.0);
    assert_eq!(s.final_balance, 0.0);
    assert_eq!(s.cpu_demanded_core_s, 20_000.0);
    assert_eq!(s.cpu_delivered_core_s, 9600.0 + 0.1 * 10_400.0);
    // 9600 s is the end of step 32; after it the workload gets its 10% baseline.
    assert_eq!(one.steps[31].t_end_s, 9600.0);
    assert_eq!(one.steps[31].utilization, 100.0);
    assert_eq!(one.steps[31].credit_balance, 0.0);
    assert_eq!(one.steps[32].utilization, 10.0);
    assert_eq!(one.steps[32].utilization_demanded, 100.0);
    assert_eq!(one.steps[32].credit_usage, 0.5); // 30 s of CPU in 300 s
    assert_eq!(one.steps[31].held_at_baseline_s, 0.0);
    assert_eq!(one.steps[32].held_at_baseline_s, 300.0);
    let held: f64 = one.steps.iter().map(|s| s.held_at_baseline_s).sum();
    assert_eq!(held, s.held_at_baseline_s);
    assert_eq!(one.steps.len(), 67); // 66 full steps and 200 s
    assert_eq!(one.steps[66].t_end_s, 20_000.0);

    assert_eq!(run(&cfg, &cut(20_000, 1, 100.0)), one);
    let odd: Vec<Segment> = (0..20_000u64 * 1000 / 700)
        .map(|_| ms(700, 100.0))
        .chain([ms(20_000_000 % 700, 100.0)])
        .collect();
    assert_eq!(run(&cfg, &odd), one);
}

#[test]
fn t2_micro_launched_idle_24h_shows_174() {
    let r = run(&config("t2.micro"), &[Segment::secs(86_400, 0.0)]);
    assert_eq!(r.summary.initial_balance, 30.0);
    assert_eq!(r.steps.last().unwrap().credit_balance, 174.0);
    assert_eq!(r.summary.final_balance, 174.0);
    assert_eq!(r.summary.credits_exhausted_at_s, None);
    assert_eq!(r.steps.len(), 288);
}

#[test]
fn t3_nano_idle_24h_shows_144() {
    let r = run(&config("t3.nano"), &[Segment::secs(86_400, 0.0)]);
    assert_eq!(r.mode, Mode::Unlimited);
    assert_eq!(r.summary.final_balance, 144.0);
    assert_eq!(r.steps[143].credit_balance, 72.0); // half a day
}

#[test]
fn t2_large_unlimited_30_days_at_100_percent_then_stopped_costs_50_40() {
    let mut cfg = config("t2.large");
    cfg.mode = Mode::Unlimited;
    let r = run(
        &cfg,
        &[
            Segment::secs(30 * 86_400, 100.0),
            Segment::secs(0, 0.0).with_event(Event::Stop),
        ],
    );
    let s = &r.summary;
    assert_eq!(s.surplus_credits_charged, 60_480.0);
    assert!(
        (s.surplus_cost_usd - 50.40).abs() < 1e-9,
        "{}",
        s.surplus_cost_usd
    );
    assert_eq!(s.final_surplus_balance, 0.0);
    assert_eq!(s.credits_exhausted_at_s, Some(0.0));
    assert_eq!(s.total_credits_spent, 2.0 * 60.0 * 720.0);
    assert_eq!(r.steps.len(), 8640);
    // The stop's charge (the 864 still owed) lands in the last step.
    let last = r.steps.last().unwrap();
    assert_eq!(last.t_end_s, 2_592_000.0);
    // 864 at the stop and 7 above the limit in the step (1.4 cores × 300 s).
    assert_eq!(last.surplus_credits_charged, 864.0 + 7.0);
    assert_eq!(last.surplus_credit_balance, 0.0);
    // Without the stop the surplus is still owed, not charged.
    let r = run(&cfg, &[Segment::secs(30 * 86_400, 100.0)]);
    assert_eq!(r.summary.surplus_credits_charged, 60_480.0 - 864.0);
    assert_eq!(r.summary.final_surplus_balance, 864.0);
}

#[test]
fn comparison_gives_the_break_even_utilization() {
    let mut cfg = config("t3.large");
    cfg.compare = Some(ComparePrices {
        instance_hourly_usd: 0.0832,
        compare_hourly_usd: 0.096,
    });
    let r = run(&cfg, &[Segment::secs(10 * 3600, 30.0)]);
    let c = r.summary.comparison.unwrap();
    assert!((c.break_even_utilization.unwrap() - 42.8).abs() < 1e-9);
    assert!((c.burstable_cost_usd - 0.832).abs() < 1e-9); // at the baseline: no surplus
    assert!((c.fixed_cost_usd - 0.96).abs() < 1e-9);
    assert_eq!(c.cheaper, "burstable");
}

#[test]
fn stop_and_start_on_t2_resets_to_launch_credits() {
    let mut cfg = config("t2.micro");
    cfg.step_ns = 3600 * NS_PER_SEC;
    let trace = [
        Segment::secs(7200, 0.0),
        Segment::secs(3600, 0.0).with_event(Event::Stop),
        Segment::secs(3600, 0.0).with_event(Event::Start),
    ];
    let r = run(&cfg, &trace);
    let balances: Vec<f64> = r.steps.iter().map(|s| s.credit_balance).collect();
    assert_eq!(balances, [36.0, 42.0, 0.0, 36.0]);
    assert_eq!(r.summary.launch_credits_granted, 60.0);
    assert_eq!(r.summary.running_s, 10_800.0);
    assert_eq!(r.summary.duration_s, 14_400.0);

    // --launch-credits 5 applies at every start on T2.
    cfg.launch_credits = Some(Credits::whole(5));
    let r = run(&cfg, &trace);
    let balances: Vec<f64> = r.steps.iter().map(|s| s.credit_balance).collect();
    assert_eq!(balances, [11.0, 17.0, 0.0, 11.0]);
}

#[test]
fn mode_switch_events_follow_the_rules() {
    let mut cfg = config("t2.micro");
    cfg.step_ns = 600 * NS_PER_SEC;
    let r = run(
        &cfg,
        &[
            Segment::secs(600, 0.0), // E 1, L 30
            // L is removed; E 1 runs out after 1/54 h = 66.67 s, then 54/h of surplus.
            Segment::secs(3600, 100.0).with_event(Event::Unlimited),
            // Back to standard: S charged at once; held at the 10% baseline.
            Segment::secs(600, 100.0).with_event(Event::Standard),
        ],
    );
    let s = &r.summary;
    let surplus = 54.0 - 1.0;
    assert_eq!(r.steps[0].credit_balance, 31.0);
    assert_eq!(r.steps[1].credit_balance, 0.0);
    assert!((s.credits_exhausted_at_s.unwrap() - (600.0 + 3600.0 / 54.0)).abs() < 1e-6);
    assert_eq!(s.surplus_credits_charged, surplus);
    let before = &r.steps[6];
    assert_eq!(before.t_end_s, 4200.0);
    assert_eq!(before.surplus_credit_balance, surplus);
    assert_eq!(before.surplus_credits_charged, 0.0);
    // The switch at 4200 s opens the next step: its charge is counted there.
    let after = &r.steps[7];
    assert_eq!(after.surplus_credits_charged, surplus);
    assert_eq!(after.surplus_credit_balance, 0.0);
    assert_eq!(after.credit_balance, 0.0);
    assert_eq!(after.utilization, 10.0);
    assert_eq!(s.held_at_baseline_s, 600.0);
    assert_eq!(s.final_mode, Mode::Standard);
    assert_eq!(r.mode, Mode::Standard);
}

#[test]
fn unlimited_event_on_azure_b_is_an_error_with_the_line() {
    let trace = parse_trace(
        "seconds,utilization,event\n60,10\n60,10,unlimited\n".as_bytes(),
        "t.csv",
    )
    .unwrap();
    let err = simulate(&config("B1s"), &trace).unwrap_err();
    assert_eq!(
        err,
        SimError::UnlimitedEvent {
            line: 3,
            profile: "B1s".into()
        }
    );
    let mut cfg = config("B1s");
    cfg.mode = Mode::Unlimited;
    assert!(matches!(
        simulate(&cfg, &trace),
        Err(SimError::UnlimitedNotAllowed { .. })
    ));
}

#[test]
fn ramp_landing_lowers_delivery_gradually_and_ignores_segment_sizes() {
    let mut cfg = config("t3.micro"); // 2 vCPU, 12 credits/h, baseline 10% of both
    cfg.mode = Mode::Standard;
    cfg.initial_credits = Credits::whole(20);
    cfg.step_ns = 60 * NS_PER_SEC;
    cfg.landing = Landing::Ramp {
        credits: Credits::whole(10),
        steps: 10,
    };
    let one = run(&cfg, &[Segment::secs(3600, 100.0)]);
    // 10 credits at full speed (108/h net) take 333 s; then the ramp stretches the rest.
    let exhausted = one.summary.credits_exhausted_at_s.unwrap();
    assert!(exhausted > 20.0 / 108.0 * 3600.0 + 60.0, "{exhausted}");
    let delivered: Vec<f64> = one.steps.iter().map(|s| s.utilization).collect();
    assert!(
        delivered.windows(2).all(|w| w[1] <= w[0] + 1e-9),
        "{delivered:?}"
    );
    assert!(
        delivered.iter().any(|&u| u > 20.0 && u < 90.0),
        "{delivered:?}"
    );
    assert_eq!(*delivered.last().unwrap(), 10.0);
    assert_eq!(run(&cfg, &cut(3600, 1, 100.0)), one);
    let odd: Vec<Segment> = (0..3600 * 1000 / 700).map(|_| ms(700, 100.0)).collect();
    let odd_total: u64 = odd.iter().map(|s| s.duration_ns).sum();
    let rest = ms((3600 * NS_PER_SEC - odd_total) / 1_000_000, 100.0);
    assert_eq!(run(&cfg, &[odd, vec![rest]].concat()), one);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = (u64, f64, u8)> {
        // Up to ~1.4 h per segment at ms resolution, any utilisation, an event now and then.
        (1u64..5_000_000, 0u32..=1000, 0u8..12).prop_map(|(ms, u, e)| (ms, u as f64 / 10.0, e))
    }

    fn build(raw: &[(u64, f64, u8)]) -> Vec<Segment> {
        let mut stopped = false;
        raw.iter()
            .map(|&(duration_ms, util, e)| {
                let event = match e {
                    0 => Some(Event::Stop),
                    1 => Some(Event::Start),
                    2 => Some(Event::Standard),
                    3 => Some(Event::Unlimited),
                    _ => None,
                };
                match event {
                    Some(Event::Stop) => stopped = true,
                    Some(Event::Start) => stopped = false,
                    _ => {}
                }
                Segment {
                    event,
                    ..ms(duration_ms, if stopped { 0.0 } else { util })
                }
            })
            .collect()
    }

    /// Equal JSON, numbers within 1e-6 (1 µs for times, a millionth of a credit).
    fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match (a, b) {
            (V::Number(x), V::Number(y)) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-6,
                _ => x == y,
            },
            (V::Array(x), V::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
            }
            (V::Object(x), V::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
            }
            _ => a == b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn cutting_segments_anywhere_changes_nothing(
            name in prop::sample::select(vec!["t2.nano", "t2.2xlarge", "t3.micro", "t4g.large"]),
            initial in 0i64..400,
            ramp in any::<bool>(),
            raw in prop::collection::vec(segment(), 1..25),
            cuts in prop::collection::vec(0.0f64..1.0, 25),
        ) {
            let mut cfg = config(name);
            cfg.initial_credits = Credits::whole(initial);
            if ramp {
                cfg.mode = Mode::Standard;
                cfg.landing = Landing::Ramp { credits: Credits::whole(20), steps: 10 };
            }
            let whole = build(&raw);
            let mut cut_up = Vec::new();
            for (seg, f) in whole.iter().zip(cuts.iter().cycle()) {
                let first_ms = ((seg.duration_ns / 1_000_000) as f64 * f) as u64;
                cut_up.push(Segment { duration_ns: first_ms * 1_000_000, ..*seg });
                cut_up.push(Segment {
                    duration_ns: seg.duration_ns - first_ms * 1_000_000,
                    event: None,
                    ..*seg
                });
            }
            let a = simulate(&cfg, &whole).unwrap();
            let b = simulate(&cfg, &cut_up).unwrap();
            // Exact, except where launch credits run out inside a segment: the earnings of
            // the part before are rounded to one unit (Bucket::step), which can move a time
            // found by 1 ns (seed in proptest-regressions/sim/tests.txt).
            let (ja, jb) = (serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
            prop_assert!(close(&ja, &jb), "{ja}\n{jb}");
            // The chart's marks too; held spans add up to the summary's held time.
            prop_assert_eq!(&a.marks.events, &b.marks.events);
            prop_assert_eq!(&a.marks.stopped, &b.marks.stopped);
            for r in [&a, &b] {
                let held: f64 = r.marks.held.iter().map(|s| s.end_s - s.start_s).sum();
                prop_assert!((held - r.summary.held_at_baseline_s).abs() <= 1e-6);
                let disjoint = r.marks.held.windows(2).all(|w| w[0].end_s < w[1].start_s);
                prop_assert!(disjoint, "{:?}", r.marks.held);
            }
            let spans = |r: &SimResult| {
                let v: Vec<f64> = r.marks.held.iter().flat_map(|s| [s.start_s, s.end_s]).collect();
                serde_json::json!(v)
            };
            prop_assert!(close(&spans(&a), &spans(&b)), "{:?}\n{:?}", a.marks.held, b.marks.held);
        }
    }
}

fn example_trace() -> Vec<Segment> {
    let text = include_str!("../../config/example-trace.csv");
    parse_trace(text.as_bytes(), "example-trace.csv").unwrap()
}

#[test]
fn example_trace_marks_its_events_and_the_exact_stopped_and_held_spans() {
    use super::marks::{EventMark, Span};
    let r = run(&config("t2.micro"), &example_trace());
    let m = &r.marks;
    let at = |t_s: f64, event| EventMark { t_s, event };
    assert_eq!(
        m.events,
        [
            at(46_800.0, Event::Stop),      // 13:00
            at(48_600.0, Event::Start),     // 13:30
            at(57_600.0, Event::Unlimited), // 16:00
            at(64_800.0, Event::Standard),  // 18:00
        ]
    );
    let span = |start_s, end_s| Span { start_s, end_s };
    assert_eq!(m.stopped, [span(46_800.0, 48_600.0)]);
    // Held from the instant the balance reaches zero (8:34:30) until the demand falls to 6%
    // at 12:00; not after 18:00, where the demand (10%) is the baseline.
    assert_eq!(m.held, [span(30_870.0, 43_200.0)]);
    assert_eq!(Some(m.held[0].start_s), r.summary.credits_exhausted_at_s);
    let held: f64 = m.held.iter().map(|s| s.end_s - s.start_s).sum();
    assert_eq!(held, r.summary.held_at_baseline_s);
    assert_eq!(
        m.mode_changes(Mode::Standard),
        [(Mode::Unlimited, 57_600.0), (Mode::Standard, 64_800.0)]
    );
}

#[test]
fn marks_do_not_depend_on_segment_cuts_and_a_final_stop_lasts_to_the_end() {
    let mut cfg = config("t2.micro");
    cfg.initial_credits = Credits::whole(144);
    cfg.launch_credits = Some(Credits::ZERO);
    let stop = Segment::secs(1000, 0.0).with_event(Event::Stop);
    let whole = run(&cfg, &[Segment::secs(20_000, 100.0), stop]);
    let mut pieces = cut(20_000, 7, 100.0);
    pieces.push(stop);
    let cut_up = run(&cfg, &pieces);
    assert_eq!(cut_up.marks, whole.marks);
    let m = &whole.marks;
    assert_eq!(m.held.len(), 1);
    assert_eq!((m.held[0].start_s, m.held[0].end_s), (9600.0, 20_000.0));
    assert_eq!(m.stopped.len(), 1);
    assert_eq!(
        (m.stopped[0].start_s, m.stopped[0].end_s),
        (20_000.0, 21_000.0)
    );
    // A switch to the mode in force is an event but no mode change.
    let same = run(&cfg, &[Segment::secs(60, 5.0).with_event(Event::Standard)]);
    assert_eq!(same.marks.events.len(), 1);
    assert!(same.marks.mode_changes(Mode::Standard).is_empty());
}

/// `n` stop/start pairs, `gap` seconds apart, after a first segment of `gap` seconds.
fn stop_starts(n: usize, gap: u64) -> Vec<Segment> {
    let mut trace = vec![Segment::secs(gap, 0.0)];
    for _ in 0..n {
        trace.push(Segment::secs(0, 0.0).with_event(Event::Stop));
        trace.push(Segment::secs(gap, 0.0).with_event(Event::Start));
    }
    trace
}

/// AWS, EC2 User Guide, "Standard mode concepts" (launch credit limits): "There is a limit to
/// the number of times T2 Standard instances can receive launch credits. The default limit
/// is 100 launches or starts of all T2 Standard instances combined per account, per Region,
/// per rolling 24-hour period. For example, the limit is reached when one instance is stopped
/// and started 100 times within a 24-hour period". And: "If the limit is exceeded, launch
/// credits are not allocated."
#[test]
fn launch_credit_limit_refuses_grants_beyond_100_per_rolling_24h() {
    // The launch and 150 stop/starts in 5 hours: 151 starts, 100 grants, 51 refused.
    let cfg = config("t2.micro");
    let r = run(&cfg, &stop_starts(150, 119));
    let s = &r.summary;
    assert_eq!(s.duration_s, 151.0 * 119.0);
    assert_eq!(s.launch_credits_granted, 100.0 * 30.0);
    assert_eq!(s.launch_credit_grants_refused, 51);
    assert_eq!(s.launch_credit_limit, 100);
    // The last start got none: T2 lost everything at the stop, so it has only 119 s of earning.
    assert_eq!(s.final_balance, 0.198333); // 6 × 119 / 3600, to 6 decimals

    // --launch-credit-limit 2; starts at 0, 8 h, 16 h (refused) and 24 h: the grant at 0 has
    // left the rolling window at 24 h.
    let mut cfg = config("t2.micro");
    cfg.launch_credit_limit = 2;
    let r = run(&cfg, &stop_starts(3, 8 * 3600));
    assert_eq!(r.summary.launch_credits_granted, 3.0 * 30.0);
    assert_eq!(r.summary.launch_credit_grants_refused, 1);
    // An amount given with --launch-credits is limited the same way.
    cfg.launch_credits = Some(Credits::whole(5));
    let r = run(&cfg, &stop_starts(3, 8 * 3600));
    assert_eq!(r.summary.launch_credits_granted, 3.0 * 5.0);
    assert_eq!(r.summary.launch_credit_grants_refused, 1);
    // Starts that grant nothing anyway (T3) are not refusals.
    let r = run(&config("t3.micro"), &stop_starts(150, 119));
    assert_eq!(r.summary.launch_credit_grants_refused, 0);
}

/// AWS, CloudWatch metric `CPUSurplusCreditsCharged`: "Spent surplus credits are charged when
/// any of the following occurs: The spent surplus credits exceed the maximum number of credits
/// that the instance can earn in a 24-hour period. [...] The instance is stopped or
/// terminated. The instance is switched from unlimited to standard." Surplus still owed at
/// the end of a trace is billed at the next of these, so it belongs in the cost; SPEC §4: t3.large
/// against m5.large "costs the same at about 42.5% average CPU".
#[test]
fn cost_comparison_counts_the_surplus_still_owed_and_agrees_with_the_break_even() {
    let mut cfg = config("t3.large"); // unlimited, 2 vCPU, 36 credits/h
    cfg.compare = Some(ComparePrices {
        instance_hourly_usd: 0.0835,
        compare_hourly_usd: 0.096,
    });
    // 50% for 24 h: 60 credits/h spent, 36 earned: 576 surplus owed, below the 864 limit, so
    // none charged yet; at $0.05/60 per credit that is $0.48.
    let r = run(&cfg, &[Segment::secs(86_400, 50.0)]);
    let s = &r.summary;
    assert_eq!(s.final_surplus_balance, 576.0);
    assert_eq!(s.surplus_credits_charged, 0.0);
    assert_eq!(s.surplus_cost_usd, 0.0);
    assert_eq!(s.surplus_owed_usd, 0.48);
    let c = s.comparison.as_ref().unwrap();
    assert!((c.break_even_utilization.unwrap() - 42.5).abs() < 1e-9);
    assert!((c.burstable_cost_usd - (2.004 + 0.48)).abs() < 1e-9);
    assert!((c.fixed_cost_usd - 2.304).abs() < 1e-9);
    assert_eq!(c.cheaper, "fixed"); // 50% is above the 42.5% break-even

    // Below the break-even the burstable one is cheaper, surplus owed included: 40% for 24 h
    // owes 288 credits ($0.24).
    let r = run(&cfg, &[Segment::secs(86_400, 40.0)]);
    let c = r.summary.comparison.unwrap();
    assert_eq!(r.summary.surplus_owed_usd, 0.24);
    assert!((c.burstable_cost_usd - (2.004 + 0.24)).abs() < 1e-9);
    assert_eq!(c.cheaper, "burstable");

    // Whether the trace ends with a stop (surplus charged) or not (owed), the cost is the same.
    let stopped = run(
        &cfg,
        &[
            Segment::secs(86_400, 50.0),
            Segment::secs(0, 0.0).with_event(Event::Stop),
        ],
    );
    let s = &stopped.summary;
    assert_eq!((s.surplus_cost_usd, s.surplus_owed_usd), (0.48, 0.0));
    let c = s.comparison.as_ref().unwrap();
    assert!((c.burstable_cost_usd - (2.004 + 0.48)).abs() < 1e-9);
}

/// Issue 16 item 5: a step's utilisation is its average. A t2.micro with 9 credits at 100%
/// runs out after 9 / (1 − 0.1) = 10 min, then gets its 10% baseline: the hour averages
/// (10 × 100% + 50 × 10%) / 60 = 25%, and `held_at_baseline_s` says 50 min of it were held.
/// `credits_exhausted_at_s` is when it first ran short: 600 s here, 0 when it starts at zero
/// and bursts at once, `None` (JSON null, "never") when it never runs short.
#[test]
fn a_step_shows_its_average_and_how_long_it_was_held() {
    let mut cfg = config("t2.micro");
    cfg.initial_credits = Credits::whole(9);
    cfg.launch_credits = Some(Credits::ZERO);
    cfg.step_ns = 3600 * NS_PER_SEC;
    let r = run(&cfg, &[Segment::secs(3600, 100.0)]);
    assert_eq!(r.steps.len(), 1);
    assert_eq!(r.steps[0].utilization_demanded, 100.0);
    assert_eq!(r.steps[0].utilization, 25.0);
    assert_eq!(r.steps[0].held_at_baseline_s, 3000.0);
    assert_eq!(r.summary.credits_exhausted_at_s, Some(600.0));

    cfg.initial_credits = Credits::ZERO;
    let r = run(&cfg, &[Segment::secs(3600, 100.0)]);
    assert_eq!(r.summary.credits_exhausted_at_s, Some(0.0));
    assert_eq!(r.steps[0].utilization, 10.0);
    assert_eq!(r.steps[0].held_at_baseline_s, 3600.0);

    let r = run(&cfg, &[Segment::secs(3600, 10.0)]);
    assert_eq!(r.summary.credits_exhausted_at_s, None);
    assert_eq!(r.steps[0].held_at_baseline_s, 0.0);
}

/// Issue 16 item 6. Microsoft: "Max Banked Credits = The maximum number/upper limit of credits
/// a B-series virtual machine can accumulate. Upon reaching this upper limit, a B-series VM can
/// no longer accumulate more credits." Its worked example (B16ms) adds the 480 initial credits
/// and the hourly 162 into one "Credits available" column. So an idle B1s shows 144 after 48 h
/// (it showed 174 while initial credits were kept outside the limit, as AWS does for T2).
#[test]
fn idle_b1s_shows_its_max_banked_144_after_48h() {
    let r = run(&config("B1s"), &[Segment::secs(48 * 3600, 0.0)]);
    let s = &r.summary;
    assert_eq!(s.initial_balance, 30.0);
    assert_eq!(s.launch_credits_granted, 30.0);
    assert_eq!(s.final_balance, 144.0);
    assert_eq!(
        r.steps.iter().map(|s| s.credit_balance).fold(0.0, f64::max),
        144.0
    );
    // 19 h of earning fills the bank: 30 + 19 × 6 = 144.
    assert_eq!(r.steps[19 * 12 - 1].credit_balance, 144.0);
    assert_eq!(r.steps[19 * 12 - 2].credit_balance, 143.5);
    assert_eq!(s.credits_discarded, 48.0 * 6.0 - 114.0);
}
