//! The `[ec2_api]` section: the EC2 Query endpoint (aws-cli, boto3) on TCP, and its access keys
//! (`[[ec2_api.credentials]]`). Off when `listen` is absent.
//!
//! Without TLS (`tls_cert` and `tls_key`, PEM) the endpoint may only listen on a loopback
//! address: SigV4 does not hide the request bodies, and tenants' requests must not cross a
//! network in clear text.

use super::raw::Ctx;
use super::ConfigError;
use crate::http::DEFAULT_MAX_CONNECTIONS;
use serde::Deserialize;
use std::net::SocketAddr;
use toml::Spanned;

/// Most bytes a `secret_file` may hold.
pub const MAX_SECRET_FILE: u64 = 4096;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEc2Api {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) credentials: Vec<RawCredential>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) access_key: Spanned<String>,
    #[serde(default)]
    pub(super) secret: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) role: Spanned<String>,
}

/// A secret access key. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One access key of the endpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ec2Credential {
    pub access_key: String,
    pub secret: Secret,
    /// `role = "admin"`: may call Modify*; `"read"`: Describe/Get only.
    pub admin: bool,
}

/// TLS for the endpoint: the certificate chain and its private key, PEM, as read at load.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ec2Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret,
}

/// The `[ec2_api]` section, resolved.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ec2ApiConfig {
    /// `None`: no EC2 Query endpoint (the default).
    pub listen: Option<SocketAddr>,
    pub credentials: Vec<Ec2Credential>,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// HTTPS when set.
    pub tls: Option<Ec2Tls>,
}

impl Default for Ec2ApiConfig {
    fn default() -> Self {
        Ec2ApiConfig {
            listen: None,
            credentials: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
        }
    }
}

/// An access key id as AWS shapes them: 1 to 128 letters and digits.
fn valid_access_key(k: &str) -> bool {
    (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads a secret from a file only root may read: opened without following a symlink, a
/// regular file owned by root with no group/other permission bits, at most
/// [`MAX_SECRET_FILE`] bytes; surrounding whitespace is dropped.
pub fn read_secret_file(path: &str) -> Result<String, String> {
    read_root_only(path, MAX_SECRET_FILE)
}

/// Most bytes a `tls_key` or `tls_cert` file may hold.
pub const MAX_PEM_FILE: u64 = 256 * 1024;

fn read_root_only(path: &str, max: u64) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !path.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symlink; name the file itself".to_string(),
            _ => format!("cannot open: {e}"),
        })?;
    let meta = f.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != 0 {
        return Err(format!(
            "is owned by uid {}; it must be owned by root (chown root {path})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "has mode {:04o}; group and others must have no access (chmod 600 {path})",
            meta.mode() & 0o7777
        ));
    }
    if meta.len() > max {
        return Err(format!("is larger than {max} bytes"));
    }
    let mut text = String::new();
    f.by_ref()
        .take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it as UTF-8 text: {e}"))?;
    Ok(text.trim().to_string())
}

pub(super) fn ec2_api_config(cx: &Ctx, raw: &RawEc2Api) -> Result<Ec2ApiConfig, ConfigError> {
    let max_connections = match &raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(v) => super::servers::max_connections(cx, "ec2_api", v)?,
    };
    let Some(listen_raw) = &raw.listen else {
        return Ok(Ec2ApiConfig {
            max_connections,
            ..Ec2ApiConfig::default()
        });
    };
    let text = listen_raw.get_ref().trim();
    let listen: SocketAddr = text.parse().map_err(|_| {
        cx.err(
            listen_raw.span(),
            format!("[ec2_api] listen = {text:?}: must be an IP address and port like \"127.0.0.1:8788\""),
        )
    })?;
    let tls = tls_config(cx, raw)?;
    if !listen.ip().is_loopback() && tls.is_none() {
        return Err(cx.err(
            listen_raw.span(),
            format!(
                "[ec2_api] listen = {text:?}: not a loopback address, and no TLS: requests and \
                 answers would cross the network in clear text. Set tls_cert and tls_key (PEM), \
                 or listen on 127.0.0.1 or [::1]"
            ),
        ));
    }
    let mut credentials: Vec<Ec2Credential> = Vec::new();
    for c in &raw.credentials {
        let key = c.access_key.get_ref();
        if !valid_access_key(key) {
            return Err(cx.err(
                c.access_key.span(),
                format!("[[ec2_api.credentials]] access_key = {key:?}: must be 1 to 128 letters and digits"),
            ));
        }
        if credentials.iter().any(|x| &x.access_key == key) {
            return Err(cx.err(
                c.access_key.span(),
                format!("[[ec2_api.credentials]] access_key = {key:?}: given twice"),
            ));
        }
        let secret = match (&c.secret, &c.secret_file) {
            (Some(s), None) => s.get_ref().clone(),
            (None, Some(p)) => read_secret_file(p.get_ref()).map_err(|why| {
                cx.err(
                    p.span(),
                    format!("[[ec2_api.credentials]] secret_file = {:?}: {why}", p.get_ref()),
                )
            })?,
            _ => {
                return Err(cx.err(
                    c.access_key.span(),
                    format!("[[ec2_api.credentials]] access_key = {key:?}: give exactly one of secret and secret_file"),
                ))
            }
        };
        if secret.is_empty() {
            return Err(cx.err(
                c.access_key.span(),
                format!("[[ec2_api.credentials]] access_key = {key:?}: the secret is empty"),
            ));
        }
        let admin = match c.role.get_ref().as_str() {
            "admin" => true,
            "read" => false,
            other => {
                return Err(cx.err(
                    c.role.span(),
                    format!(
                        "[[ec2_api.credentials]] role = {other:?}: must be \"admin\" or \"read\""
                    ),
                ))
            }
        };
        credentials.push(Ec2Credential {
            access_key: key.clone(),
            secret: Secret(secret),
            admin,
        });
    }
    if credentials.is_empty() {
        return Err(cx.err(
            listen_raw.span(),
            "[ec2_api] listen is set but there is no [[ec2_api.credentials]] entry: no request could be authenticated",
        ));
    }
    Ok(Ec2ApiConfig {
        listen: Some(listen),
        credentials,
        max_connections,
        tls,
    })
}

/// `tls_cert` and `tls_key`: both or neither; the key root-only like a `secret_file`; both
/// parsed here, so a bad file is an error with its place in the configuration.
fn tls_config(cx: &Ctx, raw: &RawEc2Api) -> Result<Option<Ec2Tls>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(v), None) | (None, Some(v)) => {
            return Err(cx.err(
                v.span(),
                "[ec2_api] tls_cert and tls_key go together: give both (PEM files) or neither",
            ))
        }
    };
    let cert_path = cert.get_ref();
    let cert_err = |why: String| {
        cx.err(
            cert.span(),
            format!("[ec2_api] tls_cert = {cert_path:?}: {why}"),
        )
    };
    let cert_pem = std::fs::read(cert_path).map_err(|e| cert_err(format!("cannot read: {e}")))?;
    if cert_pem.len() as u64 > MAX_PEM_FILE {
        return Err(cert_err(format!("is larger than {MAX_PEM_FILE} bytes")));
    }
    let certs: Result<Vec<CertificateDer>, _> = CertificateDer::pem_slice_iter(&cert_pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => {}
        Ok(_) => return Err(cert_err("holds no PEM CERTIFICATE".into())),
        Err(e) => return Err(cert_err(format!("is not a PEM certificate chain: {e}"))),
    }
    let key_path = key.get_ref();
    let key_err = |why: String| {
        cx.err(
            key.span(),
            format!("[ec2_api] tls_key = {key_path:?}: {why}"),
        )
    };
    let key_pem = read_root_only(key_path, MAX_PEM_FILE).map_err(key_err)?;
    PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| key_err(format!("holds no PEM private key: {e}")))?;
    Ok(Some(Ec2Tls {
        cert_pem,
        key_pem: Secret(key_pem),
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn parse_str(text: &str) -> Result<crate::config::Config, String> {
        parse(Path::new("/etc/burstd/burstd.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn off_when_absent_and_keys_with_roles_when_given() {
        let c = parse_str("").unwrap();
        assert_eq!(c.ec2_api.listen, None);
        let c = parse_str(
            r#"
[ec2_api]
listen = "127.0.0.1:8788"
[[ec2_api.credentials]]
access_key = "AKIDADMIN"
secret = "s3cr3t"
role = "admin"
[[ec2_api.credentials]]
access_key = "AKIDREAD"
secret = "other"
role = "read"
"#,
        )
        .unwrap();
        assert_eq!(c.ec2_api.listen, Some("127.0.0.1:8788".parse().unwrap()));
        assert_eq!(c.ec2_api.credentials.len(), 2);
        assert!(c.ec2_api.credentials[0].admin);
        assert!(!c.ec2_api.credentials[1].admin);
        assert_eq!(c.ec2_api.credentials[1].secret.expose(), "other");
        // The secret never shows in Debug output (logs).
        assert!(!format!("{:?}", c.ec2_api).contains("s3cr3t"));
    }

    #[test]
    fn refuses_what_is_unsafe_or_wrong_with_a_reason() {
        let key =
            "[[ec2_api.credentials]]\naccess_key = \"AK\"\nsecret = \"x\"\nrole = \"admin\"\n";
        let e = parse_str(&format!("[ec2_api]\nlisten = \"0.0.0.0:8788\"\n{key}")).unwrap_err();
        assert!(e.contains("no TLS"), "{e}");
        assert!(e.contains(":2:"), "{e}");
        let e = parse_str("[ec2_api]\nlisten = \"127.0.0.1:8788\"\n").unwrap_err();
        assert!(e.contains("no [[ec2_api.credentials]]"), "{e}");
        let e = parse_str(&format!(
            "[ec2_api]\nlisten = \"127.0.0.1:1\"\n{}",
            key.replace("admin", "root")
        ))
        .unwrap_err();
        assert!(e.contains("must be \"admin\" or \"read\""), "{e}");
        let e = parse_str(&format!(
            "[ec2_api]\nlisten = \"127.0.0.1:1\"\n{}",
            key.replace("\"AK\"", "\"A/K\"")
        ))
        .unwrap_err();
        assert!(e.contains("letters and digits"), "{e}");
        let e = parse_str(&format!("[ec2_api]\nlisten = \"127.0.0.1:1\"\n{key}{key}")).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let e = parse_str(&format!(
            "[ec2_api]\nlisten = \"127.0.0.1:1\"\n{}",
            key.replace("secret = \"x\"\n", "")
        ))
        .unwrap_err();
        assert!(e.contains("exactly one of secret and secret_file"), "{e}");
    }

    #[test]
    fn secret_file_must_be_roots_alone_and_not_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let conf = |p: &Path| {
            format!(
                "[ec2_api]\nlisten = \"127.0.0.1:1\"\n[[ec2_api.credentials]]\naccess_key = \"AK\"\nsecret_file = {:?}\nrole = \"read\"\n",
                p.display().to_string()
            )
        };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = parse_str(&conf(&file)).unwrap_err();
        assert!(e.contains("has mode 0640"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = parse_str(&conf(&link)).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        // TLS: both files or neither; the key root-only.
        let tls = |extra: &str| {
            format!("[ec2_api]\nlisten = \"10.0.0.1:8788\"\n{extra}[[ec2_api.credentials]]\naccess_key = \"AK\"\nsecret = \"x\"\nrole = \"read\"\n")
        };
        let e = parse_str(&tls(&format!(
            "tls_cert = {:?}\n",
            file.display().to_string()
        )))
        .unwrap_err();
        assert!(e.contains("give both"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = parse_str(&tls(&format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            file.display().to_string(),
            file.display().to_string()
        )))
        .unwrap_err();
        assert!(
            e.contains("holds no PEM CERTIFICATE") || e.contains("has mode 0644"),
            "{e}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Owned by root only when the tests run as root (they do on CI).
        if rustix::process::geteuid().is_root() {
            let c = parse_str(&conf(&file)).unwrap();
            assert_eq!(c.ec2_api.credentials[0].secret.expose(), "from-file");
        } else {
            let e = parse_str(&conf(&file)).unwrap_err();
            assert!(e.contains("must be owned by root"), "{e}");
        }
    }
}
