//! Bench leases: one run at a time on a bench, and no lock outlives its run.
//!
//! A lease is a small TOML file keyed by the bench file's canonical path (in
//! `$XDG_RUNTIME_DIR/rig/`, else `/run/lock/rig/`, else the temp folder, or a
//! folder the caller picks). It records who holds the bench: pid, host, the
//! command, when the lease started, its last heartbeat and its maximum hold
//! time. A heartbeat thread rewrites the heartbeat while the run lives.
//!
//! A lease is **stale**, and is taken over with a warning, when its holder's
//! pid is dead on this host, when its heartbeat is older than
//! [`LeaseOptions::stale_after`], or when it has been held past its maximum
//! hold time; so a CI job that was killed (labgrid#1739's complaint) never
//! blocks the bench for long. Otherwise a second run fails at once with a
//! message naming the holder, or waits (bounded) when asked to.
//!
//! Every decision (check, create, take over, release) happens under an
//! exclusive `flock` on a guard file next to the lease, so two runs racing
//! for a stale lease cannot both win. The lease is released on drop; the CLI
//! also calls [`LeaseReleaser::release`] from its Ctrl-C / SIGTERM handler.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// How to take a lease.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseOptions {
    /// How long to wait for a busy bench; `None`: fail at once.
    pub wait: Option<Duration>,
    /// The longest this run may hold the bench (others may take it after).
    pub max_hold: Duration,
    /// How often the heartbeat is written.
    pub heartbeat_every: Duration,
    /// A heartbeat older than this makes the lease stale.
    pub stale_after: Duration,
    /// Where lease files live (default: see [`lease_dir`]).
    pub dir: Option<PathBuf>,
    /// What holds the lease, for the message others see (e.g. the command line).
    pub purpose: String,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self {
            wait: None,
            max_hold: Duration::from_secs(4 * 3600),
            heartbeat_every: Duration::from_secs(5),
            stale_after: Duration::from_secs(60),
            dir: None,
            purpose: "rig run".into(),
        }
    }
}

/// What a lease file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The bench file (canonical).
    pub bench: String,
    /// Holder's process id.
    pub pid: i32,
    /// Holder's host name.
    pub host: String,
    /// What holds it.
    pub purpose: String,
    /// A token unique to this lease (two leases in one process differ).
    pub token: String,
    /// Start, seconds since the Unix epoch.
    pub started: f64,
    /// Last heartbeat, seconds since the Unix epoch.
    pub heartbeat: f64,
    /// Maximum hold time in seconds.
    pub max_hold_s: f64,
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds since the Unix epoch as a UTC time, e.g. `2026-11-27 23:56:18 UTC`
/// (the proleptic Gregorian calendar; no leap seconds, as Unix time has none).
pub fn utc(epoch_s: f64) -> String {
    let secs = epoch_s.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// This host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn pid_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true, // EPERM: it exists, owned by someone else
    }
}

impl LeaseRecord {
    /// Why this lease is stale (to be taken over), or `None` if it is live.
    pub fn stale_reason(&self, now: f64, stale_after: Duration, this_host: &str) -> Option<String> {
        if self.host == this_host && !pid_alive(self.pid) {
            return Some(format!("its process {} is gone", self.pid));
        }
        let age = now - self.heartbeat;
        if age > stale_after.as_secs_f64() {
            return Some(format!("its last heartbeat was {age:.0} s ago"));
        }
        if now > self.started + self.max_hold_s {
            return Some(format!(
                "it was held past its maximum of {:.0} s",
                self.max_hold_s
            ));
        }
        None
    }

    /// Reads a lease file: `None` when there is none (or it is unreadable
    /// as a lease, which [`Lease::acquire`] would overwrite).
    pub fn read(path: &Path) -> Result<Option<Self>, BenchError> {
        read_record(path)
    }

    /// Who holds it, for messages: pid, host, command, since when.
    pub fn describe(&self, now: f64) -> String {
        format!(
            "pid {} on {} (`{}`), since {} (held for {:.0} s), last heartbeat {:.0} s ago, maximum hold {:.0} s",
            self.pid,
            self.host,
            self.purpose,
            utc(self.started),
            now - self.started,
            now - self.heartbeat,
            self.max_hold_s
        )
    }
}

/// The default folder for lease files.
pub fn lease_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("rig");
    }
    let run = Path::new("/run/lock");
    if run.is_dir() && nix::unistd::access(run, nix::unistd::AccessFlags::W_OK).is_ok() {
        return run.join("rig");
    }
    std::env::temp_dir().join("rig-leases")
}

/// The lease file of a bench file, in `dir`: its name plus a hash of its
/// canonical path, so two benches with one name do not collide.
pub fn lease_path(bench_file: &Path, dir: &Path) -> PathBuf {
    use sha2::Digest as _;
    let canonical = bench_file
        .canonicalize()
        .unwrap_or_else(|_| bench_file.to_path_buf());
    let digest = sha2::Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let stem: String = bench_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{stem}-{hash}.lease"))
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::Lease(format!("{what} {}: {e}", path.display()))
}

/// Holds the guard file's lock while alive.
fn guard(path: &Path) -> Result<Flock<File>, BenchError> {
    let g = path.with_extension("guard");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&g)
        .map_err(|e| io_err("cannot open the lease guard", &g, e))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io_err("cannot lock", &g, e))
}

fn read_record(path: &Path) -> Result<Option<LeaseRecord>, BenchError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(toml::from_str(&text).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read the lease", path, e)),
    }
}

fn write_record(path: &Path, rec: &LeaseRecord) -> Result<(), BenchError> {
    let text = toml::to_string(rec).map_err(|e| io_err("cannot encode the lease", path, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| io_err("cannot write the lease", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err("cannot write the lease", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("cannot write the lease", path, e))
}

/// Releases a lease from anywhere (a signal handler task, another thread).
#[derive(Clone, Debug)]
pub struct LeaseReleaser {
    path: PathBuf,
    token: String,
    stop: Arc<AtomicBool>,
    released: Arc<Mutex<bool>>,
}

impl LeaseReleaser {
    /// Removes the lease file if it is still ours, and stops the heartbeat.
    /// Releasing twice is harmless.
    pub fn release(&self) -> Result<(), BenchError> {
        self.stop.store(true, Ordering::SeqCst);
        let mut done = self.released.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return Ok(());
        }
        let _g = guard(&self.path)?;
        if read_record(&self.path)?.is_some_and(|r| r.token == self.token) {
            std::fs::remove_file(&self.path)
                .map_err(|e| io_err("cannot remove the lease", &self.path, e))?;
        }
        *done = true;
        Ok(())
    }
}

/// A held lease on a bench.
#[derive(Debug)]
pub struct Lease {
    record: LeaseRecord,
    path: PathBuf,
    took_over: Option<String>,
    releaser: LeaseReleaser,
    heartbeat: Option<JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

impl Lease {
    /// Takes the lease on `bench_file` (waiting if the options say so).
    pub fn acquire(bench_file: &Path, options: &LeaseOptions) -> Result<Self, BenchError> {
        let dir = options.dir.clone().unwrap_or_else(lease_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err("cannot create the lease folder", &dir, e))?;
        let path = lease_path(bench_file, &dir);
        let host = host_name();
        let start = Instant::now();
        let bench = bench_file
            .canonicalize()
            .unwrap_or_else(|_| bench_file.to_path_buf())
            .display()
            .to_string();
        loop {
            let now = now_s();
            let g = guard(&path)?;
            let existing = read_record(&path)?;
            let mut took_over = None;
            let busy = match &existing {
                None => None,
                Some(r) => match r.stale_reason(now, options.stale_after, &host) {
                    Some(why) => {
                        took_over = Some(format!(
                            "took over a stale lease on {bench} ({why}); it was held by {}",
                            r.describe(now)
                        ));
                        None
                    }
                    None => Some(r.clone()),
                },
            };
            if let Some(holder) = busy {
                drop(g);
                let waited = start.elapsed();
                match options.wait {
                    Some(w) if waited < w => {
                        std::thread::sleep(Duration::from_millis(200).min(w - waited));
                        continue;
                    }
                    _ => {
                        let how = match options.wait {
                            Some(w) => format!("after waiting {:.1} s", w.as_secs_f64()),
                            None => "(pass --wait-for-bench to wait for it)".to_string(),
                        };
                        return Err(BenchError::Lease(format!(
                            "the bench {bench} is in use by {} {how}; lease file {}",
                            holder.describe(now),
                            path.display()
                        )));
                    }
                }
            }
            let token = format!(
                "{}-{}-{}",
                std::process::id(),
                now,
                start.elapsed().as_nanos()
            );
            let record = LeaseRecord {
                bench: bench.clone(),
                pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
                host: host.clone(),
                purpose: options.purpose.clone(),
                token: token.clone(),
                started: now,
                heartbeat: now,
                max_hold_s: options.max_hold.as_secs_f64(),
            };
            write_record(&path, &record)?;
            drop(g);
            let stop = Arc::new(AtomicBool::new(false));
            let lost = Arc::new(AtomicBool::new(false));
            let releaser = LeaseReleaser {
                path: path.clone(),
                token,
                stop: stop.clone(),
                released: Arc::new(Mutex::new(false)),
            };
            let heartbeat = spawn_heartbeat(
                path.clone(),
                record.clone(),
                options.heartbeat_every,
                stop,
                lost.clone(),
            )?;
            return Ok(Self {
                record,
                path,
                took_over,
                releaser,
                heartbeat: Some(heartbeat),
                lost,
            });
        }
    }

    /// The warning to print if a stale lease was taken over.
    pub fn took_over(&self) -> Option<&str> {
        self.took_over.as_deref()
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file says about us.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Whether someone else took the lease from us (we exceeded the maximum
    /// hold, or our heartbeat stalled).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A handle that releases the lease from a signal handler.
    pub fn releaser(&self) -> LeaseReleaser {
        self.releaser.clone()
    }

    /// Releases the lease now.
    pub fn release(mut self) -> Result<(), BenchError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), BenchError> {
        let r = self.releaser.release();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        r
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn spawn_heartbeat(
    path: PathBuf,
    mut record: LeaseRecord,
    every: Duration,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, BenchError> {
    std::thread::Builder::new()
        .name("rig-lease-heartbeat".into())
        .spawn(move || {
            let tick = Duration::from_millis(20).min(every);
            let mut last = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(tick);
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let Ok(_g) = guard(&path) else { continue };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match read_record(&path) {
                    Ok(Some(r)) if r.token == record.token => {
                        record.heartbeat = now_s();
                        // A failed heartbeat write only ages the lease; the
                        // next tick tries again.
                        let _ = write_record(&path, &record);
                    }
                    _ => {
                        lost.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        })
        .map_err(|e| BenchError::Lease(format!("cannot start the lease heartbeat: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        // `date -u -d @1795816578`: Fri Nov 27 21:56:18 UTC 2026.
        assert_eq!(utc(1_795_816_578.9), "2026-11-27 21:56:18 UTC");
        // A leap day.
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }
}
