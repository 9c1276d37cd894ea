//! The SuperOffice connector against the fake SuperOffice in `fixtures/`.

mod util;

use base64::Engine as _;
use dsr_connector::{Connector, Email, FieldChange, Identities, MemorySink, RectifyField, TaskContext};
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
    Identities {
        emails: vec![Email::parse(KARI).unwrap()],
        ..Default::default()
    }
}

fn ctx() -> TaskContext {
    util::first_attempt()
}

fn person(fake: &SuperOfficeFake, id: i64) -> Option<dsr_fixtures::superoffice::SoPerson> {
    fake.with(|s| s.person(id).cloned())
}

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
    let jwks: Value = serde_json::from_str(include_str!("../fixtures/seed/keys/superoffice-jwks.json")).unwrap();
    let other = dsr_connector::keys::rsa_private_key(dsr_fixtures::google::TEST_PRIVATE_KEY).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","kid":"fake-superoffice-1"}"#),
        b64(br#"{"ticket":"7T:x"}"#)
    );
    let signature = dsr_connector::keys::sign_rs256(&other, message.as_bytes()).unwrap();
    let forged = format!("{message}.{}", b64(&signature));
    assert!(dsr_connector::keys::verify_jwt(&forged, &jwks).is_err());
}

#[tokio::test]
async fn objection_withdraws_marketing_and_leaves_the_person() {
    let (fake, _dir, so) = connector("").await;
    assert!(fake.with(|s| s.consent_in_force(101, "EMARKETING")));
    let report = so.withdraw_consent(&ctx(), &kari()).await.unwrap();
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
    let detail = &report.evidence[0].detail;
    let withdrawn = detail["withdrawn"].as_array().unwrap();
    assert_eq!(withdrawn.len(), 3, "EMARKETING and two subscriptions: {detail}");
    // The evidence is what SuperOffice holds afterwards, read back.
    let after = detail["consents_afterwards"].as_array().unwrap();
    let marketing = after.iter().find(|c| c["purpose"] == "EMARKETING").unwrap();
    assert_eq!(
        (marketing["legal_base"].as_str(), marketing["in_force"].as_bool()),
        (Some("WITHDRAWN"), Some(false))
    );
}

#[tokio::test]
async fn an_objection_never_reports_a_withdrawal_superoffice_does_not_show() {
    let (fake, _dir, so) = connector("").await;
    fake.with(|s| s.ignore_consent_removal = true);
    let err = so.withdraw_consent(&ctx(), &kari()).await.unwrap_err();
    assert!(err.to_string().contains("EMARKETING"), "{err}");
    assert!(fake.with(|s| s.consent_in_force(101, "EMARKETING")));
    // An already-withdrawn consent is not withdrawn again, nor counted.
    fake.with(|s| s.ignore_consent_removal = false);
    so.withdraw_consent(&ctx(), &kari()).await.unwrap();
    let again = so.withdraw_consent(&ctx(), &kari()).await.unwrap();
    assert_eq!(again.changed, 0, "nothing left to withdraw: {:?}", again.evidence);
}

#[tokio::test]
async fn a_consent_list_in_another_shape_fails_at_once_naming_the_field() {
    let (fake, _dir, so) = connector("").await;
    fake.with(|s| s.nested_consents = true);
    let err = so.withdraw_consent(&ctx(), &kari()).await.unwrap_err();
    assert!(
        !err.is_retryable(),
        "a shape dsr does not understand is not an outage: {err}"
    );
    assert_eq!(err.code(), "permanent:unexpected_response");
    assert!(
        err.to_string().contains("ConsentPurposeKey") && err.to_string().contains("Consent"),
        "{err}"
    );
}

#[tokio::test]
async fn erasure_removes_the_person_and_reports_what_is_retained_honestly() {
    let (fake, _dir, so) = connector(RETAIN_SALES).await;
    let report = so.erase(&ctx(), &kari()).await.unwrap();
    assert!(person(&fake, 101).is_none(), "the person is gone");
    assert!(person(&fake, 102).is_some(), "the look-alike is untouched");
    let retained: Vec<(&str, u64)> = report.retained.iter().map(|r| (r.category.as_str(), r.count)).collect();
    assert_eq!(
        retained,
        [("sales", 1), ("tickets", 1), ("sales (as stakeholder)", 1)],
        "her own sale kept by rule, the ticket refused by SuperOffice, another person's sale not hers"
    );
    let sales = &report.retained[0];
    assert_eq!(sales.legal_basis, "Bokføringsloven § 13");
    assert!(
        report.retained[1].reason.contains("refused"),
        "a vendor refusal is not called erasure"
    );
    assert_eq!(report.changed, 5, "three appointments, a document and the person");
    assert!(
        fake.with(|s| s.has_record("Sales", 702)),
        "another person's sale is never deleted"
    );
    let verification = report
        .evidence
        .iter()
        .find(|e| e.kind == "verification_search")
        .unwrap();
    assert_eq!(verification.detail["persons_remaining"], 0);
}

#[tokio::test]
async fn only_the_subjects_own_sales_are_deleted() {
    let (fake, _dir, so) = connector("").await;
    let report = so.erase(&ctx(), &kari()).await.unwrap();
    assert!(
        !fake.with(|s| s.has_record("Sales", 701)),
        "her own sale goes when no rule keeps it"
    );
    assert!(
        fake.with(|s| s.has_record("Sales", 702)),
        "the sale she is only a stakeholder in stays"
    );
    let stakeholder = report
        .retained
        .iter()
        .find(|r| r.category == "sales (as stakeholder)")
        .expect("reported");
    assert!(stakeholder.reason.contains("stakeholder"), "{}", stakeholder.reason);
    let deletes: Vec<String> = fake.calls().into_iter().filter(|c| c.starts_with("DELETE")).collect();
    assert!(!deletes.iter().any(|c| c.contains("Sale/702")), "{deletes:?}");
}

#[tokio::test]
async fn rectification_keeps_the_addresses_not_corrected() {
    let (fake, _dir, so) = connector("").await;
    let changes = vec![
        FieldChange {
            field: RectifyField::Email,
            value: "kari.hansen@example.no".into(),
        },
        FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        },
    ];
    let report = so.rectify(&ctx(), &kari(), &changes).await.unwrap();
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
    let fields = &report.evidence[0].detail["fields"];
    let lastname = fields
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "Lastname")
        .unwrap();
    assert_eq!(
        (lastname["before"].as_str(), lastname["after"].as_str()),
        (Some("Nordmann"), Some("Hansen"))
    );
}

#[tokio::test]
async fn a_moved_tenant_and_an_expired_ticket_do_not_fail_the_request() {
    let (fake, _dir, so) = connector("").await;
    let mut sink = MemorySink::checked(kari());
    so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    fake.move_tenant();
    fake.expire_credentials();
    let mut sink = MemorySink::checked(kari());
    let summary = so.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(summary.found, 13);
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
    let changes = vec![FieldChange {
        field: RectifyField::Phone,
        value: "+47 987 65 432".into(),
    }];
    so.rectify(&ctx(), &subject, &changes).await.unwrap();
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
}
