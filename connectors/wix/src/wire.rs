//! Wix's answers as its REST reference names them: what dsr decides on is typed; each record
//! is also kept whole (the raw JSON) for the subject's export.
//!
//! - contacts v4: https://dev.wix.com/docs/rest/crm/members-contacts/contacts/contacts/contact-v4/query-contacts
//! - members: https://dev.wix.com/docs/rest/api-reference/members/members
//! - submissions: https://dev.wix.com/docs/api-reference/crm/forms/form-submissions/query-submissions-by-namespace
//! - comments: https://dev.wix.com/docs/api-reference/crm/community/comments/comments/query-comments
//! - e-mail subscriptions: https://dev.wix.com/docs/rest/crm/communication/email-subscriptions/query-email-subscriptions

use serde::Deserialize;
use serde_json::{Map, Value};

/// A list wrapper as Wix writes lists inside a contact: `{"items": […]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Items<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { items: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContactEmail {
    pub email: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPhone {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub e164_phone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactInfo {
    #[serde(default)]
    pub emails: Items<ContactEmail>,
    #[serde(default)]
    pub phones: Items<ContactPhone>,
}

/// A contact: its id, its revision (required to update it) and the addresses and phones.
#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub info: ContactInfo,
}

/// Offset paging of contacts and subscriptions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetPaging {
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub too_many_to_count: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactsPage {
    pub contacts: Vec<Value>,
    #[serde(default)]
    pub paging_metadata: OffsetPaging,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContactAnswer {
    pub contact: Value,
}

/// A site member (with the FULL fieldset, which carries the login e-mail and contact id).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    #[serde(default)]
    pub login_email: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MembersPage {
    pub members: Vec<Value>,
}

/// Cursor paging of submissions and comments.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cursors {
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CursorPaging {
    #[serde(default)]
    pub cursors: Cursors,
    #[serde(default)]
    pub has_next: Option<bool>,
}

impl CursorPaging {
    /// The cursor of the next page, if there is one.
    pub fn next(&self) -> Option<String> {
        if self.has_next == Some(false) {
            return None;
        }
        self.cursors.next.clone().filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitter {
    #[serde(default)]
    pub member_id: Option<String>,
    #[serde(default)]
    pub visitor_id: Option<String>,
}

/// A form submission: its field values by field target, and who sent it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    pub id: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub submissions: Map<String, Value>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub submitter: Submitter,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubmissionsPage {
    pub submissions: Vec<Value>,
    #[serde(default)]
    pub metadata: CursorPaging,
}

/// A comment; a deleted one stays listed with status `DELETED` and no content.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
}

impl Comment {
    pub fn deleted(&self) -> bool {
        self.status.as_deref() == Some("DELETED")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentsPage {
    pub comments: Vec<Value>,
    #[serde(default)]
    pub paging_metadata: CursorPaging,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionsPage {
    pub subscriptions: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionAnswer {
    pub subscription: Value,
}

/// `POST /oauth2/token`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `{"message","details":{"applicationError":{"code","description"}}}` or
/// `{"message","details":{"validationError":{"fieldViolations":[…]}}}`, and the token
/// endpoint's `{"error","error_description"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: ErrorDetails,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    #[serde(default)]
    pub application_error: Option<ApplicationError>,
    #[serde(default)]
    pub validation_error: Option<ValidationError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApplicationError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationError {
    #[serde(default)]
    pub field_violations: Vec<FieldViolation>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldViolation {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The rule's name, such as `OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN`.
    #[serde(default)]
    pub rule_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_contact_without_its_id_is_a_named_decode_error() {
        let err = dsr_connector::decode::<Contact>(json!({"contactId": "x", "info": {}})).unwrap_err();
        assert!(err.reason.contains("`id`"), "{err:?}");
        let c: Contact = dsr_connector::decode(
            json!({"id": "c", "revision": 3, "info": {"emails": {"items": [{"email": "a@b.no", "tag": "MAIN"}]}}}),
        )
        .unwrap();
        assert_eq!(c.info.emails.items[0].email, "a@b.no");
    }

    #[test]
    fn cursor_paging_ends_on_has_next_false_or_no_cursor() {
        let p: CursorPaging = dsr_connector::decode(json!({"cursors": {"next": "abc"}, "hasNext": false})).unwrap();
        assert_eq!(p.next(), None);
        let p: CursorPaging = dsr_connector::decode(json!({"cursors": {"next": "abc"}, "hasNext": true})).unwrap();
        assert_eq!(p.next().as_deref(), Some("abc"));
    }
}
