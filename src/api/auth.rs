//! Who may change things: root and members of `[api] admin_group`, decided from the peer's
//! credentials (SO_PEERCRED) and the group database in /etc/group and /etc/passwd.

use std::path::{Path, PathBuf};

/// The decision itself, pure: `uid` 0, or `admin_gid` among the caller's groups.
pub fn may_modify(uid: u32, gids: &[u32], admin_gid: Option<u32>) -> bool {
    uid == 0 || admin_gid.is_some_and(|g| gids.contains(&g))
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
