//! The e-mails' words, in bokmål and English (the request's language).

use dsr_jobs::confirmation::ConfirmationDocument;
use dsr_jobs::model::{Lang, Outcome, RequestKind};

use super::mail::Mail;

fn nb(lang: Lang) -> bool {
    lang == Lang::Nb
}

fn kind_name(kind: RequestKind, lang: Lang) -> &'static str {
    match (kind, nb(lang)) {
        (RequestKind::Access, true) => "innsyn",
        (RequestKind::Access, false) => "access",
        (RequestKind::Portability, true) => "dataportabilitet",
        (RequestKind::Portability, false) => "data portability",
        (RequestKind::Erasure, true) => "sletting",
        (RequestKind::Erasure, false) => "erasure",
        (RequestKind::Rectification, true) => "retting",
        (RequestKind::Rectification, false) => "rectification",
        (RequestKind::Objection, true) => "reservasjon mot direkte markedsføring",
        (RequestKind::Objection, false) => "objection to direct marketing",
    }
}

/// The form's e-mail: the link and the code that prove the address is the sender's.
pub fn verify(to: &str, lang: Lang, controller: &str, kind: RequestKind, link: &str, code: &str, minutes: u64) -> Mail {
    let kind = kind_name(kind, lang);
    let (subject, text) = if nb(lang) {
        (
            format!("Bekreft forespørselen din til {controller}"),
            format!(
                "Noen, forhåpentligvis du, ba om {kind} hos {controller} med denne e-postadressen.\n\n\
                 Bekreft ved å åpne lenken:\n{link}\n\neller skriv inn koden {code} på siden du kom fra.\n\n\
                 Lenken og koden virker i {minutes} minutter. Ba du ikke om dette, kan du se bort fra \
                 e-posten: ingenting skjer før forespørselen er bekreftet.\n"
            ),
        )
    } else {
        (
            format!("Confirm your request to {controller}"),
            format!(
                "Someone, we hope you, asked {controller} for {kind} with this e-mail address.\n\n\
                 Confirm by opening the link:\n{link}\n\nor enter the code {code} on the page you came from.\n\n\
                 The link and the code work for {minutes} minutes. If you did not ask, ignore this \
                 e-mail: nothing happens until the request is confirmed.\n"
            ),
        )
    };
    Mail {
        to: to.into(),
        subject,
        text,
    }
}

/// The code asked for when a delivery link is opened.
pub fn download_code(to: &str, lang: Lang, controller: &str, code: &str, minutes: u64) -> Mail {
    let (subject, text) = if nb(lang) {
        (
            format!("Koden din fra {controller}: {code}"),
            format!(
                "Koden for å laste ned svaret på forespørselen din er {code}.\n\nDen virker i {minutes} minutter. \
                 Ba du ikke om en kode, har noen åpnet lenken vi sendte deg: ikke del koden, og ta kontakt med oss.\n"
            ),
        )
    } else {
        (
            format!("Your code from {controller}: {code}"),
            format!(
                "The code to download the answer to your request is {code}.\n\nIt works for {minutes} minutes. \
                 If you did not ask for a code, someone opened the link we sent you: do not share the code, and \
                 get in touch with us.\n"
            ),
        )
    };
    Mail {
        to: to.into(),
        subject,
        text,
    }
}

/// What the link mail says about the link.
pub struct LinkFacts<'a> {
    pub link: &'a str,
    pub expires: &'a str,
    pub max_downloads: u32,
    pub size: Option<u64>,
}

/// A bundle is ready.
pub fn bundle_ready(to: &str, lang: Lang, controller: &str, kind: RequestKind, facts: &LinkFacts) -> Mail {
    let kind = kind_name(kind, lang);
    let size = facts
        .size
        .map(|b| bytesize::ByteSize(b).to_string())
        .unwrap_or_default();
    let (subject, text) = if nb(lang) {
        (
            format!("Svar på forespørselen din om {kind} hos {controller}"),
            format!(
                "Dataene vi har om deg er samlet i en ZIP-fil ({size}).\n\nLast den ned her:\n{}\n\n\
                 Når du åpner lenken, sender vi en engangskode til denne adressen; koden må til for å laste ned. \
                 Lenken virker til {} og for {} nedlastinger.\n\nI filen forklarer index.html hva som er med, \
                 og hver leverandør har JSON- og CSV-filer. Filen kan åpnes uten nett.\n",
                facts.link, facts.expires, facts.max_downloads
            ),
        )
    } else {
        (
            format!("The answer to your {kind} request to {controller}"),
            format!(
                "The data we hold about you is in a ZIP file ({size}).\n\nDownload it here:\n{}\n\n\
                 When you open the link we send a one-time code to this address; the code is needed to download. \
                 The link works until {} and for {} downloads.\n\nIn the file, index.html explains what is inside, \
                 and each processor has JSON and CSV files. It opens without a connection.\n",
                facts.link, facts.expires, facts.max_downloads
            ),
        )
    };
    Mail {
        to: to.into(),
        subject,
        text,
    }
}

/// A change is done: what happened at each processor, what was kept and why, and whom the
/// change was passed on to (Art. 19).
pub fn change_done(to: &str, lang: Lang, controller: &str, doc: &ConfirmationDocument, facts: &LinkFacts) -> Mail {
    let kind = kind_name(doc.kind, lang);
    let nb = nb(lang);
    let mut lines = String::new();
    for report in &doc.processors {
        let outcome = match (report.outcome, nb) {
            (Some(Outcome::Done), true) => "utført",
            (Some(Outcome::Done), false) => "done",
            (Some(Outcome::NothingFound), true) => "ingenting funnet",
            (Some(Outcome::NothingFound), false) => "nothing found",
            (Some(Outcome::PartlyRetained), true) => "utført, noe beholdt",
            (Some(Outcome::PartlyRetained), false) => "done, some kept",
            (None, true) => "ikke utført (vi følger det opp)",
            (None, false) => "not done (we are following it up)",
        };
        let done = if nb {
            format!(
                "- {}: {outcome}, {} funnet, {} endret\n",
                report.name, report.found, report.changed
            )
        } else {
            format!(
                "- {}: {outcome}, {} found, {} changed\n",
                report.name, report.found, report.changed
            )
        };
        lines.push_str(&done);
        for kept in &report.retained {
            lines.push_str(&if nb {
                format!(
                    "    beholdt: {} {} ({}; {})\n",
                    kept.count, kept.category, kept.reason, kept.legal_basis
                )
            } else {
                format!(
                    "    kept: {} {} ({}; {})\n",
                    kept.count, kept.category, kept.reason, kept.legal_basis
                )
            });
        }
    }
    let recipients = if doc.recipients.is_empty() {
        if nb { "ingen".to_string() } else { "nobody".to_string() }
    } else {
        doc.recipients.join(", ")
    };
    let (subject, text) = if nb {
        (
            format!("Forespørselen din om {kind} hos {controller} er utført"),
            format!(
                "Dette er gjort hos hver leverandør:\n{lines}\nEndringen er sendt videre til (art. 19): {recipients}.\n\n\
                 Hele bekreftelsen, med bevis per leverandør:\n{}\n(lenken virker til {}; når du åpner den, sender vi \
                 en engangskode til denne adressen).\n",
                facts.link, facts.expires
            ),
        )
    } else {
        (
            format!("Your {kind} request to {controller} is done"),
            format!(
                "This is what was done at each processor:\n{lines}\nThe change was passed on to (Art. 19): {recipients}.\n\n\
                 The full confirmation, with each processor's evidence:\n{}\n(the link works until {}; when you open it \
                 we send a one-time code to this address).\n",
                facts.link, facts.expires
            ),
        )
    };
    Mail {
        to: to.into(),
        subject,
        text,
    }
}
