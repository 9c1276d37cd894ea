//! Property tests of what the Google connector reads from Google and writes into its queries: every
//! wire type and the error-body reader, fed arbitrary JSON and bytes, never panic; nothing an address holds escapes the Gmail query's quotes, nor a dataset name the SQL's backquotes. A bounded
//! number of cases in the normal run (64), more with
//! `PROPTEST_CASES=10000 cargo test -p dsr-google --test properties`.

use dsr_connector::{Email, Identities, IdentityKind, Phone};
use dsr_google::access::{decode_row, events_query};
use dsr_google::client::describe_error;
use dsr_google::config::parse_dataset;
use dsr_google::gmail::{MailMeta, header_addresses, search_for};
use dsr_google::people::person_claims;
use dsr_google::wire::*;
use proptest::prelude::*;
use serde_json::{Value, json};

#[macro_use]
#[path = "../../core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::*;

const KEYS: &[&str] = &[
    "addresses",
    "canonicalForm",
    "connections",
    "deletionRequestTime",
    "displayName",
    "domain",
    "emailAddresses",
    "error",
    "errors",
    "etag",
    "f",
    "familyName",
    "fields",
    "firebaseProjectId",
    "formattedValue",
    "givenName",
    "headers",
    "id",
    "jobComplete",
    "jobId",
    "jobReference",
    "kind",
    "labelIds",
    "location",
    "message",
    "messages",
    "metadata",
    "mimeType",
    "mode",
    "name",
    "names",
    "nextPageToken",
    "organizations",
    "otherContacts",
    "pageToken",
    "payload",
    "person",
    "phoneNumbers",
    "projectId",
    "propertyId",
    "raw",
    "reason",
    "resourceName",
    "resultSizeEstimate",
    "results",
    "rows",
    "schema",
    "snippet",
    "status",
    "threadId",
    "title",
    "totalItems",
    "totalPeople",
    "totalRows",
    "totalSize",
    "type",
    "userId",
    "v",
    "value",
    "webPropertyId",
    "code",
    "sizeEstimate",
];

/// The subject: an address and a phone number that generated data sometimes holds.
fn subject() -> Identities {
    let mut subject = Identities::default();
    subject.add_email(Email::parse("kari@example.no").expect("a valid address"));
    subject.add_phone(Phone::parse("+47 912 34 567", "NO").expect("a valid number"));
    subject
}

/// A BigQuery schema: columns of a few types, RECORD columns with columns of their own.
fn schema() -> impl Strategy<Value = Value> {
    let column = (
        "[a-z_]{1,8}",
        prop::sample::select(&["STRING", "INTEGER", "FLOAT", "BOOLEAN"][..]),
        prop::option::of(prop::sample::select(&["NULLABLE", "REQUIRED", "REPEATED"][..])),
    )
        .prop_map(|(name, kind, mode)| json!({"name": name, "type": kind, "mode": mode}));
    column.prop_recursive(3, 24, 4, |inner| {
        (
            "[a-z_]{1,8}",
            prop::sample::select(&["RECORD", "STRUCT"][..]),
            prop::option::of(prop::sample::select(&["NULLABLE", "REPEATED"][..])),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, kind, mode, fields)| json!({"name": name, "type": kind, "mode": mode, "fields": fields}))
    })
}

/// A row for `fields` as BigQuery sends one (`{"f":[{"v":…}]}`), with a cell sometimes of a
/// shape the schema does not say.
fn row_for(fields: &[Value]) -> BoxedStrategy<Value> {
    let cells: Vec<BoxedStrategy<Value>> = fields.iter().map(cell_for).collect();
    cells.prop_map(|cells| json!({"f": cells})).boxed()
}

fn cell_for(field: &Value) -> BoxedStrategy<Value> {
    let record = matches!(field["type"].as_str(), Some("RECORD" | "STRUCT"));
    let sub: Vec<Value> = field["fields"].as_array().cloned().unwrap_or_default();
    let scalar = if record { row_for(&sub) } else { json(KEYS) };
    let value = if field["mode"] == "REPEATED" {
        prop::collection::vec(scalar.prop_map(|v| json!({"v": v})), 0..3)
            .prop_map(Value::Array)
            .boxed()
    } else {
        prop_oneof![4 => scalar, 1 => Just(Value::Null)].boxed()
    };
    prop_oneof![6 => value, 1 => json(KEYS)]
        .prop_map(|v| json!({"v": v}))
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Every wire type reads any JSON as a value or a decode error, never a panic; what dsr
    /// then asks of a decoded value does not panic either, and each claim it makes on a
    /// contact points at one of the subject's identifiers in that contact.
    #[test]
    fn the_wire_types_never_panic_on_any_json(value in json(KEYS)) {
        decode_each!(value;
            ErrorBody, MessageList, MessageRef, RawMessage, Message, MessagePart, Header, ConnectionList,
            OtherContactList, SearchResponse, SearchResult, Name, EmailAddress, PhoneNumber, Organization, Address,
            JobReference, TableCell, UserDeletionRequest, UserDeletionId, SubmitUserDeletionResponse, Property,
        );
        if let Ok(response) = dsr_connector::decode::<QueryResponse>(value.clone()) {
            let fields = response.schema.map(|s| s.fields).unwrap_or_default();
            for row in response.rows {
                let _ = decode_row(row, &fields, "rows");
            }
        }
        if let Ok(field) = dsr_connector::decode::<TableFieldSchema>(value.clone()) {
            let _ = (field.is_repeated(), field.is_record());
        }
        if let Ok(person) = dsr_connector::decode::<Person>(value) {
            let subject = subject();
            let record = Value::Object(person.fields());
            for claim in person_claims(&person, &subject) {
                let held = record.pointer(&claim.at).and_then(Value::as_str);
                prop_assert!(held.is_some_and(|v| subject.owns(claim.identity, v)), "{}", claim.at);
            }
        }
    }

    /// A BigQuery page's rows decode by its schema, or fail with an error, whatever the cells.
    #[test]
    fn query_rows_never_panic(rows in schema().prop_flat_map(|column| {
        let fields = vec![column];
        (Just(fields.clone()), prop::collection::vec(row_for(&fields), 0..3))
    })) {
        let (fields, rows) = rows;
        let page = json!({
            "jobReference": {"projectId": "p", "jobId": "j"},
            "jobComplete": true,
            "schema": {"fields": fields},
            "rows": rows,
        });
        let response: QueryResponse = dsr_connector::decode(page).expect("a well-formed page");
        let fields = response.schema.map(|s| s.fields).unwrap_or_default();
        for row in response.rows {
            let _ = decode_row(row, &fields, "rows");
        }
    }

    /// The error-body reader takes any status and any bytes, JSON or not, cut off or whole.
    #[test]
    fn the_error_reader_never_panics(status in status(), body in body(KEYS)) {
        let _ = describe_error(status, &body);
    }

    /// Any bytes as a message's headers: the address reader never panics, and the headers'
    /// claims point at headers that hold the subject's address.
    #[test]
    fn header_reading_never_panics(
        raw in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), text().prop_map(String::into_bytes)],
        headers in prop::collection::btree_map(prop::sample::select(&["From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject"][..]).prop_map(String::from), text(), 0..6),
    ) {
        let _ = header_addresses(&raw);
        let meta = MailMeta {
            id: "m1".into(),
            thread_id: "t1".into(),
            label_ids: Vec::new(),
            snippet: None,
            headers: headers.clone(),
        };
        let subject = subject();
        let _ = meta.other_participants(&subject, "owner@example.no");
        for claim in meta.claims(&subject) {
            let name = claim.at.trim_start_matches("/headers/");
            let value = headers.get(name).map(String::as_str).unwrap_or_default();
            prop_assert!(subject.owns(IdentityKind::EmailList, value));
        }
    }

    /// Nothing an address holds escapes Gmail's quoted phrases: the query is the four address
    /// operators on the same quoted address, and only dsr's eight quotes are in it.
    #[test]
    fn the_gmail_query_keeps_the_address_quoted(raw in prop_oneof![
        "[a-zA-Z0-9._%+'-]{1,20}@[a-z]{1,10}\\.[a-z]{2,4}",
        "\"[a-zA-Z0-9 .\\\\\"@():]{1,12}\"@[a-z]{1,10}\\.[a-z]{2,4}",
        text(),
    ]) {
        let Ok(email) = Email::parse(&raw) else { return Ok(()) };
        let query = search_for(&email);
        prop_assert_eq!(query.matches('"').count(), 8, "{}", query);
        let phrases: Vec<&str> = query.split('"').collect();
        prop_assert_eq!(phrases.len(), 9);
        prop_assert_eq!(phrases[0], "from:");
        prop_assert_eq!(phrases[2], " OR to:");
        prop_assert_eq!(phrases[4], " OR cc:");
        prop_assert_eq!(phrases[6], " OR bcc:");
        prop_assert_eq!(phrases[8], "");
        let address = email.as_str().replace('"', "");
        for at in [1, 3, 5, 7] {
            prop_assert_eq!(phrases[at], address.as_str());
        }
    }

    /// A dataset name that passes the config check cannot end the SQL's quoted table name.
    #[test]
    fn a_checked_dataset_stays_inside_its_backquotes(value in prop_oneof![
        "([a-z.]{1,10}:)?[a-z0-9-]{1,12}\\.[a-zA-Z0-9_]{1,12}",
        "[a-z0-9`;:. _-]{1,30}",
        text(),
    ]) {
        let Ok((project, dataset)) = parse_dataset(&value) else { return Ok(()) };
        prop_assert!(!project.contains('`') && !dataset.contains('`'));
        let query = events_query(&project, &dataset);
        let table = format!("`{project}.{dataset}.events_*`");
        prop_assert!(query.contains(&table));
        prop_assert_eq!(query.matches('`').count(), 2);
    }
}
