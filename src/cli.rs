//! The command line: what an operator can ask of dsr.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use dsr_connector::Processor;
use dsr_jobs::model::{Lang, RequestKind, RequestStatus, Role};
use strum::VariantArray;

#[derive(Debug, Parser)]
#[command(
    name = "dsr",
    version,
    about = "Automates GDPR data-subject requests against the processors that hold the data"
)]
pub struct Cli {
    /// Config file (default: $DSR_CONFIG, else ./dsr.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every right against the built-in fake vendors, under ./dsr-demo/ (never against
    /// the processors in your config).
    #[cfg(feature = "demo")]
    Demo,
    /// Not in this build: the fake vendors are left out of the production build (built
    /// without the `demo` feature). Kept, hidden, to say so instead of "unrecognized".
    #[cfg(not(feature = "demo"))]
    #[command(hide = true)]
    Demo,
    /// Write a commented dsr.toml (at --config, else ./dsr.toml) for the processors named,
    /// and print what to set and grant next.
    Init(InitArgs),
    /// Process queued requests until interrupted (Ctrl-C or SIGTERM).
    Worker(WorkerArgs),
    /// Enqueue a request and process it in this process until it ends or --timeout passes.
    Run(RequestArgs),
    /// Enqueue a request for the workers; with --wait, wait for it to end.
    Enqueue(EnqueueArgs),
    /// Show one request and its tasks.
    Status { id: String },
    /// List requests.
    List(ListArgs),
    /// Show the worker processes: live or not, host and pid, last heartbeat and last poll,
    /// and the tasks each holds.
    Workers,
    /// Send a request's failed tasks back to the queue.
    Retry {
        id: String,
        /// Only this processor's task: google, microsoft365, superoffice, wix, or opendsr.<name>.
        #[arg(long, value_parser = processor_name)]
        processor: Option<String>,
    },
    /// Show the plans of an erasure, rectification or objection: every item each processor
    /// will change (or changed), its match, its values before and after, what is kept and
    /// why, and the plan hash to approve.
    Plan { id: String },
    /// Execute exactly the plan shown by `dsr plan` (refused if it was made again since).
    Approve {
        id: String,
        /// The plan hash `dsr plan` printed.
        #[arg(long)]
        plan: String,
        /// Who approves (default: the OS user).
        #[arg(long, value_parser = person_name)]
        by: Option<String>,
    },
    /// End a request awaiting approval as rejected: its waiting plans are not executed.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        /// Who rejects (default: the OS user).
        #[arg(long, value_parser = person_name)]
        by: Option<String>,
    },
    /// Cancel a request that has not ended.
    Cancel { id: String },
    /// E-mail the subject a fresh link to their finished request (earlier links stop
    /// working). Needs [smtp] and [subject] public_url.
    Resend { id: String },
    /// Show the links e-mailed for a request: sent, opened, codes, downloads, refusals.
    Delivery { id: String },
    /// Extend a request's deadline by up to two further months (Art. 12(3)), with a reason.
    Extend {
        id: String,
        #[arg(long)]
        months: u32,
        #[arg(long)]
        reason: String,
    },
    /// Check config, ledger, queue, export storage and every processor's credentials.
    Doctor,
    /// Check a bundle or a confirmation (a file, or its s3://, gs:// or az:// location in the
    /// export store): every file against its manifest, the manifest or confirmation against
    /// the ledger, the Ed25519 signature against [export] signing_key, and the audit chain.
    /// A signature that cannot be checked (none, or no key configured here) fails it.
    Verify {
        bundle: String,
        /// Accept a bundle or confirmation whose signature cannot be checked here: unsigned,
        /// or signed with no [export] signing_key configured.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// The audit log: `dsr audit verify` walks its hash chain.
    Audit {
        #[command(subcommand)]
        what: AuditCommand,
    },
    /// The HTTP API for the company's own systems ([server] listen; API tokens from
    /// `dsr token create`).
    Serve {
        /// Also run a worker in this process (the one-machine setup).
        #[arg(long)]
        with_worker: bool,
    },
    /// API tokens for `dsr serve`: each shown once when created; the ledger keeps its hash.
    Token {
        #[command(subcommand)]
        what: TokenCommand,
    },
    /// The dashboard's operator accounts (`dsr serve`'s /dashboard).
    User {
        #[command(subcommand)]
        what: UserCommand,
    },
    /// Benchmarks (issue 23), each printing its figures as ratios beside their goals: fan-out,
    /// queue overhead, export, footprint, or all of them (docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once.
    Create {
        /// What calls with it, e.g. crm, website-form (unique).
        #[arg(long)]
        name: String,
        /// What it may do (repeatable, or comma-separated): requests:read, requests:write,
        /// requests:approve, audit:read, metrics:read, opendsr:submit.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// Every token: name, scopes, created, last used, revoked.
    List,
    /// Revoke a token by name (it stays listed; calls with it are refused from now on).
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; its password is asked for (or read from stdin with --password-stdin).
    Add {
        name: String,
        /// viewer (reads), operator (also retries, cancels, extends), approver (also approves
        /// and rejects plans).
        #[arg(long, value_parser = one_of::<Role>())]
        role: String,
        /// Read the password from the first line of stdin (scripts), not a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every account: name, role, created, disabled.
    List,
    /// Disable an account and sign it out everywhere.
    Disable { name: String },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The processors to configure, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = one_of_builtin())]
    pub processors: Vec<String>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Do not run the scheduled sweeps in this process.
    #[arg(long)]
    pub no_sweeps: bool,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// What the subject asks for.
    #[arg(value_parser = one_of::<RequestKind>())]
    pub kind: String,
    /// The subject's e-mail address (repeatable).
    #[arg(long)]
    pub email: Vec<String>,
    /// The subject's phone number, national or E.164 (repeatable).
    #[arg(long)]
    pub phone: Vec<String>,
    /// The subject's name: labels the request, never matches on its own (repeatable).
    #[arg(long)]
    pub name: Vec<String>,
    /// A Google Analytics client id (repeatable).
    #[arg(long = "ga-client-id")]
    pub ga_client_id: Vec<String>,
    /// A Google Analytics user id (repeatable).
    #[arg(long = "ga-user-id")]
    pub ga_user_id: Vec<String>,
    /// For rectification: field=value (given_name, family_name, display_name, email, phone,
    /// company, job_title, address; repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Only these processors (default: every configured one; repeatable): google,
    /// microsoft365, superoffice, wix, or opendsr.<name>.
    #[arg(long, value_parser = processor_name)]
    pub processor: Vec<String>,
    /// Language of the subject's texts (default from config).
    #[arg(long, value_parser = one_of::<Lang>())]
    pub lang: Option<String>,
    /// Find and report what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How the subject's identity was checked, e.g. "ID card at the counter" or "reply from
    /// the address on file". Required for access, portability and erasure unless
    /// [subject] operator_verification = "optional"; kept with the request, its hash in the
    /// audit chain.
    #[arg(long = "verified-by", value_name = "HOW")]
    pub verified_by: Option<String>,
    /// Who enters the request (default: the OS user); recorded in its audit event, and with
    /// [erasure] four_eyes they cannot approve its plan.
    #[arg(long, value_name = "NAME", value_parser = person_name)]
    pub by: Option<String>,
    /// Give up waiting after this long (e.g. 90s, 10m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Wait until the request ends (or --timeout passes).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only requests with this status.
    #[arg(long, value_parser = one_of::<RequestStatus>())]
    pub status: Option<String>,
    /// Only requests past their deadline that have not ended.
    #[arg(long)]
    pub overdue: bool,
    /// Only requests that need attention: a task still failing or retrying within
    /// [worker] deadline_warning of the deadline.
    #[arg(long)]
    pub attention: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain and name the first event that was altered or removed (exit 1).
    Verify,
    /// A request's audit events in order, each with its code and its note: the free text
    /// kept beside the chain (an error's words, what the vendor said, a reason), until the
    /// request is pseudonymised.
    Events {
        /// The request's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// An access request whose attachments (--size in all) a fake Graph streams, taken by a
    /// `dsr worker` child: its peak RSS (goal < 100 MiB) and throughput against `zip -1` on
    /// the same files (goal >= 1.8).
    Export {
        /// How much data (e.g. 2GiB, 200MiB).
        #[arg(long, default_value = "2GiB", value_parser = parse_size)]
        size: u64,
        /// Where to write the scratch files (default: the system temp folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Only the bundle writer, from a synthetic spool on local disk (no connector, no queue).
        #[arg(long)]
        local: bool,
    },
    /// One access request over all four fake vendors, each call answered after --latency:
    /// wall time against the critical path computed from the fakes' call logs (goal <= 1.5).
    Fanout {
        #[command(flatten)]
        fanout: FanoutArgs,
    },
    /// Requests per second through dsr on Redis with zero-latency fakes, as a ratio to
    /// apalis-redis no-op jobs in the same shape on the same Redis (goal >= 0.5).
    Queue {
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// A `dsr worker` child process's RSS, idle (goal < 50 MiB) and as the backlog grows
    /// (goal: flat).
    Footprint {
        #[command(flatten)]
        footprint: FootprintArgs,
    },
    /// A backlog on three workers sharing one Redis against a fake Graph that enforces Graph's
    /// limits, scaled down in time: calls refused (goal 0) and share of the limit used
    /// (goal >= 90%).
    Limits {
        /// How many requests in the backlog.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        requests: u32,
        /// The Redis the workers share (keys under a unique prefix, removed afterwards).
        #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
        redis: String,
    },
    /// Every benchmark, then one table of every figure beside its goal.
    All {
        #[command(flatten)]
        fanout: FanoutArgs,
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        footprint: FootprintArgs,
        /// How many requests the limits benchmark's backlog holds.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limits_requests: u32,
        /// How much data the export benchmark writes (e.g. 2GiB, 200MiB).
        #[arg(long, default_value = "2GiB", value_parser = parse_size)]
        export_size: u64,
        /// Where the export benchmark writes its scratch files (default: the system temp folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// How long every fake takes to answer each call (e.g. 40ms; 0ms leaves no critical path).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "40ms")]
    pub latency: Duration,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// How many requests each side runs (few: beyond a burst, the vendors' rate limits that dsr
    /// keeps — Gmail 25 calls a second per user, Wix 200 a minute per site — set the pace).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// The Redis to run on (its keys under a unique prefix, removed afterwards).
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Only these processors (default: all four; repeatable).
    #[arg(long = "processor", value_parser = one_of_builtin())]
    pub processors: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FootprintArgs {
    /// The backlog's sizes, ascending: RSS is read at each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backlog: Vec<u32>,
}

/// Accepts exactly the names of one of our enums (strum's, the ones stored and typed
/// everywhere else), so `--help` lists them and clap refuses any other with the list, exit 2.
/// The value stays the name: the request builder turns it into the enum with `FromStr`, which
/// now cannot fail for these arguments.
/// A processor's name: one of the four, or `opendsr.<name>`.
/// Who acts (`--by`): a name, trimmed, not empty, without control characters.
fn person_name(given: &str) -> Result<String, String> {
    let name = given.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("a name of 1 to 64 characters (a dashboard account's, with [erasure] four_eyes)".into());
    }
    Ok(name.to_string())
}

fn processor_name(given: &str) -> Result<String, dsr_connector::UnknownProcessor> {
    given.parse::<Processor>().map(|p| p.as_str().to_string())
}

/// The four processors with a connector of their own (what `dsr init` can write).
fn one_of_builtin() -> PossibleValuesParser {
    PossibleValuesParser::new(Processor::ALL.map(Processor::as_str))
}

fn one_of<T>() -> PossibleValuesParser
where
    T: VariantArray + Copy + Into<&'static str>,
{
    PossibleValuesParser::new(T::VARIANTS.iter().map(|v| -> &'static str { (*v).into() }))
}

/// A `--size` that is not one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum SizeError {
    #[error("`{given}` is not a size such as 2GiB or 200MB: {reason}")]
    NotASize { given: String, reason: String },
    #[error("`{0}` is too large: the benchmark writes its data to disk, at most 64GiB")]
    TooLarge(String),
}

/// The largest `--size`: the benchmark writes that much to the scratch folder (and the
/// bundle beside it), so a typo such as `8TB` must not fill the disk.
const MAX_BENCH_SIZE: u64 = 64 << 30;

/// Sizes as bytesize reads them: binary units with an `i` (KiB, MiB, GiB: 1024-based),
/// decimal without (kB, MB, GB, or k, m, g: 1000-based), fractions allowed (1.5GiB).
fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let size: bytesize::ByteSize = text.parse().map_err(|reason| SizeError::NotASize {
        given: text.to_string(),
        reason,
    })?;
    // bytesize saturates instead of failing: an overflow is the largest value, refused too.
    match size.as_u64() {
        bytes if bytes > MAX_BENCH_SIZE => Err(SizeError::TooLarge(text.to_string())),
        bytes => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_units_and_bad_ones_are_named() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size(" 200MiB "), Ok(200 << 20));
        assert_eq!(parse_size("8mib"), Ok(8 << 20));
        assert_eq!(parse_size("8m"), Ok(8_000_000), "without the i, decimal");
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64GiB"), Ok(64 << 30));
        assert!(parse_size("8TB").unwrap_err().to_string().contains("at most 64GiB"));
        assert!(parse_size("2XB").unwrap_err().to_string().contains("\"XB\""));
        assert!(parse_size("GiB").unwrap_err().to_string().contains("not a size"));
        assert!(
            parse_size("99999999999999GiB")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn a_request_is_validated_before_anything_is_written() {
        let config = crate::config::Config::default();
        let configured = [dsr_connector::Processor::Wix, dsr_connector::Processor::Google];
        let build = |args: &[&str]| {
            let cli = Cli::try_parse_from(["dsr", "run"].iter().chain(args)).expect("flags parse");
            match cli.command {
                Command::Run(args) => crate::request::build_request(&args, &config, &configured),
                _ => unreachable!("run was given"),
            }
        };
        let ok = build(&[
            "erasure",
            "--email",
            "Kari@Example.no",
            "--email",
            "kari@example.no",
            "--phone",
            "912 34 567",
            "--verified-by",
            " ID card at the counter ",
        ])
        .unwrap();
        assert_eq!(ok.verified_by.as_deref(), Some("ID card at the counter"), "trimmed");
        assert_eq!(ok.identities.emails.len(), 1, "the same address once");
        assert_eq!(
            ok.identities.phones[0].as_str(),
            "+4791234567",
            "read in the controller's region"
        );
        assert_eq!(
            ok.processors,
            configured.to_vec(),
            "every configured processor by default"
        );
        for (args, says) in [
            (vec!["rectification", "--email", "k@example.no"], "at least one --set"),
            (
                vec!["access", "--email", "k@example.no", "--set", "family_name=X"],
                "only to rectification",
            ),
            (
                vec!["access", "--email", "k@example.no", "--dry-run"],
                "--dry-run applies",
            ),
            (vec!["erasure", "--name", "Kari"], "a --name alone"),
            (
                vec![
                    "erasure",
                    "--email",
                    "k@example.no",
                    "--processor",
                    "superoffice",
                    "--verified-by",
                    "x",
                ],
                "superoffice",
            ),
            (vec!["access", "--email", "k@example.no"], "--verified-by"),
            (
                vec!["erasure", "--email", "k@example.no", "--verified-by", ""],
                "may not be empty",
            ),
            (vec!["erasure", "--email", "not an address"], "not an address"),
        ] {
            let err = build(&args).expect_err("refused");
            assert!(err.message().contains(says), "{args:?}: {}", err.message());
        }
    }

    /// Kinds, processors, languages and statuses are the enums' names: clap refuses any other
    /// naming the allowed ones, and `--help` lists them.
    #[test]
    fn enum_arguments_take_only_the_enums_names() {
        let refused = |args: &[&str], allowed: &str| {
            let err = Cli::try_parse_from(args).expect_err("refused by clap");
            // A fixed list (InvalidValue), or a processor's name checked by its parser.
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation
                ),
                "{args:?}: {err}"
            );
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(text.contains(allowed), "{args:?} should list `{allowed}`: {text}");
        };
        let kinds = "access, erasure, rectification, objection, portability";
        let processors = "google, microsoft365, superoffice, wix";
        let or_opendsr = "google, microsoft365, superoffice, wix, or opendsr.<name>";
        refused(&["dsr", "run", "shred", "--email", "k@example.no"], kinds);
        refused(&["dsr", "enqueue", "Access"], kinds);
        refused(&["dsr", "run", "access", "--processor", "nope"], or_opendsr);
        refused(&["dsr", "retry", "id", "--processor", "dropbox"], or_opendsr);
        refused(&["dsr", "init", "--processors", "google,dropbox"], processors);
        refused(&["dsr", "run", "access", "--lang", "de"], "nb, en");
        refused(&["dsr", "list", "--status", "done"], "in_progress");
        let ok = Cli::try_parse_from([
            "dsr",
            "run",
            "portability",
            "--processor",
            "microsoft365",
            "--lang",
            "en",
        ]);
        assert!(ok.is_ok(), "{ok:?}");

        use clap::CommandFactory;
        let mut command = Cli::command();
        let run = command
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        for listed in [kinds, processors, "nb, en"] {
            assert!(run.contains(listed), "dsr run --help should list {listed}: {run}");
        }
    }
}
