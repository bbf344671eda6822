//! The captured console of a DUT: every line, timestamped, in memory and in a file.
//!
//! Readers (one per output stream) [`Console::push`] lines; waiters subscribe
//! to a `watch` channel that ticks on every new line and on exit, so waiting
//! for a pattern never polls. Lines are kept in memory for the whole run (a
//! DUT console is small next to a pcap) so cases can slice them with
//! [`ConsoleLog::mark`] / [`ConsoleLog::since`].
//!
//! Each line is formatted as `[  12.345 out] text`: seconds since the console
//! was created, then the stream (`out`, `err`, or `rig` for the rig's own
//! notes such as the command line and the exit status).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::BenchError;
use crate::dut::ConsoleLog;

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The DUT's stdout (or serial console).
    Stdout,
    /// The DUT's stderr.
    Stderr,
    /// A note by the rig (start, exit status, signals).
    Rig,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
            Stream::Rig => "rig",
        }
    }
}

/// One console line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Time since the console was created.
    pub at: Duration,
    /// The stream.
    pub stream: Stream,
    /// The text, without line ending.
    pub text: String,
}

impl ConsoleLine {
    /// The line as written to the log file.
    pub fn formatted(&self) -> String {
        format!(
            "[{:>9.3} {}] {}",
            self.at.as_secs_f64(),
            self.stream.tag(),
            self.text
        )
    }
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<ConsoleLine>,
    /// Set when the current DUT process has exited: how it ended.
    exited: Option<String>,
    /// Whether a DUT process is running (between `started` and exit).
    running: bool,
}

/// A DUT console: lines in memory, a log file, and a change signal.
#[derive(Debug)]
pub struct Console {
    state: Mutex<State>,
    file: Mutex<Option<File>>,
    path: Option<PathBuf>,
    t0: Instant,
    tick: watch::Sender<u64>,
}

impl Console {
    /// A console writing to `path` (its directory is created), or only to memory.
    pub fn new(path: Option<&Path>) -> Result<Self, BenchError> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
                        what: format!("cannot create the console folder {}", dir.display()),
                        source,
                    })?;
                }
                let f = File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| BenchError::Io {
                        what: format!("cannot open the console log {}", p.display()),
                        source,
                    })?;
                Some(f)
            }
            None => None,
        };
        Ok(Self {
            state: Mutex::new(State::default()),
            file: Mutex::new(file),
            path: path.map(Path::to_path_buf),
            t0: Instant::now(),
            tick: watch::channel(0).0,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the line list invalid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a line (and writes it to the log file).
    pub fn push(&self, stream: Stream, text: &str) {
        let line = ConsoleLine {
            at: self.t0.elapsed(),
            stream,
            text: text.to_string(),
        };
        let formatted = line.formatted();
        self.state().lines.push(line);
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            // Evidence is best effort: a full disk must not stop the run here;
            // the in-memory copy still serves the case.
            let _ = writeln!(f, "{formatted}");
        }
        self.tick.send_modify(|n| *n += 1);
    }

    /// Records that a new DUT process started.
    pub fn started(&self, note: &str) {
        {
            let mut s = self.state();
            s.exited = None;
            s.running = true;
        }
        self.push(Stream::Rig, note);
    }

    /// Records that the DUT process ended, and how.
    pub fn exited(&self, how: &str) {
        self.push(Stream::Rig, how);
        {
            let mut s = self.state();
            s.exited = Some(how.to_string());
            s.running = false;
        }
        self.tick.send_modify(|n| *n += 1);
    }

    /// Whether a DUT process is running.
    pub fn is_running(&self) -> bool {
        self.state().running
    }

    /// How the last DUT process ended, if it did.
    pub fn exit_note(&self) -> Option<String> {
        self.state().exited.clone()
    }

    /// The number of lines so far.
    pub fn len(&self) -> usize {
        self.state().lines.len()
    }

    /// Whether no line was captured yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the lines from index `from`.
    pub fn lines_from(&self, from: usize) -> Vec<ConsoleLine> {
        self.state()
            .lines
            .get(from..)
            .map(<[ConsoleLine]>::to_vec)
            .unwrap_or_default()
    }

    /// The last line the DUT printed (not a rig note).
    pub fn last_dut_line(&self) -> Option<String> {
        self.state()
            .lines
            .iter()
            .rev()
            .find(|l| l.stream != Stream::Rig)
            .map(|l| l.text.clone())
    }

    /// A receiver that changes on every new line and on exit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }
}

impl ConsoleLog for Console {
    fn mark(&self) -> usize {
        self.len()
    }

    fn since(&self, mark: usize) -> String {
        self.lines_from(mark)
            .iter()
            .map(|l| l.formatted() + "\n")
            .collect()
    }

    fn tail(&self, n: usize) -> String {
        let s = self.state();
        let from = s.lines.len().saturating_sub(n);
        s.lines[from..]
            .iter()
            .map(|l| l.formatted() + "\n")
            .collect()
    }

    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_slices_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console/dut.log");
        let c = Console::new(Some(&path)).unwrap();
        c.push(Stream::Stdout, "one");
        let m = c.mark();
        c.push(Stream::Stderr, "two");
        c.push(Stream::Stdout, "three");
        assert!(c.since(m).contains("err] two\n"));
        assert!(!c.since(m).contains("one"));
        assert_eq!(c.tail(1).lines().count(), 1);
        assert!(c.tail(1).ends_with("out] three\n"));
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(file.lines().count(), 3);
        assert_eq!(c.last_dut_line().as_deref(), Some("three"));
    }
}
