//! The outbox: batched, back-pressured writes to the daemon.
//!
//! Senders encode frames straight into one shared buffer (no allocation per message beyond the
//! buffer's growth) and wake the writer task. The writer swaps the buffer for an empty one and
//! writes everything in one `write_all`; whatever senders add meanwhile goes out in the next
//! write. So a lone message is written at once, and an application that sends faster than the
//! socket drains gets many frames per system call. When [`HIGH_WATER`] bytes are waiting,
//! senders wait for the writer (back-pressure from TCP reaches the application).
//!
//! ```text
//!  multicast ─┐ encode under the lock
//!  multicast ─┼─► buf: Vec<u8> ──swap──► writer task ── write_all ──► socket
//!  join      ─┘        ▲ wait while ≥ HIGH_WATER         │ progress (space, drained, failed)
//! ```

use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sgc_wire::WireError;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::ClientError;
use crate::endpoint::WriteHalf;

/// Bytes waiting to be written above which senders wait.
pub const HIGH_WATER: usize = 4 << 20;

/// The buffer shared by senders and the writer task.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    st: Mutex<State>,
    /// Wakes the writer: data or shutdown (`notify_one` keeps a permit, so no wake-up is lost).
    to_writer: Notify,
    /// Wakes senders and flushers: space freed, everything written, or a failure.
    progress: Notify,
}

#[derive(Debug, Default)]
struct State {
    buf: Vec<u8>,
    /// The writer is writing a batch.
    in_flight: bool,
    /// Writing failed (kind, message); every later call fails.
    failed: Option<(std::io::ErrorKind, String)>,
    /// No more frames: the writer writes what is left and closes its half.
    shutdown: bool,
    /// Socket writes so far (one per batch).
    writes: u64,
}

impl State {
    fn check(&self) -> Result<(), ClientError> {
        if let Some((kind, msg)) = &self.failed {
            return Err(ClientError::from_io(std::io::Error::new(*kind, msg.clone())));
        }
        if self.shutdown {
            return Err(ClientError::Disconnected);
        }
        Ok(())
    }
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned lock still holds consistent bytes.
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Encode one frame with `encode` into the buffer (waiting while it is full) and wake the
    /// writer. An encoding error leaves the buffer unchanged and is a [`ClientError::LimitHit`].
    pub(crate) async fn push(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
    ) -> Result<(), ClientError> {
        let mut encode = Some(encode);
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            {
                let mut st = self.lock();
                st.check()?;
                if st.buf.len() < HIGH_WATER {
                    if let Some(f) = encode.take() {
                        f(&mut st.buf).map_err(ClientError::LimitHit)?;
                    }
                    drop(st);
                    self.to_writer.notify_one();
                    return Ok(());
                }
            }
            progress.await;
        }
    }

    /// Wait until everything pushed so far has been written to the socket.
    pub(crate) async fn flush(&self) -> Result<(), ClientError> {
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            {
                let st = self.lock();
                if let Some((kind, msg)) = &st.failed {
                    return Err(ClientError::from_io(std::io::Error::new(*kind, msg.clone())));
                }
                if st.buf.is_empty() && !st.in_flight {
                    return Ok(());
                }
            }
            progress.await;
        }
    }

    /// Socket writes so far: each carries every frame queued since the previous one.
    pub(crate) fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Stop accepting frames; the writer writes what is left, closes its half and ends.
    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.to_writer.notify_one();
        self.progress.notify_waiters();
    }

    /// The writer task: write batches until shutdown or failure.
    pub(crate) async fn run_writer(self: Arc<Self>, mut w: WriteHalf) {
        let mut batch = Vec::with_capacity(64 * 1024);
        loop {
            let stop = {
                let mut st = self.lock();
                if st.buf.is_empty() {
                    st.in_flight = false;
                    st.shutdown
                } else {
                    std::mem::swap(&mut st.buf, &mut batch);
                    st.in_flight = true;
                    false
                }
            };
            // Space was freed, or everything is written.
            self.progress.notify_waiters();
            if stop {
                break;
            }
            if batch.is_empty() {
                self.to_writer.notified().await;
                continue;
            }
            let written = match w.write_all(&batch).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                let mut st = self.lock();
                st.failed = Some((e.kind(), e.to_string()));
                st.in_flight = false;
                st.buf = Vec::new();
                drop(st);
                self.progress.notify_waiters();
                return;
            }
            self.lock().writes += 1;
            batch.clear();
            if batch.capacity() > 2 * HIGH_WATER {
                batch = Vec::with_capacity(64 * 1024);
            }
        }
        // The daemon may already be gone; closing is best effort.
        let _ = w.shutdown().await;
    }
}
