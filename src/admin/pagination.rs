//! Cursor pagination: opaque cursors that encode where the last page ended.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::problem::ApiError;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::Malformed(format!("limit {n} is outside 1..={MAX_LIMIT}"))),
    }
}

pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    // An empty cursor decodes to the empty string, which would read as
    // "after nothing": no cursor this server issues is empty.
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::Malformed("cursor is not one this server issued".into()))
}

/// Turns `limit + 1` fetched rows into a page: the extra row only says
/// there is more, and the last row shown becomes the cursor.
pub fn page<R, T>(mut rows: Vec<R>, limit: i64, cursor_of: impl Fn(&R) -> String, view: impl Fn(R) -> T) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more { rows.last().map(|r| URL_SAFE_NO_PAD.encode(cursor_of(r))) } else { None };
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}
