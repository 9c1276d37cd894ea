//! The OpenDSR 2.0 routes (docs/opendsr.md), under `[opendsr] public_url`'s path: discovery
//! and the certificate (public), and create, status, cancel and results for callers with a
//! token scoped `opendsr:submit`, each seeing only its own requests. The OpenGDPR names of
//! §10.1 (`/opengdpr_requests`) answer as `/requests` do. Answers are signed; refusals are
//! the specification's error object (§7.5–7.6) and never quote a subject's identity.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use dsr_jobs::ledger::Origin;
use dsr_jobs::ledger::opendsr::{OpenDsrOrigin, OpenDsrRequest};
use dsr_jobs::ledger::tokens::{ApiToken, Scope};
use dsr_opendsr::protocol::{
    self, API_VERSION, CancelDoc, Created, Discovery, ErrorBody, ErrorDetail, IdentitySupport, RequestType, Status,
    time_text,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use super::actions::{Export, stream_export};
use super::auth::Caller;
use super::problem::Problem;
use crate::cli::RequestArgs;
use crate::opendsr::{OpenDsr, status_of};

/// How far ahead of this server's clock a `submitted_time` may be (clocks differ).
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);
/// The oldest `submitted_time` taken: three months, the longest a request may run with an
/// extension (Art. 12(3)); a typo must not create one long overdue.
const OLDEST: chrono::Duration = chrono::Duration::days(92);

/// The routes under `[opendsr] public_url`'s path.
pub fn routes(opendsr: &OpenDsr) -> Router<AppState> {
    let base = format!(
        "{}/{}",
        opendsr.config.public_url.path().trim_end_matches('/'),
        protocol::MAJOR_PATH
    );
    let mut router = Router::new()
        .route(&format!("{base}/discovery"), get(discovery))
        .route(&format!("{base}/certificate.pem"), get(certificate))
        .route(&format!("{base}/requests/{{id}}/results"), get(results));
    for collection in ["requests", "opengdpr_requests"] {
        router = router
            .route(&format!("{base}/{collection}"), post(create))
            .route(&format!("{base}/{collection}/{{id}}"), get(status).delete(cancel));
    }
    router
}

/// A refusal as the specification's error object.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    details: Vec<ErrorDetail>,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, domain: &str, reason: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            details: vec![ErrorDetail::new(domain, reason, message)],
        }
    }

    fn not_found() -> Refusal {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "Request",
            "NotFound",
            "no request with this subject_request_id was submitted with this token",
        )
    }
}

impl From<Problem> for Refusal {
    fn from(problem: Problem) -> Refusal {
        let domain = match problem.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => "Authorization",
            status if status.is_server_error() => "Server",
            _ => "Request",
        };
        Refusal::new(problem.status, domain, problem.kind, problem.detail)
    }
}

impl From<dsr_jobs::LedgerError> for Refusal {
    fn from(e: dsr_jobs::LedgerError) -> Refusal {
        Problem::from(e).into()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::validation(self.details);
        body.error.code = self.status.as_u16();
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn service(state: &AppState) -> Result<&Arc<OpenDsr>, Refusal> {
    state.opendsr.as_ref().ok_or_else(Refusal::not_found)
}

fn token(caller: Result<Caller, Problem>) -> Result<ApiToken, Refusal> {
    Ok(caller?.require(Scope::OpendsrSubmit)?.clone())
}

fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Discovery (§6): public.
async fn discovery(State(state): State<AppState>) -> Response {
    answer(service(&state).map(|opendsr| {
        let doc = Discovery {
            api_version: API_VERSION.to_string(),
            supported_identities: vec![IdentitySupport {
                identity_type: "email".into(),
                identity_format: "raw".into(),
            }],
            supported_subject_request_types: RequestType::ALL.to_vec(),
            processor_certificate: format!("{}/certificate.pem", opendsr.config.versioned_base()),
        };
        opendsr.signed(StatusCode::OK, &doc)
    }))
}

/// The certificate discovery names, PEM: public.
async fn certificate(State(state): State<AppState>) -> Response {
    answer(service(&state).map(|opendsr| {
        let mut response = opendsr.identity.chain_pem().to_string().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
        response
    }))
}

/// A request, validated (§7.1.1).
struct Submitted {
    subject_request_id: String,
    request_type: RequestType,
    regulation: String,
    emails: Vec<String>,
    submitted: DateTime<Utc>,
    callback_urls: Vec<String>,
}

/// Reads and checks a request body; every fault is named (never with an identity's value).
fn read_request(body: &[u8], opendsr: &OpenDsr, now: DateTime<Utc>) -> Result<Submitted, Vec<ErrorDetail>> {
    let invalid = |reason: &str, message: String| ErrorDetail::new("Validation", reason, message);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![invalid("InvalidJson", format!("the body is not JSON: {e}"))])?;
    let Value::Object(fields) = value else {
        return Err(vec![invalid("InvalidJson", "the body is not a JSON object".into())]);
    };
    let mut errors = Vec::new();
    let mut text = |name: &str| -> Option<String> {
        match fields.get(name) {
            None | Some(Value::Null) => {
                errors.push(invalid("MissingField", format!("{name} field is required.")));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(invalid("InvalidField", format!("{name} must be a string.")));
                None
            }
        }
    };
    let regulation = text("regulation");
    let subject_request_id = text("subject_request_id");
    let request_type = text("subject_request_type");
    let submitted_time = text("submitted_time");
    if let Some(regulation) = &regulation
        && regulation != "gdpr"
    {
        let reason = if regulation == "ccpa" {
            "UnsupportedRegulation"
        } else {
            "InvalidField"
        };
        errors.push(invalid(
            reason,
            format!("regulation `{regulation}`: this processor takes requests under the GDPR (`gdpr`) only."),
        ));
    }
    if let Some(id) = &subject_request_id
        && !protocol::is_lowercase_uuid_v4(id)
    {
        errors.push(invalid(
            "InvalidField",
            "subject_request_id must be a lowercase UUID v4 (§1.1).".into(),
        ));
    }
    let request_type = request_type.and_then(|t| {
        RequestType::parse(&t).or_else(|| {
            errors.push(invalid(
                "InvalidField",
                format!("subject_request_type `{t}`: use access, portability or erasure."),
            ));
            None
        })
    });
    let submitted = submitted_time.and_then(|t| match protocol::parse_time(&t) {
        None => {
            errors.push(invalid(
                "InvalidField",
                "submitted_time must be an RFC 3339 time.".into(),
            ));
            None
        }
        Some(at) if at > now + CLOCK_SKEW => {
            errors.push(invalid("InvalidField", "submitted_time is in the future.".into()));
            None
        }
        Some(at) if at < now - OLDEST => {
            errors.push(invalid(
                "InvalidField",
                "submitted_time is more than three months ago, longer than the GDPR allows a request to run \
                 even extended; ask this processor's operator to take it by hand."
                    .into(),
            ));
            None
        }
        Some(at) => Some(at.min(now)),
    });
    if let Some(version) = fields.get("api_version") {
        let major = version.as_str().and_then(|v| v.split('.').next());
        if major != API_VERSION.split('.').next() {
            errors.push(invalid(
                "UnsupportedVersion",
                format!("api_version {version}: this processor speaks OpenDSR {API_VERSION}."),
            ));
        }
    }
    let emails = read_identities(fields.get("subject_identities"), &mut errors);
    let callback_urls = read_callbacks(fields.get("status_callback_urls"), opendsr, &mut errors);
    if let Some(extensions) = fields.get("extensions")
        && !extensions.is_object()
    {
        errors.push(invalid("InvalidField", "extensions must be an object.".into()));
    }
    match (subject_request_id, request_type, regulation, submitted) {
        (Some(subject_request_id), Some(request_type), Some(regulation), Some(submitted)) if errors.is_empty() => {
            Ok(Submitted {
                subject_request_id,
                request_type,
                regulation,
                emails,
                submitted,
                callback_urls,
            })
        }
        _ => Err(errors),
    }
}

/// The e-mail addresses among `subject_identities` (§5.3); identities of the other types
/// and formats of §5 are valid but not searched for (discovery says so), and at least one
/// raw e-mail address must be there.
fn read_identities(identities: Option<&Value>, errors: &mut Vec<ErrorDetail>) -> Vec<String> {
    let invalid = |reason: &str, message: String| ErrorDetail::new("Validation", reason, message);
    let Some(Value::Array(identities)) = identities else {
        errors.push(invalid(
            "MissingField",
            "subject_identities field is required: an array of identity objects (§5.3).".into(),
        ));
        return Vec::new();
    };
    let mut emails = Vec::new();
    for (at, identity) in identities.iter().enumerate() {
        let field = |name: &str| identity.get(name).and_then(Value::as_str);
        let (Some(kind), Some(format), Some(value)) = (
            field("identity_type"),
            field("identity_format"),
            field("identity_value"),
        ) else {
            errors.push(invalid(
                "InvalidField",
                format!(
                    "subject_identities[{at}] needs identity_type, identity_format and identity_value, each a string."
                ),
            ));
            continue;
        };
        if !protocol::IDENTITY_TYPES.contains(&kind) || !protocol::IDENTITY_FORMATS.contains(&format) {
            errors.push(invalid(
                "InvalidField",
                format!("subject_identities[{at}]: `{kind}` in `{format}` is not an identity type and format of §5."),
            ));
        } else if (kind, format) == ("email", "raw") {
            match dsr_connector::Email::parse(value) {
                Ok(email) => emails.push(email.as_str().to_string()),
                Err(_) => errors.push(invalid(
                    "InvalidField",
                    format!("subject_identities[{at}].identity_value is not an e-mail address."),
                )),
            }
        }
    }
    if emails.is_empty() && errors.is_empty() {
        errors.push(invalid(
            "UnsupportedIdentity",
            "no identity this processor can search for: give an `email` identity in `raw` format (see discovery)."
                .into(),
        ));
    }
    emails
}

/// `status_callback_urls`: each https, on a host `[opendsr] callback_allow` names.
fn read_callbacks(urls: Option<&Value>, opendsr: &OpenDsr, errors: &mut Vec<ErrorDetail>) -> Vec<String> {
    let invalid = |reason: &str, message: String| ErrorDetail::new("Validation", reason, message);
    let urls = match urls {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(urls)) => urls,
        Some(_) => {
            errors.push(invalid(
                "InvalidField",
                "status_callback_urls must be an array of URLs.".into(),
            ));
            return Vec::new();
        }
    };
    let mut kept = Vec::new();
    for (at, url) in urls.iter().enumerate() {
        match url.as_str().map(url::Url::parse) {
            Some(Ok(parsed)) if opendsr.config.callback_allowed(&parsed) => {
                if !kept.contains(&parsed.to_string()) {
                    kept.push(parsed.to_string());
                }
            }
            Some(Ok(parsed)) => errors.push(invalid(
                "CallbackNotAllowed",
                format!(
                    "status_callback_urls[{at}]: callbacks go only to https hosts this processor was configured to call, \
                     and `{}` is not one of them; ask its operator to add it to [opendsr] callback_allow.",
                    parsed.host_str().unwrap_or("(no host)")
                ),
            )),
            _ => errors.push(invalid(
                "InvalidField",
                format!("status_callback_urls[{at}] is not a URL."),
            )),
        }
    }
    kept
}

/// Create a request (§7): 201 with the signed creation document. The same body sent again
/// with the same token answers as the first time; the same id with another body is refused.
async fn create(State(state): State<AppState>, caller: Result<Caller, Problem>, body: Bytes) -> Response {
    answer(create_request(&state, caller, &body).await)
}

async fn create_request(state: &AppState, caller: Result<Caller, Problem>, body: &[u8]) -> Result<Response, Refusal> {
    let opendsr = service(state)?;
    let token = token(caller)?;
    let now = Utc::now();
    let submitted = read_request(body, opendsr, now).map_err(|details| Refusal {
        status: StatusCode::BAD_REQUEST,
        details,
    })?;
    let kind = match submitted.request_type {
        RequestType::Access => "access",
        RequestType::Portability => "portability",
        RequestType::Erasure => "erasure",
    };
    let args = RequestArgs {
        kind: kind.into(),
        email: submitted.emails,
        phone: vec![],
        name: vec![],
        ga_client_id: vec![],
        ga_user_id: vec![],
        set: vec![],
        processor: vec![],
        lang: None,
        dry_run: false,
        // OpenDSR leaves verifying the subject to the controller that sends the request.
        verified_by: Some(format!("by the OpenDSR controller `{}`", token.name)),
        by: None,
        timeout: std::time::Duration::ZERO,
    };
    let configured = state.engine.connectors().processors();
    let mut new = crate::request::build_request(&args, &state.config, &configured)
        .map_err(|e| Refusal::from(Problem::from(e)))?;
    // The month counts from when the subject asked (the conservative reading).
    new.received_at = submitted.submitted;
    let origin = Origin {
        actor: Some(format!("token:{}", token.name)),
        idempotency: None,
        opendsr: Some(OpenDsrOrigin {
            subject_request_id: submitted.subject_request_id.clone(),
            token_id: token.id.clone(),
            controller_id: token.name.clone(),
            request_type: kind.into(),
            regulation: submitted.regulation,
            callback_urls: submitted.callback_urls,
            body_sha256: hex::encode(Sha256::digest(body)),
            status: Status::Pending.as_str().into(),
        }),
        submission: None,
    };
    let id = match state.engine.enqueue_from(new, &origin).await {
        Ok((id, _)) => id,
        // Stored, not yet queued: the recovery sweep queues it. Created all the same.
        Err(dsr_jobs::EngineError::Queue(queue)) if queue.stored_request().is_some() => {
            queue.stored_request().unwrap_or_default().to_string()
        }
        Err(dsr_jobs::EngineError::Ledger(dsr_jobs::LedgerError::Refused(why))) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "Validation",
                "DuplicateRequestId",
                why,
            ));
        }
        Err(e) => return Err(Problem::from(e).into()),
    };
    let request = state.engine.ledger().get_request(&id).await?;
    let stored = state
        .engine
        .ledger()
        .opendsr_request(&submitted.subject_request_id)
        .await?
        .ok_or_else(Refusal::not_found)?;
    let doc = Created {
        controller_id: token.name.clone(),
        expected_completion_time: time_text(request.due_at),
        received_time: time_text(stored.received_at),
        encoded_request: B64.encode(body),
        subject_request_id: submitted.subject_request_id,
    };
    Ok(opendsr.signed(StatusCode::CREATED, &doc))
}

/// The caller's own OpenDSR request `id` (another token's is not found), with what it
/// became in dsr.
struct Own<'a> {
    opendsr: &'a Arc<OpenDsr>,
    token: ApiToken,
    stored: OpenDsrRequest,
    request: dsr_jobs::model::Request,
}

async fn own<'a>(state: &'a AppState, caller: Result<Caller, Problem>, id: &str) -> Result<Own<'a>, Refusal> {
    let opendsr = service(state)?;
    let token = token(caller)?;
    let stored = match state.engine.ledger().opendsr_request(id).await? {
        Some(stored) if stored.token_id == token.id => stored,
        _ => return Err(Refusal::not_found()),
    };
    let request = state.engine.ledger().get_request(&stored.request_id).await?;
    Ok(Own {
        opendsr,
        token,
        stored,
        request,
    })
}

/// A request's status (§8.1), signed.
async fn status(State(state): State<AppState>, caller: Result<Caller, Problem>, Path(id): Path<String>) -> Response {
    answer(
        async {
            let own = own(&state, caller, &id).await?;
            let tasks = state.engine.ledger().tasks(&own.stored.request_id).await?;
            let doc = own
                .opendsr
                .status_doc(&own.stored.controller_id, &id, &own.request, &tasks);
            Ok(own.opendsr.signed(StatusCode::OK, &doc))
        }
        .await,
    )
}

/// Cancel a request while it is pending (§9): 202, signed. Cancelling one already
/// cancelled answers the same; one under way is refused.
async fn cancel(State(state): State<AppState>, caller: Result<Caller, Problem>, Path(id): Path<String>) -> Response {
    answer(
        async {
            let Own {
                opendsr,
                token,
                stored,
                request,
            } = own(&state, caller, &id).await?;
            match status_of(request.status) {
                Status::Pending => {
                    // On a task of its own: a caller that hangs up does not stop it half-way.
                    let (engine, by) = (state.engine.clone(), format!("token:{}", token.name));
                    let request = stored.request_id.clone();
                    tokio::spawn(async move {
                        dsr_jobs::cancel::cancel(engine.ledger(), engine.connectors(), &request, &by).await
                    })
                    .await
                    .map_err(|e| {
                        Refusal::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "Server",
                            "Internal",
                            format!("the cancellation failed: {e}"),
                        )
                    })??;
                }
                Status::Cancelled => {}
                other => {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "Request",
                        "NotPending",
                        format!("the request is {other}: OpenDSR requests can be cancelled only while pending (§9)"),
                    ));
                }
            }
            let doc = CancelDoc {
                controller_id: stored.controller_id,
                subject_request_id: id,
                received_time: time_text(Utc::now()),
                api_version: Some(API_VERSION.to_string()),
            };
            Ok(opendsr.signed(StatusCode::ACCEPTED, &doc))
        }
        .await,
    )
}

/// A completed access or portability request's bundle (the status document's
/// `results_url`), for the controller that submitted it.
async fn results(
    State(state): State<AppState>,
    method: axum::http::Method,
    caller: Result<Caller, Problem>,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            let own = own(&state, caller, &id).await?;
            let stored = &own.stored;
            let tasks = state.engine.ledger().tasks(&stored.request_id).await?;
            if own.opendsr.results(&id, &own.request, &tasks).0.is_none() {
                return Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "Request",
                    "NoResults",
                    "this request has no results: only a completed access or portability request has, until its retention ends",
                ));
            }
            let by = (method != axum::http::Method::HEAD).then(|| format!("token:{}", own.token.name));
            Ok(stream_export(&state, &stored.request_id, Export::Bundle, by.as_deref()).await?)
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opendsr(dir: &std::path::Path) -> OpenDsr {
        let pki = dsr_fixtures::pki::TestPki::make(dir, false);
        let config: crate::config::OpenDsrConfig = toml::from_str(&format!(
            "public_url = \"https://localhost/opendsr\"\nsigning_key = \"file:{0}/leaf.key\"\n\
             certificate = \"file:{0}/leaf.pem\"\ncallback_allow = [\"controller.example.no\"]\n",
            pki.dir.display()
        ))
        .unwrap();
        OpenDsr::from_config(&config).unwrap()
    }

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn sample() -> Value {
        serde_json::json!({
            "regulation": "gdpr",
            "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
            "subject_request_type": "erasure",
            "submitted_time": time_text(Utc::now() - chrono::Duration::days(2)),
            "subject_identities": [
                {"identity_type": "email", "identity_value": "Kari.Nordmann@example.no", "identity_format": "raw"},
                {"identity_type": "android_id", "identity_value": "ab12", "identity_format": "sha256"}
            ],
            "status_callback_urls": ["https://controller.example.no/opendsr/callbacks"],
        })
    }

    #[test]
    fn a_valid_request_is_read_with_its_email_and_other_identities_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let opendsr = opendsr(dir.path());
        let read = read_request(&body(sample()), &opendsr, Utc::now()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(read.emails, vec!["kari.nordmann@example.no"]);
        assert_eq!(read.request_type, RequestType::Erasure);
        assert_eq!(
            read.callback_urls,
            vec!["https://controller.example.no/opendsr/callbacks"]
        );
        assert!(read.submitted < Utc::now() - chrono::Duration::days(1));
    }

    #[test]
    fn each_fault_is_named_and_no_identity_is_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let opendsr = opendsr(dir.path());
        let reasons = |value: Value| -> Vec<(String, String)> {
            read_request(&body(value), &opendsr, Utc::now())
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|d| (d.reason, d.message))
                .collect()
        };
        let mut missing = sample();
        missing.as_object_mut().unwrap().remove("regulation");
        missing.as_object_mut().unwrap().remove("subject_request_id");
        let found = reasons(missing);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("regulation field is required"), "{found:?}");
        assert!(found[1].1.contains("subject_request_id field is required"), "{found:?}");

        let mut ccpa = sample();
        ccpa["regulation"] = "ccpa".into();
        assert_eq!(reasons(ccpa)[0].0, "UnsupportedRegulation");

        let mut upper = sample();
        upper["subject_request_id"] = "A7551968-D5D6-44B2-9831-815AC9017798".into();
        assert!(reasons(upper)[0].1.contains("lowercase UUID v4"));

        let mut bad_email = sample();
        bad_email["subject_identities"][0]["identity_value"] = "kari-at-example".into();
        let found = reasons(bad_email);
        assert!(
            found[0].1.contains("not an e-mail address") && !found[0].1.contains("kari"),
            "{found:?}"
        );

        let mut no_email = sample();
        no_email["subject_identities"].as_array_mut().unwrap().remove(0);
        assert_eq!(reasons(no_email)[0].0, "UnsupportedIdentity");

        let mut elsewhere = sample();
        elsewhere["status_callback_urls"] = serde_json::json!(["https://attacker.example/cb"]);
        let found = reasons(elsewhere);
        assert_eq!(found[0].0, "CallbackNotAllowed");
        assert!(found[0].1.contains("attacker.example"), "{found:?}");

        let mut plain_http = sample();
        plain_http["status_callback_urls"] = serde_json::json!(["http://controller.example.no/cb"]);
        assert_eq!(reasons(plain_http)[0].0, "CallbackNotAllowed");

        let mut future = sample();
        future["submitted_time"] = time_text(Utc::now() + chrono::Duration::hours(1)).into();
        assert!(reasons(future)[0].1.contains("in the future"));
        let mut ancient = sample();
        ancient["submitted_time"] = "2018-10-02T15:00:00Z".into();
        assert!(reasons(ancient)[0].1.contains("more than three months ago"));

        let mut v1 = sample();
        v1["api_version"] = "1.0".into();
        assert_eq!(reasons(v1)[0].0, "UnsupportedVersion");

        assert_eq!(
            read_request(b"{not json", &opendsr, Utc::now()).err().unwrap()[0].reason,
            "InvalidJson"
        );
    }
}
