//! Model tests: worked examples derived from SPEC, event rules, and properties.

use super::*;
use proptest::prelude::*;

const MIN: u64 = 60 * NS_PER_SEC;
const HOUR: u64 = 3600 * NS_PER_SEC;

fn p(name: &str) -> Profile {
    builtin_profile(name).unwrap()
}

fn started(profile: &Profile, mode: Mode, initial: i64) -> Bucket {
    let mut b = Bucket::new(profile, mode, Credits::whole(initial)).unwrap();
    b.start(
        profile,
        &Policy::default(),
        0,
        &mut LaunchLimiter::unlimited(),
    );
    b
}

/// Runs `cores` of CPU for `total_ns` in steps of `step_ns`.
fn run(b: &mut Bucket, profile: &Profile, cores: Rate, total_ns: u64, step_ns: u64) {
    let mut left = total_ns;
    while left > 0 {
        let dt = left.min(step_ns);
        b.step(
            profile,
            &Policy::default(),
            cores.over(dt),
            profile.earn_rate.over(dt),
        );
        left -= dt;
    }
}

#[test]
fn t2_micro_full_bank_at_100_percent_is_held_after_160_minutes() {
    let prof = p("t2.micro");
    let mut b = Bucket::new(&prof, Mode::Standard, Credits::whole(144)).unwrap();
    b.start_with_launch(&prof, &Policy::default(), 0, Credits::ZERO);
    run(
        &mut b,
        &prof,
        Rate::cores(1),
        160 * MIN - NS_PER_SEC,
        NS_PER_SEC,
    );
    assert!(!b.held);
    assert_eq!(b.balance(), Credits::milli(15)); // 1 s short: 0.9/60 credits left
    run(&mut b, &prof, Rate::cores(1), NS_PER_SEC, NS_PER_SEC);
    assert!(b.held);
    assert_eq!(b.balance(), Credits::ZERO);
    assert_eq!(b.totals.overdrawn, Credits::ZERO);
    assert_eq!(b.ceiling(&prof, &Policy::default()), prof.baseline());
    assert_eq!(
        b.ceiling(&prof, &Policy::default()).quota_us(100_000),
        10_000
    );
}

#[test]
fn t2_micro_idle_24h_after_launch_shows_174() {
    let prof = p("t2.micro");
    let mut b = started(&prof, Mode::Standard, 0);
    assert_eq!(b.launch, Credits::whole(30));
    run(&mut b, &prof, Rate::ZERO, 24 * HOUR, 300 * NS_PER_SEC);
    assert_eq!(b.balance(), Credits::whole(174));
    assert_eq!(b.earned, Credits::whole(144));
}

#[test]
fn t3_nano_idle_24h_shows_144() {
    let prof = p("t3.nano");
    let mut b = started(&prof, prof.default_mode, 0);
    run(&mut b, &prof, Rate::ZERO, 24 * HOUR, HOUR);
    assert_eq!(b.balance(), Credits::whole(144));
    assert_eq!(b.totals.discarded, Credits::ZERO);
    run(&mut b, &prof, Rate::ZERO, HOUR, HOUR);
    assert_eq!(b.balance(), Credits::whole(144));
    assert_eq!(b.totals.discarded, Credits::whole(6));
}

#[test]
fn t2_nano_balance_falls_to_72_at_2_percent_after_launch() {
    // SPEC §3: 102 after 24 h idle; at 2% CPU it falls slowly to 72 although it earns more
    // than it spends, because spend comes from L while earnings are discarded at the full E.
    let prof = p("t2.nano");
    let mut b = started(&prof, Mode::Standard, 0);
    run(&mut b, &prof, Rate::ZERO, 24 * HOUR, HOUR);
    assert_eq!(b.balance(), Credits::whole(102));
    let two_percent = Rate::from_cores_f64(0.02).unwrap(); // 1.2 credits/h
    run(&mut b, &prof, two_percent, 10 * HOUR, 300 * NS_PER_SEC);
    assert_eq!(b.balance(), Credits::whole(90)); // 102 − 12
    run(&mut b, &prof, two_percent, 15 * HOUR, 300 * NS_PER_SEC);
    assert_eq!(b.balance(), Credits::whole(72));
    assert_eq!(b.launch, Credits::ZERO);
    run(&mut b, &prof, two_percent, 10 * HOUR, 300 * NS_PER_SEC);
    assert_eq!(b.balance(), Credits::whole(72));
}

#[test]
fn t2_large_unlimited_30_days_at_100_percent_then_stopped_costs_50_40() {
    let prof = p("t2.large");
    let mut b = started(&prof, Mode::Unlimited, 0);
    assert_eq!(b.launch, Credits::ZERO, "no launch credits in unlimited");
    run(&mut b, &prof, Rate::cores(2), 720 * HOUR, HOUR);
    assert_eq!(b.surplus, Credits::whole(864));
    let at_stop = b.stop(&prof, 720 * 3600);
    assert_eq!(at_stop, Credits::whole(864));
    // (2 − 0.6) cores × 60 min × 720 h.
    assert_eq!(b.totals.charged, Credits::whole(60_480));
    let cost = prof.surplus_cost_usd(b.totals.charged);
    assert!((cost - 50.40).abs() < 1e-9, "{cost}");
}

#[test]
fn unlimited_surplus_is_free_when_paid_down() {
    let prof = p("t3.micro"); // 12 credits/h, baseline 0.2 cores
    let mut b = started(&prof, Mode::Unlimited, 0);
    run(&mut b, &prof, Rate::cores(1), HOUR, MIN); // net −48
    assert_eq!((b.earned, b.surplus), (Credits::ZERO, Credits::whole(48)));
    run(&mut b, &prof, Rate::ZERO, 5 * HOUR, MIN); // +60: pays 48, E = 12
    assert_eq!((b.earned, b.surplus), (Credits::whole(12), Credits::ZERO));
    assert_eq!(b.totals.charged, Credits::ZERO);
}

#[test]
fn launch_credits_are_spent_first_and_outside_the_limit() {
    let prof = p("t2.micro");
    let mut b = started(&prof, Mode::Standard, 144);
    assert_eq!(b.balance(), Credits::whole(174));
    run(&mut b, &prof, Rate::cores(1), 10 * MIN, MIN); // 10 spent, 1 earned (discarded: E full)
    assert_eq!(b.launch, Credits::whole(20));
    assert_eq!(b.earned, Credits::whole(144));
    assert_eq!(b.totals.discarded, Credits::whole(1));
}

#[test]
fn launch_credit_limiter_caps_grants() {
    let prof = p("t2.micro");
    let mut lim = LaunchLimiter::new(2, limiter::DAY_S);
    let pol = Policy::default();
    let mut granted = Vec::new();
    for i in 0..3u64 {
        let mut b = Bucket::new(&prof, Mode::Standard, Credits::ZERO).unwrap();
        granted.push(b.start(&prof, &pol, i, &mut lim));
    }
    assert_eq!(
        granted,
        vec![Credits::whole(30), Credits::whole(30), Credits::ZERO]
    );
}

#[test]
fn stop_rules_per_family() {
    let pol = Policy::default();
    // T2 loses everything at stop; a start grants new launch credits.
    let t2 = p("t2.small");
    let mut b = started(&t2, Mode::Standard, 100);
    b.stop(&t2, 10);
    assert_eq!(b.balance(), Credits::ZERO);
    assert_eq!(b.totals.lost, Credits::whole(130));
    b.start(&t2, &pol, 20, &mut LaunchLimiter::unlimited());
    assert_eq!(b.balance(), Credits::whole(30));

    // T3 keeps E for 7 days after a stop, then loses it.
    let t3 = p("t3.small");
    let mut b = started(&t3, Mode::Standard, 100);
    b.stop(&t3, 0);
    b.start(
        &t3,
        &pol,
        profile::SEVEN_DAYS_S,
        &mut LaunchLimiter::unlimited(),
    );
    assert_eq!(b.balance(), Credits::whole(100));
    b.stop(&t3, 1000);
    b.start(
        &t3,
        &pol,
        1000 + profile::SEVEN_DAYS_S + 1,
        &mut LaunchLimiter::unlimited(),
    );
    assert_eq!(b.balance(), Credits::ZERO);
    assert_eq!(b.totals.lost, Credits::whole(100));

    // Azure B keeps credits; initial credits only at the first launch, banked with E.
    let az = p("B1s");
    let mut b = started(&az, Mode::Standard, 0);
    assert_eq!((b.earned, b.launch), (Credits::whole(30), Credits::ZERO));
    b.stop(&az, 5);
    b.start(&az, &pol, 1_000_000_000, &mut LaunchLimiter::unlimited());
    assert_eq!(b.balance(), Credits::whole(30));
    assert!(Bucket::new(&az, Mode::Unlimited, Credits::ZERO).is_err());
}

#[test]
fn stop_charges_all_surplus() {
    let prof = p("t3.micro");
    let mut b = started(&prof, Mode::Unlimited, 0);
    run(&mut b, &prof, Rate::cores(2), HOUR, MIN); // net −108
    assert_eq!(b.surplus, Credits::whole(108));
    assert_eq!(b.stop(&prof, 3600), Credits::whole(108));
    assert_eq!(b.surplus, Credits::ZERO);
    assert_eq!(b.totals.charged, Credits::whole(108));
}

#[test]
fn switching_modes_follows_spec() {
    let prof = p("t2.micro");
    let pol = Policy::default();
    let mut b = started(&prof, Mode::Standard, 50);
    assert_eq!(b.balance(), Credits::whole(80));
    // standard → unlimited: E carries over, L removed.
    assert_eq!(b.switch(&prof, &pol, Mode::Unlimited), Ok(Credits::ZERO));
    assert_eq!((b.earned, b.launch), (Credits::whole(50), Credits::ZERO));
    assert_eq!(b.totals.launch_removed, Credits::whole(30));
    run(&mut b, &prof, Rate::cores(1), 2 * HOUR, MIN); // −108 net: E 0, S 58
    assert_eq!(b.surplus, Credits::whole(58));
    // unlimited → standard: S charged at once, none granted back.
    assert_eq!(
        b.switch(&prof, &pol, Mode::Standard),
        Ok(Credits::whole(58))
    );
    assert_eq!((b.balance(), b.surplus), (Credits::ZERO, Credits::ZERO));
    assert!(b.held, "a standard workload at zero is held at baseline");
    let az = p("B2s");
    let mut b = started(&az, Mode::Standard, 0);
    assert_eq!(
        b.switch(&az, &pol, Mode::Unlimited),
        Err(BucketError::UnlimitedNotAllowed("B2s".into()))
    );
}

#[test]
fn surplus_beyond_the_limit_is_charged_as_it_happens() {
    let prof = p("t3.nano"); // 2 vCPU, 6/h, max 144
    let mut b = started(&prof, Mode::Unlimited, 0);
    run(&mut b, &prof, Rate::cores(2), 2 * HOUR, MIN); // net −114/h → 228
    assert_eq!(b.surplus, Credits::whole(144));
    assert_eq!(b.totals.charged, Credits::whole(84));
}

#[test]
fn one_big_step_equals_a_million_small_ones() {
    let prof = p("t2.2xlarge"); // 81.6 credits/h: fractional
    let pol = Policy::default();
    let mut small = Bucket::new(&prof, Mode::Standard, Credits::whole(1000)).unwrap();
    small.start_with_launch(&prof, &pol, 0, Credits::ZERO);
    let mut big = small.clone();
    // About 3.38 cores in 1e6 steps of 997 µs (odd sizes on purpose).
    let usage_per_step = 3_370_000u64;
    let dt = 997_000u64;
    for _ in 0..1_000_000 {
        small.step_cpu(&prof, &pol, usage_per_step, dt);
    }
    big.step_cpu(&prof, &pol, usage_per_step * 1_000_000, dt * 1_000_000);
    assert_eq!(small, big);
    assert!(small.balance() > Credits::ZERO && small.balance() < prof.max_earned);
}

#[test]
fn crossing_the_end_of_launch_credits_is_exact_in_one_step() {
    // E at its limit, L = 30, spend 40 credits while earning 6: the first 30/40 of the
    // interval drains L while E is full (earnings discarded), the rest comes from E.
    let prof = p("t2.micro");
    let pol = Policy::default();
    let mut one = started(&prof, Mode::Standard, 144);
    let mut many = one.clone();
    one.step(&prof, &pol, Credits::whole(40), Credits::whole(6));
    for _ in 0..40 {
        many.step(&prof, &pol, Credits::whole(1), Credits::milli(150));
    }
    assert_eq!(one.earned, Credits::milli(144_000 - 10_000 + 1_500));
    assert_eq!(one, many);
}

#[test]
fn hysteresis_releases_above_threshold() {
    let prof = p("t2.micro");
    let pol = Policy {
        landing: Landing::Exact,
        release_above: Credits::whole(1),
    };
    let mut b = Bucket::new(&prof, Mode::Standard, Credits::ZERO).unwrap();
    b.start_with_launch(&prof, &pol, 0, Credits::ZERO);
    assert!(b.held);
    b.step(&prof, &pol, Credits::ZERO, Credits::milli(600));
    assert!(b.held, "0.6 credits is not above the release threshold");
    b.step(&prof, &pol, Credits::ZERO, Credits::milli(600));
    assert!(!b.held);
    assert_eq!(b.ceiling(&prof, &pol), Rate::cores(1));
}

#[test]
fn ramp_lowers_the_ceiling_smoothly() {
    let prof = p("t3.micro"); // 2 vCPU, baseline 0.2
    let pol = Policy {
        landing: Landing::Ramp {
            credits: Credits::whole(10),
            steps: 10,
        },
        release_above: Credits::ZERO,
    };
    let mut last = Rate::cores(2);
    for c in (0..=12).rev() {
        let mut b = Bucket::new(&prof, Mode::Standard, Credits::whole(c)).unwrap();
        b.start_with_launch(&prof, &pol, 0, Credits::ZERO);
        let ceil = b.ceiling(&prof, &pol);
        assert!(ceil <= last, "ceiling rises as balance falls at {c}");
        assert!(ceil >= prof.baseline());
        if c >= 10 {
            assert_eq!(ceil, Rate::cores(2));
        }
        last = ceil;
    }
    assert_eq!(last, prof.baseline());
}

#[derive(Clone, Debug)]
enum Op {
    Run { milli_cores: u64, ms: u64 },
    Stop,
    Start,
    Switch(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..=8_000, 1u64..=7_200_000).prop_map(|(milli_cores, ms)| Op::Run { milli_cores, ms }),
        1 => Just(Op::Stop),
        1 => Just(Op::Start),
        1 => any::<bool>().prop_map(Op::Switch),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_under_any_sequence(
        name in prop::sample::select(vec!["t2.nano", "t2.2xlarge", "t3.micro", "t4g.xlarge", "B2s"]),
        initial in 0i64..2000,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let prof = p(name);
        let pol = Policy::default();
        let mut lim = LaunchLimiter::new(3, limiter::DAY_S);
        let mut b = Bucket::new(&prof, prof.default_mode, Credits::whole(initial)).unwrap();
        b.start(&prof, &pol, 0, &mut lim);
        let mut now_ms = 0u64;
        for op in ops {
            match op {
                Op::Run { milli_cores, ms } => {
                    now_ms += ms;
                    if b.is_running() {
                        let cores = Rate::from_cores_f64(milli_cores as f64 / 1000.0).unwrap().min(prof.full());
                        b.step(&prof, &pol, cores.over(ms * 1_000_000), prof.earn_rate.over(ms * 1_000_000));
                    }
                }
                Op::Stop => { b.stop(&prof, now_ms / 1000); }
                Op::Start => { b.start(&prof, &pol, now_ms / 1000, &mut lim); }
                Op::Switch(unl) => {
                    let m = if unl { Mode::Unlimited } else { Mode::Standard };
                    let r = b.switch(&prof, &pol, m);
                    prop_assert_eq!(r.is_err(), unl && !prof.unlimited_allowed);
                }
            }
            prop_assert!(b.earned >= Credits::ZERO && b.earned <= prof.max_earned);
            prop_assert!(b.surplus >= Credits::ZERO && b.surplus <= prof.max_earned);
            prop_assert!(b.launch >= Credits::ZERO);
            prop_assert!(!(b.earned.is_positive() && b.surplus.is_positive()));
            prop_assert!(b.mode == Mode::Standard || b.launch.is_zero());
            prop_assert_eq!(b.earned + b.launch - b.surplus, b.ledger_balance());
            let ceil = b.ceiling(&prof, &pol);
            prop_assert!(ceil == prof.full() || (ceil == prof.baseline() && b.held));
        }
    }

    #[test]
    fn step_size_does_not_matter_without_crossings(
        e0 in 200i64..500,
        milli_cores in 0u64..1500,
        steps in 1u64..2000,
        dt_ms in 1u64..2000,
    ) {
        // t2.large (max 864): at most 1.5 cores for ≤ 4000 s never crosses zero or the limit.
        let prof = p("t2.large");
        let pol = Policy::default();
        let mut a = Bucket::new(&prof, Mode::Standard, Credits::whole(e0)).unwrap();
        a.start_with_launch(&prof, &pol, 0, Credits::ZERO);
        let mut b = a.clone();
        let cpu_ns = milli_cores * dt_ms * 1000;
        for _ in 0..steps {
            a.step_cpu(&prof, &pol, cpu_ns, dt_ms * 1_000_000);
        }
        b.step_cpu(&prof, &pol, cpu_ns * steps, dt_ms * 1_000_000 * steps);
        prop_assert_eq!(a, b);
    }
}

/// Microsoft, "B-series CPU credit model" (learn.microsoft.com/azure/virtual-machines/
/// b-series-cpu-credit-model): "Initial Credits = The number of credits allocated to a B-series
/// virtual machine when a VM is deployed." "Max Banked Credits = The maximum number/upper limit
/// of credits a B-series virtual machine can accumulate. Upon reaching this upper limit, a
/// B-series VM can no longer accumulate more credits." Unlike AWS for T2 launch credits ("do
/// not count towards the limit"), Microsoft sets no initial credits apart: they count toward
/// the max (docs/semantics.md).
#[test]
fn azure_initial_credits_count_toward_max_banked() {
    let az = p("B1s"); // 6 credits/h, max banked 144, initial 30
    let mut b = started(&az, Mode::Standard, 0);
    run(
        &mut b,
        &az,
        Rate::ZERO,
        48 * 3600 * NS_PER_SEC,
        3600 * NS_PER_SEC,
    );
    assert_eq!(b.balance(), Credits::whole(144)); // not 174
    assert_eq!(b.totals.discarded, Credits::whole(30 + 288 - 144));
    assert_eq!(b.ledger_balance(), b.balance());
    // Initial credits on top of a full bank are discarded at once, and booked as such.
    let b = started(&az, Mode::Standard, 130);
    assert_eq!(b.balance(), Credits::whole(144));
    assert_eq!(b.totals.launch_granted, Credits::whole(30));
    assert_eq!(b.totals.discarded, Credits::whole(16));
    assert_eq!(b.ledger_balance(), b.balance());
    // T2 still keeps launch credits outside: an idle t2.micro shows 174 (AWS's own example).
    let t2 = p("t2.micro");
    let mut b = started(&t2, Mode::Standard, 0);
    run(
        &mut b,
        &t2,
        Rate::ZERO,
        48 * 3600 * NS_PER_SEC,
        3600 * NS_PER_SEC,
    );
    assert_eq!(b.balance(), Credits::whole(174));
}
