//! The `[containers]` section: the Docker-API socket (Docker's or Podman's) whose labelled
//! containers burstd manages.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::raw::Ctx;
use super::ConfigError;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawContainers {
    docker: Option<Spanned<String>>,
}

/// The `[containers]` section, resolved.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ContainersConfig {
    /// The Docker-API socket to follow; `None`: no container source (no section, or
    /// `docker = ""`).
    pub docker: Option<PathBuf>,
}

pub(super) fn containers_config(
    cx: &Ctx,
    raw: &RawContainers,
) -> Result<ContainersConfig, ConfigError> {
    let Some(docker) = &raw.docker else {
        return Ok(ContainersConfig::default());
    };
    let path = docker.get_ref().trim();
    if path.is_empty() {
        return Ok(ContainersConfig::default());
    }
    let path = path.strip_prefix("unix://").unwrap_or(path);
    if !path.starts_with('/') {
        return Err(cx.err(
            docker.span(),
            format!(
                "[containers] docker = {:?}: must be the absolute path of a Docker-API socket, like \"/var/run/docker.sock\" or \"/run/podman/podman.sock\"",
                docker.get_ref()
            ),
        ));
    }
    Ok(ContainersConfig {
        docker: Some(PathBuf::from(path)),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ConfigError};
    use std::path::{Path, PathBuf};

    fn docker(text: &str) -> Result<Option<PathBuf>, ConfigError> {
        parse(Path::new("b.toml"), text).map(|c| c.containers.docker)
    }

    #[test]
    fn socket_path_forms() {
        assert_eq!(docker("").unwrap(), None);
        assert_eq!(docker("[containers]\ndocker = \"\"\n").unwrap(), None);
        assert_eq!(
            docker("[containers]\ndocker = \"/var/run/docker.sock\"\n").unwrap(),
            Some(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(
            docker("[containers]\ndocker = \"unix:///run/podman/podman.sock\"\n").unwrap(),
            Some(PathBuf::from("/run/podman/podman.sock"))
        );
    }

    #[test]
    fn relative_path_and_unknown_key_are_errors_with_their_place() {
        let e = docker("[containers]\ndocker = \"docker.sock\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "b.toml:2:10: [containers] docker = \"docker.sock\": must be the absolute path"
            ),
            "{e}"
        );
        let e = docker("[containers]\npodman = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("b.toml:2:1:") && e.contains("podman"), "{e}");
    }
}
