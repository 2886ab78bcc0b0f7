//! `burstd record`: a workload's measured CPU usage, from the kernel's counters, written as a
//! `simulate`/`advise` trace (`seconds,utilization`, utilisation in % of N vCPUs).
//!
//! Sources: a cgroup (its usage counter, and its throttling counters, which say when the
//! workload was capped while recording: then usage is not demand and the trace is a lower
//! bound), a systemd unit (its cgroup), or a process (`/proc/PID/stat` user + system time of
//! all its threads). Every row is written and flushed as it is measured; Ctrl-C (or SIGTERM)
//! writes the last partial interval and ends with a valid file.

use super::exit::{EX_BAD_INPUT, EX_FAILURE};
use crate::cgroup::{Cgroup, Layout};
use crate::exec::trace_out::{header as trace_header, row, utilization};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["cgroup", "unit", "pid"])))]
pub struct RecordArgs {
    /// The cgroup to record, relative to the hierarchy root (`system.slice/nginx.service`) or
    /// as a path under it (`/sys/fs/cgroup/cpu/system.slice/nginx.service`).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// A systemd unit: its cgroup (`systemctl show -p ControlGroup`).
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,
    /// A process and its descendants: the user + system time of all their threads, and of
    /// the children they waited for.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Time between samples: `1s`, `500ms`, `5m`, or seconds.
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this long [default: until Ctrl-C, or the workload ends].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Utilisation is written in % of N vCPUs [default: this host's CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub vcpus: Option<u32>,
    /// The trace file to write (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: String,
}

/// `1s`, `500ms`, `2.5m`, `1h`, `1d`, or a number of seconds; at least 1 ms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 1s, 500ms, 5m, 2h"))?;
    let per = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h, d)")),
    };
    let secs = x * per;
    if !(0.001..=100.0 * 365.25 * 86_400.0).contains(&secs) {
        return Err(format!("{s:?} must be from 1 ms to 100 years"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What is recorded.
enum Source {
    Cgroup(Box<dyn Cgroup>),
    Pid(u32),
}

/// Counters now: CPU time (ns), and time throttled (ns) with throttled periods when known.
struct Reading {
    usage_ns: u64,
    throttled: Option<(u64, u64)>,
}

/// The workload is gone (not an error: the recording ends).
struct Gone;

impl Source {
    fn read(&mut self) -> Result<Reading, Result<Gone, String>> {
        match self {
            Source::Cgroup(cg) => match cg.sample() {
                Ok(s) => Ok(Reading {
                    usage_ns: s.usage_ns,
                    throttled: Some((s.throttled_ns, s.nr_throttled)),
                }),
                Err(e) if e.is_gone() => Err(Ok(Gone)),
                Err(e) => Err(Err(e.to_string())),
            },
            Source::Pid(pid) => {
                let stat = procfs::process::Process::new(*pid as i32)
                    .and_then(|p| p.stat())
                    .map_err(|_| Ok(Gone))?;
                if stat.state == 'Z' || stat.state == 'X' {
                    return Err(Ok(Gone));
                }
                let hz = procfs::ticks_per_second().max(1) as u128;
                Ok(Reading {
                    usage_ns: (tree_ticks(*pid as i32) as u128 * 1_000_000_000 / hz) as u64,
                    throttled: None,
                })
            }
        }
    }
}

/// Clock ticks of CPU time of process `root` and its descendants: each live one's user +
/// system time plus that of its children it has waited for (`cutime`, `cstime`), so a child
/// that ends and is reaped inside the tree keeps counting. Descendants that were reparented
/// out of the tree are lost.
fn tree_ticks(root: i32) -> u64 {
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    let stats: Vec<_> = all.filter_map(|p| p.ok()?.stat().ok()).collect();
    let mut tree = vec![root];
    let mut total = 0u64;
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        for s in &stats {
            if s.pid == pid {
                let waited = (s.cutime.max(0) + s.cstime.max(0)) as u64;
                total += s.utime + s.stime + waited;
            } else if s.ppid == pid && !tree.contains(&s.pid) {
                tree.push(s.pid);
            }
        }
        i += 1;
    }
    total
}

/// A cgroup path as given (relative, `/`-led as systemd prints it, or under a mount point)
/// relative to the hierarchy root.
fn relative(layout: &Layout, path: &str) -> String {
    let roots = match layout {
        Layout::V2 { root } => vec![root.clone()],
        Layout::V1 {
            cpu_root,
            cpuacct_root,
        } => vec![cpu_root.clone(), cpuacct_root.clone()],
    };
    for root in roots {
        if let Ok(rest) = std::path::Path::new(path).strip_prefix(&root) {
            return rest.to_string_lossy().into_owned();
        }
    }
    path.trim_matches('/').to_string()
}

fn unit_cgroup(unit: &str) -> Result<String, String> {
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property", "ControlGroup", "--value", "--", unit])
        .output()
        .map_err(|e| format!("--unit {unit}: cannot run systemctl: {e}"))?;
    let cg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || cg.is_empty() {
        return Err(format!(
            "--unit {unit}: systemd knows no running unit of that name (no ControlGroup); \
             give its cgroup with --cgroup PATH"
        ));
    }
    Ok(cg)
}

fn open_source(args: &RecordArgs) -> Result<(Source, String), String> {
    if let Some(pid) = args.pid {
        if procfs::process::Process::new(pid as i32).is_err() {
            return Err(format!("--pid {pid}: no such process"));
        }
        return Ok((Source::Pid(pid), format!("process {pid}")));
    }
    let path = match (&args.cgroup, &args.unit) {
        (Some(p), _) => p.clone(),
        (None, Some(u)) => unit_cgroup(u)?,
        (None, None) => return Err("give --cgroup, --unit or --pid".to_string()),
    };
    let layout = Layout::detect().map_err(|e| e.to_string())?;
    let rel = relative(&layout, &path);
    let cg = layout.hierarchy().open(&rel).map_err(|e| {
        if e.is_gone() {
            format!("--cgroup {path}: no such cgroup ({e})")
        } else {
            format!("--cgroup {path}: {e}")
        }
    })?;
    let kind = match layout {
        Layout::V2 { .. } => "v2",
        Layout::V1 { .. } => "v1",
    };
    Ok((Source::Cgroup(cg), format!("cgroup {rel} (cgroup {kind})")))
}

/// Totals of a recording, for the summary.
#[derive(Default)]
struct Totals {
    rows: u64,
    wall_ns: u64,
    cpu_ns: u64,
    throttled_ns: u64,
    throttled_periods: u64,
    throttled_rows: u64,
    capped_rows: u64,
}

pub fn run(args: RecordArgs) -> ExitCode {
    let vcpus = args.vcpus.unwrap_or_else(crate::host::host_cpus);
    let (mut source, what) = match open_source(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("burstd record: error: {e}");
            return ExitCode::from(EX_BAD_INPUT);
        }
    };
    let mut out: Box<dyn Write> = if args.out == "-" {
        Box::new(std::io::stdout())
    } else {
        match std::fs::File::create(&args.out) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("burstd record: error: {}: {e}", args.out);
                return ExitCode::from(EX_BAD_INPUT);
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("burstd record: error: {e}");
            return ExitCode::from(EX_FAILURE);
        }
    };
    let header = trace_header(&what, args.interval.as_secs_f64(), vcpus);
    eprintln!(
        "burstd record: recording {what} every {} s into {} (Ctrl-C ends it)",
        args.interval.as_secs_f64(),
        args.out
    );
    let result = rt.block_on(record(&args, &mut source, &mut out, &header, vcpus));
    match result {
        Ok((t, why)) => {
            let secs = t.wall_ns as f64 / 1e9;
            eprintln!(
                "burstd record: {why}: {} rows, {secs:.3} s, {:.3} CPU-seconds, mean {:.2}% of \
                 {vcpus} vCPUs",
                t.rows,
                t.cpu_ns as f64 / 1e9,
                utilization(t.cpu_ns, t.wall_ns, vcpus)
            );
            if t.throttled_rows > 0 {
                eprintln!(
                    "burstd record: note: the workload was capped while recording: throttled \
                     {:.3} s in {} periods, in {} of {} rows; there usage is not demand, the \
                     trace is a lower bound",
                    t.throttled_ns as f64 / 1e9,
                    t.throttled_periods,
                    t.throttled_rows,
                    t.rows
                );
            }
            if t.capped_rows > 0 {
                eprintln!(
                    "burstd record: note: {} rows used more than {vcpus} vCPUs and were written \
                     as 100%; give --vcpus with the workload's CPUs",
                    t.capped_rows
                );
            }
            if matches!(source, Source::Pid(_)) {
                eprintln!(
                    "burstd record: note: a process has no throttling counters; record its \
                     cgroup to know whether it was capped"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("burstd record: error: {e}");
            ExitCode::from(EX_FAILURE)
        }
    }
}

async fn record(
    args: &RecordArgs,
    source: &mut Source,
    out: &mut Box<dyn Write>,
    header: &str,
    vcpus: u32,
) -> Result<(Totals, &'static str), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let io = |e: std::io::Error| format!("{}: {e}", args.out);
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    out.write_all(header.as_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    let mut prev = match source.read() {
        Ok(r) => r,
        Err(Ok(Gone)) => return Err("the workload is gone".to_string()),
        Err(Err(e)) => return Err(e),
    };
    let start = Instant::now();
    let mut last = start;
    let mut totals = Totals::default();
    let end = args.duration.map(|d| start + d);
    let mut next = start + args.interval;
    loop {
        let wake = end.map_or(next, |e| e.min(next));
        let why = tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => None,
            _ = int.recv() => Some("interrupted"),
            _ = term.recv() => Some("terminated"),
        };
        let now = Instant::now();
        let (reading, gone) = match source.read() {
            Ok(r) => (r, false),
            Err(Ok(Gone)) => (
                Reading {
                    usage_ns: prev.usage_ns,
                    throttled: prev.throttled,
                },
                true,
            ),
            Err(Err(e)) => return Err(e),
        };
        let wall = now.duration_since(last).as_nanos() as u64;
        // Rows shorter than the trace's millisecond resolution are left out.
        if wall >= 1_000_000 {
            let cpu = reading.usage_ns.saturating_sub(prev.usage_ns);
            out.write_all(row(wall, cpu, vcpus).as_bytes())
                .map_err(io)?;
            out.flush().map_err(io)?;
            totals.rows += 1;
            totals.wall_ns += wall;
            totals.cpu_ns += cpu;
            if utilization(cpu, wall, vcpus) > 100.0 {
                totals.capped_rows += 1;
            }
            if let (Some((t1, n1)), Some((t0, n0))) = (reading.throttled, prev.throttled) {
                if n1 > n0 || t1 > t0 {
                    totals.throttled_rows += 1;
                    totals.throttled_ns += t1.saturating_sub(t0);
                    totals.throttled_periods += n1.saturating_sub(n0);
                }
            }
            last = now;
            prev = reading;
        }
        if gone {
            return Ok((totals, "the workload ended"));
        }
        if let Some(why) = why {
            return Ok((totals, why));
        }
        if end.is_some_and(|e| now >= e) {
            return Ok((totals, "done"));
        }
        while next <= now {
            next += args.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rows() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5m"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1y").unwrap_err().contains("unknown unit"));
        // Half a core for 1 s on 2 vCPUs is 25%.
        assert_eq!(row(1_000_000_000, 500_000_000, 2), "1.000,25.000\n");
        assert_eq!(utilization(1, 0, 1), 0.0);
    }

    #[test]
    fn cgroup_paths_are_taken_relative_to_the_root() {
        let v1 = Layout::v1("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(
            relative(&v1, "/sys/fs/cgroup/cpu,cpuacct/system.slice/x.service"),
            "system.slice/x.service"
        );
        assert_eq!(
            relative(&v1, "/system.slice/x.service"),
            "system.slice/x.service"
        );
        assert_eq!(relative(&Layout::v2("/sys/fs/cgroup"), "a/b/"), "a/b");
    }
}
