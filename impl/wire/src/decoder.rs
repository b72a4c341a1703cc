//! [`FrameDecoder`]: a streaming decoder for one direction. Feed it bytes as they arrive (or
//! read straight into its buffer), then pop every complete frame; a partial frame stays buffered
//! until the rest arrives. An over-long length prefix is refused as soon as its 4 bytes are
//! buffered, and the decoder never reserves more than one frame limit; how much is fed at once
//! is the caller's choice.

use std::marker::PhantomData;

use bytes::{Buf, BytesMut};

use crate::frame::{Frame, LEN_PREFIX, split_frame};
use crate::{ToClient, ToClientRef, WireError};

/// Streaming decoder of frames of type `F` ([`crate::ToDaemon`] on the daemon side,
/// [`crate::ToClient`] on the client side).
///
/// After an error the decoder is poisoned and returns the same error: the byte stream has lost
/// its framing and the connection must be closed.
#[derive(Debug)]
pub struct FrameDecoder<F> {
    buf: BytesMut,
    failed: Option<WireError>,
    _frame: PhantomData<fn() -> F>,
}

impl<F: Frame> Default for FrameDecoder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Frame> FrameDecoder<F> {
    /// An empty decoder.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(64 * 1024),
            failed: None,
            _frame: PhantomData,
        }
    }

    /// Append received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading into directly (`AsyncReadExt::read_buf`). Only append to
    /// it. Before each read call [`Self::reserve_for_next`] so a large frame is read in big chunks.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Make room for at least the rest of the frame being received (capped by the frame limit),
    /// or `min` bytes.
    pub fn reserve_for_next(&mut self, min: usize) {
        let want = match self.buf.first_chunk::<LEN_PREFIX>() {
            Some(p) => (LEN_PREFIX + (u32::from_le_bytes(*p) as usize).min(F::MAX_FRAME))
                .saturating_sub(self.buf.len())
                .max(min),
            None => min,
        };
        self.buf.reserve(want);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<F>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let step = match split_frame(&self.buf, F::MAX_FRAME) {
            Ok(None) => return Ok(None),
            Ok(Some(raw)) => F::decode_body(raw.kind, raw.body).map(|f| (f, raw.used)),
            Err(e) => Err(e),
        };
        match step {
            Ok((frame, used)) => {
                self.buf.advance(used);
                Ok(Some(frame))
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

impl FrameDecoder<ToClient> {
    /// Zero-copy variant of [`Self::next_frame`]: hand the next complete frame to `f` with DATA
    /// borrowed from the buffer (see [`ToClientRef`]); the frame is consumed after `f` returns.
    pub fn next_frame_ref<R>(
        &mut self,
        f: impl FnOnce(ToClientRef<'_>) -> R,
    ) -> Result<Option<R>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let step = match split_frame(&self.buf, ToClient::MAX_FRAME) {
            Ok(None) => return Ok(None),
            Ok(Some(raw)) => ToClientRef::decode_body(raw.kind, raw.body).map(|fr| (f(fr), raw.used)),
            Err(e) => Err(e),
        };
        match step {
            Ok((out, used)) => {
                self.buf.advance(used);
                Ok(Some(out))
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}
