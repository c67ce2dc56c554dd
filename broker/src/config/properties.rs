//! A Java `.properties` reader and writer, written for this project from the format's description
//! in `java.util.Properties#load(Reader)`.
//!
//! # Syntax accepted
//!
//! * Natural lines end at `\n`, `\r` or `\r\n`. Leading spaces, tabs and form feeds are skipped.
//! * A line whose first non-blank character is `#` or `!` is a comment. A comment never continues.
//! * A line ending in an odd number of backslashes continues on the next line; the backslash, the
//!   line break and the next line's leading blanks are dropped. A blank continuation line ends the
//!   logical line, and so does the end of the text.
//! * The key ends at the first unescaped `=`, `:`, space, tab or form feed. Blanks around the
//!   separator are skipped, and if the key ended at a blank, one `=` or `:` after it is skipped too.
//!   A line with no separator is a key with an empty value.
//! * Escapes in keys and values: `\t`, `\n`, `\r`, `\f`, `\uXXXX` (UTF-16 surrogate pairs are
//!   joined); a backslash before any other character stands for that character, so `\=`, `\:`,
//!   `\ ` and `\\` put separators, blanks and backslashes into keys.
//! * Values keep trailing blanks, as Java does. Callers decide whether to trim.
//!
//! # Differences from Java, on purpose
//!
//! * A malformed `\u` escape or an unpaired surrogate is a [`ConfigError::Syntax`] naming the line.
//!   (Java throws too for the former; it keeps lone surrogates, which a Rust `String` cannot hold.)
//! * Input is text the caller has already decoded; see `BrokerConfig::load` for how bytes become
//!   text.
//! * The text is limited to [`PROPERTIES_FILE_BYTES_MAX`], checked before anything is parsed.

use super::ConfigError;

/// Largest `.properties` text accepted, in bytes (1 MiB). A broker config is a few KiB; anything
/// near this limit is a wrong file.
pub const PROPERTIES_FILE_BYTES_MAX: usize = 1024 * 1024;

/// One `key=value` pair, unescaped, with the 1-based line where its logical line starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses `.properties` text into entries in file order. Duplicate keys are all returned; Java keeps
/// the last one.
///
/// # Errors
///
/// [`ConfigError::TooLarge`] if `text` is longer than [`PROPERTIES_FILE_BYTES_MAX`], and
/// [`ConfigError::Syntax`] for a malformed `\uXXXX` escape or an unpaired UTF-16 surrogate.
pub fn parse(text: &str) -> Result<Vec<Entry>, ConfigError> {
    if text.len() > PROPERTIES_FILE_BYTES_MAX {
        return Err(ConfigError::TooLarge { bytes: text.len() as u64, bytes_max: PROPERTIES_FILE_BYTES_MAX as u64 });
    }
    let mut entries = Vec::new();
    let mut lines = NaturalLines::new(text);
    while let Some((line, natural)) = lines.next() {
        let first = natural.trim_start_matches(is_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut piece = first;
        loop {
            if !ends_in_odd_backslashes(piece) {
                logical.push_str(piece);
                break;
            }
            // The continuation backslash is one ASCII byte, so this slice is on a char boundary.
            logical.push_str(&piece[..piece.len() - 1]);
            match lines.next() {
                Some((_, next)) => {
                    piece = next.trim_start_matches(is_blank);
                    if piece.is_empty() {
                        break;
                    }
                }
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        entries.push(Entry { key: unescape(raw_key, line)?, value: unescape(raw_value, line)?, line });
    }
    Ok(entries)
}

/// Blanks in the `.properties` sense: space, tab, form feed (not line breaks).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

fn ends_in_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line (escapes still in place) into raw key and raw value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_blank(c) {
            key_end = i;
            value_start = i + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let rest = &line[value_start..];
    let mut skip = 0;
    for c in rest.chars() {
        if is_blank(c) {
            skip += c.len_utf8();
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            skip += 1;
        } else {
            break;
        }
    }
    (&line[..key_end], &rest[skip..])
}

/// Resolves backslash escapes in a raw key or value.
fn unescape(raw: &str, line: usize) -> Result<String, ConfigError> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // Cannot happen after continuation handling; a lone trailing backslash is dropped.
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let unit = utf16_unit(&mut chars, line)?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = match (chars.next(), chars.next()) {
                            (Some('\\'), Some('u')) => utf16_unit(&mut chars, line)?,
                            _ => return Err(unpaired_surrogate(unit, line)),
                        };
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(unpaired_surrogate(unit, line));
                        }
                        let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        match char::from_u32(code) {
                            Some(c) => out.push(c),
                            None => return Err(unpaired_surrogate(unit, line)),
                        }
                    }
                    0xDC00..=0xDFFF => return Err(unpaired_surrogate(unit, line)),
                    _ => match char::from_u32(u32::from(unit)) {
                        Some(c) => out.push(c),
                        None => return Err(unpaired_surrogate(unit, line)),
                    },
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

/// Reads the four hex digits after `\u`.
fn utf16_unit(chars: &mut std::str::Chars<'_>, line: usize) -> Result<u16, ConfigError> {
    let mut unit: u16 = 0;
    let mut seen = String::new();
    for _ in 0..4 {
        let digit = chars.next();
        if let Some(c) = digit {
            seen.push(c);
        }
        match digit.and_then(|c| c.to_digit(16)) {
            // A hex digit is below 16, so four of them fit a u16.
            Some(d) => unit = (unit << 4) | d as u16,
            None => {
                return Err(ConfigError::Syntax {
                    line,
                    reason: format!("malformed \\uxxxx escape \"\\u{seen}\": expected four hex digits"),
                });
            }
        }
    }
    Ok(unit)
}

fn unpaired_surrogate(unit: u16, line: usize) -> ConfigError {
    ConfigError::Syntax { line, reason: format!("unpaired UTF-16 surrogate \\u{unit:04X}") }
}

/// Natural lines of the text with their 1-based numbers; `\r\n` counts as one break.
struct NaturalLines<'a> {
    rest: &'a str,
    number: usize,
    done: bool,
}

impl<'a> NaturalLines<'a> {
    fn new(text: &'a str) -> NaturalLines<'a> {
        NaturalLines { rest: text, number: 0, done: false }
    }
}

impl<'a> Iterator for NaturalLines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.done {
            return None;
        }
        self.number += 1;
        match self.rest.find(['\r', '\n']) {
            Some(i) => {
                let line = &self.rest[..i];
                let after = if self.rest[i..].starts_with("\r\n") { i + 2 } else { i + 1 };
                self.rest = &self.rest[after..];
                if self.rest.is_empty() {
                    self.done = true;
                }
                Some((self.number, line))
            }
            None => {
                self.done = true;
                Some((self.number, self.rest))
            }
        }
    }
}

/// Escapes a key so that [`parse`] reads it back unchanged.
pub fn escape_key(key: &str) -> String {
    escape(key, true)
}

/// Escapes a value so that [`parse`] reads it back unchanged (trailing blanks included).
pub fn escape_value(value: &str) -> String {
    escape(value, false)
}

fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}
