//! `dsr serve`: the HTTP API for the company's own systems (its website's privacy form, its
//! CRM, its helpdesk) and its monitoring, on the same ledger, queue and export storage as the
//! worker. Every `/v1` route needs an API token with the route's scope; `/healthz` and
//! `/readyz` do not. Errors are problem documents ([`problem`]).

mod actions;
mod auth;
mod cookies;
mod dashboard;
mod metrics;
mod openapi;
mod opendsr;
mod problem;
mod processor_callbacks;
mod requests;
mod subject;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use dsr_jobs::Engine;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::commands::{Shutdown, worker};
use crate::config::Config;
use crate::error::{CliError, bad_input};

/// How long calls in flight may take to finish once a stop is asked.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    config: Arc<Config>,
    lockout: auth::Lockout,
    /// `[opendsr]`, read, when configured.
    opendsr: Option<Arc<crate::opendsr::OpenDsr>>,
    /// The OpenDSR processors whose callbacks this server takes, by name.
    opendsr_processors: Arc<std::collections::BTreeMap<String, Arc<dsr_opendsr::OpenDsrConnector>>>,
    /// The subject's pages, when `[smtp]` and `[subject] public_url` are set.
    subject: Option<Arc<subject::SubjectSide>>,
    /// The operators' dashboard, unless `[dashboard] enabled = false`.
    dashboard: Option<Arc<dashboard::Dashboard>>,
}

pub async fn serve(config: &Config, with_worker: bool) -> Result<ExitCode, CliError> {
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(bad_input(
                "[server] tls_cert and tls_key go together: set both (PEM files) or neither",
            ));
        }
    };
    let opendsr = crate::opendsr::OpenDsr::configured(config)?.map(Arc::new);
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
        opendsr: opendsr.clone(),
        opendsr_processors: Arc::new(opendsr_processors(config)?),
        subject: subject::SubjectSide::configured(config)?,
        dashboard: if config.dashboard.enabled {
            Some(dashboard::Dashboard::new()?)
        } else {
            None
        },
    };
    let shutdown = Shutdown::new();
    {
        // Listening for SIGTERM from here on, before the address is announced: a stop sent
        // right after it is a graceful one.
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::Unreachable(format!("cannot listen for SIGTERM: {e}")))?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping: answering the calls in flight (at most {SHUTDOWN_GRACE:?})");
            trigger.trigger();
        });
    }
    if state.subject.is_some() {
        tokio::spawn(subject::purge(engine.clone(), shutdown.signal()));
        eprintln!("the subject's request form is at /privacy/request");
    }
    let worker = with_worker.then(|| {
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        let callbacks = opendsr.clone();
        let deliverer = crate::subject::delivery::Deliverer::configured(&engine, config);
        tokio::spawn(async move { worker::run_in_process(&engine, true, callbacks, deliverer?, &shutdown).await })
    });
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
    let serving = async {
        match tls {
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
        }
        .map_err(|e| CliError::Unreachable(format!("the server stopped: {e}")))
    };
    // A client that never finishes its request must not hold the stop up for ever.
    let grace = async {
        shutdown.signal().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served?,
        _ = grace => tracing::warn!("calls still open {SHUTDOWN_GRACE:?} after the stop was asked were cut off"),
    }
    if let Some(worker) = worker {
        worker
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("the worker in this process failed: {e}")))??;
    }
    Ok(ExitCode::SUCCESS)
}

/// A connector per enabled `[processors.opendsr.<name>]`, to authenticate its callbacks.
fn opendsr_processors(
    config: &Config,
) -> Result<std::collections::BTreeMap<String, Arc<dsr_opendsr::OpenDsrConnector>>, CliError> {
    let mut processors = std::collections::BTreeMap::new();
    for (processor, built) in crate::wiring::opendsr_connectors(config) {
        processors.insert(processor.display_name().to_string(), built?);
    }
    Ok(processors)
}

/// Every route, each registered from its `#[utoipa::path]`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics::metrics))
        .merge(requests::routes())
        .merge(actions::routes())
}

fn router(state: AppState) -> Router {
    let (mut router, document) = api().split_for_parts();
    let document = Arc::new(document);
    if let Some(opendsr) = &state.opendsr {
        router = router.merge(opendsr::routes(opendsr));
    }
    if !state.opendsr_processors.is_empty() {
        router = router.merge(processor_callbacks::routes());
    }
    if state.subject.is_some() {
        router = router.merge(subject::routes());
    }
    if state.dashboard.is_some() {
        router = router.merge(dashboard::routes());
    }
    router
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .fallback(|| async { problem::Problem::not_found("no such route: see /openapi.json and docs/api.md") })
        .method_not_allowed_fallback(|| async {
            problem::Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method: see /openapi.json",
            )
        })
        // No answer is taken for another type than it says (the dashboard allows scripts
        // from this origin: none of its other answers may pass for one).
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response
                .headers_mut()
                .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
                .or_insert(axum::http::HeaderValue::from_static("nosniff"));
            response
        }))
        .with_state(state)
}

/// The OpenAPI document, as `/openapi.json` serves it.
#[cfg(test)]
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = openapi::Health)))]
async fn healthz() -> Json<openapi::Health> {
    Json(openapi::Health { status: "ok".into() })
}

/// The ledger, the queue and the export storage answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = openapi::Readiness, description = "Every part answers."),
    (status = 503, body = openapi::Readiness, description = "A part does not answer: its error is under checks."),
))]
async fn readyz(State(state): State<AppState>) -> Response {
    // Callers see which part fails; what it said goes to the log only (it may name paths,
    // hosts or buckets).
    let failed = |part: &'static str, error: String| {
        tracing::warn!(%part, %error, "not ready");
        "error: see the server's log".to_string()
    };
    let ledger = state
        .engine
        .ledger()
        .tokens()
        .await
        .err()
        .map(|e| failed("ledger", e.to_string()));
    let queue = state
        .engine
        .queue()
        .stats()
        .await
        .err()
        .map(|e| failed("queue", e.to_string()));
    let storage = match crate::wiring::export_store(&state.config) {
        Ok(store) => store
            .list(Some(&dsr_jobs::storage::key(".dsr-ready")))
            .await
            .err()
            .map(|e| failed("export storage", e.to_string())),
        Err(e) => Some(failed("export storage", e.message())),
    };
    let ready = ledger.is_none() && queue.is_none() && storage.is_none();
    let ok = |e: Option<String>| e.unwrap_or_else(|| "ok".into());
    let body = openapi::Readiness {
        status: if ready { "ready" } else { "not ready" }.into(),
        checks: openapi::Checks {
            ledger: ok(ledger),
            queue: ok(queue),
            export_storage: ok(storage),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document_with_its_security_and_refusals() {
        let document = serde_json::to_value(openapi_document()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        let expected = [
            ("get", "/healthz"),
            ("get", "/readyz"),
            ("get", "/metrics"),
            ("get", "/v1/requests"),
            ("post", "/v1/requests"),
            ("get", "/v1/requests/{id}"),
            ("post", "/v1/requests/{id}/cancel"),
            ("post", "/v1/requests/{id}/retry"),
            ("post", "/v1/requests/{id}/extend"),
            ("post", "/v1/requests/{id}/approve"),
            ("post", "/v1/requests/{id}/reject"),
            ("get", "/v1/requests/{id}/plan"),
            ("get", "/v1/requests/{id}/events"),
            ("get", "/v1/requests/{id}/bundle"),
            ("get", "/v1/requests/{id}/confirmation"),
            ("get", "/v1/audit/verify"),
        ];
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, expected.len(), "{:?}", paths.keys().collect::<Vec<_>>());
        for (method, path) in expected {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            if path.starts_with("/v1") || path == "/metrics" {
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{"token": []}]),
                    "{method} {path}"
                );
                for status in ["401", "403", "429"] {
                    let problem = &operation["responses"][status]["content"]["application/problem+json"];
                    assert!(problem.is_object(), "{method} {path} documents no {status}");
                }
            }
        }
        let request = &document["components"]["schemas"]["RequestDoc"]["properties"];
        for field in ["id", "kind", "status", "due_at", "processors", "bundle"] {
            assert!(request[field].is_object(), "RequestDoc has {field}");
        }
        assert!(document["components"]["securitySchemes"]["token"].is_object());
    }
}
