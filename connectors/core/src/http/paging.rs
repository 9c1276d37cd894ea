//! OData paging, as Microsoft Graph (`@odata.nextLink`) and SuperOffice (`odata.nextLink`)
//! answer it: follow each next link unchanged, but only on a trusted origin.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::VendorClient;
use super::origin::OriginGuard;
use crate::ConnectorError;

/// One page of an OData collection.
#[derive(Debug, Deserialize)]
pub struct ODataPage<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", alias = "odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// Fetches `first` and every page after it, handing each page's items to `each`. Returns
/// how many items there were. Stops at `max_pages` as a guard against a link loop.
pub async fn for_each_odata_page<T: DeserializeOwned>(
    client: &VendorClient,
    key: &str,
    guard: &OriginGuard,
    first: url::Url,
    max_pages: usize,
    mut each: impl AsyncFnMut(Vec<T>) -> Result<(), ConnectorError>,
) -> Result<u64, ConnectorError> {
    let mut next = Some(first);
    let mut pages = 0usize;
    let mut items = 0u64;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > max_pages {
            return Err(ConnectorError::Permanent {
                processor: client.processor(),
                code: "too_many_pages".into(),
                message: format!(
                    "stopped after {max_pages} pages: the vendor's next links do not end"
                ),
            });
        }
        let page: ODataPage<T> = client.json(key, |http| http.get(url.clone())).await?;
        items += page.value.len() as u64;
        each(page.value).await?;
        next = page
            .next_link
            .as_deref()
            .map(|link| guard.check(link))
            .transpose()?;
    }
    Ok(items)
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
            "test",
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
                    let page: u32 = q
                        .get("$skiptoken")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let next = match page {
                        0 | 1 => serde_json::json!(format!("{base}/users?$skiptoken={}", page + 1)),
                        2 => serde_json::json!("https://evil.example/users?$skiptoken=3"),
                        _ => serde_json::Value::Null,
                    };
                    axum::Json(
                        serde_json::json!({"value": [{"id": page}], "@odata.nextLink": next}),
                    )
                }
            }),
        );
        let base = serve(app).await;
        base_cell.set(base.clone()).unwrap();
        let guard = OriginGuard::new("test", &url::Url::parse(&base).unwrap());
        let mut seen = Vec::new();
        let result = for_each_odata_page::<serde_json::Value>(
            &client(),
            "k",
            &guard,
            url::Url::parse(&format!("{base}/users")).unwrap(),
            10,
            async |items| {
                seen.extend(items);
                Ok(())
            },
        )
        .await;
        assert_eq!(
            seen.len(),
            3,
            "three pages on the vendor's origin were read"
        );
        let err = result.unwrap_err();
        assert_eq!(err.code(), "permanent:foreign_next_link", "{err}");
    }

    #[test]
    fn both_odata_spellings_of_the_next_link_parse() {
        let graph: ODataPage<u8> =
            serde_json::from_str(r#"{"value":[1],"@odata.nextLink":"https://x/2"}"#).unwrap();
        let superoffice: ODataPage<u8> =
            serde_json::from_str(r#"{"value":[1],"odata.nextLink":null}"#).unwrap();
        assert_eq!(graph.next_link.as_deref(), Some("https://x/2"));
        assert_eq!(superoffice.next_link, None);
    }
}
