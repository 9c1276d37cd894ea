//! Access to Google Workspace against the fake Gmail and People APIs: her mail as `.eml`
//! exactly as Gmail stores it, her contacts and other contacts, matched exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use dsr_connector::{Connector, MemorySink};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::testing::first_attempt as ctx;

#[tokio::test]
async fn workspace_mail_is_exported_as_eml_that_parses_and_contacts_match_exactly() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let mut sink = MemorySink::checked(kari_in_workspace());
    google.access(&ctx(), &kari_in_workspace(), &mut sink).await.unwrap();
    let mail: BTreeSet<String> = sink.ids("mail");
    assert_eq!(
        mail,
        BTreeSet::from(["g-ola-1", "g-ola-2", "g-ola-4", "g-post-1", "g-post-3"].map(String::from)),
        "in Spam (g-post-3) and the Trash (g-ola-4) too: Gmail still holds them"
    );
    let other: BTreeSet<String> = sink.ids("other_contacts");
    assert_eq!(
        other,
        BTreeSet::from(["otherContacts/oc1".to_string()]),
        "the address Gmail saved from mail, not the look-alike's"
    );
    // Addresses are matched on the headers (format=metadata); the raw message is fetched
    // once, and only for the subject's messages.
    let raw_fetches: Vec<String> = fake.calls().into_iter().filter(|c| c.contains("format=raw")).collect();
    assert_eq!(
        raw_fetches.len(),
        5,
        "one raw fetch per message of hers: {raw_fetches:?}"
    );
    assert!(
        fake.calls().iter().any(|c| c.contains("format=metadata")),
        "candidates are checked on their headers first"
    );
    let contacts: BTreeSet<String> = sink.ids("contacts");
    assert_eq!(
        contacts,
        BTreeSet::from(["people/c1".to_string(), "people/c3".to_string()]),
        "by address and by phone"
    );
    assert!(
        !serde_json::to_string(&sink.records).unwrap().contains("annkari"),
        "the look-alike was exported"
    );
    assert_eq!(sink.files.len(), 5, "one .eml per message");
    assert!(
        sink.files
            .iter()
            .all(|(meta, file)| meta.media_type == "message/rfc822" && file.path.starts_with("mail/"))
    );
}

/// A checked sink that also keeps each file's bytes, by the path it stored it under.
#[derive(Default)]
struct KeepingSink {
    inner: MemorySink,
    bytes: BTreeMap<String, Vec<u8>>,
}

#[async_trait::async_trait]
impl dsr_connector::RecordSink for KeepingSink {
    async fn accept(&mut self, record: dsr_connector::Record) -> Result<(), dsr_connector::SinkError> {
        self.inner.accept(record).await
    }

    async fn attach(
        &mut self,
        file: dsr_connector::FileMeta,
        mut body: dsr_connector::ByteStream<'_>,
    ) -> Result<dsr_connector::StoredFile, dsr_connector::SinkError> {
        use futures::StreamExt;
        let mut kept = Vec::new();
        while let Some(chunk) = body.next().await {
            kept.extend_from_slice(&chunk.map_err(|e| dsr_connector::SinkError(e.to_string()))?);
        }
        let again = bytes::Bytes::from(kept.clone());
        let stored = self
            .inner
            .attach(file, Box::pin(futures::stream::once(async move { Ok(again) })))
            .await?;
        self.bytes.insert(stored.path.clone(), kept);
        Ok(stored)
    }
}

#[tokio::test]
async fn exported_eml_bytes_parse_with_a_mime_parser_and_keep_their_attachments() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let mut sink = KeepingSink {
        inner: MemorySink::checked(kari_in_workspace()),
        ..Default::default()
    };
    google.access(&ctx(), &kari_in_workspace(), &mut sink).await.unwrap();
    let mut parsed = 0;
    for (path, bytes) in &sink.bytes {
        assert!(path.starts_with("mail/"), "{path}");
        let message = mail_parser::MessageParser::default()
            .parse(bytes)
            .expect("a valid MIME message");
        assert!(message.subject().is_some());
        if message.subject() == Some("Spørsmål om sensorer") {
            assert_eq!(message.attachment_count(), 1, "attachments stay inside the .eml");
            assert_eq!(message.attachment(0).unwrap().contents(), b"%PDF-1.4 tegning");
        }
        parsed += 1;
    }
    assert_eq!(parsed, 5);
    let records: BTreeSet<&str> = sink
        .inner
        .records
        .iter()
        .filter_map(|r| r.data["file"].as_str())
        .collect();
    assert_eq!(
        records,
        sink.bytes.keys().map(String::as_str).collect(),
        "each mail record names its stored file"
    );
}
