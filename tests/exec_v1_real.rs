//! `burstd exec` and `burstd demo` on the real kernel (cgroup v1, as on the CI host): exit
//! status and signals pass through, the command and its children live in the exec cgroup,
//! nothing is left behind, the baseline is enforced (measured from cpuacct), `--state` carries
//! the balance between runs, and `demo --quick` shows the hold.

mod common;

use burstd::agent::state;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_burstd");

/// The tests that burn CPU run one at a time: on a 2-core host two busy loops plus the
/// build would starve each other.
static BURNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn burning() -> std::sync::MutexGuard<'static, ()> {
    BURNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn exec_rel(pid: u32) -> String {
    format!("burstd/exec-{pid}")
}

/// Kills whatever a failed test left in `burstd/exec-<pid>` and removes it.
struct Cleanup(u32);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for root in [CPU, CPUACCT] {
            let dir = Path::new(root).join(exec_rel(self.0));
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            for _ in 0..50 {
                if !dir.exists() || fs::remove_dir(&dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The shared parent, once no other test's command is in it.
            let _ = fs::remove_dir(Path::new(root).join("burstd"));
        }
    }
}

fn left_behind(pid: u32) -> Vec<PathBuf> {
    [CPU, CPUACCT]
        .iter()
        .map(|r| Path::new(r).join(exec_rel(pid)))
        .filter(|d| d.exists())
        .collect()
}

/// Runs `burstd ARGS`, returning its output and pid.
fn run(args: &[&str]) -> (Output, u32) {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start burstd");
    let pid = child.id();
    let _guard = Cleanup(pid);
    let out = child.wait_with_output().expect("wait for burstd");
    assert!(left_behind(pid).is_empty(), "cgroup left behind");
    (out, pid)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_status_passes_through() {
    if !real_kernel_available("exit_status_passes_through") {
        return;
    }
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t3.micro",
        "-q",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t3.micro",
        "-q",
        "--",
        "sh",
        "-c",
        "kill -KILL $$",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("killed by signal 9"), "{}", stderr(&o));
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t3.micro",
        "-q",
        "--",
        "/nonexistent/cmd",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
}

#[test]
fn a_parent_cgroup_exec_created_is_removed_with_the_command_cgroup() {
    if !real_kernel_available("a_parent_cgroup_exec_created_is_removed_with_the_command_cgroup") {
        return;
    }
    let parent = format!("burstd-parent-test-{}", std::process::id());
    let dirs = || [CPU, CPUACCT].map(|root| Path::new(root).join(&parent));
    let exec_true = || {
        let args = [
            "exec",
            "--profile",
            "t3.micro",
            "--parent",
            &parent,
            "-q",
            "--",
            "true",
        ];
        run(&args).0
    };
    let o = exec_true();
    let left: Vec<PathBuf> = dirs().into_iter().filter(|d| d.exists()).collect();
    for d in &left {
        let _ = fs::remove_dir(d);
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(left.is_empty(), "parent left behind: {left:?}");
    // A parent that was there before is left as it was.
    for d in dirs() {
        fs::create_dir(&d).expect("create the parent");
    }
    let o = exec_true();
    let kept = dirs().iter().all(|d| d.exists());
    for d in dirs() {
        let _ = fs::remove_dir(d);
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(kept, "a parent that existed before was removed");
}

#[test]
fn sigterm_reaches_the_command_and_the_cgroup_goes() {
    if !real_kernel_available("sigterm_reaches_the_command_and_the_cgroup_goes") {
        return;
    }
    let mut child = Reaped(
        Command::new(BIN)
            .args(["exec", "--profile", "t3.micro", "-q", "--", "sleep", "30"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start burstd"),
    );
    let pid = child.0.id();
    let _guard = Cleanup(pid);
    let procs = Path::new(CPU).join(exec_rel(pid)).join("cgroup.procs");
    // The forked child joins the cgroup before it executes `sleep`: wait for the exec.
    wait_for(Duration::from_secs(10), || {
        let pids = fs::read_to_string(&procs).ok()?;
        let pid = pids.lines().next()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "sleep").then_some(())
    })
    .expect("sleep never ran in its cgroup");
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "sleep died of SIGTERM: 128 + 15");
    assert!(left_behind(pid).is_empty(), "cgroup left behind");
}

#[test]
fn children_stay_in_the_cgroup_and_leftovers_are_killed() {
    if !real_kernel_available("children_stay_in_the_cgroup_and_leftovers_are_killed") {
        return;
    }
    let (o, pid) = run(&[
        "exec",
        "--profile",
        "t3.micro",
        "-q",
        "--",
        "sh",
        "-c",
        "sleep 30 & echo $!; cat /proc/self/cgroup",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let want = format!("/{}", exec_rel(pid));
    let line = |ctl: &str| {
        out.lines()
            .find(|l| l.split(':').nth(1) == Some(ctl))
            .map(|l| l.rsplit(':').next().unwrap_or("").to_string())
    };
    assert_eq!(line("cpu").as_deref(), Some(want.as_str()), "{out}");
    assert_eq!(line("cpuacct").as_deref(), Some(want.as_str()), "{out}");
    // The background sleep was killed before the cgroup was removed.
    let sleeper = out.lines().next().unwrap_or("").trim().to_string();
    let state = fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "background child still alive: {state}"
    );
}

#[test]
fn tiny_balance_is_held_at_baseline_measured_by_cpuacct() {
    if !real_kernel_available("tiny_balance_is_held_at_baseline_measured_by_cpuacct") {
        return;
    }
    let _burning = burning();
    let child = Command::new(BIN)
        .args([
            "exec",
            "--profile",
            "t2.micro",
            "--launch-credits",
            "0",
            "--time-scale",
            "60",
            "--initial-credits",
            "0.5",
            "--",
            BIN,
            "burn",
            "--seconds",
            "4",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start burstd");
    let pid = child.id();
    let _guard = Cleanup(pid);
    let usage = Path::new(CPUACCT).join(exec_rel(pid)).join("cpuacct.usage");
    wait_for(Duration::from_secs(10), || usage.exists().then_some(()))
        .expect("the exec cgroup never appeared");
    // Follow the cgroup's counter until the cgroup is gone: the last value is the total.
    let mut last = 0u64;
    while let Ok(t) = fs::read_to_string(&usage) {
        last = t.trim().parse().unwrap_or(last);
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // 0.5 credit at 60× = 0.5 s of one core until zero (earning 0.1 core meanwhile), then the
    // baseline, 0.1 core: over 4 s that is 0.5 + 0.1 × 4 = 0.9 s of CPU.
    let used = last as f64 / 1e9;
    assert!(
        (0.765..=1.035).contains(&used),
        "cpuacct measured {used:.3} s, expected 0.9 s ±15%\n{err}"
    );
    assert!(err.contains("HELD AT BASELINE"), "{err}");
    assert!(left_behind(pid).is_empty());
}

#[test]
fn state_file_carries_the_balance_between_runs() {
    if !real_kernel_available("state_file_carries_the_balance_between_runs") {
        return;
    }
    let _burning = burning();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t3.json");
    let f = file.to_str().unwrap();
    let burn = [BIN, "burn", "--seconds", "1"];
    // T3: the earned balance survives a stop + start.
    let mut args = vec![
        "exec",
        "--profile",
        "t3.micro",
        "--mode",
        "standard",
        "--time-scale",
        "60",
        "--initial-credits",
        "5",
        "--state",
        f,
        "--",
    ];
    args.extend(burn);
    let (o, _) = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b1 = state::load_file(&file).unwrap().unwrap().workloads["exec"]
        .bucket
        .balance();
    assert!(
        b1.as_f64() > 0.5 && b1.as_f64() < 5.0,
        "balance after run 1: {b1}"
    );
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t3.micro",
        "--time-scale",
        "60",
        "--initial-credits",
        "50",
        "--state",
        f,
        "--",
        "true",
    ]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("balance {b1:.3} credits")),
        "run 2 must start with run 1's end balance {b1:.3}:\n{err}"
    );
    let b2 = state::load_file(&file).unwrap().unwrap().workloads["exec"]
        .bucket
        .balance();
    assert!(b2 >= b1, "{b2} < {b1}");

    // T2: a start grants new launch credits (30) and earned ones are lost at the stop.
    let file = dir.path().join("t2.json");
    let f = file.to_str().unwrap();
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t2.micro",
        "--initial-credits",
        "5",
        "--state",
        f,
        "--",
        "true",
    ]);
    assert!(
        stderr(&o).contains("balance 35.000 credits"),
        "{}",
        stderr(&o)
    );
    let (o, _) = run(&[
        "exec",
        "--profile",
        "t2.micro",
        "--initial-credits",
        "5",
        "--state",
        f,
        "--",
        "true",
    ]);
    assert!(
        stderr(&o).contains("balance 30.000 credits"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unprivileged_user_is_told_what_to_do() {
    if !real_kernel_available("unprivileged_user_is_told_what_to_do") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped unprivileged_user_is_told_what_to_do: no setpriv");
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["exec", "--profile", "t3.micro", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(69), "{err}");
    assert!(
        err.contains("not root") && err.contains("Delegate=yes"),
        "{err}"
    );
}

#[test]
fn demo_quick_shows_the_hold() {
    if !real_kernel_available("demo_quick_shows_the_hold") {
        return;
    }
    let _burning = burning();
    let o = Command::new(BIN)
        .args(["demo", "--quick"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("HELD AT BASELINE"), "{err}");
    assert!(out.contains("held at baseline after"), "{out}");
    assert!(
        out.contains("unlimited") && out.contains("never held"),
        "{out}"
    );
}
