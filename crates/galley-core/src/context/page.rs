use serde::Serialize;

/// The list endpoints' paging (records and collections).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: usize,
    pub per_page: usize,
    pub skip_total: bool,
}

/// One page of a list, in PocketBase's shape; totals are `-1` when `skipTotal` was asked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult<T> {
    pub items: Vec<T>,
    pub page: usize,
    pub per_page: usize,
    pub total_items: i64,
    pub total_pages: i64,
}

impl<T> ListResult<T> {
    pub fn new(items: Vec<T>, page: Page, total: Option<usize>) -> Self {
        let (total_items, total_pages) = match total {
            Some(t) => (t as i64, t.div_ceil(page.per_page.max(1)) as i64),
            None => (-1, -1),
        };
        ListResult {
            items,
            page: page.page,
            per_page: page.per_page,
            total_items,
            total_pages,
        }
    }
}
