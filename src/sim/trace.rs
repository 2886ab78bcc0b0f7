//! Utilisation traces: CSV `seconds,utilization[,event]` parsed into [`Segment`]s.
//!
//! Each row is a segment of `seconds` (fractional, kept to the millisecond) at a constant
//! demanded utilisation in percent of all the workload's vCPUs together (CloudWatch
//! `CPUUtilization`). An `event`, when present and not empty, applies at the start of the
//! segment. Lines starting with `#` are comments. Parsing reads from any [`Read`]; only
//! [`load_trace`] opens files (or standard input for `-`).

use std::fmt;
use std::io::Read;

/// Something that happens to the workload at the start of a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    Stop,
    Start,
    /// Switch to standard mode.
    Standard,
    /// Switch to unlimited mode.
    Unlimited,
}

impl Event {
    /// The spellings the trace accepts.
    pub const NAMES: [&'static str; 4] = ["stop", "start", "standard", "unlimited"];

    pub fn parse(s: &str) -> Option<Event> {
        match s {
            "stop" => Some(Event::Stop),
            "start" => Some(Event::Start),
            "standard" => Some(Event::Standard),
            "unlimited" => Some(Event::Unlimited),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Stop => "stop",
            Event::Start => "start",
            Event::Standard => "standard",
            Event::Unlimited => "unlimited",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a trace.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Segment {
    /// Line in the trace file (1-based; 0 when built in code), for error messages.
    pub line: u64,
    pub duration_ns: u64,
    /// Demanded utilisation, percent of all vCPUs (0–100).
    pub utilization: f64,
    /// Applies at the start of the segment.
    pub event: Option<Event>,
}

impl Segment {
    /// A segment of whole seconds without an event (for tests and benchmarks).
    pub fn secs(seconds: u64, utilization: f64) -> Segment {
        Segment {
            line: 0,
            duration_ns: seconds * 1_000_000_000,
            utilization,
            event: None,
        }
    }

    /// The same segment with an event at its start.
    pub fn with_event(self, event: Event) -> Segment {
        Segment {
            event: Some(event),
            ..self
        }
    }
}

/// The longest trace accepted: 100 years, far inside the nanosecond clock's range.
const MAX_TRACE_S: f64 = 100.0 * 365.25 * 86_400.0;

/// What is wrong with a trace, with the file, line and value.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: cannot read the trace: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: line {line}: not valid CSV: {message}")]
    Csv {
        file: String,
        line: u64,
        message: String,
    },
    #[error(
        "{file}: line {line}: missing header: the first line must be `seconds,utilization` \
         (optionally `,event`), found {found:?}"
    )]
    MissingHeader {
        file: String,
        line: u64,
        found: String,
    },
    #[error(
        "{file}: line {line}: the header has no `{column}` column (found {found:?}); \
         expected `seconds,utilization[,event]`"
    )]
    MissingColumn {
        file: String,
        line: u64,
        column: &'static str,
        found: String,
    },
    #[error("{file}: line {line}: no value in column `{column}`")]
    MissingValue {
        file: String,
        line: u64,
        column: &'static str,
    },
    #[error("{file}: line {line}: seconds {value:?} is not a number ≥ 0 (e.g. 300 or 0.5)")]
    BadSeconds {
        file: String,
        line: u64,
        value: String,
    },
    #[error("{file}: line {line}: the trace is too long at this row (over 100 years)")]
    TooLong { file: String, line: u64 },
    #[error(
        "{file}: line {line}: utilization {value:?} is not a number from 0 to 100 \
         (percent of all vCPUs together)"
    )]
    BadUtilization {
        file: String,
        line: u64,
        value: String,
    },
    #[error(
        "{file}: line {line}: unknown event {value:?}; allowed: stop, start, standard, \
         unlimited (or empty)"
    )]
    UnknownEvent {
        file: String,
        line: u64,
        value: String,
    },
    #[error(
        "{file}: line {line}: utilization {value:?} while the workload is stopped; \
         a stopped workload must have utilization 0 until a `start` event"
    )]
    BusyWhileStopped {
        file: String,
        line: u64,
        value: String,
    },
    #[error("{file}: the trace has a header but no rows")]
    Empty { file: String },
    /// A CloudWatch or Prometheus export ([`super::import`]): `place` is the JSON path or
    /// line and column.
    #[error("{file}: {place}: {message}")]
    Import {
        file: String,
        place: String,
        message: String,
    },
}

/// Opens `path` (`-` is standard input) and parses it.
pub fn load_trace(path: &str) -> Result<Vec<Segment>, TraceError> {
    if path == "-" {
        parse_trace(std::io::stdin().lock(), "<stdin>")
    } else {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
            file: path.to_string(),
            source,
        })?;
        parse_trace(std::io::BufReader::new(file), path)
    }
}

/// Parses a trace from `input`; `file` names it in errors.
pub fn parse_trace<R: Read>(mut input: R, file: &str) -> Result<Vec<Segment>, TraceError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|source| TraceError::Io {
            file: file.to_string(),
            source,
        })?;
    // The csv crate miscounts lines after CRLF endings; error messages need true line numbers.
    // A spreadsheet's UTF-8 byte-order mark is not part of the header either.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let csv_error = |e: csv::Error, line: u64| match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(source) => TraceError::Io {
                file: file.to_string(),
                source,
            },
            other => TraceError::Csv {
                file: file.to_string(),
                line,
                message: format!("{other:?}"),
            },
        },
        _ => TraceError::Csv {
            file: file.to_string(),
            line: e.position().map_or(line, |p| p.line()),
            message: e.to_string(),
        },
    };

    // The header.
    let header_found = reader
        .read_record(&mut record)
        .map_err(|e| csv_error(e, 1))?;
    let header_line = record.position().map_or(1, |p| p.line());
    let found = record.iter().collect::<Vec<_>>().join(",");
    if !header_found || record.get(0).is_some_and(|f| f.parse::<f64>().is_ok()) {
        return Err(TraceError::MissingHeader {
            file: file.to_string(),
            line: header_line,
            found,
        });
    }
    let column = |name: &'static str| {
        record
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| TraceError::MissingColumn {
                file: file.to_string(),
                line: header_line,
                column: name,
                found: found.clone(),
            })
    };
    let seconds_col = column("seconds")?;
    let util_col = column("utilization")?;
    let event_col = column("event").ok();

    let mut segments = Vec::new();
    let mut stopped = false;
    let mut total_s = 0.0f64;
    let mut last_line = header_line;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| csv_error(e, last_line + 1))?;
        if !more {
            break;
        }
        let line = record.position().map_or(last_line + 1, |p| p.line());
        last_line = line;
        let field = |col: usize, name: &'static str| {
            record
                .get(col)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TraceError::MissingValue {
                    file: file.to_string(),
                    line,
                    column: name,
                })
        };
        let seconds_text = field(seconds_col, "seconds")?;
        let seconds = seconds_text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| TraceError::BadSeconds {
                file: file.to_string(),
                line,
                value: seconds_text.to_string(),
            })?;
        total_s += seconds;
        if total_s > MAX_TRACE_S {
            return Err(TraceError::TooLong {
                file: file.to_string(),
                line,
            });
        }
        let util_text = field(util_col, "utilization")?;
        let utilization = util_text
            .strip_suffix('%')
            .unwrap_or(util_text)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|u| (0.0..=100.0).contains(u))
            .ok_or_else(|| TraceError::BadUtilization {
                file: file.to_string(),
                line,
                value: util_text.to_string(),
            })?;
        let event = match event_col.and_then(|c| record.get(c)).unwrap_or("") {
            "" => None,
            text => Some(Event::parse(&text.to_ascii_lowercase()).ok_or_else(|| {
                TraceError::UnknownEvent {
                    file: file.to_string(),
                    line,
                    value: text.to_string(),
                }
            })?),
        };
        match event {
            Some(Event::Stop) => stopped = true,
            Some(Event::Start) => stopped = false,
            _ => {}
        }
        if stopped && utilization > 0.0 {
            return Err(TraceError::BusyWhileStopped {
                file: file.to_string(),
                line,
                value: util_text.to_string(),
            });
        }
        segments.push(Segment {
            line,
            duration_ns: (seconds * 1000.0).round() as u64 * 1_000_000,
            utilization,
            event,
        });
    }
    if segments.is_empty() {
        return Err(TraceError::Empty {
            file: file.to_string(),
        });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Segment>, TraceError> {
        parse_trace(text.as_bytes(), "t.csv")
    }

    #[test]
    fn rows_become_segments_with_line_numbers() {
        let s = parse("# a comment\nseconds,utilization,event\n300,50,\n0.5, 0 ,stop\n1,0,start\n")
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].line, s[0].duration_ns, s[0].utilization),
            (3, 300_000_000_000, 50.0)
        );
        assert_eq!(s[0].event, None);
        assert_eq!(s[1].duration_ns, 500_000_000);
        assert_eq!(s[2].event, Some(Event::Start));
    }

    #[test]
    fn byte_order_mark_and_crlf_are_accepted() {
        let s = parse("\u{feff}seconds,utilization\r\n60,5\r\n1,x\r\n");
        assert!(s.unwrap_err().to_string().contains("line 3"));
        let s = parse("\u{feff}seconds,utilization\r\n60,5\r\n").unwrap();
        assert_eq!(
            (s[0].line, s[0].duration_ns, s[0].utilization),
            (2, 60_000_000_000, 5.0)
        );
    }

    #[test]
    fn busy_while_stopped_names_line_and_value() {
        let e = parse("seconds,utilization,event\n10,0,stop\n10,5\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.csv: line 3") && msg.contains("\"5\""),
            "{msg}"
        );
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let cases = [
            ("seconds,utilization\n-1,5\n", "line 2: seconds \"-1\""),
            ("seconds,utilization\nabc,5\n", "line 2: seconds \"abc\""),
            (
                "seconds,utilization\n1,101\n",
                "line 2: utilization \"101\"",
            ),
            (
                "seconds,utilization,event\n1,1,reboot\n",
                "unknown event \"reboot\"; allowed: stop, start",
            ),
            ("300,50\n", "line 1: missing header"),
            ("seconds,load\n1,1\n", "no `utilization` column"),
            (
                "seconds,utilization\n1\n",
                "line 2: no value in column `utilization`",
            ),
            ("seconds,utilization\n", "no rows"),
            ("", "missing header"),
        ];
        for (text, want) in cases {
            let msg = parse(text).unwrap_err().to_string();
            assert!(
                msg.starts_with("t.csv") && msg.contains(want),
                "{text:?}: {msg}"
            );
        }
    }
}
