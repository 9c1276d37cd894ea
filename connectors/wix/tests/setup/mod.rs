//! What the overlap tests share: a connector for a fresh fake Wix site, and the subject.

use dsr_connector::Identities;
use dsr_fixtures::wix::WixFake;
use dsr_wix::{Wix, WixConfig};

pub const KARI: &str = "kari.nordmann@example.no";

pub async fn connector() -> (WixFake, tempfile::TempDir, Wix) {
    let fake = WixFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("wix-key")).unwrap();
    let config: WixConfig = toml::from_str(&text).unwrap();
    (fake, dir, Wix::new(config).unwrap())
}

pub fn kari() -> Identities {
    Identities {
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..dsr_fixtures::testing::subject(KARI)
    }
}
