//! The subject's GA4 events from the BigQuery export (Art. 15): one parameterised query over
//! the export's `events_*` tables, polled until done and read page by page.

use std::time::Duration;

use dsr_connector::{ConnectorError, Identities, Record, RecordSink};
use serde_json::{Map, Value, json};

use crate::Google;
use crate::client::{PROCESSOR, needs_role};

/// Checks `project.dataset` so it can be placed in SQL: only the characters Google allows
/// in project ids and dataset names, nothing that could end the quoted table name.
pub fn parse_dataset(value: &str) -> Result<(String, String), ConnectorError> {
    let bad = || ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "config".into(),
        message: format!(
            "processors.google.bigquery_dataset `{value}` must be `project.dataset` (letters, digits, - in the project, _ in the dataset)"
        ),
    };
    let (project, dataset) = value.split_once('.').ok_or_else(bad)?;
    let project_ok = !project.is_empty()
        && project.len() <= 30
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let dataset_ok =
        !dataset.is_empty() && dataset.len() <= 1024 && dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if project_ok && dataset_ok {
        Ok((project.to_string(), dataset.to_string()))
    } else {
        Err(bad())
    }
}

fn string_array(name: &str, values: &[String]) -> Value {
    json!({
        "name": name,
        "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
        "parameterValue": {"arrayValues": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()},
    })
}

/// A BigQuery cell (`{"v": …}`) as plain JSON, following the schema field.
fn decode(value: &Value, field: &Value) -> Value {
    if field["mode"] == "REPEATED" {
        return Value::Array(
            value
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| decode_scalar(&item["v"], field))
                .collect(),
        );
    }
    decode_scalar(value, field)
}

fn decode_scalar(value: &Value, field: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if field["type"] == "RECORD" || field["type"] == "STRUCT" {
        return decode_row(value, &field["fields"]);
    }
    value.clone()
}

/// A row (`{"f": [cells]}`) as a JSON object with the schema's field names.
pub fn decode_row(row: &Value, fields: &Value) -> Value {
    let mut object = Map::new();
    for (cell, field) in row["f"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(fields.as_array().into_iter().flatten())
    {
        let name = field["name"].as_str().unwrap_or_default().to_string();
        object.insert(name, decode(&cell["v"], field));
    }
    Value::Object(object)
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
        // Identifiers travel as parameters, never in the SQL text.
        let query = format!(
            "SELECT * FROM `{project}.{dataset}.events_*` \
             WHERE user_pseudo_id IN UNNEST(@client_ids) OR user_id IN UNNEST(@user_ids) \
             ORDER BY event_timestamp"
        );
        let body = json!({
            "query": query,
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [string_array("client_ids", &subject.ga_client_ids), string_array("user_ids", &subject.ga_user_ids)],
            "timeoutMs": 10000,
            "maxResults": 500,
        });
        let url = format!("{base}/projects/{project}/queries");
        let mut answer: Value = self
            .bigquery
            .json(&project, |http| http.post(&url).json(&body))
            .await
            .map_err(|e| needs_role(e, &role))?;
        let job = answer["jobReference"]["jobId"].as_str().unwrap_or_default().to_string();
        let location = answer["jobReference"]["location"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut page_token: Option<String> = None;
        let mut count = 0u64;
        let mut polls = 0u32;
        loop {
            if answer["jobComplete"] == json!(true) {
                let fields = answer["schema"]["fields"].clone();
                for row in answer["rows"].as_array().into_iter().flatten() {
                    let event = decode_row(row, &fields);
                    sink.accept(Record {
                        category: "analytics_events".into(),
                        id: None,
                        // Observed activity counts as data the subject provided for portability
                        // (WP29 guidelines on data portability, WP 242 rev.01, 2.2).
                        provided_by_subject: true,
                        data: event,
                    })
                    .await?;
                    count += 1;
                }
                page_token = answer["pageToken"].as_str().map(String::from);
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
        for bad in ["nodot", "p.d`; DROP TABLE x; --", "P.d", "p.", ".d", "p.d.e"] {
            assert!(parse_dataset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nested_and_repeated_cells_decode_by_schema() {
        let fields = json!([
            {"name": "event_name", "type": "STRING", "mode": "NULLABLE"},
            {"name": "event_params", "type": "RECORD", "mode": "REPEATED", "fields": [
                {"name": "key", "type": "STRING", "mode": "NULLABLE"}]},
            {"name": "geo", "type": "RECORD", "mode": "NULLABLE", "fields": [
                {"name": "city", "type": "STRING", "mode": "NULLABLE"}]},
        ]);
        let row = json!({"f": [{"v": "page_view"}, {"v": [{"v": {"f": [{"v": "page_location"}]}}]}, {"v": {"f": [{"v": "Oslo"}]}}]});
        assert_eq!(
            decode_row(&row, &fields),
            json!({"event_name": "page_view", "event_params": [{"key": "page_location"}], "geo": {"city": "Oslo"}})
        );
    }
}
