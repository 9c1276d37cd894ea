//! OData paging, as Microsoft Graph (`@odata.nextLink`) and SuperOffice (`odata.nextLink`)
//! answer it: follow each next link unchanged, but only on a trusted origin.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::VendorClient;
use super::origin::OriginGuard;
use crate::ConnectorError;

/// An OData string literal for `$filter` (OData ABNF `SQUOTE-in-string`): single quotes
/// around the value, a `'` inside doubled, so a value cannot end the literal early.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
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
    next: Option<url::Url>,
    pages: usize,
    max_pages: usize,
    items: u64,
    refused: Option<ConnectorError>,
}

impl<'a> ODataPager<'a> {
    /// Starts at `first`; stops with an error after `max_pages`, a guard against a link loop.
    pub fn new(client: &'a VendorClient, key: &str, guard: &'a OriginGuard, first: url::Url, max_pages: usize) -> Self {
        ODataPager {
            client,
            key: key.to_string(),
            guard,
            next: Some(first),
            pages: 0,
            max_pages,
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
        self.pages += 1;
        if self.pages > self.max_pages {
            return Err(ConnectorError::permanent(
                self.client.processor(),
                "too_many_pages",
                format!(
                    "stopped after {} pages: the vendor's next links do not end",
                    self.max_pages
                ),
            ));
        }
        let page: ODataPage<T> = self.client.json(&self.key, |http| http.get(url.clone())).await?;
        // A refused next link fails the call after this page's items are handed over.
        // An empty link is no link: the last page (SuperOffice has sent `""` there).
        let link = page.next_link.as_deref().filter(|link| !link.is_empty());
        match link.map(|link| self.guard.check(link)).transpose() {
            Ok(next) => self.next = next,
            Err(refused) => self.refused = Some(refused),
        }
        self.items += page.value.len() as u64;
        Ok(Some(page.value))
    }

    /// Pages asked for so far (a page that failed included).
    pub fn pages(&self) -> usize {
        self.pages
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

    #[tokio::test]
    async fn next_links_that_never_end_stop_at_the_page_cap() {
        let cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let base_cell = cell.clone();
        let app = Router::new().route(
            "/loop",
            get(move || {
                let base = base_cell.get().cloned().unwrap_or_default();
                async move { axum::Json(serde_json::json!({"value": [1], "odata.nextLink": format!("{base}/loop")})) }
            }),
        );
        let base = serve(app).await;
        cell.set(base.clone()).unwrap();
        let guard = OriginGuard::new(crate::Processor::Superoffice, &url::Url::parse(&base).unwrap());
        let client = client();
        let first = url::Url::parse(&format!("{base}/loop")).unwrap();
        let mut pager = ODataPager::new(&client, "k", &guard, first, 3);
        let mut pages = 0;
        let err = loop {
            match pager.next_page::<u8>().await {
                Ok(Some(_)) => pages += 1,
                Ok(None) => panic!("a looping next link ended"),
                Err(e) => break e,
            }
        };
        assert_eq!(pages, 3);
        assert_eq!(err.code(), "permanent:too_many_pages", "{err}");
        assert!(!err.is_retryable());
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
