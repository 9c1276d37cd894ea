//! `dsr serve`: the HTTP API for the company's own systems (its website's privacy form, its
//! CRM, its helpdesk) and its monitoring, on the same ledger, queue and export storage as the
//! worker. Every `/v1` route needs an API token with the route's scope; `/healthz` and
//! `/readyz` do not. Errors are problem documents ([`problem`]).

mod actions;
mod auth;
mod metrics;
mod problem;
mod requests;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use dsr_jobs::Engine;
use serde_json::json;

use crate::commands::{Shutdown, worker};
use crate::config::Config;
use crate::error::{CliError, bad_input};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    config: Arc<Config>,
    lockout: auth::Lockout,
}

pub async fn serve(config: &Config, with_worker: bool) -> Result<ExitCode, CliError> {
    let engine = crate::wiring::engine(config).await?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| {
            bad_input(format!(
                "cannot listen on {} ([server] listen): {e}",
                config.server.listen
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Unreachable(format!("cannot read the address listened on: {e}")))?;
    let state = AppState {
        engine: engine.clone(),
        config: Arc::new(config.clone()),
        lockout: auth::Lockout::default(),
    };
    let shutdown = Shutdown::new();
    {
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            worker::wait_for_signal().await;
            eprintln!("stopping: answering the calls in flight");
            trigger.trigger();
        });
    }
    let worker = with_worker.then(|| {
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        tokio::spawn(async move { worker::run_in_process(&engine, true, &shutdown).await })
    });
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(bad_input(
                "[server] tls_cert and tls_key go together: set both (PEM files) or neither",
            ));
        }
    };
    // The first line on stdout: scripts and tests read the address (port 0 picks one).
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("dsr serve listening on {scheme}://{address}");
    if tls.is_none() {
        eprintln!(
            "no TLS here ([server] tls_cert and tls_key unset): put a TLS-terminating proxy in front of {address} \
             before anything outside this machine calls it"
        );
    }
    if with_worker {
        eprintln!("a worker runs in this process");
    }
    let app = router(state).into_make_service_with_connect_info::<tls::Peer>();
    let served = match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)
                .map_err(|e| CliError::Unreachable(format!("cannot listen with TLS: {e}")))?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.signal())
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.signal())
                .await
        }
    };
    served.map_err(|e| CliError::Unreachable(format!("the server stopped: {e}")))?;
    if let Some(worker) = worker {
        worker
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("the worker in this process failed: {e}")))??;
    }
    Ok(ExitCode::SUCCESS)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/v1", requests::routes().merge(actions::routes()))
        .fallback(|| async { problem::Problem::not_found("no such route: see docs/api.md") })
        .with_state(state)
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The ledger, the queue and the export storage answer.
async fn readyz(State(state): State<AppState>) -> Response {
    let ledger = state.engine.ledger().tokens().await.err().map(|e| e.to_string());
    let queue = state.engine.queue().stats().await.err().map(|e| e.to_string());
    let storage = match crate::wiring::export_store(&state.config) {
        Ok(store) => store
            .list(Some(&dsr_jobs::storage::key(".dsr-ready")))
            .await
            .err()
            .map(|e| e.to_string()),
        Err(e) => Some(e.message()),
    };
    let checks = json!({
        "ledger": ledger.as_deref().unwrap_or("ok"),
        "queue": queue.as_deref().unwrap_or("ok"),
        "export_storage": storage.as_deref().unwrap_or("ok"),
    });
    if ledger.is_none() && queue.is_none() && storage.is_none() {
        Json(json!({"status": "ready", "checks": checks})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "checks": checks})),
        )
            .into_response()
    }
}
