//! Line handling shared by the line-oriented readers.
//!
//! Feeds end lines with `\n` or `\r\n`, comment with `#`, `!` or `;`, and sometimes
//! put a comment after the value. These helpers do that once, fast (the plain-list
//! reader must keep up with a million lines a second). JSON Lines formats (passive DNS
//! COF, takedown reports) share one loop too.

use serde_json::{Map, Value};

use crate::{Location, Parsed, ReadError};

/// Lines with 1-based numbers, `\r` removed. Numbers saturate at `u32::MAX`.
pub(crate) fn numbered(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.split('\n').enumerate().map(|(i, line)| {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        (n, line.strip_suffix('\r').unwrap_or(line))
    })
}

/// The line without leading/trailing white space and without a trailing comment
/// that starts with white space then `#` (`evil.example # seen 2024`). Returns
/// `None` for blank lines and lines that are wholly a comment with one of `starts`.
pub(crate) fn content<'a>(line: &'a str, starts: &[u8]) -> Option<&'a str> {
    let line = line.trim();
    let first = *line.as_bytes().first()?;
    if starts.contains(&first) {
        return None;
    }
    let line = match memchr::memchr(b'#', line.as_bytes()) {
        Some(i) if i > 0 && line.as_bytes()[i - 1].is_ascii_whitespace() => line[..i].trim_end(),
        _ => line,
    };
    if line.is_empty() { None } else { Some(line) }
}

/// Reads JSON Lines: each non-blank line must be a JSON object, handed to `read`; a
/// line that fails is a diagnostic. When there are lines but not one is read, the
/// input is not `what` at all: an error naming the first problem.
pub(crate) fn json_lines<T>(
    text: &str,
    parsed: &mut Parsed,
    what: &str,
    mut read: impl FnMut(Map<String, Value>, Location) -> Result<T, String>,
) -> Result<Vec<T>, ReadError> {
    let mut items = Vec::new();
    let mut any_line = false;
    for (n, line) in numbered(text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        any_line = true;
        match json_object(line).and_then(|obj| read(obj, Location::Line(n))) {
            Ok(item) => items.push(item),
            Err(message) => parsed.diag(Location::Line(n), message),
        }
    }
    if any_line && items.is_empty() {
        let first = parsed
            .diagnostics
            .first()
            .map(|d| format!(" (first problem: {d})"))
            .unwrap_or_default();
        return Err(ReadError::new(format!("no line is {what}{first}")));
    }
    Ok(items)
}

fn json_object(line: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        let full = e.to_string();
        let what = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m);
        format!("column {}: invalid JSON: {what}", e.column())
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        other => Err(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )),
    }
}

/// "a string", "an array" …: for messages about a JSON value of the wrong type.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
