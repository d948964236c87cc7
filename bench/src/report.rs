//! The raw results: one JSON object per measured figure, rendered by `bench/report.py`.

use serde::Serialize;

/// One row of the results table: every repetition's value, so the report can take the
/// median and show the spread.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// `throughput`, `memory`, `heartbeat`, `hotswap`, `startup`.
    pub bench: String,
    /// What was measured, e.g. `swasm-rust`, `native`, `boto3`, `rust cold`.
    pub variant: String,
    /// e.g. `tasks/s`, `MB`, `ms`, `calls`.
    pub metric: String,
    pub values: Vec<f64>,
    /// Things a reader must know about this row (task counts, failures, aborts).
    pub notes: Vec<String>,
}

impl Record {
    pub fn new(bench: &str, variant: &str, metric: &str) -> Record {
        Record {
            bench: bench.into(),
            variant: variant.into(),
            metric: metric.into(),
            values: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Prints the row as it is finished, so a long run shows progress.
    pub fn print(&self) {
        let median = crate::median(&self.values)
            .map(|m| format!("{m:.2}"))
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "[{}] {:<24} median {median} {} over {:?} {}",
            self.bench,
            self.variant,
            self.metric,
            self.values
                .iter()
                .map(|v| (v * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            self.notes.join("; ")
        );
    }
}
