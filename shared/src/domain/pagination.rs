//! Cursor pagination in the abstract: a position in a key order, a direction and a page size.
//! The HTTP layer turns positions into opaque signed cursors; adapters scan from a position.

/// Which way a page is read from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The page after the position (`next`).
    Forward,
    /// The page before the position (`previous`).
    Backward,
}

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 100;
/// Page size when a client does not ask.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// Which page of a listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Exclusive starting key; `None` for the first page.
    pub position: Option<String>,
    /// Which way to read from `position`.
    pub direction: Direction,
    /// Newest first when true (the listing's order, not the scan's).
    pub descending: bool,
    /// Items per page, 1–100.
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { position: None, direction: Direction::Forward, descending: false, limit: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// Whether the store should scan its keys in descending order for this request.
    pub fn scan_descending(&self) -> bool {
        self.descending ^ (self.direction == Direction::Backward)
    }
}

/// One page of a listing, in the listing's order, with the positions of its neighbours.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Position to read the next page forward from, when there is one.
    pub next: Option<String>,
    /// Position to read the previous page backward from, when there is one.
    pub previous: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` `(key, item)` pairs read in scan order strictly past
    /// the request's position; the extra one only tells whether more exist.
    pub fn from_scan(mut scanned: Vec<(String, T)>, request: &PageRequest) -> Page<T> {
        let more = scanned.len() > request.limit;
        scanned.truncate(request.limit);
        if request.direction == Direction::Backward {
            scanned.reverse();
        }
        let first = scanned.first().map(|(k, _)| k.clone());
        let last = scanned.last().map(|(k, _)| k.clone());
        let (next, previous) = match request.direction {
            Direction::Forward => (if more { last } else { None }, request.position.as_ref().and(first)),
            Direction::Backward => (last, if more { first } else { None }),
        };
        Page { items: scanned.into_iter().map(|(_, item)| item).collect(), next, previous }
    }
}

impl<T> Page<T> {
    /// Builds a page from every item of a listing with its key, in any order (for stores that
    /// gather a listing in memory rather than scanning an index): sorts by key, then pages.
    pub fn from_sorted(mut items: Vec<(String, T)>, request: &PageRequest) -> Page<T> {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let descending = request.scan_descending();
        if descending {
            items.reverse();
        }
        let past = |key: &str| match &request.position {
            None => true,
            Some(p) if descending => key < p.as_str(),
            Some(p) => key > p.as_str(),
        };
        let scanned: Vec<(String, T)> = items.into_iter().filter(|(k, _)| past(k)).take(request.limit + 1).collect();
        Page::from_scan(scanned, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: std::ops::Range<u32>) -> Vec<(String, u32)> {
        range.map(|i| (format!("{i:03}"), i)).collect()
    }

    #[test]
    fn first_page_has_next_but_no_previous() {
        let req = PageRequest { limit: 3, ..PageRequest::default() };
        let page = Page::from_scan(keys(0..4), &req);
        assert_eq!(page.items, vec![0, 1, 2]);
        assert_eq!(page.next.as_deref(), Some("002"));
        assert_eq!(page.previous, None);
    }

    #[test]
    fn last_page_has_previous_but_no_next() {
        let req = PageRequest { limit: 3, position: Some("002".into()), ..PageRequest::default() };
        let page = Page::from_scan(keys(3..5), &req);
        assert_eq!(page.items, vec![3, 4]);
        assert_eq!(page.next, None);
        assert_eq!(page.previous.as_deref(), Some("003"));
    }

    #[test]
    fn sorted_listings_page_like_scanned_ones() {
        let req = PageRequest { limit: 2, descending: true, ..PageRequest::default() };
        let first = Page::from_sorted(keys(0..5), &req);
        assert_eq!(first.items, vec![4, 3]);
        let req = PageRequest { position: first.next.clone(), ..req };
        let second = Page::from_sorted(keys(0..5), &req);
        assert_eq!(second.items, vec![2, 1]);
        assert_eq!(second.previous.as_deref(), Some("002"));
    }

    #[test]
    fn backward_pages_come_back_in_listing_order() {
        let req = PageRequest {
            limit: 2,
            position: Some("003".into()),
            direction: Direction::Backward,
            ..PageRequest::default()
        };
        // The store scanned 2, 1, 0 (reverse of the listing order).
        let scanned = vec![("002".to_owned(), 2), ("001".to_owned(), 1), ("000".to_owned(), 0)];
        let page = Page::from_scan(scanned, &req);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.previous.as_deref(), Some("001"));
        assert_eq!(page.next.as_deref(), Some("002"));
        assert!(req.scan_descending());
    }
}
