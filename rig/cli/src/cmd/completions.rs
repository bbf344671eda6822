//! `rig completions SHELL`: prints a completion script for the shell.

use clap::CommandFactory;

use crate::exit;

/// Writes the completion script of `C` (the whole CLI) to stdout.
pub(crate) fn main<C: CommandFactory>(shell: clap_complete::Shell) -> u8 {
    let mut command = C::command();
    clap_complete::generate(shell, &mut command, "rig", &mut std::io::stdout());
    exit::OK
}
