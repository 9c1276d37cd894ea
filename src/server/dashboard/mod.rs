//! The operators' dashboard under `/dashboard` (docs/dashboard.md): server-rendered pages
//! that work without script; one vendored script (htmx) lets a running request's page follow
//! it. The subject's pages' strict headers, with `script-src 'self'` added. Operators sign in with an
//! account `dsr user add` made (Argon2id); a session is a random token in an `HttpOnly`,
//! `SameSite=Strict` (and, unless configured off, `Secure`) cookie, its hash in the ledger,
//! ended after `[dashboard] idle` unused or `absolute` after sign-in. Every form carries the
//! session's CSRF token.

mod actions;
mod audit;
mod overview;
mod processors;
mod requests;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{AutoEscape, Environment, Value, context};

use super::AppState;
use crate::error::CliError;

pub use session::SignedIn;

/// The dashboard's templates, and the gate on password checks.
pub struct Dashboard {
    env: Environment<'static>,
    /// Argon2 takes 19 MiB and tens of milliseconds a check: at most this many at once, so a
    /// flood of sign-ins queues instead of exhausting memory.
    checks: tokio::sync::Semaphore,
    /// The heavy checks — the doctor's (calls to every vendor), the audit chain's walk —
    /// one at a time.
    heavy: tokio::sync::Semaphore,
}

impl Dashboard {
    pub fn new() -> Result<Arc<Dashboard>, CliError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("signin.html", include_str!("templates/signin.html")),
            ("overview.html", include_str!("templates/overview.html")),
            ("requests.html", include_str!("templates/requests.html")),
            ("request.html", include_str!("templates/request.html")),
            ("audit.html", include_str!("templates/audit.html")),
            ("refused.html", include_str!("templates/refused.html")),
            ("processors.html", include_str!("templates/processors.html")),
        ] {
            env.add_template(name, text)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("the dashboard's {name}: {e}")))?;
        }
        Ok(Arc::new(Dashboard {
            env,
            checks: tokio::sync::Semaphore::new(2),
            heavy: tokio::sync::Semaphore::new(1),
        }))
    }

    /// Whether `password` is `hash`'s, checked off the async threads, a few at a time.
    pub async fn check_password(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || crate::commands::users::password_matches(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// A page saying why something was not done (`title`, then `message`), with a link back
    /// to request `request` when there is one.
    pub fn refusal(
        &self,
        state: &AppState,
        status: axum::http::StatusCode,
        who: Option<&SignedIn>,
        title: &str,
        message: &str,
        request: Option<&str>,
    ) -> Response {
        self.render(
            state,
            status,
            "refused.html",
            who,
            context! {
                here => "requests", title => title, message => message,
                back => request.map(|id| format!("/dashboard/requests/{id}")), back_label => request,
            },
        )
    }

    /// The right to run a heavy check (the doctor's, the audit chain's), waiting up to ten
    /// seconds for one under way to end.
    pub async fn heavy_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.heavy.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Renders `name`; `who` is the signed-in operator (for the header and its sign-out form).
    pub fn render(
        &self,
        state: &AppState,
        status: axum::http::StatusCode,
        name: &str,
        who: Option<&SignedIn>,
        values: Value,
    ) -> Response {
        let rendered = self.env.get_template(name).and_then(|t| {
            t.render(context! {
                controller => state.config.controller.name,
                operator => who.map(|w| w.operator.name.clone()),
                role => who.map(|w| w.operator.role.as_str()),
                csrf => who.map(|w| w.csrf.clone()),
                ..values
            })
        });
        match rendered {
            Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, page = name, "a dashboard page did not render");
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be shown; the log says why",
                )
                    .into_response()
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/style.css", get(style))
        .route("/dashboard/htmx.min.js", get(htmx))
        .route("/dashboard/audit", get(audit::page))
        .route("/dashboard/processors", get(processors::page).post(processors::check))
        .route("/dashboard/requests", get(requests::list))
        .route("/dashboard/requests/{id}", get(requests::show))
        .route(
            "/dashboard/requests/{id}/{action}",
            get(requests::file).post(actions::act),
        )
        .route("/dashboard/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/dashboard/sign-out", post(session::sign_out))
        // Every answer under /dashboard carries the strict headers (no framing, no referrer,
        // no cache), and a policy that lets only the dashboard's own script file run.
        .layer(axum::middleware::map_response(|response: Response| async move {
            let mut response = super::subject::guarded(response);
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
            response
        }))
}

/// The dashboard's Content-Security-Policy: the subject's pages' policy, plus the one script
/// file of its own (htmx, vendored) and its calls back to this server; no inline script, no
/// eval, no other origin.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
                          img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// htmx 2 (assets/README.md): refreshes a running request's page in place. Every page works
/// without it.
async fn htmx() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/htmx.min.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/style.css"),
    )
        .into_response()
}
