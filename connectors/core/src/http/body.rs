//! Vendor bodies are read up to a limit, chunk by chunk, never whole and unbounded: a vendor
//! (or something pretending to be one) that answers with a gigabyte fails the task with
//! `permanent:response_too_large` after at most the limit was held in memory.
//!
//! The limits:
//! - error bodies: [`MAX_ERROR_BODY`], what a person reads of them; the rest is never read;
//! - JSON answers: [`MAX_JSON_BODY`] unless a connector documents larger pages (see
//!   `VendorClient::with_body_limit` and `docs/vendor-notes.md`);
//! - token endpoints: [`MAX_TOKEN_BODY`].
//!
//! Files the connectors stream into the sink (Graph's attachments) are not read here: they go
//! to the sink chunk by chunk, as they arrive.

use crate::{ConnectorError, Processor};

/// Error bodies are often long HTML pages: keep what a person can read.
pub const MAX_ERROR_BODY: usize = 2 * 1024;

/// A JSON answer dsr reads whole before decoding it. The largest pages dsr asks for are a
/// few MiB (1,000 Graph messages with `$select`ed address fields, 1,000 People contacts,
/// 500 BigQuery event rows); 32 MiB leaves ten times that and still bounds what one task can
/// make the worker hold.
pub const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

/// A token endpoint's answer: an access token (it must fit in an `Authorization` header,
/// which servers cap at 8–64 KiB) and a few fields.
pub const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Reads `response`'s body into `body` until it ends (`Ok(true)`) or `limit` bytes were read
/// and more follow (`Ok(false)`: the rest is left unread). On a transport error `body` keeps
/// what arrived before it.
async fn read_up_to(response: &mut reqwest::Response, body: &mut Vec<u8>, limit: usize) -> reqwest::Result<bool> {
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(false);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(true)
}

/// The start of an error body, at most [`MAX_ERROR_BODY`] bytes; what follows is never read.
/// A body that breaks off gives what arrived.
pub async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = read_up_to(&mut response, &mut body, MAX_ERROR_BODY).await;
    body
}

/// The whole body of `response` from `endpoint`, if it is at most `limit` bytes; a larger one
/// (announced by its length, or found while reading) fails without being read further.
pub async fn read_body(
    processor: Processor,
    endpoint: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ConnectorError> {
    if let Some(length) = response.content_length()
        && length > limit as u64
    {
        return Err(too_large(processor, endpoint, limit));
    }
    let mut body = Vec::new();
    match read_up_to(&mut response, &mut body, limit).await {
        Ok(true) => Ok(body),
        Ok(false) => Err(too_large(processor, endpoint, limit)),
        Err(e) => Err(ConnectorError::retry_later(
            processor,
            "transport",
            format!("the answer from {processor} broke off: {}", e.without_url()),
        )),
    }
}

/// A body over the limit: the vendor sends far more than a call asks for (a loop on its side,
/// or something else answering in its place). Retrying would read the same.
pub fn too_large(processor: Processor, endpoint: &str, limit: usize) -> ConnectorError {
    ConnectorError::permanent(
        processor,
        "response_too_large",
        format!(
            "{processor} answered {endpoint} with a body larger than the {} dsr reads of it; \
             reading stopped there. Report it with this message: the vendor sends far more \
             than the call asks for",
            size(limit)
        ),
    )
}

/// `2 KiB`, `32 MiB`.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::time::Duration;

    /// `total` bytes of JSON, sent in 64 KiB chunks made on the fly, with or without a length.
    pub(crate) fn endless(total: u64, announce: bool) -> axum::response::Response {
        const CHUNK: usize = 64 * 1024;
        let zeros = Bytes::from(vec![b'0'; CHUNK]);
        let chunks = total / CHUNK as u64;
        let stream = futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::convert::Infallible>(zeros.clone())));
        let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
        if announce {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, (chunks * CHUNK as u64).into());
        }
        response
    }

    async fn serve() -> String {
        let app = Router::new()
            .route("/chunked", get(|| async { endless(1 << 30, false) }))
            .route("/announced", get(|| async { endless(1 << 30, true) }))
            .route("/small", get(|| async { r#"{"ok":true}"# }))
            .route("/exact", get(|| async { vec![b' '; 4096] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn fetch(url: &str) -> reqwest::Response {
        crate::http::http_client(Duration::from_secs(20))
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_over_the_limit_fails_after_reading_at_most_the_limit() {
        let base = serve().await;
        let started = std::time::Instant::now();
        let err = read_body(
            Processor::Wix,
            "/chunked",
            fetch(&format!("{base}/chunked")).await,
            1 << 20,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "permanent:response_too_large", "{err}");
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains("/chunked") && err.to_string().contains("1 MiB"),
            "names the endpoint and the limit: {err}"
        );
        let err = read_body(
            Processor::Wix,
            "/announced",
            fetch(&format!("{base}/announced")).await,
            1 << 20,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "permanent:response_too_large", "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a gigabyte is not read to its end: {:?}",
            started.elapsed()
        );
        let small = read_body(Processor::Wix, "/small", fetch(&format!("{base}/small")).await, 1 << 20)
            .await
            .unwrap();
        assert_eq!(small, br#"{"ok":true}"#);
        let exact = read_body(Processor::Wix, "/exact", fetch(&format!("{base}/exact")).await, 4096)
            .await
            .unwrap();
        assert_eq!(exact.len(), 4096, "a body of exactly the limit is whole");
    }

    #[tokio::test]
    async fn an_error_body_is_read_only_as_far_as_a_person_reads_it() {
        let base = serve().await;
        let body = error_body(fetch(&format!("{base}/chunked")).await).await;
        assert_eq!(body.len(), MAX_ERROR_BODY);
        let body = error_body(fetch(&format!("{base}/small")).await).await;
        assert_eq!(body, br#"{"ok":true}"#);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(MAX_JSON_BODY), "32 MiB");
        assert_eq!(size(MAX_TOKEN_BODY), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
