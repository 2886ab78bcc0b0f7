//! The shipped alert rules through Prometheus's own tool (issue 17 items 2 and 3):
//! `promtool check rules` and the unit tests of `config/prometheus-alerts.test.yml` (the
//! critical alert through a momentary release; the warning before the hold). promtool comes
//! with Debian's `prometheus` package, which `.ci/run` installs: without it these tests skip
//! with a printed reason, and fail under `CI=true`.

use serde_json::json;
use std::path::Path;
use std::process::Command;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

/// Whether promtool can run here; prints why not (panics under CI=true).
fn promtool_available(test: &str) -> bool {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            let why = "promtool is not installed (Debian package `prometheus`)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {why}, and CI=true"
            );
            eprintln!("{test}: SKIPPED: {why}");
            false
        }
    }
}

/// Runs `promtool ARGS` in `dir`; panics with its output if it fails. Returns stdout.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {}:\n{out}", args.join(" "));
    out
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !promtool_available("alert_rules_pass_promtool_check_and_their_unit_tests") {
        return;
    }
    let dir = Path::new(CONFIG);
    let out = promtool(dir, &["check", "rules", "prometheus-alerts.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(dir, &["test", "rules", "prometheus-alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A dashboard expression as Prometheus would get it from Grafana: the template variables
/// replaced (`.*` is what "All" sends, `$__rate_interval` at least 4 scrape intervals).
fn as_prometheus_gets_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$workload", ".*")
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{CONFIG}/grafana-dashboard.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every query of the dashboard (panels, and the variables' `label_values` selectors) as
/// (where, PromQL).
fn dashboard_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel {:?} {}", p["title"], t["refId"]),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            if let Some(args) = q.strip_prefix("label_values(") {
                let (selector, _label) = args.rsplit_once(',').unwrap();
                out.push((format!("variable {}", v["name"]), selector.to_string()));
            }
        }
    }
    out
}

/// Issue 17 item 4: every expression of the Grafana dashboard parses with Prometheus's own
/// parser (as recording rules through `promtool check rules`), and the time-to-exhaustion
/// panel's query, run by `promtool test rules` on an idle, an unlimited, a held and a draining
/// workload, returns only the draining and the held one.
#[test]
fn dashboard_expressions_parse_and_time_to_exhaustion_leaves_out_idle_and_unlimited() {
    if !promtool_available(
        "dashboard_expressions_parse_and_time_to_exhaustion_leaves_out_idle_and_unlimited",
    ) {
        return;
    }
    let d = dashboard();
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 15, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut rules = Vec::new();
    let mut exhaustion = None;
    for (i, (place, expr)) in queries.iter().enumerate() {
        let name = format!("dashboard_expr_{i}");
        if place.contains("Time until credits run out") {
            exhaustion = Some(name.clone());
        }
        rules.push(json!({"record": name, "expr": as_prometheus_gets_it(expr)}));
    }
    let rules = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(
        dir.path().join("dashboard.yml"),
        serde_yaml::to_string(&rules).unwrap(),
    )
    .unwrap();
    let out = promtool(dir.path(), &["check", "rules", "dashboard.yml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );

    let exhaustion = exhaustion.expect("a time-to-exhaustion panel");
    let mut input = Vec::new();
    let mut expected = Vec::new();
    // (workload, mode, seconds until exhausted, shown)
    for (w, mode, secs, shown) in [
        ("idle", "standard", "Inf", false),
        ("unl", "unlimited", "0", false),
        ("held", "standard", "0", true),
        ("drain", "standard", "600", true),
    ] {
        let id = format!("job=\"burstd\",instance=\"h:9749\",workload=\"{w}\"");
        input.push(json!({
            "series": format!("burstd_seconds_until_exhausted{{{id}}}"),
            "values": format!("{secs}+0x10"),
        }));
        input.push(json!({
            "series": format!("burstd_workload_info{{{id},profile=\"t3.nano\",mode=\"{mode}\",family=\"t3\"}}"),
            "values": "1+0x10",
        }));
        if shown {
            expected.push(json!({
                "labels": format!("{exhaustion}{{{id},profile=\"t3.nano\",mode=\"standard\"}}"),
                "value": secs.parse::<f64>().unwrap(),
            }));
        }
    }
    let test = json!({
        "rule_files": ["dashboard.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input,
            "promql_expr_test": [{"expr": exhaustion, "eval_time": "5m", "exp_samples": expected}],
        }],
    });
    let test = serde_yaml::to_string(&test).unwrap();
    std::fs::write(dir.path().join("dashboard.test.yml"), &test).unwrap();
    let out = promtool(dir.path(), &["test", "rules", "dashboard.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}\n{test}");
}
