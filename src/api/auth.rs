//! Who may change things: root and members of `[api] admin_group`, decided from the peer's
//! own credentials as the kernel has them: its uid and gid (SO_PEERCRED) and its supplementary
//! groups (SO_PEERGROUPS, Linux 4.13+) when it connected. A process that dropped the group is
//! not an admin; one given it by LDAP or systemd's `SupplementaryGroups=` is. Only on a kernel
//! without SO_PEERGROUPS is membership read from /etc/group and /etc/passwd (logged once).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::warn;

/// The decision itself, pure: `uid` 0, or `admin_gid` among the caller's groups.
pub fn may_modify(uid: u32, gids: &[u32], admin_gid: Option<u32>) -> bool {
    uid == 0 || admin_gid.is_some_and(|g| gids.contains(&g))
}

/// The kernel's limit on supplementary groups (NGROUPS_MAX).
const NGROUPS_MAX: usize = 65_536;

/// The supplementary groups of the process at the other end of a connected Unix socket, as
/// they were when it connected (`SO_PEERGROUPS`). An error `ENOPROTOOPT` means the kernel is
/// older than 4.13.
#[allow(unsafe_code)]
pub fn peer_groups(fd: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut gids: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (gids.len() * GID) as libc::socklen_t;
        // SAFETY: `gids` is a live, writable buffer of `len` bytes for the whole call, `len`
        // points to a socklen_t, and `fd` is a descriptor borrowed for the call. The kernel
        // writes at most `len` bytes and sets `len` to what it wrote (or, with ERANGE, to the
        // size it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                gids.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            gids.truncate(len as usize / GID);
            return Ok(gids);
        }
        let e = std::io::Error::last_os_error();
        let needed = len as usize / GID;
        if e.raw_os_error() == Some(libc::ERANGE) && needed > gids.len() && needed <= NGROUPS_MAX {
            gids.resize(needed, 0);
            continue;
        }
        return Err(e);
    }
}

/// Whether the peer on `fd`, with `uid` and `gid` from SO_PEERCRED, may change things: uid 0,
/// or `admin_gid` its gid or one of its supplementary groups ([`peer_groups`]). Without
/// SO_PEERGROUPS (a kernel before 4.13) the supplementary groups are read from `db` instead,
/// with a warning the first time; any other failure to read them is read-only access.
pub fn peer_may_modify(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    admin_gid: Option<u32>,
    db: &GroupDb,
) -> bool {
    static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);
    if uid == 0 || admin_gid.is_none() {
        return may_modify(uid, &[gid], admin_gid);
    }
    match peer_groups(fd) {
        Ok(mut gids) => {
            gids.push(gid);
            may_modify(uid, &gids, admin_gid)
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL)) => {
            if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                warn!(error = %e, file = %db.group_file.display(),
                    "this kernel cannot tell an API peer's supplementary groups (SO_PEERGROUPS needs Linux 4.13): \
                     [api] admin_group membership is read from the group file instead, which a process can \
                     have dropped, or have without being listed there");
            }
            may_modify(uid, &db.groups_of(uid, gid), admin_gid)
        }
        Err(e) => {
            warn!(error = %e, uid, "cannot read the API peer's supplementary groups; treated as read-only");
            false
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("group {name:?} is not in {file}: create it (groupadd {name}) or change [api] {key}")]
    Unknown {
        name: String,
        file: PathBuf,
        key: &'static str,
    },
}

/// The files the group database is read from (tests use their own).
#[derive(Clone, Debug)]
pub struct GroupDb {
    pub group_file: PathBuf,
    pub passwd_file: PathBuf,
}

impl Default for GroupDb {
    fn default() -> Self {
        GroupDb {
            group_file: PathBuf::from("/etc/group"),
            passwd_file: PathBuf::from("/etc/passwd"),
        }
    }
}

fn read(file: &Path) -> Result<String, GroupError> {
    std::fs::read_to_string(file).map_err(|e| GroupError::Read {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `name:password:gid:members` lines; malformed lines are skipped.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let gid = f.next()?.trim().parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        Some((name, gid, members))
    })
}

impl GroupDb {
    /// The gid of a group name; `key` names the config key in the error.
    pub fn gid_of(&self, name: &str, key: &'static str) -> Result<u32, GroupError> {
        let text = read(&self.group_file)?;
        let found = group_entries(&text)
            .find(|(n, _, _)| *n == name)
            .map(|(_, gid, _)| gid);
        found.ok_or_else(|| GroupError::Unknown {
            name: name.to_string(),
            file: self.group_file.clone(),
            key,
        })
    }

    /// Every group of `uid`: `gid` (the peer's own), its primary group from the passwd file and
    /// the groups listing its user name as a member.
    pub fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32> {
        let mut gids = vec![gid];
        let Ok(passwd) = read(&self.passwd_file) else {
            return gids;
        };
        let user = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[2].parse() == Ok(uid))
                .then(|| (f[0].to_string(), f[3].parse::<u32>().ok()))
        });
        let Some((name, primary)) = user else {
            return gids;
        };
        gids.extend(primary);
        if let Ok(groups) = read(&self.group_file) {
            gids.extend(
                group_entries(&groups)
                    .filter(|(_, _, members)| members.contains(&name.as_str()))
                    .map(|(_, g, _)| g),
            );
        }
        gids.sort_unstable();
        gids.dedup();
        gids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_admin_group_members_may_modify_others_may_not() {
        assert!(may_modify(0, &[0], None));
        assert!(may_modify(0, &[], Some(900)));
        assert!(may_modify(1000, &[1000, 900], Some(900)));
        assert!(!may_modify(1000, &[1000], Some(900)));
        assert!(!may_modify(1000, &[1000, 900], None));
        assert!(!may_modify(65534, &[65534], Some(900)));
    }

    /// Both ends of a socket pair are this process: the kernel reports its own groups.
    #[test]
    fn peer_groups_are_the_connecting_process_groups() {
        use std::os::fd::AsFd;
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut got = peer_groups(a.as_fd()).unwrap();
        let mut own = rustix::process::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect::<Vec<_>>();
        got.sort_unstable();
        own.sort_unstable();
        assert_eq!(got, own);
    }

    #[test]
    fn groups_come_from_passwd_and_group_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = GroupDb {
            group_file: dir.path().join("group"),
            passwd_file: dir.path().join("passwd"),
        };
        std::fs::write(
            &db.group_file,
            "root:x:0:\nbad line\nburstd:x:900:alice, bob\nstaff:x:50:carol\nalice:x:1000:\n",
        )
        .unwrap();
        std::fs::write(
            &db.passwd_file,
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\ncarol:x:1002:50::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(db.gid_of("burstd", "admin_group"), Ok(900));
        let e = db.gid_of("nope", "admin_group").unwrap_err().to_string();
        assert!(
            e.contains("group \"nope\" is not in") && e.contains("[api] admin_group"),
            "{e}"
        );
        assert_eq!(db.groups_of(1000, 1000), vec![900, 1000]);
        // The primary gid from passwd counts even when the peer runs with another gid.
        assert_eq!(db.groups_of(1002, 7), vec![7, 50]);
        // Unknown uid: only the peer's own gid.
        assert_eq!(db.groups_of(4242, 4242), vec![4242]);
        let missing = GroupDb {
            group_file: dir.path().join("nothing"),
            passwd_file: dir.path().join("nothing"),
        };
        assert!(matches!(
            missing.gid_of("x", "group"),
            Err(GroupError::Read { .. })
        ));
    }
}
