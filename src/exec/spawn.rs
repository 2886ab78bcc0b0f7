//! Starting the command inside its cgroup with no escape window: the forked child moves itself
//! into the cgroup (a `write` of "0" to each pre-opened `cgroup.procs`) before it executes the
//! command, so the command and every process it ever forks are accounted from their first
//! instruction.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Opens the `cgroup.procs` files for writing, before any fork.
pub fn open_procs(files: &[PathBuf]) -> std::io::Result<Vec<File>> {
    files
        .iter()
        .map(|p| File::options().write(true).open(p))
        .collect()
}

/// `program args…`, set up to join the cgroup whose `cgroup.procs` files are `procs` between
/// fork and exec. The descriptors are close-on-exec, so the command never sees them.
pub fn command_in_cgroup(program: &OsString, args: &[OsString], procs: Vec<File>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    join_before_exec(&mut cmd, procs);
    cmd
}

#[allow(unsafe_code)]
fn join_before_exec(cmd: &mut Command, procs: Vec<File>) {
    // SAFETY: `pre_exec` runs the closure in the forked child before `execve`, where only
    // async-signal-safe operations are allowed. The closure only iterates a Vec built before
    // the fork (no allocation), calls `write(2)` through rustix (a raw system call: no lock,
    // no allocation) on descriptors opened before the fork, and turns a failure into an
    // `io::Error` from its raw errno (no allocation). It touches no other state of the parent.
    unsafe {
        cmd.pre_exec(move || {
            for file in &procs {
                // "0" means the writing process itself (cgroup v1 and v2).
                rustix::io::write(file, b"0").map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}
