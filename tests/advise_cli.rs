//! `burstd advise` end to end: the built binary, its numbers, and its agreement with
//! `burstd simulate` row by row.

use std::process::{Command, Output};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example-trace.csv");

fn burstd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burstd"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&stdout(&burstd(&all))).unwrap()
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn row<'a>(v: &'a serde_json::Value, t: &str, mode: &str) -> &'a serde_json::Value {
    v["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["instance_type"] == t && o["mode"] == mode)
        .unwrap_or_else(|| panic!("no row {t} {mode}"))
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn five_percent_on_t3_micro_is_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let trace = file(&dir, "t.csv", "seconds,utilization\n86400,5\n");
    let v = json(&["advise", "--trace", &trace, "--vcpus", "2"]);
    let o = row(&v, "t3.micro", "standard");
    assert_eq!(f(&o["held_at_baseline_s"]), 0.0);
    assert_eq!(f(&o["unserved_cpu_seconds"]), 0.0);
    assert_eq!(f(&o["surplus_charged_credits"]), 0.0);
    // 730 h at $0.0104.
    assert!((f(&o["monthly_cost_usd"]) - 7.592).abs() < 1e-9);
    // 0.1 vCPU is exactly a nano's baseline: the cheapest type of all serves it.
    assert_eq!(v["recommendation"]["instance_type"], "t4g.nano");
    assert_eq!(v["recommendation"]["mode"], "standard");
    let costs: Vec<f64> = v["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| f(&o["monthly_cost_usd"]))
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
}

#[test]
fn half_load_for_a_day_is_held_on_t3_micro_standard_all_day() {
    let dir = tempfile::tempdir().unwrap();
    let trace = file(&dir, "t.csv", "seconds,utilization\n86400,50\n");
    let v = json(&["advise", "--trace", &trace, "--vcpus", "2"]);
    // 1 vCPU demanded, 0.2 vCPU earned (12 credits/h) from an empty bucket: held from the
    // first second to the last, 0.8 vCPU × 86400 s unserved.
    let o = row(&v, "t3.micro", "standard");
    assert_eq!(f(&o["held_at_baseline_s"]), 86400.0);
    assert_eq!(f(&o["unserved_cpu_seconds"]), 69120.0);
    // Unlimited serves it all: 1152 surplus credits, 864 charged beyond the 288 the surplus
    // balance holds, 288 still owed at the end and counted in the cost.
    let u = row(&v, "t3.micro", "unlimited");
    assert_eq!(f(&u["unserved_cpu_seconds"]), 0.0);
    assert_eq!(f(&u["surplus_charged_credits"]), 864.0);
    assert_eq!(f(&u["surplus_owed_credits"]), 288.0);
    let day = 0.0104 * 24.0 + 1152.0 * 0.05 / 60.0;
    assert!((f(&u["monthly_cost_usd"]) - day * 730.0 / 24.0).abs() < 1e-9);
    // The cheapest option that serves it all is a 1-vCPU fixed type ($0.034/h); the cheaper
    // held ones are the trade-off.
    assert_eq!(v["recommendation"]["instance_type"], "c6g.medium");
    assert_eq!(v["recommendation"]["mode"], "fixed");
    let why = v["recommendation"]["why"].as_str().unwrap();
    assert!(
        why.contains("t4g.nano standard is cheaper at $3.07/month"),
        "{why}"
    );
    assert!(why.contains("77760 CPU-seconds unserved"), "{why}");
}

#[test]
fn every_row_agrees_exactly_with_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(&["advise", "--trace", EXAMPLE, "--vcpus", "1"]);
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let mut checked = 0;
    for o in v["options"].as_array().unwrap() {
        let mode = o["mode"].as_str().unwrap();
        if mode == "fixed" {
            continue;
        }
        let name = o["instance_type"].as_str().unwrap();
        let vcpus = o["vcpus"].as_u64().unwrap() as f64;
        // The trace as advise replays it on this type: each utilisation × 1 / its vCPUs.
        let mut scaled = String::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(',').collect();
            match fields.get(1).map(|u| u.trim().parse::<f64>()) {
                Some(Ok(u)) if !line.starts_with('#') => {
                    let u = (u * 1.0 / vcpus).min(100.0);
                    // advise drops mode switches: each option runs in its own mode.
                    let rest = fields[2..]
                        .iter()
                        .map(|e| match e.trim() {
                            "standard" | "unlimited" => "",
                            other => other,
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    scaled.push_str(&format!("{},{u},{rest}\n", fields[0]));
                }
                // Comments and the header.
                _ => {
                    scaled.push_str(line);
                    scaled.push('\n');
                }
            }
        }
        let trace = file(&dir, &format!("{name}.csv"), &scaled);
        let hourly = o["hourly_usd"].to_string();
        let s = json(&[
            "simulate",
            "--profile",
            name,
            "--mode",
            mode,
            "--trace",
            &trace,
            "--instance-hourly-price",
            &hourly,
            "--compare-hourly-price",
            "0",
        ]);
        let s = &s["summary"];
        let c = &s["comparison"];
        let what = format!("{name} {mode}");
        assert_eq!(o["held_at_baseline_s"], s["held_at_baseline_s"], "{what}");
        assert_eq!(
            o["surplus_charged_credits"], s["surplus_credits_charged"],
            "{what}"
        );
        assert_eq!(
            o["surplus_owed_credits"], s["final_surplus_balance"],
            "{what}"
        );
        assert_eq!(o["trace_cost_usd"], c["burstable_cost_usd"], "{what}");
        let month = f(&c["burstable_cost_usd"]) * (730.0 * 3600.0 / f(&s["duration_s"]));
        assert_eq!(f(&o["monthly_cost_usd"]), month, "{what}");
        let unserved = f(&s["cpu_demanded_core_s"]) - f(&s["cpu_delivered_core_s"]);
        assert_eq!(
            f(&o["unserved_cpu_seconds"]),
            (unserved * 1e6).round() / 1e6,
            "{what}"
        );
        checked += 1;
    }
    // Every T2/T3/T3a/T4g size in both modes.
    assert_eq!(checked, 56);
    assert!(
        v["notes"].to_string().contains("2 mode switches"),
        "{}",
        v["notes"]
    );
}

#[test]
fn table_fits_100_columns_and_names_region_and_date() {
    let out = stdout(&burstd(&["advise", "--trace", EXAMPLE]));
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    assert!(out.contains("us-east-1 on-demand Linux, 2024-06"), "{out}");
    assert!(out.contains("recommendation: "), "{out}");
    let help = stdout(&burstd(&["advise", "--help"]));
    assert!(
        help.contains("us-east-1") && help.contains("June 2024"),
        "{help}"
    );
}

#[test]
fn price_file_overrides_and_bad_ones_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let trace = file(&dir, "t.csv", "seconds,utilization\n3600,5\n");
    let csv = file(&dir, "p.csv", "instance_type,hourly_usd\nt3.micro,0.001\n");
    let v = json(&[
        "advise",
        "--trace",
        &trace,
        "--prices",
        &csv,
        "--profiles",
        "t3.micro",
    ]);
    assert!((f(&row(&v, "t3.micro", "standard")["monthly_cost_usd"]) - 0.73).abs() < 1e-9);
    assert_eq!(v["recommendation"]["instance_type"], "t3.micro");
    assert_eq!(v["prices"]["overridden_by"][0], csv.as_str());

    let bad = file(
        &dir,
        "bad.csv",
        "instance_type,hourly_usd\nt3.micro,0.01\nt3.nano,cheap\n",
    );
    let o = burstd(&["advise", "--trace", &trace, "--prices", &bad]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{bad}: line 3: t3.nano: hourly_usd \"cheap\"")),
        "{err}"
    );
    let o = burstd(&["advise", "--trace", &trace, "--region", "eu-west-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--prices FILE"));
    let o = burstd(&["advise", "--trace", &trace, "--profiles", "t9.huge"]);
    assert_eq!(o.status.code(), Some(2));
    let bad_trace = file(&dir, "b.csv", "seconds,utilization\n60,150\n");
    let o = burstd(&["advise", "--trace", &bad_trace]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
}

#[test]
fn plot_shows_demand_and_the_top_options() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("a.svg");
    let trace = file(&dir, "t.csv", "seconds,utilization\n86400,50\n");
    stdout(&burstd(&[
        "advise",
        "--trace",
        &trace,
        "--plot",
        svg.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80]);
    for label in [
        "demand",
        "t4g.nano standard ($3.07/month)",
        "c6g.medium fixed ($24.82/month)",
    ] {
        assert!(text.contains(label), "{label}");
    }
}

const STATS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/cloudwatch-get-metric-statistics.json"
);
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/cloudwatch-get-metric-data.json"
);
const PROM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/prometheus-query-range.json"
);

#[test]
fn sample_exports_are_read_by_simulate_and_advise() {
    // A day of 5-minute datapoints with a 10-minute gap: 286 datapoints + the gap = 24 h.
    for (path, duration) in [(STATS, 86_400.0), (DATA, 86_400.0), (PROM, 86_400.0)] {
        let o = burstd(&[
            "simulate",
            "--profile",
            "t3.micro",
            "--trace",
            path,
            "--format",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(f(&v["summary"]["duration_s"]), duration, "{path}");
        let notes = String::from_utf8_lossy(&o.stderr);
        if path != PROM {
            assert!(notes.contains("is the CPU it was delivered"), "{notes}");
        }
        let a = json(&["advise", "--trace", path]);
        assert_eq!(f(&a["trace"]["duration_s"]), duration, "{path}");
        assert!(a["recommendation"]["instance_type"].is_string());
    }
    let a = json(&["advise", "--trace", STATS]);
    let notes = a["notes"].to_string();
    assert!(notes.contains("286 datapoints, 300 s apart"), "{notes}");
    assert!(notes.contains("1 gaps (600 s in all"), "{notes}");
    let a = json(&["advise", "--trace", PROM]);
    assert!(a["notes"]
        .to_string()
        .contains("1440 datapoints, 60 s apart"));
}

#[test]
fn malformed_exports_exit_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"Datapoints": [{"Timestamp": "2024-05-01T00:00:00+00:00", "Average": "high"}]}"#,
            "Datapoints[0] (2024-05-01T00:00:00+00:00): value \"high\" is not a number",
        ),
        (
            r#"{"MetricDataResults": [], "Messages": []}"#,
            "MetricDataResults: 0 results",
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            "data.resultType",
        ),
        ("{\n  \"Datapoints\": [,]\n}", "line 2 column"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = file(&dir, &format!("{i}.json"), text);
        for cmd in [
            vec!["simulate", "--profile", "t3.micro", "--trace", &path],
            vec!["advise", "--trace", &path],
        ] {
            let o = burstd(&cmd);
            assert_eq!(o.status.code(), Some(2), "{cmd:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(&format!("{path}: ")) && err.contains(want),
                "{err}"
            );
        }
    }
    // Forcing a format reads the file as that format.
    let o = burstd(&["advise", "--trace", STATS, "--trace-format", "csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 1: the header has no `seconds` column")
    );
    let o = burstd(&["advise", "--trace", EXAMPLE, "--trace-format", "prometheus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid JSON"));
}

#[test]
fn a_recorded_trace_gives_its_vcpus() {
    let dir = tempfile::tempdir().unwrap();
    let trace = file(
        &dir,
        "r.csv",
        "# burstd record: process 1, every 1 s, utilization in % of 4 vCPUs\n\
         seconds,utilization\n3600.000,25.000\n",
    );
    let v = json(&["advise", "--trace", &trace]);
    assert_eq!(v["trace"]["vcpus"], 4);
    assert_eq!(f(&v["trace"]["peak_vcpus"]), 1.0);
    assert!(v["notes"][0]
        .as_str()
        .unwrap()
        .contains("from the trace's `burstd record` header"));
    // --vcpus wins: 25% of 2 vCPUs is half a vCPU.
    let v = json(&["advise", "--trace", &trace, "--vcpus", "2"]);
    assert_eq!(f(&v["trace"]["peak_vcpus"]), 0.5);
}
