//! What every section's reader shares: the positions errors point at ([`Ctx`]) and the mark
//! of a default ([`spanned`]). The whole file as deserialized is `RawFile` in `mod.rs`; each
//! section's raw form lives with its section.

use super::ConfigError;
use std::ops::Range;
use toml::Spanned;

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
