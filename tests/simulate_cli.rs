//! `burstd simulate` end to end: the built binary on files and standard input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example-trace.csv");

fn burstd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burstd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The binary may exit before reading (bad arguments): a broken pipe is fine.
    let _ = input.write_all(stdin.unwrap_or("").as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&stdout(&burstd(&all, stdin))).unwrap()
}

fn trace_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("trace.csv");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn table_of_the_example_trace_shows_a_held_period_on_t2_micro() {
    let out = stdout(&burstd(
        &["simulate", "--profile", "t2.micro", "--trace", EXAMPLE],
        None,
    ));
    assert!(out.starts_with(
        "profile t2.micro (1 vCPU, 6 credits/h, baseline 10% per vCPU), mode standard"
    ));
    assert!(
        out.contains("[h:mm:ss]") && out.contains("[credits]"),
        "{out}"
    );
    let held: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("held_at_baseline_s: "))
        .and_then(|v| v.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(held > 3600.0, "{held}");
    // 24 h in 300 s steps, between two header lines and the summary.
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("23:"))
            .count(),
        12
    );
}

#[test]
fn csv_has_the_cloudwatch_field_names() {
    let out = stdout(&burstd(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--trace",
            EXAMPLE,
            "--format",
            "csv",
        ],
        None,
    ));
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "t_end_s,utilization_demanded,utilization,CPUCreditUsage,CPUCreditBalance,\
         CPUSurplusCreditBalance,CPUSurplusCreditsCharged,held_at_baseline_s"
    );
    // Night at 2% of one vCPU: 300 s × 0.02 = 6 CPU-s = 0.1 credit; 30 launch + 0.5 earned − 0.1.
    let first: Vec<f64> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first, [300.0, 2.0, 2.0, 0.1, 30.4, 0.0, 0.0, 0.0]);
    // The held seconds of the steps add up to the summary's.
    let held: f64 = lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
        .sum();
    let v = json(
        &["simulate", "--profile", "t2.micro", "--trace", EXAMPLE],
        None,
    );
    assert!(held > 3600.0, "{held}");
    assert!((held - v["summary"]["held_at_baseline_s"].as_f64().unwrap()).abs() < 1e-3);
    assert_eq!(v["steps"][0]["held_at_baseline_s"], 0.0);
}

#[test]
fn json_summary_has_the_worked_examples() {
    let dir = tempfile::tempdir().unwrap();
    let path = trace_file(&dir, "seconds,utilization\n20000,100\n");
    let v = json(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--trace",
            &path,
            "--initial-credits",
            "144",
            "--launch-credits",
            "0",
        ],
        None,
    );
    assert_eq!(v["profile"], "t2.micro");
    assert_eq!(v["mode"], "standard");
    let s = &v["summary"];
    assert_eq!(s["credits_exhausted_at_s"], 9600.0);
    assert_eq!(s["held_at_baseline_s"], 10400.0);
    assert_eq!(s["final_balance"], 0.0);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 67);
    assert_eq!(steps[32]["utilization"], 10.0);
    assert_eq!(steps[32]["utilization_demanded"], 100.0);
    assert_eq!(steps[66]["t_end_s"], 20000.0);

    let path = trace_file(&dir, "seconds,utilization,event\n2592000,100,\n0,0,stop\n");
    let v = json(
        &[
            "simulate",
            "--profile",
            "t2.large",
            "--mode",
            "unlimited",
            "--trace",
            &path,
        ],
        None,
    );
    let s = &v["summary"];
    assert_eq!(s["surplus_credits_charged"], 60480.0);
    assert_eq!(s["surplus_cost_usd"], 50.4);
    assert_eq!(s["final_surplus_balance"], 0.0);
    assert_eq!(s["credits_exhausted_at_s"], 0.0);
    assert!(s.get("comparison").is_none());

    // Price override: $0.10 per vCPU-hour doubles the cost.
    let v = json(
        &[
            "simulate",
            "--profile",
            "t2.large",
            "--mode",
            "unlimited",
            "--trace",
            &path,
            "--price-per-vcpu-hour",
            "0.1",
        ],
        None,
    );
    assert_eq!(v["summary"]["surplus_cost_usd"], 100.8);
}

#[test]
fn comparison_and_stdin() {
    let v = json(
        &[
            "simulate",
            "--profile",
            "t3.large",
            "--trace",
            "-",
            "--compare-hourly-price",
            "0.096",
            "--instance-hourly-price",
            "0.0832",
        ],
        Some("seconds,utilization\n36000,30\n"),
    );
    assert_eq!(v["mode"], "unlimited");
    let c = &v["summary"]["comparison"];
    let be = c["break_even_utilization"].as_f64().unwrap();
    assert!((be - 42.8).abs() < 1e-9, "{be}");
    assert_eq!(c["cheaper"], "burstable");
    assert_eq!(c["running_hours"], 10.0);
    // Both prices or none.
    let o = burstd(
        &[
            "simulate",
            "--profile",
            "t3.large",
            "--trace",
            "-",
            "--compare-hourly-price",
            "0.096",
        ],
        Some("seconds,utilization\n60,1\n"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--instance-hourly-price"));
}

#[test]
fn plot_writes_a_readable_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let o = burstd(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--trace",
            EXAMPLE,
            "--format",
            "csv",
            "--plot",
            svg.to_str().unwrap(),
        ],
        None,
    );
    stdout(&o);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(text.trim_end().ends_with("</svg>"));
    for label in [
        "demanded utilization",
        "delivered utilization",
        "baseline (10.0%)",
        "CPUCreditBalance",
        "CPUSurplusCreditBalance",
        "CPUSurplusCreditsCharged (cumulative)",
        "time [hours]",
        "stopped",
        "held at baseline",
        "standard → unlimited at 16:00 → standard at 18:00",
    ] {
        assert!(text.contains(label), "{label} missing");
    }
    // Each of the trace's 4 events labelled once on each panel.
    for event in ["stop", "start", "unlimited", "standard"] {
        let label = format!(">\n{event}\n</text>");
        assert_eq!(text.matches(&label).count(), 2, "{event}");
    }
}

/// Runs with a bad trace or argument; returns stderr after checking exit code 2.
fn bad(args: &[&str], trace: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = trace_file(&dir, trace);
    let mut all = vec!["simulate", "--trace", &path];
    all.extend(args);
    let o = burstd(&all, None);
    assert_eq!(o.status.code(), Some(2), "{args:?} {trace:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_input_exits_2_naming_line_and_value() {
    let t2 = ["--profile", "t2.micro"];
    let h = "seconds,utilization,event\n";
    let cases: &[(&[&str], String, &[&str])] = &[
        (
            &t2,
            format!("{h}60,5,\n-5,5,\n"),
            &["line 3", "seconds \"-5\""],
        ),
        (&t2, format!("{h}ten,5,\n"), &["line 2", "seconds \"ten\""]),
        (
            &t2,
            format!("{h}60,5,\n60,150,\n"),
            &["line 3", "utilization \"150\"", "0 to 100"],
        ),
        (
            &t2,
            format!("{h}60,-1,\n"),
            &["line 2", "utilization \"-1\""],
        ),
        (
            &t2,
            format!("{h}60,5,reboot\n"),
            &["line 2", "\"reboot\"", "stop, start, standard, unlimited"],
        ),
        (
            &t2,
            format!("{h}60,0,stop\n60,20,\n"),
            &["line 3", "\"20\"", "stopped"],
        ),
        (
            &t2,
            "60,5\n120,7\n".to_string(),
            &["line 1", "missing header", "\"60,5\""],
        ),
        (
            &t2,
            "seconds,cpu\n60,5\n".to_string(),
            &["no `utilization` column"],
        ),
        (
            &["--profile", "t9.huge"],
            format!("{h}60,5,\n"),
            &[
                "unknown profile \"t9.huge\"",
                "accepted names (in any case)",
                "t2.micro",
                "B1s or Standard_B1s",
            ],
        ),
        (
            &["--profile", "B1s", "--mode", "unlimited"],
            format!("{h}60,5,\n"),
            &["B1s does not support unlimited"],
        ),
        (
            &["--profile", "B1s"],
            format!("{h}60,5,\n60,5,unlimited\n"),
            &["line 3", "B1s does not support unlimited"],
        ),
        (
            &["--profile", "t2.micro", "--step", "0"],
            format!("{h}60,5,\n"),
            &["--step", "\"0\""],
        ),
        (
            &["--profile", "t2.micro", "--step", "1e11"],
            format!("{h}60,5,\n"),
            &["--step", "100 years"],
        ),
        (
            &["--profile", "t2.micro", "--initial-credits", "-3"],
            format!("{h}60,5,\n"),
            &["\"-3\""],
        ),
    ];
    for (args, trace, wants) in cases {
        let err = bad(args, trace);
        for want in *wants {
            assert!(
                err.contains(want),
                "{args:?} {trace:?}: {want:?} not in {err}"
            );
        }
        if wants.iter().any(|w| w.starts_with("line")) {
            assert!(err.contains("trace.csv"), "{err}");
        }
    }
}

#[test]
fn a_missing_trace_file_is_bad_input() {
    let o = burstd(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--trace",
            "/nonexistent/x.csv",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.csv"));
}

/// A trace of the launch and `n` stop/starts, 119 s apart.
fn stop_start_trace(n: usize) -> String {
    let mut t = "seconds,utilization,event\n119,0,\n".to_string();
    for _ in 0..n {
        t.push_str("0,0,stop\n119,0,start\n");
    }
    t
}

/// AWS: "The default limit is 100 launches or starts of all T2 Standard instances combined
/// per account, per Region, per rolling 24-hour period." (EC2 User Guide, launch credit limits)
#[test]
fn launch_credit_limit_is_applied_and_reported() {
    let trace = stop_start_trace(150);
    let v = json(
        &["simulate", "--profile", "t2.micro", "--trace", "-"],
        Some(&trace),
    );
    assert_eq!(v["summary"]["launch_credits_granted"], 3000.0);
    assert_eq!(v["summary"]["launch_credit_grants_refused"], 51);
    assert_eq!(v["summary"]["launch_credit_limit"], 100);
    let out = stdout(&burstd(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--trace",
            "-",
            "--launch-credit-limit",
            "10",
        ],
        Some(&trace),
    ));
    assert!(out.contains("\nlaunch_credits_granted: 300\n"), "{out}");
    assert!(
        out.contains("\nlaunch_credit_grants_refused: 141 (limit 10 per rolling 24 h)\n"),
        "{out}"
    );
}

/// Runs with a good trace; returns (stdout as JSON, stderr).
fn json_and_stderr(args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["simulate", "--trace", "-", "--format", "json"];
    all.extend(args);
    let o = burstd(&all, Some("seconds,utilization\n86400,0\n"));
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    (serde_json::from_str(&stdout(&o)).unwrap(), err)
}

/// Issue 16 item 3: no flag is silently ignored or changed.
/// AWS, EC2 User Guide: "T4g, T3a, and T3 instances do not receive launch credits because they
/// support Unlimited mode" and "T2 Unlimited instances do not receive launch credits".
#[test]
fn flags_that_cannot_apply_are_errors_or_warnings() {
    // --launch-credits on T3: AWS never grants any, in either mode: an error (exit 2).
    for mode in ["standard", "unlimited"] {
        let err = bad(
            &[
                "--profile",
                "t3.nano",
                "--mode",
                mode,
                "--launch-credits",
                "30",
            ],
            "seconds,utilization\n60,5\n",
        );
        assert!(
            err.contains("--launch-credits 30: t3.nano never gets launch credits")
                && err.contains("--initial-credits 30"),
            "{err}"
        );
    }
    // 0 asks for what T3 does anyway: fine, no warning.
    let (_, err) = json_and_stderr(&["--profile", "t3.nano", "--launch-credits", "0"]);
    assert_eq!(err, "");

    // --launch-credits on T2 launched unlimited: a warning; nothing granted.
    let (v, err) = json_and_stderr(&[
        "--profile",
        "t2.micro",
        "--mode",
        "unlimited",
        "--launch-credits",
        "30",
    ]);
    assert!(
        err.starts_with("burstd simulate: warning: --launch-credits 30: none granted at launch")
            && err.contains("unlimited mode"),
        "{err}"
    );
    assert_eq!(v["summary"]["launch_credits_granted"], 0.0);

    // --initial-credits above the limit: capped, and said so (1000 -> 144 on t3.nano).
    let (v, err) = json_and_stderr(&["--profile", "t3.nano", "--initial-credits", "1000"]);
    assert!(
        err.contains("warning: --initial-credits 1000: capped at 144, the most t3.nano can bank"),
        "{err}"
    );
    assert_eq!(v["summary"]["initial_balance"], 144.0);
    let (_, err) = json_and_stderr(&["--profile", "t3.nano", "--initial-credits", "144"]);
    assert_eq!(err, "");

    // Flags a profile or mode never uses.
    let (_, err) = json_and_stderr(&["--profile", "t3.nano", "--ramp-credits", "10"]);
    assert!(
        err.contains("--ramp-credits: unused while t3.nano runs in unlimited mode"),
        "{err}"
    );
    let (_, err) = json_and_stderr(&["--profile", "B1s", "--price-per-vcpu-hour", "0.1"]);
    assert!(
        err.contains("--price-per-vcpu-hour: unused: B1s has no unlimited mode"),
        "{err}"
    );
}

/// Issue 16 item 4: profile names in any case, Azure sizes also by their full name.
#[test]
fn profile_names_match_in_any_case() {
    for name in ["T3.NANO", "Standard_B1s", "standard_b1s"] {
        let (v, err) = json_and_stderr(&["--profile", name]);
        assert_eq!(err, "");
        assert!(
            v["profile"] == "t3.nano" || v["profile"] == "B1s",
            "{name}: {}",
            v["profile"]
        );
    }
    let out = stdout(&burstd(&["profiles"], None));
    let row = out.lines().find(|l| l.starts_with("B1s ")).unwrap();
    assert!(row.ends_with(" Standard_B1s"), "{row}");
}

/// Issue 16 item 5: --help explains the averages and credits_exhausted_at_s; the table has a
/// held column.
#[test]
fn help_and_table_explain_the_summary() {
    let help = stdout(&burstd(&["simulate", "--help"], None));
    for want in [
        "Each step's utilization is the average over the step",
        "that hour shows\n  25%",
        "It is 0 when the workload\n  starts at zero and bursts at once",
        "`never` (null in JSON)",
        "held_at_baseline_s",
        "--launch-credit-limit <N>",
    ] {
        assert!(help.contains(want), "{want:?} not in {help}");
    }
    let out = stdout(&burstd(
        &[
            "simulate",
            "--profile",
            "t2.micro",
            "--initial-credits",
            "9",
            "--launch-credits",
            "0",
            "--step",
            "3600",
            "--trace",
            "-",
        ],
        Some("seconds,utilization\n3600,100\n"),
    ));
    let header = out.lines().nth(2).unwrap();
    assert!(
        header.trim_end().ends_with("charged       held"),
        "{header}"
    );
    let row: Vec<&str> = out.lines().nth(4).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["1:00:00", "100.00", "25.00", "15.000", "0.000", "0.000", "0.000", "3000.0"]
    );
    assert!(
        out.contains("\ncredits_exhausted_at_s: 600 s (0:10:00)\n"),
        "{out}"
    );
}
