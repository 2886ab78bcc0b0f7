//! Real Podman on this host's cgroup v1 for tests: its own `--root`, `--runroot` and
//! `--tmpdir` in a temporary directory, `runc` and the cgroupfs manager (Podman's `crun`
//! refuses a hybrid host), an image imported from Debian's `busybox-static` (no registry), no
//! network, and `podman system service` for the Docker-compatible API socket. Everything is
//! removed on drop, also when the test fails: containers, the service, `podman system reset`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/burstd-bb:1";
const BUSYBOX: &str = "/bin/busybox";

/// Why this host cannot run the Podman tests, if it cannot.
pub fn missing() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".into());
    }
    for tool in ["podman", "runc"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "{tool} is not installed (apt-get install podman runc busybox-static uidmap)"
            ));
        }
    }
    let static_busybox = std::fs::read(BUSYBOX).is_ok()
        && Command::new("ldd")
            .arg(BUSYBOX)
            .output()
            .map(|o| {
                // glibc's ldd says it on stderr.
                let all = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&all).contains("not a dynamic")
            })
            .unwrap_or(true);
    if !static_busybox {
        return Some(format!(
            "{BUSYBOX} is not busybox-static (apt-get install busybox-static)"
        ));
    }
    if !Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
        return Some("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu".into());
    }
    None
}

/// Whether the Podman tests can run here; outside CI a missing piece skips with a printed
/// reason, in CI it fails the test.
pub fn available(test: &str) -> bool {
    match missing() {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI must run the Podman tests, but {r}")
        }
        Some(r) => {
            eprintln!("skipped {test}: {r}");
            false
        }
    }
}

pub struct Podman {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    service: Option<Child>,
}

impl Podman {
    /// A private Podman with the image imported. The API service is started by
    /// [`Podman::start_service`].
    pub fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix(&format!("burstd-podman-{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("podman.sock");
        let p = Podman {
            dir,
            socket,
            service: None,
        };
        let img = p.dir.path().join("img");
        std::fs::create_dir_all(img.join("bin")).expect("image dir");
        std::fs::copy(BUSYBOX, img.join("bin/busybox")).expect("copy busybox");
        std::os::unix::fs::symlink("busybox", img.join("bin/sh")).expect("sh link");
        let tar = p.dir.path().join("bb.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {out:?}");
        p.ok(&["import", tar.to_str().expect("utf-8 path"), IMAGE]);
        p
    }

    /// `podman` with this instance's global flags.
    pub fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .stdin(Stdio::null());
        c
    }

    pub fn run_cmd(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podman")
    }

    /// Runs podman and returns its trimmed stdout; panics with its stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_cmd(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `podman system service` on [`Podman::socket`] and waits for the socket.
    pub fn start_service(&mut self) {
        let child = self
            .cmd()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        self.service = Some(child);
        let start = Instant::now();
        while !self.socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "podman system service made no socket within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_service(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// `podman run -d` of `sh -c <script>` with the flags this host needs and `extra`
    /// (labels, --cpus); returns the container id.
    pub fn run(&self, name: &str, extra: &[&str], script: &str) -> String {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "/bin/sh", "-c", script]);
        self.ok(&args)
    }

    /// A busy loop in a container.
    pub fn run_busy(&self, name: &str, extra: &[&str]) -> String {
        self.run(name, extra, "while :; do :; done")
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.ok(&["inspect", "-f", "{{.State.Pid}}", name])
            .parse()
            .expect("pid")
    }

    /// The container's cgroup relative to the v1 roots, from its process.
    pub fn cgroup(&self, name: &str) -> String {
        let pid = self.pid(name);
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
        text.lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
                ctl.split(',')
                    .any(|c| c == "cpu")
                    .then(|| path.trim_start_matches('/').to_string())
            })
            .expect("cpu line")
    }

    pub fn stop(&self, name: &str) {
        self.ok(&["stop", "-t", "0", name]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run_cmd(&["rm", "-a", "-f", "-t", "0"]);
        self.stop_service();
        let _ = self.run_cmd(&["system", "reset", "-f"]);
        // Container storage can hold read-only or busy mounts; the temp dir is removed anyway.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root"))
            .stderr(Stdio::null())
            .status();
    }
}

/// Reads a v1 counter of the container's cgroup.
pub fn cgroup_u64(controller: &str, rel: &str, file: &str) -> u64 {
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(rel)
            .join(file),
    )
    .expect("read cgroup file")
    .trim()
    .parse()
    .expect("number")
}
