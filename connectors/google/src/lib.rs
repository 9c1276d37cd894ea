//! The Google connector, part 1: Google Analytics (the website statistics the privacy notice
//! describes). Deletion through the Analytics user deletion APIs; access through the GA4
//! BigQuery export when the company has one, since Analytics itself exports nothing per user.
//! A service account signs its own token requests (JWT bearer).
//!
//! Changes are planned, then executed item by item (`dsr_connector::plan`): an erasure is one
//! `analytics_user` deletion request per identifier and property, then, with Workspace, one
//! item per Gmail message (`mail`) and per contact (`contacts`); other contacts, which the API
//! cannot delete, are listed as retained. A rectification patches contacts; an objection is the
//! Analytics deletion, the only opt-out Analytics offers. Each item's `target` is a [`Call`].
//!
//! Read in order: `config` → `auth` → `client` → `wire` (Google's JSON) → `analytics` (erasure)
//! → `bigquery` (access) → `gmail` and `people` (Workspace).

pub mod analytics;
pub mod auth;
pub mod bigquery;
pub mod client;
pub mod config;
pub mod gmail;
pub mod people;
pub mod wire;

use std::time::Duration;

use dsr_connector::http::{Limits, RateLimiter, VendorClient};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, Connector, ConnectorError, Identities, ItemOutcome, Plan,
    PlanItem, Processor, RecordSink, Retained, Support, TaskContext,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub use config::GoogleConfig;

use crate::auth::{ServiceAccount, Tokens};
use crate::client::{PROCESSOR, describe_error, needs_role};
use crate::config::DeleteMode;

const SCOPE_DELETION: &str = "https://www.googleapis.com/auth/analytics.user.deletion";
const SCOPE_EDIT: &str = "https://www.googleapis.com/auth/analytics.edit";
const SCOPE_BIGQUERY: &str = "https://www.googleapis.com/auth/bigquery";

const NO_RECTIFICATION: &str = "Google Analytics holds a record of visits keyed by pseudonymous ids; it offers no way to correct it (erasure is available).";
const NO_CONSENT: &str = "Analytics has no consent to withdraw or opt-out to set for a past visitor: the only objection it offers is deleting the data kept under the visitor's identifiers, which was done.";
const NO_CONSENT_IN_WORKSPACE: &str =
    "Workspace mail and contacts hold no consent or marketing subscription: nothing to withdraw there.";

/// The one call a plan item stands for: its `target`, as `execute` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call")]
pub enum Call {
    /// Analytics user deletion: the v3 upsert (`CLIENT_ID`, `USER_ID`) or the Admin API's
    /// `submitUserDeletion` (`userProvidedData`).
    #[serde(rename = "userDeletion")]
    UserDeletion {
        property: String,
        id_type: String,
        value: String,
    },
    #[serde(rename = "messages.delete")]
    DeleteMessage { mailbox: String, id: String },
    #[serde(rename = "messages.trash")]
    TrashMessage { mailbox: String, id: String },
    #[serde(rename = "people.deleteContact", rename_all = "camelCase")]
    DeleteContact { mailbox: String, resource_name: String },
    /// The body carries the etag and sources the contact was read with.
    #[serde(rename = "people.updateContact", rename_all = "camelCase")]
    UpdateContact {
        mailbox: String,
        resource_name: String,
        update_person_fields: Vec<String>,
        body: Value,
    },
}

/// Done, or gone already (404).
fn removed(done: bool, receipt: Value) -> ItemOutcome {
    if done {
        ItemOutcome::Done(receipt)
    } else {
        ItemOutcome::AlreadyGone
    }
}

pub struct Google {
    config: GoogleConfig,
    tokens: Tokens,
    http: reqwest::Client,
    /// v3 user deletion (scope analytics.user.deletion).
    deletion: VendorClient,
    /// Admin API (scope analytics.edit).
    admin: VendorClient,
    bigquery: VendorClient,
}

impl Google {
    pub fn new(config: GoogleConfig) -> Result<Google, ConnectorError> {
        let config_error = |message: String| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message,
        };
        let key = config
            .service_account_key
            .resolve()
            .map_err(|e| config_error(format!("processors.google.service_account_key: {e}")))?;
        let account = ServiceAccount::from_json(key.expose_secret())?;
        if let Some(dataset) = &config.bigquery_dataset {
            bigquery::parse_dataset(dataset)?;
        }
        if let Some(bad) = config
            .ga4_property_ids
            .iter()
            .find(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(config_error(format!(
                "processors.google.ga4_property_ids: `{bad}` is not a numeric GA4 property id"
            )));
        }
        let http =
            dsr_connector::http::http_client(Duration::from_secs(60)).map_err(|e| config_error(e.to_string()))?;
        let tokens = Tokens::new(account, &config.token_url, http.clone());
        // Deletion quota: 1.5 requests per second per property.
        let pace = Arc::new(RateLimiter::new(Limits {
            requests: 3,
            per: Duration::from_secs(2),
            concurrent: 1,
        }));
        let client = |scope: &str| {
            VendorClient::new(PROCESSOR, http.clone(), describe_error).with_tokens(tokens.cache(&[scope], None))
        };
        let deletion = client(SCOPE_DELETION).with_limiter(pace.clone());
        let admin = client(SCOPE_EDIT).with_limiter(pace);
        let bigquery = client(SCOPE_BIGQUERY);
        Ok(Google {
            config,
            tokens,
            http,
            deletion,
            admin,
            bigquery,
        })
    }

    /// A client with a token for `scopes`, acting as `subject_user` when given.
    fn client_for(&self, scopes: &[&str], subject_user: Option<&str>) -> VendorClient {
        VendorClient::new(PROCESSOR, self.http.clone(), describe_error)
            .with_tokens(self.tokens.cache(scopes, subject_user))
    }

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
}

#[async_trait::async_trait]
impl Connector for Google {
    fn processor(&self) -> Processor {
        Processor::Google
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            access: Support::Supported,
            erasure: Support::Supported,
            rectification: if self.config.workspace.is_some() {
                Support::Supported
            } else {
                Support::NotApplicable(NO_RECTIFICATION.into())
            },
            objection: Support::Supported,
        }
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        let mut details = vec![format!("service account {}", self.tokens.account().email)];
        for property in &self.config.ga4_property_ids {
            let url = format!(
                "{}/properties/{property}",
                self.config.analytics_admin_url.trim_end_matches('/')
            );
            let role = format!(
                "grant {} the Editor role on GA4 property {property} (Admin > Property access management)",
                self.tokens.account().email
            );
            self.admin
                .json::<wire::Property>(property, |http| http.get(&url))
                .await
                .map_err(|e| needs_role(e, &role))?;
            details.push(format!("property {property} reachable"));
        }
        if self.config.ga4_property_ids.is_empty() {
            return Ok(CheckReport {
                ok: false,
                details: vec!["no GA4 property configured (ga4_property_ids)".into()],
            });
        }
        // Domain-wide delegation: one cheap read of each mailbox's mail and contacts.
        let nobody = Identities::default();
        for mailbox in self.config.workspace.iter().flat_map(|w| &w.mailboxes) {
            self.probe_mailbox(mailbox).await?;
            self.find_contacts(mailbox, &nobody).await?;
            self.find_other_contacts(mailbox, &nobody).await?;
            details.push(format!("mail, contacts and other contacts of {mailbox} readable"));
        }
        Ok(CheckReport { ok: true, details })
    }

    async fn access(
        &self,
        _ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        let searched = Self::searched(subject);
        let mut notes = Vec::new();
        let events = match self.export_events(subject, sink).await? {
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
        let mail = self.export_mail(subject, sink).await?;
        let contacts = self.export_book(people::Book::Contacts, subject, sink).await?;
        let other_contacts = self.export_book(people::Book::OtherContacts, subject, sink).await?;
        if self.config.workspace.is_some() {
            notes.push(
                "Workspace mail is exported as .eml files, exactly as Gmail stores it, with attachments inside; mail in Spam and the Trash is included.".into(),
            );
            notes.push(
                "Other contacts are the addresses Gmail saved from mail the company's users exchanged with the subject.".into(),
            );
        }
        Ok(AccessSummary {
            found: events + mail + contacts + other_contacts,
            notes,
            ..Default::default()
        })
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        match change {
            Change::Erasure => {
                let (mut items, mut notes) = self.plan_user_deletion(subject);
                let mut plan = Plan::default();
                if self.config.workspace.is_some() {
                    let (mail, mail_notes) = self.plan_mail(subject).await?;
                    items.extend(mail);
                    notes.extend(mail_notes);
                    items.extend(self.plan_contact_deletion(subject).await?);
                    // Found and kept: the API cannot delete them; the owners must, by hand.
                    let other = self.count_other_contacts(subject).await?;
                    let kept: u64 = other.iter().map(|(_, n)| n).sum();
                    if kept > 0 {
                        let mailboxes: Vec<&str> = other.iter().map(|(m, _)| m.as_str()).collect();
                        plan.retained.push(Retained {
                            category: people::Book::OtherContacts.category().into(),
                            count: kept,
                            reason: format!("{} Mailboxes: {}.", people::OTHER_CONTACTS_KEPT, mailboxes.join(", ")),
                            legal_basis:
                                "not retained by choice: Google's API offers no deletion; awaiting manual removal"
                                    .into(),
                        });
                    }
                }
                plan.items = items;
                plan.notes = notes;
                Ok(plan)
            }
            Change::Rectification { changes } => {
                let (items, mut notes) = self.plan_rectification(subject, changes).await?;
                notes.push(NO_RECTIFICATION.into());
                Ok(Plan {
                    items,
                    notes,
                    ..Default::default()
                })
            }
            Change::Objection => {
                let (items, mut notes) = self.plan_user_deletion(subject);
                notes.insert(0, NO_CONSENT.into());
                if self.config.workspace.is_some() {
                    notes.push(NO_CONSENT_IN_WORKSPACE.into());
                }
                Ok(Plan {
                    items,
                    notes,
                    ..Default::default()
                })
            }
        }
    }

    async fn execute(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        change: &Change,
        item: &PlanItem,
    ) -> Result<ItemOutcome, ConnectorError> {
        let call: Call = serde_json::from_value(item.target.clone()).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "plan_item".into(),
            message: format!("plan item {} has no Google call dsr knows: {e}", item.key),
        })?;
        match call {
            Call::UserDeletion {
                property,
                id_type,
                value,
            } => Ok(ItemOutcome::Done(
                self.execute_user_deletion(&property, &id_type, &value).await?,
            )),
            Call::DeleteMessage { mailbox, id } => {
                let done = self.remove_mail(&mailbox, &id, DeleteMode::Hard).await?;
                Ok(removed(
                    done,
                    serde_json::json!({"mailbox": mailbox, "id": id, "deleted": true}),
                ))
            }
            Call::TrashMessage { mailbox, id } => {
                let done = self.remove_mail(&mailbox, &id, DeleteMode::Soft).await?;
                Ok(removed(
                    done,
                    serde_json::json!({"mailbox": mailbox, "id": id, "trashed": true}),
                ))
            }
            Call::DeleteContact { mailbox, resource_name } => {
                let done = self.delete_contact(&mailbox, &resource_name).await?;
                Ok(removed(
                    done,
                    serde_json::json!({"mailbox": mailbox, "resourceName": resource_name, "deleted": true}),
                ))
            }
            Call::UpdateContact {
                mailbox,
                resource_name,
                update_person_fields,
                body,
            } => {
                let changes = match change {
                    Change::Rectification { changes } => changes.as_slice(),
                    _ => &[],
                };
                let call = (
                    mailbox.as_str(),
                    resource_name.as_str(),
                    update_person_fields.as_slice(),
                    &body,
                );
                self.update_contact(ctx, subject, changes, item, call).await
            }
        }
    }
}
