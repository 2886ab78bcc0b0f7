//! A workload's measured CPU usage written as a `simulate`/`advise` trace
//! (`seconds,utilization`, utilisation in % of N vCPUs), row by row and flushed as measured, so
//! the file is valid whenever the recording ends. Used by `burstd record` and
//! `burstd exec --record`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Percent of `vcpus` busy: `cpu_ns` of CPU time over `wall_ns`.
pub fn utilization(cpu_ns: u64, wall_ns: u64, vcpus: u32) -> f64 {
    if wall_ns == 0 {
        return 0.0;
    }
    cpu_ns as f64 * 100.0 / (wall_ns as f64 * vcpus.max(1) as f64)
}

/// One trace row: seconds to the ms (the trace's resolution), utilisation to 1/1000 %, at
/// most 100.
pub fn row(wall_ns: u64, cpu_ns: u64, vcpus: u32) -> String {
    let u = utilization(cpu_ns, wall_ns, vcpus).min(100.0);
    format!("{:.3},{:.3}\n", wall_ns as f64 / 1e9, u)
}

/// The header: a comment `advise` reads the vCPUs from, then the column names.
pub fn header(what: &str, every_s: f64, vcpus: u32) -> String {
    format!(
        "# burstd record: {what}, every {every_s} s, utilization in % of {vcpus} vCPUs\n\
         seconds,utilization\n"
    )
}

/// Writes rows from cumulative usage readings, one per `every_ns` of clock time.
pub struct TraceWriter {
    file: std::fs::File,
    pub path: PathBuf,
    vcpus: u32,
    every_ns: u64,
    /// (usage ns, clock ns) at the end of the last row.
    prev: (u64, u64),
    pub rows: u64,
}

impl TraceWriter {
    /// Creates `path` and writes the header; `usage_ns` at `at_ns` is where the first row starts.
    pub fn create(
        path: &Path,
        what: &str,
        vcpus: u32,
        every_ns: u64,
        usage_ns: u64,
        at_ns: u64,
    ) -> io::Result<TraceWriter> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(header(what, every_ns as f64 / 1e9, vcpus).as_bytes())?;
        Ok(TraceWriter {
            file,
            path: path.to_path_buf(),
            vcpus,
            every_ns: every_ns.max(1_000_000),
            prev: (usage_ns, at_ns),
            rows: 0,
        })
    }

    /// A reading: writes a row once `every_ns` has passed since the last one.
    pub fn observe(&mut self, usage_ns: u64, at_ns: u64) -> io::Result<()> {
        if at_ns >= self.prev.1 + self.every_ns {
            self.write(usage_ns, at_ns)?;
        }
        Ok(())
    }

    /// The last reading: writes what is left (at least 1 ms).
    pub fn finish(&mut self, usage_ns: u64, at_ns: u64) -> io::Result<()> {
        if at_ns >= self.prev.1 + 1_000_000 {
            self.write(usage_ns, at_ns)?;
        }
        self.file.flush()
    }

    fn write(&mut self, usage_ns: u64, at_ns: u64) -> io::Result<()> {
        let cpu = usage_ns.saturating_sub(self.prev.0);
        let wall = at_ns - self.prev.1;
        self.file.write_all(row(wall, cpu, self.vcpus).as_bytes())?;
        self.file.flush()?;
        self.prev = (usage_ns, at_ns);
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_every_interval_and_the_rest_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let s = 1_000_000_000;
        let mut w = TraceWriter::create(&path, "x", 2, s, 0, 0).unwrap();
        w.observe(s / 2, s / 2).unwrap(); // too soon
        w.observe(s, s).unwrap(); // 1 s, 1 core of 2
        w.observe(s, 2 * s + s / 4).unwrap(); // 1.25 s idle
        w.finish(s + s / 4, 2 * s + s / 2).unwrap(); // 0.25 s, 1 core
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# burstd record: x, every 1 s, utilization in % of 2 vCPUs\nseconds,utilization\n\
             1.000,50.000\n1.250,0.000\n0.250,50.000\n"
        );
        assert_eq!(w.rows, 3);
        assert_eq!(row(1_000_000_000, 3_000_000_000, 2), "1.000,100.000\n");
    }
}
