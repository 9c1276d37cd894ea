//! Talking to one OpenDSR processor as its controller: its discovery and certificate
//! (trusted only when issued by an authority for its domain, unexpired, not self-signed, and
//! with the pinned key), its signed answers (checked before they are read, §8.8), and the
//! calls of §7–9.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use dsr_connector::http::{classify, parse_retry_after};
use dsr_connector::{ConfigError, ConnectorError, Processor};
use http::HeaderMap;
use rustls::pki_types::{CertificateDer, UnixTime};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::config::ProcessorConfig;
use crate::protocol::{self, Callback, Created, Discovery, ErrorBody, StatusDoc};
use crate::signing::{self, Pin, Trust};

/// How long a certificate fetched from discovery is trusted before it is fetched again.
const CERTIFICATE_TTL: Duration = Duration::from_secs(3600);
/// How long a failed fetch or check stands before discovery is asked again (so unauthenticated
/// callbacks cannot make dsr fetch on every call).
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// The largest results document dsr reads from a processor.
const RESULTS_MAX: usize = 64 << 20;

/// Why a callback was refused, with the status §8.8 and the security guidelines give it.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRefusal {
    /// The domain header is missing or not the processor's, or its certificate is not
    /// trusted: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// The signature does not hold, or the body is not a callback: 400.
    #[error("{0}")]
    Invalid(String),
}

/// What is wrong with a signed answer or callback.
enum Fault {
    /// The domain header is missing or names another domain.
    Domain(String),
    /// The processor's certificate cannot be had or trusted.
    Certificate(ConnectorError),
    /// The signature is missing or does not hold.
    Signature(String),
}

pub struct Client {
    processor: Processor,
    base: url::Url,
    domain: String,
    trust: Trust,
    auth: Option<(http::HeaderName, SecretString)>,
    callback_url: Option<String>,
    http: reqwest::Client,
    certificate: Mutex<Option<Fetched>>,
}

/// The last certificate fetch: the trusted chain or why not, and when.
type Fetched = (Result<Vec<CertificateDer<'static>>, String>, Instant);

/// https, or http on the loopback interface.
fn acceptable(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    }
}

impl Client {
    pub fn new(processor: Processor, config: &ProcessorConfig) -> Result<Client, ConfigError> {
        let bad = |key: &str, why: String| ConfigError::new(processor, key, why);
        let base = url::Url::parse(config.url.trim_end_matches('/'))
            .map_err(|e| bad("url", format!("`{}` is not a URL: {e}", config.url)))?;
        if !acceptable(&base) || base.host_str().is_none() {
            return Err(bad(
                "url",
                format!("`{base}`: OpenDSR is spoken over https (http only on the loopback interface)"),
            ));
        }
        let domain = base.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        let pin = Pin::parse(&config.certificate_pin).map_err(|e| bad("certificate_pin", e))?;
        let trust = match &config.trust_roots {
            None => Trust::public_roots(),
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| bad("trust_roots", format!("cannot read {}: {e}", path.display())))?;
                Trust::from_roots_pem(&pem).map_err(|e| bad("trust_roots", format!("{}: {e}", path.display())))?
            }
        }
        .pinned(pin);
        let auth = match &config.auth_value {
            None => None,
            Some(secret) => {
                let name = http::HeaderName::from_bytes(config.auth_header.as_bytes())
                    .map_err(|_| bad("auth_header", format!("`{}` is not a header name", config.auth_header)))?;
                let value = secret.resolve().map_err(|e| bad("auth_value", e.to_string()))?;
                if http::HeaderValue::from_str(value.expose_secret()).is_err() {
                    return Err(bad(
                        "auth_value",
                        "is not a valid header value (control characters or non-ASCII)".into(),
                    ));
                }
                Some((name, value))
            }
        };
        if let Some(url) = &config.callback_url {
            let parsed = url::Url::parse(url).map_err(|e| bad("callback_url", format!("`{url}`: {e}")))?;
            if !acceptable(&parsed) {
                return Err(bad("callback_url", format!("`{url}`: callbacks come over https")));
            }
        }
        let http = dsr_connector::http::http_client(Duration::from_secs(30))
            .map_err(|e| bad("", format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            processor,
            base,
            domain,
            trust,
            auth,
            callback_url: config.callback_url.clone(),
            http,
            certificate: Mutex::new(None),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn callback_url(&self) -> Option<&str> {
        self.callback_url.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn with_auth(&self, call: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((name, value)) => {
                let mut value =
                    http::HeaderValue::from_str(value.expose_secret()).unwrap_or(http::HeaderValue::from_static(""));
                value.set_sensitive(true);
                call.header(name.clone(), value)
            }
            None => call,
        }
    }

    fn untrusted(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::permanent(self.processor, "certificate_untrusted", message)
    }

    fn unexpected(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::permanent(self.processor, "unexpected_response", message)
    }

    /// Sends `call`; a transport failure is temporary.
    async fn send(&self, call: reqwest::RequestBuilder) -> Result<reqwest::Response, ConnectorError> {
        call.send().await.map_err(|e| {
            ConnectorError::retry_later(
                self.processor,
                "transport",
                format!("cannot reach {}: {}", self.domain, e.without_url()),
            )
        })
    }

    /// An answer that is not the one hoped for, as the error it stands for (§7.5's error
    /// object's message kept as the processor's words).
    async fn refused(&self, answer: reqwest::Response, what: &str) -> ConnectorError {
        let status = answer.status();
        let after = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = answer.bytes().await.unwrap_or_default();
        let (code, said) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => (
                error.error.errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
                error.error.message.unwrap_or_default(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        match classify(self.processor, status, after, code, said) {
            ConnectorError::Permanent {
                processor,
                status,
                code,
                said,
                ..
            } => ConnectorError::Permanent {
                processor,
                status,
                code,
                message: format!("{what} was refused"),
                said,
            },
            other => other,
        }
    }

    /// The processor's certificate chain, from its discovery, trusted (cached an hour; a
    /// failure is remembered for half a minute).
    pub async fn certificate(&self) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
        if let Ok(cached) = self.certificate.lock()
            && let Some((found, at)) = cached.as_ref()
        {
            match found {
                Ok(chain) if at.elapsed() < CERTIFICATE_TTL => return Ok(chain.clone()),
                Err(why) if at.elapsed() < FAILURE_TTL => return Err(self.untrusted(why.clone())),
                _ => {}
            }
        }
        let fetched = self.fetch_certificate().await;
        if let Ok(mut cached) = self.certificate.lock() {
            match &fetched {
                Ok(chain) => *cached = Some((Ok(chain.clone()), Instant::now())),
                // Remembered only when the processor answered; a transport failure is not its say.
                Err(e) if e.code() == "permanent:certificate_untrusted" => {
                    *cached = Some((Err(e.to_string()), Instant::now()))
                }
                Err(_) => {}
            }
        }
        fetched
    }

    async fn fetch_certificate(&self) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
        let discovery = self.discovery().await?;
        let at = url::Url::parse(&discovery.processor_certificate)
            .map_err(|_| self.untrusted("discovery's processor_certificate is not a URL"))?;
        // §6.3: the certificate's domain is the processor's own.
        if at.host_str() != self.base.host_str() || !acceptable(&at) {
            return Err(self.untrusted(format!(
                "discovery names a certificate on another host than {} (§6.3: the domains must match)",
                self.domain
            )));
        }
        let answer = self.send(self.http.get(at)).await?;
        if !answer.status().is_success() {
            return Err(self.refused(answer, "the certificate download").await);
        }
        let pem = answer
            .text()
            .await
            .map_err(|e| ConnectorError::retry_later(self.processor, "transport", format!("the certificate: {e}")))?;
        let chain = signing::read_chain(&pem)
            .map_err(|e| self.untrusted(format!("the certificate discovery publishes: {e}")))?;
        self.trust
            .check(&chain, &self.domain, UnixTime::now())
            .map_err(|e| self.untrusted(format!("the certificate discovery publishes: {e}")))?;
        Ok(chain)
    }

    pub async fn discovery(&self) -> Result<Discovery, ConnectorError> {
        let answer = self.send(self.http.get(self.url("discovery"))).await?;
        if !answer.status().is_success() {
            return Err(self.refused(answer, "discovery").await);
        }
        let body = answer.bytes().await.unwrap_or_default();
        self.decode(&body, "discovery")
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8], endpoint: &str) -> Result<T, ConnectorError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| self.unexpected(format!("{endpoint} did not answer JSON")))?;
        dsr_connector::decode(value).map_err(|e| ConnectorError::unexpected_shape(self.processor, endpoint, &e))
    }

    /// Checks the domain and signature headers of an answer or callback over its raw body.
    async fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Fault> {
        let header = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| headers.get(*name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let domain = header([protocol::DOMAIN_HEADER, protocol::LEGACY_DOMAIN_HEADER]);
        if !domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(&self.domain)) {
            return Err(Fault::Domain(format!(
                "not signed for {}: its X-OpenDSR-Processor-Domain is missing or names another domain",
                self.domain
            )));
        }
        let signature = header([protocol::SIGNATURE_HEADER, protocol::LEGACY_SIGNATURE_HEADER])
            .ok_or_else(|| Fault::Signature("it carries no X-OpenDSR-Signature".into()))?;
        let chain = self.certificate().await.map_err(Fault::Certificate)?;
        signing::verify(&chain[0], body, &signature).map_err(|e| Fault::Signature(format!("its signature: {e}")))
    }

    /// A signed answer: its body when its status is `expected`, the signature checked; else
    /// the error it is.
    async fn signed(
        &self,
        answer: reqwest::Response,
        expected: &[u16],
        what: &str,
    ) -> Result<bytes::Bytes, ConnectorError> {
        let status = answer.status();
        if !expected.contains(&status.as_u16()) {
            return Err(self.refused(answer, what).await);
        }
        let headers = answer.headers().clone();
        let body = answer
            .bytes()
            .await
            .map_err(|e| ConnectorError::retry_later(self.processor, "transport", format!("{what}: {e}")))?;
        match self.check_signature(&headers, &body).await {
            Ok(()) => Ok(body),
            Err(Fault::Certificate(e)) => Err(e),
            Err(Fault::Domain(why) | Fault::Signature(why)) => Err(ConnectorError::permanent(
                self.processor,
                "bad_signature",
                format!("{what}'s answer is {why}; dsr does not read an answer it cannot authenticate"),
            )),
        }
    }

    /// The status of `id`, or none when the processor has no such request (404).
    pub async fn status(&self, id: &str) -> Result<Option<StatusDoc>, ConnectorError> {
        let answer = self
            .send(self.with_auth(self.http.get(self.url(&format!("requests/{id}")))))
            .await?;
        if answer.status() == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let signed = self.signed(answer, &[200], "the status call").await?;
        let doc: StatusDoc = self.decode(&signed, "GET /requests/{id}")?;
        if doc.subject_request_id != id {
            return Err(self.unexpected("the status answer is about another request"));
        }
        Ok(Some(doc))
    }

    /// Submits `body` (the request of §7.1.1); the processor's signed receipt.
    pub async fn submit(&self, body: Vec<u8>, id: &str) -> Result<Created, ConnectorError> {
        let call = self
            .http
            .post(self.url("requests"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        let answer = self.send(self.with_auth(call)).await?;
        let signed = self.signed(answer, &[201], "the request").await?;
        let created: Created = self.decode(&signed, "POST /requests")?;
        if created.subject_request_id != id {
            return Err(self.unexpected("the receipt is about another request"));
        }
        Ok(created)
    }

    /// Cancels `id` (§9); the processor's signed acknowledgement.
    pub async fn cancel(&self, id: &str) -> Result<crate::protocol::CancelDoc, ConnectorError> {
        let call = self.http.delete(self.url(&format!("requests/{id}")));
        let answer = self.send(self.with_auth(call)).await?;
        let signed = self.signed(answer, &[202], "the cancellation").await?;
        let doc: crate::protocol::CancelDoc = self.decode(&signed, "DELETE /requests/{id}")?;
        if doc.subject_request_id != id {
            return Err(self.unexpected("the cancellation answer is about another request"));
        }
        Ok(doc)
    }

    /// The results behind `results_url`, when it is on the processor's own origin (the
    /// credentials are sent nowhere else); their media type and bytes.
    pub async fn results(&self, results_url: &str) -> Result<Option<(String, bytes::Bytes)>, ConnectorError> {
        let Ok(at) = url::Url::parse(results_url) else {
            return Ok(None);
        };
        if at.origin() != self.base.origin() {
            return Ok(None);
        }
        let answer = self.send(self.with_auth(self.http.get(at))).await?;
        if !answer.status().is_success() {
            return Err(self.refused(answer, "the results download").await);
        }
        let media = answer
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let mut answer = answer;
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| ConnectorError::retry_later(self.processor, "transport", format!("the results: {e}")))?
        {
            if body.len() + chunk.len() > RESULTS_MAX {
                return Err(ConnectorError::permanent(
                    self.processor,
                    "response_too_large",
                    format!(
                        "the results at the processor's results_url are larger than dsr reads ({} MiB)",
                        RESULTS_MAX >> 20
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some((media, body.freeze())))
    }

    /// A status callback, authenticated as §8.8 and the security guidelines say: the domain
    /// is the processor's, its certificate trusted and pinned, the signature over the raw
    /// body holds, and only then is the body read; it must be addressed to this callback URL.
    pub async fn callback(&self, headers: &HeaderMap, body: &[u8]) -> Result<Callback, CallbackRefusal> {
        match self.check_signature(headers, body).await {
            Ok(()) => {}
            Err(Fault::Signature(why)) => return Err(CallbackRefusal::Invalid(format!("the callback: {why}"))),
            Err(Fault::Domain(why)) => return Err(CallbackRefusal::Unauthorized(format!("the callback is {why}"))),
            Err(Fault::Certificate(e)) => return Err(CallbackRefusal::Unauthorized(e.to_string())),
        }
        let callback: Callback = serde_json::from_slice(body)
            .map_err(|e| CallbackRefusal::Invalid(format!("the body is not a status callback: {e}")))?;
        if self.callback_url.as_deref() != Some(callback.status_callback_url.as_str()) {
            return Err(CallbackRefusal::Invalid(
                "the callback is addressed to another status_callback_url".into(),
            ));
        }
        Ok(callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::HeaderValue;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use dsr_fixtures::pki::TestPki;

    /// A processor that publishes the pinned certificate but signs its answers with
    /// another key, or for another domain.
    async fn forger(pki: &TestPki, domain: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let cert = pki.cert_pem.clone();
        let other = crate::SigningIdentity::from_pem(&pki.self_signed_key_pem, &pki.self_signed_pem).unwrap();
        let discovery = serde_json::json!({
            "api_version": "2.0",
            "supported_identities": [{"identity_type": "email", "identity_format": "raw"}],
            "supported_subject_request_types": ["access", "erasure"],
            "processor_certificate": format!("{origin}/v1/cert.pem"),
        });
        let status = |id: String| async move {
            let body = serde_json::to_vec(&serde_json::json!({
                "controller_id": "c", "expected_completion_time": "2027-01-01T00:00:00Z",
                "subject_request_id": id, "request_status": "completed",
            }))
            .unwrap();
            (body, id)
        };
        let router = Router::new()
            .route("/v1/discovery", get(move || async move { axum::Json(discovery) }))
            .route("/v1/cert.pem", get(move || async move { cert }))
            .route(
                "/v1/requests/{id}",
                get(move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let other = other.clone();
                    async move {
                        let (body, _) = status(id).await;
                        let mut response = body.clone().into_response();
                        let headers = response.headers_mut();
                        headers.insert(
                            "x-opendsr-signature",
                            HeaderValue::try_from(other.sign(&body).unwrap()).unwrap(),
                        );
                        headers.insert("x-opendsr-processor-domain", HeaderValue::from_static(domain));
                        response
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("{origin}/v1")
    }

    #[tokio::test]
    async fn an_answer_not_signed_by_the_pinned_certificate_or_for_another_domain_is_not_read() {
        for domain in ["127.0.0.1", "elsewhere.example"] {
            let dir = tempfile::tempdir().unwrap();
            let pki = TestPki::make(dir.path(), false);
            let url = forger(&pki, domain).await;
            let processor = Processor::opendsr("forger").unwrap();
            let client = Client::new(processor, &crate::connector::tests::config(dir.path(), &pki, url)).unwrap();
            let id = "a7551968-d5d6-44b2-9831-815ac9017798";
            let err = client.status(id).await.unwrap_err();
            assert_eq!(err.code(), "permanent:bad_signature", "{domain}: {err}");
        }
    }

    #[test]
    fn http_is_refused_except_on_the_loopback_interface() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::make(dir.path(), false);
        let processor = Processor::opendsr("acme").unwrap();
        for (url, ok) in [
            ("https://opendsr.example.com/v1", true),
            ("http://127.0.0.1:9/v1", true),
            ("http://opendsr.example.com/v1", false),
            ("ftp://opendsr.example.com/v1", false),
        ] {
            let config = crate::connector::tests::config(dir.path(), &pki, url.into());
            assert_eq!(Client::new(processor, &config).is_ok(), ok, "{url}");
        }
    }
}
