//! How answers are shown: tables for people (aligned columns, times with
//! how far away they are), the API's JSON as it came for scripts, or YAML.
//!
//! The columns of each resource are a list of [`Column`]s next to its
//! command, so a field the API gains is one line there. A field the list
//! does not name is still in `-o json` and `-o yaml`.

use std::io::Write;

use serde_json::Value;

use super::client::Answer;
use super::error::CliError;
use super::times;

/// `-o`: how to print answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, times in UTC with how far away they are.
    #[default]
    Table,
    /// The API's JSON as it came (a `--all` listing: every page's items in one).
    Json,
    /// The same as YAML.
    Yaml,
}

/// How one field is shown in a table.
#[derive(Debug, Clone, Copy)]
pub enum Cell {
    /// A string, number or boolean as it is; a list of them joined by commas.
    Text,
    /// An RFC 3339 time as `2026-05-01 12:00 (in 3d)`.
    Time,
    /// A list of `{type, value}` identifiers, by value.
    Identifiers,
    /// Any JSON, compact.
    Json,
}

/// One column: a header and where its value is in each item (a JSON pointer).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub pointer: &'static str,
    pub cell: Cell,
}

pub const fn column(header: &'static str, pointer: &'static str, cell: Cell) -> Column {
    Column { header, pointer, cell }
}

/// What a command has to show.
pub enum Body {
    /// One answer, printed as it came for `-o json`.
    Answer(Answer),
    /// JSON put together here (every page of a `--all` listing).
    Value(Value),
}

/// How a table shows a body.
pub enum View {
    /// The array at a JSON pointer (`/items` for listings) as rows.
    Rows(&'static str, &'static [Column]),
    /// One object as `field  value` lines.
    Object(&'static [Column]),
    /// Text as it came, whatever the format (PEM).
    Raw,
    /// A line for people (for an answer without a body); scripts get the
    /// body, empty, and the exit status.
    Message(String),
}

/// A listing's rows.
pub const fn list(columns: &'static [Column]) -> View {
    View::Rows("/items", columns)
}

pub fn print(body: &Body, view: &View, format: Format) -> Result<(), CliError> {
    let text = match (view, format) {
        (View::Raw, _) => match body {
            Body::Answer(answer) => answer.text()?,
            Body::Value(value) => value.to_string(),
        },
        (View::Message(line), Format::Table) => line.clone(),
        (View::Message(_), Format::Json | Format::Yaml) => String::new(),
        (_, Format::Json) => match body {
            Body::Answer(answer) => answer.text()?,
            Body::Value(value) => serde_json::to_string_pretty(value).unwrap_or_default(),
        },
        (_, Format::Yaml) => serde_yaml_ng::to_string(&json_of(body)?)
            .map_err(|e| CliError::Usage(format!("cannot show the answer as YAML: {e}")))?,
        (View::Rows(at, columns), Format::Table) => {
            let value = json_of(body)?;
            let items = value.pointer(at).and_then(Value::as_array).cloned().unwrap_or_default();
            let mut text = table(columns, &items);
            if let Some(cursor) = value.get("next_cursor").and_then(Value::as_str) {
                // On stderr: a table piped to another command stays a table.
                let _ = writeln!(std::io::stderr(), "more: repeat with --cursor {cursor}, or use --all");
            }
            if items.is_empty() {
                text = "(none)\n".to_owned();
            }
            text
        }
        (View::Object(columns), Format::Table) => fields(columns, &json_of(body)?),
    };
    let newline = if text.ends_with('\n') || text.is_empty() { "" } else { "\n" };
    write_stdout(format!("{text}{newline}").as_bytes())
}

/// Writes to stdout; a reader that stopped early (`| head`) is no error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Usage(format!("stdout: {e}"))),
        _ => Ok(()),
    }
}

fn json_of(body: &Body) -> Result<Value, CliError> {
    match body {
        Body::Answer(answer) => answer.json(),
        Body::Value(value) => Ok(value.clone()),
    }
}

/// Rows under upper-case headers, each column as wide as its widest cell.
pub fn table(columns: &[Column], items: &[Value]) -> String {
    let header: Vec<String> = columns.iter().map(|c| c.header.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(items.iter().map(|item| columns.iter().map(|c| cell(c, item)).collect()))
        .collect();
    let widths: Vec<usize> =
        (0..columns.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// One object as aligned `field  value` lines.
pub fn fields(columns: &[Column], item: &Value) -> String {
    let width = columns.iter().map(|c| c.header.chars().count()).max().unwrap_or(0);
    columns
        .iter()
        .map(|c| format!("{:<width$}  {}\n", format!("{}:", c.header), cell(c, item), width = width + 1))
        .collect()
}

fn cell(column: &Column, item: &Value) -> String {
    let value = item.pointer(column.pointer).unwrap_or(&Value::Null);
    let text = match (column.cell, value) {
        (_, Value::Null) => "-".to_owned(),
        (Cell::Time, Value::String(s)) => times::human(s),
        (Cell::Identifiers, Value::Array(ids)) => {
            ids.iter().map(|id| id.get("value").map_or_else(|| id.to_string(), plain)).collect::<Vec<_>>().join(", ")
        }
        (Cell::Text | Cell::Time, Value::Array(list)) => list.iter().map(plain).collect::<Vec<_>>().join(", "),
        (Cell::Json, value) => value.to_string(),
        (_, value) => plain(value),
    };
    let text = printable(&text);
    if text.is_empty() { "-".to_owned() } else { text }
}

/// Text from the server made safe for a terminal: one line (line breaks
/// become spaces) and no control characters, so a stored name or detail
/// cannot move the cursor, recolour the screen or rewrite what was shown.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLUMNS: &[Column] = &[
        column("serial", "/serial", Cell::Text),
        column("names", "/identifiers", Cell::Identifiers),
        column("policies", "/policies", Cell::Text),
        column("1h", "/expiring/1h", Cell::Text),
        column("detail", "/detail", Cell::Json),
    ];

    #[test]
    fn columns_align_and_missing_fields_show_a_dash() {
        let items = [
            json!({"serial": "ab", "identifiers": [{"type": "dns", "value": "web.test"}, {"type": "ip", "value": "10.0.0.1"}],
                   "policies": ["web", "db"], "expiring": {"1h": 3}, "detail": {"reason": "x"}}),
            json!({"serial": "abcdef", "identifiers": [], "policies": null}),
        ];
        let text = table(COLUMNS, &items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SERIAL  NAMES               POLICIES  1H  DETAIL");
        assert_eq!(lines[1], "ab      web.test, 10.0.0.1  web, db   3   {\"reason\":\"x\"}");
        assert_eq!(lines[2], "abcdef  -                   -         -   -");
    }

    #[test]
    fn terminal_control_sequences_are_not_passed_through() {
        assert_eq!(printable("ci\u{1b}[2J\u{1b}]0;owned\u{7}\nnext"), "ci\u{fffd}[2J\u{fffd}]0;owned\u{fffd} next");
        assert_eq!(printable("web.test, café"), "web.test, café");
    }

    #[test]
    fn an_object_is_one_field_a_line() {
        let text = fields(&COLUMNS[..2], &json!({"serial": "ab\ncd", "identifiers": [{"type": "dns", "value": "a"}]}));
        assert_eq!(text, "serial:  ab cd\nnames:   a\n");
    }
}
