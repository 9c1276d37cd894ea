//! What every connector's property tests generate and share, included by each
//! `tests/properties.rs` with `#[path]` (a test folder is no crate to depend on): the case
//! count, vendor-shaped text and JSON, bodies as they arrive, statuses, and a reader for
//! OData string literals.
#![allow(dead_code, unused_macros, unused_imports)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use reqwest::StatusCode;
use serde_json::Value;

/// 64 cases unless `PROPTEST_CASES` says otherwise; no regression files left in the tree.
pub fn config() -> Config {
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
pub fn text() -> impl Strategy<Value = String> {
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
pub fn json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
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
pub fn body(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
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

pub fn status() -> impl Strategy<Value = StatusCode> {
    (100u16..1000).prop_map(|code| StatusCode::from_u16(code).expect("100..1000 is a status code"))
}

/// Reads `value` as each type; none may panic, whatever the value.
macro_rules! decode_each {
    ($value:expr; $($t:ty),+ $(,)?) => {
        $( let _ = dsr_connector::decode::<$t>($value.clone()); )+
    };
}

#[path = "literals.rs"]
mod literals;
pub use literals::*;
