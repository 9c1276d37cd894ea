//! `index.html`: the page the subject opens first. Offline (inline CSS, no scripts, no
//! external requests), in bokmål or English, every piece of subject or vendor text escaped
//! by the template engine.

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, context};

use super::ProcessorSummary;
use super::info::ProcessingInfo;
use crate::model::{Lang, Request};

const TEMPLATE: &str = r#"<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top}
.note{background:#f3f6fb;border-left:4px solid #3b6bb5;padding:.4rem .7rem;margin:.4rem 0}
.failed{color:#9b1c1c}.muted{color:#666}
</style>
</head>
<body>
<h1>{{ t.title }}</h1>
<p>{{ t.intro }}</p>
<table>
<tr><th>{{ t.request }}</th><td>{{ request.id }} ({{ kind }})</td></tr>
<tr><th>{{ t.received }}</th><td>{{ received }}</td></tr>
<tr><th>{{ t.generated }}</th><td>{{ generated }}</td></tr>
<tr><th>{{ t.searched }}</th><td>{% for v in searched %}{{ v }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
</table>

<h2>{{ t.found }}</h2>
{% for p in processors %}
<h3>{{ p.name }}</h3>
{% if p.status == "succeeded" %}
  {% if p.categories %}
  <table><tr><th>{{ t.category }}</th><th>{{ t.records }}</th><th>{{ t.files }}</th></tr>
  {% for c in p.categories %}<tr><td>{{ c.label }}</td><td>{{ c.records }}</td><td><a href="{{ c.json_href }}">JSON</a> · <a href="{{ c.csv_href }}">CSV</a></td></tr>{% endfor %}
  </table>
  {% else %}<p>{{ t.nothing }}</p>{% endif %}
  {% if p.attachments %}<p>{{ t.attachments }}:</p><ul>{% for a in p.attachments %}<li><a href="{{ a.href }}">{{ a.path }}</a> ({{ a.bytes }} bytes)</li>{% endfor %}</ul>{% endif %}
{% elif p.status == "not_applicable" %}<p class="muted">{{ p.reason }}</p>
{% else %}<p class="failed">{{ t.failed }}{% if p.error %}: {{ p.error }}{% endif %}</p>{% endif %}
{% if p.refused_records %}<p class="note">{{ t.refused }}: {{ p.refused_records }}</p>{% endif %}
{% for n in p.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% endfor %}

<h2>{{ t.about }}</h2>
<table>
<tr><th>{{ t.controller }}</th><td>{{ info.controller }}</td></tr>
<tr><th>{{ t.purposes }}</th><td><ul>{% for x in info.purposes %}<li>{{ x }}</li>{% endfor %}</ul></td></tr>
<tr><th>{{ t.categories }}</th><td><ul>{% for x in info.categories %}<li>{{ x }}</li>{% endfor %}</ul></td></tr>
<tr><th>{{ t.recipients }}</th><td><ul>{% for x in info.recipients %}<li>{{ x }}</li>{% endfor %}</ul></td></tr>
<tr><th>{{ t.transfers }}</th><td>{{ info.transfers }}</td></tr>
<tr><th>{{ t.retention }}</th><td>{{ info.retention }}</td></tr>
<tr><th>{{ t.source }}</th><td>{{ info.source }}</td></tr>
<tr><th>{{ t.rights }}</th><td>{{ info.rights }}</td></tr>
<tr><th>{{ t.complaint }}</th><td>{{ info.complaint }}</td></tr>
<tr><th>{{ t.automated }}</th><td>{{ info.automated_decisions }}</td></tr>
</table>
<h2>{{ t.files_title }}</h2>
<p>{{ t.files_help }}</p>
</body>
</html>
"#;

fn labels(lang: Lang) -> minijinja::Value {
    match lang {
        Lang::Nb => context! {
            title => "Dine personopplysninger", intro => "Dette er en kopi av personopplysningene vi har om deg hos våre databehandlere, med det personvernforordningen artikkel 15 gir deg rett til å vite om behandlingen.",
            request => "Forespørsel", received => "Mottatt", generated => "Laget", searched => "Søkt etter",
            found => "Hva vi fant", category => "Kategori", records => "Oppføringer", files => "Filer", attachments => "Filer (vedlegg og e-post)",
            nothing => "Ingen opplysninger funnet.", failed => "Kunne ikke hentes ennå",
            refused => "Levert av leverandøren, men ikke dine opplysninger (ikke tatt med)",
            about => "Om behandlingen (artikkel 15)", controller => "Behandlingsansvarlig", purposes => "Formål", categories => "Kategorier av opplysninger",
            recipients => "Mottakere", transfers => "Overføring utenfor EU/EØS", retention => "Lagringstid", source => "Kilde",
            rights => "Dine rettigheter", complaint => "Klage", automated => "Automatiserte avgjørelser",
            files_title => "Om filene", files_help => "JSON-filene har opplysningene slik leverandøren lagrer dem; CSV-filene kan åpnes i et regneark. En celle som begynner med =, +, -, @, tabulator eller linjeskift (også et negativt tall) vises i CSV-filen med en ' foran, så regnearket ikke kjører den som en formel; JSON-filen har verdien slik den var. manifest.json lister hver fil med en SHA-256-kontrollsum.",
        },
        Lang::En => context! {
            title => "Your personal data", intro => "This is a copy of the personal data our processors hold about you, with the information Article 15 of the GDPR entitles you to.",
            request => "Request", received => "Received", generated => "Generated", searched => "Searched for",
            found => "What we found", category => "Category", records => "Records", files => "Files", attachments => "Files (attachments and e-mail)",
            nothing => "Nothing found.", failed => "Could not be retrieved yet",
            refused => "Returned by the provider but not yours (left out)",
            about => "About the processing (Article 15)", controller => "Controller", purposes => "Purposes", categories => "Categories of data",
            recipients => "Recipients", transfers => "Transfers outside the EU/EEA", retention => "Retention", source => "Source",
            rights => "Your rights", complaint => "Complaints", automated => "Automated decisions",
            files_title => "About the files", files_help => "The JSON files hold the data as each provider stores it; the CSV files open in a spreadsheet. A cell beginning with =, +, -, @, a tab or a line break (a negative number too) is shown in the CSV with a leading ' so that the spreadsheet does not run it as a formula; the JSON file keeps the value as it was. manifest.json lists every file with a SHA-256 checksum.",
        },
    }
}

/// A path inside the bundle as a relative URL: each segment percent-encoded (RFC 3986
/// unreserved characters kept), so names with spaces or non-ASCII letters still link.
pub fn href(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A category as a person reads it.
fn category_label(id: &str, lang: Lang) -> String {
    let (nb, en) = match id {
        "mail" => ("E-post", "E-mail"),
        "contacts" => ("Kontakter", "Contacts"),
        "other_contacts" => (
            "Adresser e-posten lagret (andre kontakter)",
            "Addresses saved from e-mail (other contacts)",
        ),
        "analytics_events" => (
            "Besøk på nettsiden (Google Analytics)",
            "Website visits (Google Analytics)",
        ),
        "persons" => (
            "Kontaktperson i kunderegisteret",
            "Contact person in the customer register",
        ),
        "consents" => ("Samtykker", "Consents"),
        "newsletter_subscriptions" => ("Nyhetsbrev", "Newsletters"),
        "appointments" => ("Avtaler og møter", "Appointments"),
        "documents" => ("Dokumenter", "Documents"),
        "sales" => ("Salg", "Sales"),
        "tickets" => ("Henvendelser", "Support tickets"),
        "members" => ("Medlemskonto på nettstedet", "Website member account"),
        "form_submissions" => ("Innsendte skjema", "Form submissions"),
        "comments" => ("Kommentarer", "Comments"),
        "email_subscriptions" => ("E-postmarkedsføring", "E-mail marketing"),
        other => return other.replace('_', " "),
    };
    match lang {
        Lang::Nb => nb.into(),
        Lang::En => en.into(),
    }
}

/// The processors with link targets added for the template.
fn with_links(processors: &[ProcessorSummary], lang: Lang) -> serde_json::Value {
    let mut value = serde_json::to_value(processors).unwrap_or_default();
    for p in value.as_array_mut().into_iter().flatten() {
        for c in p["categories"].as_array_mut().into_iter().flatten() {
            c["label"] = category_label(c["name"].as_str().unwrap_or_default(), lang).into();
            c["json_href"] = href(c["json"].as_str().unwrap_or_default()).into();
            c["csv_href"] = href(c["csv"].as_str().unwrap_or_default()).into();
        }
        for a in p["attachments"].as_array_mut().into_iter().flatten() {
            a["href"] = href(a["path"].as_str().unwrap_or_default()).into();
        }
    }
    value
}

pub fn render(
    request: &Request,
    processors: &[ProcessorSummary],
    info: &ProcessingInfo,
    generated: DateTime<Utc>,
) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("index.html", TEMPLATE)?;
    let ids = &request.identities;
    let searched: Vec<String> = ids
        .emails
        .iter()
        .map(|e| e.as_str().to_string())
        .chain(ids.phones.iter().map(|p| p.as_str().to_string()))
        .chain(ids.names.iter().cloned())
        .chain(
            ids.ga_client_ids
                .iter()
                .map(|c| format!("Google Analytics client id {c}")),
        )
        .chain(ids.ga_user_ids.iter().map(|u| format!("Google Analytics user id {u}")))
        .collect();
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    env.get_template("index.html")?.render(context! {
        lang => request.lang.as_str(),
        t => labels(request.lang),
        request => context! { id => &request.id },
        kind => request.kind.as_str(),
        received => when(request.received_at),
        generated => when(generated),
        searched => searched,
        processors => with_links(processors, request.lang),
        info => info.texts(request.lang),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_each_segment() {
        assert_eq!(
            href("microsoft365/attachments/0001-tilbud 2026.xlsx"),
            "microsoft365/attachments/0001-tilbud%202026.xlsx"
        );
        assert_eq!(href("wix/søknad.pdf"), "wix/s%C3%B8knad.pdf");
    }
}
