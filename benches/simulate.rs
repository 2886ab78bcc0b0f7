//! 30 days of 1-second segments (2,592,000) through the simulation engine, on one core.
//!
//! Goal: over 5 M segments/s (under 0.5 s for the month). Criterion prints the throughput
//! in elements (segments) per second.

use burstd::credit::{builtin_profile, Mode};
use burstd::sim::{simulate, Segment, SimConfig};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const SEGMENTS: u64 = 30 * 86_400;

/// Varied utilisation: a pseudo-random level skewed towards low values (mean ≈ 33%).
fn month_trace() -> Vec<Segment> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..SEGMENTS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x % 10_001) as f64 / 10_000.0;
            Segment::secs(1, (r * r * 100.0 * 1000.0).round() / 1000.0)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let trace = month_trace();
    let mut group = c.benchmark_group("simulate_30_days_1s_segments");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SEGMENTS));
    for (name, mode) in [("t2.micro", Mode::Standard), ("t3.micro", Mode::Unlimited)] {
        let mut config = SimConfig::new(builtin_profile(name).expect("built-in profile"));
        config.mode = mode;
        group.bench_function(format!("{name}_{mode}"), |b| {
            b.iter(|| simulate(black_box(&config), black_box(&trace)).expect("valid trace"))
        });
    }
    group.finish();
}

/// The model's step: one sample's worth of accounting for one workload.
fn step(c: &mut Criterion) {
    use burstd::credit::{Bucket, Credits, LaunchLimiter, Policy};
    let profile = builtin_profile("t3.micro").expect("built-in profile");
    let policy = Policy::default();
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(1000));
    for mode in [Mode::Standard, Mode::Unlimited] {
        group.bench_function(format!("step_{mode}"), |b| {
            let mut bucket = Bucket::new(&profile, mode, Credits::whole(100)).expect("valid mode");
            bucket.start(&profile, &policy, 0, &mut LaunchLimiter::unlimited());
            b.iter(|| {
                for i in 0..1000u64 {
                    // Alternating light and heavy use keeps the balance away from its bounds.
                    let cpu = if i % 2 == 0 { 10_000_000 } else { 250_000_000 };
                    black_box(bucket.step_cpu(&profile, &policy, black_box(cpu), 1_000_000_000));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, step);
criterion_main!(benches);
