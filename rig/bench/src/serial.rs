//! Serial consoles: a by-id serial port read line by line into the same
//! [`Console`] a process DUT uses, kept open across re-enumeration.
//!
//! A reader thread owns the port (serialport's API is blocking). It reads with
//! a short timeout, splits lines (`\n`, with `\r` trimmed) and pushes each into
//! the console. When the port goes away (a USB CDC device re-enumerating after
//! a reset or a flash: the read fails with EIO, or the path vanishes), the
//! thread notes it in the console, then tries to reopen the same by-id path
//! every [`RETRY_EVERY`] until the bench's `reconnect_s` runs out. A partial
//! line read before the loss is kept and pushed, so nothing read is lost.
//! If the port does not come back, the console is marked ended with the
//! reason, and every wait on it fails at once with that reason.
//!
//! Writing goes through a clone of the port, swapped on reconnect.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::file::ConsoleSpec;

/// How often a vanished port is looked for again.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);
/// The read timeout of the reader thread (how quickly it notices a stop).
const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Line settings of a serial port.
#[derive(Clone, Debug, PartialEq)]
pub struct LineSettings {
    /// Baud rate.
    pub baud: u32,
    /// Data bits.
    pub data_bits: DataBits,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// Flow control.
    pub flow_control: FlowControl,
    /// How long to keep trying to reopen a vanished port.
    pub reconnect: Duration,
}

impl LineSettings {
    /// From a bench's `console` table (already validated).
    pub fn from_spec(spec: &ConsoleSpec) -> Self {
        Self {
            baud: spec.baud,
            data_bits: match spec.data_bits {
                5 => DataBits::Five,
                6 => DataBits::Six,
                7 => DataBits::Seven,
                _ => DataBits::Eight,
            },
            parity: match spec.parity.as_str() {
                "odd" => Parity::Odd,
                "even" => Parity::Even,
                _ => Parity::None,
            },
            stop_bits: if spec.stop_bits == 2 {
                StopBits::Two
            } else {
                StopBits::One
            },
            flow_control: match spec.flow_control.as_str() {
                "software" => FlowControl::Software,
                "hardware" => FlowControl::Hardware,
                _ => FlowControl::None,
            },
            reconnect: spec.reconnect,
        }
    }
}

impl Default for LineSettings {
    fn default() -> Self {
        Self {
            baud: 115_200,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
            reconnect: Duration::from_secs(10),
        }
    }
}

/// Opens the port with the line settings (the by-id path is resolved by the
/// kernel at each open, so a re-enumerated device is found under its new node).
pub fn open_port(path: &Path, settings: &LineSettings) -> Result<TTYPort, BenchError> {
    let err = |what: String| BenchError::Serial {
        port: path.to_path_buf(),
        what,
    };
    let name = path
        .to_str()
        .ok_or_else(|| err("the path is not valid UTF-8".into()))?;
    serialport::new(name, settings.baud)
        .data_bits(settings.data_bits)
        .parity(settings.parity)
        .stop_bits(settings.stop_bits)
        .flow_control(settings.flow_control)
        .timeout(READ_TIMEOUT)
        .open_native()
        .map_err(|e| {
            let hint = if path.exists() {
                " (is another program using it? is the user in group `dialout`?)"
            } else {
                " (not present: is the board plugged in? `ls -l /dev/serial/by-id/` lists what is)"
            };
            err(format!("cannot open: {e}{hint}"))
        })
}

type Writer = Arc<Mutex<Option<TTYPort>>>;

/// A serial console: the port, its reader thread, and the shared [`Console`].
#[derive(Debug)]
pub struct SerialConsole {
    path: PathBuf,
    console: Arc<Console>,
    writer: Writer,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SerialConsole {
    /// Opens the port and starts capturing into `console` at once (so the
    /// first lines after power-on are kept). Fails if the port cannot be opened.
    pub fn open(
        path: &Path,
        settings: LineSettings,
        console: Arc<Console>,
    ) -> Result<Self, BenchError> {
        let port = open_port(path, &settings)?;
        let reader = port.try_clone_native().map_err(|e| BenchError::Serial {
            port: path.to_path_buf(),
            what: format!("cannot clone the port handle: {e}"),
        })?;
        console.started(&format!(
            "serial console {} open at {} baud",
            path.display(),
            settings.baud
        ));
        let writer: Writer = Arc::new(Mutex::new(Some(port)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (path, console, writer, stop) = (
                path.to_path_buf(),
                console.clone(),
                writer.clone(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name("rig-serial".into())
                .spawn(move || read_loop(reader, &path, &settings, &console, &writer, &stop))
                .map_err(|e| BenchError::Serial {
                    port: PathBuf::new(),
                    what: format!("cannot start the reader thread: {e}"),
                })?
        };
        Ok(Self {
            path: path.to_path_buf(),
            console,
            writer,
            stop,
            thread: Some(thread),
        })
    }

    /// The console lines go to.
    pub fn console(&self) -> &Arc<Console> {
        &self.console
    }

    /// The by-id path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a line (with `ending`) to the device, noting it in the console.
    /// Fails while the port is gone (between loss and reconnect).
    pub fn send_line(&self, line: &str, ending: &str) -> Result<(), BenchError> {
        self.console.push(Stream::Rig, &format!("sent: {line}"));
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let port = guard.as_mut().ok_or_else(|| BenchError::Serial {
            port: self.path.clone(),
            what: format!("cannot send `{line}`: the port is gone (reconnecting)"),
        })?;
        port.write_all(format!("{line}{ending}").as_bytes())
            .and_then(|()| port.flush())
            .map_err(|e| BenchError::Serial {
                port: self.path.clone(),
                what: format!("cannot send `{line}`: {e}"),
            })
    }

    /// Holds the line in the break condition for `duration`.
    pub fn send_break(&self, duration: Duration) -> Result<(), BenchError> {
        let err = |e: serialport::Error| BenchError::Serial {
            port: self.path.clone(),
            what: format!("cannot send a break: {e}"),
        };
        self.console.push(
            Stream::Rig,
            &format!("break for {} ms", duration.as_millis()),
        );
        {
            let guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let port = guard.as_ref().ok_or_else(|| BenchError::Serial {
                port: self.path.clone(),
                what: "cannot send a break: the port is gone (reconnecting)".into(),
            })?;
            port.set_break().map_err(err)?;
        }
        std::thread::sleep(duration);
        let guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(port) = guard.as_ref() {
            port.clear_break().map_err(err)?;
        }
        Ok(())
    }

    /// Whether the port is open right now (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops the reader thread and closes the port.
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Drop for SerialConsole {
    fn drop(&mut self) {
        self.close();
    }
}

fn push_lines(console: &Console, pending: &mut Vec<u8>) {
    while let Some(n) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=n).collect();
        let text = String::from_utf8_lossy(&line);
        console.push(Stream::Stdout, text.trim_end_matches(['\n', '\r']));
    }
}

fn read_loop(
    port: TTYPort,
    path: &Path,
    settings: &LineSettings,
    console: &Console,
    writer: &Writer,
    stop: &AtomicBool,
) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 1024];
    let mut port = Some(port);
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(open) = port.as_mut() else { break };
        let lost = match open.read(&mut buf) {
            Ok(0) => Some("end of file".to_string()),
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                push_lines(console, &mut pending);
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            Err(e) => Some(e.to_string()),
        };
        let Some(why) = lost else { continue };
        // The device went away: keep what was read, then look for it again.
        if !pending.is_empty() {
            let text = String::from_utf8_lossy(&pending).into_owned();
            console.push(Stream::Stdout, text.trim_end_matches('\r'));
            pending.clear();
        }
        // Close our handles first: a held file keeps the old node alive.
        drop(port.take());
        *writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
        console.push(
            Stream::Rig,
            &format!(
                "serial port lost ({why}); reconnecting for up to {:.1} s",
                settings.reconnect.as_secs_f64()
            ),
        );
        let deadline = Instant::now() + settings.reconnect;
        let mut attempts = 0u32;
        let reopened = loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            attempts += 1;
            match open_port(path, settings) {
                Ok(p) => break Some(p),
                Err(_) if Instant::now() < deadline => std::thread::sleep(RETRY_EVERY),
                Err(e) => {
                    console.exited(&format!(
                        "serial port did not come back within {:.1} s ({attempts} attempts): {e}",
                        settings.reconnect.as_secs_f64()
                    ));
                    break None;
                }
            }
        };
        let Some(p) = reopened else { return };
        match p.try_clone_native() {
            Ok(w) => *writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(w),
            Err(e) => {
                console.exited(&format!("serial port reopened but unusable: {e}"));
                return;
            }
        }
        console.push(
            Stream::Rig,
            &format!("serial port reconnected after {attempts} attempt(s)"),
        );
        port = Some(p);
    }
    if !pending.is_empty() {
        let text = String::from_utf8_lossy(&pending).into_owned();
        console.push(Stream::Stdout, text.trim_end_matches('\r'));
    }
    console.exited("serial console closed");
}
