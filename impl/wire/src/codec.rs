//! Little-endian primitives: a bounds-checked `Reader` over a frame body and the [`WireBuf`]
//! trait for the growable buffers frames are encoded into (`Vec<u8>`, `BytesMut`).
//!
//! Every read checks the remaining length first and fails with [`WireError::Truncated`];
//! nothing here indexes out of bounds or allocates more than the bytes it has been given.

use bytes::BytesMut;

use crate::WireError;

/// A growable byte buffer frames are appended to.
pub trait WireBuf {
    /// Append bytes.
    fn put(&mut self, bytes: &[u8]);
    /// Bytes held.
    fn pos(&self) -> usize;
    /// Overwrite 4 bytes at `at` (the length prefix, patched once the body is written).
    fn patch_u32(&mut self, at: usize, v: u32);
    /// Drop everything from `len` on (undoing a frame whose encoding failed).
    fn cut(&mut self, len: usize);
    /// Reserve room for `n` more bytes.
    fn reserve_more(&mut self, n: usize);
}

impl WireBuf for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn pos(&self) -> usize {
        self.len()
    }
    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl WireBuf for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn pos(&self) -> usize {
        self.len()
    }
    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// Writing helpers over any [`WireBuf`].
pub(crate) trait Put: WireBuf {
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
}

impl<B: WireBuf + ?Sized> Put for B {}

/// A cursor over one frame body.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Everything not yet read, without consuming it.
    pub(crate) const fn peek_rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A `u32` item count, checked against the bytes left: each item needs at least
    /// `min_item` bytes, so a lying count cannot make the caller reserve a huge vector.
    pub(crate) fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize, WireError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(WireError::Truncated { what });
        }
        Ok(n)
    }

    /// Fail unless the body has been read entirely.
    pub(crate) const fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes(self.buf.len()))
        }
    }
}
