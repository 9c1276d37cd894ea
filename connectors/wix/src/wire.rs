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

/// `POST /oauth2/token` answers as every OAuth token endpoint does (core reads it).
pub use dsr_connector::http::BearerAnswer as TokenAnswer;

// Fields that may be absent are `Option`s (absent is `None`) or, where a container is
// `#[serde(default)]`, take their empty value: only what dsr cannot do without is required.

/// A list wrapper as Wix writes lists inside a contact: `{"items": […]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Items<T> {
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
    pub phone: Option<String>,
    pub e164_phone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContactInfo {
    pub emails: Items<ContactEmail>,
    pub phones: Items<ContactPhone>,
}

/// A contact: its id, its revision (required to update it) and the addresses and phones.
#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    pub id: String,
    pub revision: Option<u64>,
    #[serde(default)]
    pub info: ContactInfo,
}

/// Offset paging of contacts: the total, unless there are too many to count.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OffsetPaging {
    pub total: Option<u64>,
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

/// A site member (with the FULL fieldset, which carries the login e-mail and contact id; the
/// login e-mail, what makes a member hers, is read where it stands in the raw record).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub contact_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MembersPage {
    pub members: Vec<Value>,
}

/// Cursor paging of submissions and comments.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cursors {
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CursorPaging {
    pub cursors: Cursors,
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

/// Who sent a form, when a member did.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitter {
    pub member_id: Option<String>,
}

/// A form submission: its field values by field target, and who sent it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    pub id: String,
    #[serde(default)]
    pub submissions: Map<String, Value>,
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
pub struct Comment {
    pub id: String,
    pub status: Option<String>,
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
