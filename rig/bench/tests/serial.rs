//! Serial consoles on pseudo-terminal pairs: the rig's side opens the pty
//! slave through a by-id-like symlink with the bench's line settings; the test
//! plays the device on the master side. Re-enumeration is simulated by
//! closing the pty and pointing the symlink at a new one.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rig_bench::console::{Console, Stream};
use rig_bench::serial::{LineSettings, SerialConsole};

struct Pty {
    master: File,
    _slave: OwnedFd,
    path: PathBuf,
}

fn pty() -> Pty {
    let r = nix::pty::openpty(None, None).unwrap();
    let path = std::fs::read_link(format!("/proc/self/fd/{}", r.slave.as_raw_fd())).unwrap();
    let master = File::from(r.master);
    // Non-blocking, so a test that waits for bytes can give up.
    let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    Pty {
        master,
        _slave: r.slave,
        path,
    }
}

fn link(by_id: &Path, target: &Path) {
    let _ = std::fs::remove_file(by_id);
    std::os::unix::fs::symlink(target, by_id).unwrap();
}

fn wait_for(console: &Console, what: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if console.lines_from(0).iter().any(|l| l.text.contains(what)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn read_master(master: &mut File, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(want) {
        match master.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn dut_lines(console: &Console) -> Vec<String> {
    console
        .lines_from(0)
        .into_iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| l.text)
        .collect()
}

#[test]
fn lines_commands_and_break_go_through_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("usb-rig-dut-if00");
    let mut dev = pty();
    link(&by_id, &dev.path);
    let log = dir.path().join("console/dut.log");
    let console = Arc::new(Console::new(Some(&log)).unwrap());
    let settings = LineSettings {
        baud: 9600,
        data_bits: serialport::DataBits::Seven,
        parity: serialport::Parity::Even,
        stop_bits: serialport::StopBits::Two,
        ..LineSettings::default()
    };
    let mut serial = SerialConsole::open(&by_id, settings, console.clone()).unwrap();
    // The line settings reached the tty. (Linux's pty driver forces CS8 and
    // clears PARENB whatever is asked, and serialport sets the speed through
    // termios2, so the stop bits and raw mode are what shows here.)
    let t = nix::sys::termios::tcgetattr(&dev._slave).unwrap();
    use nix::sys::termios::{ControlFlags as C, LocalFlags as L};
    assert!(t.control_flags.contains(C::CSTOPB));
    assert!(!t.local_flags.contains(L::ECHO | L::ICANON));

    dev.master
        .write_all(b"*** Booting Zephyr OS\r\nuart:~$ ")
        .unwrap();
    assert!(wait_for(&console, "Booting Zephyr", Duration::from_secs(5)));
    serial.send_line("lwm2m start ep1", "\r\n").unwrap();
    let sent = read_master(&mut dev.master, "ep1\r\n", Duration::from_secs(5));
    assert!(sent.ends_with("lwm2m start ep1\r\n"), "{sent:?}");
    serial.send_break(Duration::from_millis(20)).unwrap();
    serial.close();
    // The partial prompt was kept when the console closed.
    assert_eq!(dut_lines(&console), ["*** Booting Zephyr OS", "uart:~$ "]);
    let file = std::fs::read_to_string(&log).unwrap();
    assert!(file.contains("out] *** Booting Zephyr OS"), "{file}");
    assert!(file.contains("rig] sent: lwm2m start ep1"), "{file}");
}

#[test]
fn a_port_that_re_enumerates_is_reopened_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("usb-rig-dut-if00");
    let mut first = pty();
    link(&by_id, &first.path);
    let console = Arc::new(Console::new(None).unwrap());
    let settings = LineSettings {
        reconnect: Duration::from_secs(5),
        ..LineSettings::default()
    };
    let serial = SerialConsole::open(&by_id, settings, console.clone()).unwrap();
    first.master.write_all(b"boot 1\nline a\npartial").unwrap();
    assert!(wait_for(&console, "line a", Duration::from_secs(5)));
    // Give the reader a moment to take the partial line too.
    std::thread::sleep(Duration::from_millis(100));

    // The device resets: its node vanishes, and comes back a little later.
    drop(first);
    let _ = std::fs::remove_file(&by_id);
    assert!(wait_for(
        &console,
        "serial port lost",
        Duration::from_secs(5)
    ));
    assert!(!serial.is_connected());
    std::thread::sleep(Duration::from_millis(300));
    let mut second = pty();
    link(&by_id, &second.path);
    assert!(wait_for(&console, "reconnected", Duration::from_secs(5)));
    assert!(console.is_running());
    second.master.write_all(b"boot 2\r\nline b\r\n").unwrap();
    assert!(wait_for(&console, "line b", Duration::from_secs(5)));
    assert_eq!(
        dut_lines(&console),
        ["boot 1", "line a", "partial", "boot 2", "line b"]
    );
    serial.send_line("status", "\n").unwrap();
    assert!(read_master(&mut second.master, "status\n", Duration::from_secs(5)).contains("status"));
}

#[test]
fn a_port_that_never_comes_back_ends_the_console_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("usb-rig-dut-if00");
    let dev = pty();
    link(&by_id, &dev.path);
    let console = Arc::new(Console::new(None).unwrap());
    let settings = LineSettings {
        reconnect: Duration::from_millis(300),
        ..LineSettings::default()
    };
    let _serial = SerialConsole::open(&by_id, settings, console.clone()).unwrap();
    drop(dev);
    std::fs::remove_file(&by_id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while console.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let note = console.exit_note().expect("the console ended");
    assert!(note.contains("did not come back within 0.3 s"), "{note}");
}

#[test]
fn opening_a_missing_port_names_it_and_says_what_to_check() {
    let e = SerialConsole::open(
        Path::new("/dev/serial/by-id/usb-rig-nothing-if00"),
        LineSettings::default(),
        Arc::new(Console::new(None).unwrap()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/dev/serial/by-id/usb-rig-nothing-if00"), "{e}");
    assert!(e.contains("is the board plugged in"), "{e}");
}
