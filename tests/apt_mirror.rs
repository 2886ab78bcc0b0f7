//! `tests/vm/apt-mirror.sh` (issue 13 item 14): the VM image is built from the Debian archive
//! this machine's apt already uses, read from its sources list in both formats, never from a
//! host named in the project.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs the script on an apt directory holding `files`; (stdout, stderr, success).
fn mirror(files: &[(&str, &str)], suite: &str) -> (String, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sources.list.d")).unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/apt-mirror.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir.path())
        .arg(suite)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "D"),
        out.status.success(),
    )
}

#[test]
fn one_line_format_skips_other_suites_options_and_comments() {
    let list = "# deb http://commented.example/debian bookworm main\n\
                deb-src http://src.example/debian bookworm main\n\
                deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main\n\
                deb [ arch=amd64 ] http://mirror.example/debian bookworm main contrib # the one\n\
                deb http://later.example/debian bookworm main\n";
    let (out, _, ok) = mirror(&[("sources.list", list)], "bookworm");
    assert!(ok);
    assert_eq!(out, "http://mirror.example/debian\n");
}

#[test]
fn deb822_sources_with_continuations_and_disabled_stanzas() {
    let sources = "Types: deb\n\
                   URIs: http://off.example/debian\n\
                   Suites: bookworm\n\
                   Enabled: no\n\
                   \n\
                   Types: deb-src deb\n\
                   # a comment inside a stanza\n\
                   URIs: cdrom:[Debian]/\n \
                   http://deb822.example/debian\n\
                   Suites: bookworm-updates\n \
                   bookworm\n\
                   Components: main\n";
    let (out, _, ok) = mirror(&[("sources.list.d/debian.sources", sources)], "bookworm");
    assert!(ok);
    assert_eq!(out, "http://deb822.example/debian\n");
}

#[test]
fn sources_list_first_then_the_directory_in_name_order() {
    let files = [
        (
            "sources.list.d/b.list",
            "deb http://b.example/debian bookworm main\n",
        ),
        (
            "sources.list.d/a.sources",
            "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\n",
        ),
        (
            "sources.list.d/0.list.disabled",
            "deb http://disabled.example/debian bookworm main\n",
        ),
    ];
    let (out, _, _) = mirror(&files, "bookworm");
    assert_eq!(out, "http://a.example/debian\n");
    let mut with_main = files.to_vec();
    with_main.push((
        "sources.list",
        "deb http://main.example/debian bookworm main\n",
    ));
    let (out, _, _) = mirror(&with_main, "bookworm");
    assert_eq!(out, "http://main.example/debian\n");
}

#[test]
fn no_entry_for_the_suite_is_a_clear_error() {
    let (out, err, ok) = mirror(
        &[(
            "sources.list",
            "deb http://x.example/debian bookworm-security main\n",
        )],
        "bookworm",
    );
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "no deb entry for suite bookworm in the apt sources (read: D/sources.list); \
         set BURSTD_VM_MIRROR to a Debian archive URL that has bookworm\n"
    );
    let (_, err, ok) = mirror(&[], "bookworm");
    assert!(!ok);
    assert!(err.starts_with("no deb entry for suite bookworm in the apt sources (none found: D/sources.list, D/sources.list.d/*.list, *.sources)"), "{err}");
}
