//! `dsr init`: writes a commented `dsr.toml` for the processors named, with every secret as
//! an `env:` reference and every company-specific value as a placeholder that `dsr doctor`
//! names, then prints what to set and grant next.

use std::path::Path;
use std::process::ExitCode;

use dsr_connector::Processor;
use serde_json::json;

use crate::config::PLACEHOLDER;
use crate::error::{CliError, bad_input};

/// One processor's part of the file: its section and what the operator does next.
struct Section {
    toml: String,
    secrets: Vec<(&'static str, &'static str)>,
    grant: &'static str,
}

fn fill(what: &str) -> String {
    format!("\"{PLACEHOLDER}: {what}>\"")
}

fn section(p: Processor) -> Section {
    match p {
        Processor::Microsoft365 => Section {
            toml: format!(
                "[processors.microsoft365]\n\
                 tenant_id = {}\n\
                 client_id = {}\n\
                 client_secret = \"env:DSR_GRAPH_SECRET\"     # or file:/etc/dsr/graph-secret\n\
                 mailboxes = [\"*\"]                          # every user, or a list of addresses\n\
                 delete_mode = \"hard\"                       # permanentDelete; \"soft\" moves to Deleted Items\n",
                fill("directory (tenant) id or verified domain, from Microsoft Entra admin center > Overview"),
                fill("the app registration's application (client) id"),
            ),
            secrets: vec![(
                "DSR_GRAPH_SECRET",
                "a client secret of the app registration (Certificates & secrets)",
            )],
            grant: "Microsoft Entra ID: register an app, give it the application permissions Mail.ReadWrite, \
                    Contacts.ReadWrite and User.Read.All, grant admin consent, and create a client secret",
        },
        Processor::Google => Section {
            toml: format!(
                "[processors.google]\n\
                 service_account_key = \"env:DSR_GOOGLE_SA_KEY\"   # the JSON key file's content, or file:/etc/dsr/google-sa.json\n\
                 ga4_property_ids = [{}]\n\
                 use_user_provided_data = false              # also delete by e-mail/phone (Admin API)\n\
                 # bigquery_dataset = \"project.analytics_123456789\"   # the GA4 BigQuery export, if any\n\
                 \n\
                 # [processors.google.workspace]             # Gmail and contacts through domain-wide delegation\n\
                 # mailboxes = [\"post@example.no\"]\n\
                 # delete_mode = \"hard\"\n",
                fill("numeric GA4 property id, from Analytics Admin > Property details"),
            ),
            secrets: vec![(
                "DSR_GOOGLE_SA_KEY",
                "the service account's JSON key (IAM > Service accounts > Keys)",
            )],
            grant: "Google: give the service account the Editor role on each GA4 property; for the BigQuery export \
                    BigQuery Job User on the project and Data Viewer on the dataset; for Workspace, domain-wide \
                    delegation of https://mail.google.com/, https://www.googleapis.com/auth/contacts and \
                    https://www.googleapis.com/auth/contacts.other.readonly",
        },
        Processor::Superoffice => Section {
            toml: format!(
                "[processors.superoffice]\n\
                 environment_url = \"https://online.superoffice.com\"\n\
                 tenant = {}\n\
                 client_id = {}\n\
                 client_secret = \"env:DSR_SO_APP_TOKEN\"\n\
                 system_user_token = \"env:DSR_SO_SYSTEM_USER_TOKEN\"\n\
                 private_key = \"env:DSR_SO_PRIVATE_KEY\"      # PEM or <RSAKeyValue> XML, or file:/etc/dsr/superoffice.pem\n\
                 # refresh_token = \"env:DSR_SO_REFRESH\"     # instead of the system user\n\
                 \n\
                 # Related records the company must keep, with the reason the subject is shown:\n\
                 # [[processors.superoffice.retain]]\n\
                 # category = \"Sales\"\n\
                 # reason = \"Sales are accounting records\"\n\
                 # legal_basis = \"Bokføringsloven § 13: kept five years\"\n",
                fill("customer id such as Cust12345"),
                fill("the application's client id from the SuperOffice developer portal"),
            ),
            secrets: vec![
                ("DSR_SO_APP_TOKEN", "the application's client secret"),
                (
                    "DSR_SO_SYSTEM_USER_TOKEN",
                    "the system user token shown when the app was approved for the tenant",
                ),
                ("DSR_SO_PRIVATE_KEY", "the application's RSA private key"),
            ],
            grant: "SuperOffice: have an administrator approve the application for the tenant (system user) with \
                    rights to read and delete persons, appointments, documents, sales and tickets",
        },
        Processor::Wix => Section {
            toml: format!(
                "[processors.wix]\n\
                 site_id = {}\n\
                 api_key = \"env:DSR_WIX_API_KEY\"            # or client_id, client_secret and instance_id (app OAuth)\n\
                 form_namespaces = [\"wix.form_app.form\"]\n",
                fill("the site id, from the site's dashboard URL"),
            ),
            secrets: vec![("DSR_WIX_API_KEY", "an API key from the account's API Keys Manager")],
            grant: "Wix: create the API key with the permissions Contacts, Members, Wix Forms, Comments and \
                    Email Marketing for the site",
        },
        Processor::OpenDsr(name) => Section {
            toml: format!(
                "[processors.opendsr.{name}]\n\
                 url = {}\n\
                 certificate_pin = {}\n\
                 auth_header = \"Authorization\"\n\
                 auth_value = \"env:DSR_OPENDSR_TOKEN\"      # the header's whole value, e.g. Bearer …\n",
                fill("the processor's OpenDSR base URL with its major version, e.g. https://opendsr.example.com/v1"),
                fill("sha256/… of the processor's signing certificate's key (docs/opendsr.md)"),
                name = name.name(),
            ),
            secrets: vec![(
                "DSR_OPENDSR_TOKEN",
                "the credential the processor issued for its OpenDSR API",
            )],
            grant: "OpenDSR: ask the processor for API credentials, its OpenDSR base URL, and the pin of its \
                    signing certificate",
        },
    }
}

/// The file's head: storage, queue, controller and privacy, with their defaults written out.
fn preamble() -> String {
    "# dsr configuration, written by `dsr init`. Every key has a default; `dsr doctor` checks it all.\n\
     # Secrets are references (env:NAME or file:PATH), never inline. DSR_SECTION__KEY=value\n\
     # in the environment overrides a key (DSR_QUEUE__URL=redis://…). Spans of time are\n\
     # written with their unit: \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\".\n\
     \n\
     [store]\n\
     url = \"sqlite://dsr-data/ledger.db\"        # or postgres://user:pass@host/db for several machines\n\
     \n\
     [queue]\n\
     url = \"sqlite://dsr-data/queue.db\"         # or redis://host:6379\n\
     \n\
     [worker]\n\
     give_up_after = \"5m\"                       # a worker whose queue stays away this long exits non-zero for systemd to restart\n\
     heartbeat = \"15s\"                          # each worker writes a heartbeat to the ledger; live within three (`dsr workers`)\n\
     \n\
     [export]\n\
     dir = \"dsr-data/export\"\n\
     retention = \"30d\"                          # bundles and confirmations are deleted this long after the end\n\
     # signing_key = \"file:/etc/dsr/signing-key.pem\"   # openssl genpkey -algorithm ed25519 -out …\n\
     \n\
     [controller]\n\
     name = \"Racom AS\"\n\
     time_zone = \"Europe/Oslo\"\n\
     default_language = \"nb\"                  # or en\n\
     default_phone_region = \"NO\"\n\
     \n\
     [privacy]\n\
     log_key = \"env:DSR_LOG_KEY\"                # keys the hashes that stand in for subjects in logs\n\
     pseudonym_key = \"env:DSR_PSEUDONYM_KEY\"    # keys the pseudonyms of finished requests\n\
     pseudonymise_after = \"90d\"                 # then a finished request's identities become keyed hashes\n\
     \n\
     [erasure]\n\
     approval = \"none\"                        # or required: `dsr approve <id> --plan <hash>` before anything changes\n\
     shared = \"retain\"                        # items that also concern others (or delete; per processor: shared = …)\n\
     \n\
     [rectification]\n\
     approval = \"none\"\n\
     \n\
     [objection]\n\
     approval = \"none\"\n\
     \n\
     [subject]\n\
     operator_verification = \"required\"      # `--verified-by \"ID card at the counter\"` for access, portability, erasure\n\
     deadline_from = \"submission\"             # the request form: the month counts from the form (or verification)\n\
     # public_url = \"https://personvern.example.no\"   # with [smtp]: the form at /privacy/request and e-mailed links\n\
     \n\
     # [smtp]                                   # e-mail to subjects: codes, and links to their finished requests\n\
     # host = \"smtp.example.no\"\n\
     # security = \"starttls\"                  # or tls (port 465)\n\
     # username = \"dsr@example.no\"\n\
     # password = \"env:DSR_SMTP_PASSWORD\"\n\
     # from = \"Personvern <personvern@example.no>\"\n\
     \n\
     [delivery]\n\
     link_ttl = \"7d\"                          # a link to a finished request works this long\n\
     max_downloads = 5\n"
        .to_string()
}

pub fn init(path: &Path, processors: &[String], force: bool, as_json: bool) -> Result<ExitCode, CliError> {
    let mut chosen: Vec<Processor> = Vec::new();
    for name in processors {
        let p: Processor = name
            .trim()
            .parse()
            .map_err(|e| bad_input(format!("--processors: {e}")))?;
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    if chosen.is_empty() {
        chosen = Processor::ALL.to_vec();
    }
    if path.exists() && !force {
        return Err(bad_input(format!(
            "{} exists already: edit it, or pass --force to replace it",
            path.display()
        )));
    }
    let sections: Vec<(Processor, Section)> = chosen.iter().map(|p| (*p, section(*p))).collect();
    let mut text = preamble();
    for (_, s) in &sections {
        text.push('\n');
        text.push_str(&s.toml);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad_input(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, &text).map_err(|e| bad_input(format!("cannot write {}: {e}", path.display())))?;

    let mut secrets = vec![
        ("DSR_LOG_KEY", "a random key, e.g. `openssl rand -hex 32`"),
        ("DSR_PSEUDONYM_KEY", "another random key, kept as long as the ledger"),
    ];
    secrets.extend(sections.iter().flat_map(|(_, s)| s.secrets.iter().copied()));
    let grants: Vec<&str> = sections.iter().map(|(_, s)| s.grant).collect();
    if as_json {
        let names: Vec<&str> = chosen.iter().map(|p| p.as_str()).collect();
        let set: Vec<_> = secrets
            .iter()
            .map(|(name, what)| json!({"variable": name, "what": what}))
            .collect();
        println!(
            "{}",
            json!({"written": path.display().to_string(), "processors": names, "set": set, "grant": grants})
        );
    } else {
        let names: Vec<&str> = chosen.iter().map(|p| p.display_name()).collect();
        println!("Wrote {} for {}.\n", path.display(), names.join(", "));
        println!("1. Fill in the values marked `{PLACEHOLDER}: …>` in it.");
        println!("2. Set these in the environment dsr runs in (or change them to file:PATH):");
        for (name, what) in &secrets {
            println!("     {name:<20} {what}");
        }
        println!("3. Grant access at each processor:");
        for grant in &grants {
            println!("     {grant}");
        }
        println!("4. Run `dsr doctor`: it names whatever is still missing.");
    }
    Ok(ExitCode::SUCCESS)
}
