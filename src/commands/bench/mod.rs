//! `dsr bench`: the performance goals of issue 23, each measured side by side in one run and
//! printed as a ratio. Goals are read by a person from these numbers (and recorded in
//! `docs/performance.md`), never checked by a timed test.
//!
//! Each benchmark returns its [`Figure`]s; `dsr bench <name>` prints them after its own
//! account of what it did, and `dsr bench all` ([`all`]) runs every benchmark and prints one
//! summary table.

pub mod all;
#[cfg(feature = "demo")]
pub mod critical_path;
pub mod export;
#[cfg(feature = "demo")]
pub mod export_path;
#[cfg(feature = "demo")]
pub mod fanout;
#[cfg(feature = "demo")]
pub mod footprint;
#[cfg(feature = "demo")]
pub mod limits;
#[cfg(feature = "demo")]
pub mod queue;
#[cfg(feature = "demo")]
mod resp;

/// Peak resident memory of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("self", "VmHWM:")
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`); `pid` may be `self`.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time process `pid` (or `self`) has used so far (user and system, all threads), from
/// `/proc/<pid>/stat`; `None` off Linux.
pub fn cpu_time(pid: impl std::fmt::Display) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // state is the first, utime and stime (clock ticks) the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, which Linux fixes at 100 for /proc whatever the kernel's own tick rate.
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// An access request for `subject` at `processors`, received now: what every benchmark sends.
#[cfg(feature = "demo")]
pub fn access_request(
    subject: &dsr_connector::Identities,
    processors: Vec<dsr_connector::Processor>,
) -> dsr_jobs::model::NewRequest {
    dsr_jobs::model::NewRequest {
        kind: dsr_jobs::model::RequestKind::Access,
        identities: subject.clone(),
        changes: vec![],
        lang: dsr_jobs::model::Lang::En,
        dry_run: false,
        processors,
        received_at: chrono::Utc::now(),
        verified_by: None,
        verified_at: None,
    }
}

/// How long a benchmark waits for its `dsr worker` child to ask its queue for work.
#[cfg(feature = "demo")]
const WAIT_FOR_WORKER: std::time::Duration = std::time::Duration::from_secs(120);

/// Writes a scratch deployment's config at `root/dsr.toml`: ledger, queue and exports under
/// `root`, the worker's pacing from the loaded config, and Microsoft 365 pointed at `graph`.
#[cfg(feature = "demo")]
pub(crate) fn graph_deployment(
    loaded: &crate::config::Config,
    root: &std::path::Path,
    graph: &dsr_fixtures::graph::GraphFake,
) -> Result<std::path::PathBuf, crate::error::CliError> {
    use crate::commands::demo::toml_string;
    let processor = graph
        .connector_toml(&root.join("graph-client-secret"))
        .map_err(bench_io("write the fake's secret"))?;
    let text = format!(
        "[store]\nurl = {}\n\n[queue]\nurl = {}\npoll = \"{}\"\n\n[worker]\nconcurrency = {}\n\n[export]\ndir = {}\n\n\
         [processors.microsoft365]\n{processor}",
        toml_string(&format!("sqlite://{}/ledger.db", root.display())),
        toml_string(&format!("sqlite://{}/queue.db", root.display())),
        humantime::format_duration(loaded.queue.poll),
        loaded.worker.concurrency,
        toml_string(&root.join("export").display().to_string()),
    );
    let file = root.join("dsr.toml");
    std::fs::write(&file, text).map_err(bench_io("write the scratch config"))?;
    Ok(file)
}

/// Starts this program as `dsr worker` on the deployment `config` (its log in
/// `root/worker.log`); it is killed if dropped.
#[cfg(feature = "demo")]
pub(crate) fn spawn_worker(
    config: &std::path::Path,
    root: &std::path::Path,
) -> Result<tokio::process::Child, crate::error::CliError> {
    let exe = std::env::current_exe().map_err(bench_io("find this program"))?;
    let log = std::fs::File::create(root.join("worker.log")).map_err(bench_io("create the worker's log"))?;
    tokio::process::Command::new(exe)
        .arg("--config")
        .arg(config)
        .arg("worker")
        .env_remove("DSR_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(bench_io("start `dsr worker`"))
}

/// Waits until the `dsr worker` child has asked its queue for work (as the ledger's worker
/// registry says); returns its pid.
#[cfg(feature = "demo")]
pub(crate) async fn wait_for_poll(
    engine: &dsr_jobs::Engine,
    child: &mut tokio::process::Child,
) -> Result<u32, crate::error::CliError> {
    use crate::error::CliError;
    let pid = child
        .id()
        .ok_or_else(|| CliError::Failed(anyhow::anyhow!("`dsr worker` ended as it started")))?;
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::Failed(anyhow::anyhow!(
                "`dsr worker` ended at once ({status})"
            )));
        }
        let workers = engine.ledger().workers().await?;
        if workers.iter().any(|w| w.pid == pid && w.last_poll_at.is_some()) {
            return Ok(pid);
        }
        if started.elapsed() > WAIT_FOR_WORKER {
            return Err(CliError::Failed(anyhow::anyhow!(
                "`dsr worker` did not poll its queue within {WAIT_FOR_WORKER:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Prints the last lines of the `dsr worker` child's log (when a benchmark failed).
#[cfg(feature = "demo")]
pub(crate) fn print_worker_log(root: &std::path::Path) {
    let said = std::fs::read_to_string(root.join("worker.log")).unwrap_or_default();
    let tail: Vec<&str> = said.lines().rev().take(5).collect();
    if !tail.is_empty() {
        eprintln!("the worker's last words:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
}

/// A benchmark's file or process error, saying what it could not do.
pub(crate) fn bench_io(what: &str) -> impl Fn(std::io::Error) -> crate::error::CliError + '_ {
    move |e| crate::error::CliError::Unreachable(format!("benchmark: cannot {what}: {e}"))
}

/// What `dsr bench queue` runs: how many requests, on which Redis, at which processors (none
/// named: every one).
#[derive(Debug, Clone)]
// Read only by the queue benchmark, which needs the fakes (`demo`).
#[cfg_attr(not(feature = "demo"), allow(dead_code))]
pub struct QueueBench {
    pub requests: usize,
    pub redis: String,
    pub processors: Vec<dsr_connector::Processor>,
}

/// What a figure must be to meet its goal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// Nothing to compare (a figure printed for context).
    None,
}

impl Goal {
    pub fn met_by(&self, value: f64) -> Option<bool> {
        match *self {
            Goal::AtMost(goal) => Some(value <= goal),
            Goal::AtLeast(goal) => Some(value >= goal),
            Goal::None => None,
        }
    }

    fn describe(&self, unit: &str) -> String {
        let unit = if unit.is_empty() || unit == "x" {
            String::new()
        } else {
            format!(" {unit}")
        };
        match *self {
            Goal::AtMost(goal) => format!("<= {goal}{unit}"),
            Goal::AtLeast(goal) => format!(">= {goal}{unit}"),
            Goal::None => "-".into(),
        }
    }
}

/// One measured figure of one benchmark, with its goal. `value` is `None` when it could not
/// be measured in this run (`note` says why).
#[derive(Debug, Clone)]
pub struct Figure {
    pub bench: &'static str,
    pub name: String,
    pub value: Option<f64>,
    /// `x` for a ratio, else the unit (`MiB`, `s`, `req/s`).
    pub unit: &'static str,
    pub goal: Goal,
    pub note: String,
}

impl Figure {
    pub fn new(
        bench: &'static str,
        name: impl Into<String>,
        value: Option<f64>,
        unit: &'static str,
        goal: Goal,
    ) -> Figure {
        Figure {
            bench,
            name: name.into(),
            value,
            unit,
            goal,
            note: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }

    /// `met`, `MISSED`, or `-` (no goal, or not measured).
    pub fn verdict(&self) -> &'static str {
        match self.value.and_then(|v| self.goal.met_by(v)) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        }
    }

    fn value_text(&self) -> String {
        match self.value {
            Some(v) if self.unit == "x" => format!("{v:.2}x"),
            Some(v) if v.abs() >= 100.0 => format!("{v:.0} {}", self.unit),
            Some(v) => format!("{v:.2} {}", self.unit),
            None => "not measured".into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bench": self.bench,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "goal": self.goal.describe(self.unit),
            "verdict": self.verdict(),
            "note": self.note,
        })
    }
}

/// The figures as a table (or one JSON object), one line per figure: benchmark, figure,
/// value, goal, verdict, note.
pub fn print_figures(figures: &[Figure], as_json: bool) {
    if as_json {
        let list: Vec<_> = figures.iter().map(Figure::to_json).collect();
        println!("{}", serde_json::json!({ "figures": list }));
        return;
    }
    println!(
        "{:<10} {:<44} {:>14} {:>12}  {:<7} note",
        "benchmark", "figure", "value", "goal", "verdict"
    );
    for f in figures {
        println!(
            "{:<10} {:<44} {:>14} {:>12}  {:<7} {}",
            f.bench,
            f.name,
            f.value_text(),
            f.goal.describe(f.unit),
            f.verdict(),
            f.note
        );
    }
}

/// Prints a benchmark's figures and exits 0: a missed goal is a finding to read, not a
/// failure of the command.
#[cfg(feature = "demo")]
pub fn report(figures: &[Figure], as_json: bool) -> Result<std::process::ExitCode, crate::error::CliError> {
    if !as_json {
        println!();
    }
    print_figures(figures, as_json);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Benchmarks that need the fake vendors (the `demo` feature) in a build without them.
#[cfg(not(feature = "demo"))]
pub fn needs_demo(name: &str) -> crate::error::CliError {
    crate::error::bad_input(format!(
        "`dsr bench {name}` runs against the fake vendors, which this build leaves out: build with the \
         `demo` feature (on by default)"
    ))
}
