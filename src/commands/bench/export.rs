//! `dsr bench export`: writes a large synthetic export through the real bundle writer and
//! reports throughput, peak memory, and the ratio to `zip -1` on the same files. Performance
//! goals are checked here, by a person reading the numbers, never by a timed test.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dsr_connector::{Email, Identities, Processor, Record, StoredFile};
use dsr_jobs::model::{Lang, Outcome, Request, RequestKind, Task, TaskStatus};
use dsr_jobs::spool::{SpoolEntry, spool_key};
use dsr_jobs::storage::ExportStore;
use serde_json::json;

use crate::error::{CliError, bad_input};

use super::{Figure, Goal, bench_io, cpu_time, peak_rss_kib};

/// Bytes that compress about as badly as real attachments (xorshift noise).
fn noise(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A spool of about `size` bytes in a local export store at `root`: JSON records (a fifth)
/// and attachment files (the rest). Written straight to the files behind the store's keys.
fn write_spool(root: &Path, size: u64) -> Result<String, CliError> {
    let key = spool_key("bench", Processor::Microsoft365, 1);
    let spool = root.join(key.as_ref());
    let files = root.join(format!("{key}.files")).join("attachments");
    std::fs::create_dir_all(&files).map_err(bench_io("create the spool"))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&spool).map_err(bench_io("create the spool"))?);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut written = 0u64;
    let mut n = 0u64;
    let mut chunk = vec![0u8; 1 << 20];
    while written < size {
        n += 1;
        let record = Record {
            category: if n.is_multiple_of(3) {
                "contacts".into()
            } else {
                "mail".into()
            },
            id: Some(format!("m-{n}")),
            provided_by_subject: n.is_multiple_of(2),
            data: json!({"id": format!("m-{n}"), "subject": format!("Melding {n} om sensorer og tunneler"),
                "from": {"emailAddress": {"name": "Kari Nordmann", "address": "kari.nordmann@example.no"}},
                "body": {"contentType": "text", "content": "Hei! Dette er en syntetisk melding med æøå. ".repeat(40)}}),
            claims: vec![dsr_connector::MatchClaim::email("/from/emailAddress/address")],
        };
        let line = serde_json::to_vec(&SpoolEntry::Record(record)).map_err(|e| bad_input(e.to_string()))?;
        out.write_all(&line)
            .and_then(|_| out.write_all(b"\n"))
            .map_err(bench_io("write the spool"))?;
        written += line.len() as u64;
        if n.is_multiple_of(4) {
            // A 4 MiB attachment, streamed to disk.
            let name = format!("{n:06}-vedlegg.bin");
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(files.join(&name)).map_err(bench_io("write an attachment"))?,
            );
            for _ in 0..4 {
                noise(&mut seed, &mut chunk);
                file.write_all(&chunk).map_err(bench_io("write an attachment"))?;
            }
            file.flush().map_err(bench_io("write an attachment"))?;
            let stored = StoredFile {
                path: format!("attachments/{name}"),
                // A type the writer deflates, so both sides of the comparison do the same work.
                media_type: "application/x-dsr-synthetic".into(),
                bytes: 4 << 20,
                sha256: String::new(),
            };
            let line = serde_json::to_vec(&SpoolEntry::File(stored)).map_err(|e| bad_input(e.to_string()))?;
            out.write_all(&line)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(bench_io("write the spool"))?;
            written += 4 << 20;
        }
    }
    out.flush().map_err(bench_io("write the spool"))?;
    Ok(key.to_string())
}

/// The export benchmark's account, printed; see [`run`].
pub async fn export(size: u64, dir: Option<&Path>) -> Result<ExitCode, CliError> {
    run(size, dir, false).await?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a synthetic spool of `size` bytes, the bundle from it with the real bundle writer,
/// and a ZIP of the same files with `zip -1`; prints what it did unless `quiet`, and returns
/// the figures: peak RSS, the throughput ratio, and how many cores the writer kept busy.
pub async fn run(size: u64, dir: Option<&Path>, quiet: bool) -> Result<Vec<Figure>, CliError> {
    let base = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir(),
    };
    let work = base.join(format!("dsr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(bench_io("create the work folder"))?;
    let result = measure(size, &work, quiet).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn measure(size: u64, work: &Path, quiet: bool) -> Result<Vec<Figure>, CliError> {
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    eprintln!("writing a {} MiB synthetic spool under {}", size >> 20, work.display());
    let spool = write_spool(work, size)?;
    let store = ExportStore::local(work).map_err(|e| CliError::Unreachable(format!("benchmark: {e}")))?;
    let before = peak_rss_kib();

    let identities = Identities {
        emails: vec![Email::parse("kari.nordmann@example.no").map_err(bad_input)?],
        ..Default::default()
    };
    // A fixed clock: the same size gives the same bundle, byte for byte.
    let at = DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .map_err(|e| bad_input(e.to_string()))?
        .with_timezone(&Utc);
    let request = Request::received("bench", RequestKind::Access, identities, Lang::Nb, at);
    let task = Task {
        outcome: Some(Outcome::Done),
        evidence: json!({"notes": []}),
        spool: Some(spool),
        ..Task::attempted("bench", Processor::Microsoft365, TaskStatus::Succeeded)
    };
    let cpu_before = cpu_time("self");
    let started = Instant::now();
    let written = dsr_jobs::bundle::write_bundle_at(
        &store,
        &request,
        &[task],
        &dsr_jobs::bundle::ProcessingInfo::example(),
        None,
        at,
    )
    .await
    .map_err(CliError::from)?;
    let ours = started.elapsed();
    let busy = cpu_time("self")
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64() / ours.as_secs_f64());
    let peak = peak_rss_kib();
    let bundle_size = std::fs::metadata(&written.location).map(|m| m.len()).unwrap_or(0);

    let mib = size as f64 / (1u64 << 20) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    say(format!(
        "export size        {mib:.0} MiB (bundle {:.0} MiB)",
        bundle_size as f64 / (1u64 << 20) as f64
    ));
    say(format!(
        "dsr bundle writer  {:.1} s, {:.0} MiB/s",
        ours.as_secs_f64(),
        mib / ours.as_secs_f64()
    ));
    if let Some(busy) = busy {
        say(format!(
            "cores busy         {busy:.2} of {cores} while writing (CPU time / wall time)"
        ));
    }
    match (before, peak) {
        (Some(b), Some(p)) => say(format!(
            "peak RSS           {} MiB (before writing: {} MiB; target < 100 MiB)",
            p / 1024,
            b / 1024
        )),
        _ => say("peak RSS           unavailable (needs Linux /proc)".into()),
    }
    let mut figures = vec![
        Figure::new(
            "export",
            "peak RSS writing the bundle",
            peak.map(|p| p as f64 / 1024.0),
            "MiB",
            Goal::AtMost(100.0),
        )
        .note(format!("{mib:.0} MiB export")),
        Figure::new("export", "cores busy writing the bundle", busy, "x", Goal::None).note(format!("of {cores}")),
    ];
    let zip_started = Instant::now();
    let zip = std::process::Command::new("zip")
        .current_dir(work.join("spool"))
        .args(["-1", "-q", "-r", "../zip-1.zip", "."])
        .status();
    let ratio = match zip {
        Ok(status) if status.success() => {
            let theirs = zip_started.elapsed();
            let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
            say(format!(
                "zip -1             {:.1} s, {:.0} MiB/s",
                theirs.as_secs_f64(),
                mib / theirs.as_secs_f64()
            ));
            say(format!(
                "throughput ratio   {ratio:.2} × zip -1 (issue 23: ≥ 1.8 with two cores)"
            ));
            Some(ratio)
        }
        _ => {
            say("zip -1             not run: install zip (apt-get install zip) for the ratio".into());
            None
        }
    };
    figures.push(
        Figure::new(
            "export",
            "throughput vs zip -1 (local spool)",
            ratio,
            "x",
            Goal::AtLeast(1.8),
        )
        .note(match ratio {
            Some(_) => "same files, side by side; not yet through the connector".to_string(),
            None => "zip not installed".to_string(),
        }),
    );
    Ok(figures)
}
