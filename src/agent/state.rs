//! The state file: every balance, so that a restart, a crash or a reboot loses nothing.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory), so a reader
//! only ever sees a whole old or a whole new file. A corrupt or future-version file stops
//! start-up with a clear message: balances are never silently reset.
//!
//! Safe with its files: the temporary file is one burstd creates itself (`O_EXCL|O_NOFOLLOW`,
//! 0600), the directory is created 0700 and refused if others can write it, and a file is read
//! only up to [`MAX_STATE_BYTES`] and checked (version, keys, bounds of every balance) before
//! any value of it is used; a refusal names the field and the value and leaves the file as it
//! is.

use crate::cgroup::Quota;
use crate::credit::limiter::DAY_S;
use crate::credit::units::UNITS_PER_CREDIT;
use crate::credit::{Bucket, Credits, LaunchLimiter};
use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Version of the file format this build writes and reads.
pub const STATE_VERSION: u32 = 1;
/// File name inside `state_dir`.
pub const STATE_FILE: &str = "state.json";
/// The largest state file burstd reads (or writes): 128 MiB, more than twice the 49 MB of
/// 100,000 workloads. A larger file is refused after reading at most this many bytes and one.
pub const MAX_STATE_BYTES: u64 = 128 * 1024 * 1024;

/// A quota as stored (the cgroup layer's `Quota` has no serde).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedQuota {
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl From<Quota> for SavedQuota {
    fn from(q: Quota) -> Self {
        SavedQuota {
            quota_us: q.quota_us,
            period_us: q.period_us,
        }
    }
}

impl From<SavedQuota> for Quota {
    fn from(q: SavedQuota) -> Self {
        Quota {
            quota_us: q.quota_us,
            period_us: q.period_us,
        }
    }
}

/// One workload's saved state.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedWorkload {
    pub profile: String,
    pub bucket: Bucket,
    /// The cgroup it was last seen in, its inode, and the usage counter accounted up to.
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub usage_ns: u64,
    /// CLOCK_BOOTTIME (ns) at which `usage_ns` was accounted.
    pub accounted_at_boot_ns: u64,
    /// The quota the cgroup had before burstd first managed it (for `on_exit = "restore"`).
    pub original_quota: Option<SavedQuota>,
    /// The container's name, for an instance of the `[containers]` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl SavedWorkload {
    /// Borrowed, for saving without a copy.
    pub fn borrowed(&self) -> SavedWorkloadRef<'_> {
        SavedWorkloadRef {
            profile: &self.profile,
            bucket: &self.bucket,
            cgroup: self.cgroup.as_deref(),
            cgroup_id: self.cgroup_id,
            usage_ns: self.usage_ns,
            accounted_at_boot_ns: self.accounted_at_boot_ns,
            original_quota: self.original_quota,
            container: self.container.as_deref(),
        }
    }
}

/// A [`SavedWorkload`] borrowed from live data: serializes to exactly the same JSON (same
/// fields, same order), so the periodic save need not copy 10,000 workloads first.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SavedWorkloadRef<'a> {
    pub profile: &'a str,
    pub bucket: &'a Bucket,
    pub cgroup: Option<&'a str>,
    pub cgroup_id: u64,
    pub usage_ns: u64,
    pub accounted_at_boot_ns: u64,
    pub original_quota: Option<SavedQuota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
}

impl SavedWorkloadRef<'_> {
    pub fn to_owned(&self) -> SavedWorkload {
        SavedWorkload {
            profile: self.profile.to_string(),
            bucket: self.bucket.clone(),
            cgroup: self.cgroup.map(str::to_string),
            cgroup_id: self.cgroup_id,
            usage_ns: self.usage_ns,
            accounted_at_boot_ns: self.accounted_at_boot_ns,
            original_quota: self.original_quota,
            container: self.container.map(str::to_string),
        }
    }
}

/// The whole file. A key no burstd of this version writes is refused (`deny_unknown_fields`,
/// here and in every part of a workload): a new field comes with a new [`STATE_VERSION`] or
/// goes in `extra`, so a file is never read by a burstd that would drop part of it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// `/proc/sys/kernel/random/boot_id` at the time of saving.
    pub boot_id: String,
    /// Wall-clock time of the save, seconds since the epoch.
    pub saved_at_unix_s: u64,
    pub launch_limiter: LaunchLimiter,
    pub workloads: BTreeMap<String, SavedWorkload>,
    /// Extra sections later versions of the agent keep (API tokens, defaults); kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A [`State`] borrowed from live data: serializes to exactly the same JSON. `W` must
/// serialize as the `workloads` map does: a map from name to [`SavedWorkloadRef`], names in
/// ascending byte order (a `BTreeMap<String, _>`'s order).
#[derive(Debug, Serialize)]
pub struct StateRef<'a, W> {
    pub version: u32,
    pub boot_id: &'a str,
    pub saved_at_unix_s: u64,
    pub launch_limiter: &'a LaunchLimiter,
    pub workloads: W,
    #[serde(skip_serializing_if = "no_extra")]
    pub extra: &'a BTreeMap<String, serde_json::Value>,
}

fn no_extra(extra: &&BTreeMap<String, serde_json::Value>) -> bool {
    extra.is_empty()
}

/// What every refusal of a state file advises. Moving the file away is safe but not free:
/// the balances in it are lost, and a quota found on a cgroup is taken as its original
/// unless it is burstd's own baseline hold (an earlier burstd's, recognised and put back to no
/// limit at exit; see `agent::decide::is_own_hold`).
macro_rules! advice {
    () => {
        "burstd will not reset balances silently: inspect it, restore a backup, or move it away \
         to start over (every saved balance is then lost and each workload starts afresh; a \
         cgroup still at burstd's own baseline hold is recognised and set back to no limit at \
         exit, any other quota found is kept as the cgroup's original)"
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({reason}); {}", advice!())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state file {path} has version {found}, newer than this burstd understands ({STATE_VERSION}); \
         run the newer burstd, or move the file away to start over (every saved balance is then lost)"
    )]
    FutureVersion { path: PathBuf, found: u64 },
    /// A field whose value no burstd writes; the file is left as it is.
    #[error("state file {path}: {field} = {value}: {allowed}; {}", advice!())]
    Invalid {
        path: PathBuf,
        field: String,
        value: String,
        allowed: String,
    },
    #[error(
        "state file {path} is larger than {MAX_STATE_BYTES} bytes, the most burstd reads (its own \
         saves stay below that); only that much was read; {}",
        advice!()
    )]
    TooLarge { path: PathBuf },
    #[error("state directory {dir}: {reason}")]
    Dir { dir: PathBuf, reason: String },
    #[error("state file {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Loads the state; `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
    load_file(&state_path(dir))
}

/// Loads the state from a file path (`burstd exec --state FILE`); `Ok(None)` when it does not
/// exist yet.
///
/// Refused, leaving the file as it is: a file larger than [`MAX_STATE_BYTES`] (read up to
/// that and one byte, no further), a version other than [`STATE_VERSION`], a key no burstd
/// writes, and values no burstd writes (see [`validate`]).
pub fn load_file(path: &Path) -> Result<Option<State>, StateError> {
    load_file_capped(path, MAX_STATE_BYTES)
}

fn load_file_capped(path: &Path, cap: u64) -> Result<Option<State>, StateError> {
    // A file in a directory others can write may have been replaced by any of them; and with
    // no file yet, the first save would fail there: said now (`burstd check`, start-up).
    let dir = split_path(path).0;
    if dir.exists() {
        open_dir(&dir, false)?;
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let path = path.to_path_buf();
    // Sized once from the file's length (at most the cap and one byte): a large file is not
    // read into a buffer that doubles as it grows.
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(len.min(cap.saturating_add(1)) as usize);
    if let Err(source) = file.take(cap.saturating_add(1)).read_to_end(&mut bytes) {
        return Err(StateError::Read { path, source });
    }
    if bytes.len() as u64 > cap {
        return Err(StateError::TooLarge { path });
    }
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.clone(),
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
    // Look at the version first, so a newer format is reported as such and not as corrupt.
    // Only the version is kept: a `serde_json::Value` of the whole file would be a tree of
    // ~30 MB at 10,000 workloads, alive while the `State` is built.
    #[derive(Deserialize)]
    struct VersionProbe {
        version: Option<serde_json::Value>,
    }
    let probe: VersionProbe = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let version = probe
        .version
        .ok_or_else(|| corrupt("no version field".into()))?;
    // As a u64: 4294967297 is not version 1.
    match version.as_u64() {
        Some(found) if found > STATE_VERSION as u64 => {
            return Err(StateError::FutureVersion { path, found })
        }
        Some(found) if found == STATE_VERSION as u64 => {}
        _ => {
            return Err(StateError::Invalid {
                path,
                field: "version".into(),
                value: version.to_string(),
                allowed: format!("this burstd reads version {STATE_VERSION} only"),
            })
        }
    }
    let state: State = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if let Err((field, value, allowed)) = validate(&state) {
        return Err(StateError::Invalid {
            path,
            field,
            value,
            allowed,
        });
    }
    Ok(Some(state))
}

/// The most credits a balance (earned, launch, surplus, and the initial balance) can hold:
/// 10^12, the largest amount the configuration can express (no accrual limit is higher), so
/// more than any bucket could ever hold.
pub const MAX_BALANCE_CREDITS: i64 = 1_000_000_000_000;
/// The most credits a cumulative total can reach: 10^18 (1,000 vCPUs busy for 1,900 years at
/// `time_scale` 1,000,000). Sums of such figures stay far from the limits of the arithmetic.
pub const MAX_TOTAL_CREDITS: i64 = 1_000_000_000_000_000_000;

/// Checks values a burstd could have written: balances from 0 to [`MAX_BALANCE_CREDITS`],
/// totals from 0 to [`MAX_TOTAL_CREDITS`], quotas the kernel accepts. On a refusal: the field,
/// its value as in the file, and what is allowed.
fn validate(state: &State) -> Result<(), (String, String, String)> {
    let in_range = |field: String, c: Credits, max: i64| {
        let max_units = Credits::whole(max).units();
        if (0..=max_units).contains(&c.units()) {
            Ok(())
        } else {
            Err((
                field,
                c.units().to_string(),
                format!(
                    "must be from 0 to {max_units} (units of 1/{UNITS_PER_CREDIT} credit: 0 to {max} credits, more than a bucket can ever hold)"
                ),
            ))
        }
    };
    let window = state.launch_limiter.window_s;
    if window != DAY_S {
        return Err((
            "launch_limiter.window_s".into(),
            window.to_string(),
            format!("must be {DAY_S} (the rolling 24 h of the launch-credit limit)"),
        ));
    }
    for (name, w) in &state.workloads {
        let f = |k: &str| format!("workloads.{name:?}.bucket.{k}");
        let b = &w.bucket;
        for (k, c) in [
            ("earned", b.earned),
            ("launch", b.launch),
            ("surplus", b.surplus),
            ("initial", b.initial),
        ] {
            in_range(f(k), c, MAX_BALANCE_CREDITS)?;
        }
        let t = &b.totals;
        for (k, c) in [
            ("spent", t.spent),
            ("earned", t.earned),
            ("discarded", t.discarded),
            ("charged", t.charged),
            ("launch_granted", t.launch_granted),
            ("launch_removed", t.launch_removed),
            ("lost", t.lost),
            ("overdrawn", t.overdrawn),
        ] {
            in_range(f(&format!("totals.{k}")), c, MAX_TOTAL_CREDITS)?;
        }
        if let Some(q) = w.original_quota {
            let f = |k: &str| format!("workloads.{name:?}.original_quota.{k}");
            if !(1000..=1_000_000).contains(&q.period_us) {
                return Err((
                    f("period_us"),
                    q.period_us.to_string(),
                    "must be from 1000 to 1000000, as the kernel allows".into(),
                ));
            }
            if let Some(us) = q.quota_us.filter(|&us| us < 1000) {
                return Err((
                    f("quota_us"),
                    us.to_string(),
                    "must be null (no limit) or at least 1000, as the kernel allows".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Writes the state atomically: a crash at any point leaves the old or the new file whole.
pub fn save(dir: &Path, state: &State) -> Result<(), StateError> {
    save_file(&state_path(dir), state)
}

/// [`save`] to a file path; its directory is created if missing.
pub fn save_file(path: &Path, state: &State) -> Result<(), StateError> {
    write_atomic(path, state)
}

/// [`save`] from borrowed data (the daemon's periodic save): the same file, streamed.
pub fn save_ref<W: Serialize>(dir: &Path, state: &StateRef<'_, W>) -> Result<(), StateError> {
    write_atomic(&state_path(dir), state)
}

/// Serializes `value` straight into a temporary file beside `path` (no copy of the whole body
/// in memory: at 10,000 workloads it is ~5 MB), fsyncs it, renames it over `path` and fsyncs
/// the directory. The directory is created (0700) if missing.
///
/// The temporary file is made with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, after removing
/// whatever has its name (a stale temporary file, or a symlink planted there: removed, never
/// followed), so a save can only ever write a file it created itself. The state file is
/// therefore always 0600 after a save, whatever mode an older file had.
fn write_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StateError> {
    write_atomic_capped(path, value, MAX_STATE_BYTES)
}

fn write_atomic_capped<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
    cap: u64,
) -> Result<(), StateError> {
    // Compact: at 10,000 workloads a pretty file is ~2× larger and slower to write every
    // 5 s; `jq . state.json` reads it.
    write_atomic_with(path, cap, |w| {
        serde_json::to_writer(w, value).map_err(std::io::Error::from)
    })
}

/// Writes a state file already encoded by [`encode_ref`] (the daemon's writer task), as
/// [`save`] writes one.
pub fn save_encoded(dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    if bytes.is_empty() {
        // Nothing was encoded: never replace a state file with an empty one.
        return Err(StateError::Write {
            path: state_path(dir),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no state to write"),
        });
    }
    write_atomic_with(&state_path(dir), MAX_STATE_BYTES, |w| w.write_all(bytes))
}

/// The state file's bytes for borrowed data (what [`save_ref`] writes), encoded in memory so
/// that another thread can write them: cheaper than an owned copy of every workload.
pub fn encode_ref<W: Serialize>(state: &StateRef<'_, W>) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(state)
}

/// [`write_atomic_capped`] with the body written by `body`.
fn write_atomic_with(
    path: &Path,
    cap: u64,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StateError> {
    let (dir, file_name) = split_path(path);
    let werr = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dirfd = open_dir(&dir, true)?;
    let tmp = format!(".{file_name}.tmp");
    let f = create_temp(&dirfd, &tmp).map_err(werr)?;
    let written = (|| -> std::io::Result<()> {
        let mut w = Capped {
            inner: BufWriter::with_capacity(64 * 1024, f),
            left: cap,
        };
        body(&mut w)?;
        w.inner.flush()?;
        let f = w.inner.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        // The old file is untouched; the next save removes this one anyway.
        let _ = rustix::fs::unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
        return Err(werr(e));
    }
    rustix::fs::renameat(&dirfd, tmp.as_str(), &dirfd, file_name.as_str())
        .map_err(|e| werr(e.into()))?;
    rustix::fs::fsync(&dirfd).map_err(|e| werr(e.into()))?;
    Ok(())
}

/// The directory of a state file path and the file's name in it.
fn split_path(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| STATE_FILE.to_string());
    (dir, file_name)
}

/// Opens the state directory, checked (see [`check_dir`]); with `create`, a missing one is
/// created 0700 (its missing parents too). A symlink as the directory is followed: it is the
/// administrator's choice (state on another disk), and what it points at is checked.
fn open_dir(dir: &Path, create: bool) -> Result<OwnedFd, StateError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let open = || rustix::fs::open(dir, flags, Mode::empty());
    let io = |e: std::io::Error| StateError::Dir {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let fd = match open() {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if create => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            let fd = open().map_err(|e| io(e.into()))?;
            // Exactly 0700 whatever the umask.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| io(e.into()))?;
            fd
        }
        Err(e) => return Err(io(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    check_dir(
        st.st_uid,
        st.st_mode as u32,
        rustix::process::geteuid().as_raw(),
    )
    .map_err(|reason| StateError::Dir {
        dir: dir.to_path_buf(),
        reason,
    })?;
    Ok(fd)
}

/// Whether a directory is safe to keep the state file in: owned by burstd's uid or root, and
/// not writable by group or others (whoever can write the directory can replace the state
/// file) unless it has the sticky bit (`/tmp` for `burstd exec --state`: there others cannot
/// rename or remove burstd's files). Refused, not fixed: a mode an administrator chose is not
/// silently changed; the message says what to run.
fn check_dir(uid: u32, mode: u32, euid: u32) -> Result<(), String> {
    let perm = mode & 0o7777;
    if uid != euid && uid != 0 {
        return Err(format!(
            "owned by uid {uid}, not by burstd's uid {euid} or root: its owner could replace \
             the state file; chown it to uid {euid} (burstd creates it with mode 0700)"
        ));
    }
    if perm & 0o022 != 0 && perm & 0o1000 == 0 {
        return Err(format!(
            "mode {perm:04o} lets group or others write it: any of them could replace the \
             state file; run chmod go-w on it (burstd creates it with mode 0700)"
        ));
    }
    Ok(())
}

/// Creates `name` in `dir` for writing, mode 0600, never through a symlink: whatever has the
/// name is removed first (`unlinkat` removes a symlink itself, not its target); if something
/// appears again between the removal and the creation, it is removed and the creation tried
/// once more.
fn create_temp(dir: &OwnedFd, name: &str) -> std::io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    let unlink = || match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    };
    unlink()?;
    let fd = match rustix::fs::openat(dir, name, flags, mode) {
        Err(rustix::io::Errno::EXIST) => {
            unlink()?;
            rustix::fs::openat(dir, name, flags, mode)?
        }
        r => r?,
    };
    // Exactly 0600 whatever the umask.
    rustix::fs::fchmod(&fd, mode)?;
    Ok(File::from(fd))
}

/// A writer that fails once more than `left` bytes would be written: a save never writes a
/// file larger than a load accepts (the old file stays, and the failure is logged and counted
/// at the save, not found at the next start).
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "the state would be larger than {} bytes, the most burstd reads back",
                MAX_STATE_BYTES
            )));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// This boot's id; a different one in the state file means the host rebooted since.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::{builtin_profile, Credits, Mode};

    fn sample_state() -> State {
        let p = builtin_profile("t3.micro").unwrap();
        let mut workloads = BTreeMap::new();
        // Several workloads, names inserted out of order, some with nothing in their options.
        let mut stopped = Bucket::new(&p, Mode::Unlimited, Credits::milli(7)).unwrap();
        stopped.stop(&p, 17);
        workloads.insert(
            "zeta/\"quoted\" é".to_string(),
            SavedWorkload {
                profile: "t3.micro".into(),
                bucket: stopped,
                cgroup: None,
                cgroup_id: 0,
                usage_ns: 0,
                accounted_at_boot_ns: 0,
                original_quota: None,
                container: None,
            },
        );
        workloads.insert(
            "Web".to_string(),
            SavedWorkload {
                profile: "custom".into(),
                bucket: Bucket::new(&p, Mode::Standard, Credits::ZERO).unwrap(),
                cgroup: Some("a/b".into()),
                cgroup_id: u64::MAX,
                usage_ns: u64::MAX,
                accounted_at_boot_ns: 1,
                original_quota: Some(SavedQuota {
                    quota_us: Some(50_000),
                    period_us: 100_000,
                }),
                container: Some("web-1".into()),
            },
        );
        workloads.insert(
            "web".to_string(),
            SavedWorkload {
                profile: "t3.micro".into(),
                bucket: Bucket::new(&p, Mode::Standard, Credits::milli(12_345)).unwrap(),
                cgroup: Some("system.slice/nginx.service".into()),
                cgroup_id: 42,
                usage_ns: 1_000_000_007,
                accounted_at_boot_ns: 99,
                original_quota: Some(SavedQuota {
                    quota_us: None,
                    period_us: 100_000,
                }),
                container: None,
            },
        );
        State {
            version: STATE_VERSION,
            boot_id: "b".into(),
            saved_at_unix_s: 1,
            launch_limiter: LaunchLimiter::default(),
            workloads,
            extra: BTreeMap::new(),
        }
    }

    /// What the daemon's periodic save writes from borrowed data is byte for byte what
    /// serializing the owned `State` gives.
    #[test]
    fn borrowed_state_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample_state();
        assert!(s.workloads.len() >= 3);
        for with_extra in [false, true] {
            if with_extra {
                s.extra
                    .insert("api".into(), serde_json::json!({"b": [1, 2], "a": null}));
            }
            let view = StateRef {
                version: s.version,
                boot_id: &s.boot_id,
                saved_at_unix_s: s.saved_at_unix_s,
                launch_limiter: &s.launch_limiter,
                workloads: s
                    .workloads
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.borrowed()))
                    .collect::<BTreeMap<_, _>>(),
                extra: &s.extra,
            };
            let owned = serde_json::to_vec(&s).unwrap();
            assert_eq!(serde_json::to_vec(&view).unwrap(), owned);
            save_ref(dir.path(), &view).unwrap();
            assert_eq!(fs::read(state_path(dir.path())).unwrap(), owned);
            assert_eq!(load(dir.path()).unwrap(), Some(s.clone()));
            for w in s.workloads.values() {
                assert_eq!(&w.borrowed().to_owned(), w);
            }
        }
    }

    #[test]
    fn round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample_state();
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(s));
        assert!(!dir.path().join(".state.json.tmp").exists());
    }

    #[test]
    fn path_based_save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("exec-state.json");
        assert_eq!(load_file(&path).unwrap(), None);
        let s = sample_state();
        save_file(&path, &s).unwrap();
        assert_eq!(load_file(&path).unwrap(), Some(s));
        assert!(!dir.path().join("sub").join(".exec-state.json.tmp").exists());
    }

    #[test]
    fn missing_is_none_corrupt_and_future_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        fs::write(state_path(dir.path()), "{\"version\": 1, \"workl").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("is corrupt") && e.contains("will not reset balances"),
            "{e}"
        );
        fs::write(state_path(dir.path()), "{\"version\": 7}").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has version 7, newer than"), "{e}");
        // The version is looked for among fields of any kind and order.
        fs::write(
            state_path(dir.path()),
            "{\"future\": {\"x\": [1, \"y\"]}, \"version\": 2, \"workloads\": 3}",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has version 2, newer than"), "{e}");
        for text in ["{\"workloads\": {}}", "[]"] {
            fs::write(state_path(dir.path()), text).unwrap();
            let e = load(dir.path()).unwrap_err().to_string();
            assert!(e.contains("is corrupt"), "{text}: {e}");
        }
    }

    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A symlink planted where the temporary file goes is removed, never followed: its target
    /// keeps its bytes and its mode (issue 13 item 10: the victim was overwritten).
    #[test]
    fn a_planted_temp_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        fs::create_dir(&state_dir).unwrap();
        fs::set_permissions(
            &state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let tmp = state_dir.join(".state.json.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let s = sample_state();
        save(&state_dir, &s).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(mode_of(&victim), 0o644);
        assert_eq!(load(&state_dir).unwrap(), Some(s.clone()));
        assert!(fs::symlink_metadata(&tmp).is_err(), "the temp file is gone");
        // A dangling one, and a stale regular temp file, are replaced the same way.
        std::os::unix::fs::symlink(outside.path().join("new"), &tmp).unwrap();
        save(&state_dir, &s).unwrap();
        assert!(!outside.path().join("new").exists());
        fs::write(&tmp, "stale").unwrap();
        save(&state_dir, &s).unwrap();
        assert_eq!(load(&state_dir).unwrap(), Some(s));
        assert!(fs::symlink_metadata(&tmp).is_err());
    }

    /// The directory burstd creates is 0700 and the file 0600, whatever the umask, and an
    /// older world-readable file is 0600 after the next save.
    #[test]
    fn state_dir_is_0700_and_file_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("a").join("b");
        save(&state_dir, &sample_state()).unwrap();
        assert_eq!(mode_of(&state_dir), 0o700);
        assert_eq!(mode_of(&state_path(&state_dir)), 0o600);
        fs::set_permissions(
            state_path(&state_dir),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        save(&state_dir, &sample_state()).unwrap();
        assert_eq!(mode_of(&state_path(&state_dir)), 0o600);
        // A directory an administrator made 0750 (systemd's StateDirectoryMode) is kept as is.
        fs::set_permissions(
            &state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        save(&state_dir, &sample_state()).unwrap();
        assert_eq!(mode_of(&state_dir), 0o750);
        // A symlink as the directory is followed (state on another disk).
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state_dir, &link).unwrap();
        assert_eq!(load(&link).unwrap(), Some(sample_state()));
    }

    /// A directory group or others can write is refused by save and load alike, with what to
    /// do; the file in it is left as it was. A sticky one (`/tmp`) is accepted.
    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("s");
        save(&state_dir, &sample_state()).unwrap();
        let before = fs::read(state_path(&state_dir)).unwrap();
        fs::set_permissions(
            &state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let e = save(&state_dir, &sample_state()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "state directory {}: mode 0777 lets group or others write it: any of them could \
                 replace the state file; run chmod go-w on it (burstd creates it with mode 0700)",
                state_dir.display()
            )
        );
        let e = load(&state_dir).unwrap_err().to_string();
        assert!(e.contains("mode 0777 lets group or others write it"), "{e}");
        assert_eq!(fs::read(state_path(&state_dir)).unwrap(), before);
        // With no file yet too: the first save would fail there.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        fs::set_permissions(&empty, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let e = load(&empty).unwrap_err().to_string();
        assert!(e.contains("mode 0777 lets group or others write it"), "{e}");
        fs::set_permissions(
            &state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        save(&state_dir, &sample_state()).unwrap();
        assert_eq!(load(&state_dir).unwrap(), Some(sample_state()));
        assert_eq!(check_dir(1000, 0o40700, 0), Err("owned by uid 1000, not by burstd's uid 0 or root: its owner could replace the state file; chown it to uid 0 (burstd creates it with mode 0700)".into()));
        assert_eq!(check_dir(0, 0o40755, 1000), Ok(()));
    }

    /// Writes `sample_state()` with `edit` applied to its JSON, loads it, checks the file is
    /// left byte for byte as written, and returns the error's message.
    fn refusal(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(sample_state()).unwrap();
        edit(&mut v);
        // `big(…)` marks integers a `Value` cannot hold (beyond u64), written as they are.
        let text = serde_json::to_string(&v)
            .unwrap()
            .replace("\"@@", "")
            .replace("@@\"", "");
        let path = state_path(dir.path());
        fs::write(&path, &text).unwrap();
        let e = load(dir.path()).expect_err(&text).to_string();
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "left as it was");
        let shown = path.display().to_string();
        assert!(e.starts_with(&format!("state file {shown}")), "{e}");
        e.replace(&shown, "P")
    }

    fn big(n: i128) -> serde_json::Value {
        format!("@@{n}@@").into()
    }

    const ADVICE: &str = "burstd will not reset balances silently: inspect it, restore a backup, \
        or move it away to start over (every saved balance is then lost and each workload starts \
        afresh; a cgroup still at burstd's own baseline hold is recognised and set back to no \
        limit at exit, any other quota found is kept as the cgroup's original)";

    /// Issue 13 item 11: versions other than this one, as u64 (4294967297 is not version 1).
    #[test]
    fn versions_other_than_this_one_are_refused() {
        let e = refusal(|v| v["version"] = 0.into());
        assert_eq!(
            e,
            format!("state file P: version = 0: this burstd reads version 1 only; {ADVICE}")
        );
        let e = refusal(|v| v["version"] = 4_294_967_297u64.into());
        assert!(
            e.starts_with(
                "state file P has version 4294967297, newer than this burstd understands (1)"
            ),
            "{e}"
        );
        for (bad, shown) in [
            (serde_json::json!(-1), "-1"),
            (serde_json::json!(1.5), "1.5"),
            (serde_json::json!("1"), "\"1\""),
        ] {
            let e = refusal(|v| v["version"] = bad);
            assert!(
                e.starts_with(&format!(
                    "state file P: version = {shown}: this burstd reads version 1 only;"
                )),
                "{e}"
            );
        }
    }

    /// Issue 13 item 11: a key no burstd writes, at the top or inside a workload, is refused
    /// (it was dropped and the file rewritten without it).
    #[test]
    fn unknown_keys_are_refused() {
        let e = refusal(|v| v["surprise"] = 1.into());
        assert!(
            e.starts_with("state file P is corrupt (unknown field `surprise`"),
            "{e}"
        );
        assert!(e.ends_with(ADVICE), "{e}");
        let e = refusal(|v| v["workloads"]["web"]["surprise"] = 1.into());
        assert!(e.contains("unknown field `surprise`"), "{e}");
        let e = refusal(|v| v["workloads"]["web"]["bucket"]["totals"]["surprise"] = 1.into());
        assert!(e.contains("unknown field `surprise`"), "{e}");
        let e = refusal(|v| v["launch_limiter"]["surprise"] = 1.into());
        assert!(e.contains("unknown field `surprise`"), "{e}");
        // `extra` is where sections of other layers go: anything there is kept.
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample_state();
        s.extra
            .insert("api".into(), serde_json::json!({"any": [1]}));
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(s));
    }

    /// Issue 13 item 11: balances below zero or beyond what a bucket can hold, totals beyond
    /// their bound, and quotas the kernel refuses: field, value and what is allowed.
    #[test]
    fn values_no_burstd_writes_are_refused() {
        let e = refusal(|v| v["workloads"]["web"]["bucket"]["earned"] = (-1).into());
        assert_eq!(
            e,
            format!(
                "state file P: workloads.\"web\".bucket.earned = -1: must be from 0 to \
                 3600000000000000000000000000 (units of 1/3600000000000000 credit: 0 to \
                 1000000000000 credits, more than a bucket can ever hold); {ADVICE}"
            )
        );
        // i128::MAX: the arithmetic wrapped and "overdrawn" became 1.7e38.
        let e = refusal(|v| v["workloads"]["web"]["bucket"]["earned"] = big(i128::MAX));
        assert!(
            e.starts_with(
                "state file P: workloads.\"web\".bucket.earned = 170141183460469231731687303715884105727: must be from 0 to"
            ),
            "{e}"
        );
        // -1e30 is not a whole number of units: the file does not parse.
        let e = refusal(|v| {
            v["workloads"]["web"]["bucket"]["earned"] = serde_json::json!(-1e30);
        });
        assert!(
            e.starts_with("state file P is corrupt (") && e.contains("at line 1 column"),
            "{e}"
        );
        let over = Credits::whole(MAX_BALANCE_CREDITS).units() + 1;
        for k in ["launch", "surplus", "initial"] {
            let e = refusal(|v| v["workloads"]["Web"]["bucket"][k] = big(over));
            assert!(
                e.starts_with(&format!("state file P: workloads.\"Web\".bucket.{k} = {over}: must be from 0 to 3600000000000000000000000000 ")),
                "{e}"
            );
        }
        let over = Credits::whole(MAX_TOTAL_CREDITS).units() + 1;
        let e = refusal(|v| v["workloads"]["web"]["bucket"]["totals"]["spent"] = big(over));
        assert!(
            e.starts_with(&format!("state file P: workloads.\"web\".bucket.totals.spent = {over}: must be from 0 to 3600000000000000000000000000000000 (units of 1/3600000000000000 credit: 0 to 1000000000000000000 credits")),
            "{e}"
        );
        let e = refusal(|v| v["workloads"]["web"]["original_quota"]["period_us"] = 0.into());
        assert!(
            e.starts_with("state file P: workloads.\"web\".original_quota.period_us = 0: must be from 1000 to 1000000, as the kernel allows;"),
            "{e}"
        );
        let e = refusal(|v| v["workloads"]["web"]["original_quota"]["quota_us"] = 999.into());
        assert!(
            e.starts_with("state file P: workloads.\"web\".original_quota.quota_us = 999: must be null (no limit) or at least 1000"),
            "{e}"
        );
        let e = refusal(|v| v["launch_limiter"]["window_s"] = 0.into());
        assert!(
            e.starts_with("state file P: launch_limiter.window_s = 0: must be 86400 (the rolling 24 h of the launch-credit limit);"),
            "{e}"
        );
        // The bounds themselves are accepted.
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample_state();
        let w = s.workloads.get_mut("web").unwrap();
        w.bucket.earned = Credits::whole(MAX_BALANCE_CREDITS);
        w.bucket.totals.spent = Credits::whole(MAX_TOTAL_CREDITS);
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(s));
    }

    /// Issue 13 item 11: a 2 GB file was read whole (2.1 GB of memory). At most the cap and
    /// one byte are read now, and a save never writes more than a load accepts.
    #[test]
    fn a_file_larger_than_the_cap_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        let s = sample_state();
        save(dir.path(), &s).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        assert_eq!(load_file_capped(&path, len).unwrap(), Some(s.clone()));
        let e = load_file_capped(&path, len - 1).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "state file {}: is larger than {MAX_STATE_BYTES} bytes, the most burstd reads (its own saves stay below that); only that much was read; {ADVICE}",
                path.display()
            ).replacen(": is larger", " is larger", 1)
        );
        // A sparse 2 GiB file with the real cap: refused (reading stops at the cap + 1).
        let big = dir.path().join("big.json");
        File::create(&big).unwrap().set_len(2 << 30).unwrap();
        assert!(matches!(load_file(&big), Err(StateError::TooLarge { .. })));
        // A save that would pass the cap fails and leaves the old file.
        let before = fs::read(&path).unwrap();
        let e = write_atomic_capped(&path, &s, len - 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the state would be larger than"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert!(!dir.path().join(".state.json.tmp").exists());
    }
}
