//! The request form and the proof that the address is the subject's: a submission holds what
//! was typed and nothing else until the e-mailed link is followed or its code entered; then
//! it becomes a request, in the same transaction that marks it verified.

use std::collections::BTreeMap;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dsr_connector::{Email, Phone};
use dsr_jobs::ledger::LedgerError;
use dsr_jobs::ledger::subject::{NewSubmission, Submission, SubmissionOrigin};
use dsr_jobs::model::{Lang, RequestKind};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::{Side, SubjectSide, language, pick};
use crate::cli::RequestArgs;
use crate::config::DeadlineFrom;
use crate::server::AppState;
use crate::server::tls::Peer;
use crate::subject::{secrets, texts};

#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The form as posted. Every field is optional here so that a missing one gets the page
/// back with an error, not a bare 422.
#[derive(Debug, Default, Deserialize)]
pub struct FormBody {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    lang: Option<String>,
    /// The honeypot: people leave it empty.
    #[serde(default)]
    website: String,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CodeBody {
    #[serde(default)]
    code: String,
    lang: Option<String>,
}

impl LangQuery {
    pub fn lang(&self) -> Option<&str> {
        self.lang.as_deref()
    }
}

impl CodeBody {
    pub fn lang(&self) -> Option<&str> {
        self.lang.as_deref()
    }

    pub fn code(&self) -> &str {
        &self.code
    }
}

/// The fields a correction may set from the form (the address itself is not one: a new
/// address would need proving too).
const FIELDS: [(&str, &str, &str, &str); 6] = [
    ("given_name", "Fornavn", "Given name", "given-name"),
    ("family_name", "Etternavn", "Family name", "family-name"),
    ("phone", "Telefonnummer", "Phone number", "tel"),
    ("company", "Firma", "Company", "organization"),
    ("job_title", "Stilling", "Job title", "organization-title"),
    ("address", "Adresse", "Address", "street-address"),
];

fn kinds(lang: Lang) -> Vec<minijinja::Value> {
    let nb = lang == Lang::Nb;
    let kind = |value: &str, label_nb: &str, label_en: &str, hint_nb: &str, hint_en: &str| {
        context! { value => value, label => if nb { label_nb } else { label_en }, hint => if nb { hint_nb } else { hint_en } }
    };
    vec![
        kind(
            "access",
            "Innsyn",
            "Access",
            "– en kopi av opplysningene vi har om deg",
            "– a copy of the data we hold about you",
        ),
        kind(
            "portability",
            "Dataportabilitet",
            "Portability",
            "– opplysningene du har gitt oss, maskinlesbart",
            "– the data you gave us, machine-readable",
        ),
        kind(
            "rectification",
            "Retting",
            "Correction",
            "– rett opplysninger som er feil (fyll inn under)",
            "– correct data that is wrong (fill in below)",
        ),
        kind(
            "erasure",
            "Sletting",
            "Erasure",
            "– slett opplysningene vi har om deg",
            "– erase the data we hold about you",
        ),
        kind(
            "objection",
            "Reservasjon",
            "Objection",
            "– ingen mer direkte markedsføring",
            "– no more direct marketing",
        ),
    ]
}

fn fields(lang: Lang) -> Vec<minijinja::Value> {
    FIELDS
        .iter()
        .map(|(name, nb, en, autocomplete)| {
            context! { name => name, label => if lang == Lang::Nb { nb } else { en }, autocomplete => autocomplete }
        })
        .collect()
}

/// `GET /privacy/request`.
pub async fn show(
    State(state): State<AppState>,
    side: Side,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(q.lang.as_deref(), &headers, &state.config);
    form_page(&state, &side, lang, &FormBody::default(), &[], StatusCode::OK)
}

fn form_page(
    state: &AppState,
    side: &SubjectSide,
    lang: Lang,
    body: &FormBody,
    errors: &[(&str, String)],
    status: StatusCode,
) -> Response {
    let set: BTreeMap<&str, &str> = FIELDS
        .iter()
        .map(|(name, ..)| {
            let value = body
                .rest
                .get(&format!("set_{name}"))
                .map(String::as_str)
                .unwrap_or_default();
            (*name, value)
        })
        .collect();
    let error_text: BTreeMap<&str, &str> = errors.iter().map(|(f, t)| (*f, t.as_str())).collect();
    side.pages.render(
        status,
        "form.html",
        lang,
        &state.config.controller.name,
        context! {
            kinds => kinds(lang),
            fields => fields(lang),
            form => context! { kind => body.kind, email => body.email, phone => body.phone, set => set },
            errors => errors.iter().map(|(f, t)| context! { field => f, text => t }).collect::<Vec<_>>(),
            error_fields => errors.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            error_text => error_text,
        },
    )
}

/// The request the submission becomes, built as `dsr enqueue` builds one (the same checks).
fn request_args(kind: RequestKind, typed: &serde_json::Value, verified_by: Option<String>) -> RequestArgs {
    let text = |key: &str| typed.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let phone = text("phone");
    // A typed phone number is not proven: it can only remove data, never hand it over.
    let phone_used = !phone.is_empty() && matches!(kind, RequestKind::Erasure | RequestKind::Objection);
    let set = typed
        .get("set")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    RequestArgs {
        kind: kind.as_str().to_string(),
        email: vec![text("email")],
        phone: if phone_used { vec![phone] } else { vec![] },
        name: vec![],
        ga_client_id: vec![],
        ga_user_id: vec![],
        set,
        processor: vec![],
        lang: Some(text("lang")),
        dry_run: false,
        verified_by,
        by: None,
        timeout: std::time::Duration::ZERO,
    }
}

/// `POST /privacy/request`.
pub async fn submit(
    State(state): State<AppState>,
    side: Side,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(body): Form<FormBody>,
) -> Response {
    let config = &state.config;
    let lang = language(body.lang.as_deref(), &headers, config);
    let say = |nb: &str, en: &str| pick(lang, nb, en).to_string();
    let region = &config.controller.default_phone_region;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let kind = body.kind.parse::<RequestKind>().ok();
    if kind.is_none() {
        errors.push(("kind-access", say("Velg hva du ønsker.", "Choose what you would like.")));
    }
    let email = Email::parse(body.email.trim()).ok();
    if email.is_none() {
        errors.push((
            "email",
            say(
                "Skriv e-postadressen din, som navn@eksempel.no.",
                "Write your e-mail address, like name@example.com.",
            ),
        ));
    }
    let unreadable_phone = || {
        say(
            "Telefonnummeret kan ikke leses; skriv det med landskode, som +47 912 34 567, eller la feltet stå tomt.",
            "The phone number cannot be read; write it with its country code, like +47 912 34 567, or leave it empty.",
        )
    };
    let phone = body.phone.trim();
    if !phone.is_empty() && Phone::parse(phone, region).is_err() {
        errors.push(("phone", unreadable_phone()));
    }
    let set: Vec<String> = FIELDS
        .iter()
        .filter_map(|(name, ..)| {
            let value = body.rest.get(&format!("set_{name}"))?.trim();
            (!value.is_empty()).then(|| format!("{name}={value}"))
        })
        .collect();
    if kind == Some(RequestKind::Rectification) {
        if set.is_empty() {
            errors.push((
                "set-given_name",
                say(
                    "Ved retting: fyll inn minst én av de riktige opplysningene.",
                    "For a correction: fill in at least one of the right details.",
                ),
            ));
        }
        let new_phone = body.rest.get("set_phone").map(|p| p.trim()).unwrap_or_default();
        if !new_phone.is_empty() && Phone::parse(new_phone, region).is_err() {
            errors.push(("set-phone", unreadable_phone()));
        }
    }
    let (Some(kind), Some(email), true) = (kind, email, errors.is_empty()) else {
        return form_page(&state, &side, lang, &body, &errors, StatusCode::BAD_REQUEST);
    };
    let typed = json!({
        "email": email.as_str(),
        "phone": phone,
        "set": if kind == RequestKind::Rectification { set } else { vec![] },
        "lang": lang.as_str(),
    });
    // Checked now as it will be at verification, so a refusal is seen while the form is open.
    let configured = state.engine.connectors().processors();
    if crate::request::build_request(&request_args(kind, &typed, Some("form".into())), config, &configured).is_err() {
        // Its message may quote what was typed: the log gets the kind only.
        tracing::info!(%kind, "a request form submission was refused by the request's checks");
        let text = say(
            "Forespørselen kan ikke tas imot slik den er fylt ut; kontroller feltene og prøv igjen.",
            "The request cannot be taken as filled in; check the fields and try again.",
        );
        return form_page(&state, &side, lang, &body, &[("email", text)], StatusCode::BAD_REQUEST);
    }
    let slow_down = || {
        side.say(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            lang,
            ("For mange forespørsler", "Too many requests"),
            (
                "Det er sendt mange forespørsler herfra eller til denne adressen den siste timen. Prøv igjen om en \
                 time, eller kontakt oss direkte.",
                "Many requests were sent from here or to this address in the last hour. Try again in an hour, or \
                 contact us directly.",
            ),
            context! {},
        )
    };
    if !body.website.is_empty() {
        // A bot filled the hidden field: it sees what a person would, and nothing is stored or sent.
        tracing::info!("a request form submission with the honeypot filled was ignored");
        return check_mail_page(&state, &side, lang, None, None);
    }
    if !side.client_allowed(
        super::client_ip(&peer, &headers, config),
        config.subject.per_client_per_hour,
    ) {
        return slow_down();
    }
    let ledger = state.engine.ledger();
    let address_tag = state.engine.subject_tag(&dsr_connector::Identities {
        emails: vec![email.clone()],
        ..Default::default()
    });
    let id = secrets::id();
    let token = secrets::token();
    let code = secrets::code();
    let ttl = config.subject.verify_ttl;
    let new = NewSubmission {
        id: id.clone(),
        kind: kind.as_str().to_string(),
        typed,
        link_sha256: secrets::sha256(&token),
        code_sha256: secrets::code_sha256(&id, &code),
        address_tag,
        expires_at: ledger.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(30)),
    };
    match ledger
        .create_submission(&new, config.subject.per_address_per_hour)
        .await
    {
        Ok(true) => {}
        Ok(false) => return slow_down(),
        Err(e) => return side.trouble(&state, lang, &e.to_string()),
    }
    let link = crate::subject::public_link(config, &format!("/privacy/confirm/{token}")).unwrap_or_default();
    let mail = texts::verify(
        email.as_str(),
        lang,
        &config.controller.name,
        kind,
        &link,
        &code,
        ttl.as_secs() / 60,
    );
    if let Err(e) = side.mailer.send(mail).await {
        tracing::warn!(error = %e, "the request form's code could not be e-mailed");
        let _ = ledger.drop_submission(&id).await;
        return side.say(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            lang,
            ("E-posten kunne ikke sendes", "The e-mail could not be sent"),
            (
                "Vi fikk ikke sendt koden akkurat nå, og ingenting er lagret. Prøv igjen om noen minutter.",
                "We could not send the code just now, and nothing was stored. Please try again in a few minutes.",
            ),
            context! {},
        );
    }
    tracing::info!(submission = %id, %kind, "request form submitted; waiting for the subject to confirm");
    super::guarded(Redirect::to(&format!("/privacy/request/{id}?lang={}", lang.as_str())).into_response())
}

/// The page that asks for the code (`id` None: the honeypot's page, which goes nowhere),
/// with `error` above the field.
fn check_mail_page(
    state: &AppState,
    side: &SubjectSide,
    lang: Lang,
    id: Option<&str>,
    error: Option<String>,
) -> Response {
    let minutes = state.config.subject.verify_ttl.as_secs() / 60;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    side.pages.render(
        status,
        "code.html",
        lang,
        &state.config.controller.name,
        context! {
            heading => pick(lang, "Sjekk e-posten din", "Check your e-mail"),
            paragraphs => [
                pick(
                    lang,
                    "Vi har sendt en lenke og en kode til adressen du oppga. Åpne lenken, eller skriv inn koden her. \
                     De virker i {minutes} minutter.",
                    "We have sent a link and a code to the address you gave. Open the link, or enter the code here. \
                     They work for {minutes} minutes.",
                )
                .replace("{minutes}", &minutes.to_string()),
                pick(
                    lang,
                    "Forespørselen venter på bekreftelse (awaiting_verification): ingenting er satt i gang ennå.",
                    "The request is awaiting verification (awaiting_verification): nothing has started yet.",
                )
                .to_string(),
            ],
            error => error,
            action => id.map(|id| format!("/privacy/request/{id}")).unwrap_or_else(|| "/privacy/request".into()),
        },
    )
}

/// `GET /privacy/request/{id}`: where the submission stands.
pub async fn waiting(
    State(state): State<AppState>,
    side: Side,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(q.lang.as_deref(), &headers, &state.config);
    standing(&state, &side, lang, &id, None).await
}

/// The page for submission `id` as it stands, with `error` above the code field.
async fn standing(state: &AppState, side: &SubjectSide, lang: Lang, id: &str, error: Option<String>) -> Response {
    let submission = if secrets::looks_like_id(id) {
        match state.engine.ledger().submission(id).await {
            Ok(s) => s,
            Err(e) => return side.trouble(state, lang, &e.to_string()),
        }
    } else {
        None
    };
    let again = || {
        context! { link => context! { href => format!("/privacy/request?lang={}", lang.as_str()),
        label => pick(lang, "Fyll ut skjemaet på nytt", "Fill in the form again") } }
    };
    let Some(submission) = submission else {
        return side.say(
            state,
            StatusCode::NOT_FOUND,
            lang,
            ("Ukjent forespørsel", "Unknown request"),
            (
                "Vi finner ikke denne forespørselen. Ubekreftede forespørsler slettes etter ett døgn.",
                "We cannot find this request. Unconfirmed requests are deleted after a day.",
            ),
            again(),
        );
    };
    if let Some(request_id) = &submission.request_id {
        let due = match state.engine.ledger().request(request_id).await {
            Ok(Some(r)) => r
                .due_at
                .with_timezone(&state.config.zone())
                .format("%Y-%m-%d")
                .to_string(),
            _ => String::new(),
        };
        let text = pick(
            lang,
            "Takk. Forespørselen er registrert med referanse {id}, og vi svarer senest {due}. Svaret kommer på e-post.",
            "Thank you. Your request is registered with reference {id}, and we answer by {due} at the latest. \
             The answer comes by e-mail.",
        )
        .replace("{id}", request_id)
        .replace("{due}", &due);
        return side.pages.message(
            StatusCode::OK,
            lang,
            &state.config.controller.name,
            pick(lang, "Forespørselen er bekreftet", "Your request is confirmed"),
            &[text],
            context! {},
        );
    }
    if submission.locked_at.is_some() {
        return side.say(
            state,
            StatusCode::FORBIDDEN,
            lang,
            ("Forespørselen er sperret", "The request is locked"),
            (
                "Koden ble skrevet feil for mange ganger, så forespørselen er sperret og slettet. Fyll ut skjemaet \
                 på nytt for å få en ny kode.",
                "The code was entered wrongly too many times, so the request is locked and deleted. Fill in the form \
                 again for a new code.",
            ),
            again(),
        );
    }
    if submission.expires_at <= state.engine.ledger().now() {
        return side.say(
            state,
            StatusCode::GONE,
            lang,
            ("Koden er utløpt", "The code has expired"),
            (
                "Lenken og koden virker bare en kort stund. Fyll ut skjemaet på nytt for å få nye.",
                "The link and the code only work for a short while. Fill in the form again for new ones.",
            ),
            again(),
        );
    }
    check_mail_page(state, side, lang, Some(id), error)
}

/// `POST /privacy/request/{id}`: the code.
pub async fn enter_code(
    State(state): State<AppState>,
    side: Side,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(body): Form<CodeBody>,
) -> Response {
    let lang = language(body.lang.as_deref(), &headers, &state.config);
    let ledger = state.engine.ledger();
    let submission = match secrets::looks_like_id(&id).then_some(()) {
        Some(()) => match ledger.submission(&id).await {
            Ok(s) => s,
            Err(e) => return side.trouble(&state, lang, &e.to_string()),
        },
        None => None,
    };
    let Some(submission) = submission.filter(|s| open(s, ledger.now())) else {
        return standing(&state, &side, lang, &id, None).await;
    };
    if secrets::code_sha256(&id, &body.code) != submission.code_sha256 {
        let max = state.config.subject.max_tries;
        return match ledger.submission_wrong_code(&id, max).await {
            Ok((_, true)) => standing(&state, &side, lang, &id, None).await,
            Ok((tries, false)) => {
                let left = max.saturating_sub(tries).to_string();
                let error = pick(
                    lang,
                    "Koden stemmer ikke. Du har {left} forsøk igjen.",
                    "The code is not right. You have {left} tries left.",
                )
                .replace("{left}", &left);
                standing(&state, &side, lang, &id, Some(error)).await
            }
            Err(e) => side.trouble(&state, lang, &e.to_string()),
        };
    }
    verified(&state, &side, lang, submission, "code").await
}

fn open(submission: &Submission, now: chrono::DateTime<chrono::Utc>) -> bool {
    submission.verified_at.is_none() && submission.locked_at.is_none() && submission.expires_at > now
}

/// `GET /privacy/confirm/{token}`: a button, so that a mail filter that follows links
/// confirms nothing.
pub async fn confirm_page(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(q.lang.as_deref(), &headers, &state.config);
    match by_link(&state, &token).await {
        Ok(Some(s)) if open(&s, state.engine.ledger().now()) => side.say(
            &state,
            StatusCode::OK,
            lang,
            ("Bekreft forespørselen", "Confirm your request"),
            (
                "Trykk på knappen for å bekrefte at e-postadressen er din og sende forespørselen.",
                "Press the button to confirm that the e-mail address is yours and send the request.",
            ),
            context! { button => context! { action => format!("/privacy/confirm/{token}"),
            label => pick(lang, "Bekreft forespørselen", "Confirm my request") } },
        ),
        Ok(Some(s)) => standing(&state, &side, lang, &s.id, None).await,
        Ok(None) => standing(&state, &side, lang, "", None).await,
        Err(e) => side.trouble(&state, lang, &e.to_string()),
    }
}

/// `POST /privacy/confirm/{token}`.
pub async fn confirm(
    State(state): State<AppState>,
    side: Side,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(body): Form<LangQuery>,
) -> Response {
    let asked = body.lang.clone();
    let lang = language(asked.as_deref(), &headers, &state.config);
    match by_link(&state, &token).await {
        Ok(Some(s)) if open(&s, state.engine.ledger().now()) => verified(&state, &side, lang, s, "link").await,
        Ok(Some(s)) => standing(&state, &side, lang, &s.id, None).await,
        Ok(None) => standing(&state, &side, lang, "", None).await,
        Err(e) => side.trouble(&state, lang, &e.to_string()),
    }
}

async fn by_link(state: &AppState, token: &str) -> Result<Option<Submission>, LedgerError> {
    if !secrets::looks_like_token(token) {
        return Ok(None);
    }
    state.engine.ledger().submission_by_link(&secrets::sha256(token)).await
}

/// The subject proved the address: the submission becomes a request.
async fn verified(state: &AppState, side: &SubjectSide, lang: Lang, submission: Submission, how: &str) -> Response {
    let (Ok(kind), Some(typed)) = (submission.kind.parse::<RequestKind>(), &submission.typed) else {
        return standing(state, side, lang, &submission.id, None).await;
    };
    let args = request_args(kind, typed, None);
    // A typed phone number is searched for only in an erasure or objection, and then the
    // plans wait for an operator: the confirmation would otherwise hand whoever typed the
    // number what it matched.
    let unproven_phone = !args.phone.is_empty();
    let mut verified_by = format!("the subject proved the address by the e-mailed {how} (request form)");
    if unproven_phone {
        verified_by.push_str("; the phone number typed is not proven: the plans wait for an operator's approval");
    }
    let configured = state.engine.connectors().processors();
    let args = RequestArgs {
        verified_by: Some(verified_by),
        ..args
    };
    let mut new = match crate::request::build_request(&args, &state.config, &configured) {
        Ok(new) => new,
        // Checked when the form was sent; what it says may quote what was typed.
        Err(_) => return side.trouble(state, lang, "a verified submission failed the request's checks"),
    };
    let now = state.engine.ledger().now();
    new.verified_at = Some(now);
    new.received_at = match state.config.subject.deadline_from {
        DeadlineFrom::Submission => submission.submitted_at,
        DeadlineFrom::Verification => now,
    };
    let origin = dsr_jobs::ledger::Origin {
        actor: Some("subject:form".into()),
        submission: Some(SubmissionOrigin {
            id: submission.id.clone(),
            submitted_at: submission.submitted_at,
            approval_required: unproven_phone,
        }),
        ..Default::default()
    };
    match state.engine.enqueue_from(new, &origin).await {
        Ok((request, _)) => tracing::info!(submission = %submission.id, %request, "request form confirmed"),
        // Stored, not yet queued: the recovery sweep queues it.
        Err(dsr_jobs::EngineError::Queue(queue)) if queue.stored_request().is_some() => {}
        Err(dsr_jobs::EngineError::Ledger(LedgerError::Refused(_))) => {}
        Err(e) => return side.trouble(state, lang, &e.to_string()),
    }
    super::guarded(Redirect::to(&format!("/privacy/request/{}?lang={}", submission.id, lang.as_str())).into_response())
}
