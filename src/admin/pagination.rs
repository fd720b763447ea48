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

/// Where a page starts: the position the request's `cursor` (made by
/// [`page`]) encodes, parsed as its listing needs; None without a cursor.
/// Every listing refuses a cursor it did not issue with the same problem.
pub fn after<T>(cursor: Option<&str>, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    let Some(cursor) = cursor else { return Ok(None) };
    // An empty cursor decodes to the empty string, which would read as
    // "after nothing": no cursor this server issues is empty.
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| parse(&text))
        .map(Some)
        .ok_or_else(|| ApiError::Malformed("cursor is not one this server issued".into()))
}

/// [`after`] for listings in id order.
pub fn after_id(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    after(cursor, |text| text.parse().ok())
}

/// Turns `limit + 1` fetched rows into a page: the extra row only says
/// there is more, and the last row shown becomes the cursor.
pub fn page<R, T>(mut rows: Vec<R>, limit: i64, cursor_of: impl Fn(&R) -> String, view: impl Fn(R) -> T) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more { rows.last().map(|r| URL_SAFE_NO_PAD.encode(cursor_of(r))) } else { None };
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_page_cursor_leads_to_the_next_page() {
        let page = page(vec![7_i64, 8, 9], 2, |id| id.to_string(), |id| id);
        assert_eq!(page.items, [7, 8]);
        assert_eq!(after_id(page.next_cursor.as_deref()).unwrap(), Some(8));
        assert_eq!(after_id(None).unwrap(), None);
    }

    #[test]
    fn a_cursor_this_server_did_not_issue_is_refused() {
        for cursor in ["%%%", "bm90LWFuLWlk"] {
            assert!(matches!(after_id(Some(cursor)), Err(ApiError::Malformed(_))), "{cursor}");
        }
    }
}
