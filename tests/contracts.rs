//! The connectors against the vendors' own documented responses (`fixtures/samples/`): every
//! sample is read with the type the connector reads that endpoint with, and every error sample
//! with the connector's error reader. A sample no connector type accounts for fails the build,
//! so a new sample comes with its contract. (That each fake answers in the samples' shapes is
//! tested beside the fakes, in `fixtures/tests/*_samples.rs`.)

use std::collections::BTreeMap;

use dsr_connector::http::VendorError;
use dsr_fixtures::samples::{Sample, load_all};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How a connector reads one sample.
enum Reads {
    /// The body decodes with the connector's type(s).
    Body(fn(&Value) -> Result<(), String>),
    /// An error body: the connector's reader must find the vendor's words (and its code).
    Error(fn(StatusCode, &[u8]) -> VendorError),
    /// The connector reads nothing of this answer (a 204, or an endpoint it never calls): why.
    Nothing(&'static str),
}

fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    dsr_connector::decode(value.clone()).map_err(|e| format!("at `{}`: {}", e.path, e.reason))
}

/// Decodes `list` (an array of records) as `T` each.
fn each<T: DeserializeOwned>(list: &[Value]) -> Result<(), String> {
    for (i, item) in list.iter().enumerate() {
        decode::<T>(item).map_err(|e| format!("item {i}: {e}"))?;
    }
    Ok(())
}

fn check(vendor: &str, contracts: BTreeMap<&str, Reads>) {
    let samples: Vec<Sample> = load_all(vendor).unwrap();
    assert!(!samples.is_empty(), "no samples for {vendor}");
    let mut problems = Vec::new();
    for sample in &samples {
        let Some(reads) = contracts.get(sample.name.as_str()) else {
            problems.push(format!("{}: no contract says how the connector reads it", sample.name));
            continue;
        };
        match reads {
            Reads::Body(f) => {
                if let Err(e) = f(&sample.body) {
                    problems.push(format!("{} ({}): {e}", sample.name, sample.source));
                }
            }
            Reads::Error(describe) => {
                let status = StatusCode::from_u16(sample.status).unwrap();
                let body = serde_json::to_vec(&sample.body).unwrap();
                let said = describe(status, &body);
                if said.message.trim().is_empty() || said.message.contains("no explanation") && body.len() > 30 {
                    problems.push(format!(
                        "{}: the connector reads no message from it: {said:?}",
                        sample.name
                    ));
                }
                if let Some(code) = documented_code(&sample.body)
                    && !said.code.contains(&code)
                    && !said.message.contains(&code)
                {
                    problems.push(format!("{}: the vendor's code {code} is lost: {said:?}", sample.name));
                }
            }
            Reads::Nothing(why) => assert!(!why.is_empty()),
        }
    }
    for name in contracts.keys() {
        if !samples.iter().any(|s| s.name == *name) {
            problems.push(format!("{name}: a contract for a sample that does not exist"));
        }
    }
    assert!(problems.is_empty(), "{vendor}:\n  {}", problems.join("\n  "));
}

/// The machine-readable code a vendor's error body carries, where it has one.
fn documented_code(body: &Value) -> Option<String> {
    [
        &body["ErrorType"],
        &body["details"]["applicationError"]["code"],
        &body["error"]["code"],
        &body["error"]["status"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(String::from))
    .or_else(|| body["error"].as_str().map(String::from))
}

#[test]
fn superoffice_reads_every_documented_answer() {
    use dsr_superoffice::client::describe_error;
    use dsr_superoffice::wire::*;
    type Archive = dsr_connector::http::ODataPage<ArchiveRow>;
    let deleted = "204 No Content: dsr reads the status only";
    let contracts = BTreeMap::from([
        (
            "authenticate",
            Reads::Body(|b| decode::<AuthenticateAnswer>(b).map(drop)),
        ),
        (
            "jwks",
            Reads::Nothing("read key by key by keys::verify_jwt; real tokens are verified in tests/superoffice.rs"),
        ),
        (
            "oauth_tokens",
            Reads::Body(|b| decode::<oauth2::basic::BasicTokenResponse>(b).map(drop)),
        ),
        ("tenant_state", Reads::Body(|b| decode::<TenantState>(b).map(drop))),
        ("person_list", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("person_get", Reads::Body(|b| decode::<PersonEntity>(b).map(drop))),
        ("person_patch", Reads::Body(|b| decode::<PersonEntity>(b).map(drop))),
        ("person_delete", Reads::Nothing(deleted)),
        (
            "person_consent",
            Reads::Body(|b| decode::<Vec<ConsentInfo>>(b).map(drop)),
        ),
        (
            "person_consent_fields",
            Reads::Body(|b| decode::<Vec<ConsentInfo>>(b).map(drop)),
        ),
        (
            "person_has_consent",
            Reads::Nothing("dsr reads the whole consent list instead (it names the legal base)"),
        ),
        ("person_consent_withdraw", Reads::Nothing(deleted)),
        ("person_activities", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("person_appointments", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("person_documents", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("person_sales", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("person_tickets", Reads::Body(|b| decode::<Archive>(b).map(drop))),
        ("appointment_delete", Reads::Nothing(deleted)),
        ("document_delete", Reads::Nothing(deleted)),
        ("sale_delete", Reads::Nothing(deleted)),
        ("ticket_delete", Reads::Nothing(deleted)),
        ("error_400", Reads::Error(describe_error)),
        ("error_401", Reads::Error(describe_error)),
        ("error_403", Reads::Error(describe_error)),
        ("error_404", Reads::Error(describe_error)),
        ("error_412", Reads::Error(describe_error)),
        ("error_421", Reads::Error(describe_error)),
    ]);
    check("superoffice", contracts);
}

#[test]
fn wix_reads_every_documented_answer() {
    use dsr_wix::client::describe_error;
    use dsr_wix::wire::*;
    let emptied = "{} on success: dsr reads the status only";
    let contracts = BTreeMap::from([
        ("oauth_token", Reads::Body(|b| decode::<TokenAnswer>(b).map(drop))),
        ("oauth_token_invalid_client", Reads::Error(describe_error)),
        (
            "contacts_query",
            Reads::Body(|b| each::<Contact>(&decode::<ContactsPage>(b)?.contacts)),
        ),
        ("contacts_query_unsupported_filter", Reads::Error(describe_error)),
        (
            "contact_get",
            Reads::Body(|b| decode::<Contact>(&decode::<ContactAnswer>(b)?.contact).map(drop)),
        ),
        ("contact_get_404", Reads::Error(describe_error)),
        (
            "contact_update",
            Reads::Body(|b| decode::<Contact>(&decode::<ContactAnswer>(b)?.contact).map(drop)),
        ),
        ("contact_update_409", Reads::Error(describe_error)),
        ("contact_delete", Reads::Nothing(emptied)),
        ("contact_delete_428_member", Reads::Error(describe_error)),
        ("contact_delete_428_billing", Reads::Error(describe_error)),
        ("contact_delete_428_contributor", Reads::Error(describe_error)),
        (
            "members_query",
            Reads::Body(|b| each::<Member>(&decode::<MembersPage>(b)?.members)),
        ),
        (
            "members_query_public",
            Reads::Body(|b| each::<Member>(&decode::<MembersPage>(b)?.members)),
        ),
        ("member_delete", Reads::Nothing(emptied)),
        ("member_delete_owner", Reads::Error(describe_error)),
        (
            "submissions_query",
            Reads::Body(|b| each::<Submission>(&decode::<SubmissionsPage>(b)?.submissions)),
        ),
        ("submissions_query_missing_namespace", Reads::Error(describe_error)),
        ("submission_delete", Reads::Nothing(emptied)),
        (
            "comments_query_cursor",
            Reads::Body(|b| each::<Comment>(&decode::<CommentsPage>(b)?.comments)),
        ),
        ("comments_query_missing_app_id", Reads::Error(describe_error)),
        ("comment_delete", Reads::Nothing(emptied)),
        (
            "subscriptions_query",
            Reads::Body(|b| decode::<SubscriptionsPage>(b).map(drop)),
        ),
        (
            "subscription_upsert",
            Reads::Body(|b| decode::<SubscriptionAnswer>(b).map(drop)),
        ),
        ("error_401_unauthenticated", Reads::Error(describe_error)),
        ("error_429_resource_exhausted", Reads::Error(describe_error)),
        ("error_503_system", Reads::Error(describe_error)),
    ]);
    check("wix", contracts);
}

#[test]
fn microsoft365_reads_every_documented_answer() {
    use dsr_microsoft365::client::describe_error;
    use dsr_microsoft365::wire::*;
    let deleted = "204 No Content: dsr reads the status only";
    let contracts = BTreeMap::from([
        (
            "token",
            Reads::Body(|b| decode::<oauth2::basic::BasicTokenResponse>(b).map(drop)),
        ),
        ("token_error", Reads::Error(describe_error)),
        ("users_list", Reads::Body(|b| decode::<ODataPage<User>>(b).map(drop))),
        // The page's example asks `$select=sender,subject`; dsr's own `$select` is in
        // messages_search, read as a whole message below.
        (
            "messages_list",
            Reads::Body(|b| decode::<ODataPage<Value>>(b).map(drop)),
        ),
        (
            "messages_search",
            Reads::Body(|b| decode::<ODataPage<Message>>(b).map(drop)),
        ),
        ("message_get", Reads::Body(|b| decode::<Message>(b).map(drop))),
        (
            "attachments_list",
            Reads::Body(|b| decode::<ODataPage<Attachment>>(b).map(drop)),
        ),
        ("attachment_get", Reads::Body(|b| decode::<Attachment>(b).map(drop))),
        (
            "attachment_value",
            Reads::Nothing("the file's bytes, streamed into the bundle as they are"),
        ),
        // The list pages' example rows are placeholders without ids: the envelope is read
        // here; contact_update holds a whole documented contact.
        (
            "contacts_list",
            Reads::Body(|b| decode::<ODataPage<Value>>(b).map(drop)),
        ),
        ("contact_update", Reads::Body(|b| decode::<Contact>(b).map(drop))),
        ("contact_delete", Reads::Nothing(deleted)),
        ("contact_permanent_delete", Reads::Nothing(deleted)),
        (
            "contact_folders_list",
            Reads::Body(|b| decode::<ODataPage<Value>>(b).map(drop)),
        ),
        (
            "contact_folder_child_folders",
            Reads::Body(|b| decode::<ODataPage<Value>>(b).map(drop)),
        ),
        (
            "contact_folder_contacts",
            Reads::Body(|b| decode::<ODataPage<Value>>(b).map(drop)),
        ),
        ("message_delete", Reads::Nothing(deleted)),
        ("message_permanent_delete", Reads::Nothing(deleted)),
        ("message_move", Reads::Body(|b| decode::<Message>(b).map(drop))),
        ("mail_folder_get", Reads::Body(|b| decode::<MailFolder>(b).map(drop))),
        ("error_format", Reads::Error(describe_error)),
        ("error_mailbox_not_enabled", Reads::Error(describe_error)),
        ("error_resource_not_found", Reads::Error(describe_error)),
        ("error_access_denied_policy", Reads::Error(describe_error)),
        ("error_throttled_429", Reads::Error(describe_error)),
    ]);
    check("graph", contracts);
}

#[test]
fn google_reads_every_documented_answer() {
    use dsr_google::client::describe_error;
    use dsr_google::wire::*;
    let contracts = BTreeMap::from([
        (
            "token",
            Reads::Body(|b| decode::<dsr_connector::http::BearerAnswer>(b).map(drop)),
        ),
        ("token_error", Reads::Error(dsr_connector::http::describe_oauth_error)),
        (
            "ga_user_deletion_upsert",
            Reads::Body(|b| decode::<UserDeletionRequest>(b).map(drop)),
        ),
        (
            "admin_submit_user_deletion",
            Reads::Body(|b| decode::<SubmitUserDeletionResponse>(b).map(drop)),
        ),
        ("admin_property", Reads::Body(|b| decode::<Property>(b).map(drop))),
        ("bigquery_query", Reads::Body(|b| decode::<QueryResponse>(b).map(drop))),
        (
            "bigquery_get_query_results",
            Reads::Body(|b| decode::<QueryResponse>(b).map(drop)),
        ),
        (
            "bigquery_get_query_results_pending",
            Reads::Body(|b| decode::<QueryResponse>(b).map(drop)),
        ),
        (
            "gmail_messages_list",
            Reads::Body(|b| decode::<MessageList>(b).map(drop)),
        ),
        ("gmail_message_raw", Reads::Body(|b| decode::<RawMessage>(b).map(drop))),
        (
            "gmail_message_metadata",
            Reads::Body(|b| decode::<Message>(b).map(drop)),
        ),
        ("gmail_message_full", Reads::Body(|b| decode::<Message>(b).map(drop))),
        (
            "gmail_message_trash",
            Reads::Nothing("dsr reads the status of the trash call only"),
        ),
        (
            "gmail_batch_delete",
            Reads::Nothing("an empty body: dsr reads the status and searches again"),
        ),
        (
            "gmail_profile",
            Reads::Nothing("not called: mailboxes are configured by address"),
        ),
        (
            "people_connections",
            Reads::Body(|b| decode::<ConnectionList>(b).map(drop)),
        ),
        (
            "people_search_contacts",
            Reads::Body(|b| decode::<SearchResponse>(b).map(drop)),
        ),
        ("people_get", Reads::Body(|b| decode::<Person>(b).map(drop))),
        ("people_update_contact", Reads::Body(|b| decode::<Person>(b).map(drop))),
        ("people_update_contact_stale_etag", Reads::Error(describe_error)),
        (
            "people_delete_contact",
            Reads::Nothing("an empty body: dsr reads the status"),
        ),
        (
            "other_contacts_list",
            Reads::Body(|b| decode::<OtherContactList>(b).map(drop)),
        ),
        (
            "other_contacts_search",
            Reads::Nothing("not called: otherContacts.list is paged and complete, search is capped at 30"),
        ),
        ("other_contacts_insufficient_scope", Reads::Error(describe_error)),
        ("error_400", Reads::Error(describe_error)),
        ("error_401", Reads::Error(describe_error)),
        ("error_403_permission_denied", Reads::Error(describe_error)),
        ("error_403_rate_limit", Reads::Error(describe_error)),
        ("error_404", Reads::Error(describe_error)),
        ("error_429", Reads::Error(describe_error)),
    ]);
    check("google", contracts);
}
