//! The subject's pages under `/privacy/` (docs/subject.md): the request form, the proof that
//! the address is theirs (a link or a code by e-mail), and the download of a finished
//! request behind an expiring link and a fresh one-time code. Server-rendered, bokmål and
//! English, no script at all, no third-party resource; served when `[smtp]` and `[subject]
//! public_url` are set.

mod download;
mod form;
mod pages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dsr_jobs::model::Lang;

use super::AppState;
use crate::config::Config;
use crate::error::CliError;
use crate::subject::mail::Mailer;

/// What the subject's pages share.
pub struct SubjectSide {
    mailer: Mailer,
    pages: pages::Pages,
    /// Form submissions per client address in the last hour.
    clients: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl SubjectSide {
    /// The subject's side when `[smtp]` and `[subject] public_url` are set.
    pub fn configured(config: &Config) -> Result<Option<Arc<SubjectSide>>, CliError> {
        let (Some(smtp), Some(_)) = (&config.smtp, &config.subject.public_url) else {
            return Ok(None);
        };
        let mailer = Mailer::new(smtp).map_err(|e| crate::error::bad_input(e.to_string()))?;
        Ok(Some(Arc::new(SubjectSide {
            mailer,
            pages: pages::Pages::new().map_err(|e| CliError::Failed(anyhow::anyhow!("the subject's pages: {e}")))?,
            clients: Mutex::new(HashMap::new()),
        })))
    }

    /// Counts a submission from `ip`; false when it is over `per_hour`.
    fn client_allowed(&self, ip: IpAddr, per_hour: u32) -> bool {
        let Ok(mut clients) = self.clients.lock() else {
            return false;
        };
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        clients.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < hour);
            !times.is_empty()
        });
        let times = clients.entry(ip).or_default();
        if times.len() >= per_hour as usize {
            return false;
        }
        times.push(now);
        true
    }
}

/// The subject's side, for a handler: its routes are only served when it is configured, so
/// the refusal is for a request that raced a reconfiguration.
pub(super) struct Side(Arc<SubjectSide>);

impl std::ops::Deref for Side {
    type Target = SubjectSide;
    fn deref(&self) -> &SubjectSide {
        &self.0
    }
}

impl axum::extract::FromRequestParts<AppState> for Side {
    type Rejection = Response;

    async fn from_request_parts(_: &mut axum::http::request::Parts, state: &AppState) -> Result<Side, Response> {
        state.subject.clone().map(Side).ok_or_else(|| {
            guarded(
                (
                    axum::http::StatusCode::NOT_FOUND,
                    "the subject's pages are not offered here",
                )
                    .into_response(),
            )
        })
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/privacy/style.css", get(style))
        .route("/privacy/request", get(form::show).post(form::submit))
        .route("/privacy/request/{id}", get(form::waiting).post(form::enter_code))
        .route("/privacy/confirm/{token}", get(form::confirm_page).post(form::confirm))
        .route("/privacy/download/{token}", get(download::page))
        .route(
            "/privacy/download/{token}/code",
            axum::routing::post(download::send_code),
        )
        .route(
            "/privacy/download/{token}/unlock",
            axum::routing::post(download::unlock),
        )
        .route("/privacy/download/{token}/file", get(download::file))
        // Every answer under /privacy, the extractors' refusals included, carries the headers.
        .layer(axum::middleware::map_response(|response: Response| async move {
            guarded(response)
        }))
}

/// Deletes unverified submissions older than a day, every ten minutes, until `stop`.
pub async fn purge(engine: dsr_jobs::Engine, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let before = engine.ledger().now() - chrono::Duration::days(1);
        match engine.ledger().purge_submissions(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "unverified request form submissions deleted after a day"),
            Err(e) => tracing::warn!(error = %e, "could not delete old request form submissions"),
        }
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("templates/style.css"),
    )
        .into_response()
}

/// The client's address: the peer's, or behind a proxy (`[subject] client_address_header`)
/// the last address that header lists (the one the proxy itself added).
pub(super) fn client_ip(peer: &super::tls::Peer, headers: &HeaderMap, config: &Config) -> IpAddr {
    // The last line of the header, and its last entry: what the proxy itself appended (a
    // client can forge earlier ones). `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443`.
    let read = |entry: &str| {
        let entry = entry.trim();
        entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    };
    config
        .subject
        .client_address_header
        .as_deref()
        .and_then(|name| headers.get_all(name).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(read)
        .unwrap_or(peer.0.ip())
}

/// The words for `lang`: bokmål or English.
pub(super) fn pick<'a>(lang: Lang, nb: &'a str, en: &'a str) -> &'a str {
    if lang == Lang::Nb { nb } else { en }
}

impl SubjectSide {
    /// A page that says one thing (`heading`, `text`, each as bokmål and English), perhaps
    /// with a button or a link (`extra`).
    pub(super) fn say(
        &self,
        state: &AppState,
        status: axum::http::StatusCode,
        lang: Lang,
        heading: (&str, &str),
        text: (&str, &str),
        extra: minijinja::Value,
    ) -> Response {
        self.pages.message(
            status,
            lang,
            &state.config.controller.name,
            pick(lang, heading.0, heading.1),
            &[pick(lang, text.0, text.1).to_string()],
            extra,
        )
    }

    /// Our side failed (the ledger, the storage, the mail server): the log says why, the
    /// subject is asked to try again.
    pub(super) fn trouble(&self, state: &AppState, lang: Lang, error: &str) -> Response {
        tracing::warn!(%error, "a subject page could not be served");
        self.say(
            state,
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            lang,
            ("Noe gikk galt hos oss", "Something went wrong on our side"),
            ("Prøv igjen om noen minutter.", "Please try again in a few minutes."),
            minijinja::context! {},
        )
    }
}

/// The page's language: `?lang=`, the form's `lang`, else the browser's first choice of
/// bokmål or English, else the controller's default.
fn language(asked: Option<&str>, headers: &HeaderMap, config: &Config) -> Lang {
    if let Some(lang) = asked.and_then(|l| l.parse::<Lang>().ok()) {
        return lang;
    }
    let accepted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for tag in accepted.split(',') {
        let tag = tag.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match tag.split('-').next().unwrap_or_default() {
            "nb" | "no" | "nn" => return Lang::Nb,
            "en" => return Lang::En,
            _ => {}
        }
    }
    config.controller.default_language
}

/// The headers every subject page carries: no script may run, nothing may frame it, and
/// the token in its address goes nowhere (no referrer, no cache).
pub(in crate::server) fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn behind_a_proxy_the_client_is_the_last_address_the_proxy_added() {
        let peer = crate::server::tls::Peer("10.0.0.1:40000".parse().unwrap());
        let mut config = Config::default();
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.7, 192.0.2.10:5678"));
        assert_eq!(
            client_ip(&peer, &headers, &config),
            peer.0.ip(),
            "not configured: the peer"
        );
        config.subject.client_address_header = Some("X-Forwarded-For".into());
        assert_eq!(
            client_ip(&peer, &headers, &config),
            "192.0.2.10".parse::<IpAddr>().unwrap()
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("[2001:db8::1]:443"));
        assert_eq!(
            client_ip(&peer, &headers, &config),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(&peer, &headers, &config), peer.0.ip(), "unreadable: the peer");
    }
}
