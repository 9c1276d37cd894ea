//! The SuperOffice connector against the fake SuperOffice in `fixtures/`: access, and every
//! change as a plan checked, executed and verified by `dsr_connector::apply`.

use base64::Engine as _;
use dsr_connector::{
    Action, Applied, Change, Connector, ConnectorError, Email, FieldChange, Identities, ItemOutcome, MemorySink, Plan,
    PlanItem, PlanRules, Processor, RectifyField, SharedPolicy, apply, check_plan,
};
use dsr_fixtures::superoffice::{SYSTEM_USER_KEY_PEM, SYSTEM_USER_KEY_XML, SuperOfficeFake};
use dsr_superoffice::{SuperOffice, SuperOfficeConfig};
use serde_json::{Value, json};

const KARI: &str = "kari.nordmann@example.no";
const RETAIN_SALES: &str = "[[retain]]\ncategory = \"Sales\"\nreason = \"Sales are accounting records\"\nlegal_basis = \"Bokføringsloven § 13\"\n";

fn config(fake: &SuperOfficeFake, dir: &std::path::Path, key: &str, extra: &str) -> SuperOfficeConfig {
    let text = fake.connector_toml(&dir.join("so-key"), key).unwrap();
    toml::from_str(&format!("{text}{extra}")).unwrap()
}

async fn connector(extra: &str) -> (SuperOfficeFake, tempfile::TempDir, SuperOffice) {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let so = SuperOffice::new(config(&fake, dir.path(), SYSTEM_USER_KEY_PEM, extra)).unwrap();
    (fake, dir, so)
}

fn kari() -> Identities {
    dsr_fixtures::testing::subject(KARI)
}

use dsr_fixtures::testing::{first_attempt as ctx, preview as dry_run};

fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

fn retain() -> PlanRules {
    rules(SharedPolicy::Retain)
}

fn person(fake: &SuperOfficeFake, id: i64) -> Option<dsr_fixtures::superoffice::SoPerson> {
    fake.with(|s| s.person(id).cloned())
}

/// Everything the fake holds for its persons, to compare before and after.
fn holdings(fake: &SuperOfficeFake) -> Value {
    fake.with(|s| {
        json!(
            s.persons
                .iter()
                .map(|p| json!({"entity": p.entity, "consents": p.consents, "related": p.related}))
                .collect::<Vec<_>>()
        )
    })
}

/// What a person holds that a change may touch (its `UpdatedDate` moves with every PATCH).
fn fields(fake: &SuperOfficeFake, id: i64) -> Value {
    let p = person(fake, id).unwrap();
    json!({"Lastname": p.entity["Lastname"], "Emails": p.entity["Emails"], "MobilePhones": p.entity["MobilePhones"],
        "ShipmentTypes": p.entity["ShipmentTypes"], "consents": p.consents})
}

/// The calls that change something at SuperOffice, in order.
fn changes_made(fake: &SuperOfficeFake) -> Vec<String> {
    let changing = ["DELETE ", "PATCH ", "PUT "];
    let mut calls = fake.calls();
    calls.retain(|c| changing.iter().any(|method| c.starts_with(method)));
    calls
}

fn rename(value: &str) -> Change {
    Change::Rectification {
        changes: vec![
            FieldChange {
                field: RectifyField::Email,
                value: value.into(),
            },
            FieldChange {
                field: RectifyField::FamilyName,
                value: "Hansen".into(),
            },
        ],
    }
}

// ---- Access ---------------------------------------------------------------------------------

#[tokio::test]
async fn access_exports_the_person_consents_subscriptions_and_related_records_only() {
    let (_fake, _dir, so) = connector("").await;
    let mut sink = MemorySink::checked(kari());
    let summary = so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    let categories: Vec<&str> = sink.records.iter().map(|r| r.category.as_str()).collect();
    for want in [
        "persons",
        "consents",
        "newsletter_subscriptions",
        "appointments",
        "documents",
        "sales",
        "tickets",
    ] {
        assert!(categories.contains(&want), "no {want} in {categories:?}");
    }
    // Person, three consents (one withdrawn earlier), two subscriptions, three appointments
    // (over two archive pages), one document, two sales (one only as stakeholder), one ticket.
    assert_eq!(summary.found, 13);
    let appointments = sink.records.iter().filter(|r| r.category == "appointments").count();
    assert_eq!(appointments, 3, "every archive page is read (odata.nextLink)");
    let text = serde_json::to_string(&sink.records).unwrap();
    assert!(
        !text.contains("annkari") && !text.contains("\"PersonId\":102"),
        "the look-alike was exported"
    );
    let consent = sink
        .records
        .iter()
        .find(|r| r.category == "consents" && r.data["consent"]["ConsentPurposeKey"] == "EMARKETING")
        .expect("consents keep SuperOffice's flat ConsentInfo fields");
    assert_eq!(
        consent.data["consent"]["LegalBaseKey"], "61A",
        "consents carry their legal basis"
    );
    assert_eq!(
        consent.data["consent"]["ConsentSourceKey"], "WEBFORM",
        "and their source"
    );
}

#[tokio::test]
async fn an_xml_key_works_like_its_pem() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let so = SuperOffice::new(config(&fake, dir.path(), SYSTEM_USER_KEY_XML, "")).unwrap();
    let mut sink = MemorySink::checked(kari());
    so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert!(!sink.records.is_empty());
    // PKCS#1 v1.5 signatures are deterministic: both forms of the key sign alike.
    let pem = dsr_connector::keys::rsa_private_key(SYSTEM_USER_KEY_PEM).unwrap();
    let xml = dsr_connector::keys::rsa_private_key(SYSTEM_USER_KEY_XML).unwrap();
    assert_eq!(
        dsr_connector::keys::sign_rs256(&pem, b"SuperOffice:7.202611271200").unwrap(),
        dsr_connector::keys::sign_rs256(&xml, b"SuperOffice:7.202611271200").unwrap()
    );
}

#[tokio::test]
async fn a_token_signed_by_a_key_superoffice_does_not_publish_is_refused() {
    let jwks: Value = serde_json::from_str(include_str!("../../../fixtures/seed/keys/superoffice-jwks.json")).unwrap();
    let other = dsr_connector::keys::rsa_private_key(dsr_fixtures::google::TEST_PRIVATE_KEY).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","kid":"fake-superoffice-1"}"#),
        b64(br#"{"ticket":"7T:x"}"#)
    );
    let signature = dsr_connector::keys::sign_rs256(&other, message.as_bytes()).unwrap();
    let forged = format!("{message}.{}", b64(&signature));
    assert!(dsr_connector::keys::verify_jwt::<Value>(&forged, &jwks).is_err());
}

#[tokio::test]
async fn a_moved_tenant_and_an_expired_ticket_do_not_fail_the_request() {
    let (fake, _dir, so) = connector("").await;
    let mut sink = MemorySink::checked(kari());
    so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    let states = || fake.calls().iter().filter(|c| c.starts_with("GET api/state")).count();
    let asked = states();
    fake.move_tenant();
    fake.expire_credentials();
    let mut sink = MemorySink::checked(kari());
    let summary = so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(summary.found, 13);
    assert_eq!(
        states(),
        asked + 1,
        "the 421 on the search's first page asks where the tenant went, once"
    );
    let logins = fake.calls().iter().filter(|c| c.contains("Authenticate")).count();
    assert_eq!(logins, 2, "one new ticket after the expiry");
}

#[tokio::test]
async fn the_tenant_address_is_asked_first_and_again_when_it_expires() {
    let (fake, _dir, so) = connector("").await;
    // Every answer from /api/state is valid for no time at all: each call asks again, and a
    // tenant moved between calls is followed without a 421.
    fake.with(|s| s.state_valid_for = std::time::Duration::ZERO);
    let mut sink = MemorySink::checked(kari());
    so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    let calls = fake.calls();
    let first_state = calls
        .iter()
        .position(|c| c.starts_with("GET api/state"))
        .expect("asked");
    let first_api = calls.iter().position(|c| c.contains("Cust12345/Person")).unwrap();
    assert!(first_state < first_api, "resolved before the first call: {calls:?}");
    let before = calls.iter().filter(|c| c.starts_with("GET api/state")).count();
    fake.move_tenant();
    let mut sink = MemorySink::checked(kari());
    assert_eq!(so.access(&ctx(), &kari(), &mut sink).await.unwrap().found, 13);
    let after = fake.calls().iter().filter(|c| c.starts_with("GET api/state")).count();
    assert!(
        after > before + 1,
        "asked again each time ValidUntil passed ({before} → {after})"
    );
}

#[tokio::test]
async fn the_refresh_token_flow_resolves_the_tenant_too() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let so = SuperOffice::new(refresh_config(&fake, dir.path())).unwrap();
    fake.set_api_host(7);
    let mut sink = MemorySink::checked(kari());
    assert_eq!(so.access(&ctx(), &kari(), &mut sink).await.unwrap().found, 13);
    assert!(fake.calls().iter().any(|c| c.starts_with("GET api/state")));
}

#[tokio::test]
async fn a_quote_in_an_address_is_escaped_and_an_unescaped_filter_is_refused() {
    let (fake, _dir, so) = connector("").await;
    let odd = Identities {
        emails: vec![Email::parse("o'hara@example.ie").unwrap()],
        ..Default::default()
    };
    let mut sink = MemorySink::checked(odd.clone());
    assert_eq!(
        so.access(&ctx(), &odd, &mut sink).await.unwrap().found,
        0,
        "an escaped literal matches nothing"
    );
    // What an unescaped literal would have sent: SuperOffice answers with an error, not more rows.
    let http = reqwest::Client::new();
    let (client_id, secret, refresh) =
        fake.with(|s| (s.client_id.clone(), s.client_secret.clone(), s.refresh_token.clone()));
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &client_id),
        ("client_secret", &secret),
        ("refresh_token", &refresh),
    ];
    let token: Value = http
        .post(format!("{}/login/common/oauth/tokens", fake.environment_url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}/v1/Person", fake.api_url());
    let injected = http
        .get(&url)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .query(&[("$filter", "email/emailAddress eq 'x' or 1 eq 1 or 'y'")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        injected.status().as_u16(),
        400,
        "a broken-out literal is an error, not a wider match"
    );
}

#[tokio::test]
async fn a_config_that_cannot_work_names_the_key_to_change() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = fake
        .connector_toml(&dir.path().join("so-key"), SYSTEM_USER_KEY_PEM)
        .unwrap();
    let refused = |text: String| match SuperOffice::new(toml::from_str(&text).unwrap()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    };
    let environment = format!("environment_url = \"{}\"", fake.environment_url());
    assert!(good.contains(&environment), "{good}");
    let err = refused(good.replace(&environment, "environment_url = \"online.superoffice.com\""));
    assert_eq!(
        (err.processor, err.key.as_str()),
        (Processor::Superoffice, "environment_url")
    );
    assert!(
        err.to_string().starts_with("processors.superoffice.environment_url: "),
        "{err}"
    );
    let err = ConnectorError::from(err);
    assert_eq!(err.code(), "config");
    assert!(!err.is_retryable());
    let err = refused(good.replace("tenant = \"Cust12345\"", "tenant = \"12345\""));
    assert_eq!(err.key, "tenant", "{err}");
    let err = refused(format!(
        "{good}[[retain]]\ncategory = \"Persons\"\nreason = \"x\"\nlegal_basis = \"y\"\n"
    ));
    assert_eq!(err.key, "retain", "{err}");
    let no_key: String = good
        .lines()
        .filter(|l| !l.starts_with("private_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = toml::from_str::<SuperOfficeConfig>(&no_key).unwrap_err().to_string();
    assert!(
        err.contains("processors.superoffice.private_key: system_user_token is set but private_key is missing"),
        "half a system user is refused when the file is read: {err}"
    );
}

fn refresh_config(fake: &SuperOfficeFake, dir: &std::path::Path) -> SuperOfficeConfig {
    let refresh = dir.join("refresh");
    std::fs::write(&refresh, fake.with(|s| s.refresh_token.clone())).unwrap();
    let text = fake.connector_toml(&dir.join("so-key"), SYSTEM_USER_KEY_PEM).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("system_user_token") && !l.starts_with("private_key"))
        .collect::<Vec<_>>()
        .join("\n");
    toml::from_str(&format!("{text}\nrefresh_token = \"file:{}\"\n", refresh.display())).unwrap()
}

#[tokio::test]
async fn the_refresh_token_flow_works_too() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let so = SuperOffice::new(refresh_config(&fake, dir.path())).unwrap();
    let mut sink = MemorySink::checked(kari());
    assert_eq!(so.access(&ctx(), &kari(), &mut sink).await.unwrap().found, 13);
}

// ---- Objection ------------------------------------------------------------------------------

#[tokio::test]
async fn objection_withdraws_marketing_and_leaves_the_person() {
    let (fake, _dir, so) = connector("").await;
    assert!(fake.with(|s| s.consent_in_force(101, "EMARKETING")));
    let applied = apply(&so, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap();
    assert_eq!(applied.keys("consents", "done"), ["consents 101/EMARKETING"]);
    assert_eq!(
        applied.keys("newsletter_subscriptions", "done"),
        ["newsletter_subscriptions 101/1", "newsletter_subscriptions 101/2"]
    );
    assert_eq!(applied.changed(), 3, "EMARKETING and two subscriptions");
    assert_eq!(
        applied.keys("consents", "retained"),
        ["consents 101/STORE", "consents 101/EVENTINV"],
        "other consents are listed and kept"
    );
    assert!(
        !fake.with(|s| s.consent_in_force(101, "EMARKETING")),
        "EMARKETING is withdrawn"
    );
    assert!(
        fake.with(|s| s.consent_in_force(101, "STORE")),
        "other consents are kept"
    );
    let kari = person(&fake, 101).expect("the person is still there");
    assert!(
        kari.entity["ShipmentTypes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Selected"] == json!(false))
    );
    assert_eq!(kari.entity["Lastname"], "Nordmann");
    assert!(
        fake.with(|s| s.consent_in_force(102, "EMARKETING")),
        "the look-alike was touched"
    );
    let marketing = applied.item("consents 101/EMARKETING").unwrap();
    assert_eq!(
        (
            marketing.before.as_ref().unwrap()["legal_base"].as_str(),
            marketing.after.as_ref().unwrap()["legal_base"].as_str()
        ),
        (Some("61A"), Some("WITHDRAWN"))
    );
    // The evidence is what SuperOffice holds afterwards, read back by planning again.
    let verification = applied.verification.unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    let after = &verification.after["consents 101/EMARKETING"];
    assert_eq!(
        (after["legal_base"].as_str(), after["in_force"].as_bool()),
        (Some("WITHDRAWN"), Some(false))
    );
    assert_eq!(verification.after["newsletter_subscriptions 101/1"]["selected"], false);
}

#[tokio::test]
async fn an_objection_never_reports_a_withdrawal_superoffice_does_not_show() {
    let (fake, _dir, so) = connector("").await;
    fake.with(|s| s.ignore_consent_removal = true);
    let applied = apply(&so, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap();
    let verification = applied.verification.unwrap();
    assert_eq!(
        verification.remaining,
        ["consents 101/EMARKETING"],
        "SuperOffice, read back, still shows it in force"
    );
    assert_eq!(verification.after["consents 101/EMARKETING"]["legal_base"], "61A");
    assert!(fake.with(|s| s.consent_in_force(101, "EMARKETING")));
    // An already-withdrawn consent is not withdrawn again, nor counted.
    fake.with(|s| s.ignore_consent_removal = false);
    let second = apply(&so, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap();
    assert_eq!(second.keys("consents", "done"), ["consents 101/EMARKETING"]);
    assert!(second.verification.unwrap().remaining.is_empty());
    let again = apply(&so, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap();
    assert_eq!(again.changed(), 0, "nothing left to withdraw: {:?}", again.plan);
    let marketing = again.item("consents 101/EMARKETING").unwrap();
    assert_eq!(marketing.state.as_str(), "retained");
    assert_eq!(marketing.reason.as_deref(), Some("already withdrawn"));
    assert_eq!(marketing.before.as_ref().unwrap()["legal_base"], "WITHDRAWN");
}

#[tokio::test]
async fn a_consent_list_in_another_shape_fails_at_once_naming_the_field() {
    let (fake, _dir, so) = connector("").await;
    fake.with(|s| s.nested_consents = true);
    let err = apply(&so, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable(),
        "a shape dsr does not understand is not an outage: {err}"
    );
    assert_eq!(err.code(), "permanent:unexpected_response");
    assert!(
        err.to_string().contains("ConsentPurposeKey") && err.to_string().contains("Consent"),
        "{err}"
    );
    assert!(changes_made(&fake).is_empty());
}

// ---- Erasure --------------------------------------------------------------------------------

#[tokio::test]
async fn erasure_removes_the_person_and_reports_what_is_retained_honestly() {
    let (fake, _dir, so) = connector(RETAIN_SALES).await;
    let applied = apply(&so, &ctx(), &kari(), &Change::Erasure, &retain()).await.unwrap();
    assert!(person(&fake, 101).is_none(), "the person is gone");
    assert!(person(&fake, 102).is_some(), "the look-alike is untouched");
    assert_eq!(applied.keys("persons", "done"), ["persons 101"]);
    assert_eq!(
        applied.keys("appointments", "done"),
        ["appointments 501", "appointments 503", "appointments 504"]
    );
    assert_eq!(applied.keys("documents", "done"), ["documents 601"]);
    assert_eq!(applied.changed(), 5, "three appointments, a document and the person");
    // Her own sale and the one she is a stakeholder in, both kept by the company's rule.
    assert_eq!(applied.keys("sales", "retained"), ["sales 701", "sales 702"]);
    let sale = applied.item("sales 701").unwrap();
    assert!(
        sale.reason.as_deref().unwrap().contains("Bokføringsloven § 13"),
        "{sale:?}"
    );
    let ticket = applied.item("tickets 801").unwrap();
    assert_eq!(
        ticket.state.as_str(),
        "refused_by_vendor",
        "a vendor refusal is not called erasure"
    );
    assert!(
        matches!(&ticket.state, dsr_connector::ItemState::RefusedByVendor { reason } if reason.contains("sentry")),
        "{ticket:?}"
    );
    assert!(
        fake.with(|s| s.has_record("Sales", 702)),
        "another person's sale is never deleted"
    );
    assert!(
        !changes_made(&fake).iter().any(|c| c.contains("/Sale/")),
        "no sale is deleted under the rule"
    );
    let verification = applied.verification.unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
}

#[tokio::test]
async fn only_the_subjects_own_sales_are_deleted() {
    let (fake, _dir, so) = connector("").await;
    let applied = apply(&so, &ctx(), &kari(), &Change::Erasure, &retain()).await.unwrap();
    assert_eq!(applied.keys("sales", "done"), ["sales 701"]);
    assert!(
        !fake.with(|s| s.has_record("Sales", 701)),
        "her own sale goes when no rule keeps it"
    );
    assert!(
        fake.with(|s| s.has_record("Sales", 702)),
        "the sale she is only a stakeholder in stays"
    );
    let stakeholder = applied.item("sales 702").unwrap();
    assert_eq!(stakeholder.state.as_str(), "retained");
    assert!(stakeholder.shared.is_some(), "{stakeholder:?}");
    assert!(
        stakeholder.reason.as_deref().unwrap().contains("stakeholder"),
        "{stakeholder:?}"
    );
    let deletes: Vec<String> = fake.calls().into_iter().filter(|c| c.starts_with("DELETE")).collect();
    assert!(deletes.iter().any(|c| c.contains("Sale/701")), "{deletes:?}");
    assert!(!deletes.iter().any(|c| c.contains("Sale/702")), "{deletes:?}");
}

#[tokio::test]
async fn a_shared_sale_is_retained_by_default_and_deleted_when_configured() {
    let (fake, _dir, so) = connector("").await;
    let plan = so.plan(&ctx(), &kari(), &Change::Erasure).await.unwrap();
    let sale = plan.items.iter().find(|i| i.key == "sales 702").unwrap();
    let shared = sale.shared.as_deref().unwrap();
    assert!(
        !shared.contains("Per") && !shared.contains("Olsen") && !shared.contains("103"),
        "names no one: {shared}"
    );
    let own = plan.items.iter().find(|i| i.key == "sales 701").unwrap();
    assert!(own.shared.is_none(), "her own sale is hers alone");

    let retained = apply(&so, &dry_run(), &kari(), &Change::Erasure, &retain())
        .await
        .unwrap();
    assert_eq!(retained.item("sales 702").unwrap().state.as_str(), "retained");
    let applied = apply(&so, &ctx(), &kari(), &Change::Erasure, &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(applied.keys("sales", "done"), ["sales 701", "sales 702"]);
    assert!(!fake.with(|s| s.has_record("Sales", 702)), "deleted as configured");
    assert!(
        fake.calls().iter().any(|c| c == "DELETE Cust12345/Sale/702"),
        "{:?}",
        fake.calls()
    );
    assert!(applied.verification.unwrap().remaining.is_empty());
}

// ---- Rectification --------------------------------------------------------------------------

#[tokio::test]
async fn rectification_keeps_the_addresses_not_corrected() {
    let (fake, _dir, so) = connector("").await;
    let applied = apply(&so, &ctx(), &kari(), &rename("kari.hansen@example.no"), &retain())
        .await
        .unwrap();
    assert_eq!(applied.keys("persons", "done"), ["persons 101"]);
    let kari = person(&fake, 101).unwrap();
    let emails: Vec<&str> = kari.entity["Emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Value"].as_str())
        .collect();
    assert_eq!(emails, ["kari.hansen@example.no", "kari@privat.example"]);
    assert_eq!(kari.entity["Lastname"], "Hansen");
    assert_eq!(kari.entity["Firstname"], "Kari");
    let item = applied.item("persons 101").unwrap();
    let (before, after) = (item.before.as_ref().unwrap(), item.after.as_ref().unwrap());
    assert_eq!(
        (before["Lastname"].as_str(), after["Lastname"].as_str()),
        (Some("Nordmann"), Some("Hansen"))
    );
    assert_eq!(
        before["Emails"],
        json!(["kari.nordmann@example.no", "kari@privat.example"])
    );
    assert_eq!(
        after["Emails"],
        json!(["kari.hansen@example.no", "kari@privat.example"])
    );
    assert!(applied.verification.unwrap().remaining.is_empty());
    // Asked again under her new address: already as requested.
    let hansen = Identities {
        emails: vec![Email::parse("kari.hansen@example.no").unwrap()],
        ..Default::default()
    };
    let again = apply(&so, &ctx(), &hansen, &rename("kari.hansen@example.no"), &retain())
        .await
        .unwrap();
    let kept = again.item("persons 101").unwrap();
    assert_eq!(
        (kept.state.as_str(), kept.reason.as_deref()),
        ("retained", Some("already as requested"))
    );
    assert_eq!(kept.before.as_ref().unwrap()["Lastname"], "Hansen");
    assert_eq!(again.changed(), 0);
}

#[tokio::test]
async fn rectification_replaces_her_number_and_keeps_the_persons_other_numbers() {
    let (fake, _dir, so) = connector("").await;
    fake.with(|s| {
        let person = s.person_mut(101).unwrap();
        person.entity["MobilePhones"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Value": "+47 22 00 00 00", "Description": "Sentralbord"}));
    });
    let subject = Identities {
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..kari()
    };
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Phone,
            value: "+47 987 65 432".into(),
        }],
    };
    let applied = apply(&so, &ctx(), &subject, &change, &retain()).await.unwrap();
    let phones: Vec<String> = person(&fake, 101).unwrap().entity["MobilePhones"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["Value"].as_str().map(String::from))
        .collect();
    assert_eq!(
        phones,
        ["+47 987 65 432", "+47 22 00 00 00"],
        "hers replaced, the switchboard kept"
    );
    let item = applied.item("persons 101").unwrap();
    assert_eq!(
        item.before.as_ref().unwrap()["MobilePhones"],
        json!(["+47 912 34 567", "+47 22 00 00 00"])
    );
    // Planned again, the number is already as asked: nothing remains, nothing is added twice.
    let verification = applied.verification.unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert_eq!(
        verification.after["persons 101"]["MobilePhones"],
        json!(["+47 987 65 432", "+47 22 00 00 00"])
    );
}

// ---- The plan itself ------------------------------------------------------------------------

/// Every kind of change, each on a fake and a connector of its own.
async fn every_change() -> Vec<(Change, SuperOfficeFake, tempfile::TempDir, SuperOffice)> {
    let mut each = Vec::new();
    for change in [Change::Erasure, rename("kari.hansen@example.no"), Change::Objection] {
        let (fake, dir, so) = connector("").await;
        each.push((change, fake, dir, so));
    }
    each
}

/// The keys of the items `pick` picks, in plan order.
fn picked(applied: &Applied, pick: impl Fn(&PlanItem) -> bool) -> Vec<&str> {
    applied
        .plan
        .items
        .iter()
        .filter(|i| pick(i))
        .map(|i| i.key.as_str())
        .collect()
}

/// Whether the item's call was made, whatever SuperOffice answered.
fn was_executed(item: &PlanItem) -> bool {
    matches!(item.state.as_str(), "done" | "already_gone" | "refused_by_vendor")
}

#[tokio::test]
async fn a_plan_changes_nothing_and_the_dry_run_lists_what_is_then_done() {
    for (change, fake, _dir, so) in every_change().await {
        let held = holdings(&fake);
        let plan = so.plan(&ctx(), &kari(), &change).await.unwrap();
        let changing = plan.items.iter().filter(|i| i.action != Action::Keep).count();
        assert!(changing > 0, "{change:?}");
        let preview = apply(&so, &dry_run(), &kari(), &change, &retain()).await.unwrap();
        assert!(preview.verification.is_none());
        assert_eq!(preview.changed(), 0);
        assert_eq!(holdings(&fake), held, "{change:?}: planning changed the fake");
        assert!(changes_made(&fake).is_empty(), "{:?}", changes_made(&fake));

        let applied = apply(&so, &ctx(), &kari(), &change, &retain()).await.unwrap();
        assert_eq!(picked(&preview, |_| true), picked(&applied, |_| true), "{change:?}");
        assert_eq!(
            picked(&preview, PlanItem::is_due),
            picked(&applied, was_executed),
            "{change:?}: the preview's due items are the ones carried out"
        );
        assert_ne!(holdings(&fake), held);
    }
}

#[tokio::test]
async fn executing_a_plan_again_changes_nothing_more() {
    for (change, fake, _dir, so) in every_change().await {
        let applied = apply(&so, &ctx(), &kari(), &change, &retain()).await.unwrap();
        let held = holdings(&fake);
        let kari_now = person(&fake, 101).map(|_| fields(&fake, 101));
        let calls = changes_made(&fake).len();
        let executed: Vec<&PlanItem> = applied.plan.items.iter().filter(|i| was_executed(i)).collect();
        assert!(!executed.is_empty(), "{change:?}");
        for item in &executed {
            let outcome = execute(&so, &change, item).await.unwrap();
            match (&change, &outcome) {
                (Change::Erasure, ItemOutcome::AlreadyGone) => {}
                // The ticket SuperOffice refused to delete is refused again.
                (Change::Erasure, ItemOutcome::RefusedByVendor(_)) => assert_eq!(item.key, "tickets 801"),
                (Change::Erasure, other) => panic!("{}: {other:?}", item.key),
                (_, ItemOutcome::Done(_)) => {}
                (_, other) => panic!("{}: {other:?}", item.key),
            }
        }
        // At most one call per item: a newsletter already unselected and a person already
        // as requested are read again and left alone (no PATCH); deletes and withdrawals
        // are sent again and answer 404 or no-op.
        let again = changes_made(&fake).len() - calls;
        assert!(
            again <= executed.len(),
            "{change:?}: {again} calls for {} items",
            executed.len()
        );
        assert!(
            !changes_made(&fake)[calls..].iter().any(|c| c.starts_with("PATCH")),
            "{change:?}: nothing already so is patched again: {:?}",
            &changes_made(&fake)[calls..]
        );
        match kari_now {
            // PATCH moves the person's UpdatedDate; what it sets is as it was.
            Some(fields_then) => assert_eq!(fields(&fake, 101), fields_then, "{change:?}"),
            None => assert_eq!(holdings(&fake), held, "{change:?}"),
        }
        for other in [102, 103] {
            let untouched = fake.with(|s| s.person(other).is_some());
            assert!(untouched);
        }
    }
}

#[tokio::test]
async fn a_look_alike_the_search_returns_is_not_hers_and_untouched() {
    for (change, fake, _dir, so) in every_change().await {
        fake.with(|s| s.faults.ignore_search_filter = true);
        let look_alike = fields(&fake, 102);
        let colleague = fields(&fake, 103);
        let applied = apply(&so, &ctx(), &kari(), &change, &retain()).await.unwrap();
        let not_hers = picked(&applied, |i| i.state.as_str() == "not_hers");
        assert!(
            not_hers.iter().any(|k| k.contains(" 102")) && not_hers.iter().any(|k| k.contains(" 103")),
            "{change:?}: {not_hers:?}"
        );
        assert!(!not_hers.iter().any(|k| k.contains(" 101")), "{change:?}: {not_hers:?}");
        for item in applied.plan.items.iter().filter(|i| i.state.as_str() == "not_hers") {
            assert!(
                item.before.is_none() && item.after.is_none(),
                "nothing of another person is kept in the plan: {item:?}"
            );
        }
        assert_eq!(fields(&fake, 102), look_alike, "{change:?}");
        assert_eq!(fields(&fake, 103), colleague, "{change:?}");
        let touched: Vec<String> = changes_made(&fake)
            .into_iter()
            .filter(|c| c.contains("Person/102") || c.contains("Person/103"))
            .collect();
        assert!(touched.is_empty(), "{touched:?}");
        assert!(applied.changed() > 0, "{change:?}: hers was still changed");
        assert!(applied.verification.unwrap().remaining.is_empty());
    }
}

// ---- Executing a plan made earlier ----------------------------------------------------------

/// A plan made and checked now, to execute later (as after an approval).
async fn checked_plan(so: &SuperOffice, change: &Change) -> Plan {
    let mut plan = so.plan(&ctx(), &kari(), change).await.unwrap();
    check_plan(&kari(), &mut plan, &retain());
    plan
}

fn planned<'a>(plan: &'a Plan, key: &str) -> &'a PlanItem {
    plan.items
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", plan.items))
}

fn selected(fake: &SuperOfficeFake, person: i64) -> Vec<(i64, bool)> {
    let p = self::person(fake, person).unwrap();
    p.entity["ShipmentTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Id"].as_i64().unwrap(), s["Selected"].as_bool().unwrap()))
        .collect()
}

fn code(err: &ConnectorError) -> String {
    err.code()
}

/// Executes one item of a plan made for Kari, as the engine does after an approval.
async fn execute(so: &SuperOffice, change: &Change, item: &PlanItem) -> Result<ItemOutcome, ConnectorError> {
    dsr_fixtures::testing::execute(so, &kari(), change, item).await
}

#[tokio::test]
async fn a_newsletter_is_unsubscribed_by_its_id_even_when_the_list_was_reordered_since_the_plan() {
    let (fake, _dir, so) = connector("").await;
    let plan = checked_plan(&so, &Change::Objection).await;
    let first = planned(&plan, "newsletter_subscriptions 101/1");
    assert_eq!(first.target["shipment_type"], 1);
    assert!(
        first.target.get("index").is_none(),
        "no place in the list is planned: {first:?}"
    );
    // Waiting for approval, the list comes back in another order (Kundeinvitasjoner first).
    fake.with(|s| {
        let types = s.person_mut(101).unwrap().entity["ShipmentTypes"]
            .as_array_mut()
            .unwrap();
        types.reverse();
    });
    assert_eq!(selected(&fake, 101), [(2, true), (1, true)]);
    let outcome = execute(&so, &Change::Objection, first).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(
        selected(&fake, 101),
        [(2, true), (1, false)],
        "Nyhetsbrev (id 1) unselected where it is now; Kundeinvitasjoner untouched"
    );
    let patches = || changes_made(&fake).iter().filter(|c| c.starts_with("PATCH")).count();
    assert_eq!(patches(), 1);
    // Executed again: already unselected, nothing sent.
    let again = execute(&so, &Change::Objection, first).await.unwrap();
    assert!(
        matches!(&again, ItemOutcome::Done(r) if r["already_unsubscribed"] == true),
        "{again:?}"
    );
    assert_eq!(patches(), 1);
    // A newsletter gone from her list since the plan: gone all the same, nothing sent.
    fake.with(|s| {
        let types = s.person_mut(101).unwrap().entity["ShipmentTypes"]
            .as_array_mut()
            .unwrap();
        types.retain(|t| t["Id"] != 2);
    });
    let second = planned(&plan, "newsletter_subscriptions 101/2");
    let outcome = execute(&so, &Change::Objection, second).await.unwrap();
    assert_eq!(outcome, ItemOutcome::AlreadyGone);
    assert_eq!(patches(), 1);
    assert_eq!(
        selected(&fake, 102),
        [(1, true), (2, false)],
        "the look-alike is untouched"
    );
}

#[tokio::test]
async fn a_delete_that_fails_for_any_other_reason_is_an_error_not_a_vendor_refusal() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An environment the tenant state's web API address does not belong to (localhost vs.
    // 127.0.0.1): every call fails permanently before it reaches a record.
    let text = fake
        .connector_toml(&dir.path().join("so-key"), SYSTEM_USER_KEY_PEM)
        .unwrap()
        .replace("127.0.0.1", "localhost");
    let so = SuperOffice::new(toml::from_str(&text).unwrap()).unwrap();
    let sale = PlanItem::new(
        "sales 701",
        "sales",
        Action::Delete,
        json!({"call": "delete_record", "entity": "Sale", "id": 701}),
        Value::Null,
        vec![],
    );
    let err = execute(&so, &Change::Erasure, &sale).await.unwrap_err();
    assert_eq!(code(&err), "permanent:tenant_state:untrusted", "{err}");
    assert!(fake.with(|s| s.has_record("Sales", 701)));
    // The sentry's refusal of the one ticket is still the vendor keeping it.
    let (fake, _dir, so) = connector("").await;
    let ticket = PlanItem::new(
        "tickets 801",
        "tickets",
        Action::Delete,
        json!({"call": "delete_record", "entity": "Ticket", "id": 801}),
        Value::Null,
        vec![],
    );
    let outcome = execute(&so, &Change::Erasure, &ticket).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::RefusedByVendor(r) if r.contains("sentry") && r.contains("by hand")),
        "{outcome:?}"
    );
    assert!(fake.with(|s| s.has_record("Tickets", 801)));
}

#[tokio::test]
async fn a_correction_is_sent_only_while_the_person_holds_what_the_plan_read() {
    let (fake, _dir, so) = connector("").await;
    let change = rename("kari.hansen@example.no");
    let plan = checked_plan(&so, &change).await;
    let item = planned(&plan, "persons 101");
    assert_eq!(item.action, Action::Patch);
    let emails = |fake: &SuperOfficeFake| -> Vec<String> {
        person(fake, 101).unwrap().entity["Emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Value"].as_str().unwrap().to_string())
            .collect()
    };
    let patches = |fake: &SuperOfficeFake| changes_made(fake).iter().filter(|c| c.starts_with("PATCH")).count();

    // Someone adds an address while the plan waits: the planned list would drop it.
    fake.with(|s| {
        let emails = s.person_mut(101).unwrap().entity["Emails"].as_array_mut().unwrap();
        emails.push(
            json!({"Value": "kari@styre.example", "StrippedValue": "kari@styre.example", "Description": "Styre"}),
        );
    });
    let err = execute(&so, &change, item).await.unwrap_err();
    assert_eq!(code(&err), "permanent:changed_since_plan", "{err}");
    assert!(
        err.to_string().contains("dsr retry test --processor superoffice"),
        "the operator is told how to plan again: {err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        emails(&fake),
        ["kari.nordmann@example.no", "kari@privat.example", "kari@styre.example"]
    );
    assert_eq!(person(&fake, 101).unwrap().entity["Lastname"], "Nordmann");

    // The same addresses, but another property of one changed: still not sent.
    fake.with(|s| {
        let emails = s.person_mut(101).unwrap().entity["Emails"].as_array_mut().unwrap();
        emails.pop();
        emails[1]["Description"] = json!("Privat (ny)");
    });
    let err = execute(&so, &change, item).await.unwrap_err();
    assert_eq!(code(&err), "permanent:changed_since_plan", "{err}");
    assert_eq!(
        person(&fake, 101).unwrap().entity["Emails"][1]["Description"],
        "Privat (ny)"
    );
    assert_eq!(patches(&fake), 0);

    // Someone made exactly the correction asked for: done, nothing sent.
    fake.with(|s| {
        let entity = &mut s.person_mut(101).unwrap().entity;
        entity["Emails"][0]["Value"] = json!("kari.hansen@example.no");
        entity["Lastname"] = json!("Hansen");
    });
    let outcome = execute(&so, &change, item).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );
    assert_eq!(patches(&fake), 0);

    // Unchanged since the plan: sent as planned.
    let (fake, _dir, so) = connector("").await;
    let plan = checked_plan(&so, &change).await;
    let outcome = execute(&so, &change, planned(&plan, "persons 101")).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(emails(&fake), ["kari.hansen@example.no", "kari@privat.example"]);
    assert_eq!(patches(&fake), 1);
}

// ---- What an operator sees when SuperOffice cannot be served ---------------------------------

/// The calls made to the tenant's REST API (not the login, the keys or the tenant state).
fn api_calls(fake: &SuperOfficeFake) -> Vec<String> {
    fake.calls().into_iter().filter(|c| c.contains("Cust12345/")).collect()
}

#[tokio::test]
async fn a_refused_system_user_login_asks_for_the_credentials_to_be_renewed() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = fake
        .connector_toml(&dir.path().join("so-key"), SYSTEM_USER_KEY_PEM)
        .unwrap();
    let wrong_token_file = dir.path().join("wrong-token");
    std::fs::write(&wrong_token_file, "a-token-superoffice-never-issued").unwrap();
    let line = format!(
        "system_user_token = \"file:{}\"",
        dir.path().join("so-key.token").display()
    );
    assert!(good.contains(&line), "{good}");
    let wrong_token = good.replace(
        &line,
        &format!("system_user_token = \"file:{}\"", wrong_token_file.display()),
    );
    // A well-formed RSA key that is not the application's: its signature does not verify.
    let other_key = fake
        .connector_toml(&dir.path().join("other-key"), dsr_fixtures::google::TEST_PRIVATE_KEY)
        .unwrap();
    for (text, words) in [
        (wrong_token, "Unknown system user token."),
        (other_key, "The signature of the system user token is invalid."),
    ] {
        let so = SuperOffice::new(toml::from_str(&text).unwrap()).unwrap();
        let mut sink = MemorySink::checked(kari());
        let err = so.access(&ctx(), &kari(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "reauthenticate:system_user", "{err}");
        assert!(matches!(err, ConnectorError::Reauthenticate { .. }), "{err:?}");
        assert!(
            err.to_string().contains(words) && err.to_string().contains("Cust12345"),
            "SuperOffice's reason and the tenant: {err}"
        );
        assert!(sink.records.is_empty());
    }
    assert!(
        api_calls(&fake).is_empty(),
        "nothing was asked without a ticket: {:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn a_tenant_that_is_not_running_is_retried_later_and_served_once_it_runs() {
    let (fake, _dir, so) = connector("").await;
    // check-status.html: "OfflineMaintenance (6) | The customer tenant is offline for
    // maintenance. … APIs are not available."
    fake.with(|s| s.tenant_state = "OfflineMaintenance".into());
    let mut sink = MemorySink::checked(kari());
    let err = so.access(&ctx(), &kari(), &mut sink).await.unwrap_err();
    assert_eq!(err.code(), "retry_later:tenant_state", "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("OfflineMaintenance"), "{err}");
    assert!(api_calls(&fake).is_empty(), "{:?}", fake.calls());
    let err = apply(&so, &ctx(), &kari(), &Change::Erasure, &retain())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "retry_later:tenant_state", "{err}");
    assert!(changes_made(&fake).is_empty());

    // Running again: the same connector asks where the tenant is and serves the request.
    fake.with(|s| s.tenant_state = "Running".into());
    let mut sink = MemorySink::checked(kari());
    assert_eq!(so.access(&ctx(), &kari(), &mut sink).await.unwrap().found, 13);
}

#[tokio::test]
async fn a_tenant_state_superoffice_answers_404_for_fails_naming_what_to_check() {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An environment address under which SuperOffice serves no tenant state: 404.
    let environment = format!("environment_url = \"{}\"", fake.environment_url());
    let text = fake
        .connector_toml(&dir.path().join("so-key"), SYSTEM_USER_KEY_PEM)
        .unwrap()
        .replace(
            &environment,
            &format!("environment_url = \"{}/no-such-environment\"", fake.environment_url()),
        );
    let so = SuperOffice::new(toml::from_str(&text).unwrap()).unwrap();
    let mut sink = MemorySink::checked(kari());
    let err = so.access(&ctx(), &kari(), &mut sink).await.unwrap_err();
    assert_eq!(err.code(), "permanent:404:tenant_state", "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("Cust12345")
            && err
                .to_string()
                .contains("processors.superoffice.tenant and environment_url"),
        "{err}"
    );
    assert!(
        fake.calls().is_empty(),
        "nothing reached the tenant: {:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn a_newsletter_list_that_changes_during_both_attempts_is_retried_later() {
    let (fake, _dir, so) = connector("").await;
    let plan = checked_plan(&so, &Change::Objection).await;
    let first = planned(&plan, "newsletter_subscriptions 101/1");
    let patches = || changes_made(&fake).iter().filter(|c| c.starts_with("PATCH")).count();
    // Someone else saves her list in another order just before each of dsr's two PATCHes.
    fake.with(|s| s.shipment_types_change_next = 2);
    let err = execute(&so, &Change::Objection, first).await.unwrap_err();
    assert_eq!(err.code(), "retry_later:shipment_types_changing", "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("person 101"), "{err}");
    assert_eq!(patches(), 2, "read again and tried once more, then left for later");
    assert!(
        selected(&fake, 101).iter().all(|(_, on)| *on),
        "nothing was unselected at a wrong place: {:?}",
        selected(&fake, 101)
    );

    // Retried once the list holds still: Nyhetsbrev (id 1) unselected, wherever it is now.
    let outcome = execute(&so, &Change::Objection, first).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(patches(), 3);
    let mut now = selected(&fake, 101);
    now.sort();
    assert_eq!(now, [(1, false), (2, true)]);

    // Changed during one attempt only: the second attempt reads the new order and succeeds.
    fake.with(|s| s.shipment_types_change_next = 1);
    let second = planned(&plan, "newsletter_subscriptions 101/2");
    let outcome = execute(&so, &Change::Objection, second).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(patches(), 5);
    assert!(
        selected(&fake, 101).iter().all(|(_, on)| !on),
        "{:?}",
        selected(&fake, 101)
    );
    assert_eq!(
        selected(&fake, 102),
        [(1, true), (2, false)],
        "the look-alike is untouched"
    );
}

#[tokio::test]
async fn a_login_token_expired_from_another_issuer_or_for_another_audience_is_refused() {
    let now = chrono::Utc::now().timestamp();
    let serial = SuperOfficeFake::start().await.unwrap().with(|s| s.serial.clone());
    for (claims, words) in [
        (json!({"exp": now - 3600, "nbf": now - 7200}), "expired"),
        (json!({"nbf": now + 3600, "exp": now + 7200}), "not valid before"),
        (json!({"iss": "https://evil.example"}), "issuer"),
        (json!({"aud": "spn:someone-else"}), "audience"),
        (
            json!({"aud": format!("spn:{serial}"), "http://schemes.superoffice.net/identity/ctx": "Cust99999"}),
            "tenant",
        ),
    ] {
        let (fake, _dir, so) = connector("").await;
        let Value::Object(claims) = claims else { unreachable!() };
        fake.with(|s| s.jwt_claims = claims.clone());
        let mut sink = MemorySink::checked(kari());
        let err = so.access(&ctx(), &kari(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "reauthenticate:system_user", "{claims:?}: {err}");
        assert!(err.to_string().contains(words), "{claims:?}: {err}");
        assert!(
            api_calls(&fake).is_empty(),
            "no call with that ticket: {:?}",
            fake.calls()
        );
    }
}

/// A consent purpose key is SuperOffice's data: whatever it holds, the withdrawal goes to that
/// one purpose of that one person, and nowhere else on the tenant.
#[tokio::test]
async fn a_hostile_purpose_key_stays_one_path_segment() {
    let (fake, _dir, so) = connector("").await;
    let hostile = "x/../../admin?permanent=false#";
    // As a stored plan holds it.
    let item: PlanItem = serde_json::from_value(json!({
        "key": format!("consents 101/{hostile}"), "category": "consents", "action": "delete",
        "target": {"call": "withdraw_consent", "person": 101, "purpose": hostile}, "claims": [],
    }))
    .unwrap();
    let outcome = execute(&so, &Change::Objection, &item).await.unwrap();
    assert_eq!(outcome, ItemOutcome::AlreadyGone, "the fake has no such purpose");
    assert_eq!(
        api_calls(&fake),
        [format!("DELETE Cust12345/Person/101/Consent/{hostile}")],
        "one call, to the purpose named, whole"
    );
}
