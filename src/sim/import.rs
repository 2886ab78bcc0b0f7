//! Traces from where users already have data: CloudWatch exports of `CPUUtilization` as the
//! AWS CLI prints them (`get-metric-statistics`, `get-metric-data`) and a Prometheus
//! `/api/v1/query_range` result, beside burstd's own CSV ([`super::trace`]). Text in,
//! segments out; only [`load`] reads a file.
//!
//! A CloudWatch datapoint is the average over the period that starts at its timestamp; the
//! period is the datapoints' spacing (the export's `--period`), so a day of 5-minute
//! datapoints is 288 segments of 300 s. A Prometheus sample is the value over the step that
//! ends at its time (a rate over the window before it); either way each point becomes one
//! segment of the spacing. Points are sorted by time; duplicates are merged (their mean);
//! gaps become idle running time (0%); all of it is reported in [`Loaded::notes`].

use super::trace::{parse_trace, Segment, TraceError};
use serde_json::Value;

/// The formats `--trace-format` names.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum TraceFormat {
    Csv,
    Cloudwatch,
    Prometheus,
}

impl TraceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::Csv => "csv",
            TraceFormat::Cloudwatch => "cloudwatch",
            TraceFormat::Prometheus => "prometheus",
        }
    }
}

/// A trace read in any format.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub segments: Vec<Segment>,
    pub format: TraceFormat,
    /// What the reader did that the user should know (gaps, duplicates, what the numbers mean).
    pub notes: Vec<String>,
    /// The vCPUs the utilisation is a percentage of, when the file says (`burstd record`'s
    /// header comment `… in % of N vCPUs`).
    pub vcpus: Option<u32>,
}

/// N from a `# burstd record: … in % of N vCPUs` comment line.
fn recorded_vcpus(text: &str) -> Option<u32> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter(|l| l.starts_with("# burstd record:"))
        .find_map(|l| {
            let rest = &l[l.find("% of ")? + 5..];
            rest.strip_suffix(" vCPUs")?.trim().parse().ok()
        })
}

/// What a trace of delivered CPU means on a T instance.
pub const CLOUDWATCH_DELIVERED: &str = "CloudWatch's CPUUtilization of a T instance is the CPU \
     it was delivered, not what it wanted: where it was held at its baseline, the real demand \
     was higher (the trace is a lower bound there)";

/// Values up to this much above 100% (rate jitter) are taken as 100%.
const OVER_100_TOLERANCE: f64 = 1.0;

/// Opens `path` (`-` is standard input) and parses it in `format` (`None`: by its content).
pub fn load(path: &str, format: Option<TraceFormat>) -> Result<Loaded, TraceError> {
    let name = if path == "-" { "<stdin>" } else { path };
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin().lock())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| TraceError::Io {
        file: name.to_string(),
        source,
    })?;
    parse(&text, name, format)
}

/// Which format `text` is in, by its content: JSON with `Datapoints` or `MetricDataResults`
/// is CloudWatch, JSON with `data.result` Prometheus, anything else CSV.
pub fn detect(text: &str) -> TraceFormat {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if !t.starts_with('{') {
        return TraceFormat::Csv;
    }
    if t.contains("\"Datapoints\"") || t.contains("\"MetricDataResults\"") {
        TraceFormat::Cloudwatch
    } else {
        TraceFormat::Prometheus
    }
}

/// Parses `text` in `format` (`None`: detected); `file` names it in errors.
pub fn parse(text: &str, file: &str, format: Option<TraceFormat>) -> Result<Loaded, TraceError> {
    let format = format.unwrap_or_else(|| detect(text));
    match format {
        TraceFormat::Csv => Ok(Loaded {
            segments: parse_trace(text.as_bytes(), file)?,
            format,
            notes: Vec::new(),
            vcpus: recorded_vcpus(text),
        }),
        TraceFormat::Cloudwatch | TraceFormat::Prometheus => {
            let err = |place: String, message: String| TraceError::Import {
                file: file.to_string(),
                place,
                message,
            };
            let json: Value =
                serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
                    err(
                        format!("line {} column {}", e.line(), e.column()),
                        format!("not valid JSON: {e}"),
                    )
                })?;
            let (points, mut notes) = if format == TraceFormat::Cloudwatch {
                cloudwatch(&json).map_err(|(p, m)| err(p, m))?
            } else {
                prometheus(&json).map_err(|(p, m)| err(p, m))?
            };
            let segments = segments(points, &mut notes).map_err(|(p, m)| err(p, m))?;
            if format == TraceFormat::Cloudwatch {
                notes.push(CLOUDWATCH_DELIVERED.to_string());
            }
            Ok(Loaded {
                segments,
                format,
                notes,
                vcpus: None,
            })
        }
    }
}

/// A point: time in milliseconds since 1970, value in percent, where it was (for errors).
type Point = (i64, f64, String);
type Failure = (String, String);

fn cloudwatch(json: &Value) -> Result<(Vec<Point>, Vec<String>), Failure> {
    let mut notes = Vec::new();
    let mut points = Vec::new();
    if let Some(dps) = json.get("Datapoints") {
        let dps = dps.as_array().ok_or_else(|| {
            (
                "Datapoints".to_string(),
                "expected a list of datapoints".to_string(),
            )
        })?;
        let mut used_max = false;
        for (i, dp) in dps.iter().enumerate() {
            let place = format!("Datapoints[{i}]");
            let ts = dp
                .get("Timestamp")
                .and_then(Value::as_str)
                .ok_or_else(|| (place.clone(), "no Timestamp".to_string()))?;
            let t = parse_time(ts).ok_or_else(|| {
                (
                    place.clone(),
                    format!("Timestamp {ts:?} is not a time like 2024-05-01T00:05:00+00:00"),
                )
            })?;
            let value = match (dp.get("Average"), dp.get("Maximum")) {
                (Some(v), _) => v,
                (None, Some(v)) => {
                    used_max = true;
                    v
                }
                (None, None) => {
                    return Err((
                        format!("{place} ({ts})"),
                        "neither Average nor Maximum: export with --statistics Average".to_string(),
                    ))
                }
            };
            let v = value.as_f64().ok_or_else(|| {
                (
                    format!("{place} ({ts})"),
                    format!("value {value} is not a number"),
                )
            })?;
            points.push((t, v, format!("{place} ({ts})")));
        }
        if used_max {
            notes.push(
                "datapoints without Average used their Maximum: the period's peak, above its mean"
                    .to_string(),
            );
        }
    } else if let Some(results) = json.get("MetricDataResults") {
        let results = results.as_array().ok_or_else(|| {
            (
                "MetricDataResults".to_string(),
                "expected a list".to_string(),
            )
        })?;
        if results.len() != 1 {
            return Err((
                "MetricDataResults".to_string(),
                format!(
                    "{} results; export one metric (one --metric-data-queries entry)",
                    results.len()
                ),
            ));
        }
        let r = &results[0];
        let list = |key: &str| {
            r.get(key).and_then(Value::as_array).ok_or_else(|| {
                (
                    format!("MetricDataResults[0].{key}"),
                    "missing or not a list".to_string(),
                )
            })
        };
        let (stamps, values) = (list("Timestamps")?, list("Values")?);
        if stamps.len() != values.len() {
            return Err((
                "MetricDataResults[0]".to_string(),
                format!("{} Timestamps but {} Values", stamps.len(), values.len()),
            ));
        }
        for (i, (ts, v)) in stamps.iter().zip(values).enumerate() {
            let place = format!("MetricDataResults[0].Timestamps[{i}]");
            let text = ts.as_str().unwrap_or("");
            let t = parse_time(text).ok_or_else(|| {
                (
                    place.clone(),
                    format!("{ts} is not a time like 2024-05-01T00:05:00+00:00"),
                )
            })?;
            let x = v.as_f64().ok_or_else(|| {
                (
                    format!("MetricDataResults[0].Values[{i}] ({text})"),
                    format!("value {v} is not a number"),
                )
            })?;
            points.push((t, x, format!("MetricDataResults[0].Values[{i}] ({text})")));
        }
        if let Some(status) = r.get("StatusCode").and_then(Value::as_str) {
            if status != "Complete" {
                notes.push(format!(
                    "StatusCode {status}: CloudWatch returned part of the data (NextToken); \
                     the trace covers only what the file has"
                ));
            }
        }
    } else {
        return Err((
            "top level".to_string(),
            "neither Datapoints (get-metric-statistics) nor MetricDataResults \
             (get-metric-data)"
                .to_string(),
        ));
    }
    Ok((points, notes))
}

fn prometheus(json: &Value) -> Result<(Vec<Point>, Vec<String>), Failure> {
    let top = |m: &str| ("top level".to_string(), m.to_string());
    match json.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some(other) => {
            let e = json.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(top(&format!("status {other:?}: {e}")));
        }
        None => return Err(top("no `status`: not a Prometheus API answer")),
    }
    let data = json.get("data").ok_or_else(|| top("no `data`"))?;
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    if kind != "matrix" {
        return Err((
            "data.resultType".to_string(),
            format!("{kind:?}: expected \"matrix\" (a /api/v1/query_range answer)"),
        ));
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| ("data.result".to_string(), "not a list".to_string()))?;
    if result.len() != 1 {
        return Err((
            "data.result".to_string(),
            format!(
                "{} series; the trace needs exactly one (e.g. wrap the query in avg(...))",
                result.len()
            ),
        ));
    }
    let values = result[0]
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            (
                "data.result[0].values".to_string(),
                "not a list".to_string(),
            )
        })?;
    let mut points = Vec::new();
    let mut nan = 0;
    for (i, pair) in values.iter().enumerate() {
        let place = format!("data.result[0].values[{i}]");
        let (t, v) = match pair.as_array().map(Vec::as_slice) {
            Some([t, v]) => (t, v),
            _ => return Err((place, format!("{pair} is not [time, \"value\"]"))),
        };
        let t = t
            .as_f64()
            .filter(|t| t.is_finite() && (0.0..1e11).contains(t))
            .ok_or_else(|| (place.clone(), format!("time {t} is not a Unix time")))?;
        let ms = (t * 1000.0).round() as i64;
        let text = v.as_str().unwrap_or("");
        let x: f64 = text.parse().map_err(|_| {
            (
                place.clone(),
                format!("value {v} is not a number in a string"),
            )
        })?;
        if x.is_nan() {
            nan += 1;
            continue;
        }
        points.push((ms, x, format!("{place} (t={t})")));
    }
    let mut notes = Vec::new();
    if nan > 0 {
        notes.push(format!("{nan} NaN samples left out (their time is a gap)"));
    }
    if !points.is_empty() && points.iter().all(|p| p.1 <= 1.0) {
        notes.push(
            "every value is ≤ 1: if the query gives a fraction of the CPUs, multiply it by 100 \
             (the trace is in percent)"
                .to_string(),
        );
    }
    Ok((points, notes))
}

/// Sorted, merged, gap-filled points as segments of the spacing.
fn segments(mut points: Vec<Point>, notes: &mut Vec<String>) -> Result<Vec<Segment>, Failure> {
    if points.is_empty() {
        return Err(("top level".to_string(), "no datapoints".to_string()));
    }
    let mut clamped = 0;
    for (_, v, place) in &mut points {
        if !(0.0..=100.0 + OVER_100_TOLERANCE).contains(v) {
            return Err((
                place.clone(),
                format!(
                    "value {v} is not a percentage from 0 to 100 of all CPUs (use an average \
                     over the CPUs, not a sum)"
                ),
            ));
        }
        if *v > 100.0 {
            *v = 100.0;
            clamped += 1;
        }
    }
    if clamped > 0 {
        notes.push(format!("{clamped} values just above 100% taken as 100%"));
    }
    points.sort_by_key(|p| p.0);
    // Merge duplicates: the mean of the values at one time.
    let mut merged: Vec<(i64, f64, String)> = Vec::with_capacity(points.len());
    let mut dups = 0;
    let mut count = 1.0;
    for p in points {
        match merged.last_mut() {
            Some(last) if last.0 == p.0 => {
                dups += 1;
                count += 1.0;
                last.1 += (p.1 - last.1) / count;
            }
            _ => {
                count = 1.0;
                merged.push(p);
            }
        }
    }
    if dups > 0 {
        notes.push(format!(
            "{dups} duplicate timestamps merged (each time's values averaged)"
        ));
    }
    // The period: the most common spacing (the smallest of equally common ones).
    let mut gaps: Vec<i64> = merged.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let period = if gaps.is_empty() {
        notes.push("a single datapoint: taken as 300 s (CloudWatch's 5 minutes)".to_string());
        300_000
    } else {
        let mut best = (0, gaps[0]);
        let mut i = 0;
        while i < gaps.len() {
            let j = gaps[i..].iter().take_while(|&&g| g == gaps[i]).count();
            if j > best.0 {
                best = (j, gaps[i]);
            }
            i += j;
        }
        best.1
    };
    let mut out = Vec::with_capacity(merged.len());
    let (mut holes, mut hole_ms, mut longest, mut short) = (0, 0i64, (0i64, String::new()), 0);
    for (i, (t, v, place)) in merged.iter().enumerate() {
        let next = merged.get(i + 1).map(|n| n.0);
        let len = match next {
            Some(n) if n - t < period => {
                short += 1;
                n - t
            }
            _ => period,
        };
        out.push(Segment {
            line: i as u64 + 1,
            duration_ns: len as u64 * 1_000_000,
            utilization: *v,
            event: None,
        });
        if let Some(n) = next {
            let hole = n - t - len;
            if hole > 0 {
                holes += 1;
                hole_ms += hole;
                if hole > longest.0 {
                    longest = (hole, place.clone());
                }
                out.push(Segment {
                    line: i as u64 + 1,
                    duration_ns: hole as u64 * 1_000_000,
                    utilization: 0.0,
                    event: None,
                });
            }
        }
    }
    notes.insert(
        0,
        format!(
            "{} datapoints, {} s apart: each is one segment of {} s",
            merged.len(),
            period as f64 / 1000.0,
            period as f64 / 1000.0
        ),
    );
    if holes > 0 {
        notes.push(format!(
            "{holes} gaps ({} s in all, the longest {} s after {}) taken as idle (0%); if \
             the instance was stopped then, a CSV trace with stop/start events says so",
            hole_ms as f64 / 1000.0,
            longest.0 as f64 / 1000.0,
            longest.1
        ));
    }
    if short > 0 {
        notes.push(format!(
            "{short} datapoints closer than the period: each lasts until the next"
        ));
    }
    Ok(out)
}

/// RFC 3339 time (`2024-05-01T00:05:00+00:00`, `…Z`, fractions of a second) in milliseconds
/// since 1970.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        ms = first3.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = &rest[1..];
            let (oh, om) = match o.len() {
                5 if o.as_bytes()[2] == b':' => (o.get(0..2)?, o.get(3..5)?),
                4 => (o.get(0..2)?, o.get(2..4)?),
                _ => return None,
            };
            sign * (oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?)
        }
    };
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, TraceError> {
        parse(text, "f.json", None)
    }

    #[test]
    fn recorded_traces_say_their_vcpus() {
        let l = parse(
            "# burstd record: cgroup a (cgroup v1), every 1 s, utilization in % of 4 vCPUs\n\
             seconds,utilization\n1.000,5.000\n",
            "r.csv",
            None,
        )
        .unwrap();
        assert_eq!((l.format, l.vcpus), (TraceFormat::Csv, Some(4)));
        assert_eq!(recorded_vcpus("seconds,utilization\n"), None);
    }

    #[test]
    fn times_parse_with_offsets_and_fractions() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time("2024-05-01T00:05:00+00:00"),
            Some(1_714_521_900_000)
        );
        assert_eq!(
            parse_time("2024-05-01T02:05:00+02:00"),
            Some(1_714_521_900_000)
        );
        assert_eq!(
            parse_time("2024-05-01T00:05:00.250Z"),
            Some(1_714_521_900_250)
        );
        assert_eq!(parse_time("2024-13-01T00:05:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn statistics_are_sorted_merged_and_gaps_filled() {
        let text = r#"{"Label": "CPUUtilization", "Datapoints": [
            {"Timestamp": "2024-05-01T00:10:00+00:00", "Average": 30.0, "Unit": "Percent"},
            {"Timestamp": "2024-05-01T00:00:00+00:00", "Average": 10.0, "Unit": "Percent"},
            {"Timestamp": "2024-05-01T00:05:00+00:00", "Average": 20.0, "Unit": "Percent"},
            {"Timestamp": "2024-05-01T00:05:00+00:00", "Average": 40.0, "Unit": "Percent"},
            {"Timestamp": "2024-05-01T00:25:00+00:00", "Average": 50.0, "Unit": "Percent"}]}"#;
        let l = load(text).unwrap();
        assert_eq!(l.format, TraceFormat::Cloudwatch);
        let got: Vec<(u64, f64)> = l
            .segments
            .iter()
            .map(|s| (s.duration_ns / 1_000_000_000, s.utilization))
            .collect();
        assert_eq!(
            got,
            [
                (300, 10.0),
                (300, 30.0),
                (300, 30.0),
                (600, 0.0),
                (300, 50.0)
            ]
        );
        let notes = l.notes.join("\n");
        assert!(notes.contains("4 datapoints, 300 s apart"), "{notes}");
        assert!(notes.contains("1 duplicate timestamps merged"), "{notes}");
        assert!(notes.contains("1 gaps (600 s in all"), "{notes}");
        assert!(notes.contains("delivered"), "{notes}");
    }

    #[test]
    fn metric_data_newest_first_and_prometheus_one_series() {
        let text = r#"{"MetricDataResults": [{"Id": "cpu", "Label": "CPUUtilization",
            "Timestamps": ["2024-05-01T00:02:00+00:00", "2024-05-01T00:01:00+00:00"],
            "Values": [7.5, 2.5], "StatusCode": "Complete"}], "Messages": []}"#;
        let l = load(text).unwrap();
        let u: Vec<f64> = l.segments.iter().map(|s| s.utilization).collect();
        assert_eq!(u, [2.5, 7.5]);
        assert_eq!(l.segments[0].duration_ns, 60_000_000_000);
        let text = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},
            "values":[[1714521600,"12.5"],[1714521615,"100.2"],[1714521630,"NaN"],[1714521645,"3"]]}]}}"#;
        let l = load(text).unwrap();
        assert_eq!(l.format, TraceFormat::Prometheus);
        let got: Vec<(u64, f64)> = l
            .segments
            .iter()
            .map(|s| (s.duration_ns / 1_000_000_000, s.utilization))
            .collect();
        assert_eq!(got, [(15, 12.5), (15, 100.0), (15, 0.0), (15, 3.0)]);
    }

    #[test]
    fn malformed_input_names_the_place() {
        let cases = [
            (
                "{\"Datapoints\": [",
                "f.json: line 1 column 16: not valid JSON",
            ),
            (
                r#"{"Datapoints": [{"Timestamp": "2024-05-01T00:00:00Z", "Average": 5},
                   {"Timestamp": "soon", "Average": 5}]}"#,
                "f.json: Datapoints[1]: Timestamp \"soon\"",
            ),
            (
                r#"{"Datapoints": [{"Timestamp": "2024-05-01T00:00:00Z", "Average": 150}]}"#,
                "f.json: Datapoints[0] (2024-05-01T00:00:00Z): value 150",
            ),
            (
                r#"{"Datapoints": [{"Timestamp": "2024-05-01T00:00:00Z", "Sum": 5}]}"#,
                "neither Average nor Maximum",
            ),
            (r#"{"Datapoints": []}"#, "f.json: top level: no datapoints"),
            (
                r#"{"MetricDataResults": [{"Timestamps": ["2024-05-01T00:00:00Z"], "Values": []}]}"#,
                "f.json: MetricDataResults[0]: 1 Timestamps but 0 Values",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "f.json: data.result: 0 series",
            ),
            (
                r#"{"status":"error","error":"bad query"}"#,
                "status \"error\": bad query",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"x"]]}]}}"#,
                "f.json: data.result[0].values[0]: value \"x\"",
            ),
        ];
        for (text, want) in cases {
            let msg = load(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }
}
