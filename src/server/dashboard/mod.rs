//! The operators' dashboard under `/dashboard` (docs/dashboard.md): server-rendered pages,
//! no script, the same strict headers as the subject's pages. Operators sign in with an
//! account `dsr user add` made (Argon2id); a session is a random token in an `HttpOnly`,
//! `SameSite=Strict` (and, unless configured off, `Secure`) cookie, its hash in the ledger,
//! ended after `[dashboard] idle` unused or `absolute` after sign-in. Every form carries the
//! session's CSRF token.

mod overview;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{AutoEscape, Environment, Value, context};

use super::AppState;
use crate::error::CliError;

pub use session::SignedIn;

/// The dashboard's templates.
pub struct Dashboard {
    env: Environment<'static>,
}

impl Dashboard {
    pub fn new() -> Result<Arc<Dashboard>, CliError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("signin.html", include_str!("templates/signin.html")),
            ("overview.html", include_str!("templates/overview.html")),
        ] {
            env.add_template(name, text)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("the dashboard's {name}: {e}")))?;
        }
        Ok(Arc::new(Dashboard { env }))
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
        .route("/dashboard/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/dashboard/sign-out", post(session::sign_out))
        // Every answer under /dashboard carries the strict headers (no script, no framing,
        // no referrer, no cache).
        .layer(axum::middleware::map_response(|response: Response| async move {
            super::subject::guarded(response)
        }))
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
