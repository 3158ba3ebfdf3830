//! Keyset pagination: a page is at most `limit` rows after the cursor, in key order, and the
//! cursor of the next page is the key of the last row returned.

use serde::Serialize;
use utoipa::ToSchema;

/// The largest page a list endpoint returns.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many rows (1..=[`MAX_PAGE_LIMIT`]; larger values are clamped).
    pub limit: u32,
    /// Rows whose key is greater than this (the `next_cursor` of the previous page).
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE_LIMIT)) + 1
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Page<T> {
    /// The rows, in key order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts the `fetch()` rows read for `request` to a page and computes the next cursor.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        key: impl Fn(&T) -> &str,
    ) -> Self {
        let limit = usize::try_from(request.limit.clamp(1, MAX_PAGE_LIMIT)).unwrap_or(1);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| key(row).to_owned())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}
