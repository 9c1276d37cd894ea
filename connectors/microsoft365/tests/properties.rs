//! Property tests of what the Microsoft 365 connector reads from Microsoft 365 and writes into its queries: every
//! wire type and the error-body reader, fed arbitrary JSON and bytes, never panic; nothing a value holds escapes the KQL phrase or the OData literal it is written into. A bounded
//! number of cases in the normal run (64), more with
//! `PROPTEST_CASES=10000 cargo test -p dsr-microsoft365 --test properties`.

use dsr_connector::http::ODataPage;
use dsr_connector::{Email, Identities, IdentityKind};
use dsr_microsoft365::client::describe_error;
use dsr_microsoft365::search::{contact_claims, contact_filter, kql_value, message_claims};
use dsr_microsoft365::wire::*;
use proptest::prelude::*;
use serde_json::Value;

#[macro_use]
#[path = "../../core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::*;

const KEYS: &[&str] = &[
    "@odata.type",
    "address",
    "bccRecipients",
    "businessPhones",
    "ccRecipients",
    "companyName",
    "contentType",
    "displayName",
    "emailAddress",
    "emailAddresses",
    "from",
    "givenName",
    "hasAttachments",
    "homePhones",
    "id",
    "isInline",
    "jobTitle",
    "mail",
    "mobilePhone",
    "name",
    "parentFolderId",
    "receivedDateTime",
    "replyTo",
    "sender",
    "size",
    "surname",
    "toRecipients",
    "userPrincipalName",
    "value",
    "@odata.nextLink",
    "error",
    "code",
    "message",
    "innerError",
    "subject",
    "body",
    "contentBytes",
];

/// The subject, with an address that vendor data in the generated JSON sometimes holds.
fn subject() -> Identities {
    let mut subject = Identities::default();
    subject.add_email(Email::parse("kari@example.no").expect("a valid address"));
    subject
}

proptest! {
    #![proptest_config(config())]

    /// Every wire type reads any JSON as a value or a decode error, never a panic; what dsr
    /// then asks of a decoded value does not panic either, and each claim it makes on a
    /// message or contact points at one of the subject's addresses in that record.
    #[test]
    fn the_wire_types_never_panic_on_any_json(value in json(KEYS)) {
        decode_each!(value; User, EmailAddress, Recipient, ContactFolder, MailFolder, ODataPage<Value>);
        let subject = subject();
        if let Ok(message) = dsr_connector::decode::<Message>(value.clone()) {
            let _ = message.addresses().count();
            let record = Value::Object(properties(&message));
            for claim in message_claims(&message, &subject) {
                let held = record.pointer(&claim.at).and_then(Value::as_str);
                prop_assert!(held.is_some_and(|a| subject.owns(IdentityKind::Email, a)), "{}", claim.at);
            }
        }
        if let Ok(attachment) = dsr_connector::decode::<Attachment>(value.clone()) {
            let _ = attachment.is_file();
        }
        if let Ok(contact) = dsr_connector::decode::<Contact>(value) {
            let record = Value::Object(properties(&contact));
            for claim in contact_claims(&contact, &subject) {
                let held = record.pointer(&claim.at).and_then(Value::as_str);
                prop_assert!(held.is_some_and(|a| subject.owns(IdentityKind::Email, a)), "{}", claim.at);
            }
            let patch = ContactPatch {
                display_name: Some("Kari N".into()),
                email_addresses: Some(contact.email_addresses.clone()),
                ..ContactPatch::default()
            };
            let _ = patch.planned(&contact);
        }
    }

    /// The error-body reader takes any status and any bytes, JSON or not, cut off or whole.
    #[test]
    fn the_error_reader_never_panics(status in status(), body in body(KEYS)) {
        let _ = describe_error(status, &body);
    }

    /// Nothing escapes the `$search` phrase: `"participants:{kql_value(v)}"` reads back as
    /// exactly `v`, and the phrase ends where dsr ends it.
    #[test]
    fn a_kql_value_stays_inside_its_phrase(value in prop_oneof![text(), "[\"\\\\ a]{0,12}"]) {
        let search = format!("\"participants:{}\" AND received>=2026-01-01", kql_value(&value));
        let (read, rest) = read_kql_phrase(&search).expect("the phrase closes");
        prop_assert_eq!(read, format!("participants:{value}"));
        prop_assert_eq!(rest, " AND received>=2026-01-01");
    }

    /// Nothing escapes the contacts `$filter`: the literal reads back as exactly the address
    /// and the filter ends right after it.
    #[test]
    fn a_contact_filter_quotes_the_whole_address(value in prop_oneof![text(), "['a@. ]{0,12}"]) {
        let filter = contact_filter(&value);
        let literal = filter.strip_prefix("emailAddresses/any(a:a/address eq ").expect("the filter's start");
        let (read, rest) = read_odata_literal(literal).expect("the literal closes");
        prop_assert_eq!(read, value);
        prop_assert_eq!(rest, ")");
    }
}
