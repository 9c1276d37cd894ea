//! Property tests of what the SuperOffice connector reads from SuperOffice: every wire type and the error-body
//! reader, fed arbitrary JSON and bytes, never panic. A bounded number of cases in the
//! normal run (64), more with `PROPTEST_CASES=10000 cargo test -p dsr-superoffice --test properties`.

use dsr_connector::http::ODataPage;
use dsr_superoffice::client::describe_error;
use dsr_superoffice::wire::*;
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
    "Api",
    "Columns",
    "ConsentPurposeKey",
    "ConsentSourceKey",
    "EntityName",
    "ErrorMessage",
    "ErrorType",
    "Id",
    "IsRunning",
    "IsSuccessful",
    "LegalBaseKey",
    "Message",
    "Name",
    "PersonId",
    "PrimaryKey",
    "Selected",
    "State",
    "Token",
    "Updated",
    "ValidUntil",
    "Value",
    "Emails",
    "ShipmentTypes",
    "Error",
    "ErrorSource",
    "value",
    "odata.nextLink",
    "@odata.nextLink",
    "personId",
    "contactId",
    "email/emailAddress",
    "retired",
    "saleId",
];

proptest! {
    #![proptest_config(config())]

    /// Every wire type reads any JSON as a value or a decode error, never a panic; what dsr
    /// then asks of a decoded value does not panic either.
    #[test]
    fn the_wire_types_never_panic_on_any_json(value in json(KEYS), column in prop::sample::select(KEYS)) {
        decode_each!(value; EntityElement, ShipmentType, AuthenticateAnswer, ErrorBody);
        if let Ok(state) = dsr_connector::decode::<TenantState>(value.clone()) {
            let _ = state.running();
        }
        if let Ok(page) = dsr_connector::decode::<ODataPage<ArchiveRow>>(value.clone()) {
            for row in page.value {
                let _ = (row.id(), row.number(column), row.flag(column));
            }
        }
        if let Ok(row) = dsr_connector::decode::<ArchiveRow>(value.clone()) {
            let _ = (row.id(), row.number(column), row.flag(column));
        }
        if let Ok(consents) = dsr_connector::decode::<Vec<ConsentInfo>>(value.clone()) {
            let _ = consents.iter().filter(|c| c.in_force()).count();
        }
        if let Ok(consent) = dsr_connector::decode::<ConsentInfo>(value.clone()) {
            let _ = consent.in_force();
        }
        if let Ok(person) = dsr_connector::decode::<PersonEntity>(value) {
            let _ = (person.emails().len(), person.shipment_types().len());
        }
    }

    /// The error-body reader takes any status and any bytes, JSON or not, cut off or whole.
    #[test]
    fn the_error_reader_never_panics(status in status(), body in body(KEYS)) {
        let _ = describe_error(status, &body);
    }
}
