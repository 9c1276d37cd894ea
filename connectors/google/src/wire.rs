//! Google's JSON as dsr reads it, under Google's own field names: the OAuth token endpoint,
//! Gmail, People, BigQuery, and the two Analytics deletion APIs (each type links its page).
//! A field dsr decides by (an id, an address, a job's state) that is missing or of another
//! type is a decode error naming it. A record exported whole (a contact) keeps the fields dsr
//! does not read in `rest`, so it is written back out under Google's names.
//!
//! Google's JSON leaves out unset and empty fields rather than sending `null`, so unset
//! optional fields are left out when written back too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// --- OAuth 2.0 (https://developers.google.com/identity/protocols/oauth2/service-account#httprest)

/// The token endpoint's answer to a JWT bearer grant.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds the token lives.
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// The token endpoint's error body (RFC 6749, 5.2): `invalid_grant`, `unauthorized_client`…
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenError {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

// --- Errors (https://cloud.google.com/apis/design/errors#http_mapping and the classic
// `errors[]` the v3 APIs, Gmail and People still send)

/// `{"error":{"code","message","status","errors":[{"reason","domain","message"}]}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    /// The newer canonical code: `PERMISSION_DENIED`, `FAILED_PRECONDITION`…
    #[serde(default)]
    pub status: Option<String>,
    /// The classic reasons: `rateLimitExceeded`, `failedPrecondition`…
    #[serde(default)]
    pub errors: Vec<ErrorReason>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorReason {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
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
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
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
    #[serde(default)]
    pub snippet: Option<String>,
    pub raw: String,
}

/// `users.messages.get?format=metadata` (or `full`): the headers in `payload.headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub label_ids: Vec<String>,
    #[serde(default)]
    pub snippet: Option<String>,
    pub payload: MessagePart,
}

/// A MIME entity of a message (`MessagePart`); dsr reads only its headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePart {
    #[serde(default)]
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
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Deprecated for `totalItems`.
    #[serde(default)]
    pub total_people: Option<u32>,
    #[serde(default)]
    pub total_items: Option<u32>,
}

/// `otherContacts.list`: the addresses Workspace saved from a user's mail ("Other contacts").
/// https://developers.google.com/people/api/rest/v1/otherContacts/list
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherContactList {
    #[serde(default)]
    pub other_contacts: Vec<Person>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Output only: Google builds it from the other name fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    /// As the user typed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Output only: E.164 (`+4791234567`), what the subject's phone is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_form: Option<String>,
    /// `mobile`, `work`, `home`… or a custom label.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_value: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The body of `people/{id}:updateContact`: the fields named in `updatePersonFields` (each
/// replaced whole), and the etag and sources the person was read with.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<Name>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_addresses: Option<Vec<EmailAddress>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<PhoneNumber>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<Organization>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Address>>,
}

impl PersonUpdate {
    /// The person fields this update replaces, as `updatePersonFields` names them.
    pub fn mask(&self) -> Vec<&'static str> {
        [
            ("names", self.names.is_some()),
            ("emailAddresses", self.email_addresses.is_some()),
            ("phoneNumbers", self.phone_numbers.is_some()),
            ("organizations", self.organizations.is_some()),
            ("addresses", self.addresses.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// This update, to send for `person`: with the etag and sources it was read with.
    pub fn for_person(&self, person: &Person) -> PersonUpdate {
        PersonUpdate {
            etag: Some(person.etag.clone()),
            metadata: person.metadata.clone(),
            ..self.clone()
        }
    }

    /// Per field replaced: its name, its value on `before` and on `after`.
    pub fn changes(&self, before: &impl Serialize, after: &impl Serialize) -> Vec<(&'static str, Value, Value)> {
        let (before, after) = (fields(before), fields(after));
        self.mask()
            .into_iter()
            .map(|name| {
                let value = |fields: &Map<String, Value>| fields.get(name).cloned().unwrap_or(Value::Null);
                (name, value(&before), value(&after))
            })
            .collect()
    }
}

/// A record's fields under Google's names, as they would be sent.
pub fn fields(record: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
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
    #[serde(default)]
    pub schema: Option<TableSchema>,
    /// Left out when the page is empty.
    #[serde(default)]
    pub rows: Vec<TableRow>,
    /// Present while more rows remain.
    #[serde(default)]
    pub page_token: Option<String>,
    /// A uint64, sent as a JSON string.
    #[serde(default)]
    pub total_rows: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    pub project_id: String,
    pub job_id: String,
    #[serde(default)]
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
    #[serde(default)]
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
    #[serde(default)]
    pub web_property_id: Option<String>,
    #[serde(default)]
    pub property_id: Option<String>,
    #[serde(default)]
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
    #[serde(default)]
    pub display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::decode;
    use serde_json::json;

    #[test]
    fn the_documented_token_answer_and_error_decode() {
        let token: TokenResponse = decode(json!({
            "access_token": "1/8xbJqaOZXSUZbHLl5EOtu1pxz3fmmetKx9W8CV4t79M",
            "scope": "https://www.googleapis.com/auth/prediction",
            "token_type": "Bearer",
            "expires_in": 3600
        }))
        .unwrap();
        assert_eq!(token.expires_in, Some(3600));
        let err = decode::<TokenResponse>(json!({"accessToken": "x", "expires_in": 3600})).unwrap_err();
        assert_eq!(err.path, ".");
        assert!(err.reason.contains("missing field `access_token`"), "{err:?}");
        let refused: TokenError =
            decode(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})).unwrap();
        assert_eq!(refused.error.as_deref(), Some("invalid_grant"));
    }

    /// The documented bodies kept beside the fake (`fixtures/samples/google`), read as dsr reads them.
    #[test]
    fn the_stored_documented_samples_decode() {
        fn body<T: serde::de::DeserializeOwned>(name: &str) -> T {
            let sample = dsr_fixtures::samples::load("google", name).unwrap();
            decode(sample.body).unwrap_or_else(|e| panic!("{name}: at `{}`: {}", e.path, e.reason))
        }
        let _: TokenResponse = body("token");
        let refused: TokenError = body("token_error");
        assert!(refused.error.is_some());
        let list: MessageList = body("gmail_messages_list");
        assert!(!list.messages.is_empty());
        let raw: RawMessage = body("gmail_message_raw");
        assert!(!raw.raw.is_empty());
        let metadata: Message = body("gmail_message_metadata");
        assert!(!metadata.payload.headers.is_empty());
        let _: Message = body("gmail_message_full");
        let page: ConnectionList = body("people_connections");
        assert!(!page.connections[0].email_addresses.is_empty());
        let search: SearchResponse = body("people_search_contacts");
        assert!(!search.results.is_empty());
        let updated: Person = body("people_update_contact");
        assert!(updated.metadata.is_some());
        for name in ["bigquery_query", "bigquery_get_query_results"] {
            let done: QueryResponse = body(name);
            assert!(
                done.job_complete && done.schema.is_some() && !done.rows.is_empty(),
                "{name}"
            );
        }
        let pending: QueryResponse = body("bigquery_get_query_results_pending");
        assert!(!pending.job_complete);
        let _: UserDeletionRequest = body("ga_user_deletion_upsert");
        let _: SubmitUserDeletionResponse = body("admin_submit_user_deletion");
        let _: Property = body("admin_property");
        for name in [
            "error_400",
            "error_401",
            "error_403_permission_denied",
            "error_403_rate_limit",
            "error_404",
            "error_429",
        ] {
            let error: ErrorBody = body(name);
            assert!(error.error.message.is_some(), "{name}");
        }
    }

    #[test]
    fn both_error_shapes_decode() {
        let body: ErrorBody = decode(json!({"error": {"code": 400, "message": "stale",
            "errors": [{"message": "stale", "domain": "global", "reason": "failedPrecondition"}],
            "status": "FAILED_PRECONDITION"}}))
        .unwrap();
        assert_eq!(body.error.errors[0].reason.as_deref(), Some("failedPrecondition"));
        assert_eq!(body.error.status.as_deref(), Some("FAILED_PRECONDITION"));
    }

    #[test]
    fn documented_gmail_bodies_decode() {
        let list: MessageList = decode(json!({
            "messages": [{"id": "18e6b1c2d3e4f5a6", "threadId": "18e6b1c2d3e4f5a6"}],
            "nextPageToken": "09876543210987654321",
            "resultSizeEstimate": 2
        }))
        .unwrap();
        assert_eq!(list.messages[0].id, "18e6b1c2d3e4f5a6");
        assert_eq!(list.next_page_token.as_deref(), Some("09876543210987654321"));
        let empty: MessageList = decode(json!({"resultSizeEstimate": 0})).unwrap();
        assert!(empty.messages.is_empty() && empty.next_page_token.is_none());
        let err = decode::<MessageList>(json!({"messages": [{"messageId": "1", "threadId": "1"}]})).unwrap_err();
        assert_eq!(err.path, "messages[0]");
        assert!(err.reason.contains("missing field `id`"), "{err:?}");

        let raw: RawMessage = decode(json!({
            "id": "18e6b1c2d3e4f5a6", "threadId": "18e6b1c2d3e4f5a6",
            "labelIds": ["INBOX", "CATEGORY_PERSONAL"],
            "snippet": "Hei Ola, har dere sensorer for tunneler? Hilsen Kari",
            "sizeEstimate": 4321, "historyId": "123456", "internalDate": "1772442900000",
            "raw": "RnJvbTogS2FyaSBOb3JkbWFubiA8a2FyaS5ub3JkbWFubkBleGFtcGxlLm5vPg0KLi4u"
        }))
        .unwrap();
        assert_eq!(raw.label_ids, ["INBOX", "CATEGORY_PERSONAL"]);
        let err = decode::<RawMessage>(json!({"id": "1", "threadId": "1", "payload": {}})).unwrap_err();
        assert!(
            err.reason.contains("missing field `raw`"),
            "format=raw without raw: {err:?}"
        );

        let metadata: Message = decode(json!({
            "id": "18e6b1c2d3e4f5a6", "threadId": "18e6b1c2d3e4f5a6", "labelIds": ["INBOX"],
            "payload": {"partId": "", "mimeType": "multipart/mixed", "filename": "",
                "headers": [{"name": "From", "value": "Kari Nordmann <kari.nordmann@example.no>"}],
                "body": {"size": 0}}
        }))
        .unwrap();
        assert_eq!(metadata.payload.headers[0].name, "From");
        let err = decode::<Message>(json!({"id": "1", "payload": {"headers": [{"name": "From"}]}})).unwrap_err();
        assert_eq!(err.path, "payload.headers[0]");
        assert!(err.reason.contains("missing field `value`"), "{err:?}");
    }

    /// people.connections.list, built from the documented schema.
    fn documented_person() -> Value {
        json!({
            "resourceName": "people/c7890123456789012345",
            "etag": "%EgUBAi43PRoEAQIFByIMR3JvOEVpdz09",
            "metadata": {"sources": [{"type": "CONTACT", "id": "6d3f1a2b0c9e8f7a", "etag": "#Gro8Eiw==",
                "updateTime": "2026-03-02T09:20:11.482Z"}]},
            "names": [{"metadata": {"primary": true, "source": {"type": "CONTACT", "id": "6d3f1a2b0c9e8f7a"}},
                "displayName": "Kari Nordmann", "familyName": "Nordmann", "givenName": "Kari",
                "displayNameLastFirst": "Nordmann, Kari", "unstructuredName": "Kari Nordmann"}],
            "emailAddresses": [{"metadata": {"primary": true}, "value": "kari.nordmann@example.no",
                "type": "work", "formattedType": "Work"}],
            "phoneNumbers": [{"metadata": {"primary": true}, "value": "912 34 567", "canonicalForm": "+4791234567",
                "type": "mobile", "formattedType": "Mobile"}],
            "organizations": [{"metadata": {"primary": true}, "name": "Nordmann Consulting", "title": "Daglig leder",
                "type": "work", "formattedType": "Work"}]
        })
    }

    #[test]
    fn documented_people_bodies_decode_and_a_person_writes_back_whole() {
        let page: ConnectionList = decode(json!({
            "connections": [documented_person()],
            "nextPageToken": "GgYKAghkEAI", "nextSyncToken": "EOi_1-arMxIC", "totalPeople": 2, "totalItems": 2
        }))
        .unwrap();
        let person = &page.connections[0];
        assert_eq!(person.resource_name, "people/c7890123456789012345");
        assert_eq!(person.phone_numbers[0].canonical_form.as_deref(), Some("+4791234567"));
        assert_eq!(person.email_addresses[0].kind.as_deref(), Some("work"));
        assert_eq!((page.total_people, page.total_items), (Some(2), Some(2)));
        assert_eq!(serde_json::to_value(person).unwrap(), documented_person());

        let search: SearchResponse = decode(json!({"results": [{"person": documented_person()}]})).unwrap();
        assert_eq!(search.results[0].person.etag, "%EgUBAi43PRoEAQIFByIMR3JvOEVpdz09");
        let nothing: SearchResponse = decode(json!({})).unwrap();
        assert!(nothing.results.is_empty());

        let mut renamed = documented_person();
        renamed.as_object_mut().unwrap().remove("resourceName");
        let err = decode::<ConnectionList>(json!({"connections": [renamed]})).unwrap_err();
        assert_eq!(err.path, "connections[0]");
        assert!(err.reason.contains("missing field `resourceName`"), "{err:?}");
        let mut misread = documented_person();
        misread["phoneNumbers"][0]["canonicalForm"] = json!(4791234567u64);
        let err = decode::<Person>(misread).unwrap_err();
        assert_eq!(err.path, "phoneNumbers[0].canonicalForm");
    }

    #[test]
    fn an_update_names_its_fields_and_carries_the_etag_and_sources() {
        let person: Person = decode(documented_person()).unwrap();
        let mut name = person.names[0].clone();
        name.family_name = Some("Hansen".into());
        let update = PersonUpdate {
            names: Some(vec![name]),
            ..Default::default()
        };
        assert_eq!(update.mask(), ["names"]);
        let body = serde_json::to_value(update.for_person(&person)).unwrap();
        assert_eq!(body["etag"], "%EgUBAi43PRoEAQIFByIMR3JvOEVpdz09");
        assert_eq!(body["metadata"]["sources"][0]["etag"], "#Gro8Eiw==");
        assert_eq!(body["names"][0]["familyName"], "Hansen");
        assert_eq!(
            body["names"][0]["unstructuredName"], "Kari Nordmann",
            "the rest of the name is kept"
        );
        assert!(body.get("emailAddresses").is_none());
        let changes = update.changes(&person, &update);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1[0]["familyName"], "Nordmann");
        assert_eq!(changes[0].2[0]["familyName"], "Hansen");
    }

    #[test]
    fn documented_bigquery_bodies_decode() {
        let done: QueryResponse = decode(json!({
            "kind": "bigquery#queryResponse",
            "schema": {"fields": [
                {"name": "event_params", "type": "RECORD", "mode": "REPEATED",
                 "fields": [{"name": "key", "type": "STRING", "mode": "NULLABLE"}]},
                {"name": "user_pseudo_id", "type": "STRING", "mode": "NULLABLE"}]},
            "jobReference": {"projectId": "example.com:racom-analytics", "jobId": "job_0aBcDeFgHiJkLmNoPqRsTuVwXyZ",
                "location": "EU"},
            "totalRows": "3",
            "pageToken": "BFX2CIBAQ",
            "rows": [{"f": [{"v": null}, {"v": null}]}],
            "totalBytesProcessed": "123456",
            "jobComplete": true,
            "cacheHit": false
        }))
        .unwrap();
        assert!(done.job_complete);
        assert_eq!(done.job_reference.location.as_deref(), Some("EU"));
        let fields = done.schema.unwrap().fields;
        assert!(fields[0].is_repeated() && fields[0].is_record());
        assert_eq!(done.rows[0].f.len(), 2);
        assert_eq!(done.total_rows.as_deref(), Some("3"));

        let pending: QueryResponse = decode(json!({
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": {"projectId": "p", "jobId": "j", "location": "EU"},
            "jobComplete": false
        }))
        .unwrap();
        assert!(!pending.job_complete && pending.rows.is_empty() && pending.schema.is_none());
        let err =
            decode::<QueryResponse>(json!({"jobReference": {"projectId": "p", "job_id": "j"}, "jobComplete": true}))
                .unwrap_err();
        assert_eq!(err.path, "jobReference");
        assert!(err.reason.contains("missing field `jobId`"), "{err:?}");
    }

    #[test]
    fn documented_deletion_answers_decode() {
        let upsert: UserDeletionRequest = decode(json!({
            "kind": "analytics#userDeletionRequest",
            "id": {"type": "CLIENT_ID", "userId": "1234567890.1700000000"},
            "propertyId": "351234567",
            "deletionRequestTime": "2026-12-02T10:15:30.123Z"
        }))
        .unwrap();
        assert_eq!(upsert.id.kind, "CLIENT_ID");
        assert_eq!(upsert.property_id.as_deref(), Some("351234567"));
        let err = decode::<UserDeletionRequest>(json!({"id": {"type": "CLIENT_ID", "userId": "1"}})).unwrap_err();
        assert!(err.reason.contains("missing field `deletionRequestTime`"), "{err:?}");
        let err = decode::<UserDeletionRequest>(json!({"deletionRequestTime": "t", "id": {"type": "CLIENT_ID"}}))
            .unwrap_err();
        assert_eq!(err.path, "id");
        assert!(err.reason.contains("missing field `userId`"), "{err:?}");

        let admin: SubmitUserDeletionResponse =
            decode(json!({"deletionRequestTime": "2026-12-02T10:15:30.123456Z"})).unwrap();
        assert_eq!(admin.deletion_request_time, "2026-12-02T10:15:30.123456Z");
        let property: Property = decode(json!({"name": "properties/351234567", "displayName": "racom.no",
            "propertyType": "PROPERTY_TYPE_ORDINARY", "timeZone": "Europe/Oslo"}))
        .unwrap();
        assert_eq!(property.name, "properties/351234567");
    }
}
