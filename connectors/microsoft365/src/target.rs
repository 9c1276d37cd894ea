//! What a plan item holds for its one Graph call (`PlanItem::target`): the mailbox, the
//! item's id and folder, and how to delete it or what to set.

use dsr_connector::{Action, ConnectorError, DeleteMode, PlanItem};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::PROCESSOR;
use crate::search::contacts_segments;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// How an erasure deletes it, as planned (`permanentDelete` or `DELETE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeleteMode>,
    /// The PATCH body a rectification sends (`wire::ContactPatch::body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Map<String, Value>>,
}

impl Target {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The target of `item`, which must be one of the `action` items the change carries out.
    pub fn of(item: &PlanItem, action: Action) -> Result<Target, ConnectorError> {
        if item.action != action {
            let why = format!(
                "only {} items are carried out here, not {}",
                action.as_str(),
                item.action.as_str()
            );
            return Err(ConnectorError::foreign_item(PROCESSOR, item, &why));
        }
        serde_json::from_value(item.target.clone())
            .map_err(|e| ConnectorError::foreign_item(PROCESSOR, item, &format!("unreadable target: {e}")))
    }

    /// The item's URL path under Graph's base, by the item's category.
    pub fn segments<'a>(&'a self, item: &PlanItem) -> Result<Vec<&'a str>, ConnectorError> {
        match item.category.as_str() {
            MESSAGES => Ok(vec!["users", &self.mailbox, "messages", &self.id]),
            CONTACTS => {
                let mut path = contacts_segments(&self.mailbox, self.folder.as_deref());
                path.push(&self.id);
                Ok(path)
            }
            other => Err(ConnectorError::foreign_item(
                PROCESSOR,
                item,
                &format!("unknown category `{other}`"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_target_names_its_call_and_refuses_an_item_of_another_kind() {
        let target = Target {
            mailbox: "u-1".into(),
            id: "c-1".into(),
            folder: Some("f-1".into()),
            mode: None,
            patch: None,
        };
        assert_eq!(
            target.json(),
            json!({"mailbox": "u-1", "id": "c-1", "folder": "f-1"}),
            "what is unset is left out (the plan's hash binds the target)"
        );
        let item = PlanItem::new(
            "contacts a@x.no/c-1",
            CONTACTS,
            Action::Delete,
            target.json(),
            json!({}),
            vec![],
        );
        let read = Target::of(&item, Action::Delete).unwrap();
        assert_eq!(
            read.segments(&item).unwrap(),
            ["users", "u-1", "contactFolders", "f-1", "contacts", "c-1"]
        );
        let err = Target::of(&item, Action::Patch).unwrap_err();
        assert_eq!(err.code(), "permanent:plan_item");
        assert!(err.to_string().contains("contacts a@x.no/c-1"), "{err}");
        let elsewhere = PlanItem::new(
            "consents x",
            "consents",
            Action::Delete,
            target.json(),
            json!({}),
            vec![],
        );
        assert!(
            Target::of(&elsewhere, Action::Delete)
                .unwrap()
                .segments(&elsewhere)
                .is_err()
        );
    }
}
