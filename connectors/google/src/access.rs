//! Finding and exporting the subject's data (Art. 15).
//!
//! - Google Analytics: the subject's GA4 events from the BigQuery export, since Analytics itself
//!   exports nothing per user: one parameterised query over the export's `events_*` tables,
//!   polled until done (for at most `bigquery_wait`; then the task is retried later) and
//!   read page by page
//!   (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/query,
//!   https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/getQueryResults).
//! - Workspace mail: each of her messages as an `.eml` exactly as Gmail stores it
//!   (`format=raw`, attachments inside), with a record that points at it.
//! - Workspace contacts and other contacts, each entry as People returns it.

use std::time::{Duration, Instant};

use base64::Engine as _;
use dsr_connector::http::{PageGuard, path_segment};
use dsr_connector::{
    AccessSummary, ConnectorError, DecodeError, FileMeta, Identities, IdentityKind, Record, RecordSink, decode,
};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Google;
use crate::client::{MAILBOXES_IN_FLIGHT, MAX_ROW_PAGES, PROCESSOR};
use crate::gmail::{CATEGORY as MAIL, FoundMail, MailMeta};
use crate::people::{Book, person_claims};
use crate::wire::{Person, QueryResponse, RawMessage, TableCell, TableFieldSchema, TableRow};

/// The largest `format=raw` answer read: a Gmail message is at most 150 MB
/// (https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/import,
/// "Note that the maximum message size is 150MB"), sent base64url (4 bytes for each 3) in a
/// small JSON object; every other Gmail answer keeps core's default limit.
pub const RAW_MESSAGE_LIMIT: usize = 150 * 1024 * 1024 / 3 * 4 + 1024 * 1024;

/// Raw messages downloaded at once. Gmail sends each whole (no stream), and answers are kept
/// in the search's order, so up to this many messages (each at most [`RAW_MESSAGE_LIMIT`]) are
/// held at once: fewer than the per-user limit allows, to keep memory bounded (two: a
/// download overlaps the next; with the one being written to the sink, at most three
/// answers of up to 201 MiB are held; most mail is a few KiB, and the overlap is what counts).
const DOWNLOADS_IN_FLIGHT: usize = 2;

/// The subject's events over the export's daily tables, and its intraday tables only for
/// days that have no daily table yet: while both exist for a day they hold the same events,
/// and `events_*` matches both (`events_intraday_YYYYMMDD` is filled through the day and
/// dropped once `events_YYYYMMDD` is complete:
/// https://support.google.com/analytics/answer/9358801). Written over `events_*` alone, so a
/// property without the streaming (intraday) export needs no table that does not exist.
/// Identifiers travel as parameters, never in the SQL text.
pub fn events_query(project: &str, dataset: &str) -> String {
    format!(
        "WITH matched AS (\
           SELECT *, STARTS_WITH(_TABLE_SUFFIX, 'intraday_') AS dsr_intraday \
           FROM `{project}.{dataset}.events_*` \
           WHERE user_pseudo_id IN UNNEST(@client_ids) OR user_id IN UNNEST(@user_ids)) \
         SELECT * EXCEPT (dsr_intraday) FROM matched \
         WHERE NOT dsr_intraday OR event_date NOT IN (SELECT event_date FROM matched WHERE NOT dsr_intraday) \
         ORDER BY event_timestamp"
    )
}

fn string_array(name: &str, values: &[String]) -> Value {
    json!({
        "name": name,
        "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
        "parameterValue": {"arrayValues": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()},
    })
}

/// A row (`{"f": [cells]}`) as a JSON object with the schema's field names, nested RECORD
/// cells and REPEATED lists decoded by their schema field. `path` names the row in errors.
pub fn decode_row(row: TableRow, fields: &[TableFieldSchema], path: &str) -> Result<Map<String, Value>, DecodeError> {
    if row.f.len() != fields.len() {
        return Err(DecodeError {
            path: format!("{path}.f"),
            reason: format!("{} cells for {} schema fields", row.f.len(), fields.len()),
        });
    }
    let mut object = Map::new();
    for (i, (cell, field)) in row.f.into_iter().zip(fields).enumerate() {
        let value = decode_cell(cell.v, field, &format!("{path}.f[{i}].v"))?;
        object.insert(field.name.clone(), value);
    }
    Ok(object)
}

/// A cell's `v` as plain JSON, following its schema field.
fn decode_cell(value: Value, field: &TableFieldSchema, path: &str) -> Result<Value, DecodeError> {
    if field.is_repeated() {
        let items: Vec<TableCell> = within(path, decode(value))?;
        return items
            .into_iter()
            .enumerate()
            .map(|(i, item)| decode_scalar(item.v, field, &format!("{path}[{i}].v")))
            .collect();
    }
    decode_scalar(value, field, path)
}

fn decode_scalar(value: Value, field: &TableFieldSchema, path: &str) -> Result<Value, DecodeError> {
    if value.is_null() || !field.is_record() {
        return Ok(value);
    }
    let row: TableRow = within(path, decode(value))?;
    decode_row(row, &field.fields, path).map(Value::Object)
}

/// A decode error inside a cell, with the cell's path before the part that did not fit.
fn within<T>(path: &str, result: Result<T, DecodeError>) -> Result<T, DecodeError> {
    result.map_err(|e| DecodeError {
        path: if e.path == "." {
            path.to_string()
        } else {
            format!("{path}.{}", e.path)
        },
        reason: e.reason,
    })
}

/// How long BigQuery may hold a `jobs.query` or `jobs.getQueryResults` call waiting for the
/// job (`timeoutMs`, default 10 s): at most 10 s and never past `deadline`, at least 1 ms.
fn server_wait_ms(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now()).as_millis();
    u64::try_from(left).unwrap_or(u64::MAX).clamp(1, 10_000)
}

/// The Analytics identifiers searched, for the subject's note.
fn searched(subject: &Identities) -> String {
    let mut parts = Vec::new();
    if !subject.ga_client_ids.is_empty() {
        parts.push(format!("client ids {}", subject.ga_client_ids.join(", ")));
    }
    if !subject.ga_user_ids.is_empty() {
        parts.push(format!("user ids {}", subject.ga_user_ids.join(", ")));
    }
    if parts.is_empty() {
        "no Analytics identifier was given".into()
    } else {
        parts.join("; ")
    }
}

/// The mail record: Gmail's metadata, the mailbox and the stored `.eml`.
#[derive(Serialize)]
struct MailRecord<'a> {
    #[serde(flatten)]
    meta: &'a MailMeta,
    mailbox: &'a str,
    file: &'a str,
    sha256: &'a str,
}

/// A contact as exported: the person as People returns it, and the mailbox it is in.
#[derive(Serialize)]
struct ContactRecord<'a> {
    #[serde(flatten)]
    person: &'a Person,
    mailbox: &'a str,
}

impl Google {
    /// Everything Google holds on the subject, streamed into `sink`, with the notes that say
    /// what could and could not be found.
    pub async fn export(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        let searched = searched(subject);
        let mut notes = Vec::new();
        // Her mail's headers and her contacts are found in every mailbox together, while the
        // Analytics events stream into the sink: the two need nothing from each other. Only
        // the events touch the sink meanwhile.
        let mailboxes: Vec<&str> = self.config.mailboxes().map(String::as_str).collect();
        // Made first, then run a few at a time (a closure inside the stream would not be
        // `Send` for every lifetime, as the connector trait needs).
        let searches: Vec<_> = mailboxes
            .iter()
            .map(|mailbox| async move {
                let hers = self
                    .candidate_mail(mailbox, subject)
                    .await?
                    .into_iter()
                    .filter(|m| m.hers);
                Ok::<_, ConnectorError>(hers.collect::<Vec<_>>())
            })
            .collect();
        let workspace = futures::future::try_join(
            futures::stream::iter(searches)
                .buffered(MAILBOXES_IN_FLIGHT)
                .try_collect::<Vec<_>>(),
            self.find_in_all(&[Book::Contacts, Book::OtherContacts], &mailboxes, subject),
        );
        let (events, (mail, books)) = futures::future::try_join(self.export_events(subject, sink), workspace).await?;
        let mail: Vec<(&str, Vec<FoundMail>)> = mailboxes.iter().copied().zip(mail).collect();
        let events = match events {
            Some(found) => {
                notes.push(format!(
                    "Google Analytics events from the BigQuery export ({searched})."
                ));
                found
            }
            None => {
                notes.push(format!(
                    "Google Analytics offers no export of one visitor's data, and no BigQuery export is configured: nothing could be retrieved ({searched})."
                ));
                0
            }
        };
        let mut found = events;
        found += self.export_mail(&mail, subject, sink).await?;
        for (book, mailbox, people) in books {
            found += export_book(book, &mailbox, people, subject, sink).await?;
        }
        if self.config.workspace.is_some() {
            notes.push(
                "Workspace mail is exported as .eml files, exactly as Gmail stores it, with attachments inside; mail in Spam and the Trash is included.".into(),
            );
            notes.push(
                "Other contacts are the addresses Gmail saved from mail the company's users exchanged with the subject.".into(),
            );
        }
        Ok(AccessSummary {
            found,
            notes,
            ..Default::default()
        })
    }

    /// Exports the subject's events; returns how many, or `None` when no export is configured.
    async fn export_events(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some((project, dataset)) = self.config.bigquery_export()? else {
            return Ok(None);
        };
        if subject.ga_client_ids.is_empty() && subject.ga_user_ids.is_empty() {
            return Ok(Some(0));
        }
        let base = self.config.bigquery_url.trim_end_matches('/');
        let role = format!(
            "grant {} the BigQuery Job User role on project {project} and Data Viewer on dataset {dataset}",
            self.tokens.account().email
        );
        // The whole wait, the calls' own waits included, is `bigquery_wait` (at most a day, so
        // the deadline is always representable).
        let budget = self.config.bigquery_wait;
        let deadline = Instant::now() + budget;
        let body = json!({
            "query": events_query(&project, &dataset),
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [string_array("client_ids", &subject.ga_client_ids), string_array("user_ids", &subject.ga_user_ids)],
            "timeoutMs": server_wait_ms(deadline),
            "maxResults": 500,
        });
        let url = format!("{base}/projects/{}/queries", path_segment(PROCESSOR, &project)?);
        let mut answer: QueryResponse = self
            .bigquery
            .json(&project, |http| http.post(&url).json(&body))
            .await
            .map_err(|e| e.explain_forbidden(&role))?;
        let job = answer.job_reference.job_id.clone();
        let location = answer.job_reference.location.clone().unwrap_or_default();
        // Which call answered the rows being read, for errors.
        let mut endpoint = "jobs.query";
        let mut page_token: Option<String> = None;
        let mut count = 0u64;
        let mut polls = 0u32;
        let mut pages = PageGuard::new(PROCESSOR, "jobs.getQueryResults", MAX_ROW_PAGES);
        loop {
            if answer.job_complete {
                let fields = answer.schema.take().unwrap_or_default().fields;
                let rows = std::mem::take(&mut answer.rows);
                let on_page = rows.len();
                for (i, row) in rows.into_iter().enumerate() {
                    let event = decode_row(row, &fields, &format!("rows[{i}]"))
                        .map_err(|e| ConnectorError::unexpected_shape(PROCESSOR, endpoint, &e))?;
                    let data = Value::Object(event);
                    let claims = [
                        subject.claims_at(&data, IdentityKind::GaClientId, &["/user_pseudo_id".into()]),
                        subject.claims_at(&data, IdentityKind::GaUserId, &["/user_id".into()]),
                    ]
                    .concat();
                    sink.accept(Record {
                        category: "analytics_events".into(),
                        claims,
                        id: None,
                        // Observed activity counts as data the subject provided for portability
                        // (WP29 guidelines on data portability, WP 242 rev.01, 2.2).
                        provided_by_subject: true,
                        data,
                    })
                    .await?;
                    count += 1;
                }
                page_token = pages.next(on_page, answer.page_token.take())?;
                if page_token.is_none() {
                    return Ok(Some(count));
                }
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnectorError::RetryLater {
                        processor: PROCESSOR,
                        status: None,
                        code: "bigquery_timeout".into(),
                        message: format!(
                            "BigQuery job {job} did not finish within {} s (processors.google.bigquery_wait)",
                            budget.as_secs()
                        ),
                        after: Some(Duration::from_secs(60)),
                        said: None,
                    });
                }
                polls += 1;
                // getQueryResults itself waits up to `timeoutMs` for the job on BigQuery's
                // side, so the next two looks go at once; a server that answered early is
                // then asked after 100 ms, then once a second; never past the budget.
                let pause = Duration::from_millis(match polls {
                    1 | 2 => 0,
                    3 => 100,
                    _ => 1000,
                });
                tokio::time::sleep(pause.min(left)).await;
            }
            let timeout_ms = server_wait_ms(deadline).to_string();
            let mut query = vec![
                ("location", location.as_str()),
                ("maxResults", "500"),
                ("timeoutMs", timeout_ms.as_str()),
            ];
            query.extend(page_token.as_deref().map(|t| ("pageToken", t)));
            let url = format!(
                "{base}/projects/{}/queries/{}",
                path_segment(PROCESSOR, &project)?,
                path_segment(PROCESSOR, &job)?
            );
            endpoint = "jobs.getQueryResults";
            answer = self
                .bigquery
                .json(&project, |http| http.get(&url).query(&query))
                .await
                .map_err(|e| e.explain_forbidden(&role))?;
        }
    }

    /// The message exactly as Gmail stores it (`format=raw`), once, for the bundle. Gmail
    /// sends it base64url in JSON, not as a stream, so the answer is read whole, up to
    /// [`RAW_MESSAGE_LIMIT`].
    async fn raw_mail(&self, mailbox: &str, id: &str) -> Result<Option<Vec<u8>>, ConnectorError> {
        let url = self.messages_url(mailbox, Some(id))?;
        let read = self
            .gmail(mailbox)
            .with_body_limit(RAW_MESSAGE_LIMIT)
            .json::<RawMessage>(mailbox, |http| http.get(&url).query(&[("format", "raw")]))
            .await;
        let message = match read {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let encoded = message.raw.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| {
                ConnectorError::retry_later(
                    PROCESSOR,
                    "invalid_response",
                    format!("Gmail returned a raw message that is not base64url: {e}"),
                )
            })?;
        Ok(Some(raw))
    }

    /// Exports each of the subject's messages (`mail`, by mailbox) as an `.eml` file and a
    /// record that points at it; returns how many. Up to [`DOWNLOADS_IN_FLIGHT`] downloads
    /// overlap, taken in the search's order; each message is stored and let go.
    async fn export_mail(
        &self,
        mail: &[(&str, Vec<FoundMail>)],
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<u64, ConnectorError> {
        let mut count = 0;
        // Every download is made inside these futures (none runs before it is polled), none in
        // the loop below: the loop awaits only the sink, so no download waits for a place at
        // Gmail held by the loop.
        let mut pending = Vec::new();
        for (mailbox, found) in mail {
            for mail in found {
                pending.push(async move {
                    let raw = self.raw_mail(mailbox, &mail.id).await?;
                    Ok::<_, ConnectorError>((*mailbox, mail, raw))
                });
            }
        }
        let mut downloads = futures::stream::iter(pending).buffered(DOWNLOADS_IN_FLIGHT);
        while let Some((mailbox, mail, raw)) = downloads.try_next().await? {
            let Some(raw) = raw else {
                continue;
            };
            let body = futures::stream::once(async move { Ok(bytes::Bytes::from(raw)) });
            let meta = FileMeta {
                folder: MAIL.into(),
                name: format!("{}.eml", mail.id),
                media_type: "message/rfc822".into(),
            };
            let stored = sink.attach(meta, Box::pin(body)).await?;
            let data = json!(MailRecord {
                meta: &mail.meta,
                mailbox,
                file: &stored.path,
                sha256: &stored.sha256,
            });
            sink.accept(Record {
                category: MAIL.into(),
                claims: mail.meta.claims(subject),
                id: Some(mail.id.clone()),
                provided_by_subject: mail.from_subject,
                data,
            })
            .await?;
            count += 1;
        }
        Ok(count)
    }
}

/// Exports the subject's entries found in one address book of `mailbox`; returns how many.
async fn export_book(
    book: Book,
    mailbox: &str,
    people: Vec<Person>,
    subject: &Identities,
    sink: &mut dyn RecordSink,
) -> Result<u64, ConnectorError> {
    let mut count = 0;
    for person in people {
        let data = json!(ContactRecord {
            person: &person,
            mailbox,
        });
        sink.accept(Record {
            category: book.category().into(),
            claims: person_claims(&person, subject),
            id: Some(person.resource_name),
            provided_by_subject: false,
            data,
        })
        .await?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: Value) -> Vec<TableFieldSchema> {
        decode(fields).unwrap()
    }

    #[test]
    fn nested_and_repeated_cells_decode_by_schema() {
        let fields = schema(json!([
            {"name": "event_name", "type": "STRING", "mode": "NULLABLE"},
            {"name": "event_params", "type": "RECORD", "mode": "REPEATED", "fields": [
                {"name": "key", "type": "STRING", "mode": "NULLABLE"}]},
            {"name": "geo", "type": "RECORD", "mode": "NULLABLE", "fields": [
                {"name": "city", "type": "STRING", "mode": "NULLABLE"}]},
            {"name": "user_id", "type": "STRING"},
        ]));
        let row: TableRow = decode(
            json!({"f": [{"v": "page_view"}, {"v": [{"v": {"f": [{"v": "page_location"}]}}]},
            {"v": {"f": [{"v": "Oslo"}]}}, {"v": null}]}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(decode_row(row, &fields, "rows[0]").unwrap()),
            json!({"event_name": "page_view", "event_params": [{"key": "page_location"}], "geo": {"city": "Oslo"}, "user_id": null})
        );
    }

    #[test]
    fn a_cell_that_does_not_fit_its_schema_is_named() {
        let fields = schema(json!([
            {"name": "event_name", "type": "STRING"},
            {"name": "geo", "type": "RECORD", "fields": [{"name": "city", "type": "STRING"}]},
        ]));
        let row: TableRow = decode(json!({"f": [{"v": "page_view"}, {"v": {"cells": [{"v": "Oslo"}]}}]})).unwrap();
        let err = decode_row(row, &fields, "rows[3]").unwrap_err();
        assert_eq!(err.path, "rows[3].f[1].v");
        assert!(err.reason.contains("missing field `f`"), "{err:?}");
        let row: TableRow = decode(json!({"f": [{"v": "page_view"}]})).unwrap();
        let err = decode_row(row, &fields, "rows[0]").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.reason.as_str()),
            ("rows[0].f", "1 cells for 2 schema fields")
        );
    }
}
