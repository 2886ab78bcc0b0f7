//! The API's admin check uses the peer's own credentials (issue 13 item 12): real daemon, real
//! socket, the real CLI run as `nobody` with groups set by `setgroups` before exec. Being listed
//! in /etc/group does not make a process an admin once it dropped the group, and a process given
//! the group by `setgroups` alone (as LDAP or systemd's `SupplementaryGroups=` do) is one.
//!
//! Needs root (to set another process's uid and groups); skips with a printed reason otherwise.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_burstd");
const NOBODY: u32 = 65534;

fn cgroup(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (f, text) in [
        ("cgroup.procs", ""),
        ("cgroup.controllers", "cpu io memory pids\n"),
        ("cgroup.subtree_control", ""),
        ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.max.burst", "0\n"),
    ] {
        std::fs::write(dir.join(f), text).unwrap();
    }
}

/// A dry-run change as `uid`/`gid` with exactly the supplementary `groups`: the answer says
/// whether it would have been allowed (DryRunOperation) or not (UnauthorizedOperation).
#[allow(unsafe_code)]
fn dry_run_as(socket: &Path, uid: u32, gid: u32, groups: &[u32]) -> String {
    let mut c = Command::new(BIN);
    c.args([
        "modify-instance-credit-specification",
        "--instance-credit-specification",
        "InstanceId=web,CpuCredits=standard",
        "--dry-run",
        "--socket",
    ])
    .arg(socket)
    .stdin(Stdio::null());
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: runs in the forked child before exec; only raw system calls on data built
    // before the fork (no allocation, no lock).
    unsafe {
        c.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o: Output = c.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `(name, gid, members)` of each line of /etc/group.
fn groups() -> Vec<(String, u32, Vec<String>)> {
    std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3)?.split(',').filter(|m| !m.is_empty());
            Some((
                f[0].to_owned(),
                f.get(2)?.parse().ok()?,
                members.map(str::to_owned).collect(),
            ))
        })
        .collect()
}

/// `(uid, gid)` of a user in /etc/passwd.
fn user(name: &str) -> Option<(u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        })
        .flatten()
}

#[test]
fn admin_is_decided_by_the_peers_own_groups() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped admin_is_decided_by_the_peers_own_groups: not running as root");
        return;
    }
    let groups = groups();
    if !groups
        .iter()
        .any(|(n, g, _)| n == "nogroup" && *g == NOBODY)
    {
        eprintln!(
            "skipped admin_is_decided_by_the_peers_own_groups: no nogroup (65534) in /etc/group"
        );
        return;
    }
    // The admin group: one listing a real (non-root) user as a member if the host has one (to
    // show that a listed member who dropped the group is not an admin), else any group
    // nobody is not in.
    let listed = groups.iter().find_map(|(name, gid, members)| {
        members.iter().find_map(|m| {
            user(m)
                .filter(|(uid, _)| *uid != 0 && *uid != NOBODY && *gid != NOBODY && *gid != 0)
                .map(|u| (name.clone(), *gid, u))
        })
    });
    let (admin_name, admin_gid) = match &listed {
        Some((name, gid, _)) => (name.clone(), *gid),
        None => groups
            .iter()
            .find(|(_, g, m)| *g != 0 && *g != NOBODY && !m.iter().any(|u| u == "nobody"))
            .map(|(n, g, _)| (n.clone(), *g))
            .expect("a group other than root and nogroup"),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    cgroup(&root.join("cg"));
    cgroup(&root.join("cg/web"));
    let socket = root.join("run/api.sock");
    let cfg = root.join("burstd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ncgroup_root = {:?}\nstate_dir = {:?}\n[metrics]\nlisten = \"\"\n[api]\nsocket = {:?}\ngroup = \"nogroup\"\nadmin_group = {admin_name:?}\n[[workload]]\nname = \"web\"\ncgroup = \"web\"\nprofile = \"t3.micro\"\n",
            root.join("cg").display().to_string(),
            root.join("state").display().to_string(),
            socket.display().to_string(),
        ),
    )
    .unwrap();
    let _daemon = Reaped(
        Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while !socket.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }

    // nobody with no supplementary group: read-only.
    let o = dry_run_as(&socket, NOBODY, NOBODY, &[]);
    assert!(o.contains("(UnauthorizedOperation)"), "{o}");
    // nobody given the admin group by setgroups alone (not listed in /etc/group): an admin.
    let o = dry_run_as(&socket, NOBODY, NOBODY, &[admin_gid]);
    assert!(o.contains("(DryRunOperation)"), "{o}");
    // nobody with the admin group as its own gid: an admin.
    let o = dry_run_as(&socket, NOBODY, admin_gid, &[NOBODY]);
    assert!(o.contains("(DryRunOperation)"), "{o}");
    // A user /etc/group lists in the admin group, running without it: read-only.
    match listed {
        Some((_, _, (uid, gid))) => {
            // nogroup only to open the 0660 socket.
            let o = dry_run_as(&socket, uid, gid, &[NOBODY]);
            assert!(o.contains("(UnauthorizedOperation)"), "uid {uid}: {o}");
        }
        None => eprintln!("no user is listed as a member of a group in /etc/group: the dropped-group part is skipped"),
    }
}
