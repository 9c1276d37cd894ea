//! The OpenAPI document, served at `/openapi.json`. Paths come from the handlers'
//! `#[utoipa::path]` annotations, through which the routes themselves are registered
//! (`utoipa_axum::routes!`), so no route can be served without being documented; the bodies'
//! schemas are derived from the very types the handlers serialize.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::output::{Records, RequestDoc, TaskDoc};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dsr",
        description = "Data-subject requests (GDPR Articles 15-21) against a company's processors: create them, \
                       follow them, act on them, download their bundles and confirmations. docs/api.md explains it.",
    ),
    components(schemas(RequestDoc, TaskDoc, Records, ProblemDoc)),
    modifiers(&BearerToken),
    tags((name = "requests"), (name = "audit"), (name = "operations"))
)]
pub struct ApiDoc;

/// `Authorization: Bearer dsr_…`, from `dsr token create`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dsr_<id>_<secret>")
                    .description(Some("An API token from `dsr token create`, with the route's scope."))
                    .build(),
            ),
        );
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, and what to do.
    pub detail: String,
    /// The body field, query parameter or header concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The errors any `/v1` route may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// The body, query or a header is not what the route takes (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemDoc),
    /// No token, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The token lacks the route's scope.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// No such request.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// Refused in the request's state (ended, not awaiting approval, another plan).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
    /// Breaks a rule the command line also enforces (`field` names it).
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(ProblemDoc),
    /// Too many bad tokens from this address (see Retry-After).
    #[response(status = 429, content_type = "application/problem+json")]
    TooMany(ProblemDoc),
    /// The server failed (its log says why).
    #[response(status = 500, content_type = "application/problem+json")]
    Failed(ProblemDoc),
    /// The ledger, queue or export storage does not answer.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemDoc),
}

/// A ZIP file's bytes.
pub struct ZipFile;

impl utoipa::PartialSchema for ZipFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for ZipFile {}

/// A page of requests, newest first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RequestPage {
    pub requests: Vec<RequestDoc>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Readiness {
    /// ready or not ready.
    pub status: String,
    pub checks: Checks,
}

/// "ok", or what went wrong.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Checks {
    pub ledger: String,
    pub queue: String,
    pub export_storage: String,
}
