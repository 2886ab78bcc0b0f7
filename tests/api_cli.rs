//! The real daemon on a fake cgroup v2 tree in a tempdir, driven by the real CLI client over
//! its Unix socket: as root (an admin) and, when the test runs as root, as `nobody` (uid
//! 65534) through a socket whose group lets it in — reads allowed, changes refused.

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

/// `burstd daemon --config CFG`, killed when dropped.
fn daemon(cfg: &Path) -> Reaped {
    Reaped(
        Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(cfg)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

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

fn cli(socket: &Path, args: &[&str], as_nobody: bool) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).arg("--socket").arg(socket);
    if as_nobody {
        c.uid(65534).gid(65534);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn cli_talks_to_the_daemon_as_admin_and_as_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    cgroup(&root.join("cg"));
    cgroup(&root.join("cg/web"));
    let socket = root.join("run/api.sock");
    // Debian's group of `nobody`: lets uid 65534 open the 0660 socket.
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let is_root = rustix::process::geteuid().is_root();
    let nobody = is_root && groups.lines().any(|l| l.starts_with("nogroup:x:65534:"));
    let cfg = root.join("burstd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ncgroup_root = {:?}\nstate_dir = {:?}\n[metrics]\nlisten = \"\"\n[api]\nsocket = {:?}\n{}\n[[workload]]\nname = \"web\"\ncgroup = \"web\"\nprofile = \"t3.micro\"\n",
            root.join("cg").display().to_string(),
            root.join("state").display().to_string(),
            socket.display().to_string(),
            if nobody { "group = \"nogroup\"" } else { "" },
        ),
    )
    .unwrap();
    let _daemon = daemon(&cfg);
    let t = Instant::now();
    while !socket.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }

    let o = cli(&socket, &["status", "--json"], false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"InstanceId\": \"web\""), "{}", text(&o));
    let o = cli(&socket, &["status"], false);
    assert!(
        text(&o).starts_with("WORKLOAD") && text(&o).contains("t3.micro"),
        "{}",
        text(&o)
    );

    let modify = [
        "modify-instance-credit-specification",
        "--instance-credit-specification",
        "InstanceId=web,CpuCredits=standard",
    ];
    let o = cli(&socket, &[&modify[..], &["--dry-run"]].concat(), false);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(
        text(&o).contains("An error occurred (DryRunOperation)"),
        "{}",
        text(&o)
    );
    let o = cli(
        &socket,
        &[&modify[..], &["--client-token", "t1"]].concat(),
        false,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"SuccessfulInstanceCreditSpecifications\""));
    let o = cli(
        &socket,
        &[
            "describe-instance-credit-specifications",
            "--instance-ids",
            "web",
        ],
        false,
    );
    assert!(
        text(&o).contains("\"CpuCredits\": \"standard\""),
        "{}",
        text(&o)
    );
    let o = cli(
        &socket,
        &[
            "get-default-credit-specification",
            "--instance-family",
            "t3",
        ],
        false,
    );
    assert!(
        text(&o).contains("\"CpuCredits\": \"unlimited\""),
        "{}",
        text(&o)
    );
    let o = cli(
        &socket,
        &[
            "modify-default-credit-specification",
            "--instance-family",
            "t2",
            "--cpu-credits",
            "unlimited",
        ],
        false,
    );
    assert!(o.status.success(), "{}", text(&o));

    if nobody {
        let o = cli(&socket, &["describe-instance-credit-specifications"], true);
        assert!(o.status.success(), "nobody may read: {}", text(&o));
        let back = [
            "modify-instance-credit-specification",
            "--instance-credit-specification",
            "InstanceId=web,CpuCredits=unlimited",
        ];
        for extra in [&[][..], &["--dry-run"][..]] {
            let o = cli(&socket, &[&back[..], extra].concat(), true);
            assert_eq!(o.status.code(), Some(254), "{}", text(&o));
            assert!(text(&o).contains("(UnauthorizedOperation)"), "{}", text(&o));
        }
        let o = cli(
            &socket,
            &[
                "describe-instance-credit-specifications",
                "--instance-ids",
                "web",
            ],
            true,
        );
        assert!(
            text(&o).contains("\"CpuCredits\": \"standard\""),
            "unchanged: {}",
            text(&o)
        );
    } else {
        eprintln!("not root or no nogroup: the other-uid part is skipped");
    }

    let o = cli(&root.join("none.sock"), &["status"], false);
    assert_eq!(o.status.code(), Some(69));
    assert!(text(&o).contains("no socket at"), "{}", text(&o));
}

/// `GET /healthz` on `port`: whether it answered 200.
fn healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A port nobody listens on (just freed by the kernel).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(15), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_moves_the_metrics_endpoint_and_the_api_socket() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cgroup(&root.join("cg"));
    cgroup(&root.join("cg/web"));
    let cfg = root.join("burstd.toml");
    let write_cfg = |port: u16, socket: &Path| {
        let text = format!(
            "[agent]\ncgroup_root = {:?}\nstate_dir = {:?}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[api]\nsocket = {:?}\n[[workload]]\nname = \"web\"\ncgroup = \"web\"\nprofile = \"t3.micro\"\n",
            root.join("cg").display().to_string(),
            root.join("state").display().to_string(),
            socket.display().to_string(),
        );
        std::fs::write(&cfg, text).unwrap();
    };
    let (port1, socket1) = (free_port(), root.join("run/one.sock"));
    write_cfg(port1, &socket1);
    let daemon = daemon(&cfg);
    wait("the first endpoint", || healthz(port1) && socket1.exists());
    let hup = || {
        let pid = rustix::process::Pid::from_child(&daemon.0);
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    };

    // Both sections changed: both move, and the old ones are gone.
    let (port2, socket2) = (free_port(), root.join("run/two.sock"));
    write_cfg(port2, &socket2);
    hup();
    wait("the moved endpoint", || healthz(port2) && socket2.exists());
    assert!(!healthz(port1), "the old endpoint still answers");
    assert!(!socket1.exists(), "the old socket is still there");
    let o = cli(&socket2, &["status", "--json"], false);
    assert!(text(&o).contains("\"InstanceId\": \"web\""), "{}", text(&o));

    // A port that is taken: the reload keeps the old endpoint (and still moves the socket).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port3 = taken.local_addr().unwrap().port();
    let socket3 = root.join("run/three.sock");
    write_cfg(port3, &socket3);
    hup();
    wait("the third socket", || socket3.exists());
    assert!(healthz(port2), "the old endpoint stopped answering");
    let o = cli(&socket3, &["status", "--json"], false);
    assert!(o.status.success(), "{}", text(&o));
}
