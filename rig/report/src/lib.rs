//! rig-report: the events the engine emits and the reporters that consume them.
//!
//! The engine emits [`events::RunEvent`]s in order (run started, then for each
//! case started / progress / finished, then run finished). Each reporter is an
//! independent consumer implementing [`Reporter`]:
//!
//! ```text
//!  engine ──RunEvent──► Fanout ─┬─► JunitReporter     junit.xml  (after every case)
//!                               ├─► RecordReporter    run.json   (after every case)
//!                               ├─► MarkdownReporter  report.md + report.html (after every case)
//!                               └─► (the CLI's progress output)
//! ```
//!
//! Every file is written atomically ([`atomic::write_atomic`]: a temp file in the
//! same directory, then a rename), so a run killed at any moment leaves the last
//! complete report behind, never a half-written one.
//!
//! - [`events`]: the event and record types (also the `run.json` schema).
//! - [`state`]: [`state::RunLog`], the run as reporters see it, built from events.
//! - [`junit`], [`record`], [`markdown`], [`html`]: the file reporters.
//! - [`series`]: per-case time series and histograms (`series/<case>.json`).
//! - [`svg`]: the chart writer; [`machnation`]: the study's table;
//!   [`fota`]: the firmware-update interruption table.
//! - [`atomic`]: temp file + rename.

pub mod atomic;
pub mod events;
pub mod fota;
pub mod html;
pub mod junit;
pub mod machnation;
pub mod markdown;
pub mod record;
pub mod series;
pub mod state;
pub mod svg;

mod error;
pub use error::ReportError;

use events::RunEvent;

/// A consumer of engine events.
///
/// Reporters are called in event order, on the engine's task, so they must be
/// quick (write a small file, print a line). An error is returned to the caller,
/// which decides whether the run can go on (the CLI keeps running and reports the
/// error at the end).
pub trait Reporter: Send {
    /// Handles one event.
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError>;
}

/// Sends every event to several reporters, and keeps the errors they return.
///
/// One failing reporter does not stop the others: a full disk that breaks
/// `report.md` must not also cost the user `junit.xml`.
#[derive(Default)]
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter>>,
    errors: Vec<ReportError>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("reporters", &self.reporters.len())
            .field("errors", &self.errors)
            .finish()
    }
}

impl Fanout {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter; events go to reporters in the order they were added.
    pub fn push(&mut self, reporter: Box<dyn Reporter>) {
        self.reporters.push(reporter);
    }

    /// Sends an event to every reporter, keeping any errors.
    pub fn send(&mut self, event: &RunEvent) {
        for reporter in &mut self.reporters {
            if let Err(e) = reporter.handle(event) {
                self.errors.push(e);
            }
        }
    }

    /// The errors reporters returned so far (taken out).
    pub fn take_errors(&mut self) -> Vec<ReportError> {
        std::mem::take(&mut self.errors)
    }
}

impl Reporter for Fanout {
    fn handle(&mut self, event: &RunEvent) -> Result<(), ReportError> {
        self.send(event);
        Ok(())
    }
}

/// The current UTC time as RFC 3339 with second precision, e.g. `2026-11-27T21:04:05Z`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
