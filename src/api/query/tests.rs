//! EC2 Query front end: SigV4 against values computed independently (AWS's published example
//! and Python's `hmac`/`hashlib`), each of the eight checks, the form decoder, the XML, and
//! hand-signed requests over TCP to the real loop on the in-memory kernel.

use super::form::{decode, decode_pairs};
use super::sigv4::*;
use super::*;
use crate::api::errors::Answer;
use crate::api::types::*;
use crate::config::Secret;
use crate::daemon::event_loop::{channels, Control};
use crate::testkit;
use proptest::prelude::*;

const AWS_EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[test]
fn signing_key_and_signature_match_awss_published_example() {
    // AWS's SigV4 documentation: the signing key for 20150830/us-east-1/iam.
    let k = signing_key(AWS_EXAMPLE_SECRET, "20150830", "us-east-1", "iam");
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
    // AWS's SigV4 test suite, "get-vanilla".
    let headers = vec![
        ("host".to_string(), "example.amazonaws.com".to_string()),
        ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
    ];
    let r = Received {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    let c = canonical_request(&r, &["host", "x-amz-date"]);
    let sts = string_to_sign(
        "20150830T123600Z",
        "20150830/us-east-1/service/aws4_request",
        &c,
    );
    let key = signing_key(AWS_EXAMPLE_SECRET, "20150830", "us-east-1", "service");
    assert_eq!(
        sign(&key, &sts),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

const BODY: &str =
    "Action=DescribeInstanceCreditSpecifications&Version=2016-11-15&InstanceId.1=web";
/// Computed with Python's hmac/hashlib for secret "s3cr3t", 20261201T120000Z, us-east-1, ec2,
/// signed headers content-type;host;x-amz-date and BODY, as botocore signs.
const SIG: &str = "b009c4af6e46521d1357d6ca71396d22ac0c1af443c3dd04e95c70adf7e8637e";
const AT: &str = "20261201T120000Z";

fn headers(auth: &str, date: &str) -> Vec<(String, String)> {
    vec![
        (
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
        ("host".into(), "127.0.0.1:8788".into()),
        ("x-amz-date".into(), date.into()),
        ("authorization".into(), auth.into()),
    ]
}

fn auth(key: &str, scope: &str, signed: &str, sig: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={sig}")
}

fn check(h: &[(String, String)], body: &str, now: i64) -> Result<String, AuthError> {
    let r = Received {
        method: "POST",
        path: "/",
        query: "",
        headers: h,
        body: body.as_bytes(),
    };
    verify(&r, now, |k| (k == "AKID").then(|| "s3cr3t".to_string()))
}

fn code(r: Result<String, AuthError>) -> (&'static str, u16) {
    match r {
        Ok(_) => ("ok", 200),
        Err(e) => (e.code, e.status),
    }
}

#[test]
fn the_eight_checks() {
    let now = parse_amz_date(AT).unwrap();
    assert_eq!(now, 1_796_126_400, "2026-12-01T12:00:00Z");
    let scope = "20261201/us-east-1/ec2/aws4_request";
    let signed = "content-type;host;x-amz-date";
    let good = headers(&auth("AKID", scope, signed, SIG), AT);
    assert_eq!(check(&good, BODY, now).unwrap(), "AKID");
    // Within ±15 min either way it passes; past it, RequestExpired (400).
    assert_eq!(check(&good, BODY, now + 900).unwrap(), "AKID");
    assert_eq!(check(&good, BODY, now - 900).unwrap(), "AKID");
    assert_eq!(code(check(&good, BODY, now + 901)), ("RequestExpired", 400));
    assert_eq!(
        code(check(&good, BODY, now + 20 * 60)),
        ("RequestExpired", 400)
    );
    // 1. No header; another algorithm.
    let none: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "authorization")
        .cloned()
        .collect();
    assert_eq!(
        code(check(&none, BODY, now)),
        ("MissingAuthenticationToken", 401)
    );
    let v2 = headers(
        &auth("AKID", scope, signed, SIG).replace("HMAC-SHA256", "HMAC-SHA1"),
        AT,
    );
    assert_eq!(code(check(&v2, BODY, now)), ("IncompleteSignature", 400));
    // 2. Unknown key.
    let other = headers(&auth("NOPE", scope, signed, SIG), AT);
    assert_eq!(code(check(&other, BODY, now)), ("AuthFailure", 401));
    // 3. Scope: service, date agreeing with X-Amz-Date, terminal.
    let s3 = headers(&auth("AKID", &scope.replace("ec2", "s3"), signed, SIG), AT);
    assert_eq!(code(check(&s3, BODY, now)), ("AuthFailure", 401));
    let day = headers(
        &auth("AKID", &scope.replace("1201", "1202"), signed, SIG),
        AT,
    );
    assert_eq!(code(check(&day, BODY, now)), ("AuthFailure", 401));
    let term = headers(
        &auth("AKID", &scope.replace("aws4_request", "aws4"), signed, SIG),
        AT,
    );
    assert_eq!(code(check(&term, BODY, now)), ("IncompleteSignature", 400));
    // 4. A malformed date.
    let bad_date = headers(&auth("AKID", scope, signed, SIG), "2026-12-01T12:00:00Z");
    assert_eq!(
        code(check(&bad_date, BODY, now)),
        ("IncompleteSignature", 400)
    );
    // 5. Signed headers must hold host and x-amz-date, sorted, and be present.
    let no_host = headers(&auth("AKID", scope, "content-type;x-amz-date", SIG), AT);
    assert_eq!(
        code(check(&no_host, BODY, now)),
        ("IncompleteSignature", 400)
    );
    let unsorted = headers(
        &auth("AKID", scope, "host;content-type;x-amz-date", SIG),
        AT,
    );
    assert_eq!(
        code(check(&unsorted, BODY, now)),
        ("IncompleteSignature", 400)
    );
    let absent = headers(
        &auth("AKID", scope, "content-type;host;x-amz-date;x-extra", SIG),
        AT,
    );
    assert_eq!(
        code(check(&absent, BODY, now)),
        ("IncompleteSignature", 400)
    );
    let mut token = good.clone();
    token.push(("x-amz-security-token".into(), "t".into()));
    assert_eq!(code(check(&token, BODY, now)), ("AuthFailure", 401));
    // 6, 7. Anything signed changed: the body, the Host, the secret.
    assert_eq!(
        code(check(&good, &BODY.replace("web", "db"), now)),
        ("AuthFailure", 401)
    );
    let mut host = good.clone();
    host[1].1 = "localhost:8788".into();
    assert_eq!(code(check(&host, BODY, now)), ("AuthFailure", 401));
    let r = Received {
        method: "POST",
        path: "/",
        query: "",
        headers: &good,
        body: BODY.as_bytes(),
    };
    let wrong = verify(&r, now, |_| Some("not-the-secret".to_string()));
    assert_eq!(code(wrong), ("AuthFailure", 401));
    // A signature that is not 64 hex digits.
    let short = headers(&auth("AKID", scope, signed, &SIG[..60]), AT);
    assert_eq!(code(check(&short, BODY, now)), ("IncompleteSignature", 400));
    // Header values are trimmed and inner whitespace collapsed before signing.
    let mut spaced = good.clone();
    spaced[0].1 = "  application/x-www-form-urlencoded;   charset=utf-8 ".into();
    assert_eq!(check(&spaced, BODY, now).unwrap(), "AKID");
}

/// A GET with its parameters in the query string, signed as computed with Python's
/// hmac/hashlib/urllib (parameters sorted and RFC 3986-encoded in the canonical request).
#[test]
fn a_signed_get_with_a_query_string_verifies() {
    let now = parse_amz_date(AT).unwrap();
    let sig = "12df4a20c65f6ab0aedc4cb12cd7831420d060ed95265241a3d3f9b3a608669f";
    let h = vec![
        ("host".to_string(), "127.0.0.1:8788".to_string()),
        ("x-amz-date".to_string(), AT.to_string()),
        (
            "authorization".to_string(),
            auth(
                "AKID",
                "20261201/us-east-1/ec2/aws4_request",
                "host;x-amz-date",
                sig,
            ),
        ),
    ];
    let get = |query: &str| {
        let r = Received {
            method: "GET",
            path: "/",
            query,
            headers: &h,
            body: b"",
        };
        verify(&r, now, |k| (k == "AKID").then(|| "s3cr3t".to_string()))
    };
    let q = "Version=2016-11-15&Action=GetDefaultCreditSpecification&InstanceFamily=t3";
    assert_eq!(get(q).unwrap(), "AKID");
    assert_eq!(
        code(get(&q.replace("t3", "t2"))),
        ("AuthFailure", 401),
        "a changed query string"
    );
}

#[test]
fn canonical_query_is_sorted_and_rfc3986_encoded() {
    assert_eq!(canonical_query("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
    assert_eq!(canonical_query("k=a~b*c"), "k=a~b%2Ac");
    assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
    assert_eq!(parse_amz_date("20001301T000000Z"), None);
    assert_eq!(parse_amz_date("2000010xT000000Z"), None);
}

fn form(s: &str) -> Result<(Action, Request), ApiError> {
    decode(decode_pairs(s.as_bytes())?)
}

#[test]
fn the_decoder_reads_what_botocore_sends() {
    let (a, r) = form("Action=ModifyInstanceCreditSpecification&Version=2016-11-15&ClientToken=cli-tok-1&InstanceCreditSpecification.1.InstanceId=idle&InstanceCreditSpecification.1.CpuCredits=standard&InstanceCreditSpecification.2.InstanceId=pg%2Fpg1&InstanceCreditSpecification.2.CpuCredits=unlimited&DryRun=true").unwrap();
    assert_eq!(a, Action::ModifyInstanceCreditSpecification);
    assert_eq!(
        r,
        Request::ModifyInstanceCreditSpecification(ModifyInstanceCreditSpecificationRequest {
            dry_run: true,
            client_token: Some("cli-tok-1".into()),
            instance_credit_specifications: vec![
                InstanceCreditSpecificationRequest {
                    instance_id: "idle".into(),
                    cpu_credits: "standard".into()
                },
                InstanceCreditSpecificationRequest {
                    instance_id: "pg/pg1".into(),
                    cpu_credits: "unlimited".into()
                },
            ],
        })
    );
    let (_, r) = form("Action=DescribeInstanceCreditSpecifications&Version=2016-11-15&InstanceId.2=idle&InstanceId.1=std").unwrap();
    let Request::DescribeInstanceCreditSpecifications(d) = r else {
        panic!()
    };
    assert_eq!(d.instance_ids, Some(vec!["std".into(), "idle".into()]));
    let (_, r) =
        form("Action=DescribeInstanceCreditSpecifications&MaxResults=5&NextToken=abc").unwrap();
    let Request::DescribeInstanceCreditSpecifications(d) = r else {
        panic!()
    };
    assert_eq!(
        (d.max_results, d.next_token.as_deref()),
        (Some(5), Some("abc"))
    );
    let (_, r) = form("Action=DescribeInstanceCreditSpecifications&Filter.1.Name=instance-id&Filter.1.Value.1=std&Filter.1.Value.2=web").unwrap();
    let Request::DescribeInstanceCreditSpecifications(d) = r else {
        panic!()
    };
    assert_eq!(d.instance_ids, Some(vec!["std".into(), "web".into()]));
    let (_, r) = form("Action=ModifyDefaultCreditSpecification&Version=2016-11-15&InstanceFamily=t4g&CpuCredits=standard").unwrap();
    assert_eq!(
        r,
        Request::ModifyDefaultCreditSpecification(ModifyDefaultCreditSpecificationRequest {
            dry_run: false,
            instance_family: "t4g".into(),
            cpu_credits: "standard".into()
        })
    );
    let (a, _) = form("Action=GetDefaultCreditSpecification&InstanceFamily=t3").unwrap();
    assert_eq!(a, Action::GetDefaultCreditSpecification);
}

#[test]
fn the_decoder_refuses_with_ec2s_codes() {
    let c = |s: &str| form(s).unwrap_err().code();
    assert_eq!(c("Version=2016-11-15"), "MissingParameter");
    assert_eq!(c("Action=RunInstances"), "InvalidAction");
    assert_eq!(c("Action=DescribeCreditBalances"), "InvalidAction");
    assert_eq!(
        c("Action=GetDefaultCreditSpecification&InstanceFamily=t3&Bogus=1"),
        "UnknownParameter"
    );
    assert_eq!(
        c("Action=GetDefaultCreditSpecification"),
        "MissingParameter"
    );
    assert_eq!(
        c("Action=GetDefaultCreditSpecification&InstanceFamily=t3&DryRun=yes"),
        "InvalidParameterValue"
    );
    assert_eq!(
        c("Action=DescribeInstanceCreditSpecifications&InstanceId.01=a"),
        "InvalidParameterValue"
    );
    assert_eq!(
        c("Action=DescribeInstanceCreditSpecifications&InstanceId.0=a"),
        "InvalidParameterValue"
    );
    assert_eq!(
        c("Action=DescribeInstanceCreditSpecifications&MaxResults=five"),
        "InvalidParameterValue"
    );
    assert_eq!(
        c("Action=DescribeInstanceCreditSpecifications&Filter.1.Name=tag:x&Filter.1.Value.1=a"),
        "InvalidParameterValue"
    );
    assert_eq!(
        c("Action=ModifyInstanceCreditSpecification&InstanceCreditSpecification.1.CpuCredits=standard"),
        "MissingParameter"
    );
    assert_eq!(
        c("Action=ModifyInstanceCreditSpecification&InstanceCreditSpecification.1.InstanceId=a&InstanceCreditSpecification.1.CpuCredits=standard&InstanceCreditSpecification.1.Extra=1"),
        "UnknownParameter"
    );
    assert_eq!(
        c("Action=GetDefaultCreditSpecification&Action=x"),
        "InvalidParameterValue"
    );
}

#[test]
fn xml_has_request_id_sets_and_the_error_document() {
    let a = Answer::ok(&DescribeInstanceCreditSpecificationsResponse {
        instance_credit_specifications: vec![InstanceCreditSpecification {
            instance_id: "a<b".into(),
            cpu_credits: "standard".into(),
        }],
        next_token: Some("t".into()),
    });
    let (st, x) = xml::encode(Action::DescribeInstanceCreditSpecifications, &a, "rid-1");
    assert_eq!(st, 200);
    assert!(x.contains("<DescribeInstanceCreditSpecificationsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>rid-1</requestId><instanceCreditSpecificationSet><item><instanceId>a&lt;b</instanceId><cpuCredits>standard</cpuCredits></item></instanceCreditSpecificationSet><nextToken>t</nextToken></DescribeInstanceCreditSpecificationsResponse>"), "{x}");
    let (st, x) = xml::encode(
        Action::GetDefaultCreditSpecification,
        &ApiError::DryRun.answer(),
        "r2",
    );
    assert_eq!(st, 412);
    assert!(x.contains("<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors><RequestID>r2</RequestID></Response>"), "{x}");
    let id = request_id();
    assert_eq!(id.len(), 36);
    assert_ne!(id, request_id());
}

proptest! {
    #[test]
    fn the_decoder_never_panics(s in ".{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = form(&s);
        let _ = decode_pairs(&raw).map(decode);
        let _ = form(&format!("Action=ModifyInstanceCreditSpecification&{s}"));
        let _ = form(&format!("Action=DescribeInstanceCreditSpecifications&{s}"));
    }

    #[test]
    fn list_keys_never_panic(k in "[A-Za-z.]{0,12}\\.[0-9.]{0,8}(\\.[A-Za-z.0-9]{0,10})?", v in ".{0,20}") {
        for a in ["ModifyInstanceCreditSpecification", "DescribeInstanceCreditSpecifications"] {
            let mut p = std::collections::BTreeMap::new();
            p.insert("Action".to_string(), a.to_string());
            p.insert(k.clone(), v.clone());
            let _ = decode(p);
        }
    }

    #[test]
    fn the_sigv4_parser_never_panics(a in ".{0,300}", d in ".{0,20}", q in ".{0,100}", sh in "[a-z;-]{0,40}") {
        let _ = parse_authorization(&a);
        let _ = parse_amz_date(&d);
        let _ = canonical_query(&q);
        let _ = percent_decode(&q, true);
        let h = headers(&a, &d);
        let _ = check(&h, &q, 0);
        let h = headers(&auth("AKID", &format!("{d}/us-east-1/ec2/aws4_request"), &sh, SIG), &d);
        let _ = check(&h, &q, parse_amz_date(AT).unwrap_or(0));
    }
}

// ---- Over TCP, to the real loop on the in-memory kernel. ----

const CONF: &str = r#"time_scale = 60.0
[[workload]]
name = "web"
cgroup = "web"
profile = "t3.micro"
mode = "standard"
"#;

fn keys() -> Vec<Ec2Credential> {
    vec![
        Ec2Credential {
            access_key: "ADMIN".into(),
            secret: Secret::new("adm"),
            admin: true,
        },
        Ec2Credential {
            access_key: "READER".into(),
            secret: Secret::new("rd"),
            admin: false,
        },
    ]
}

/// Signs `body` as botocore does, `skew_s` seconds off the wall clock.
fn signed(
    method: &str,
    query: &str,
    addr: std::net::SocketAddr,
    key: &str,
    secret: &str,
    body: &str,
    skew_s: i64,
) -> String {
    let t = now_unix_s() + skew_s;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let amz = format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    assert_eq!(parse_amz_date(&amz), Some(t));
    let host = addr.to_string();
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let h = vec![
        ("content-type".to_string(), ct.to_string()),
        ("host".to_string(), host.clone()),
        ("x-amz-date".to_string(), amz.clone()),
    ];
    let r = Received {
        method,
        path: "/",
        query,
        headers: &h,
        body: body.as_bytes(),
    };
    let signed = ["content-type", "host", "x-amz-date"];
    let scope = format!("{}/us-east-1/ec2/aws4_request", &amz[..8]);
    let sts = string_to_sign(&amz, &scope, &canonical_request(&r, &signed));
    let sig = sign(&signing_key(secret, &amz[..8], "us-east-1", "ec2"), &sts);
    format!(
        "{method} /{q} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ct}\r\nX-Amz-Date: {amz}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        auth(key, &scope, "content-type;host;x-amz-date", &sig),
        body.len(),
        q = if query.is_empty() { String::new() } else { format!("?{query}") },
    )
}

fn signed_post(
    addr: std::net::SocketAddr,
    key: &str,
    secret: &str,
    body: &str,
    skew_s: i64,
) -> String {
    signed("POST", "", addr, key, secret, body, skew_s)
}

async fn exchange(addr: std::net::SocketAddr, req: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn hand_signed_requests_reach_the_same_action_layer() {
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::fake();
    fake.add("web", 0);
    let cfg = testkit::cfg(CONF, dir.path());
    let agent = testkit::agent(&cfg, &fake);
    let (handles, inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, keys(), handles.api.clone(), 8, None));
    let driver = async {
        let describe = "Action=DescribeInstanceCreditSpecifications&Version=2016-11-15";
        let (st, x) = exchange(addr, &signed_post(addr, "READER", "rd", describe, 0)).await;
        assert_eq!(st, 200, "{x}");
        assert!(x.contains("<requestId>"), "{x}");
        assert!(
            x.contains(
                "<item><instanceId>web</instanceId><cpuCredits>standard</cpuCredits></item>"
            ),
            "{x}"
        );
        let modify = "Action=ModifyInstanceCreditSpecification&Version=2016-11-15&InstanceCreditSpecification.1.InstanceId=web&InstanceCreditSpecification.1.CpuCredits=unlimited";
        let (st, x) = exchange(addr, &signed_post(addr, "READER", "rd", modify, 0)).await;
        assert_eq!(st, 403, "{x}");
        assert!(x.contains("<Code>UnauthorizedOperation</Code>"), "{x}");
        let (st, x) = exchange(addr, &signed_post(addr, "ADMIN", "wrong", modify, 0)).await;
        assert_eq!(st, 401, "{x}");
        assert!(x.contains("<Code>AuthFailure</Code>"), "{x}");
        let (st, x) = exchange(addr, &signed_post(addr, "ADMIN", "adm", modify, -20 * 60)).await;
        assert_eq!(st, 400, "{x}");
        assert!(x.contains("<Code>RequestExpired</Code>"), "{x}");
        let (st, x) = exchange(addr, &signed_post(addr, "ADMIN", "adm", modify, 0)).await;
        assert_eq!(st, 200, "{x}");
        assert!(x.contains("<successfulInstanceCreditSpecificationSet><item><instanceId>web</instanceId></item></successfulInstanceCreditSpecificationSet>"), "{x}");
        let (st, x) = exchange(addr, &signed_post(addr, "READER", "rd", describe, 0)).await;
        assert_eq!(st, 200, "{x}");
        assert!(x.contains("<cpuCredits>unlimited</cpuCredits>"), "{x}");
        let (st, x) = exchange(
            addr,
            "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(st, 405, "{x}");
        assert!(x.to_ascii_lowercase().contains("allow: get, post"), "{x}");
        let (st, x) = exchange(
            addr,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b",
        )
        .await;
        assert_eq!(st, 401, "{x}");
        assert!(x.contains("<Code>MissingAuthenticationToken</Code>"), "{x}");
        handles.control.send(Control::Shutdown).await.unwrap();
    };
    tokio::join!(testkit::run(agent, inbox), driver);
    server.abort();
    let _ = server.await;
}

type Pems = (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf);

/// A test CA and a certificate for 127.0.0.1 it signed, made with the openssl command (3.x):
/// (ca.pem, cert.pem, key.pem), or None (skipped).
fn test_certificate(dir: &std::path::Path) -> Option<Pems> {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
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
            .stderr(std::process::Stdio::null())
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
    if !made {
        eprintln!("skipped: the openssl command cannot make a test certificate");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Some((p("ca.pem"), p("cert.pem"), p("key.pem")))
}

/// With `tls_cert`/`tls_key` the endpoint speaks HTTPS (and may listen beyond loopback): a
/// rustls client trusting the certificate gets the XML error of an unsigned request; a
/// plain-text request gets no HTTP answer.
#[tokio::test]
async fn with_tls_the_endpoint_speaks_https_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the key file must be owned by root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = test_certificate(dir.path()) else {
        return;
    };
    let text = format!(
        "[ec2_api]\nlisten = \"0.0.0.0:8788\"\ntls_cert = {:?}\ntls_key = {:?}\n[[ec2_api.credentials]]\naccess_key = \"AK\"\nsecret = \"x\"\nrole = \"read\"\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let cfg = crate::config::parse(std::path::Path::new("/t.toml"), &text).unwrap();
    let tls = cfg.ec2_api.tls.as_ref().expect("TLS configured");
    let acceptor = tls_acceptor(tls).unwrap();
    let (handles, _inbox) = channels();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(
        listener,
        keys(),
        handles.api.clone(),
        8,
        Some(acceptor),
    ));

    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    let ca_pem = std::fs::read(&ca).unwrap();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>"),
        "{text}"
    );

    let (_, plain) = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!plain.contains("HTTP/1.1"), "{plain}");
    server.abort();
    let _ = server.await;
}
