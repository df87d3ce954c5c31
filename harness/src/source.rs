//! Reading a scenario file from disk and checking that it is text YAML can parse.
//!
//! These checks run before the YAML parser so that binary or mis-encoded files get an error that
//! points at the offending byte; libyaml reports such problems without a usable line and column.

use crate::diagnostic::{FileError, Located};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest scenario file accepted. Real scenarios are a few kilobytes; the limit stops a
/// mistaken path (a log file, a disk image, `/dev/zero`) from being read into memory.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Reads `path`, refusing files larger than [`MAX_SCENARIO_BYTES`].
pub fn read_limited(path: &Path) -> Result<Vec<u8>, FileError> {
    read_at_most(path, MAX_SCENARIO_BYTES)
}

/// Reads `path`, refusing files larger than `limit` bytes.
pub fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io_error = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    // Reading one byte past the limit detects oversized files without trusting the metadata,
    // which is wrong or zero for pipes and special files.
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Checks that `bytes` are UTF-8 text without characters YAML forbids, and returns the text with
/// any byte order mark removed.
pub fn decode(bytes: &[u8]) -> Result<&str, Located> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = err.valid_up_to();
            // The prefix up to `valid_up_to` is valid UTF-8 by definition, so this never fails;
            // falling back to an empty prefix only costs location precision.
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or("");
            let (line, column) = line_column(prefix, prefix.len());
            // A UTF-8 error always has a bad byte at `valid_up_to`; `get` keeps this panic-free
            // even if that ever changed.
            let byte = bytes
                .get(valid)
                .map_or(String::new(), |byte| format!(" (byte 0x{byte:02X})"));
            return Err(Located::new(
                line,
                column,
                format!("invalid UTF-8{byte}; scenario files must be UTF-8 text"),
            ));
        }
    };
    // Editors hide a byte order mark, so it is dropped before parsing: otherwise libyaml would
    // treat it as part of the first key and columns on line 1 would be off by one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some((index, c)) = text.char_indices().find(|&(_, c)| !is_yaml_printable(c)) {
        let (line, column) = line_column(text, index);
        return Err(Located::new(
            line,
            column,
            format!(
                "character U+{:04X} is not allowed in YAML text",
                u32::from(c)
            ),
        ));
    }
    Ok(text)
}

/// The YAML 1.1 printable set (section 5.1 of the spec); libyaml rejects everything else.
fn is_yaml_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}'
        | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// The 1-based line and column (counted in characters) of byte offset `index` in `text`.
pub fn line_column(text: &str, index: usize) -> (usize, usize) {
    let before = &text[..index];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::{decode, line_column};

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "ab\ncé\nxyz";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column(text, text.len()), (3, 4));
    }

    #[test]
    fn invalid_utf8_is_located_at_the_bad_byte() {
        let err = decode(b"name: a\ndescription: \xff\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 14));
        assert!(err.message.contains("0xFF"), "{}", err.message);
    }

    #[test]
    fn control_characters_are_located() {
        let err = decode(b"name: a\n\0").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert_eq!(err.message, "character U+0000 is not allowed in YAML text");
    }

    #[test]
    fn byte_order_mark_is_removed_and_tabs_are_kept() {
        assert_eq!(decode(b"\xef\xbb\xbfname: a").unwrap(), "name: a");
        assert_eq!(decode(b"a:\t1\r\n").unwrap(), "a:\t1\r\n");
    }
}
