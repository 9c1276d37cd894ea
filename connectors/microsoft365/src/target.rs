//! What a plan item holds for its one Graph call (`PlanItem::target`): the mailbox, the
//! item's id and folder, and how to delete it or what to set.

use dsr_connector::{ConnectorError, DeleteMode, PlanItem};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::contact_segments;
use crate::client::PROCESSOR;

/// The two collections a change reaches, as plan categories.
pub const MESSAGES: &str = "messages";
pub const CONTACTS: &str = "contacts";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The mailbox's key in Graph's URLs (the user's id, or the configured address).
    pub mailbox: String,
    /// The message's or contact's id.
    pub id: String,
    /// A contact's folder; `None` for the default Contacts folder and for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// How an erasure deletes it, as planned (`permanentDelete` or `DELETE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeleteMode>,
    /// The PATCH body a rectification sends (`wire::ContactPatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
}

/// A plan item this connector cannot have made: never retried.
pub fn bad_item(item: &PlanItem, why: &str) -> ConnectorError {
    ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "plan_item".into(),
        message: format!("plan item `{}`: {why}", item.key),
    }
}

impl Target {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    pub fn of(item: &PlanItem) -> Result<Target, ConnectorError> {
        serde_json::from_value(item.target.clone()).map_err(|e| bad_item(item, &format!("unreadable target: {e}")))
    }

    /// The item's URL path under Graph's base, by the item's category.
    pub fn segments<'a>(&'a self, item: &PlanItem) -> Result<Vec<&'a str>, ConnectorError> {
        match item.category.as_str() {
            MESSAGES => Ok(vec!["users", &self.mailbox, "messages", &self.id]),
            CONTACTS => Ok(contact_segments(&self.mailbox, self.folder.as_deref(), &self.id)),
            other => Err(bad_item(item, &format!("unknown category `{other}`"))),
        }
    }
}
