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
