//! A request/answer channel with a timeout: how a server asks the control loop for something
//! without knowing the loop's type (linkerd's admin server holds a narrow handle the same way).
//! A server defines its own message type `M`, each message carrying a [`Reply`]; it holds an
//! [`Asker<M>`]. The loop, above the servers, receives the `M`s and answers each through its
//! `Reply`. One send-and-wait for every server, so a timeout means the same everywhere.

use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where the loop sends its answer to one message.
pub type Reply<A> = oneshot::Sender<A>;

/// Why no answer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The loop has stopped taking messages (burstd is shutting down).
    #[error("the control loop has stopped")]
    Stopped,
    /// The loop took the message but gave no answer within the timeout.
    #[error("the control loop did not answer within {0:?}")]
    NoAnswer(Duration),
}

/// The sending side: cheap to clone, one per server.
#[derive(Debug)]
pub struct Asker<M> {
    tx: mpsc::Sender<M>,
    timeout: Duration,
}

impl<M> Clone for Asker<M> {
    fn clone(&self) -> Self {
        Asker {
            tx: self.tx.clone(),
            timeout: self.timeout,
        }
    }
}

impl<M: Send> Asker<M> {
    /// A channel holding up to `capacity` messages, and the asker on its sending side; an
    /// answer is awaited at most `timeout`.
    pub fn channel(capacity: usize, timeout: Duration) -> (Asker<M>, mpsc::Receiver<M>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Asker { tx, timeout }, rx)
    }

    /// Sends the message `make` builds around a fresh reply, and waits for the answer.
    /// `asker.ask(Probe::Ping)` reads as what it does.
    pub async fn ask<A>(&self, make: impl FnOnce(Reply<A>) -> M) -> Result<A, AskError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AskError::Stopped)?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(a)) => Ok(a),
            // The loop dropped the reply, or was too slow: either way, no answer.
            Ok(Err(_)) | Err(_) => Err(AskError::NoAnswer(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Msg {
        Double(u32, Reply<u32>),
        Ignore(Reply<u32>),
    }

    #[tokio::test(start_paused = true)]
    async fn answers_times_out_and_notices_a_stopped_loop() {
        let (asker, mut rx) = Asker::channel(4, Duration::from_secs(5));
        let server = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(m) = rx.recv().await {
                match m {
                    Msg::Double(x, r) => {
                        let _ = r.send(2 * x);
                    }
                    // Held, never answered: the asker's timeout must end the wait.
                    Msg::Ignore(r) => kept.push(r),
                }
            }
        });
        assert_eq!(asker.ask(|r| Msg::Double(21, r)).await, Ok(42));
        assert_eq!(
            asker.ask(Msg::Ignore).await,
            Err(AskError::NoAnswer(Duration::from_secs(5)))
        );
        server.abort();
        let _ = server.await;
        assert_eq!(asker.ask(Msg::Ignore).await, Err(AskError::Stopped));
    }
}
