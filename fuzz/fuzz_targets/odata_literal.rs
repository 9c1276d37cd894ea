//! Nothing a value holds escapes the literal or phrase dsr writes it into: the OData string
//! literal (`$filter`), Microsoft 365's KQL phrase (`$search`) and Gmail's quoted address.
#![no_main]

use dsr_connector::Email;
use dsr_connector::http::odata_literal;
use libfuzzer_sys::fuzz_target;

#[path = "../../connectors/core/tests/support/literals.rs"]
mod literals;
use literals::{read_kql_phrase, read_odata_literal};

fuzz_target!(|value: &str| {
    let filter = format!("{} and x eq 1", odata_literal(value));
    assert_eq!(read_odata_literal(&filter), Some((value.to_string(), " and x eq 1")));

    let filter = dsr_microsoft365::search::contact_filter(value);
    let literal = filter
        .strip_prefix("emailAddresses/any(a:a/address eq ")
        .expect("the filter's start");
    assert_eq!(read_odata_literal(literal), Some((value.to_string(), ")")));

    let search = format!("\"participants:{}\" AND x", dsr_microsoft365::search::kql_value(value));
    assert_eq!(
        read_kql_phrase(&search),
        Some((format!("participants:{value}"), " AND x"))
    );

    if let Ok(email) = Email::parse(value) {
        let query = dsr_google::gmail::search_for(&email);
        let address = email.as_str().replace('"', "");
        let quoted = format!("\"{address}\"");
        assert_eq!(
            query,
            format!("from:{quoted} OR to:{quoted} OR cc:{quoted} OR bcc:{quoted}")
        );
    }
});
