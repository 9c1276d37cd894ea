//! The engine's guard on what a connector found: every record must show, where its claims
//! say, one of the subject's identifiers (`dsr_connector::check_claims`) before it reaches the
//! spool. A record that does not is dropped with its files, counted for the bundle ("returned
//! by the vendor but not the subject's: N") and logged without its data. Changes pass the same
//! rule through `TaskContext::permit`.

use dsr_connector::{
    ByteStream, FileMeta, Identities, Processor, Record, RecordSink, SinkError, StoredFile, check_claims,
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
}
