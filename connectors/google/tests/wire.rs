//! Google's documented JSON read with the types the connector reads it with (`wire`), from the
//! samples kept beside the fake (`fixtures/samples/google`) and from the reference pages; and
//! the fake held to the one sample only this connector calls for (`people.get`).

use dsr_connector::decode;
use dsr_connector::http::{BearerAnswer, describe_oauth_error};
use dsr_fixtures::google::{GoogleFake, TEST_PRIVATE_KEY};
use dsr_google::auth::{ServiceAccount, Tokens};
use dsr_google::people::{PERSON_FIELDS, SCOPE_CONTACTS};
use dsr_google::wire::*;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

#[test]
fn the_documented_token_answer_and_error_are_read_by_cores_token_request() {
    let token: BearerAnswer = decode(json!({
        "access_token": "1/8xbJqaOZXSUZbHLl5EOtu1pxz3fmmetKx9W8CV4t79M",
        "scope": "https://www.googleapis.com/auth/prediction",
        "token_type": "Bearer",
        "expires_in": 3600
    }))
    .unwrap();
    assert_eq!(token.expires_in, Some(3600));
    let err = decode::<BearerAnswer>(json!({"accessToken": "x", "expires_in": 3600})).unwrap_err();
    assert_eq!(err.path, ".");
    assert!(err.reason.contains("missing field `access_token`"), "{err:?}");
    let body = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).to_string();
    let refused = describe_oauth_error(StatusCode::BAD_REQUEST, body.as_bytes());
    assert_eq!(
        (refused.code.as_str(), refused.message.as_str()),
        ("invalid_grant", "Invalid JWT Signature.")
    );
}

/// The documented bodies kept beside the fake (`fixtures/samples/google`), read as dsr reads them.
#[test]
fn the_stored_documented_samples_decode() {
    fn body<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let sample = dsr_fixtures::samples::load("google", name).unwrap();
        decode(sample.body).unwrap_or_else(|e| panic!("{name}: at `{}`: {}", e.path, e.reason))
    }
    let _: BearerAnswer = body("token");
    let refused = dsr_fixtures::samples::load("google", "token_error").unwrap();
    let said = describe_oauth_error(StatusCode::BAD_REQUEST, refused.body.to_string().as_bytes());
    assert!(!said.code.is_empty(), "{said:?}");
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
    let read: Person = body("people_get");
    assert!(read.metadata.is_some() && !read.addresses.is_empty());
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
    let mut update = PersonUpdate::default();
    update.replace("names", &[name]);
    assert_eq!(update.mask(), ["names"]);
    let body = update.for_person(&person);
    assert_eq!(body["etag"], "%EgUBAi43PRoEAQIFByIMR3JvOEVpdz09");
    assert_eq!(body["metadata"]["sources"][0]["etag"], "#Gro8Eiw==");
    assert_eq!(body["names"][0]["familyName"], "Hansen");
    assert_eq!(
        body["names"][0]["unstructuredName"], "Kari Nordmann",
        "the rest of the name is kept"
    );
    assert!(body.get("emailAddresses").is_none());
    let (before, after) = (person.fields(), update.fields());
    assert_eq!(after.len(), 1);
    assert_eq!(before["names"][0]["familyName"], "Nordmann");
    assert_eq!(after["names"][0]["familyName"], "Hansen");
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
    let err = decode::<QueryResponse>(json!({"jobReference": {"projectId": "p", "job_id": "j"}, "jobComplete": true}))
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
    let err =
        decode::<UserDeletionRequest>(json!({"deletionRequestTime": "t", "id": {"type": "CLIENT_ID"}})).unwrap_err();
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

/// The fake's answer to the re-read the connector makes after a stale etag (`people.get`,
/// with the connector's own token and person fields) has the documented shape, and reads as
/// the connector reads it.
#[tokio::test]
async fn the_fakes_people_get_answers_like_the_documented_sample() {
    let sample = dsr_fixtures::samples::load("google", "people_get").unwrap();
    assert_eq!(sample.request.query.as_ref().unwrap()["personFields"], PERSON_FIELDS);
    let documented: Person = decode(sample.body.clone()).unwrap();
    assert_eq!(
        Value::Object(documented.fields()),
        sample.body,
        "read and written back whole"
    );

    let fake = GoogleFake::start().await.unwrap();
    let account = ServiceAccount::from_json(&fake.service_account_json(TEST_PRIVATE_KEY)).unwrap();
    let http = dsr_connector::http::http_client(std::time::Duration::from_secs(10)).unwrap();
    let token_http = dsr_connector::http::TokenClient::new(std::time::Duration::from_secs(10)).unwrap();
    let tokens = Tokens::new(account, &fake.token_url(), token_http);
    let token = tokens
        .cache(&[SCOPE_CONTACTS], Some("ola.hansen@racom.no"))
        .token()
        .await
        .unwrap();
    let path = sample.request.path.replace("{personId}", "c1");
    let url = format!("{}{}", fake.people_url(), path.trim_start_matches("/v1"));
    let response = http
        .get(&url)
        .query(&[("personFields", PERSON_FIELDS)])
        .header("authorization", token.authorization.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), sample.status);
    let answer: Value = response.json().await.unwrap();
    sample.check_shape(&answer).unwrap();
    let read: Person = decode(answer).unwrap();
    assert_eq!(read.resource_name, "people/c1");
}
