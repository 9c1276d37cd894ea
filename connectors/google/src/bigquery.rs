//! The subject's GA4 events from the BigQuery export (Art. 15): one parameterised query over
//! the export's `events_*` tables, polled until done and read page by page.

use std::time::Duration;

use dsr_connector::{ConnectorError, DecodeError, Identities, IdentityKind, Record, RecordSink, decode};
use serde_json::{Map, Value, json};

use crate::Google;
use crate::client::{PROCESSOR, needs_role};
use crate::wire::{QueryResponse, TableCell, TableFieldSchema, TableRow};

/// Checks `project.dataset` so it can be placed in SQL and a URL path: only the characters
/// Google allows in project ids (a domain-scoped one, `example.com:project`, included) and
/// dataset names, nothing that could end the quoted table name.
/// https://cloud.google.com/resource-manager/docs/creating-managing-projects (project ids)
pub fn parse_dataset(value: &str) -> Result<(String, String), ConnectorError> {
    let bad = || ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "config".into(),
        message: format!(
            "processors.google.bigquery_dataset `{value}` must be `project.dataset` or `domain:project.dataset` \
             (letters, digits, - in the project, _ in the dataset)"
        ),
    };
    // Dataset names hold no dot; a domain-scoped project id does.
    let (project, dataset) = value.rsplit_once('.').ok_or_else(bad)?;
    let (domain, name) = match project.split_once(':') {
        Some((domain, name)) => (Some(domain), name),
        None => (None, project),
    };
    let domain_ok = domain.is_none_or(|d| {
        !d.is_empty()
            && d.contains('.')
            && d.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    let name_ok = !name.is_empty()
        && name.len() <= 30
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let dataset_ok =
        !dataset.is_empty() && dataset.len() <= 1024 && dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if domain_ok && name_ok && dataset_ok {
        Ok((project.to_string(), dataset.to_string()))
    } else {
        Err(bad())
    }
}

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

impl Google {
    /// Exports the subject's events; returns how many, or `None` when no export is configured.
    pub async fn export_events(
        &self,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some(dataset) = &self.config.bigquery_dataset else {
            return Ok(None);
        };
        if subject.ga_client_ids.is_empty() && subject.ga_user_ids.is_empty() {
            return Ok(Some(0));
        }
        let (project, dataset) = parse_dataset(dataset)?;
        let base = self.config.bigquery_url.trim_end_matches('/');
        let role = format!(
            "grant {} the BigQuery Job User role on project {project} and Data Viewer on dataset {dataset}",
            self.tokens.account().email
        );
        let query = events_query(&project, &dataset);
        let body = json!({
            "query": query,
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [string_array("client_ids", &subject.ga_client_ids), string_array("user_ids", &subject.ga_user_ids)],
            "timeoutMs": 10000,
            "maxResults": 500,
        });
        let url = format!("{base}/projects/{project}/queries");
        let mut answer: QueryResponse = self
            .bigquery
            .json(&project, |http| http.post(&url).json(&body))
            .await
            .map_err(|e| needs_role(e, &role))?;
        let job = answer.job_reference.job_id.clone();
        let location = answer.job_reference.location.clone().unwrap_or_default();
        // Which call answered the rows being read, for errors.
        let mut endpoint = "jobs.query";
        let mut page_token: Option<String> = None;
        let mut count = 0u64;
        let mut polls = 0u32;
        loop {
            if answer.job_complete {
                let fields = answer.schema.take().unwrap_or_default().fields;
                for (i, row) in std::mem::take(&mut answer.rows).into_iter().enumerate() {
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
                page_token = answer.page_token.take();
                if page_token.is_none() {
                    return Ok(Some(count));
                }
            } else {
                polls += 1;
                if polls > 120 {
                    return Err(ConnectorError::RetryLater {
                        processor: PROCESSOR,
                        code: "bigquery_timeout".into(),
                        message: format!("BigQuery job {job} did not finish within the polling window"),
                        after: Some(Duration::from_secs(60)),
                    });
                }
                tokio::time::sleep(Duration::from_millis(if polls < 3 { 100 } else { 1000 })).await;
            }
            let mut query: Vec<(&str, String)> = vec![
                ("location", location.clone()),
                ("maxResults", "500".into()),
                ("timeoutMs", "10000".into()),
            ];
            if let Some(token) = &page_token {
                query.push(("pageToken", token.clone()));
            }
            let url = format!("{base}/projects/{project}/queries/{job}");
            endpoint = "jobs.getQueryResults";
            answer = self
                .bigquery
                .json(&project, |http| http.get(&url).query(&query))
                .await
                .map_err(|e| needs_role(e, &role))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_checked_before_they_reach_sql() {
        assert_eq!(
            parse_dataset("racom-analytics.analytics_351234567").unwrap().1,
            "analytics_351234567"
        );
        assert_eq!(
            parse_dataset("example.com:racom-analytics.analytics_351234567").unwrap(),
            (
                "example.com:racom-analytics".to_string(),
                "analytics_351234567".to_string()
            ),
            "a domain-scoped project id"
        );
        for bad in [
            "nodot",
            "p.d`; DROP TABLE x; --",
            "P.d",
            "p.",
            ".d",
            "p.d.e",
            ":p.d",
            "example:p.d",
            "ex`ample.com:p.d",
            "example.com:.d",
        ] {
            assert!(parse_dataset(bad).is_err(), "{bad}");
        }
    }

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
