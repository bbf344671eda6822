//! Per-case series: time series and histograms that sit beside a case's
//! measurements (bytes over time per direction, packet-length histograms).
//!
//! A case's series travel as an evidence file, `series/<case-id>.json`,
//! listed in the case's artifacts: whoever measures (the CLI's network hooks)
//! writes it with [`write_case`] before the case's record is emitted, and the
//! reporters read it back with [`load_for`] when the case finishes. `run.json`
//! embeds them under each case's optional `series` key, and `report.html`
//! draws them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::atomic::write_atomic;
use crate::events::CaseRecord;

/// The folder of series files under the run directory.
pub const SERIES_DIR: &str = "series";

/// What a series' points mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// `x` is the start of a time bin (seconds since the case started), `y`
    /// the amount in that bin.
    Timeline,
    /// `x` is the lower bound of a bucket, `y` the count in it.
    Histogram,
}

/// One point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Time (s) or bucket lower bound.
    pub x: f64,
    /// Value.
    pub y: f64,
}

/// A named series of points, e.g. `net.l2_bytes.up` over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Dotted name, e.g. `net.l2_bytes.up` or `net.frame_len.down`.
    pub name: String,
    /// Timeline or histogram.
    pub kind: SeriesKind,
    /// Unit of `x`: `s` for timelines, `B` for frame-length buckets.
    pub x_unit: String,
    /// Unit of `y`: `B`, `packets`, `mJ`...
    pub unit: String,
    /// Width of a time bin or bucket in `x_unit`, when they are all equal
    /// (histogram buckets may grow: then each bucket ends where the next starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<f64>,
    /// The points, in increasing `x`.
    pub points: Vec<Point>,
}

impl Series {
    /// True when no point has a finite, non-zero `y`.
    pub fn is_empty(&self) -> bool {
        !self.points.iter().any(|p| p.y.is_finite() && p.y != 0.0)
    }
}

/// The path, relative to the run directory, of a case's series file.
pub fn relative_path(case_id: &str) -> PathBuf {
    // Case ids are file-name safe in practice (the capture files use them
    // too); replace path separators anyway so an id can never escape.
    let safe: String = case_id
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    Path::new(SERIES_DIR).join(format!("{safe}.json"))
}

/// Writes `<dir>/series/<case-id>.json` (atomically) and returns its path
/// relative to `dir`, to list as an artifact of the case.
pub fn write_case(dir: &Path, case_id: &str, series: &[Series]) -> Result<PathBuf, ReportError> {
    let rel = relative_path(case_id);
    let text = serde_json::to_string(series).map_err(|e| ReportError::Serialize {
        what: "series",
        message: e.to_string(),
    })?;
    write_atomic(&dir.join(&rel), text.as_bytes())?;
    Ok(rel)
}

/// Is this artifact path a series file?
pub fn is_series_path(path: &Path) -> bool {
    path.starts_with(SERIES_DIR) && path.extension().is_some_and(|e| e == "json")
}

/// Reads the series files a record lists in its artifacts (relative to
/// `dir`). A record without one has no series.
pub fn load_for(dir: &Path, record: &CaseRecord) -> Result<Vec<Series>, ReportError> {
    let mut out = Vec::new();
    for a in record.artifacts.iter().filter(|a| is_series_path(&a.path)) {
        let path = dir.join(&a.path);
        let bytes = std::fs::read(&path).map_err(|source| ReportError::Read {
            path: path.clone(),
            source,
        })?;
        let mut series: Vec<Series> =
            serde_json::from_slice(&bytes).map_err(|e| ReportError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
        out.append(&mut series);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Artifact, ArtifactKind, PlannedCase};

    fn series() -> Series {
        Series {
            name: "net.l2_bytes.up".into(),
            kind: SeriesKind::Timeline,
            x_unit: "s".into(),
            unit: "B".into(),
            bin: Some(1.0),
            points: vec![Point { x: 0.0, y: 92.0 }, Point { x: 1.0, y: 0.0 }],
        }
    }

    #[test]
    fn a_written_file_is_read_back_through_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let rel = write_case(dir.path(), "case/../x", &[series()]).unwrap();
        assert_eq!(rel, Path::new("series/case_.._x.json"));
        let mut record = CaseRecord::not_run(
            &PlannedCase {
                id: "x".into(),
                title: "t".into(),
                suite: "s".into(),
            },
            "n",
        );
        assert!(load_for(dir.path(), &record).unwrap().is_empty());
        record.artifacts.push(Artifact {
            kind: ArtifactKind::Other,
            path: rel,
        });
        assert_eq!(load_for(dir.path(), &record).unwrap(), vec![series()]);
    }

    #[test]
    fn a_broken_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("series")).unwrap();
        std::fs::write(dir.path().join("series/a.json"), b"[{\"name\":").unwrap();
        let mut record = CaseRecord::not_run(
            &PlannedCase {
                id: "a".into(),
                title: "t".into(),
                suite: "s".into(),
            },
            "n",
        );
        record.artifacts.push(Artifact {
            kind: ArtifactKind::Other,
            path: "series/a.json".into(),
        });
        let err = load_for(dir.path(), &record).unwrap_err().to_string();
        assert!(err.contains("series/a.json"), "{err}");
    }

    #[test]
    fn empty_means_no_finite_non_zero_value() {
        let mut s = series();
        assert!(!s.is_empty());
        s.points = vec![
            Point { x: 0.0, y: 0.0 },
            Point {
                x: 1.0,
                y: f64::NAN,
            },
        ];
        assert!(s.is_empty());
    }
}
