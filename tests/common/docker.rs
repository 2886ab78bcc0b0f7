//! Docker's own engine (Debian's `docker.io`) for tests, isolated: `dockerd` with its data,
//! exec root and socket in a temporary directory, no bridge and no iptables rules (containers
//! run with `--network none`), the cgroupfs driver under a per-test cgroup parent, and an image
//! imported from `busybox-static`. Everything is stopped and removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/burstd-bb:1";
const DOCKER: &str = "/usr/bin/docker";

/// Why this host cannot run the Docker tests, if it cannot.
pub fn missing() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if !Path::new("/usr/sbin/dockerd").exists() || !Path::new(DOCKER).exists() {
        return Some("Docker's engine is not installed (apt-get install docker.io)".into());
    }
    super::podman::missing().filter(|r| !r.contains("podman"))
}

pub fn available(test: &str) -> bool {
    match missing() {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI must run the Docker tests, but {r}")
        }
        Some(r) => {
            eprintln!("skipped {test}: {r}");
            false
        }
    }
}

pub struct Docker {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The cgroup parent of its containers (below each v1 root).
    pub parent: String,
    daemon: Option<Child>,
}

impl Docker {
    pub fn start() -> Docker {
        let dir = tempfile::Builder::new()
            .prefix(&format!("burstd-docker-{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let socket = d.join("docker.sock");
        let parent = format!("burstd-docker-{}", std::process::id());
        let daemon = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--default-ulimit",
                "nofile=1024:1024",
                "--default-ulimit",
                "nproc=1024:1024",
                "--cgroup-parent",
                &parent,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dockerd");
        let docker = Docker {
            dir,
            socket,
            parent,
            daemon: Some(daemon),
        };
        let start = Instant::now();
        while !docker.run_cmd(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let img = docker.dir.path().join("img");
        std::fs::create_dir_all(img.join("bin")).expect("image dir");
        std::fs::copy("/bin/busybox", img.join("bin/busybox")).expect("copy busybox");
        std::os::unix::fs::symlink("busybox", img.join("bin/sh")).expect("sh link");
        let tar = docker.dir.path().join("bb.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {out:?}");
        docker.ok(&["import", tar.to_str().expect("utf-8"), IMAGE]);
        docker
    }

    pub fn run_cmd(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_cmd(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker run -d` of a busy loop with `extra` flags; returns the id.
    pub fn run_busy(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "/bin/sh", "-c", "while :; do :; done"]);
        self.ok(&args)
    }

    /// The container's cgroup relative to the v1 roots, from its process.
    pub fn cgroup(&self, name: &str) -> String {
        let pid = self.ok(&["inspect", "-f", "{{.State.Pid}}", name]);
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
}

impl Drop for Docker {
    fn drop(&mut self) {
        let ids = self.run_cmd(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run_cmd(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("data"))
            .stderr(Stdio::null())
            .status();
        // dockerd made its cgroup parent in every v1 hierarchy.
        if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
            for root in roots.flatten() {
                let _ = std::fs::remove_dir(root.path().join(&self.parent));
            }
        }
    }
}
