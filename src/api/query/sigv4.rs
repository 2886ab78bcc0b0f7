//! AWS Signature Version 4 verification as EC2 does it (docs/api.md, "EC2 Query endpoint"):
//! the `Authorization` header is parsed, the access key looked up, the scope and the
//! `X-Amz-Date` checked (±15 min), the canonical request rebuilt from what was received and
//! the signature compared in constant time. Pure: the clock and the key table are arguments.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// A request signed further than this from the server's clock is refused.
pub const MAX_SKEW_S: i64 = 15 * 60;
/// The service name EC2 signs with.
pub const SERVICE: &str = "ec2";

/// Why a request is not authenticated: EC2's code, HTTP status and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

fn missing(m: impl Into<String>) -> AuthError {
    AuthError {
        code: "MissingAuthenticationToken",
        status: 401,
        message: m.into(),
    }
}

fn incomplete(m: impl Into<String>) -> AuthError {
    AuthError {
        code: "IncompleteSignature",
        status: 400,
        message: m.into(),
    }
}

fn failure(m: impl Into<String>) -> AuthError {
    AuthError {
        code: "AuthFailure",
        status: 401,
        message: m.into(),
    }
}

fn expired(m: impl Into<String>) -> AuthError {
    AuthError {
        code: "RequestExpired",
        status: 400,
        message: m.into(),
    }
}

/// What was received, as it was received.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path, raw (percent-encoded as sent).
    pub path: &'a str,
    /// The raw query string (without `?`), empty if none.
    pub query: &'a str,
    /// Headers: names lower-case, values as sent; a name may repeat.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Received<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The parts of an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub terminal: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let value = value.trim();
    let (alg, rest) = value.split_once(' ').unwrap_or((value, ""));
    if alg != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported signing algorithm {alg:?}: only {ALGORITHM} is accepted"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header element {part:?} is not key=value"
            )));
        };
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete(format!(
                    "Authorization header has an unknown element {k:?}"
                )))
            }
        };
        if slot.replace(v).is_some() {
            return Err(incomplete(format!("Authorization header repeats {k}")));
        }
    }
    let (credential, signed, signature) = (
        credential
            .ok_or_else(|| incomplete("Authorization header requires a Credential element"))?,
        signed
            .ok_or_else(|| incomplete("Authorization header requires a SignedHeaders element"))?,
        signature.ok_or_else(|| incomplete("Authorization header requires a Signature element"))?,
    );
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminal] = parts[..] else {
        return Err(incomplete(format!(
            "Credential {credential:?} must be ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request"
        )));
    };
    Ok(Authorization {
        access_key,
        date,
        region,
        service,
        terminal,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Seconds since the epoch of an `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The signing key: `HMAC("AWS4"+secret, date) → region → service → "aws4_request"`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-_.~` as `%XX`.
pub fn uri_encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes `s`; `plus_is_space` for form bodies. Bad escapes are kept as they are.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let v = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(v(b[i + 1]) * 16 + v(b[i + 2]));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The canonical query string: each `k=v` decoded, re-encoded, sorted by key then value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k, false)),
                uri_encode(&percent_decode(v, false)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request (step 6 of docs/api.md's checks).
pub fn canonical_request(r: &Received, signed_headers: &[&str]) -> String {
    let mut out = String::new();
    out.push_str(r.method);
    out.push('\n');
    out.push_str(if r.path.is_empty() { "/" } else { r.path });
    out.push('\n');
    out.push_str(&canonical_query(r.query));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = r
            .header_values(name)
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&sha256_hex(r.body));
    out
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// The hex signature of `string_to_sign` under `key`.
pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    hex(&hmac(key, string_to_sign.as_bytes()))
}

/// Verifies a request's signature; `secret_of` looks up an access key's secret. Returns the
/// access key id that signed it.
pub fn verify<'r>(
    r: &Received<'r>,
    now_unix_s: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<String, AuthError> {
    // 1. The header and its algorithm.
    let auth_values = r.header_values("authorization");
    let auth_value =
        match auth_values[..] {
            [] => return Err(missing(
                "Request is missing Authentication Token (sign it with SigV4: AWS4-HMAC-SHA256)",
            )),
            [one] => one,
            _ => return Err(incomplete("more than one Authorization header")),
        };
    let a = parse_authorization(auth_value)?;
    // 3. The credential scope.
    if a.terminal != "aws4_request" {
        return Err(incomplete(format!(
            "Credential scope must end with aws4_request, not {:?}",
            a.terminal
        )));
    }
    if a.service != SERVICE {
        return Err(failure(format!(
            "Credential should be scoped to correct service: '{SERVICE}', not {:?}",
            a.service
        )));
    }
    if a.region.is_empty()
        || !a
            .region
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(incomplete(format!(
            "Credential region {:?} is not a region name",
            a.region
        )));
    }
    // 5. Signed headers: sorted, lower case, unique, with host and x-amz-date, all present.
    let sh = &a.signed_headers;
    if sh.iter().any(|h| {
        h.is_empty()
            || h.bytes()
                .any(|c| c.is_ascii_uppercase() || c.is_ascii_whitespace())
    }) || sh.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(incomplete(
            "SignedHeaders must be lower-case header names, sorted, each once",
        ));
    }
    for need in ["host", "x-amz-date"] {
        if !sh.contains(&need) {
            return Err(incomplete(format!("SignedHeaders must include {need}")));
        }
    }
    if let Some(h) = sh.iter().find(|h| r.header_values(h).is_empty()) {
        return Err(incomplete(format!(
            "header {h} is signed but not in the request"
        )));
    }
    if !r.header_values("x-amz-security-token").is_empty() {
        return Err(failure(
            "temporary credentials (X-Amz-Security-Token) are not supported by this endpoint",
        ));
    }
    // 4. The date, its agreement with the scope, and the clock.
    let amz_date = match r.header_values("x-amz-date")[..] {
        [one] => one.trim(),
        _ => return Err(incomplete("exactly one X-Amz-Date header is required")),
    };
    let Some(signed_at) = parse_amz_date(amz_date) else {
        return Err(incomplete(format!(
            "X-Amz-Date {amz_date:?} is not YYYYMMDDTHHMMSSZ"
        )));
    };
    if amz_date.get(..8) != Some(a.date) {
        return Err(failure(format!(
            "Credential date {:?} does not match X-Amz-Date {amz_date:?}",
            a.date
        )));
    }
    if (now_unix_s - signed_at).abs() > MAX_SKEW_S {
        return Err(expired(format!(
            "Request has expired: signed at {amz_date}, {} s from the server's clock (at most {MAX_SKEW_S} s either way)",
            now_unix_s - signed_at
        )));
    }
    // 2. The key.
    let Some(secret) = secret_of(a.access_key) else {
        return Err(failure(
            "AWS was not able to validate the provided access credentials",
        ));
    };
    // 6, 7. Rebuild and compare in constant time.
    let Some(given) = unhex(a.signature).filter(|s| s.len() == 32) else {
        return Err(incomplete("Signature must be 64 lower-case hex digits"));
    };
    let canonical = canonical_request(r, sh);
    let scope = format!("{}/{}/{}/aws4_request", a.date, a.region, a.service);
    let sts = string_to_sign(amz_date, &scope, &canonical);
    let key = signing_key(&secret, a.date, a.region, a.service);
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
    mac.update(sts.as_bytes());
    if mac.verify_slice(&given).is_err() {
        return Err(failure(
            "AWS was not able to validate the provided access credentials (the signature does not match)",
        ));
    }
    Ok(a.access_key.to_string())
}
