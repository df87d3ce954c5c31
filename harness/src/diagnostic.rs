//! Errors about input files, each naming the file and, for content errors, `line:column`.

use crate::suggest;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A problem at a position inside a file. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Located {
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        Located {
            line,
            column,
            message: message.into(),
        }
    }

    /// Converts a serde_norway error into a located message. `text` is the parsed source; it is
    /// used to add hints that depend on what is at the error position.
    pub fn from_yaml(err: &serde_norway::Error, text: &str) -> Self {
        let mut message = err.to_string();
        // Errors without a position (more than one document, alias repetition limits) are about
        // the file as a whole, so they are reported at its start rather than dropped.
        let (line, column) = err
            .location()
            .map_or((1, 1), |location| (location.line(), location.column()));
        // serde_norway appends " at line L column C"; the position is already in the prefix, so
        // it is removed to avoid saying it twice. A message that ends with it got it appended;
        // libyaml syntax errors put it in the middle, before the context.
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        } else {
            message = message.replacen(&suffix, "", 1);
        }
        if let Some(rewritten) = suggest::rewrite_unknown_field(&message) {
            message = rewritten;
        }
        // serde speaks of struct fields; scenario authors write YAML keys, so the wording follows
        // them. Only serde's own fixed phrases are replaced, once.
        message = message
            .replacen("missing field `", "missing required key `", 1)
            .replacen("duplicate field `", "duplicate key `", 1);
        // libyaml reports a tab where a token should start without naming it, which is baffling
        // because a tab looks like spaces in most editors.
        if char_at(text, line, column) == Some('\t') && !message.contains("tab") {
            message.push_str(" (YAML does not allow tabs for indentation; use spaces)");
        }
        Located::new(line, column, message)
    }
}

/// The character at a 1-based line and column, if there is one.
fn char_at(text: &str, line: usize, column: usize) -> Option<char> {
    let line_text = text.split('\n').nth(line.checked_sub(1)?)?;
    line_text.chars().nth(column.checked_sub(1)?)
}

/// A byte count in the largest binary unit that divides it exactly, so limits read as "1 MiB".
fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS
        .iter()
        .find(|&&(unit, _)| bytes >= unit && bytes.is_multiple_of(unit))
        .map_or_else(
            || format!("{bytes} bytes"),
            |&(unit, name)| format!("{} {name}", bytes / unit),
        )
}

/// Why a scenario path could not be used. Every variant names the path it is about.
#[derive(Debug)]
pub enum FileError {
    /// The path could not be read; `source` is the operating system's error.
    Io { path: PathBuf, source: io::Error },
    /// The file is larger than the scenario size limit.
    TooLarge { path: PathBuf, limit: u64 },
    /// A directory argument held no scenario files, which is almost always a wrong path.
    NoScenarios { path: PathBuf },
    /// The file's content is invalid at a position.
    Content { path: PathBuf, at: Located },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            FileError::TooLarge { path, limit } => write!(
                f,
                "{}: file is larger than the {} limit for scenario files",
                path.display(),
                human_size(*limit)
            ),
            FileError::NoScenarios { path } => write!(
                f,
                "{}: no scenario files (*.yaml, *.yml) in this directory",
                path.display()
            ),
            FileError::Content { path, at } => write!(
                f,
                "{}:{}:{}: {}",
                path.display(),
                at.line,
                at.column,
                at.message
            ),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Located, char_at, human_size};

    fn yaml_error(text: &str) -> Located {
        match serde_norway::from_str::<serde_norway::Mapping>(text) {
            Ok(value) => panic!("expected an error, parsed {value:?}"),
            Err(err) => Located::from_yaml(&err, text),
        }
    }

    #[test]
    fn position_is_not_repeated_in_the_message() {
        let err = yaml_error("a: 1\n  b: 2\n");
        assert_eq!((err.line, err.column), (2, 4));
        assert_eq!(
            err.message,
            "mapping values are not allowed in this context"
        );
    }

    #[test]
    fn serde_field_wording_becomes_key_wording() {
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code, reason = "only the error is inspected")]
        struct Named {
            name: String,
        }
        for (text, expected) in [
            ("{}", "missing required key `name`"),
            ("{name: a, name: b}", "duplicate key `name`"),
        ] {
            let message = match serde_norway::from_str::<Named>(text) {
                Ok(value) => panic!("expected an error, parsed {value:?}"),
                Err(err) => Located::from_yaml(&err, text).message,
            };
            assert_eq!(message, expected);
        }
    }

    #[test]
    fn tab_indentation_gets_a_hint() {
        let err = yaml_error("a:\n\tb: 1\n");
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.ends_with("use spaces)"), "{}", err.message);
    }

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(human_size(1024 * 1024), "1 MiB");
        assert_eq!(human_size(1536), "1536 bytes");
        assert_eq!(human_size(2048), "2 KiB");
    }

    #[test]
    fn char_at_is_one_based_and_total() {
        assert_eq!(char_at("ab\ncd", 2, 2), Some('d'));
        assert_eq!(char_at("ab", 0, 1), None);
        assert_eq!(char_at("ab", 3, 1), None);
    }
}
