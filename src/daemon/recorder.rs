//! Traces of real tenants: a workload configured with `record = true` has its measured CPU use
//! appended, one row per look, to `<record_dir>/<name>.csv` as a `simulate`/`advise` trace
//! (`seconds,utilization`, each row a span and its utilisation in % of the profile's vCPUs;
//! the format `burstd record` writes). Rows are a few dozen bytes written to kept-open files
//! without fsync, so the loop never waits on the disk for them; a trace is a measurement, not
//! state, and a crash loses at most the rows the page cache had not written.
//!
//! Files are hostile ground like the state directory: the directory is created 0700, files
//! are opened `O_APPEND|O_CREAT|O_NOFOLLOW|O_NONBLOCK` mode 0600 and must be regular files,
//! and at most [`MAX_FILES`] are kept open.

use crate::agent::Recorded;
use crate::exec::trace_out::{header, row};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Trace files kept open at once; workloads beyond it are not recorded (logged once).
pub const MAX_FILES: usize = 256;

/// The daemon's open trace files.
pub struct Recorder {
    dir: PathBuf,
    files: HashMap<String, File>,
    /// Workloads whose file could not be opened (logged once each), or over the cap.
    refused: std::collections::HashSet<String>,
    pub rows: u64,
}

/// The file a workload's trace goes to: its name with `/` written `%2F` (`%` is not allowed in
/// names, so two names never share a file).
pub fn trace_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.csv", name.replace('/', "%2F")))
}

fn open(dir: &Path, name: &str, vcpus: u32, wall_s: u64) -> io::Result<File> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = trace_path(dir, name);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() == 0 {
        f.write_all(header(&format!("burstd daemon, workload {name}"), 1.0, vcpus).as_bytes())?;
    }
    // Where this run's rows begin (a restart, a stop in between: the span is not in the file).
    f.write_all(format!("# burstd daemon appending from unix time {wall_s}\n").as_bytes())?;
    Ok(f)
}

impl Recorder {
    pub fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            files: HashMap::new(),
            refused: Default::default(),
            rows: 0,
        }
    }

    /// Appends one row per interval.
    pub fn write(&mut self, intervals: Vec<Recorded>, wall_s: u64) {
        for r in intervals {
            if self.refused.contains(&r.name) {
                continue;
            }
            if !self.files.contains_key(&r.name) {
                if self.files.len() >= MAX_FILES {
                    warn!(workload = %r.name, max = MAX_FILES,
                        "not recording this workload: as many traces as burstd keeps open are being written");
                    self.refused.insert(r.name);
                    continue;
                }
                match open(&self.dir, &r.name, r.vcpus, wall_s) {
                    Ok(f) => {
                        info!(workload = %r.name, trace = %trace_path(&self.dir, &r.name).display(), "recording the workload's CPU use");
                        self.files.insert(r.name.clone(), f);
                    }
                    Err(e) => {
                        warn!(workload = %r.name, dir = %self.dir.display(), error = %e,
                            "cannot open the workload's trace file; not recording it");
                        self.refused.insert(r.name);
                        continue;
                    }
                }
            }
            if let Some(f) = self.files.get_mut(&r.name) {
                match f.write_all(row(r.wall_ns, r.cpu_ns, r.vcpus).as_bytes()) {
                    Ok(()) => self.rows += 1,
                    Err(e) => {
                        warn!(workload = %r.name, error = %e, "cannot write the workload's trace; not recording it any more");
                        self.files.remove(&r.name);
                        self.refused.insert(r.name);
                    }
                }
            }
        }
    }

    /// A reload may change `record_dir` or which workloads record: files of workloads that no
    /// longer record are closed, and refusals are tried again.
    pub fn reconfigure(&mut self, dir: PathBuf, recording: &dyn Fn(&str) -> bool) {
        if dir != self.dir {
            self.files.clear();
            self.dir = dir;
        }
        self.files.retain(|name, _| recording(name));
        self.refused.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn rec(name: &str, wall_ns: u64, cpu_ns: u64) -> Recorded {
        Recorded {
            name: name.into(),
            end_ns: 0,
            wall_ns,
            cpu_ns,
            vcpus: 2,
        }
    }

    #[test]
    fn rows_are_appended_as_a_trace_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        let mut r = Recorder::new(traces.clone());
        r.write(vec![rec("fleet/a", S, S), rec("web", 5 * S, S)], 100);
        drop(r);
        let mut r = Recorder::new(traces.clone());
        r.write(vec![rec("fleet/a", 2 * S, 0)], 200);
        assert_eq!(r.rows, 1);
        let a = std::fs::read_to_string(traces.join("fleet%2Fa.csv")).unwrap();
        assert_eq!(
            a,
            "# burstd record: burstd daemon, workload fleet/a, every 1 s, utilization in % of 2 vCPUs\n\
             seconds,utilization\n\
             # burstd daemon appending from unix time 100\n1.000,50.000\n\
             # burstd daemon appending from unix time 200\n2.000,0.000\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&traces), 0o700);
        assert_eq!(mode(&traces.join("web.csv")), 0o600);
        // The file parses as a trace: 1 s at 50% then 2 s idle.
        let t = crate::sim::trace::load_trace(&traces.join("fleet%2Fa.csv").display().to_string())
            .unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        std::fs::create_dir(&traces).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, traces.join("web.csv")).unwrap();
        let mut r = Recorder::new(traces);
        r.write(vec![rec("web", S, S)], 1);
        assert_eq!(r.rows, 0);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
