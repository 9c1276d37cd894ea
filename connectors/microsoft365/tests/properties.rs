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
use proptest::test_runner::Config;
use reqwest::StatusCode;
use serde_json::Value;

/// 64 cases unless `PROPTEST_CASES` says otherwise; no regression files left in the tree.
fn config() -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Strings as a vendor may send them: any Unicode, and values that look like the dates,
/// numbers, flags and addresses the wire types read.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{1,20}",
        "-?[0-9]{1,3}(\\.[0-9]{1,3})?(e[0-9]{1,3})?",
        "(true|false|True|1|0|yes|nei|ja| )",
        "20[0-9]{2}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?",
        "[a-zA-Z0-9.+'\"<>_-]{1,12}@[a-z]{1,8}\\.[a-z]{2,3}",
        "(Kari|KARI|kari)@(example|EXAMPLE)\\.no",
        "(\\+47 ?)?912 ?34 ?567",
        "(https?://[a-z.]{1,12}(:[0-9]{1,5})?)?/[a-zA-Z0-9/?=&.%$-]{0,30}",
    ]
}

/// Any JSON value, objects keyed mostly with the field names of the vendor's wire types so
/// decoding gets past the first field.
fn json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(keys).prop_map(String::from),
        1 => any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A body as it arrives: bytes of any kind, or JSON text (possibly cut off).
fn body(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (json(keys), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let text = value.to_string().into_bytes();
            let keep = if cut.index(4) == 0 {
                cut.index(text.len() + 1)
            } else {
                text.len()
            };
            text[..keep].to_vec()
        }),
    ]
}

fn status() -> impl Strategy<Value = StatusCode> {
    (100u16..1000).prop_map(|code| StatusCode::from_u16(code).expect("100..1000 is a status code"))
}

/// Reads `value` as each type; none may panic, whatever the value.
macro_rules! decode_each {
    ($value:expr; $($t:ty),+ $(,)?) => {
        $( let _ = dsr_connector::decode::<$t>($value.clone()); )+
    };
}

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

/// Reads a KQL phrase (`"…"`, `\` escaping the next character) from the start of `input`:
/// the value and what follows the closing quote.
fn read_kql_phrase(input: &str) -> Option<(String, &str)> {
    let rest = input.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &rest[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// Reads an OData string literal (`''` for a `'` inside) from the start of `input`.
fn read_odata_literal(input: &str) -> Option<(String, &str)> {
    let rest = input.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                value.push('\'');
            } else {
                return Some((value, &rest[i + 1..]));
            }
        } else {
            value.push(c);
        }
    }
    None
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
