//! The few file helpers every cgroup access goes through: open without creating, `pread` from
//! offset 0 into a reused buffer, write a whole value, and the errno → [`CgroupError`] mapping.
//!
//! Files are never created: a misspelt control file must be an error, not a new file.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// Control files are small; this fits every one burstd reads (cgroup.procs may grow the buffer).
const INITIAL_BUFFER: usize = 512;

thread_local! {
    /// The read buffer every control-file read on this thread reuses: one per thread rather
    /// than one per handle (512 B × 10,000 handles was 5 MB), and no allocation per read.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The path of a file opened for one read (a handle short of descriptor budget): reused,
    /// so that such a read allocates nothing either.
    static PATH: RefCell<PathBuf> = RefCell::new(PathBuf::new());
}

/// Open `dir/name` for reading, building the path in this thread's reused buffer.
fn open_in(dir: &Path, name: &str, controller: &'static str) -> Result<File, CgroupError> {
    PATH.with_borrow_mut(|path| {
        path.clear();
        path.push(dir);
        path.push(name);
        open_read(path, controller)
    })
}

/// A control file read repeatedly. It stores only its name: the handle holding it keeps the
/// cgroup's directory, and paths are built only for an open or an error message. Normally kept
/// open for `pread`s; a handle short of descriptor budget closes it ([`Self::close`]), and each
/// read then opens and closes it again, with the same errors.
#[derive(Debug)]
pub(crate) struct ControlFile {
    /// `None` while closed: reads open the file by path.
    file: Option<File>,
    name: &'static str,
    controller: &'static str,
}

impl ControlFile {
    /// Open `dir/name`; `controller` names what must be enabled for it to exist.
    pub(crate) fn open(
        dir: &Path,
        name: &'static str,
        controller: &'static str,
    ) -> Result<Self, CgroupError> {
        let file = open_in(dir, name, controller)?;
        Ok(ControlFile {
            file: Some(file),
            name,
            controller,
        })
    }

    /// `None` if the file does not exist while its cgroup does (e.g. no burst on old kernels).
    pub(crate) fn open_optional(
        dir: &Path,
        name: &'static str,
    ) -> Result<Option<Self>, CgroupError> {
        match Self::open(dir, name, "cpu") {
            Ok(file) => Ok(Some(file)),
            Err(CgroupError::MissingFile { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Its path, for a write or an error message.
    pub(crate) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.name)
    }

    /// Keep the descriptor open (opening it if closed) or close it: each read of a closed file
    /// opens it (open + pread + close, 5–10× a `pread` on a kept descriptor). An open that
    /// fails leaves it closed: the next read opens it and reports the error.
    pub(crate) fn keep_open(&mut self, dir: &Path, keep: bool) {
        if !keep {
            self.file = None;
        } else if self.file.is_none() {
            self.file = open_in(dir, self.name, self.controller).ok();
        }
    }

    /// Re-read the file into this thread's buffer and parse it; a parse failure carries the
    /// path and content.
    pub(crate) fn read<T>(
        &self,
        dir: &Path,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, CgroupError> {
        let opened;
        let file = match &self.file {
            Some(file) => file,
            None => {
                opened = open_in(dir, self.name, self.controller)?;
                &opened
            }
        };
        BUFFER.with_borrow_mut(|buf| read_parsed(file, buf, || self.path(dir), parse))
    }
}

/// Open a control file for reading. `controller` names what must be enabled for it to exist.
pub(crate) fn open_read(path: &Path, controller: &'static str) -> Result<File, CgroupError> {
    OpenOptions::new()
        .read(true)
        .create(false)
        .open(path)
        .map_err(|e| classify_open(e, path, controller))
}

/// Why [`read_at_start`] failed, before the path is attached.
pub(crate) enum ReadFailure {
    Io(std::io::Error),
    NotUtf8(String),
}

impl ReadFailure {
    pub(crate) fn at(self, path: PathBuf) -> CgroupError {
        match self {
            ReadFailure::Io(e) => classify_read(e, &path),
            ReadFailure::NotUtf8(content) => CgroupError::Parse {
                path,
                content,
                expected: "UTF-8 text",
            },
        }
    }
}

/// Read the whole file from offset 0 into `buf`, which the caller keeps so that repeated reads
/// do not allocate. A kept-open descriptor re-read with `pread` returns fresh values.
pub(crate) fn read_at_start<'b>(file: &File, buf: &'b mut Vec<u8>) -> Result<&'b str, ReadFailure> {
    if buf.len() < INITIAL_BUFFER {
        buf.resize(INITIAL_BUFFER, 0);
    }
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - filled;
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            // A short read of a cgroup (seq_file) file is its end: skip the extra pread that
            // would only return 0. That second syscall was a third of a sample's cost.
            Ok(n) if n < room => {
                filled += n;
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
    std::str::from_utf8(&buf[..filled])
        .map_err(|_| ReadFailure::NotUtf8(String::from_utf8_lossy(&buf[..filled]).into_owned()))
}

/// Open, read, parse and close: for files read rarely (`cgroup.procs`, `cgroup.controllers`).
pub(crate) fn read_once<T>(
    path: &Path,
    controller: &'static str,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<T, CgroupError> {
    let file = open_read(path, controller)?;
    read_parsed(&file, &mut Vec::new(), || path.to_owned(), parse)
}

/// [`read_at_start`] and `parse`; errors carry the path (built only then) and the content.
fn read_parsed<T>(
    file: &File,
    buf: &mut Vec<u8>,
    path: impl Fn() -> PathBuf,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<T, CgroupError> {
    let text = read_at_start(file, buf).map_err(|e| e.at(path()))?;
    parse(text).map_err(|expected| CgroupError::Parse {
        path: path(),
        content: text.to_owned(),
        expected,
    })
}

/// Create `root/rel` and its missing parents, calling `before_each` with each parent before its
/// child is made (v2 enables the cpu controller there). Existing directories are fine.
pub(crate) fn create_dirs(
    root: &Path,
    rel: &str,
    mut before_each: impl FnMut(&Path) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let mut dir = root.to_owned();
    for element in rel.split('/').filter(|e| !e.is_empty()) {
        before_each(&dir)?;
        dir.push(element);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(classify_dir(e, &dir, "creating")),
        }
    }
    Ok(())
}

/// Remove the cgroup directory `dir`; one already gone is fine.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(classify_dir(e, dir, "removing")),
    }
}

fn classify_dir(e: std::io::Error, path: &Path, action: &'static str) -> CgroupError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV | libc::EACCES | libc::EPERM) => classify_read(e, path),
        _ => CgroupError::Directory {
            action,
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Write `value` in one `write` call, as the kernel parses each write on its own. The file is
/// truncated on open, like a shell's `>`: cgroupfs ignores it, and a fake tree in a tempdir then
/// holds exactly the last value.
pub(crate) fn write_value(
    path: &Path,
    value: &str,
    controller: &'static str,
) -> Result<(), CgroupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(false)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => classify_open(e, path, controller),
            _ => classify_write(e, path, value),
        })?;
    file.write_all(value.as_bytes())
        .map_err(|e| classify_write(e, path, value))
}

/// Does the directory of this (missing) file still exist? Tells "cgroup gone" from "file missing".
fn parent_exists(path: &Path) -> bool {
    path.parent().is_some_and(Path::is_dir)
}

fn classify_open(e: std::io::Error, path: &Path, controller: &'static str) -> CgroupError {
    if e.kind() == ErrorKind::NotFound && parent_exists(path) {
        return CgroupError::MissingFile {
            path: path.to_owned(),
            controller,
        };
    }
    classify_read(e, path)
}

/// ENOENT/ENODEV/ESTALE = gone (ENODEV and ESTALE: a descriptor kept open on a removed
/// directory), EACCES/EPERM = permission, anything else a read error.
pub(crate) fn classify_read(e: std::io::Error, path: &Path) -> CgroupError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ESTALE) => CgroupError::Gone {
            path: path.to_owned(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => CgroupError::PermissionDenied {
            path: path.to_owned(),
        },
        _ => CgroupError::Read {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// As [`classify_read`], plus EINVAL = the kernel rejected the value.
pub(crate) fn classify_write(e: std::io::Error, path: &Path, value: &str) -> CgroupError {
    match e.raw_os_error() {
        Some(libc::EINVAL) => CgroupError::Rejected {
            path: path.to_owned(),
            value: value.to_owned(),
        },
        Some(libc::ENOENT | libc::ENODEV | libc::EACCES | libc::EPERM) => classify_read(e, path),
        _ => CgroupError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;

    #[test]
    fn errno_mapping() {
        let p = Path::new("/cg/x/cpu.stat");
        assert!(classify_read(Error::from_raw_os_error(libc::ENODEV), p).is_gone());
        assert!(classify_read(Error::from_raw_os_error(libc::ENOENT), p).is_gone());
        assert!(classify_read(Error::from_raw_os_error(libc::ESTALE), p).is_gone());
        assert!(matches!(
            classify_read(Error::from_raw_os_error(libc::EACCES), p),
            CgroupError::PermissionDenied { .. }
        ));
        assert!(matches!(
            classify_write(Error::from_raw_os_error(libc::EPERM), p, "1"),
            CgroupError::PermissionDenied { .. }
        ));
        match classify_write(Error::from_raw_os_error(libc::EINVAL), p, "500 100000") {
            CgroupError::Rejected { value, .. } => assert_eq!(value, "500 100000"),
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(matches!(
            classify_write(Error::from_raw_os_error(libc::EBUSY), p, "1"),
            CgroupError::Write { .. }
        ));
    }

    #[test]
    fn missing_file_in_existing_dir_is_not_gone() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_read(&dir.path().join("cpu.max"), "cpu").unwrap_err();
        assert!(matches!(err, CgroupError::MissingFile { .. }), "{err:?}");
        assert!(ControlFile::open_optional(dir.path(), "cpu.max.burst")
            .unwrap()
            .is_none());
        let err = open_read(&dir.path().join("gone/cpu.max"), "cpu").unwrap_err();
        assert!(err.is_gone(), "{err:?}");
    }

    #[test]
    fn pread_rereads_fresh_content_and_grows_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cgroup.procs");
        std::fs::write(&path, "1\n").unwrap();
        let file = open_read(&path, "cgroup").unwrap();
        let mut buf = Vec::new();
        let read = |buf: &mut Vec<u8>| read_at_start(&file, buf).ok().map(str::to_owned);
        assert_eq!(read(&mut buf).as_deref(), Some("1\n"));
        let long = "123456\n".repeat(500);
        std::fs::write(&path, &long).unwrap();
        assert_eq!(read(&mut buf), Some(long));
        write_value(&path, "42", "cgroup").unwrap();
        assert_eq!(read(&mut buf).as_deref(), Some("42"));
    }
}
