//! Turns command-line flags into a validated request, before anything is written.

use chrono::Utc;
use dsr_connector::{Email, FieldChange, Identities, Phone, Processor, RectifyField};
use dsr_jobs::model::{Lang, NewRequest, RequestKind};

use crate::cli::RequestArgs;
use crate::config::{Config, OperatorVerification};
use crate::error::{CliError, bad_input};

pub fn build_request(args: &RequestArgs, config: &Config, configured: &[Processor]) -> Result<NewRequest, CliError> {
    let kind: RequestKind = args.kind.parse().map_err(bad_input)?;
    let region = &config.controller.default_phone_region;
    let mut identities = Identities {
        // Vendors' nationally written numbers are read in the controller's region.
        phone_region: Some(region.to_string()),
        ..Default::default()
    };
    for raw in &args.email {
        identities.add_email(Email::parse(raw).map_err(|e| bad_input(e.to_string()))?);
    }
    for raw in &args.phone {
        identities.add_phone(Phone::parse(raw, region).map_err(|e| bad_input(e.to_string()))?);
    }
    for (flag, values, target) in [
        ("--name", &args.name, &mut identities.names),
        ("--ga-client-id", &args.ga_client_id, &mut identities.ga_client_ids),
        ("--ga-user-id", &args.ga_user_id, &mut identities.ga_user_ids),
    ] {
        for v in values {
            let v = v.trim();
            if v.is_empty() {
                return Err(bad_input(format!("{flag} may not be empty")));
            }
            if !target.iter().any(|t| t == v) {
                target.push(v.to_string());
            }
        }
    }
    if !identities.has_matchable() {
        return Err(bad_input(
            "no identity to search for: give --email, --phone, --ga-client-id or --ga-user-id (a --name alone matches nothing)",
        ));
    }

    let changes = parse_changes(&args.set, region)?;
    match (kind, changes.is_empty()) {
        (RequestKind::Rectification, true) => {
            return Err(bad_input("a rectification needs at least one --set field=value"));
        }
        (k, false) if k != RequestKind::Rectification => {
            return Err(bad_input(format!("--set applies only to rectification, not {k}")));
        }
        _ => {}
    }
    if changes.iter().any(|c| c.field == RectifyField::Email) && identities.emails.is_empty() {
        return Err(bad_input(
            "--set email=… replaces the address given with --email: give the old one with --email",
        ));
    }
    if args.dry_run && !kind.changes_data() {
        return Err(bad_input(format!(
            "--dry-run applies to requests that change data, not {kind}"
        )));
    }

    let verified_by = match args.verified_by.as_deref().map(str::trim) {
        Some("") => {
            return Err(bad_input(
                "--verified-by may not be empty: say how the subject's identity was checked",
            ));
        }
        Some(text) if text.chars().count() > 500 => {
            return Err(bad_input(
                "--verified-by is at most 500 characters: say briefly how identity was checked",
            ));
        }
        Some(text) => Some(text.to_string()),
        None => None,
    };
    if verified_by.is_none()
        && needs_verification(kind)
        && config.subject.operator_verification == OperatorVerification::Required
    {
        return Err(bad_input(format!(
            "say how the subject's identity was checked before a {kind} (Art. 12(6)): \
             --verified-by \"ID card at the counter\" (in the API, \"verified_by\"); \
             or set [subject] operator_verification = \"optional\""
        )));
    }

    let lang: Lang = match args.lang.as_deref() {
        Some(text) => text.parse().map_err(bad_input)?,
        None => config.controller.default_language,
    };

    let mut processors = Vec::new();
    for name in &args.processor {
        // Looked up, not added: the API's create passes names from outside.
        let p = Processor::known(name).map_err(|e| bad_input(e.to_string()))?;
        if !configured.contains(&p) {
            return Err(bad_input(format!(
                "processor {p} is not configured: enable [processors.{p}] in the config"
            )));
        }
        if !processors.contains(&p) {
            processors.push(p);
        }
    }
    if processors.is_empty() {
        processors = configured.to_vec();
    }
    if processors.is_empty() {
        return Err(bad_input(
            "no processor is configured: enable at least one [processors.NAME] section (google, microsoft365, superoffice, wix)",
        ));
    }

    Ok(NewRequest {
        kind,
        identities,
        changes,
        lang,
        dry_run: args.dry_run,
        processors,
        received_at: Utc::now(),
        verified_by,
        verified_at: None,
    })
}

/// Kinds that hand data over or remove it: handing it to, or erasing it for, the wrong person
/// cannot be undone.
pub fn needs_verification(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Access | RequestKind::Portability | RequestKind::Erasure
    )
}

fn parse_changes(sets: &[String], region: &str) -> Result<Vec<FieldChange>, CliError> {
    let mut changes: Vec<FieldChange> = Vec::new();
    for raw in sets {
        let (field, value) = raw
            .split_once('=')
            .ok_or_else(|| bad_input(format!("--set `{raw}` must be field=value")))?;
        let field: RectifyField = field.trim().parse().map_err(bad_input)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(bad_input(format!("--set {field}= needs a value")));
        }
        let value = match field {
            RectifyField::Email => Email::parse(value)
                .map_err(|e| bad_input(e.to_string()))?
                .as_str()
                .to_string(),
            RectifyField::Phone => Phone::parse(value, region)
                .map_err(|e| bad_input(e.to_string()))?
                .as_str()
                .to_string(),
            _ => value.to_string(),
        };
        if changes.iter().any(|c| c.field == field) {
            return Err(bad_input(format!("--set {field} is given twice")));
        }
        changes.push(FieldChange { field, value });
    }
    Ok(changes)
}
