//! `dsr`: the command line over the jobs library. Parses, loads config, dispatches.

mod cli;
mod commands;
mod config;
mod error;
mod opendsr;
mod output;
mod request;
mod server;
mod subject;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AuditCommand, BenchCommand, Cli, Command};
#[cfg(feature = "demo")]
use crate::commands::demo;
use crate::commands::{admin, bench, delivery, doctor, init, plans, requests, token, users, verify, worker, workers};
use crate::error::CliError;

fn main() -> ExitCode {
    owner_only();
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.message());
            e.exit_code()
        }
    }
}

/// Everything dsr creates (the ledger and its -wal/-shm files, the SQLite queue, the export
/// storage and object_store's staging files, lock files) is readable by its owner only, from
/// its first byte: directories 0700, files 0600.
fn owner_only() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail, and no
    // other thread runs yet.
    unsafe {
        libc::umask(0o077);
    }
}

/// Logs to stderr at `DSR_LOG` (default `warn`), as text or one JSON object per line
/// (`[log] format`); subjects appear only as keyed hashes either way.
fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DSR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
}

async fn dispatch(cli: &Cli) -> Result<ExitCode, CliError> {
    // `init` writes the config, so it runs before there is one to load.
    if let Command::Init(args) = &cli.command {
        let path = cli
            .config
            .clone()
            .or_else(|| std::env::var_os("DSR_CONFIG").map(std::path::PathBuf::from))
            .unwrap_or_else(|| "dsr.toml".into());
        init_logging(config::LogFormat::Text);
        return init::init(&path, &args.processors, args.force, cli.json);
    }
    // Said before the config is loaded, so a missing or broken config cannot hide why.
    #[cfg(not(feature = "demo"))]
    if let Command::Demo = cli.command {
        return Err(no_demo());
    }
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            init_logging(config::LogFormat::Text);
            return Err(e.into());
        }
    };
    init_logging(config.log.format);
    // On stderr, so `--json` output stays one document.
    for line in &config.deprecations {
        eprintln!("warning: {line}");
    }
    let json = cli.json;
    match &cli.command {
        #[cfg(feature = "demo")]
        Command::Demo => demo::demo(&config, json).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo => Err(no_demo()),
        Command::Init(_) => Err(CliError::BadInput("init runs before the config is loaded".into())),
        Command::Worker(args) => worker::worker(&config, args).await,
        Command::Run(args) => requests::run(&config, args, json).await,
        Command::Enqueue(args) => requests::enqueue(&config, args, json).await,
        Command::Status { id } => requests::status(&config, id, json).await,
        Command::List(args) => requests::list(&config, args, json).await,
        Command::Workers => workers::workers(&config, json).await,
        Command::Retry { id, processor } => admin::retry(&config, id, processor.as_deref(), json).await,
        Command::Cancel { id } => admin::cancel(&config, id, json).await,
        Command::Resend { id } => delivery::resend(&config, id, json).await,
        Command::Delivery { id } => delivery::show(&config, id, json).await,
        Command::Plan { id } => plans::show(&config, id, json).await,
        Command::Approve { id, plan, by } => plans::approve(&config, id, plan, by.as_deref(), json).await,
        Command::Reject { id, reason, by } => plans::reject(&config, id, reason, by.as_deref(), json).await,
        Command::Extend { id, months, reason } => admin::extend(&config, id, *months, reason, json).await,
        Command::Doctor => doctor::doctor(&config, json).await,
        Command::Serve { with_worker } => server::serve(&config, *with_worker).await,
        Command::Token { what } => token::token(&config, what, json).await,
        Command::User { what } => users::user(&config, what, json).await,
        Command::Verify { bundle, allow_unsigned } => verify::verify(&config, bundle, *allow_unsigned, json).await,
        Command::Audit {
            what: AuditCommand::Verify,
        } => verify::audit_verify(&config, json).await,
        Command::Audit {
            what: AuditCommand::Events { id },
        } => verify::audit_events(&config, id, json).await,
        Command::Bench { what } => bench_command(&config, what, json).await,
    }
}

async fn bench_command(config: &config::Config, what: &BenchCommand, json: bool) -> Result<ExitCode, CliError> {
    let backlog = |b: &[u32]| b.iter().map(|n| *n as usize).collect::<Vec<_>>();
    match what {
        BenchCommand::Export { size, dir, local: true } => bench::export::export(*size, dir.as_deref()).await,
        #[cfg(feature = "demo")]
        BenchCommand::Export {
            size,
            dir,
            local: false,
        } => bench::export_path::export(config, *size, dir.as_deref(), json).await,
        #[cfg(not(feature = "demo"))]
        BenchCommand::Export { local: false, .. } => Err(bench::needs_demo("export")),
        #[cfg(feature = "demo")]
        BenchCommand::Fanout { fanout } => bench::fanout::fanout(config, fanout.latency, json).await,
        #[cfg(feature = "demo")]
        BenchCommand::Queue { queue } => bench::queue::queue(config, &bench_queue_args(queue), json).await,
        #[cfg(feature = "demo")]
        BenchCommand::Footprint { footprint } => {
            bench::footprint::footprint(config, &backlog(&footprint.backlog), json).await
        }
        #[cfg(feature = "demo")]
        BenchCommand::Limits { requests, redis } => {
            bench::limits::limits(config, *requests as usize, redis, json).await
        }
        #[cfg(not(feature = "demo"))]
        BenchCommand::Limits { .. } => Err(bench::needs_demo("limits")),
        #[cfg(not(feature = "demo"))]
        BenchCommand::Fanout { .. } => Err(bench::needs_demo("fanout")),
        #[cfg(not(feature = "demo"))]
        BenchCommand::Queue { .. } => Err(bench::needs_demo("queue")),
        #[cfg(not(feature = "demo"))]
        BenchCommand::Footprint { .. } => Err(bench::needs_demo("footprint")),
        BenchCommand::All {
            fanout,
            queue,
            footprint,
            limits_requests,
            export_size,
            dir,
        } => {
            let args = bench::all::AllArgs {
                latency: fanout.latency,
                queue: bench_queue_args(queue),
                limits_requests: *limits_requests as usize,
                backlog: &backlog(&footprint.backlog),
                export_size: *export_size,
                dir: dir.as_deref(),
            };
            bench::all::all(config, &args, json).await
        }
    }
}

fn bench_queue_args(args: &cli::QueueArgs) -> bench::QueueBench {
    bench::QueueBench {
        requests: args.requests as usize,
        redis: args.redis.clone(),
        // clap took only the processors' names.
        processors: args.processors.iter().filter_map(|p| p.parse().ok()).collect(),
    }
}

/// `dsr demo` in a build without the fake vendors.
#[cfg(not(feature = "demo"))]
fn no_demo() -> CliError {
    CliError::BadInput(
        "`dsr demo` is not in this build: production builds leave out the fake vendors it runs \
         against. Build with the `demo` feature (on by default: `cargo run --release -- demo`)"
            .into(),
    )
}
