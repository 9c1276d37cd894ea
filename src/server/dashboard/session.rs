//! Signing in and out, the session cookie, and the CSRF token every form carries.

use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use dsr_jobs::ledger::operators::Operator;
use minijinja::context;
use serde::Deserialize;

use crate::server::AppState;
use crate::subject::secrets;

/// The cookie that carries a session's token, for the dashboard's paths only.
const SESSION_COOKIE: &str = "dsr_session";
/// How long an account waits after five wrong passwords in a row (since its last sign-in).
const LOCKED_MINUTES: i64 = 15;

/// A signed-in operator, for a handler; without a live session a page sends the browser to
/// the sign-in page.
pub struct SignedIn {
    pub operator: Operator,
    pub csrf: String,
    token_sha256: String,
}

impl SignedIn {
    /// Who acts, as the audit chain names a dashboard account: `dashboard:NAME`.
    pub fn actor(&self) -> String {
        format!("dashboard:{}", self.operator.name)
    }

    /// Whether this account is who `entered_by` (a request's enterer) names.
    pub fn entered(&self, entered_by: Option<&str>) -> bool {
        entered_by.is_some_and(|by| dsr_jobs::ledger::same_person(by, &self.actor()))
    }

    /// Records that this account was refused `action` (on request `request`, if one) and
    /// `why` ("role", "four_eyes"): an audit event, `operator.refused`. A ledger that does not
    /// answer costs the record, not the refusal.
    pub async fn record_refusal(&self, ledger: &dsr_jobs::Ledger, request: Option<&str>, action: &str, why: &str) {
        let detail = serde_json::json!({"by": self.actor(), "action": action, "role": self.operator.role, "why": why});
        if let Err(e) = ledger.audit(request, None, "operator.refused", detail).await {
            tracing::warn!(error = %e, "could not record a refused action");
        }
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Whether a request is a request page's poller asking for news (htmx sends the id of the
/// element that triggered it): not a person using the dashboard.
pub fn is_poll(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && headers.get("hx-trigger").is_some_and(|t| t == "poller")
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    crate::server::cookies::token(headers, SESSION_COOKIE)
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<SignedIn, Response> {
        // A page polling by itself (htmx) is sent to the sign-in page whole, and does not
        // count as someone using the dashboard.
        let polled = parts.method == axum::http::Method::GET && is_poll(&parts.headers);
        let to_sign_in = || {
            if polled {
                (StatusCode::OK, [("hx-redirect", "/dashboard/sign-in")]).into_response()
            } else {
                Redirect::to("/dashboard/sign-in").into_response()
            }
        };
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_sign_in());
        };
        let token_sha256 = secrets::sha256(&token);
        let d = &state.config.dashboard;
        let span = |s: std::time::Duration| chrono::Duration::from_std(s).unwrap_or(chrono::Duration::minutes(30));
        match state
            .engine
            .ledger()
            .session_seen(&token_sha256, span(d.idle), span(d.absolute), !polled)
            .await
        {
            Ok(Some(session)) => Ok(SignedIn {
                operator: session.operator,
                csrf: session.csrf,
                token_sha256,
            }),
            Ok(None) => Err(to_sign_in()),
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard could not read a session");
                Err((StatusCode::SERVICE_UNAVAILABLE, "the ledger did not answer; try again").into_response())
            }
        }
    }
}

/// `GET /dashboard/sign-in`.
pub async fn sign_in_page(State(state): State<AppState>) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    dashboard.render(&state, StatusCode::OK, "signin.html", None, context! {})
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// A fixed Argon2id hash to check a password against when the account does not exist, so
/// that a wrong name takes as long as a wrong password.
const NOBODY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2mJ9m8cCHtJ6XqZbJUg1qKqv2cTg9vqJZb2m9X1yJ0Q";

/// Whether a post comes from the dashboard's own pages: a browser says where a form was sent
/// from (`Sec-Fetch-Site`, else `Origin`); a post from another site is refused, so no page
/// elsewhere can sign an operator in as someone else or act in their name. Clients that say
/// neither (scripts) are not browsers carrying someone's cookie.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    url::Url::parse(origin).is_ok_and(|o| {
        let authority = match o.port() {
            Some(port) => format!("{}:{port}", o.host_str().unwrap_or_default()),
            None => o.host_str().unwrap_or_default().to_string(),
        };
        !host.is_empty() && authority.eq_ignore_ascii_case(host)
    })
}

/// `POST /dashboard/sign-in`.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, Form(body): Form<SignInBody>) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let refuse = |status: StatusCode, error: &str| {
        dashboard.render(
            &state,
            status,
            "signin.html",
            None,
            context! { error => error, name => body.name },
        )
    };
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "Sign in from this dashboard's own page.");
    }
    let ledger = state.engine.ledger();
    let name = body.name.trim();
    // Counted before the slow check: guesses sent at once cannot all pass the lock. An
    // unknown, locked or disabled account is checked against a stand-in hash and refused in
    // the same words and about the same time as a wrong password.
    let claimed = match ledger.signin_claim(name).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "the dashboard could not read an account");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "The ledger did not answer; try again.");
        }
    };
    let operator = if claimed {
        ledger.operator(name).await.ok().flatten()
    } else {
        None
    };
    let hash = operator
        .as_ref()
        .map(|o| o.password_hash.clone())
        .unwrap_or_else(|| NOBODY.to_string());
    let matches = dashboard.check_password(body.password.clone(), hash).await;
    let now = ledger.now();
    let (true, Some(operator)) = (matches, operator) else {
        if let Err(e) = ledger
            .signin_failed(name, claimed, now + chrono::Duration::minutes(LOCKED_MINUTES))
            .await
        {
            tracing::warn!(error = %e, "could not record a failed sign-in");
        }
        return refuse(StatusCode::UNAUTHORIZED, "The account or the password is wrong.");
    };
    let token = secrets::token();
    let csrf = secrets::token();
    let replaces = cookie_token(&headers).map(|old| secrets::sha256(&old));
    if let Err(e) = ledger
        .signed_in(&operator.name, &secrets::sha256(&token), &csrf, replaces.as_deref())
        .await
    {
        tracing::warn!(error = %e, "could not record a sign-in");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "The ledger did not answer; try again.");
    }
    tracing::info!(operator = %operator.name, "signed in to the dashboard");
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict{}",
        secure(&state)
    );
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn secure(state: &AppState) -> &'static str {
    if state.config.dashboard.secure_cookie {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfBody {
    #[serde(default)]
    csrf: String,
}

/// `POST /dashboard/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: SignedIn,
    Form(body): Form<CsrfBody>,
) -> Response {
    if !who.csrf_matches(&body.csrf) || !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "this form is stale: reload the page and try again",
        )
            .into_response();
    }
    if let Err(e) = state
        .engine
        .ledger()
        .signed_out(&who.token_sha256, &who.operator.name)
        .await
    {
        tracing::warn!(error = %e, "could not record a sign-out");
    }
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    let expired = format!(
        "{SESSION_COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict{}",
        secure(&state)
    );
    if let Ok(value) = HeaderValue::try_from(expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stand_in_hash_is_a_real_argon2id_hash_that_no_password_matches() {
        use argon2::password_hash::PasswordHash;
        let parsed = PasswordHash::new(super::NOBODY).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!crate::commands::users::password_matches("", super::NOBODY));
        assert!(!crate::commands::users::password_matches("password", super::NOBODY));
    }
}
