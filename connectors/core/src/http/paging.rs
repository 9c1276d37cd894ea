//! Paging, bounded: every loop over a vendor's pages goes through a [`PageGuard`], which
//! requires progress (a next page token or link never seen before in this listing, and not an
//! endless run of empty pages) and stops at a page cap. [`ODataPager`] walks OData collections
//! as Microsoft Graph (`@odata.nextLink`) and SuperOffice (`odata.nextLink`) answer them:
//! each next link followed unchanged, but only on a trusted origin.

use std::collections::HashSet;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::client::VendorClient;
use super::origin::OriginGuard;
use crate::{ConnectorError, Processor};

/// An OData string literal for `$filter` (OData ABNF `SQUOTE-in-string`): single quotes
/// around the value, a `'` inside doubled, so a value cannot end the literal early.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Empty pages in a row that a listing may answer while still naming a next page. Google's
/// design rule for list methods allows it ("The API may return fewer results than the number
/// requested (including zero results), even if not at the end of the collection",
/// https://google.aip.dev/158), and Gmail is known to end a search with an empty page that
/// still carries a token; a run longer than this is a vendor going nowhere.
pub const MAX_EMPTY_PAGES: usize = 20;

/// The progress check and page cap of one paging loop (one listing of one endpoint). After
/// each page, [`PageGuard::next`] is told how many items it held and which next page it named;
/// it answers the next page to ask for, `None` at the end, or the error that stops the loop:
/// - `permanent:paging_stuck`: the next token or link is one this listing already followed (a
///   loop), or [`MAX_EMPTY_PAGES`] empty pages in a row still named a next page;
/// - `permanent:too_many_pages`: the listing did not end within the cap.
///
/// Tokens are remembered as SHA-256 digests, so a vendor's huge tokens do not pile up.
pub struct PageGuard {
    processor: Processor,
    endpoint: String,
    max_pages: usize,
    pages: usize,
    empty_run: usize,
    seen: HashSet<[u8; 32]>,
}

impl PageGuard {
    /// A listing of `endpoint` (named in errors) that may take up to `max_pages` pages.
    pub fn new(processor: Processor, endpoint: &str, max_pages: usize) -> PageGuard {
        PageGuard {
            processor,
            endpoint: endpoint.to_string(),
            max_pages,
            pages: 0,
            empty_run: 0,
            seen: HashSet::new(),
        }
    }

    /// The listing starts at `first` (an OData first URL): a next link back to it is a loop.
    pub fn starting_at(mut self, first: &str) -> PageGuard {
        self.seen.insert(digest(first));
        self
    }

    /// After a page of `items` items that named `next` (a token or link; empty is none): the
    /// next page to ask for, or `None` when the listing has ended.
    pub fn next<S: AsRef<str>>(&mut self, items: usize, next: Option<S>) -> Result<Option<S>, ConnectorError> {
        self.pages += 1;
        let Some(next) = next.filter(|n| !n.as_ref().is_empty()) else {
            return Ok(None);
        };
        if !self.seen.insert(digest(next.as_ref())) {
            return Err(self.stuck(format!(
                "page {} named a next page this listing had already read, so it would go round forever",
                self.pages
            )));
        }
        self.empty_run = if items == 0 { self.empty_run + 1 } else { 0 };
        if self.empty_run >= MAX_EMPTY_PAGES {
            return Err(self.stuck(format!(
                "{} empty pages in a row each named yet another next page",
                self.empty_run
            )));
        }
        if self.pages >= self.max_pages {
            return Err(ConnectorError::permanent(
                self.processor,
                "too_many_pages",
                format!(
                    "stopped after {} pages of {}: the vendor's next pages do not end. Report it \
                     with this message; `dsr retry` once the vendor is fixed",
                    self.pages, self.endpoint
                ),
            ));
        }
        Ok(Some(next))
    }

    /// Pages read so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    fn stuck(&self, why: String) -> ConnectorError {
        ConnectorError::permanent(
            self.processor,
            "paging_stuck",
            format!(
                "{} answered {} in pages that make no progress: {why}; stopped. Report it with \
                 this message; `dsr retry` once the vendor is fixed",
                self.processor, self.endpoint
            ),
        )
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// One page of an OData collection.
#[derive(Debug, Deserialize)]
pub struct ODataPage<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", alias = "odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// Walks an OData collection page by page (a loop the caller drives, so no closure has to
/// borrow across an await): `while let Some(items) = pager.next_page().await? { … }`.
pub struct ODataPager<'a> {
    client: &'a VendorClient,
    key: String,
    guard: &'a OriginGuard,
    pages: PageGuard,
    next: Option<url::Url>,
    items: u64,
    refused: Option<ConnectorError>,
}

impl<'a> ODataPager<'a> {
    /// Starts at `first`; a next link it already followed (or back to `first`) is
    /// `paging_stuck`, more than `max_pages` pages `too_many_pages`.
    pub fn new(client: &'a VendorClient, key: &str, guard: &'a OriginGuard, first: url::Url, max_pages: usize) -> Self {
        let pages = PageGuard::new(client.processor(), first.path(), max_pages).starting_at(first.as_str());
        ODataPager {
            client,
            key: key.to_string(),
            guard,
            pages,
            next: Some(first),
            items: 0,
            refused: None,
        }
    }

    /// The next page's items, or `None` after the last page.
    pub async fn next_page<T: DeserializeOwned>(&mut self) -> Result<Option<Vec<T>>, ConnectorError> {
        if let Some(refused) = self.refused.take() {
            return Err(refused);
        }
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page: ODataPage<T> = self.client.json(&self.key, |http| http.get(url.clone())).await?;
        // A refused next link fails the call after this page's items are handed over.
        // An empty link is no link: the last page (SuperOffice has sent `""` there).
        let next = self
            .pages
            .next(page.value.len(), page.next_link)
            .and_then(|link| link.map(|link| self.guard.check(&link)).transpose());
        match next {
            Ok(next) => self.next = next,
            Err(refused) => self.refused = Some(refused),
        }
        self.items += page.value.len() as u64;
        Ok(Some(page.value))
    }

    /// Pages read so far.
    pub fn pages(&self) -> usize {
        self.pages.pages()
    }

    /// Items returned so far.
    pub fn items(&self) -> u64 {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::client::VendorError;
    use axum::Router;
    use axum::extract::Query;
    use axum::routing::get;
    use std::collections::HashMap;
    use std::time::Duration;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn client() -> VendorClient {
        VendorClient::new(
            crate::Processor::Superoffice,
            crate::http::http_client(Duration::from_secs(5)).unwrap(),
            |_, _| VendorError::default(),
        )
    }

    #[tokio::test]
    async fn every_page_is_followed_on_the_vendors_origin_and_a_foreign_link_refused() {
        let base_cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let cell = base_cell.clone();
        let app = Router::new().route(
            "/users",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let base = cell.get().cloned().unwrap_or_default();
                async move {
                    let page: u32 = q.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let next = match page {
                        0 | 1 => serde_json::json!(format!("{base}/users?$skiptoken={}", page + 1)),
                        2 => serde_json::json!("https://evil.example/users?$skiptoken=3"),
                        _ => serde_json::Value::Null,
                    };
                    axum::Json(serde_json::json!({"value": [{"id": page}], "@odata.nextLink": next}))
                }
            }),
        );
        let base = serve(app).await;
        base_cell.set(base.clone()).unwrap();
        let guard = OriginGuard::new(crate::Processor::Superoffice, &url::Url::parse(&base).unwrap());
        let client = client();
        let first = url::Url::parse(&format!("{base}/users")).unwrap();
        let mut pager = ODataPager::new(&client, "k", &guard, first, 10);
        let mut seen = Vec::new();
        let err = loop {
            match pager.next_page::<serde_json::Value>().await {
                Ok(Some(items)) => seen.extend(items),
                Ok(None) => panic!("the foreign link was followed to the end"),
                Err(e) => break e,
            }
        };
        assert_eq!(seen.len(), 3, "three pages on the vendor's origin were read");
        assert_eq!(err.code(), "permanent:foreign_next_link", "{err}");
    }

    /// A fake listing at `/loop?n=…` whose page `n` holds `items(n)` and links to `next(n)`.
    async fn looping(items: fn(u32) -> usize, next: fn(u32) -> u32) -> String {
        let cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let base_cell = cell.clone();
        let app = Router::new().route(
            "/loop",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let base = base_cell.get().cloned().unwrap_or_default();
                let n: u32 = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
                async move {
                    axum::Json(serde_json::json!({
                        "value": vec![1; items(n)],
                        "odata.nextLink": format!("{base}/loop?n={}", next(n)),
                    }))
                }
            }),
        );
        let base = serve(app).await;
        cell.set(base.clone()).unwrap();
        base
    }

    /// Walks `/loop` with a cap of `cap` pages: the pages read, and the error that stopped it.
    async fn walk(base: &str, cap: usize) -> (usize, ConnectorError) {
        let guard = OriginGuard::new(crate::Processor::Superoffice, &url::Url::parse(base).unwrap());
        let client = client();
        let first = url::Url::parse(&format!("{base}/loop?n=0")).unwrap();
        let mut pager = ODataPager::new(&client, "k", &guard, first, cap);
        let mut pages = 0;
        let err = loop {
            match pager.next_page::<u8>().await {
                Ok(Some(_)) => pages += 1,
                Ok(None) => panic!("a listing without end ended"),
                Err(e) => break e,
            }
        };
        (pages, err)
    }

    #[tokio::test]
    async fn next_links_that_never_end_stop_at_the_page_cap() {
        let base = looping(|_| 1, |n| n + 1).await;
        let (pages, err) = walk(&base, 3).await;
        assert_eq!(pages, 3);
        assert_eq!(err.code(), "permanent:too_many_pages", "{err}");
        assert!(err.to_string().contains("/loop"), "names the endpoint: {err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_next_link_already_followed_is_a_loop_stopped_at_once() {
        // Page 0 → 1 → 2 → 1: the fourth link is one already followed.
        let base = looping(|_| 1, |n| if n == 2 { 1 } else { n + 1 }).await;
        let (pages, err) = walk(&base, 1000).await;
        assert_eq!(pages, 3);
        assert_eq!(err.code(), "permanent:paging_stuck", "{err}");
        assert!(err.to_string().contains("/loop"), "names the endpoint: {err}");
        assert!(!err.is_retryable());
        // A link back to the first page is a loop too.
        let base = looping(|_| 1, |_| 0).await;
        let (pages, err) = walk(&base, 1000).await;
        assert_eq!((pages, err.code().as_str()), (1, "permanent:paging_stuck"), "{err}");
    }

    #[tokio::test]
    async fn empty_pages_that_keep_naming_a_next_page_are_stopped() {
        let base = looping(|_| 0, |n| n + 1).await;
        let (pages, err) = walk(&base, 1000).await;
        assert_eq!(pages, MAX_EMPTY_PAGES);
        assert_eq!(err.code(), "permanent:paging_stuck", "{err}");
        assert!(err.to_string().contains("empty pages"), "{err}");
    }

    #[test]
    fn the_guard_lets_a_listing_end_and_allows_a_few_empty_pages() {
        let mut guard = PageGuard::new(Processor::Google, "users.messages.list", 10);
        assert_eq!(guard.next(500, Some("a")).unwrap(), Some("a"));
        // Google may answer an empty page that still names a next one (AIP-158).
        assert_eq!(guard.next(0, Some("b")).unwrap(), Some("b"));
        assert_eq!(guard.next(3, Some("c".to_string())).unwrap().as_deref(), Some("c"));
        assert_eq!(
            guard.next(0, Some("")).unwrap(),
            None,
            "an empty token ends the listing"
        );
        assert_eq!(guard.next::<&str>(0, None).unwrap(), None);
        assert_eq!(guard.pages(), 5);
        let err = PageGuard::new(Processor::Google, "users.messages.list", 10)
            .next(1, Some("x"))
            .and_then(|_| {
                PageGuard::new(Processor::Google, "e", 10)
                    .starting_at("x")
                    .next(1, Some("x"))
            })
            .unwrap_err();
        assert_eq!(err.code(), "permanent:paging_stuck");
    }

    #[test]
    fn filter_literals_cannot_break_out() {
        assert_eq!(odata_literal("o'hara@example.ie"), "'o''hara@example.ie'");
        assert_eq!(odata_literal("x' or 1 eq 1 or 'y"), "'x'' or 1 eq 1 or ''y'");
    }

    #[test]
    fn both_odata_spellings_of_the_next_link_parse() {
        let graph: ODataPage<u8> = serde_json::from_str(r#"{"value":[1],"@odata.nextLink":"https://x/2"}"#).unwrap();
        let superoffice: ODataPage<u8> = serde_json::from_str(r#"{"value":[1],"odata.nextLink":null}"#).unwrap();
        assert_eq!(graph.next_link.as_deref(), Some("https://x/2"));
        assert_eq!(superoffice.next_link, None);
    }
}
