//! API tests: the real loop on the in-memory kernel, the API served on a socket in a tempdir,
//! requests through the CLI's client; non-admin callers through the loop's handle (the
//! process runs as root, so every socket peer here is an admin; tests/api_cli.rs has a real
//! other-uid test). All on tokio's paused clock: the loop's waits and the tests' sleeps are
//! virtual time, so a 5 s rescan costs nothing.

use super::actions::{Call, Engine};
use super::client::call;
use super::errors::Answer;
use super::types::*;
use super::*;
use crate::agent::fake::Fake;
use crate::agent::persist::Sections;
use crate::agent::{state, Agent};
use crate::credit::Mode;
use crate::daemon::event_loop::{channels, Control};
use crate::testkit;
use serde_json::{json, Value};
use std::path::PathBuf;

const CONF: &str = r#"time_scale = 60.0
[[workload]]
name = "web"
cgroup = "web"
profile = "t3.micro"
[[workload]]
name = "batch"
cgroup = "batch"
profile = "t2.micro"
[[workload]]
name = "azure"
cgroup = "azure"
profile = "B1s"
[[workload]]
name = "pinned"
cgroup = "pinned"
profile = "t3.micro"
mode = "unlimited"
[[workload]]
name = "later"
cgroup = "later"
profile = "t3.micro"
[[workload]]
name = "pods"
match = "pods/*"
profile = "t3.nano"
"#;

struct Rig {
    dir: tempfile::TempDir,
    socket: PathBuf,
    fake: Fake,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/api.sock");
        let fake = testkit::fake();
        for (g, demand) in [("web", 2000), ("batch", 500), ("azure", 0), ("pinned", 0)] {
            fake.add(g, demand);
        }
        for i in 0..12 {
            fake.add(&format!("pods/p{i:02}"), 0);
        }
        Rig { dir, socket, fake }
    }

    /// The agent as a restart makes it, with the state file's other sections (the API's).
    fn agent(&self) -> (Agent, Sections) {
        let mut a = testkit::agent(&self.config(), &self.fake);
        let sections = match state::load(self.dir.path()).unwrap() {
            Some(s) => a.restore(s),
            None => Sections::new(),
        };
        (a, sections)
    }

    fn config(&self) -> crate::config::Config {
        testkit::cfg(CONF, self.dir.path())
    }

    /// Runs the loop with the API served until `body` finishes.
    async fn run<F: std::future::Future<Output = ()>>(
        &self,
        (agent, sections): (Agent, Sections),
        body: impl FnOnce(Asker<ApiQuery>) -> F,
    ) {
        let (handles, inbox) = channels();
        let listener = bind(&self.socket, None, &GroupDb::default()).unwrap();
        let server = tokio::spawn(serve(listener, Access::default(), handles.api.clone(), 64));
        let driver = async {
            body(handles.api.clone()).await;
            handles.control.send(Control::Shutdown).await.unwrap();
        };
        tokio::join!(testkit::run_with(agent, sections, inbox), driver);
        server.abort();
        // Wait until the listener is really closed.
        let _ = server.await;
    }

    async fn post(&self, action: Action, body: Value) -> (u16, Value) {
        call(&self.socket, action, &body).await.unwrap()
    }

    fn saved_mode(&self, name: &str) -> Mode {
        state::load(self.dir.path()).unwrap().unwrap().workloads[name]
            .bucket
            .mode
    }
}

fn code_of(v: &Value) -> &str {
    v["Error"]["Code"].as_str().unwrap_or("")
}

/// A request through the loop's handle, as a caller who is not an admin.
async fn as_reader(agent: &Asker<ApiQuery>, request: Request) -> Answer {
    let call = Call {
        admin: false,
        request,
    };
    agent.ask(|reply| ApiQuery { call, reply }).await.unwrap()
}

fn modify(specs: &[(&str, &str)], token: Option<&str>, dry_run: bool) -> Value {
    let specs: Vec<Value> = specs
        .iter()
        .map(|(i, c)| json!({"InstanceId": i, "CpuCredits": c}))
        .collect();
    let mut v = json!({"InstanceCreditSpecifications": specs});
    if let Some(t) = token {
        v["ClientToken"] = json!(t);
    }
    if dry_run {
        v["DryRun"] = json!(true);
    }
    v
}

#[tokio::test(start_paused = true)]
async fn modify_switches_now_charges_surplus_and_saves_before_answering() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        // web: t3.micro unlimited (family default) at 2 cores builds surplus quickly.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "standard"), ("batch", "unlimited")], None, false),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["SuccessfulInstanceCreditSpecifications"],
            json!([{"InstanceId": "web"}, {"InstanceId": "batch"}])
        );
        assert_eq!(v["UnsuccessfulInstanceCreditSpecifications"], json!([]));
        // Saved before the answer: the state file already has it.
        let s = state::load(rig.dir.path()).unwrap().unwrap();
        let web = &s.workloads["web"].bucket;
        assert_eq!(web.mode, Mode::Standard);
        assert!(web.surplus.is_zero() && web.totals.charged.is_positive(), "{web:?}");
        let batch = &s.workloads["batch"].bucket;
        assert_eq!(batch.mode, Mode::Unlimited);
        assert!(batch.launch.is_zero() && batch.totals.launch_removed.is_positive());
        let (_, d) = rig
            .post(Action::DescribeInstanceCreditSpecifications, json!({"InstanceIds": ["web", "batch"]}))
            .await;
        assert_eq!(
            d["InstanceCreditSpecifications"],
            json!([{"InstanceId": "web", "CpuCredits": "standard"}, {"InstanceId": "batch", "CpuCredits": "unlimited"}])
        );
    })
    .await;
    // Survives a restart, and a reload with an unchanged config does not undo it.
    let (mut a, _) = rig.agent();
    a.rescan(0, 0);
    let c = rig.config();
    a.reconfigure(c.agent.clone(), c.workloads.clone(), 0, 0);
    assert_eq!(a.get("web").unwrap().bucket.mode, Mode::Standard);
    assert_eq!(a.get("batch").unwrap().bucket.mode, Mode::Unlimited);
}

#[tokio::test(start_paused = true)]
async fn per_workload_failures_do_not_stop_the_batch() {
    let rig = Rig::new();
    // "later" saved once, then its cgroup is gone at the next start: stopped while burstd was
    // away, and a stopped workload can be switched (as on EC2).
    rig.fake.add("later", 0);
    {
        let (mut a, sections) = rig.agent();
        a.rescan(0, 0);
        state::save(rig.dir.path(), &a.snapshot(0, &sections)).unwrap();
    }
    rig.fake.remove_group("later");
    rig.run(rig.agent(), |_tx| async {
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(
                    &[
                        ("bad id!", "standard"),
                        ("ghost", "standard"),
                        ("azure", "unlimited"),
                        ("later", "standard"),
                        ("pinned", "standard"),
                    ],
                    None,
                    false,
                ),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["SuccessfulInstanceCreditSpecifications"],
            json!([{"InstanceId": "later"}, {"InstanceId": "pinned"}])
        );
        let codes: Vec<(&str, &str)> = v["UnsuccessfulInstanceCreditSpecifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["InstanceId"].as_str().unwrap(), code_of(u)))
            .collect();
        assert_eq!(
            codes,
            [
                ("bad id!", "InvalidInstanceID.Malformed"),
                ("ghost", "InvalidInstanceID.NotFound"),
                ("azure", "InstanceCreditSpecification.NotSupported"),
            ]
        );
        assert_eq!(rig.saved_mode("pinned"), Mode::Standard);
        // A CpuCredits value outside the enum fails the whole request.
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "turbo")], None, false),
            )
            .await;
        assert_eq!((st, code_of(&v)), (400, "InvalidParameterValue"), "{v}");
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[], None, false),
            )
            .await;
        assert_eq!((st, code_of(&v)), (400, "MissingParameter"), "{v}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dry_run_and_authorization() {
    let rig = Rig::new();
    let r = &rig;
    rig.run(rig.agent(), |tx| async move {
        let rig = r;
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "standard")], None, true),
            )
            .await;
        assert_eq!((st, code_of(&v)), (412, "DryRunOperation"), "{v}");
        let (st, v) = rig
            .post(
                Action::ModifyDefaultCreditSpecification,
                json!({"DryRun": true, "InstanceFamily": "t3", "CpuCredits": "standard"}),
            )
            .await;
        assert_eq!((st, code_of(&v)), (412, "DryRunOperation"), "{v}");
        let req = |dry| {
            Request::ModifyInstanceCreditSpecification(ModifyInstanceCreditSpecificationRequest {
                dry_run: dry,
                client_token: None,
                instance_credit_specifications: vec![InstanceCreditSpecificationRequest {
                    instance_id: "web".into(),
                    cpu_credits: "standard".into(),
                }],
            })
        };
        for dry in [true, false] {
            let a = as_reader(&tx, req(dry)).await;
            assert_eq!(
                (a.status, a.code()),
                (403, Some("UnauthorizedOperation")),
                "{a:?}"
            );
        }
        let a = as_reader(
            &tx,
            Request::ModifyDefaultCreditSpecification(ModifyDefaultCreditSpecificationRequest {
                dry_run: false,
                instance_family: "t3".into(),
                cpu_credits: "standard".into(),
            }),
        )
        .await;
        assert_eq!(a.code(), Some("UnauthorizedOperation"));
        // Readers may read.
        let a = as_reader(
            &tx,
            Request::DescribeInstanceCreditSpecifications(Default::default()),
        )
        .await;
        assert_eq!(a.status, 200);
        let a = as_reader(&tx, Request::DescribeCreditBalances(Default::default())).await;
        assert_eq!(a.status, 200);
        // Nothing changed.
        assert_eq!(rig.saved_mode("web"), Mode::Unlimited);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn client_token_is_idempotent_across_restarts() {
    let rig = Rig::new();
    let first = std::sync::Mutex::new(Value::Null);
    rig.run(rig.agent(), |_tx| async {
        let m = modify(&[("web", "standard")], Some("tok-1"), false);
        let (st, a) = rig
            .post(Action::ModifyInstanceCreditSpecification, m.clone())
            .await;
        assert_eq!(st, 200);
        // Switched back by someone else; repeating tok-1 must not act again.
        let (st, _) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "unlimited")], None, false),
            )
            .await;
        assert_eq!(st, 200);
        let (st, b) = rig.post(Action::ModifyInstanceCreditSpecification, m).await;
        assert_eq!((st, &b), (200, &a));
        assert_eq!(rig.saved_mode("web"), Mode::Unlimited);
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("batch", "standard")], Some("tok-1"), false),
            )
            .await;
        assert_eq!(
            (st, code_of(&v)),
            (400, "IdempotentParameterMismatch"),
            "{v}"
        );
        let long = "x".repeat(65);
        let (st, v) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "standard")], Some(&long), false),
            )
            .await;
        assert_eq!((st, code_of(&v)), (400, "InvalidParameterValue"), "{v}");
        *first.lock().unwrap() = a;
    })
    .await;
    // A new agent from the state file remembers the token.
    rig.run(rig.agent(), |_tx| async {
        let (st, b) = rig
            .post(
                Action::ModifyInstanceCreditSpecification,
                modify(&[("web", "standard")], Some("tok-1"), false),
            )
            .await;
        assert_eq!((st, &b), (200, &*first.lock().unwrap()));
        assert_eq!(rig.saved_mode("web"), Mode::Unlimited, "not acted again");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn describe_paginates_and_checks_its_parameters() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut req = json!({"MaxResults": 5});
            if let Some(t) = &token {
                req["NextToken"] = json!(t);
            }
            let (st, v) = rig
                .post(Action::DescribeInstanceCreditSpecifications, req)
                .await;
            assert_eq!(st, 200, "{v}");
            let items = v["InstanceCreditSpecifications"].as_array().unwrap();
            assert!(items.len() <= 5);
            names.extend(
                items
                    .iter()
                    .map(|i| i["InstanceId"].as_str().unwrap().to_string()),
            );
            pages += 1;
            match v["NextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        // 6 configured (pods as 12 matches) = 5 + 12 known names, "later" included (never seen).
        assert_eq!(names.len(), 17, "{names:?}");
        assert_eq!(pages, 4);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let (_, all) = rig
            .post(Action::DescribeInstanceCreditSpecifications, json!({}))
            .await;
        assert_eq!(
            all["InstanceCreditSpecifications"]
                .as_array()
                .unwrap()
                .len(),
            17
        );
        assert!(all.get("NextToken").is_none());
        for (body, status, code) in [
            (
                json!({"InstanceIds": ["web"], "MaxResults": 5}),
                400,
                "InvalidParameterCombination",
            ),
            (json!({"MaxResults": 4}), 400, "InvalidParameterValue"),
            (json!({"MaxResults": 1001}), 400, "InvalidParameterValue"),
            (
                json!({"InstanceIds": ["ghost"]}),
                400,
                "InvalidInstanceID.NotFound",
            ),
            (
                json!({"InstanceIds": ["no spaces"]}),
                400,
                "InvalidInstanceID.Malformed",
            ),
            (json!({"NextToken": "zz"}), 400, "InvalidPaginationToken"),
            (
                json!({"InstanceIds": vec!["web"; 1001]}),
                400,
                "InvalidParameterValue",
            ),
        ] {
            let (st, v) = rig
                .post(Action::DescribeInstanceCreditSpecifications, body.clone())
                .await;
            assert_eq!((st, code_of(&v)), (status, code), "{body}: {v}");
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn family_default_applies_to_new_workloads_without_a_mode() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        let (st, v) = rig.post(Action::GetDefaultCreditSpecification, json!({"InstanceFamily": "t3"})).await;
        assert_eq!(st, 200);
        assert_eq!(v, json!({"InstanceFamilyCreditSpecification": {"InstanceFamily": "t3", "CpuCredits": "unlimited"}}));
        let (st, v) = rig
            .post(Action::ModifyDefaultCreditSpecification, json!({"InstanceFamily": "t3", "CpuCredits": "standard"}))
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["InstanceFamilyCreditSpecification"]["CpuCredits"], "standard");
        let (_, v) = rig.post(Action::GetDefaultCreditSpecification, json!({"InstanceFamily": "t3"})).await;
        assert_eq!(v["InstanceFamilyCreditSpecification"]["CpuCredits"], "standard");
        // t3.nano pods without a mode: a new one starts standard; existing ones keep theirs.
        rig.fake.add("pods/new", 0);
        tokio::time::sleep(Duration::from_millis(5200)).await; // rescan_interval_s = 5
        let (_, d) = rig
            .post(Action::DescribeInstanceCreditSpecifications, json!({"InstanceIds": ["pods/new", "pods/p00"]}))
            .await;
        assert_eq!(
            d["InstanceCreditSpecifications"],
            json!([{"InstanceId": "pods/new", "CpuCredits": "standard"}, {"InstanceId": "pods/p00", "CpuCredits": "unlimited"}])
        );
        let (st, v) = rig
            .post(Action::ModifyDefaultCreditSpecification, json!({"InstanceFamily": "t3", "CpuCredits": "unlimited"}))
            .await;
        assert_eq!((st, code_of(&v)), (429, "RateLimitExceeded"), "{v}");
        let (st, v) = rig
            .post(Action::ModifyDefaultCreditSpecification, json!({"InstanceFamily": "m5", "CpuCredits": "unlimited"}))
            .await;
        assert_eq!((st, code_of(&v)), (400, "InvalidParameterValue"), "{v}");
    })
    .await;
    // Remembered across a restart.
    let (mut a, sections) = rig.agent();
    let e = Engine::load(&sections, &mut a);
    assert_eq!(e.default_for(crate::credit::Family::T3), Mode::Standard);
}

#[test]
fn default_changes_are_limited_per_5_minutes_and_4_per_day() {
    let rig = Rig::new();
    let (mut a, sections) = rig.agent();
    let mut e = Engine::load(&sections, &mut a);
    let mut set = |a: &mut Agent, wall: u64, mode: &str| {
        let call = Call {
            admin: true,
            request: Request::ModifyDefaultCreditSpecification(
                ModifyDefaultCreditSpecificationRequest {
                    dry_run: false,
                    instance_family: "t2".into(),
                    cpu_credits: mode.into(),
                },
            ),
        };
        e.handle(a, 0, wall, call).0
    };
    let day = 86_400;
    assert_eq!(set(&mut a, day, "unlimited").status, 200);
    assert_eq!(
        set(&mut a, day + 299, "standard").code(),
        Some("RateLimitExceeded")
    );
    // Setting the value it already has is not a change and not limited.
    assert_eq!(set(&mut a, day + 299, "unlimited").status, 200);
    assert_eq!(set(&mut a, day + 300, "standard").status, 200);
    assert_eq!(set(&mut a, day + 600, "unlimited").status, 200);
    assert_eq!(set(&mut a, day + 900, "standard").status, 200);
    let a5 = set(&mut a, day + 1200, "unlimited");
    assert_eq!(a5.code(), Some("RateLimitExceeded"), "{a5:?}");
    assert_eq!(set(&mut a, 2 * day + 1, "unlimited").status, 200);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_400_and_change_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        let raw = |path: &str, method: &str, body: Vec<u8>| {
            let socket = rig.socket.clone();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            async move {
                let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
                s.write_all(head.as_bytes()).await.unwrap();
                // The server may answer (and close) before reading an oversize body.
                let _ = s.write_all(&body).await;
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out).await;
                let text = String::from_utf8_lossy(&out).into_owned();
                let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
                let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                (status, v)
            }
        };
        let m = "/ModifyInstanceCreditSpecification";
        for (body, code) in [
            (&b"{\"InstanceCreditSpecifications\": ["[..], "MalformedJSON"),
            (br#"{"InstanceCreditSpecifications": [], "Extra": 1}"#, "InvalidParameterValue"),
            (br#"{"InstanceCreditSpecifications": [{"InstanceId": "web", "CpuCredits": "standard", "X": 1}]}"#, "InvalidParameterValue"),
            (br#"{"InstanceCreditSpecifications": "web"}"#, "InvalidParameterValue"),
            (br#"{"DryRun": "yes", "InstanceCreditSpecifications": []}"#, "InvalidParameterValue"),
            (br#"{"ClientToken": "t"}"#, "MissingParameter"),
        ] {
            let (st, v) = raw(m, "POST", body.to_vec()).await;
            assert_eq!((st, code_of(&v)), (400, code), "{}: {v}", String::from_utf8_lossy(body));
        }
        let mut big = br#"{"InstanceCreditSpecifications": [], "ClientToken": ""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', 2 << 20));
        big.extend(br#""}"#);
        let (st, v) = raw(m, "POST", big).await;
        assert_eq!((st, code_of(&v)), (413, "RequestTooLarge"), "{v}");
        let (st, v) = raw("/TerminateInstances", "POST", b"{}".to_vec()).await;
        assert_eq!((st, code_of(&v)), (400, "InvalidAction"), "{v}");
        let (st, _) = raw(m, "GET", vec![]).await;
        assert_eq!(st, 405);
        assert_eq!(rig.saved_mode("web"), Mode::Unlimited);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn credit_balances_are_live() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (st, v) = rig
            .post(
                Action::DescribeCreditBalances,
                json!({"InstanceIds": ["web", "batch"]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let b = v["CreditBalances"].as_array().unwrap();
        assert_eq!(b.len(), 2);
        let batch = b.iter().find(|x| x["InstanceId"] == "batch").unwrap();
        assert_eq!(batch["CpuCredits"], "standard");
        assert!(batch["LaunchCredits"].as_f64().unwrap() > 29.0);
        assert_eq!(batch["CeilingCores"], 1.0);
        assert_eq!(batch["BaselineCores"], 0.1);
        assert_eq!(batch["HeldAtBaseline"], false);
        assert!(batch["SecondsUntilExhausted"].as_f64().unwrap() > 0.0);
        let web = b.iter().find(|x| x["InstanceId"] == "web").unwrap();
        assert_eq!(web["CpuCredits"], "unlimited");
        assert!(web["SurplusCreditBalance"].as_f64().unwrap() > 0.0, "{web}");
        assert_eq!(web["SecondsUntilExhausted"], 0.0);
        // Issue 17 item 5: the balance E and the running total have names that say which is
        // which; the old names ride along for one release with the same numbers.
        for w in b {
            let e = w["EarnedCreditBalance"].as_f64().unwrap();
            let total = w["CreditsEarnedTotal"].as_f64().unwrap();
            assert_eq!(w["EarnedCredits"].as_f64(), Some(e), "{w}");
            assert_eq!(w["CreditsEarned"].as_f64(), Some(total), "{w}");
        }
        // batch (t2.micro, earning 6/h): 200 ms at 60× = 12 s of credit time = 0.02 earned.
        let batch_total = batch["CreditsEarnedTotal"].as_f64().unwrap();
        assert!((batch_total - 0.02).abs() < 0.001, "{batch}");
        // Read back into the typed view (what `burstd status` does), new names and old.
        let typed: DescribeCreditBalancesResponse = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(typed.credit_balances.len(), 2);
        let mut old_only = v.clone();
        for w in old_only["CreditBalances"].as_array_mut().unwrap() {
            let o = w.as_object_mut().unwrap();
            o.remove("EarnedCreditBalance");
            o.remove("CreditsEarnedTotal");
        }
        let from_old: DescribeCreditBalancesResponse = serde_json::from_value(old_only).unwrap();
        assert_eq!(from_old, typed);
    })
    .await;
}

#[test]
fn socket_is_0660_with_the_configured_group_and_stale_sockets_are_replaced() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let db = GroupDb {
        group_file: dir.path().join("group"),
        passwd_file: dir.path().join("passwd"),
    };
    std::fs::write(&db.group_file, "burstd:x:4321:\n").unwrap();
    let path = dir.path().join("sub/api.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let is_root = rustix::process::geteuid().is_root();
        let l = bind(&path, is_root.then_some("burstd"), &db).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        if is_root {
            assert_eq!(meta.gid(), 4321);
        }
        assert!(matches!(
            bind(&path, None, &db),
            Err(SocketError::InUse { .. })
        ));
        drop(l);
        // Left behind by a crash: replaced.
        bind(&path, None, &db).unwrap();
        let e = bind(&dir.path().join("x.sock"), Some("nope"), &db)
            .unwrap_err()
            .to_string();
        assert!(e.contains("group \"nope\" is not in"), "{e}");
    });
    let e = rt
        .block_on(call(
            &dir.path().join("none.sock"),
            Action::DescribeCreditBalances,
            &json!({}),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no socket at") && e.contains("not running"),
        "{e}"
    );
}

fn modify_call(specs: &[(String, &str)], token: &str) -> Call {
    let specs: Vec<(&str, &str)> = specs.iter().map(|(i, m)| (i.as_str(), *m)).collect();
    let body = serde_json::to_vec(&modify(&specs, Some(token), false)).unwrap();
    Call {
        admin: true,
        request: parse_request(Action::ModifyInstanceCreditSpecification, &body).unwrap(),
    }
}

/// Issue 13 item 4: a client token keeps a digest of its request and only the failed items of
/// its answer (each one used to keep the whole answer: 0.59 MB at 1,000 ids), and gives back
/// the same answer from that, also after a restart.
#[test]
fn a_client_token_keeps_a_digest_and_the_failures_only() {
    let rig = Rig::new();
    let (mut agent, sections) = rig.agent();
    agent.rescan(0, 0);
    let mut engine = Engine::load(&sections, &mut agent);
    let mut specs: Vec<(String, &str)> = (0..12)
        .map(|i| (format!("pods/p{i:02}"), "standard"))
        .collect();
    specs.insert(5, ("i-nope".into(), "standard"));
    let (a, changed) = engine.handle(&mut agent, 0, 1000, modify_call(&specs, "t-1"));
    assert!(changed);
    let ok = a.body["SuccessfulInstanceCreditSpecifications"]
        .as_array()
        .unwrap();
    let failed = a.body["UnsuccessfulInstanceCreditSpecifications"]
        .as_array()
        .unwrap();
    assert_eq!((ok.len(), failed.len()), (12, 1), "{}", a.body);
    assert_eq!(ok[5]["InstanceId"], "pods/p05");
    assert_eq!(failed[0]["InstanceId"], "i-nope");
    let mut stored = Sections::new();
    engine.store(&mut stored);
    let text = serde_json::to_string(&stored["api"]).unwrap();
    assert!(!text.contains("pods/p"), "the request is not kept: {text}");
    assert!(text.len() < 400, "{} bytes: {text}", text.len());
    // After a restart: the same answer, nothing done again; other parameters: a mismatch.
    let mut again = Engine::load(&stored, &mut agent);
    let (b, changed) = again.handle(&mut agent, 0, 1001, modify_call(&specs, "t-1"));
    assert_eq!((&b.body, changed), (&a.body, false));
    let (c, _) = again.handle(&mut agent, 0, 1002, modify_call(&specs[1..], "t-1"));
    assert_eq!(code_of(&c.body), "IdempotentParameterMismatch");
}

/// A token kept before the digest (request and whole answer) still answers the same.
#[test]
fn a_client_token_from_an_older_state_file_still_answers() {
    let rig = Rig::new();
    let (mut agent, _) = rig.agent();
    agent.rescan(0, 0);
    let specs = vec![
        ("web".to_string(), "standard"),
        ("i-nope".to_string(), "standard"),
    ];
    // What 0.1 kept: the request's specifications as serialized, and the whole answer.
    let params = serde_json::to_string(
        &specs
            .iter()
            .map(|(id, m)| InstanceCreditSpecificationRequest {
                instance_id: id.clone(),
                cpu_credits: m.to_string(),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let answer = json!({
        "SuccessfulInstanceCreditSpecifications": [{"InstanceId": "web"}],
        "UnsuccessfulInstanceCreditSpecifications": [{"InstanceId": "i-nope",
            "Error": {"Code": "InvalidInstanceID.NotFound", "Message": "gone"}}]
    });
    let mut sections = Sections::new();
    sections.insert(
        "api".into(),
        json!({"tokens": {"old": {"params": params, "answer_status": 200,
            "answer": answer, "at_unix_s": 1000}}}),
    );
    let mut engine = Engine::load(&sections, &mut agent);
    let (a, changed) = engine.handle(&mut agent, 0, 1001, modify_call(&specs, "old"));
    assert_eq!((a.body, changed), (answer, false));
}

/// The token store is bounded by bytes as well as by count: 40 requests of 1,000 failing ids
/// (about 170 KB of failures each) keep the newest within MAX_TOKEN_BYTES; a forgotten token
/// can be used again.
#[test]
fn the_client_token_store_is_bounded_by_bytes() {
    let rig = Rig::new();
    let (mut agent, sections) = rig.agent();
    let mut engine = Engine::load(&sections, &mut agent);
    for k in 0..40u64 {
        let specs: Vec<(String, &str)> = (0..1000)
            .map(|i| (format!("i-{k}-{i:04}"), "standard"))
            .collect();
        engine.handle(
            &mut agent,
            0,
            1000 + k,
            modify_call(&specs, &format!("t-{k}")),
        );
        let (_, bytes) = engine.tokens_held();
        assert!(bytes <= actions::MAX_TOKEN_BYTES, "{bytes} bytes after {k}");
    }
    let (n, _) = engine.tokens_held();
    assert!((10..40).contains(&n), "{n} tokens kept");
    // The newest is kept; the oldest is forgotten, so its reuse is a new request.
    let newest: Vec<(String, &str)> = (0..1000)
        .map(|i| (format!("i-39-{i:04}"), "standard"))
        .collect();
    let (_, changed) = engine.handle(&mut agent, 0, 2000, modify_call(&newest, "t-39"));
    assert!(!changed);
    let (a, changed) = engine.handle(&mut agent, 0, 2001, modify_call(&newest, "t-0"));
    assert!(changed, "{}", a.body);
}

/// Sends `head` then `body` over the socket, optionally half-closes, and reads the answer to
/// EOF: (status, JSON).
async fn exchange(socket: &Path, head: &str, body: &[u8], half_close: bool) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// Issue 13 item 3: a request followed by `shutdown(SHUT_WR)` gets its answer.
#[tokio::test(start_paused = true)]
async fn a_request_then_half_close_is_answered() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        let body = br#"{"InstanceIds": ["web"]}"#;
        let head = format!(
            "POST /DescribeCreditBalances HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (st, v) = exchange(&rig.socket, &head, body, true).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["CreditBalances"][0]["InstanceId"], "web", "{v}");
    })
    .await;
}

/// Issue 13 item 2: a declared length over `MAX_BODY` is refused (413) before any of the body
/// is sent; a body over it without a declared length is refused once it passes it; a body
/// that stops arriving is answered 408 after `BODY_TIMEOUT` and the connection closed.
#[tokio::test(start_paused = true)]
async fn oversize_and_trickled_bodies_are_refused() {
    let rig = Rig::new();
    rig.run(rig.agent(), |_tx| async {
        let m = "/ModifyInstanceCreditSpecification";
        let head = format!(
            "POST {m} HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let (st, v) = exchange(&rig.socket, &head, b"", false).await;
        assert_eq!((st, code_of(&v)), (413, "RequestTooLarge"), "{v}");
        // Chunked, 64 KiB chunks, one past the limit.
        let head = format!("POST {m} HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut body = Vec::new();
        for _ in 0..=(MAX_BODY / 65536) {
            body.extend(format!("{:x}\r\n", 65536).as_bytes());
            body.extend(std::iter::repeat_n(b' ', 65536));
            body.extend(b"\r\n");
        }
        let (st, v) = exchange(&rig.socket, &head, &body, false).await;
        assert_eq!((st, code_of(&v)), (413, "RequestTooLarge"), "{v}");
        // 1,000 bytes declared, 10 sent, then nothing.
        let t = tokio::time::Instant::now();
        let head = format!("POST {m} HTTP/1.1\r\nHost: b\r\nContent-Length: 1000\r\n\r\n");
        let (st, v) = exchange(&rig.socket, &head, b"{\"Instance", false).await;
        assert_eq!((st, code_of(&v)), (408, "RequestTimeout"), "{v}");
        assert!(t.elapsed() >= http::BODY_TIMEOUT, "{:?}", t.elapsed());
        assert_eq!(rig.saved_mode("web"), Mode::Unlimited);
    })
    .await;
}

/// A body of tiny frames, each cut from its own 4 KiB buffer (as hyper hands out a trickled
/// body): counts the buffers alive.
struct Trickle {
    left: usize,
    alive: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most_alive: usize,
}

struct Tracked(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.0[..1]
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl hyper::body::Body for Trickle {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        let alive = self.alive.fetch_add(1, SeqCst) + 1;
        self.most_alive = self.most_alive.max(alive);
        let owner = Tracked(vec![b' '; 4096], self.alive.clone());
        let frame = hyper::body::Frame::data(hyper::body::Bytes::from_owner(owner));
        std::task::Poll::Ready(Some(Ok(frame)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left as u64)
    }
}

/// Issue 13 item 2: a body cut into 1-byte frames holds its bytes, not one buffer per frame
/// (collecting the frames kept every 4 KiB buffer: ~4 KB per byte received).
#[tokio::test]
async fn a_body_of_tiny_frames_holds_its_bytes_not_its_frames() {
    let alive = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut body = Trickle {
        left: 1000,
        alive: alive.clone(),
        most_alive: 0,
    };
    let got = read_body(&mut body, MAX_BODY, http::BODY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got.len(), 1000);
    // Bounded by the declared length.
    assert!(got.capacity() <= 1000, "{}", got.capacity());
    // Each frame's buffer is freed before the next is made.
    assert_eq!(body.most_alive, 1);
    assert_eq!(alive.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Issue 13 items 1-2: the API socket serves at most `max_connections` at once; one more is
/// answered 503 with an EC2-shaped error and closed, before anything is read from it.
#[tokio::test]
async fn api_connections_over_the_cap_are_answered_503() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let (handles, _inbox) = channels();
    let listener = bind(&socket, None, &GroupDb::default()).unwrap();
    let server = tokio::spawn(serve(listener, Access::default(), handles.api.clone(), 1));
    let _held = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    let v: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(code_of(&v), "InternalError", "{v}");
    assert!(v["Error"]["Message"]
        .as_str()
        .unwrap()
        .contains("too many connections"));
    server.abort();
}
