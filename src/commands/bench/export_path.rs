//! `dsr bench export`: a large export through the real connector path. The fake Graph (in
//! this process) holds one more message to the demo's subject, in Ola's mailbox, with
//! sixteen file attachments that together make `--size`, each streamed over HTTP as it is
//! sent (noise from a seed: never held whole by the fake). A real `dsr worker` — this binary
//! as a child process, on a scratch deployment with the embedded SQLite ledger and queue —
//! takes one access request at Microsoft 365: it searches, reads, downloads the attachments
//! (up to four at once, Graph's per-mailbox limit) into its spool, and writes the signed
//! bundle (deflating on every core).
//!
//! Measured: the wall time from the request being queued to its end, and the worker's peak
//! resident memory (`VmHWM` of the child, so the fake's memory is not counted). Baseline:
//! `zip -1` (Info-ZIP, one thread) over the same sixteen files — the very same bytes,
//! written to disk from the same seeds first — timed alone. **Goals: peak RSS < 100 MiB;
//! throughput ≥ 1.8 × `zip -1`** (issue 23, with two cores).
//!
//! The attachments' type is one the bundle writer deflates (not an image or a PDF, which it
//! stores as they are), so both sides do the same compression work.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dsr_connector::Processor;
use dsr_fixtures::graph::{Attachment, Content, GraphFake};
use dsr_fixtures::synthetic::Synthetic;
use dsr_jobs::model::RequestStatus;
use serde_json::json;

use super::{Figure, Goal, bench_io, cpu_time, status_kib};
use crate::commands::demo;
use crate::config::Config;
use crate::error::{CliError, bad_input};

const BENCH: &str = "export";
const FILES: u64 = 16;
/// The message that carries the attachments: a copy of the seed's offer to Kari in Ola's
/// mailbox (so the demo subject's search finds it).
const TEMPLATE: &str = "m-ola-2";
/// Not one the bundle writer stores as already compressed.
const MEDIA_TYPE: &str = "application/x-dsr-synthetic";
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

pub async fn export(loaded: &Config, size: u64, dir: Option<&Path>, as_json: bool) -> Result<ExitCode, CliError> {
    let figures = run(loaded, size, dir, as_json).await?;
    super::report(&figures, as_json)
}

/// Runs the benchmark in a scratch folder under `dir` (default: the system temp folder),
/// printing its account unless `quiet`, and returns its figures.
pub async fn run(loaded: &Config, size: u64, dir: Option<&Path>, quiet: bool) -> Result<Vec<Figure>, CliError> {
    if size < FILES {
        return Err(bad_input(format!("--size must be at least {FILES} bytes")));
    }
    let mut scratch = tempfile::Builder::new();
    scratch.prefix("dsr-bench-export-");
    let scratch = match dir {
        Some(d) => scratch.tempdir_in(d),
        None => scratch.tempdir(),
    }
    .map_err(bench_io("create a scratch folder"))?;
    let root = scratch.path();
    let graph = GraphFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake Graph on loopback: {e}")))?;
    let files = attachments(size);
    add_message(&graph, &files)?;
    let config_path = super::graph_deployment(loaded, root, &graph)?;
    let config = Config::load(Some(config_path.as_path()))?;
    let engine = crate::wiring::engine(&config).await?;
    let mut child = super::spawn_worker(&config_path, root)?;
    let measured = async {
        let pid = super::wait_for_poll(&engine, &mut child).await?;
        if !quiet {
            println!(
                "export: one access request at Microsoft 365 with {FILES} attachments of {} MiB each, streamed by the \
                 fake Graph, taken by `dsr worker` (pid {pid})",
                files[0].len >> 20
            );
        }
        let started = Instant::now();
        let cpu_before = cpu_time(pid);
        let id = engine
            .enqueue(super::access_request(
                &demo::demo_subject(&config)?,
                vec![Processor::Microsoft365],
            ))
            .await?;
        let status = loop {
            let status = engine.ledger().get_request(&id).await?.status;
            if status.is_terminal() || started.elapsed() > GIVE_UP_AFTER {
                break status;
            }
            if let Ok(Some(ended)) = child.try_wait() {
                return Err(CliError::Failed(anyhow::anyhow!("`dsr worker` ended ({ended})")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let wall = started.elapsed();
        let busy = cpu_time(pid)
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64());
        let peak = status_kib(&pid.to_string(), "VmHWM:");
        if status != RequestStatus::Completed {
            return Err(CliError::Failed(anyhow::anyhow!(
                "the request ended {} after {wall:.1?}: see `dsr status` on {}",
                status.as_str(),
                config_path.display()
            )));
        }
        Ok((wall, busy, peak))
    }
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let (wall, busy, peak) = match measured {
        Ok(m) => m,
        Err(e) => {
            super::print_worker_log(root);
            return Err(e);
        }
    };
    let bundle = largest_zip(&root.join("export")).unwrap_or(0);
    // The bundle, the spool and the worker are done with: the baseline gets the disk to itself.
    let _ = std::fs::remove_dir_all(root.join("export"));
    let baseline = zip_baseline(root, &files)?;

    let mib = |bytes: u64| bytes as f64 / f64::from(1u32 << 20);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ratio = baseline.map(|theirs| theirs.as_secs_f64() / wall.as_secs_f64());
    if !quiet {
        println!(
            "attachments        {:.0} MiB in {FILES} files (bundle {:.0} MiB)",
            mib(size),
            mib(bundle)
        );
        println!(
            "dsr                {:.1} s, {:.0} MiB/s (queued to completed: search, read, download, spool, bundle)",
            wall.as_secs_f64(),
            mib(size) / wall.as_secs_f64()
        );
        if let Some(busy) = busy {
            println!("cores busy         {busy:.2} of {cores} in the worker (its CPU time / wall time)");
        }
        match peak {
            Some(kib) => println!(
                "worker peak RSS    {:.1} MiB (VmHWM; goal < 100 MiB)",
                kib as f64 / 1024.0
            ),
            None => println!("worker peak RSS    unavailable (needs Linux /proc)"),
        }
        match (baseline, ratio) {
            (Some(theirs), Some(ratio)) => {
                println!(
                    "zip -1             {:.1} s, {:.0} MiB/s (the same files, already on disk)",
                    theirs.as_secs_f64(),
                    mib(size) / theirs.as_secs_f64()
                );
                println!("throughput ratio   {ratio:.2} × zip -1 (goal ≥ 1.8 with two cores)");
            }
            _ => println!("zip -1             not run: install zip (apt-get install zip) for the ratio"),
        }
    }
    Ok(vec![
        Figure::new(
            BENCH,
            "worker peak RSS, export through Graph",
            peak.map(|kib| kib as f64 / 1024.0),
            "MiB",
            Goal::AtMost(100.0),
        )
        .note(format!("{:.0} MiB in {FILES} attachments", mib(size))),
        Figure::new(BENCH, "cores busy in the worker", busy, "x", Goal::None).note(format!("of {cores}")),
        Figure::new(
            BENCH,
            "throughput vs zip -1 (through the connector)",
            ratio,
            "x",
            Goal::AtLeast(1.8),
        )
        .note(match ratio {
            Some(_) => "queued to completed, against zip -1 on the same files",
            None => "zip not installed",
        }),
    ])
}

/// Sixteen attachments that together make `size` bytes.
fn attachments(size: u64) -> Vec<Synthetic> {
    (0..FILES)
        .map(|i| Synthetic {
            len: size / FILES + u64::from(i < size % FILES),
            seed: 0x9E37_79B9_7F4A_7C15 ^ i,
        })
        .collect()
}

fn file_name(i: usize) -> String {
    format!("vedlegg-{:02}.bin", i + 1)
}

/// Adds the message with `files` as its attachments to the fake.
fn add_message(graph: &GraphFake, files: &[Synthetic]) -> Result<(), CliError> {
    graph.with(|s| {
        let mut message = s
            .messages
            .iter()
            .find(|m| m.json["id"] == TEMPLATE)
            .cloned()
            .ok_or_else(|| bad_input(format!("the fake Graph's seed has no message {TEMPLATE}")))?;
        message.json["id"] = json!("m-bench-export");
        message.json["hasAttachments"] = json!(true);
        message.attachments = files
            .iter()
            .enumerate()
            .map(|(i, file)| Attachment {
                id: format!("a-bench-{i}"),
                name: file_name(i),
                content_type: MEDIA_TYPE.into(),
                content: Content::Synthetic(*file),
            })
            .collect();
        s.messages.push(message);
        Ok(())
    })
}

/// Writes the same files under `root/zip-1` and times `zip -1` over them; `None` without zip.
fn zip_baseline(root: &Path, files: &[Synthetic]) -> Result<Option<Duration>, CliError> {
    let dir = root.join("zip-1");
    std::fs::create_dir_all(&dir).map_err(bench_io("create the baseline's folder"))?;
    for (i, file) in files.iter().enumerate() {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(dir.join(file_name(i))).map_err(bench_io("write the baseline's files"))?,
        );
        file.write_to(&mut out)
            .map_err(bench_io("write the baseline's files"))?;
        std::io::Write::flush(&mut out).map_err(bench_io("write the baseline's files"))?;
    }
    let started = Instant::now();
    let zipped = std::process::Command::new("zip")
        .current_dir(&dir)
        .args(["-1", "-q", "-r", "../zip-1.zip", "."])
        .status();
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(root.join("zip-1.zip"));
    Ok(matches!(zipped, Ok(status) if status.success()).then_some(took))
}

/// The size of the largest `.zip` under `dir` (the bundle).
fn largest_zip(dir: &Path) -> Option<u64> {
    let mut largest = None;
    let mut folders: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "zip") {
                largest = largest.max(Some(meta.len()));
            }
        }
    }
    largest
}
