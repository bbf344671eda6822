//! The agent's console line protocol (stdin in, stdout out).
//!
//! One command per input line, one event or answer per output line; the full
//! grammar is in `firmware/agent/README.md`, which the device profile
//! `hardware/profiles/rig-agent.toml` matches. Logs never go to stdout (they go
//! to stderr), so every stdout line is a protocol line.

use std::fmt;

/// A command read from the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a Registration Update now (or register if not registered).
    Update,
    /// Reboot: drop the session and register afresh, as after /3/0/4.
    Reboot,
    /// Restore the factory configuration (the command-line settings) and re-register.
    FactoryReset,
    /// Print the registration state.
    Status,
    /// De-register (if registered) and exit.
    Quit,
    /// LwM2M Send (`POST /dp`, SenML CBOR) of the values at these paths.
    Send(Vec<String>),
}

impl Command {
    /// The command's word as typed.
    pub fn word(&self) -> &'static str {
        match self {
            Command::Update => "update",
            Command::Reboot => "reboot",
            Command::FactoryReset => "factory-reset",
            Command::Status => "status",
            Command::Quit => "quit",
            Command::Send(_) => "send",
        }
    }
}

/// Why a console line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The first word of the line (or the empty string).
    pub word: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses one console line. Blank lines and `#` comments give `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or_default();
    let cmd = match word {
        "update" => Command::Update,
        "reboot" => Command::Reboot,
        "factory-reset" => Command::FactoryReset,
        "status" => Command::Status,
        "quit" => Command::Quit,
        "send" => {
            let paths: Vec<String> = words.map(str::to_string).collect();
            if paths.is_empty() {
                return Err(ParseError {
                    word: word.to_string(),
                    reason: "needs at least one path, e.g. `send /1/0/1 /3/0/11/0`".to_string(),
                });
            }
            return Ok(Some(Command::Send(paths)));
        }
        other => {
            return Err(ParseError {
                word: other.to_string(),
                reason:
                    "unknown command (expected update, reboot, factory-reset, status, send or quit)"
                        .to_string(),
            });
        }
    };
    if let Some(extra) = words.next() {
        return Err(ParseError {
            word: word.to_string(),
            reason: format!("takes no arguments, got `{extra}`"),
        });
    }
    Ok(Some(cmd))
}

/// A line the agent prints on stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The agent is up and reads commands.
    Ready,
    /// The server accepted the Register; the location path, e.g. `/rd/3`.
    Registered(String),
    /// The server accepted an Update.
    Updated,
    /// The server accepted the De-register (or the agent stopped talking to it).
    Deregistered,
    /// Registration failed (the reason, one line).
    RegistrationFailed(String),
    /// A command was carried out (or started).
    Ok(&'static str),
    /// A command failed.
    Error(String, String),
    /// The answer to `status`: `status <state> [location] lt=<s>`.
    Status(String),
    /// A firmware-update event, printed as is: `fota state=2 result=0`, ...
    Fota(String),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Ready => f.write_str("ready"),
            Output::Registered(loc) => write!(f, "registered {loc}"),
            Output::Updated => f.write_str("updated"),
            Output::Deregistered => f.write_str("deregistered"),
            Output::RegistrationFailed(reason) => {
                write!(f, "registration-failed {}", one_line(reason))
            }
            Output::Ok(cmd) => write!(f, "ok {cmd}"),
            Output::Error(cmd, reason) => write!(f, "error {cmd}: {}", one_line(reason)),
            Output::Status(s) => write!(f, "status {}", one_line(s)),
            Output::Fota(s) => f.write_str(&one_line(s)),
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        for (line, cmd) in [
            ("update", Command::Update),
            ("  reboot ", Command::Reboot),
            ("factory-reset", Command::FactoryReset),
            ("status", Command::Status),
            ("quit\r", Command::Quit),
        ] {
            assert_eq!(parse(line), Ok(Some(cmd.clone())));
            assert_eq!(parse(cmd.word()), Ok(Some(cmd)));
        }
    }

    #[test]
    fn blank_and_comment_lines_are_ignored() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("# hello"), Ok(None));
    }

    #[test]
    fn unknown_commands_and_arguments_are_errors() {
        let e = parse("fly away").unwrap_err();
        assert_eq!(e.word, "fly");
        assert!(e.reason.contains("unknown command"));
        let e = parse("update now").unwrap_err();
        assert_eq!(e.word, "update");
        assert!(e.reason.contains("`now`"));
    }

    #[test]
    fn outputs_are_single_lines() {
        assert_eq!(
            Output::Registered("/rd/1".into()).to_string(),
            "registered /rd/1"
        );
        assert_eq!(Output::Ok("status").to_string(), "ok status");
        assert_eq!(
            Output::Error("update".into(), "not\nregistered".into()).to_string(),
            "error update: not registered"
        );
    }
}
