//! Is this what dsr made, unaltered, and does the ledger vouch for it? A bundle: every file
//! against its manifest ([`crate::bundle::verify`]), the manifest against the hash the ledger
//! recorded and against its signature. A confirmation: its hash against the ledger, its
//! signature, and the audit chain it pins (whole, and still holding the event it names).
//! What was found comes back as a [`BundleVerdict`] or [`ConfirmationVerdict`]; `dsr verify`
//! prints one, an HTTP API can return one.
//!
//! Also how a document dsr wrote is read back: [`read_versioned`] refuses a schema version
//! this build does not know before reading the shape.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::{MANIFEST, Manifest};
use crate::confirmation::ConfirmationDocument;
use crate::ledger::{Head, Ledger, LedgerError};
use crate::model::Request;
use crate::signing::{Signature, SigningError};

/// Why a document dsr wrote (a confirmation, a bundle's manifest) does not read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not valid JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("schema version {found} is not one this dsr reads (it reads version {known}): written by a newer dsr?")]
    UnknownSchema { found: u64, known: u32 },
    #[error("not in the shape dsr writes ({0}): altered")]
    Shape(serde_json::Error),
}

impl DocumentError {
    fn of(e: serde_json::Error) -> DocumentError {
        if e.is_data() {
            DocumentError::Shape(e)
        } else {
            DocumentError::NotJson(e)
        }
    }
}

/// Reads a document whose `schema_version` must be `known`: a version this build does not
/// know is refused as such, not as a shape it cannot read.
pub fn read_versioned<T: DeserializeOwned>(bytes: &[u8], known: u32) -> Result<T, DocumentError> {
    #[derive(Deserialize)]
    struct Version {
        schema_version: Option<u64>,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(DocumentError::of)?;
    match version.schema_version {
        Some(found) if found != u64::from(known) => Err(DocumentError::UnknownSchema { found, known }),
        // Without one, the typed read names the missing field.
        _ => serde_json::from_slice(bytes).map_err(DocumentError::of),
    }
}

/// What dsr exported for a request, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Export {
    Bundle,
    Confirmation,
}

impl Export {
    /// The part whose hash the ledger keeps.
    pub fn hashed_part(self) -> &'static str {
        match self {
            Export::Bundle => "manifest",
            Export::Confirmation => "confirmation",
        }
    }

    fn recorded(self, request: &Request) -> Option<&str> {
        match self {
            Export::Bundle => request.bundle_sha256.as_deref(),
            Export::Confirmation => request.confirmation_sha256.as_deref(),
        }
    }
}

impl std::fmt::Display for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Export::Bundle => "bundle",
            Export::Confirmation => "confirmation",
        })
    }
}

/// One thing wrong with a bundle or a confirmation, named so an operator can find it.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot open {}: {error}", .path.display())]
    CannotOpen { path: PathBuf, error: std::io::Error },
    #[error("{} is not a readable ZIP: {error}", .path.display())]
    NotZip {
        path: PathBuf,
        error: zip::result::ZipError,
    },
    #[error("manifest.json is missing")]
    ManifestMissing,
    #[error("manifest.json cannot be read: {0}")]
    ManifestUnreadable(std::io::Error),
    #[error("manifest.json is not valid JSON: {0}")]
    ManifestNotJson(serde_json::Error),
    #[error("{0}: listed in the manifest but missing")]
    FileMissing(String),
    #[error("{path}: cannot be read ({error})")]
    FileUnreadable { path: String, error: std::io::Error },
    #[error("{0}: content does not match the manifest (altered)")]
    FileAltered(String),
    #[error("{0}: in the bundle but not in the manifest (added)")]
    FileAdded(String),
    #[error(
        "{0}: more than one entry in the ZIP has this name (refused: which one a reader gets depends on the program)"
    )]
    DuplicateEntry(String),
    /// The same, when the central directory could not be read again to name the entry.
    #[error("the ZIP holds two entries of one name (refused: which one a reader gets depends on the program)")]
    DuplicateEntries,
    #[error("{name}: not valid JSON ({error}): altered")]
    NotJson { name: String, error: serde_json::Error },
    #[error("{name}: names no request (altered, or not a dsr confirmation)")]
    NamesNoRequest { name: String },
    /// Valid JSON, naming its request, but of a schema version or shape this dsr does not read.
    #[error("{name}: {error}")]
    Unreadable { name: String, error: DocumentError },
    #[error("request {request_id} is not in this ledger: the {export} cannot be vouched for")]
    NotInLedger { request_id: String, export: Export },
    #[error("request {request_id} has no {export} recorded in the ledger")]
    NotRecorded { request_id: String, export: Export },
    #[error("{name}: differs from the {} recorded in the ledger (altered)", .export.hashed_part())]
    DiffersFromLedger { name: String, export: Export },
    #[error("{name}: not signed, but this deployment signs everything it writes")]
    Unsigned { name: String },
    /// Not signed, where no key is configured either: nothing says who made it.
    #[error(
        "{name}: not signed, so nothing says who made it: set [export] signing_key (where it is made and here), or pass --allow-unsigned to accept it unsigned"
    )]
    NotSigned { name: String },
    /// Signed, but no key is configured here to check it against.
    #[error(
        "{name}: signature not checked: no [export] signing_key is configured here; configure the key that signed it, or pass --allow-unsigned"
    )]
    SignatureNotChecked { name: String },
    #[error("{name}.sig: unreadable ({error})")]
    SignatureUnreadable { name: String, error: SigningError },
    #[error("{name}: signature check failed: {error}")]
    SignatureInvalid { name: String, error: SigningError },
    /// The first break in the audit chain, as the ledger names it.
    #[error("audit chain: {0}")]
    AuditChain(String),
    #[error("audit chain: event #{seq}, which {name} pins, is not in the chain as it was (altered or removed)")]
    PinnedEventMissing { name: String, seq: i64 },
}

/// A problem travels as its sentence.
impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How the signature beside a manifest or a confirmation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureState {
    /// Not signed, and this deployment does not sign.
    Unsigned,
    /// Not signed, though this deployment signs everything it writes (a problem).
    Missing,
    /// The `.sig` does not read (a problem).
    Unreadable,
    /// Signed, but no signing key is configured here to check it against.
    Unchecked,
    Valid,
    /// Made with another key, or over other bytes (a problem).
    Invalid,
    /// The bundle could not be read far enough to check it.
    NotReached,
}

impl SignatureState {
    /// As `dsr verify` prints it.
    pub fn describe(self) -> &'static str {
        match self {
            SignatureState::Unsigned => "unsigned",
            SignatureState::Missing => "missing",
            SignatureState::Unreadable => "unreadable",
            SignatureState::Unchecked => "signed, not checked (no [export] signing_key configured here)",
            SignatureState::Valid => "valid",
            SignatureState::Invalid => "invalid",
            SignatureState::NotReached => "not checked",
        }
    }
}

impl std::fmt::Display for SignatureState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Whether a bundle or a confirmation whose signature cannot be checked here (unsigned, or
/// signed with no key configured) passes. `dsr verify` requires a checked signature unless
/// given `--allow-unsigned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePolicy {
    /// Not checked is a problem.
    Required,
    /// Not checked is reported as such, and passes.
    UncheckedAllowed,
}

/// Why a check could not be made at all (as opposed to the problems it found).
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the check stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// What checking a bundle found.
#[derive(Debug, Serialize)]
pub struct BundleVerdict {
    /// The request its manifest names, when the manifest reads.
    pub request_id: Option<String>,
    pub files_checked: usize,
    pub signature: SignatureState,
    /// Empty when the bundle is what dsr made.
    pub problems: Vec<Problem>,
    /// The manifest, when it reads as one.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

impl BundleVerdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What checking a confirmation found.
#[derive(Debug, Serialize)]
pub struct ConfirmationVerdict {
    /// The request it names, when it names one.
    pub request_id: Option<String>,
    /// SHA-256 of the bytes checked, hex.
    pub sha256: String,
    pub signature: SignatureState,
    /// Events in the audit chain walked.
    pub audit_events: u64,
    /// Empty when the confirmation is what dsr made and the chain it pins is whole.
    pub problems: Vec<Problem>,
    /// The document, when it reads as one.
    #[serde(skip)]
    pub document: Option<ConfirmationDocument>,
}

impl ConfirmationVerdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the ZIP at `bundle` against its manifest, the manifest against the hash `ledger`
/// recorded and against its signature by `trusted_key` (the deployment's signing key,
/// base64, when one is configured); `policy` says whether a signature not checked passes.
pub async fn verify_bundle(
    bundle: &Path,
    ledger: &Ledger,
    trusted_key: Option<&str>,
    policy: SignaturePolicy,
) -> Result<BundleVerdict, VerificationError> {
    let path = bundle.to_path_buf();
    let contents = tokio::task::spawn_blocking(move || crate::bundle::verify::check(&path)).await?;
    let mut problems = contents.problems;
    let request_id = contents.request_id;
    if let (Some(id), Some(hash)) = (&request_id, &contents.manifest_sha256) {
        vouch(ledger, id, MANIFEST, Export::Bundle, hash, &mut problems).await?;
    }
    let signature = if request_id.is_some() {
        check_signature(
            MANIFEST,
            contents.signature,
            &contents.manifest_bytes,
            trusted_key,
            policy,
            &mut problems,
        )
    } else {
        SignatureState::NotReached
    };
    Ok(BundleVerdict {
        request_id,
        files_checked: contents.files_checked,
        signature,
        problems,
        manifest: contents.manifest,
    })
}

/// What a confirmation names even when it no longer reads as one: enough to look it up in
/// the ledger and the audit chain.
#[derive(Default, Deserialize)]
struct Pins {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    audit_chain: Option<PinnedHead>,
}

#[derive(Deserialize)]
struct PinnedHead {
    seq: i64,
    hash: String,
}

/// Checks the confirmation `document` (its bytes as stored; `name` is how problems call it)
/// against the hash `ledger` recorded, its `.sig` (the bytes, when there is one) against
/// `trusted_key` (`policy` says whether a signature not checked passes), and the audit chain:
/// whole, and holding the event the confirmation pins.
pub async fn verify_confirmation(
    name: &str,
    document: &[u8],
    signature: Option<&[u8]>,
    ledger: &Ledger,
    trusted_key: Option<&str>,
    policy: SignaturePolicy,
) -> Result<ConfirmationVerdict, VerificationError> {
    let mut problems = Vec::new();
    let (typed, request_id, pinned) = match ConfirmationDocument::from_slice(document) {
        Ok(d) => {
            let (id, head) = (d.request_id.clone(), d.audit_chain.clone());
            (Some(d), Some(id), Some(head))
        }
        Err(DocumentError::NotJson(error)) => {
            problems.push(Problem::NotJson {
                name: name.into(),
                error,
            });
            (None, None, None)
        }
        Err(error) => {
            // Still looked up: the ledger and the chain say whether it was altered.
            let pins: Pins = serde_json::from_slice(document).unwrap_or_default();
            problems.push(match pins.request_id {
                None => Problem::NamesNoRequest { name: name.into() },
                Some(_) => Problem::Unreadable {
                    name: name.into(),
                    error,
                },
            });
            let head = pins.audit_chain.map(|h| Head {
                seq: h.seq,
                hash: h.hash,
            });
            (None, pins.request_id, head)
        }
    };
    let sha256 = hex::encode(Sha256::digest(document));
    if let Some(id) = &request_id {
        vouch(ledger, id, name, Export::Confirmation, &sha256, &mut problems).await?;
    }
    let signature = signature.map(Signature::from_slice);
    let signature = check_signature(name, signature, document, trusted_key, policy, &mut problems);
    let chain = ledger.verify_audit_chain().await?;
    if let Some(problem) = chain.problem {
        problems.push(Problem::AuditChain(problem));
    }
    if let Some(head) = pinned
        && head.seq > 0
        && ledger.audit_hash_at(head.seq).await?.as_deref() != Some(head.hash.as_str())
    {
        problems.push(Problem::PinnedEventMissing {
            name: name.into(),
            seq: head.seq,
        });
    }
    Ok(ConfirmationVerdict {
        request_id,
        sha256,
        signature,
        audit_events: chain.events,
        problems,
        document: typed,
    })
}

/// The export must be the one the ledger recorded when it was made.
async fn vouch(
    ledger: &Ledger,
    request_id: &str,
    name: &str,
    export: Export,
    sha256: &str,
    problems: &mut Vec<Problem>,
) -> Result<(), LedgerError> {
    match ledger.request(request_id).await? {
        None => problems.push(Problem::NotInLedger {
            request_id: request_id.into(),
            export,
        }),
        Some(request) => match export.recorded(&request) {
            Some(recorded) if recorded == sha256 => {}
            Some(_) => problems.push(Problem::DiffersFromLedger {
                name: name.into(),
                export,
            }),
            None => problems.push(Problem::NotRecorded {
                request_id: request_id.into(),
                export,
            }),
        },
    }
    Ok(())
}

/// Checks a signature against the trusted key; names `name` in the problem.
fn check_signature(
    name: &str,
    signature: Option<Result<Signature, SigningError>>,
    signed: &[u8],
    trusted_key: Option<&str>,
    policy: SignaturePolicy,
    problems: &mut Vec<Problem>,
) -> SignatureState {
    let required = policy == SignaturePolicy::Required;
    match (signature, trusted_key) {
        (None, None) => {
            if required {
                problems.push(Problem::NotSigned { name: name.into() });
            }
            SignatureState::Unsigned
        }
        (None, Some(_)) => {
            problems.push(Problem::Unsigned { name: name.into() });
            SignatureState::Missing
        }
        (Some(Err(error)), _) => {
            problems.push(Problem::SignatureUnreadable {
                name: name.into(),
                error,
            });
            SignatureState::Unreadable
        }
        (Some(Ok(_)), None) => {
            if required {
                problems.push(Problem::SignatureNotChecked { name: name.into() });
            }
            SignatureState::Unchecked
        }
        (Some(Ok(sig)), Some(key)) => match crate::signing::check(&sig, signed, key) {
            Ok(()) => SignatureState::Valid,
            Err(error) => {
                problems.push(Problem::SignatureInvalid {
                    name: name.into(),
                    error,
                });
                SignatureState::Invalid
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Signer;
    use chrono::{SubsecRound, Utc};

    const ALLOW: SignaturePolicy = SignaturePolicy::UncheckedAllowed;

    /// A ledger with a few audit events, and a confirmation pinned to its head.
    async fn ledger_and_document(dir: &Path) -> (Ledger, ConfirmationDocument) {
        let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.display()))
            .await
            .unwrap();
        for n in 0..3 {
            ledger
                .audit(None, None, "test.event", serde_json::json!({ "n": n }))
                .await
                .unwrap();
        }
        let head = ledger.audit_head().await.unwrap();
        assert!(head.seq >= 3);
        let document = ConfirmationDocument {
            schema_version: crate::confirmation::CONFIRMATION_SCHEMA,
            request_id: "r-unknown".into(),
            kind: crate::model::RequestKind::Erasure,
            status: crate::model::RequestStatus::Completed,
            preview: false,
            received_at: Utc::now().trunc_subsecs(6),
            generated_at: Utc::now().trunc_subsecs(6),
            processors: Vec::new(),
            recipients: Vec::new(),
            audit_chain: head,
            public_key: None,
        };
        (ledger, document)
    }

    fn pinned_missing(problems: &[Problem]) -> Option<i64> {
        problems.iter().find_map(|p| match p {
            Problem::PinnedEventMissing { seq, .. } => Some(*seq),
            _ => None,
        })
    }

    #[tokio::test]
    async fn a_pinned_audit_event_not_in_the_chain_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, mut document) = ledger_and_document(dir.path()).await;
        let name = "dsr-r-unknown-confirmation.json";

        // Pinned to the head as it is: the chain holds it.
        let bytes = document.to_vec().unwrap();
        let verdict = verify_confirmation(name, &bytes, None, &ledger, None, ALLOW)
            .await
            .unwrap();
        assert_eq!(pinned_missing(&verdict.problems), None, "{:?}", verdict.problems);
        assert_eq!(verdict.audit_events, 3);
        assert_eq!(verdict.request_id.as_deref(), Some("r-unknown"));
        assert_eq!(verdict.document.as_ref(), Some(&document));
        assert_eq!(verdict.sha256, hex::encode(Sha256::digest(&bytes)));
        // Nothing vouches for a request the ledger does not hold.
        assert!(!verdict.ok());
        assert_eq!(
            verdict.problems[0].to_string(),
            "request r-unknown is not in this ledger: the confirmation cannot be vouched for"
        );
        assert_eq!(verdict.signature, SignatureState::Unsigned);

        // Pinned to an event the chain never held.
        document.audit_chain.seq = 99;
        let bytes = document.to_vec().unwrap();
        let verdict = verify_confirmation(name, &bytes, None, &ledger, None, ALLOW)
            .await
            .unwrap();
        assert_eq!(pinned_missing(&verdict.problems), Some(99), "{:?}", verdict.problems);
        assert!(verdict.problems.iter().any(|p| p.to_string()
            == format!(
                "audit chain: event #99, which {name} pins, is not in the chain as it was (altered or removed)"
            )));

        // Pinned to an event that exists, with another hash.
        document.audit_chain.seq = 2;
        let verdict = verify_confirmation(name, &document.to_vec().unwrap(), None, &ledger, None, ALLOW)
            .await
            .unwrap();
        assert_eq!(pinned_missing(&verdict.problems), Some(2));
    }

    #[tokio::test]
    async fn a_confirmation_that_no_longer_reads_is_still_looked_up_and_its_signature_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, mut document) = ledger_and_document(dir.path()).await;
        document.audit_chain.seq = 77;
        let (signer, _) = Signer::generate().unwrap();
        let key = signer.public_key();
        let name = "c.json";
        let original = document.to_vec().unwrap();
        let sig = serde_json::to_vec(&signer.sign(&original)).unwrap();

        // Signed and checked against the key trusted here.
        let verdict = verify_confirmation(name, &original, Some(&sig), &ledger, Some(&key), ALLOW)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Valid);
        let verdict = verify_confirmation(name, &original, Some(&sig), &ledger, None, ALLOW)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Unchecked);
        assert_eq!(
            verdict.signature.describe(),
            "signed, not checked (no [export] signing_key configured here)"
        );
        // Unless unchecked signatures are allowed, not checking is a problem, and so is
        // no signature where no key is configured either.
        let verdict = verify_confirmation(name, &original, Some(&sig), &ledger, None, SignaturePolicy::Required)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Unchecked);
        assert!(
            verdict
                .problems
                .iter()
                .any(|p| matches!(p, Problem::SignatureNotChecked { name } if name == "c.json")),
            "{:?}",
            verdict.problems
        );
        let verdict = verify_confirmation(name, &original, None, &ledger, None, SignaturePolicy::Required)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Unsigned);
        assert!(
            verdict
                .problems
                .iter()
                .any(|p| matches!(p, Problem::NotSigned { name } if name == "c.json")),
            "{:?}",
            verdict.problems
        );
        let verdict = verify_confirmation(
            name,
            &original,
            Some(&sig),
            &ledger,
            Some(&key),
            SignaturePolicy::Required,
        )
        .await
        .unwrap();
        assert_eq!(verdict.signature, SignatureState::Valid);
        assert!(
            !verdict
                .problems
                .iter()
                .any(|p| matches!(p, Problem::SignatureNotChecked { .. } | Problem::NotSigned { .. })),
            "{:?}",
            verdict.problems
        );
        let verdict = verify_confirmation(name, &original, None, &ledger, Some(&key), ALLOW)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Missing);
        assert!(verdict.problems.iter().any(|p| matches!(p, Problem::Unsigned { .. })));
        let verdict = verify_confirmation(name, &original, Some(b"{}"), &ledger, Some(&key), ALLOW)
            .await
            .unwrap();
        assert_eq!(verdict.signature, SignatureState::Unreadable);

        // One word altered so that it no longer reads as a confirmation: still looked up in
        // the ledger by the request it names, its signature fails, its pin is still checked.
        let text = String::from_utf8(original).unwrap();
        let altered = text.replacen("\"erasure\"", "\"Erasure\"", 1);
        assert_ne!(altered, text);
        let verdict = verify_confirmation(name, altered.as_bytes(), Some(&sig), &ledger, Some(&key), ALLOW)
            .await
            .unwrap();
        assert!(verdict.document.is_none());
        assert_eq!(verdict.request_id.as_deref(), Some("r-unknown"));
        assert_eq!(verdict.signature, SignatureState::Invalid);
        let problems: Vec<String> = verdict.problems.iter().map(ToString::to_string).collect();
        assert!(
            problems[0].starts_with("c.json: not in the shape dsr writes (unknown variant `Erasure`"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("is not in this ledger")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("c.json: signature check failed: ") && p.ends_with("(altered)")),
            "{problems:?}"
        );
        assert_eq!(pinned_missing(&verdict.problems), Some(77));

        // Not JSON at all, valid JSON naming no request, a version this dsr does not know.
        let verdict = verify_confirmation(name, b"{\"request_id\":", None, &ledger, None, ALLOW)
            .await
            .unwrap();
        assert!(verdict.problems[0].to_string().starts_with("c.json: not valid JSON ("));
        assert!(verdict.problems[0].to_string().ends_with("): altered"));
        let verdict = verify_confirmation(name, b"{\"schema_version\": 1}", None, &ledger, None, ALLOW)
            .await
            .unwrap();
        assert_eq!(
            verdict.problems[0].to_string(),
            "c.json: names no request (altered, or not a dsr confirmation)"
        );
        let verdict = verify_confirmation(
            name,
            b"{\"schema_version\": 9, \"request_id\": \"r-unknown\"}",
            None,
            &ledger,
            None,
            ALLOW,
        )
        .await
        .unwrap();
        assert!(matches!(
            &verdict.problems[0],
            Problem::Unreadable {
                error: DocumentError::UnknownSchema { found: 9, .. },
                ..
            }
        ));
        assert_eq!(
            verdict.problems[0].to_string(),
            "c.json: schema version 9 is not one this dsr reads (it reads version 1): written by a newer dsr?"
        );
    }

    #[test]
    fn problems_and_states_serialise_as_dsr_verify_prints_them() {
        let value = serde_json::to_value(ConfirmationVerdict {
            request_id: Some("r".into()),
            sha256: "00".into(),
            signature: SignatureState::NotReached,
            audit_events: 3,
            problems: vec![Problem::FileAltered("wix/contacts.json".into())],
            document: None,
        })
        .unwrap();
        assert_eq!(
            value["problems"][0],
            "wix/contacts.json: content does not match the manifest (altered)"
        );
        assert_eq!(value["signature"], "not_reached");
        assert!(value.get("document").is_none());
        assert_eq!(
            Problem::DiffersFromLedger {
                name: MANIFEST.into(),
                export: Export::Bundle
            }
            .to_string(),
            "manifest.json: differs from the manifest recorded in the ledger (altered)"
        );
    }
}
