//! `dsr`: the command line over the jobs library. Parses, loads config, dispatches.

mod cli;
mod commands;
mod config;
mod error;
mod output;
mod request;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AuditCommand, BenchCommand, Cli, Command};
use crate::commands::{admin, bench, demo, doctor, init, plans, requests, verify, worker, workers};
use crate::error::CliError;

fn main() -> ExitCode {
    owner_only();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DSR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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

async fn dispatch(cli: &Cli) -> Result<ExitCode, CliError> {
    // `init` writes the config, so it runs before there is one to load.
    if let Command::Init(args) = &cli.command {
        let path = cli
            .config
            .clone()
            .or_else(|| std::env::var_os("DSR_CONFIG").map(std::path::PathBuf::from))
            .unwrap_or_else(|| "dsr.toml".into());
        return init::init(&path, &args.processors, args.force, cli.json);
    }
    let config = config::Config::load(cli.config.as_deref())?;
    let json = cli.json;
    match &cli.command {
        Command::Demo => demo::demo(&config, json).await,
        Command::Init(_) => Err(CliError::BadInput("init runs before the config is loaded".into())),
        Command::Worker(args) => worker::worker(&config, args).await,
        Command::Run(args) => requests::run(&config, args, json).await,
        Command::Enqueue(args) => requests::enqueue(&config, args, json).await,
        Command::Status { id } => requests::status(&config, id, json).await,
        Command::List(args) => requests::list(&config, args, json).await,
        Command::Workers => workers::workers(&config, json).await,
        Command::Retry { id, processor } => admin::retry(&config, id, processor.as_deref(), json).await,
        Command::Cancel { id } => admin::cancel(&config, id, json).await,
        Command::Plan { id } => plans::show(&config, id, json).await,
        Command::Approve { id, plan, by } => plans::approve(&config, id, plan, by.as_deref(), json).await,
        Command::Reject { id, reason, by } => plans::reject(&config, id, reason, by.as_deref(), json).await,
        Command::Extend { id, months, reason } => admin::extend(&config, id, *months, reason, json).await,
        Command::Doctor => doctor::doctor(&config, json).await,
        Command::Verify { bundle, allow_unsigned } => verify::verify(&config, bundle, *allow_unsigned, json).await,
        Command::Audit {
            what: AuditCommand::Verify,
        } => verify::audit_verify(&config, json).await,
        Command::Audit {
            what: AuditCommand::Events { id },
        } => verify::audit_events(&config, id, json).await,
        Command::Bench {
            what: BenchCommand::Export { size, dir },
        } => bench::export(*size, dir.as_deref()).await,
    }
}
