//! Property tests of what the SuperOffice connector reads from SuperOffice: every wire type and the error-body
//! reader, fed arbitrary JSON and bytes, never panic. A bounded number of cases in the
//! normal run (64), more with `PROPTEST_CASES=10000 cargo test -p dsr-superoffice --test properties`.

use dsr_connector::http::ODataPage;
use dsr_superoffice::client::describe_error;
use dsr_superoffice::wire::*;
use proptest::prelude::*;

#[macro_use]
#[path = "../../core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::*;

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
