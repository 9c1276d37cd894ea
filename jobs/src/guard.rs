//! The engine's guard on what a connector found: every record must show, where its claims
//! say, one of the subject's identifiers (`dsr_connector::check_claims`) before it reaches the
//! spool. A record that does not is dropped with its files, counted for the bundle ("returned
//! by the vendor but not the subject's: N") and logged without its data. Changes pass the same
//! rule item by item (`dsr_connector::check_plan`).

use dsr_connector::{
    ByteStream, FileMeta, FileSlot, Identities, Processor, Record, RecordSink, SinkError, SlotFile, StoredFile,
    check_claims,
};

use crate::spool::SpoolWriter;

/// A spool that keeps only the subject's records.
pub struct CheckedSpool<'a> {
    spool: &'a mut SpoolWriter,
    subject: &'a Identities,
    processor: Processor,
    request_id: &'a str,
}

impl<'a> CheckedSpool<'a> {
    pub fn new(spool: &'a mut SpoolWriter, subject: &'a Identities, processor: Processor, request_id: &'a str) -> Self {
        CheckedSpool {
            spool,
            subject,
            processor,
            request_id,
        }
    }
}

#[async_trait::async_trait]
impl RecordSink for CheckedSpool<'_> {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        match check_claims(self.subject, &record.data, &record.claims) {
            Ok(_) => self.spool.accept(record).await,
            Err(refusal) => {
                tracing::warn!(
                    request = %self.request_id,
                    processor = %self.processor,
                    category = %record.category,
                    reason = %refusal,
                    "dropped a record the vendor returned that is not the subject's"
                );
                self.spool.drop_record().await;
                Ok(())
            }
        }
    }

    async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
        self.spool.attach(file, body).await
    }

    fn reserve(&mut self, file: FileMeta) -> FileSlot {
        self.spool.reserve(file)
    }

    async fn keep(&mut self, stored: SlotFile) -> Result<StoredFile, SinkError> {
        self.spool.keep(stored).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{SpoolEntry, read_spool, spool_key};
    use crate::storage::ExportStore;
    use dsr_connector::{Email, MatchClaim};
    use futures::StreamExt;
    use serde_json::json;

    fn record(data: serde_json::Value, claims: Vec<MatchClaim>) -> Record {
        Record {
            category: "contacts".into(),
            id: None,
            provided_by_subject: false,
            data,
            claims,
        }
    }

    #[tokio::test]
    async fn a_record_that_claims_a_match_it_does_not_carry_is_dropped_with_its_file() {
        let store = ExportStore::in_memory();
        let mut spool = SpoolWriter::create(&store, spool_key("r", Processor::Wix, 1));
        let kari = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            ..Default::default()
        };
        {
            let mut checked = CheckedSpool::new(&mut spool, &kari, Processor::Wix, "r");
            // Claims her address at /email, but /email is someone else's.
            let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"theirs"))]).boxed();
            let meta = FileMeta {
                folder: "files".into(),
                name: "theirs.txt".into(),
                media_type: "text/plain".into(),
            };
            checked.attach(meta, body).await.unwrap();
            checked
                .accept(record(
                    json!({"email": "annkari.nordmann@example.no"}),
                    vec![MatchClaim::email("/email")],
                ))
                .await
                .unwrap();
            // Claims a place that holds nothing.
            checked
                .accept(record(json!({"name": "Kari"}), vec![MatchClaim::email("/email")]))
                .await
                .unwrap();
            checked
                .accept(record(
                    json!({"email": "KARI.NORDMANN@example.no"}),
                    vec![MatchClaim::email("/email")],
                ))
                .await
                .unwrap();
        }
        assert_eq!(spool.dropped(), 2);
        let committed = spool.commit().await.unwrap();
        let mut kept = Vec::new();
        read_spool(&store, &committed, |entry| {
            kept.push(match entry {
                SpoolEntry::Record(r) => r.data.to_string(),
                SpoolEntry::File(f) => f.path,
            });
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            kept,
            [r#"{"email":"KARI.NORDMANN@example.no"}"#],
            "only hers, and no file of theirs"
        );
    }

    #[tokio::test]
    async fn files_stored_at_once_go_with_a_refused_record_and_stay_with_a_kept_one() {
        let store = ExportStore::in_memory();
        let mut spool = SpoolWriter::create(&store, spool_key("r", Processor::Microsoft365, 1));
        let kari = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            ..Default::default()
        };
        let meta = |name: &str| FileMeta {
            folder: "attachments".into(),
            name: name.into(),
            media_type: "text/plain".into(),
        };
        let body =
            |text: &'static str| futures::stream::iter(vec![Ok(bytes::Bytes::from_static(text.as_bytes()))]).boxed();
        {
            let mut checked = CheckedSpool::new(&mut spool, &kari, Processor::Microsoft365, "r");
            let slots = [meta("theirs-1.txt"), meta("theirs-2.txt"), meta("hers.txt")].map(|m| checked.reserve(m));
            let [t1, t2, hers] = slots;
            // Stored together, the last reserved first.
            let (hers, t2, t1) = futures::join!(hers.store(body("hers")), t2.store(body("t2")), t1.store(body("t1")));
            checked.keep(t1.unwrap()).await.unwrap();
            checked.keep(t2.unwrap()).await.unwrap();
            checked
                .accept(record(
                    json!({"email": "annkari.nordmann@example.no"}),
                    vec![MatchClaim::email("/email")],
                ))
                .await
                .unwrap();
            let kept = checked.keep(hers.unwrap()).await.unwrap();
            assert_eq!(kept.path, "attachments/0003-hers.txt");
            checked
                .accept(record(
                    json!({"email": "kari.nordmann@example.no", "file": kept.path}),
                    vec![MatchClaim::email("/email")],
                ))
                .await
                .unwrap();
        }
        assert_eq!(spool.dropped(), 1);
        let committed = spool.commit().await.unwrap();
        let mut listed = Vec::new();
        read_spool(&store, &committed, |entry| {
            if let SpoolEntry::File(f) = entry {
                listed.push(f.path);
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(listed, ["attachments/0003-hers.txt"]);
        let left: Vec<String> = store
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert!(left.iter().all(|k| !k.contains("theirs")), "{left:?}");
        assert!(left.iter().any(|k| k.ends_with("0003-hers.txt")), "{left:?}");
    }
}
