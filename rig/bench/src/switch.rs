//! Power switches: cutting and restoring a DUT's power to recover a board that
//! stopped answering (`target.power_switch`).
//!
//! A switch is either any program (a PDU or relay script) or a USB hub port
//! cycled with `uhubctl`. The command runs with a bounded time; its output and
//! exit status go to the DUT console as rig notes, so the evidence shows when
//! and how the board was power-cycled.
//!
//! Recovery between cases ([`stopped_answering`], [`recover`]): after a case
//! that did not pass, the DUT is taken to have **stopped answering** when
//! - the case could not start it or could not bring it to its start state
//!   (the message starts with [`COULD_NOT_START`] or [`COULD_NOT_REACH`]:
//!   it exited at start, or no Register came within the wait), or
//! - the case needed it running (a `Registered` start state) and it is not
//!   running any more ([`Dut::is_running`]: its process exited or was
//!   killed, its console is gone).
//!
//! Such a DUT is stopped (cleaning up what is left) and power-cycled through
//! the bench's switch; a bench without a switch relies on the next case's
//! start, which restarts a process DUT (and resets a board). Either way a note
//! goes into the case's message and the console evidence, and the run goes
//! on with the next case.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::BenchError;
use crate::console::{Console, Stream};
use crate::dut::Dut;
use crate::file::PowerSwitch;

/// How a case message starts when the DUT could not be started (rig-suite's
/// start-state code writes it).
pub const COULD_NOT_START: &str = "could not start the DUT";
/// How a case message starts when the DUT did not reach its start state.
pub const COULD_NOT_REACH: &str = "could not reach start state";

/// How long stopping a dead DUT may take before it is power-cycled.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// Why the DUT is taken to have stopped answering after a case (see the
/// module doc), or `None` when it needs no recovery. `passed`: the case
/// passed, was not applicable or was interrupted; `needs_running`: its start
/// state is a running DUT; `running`: [`Dut::is_running`] now.
pub fn stopped_answering(
    passed: bool,
    message: &str,
    needs_running: bool,
    running: bool,
) -> Option<String> {
    if passed {
        return None;
    }
    if message.starts_with(COULD_NOT_START) {
        return Some("it could not be started".into());
    }
    if message.starts_with(COULD_NOT_REACH) {
        return Some("it did not reach the case's start state".into());
    }
    if needs_running && !running {
        return Some("it is not running any more (its process or console is gone)".into());
    }
    None
}

/// Recovers a DUT that stopped answering (`why`, from [`stopped_answering`]):
/// stops it, then power-cycles it through the bench's switch. Returns the note
/// for the case's message; the same facts go to the DUT console. Never fails:
/// a failed power cycle is reported in the note, and the next case's start
/// will say whether the DUT came back.
pub async fn recover(dut: &mut dyn Dut, why: &str) -> String {
    let stopped = match tokio::time::timeout(STOP_WAIT, dut.stop()).await {
        Ok(Ok(())) => String::new(),
        Ok(Err(e)) => format!(" (stopping it first failed: {e})"),
        Err(_) => format!(
            " (stopping it first took longer than {} s)",
            STOP_WAIT.as_secs()
        ),
    };
    // power_cycle is bounded by SWITCH_TIMEOUT inside; this is a backstop.
    let cycled = tokio::time::timeout(SWITCH_TIMEOUT + STOP_WAIT, dut.power_cycle()).await;
    let what = match cycled {
        Ok(Ok(())) => "power-cycled it through the bench's power switch".to_string(),
        Ok(Err(BenchError::Unsupported(_))) => {
            "the bench has no power switch (target.power_switch): the next case restarts it"
                .to_string()
        }
        Ok(Err(e)) => format!("power-cycling it failed: {e}"),
        Err(_) => "power-cycling it did not finish in time".to_string(),
    };
    format!("the DUT stopped answering ({why}){stopped}; {what}")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dut_stopped_answering_only_after_a_case_that_did_not_pass() {
        let dead =
            |m: &str, needs: bool, running: bool| stopped_answering(false, m, needs, running);
        assert_eq!(stopped_answering(true, "", true, false), None);
        assert!(
            dead(
                "could not start the DUT: exited with status 1",
                false,
                false
            )
            .unwrap()
            .contains("could not be started")
        );
        assert!(
            dead("could not reach start state C.1: no Register", true, true)
                .unwrap()
                .contains("start state")
        );
        assert!(
            dead("expected lt=20", true, false)
                .unwrap()
                .contains("not running")
        );
        // A failed case whose DUT lives, or that needs no running DUT, is left alone.
        assert_eq!(dead("expected lt=20", true, true), None);
        assert_eq!(dead("expected lt=20", false, false), None);
    }
}
