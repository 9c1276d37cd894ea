//! `dsr resend` and `dsr delivery`: the e-mailed links that hand a finished request to its
//! subject — a fresh one sent (the old one stops working), and what happened to each.

use std::process::ExitCode;

use serde_json::json;

use crate::commands::plans::default_operator;
use crate::config::Config;
use crate::error::{CliError, bad_input};
use crate::subject::delivery::{Deliverer, DeliveryError};

pub async fn resend(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let engine = crate::wiring::engine(config).await?;
    let deliverer = Deliverer::configured(&engine, config)?.ok_or_else(|| {
        bad_input(
            "nothing is e-mailed here: set [smtp], [subject] public_url and [delivery] enabled = true \
             (docs/subject.md)",
        )
    })?;
    engine.ledger().get_request(id).await?;
    let by = format!("operator:{}", default_operator());
    let delivery = deliverer.send_link(id, Some(&by), 0).await.map_err(|e| match e {
        DeliveryError::NotDeliverable { .. } => bad_input(e.to_string()),
        DeliveryError::Mail(mail) => CliError::Unreachable(format!(
            "{mail}; the link was withdrawn and a worker tries again (see `dsr delivery {id}`)"
        )),
        other => CliError::Failed(anyhow::anyhow!(other.to_string())),
    })?;
    if as_json {
        println!(
            "{}",
            json!({"request_id": id, "delivery": delivery.id, "expires_at": dsr_jobs::ledger::ts(delivery.expires_at),
                   "max_downloads": delivery.max_downloads})
        );
    } else {
        println!(
            "sent a new link for {id} (delivery {}), working until {} for {} downloads; earlier links no longer work",
            delivery.id,
            delivery
                .expires_at
                .with_timezone(&config.zone())
                .format("%Y-%m-%d %H:%M %Z"),
            delivery.max_downloads
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    ledger.get_request(id).await?;
    let now = ledger.now();
    let deliveries = ledger.deliveries(id).await?;
    let events: Vec<_> = ledger
        .audit_events(id)
        .await?
        .into_iter()
        .filter(|e| e.event.starts_with("delivery."))
        .collect();
    let state = |d: &dsr_jobs::ledger::subject::Delivery| match d.refusal(now) {
        Some(why) => why.as_str(),
        None => "active",
    };
    if as_json {
        let links: Vec<_> = deliveries
            .iter()
            .map(|d| {
                json!({"delivery": d.id, "state": state(d), "created_at": dsr_jobs::ledger::ts(d.created_at),
                       "expires_at": dsr_jobs::ledger::ts(d.expires_at), "downloads": d.downloads,
                       "max_downloads": d.max_downloads, "code_tries": d.code_tries})
            })
            .collect();
        let events: Vec<_> = events
            .iter()
            .map(|e| json!({"at": dsr_jobs::ledger::ts(e.at), "event": e.event, "detail": e.detail}))
            .collect();
        println!("{}", json!({"request_id": id, "links": links, "events": events}));
        return Ok(ExitCode::SUCCESS);
    }
    if deliveries.is_empty() {
        println!("no link was sent for {id}");
    }
    let zone = config.zone();
    let at = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    for d in &deliveries {
        println!(
            "link {}  {:<8}  sent {}  until {}  downloads {}/{}",
            d.id,
            state(d),
            at(d.created_at),
            at(d.expires_at),
            d.downloads,
            d.max_downloads
        );
    }
    for e in &events {
        println!("  {}  {}", at(e.at), e.event);
    }
    Ok(ExitCode::SUCCESS)
}
