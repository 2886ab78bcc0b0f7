//! Metrics: names, labels and values from the real loop on the in-memory kernel, stopped
//! workloads disappearing, both text formats, and the endpoint over TCP.

use super::*;
use crate::daemon::event_loop::{channels, Control};
use crate::testkit;
use std::time::Duration;

const STD: &str = "time_scale = 60.0\n[[workload]]\nname = \"burn\"\ncgroup = \"burn\"\nprofile = \"t3.micro\"\nmode = \"standard\"\ninitial_credits = 1\n[[workload]]\nname = \"idle\"\ncgroup = \"idle\"\nprofile = \"t2.micro\"\n";

/// The value of the sample line starting with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"));
    let v = line.rsplit(' ').next().unwrap();
    match v {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap(),
    }
}

const BURN: &str = "{workload=\"burn\"}";

#[tokio::test(start_paused = true)]
async fn a_scrape_samples_now_and_exports_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    fake.add("burn", 1000);
    fake.add("idle", 0);
    let c = testkit::cfg(STD, dir.path());
    let (handles, inbox) = channels();
    let driver = async {
        // 0.5 s real = 30 s of credit time at a net 0.8 core: 0.4 credits spent of 1.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = ask_scrape(&handles.probes).await.unwrap();
        let text = encode(&s, false);
        for name in METRIC_NAMES {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing from\n{text}"
            );
        }
        let bal = value(&text, &format!("burstd_cpu_credit_balance{BURN}"));
        assert!((bal - 0.6).abs() < 0.002, "{bal}");
        let used = value(&text, &format!("burstd_cpu_credit_usage_total{BURN}"));
        assert!(
            (used - 0.5).abs() < 0.002,
            "spent is gross: 30 s at 1 core = 0.5, {used}"
        );
        let cpu = value(&text, &format!("burstd_cpu_usage_seconds_total{BURN}"));
        assert!((cpu - 0.5).abs() < 0.002, "{cpu}");
        assert_eq!(
            value(&text, &format!("burstd_cpu_ceiling_cores{BURN}")),
            2.0
        );
        assert_eq!(
            value(&text, &format!("burstd_cpu_baseline_cores{BURN}")),
            0.2
        );
        assert_eq!(
            value(&text, &format!("burstd_workload_held_at_baseline{BURN}")),
            0.0
        );
        // 0.6 credits at a net 0.8 core: 45 s of credit time = 0.75 real seconds.
        let left = value(&text, &format!("burstd_seconds_until_exhausted{BURN}"));
        assert!((left - 0.75).abs() < 0.01, "{left}");
        // T2 standard idle: launch credits 30, not draining.
        let idle = "{workload=\"idle\"}";
        assert_eq!(
            value(&text, &format!("burstd_cpu_launch_credit_balance{idle}")),
            30.0
        );
        assert_eq!(
            value(&text, &format!("burstd_seconds_until_exhausted{idle}")),
            f64::INFINITY
        );
        assert_eq!(value(&text, "burstd_workloads "), 2.0);
        // Profile and mode are on the info series only.
        assert_eq!(
            value(
                &text,
                "burstd_workload_info{workload=\"burn\",profile=\"t3.micro\",mode=\"standard\",family=\"t3\"} "
            ),
            1.0
        );
        assert_eq!(value(&text, "burstd_build_info{version=\""), 1.0);
        assert!(value(&text, "burstd_state_saves_total ") >= 1.0);
        assert!(value(&text, "burstd_tick_duration_seconds_count ") >= 1.0);

        // 1 s later it is held at its baseline, ceiling 0.2 cores.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = encode(&ask_scrape(&handles.probes).await.unwrap(), false);
        assert_eq!(
            value(&text, &format!("burstd_workload_held_at_baseline{BURN}")),
            1.0
        );
        assert_eq!(
            value(&text, &format!("burstd_cpu_ceiling_cores{BURN}")),
            0.2
        );
        assert_eq!(
            value(&text, &format!("burstd_seconds_until_exhausted{BURN}")),
            0.0
        );
        assert!(value(&text, &format!("burstd_cpu_throttled_seconds_total{BURN}")) > 0.0);

        // A stopped workload's series are gone from the next scrape.
        fake.remove_group("burn");
        let text = encode(&ask_scrape(&handles.probes).await.unwrap(), false);
        assert!(!text.contains("workload=\"burn\""), "{text}");
        assert!(text.contains("workload=\"idle\""));
        assert_eq!(value(&text, "burstd_workloads "), 1.0);
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
}

#[test]
fn classic_text_names_counter_families_with_total_and_has_no_eof() {
    let s = Scrape {
        workloads: vec![],
        health: Health {
            cgroup_write_errors: 3,
            ..Health::default()
        },
        saves: SaveStats::default(),
        histograms: LoopHistograms::new(),
    };
    let om = encode(&s, true);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE burstd_cgroup_write_errors counter\n"));
    assert!(om.contains("burstd_cgroup_write_errors_total 3\n"));
    let classic = encode(&s, false);
    assert!(!classic.contains("# EOF"));
    assert!(classic.contains("# TYPE burstd_cgroup_write_errors_total counter\n"));
    assert!(classic.contains("# HELP burstd_cgroup_write_errors_total Failed CPU quota writes.\n"));
    assert!(classic.contains("burstd_cgroup_write_errors_total 3\n"));
    assert!(classic.contains("# TYPE burstd_tick_duration_seconds histogram\n"));
}

/// A raw HTTP/1.1 exchange over TCP; returns the status line, headers and body.
async fn get(addr: std::net::SocketAddr, path: &str, accept: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Real time: the endpoint over TCP, content negotiation, health, and scrape latency with
/// 200 workloads (printed; run with --nocapture to see it).
#[tokio::test]
async fn endpoint_serves_both_formats_health_and_404() {
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    let text = "[[workload]]\nname = \"c\"\nmatch = \"pods/*\"\nprofile = \"t3.small\"\n";
    for i in 0..200 {
        fake.add(&format!("pods/p{i}"), 100);
    }
    let c = testkit::cfg(text, dir.path());
    let (handles, inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, handles.probes.clone(), 64));
    let driver = async {
        let r = get(addr, "/metrics", "text/plain").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
        assert!(
            r.contains("burstd_workloads 200"),
            "{}",
            &r[..400.min(r.len())]
        );
        let r = get(
            addr,
            "/metrics",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .await;
        assert!(
            r.contains("content-type: application/openmetrics-text"),
            "{r}"
        );
        assert!(r.trim_end().ends_with("# EOF"));
        assert!(get(addr, "/healthz", "*/*")
            .await
            .starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope", "*/*").await.starts_with("HTTP/1.1 404"));
        let n = 20;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let _ = get(addr, "/metrics", "text/plain").await;
        }
        println!(
            "scrape latency with 200 workloads: {:.2} ms mean over {n} scrapes",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
    server.abort();
}

/// Every `burstd_*` name in a PromQL expression is one burstd exports (histograms with their
/// `_bucket`/`_sum`/`_count` series).
fn assert_known_metrics(expr: &str, known_extra: &[&str]) {
    let mut names = Vec::new();
    let mut cur = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                names.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    let mut metrics = 0;
    for n in names
        .iter()
        .filter(|n| n.starts_with("burstd_") || known_extra.contains(&n.as_str()))
    {
        metrics += 1;
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                n.strip_suffix(s)
                    .filter(|b| b.starts_with("burstd_") && b.ends_with("_seconds"))
            })
            .unwrap_or(n);
        assert!(
            METRIC_NAMES.contains(&base) || known_extra.contains(&base),
            "{expr}: {n} is not a metric burstd exports"
        );
    }
    assert!(metrics > 0, "{expr}: uses no metric");
}

#[test]
fn alert_rules_parse_and_use_only_exported_metrics() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/prometheus-alerts.yml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let groups = doc["groups"].as_sequence().unwrap();
    let mut n = 0;
    for g in groups {
        assert!(g["name"].as_str().is_some());
        for r in g["rules"].as_sequence().unwrap() {
            let alert = r["alert"].as_str().expect("every rule has alert");
            let expr = r["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no expr"));
            let dur = r["for"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no for"));
            assert!(
                dur.ends_with('m') || dur.ends_with('s') || dur.ends_with('h'),
                "{alert}: for = {dur}"
            );
            assert!(r["annotations"]["summary"].as_str().is_some(), "{alert}");
            // `up` is Prometheus's own per-target series.
            assert_known_metrics(expr, &["up"]);
            n += 1;
        }
    }
    assert!(n >= 6, "{n} rules");
    // promtool (Debian package `prometheus`) checks the PromQL too, where it is installed.
    if let Ok(o) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/prometheus-alerts.yml"
        ))
        .output()
    {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        eprintln!("promtool not installed (Debian package `prometheus`): PromQL not checked by it");
    }
}

#[test]
fn grafana_dashboard_is_valid_json_templated_on_workload() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/grafana-dashboard.json"
    ))
    .unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Grafana 10/11 dashboards (schema 36+: a datasource object per panel and target).
    let schema = d["schemaVersion"].as_u64().unwrap();
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    // job, instance and workload: multi-select, "All" = `.*`, the current value a list.
    let vars = d["templating"]["list"].as_array().unwrap();
    for name in ["job", "instance", "workload"] {
        let v = vars
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"));
        assert_eq!(v["multi"], true, "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".*", "{name}");
        assert!(v["current"]["value"].is_array(), "{name}: {}", v["current"]);
        assert!(v["current"]["text"].is_array(), "{name}: {}", v["current"]);
        assert_known_metrics(v["definition"].as_str().unwrap(), &[]);
    }
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 3);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert_known_metrics(expr, &[]);
            // A fleet: every query is filtered by host, every legend names it.
            assert!(
                expr.contains("job=~\"$job\",instance=~\"$instance\""),
                "{expr}"
            );
            if let Some(legend) = t["legendFormat"].as_str().filter(|l| !l.is_empty()) {
                assert!(legend.contains("{{instance}}"), "{legend}");
            }
            // rate()/irate() windows follow the scrape interval ($__rate_interval).
            for f in ["rate(", "irate("] {
                for (i, _) in expr.match_indices(f) {
                    let call = &expr[i..];
                    let close = call.find(')').unwrap();
                    assert!(
                        call[..close].ends_with("[$__rate_interval]"),
                        "{expr}: a fixed rate window"
                    );
                }
            }
        }
    }
    // Time to exhaustion: standard mode only (unlimited is never held), +Inf left out.
    let tte = panels
        .iter()
        .find(|p| p["title"] == "Time until credits run out")
        .unwrap();
    let expr = tte["targets"][0]["expr"].as_str().unwrap();
    assert!(expr.contains("< +Inf"), "{expr}");
    assert!(
        expr.contains("group_left(profile, mode) burstd_workload_info{mode=\"standard\"}"),
        "{expr}"
    );
}

fn view(name: &str) -> WorkloadView {
    WorkloadView {
        instance_id: name.into(),
        container: None,
        profile: "t3.micro".into(),
        family: "t3".into(),
        cpu_credits: "standard".into(),
        running: true,
        cpu_credit_balance: 0.6,
        earned_credits: 144.0,
        launch_credits: 0.0,
        surplus_credit_balance: 0.0,
        credits_spent: 0.5,
        credits_earned: 1.25,
        credits_discarded: 0.0,
        surplus_credits_charged: 0.0,
        surplus_cost_dollars: 0.0,
        cpu_usage_seconds: 3.25,
        cpu_throttled_seconds: 0.0,
        cpu_throttled_periods: 7,
        ceiling_cores: None,
        baseline_cores: 0.2,
        usage_cores: 0.0,
        held_at_baseline: false,
        seconds_until_exhausted: None,
        usage_counter_resets: 0,
    }
}

#[test]
fn label_values_are_escaped_and_both_formats_pass_promtool() {
    let s = Scrape {
        workloads: vec![view("pods/a\"b\\c"), view("plain")],
        health: Health::default(),
        saves: SaveStats::default(),
        histograms: LoopHistograms::new(),
    };
    let classic = encode(&s, false);
    assert!(
        classic.contains("burstd_cpu_credit_balance{workload=\"pods/a\\\"b\\\\c\"} 0.6\n"),
        "{classic}"
    );
    assert!(classic.contains("burstd_cpu_throttled_periods_total{workload=\"plain\"} 7.0\n"));
    // No ceiling known: no sample for it; no balance: +Inf.
    assert!(!classic.contains("burstd_cpu_ceiling_cores{"));
    assert!(classic.contains("burstd_seconds_until_exhausted{workload=\"plain\"} +Inf\n"));
    assert!(classic.contains("# TYPE burstd_workload_info gauge\n"));
    let om = encode(&s, true);
    assert!(om.contains("# TYPE burstd_cpu_credit_usage counter\n"));
    // The info series: OpenMetrics's info type, family name without `_info`.
    assert!(om.contains("# TYPE burstd_workload info\n"), "{om}");
    assert!(om.contains(
        "burstd_workload_info{workload=\"plain\",profile=\"t3.micro\",mode=\"standard\",family=\"t3\"} 1\n"
    ));
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1);
    // promtool (Debian package `prometheus`; .ci/run installs it) parses and lints the text.
    use std::io::Write;
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(classic.as_bytes())
                .unwrap();
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Err(_) => eprintln!("promtool not installed: the text is not linted by it"),
    }
}

#[test]
fn container_instances_carry_a_container_label_and_label_errors_are_counted() {
    let mut web = view("web-prod");
    web.container = Some("web".into());
    let health = Health {
        container_label_errors: 2,
        ..Health::default()
    };
    let s = Scrape {
        workloads: vec![web, view("plain")],
        health,
        saves: SaveStats::default(),
        histograms: LoopHistograms::new(),
    };
    let text = encode(&s, false);
    assert!(
        text.contains("burstd_cpu_credit_balance{workload=\"web-prod\",container=\"web\"} 0.6\n"),
        "{text}"
    );
    assert!(text.contains("burstd_cpu_credit_balance{workload=\"plain\"} 0.6\n"));
    assert!(text.contains(
        "burstd_workload_info{workload=\"web-prod\",container=\"web\",profile=\"t3.micro\",mode=\"standard\",family=\"t3\"} 1\n"
    ));
    assert!(
        text.contains("burstd_container_label_errors_total 2\n"),
        "{text}"
    );
}

/// The per-workload series of a scrape: (sample name, label set) of every sample line that
/// has a `workload` label.
pub(crate) fn workload_series(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("{workload=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once('{')?;
            let (labels, _) = rest.rsplit_once("} ")?;
            Some((name.to_string(), labels.to_string()))
        })
        .collect()
}

/// Issue 17 item 1: a mode switch through the API continues every counter and gauge as the
/// same series; only the info series' `mode` label changes.
#[tokio::test(start_paused = true)]
async fn a_mode_switch_keeps_one_series_per_metric_per_workload() {
    use crate::api::actions::Call;
    use crate::api::types::{
        InstanceCreditSpecificationRequest, ModifyInstanceCreditSpecificationRequest, Request,
    };
    use crate::api::ApiQuery;
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    fake.add("burn", 1000);
    fake.add("idle", 0);
    let c = testkit::cfg(STD, dir.path());
    let (handles, inbox) = channels();
    let driver = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = encode(&ask_scrape(&handles.probes).await.unwrap(), false);
        let spent_before = value(&before, "burstd_cpu_credit_usage_total{workload=\"burn\"}");
        let call = Call {
            admin: true,
            request: Request::ModifyInstanceCreditSpecification(
                ModifyInstanceCreditSpecificationRequest {
                    dry_run: false,
                    client_token: None,
                    instance_credit_specifications: ["burn", "idle"]
                        .iter()
                        .map(|w| InstanceCreditSpecificationRequest {
                            instance_id: w.to_string(),
                            cpu_credits: "unlimited".into(),
                        })
                        .collect(),
                },
            ),
        };
        handles
            .api
            .ask(|reply| ApiQuery { call, reply })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = encode(&ask_scrape(&handles.probes).await.unwrap(), false);
        for (text, mode) in [(&before, "standard"), (&after, "unlimited")] {
            let series = workload_series(text);
            // Every family once per workload, plus the info series.
            let per_workload = WORKLOAD_FAMILIES.len() + 1;
            assert_eq!(series.len(), 2 * per_workload, "{text}");
            let unique: HashSet<_> = series.iter().collect();
            assert_eq!(unique.len(), series.len(), "a duplicated series in\n{text}");
            for (name, labels) in &series {
                if name == "burstd_workload_info" {
                    assert!(labels.contains(&format!(",mode=\"{mode}\",")), "{labels}");
                } else {
                    assert!(
                        labels == "workload=\"burn\"" || labels == "workload=\"idle\"",
                        "{name}{{{labels}}}: only identity labels"
                    );
                }
            }
        }
        let others = |t: &str| -> Vec<(String, String)> {
            workload_series(t)
                .into_iter()
                .filter(|(n, _)| n != "burstd_workload_info")
                .collect()
        };
        assert_eq!(others(&before), others(&after));
        // The counter went on in the same series (300 ms at 60× and 1 core = 0.3 credits).
        let spent_after = value(&after, "burstd_cpu_credit_usage_total{workload=\"burn\"}");
        assert!(
            (spent_after - spent_before - 0.3).abs() < 0.01,
            "{spent_before} → {spent_after}"
        );
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
}

/// Connects `n` clients that send nothing and hold their connections.
async fn hold(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    v
}

/// Issue 13 item 1: `max_connections` are served at once; the next is answered 503 and closed
/// at once, and a freed place is taken again. No control loop is needed: 404s and 503s only.
#[tokio::test]
async fn connections_over_the_cap_are_answered_503_and_closed() {
    use tokio::io::AsyncReadExt;
    let (handles, _inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, handles.probes.clone(), 3));
    let mut held = hold(addr, 3).await;
    // The third is admitted once the server has seen it: a request on it is answered.
    let r = {
        use tokio::io::AsyncWriteExt;
        let s = held.last_mut().unwrap();
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    // The fourth: 503 without asking anything, then EOF.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 503 Service Unavailable"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert!(
        out.ends_with("too many connections; try again later\n"),
        "{out}"
    );
    // One leaves; its place is served again (the server notices the close first).
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        let r = get(addr, "/nope", "*/*").await;
        if r.starts_with("HTTP/1.1 404") {
            served = true;
            break;
        }
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "a freed place was not served again");
    server.abort();
}

/// Issue 13 item 1: a client that sends half a request line, or nothing, is closed after
/// the header timeout (virtual time), holding nothing.
#[tokio::test(start_paused = true)]
async fn a_slow_header_client_is_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (handles, _inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, handles.probes.clone(), 4));
    for partial in [&b"GET /metrics HTTP/1.1\r\nHo"[..], b""] {
        let t = tokio::time::Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        assert!(t.elapsed() >= http::HEADER_TIMEOUT, "{:?}", t.elapsed());
    }
    server.abort();
}

/// Issue 13 item 3: a request followed by `shutdown(SHUT_WR)` is answered, then closed.
#[tokio::test(start_paused = true)]
async fn a_request_then_half_close_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    fake.add("burn", 1000);
    fake.add("idle", 0);
    let c = testkit::cfg(STD, dir.path());
    let (handles, inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, handles.probes.clone(), 4));
    let driver = async {
        for path in ["/healthz", "/metrics"] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
            if path == "/metrics" {
                assert!(out.contains("\nburstd_workloads 2"), "{out}");
            }
        }
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
    server.abort();
}

/// Issue 13 item 1: scrapes within `RENDER_REUSE` of each other share one rendered body
/// (the same bytes, not a copy each); a later one renders anew; each format has its own; the
/// cache keeps no body alive by itself.
#[tokio::test(start_paused = true)]
async fn concurrent_scrapes_share_one_rendered_body() {
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    fake.add("burn", 1000);
    fake.add("idle", 0);
    let c = testkit::cfg(STD, dir.path());
    let (handles, inbox) = channels();
    let driver = async {
        let r = Rendered::default();
        let (a, b) = tokio::join!(r.get(&handles.probes, false), r.get(&handles.probes, false));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr());
        let om = r.get(&handles.probes, true).await.unwrap();
        assert!(om.ends_with(b"# EOF\n"));
        assert!(!a.ends_with(b"# EOF\n"));
        tokio::time::sleep(RENDER_REUSE).await;
        let later = r.get(&handles.probes, false).await.unwrap();
        assert_ne!(later.as_ptr(), a.as_ptr());
        // The cache holds no body of its own: once the last sender is done, it is freed.
        drop((a, b, om, later));
        let slots = r.slots.lock().await;
        for slot in slots.iter() {
            let weak = slot.as_ref().unwrap().1.as_ref().unwrap();
            assert!(weak.upgrade().is_none());
        }
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
}

/// Issue 13 item 1: a client that pipelines scrapes and never reads is closed once a write has
/// been blocked for `WRITE_STALL_TIMEOUT` (virtual time), holding nothing after that.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_closed_after_the_write_stall_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    let text = "[[workload]]\nname = \"c\"\nmatch = \"pods/*\"\nprofile = \"t3.small\"\n";
    for i in 0..200 {
        fake.add(&format!("pods/p{i}"), 100);
    }
    let c = testkit::cfg(text, dir.path());
    let (handles, inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, handles.probes.clone(), 4));
    let driver = async {
        // A small receive buffer: the responses back up into the server's writes.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let asked = 40;
        s.write_all(&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(asked))
            .await
            .unwrap();
        tokio::time::sleep(http::WRITE_STALL_TIMEOUT + Duration::from_secs(1)).await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(matches!(read, Ok(Ok(_))), "still open: {read:?}");
        let answered = out.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
        assert!(
            answered < asked,
            "{answered} of {asked} answered: nothing stalled"
        );
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(testkit::agent(&c, &fake), inbox), driver);
    server.abort();
}
