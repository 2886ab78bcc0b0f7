//! `burstd record`'s bad input: exit 2 and a message naming what is wrong, no file left
//! half-made. (Recording itself is tested on the real kernel in record_v1_real.rs.)

use std::process::Command;

fn record(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_burstd"))
        .arg("record")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_sources_and_durations_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.csv");
    let out = out.to_str().unwrap();
    let (code, err) = record(&["--pid", "999999999", "--out", out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--pid 999999999: no such process"), "{err}");
    let (code, err) = record(&["--cgroup", "no/such/group-19", "--out", out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--cgroup no/such/group-19"), "{err}");
    let (code, err) = record(&["--pid", "1", "--interval", "1y", "--out", out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown unit"), "{err}");
    let (code, _) = record(&["--out", out]);
    assert_eq!(code, Some(2));
    assert!(!std::path::Path::new(out).exists());
}
