//! Power switches: cutting and restoring a DUT's power to recover a board that
//! stopped answering (`target.power_switch`).
//!
//! A switch is either any program (a PDU or relay script) or a USB hub port
//! cycled with `uhubctl`. The command runs with a bounded time; its output and
//! exit status go to the DUT console as rig notes, so the evidence shows when
//! and how the board was power-cycled.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::file::PowerSwitch;

/// How long a switch command may take.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The command line a switch runs.
pub fn argv(switch: &PowerSwitch) -> Vec<String> {
    match switch {
        PowerSwitch::Command(c) => c.clone(),
        PowerSwitch::Uhubctl { hub, port } => vec![
            "uhubctl".into(),
            "-l".into(),
            hub.clone(),
            "-p".into(),
            port.to_string(),
            "-a".into(),
            "cycle".into(),
            "-d".into(),
            "2".into(),
        ],
    }
}

/// Runs the switch, noting it in `console`. Fails if the program cannot be
/// started, exits with an error, or takes longer than [`SWITCH_TIMEOUT`].
pub async fn power_cycle(switch: &PowerSwitch, console: &Console) -> Result<(), BenchError> {
    let argv = argv(switch);
    let Some((program, args)) = argv.split_first() else {
        return Err(BenchError::Template(
            "the power switch command is empty".into(),
        ));
    };
    console.push(Stream::Rig, &format!("power cycle: {}", argv.join(" ")));
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BenchError::Spawn {
            program: program.clone(),
            source,
        })?;
    let out = tokio::time::timeout(SWITCH_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| BenchError::Io {
            what: format!(
                "the power switch `{}` took longer than {} s",
                argv.join(" "),
                SWITCH_TIMEOUT.as_secs()
            ),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        })?
        .map_err(|source| BenchError::Io {
            what: format!("the power switch `{}`", argv.join(" ")),
            source,
        })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        console.push(Stream::Rig, &format!("power switch: {line}"));
    }
    if out.status.success() {
        console.push(Stream::Rig, "power cycle done");
        Ok(())
    } else {
        Err(BenchError::Io {
            what: format!(
                "the power switch `{}` failed ({}){}",
                argv.join(" "),
                out.status,
                text.lines()
                    .last()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
            source: std::io::Error::other("power switch failed"),
        })
    }
}
