//! Graph's JSON as dsr reads it, under Graph's own property names
//! (https://learn.microsoft.com/en-us/graph/api/resources/message,
//! …/resources/contact, …/resources/user, …/resources/fileattachment). A property dsr decides
//! by (an id, an address, the folder a message sits in) that is missing or of another type is
//! a decode error naming it; the properties dsr does not read stay in `rest`, so a record
//! written back out is the whole item under Graph's names.
//!
//! Graph sends every property of an item, `null` where unset, so unset optional properties
//! are written back as `null` too. A missing optional property is read as `None` (serde's own
//! rule for `Option`); only collections, which have no such rule, say `#[serde(default)]`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One page of a collection: `value` and `@odata.nextLink` (paged by the connector API).
pub use dsr_connector::http::ODataPage;

/// A user of the tenant, as `GET /users?$select=id,mail,userPrincipalName` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    /// The SMTP address; `null` for a user without a mailbox.
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
}

/// `emailAddress`: a display name and an SMTP address, on recipients and on contacts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `recipient`: the sender, the author or one addressee of a message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A `message`, as a search selects it or as read whole for the export.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    /// The mailbox owner the message is from (`null` on a draft).
    pub from: Option<Recipient>,
    /// Who actually sent it (a delegate, or the same as `from`).
    pub sender: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Vec<Recipient>,
    #[serde(default)]
    pub cc_recipients: Vec<Recipient>,
    #[serde(default)]
    pub bcc_recipients: Vec<Recipient>,
    /// Where replies go. Not what `participants:` searches, so never a match claim, but a
    /// participant all the same when counting who else a message concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Vec<Recipient>>,
    pub received_date_time: Option<String>,
    pub has_attachments: Option<bool>,
    /// The folder the message is in: how a soft erasure tells Deleted Items from the rest.
    pub parent_folder_id: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Message {
    /// The JSON pointer of every address on the message (as Graph names the fields), with the
    /// address: where a match claim points.
    pub fn address_pointers(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (field, one) in [("from", &self.from), ("sender", &self.sender)] {
            if let Some(address) = one.as_ref().and_then(|r| r.email_address.address.as_deref()) {
                out.push((format!("/{field}/emailAddress/address"), address));
            }
        }
        for (field, list) in [
            ("toRecipients", &self.to_recipients),
            ("ccRecipients", &self.cc_recipients),
            ("bccRecipients", &self.bcc_recipients),
        ] {
            for (i, r) in list.iter().enumerate() {
                if let Some(address) = r.email_address.address.as_deref() {
                    out.push((format!("/{field}/{i}/emailAddress/address"), address));
                }
            }
        }
        out
    }

    /// Every address on the message: from, sender, every recipient and reply-to.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.from
            .iter()
            .chain(&self.sender)
            .chain(&self.to_recipients)
            .chain(&self.cc_recipients)
            .chain(&self.bcc_recipients)
            .chain(self.reply_to.iter().flatten())
            .filter_map(|r| r.email_address.address.as_deref())
    }
}

/// The annotation Graph puts on a file attachment in a message's attachment list.
pub const FILE_ATTACHMENT: &str = "#microsoft.graph.fileAttachment";

/// One item of `GET …/messages/{id}/attachments?$select=id,name,contentType,size,isInline`:
/// a file, an attached Outlook item or a link to a cloud file, told apart by `@odata.type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub id: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub is_inline: Option<bool>,
}

impl Attachment {
    /// A `fileAttachment`, whose bytes `$value` returns. The list example on
    /// message-list-attachments writes the type without its leading `#`; both are read.
    pub fn is_file(&self) -> bool {
        self.odata_type.trim_start_matches('#') == FILE_ATTACHMENT.trim_start_matches('#')
    }
}

/// A `contact` in a mailbox's default contacts folder.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub home_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub display_name: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// What `PATCH …/contacts/{id}` sets: the properties to change ("Existing properties that
/// are not included in the request body will maintain their previous values"). `None` is a
/// property left alone (dsr never clears one), so the body (`body`) names only what is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPatch {
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub display_name: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub mobile_phone: Option<String>,
    /// Replaced whole, like the addresses.
    pub business_phones: Option<Vec<String>>,
    pub home_phones: Option<Vec<String>>,
    /// Replaced whole: every address the contact keeps, with the subject's swapped.
    pub email_addresses: Option<Vec<EmailAddress>>,
}

/// One property a patch sets: its name, its value before and after.
pub type PropertyChange = (String, Value, Value);

impl ContactPatch {
    /// The request body: the properties set, under Graph's names.
    pub fn body(&self) -> Map<String, Value> {
        let mut body = properties(self);
        body.retain(|_, value| !value.is_null());
        body
    }

    /// Per property this patch sets: its value on `contact` and the value the patch gives it.
    pub fn planned(&self, contact: &Contact) -> Vec<PropertyChange> {
        let before = properties(contact);
        self.body()
            .into_iter()
            .map(|(name, after)| {
                let was = before.get(&name).cloned().unwrap_or(Value::Null);
                (name, was, after)
            })
            .collect()
    }
}

/// A contact folder (`/contactFolders`, `/childFolders`); dsr reads its id.
/// https://learn.microsoft.com/en-us/graph/api/resources/contactfolder
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFolder {
    pub id: String,
    pub display_name: Option<String>,
}

/// A mail folder; dsr reads only its id (`GET …/mailFolders/deleteditems?$select=id`).
#[derive(Debug, Clone, Deserialize)]
pub struct MailFolder {
    pub id: String,
}

/// A record's properties under Graph's names, as they would be sent.
pub fn properties(record: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::decode;
    use serde_json::json;

    /// message-get, Example 1 (https://learn.microsoft.com/en-us/graph/api/message-get?view=graph-rest-1.0).
    fn documented_message() -> Value {
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('7f180cbb')/messages/$entity",
            "@odata.etag": "W/\"CQAAABYAAAC4ofQHEIqCSbQPot83AFcbAAAnjjuZ\"",
            "id": "AAMkADhMGAAA=",
            "receivedDateTime": "2018-09-09T03:15:08Z",
            "hasAttachments": false,
            "subject": "9/9/2018: concert",
            "parentFolderId": "AAMkADcbAAAAAAEJAAA=",
            "body": {"contentType": "html", "content": "<html><body>The group represents Nevada.</body></html>"},
            "sender": {"emailAddress": {"name": "Adele Vance", "address": "adelev@contoso.OnMicrosoft.com"}},
            "from": {"emailAddress": {"name": "Adele Vance", "address": "adelev@contoso.OnMicrosoft.com"}},
            "toRecipients": [{"emailAddress": {"name": "Alex Wilber", "address": "AlexW@contoso.OnMicrosoft.com"}}],
            "ccRecipients": [],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"}
        })
    }

    #[test]
    fn a_documented_message_decodes_and_writes_back_whole() {
        let body = documented_message();
        let message: Message = decode(body.clone()).unwrap();
        assert_eq!(message.id, "AAMkADhMGAAA=");
        assert_eq!(message.parent_folder_id, "AAMkADcbAAAAAAEJAAA=");
        assert_eq!(message.has_attachments, Some(false));
        assert_eq!(
            message.addresses().collect::<Vec<_>>(),
            [
                "adelev@contoso.OnMicrosoft.com",
                "adelev@contoso.OnMicrosoft.com",
                "AlexW@contoso.OnMicrosoft.com"
            ]
        );
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            body,
            "every property, under Graph's names"
        );
    }

    #[test]
    fn a_missing_or_misplaced_property_is_named() {
        let mut body = documented_message();
        body.as_object_mut().unwrap().remove("id");
        let err = decode::<Message>(body).unwrap_err();
        assert_eq!(err.path, ".");
        assert!(err.reason.contains("missing field `id`"), "{err:?}");

        let mut body = documented_message();
        body["toRecipients"] = json!([{"address": "AlexW@contoso.OnMicrosoft.com"}]);
        let err = decode::<Message>(body).unwrap_err();
        assert_eq!(err.path, "toRecipients[0]");
        assert!(err.reason.contains("missing field `emailAddress`"), "{err:?}");

        let page = json!({"value": [{"id": "a", "parentFolderId": "f"}, {"parentFolderId": "f"}]});
        let err = decode::<ODataPage<Message>>(page).unwrap_err();
        assert_eq!(err.path, "value[1]");
        assert!(err.reason.contains("missing field `id`"), "{err:?}");
    }

    #[test]
    fn a_documented_user_page_decodes() {
        // user-list, Example 1 (https://learn.microsoft.com/en-us/graph/api/user-list?view=graph-rest-1.0).
        let page: ODataPage<User> = decode(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "value": [
                {"businessPhones": [], "displayName": "Conf Room Adams", "mail": "Adams@contoso.com",
                 "userPrincipalName": "Adams@contoso.com", "id": "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"},
                {"businessPhones": ["425-555-0100"], "displayName": "MOD Administrator", "mail": null,
                 "userPrincipalName": "admin@contoso.com", "id": "4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"}
            ],
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=X"
        }))
        .unwrap();
        assert_eq!(page.value.len(), 2);
        assert_eq!(page.value[1].mail, None);
        assert_eq!(page.value[1].user_principal_name.as_deref(), Some("admin@contoso.com"));
        assert!(page.next_link.is_some());
        let err = decode::<ODataPage<User>>(json!({"value": [{"mail": "a@contoso.com"}]})).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.reason.contains("`id`")),
            ("value[0]", true),
            "{err:?}"
        );
    }

    #[test]
    fn documented_attachments_decode_and_only_files_are_files() {
        // attachment-get, Example 1, as a list element (…/graph/api/attachment-get?view=graph-rest-1.0).
        let file: Attachment = decode(json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": "AAMkAGUzY5QKjAAABEgAQAMkpJI_X-LBFgvrv1PlZYd8=",
            "lastModifiedDateTime": "2019-04-02T03:41:29Z",
            "name": "Draft sales invoice template.docx",
            "contentType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "size": 13068,
            "isInline": false,
            "contentId": null,
            "contentLocation": null
        }))
        .unwrap();
        assert!(file.is_file());
        assert_eq!((file.size, file.is_inline), (Some(13068), Some(false)));
        // message-list-attachments writes the type without the '#'.
        let listed: Attachment =
            decode(json!({"@odata.type": "microsoft.graph.fileAttachment", "id": "id-value", "size": 99})).unwrap();
        assert!(listed.is_file());
        let item: Attachment =
            decode(json!({"@odata.type": "#microsoft.graph.itemAttachment", "id": "i", "name": "Meeting"})).unwrap();
        assert!(!item.is_file());
        let err = decode::<Attachment>(json!({"id": "x", "name": "a.pdf"})).unwrap_err();
        assert!(err.reason.contains("`@odata.type`"), "{err:?}");
    }

    /// contact-update's response (https://learn.microsoft.com/en-us/graph/api/contact-update?view=graph-rest-1.0).
    fn documented_contact() -> Value {
        json!({
            "id": "AAMkAGI2THk0AAA=",
            "parentFolderId": "AAMkAGI2AAEOAAA=",
            "birthday": "1974-07-22",
            "fileAs": "Fort, Garth",
            "displayName": "Garth Fort",
            "givenName": "Garth",
            "middleName": null,
            "surname": "Fort",
            "emailAddresses": [{"name": "Garth", "address": "garth@a830edad9050849NDA1.onmicrosoft.com"}],
            "jobTitle": "Web Marketing Manager",
            "companyName": "Contoso, Inc.",
            "homePhones": [],
            "mobilePhone": null,
            "businessPhones": ["+1 918 555 0101"],
            "homeAddress": {"street": "123 Some street", "city": "Seattle", "state": "WA", "postalCode": "98121"},
            "otherAddress": {},
            "children": []
        })
    }

    #[test]
    fn a_documented_contact_decodes_and_writes_back_whole() {
        let body = documented_contact();
        let contact: Contact = decode(body.clone()).unwrap();
        assert_eq!(contact.id, "AAMkAGI2THk0AAA=");
        assert_eq!(contact.surname.as_deref(), Some("Fort"));
        assert_eq!(contact.business_phones, ["+1 918 555 0101"]);
        assert_eq!(
            contact.email_addresses[0].address.as_deref(),
            Some("garth@a830edad9050849NDA1.onmicrosoft.com")
        );
        assert_eq!(serde_json::to_value(&contact).unwrap(), body);
        let mut renamed = documented_contact();
        renamed["emailAddresses"] = json!([{"name": "Garth", "address": 7}]);
        let err = decode::<Contact>(renamed).unwrap_err();
        assert_eq!(err.path, "emailAddresses[0].address");
    }

    #[test]
    fn a_patch_names_only_what_it_changes() {
        let contact: Contact = decode(documented_contact()).unwrap();
        let patch = ContactPatch {
            surname: Some("Hansen".into()),
            ..Default::default()
        };
        assert_eq!(Value::Object(patch.body()), json!({"surname": "Hansen"}));
        assert_eq!(
            patch.planned(&contact),
            [("surname".to_string(), json!("Fort"), json!("Hansen"))]
        );
    }

    /// The documented bodies kept beside the fake (`fixtures/samples/graph`), read as dsr reads them.
    #[test]
    fn the_stored_documented_samples_decode() {
        fn body<T: serde::de::DeserializeOwned>(name: &str) -> T {
            let sample = dsr_fixtures::samples::load("graph", name).unwrap();
            decode(sample.body).unwrap_or_else(|e| panic!("{name}: at `{}`: {}", e.path, e.reason))
        }
        let users: ODataPage<User> = body("users_list");
        assert!(users.value.iter().all(|u| !u.id.is_empty()));
        let found: ODataPage<Message> = body("messages_search");
        assert!(found.value[0].addresses().count() >= 2);
        let message: Message = body("message_get");
        assert!(!message.parent_folder_id.is_empty());
        let attachments: ODataPage<Attachment> = body("attachments_list");
        assert!(attachments.value[0].is_file(), "written without the '#' on that page");
        let attachment: Attachment = body("attachment_get");
        assert!(attachment.is_file());
        let contact: Contact = body("contact_update");
        assert!(!contact.email_addresses.is_empty());
        let folder: MailFolder = body("mail_folder_get");
        assert!(!folder.id.is_empty());
        for error in [
            "error_access_denied_policy",
            "error_format",
            "error_mailbox_not_enabled",
            "error_resource_not_found",
            "error_throttled_429",
        ] {
            let sample = dsr_fixtures::samples::load("graph", error).unwrap();
            let status = reqwest::StatusCode::from_u16(sample.status).unwrap();
            let said = crate::client::describe_error(status, sample.body.to_string().as_bytes());
            assert!(!said.code.is_empty() && !said.message.is_empty(), "{error}: {said:?}");
        }
    }
}
