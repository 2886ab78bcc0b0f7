//! The EC2 Query endpoint with the real clients (issue 18): aws-cli and boto3, unmodified, from
//! a Python virtualenv, against `burstd daemon` on real cgroup v1 test cgroups.
//!
//! The virtualenv is `$BURSTD_EC2_VENV` if set (`.ci/run` sets it to a cached one), else
//! `target/pyvenv-ec2`, created here with `python3 -m venv` and `pip install awscli boto3`
//! (pip's configured index) when missing. If it cannot be made the test is skipped with the
//! reason (in CI, where `.ci/run` makes it, it fails); it is also skipped without root or cgroup v1 (outside CI).

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const ADMIN: (&str, &str) = ("AKIDBURSTDADMIN", "admin-secret-1");
const READER: (&str, &str) = ("AKIDBURSTDREAD", "reader-secret-2");
const PAGE_WORKLOADS: usize = 6;

fn venv() -> Result<PathBuf, String> {
    let dir = std::env::var_os("BURSTD_EC2_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv-ec2"));
    let ready = |d: &Path| {
        d.join("bin/aws").exists()
            && Command::new(d.join("bin/python"))
                .args(["-c", "import boto3"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    if ready(&dir) {
        return Ok(dir);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&made.stderr)
        ));
    }
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "-q", "awscli", "boto3"])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() || !ready(&dir) {
        return Err(format!(
            "pip install awscli boto3 failed: {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    Ok(dir)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Env {
    venv: PathBuf,
    home: PathBuf,
    url: String,
}

impl Env {
    fn clean(&self, c: &mut Command, key: (&str, &str)) {
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.join("none"))
            .env("ENDPOINT", &self.url);
    }

    /// `aws ec2 ARGS --endpoint-url … --region us-east-1 --output json`.
    fn aws(&self, key: (&str, &str), args: &[&str]) -> Output {
        let mut c = Command::new(self.venv.join("bin/aws"));
        c.arg("ec2")
            .args(args)
            .args(["--endpoint-url", &self.url, "--region", "us-east-1"])
            .args(["--output", "json"]);
        self.clean(&mut c, key);
        c.output().expect("run aws")
    }

    fn python(&self, key: (&str, &str), script: &str) -> Output {
        let mut c = Command::new(self.venv.join("bin/python"));
        c.args(["-c", script]);
        self.clean(&mut c, key);
        c.output().expect("run python")
    }
}

fn ok_json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON from aws")
}

/// The error an aws/python run failed with (its stderr), asserting it failed.
fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config(dir: &Path, port: u16, std_g: &str, others: &[TestGroup], secret_file: &Path) -> String {
    let mut s = format!(
        r#"[agent]
cgroup_root = "/sys/fs/cgroup"
state_dir = {dir:?}
time_scale = 60.0
save_interval_s = 0.2
max_interval_ms = 100

[metrics]
listen = ""

[api]
socket = ""

[ec2_api]
listen = "127.0.0.1:{port}"

[[ec2_api.credentials]]
access_key = "{ak}"
secret = "{sk}"
role = "admin"

[[ec2_api.credentials]]
access_key = "{rk}"
secret_file = {sf:?}
role = "read"

[[workload]]
name = "std"
cgroup = "{std_g}"
profile = "tiny"
mode = "standard"
initial_credits = 1

[profiles.tiny]
vcpus = 1
credits_per_hour = 6
"#,
        dir = dir.display().to_string(),
        ak = ADMIN.0,
        sk = ADMIN.1,
        rk = READER.0,
        sf = secret_file.display().to_string(),
    );
    for (i, g) in others.iter().enumerate() {
        s.push_str(&format!(
            "\n[[workload]]\nname = \"idle{i}\"\ncgroup = \"{}\"\nprofile = \"tiny\"\nmode = \"standard\"\n",
            g.rel
        ));
    }
    s
}

#[test]
fn aws_cli_and_boto3_drive_burstd_unmodified() {
    if !real_kernel_available("aws_cli_and_boto3_drive_burstd_unmodified") {
        return;
    }
    let venv = match venv() {
        Ok(v) => v,
        Err(why) => {
            // .ci/run makes the venv: in CI these tests must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "aws_cli_and_boto3_drive_burstd_unmodified: CI must run it, but {why}"
            );
            eprintln!("skipped aws_cli_and_boto3_drive_burstd_unmodified: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let secret_file = dir.path().join("reader.key");
    fs::write(&secret_file, format!("{}\n", READER.1)).unwrap();
    fs::set_permissions(&secret_file, fs::Permissions::from_mode(0o600)).unwrap();
    let mut std_g = TestGroup::new("ec2q");
    std_g.burn();
    let others: Vec<TestGroup> = (0..PAGE_WORKLOADS)
        .map(|i| TestGroup::new(&format!("ec2q-idle{i}")))
        .collect();
    let port = free_port();
    let cfg = dir.path().join("burstd.toml");
    fs::write(
        &cfg,
        config(dir.path(), port, &std_g.rel, &others, &secret_file),
    )
    .unwrap();
    let _daemon = Reaped(
        Command::new(env!("CARGO_BIN_EXE_burstd"))
            .args(["daemon", "--config"])
            .arg(&cfg)
            .env("BURSTD_LOG", "info")
            .stdin(Stdio::null())
            .spawn()
            .expect("start burstd daemon"),
    );
    let env = Env {
        venv,
        home,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Standard with 1 credit on a busy core: held at the baseline, 10 ms per 100 ms.
    wait_for(Duration::from_secs(20), || {
        (std_g.quota() == 10_000).then_some(())
    })
    .expect("the standard workload was never held at its baseline");

    // Describe, all of them, with the read-only key (its secret from secret_file).
    let v = ok_json(&env.aws(READER, &["describe-instance-credit-specifications"]));
    let items = v["InstanceCreditSpecifications"].as_array().unwrap();
    assert_eq!(items.len(), PAGE_WORKLOADS + 1, "{v}");
    assert!(
        items
            .iter()
            .any(|i| i["InstanceId"] == "std" && i["CpuCredits"] == "standard"),
        "{v}"
    );
    // By id, and by the instance-id filter.
    let v = ok_json(&env.aws(
        READER,
        &[
            "describe-instance-credit-specifications",
            "--instance-ids",
            "std",
            "idle0",
        ],
    ));
    assert_eq!(
        v["InstanceCreditSpecifications"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let v = ok_json(&env.aws(
        READER,
        &[
            "describe-instance-credit-specifications",
            "--filters",
            "Name=instance-id,Values=idle1",
        ],
    ));
    assert_eq!(
        v["InstanceCreditSpecifications"][0]["InstanceId"], "idle1",
        "{v}"
    );

    // --page-size 5 over 7 workloads: the CLI follows nextToken and gets all 7.
    let v = ok_json(&env.aws(
        READER,
        &[
            "describe-instance-credit-specifications",
            "--page-size",
            "5",
        ],
    ));
    assert_eq!(
        v["InstanceCreditSpecifications"].as_array().unwrap().len(),
        PAGE_WORKLOADS + 1,
        "{v}"
    );
    // A boto3 paginator: 2 pages (5 + 2), each with a request id.
    let o = env.python(
        READER,
        r#"
import boto3, os, json
c = boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
pages = list(c.get_paginator("describe_instance_credit_specifications").paginate(PaginationConfig={"PageSize": 5}))
print(json.dumps({"pages": [len(p["InstanceCreditSpecifications"]) for p in pages],
                  "ids": [bool(p["ResponseMetadata"].get("RequestId")) for p in pages]}))
"#,
    );
    let v = ok_json(&o);
    assert_eq!(v["pages"], serde_json::json!([5, 2]), "{v}");
    assert_eq!(v["ids"], serde_json::json!([true, true]), "{v}");

    let modify = |key, credits: &str, token: &str, dry: bool| {
        let spec = format!("InstanceId=std,CpuCredits={credits}");
        let mut args = vec![
            "modify-instance-credit-specification",
            "--instance-credit-specification",
            &spec,
            "--client-token",
            token,
        ];
        if dry {
            args.push("--dry-run");
        }
        env.aws(key, &args)
    };
    // An unknown id fails its item only, parsed by aws from unsuccessfulInstanceCreditSpecificationSet.
    let v = ok_json(&env.aws(
        ADMIN,
        &[
            "modify-instance-credit-specification",
            "--instance-credit-specification",
            "InstanceId=ghost,CpuCredits=standard",
        ],
    ));
    assert_eq!(
        v["SuccessfulInstanceCreditSpecifications"],
        serde_json::json!([]),
        "{v}"
    );
    assert_eq!(
        v["UnsuccessfulInstanceCreditSpecifications"][0]["Error"]["Code"],
        "InvalidInstanceID.NotFound",
        "{v}"
    );
    // A NextToken that is not one of ours: an error, not an empty page.
    let e = failed(&env.aws(
        READER,
        &[
            "describe-instance-credit-specifications",
            "--max-results",
            "5",
            "--next-token",
            "not-a-token",
        ],
    ));
    assert!(e.contains("InvalidPaginationToken"), "{e}");
    // DryRun: DryRunOperation, nothing changes.
    let e = failed(&modify(ADMIN, "unlimited", "dry-1", true));
    assert!(e.contains("DryRunOperation"), "{e}");
    // A read-only key: UnauthorizedOperation.
    let e = failed(&modify(READER, "unlimited", "ro-1", false));
    assert!(e.contains("UnauthorizedOperation"), "{e}");
    // A wrong secret: AuthFailure.
    let e = failed(&env.aws(
        (ADMIN.0, "not-the-secret"),
        &["describe-instance-credit-specifications"],
    ));
    assert!(e.contains("AuthFailure"), "{e}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std_g.quota(),
        10_000,
        "still held after dry run and refusals"
    );

    // The switch to unlimited: the kernel releases the cap (100 ms per 100 ms, its 1 vCPU).
    let v = ok_json(&modify(ADMIN, "unlimited", "tok-1", false));
    assert_eq!(
        v["SuccessfulInstanceCreditSpecifications"],
        serde_json::json!([{"InstanceId": "std"}]),
        "{v}"
    );
    wait_for(Duration::from_secs(5), || {
        (std_g.quota() == 100_000).then_some(())
    })
    .expect("the switch to unlimited through aws did not lift the cap");
    // The same token again: the same answer; with other parameters: a mismatch.
    let again = ok_json(&modify(ADMIN, "unlimited", "tok-1", false));
    assert_eq!(again, v);
    let e = failed(&modify(ADMIN, "standard", "tok-1", false));
    assert!(e.contains("IdempotentParameterMismatch"), "{e}");
    assert_eq!(std_g.quota(), 100_000, "the mismatch changed nothing");
    let v = ok_json(&env.aws(
        READER,
        &[
            "describe-instance-credit-specifications",
            "--instance-ids",
            "std",
        ],
    ));
    assert_eq!(
        v["InstanceCreditSpecifications"][0]["CpuCredits"],
        "unlimited"
    );

    // Family defaults.
    let v = ok_json(&env.aws(
        READER,
        &[
            "get-default-credit-specification",
            "--instance-family",
            "t3",
        ],
    ));
    assert_eq!(
        v["InstanceFamilyCreditSpecification"],
        serde_json::json!({"InstanceFamily": "t3", "CpuCredits": "unlimited"})
    );
    let v = ok_json(&env.aws(
        ADMIN,
        &[
            "modify-default-credit-specification",
            "--instance-family",
            "t2",
            "--cpu-credits",
            "unlimited",
        ],
    ));
    assert_eq!(
        v["InstanceFamilyCreditSpecification"],
        serde_json::json!({"InstanceFamily": "t2", "CpuCredits": "unlimited"})
    );

    // A request signed 20 minutes ago (boto3 with its signing clock set back): RequestExpired.
    let o = env.python(
        ADMIN,
        r#"
import boto3, os, datetime, botocore.auth
real = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda: real() - datetime.timedelta(minutes=20)
c = boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
c.describe_instance_credit_specifications()
"#,
    );
    let e = failed(&o);
    assert!(e.contains("RequestExpired"), "{e}");
}

/// A test CA and a certificate for 127.0.0.1 it signed (openssl 3.x), or None.
fn test_certificate(dir: &Path) -> Option<()> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1"])
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let made = run(&[
        "-subj",
        "/CN=burstd-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && run(&[
        "-subj",
        "/CN=burstd-test",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]);
    made.then(|| {
        fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
    })
}

/// Beyond loopback with TLS: the daemon listens on 0.0.0.0 over HTTPS and aws-cli, trusting
/// the test CA (`AWS_CA_BUNDLE`), reads through it.
#[test]
fn aws_cli_over_https_when_listening_beyond_loopback() {
    if !real_kernel_available("aws_cli_over_https_when_listening_beyond_loopback") {
        return;
    }
    let venv = match venv() {
        Ok(v) => v,
        Err(why) => {
            // .ci/run makes the venv: in CI these tests must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "aws_cli_over_https_when_listening_beyond_loopback: CI must run it, but {why}"
            );
            eprintln!("skipped aws_cli_over_https_when_listening_beyond_loopback: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    if test_certificate(dir.path()).is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "aws_cli_over_https_when_listening_beyond_loopback: CI must run it, but openssl cannot make a test certificate"
        );
        eprintln!("skipped aws_cli_over_https_when_listening_beyond_loopback: openssl cannot make a test certificate");
        return;
    }
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let g = TestGroup::new("ec2tls");
    let port = free_port();
    let cfg = dir.path().join("burstd.toml");
    let d = |n: &str| dir.path().join(n).display().to_string();
    fs::write(
        &cfg,
        format!(
            r#"[agent]
cgroup_root = "/sys/fs/cgroup"
state_dir = {state:?}

[metrics]
listen = ""

[api]
socket = ""

[ec2_api]
listen = "0.0.0.0:{port}"
tls_cert = {cert:?}
tls_key = {key:?}

[[ec2_api.credentials]]
access_key = "{ak}"
secret = "{sk}"
role = "admin"

[[workload]]
name = "web"
cgroup = "{rel}"
profile = "t3.micro"
"#,
            state = d(""),
            cert = d("cert.pem"),
            key = d("key.pem"),
            ak = ADMIN.0,
            sk = ADMIN.1,
            rel = g.rel,
        ),
    )
    .unwrap();
    let _daemon = Reaped(
        Command::new(env!("CARGO_BIN_EXE_burstd"))
            .args(["daemon", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .spawn()
            .expect("start burstd daemon"),
    );
    let env = Env {
        venv,
        home,
        url: format!("https://127.0.0.1:{port}"),
    };
    let describe = || {
        let mut c = Command::new(env.venv.join("bin/aws"));
        c.args(["ec2", "describe-instance-credit-specifications"])
            .args([
                "--endpoint-url",
                &env.url,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ]);
        env.clean(&mut c, ADMIN);
        c.env("AWS_CA_BUNDLE", d("ca.pem"));
        c.output().expect("run aws")
    };
    let v = wait_for(Duration::from_secs(10), || {
        let o = describe();
        o.status.success().then(|| ok_json(&o))
    })
    .expect("aws over HTTPS never answered");
    assert_eq!(
        v["InstanceCreditSpecifications"],
        serde_json::json!([{"InstanceId": "web", "CpuCredits": "unlimited"}])
    );
    // Without trusting the CA, aws refuses the certificate.
    let e = failed(&env.aws(ADMIN, &["describe-instance-credit-specifications"]));
    assert!(e.contains("SSL") || e.contains("certificate"), "{e}");
}
