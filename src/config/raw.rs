//! The raw TOML: the file as deserialized (each section's raw form lives with its section),
//! and the positions errors point at.

use super::agent::RawAgent;
use super::profiles::RawProfile;
use super::servers::{RawApi, RawMetrics};
use super::workloads::RawWorkload;
use super::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// The whole file, one field per section.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) workload: Vec<RawWorkload>,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Spanned<RawProfile>>,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) containers: super::containers::RawContainers,
}

pub(super) fn spanned<T>(v: T) -> Spanned<T> {
    // Defaults have no place in the file; an empty span marks them.
    Spanned::new(0..0, v)
}

/// The file being read, for error positions.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        if span.is_empty() && span.start == 0 {
            return ConfigError::File {
                path: self.path.to_string(),
                message: message.into(),
            };
        }
        self.at(span.start, message)
    }

    pub(super) fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError::At {
            path: self.path.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
