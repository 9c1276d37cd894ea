//! Google's JSON as dsr reads it, under Google's own field names: Gmail, People, BigQuery,
//! and the two Analytics deletion APIs (each type links its page). The token endpoint's
//! answer is core's `BearerAnswer` (`auth.rs`).
//! A field dsr decides by (an id, an address, a job's state) that is missing or of another
//! type is a decode error naming it. A record exported whole (a contact) keeps the fields dsr
//! does not read in `rest`, so it is written back out under Google's names.
//!
//! Google's JSON leaves out unset and empty fields rather than sending `null`, so unset
//! optional fields are left out when written back too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// --- Errors (https://cloud.google.com/apis/design/errors#http_mapping and the classic
// `errors[]` the v3 APIs, Gmail and People still send)

/// `{"error":{"code","message","status","errors":[{"reason","domain","message"}]}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    pub message: Option<String>,
    /// The newer canonical code: `PERMISSION_DENIED`, `FAILED_PRECONDITION`…
    pub status: Option<String>,
    /// The classic reasons: `rateLimitExceeded`, `failedPrecondition`…
    #[serde(default)]
    pub errors: Vec<ErrorReason>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorReason {
    pub reason: Option<String>,
    pub domain: Option<String>,
}

// --- Gmail (https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages)

/// `users.messages.list`: ids only; `messages` is left out when nothing matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    /// Left out on the last page.
    pub next_page_token: Option<String>,
    pub result_size_estimate: Option<u32>,
}

/// A message as a list names it: "each message resource contains only an id and a threadId".
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    pub thread_id: String,
}

/// `users.messages.get?format=raw`: the message exactly as Gmail stores it, base64url in
/// `raw` ("the payload field is not used").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage {
    pub id: String,
    pub thread_id: String,
    #[serde(default)]
    pub label_ids: Vec<String>,
    pub snippet: Option<String>,
    pub raw: String,
}

/// `users.messages.get?format=metadata` (or `full`): the headers in `payload.headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub thread_id: Option<String>,
    #[serde(default)]
    pub label_ids: Vec<String>,
    pub snippet: Option<String>,
    pub payload: MessagePart,
}

/// A MIME entity of a message (`MessagePart`); dsr reads only its headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePart {
    pub mime_type: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

// --- People (https://developers.google.com/people/api/rest/v1/people)

/// `people.connections.list`: one page of a user's contacts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionList {
    /// Left out when the address book is empty.
    #[serde(default)]
    pub connections: Vec<Person>,
    /// "If this field is omitted, there are no subsequent pages."
    pub next_page_token: Option<String>,
    /// Deprecated for `totalItems`.
    pub total_people: Option<u32>,
    pub total_items: Option<u32>,
}

/// `otherContacts.list`: the addresses Workspace saved from a user's mail ("Other contacts").
/// https://developers.google.com/people/api/rest/v1/otherContacts/list
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherContactList {
    #[serde(default)]
    pub other_contacts: Vec<Person>,
    pub next_page_token: Option<String>,
    pub total_size: Option<u32>,
}

/// `people.searchContacts`: at most 30 prefix matches, no paging (dsr pages `connections`).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResponse {
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchResult {
    pub person: Person,
}

/// A contact (`Person`) with the fields dsr asks for in `personFields`. Fields come only
/// when named in the mask and not empty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// `people/{person_id}`: what deletes and updates name.
    pub resource_name: String,
    /// Checked by `updateContact`: a stale one is refused with `failedPrecondition`.
    pub etag: String,
    /// The sources of the person (`metadata.sources[{type,id,etag}]`), which `updateContact`
    /// wants sent back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Name>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<Organization>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Output only: Google builds it from the other name fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    /// As the user typed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Output only: E.164 (`+4791234567`), what the subject's phone is compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_form: Option<String>,
    /// `mobile`, `work`, `home`… or a custom label.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted_value: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The person fields an update may replace, in the order `updatePersonFields` names them.
const REPLACEABLE: [&str; 5] = ["names", "emailAddresses", "phoneNumbers", "organizations", "addresses"];

impl Person {
    /// The person's fields under Google's names, as they would be sent.
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// The fields of a `people/{id}:updateContact` body, by Google's names: each one named in
/// `updatePersonFields` and replaced whole ("All fields specified in the update_mask will be
/// replaced").
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PersonUpdate(Map<String, Value>);

impl PersonUpdate {
    /// Replaces the person field `name` (one of `names`, `emailAddresses`, `phoneNumbers`,
    /// `organizations`, `addresses`) with `values`.
    pub fn replace<T: Serialize>(&mut self, name: &'static str, values: &[T]) {
        self.0.insert(name.into(), serde_json::json!(values));
    }

    /// The person fields this update replaces, as `updatePersonFields` names them.
    pub fn mask(&self) -> Vec<&'static str> {
        REPLACEABLE
            .into_iter()
            .filter(|name| self.0.contains_key(*name))
            .collect()
    }

    /// The fields replaced, with their new values.
    pub fn fields(&self) -> Map<String, Value> {
        self.0.clone()
    }

    /// The body to send for `person`: these fields, with the etag and sources (`metadata`)
    /// it was read with, which updateContact checks.
    pub fn for_person(&self, person: &Person) -> Value {
        let mut body = self.0.clone();
        body.insert("etag".into(), Value::String(person.etag.clone()));
        if let Some(metadata) = &person.metadata {
            body.insert("metadata".into(), metadata.clone());
        }
        Value::Object(body)
    }
}

// --- BigQuery (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/query and
// …/jobs/getQueryResults)

/// `jobs.query` and `jobs.getQueryResults`: the job, and once it is complete the schema and
/// one page of rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// "present even if the original request timed out".
    pub job_reference: JobReference,
    pub job_complete: bool,
    /// Only once the job is complete.
    pub schema: Option<TableSchema>,
    /// Left out when the page is empty.
    #[serde(default)]
    pub rows: Vec<TableRow>,
    /// Present while more rows remain.
    pub page_token: Option<String>,
    /// A uint64, sent as a JSON string.
    pub total_rows: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    pub project_id: String,
    pub job_id: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TableSchema {
    #[serde(default)]
    pub fields: Vec<TableFieldSchema>,
}

/// A column: `RECORD` (or `STRUCT`) columns have `fields`; `REPEATED` ones hold a list.
#[derive(Debug, Clone, Deserialize)]
pub struct TableFieldSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `NULLABLE` (the default), `REQUIRED` or `REPEATED`.
    pub mode: Option<String>,
    #[serde(default)]
    pub fields: Vec<TableFieldSchema>,
}

impl TableFieldSchema {
    pub fn is_repeated(&self) -> bool {
        self.mode.as_deref() == Some("REPEATED")
    }

    pub fn is_record(&self) -> bool {
        self.kind == "RECORD" || self.kind == "STRUCT"
    }
}

/// A row: one cell per schema field, in order.
#[derive(Debug, Clone, Deserialize)]
pub struct TableRow {
    pub f: Vec<TableCell>,
}

/// A cell. `v` is typed `any`: a string, `null`, `{"f":[…]}` for a RECORD, `[{"v":…}]` for
/// a REPEATED column; the schema says which.
#[derive(Debug, Clone, Deserialize)]
pub struct TableCell {
    pub v: Value,
}

// --- Analytics user deletion

/// `userDeletion.userDeletionRequests.upsert` (Analytics v3,
/// https://developers.google.com/analytics/devguides/config/userdeletion/v3/reference/userDeletion/userDeletionRequest).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDeletionRequest {
    /// From when Google deletes the data (within 72 hours).
    pub deletion_request_time: String,
    pub id: UserDeletionId,
    /// Exactly one of these names where the data is.
    pub web_property_id: Option<String>,
    pub property_id: Option<String>,
    pub firebase_project_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDeletionId {
    /// `CLIENT_ID`, `USER_ID` or `APP_INSTANCE_ID`.
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: String,
}

/// `properties.submitUserDeletion` (Admin API v1alpha,
/// https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/properties/submitUserDeletion).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitUserDeletionResponse {
    pub deletion_request_time: String,
}

/// `properties.get` (Admin API): dsr checks only that the property answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// `properties/{id}`.
    pub name: String,
    pub display_name: Option<String>,
}
