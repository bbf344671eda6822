//! `rig-agent`: the reference DUT binary. Wires the driver to stdin (commands),
//! stdout (console protocol lines) and stderr (logs). See `README.md`.

use clap::Parser;
use rig_agent::config::AgentConfig;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cfg = AgentConfig::parse();
    let (cmd_tx, cmd_rx) = mpsc::channel::<String>(16);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();

    // stdin → commands, on a plain thread: tokio's stdin would keep the
    // runtime from shutting down after `quit`. End of input closes the
    // channel (treated as quit).
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if cmd_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    // Console lines → stdout, flushed per line so a reader sees them at once.
    let stdout_task = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let stderr_task = tokio::spawn(async move {
        let mut stderr = tokio::io::stderr();
        while let Some(line) = log_rx.recv().await {
            let _ = stderr
                .write_all(format!("rig-agent: {line}\n").as_bytes())
                .await;
        }
    });

    let result = rig_agent::driver::run(cfg, cmd_rx, out_tx, log_tx).await;
    // The driver dropped its senders; let the writers drain.
    let _ = stdout_task.await;
    let _ = stderr_task.await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rig-agent: error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
