//! Signals as messages to the loop: SIGHUP → reload, SIGTERM and SIGINT → shutdown.

use super::event_loop::Control;
use tokio::sync::mpsc;

/// SIGHUP → reload (also told to `on_hup`, which moves the servers); SIGTERM, SIGINT →
/// shutdown.
pub fn forward_signals(tx: mpsc::Sender<Control>, on_hup: mpsc::Sender<()>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
            };
            let stop = matches!(msg, Control::Shutdown);
            if matches!(msg, Control::Reload) {
                // Full: a reload is already pending, and it reads the file anew.
                let _ = on_hup.try_send(());
            }
            if tx.send(msg).await.is_err() || stop {
                break;
            }
        }
    });
    Ok(())
}
