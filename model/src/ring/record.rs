//! Recordings of a live daemon's ring machine: what it was started with, then every input fed
//! to [`Daemon::handle`](super::Daemon::handle) with the commands it returned.
//!
//! A running daemon writes one recording per incarnation when `runtime.record` is set
//! (`docs/daemon.md`); `sgc conformance` replays it into a fresh machine, which must return the
//! identical commands (live → model, `docs/conformance.md`).
//!
//! ```text
//!  file  = frame(Header) frame(Step)*            (a torn last frame is reported, not an error)
//!  frame = len: u32 little-endian ‖ postcard bytes
//! ```

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::config::RingConfig;
use super::types::{Command, Durable, Event, NodeId};

/// Version of the recording format.
pub const RECORD_VERSION: u32 = 1;

/// Largest frame accepted when reading (a step carries at most one datagram's worth of
/// packets plus the deliveries it caused).
pub const MAX_FRAME: usize = 64 << 20;

/// What the machine was built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The daemon's node id.
    pub node: NodeId,
    /// The durable record loaded before `Daemon::new` (it increments the incarnation).
    pub durable: Option<Durable>,
    /// The machine's static parameters.
    pub ring: RingConfig,
}

/// One `handle` call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The input.
    pub event: Event,
    /// The commands returned, in order.
    pub commands: Vec<Command>,
}

/// Why a recording cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be written.
    #[error("writing the recording: {0}")]
    Io(#[from] std::io::Error),
    /// A frame does not encode or decode.
    #[error("frame {frame}: {reason}")]
    Codec {
        /// Index of the frame (0 is the header).
        frame: usize,
        /// The codec's message.
        reason: String,
    },
    /// A frame claims more than [`MAX_FRAME`] bytes.
    #[error("frame {frame} claims {len} bytes")]
    Oversize {
        /// Index of the frame.
        frame: usize,
        /// Claimed length.
        len: usize,
    },
    /// The recording has no header or another version.
    #[error("not a ring recording of version {RECORD_VERSION}")]
    BadHeader,
    /// Not even the header was written whole (the daemon was killed at once).
    #[error("empty recording")]
    Empty,
}

/// Appends frames to a writer (buffer it: one write per frame otherwise).
#[derive(Debug)]
pub struct Recorder<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Recorder<W> {
    /// Starts a recording with its header (flushed at once).
    pub fn new(out: W, header: &Header) -> Result<Self, RecordError> {
        let mut r = Self { out, buf: Vec::new() };
        r.frame(header, 0)?;
        r.flush()?;
        Ok(r)
    }

    /// Records one `handle` call.
    pub fn step(&mut self, event: &Event, commands: &[Command]) -> Result<(), RecordError> {
        #[derive(Serialize)]
        struct StepRef<'a> {
            event: &'a Event,
            commands: &'a [Command],
        }
        self.frame(&StepRef { event, commands }, 1)
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        Ok(self.out.flush()?)
    }

    fn frame<T: Serialize>(&mut self, value: &T, frame: usize) -> Result<(), RecordError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let body =
            postcard::to_extend(value, std::mem::take(&mut self.buf)).map_err(|e| RecordError::Codec {
                frame,
                reason: e.to_string(),
            })?;
        self.buf = body;
        let len = u32::try_from(self.buf.len() - 4).map_err(|_| RecordError::Oversize {
            frame,
            len: self.buf.len() - 4,
        })?;
        if let Some(head) = self.buf.get_mut(..4) {
            head.copy_from_slice(&len.to_le_bytes());
        }
        self.out.write_all(&self.buf)?;
        Ok(())
    }
}

/// A recording read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// How the machine was built.
    pub header: Header,
    /// Every recorded `handle` call, in order.
    pub steps: Vec<Step>,
    /// The file ended inside a frame (the daemon was killed while writing): that frame is
    /// not included.
    pub torn_tail: bool,
}

/// Reads a whole recording.
pub fn read(bytes: &[u8]) -> Result<Recording, RecordError> {
    let mut rest = bytes;
    let mut frames = Vec::new();
    let mut torn_tail = false;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            torn_tail = true;
            break;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_FRAME {
            return Err(RecordError::Oversize {
                frame: frames.len(),
                len,
            });
        }
        let Some((frame, after)) = body.split_at_checked(len) else {
            torn_tail = true;
            break;
        };
        frames.push(frame);
        rest = after;
    }
    let mut frames = frames.into_iter().enumerate();
    let (_, first) = frames.next().ok_or(RecordError::Empty)?;
    let header: Header = postcard::from_bytes(first).map_err(|_| RecordError::BadHeader)?;
    if header.version != RECORD_VERSION {
        return Err(RecordError::BadHeader);
    }
    let steps = frames
        .map(|(i, f)| {
            postcard::from_bytes(f).map_err(|e| RecordError::Codec {
                frame: i,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<Step>, _>>()?;
    Ok(Recording {
        header,
        steps,
        torn_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{MsgId, Pid, Service, TimerKind};

    fn header() -> Header {
        Header {
            version: RECORD_VERSION,
            node: 2,
            durable: None,
            ring: RingConfig::new(vec![0, 1, 2]),
        }
    }

    fn recorded() -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = Recorder::new(&mut out, &header()).unwrap();
        r.step(&Event::Boot, &[Command::CancelTimer(TimerKind::TokenLoss)])
            .unwrap();
        let submit = Event::Submit {
            id: MsgId {
                origin: Pid::new(2, 1),
                n: 7,
            },
            service: Service::Agreed,
            payload: vec![1, 2, 3],
        };
        r.step(&submit, &[]).unwrap();
        r.flush().unwrap();
        out
    }

    #[test]
    fn a_recording_reads_back_as_written() {
        let rec = read(&recorded()).unwrap();
        assert_eq!(rec.header, header());
        assert_eq!(rec.steps.len(), 2);
        assert_eq!(rec.steps[0].event, Event::Boot);
        assert_eq!(
            rec.steps[0].commands,
            vec![Command::CancelTimer(TimerKind::TokenLoss)]
        );
        assert!(!rec.torn_tail);
    }

    #[test]
    fn a_torn_last_frame_is_reported_and_dropped() {
        let bytes = recorded();
        for cut in 1..12 {
            let rec = read(&bytes[..bytes.len() - cut]).unwrap();
            assert_eq!(rec.steps.len(), 1, "cut {cut}");
            assert!(rec.torn_tail);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(read(&[]), Err(RecordError::Empty)));
        assert!(matches!(read(&recorded()[..3]), Err(RecordError::Empty)));
        assert!(matches!(
            read(&[3, 0, 0, 0, 9, 9, 9]),
            Err(RecordError::BadHeader)
        ));
        assert!(matches!(
            read(&[255, 255, 255, 255]),
            Err(RecordError::Oversize { .. })
        ));
        let mut bytes = recorded();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        bytes.extend_from_slice(&[1, 0, 0, 0, 0xff]);
        assert!(read(&bytes).is_err());
    }
}
