//! What the overlap tests share: a connector for a fresh fake SuperOffice, and the subject.

use dsr_connector::Identities;
use dsr_fixtures::superoffice::{SYSTEM_USER_KEY_PEM, SuperOfficeFake};
use dsr_superoffice::{SuperOffice, SuperOfficeConfig};

pub const KARI: &str = "kari.nordmann@example.no";

pub async fn connector() -> (SuperOfficeFake, tempfile::TempDir, SuperOffice) {
    let fake = SuperOfficeFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake
        .connector_toml(&dir.path().join("so-key"), SYSTEM_USER_KEY_PEM)
        .unwrap();
    let config: SuperOfficeConfig = toml::from_str(&text).unwrap();
    let so = SuperOffice::new(config).unwrap();
    (fake, dir, so)
}

pub fn kari() -> Identities {
    dsr_fixtures::testing::subject(KARI)
}
