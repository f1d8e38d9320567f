//! Writing reports to disk: a run's, a comparison's and a swarm's directory of JSON, HTML and
//! standalone SVG charts.
//!
//! Every function creates its directory if needed and returns the paths it wrote, in order.
//! Failures come back as `io::Error`s naming the path, never as panics.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::charts::{self, Chart, ChartError};
use crate::html;
use crate::{CompareRecord, RunRecord, SwarmReport};

/// Writes a run's report into `dir`: `report.json` (the record, timeline included),
/// `report.html`, `report.md` and, when the record has a timeline, each chart as a standalone `.svg`
/// (`nodes.svg`, `throughput.svg`, `latency.svg`, `checkpoints.svg`, `in-flight.svg`).
pub fn write_run_report(record: &RunRecord, dir: &Path) -> io::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let charts = charts::run_charts(record);
    let page = html::run_html_with(record, &charts);
    let mut written = vec![
        write_json(dir, "report.json", record)?,
        write_file(dir, "report.html", &page)?,
        write_file(dir, "report.md", &crate::markdown::run_markdown(record))?,
    ];
    written.extend(write_charts(dir, charts)?);
    Ok(written)
}

/// Writes a comparison into `dir`: `compare.json`, `compare.html`, `compare-throughput.svg` and
/// `compare-recovery.svg`.
pub fn write_compare_report(record: &CompareRecord, dir: &Path) -> io::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let charts = charts::compare_charts(record);
    let page = html::compare_html_with(record, &charts);
    let mut written = vec![write_json(dir, "compare.json", record)?, write_file(dir, "compare.html", &page)?];
    written.extend(write_charts(dir, charts)?);
    Ok(written)
}

/// Writes a swarm's summary into `dir`: `swarm.json` and `swarm.html`. The failing seeds' own
/// reports are the caller's to write, into `dir/seed-N/`.
pub fn write_swarm_report(report: &SwarmReport, dir: &Path) -> io::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    Ok(vec![
        write_json(dir, "swarm.json", report)?,
        write_file(dir, "swarm.html", &html::swarm_html(report))?,
    ])
}

/// An io::Error that names the path it concerns.
fn with_path(path: &Path, e: impl std::fmt::Display, kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, format!("{}: {e}", path.display()))
}

fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| with_path(dir, &e, e.kind()))
}

fn write_file(dir: &Path, name: &str, contents: &str) -> io::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, contents).map_err(|e| with_path(&path, &e, e.kind()))?;
    Ok(path)
}

fn write_json<T: Serialize>(dir: &Path, name: &str, record: &T) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let mut json = serde_json::to_string_pretty(&crate::Versioned::new(record))
        .map_err(|e| with_path(&path, e, io::ErrorKind::InvalidData))?;
    json.push('\n');
    write_file(dir, name, &json)
}

fn write_charts(dir: &Path, charts: Result<Vec<Chart>, ChartError>) -> io::Result<Vec<PathBuf>> {
    let charts = charts.map_err(|e| with_path(dir, e, io::ErrorKind::Other))?;
    charts.iter().map(|chart| write_file(dir, &chart.file, &chart.svg)).collect()
}
