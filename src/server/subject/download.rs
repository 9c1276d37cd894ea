//! The delivery link: `/privacy/download/{token}` says what the file is and until when the
//! link works; downloading needs a fresh one-time code sent to the same address (so a link a
//! mail filter opened or someone forwarded hands nothing over). The right code gives a
//! short-lived cookie for this link alone, good for one download (and resuming it with
//! `Range`); the file streams from the export storage. Every open, code, wrong try, refusal
//! and download is an audit event.

use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use dsr_jobs::confirmation::confirmation_keys;
use dsr_jobs::ledger::subject::{Delivery, LinkRefusal};
use dsr_jobs::model::{Lang, Request};
use minijinja::context;

use super::form::{CodeBody, LangQuery};
use super::{Side, SubjectSide, language, pick};
use crate::server::AppState;
use crate::subject::{secrets, texts};

/// The cookie that carries a download grant, scoped to its link's path.
const GRANT_COOKIE: &str = "dsr_download";
/// How long a right code lets the link download.
const GRANT_MINUTES: i64 = 30;
/// The least time between two codes for a link (the subject's inbox is not for whoever
/// holds a forwarded link to fill); a link may have twice as many codes as downloads sent.
const SECONDS_BETWEEN_CODES: i64 = 60;

fn codes_per_link(delivery: &Delivery) -> u32 {
    delivery.max_downloads.saturating_mul(2).max(4)
}

struct Open {
    delivery: Delivery,
    request: Request,
    lang: Lang,
}

/// The link's delivery and request when it still opens (`resuming` a download already
/// counted: even if that used the link up); else the page that says why.
async fn open_link(
    state: &AppState,
    side: &SubjectSide,
    token: &str,
    asked: Option<&str>,
    headers: &HeaderMap,
    resuming: bool,
) -> Result<Open, Response> {
    let ledger = state.engine.ledger();
    let fallback = language(asked, headers, &state.config);
    let delivery = if secrets::looks_like_token(token) {
        ledger
            .delivery_by_token(&secrets::sha256(token))
            .await
            .map_err(|e| side.trouble(state, fallback, &e.to_string()))?
    } else {
        None
    };
    let Some(delivery) = delivery else {
        return Err(side.say(
            state,
            StatusCode::NOT_FOUND,
            fallback,
            ("Ukjent lenke", "Unknown link"),
            (
                "Denne lenken finnes ikke. Kontroller at hele lenken fra e-posten er med.",
                "This link does not exist. Check that the whole link from the e-mail is there.",
            ),
            context! {},
        ));
    };
    let request = ledger
        .get_request(&delivery.request_id)
        .await
        .map_err(|e| side.trouble(state, fallback, &e.to_string()))?;
    let lang = asked.and_then(|l| l.parse::<Lang>().ok()).unwrap_or(request.lang);
    // The export deleted at the end of its retention: the link has nothing left to give.
    let gone = request.exports_expired_at.is_some() || request.pseudonymised_at.is_some();
    let refusal = if gone {
        Some(LinkRefusal::Expired)
    } else {
        delivery.refusal_to(ledger.now(), resuming)
    };
    let Some(why) = refusal else {
        return Ok(Open {
            delivery,
            request,
            lang,
        });
    };
    if let Err(e) = ledger.delivery_refused(&delivery, why).await {
        tracing::warn!(error = %e, "could not record a refused delivery link");
    }
    let (status, heading, text) = match why {
        LinkRefusal::Expired => (
            StatusCode::GONE,
            ("Lenken er utløpt", "The link has expired"),
            (
                "Lenken virket til en bestemt dato, og den er passert. Kontakt oss for en ny lenke.",
                "The link worked until a set date, which has passed. Contact us for a new link.",
            ),
        ),
        LinkRefusal::UsedUp => (
            StatusCode::GONE,
            ("Lenken er brukt opp", "The link is used up"),
            (
                "Filen er lastet ned så mange ganger som lenken tillater. Kontakt oss for en ny lenke.",
                "The file was downloaded as many times as the link allows. Contact us for a new link.",
            ),
        ),
        LinkRefusal::Replaced => (
            StatusCode::GONE,
            ("Lenken er erstattet", "The link was replaced"),
            (
                "Vi har sendt deg en nyere lenke; bruk den i den siste e-posten fra oss.",
                "We sent you a newer link; use the one in our latest e-mail.",
            ),
        ),
        LinkRefusal::Locked => (
            StatusCode::FORBIDDEN,
            ("Lenken er sperret", "The link is locked"),
            (
                "Koden ble skrevet feil for mange ganger. Kontakt oss for en ny lenke.",
                "The code was entered wrongly too many times. Contact us for a new link.",
            ),
        ),
    };
    Err(side.say(state, status, lang, heading, text, context! {}))
}

fn grant_of(headers: &HeaderMap) -> Option<String> {
    crate::server::cookies::token(headers, GRANT_COOKIE)
}

/// The cookie holds this link's grant, unexpired and not yet used for its download.
fn unlocked(open: &Open, headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> bool {
    grant_of(headers).is_some_and(|grant| {
        open.delivery.grant_sha256.as_deref() == Some(secrets::sha256(&grant).as_str())
            && open.delivery.grant_expires_at.is_some_and(|t| t > now)
            && !open.delivery.grant_used
    })
}

/// The file the link hands over: the bundle, or the confirmation's page.
fn export_of(request: &Request) -> Option<(String, &'static str, bool)> {
    if let Some(bundle) = &request.bundle {
        return Some((bundle.clone(), "application/zip", true));
    }
    request.confirmation.as_ref()?;
    Some((
        confirmation_keys(&request.id).html.to_string(),
        "text/html; charset=utf-8",
        false,
    ))
}

async fn render_page(
    state: &AppState,
    side: &SubjectSide,
    token: &str,
    open: &Open,
    headers: &HeaderMap,
    code_sent: bool,
    error: Option<String>,
) -> Response {
    let lang = open.lang;
    let now = state.engine.ledger().now();
    let Some((location, _, bundle)) = export_of(&open.request) else {
        return side.trouble(state, lang, "the request has neither a bundle nor a confirmation");
    };
    let size = match crate::wiring::export_store(&state.config) {
        Ok(store) => {
            let key = store
                .key_of(&location)
                .unwrap_or_else(|| dsr_jobs::storage::key(&location));
            store.size(&key).await.ok()
        }
        Err(_) => None,
    };
    let file_name = location.rsplit('/').next().unwrap_or_default().to_string();
    let base = format!("/privacy/download/{token}");
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    side.pages.render(
        status,
        "download.html",
        lang,
        &state.config.controller.name,
        context! {
            heading => if bundle {
                pick(lang, "Dataene dine", "Your data")
            } else {
                pick(lang, "Bekreftelsen din", "Your confirmation")
            },
            bundle => bundle,
            file_name => file_name,
            size => size.map(|b| bytesize::ByteSize(b).to_string()),
            expires => open.delivery.expires_at.with_timezone(&state.config.zone()).format("%Y-%m-%d %H:%M %Z").to_string(),
            expires_iso => dsr_jobs::ledger::ts(open.delivery.expires_at),
            left => open.delivery.max_downloads.saturating_sub(open.delivery.downloads),
            unlocked => unlocked(open, headers, now),
            code_sent => code_sent,
            error => error,
            here => base.clone(),
            file_href => format!("{base}/file"),
            code_action => format!("{base}/code"),
            unlock_action => format!("{base}/unlock"),
        },
    )
}

/// `GET /privacy/download/{token}`.
pub async fn page(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    match open_link(&state, &side, &token, q.lang(), &headers, false).await {
        Ok(open) => {
            if let Err(e) = state.engine.ledger().delivery_opened(&open.delivery).await {
                return side.trouble(&state, open.lang, &e.to_string());
            }
            render_page(&state, &side, &token, &open, &headers, false, None).await
        }
        Err(page) => page,
    }
}

/// `POST /privacy/download/{token}/code`: a fresh code to the request's address.
pub async fn send_code(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(body): Form<LangQuery>,
) -> Response {
    let open = match open_link(&state, &side, &token, body.lang(), &headers, false).await {
        Ok(open) => open,
        Err(page) => return page,
    };
    let lang = open.lang;
    let Some(to) = open.request.identities.emails.first().map(|e| e.as_str().to_string()) else {
        return side.trouble(&state, lang, "the request has no e-mail address");
    };
    let code = secrets::code();
    let ttl = state.config.delivery.code_ttl;
    let ledger = state.engine.ledger();
    let expires = ledger.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15));
    let recorded = ledger
        .delivery_code_sent(
            &open.delivery,
            &secrets::code_sha256(&open.delivery.id, &code),
            expires,
            codes_per_link(&open.delivery),
            chrono::Duration::seconds(SECONDS_BETWEEN_CODES),
        )
        .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            let error = if open.delivery.codes_sent >= codes_per_link(&open.delivery) {
                pick(
                    lang,
                    "Det er sendt så mange koder for denne lenken som den tillater. Kontakt oss for en ny lenke.",
                    "As many codes were sent for this link as it allows. Contact us for a new link.",
                )
            } else {
                pick(
                    lang,
                    "Vi sendte en kode for under ett minutt siden; se etter den i e-posten din.",
                    "We sent a code less than a minute ago; look for it in your e-mail.",
                )
            };
            return render_page(&state, &side, &token, &open, &headers, true, Some(error.to_string())).await;
        }
        Err(e) => return side.trouble(&state, lang, &e.to_string()),
    }
    let mail = texts::download_code(&to, lang, &state.config.controller.name, &code, ttl.as_secs() / 60);
    if let Err(e) = side.mailer.send(mail).await {
        return side.trouble(&state, lang, &e.to_string());
    }
    render_page(&state, &side, &token, &open, &headers, true, None).await
}

/// `POST /privacy/download/{token}/unlock`: the code; right, a grant cookie for this link.
pub async fn unlock(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(body): Form<CodeBody>,
) -> Response {
    let open = match open_link(&state, &side, &token, body.lang(), &headers, false).await {
        Ok(open) => open,
        Err(page) => return page,
    };
    let ledger = state.engine.ledger();
    let lang = open.lang;
    let now = ledger.now();
    let entered = secrets::code_sha256(&open.delivery.id, body.code());
    let current = open.delivery.code_expires_at.is_some_and(|t| t > now);
    if current && open.delivery.code_sha256.as_deref() == Some(entered.as_str()) {
        let grant = secrets::token();
        let until = now + chrono::Duration::minutes(GRANT_MINUTES);
        return match ledger
            .delivery_unlocked(&open.delivery, &entered, &secrets::sha256(&grant), until)
            .await
        {
            Ok(true) => {
                let secure = state
                    .config
                    .subject
                    .public_url
                    .as_ref()
                    .is_some_and(|u| u.scheme() == "https");
                let cookie = format!(
                    "{GRANT_COOKIE}={grant}; Path=/privacy/download/{token}; Max-Age={}; HttpOnly; SameSite=Strict{}",
                    GRANT_MINUTES * 60,
                    if secure { "; Secure" } else { "" }
                );
                let mut response =
                    Redirect::to(&format!("/privacy/download/{token}?lang={}", lang.as_str())).into_response();
                if let Ok(value) = HeaderValue::try_from(cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                super::guarded(response)
            }
            // The same code sent twice (a double click): the first one unlocked; not a wrong try.
            Ok(false) => super::guarded(
                Redirect::to(&format!("/privacy/download/{token}?lang={}", lang.as_str())).into_response(),
            ),
            Err(e) => side.trouble(&state, lang, &e.to_string()),
        };
    }
    let max = state.config.subject.max_tries;
    match ledger.delivery_wrong_code(&open.delivery, max).await {
        // Locked now: the page says so.
        Ok(true) => match open_link(&state, &side, &token, body.lang(), &headers, false).await {
            Ok(open) => render_page(&state, &side, &token, &open, &headers, false, None).await,
            Err(page) => page,
        },
        Ok(false) => {
            let left = max.saturating_sub(open.delivery.code_tries + 1).to_string();
            let error = if current {
                pick(
                    lang,
                    "Koden stemmer ikke. Du har {left} forsøk igjen.",
                    "The code is not right. You have {left} tries left.",
                )
                .replace("{left}", &left)
            } else {
                pick(
                    lang,
                    "Koden er utløpt eller ikke sendt ennå. Be om en ny kode.",
                    "The code has expired or was not sent yet. Ask for a new code.",
                )
                .to_string()
            };
            render_page(&state, &side, &token, &open, &headers, current, Some(error)).await
        }
        Err(e) => side.trouble(&state, lang, &e.to_string()),
    }
}

/// One `bytes=` range, as RFC 9110 §14.1.2 writes it (several ranges are served whole).
fn parse_range(value: &str, size: u64) -> Option<Result<std::ops::Range<u64>, ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            size.saturating_sub(n)..size
        }
        (start, "") => start.parse().ok()?..size,
        (start, end) => {
            let (s, e): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
            if e < s {
                return None;
            }
            s..(e + 1).min(size)
        }
    };
    if range.start >= size || range.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// The range a request asks for, if it is one this file can serve and, with `If-Range`, the
/// file is still the one named (else the whole file, as RFC 9110 §13.1.5 says).
fn asked_range(headers: &HeaderMap, size: u64, etag: &str) -> Option<Result<std::ops::Range<u64>, ()>> {
    if let Some(condition) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && condition.trim() != etag
    {
        return None;
    }
    headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, size))
}

/// `GET /privacy/download/{token}/file`: the file, with the grant. A `HEAD` says its size
/// and counts nothing.
pub async fn file(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    // Whether this resumes a download is known only with the file's size: the link is
    // looked at as if it were, and held to the rule below once the range is read.
    let open = match open_link(&state, &side, &token, None, &headers, true).await {
        Ok(open) => open,
        Err(page) => return page,
    };
    let lang = open.lang;
    let ledger = state.engine.ledger();
    let Some((location, media_type, _)) = export_of(&open.request) else {
        return side.trouble(&state, lang, "the request has neither a bundle nor a confirmation");
    };
    let store = match crate::wiring::export_store(&state.config) {
        Ok(store) => store,
        Err(e) => return side.trouble(&state, lang, &e.message()),
    };
    let key = store
        .key_of(&location)
        .unwrap_or_else(|| dsr_jobs::storage::key(&location));
    let size = match store.size(&key).await {
        Ok(size) => size,
        Err(e) => return side.trouble(&state, lang, &e.to_string()),
    };
    // The file's identity for a browser that resumes (`If-Range`): the hash the ledger holds.
    let etag = format!(
        "\"{}\"",
        open.request
            .bundle_sha256
            .as_deref()
            .or(open.request.confirmation_sha256.as_deref())
            .unwrap_or(&open.delivery.id)
    );
    let range = match asked_range(&headers, size, &etag) {
        Some(Err(())) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::try_from(format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return super::guarded(response);
        }
        Some(Ok(range)) => Some(range),
        None => None,
    };
    let resuming = range.as_ref().is_some_and(|r| r.start > 0);
    // A new download on a link it used up is refused as the page would be.
    if !resuming && open.delivery.refusal(ledger.now()).is_some() {
        return match open_link(&state, &side, &token, None, &headers, false).await {
            Ok(open) => render_page(&state, &side, &token, &open, &headers, false, None).await,
            Err(page) => page,
        };
    }
    let grant = grant_of(&headers).map(|g| secrets::sha256(&g)).unwrap_or_default();
    let needs_code = || {
        side.say(
            &state,
            StatusCode::FORBIDDEN,
            lang,
            ("En ny kode trengs", "A new code is needed"),
            (
                "For å laste ned må du først få en engangskode på e-post og skrive den inn. Hver kode gir én nedlasting.",
                "To download, first get a one-time code by e-mail and enter it. Each code allows one download.",
            ),
            context! { link => context! { href => format!("/privacy/download/{token}"),
                label => pick(lang, "Til nedlastingssiden", "To the download page") } },
        )
    };
    let now = ledger.now();
    let granted = open.delivery.grant_sha256.as_deref() == Some(grant.as_str())
        && open.delivery.grant_expires_at.is_some_and(|t| t > now);
    if !granted || (resuming && !open.delivery.grant_used) || (!resuming && open.delivery.grant_used) {
        return needs_code();
    }
    let mut response = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        // The reader first: a storage that fails costs the subject no download.
        type Reader = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;
        let (status, reader): (StatusCode, Result<Reader, _>) = match &range {
            Some(r) => (
                StatusCode::PARTIAL_CONTENT,
                store.range_reader(&key, r.clone()).await.map(|r| Box::pin(r) as Reader),
            ),
            None => (StatusCode::OK, store.reader(&key).await.map(|r| Box::pin(r) as Reader)),
        };
        let reader = match reader {
            Ok(reader) => reader,
            Err(e) => return side.trouble(&state, lang, &e.to_string()),
        };
        let range_text = range.as_ref().map(|r| format!("bytes={}-{}", r.start, r.end - 1));
        let allowed = if resuming {
            ledger
                .delivery_resumed(&open.delivery, &grant, range_text.as_deref().unwrap_or_default())
                .await
        } else {
            ledger
                .delivery_download(&open.delivery, &grant, range_text.as_deref())
                .await
        };
        match allowed {
            Ok(true) => {}
            Ok(false) => return needs_code(),
            Err(e) => return side.trouble(&state, lang, &e.to_string()),
        }
        tracing::info!(request = %open.request.id, delivery = %open.delivery.id, "a subject downloads their request's result");
        (status, Body::from_stream(tokio_util::io::ReaderStream::new(reader))).into_response()
    };
    let length = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::try_from(etag.as_str()) {
        h.insert(header::ETAG, value);
    }
    if let Some(r) = &range
        && let Ok(value) = HeaderValue::try_from(format!("bytes {}-{}/{size}", r.start, r.end - 1))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    let name = location.rsplit('/').next().unwrap_or("dsr-export").replace('"', "");
    if let Ok(value) = HeaderValue::try_from(format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    super::guarded(response)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_read_as_rfc_9110_writes_them() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok(900..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some(Ok(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }

    #[test]
    fn a_range_is_served_only_while_if_range_names_the_same_file() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=100-"));
        assert_eq!(super::asked_range(&headers, 1000, "\"abc\""), Some(Ok(100..1000)));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        assert_eq!(super::asked_range(&headers, 1000, "\"abc\""), Some(Ok(100..1000)));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(
            super::asked_range(&headers, 1000, "\"abc\""),
            None,
            "another file: the whole of this one"
        );
        headers.remove(header::IF_RANGE);
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=5-1"));
        assert_eq!(
            super::asked_range(&headers, 1000, "\"abc\""),
            None,
            "unreadable: the whole file, a new download"
        );
    }
}
