//! Records (one item of personal data) and the sink a connector streams them into.

use serde::{Deserialize, Serialize};

/// One item of personal data found at a processor, with the vendor's field names kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What kind of data this is at the processor (`mail`, `contacts`, `persons`…).
    pub category: String,
    /// The vendor's id for the item, when it has one.
    pub id: Option<String>,
    /// Whether the subject gave us this data themselves (Art. 20 portability covers only that).
    pub provided_by_subject: bool,
    /// The item as the vendor returned it.
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("could not store a record: {0}")]
pub struct SinkError(pub String);

/// Where a connector puts the records it finds, one at a time, so no connector has to hold
/// a subject's whole history in memory.
#[async_trait::async_trait]
pub trait RecordSink: Send {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError>;
}

/// A sink that keeps records in memory: for tests and small callers.
#[async_trait::async_trait]
impl RecordSink for Vec<Record> {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        self.push(record);
        Ok(())
    }
}
