//! Packing and fragmentation of client messages into data packets (ring-protocol.md §2.4).
//!
//! Small messages of one service are packed as chunks of one packet; a message larger than a
//! packet is split into fragments spread over consecutive packets of its sender and delivered,
//! in the order of its last packet, when that packet is. At an installation the reassembly of
//! every partial message is dropped and the daemon's own partially broadcast message is re-sent
//! whole (the receivers dropped its first fragments too).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::config::RingConfig;
use super::types::{Chunk, MsgId, Pid, Service};

/// A client message waiting in the send queue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outgoing {
    /// Message id.
    pub id: MsgId,
    /// Requested service.
    pub service: Service,
    /// Bytes.
    pub payload: Vec<u8>,
    /// Bytes already broadcast as fragments.
    pub offset: usize,
    /// Index of the next fragment.
    pub frag: u32,
}

impl Outgoing {
    /// A message not yet broadcast at all.
    pub const fn new(id: MsgId, service: Service, payload: Vec<u8>) -> Self {
        Self {
            id,
            service,
            payload,
            offset: 0,
            frag: 0,
        }
    }

    /// Forget the fragments broadcast so far: the message will be re-sent whole.
    pub fn restart(&mut self) {
        self.offset = 0;
        self.frag = 0;
    }
}

/// Take the chunks of the next data packet from the head of `queue`: messages of the head's
/// service, packed while they fit, the head fragmented if it cannot fit a packet on its own.
/// Returns `None` on an empty queue.
pub fn next_packet(queue: &mut VecDeque<Outgoing>, cfg: &RingConfig) -> Option<(Service, Vec<Chunk>)> {
    let service = queue.front()?.service;
    let full = cfg.max_packet_payload.saturating_sub(cfg.chunk_overhead).max(1);
    let mut room = cfg.max_packet_payload;
    let mut chunks = Vec::new();
    while let Some(head) = queue.front_mut() {
        if head.service != service || room <= cfg.chunk_overhead {
            break;
        }
        let avail = room - cfg.chunk_overhead;
        let rest = head.payload.len().saturating_sub(head.offset);
        if rest <= avail {
            room -= cfg.chunk_overhead + rest;
            let Some(done) = queue.pop_front() else { break };
            // A message sent whole moves its buffer into the chunk (no copy); the tail of a
            // fragmented one is copied out.
            let bytes = if done.offset == 0 {
                done.payload
            } else {
                done.payload.get(done.offset..).unwrap_or_default().to_vec()
            };
            chunks.push(Chunk {
                id: done.id,
                frag: done.frag,
                last: true,
                bytes,
            });
        } else if chunks.is_empty() || rest > full {
            let end = head.offset + avail;
            chunks.push(Chunk {
                id: head.id,
                frag: head.frag,
                last: false,
                bytes: head.payload.get(head.offset..end).unwrap_or_default().to_vec(),
            });
            head.offset = end;
            head.frag += 1;
            break;
        } else {
            break; // fits whole in the next packet: do not fragment it
        }
    }
    Some((service, chunks))
}

/// Serde adapter that (de)serializes a `Vec<u8>` as one byte string instead of a sequence of
/// `u8`s. With postcard both are the same bytes on the wire (a varint length, then the raw
/// bytes), but the byte-string path copies the buffer in one go where the sequence path visits
/// every byte (the decoder's hottest function before this adapter, see `docs/benchmarks.md`).
/// Self-describing formats (JSON) still accept a sequence of numbers.
pub mod byte_string {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::Serializer;

    /// Serialize as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserialize from a byte string (or a sequence of bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // The size hint comes from the input: bound the pre-allocation.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// A message being reassembled from a sender's fragments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Partial {
    /// Message id.
    pub id: MsgId,
    /// Next fragment expected.
    pub next: u32,
    /// Bytes so far.
    pub bytes: Vec<u8>,
}

/// Outcome of feeding one chunk to the reassembler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// A complete message.
    Complete(MsgId, Vec<u8>),
    /// A fragment was stored; the message is not complete.
    Pending,
    /// The chunk does not continue the sender's partial message (dropped, counted by the caller).
    Orphan,
}

/// Feed a delivered chunk of `sender` to the per-sender reassembly table.
pub fn reassemble(table: &mut BTreeMap<Pid, Partial>, sender: Pid, chunk: &Chunk) -> Reassembled {
    if chunk.frag == 0 {
        if chunk.last {
            table.remove(&sender);
            return Reassembled::Complete(chunk.id, chunk.bytes.clone());
        }
        table.insert(
            sender,
            Partial {
                id: chunk.id,
                next: 1,
                bytes: chunk.bytes.clone(),
            },
        );
        return Reassembled::Pending;
    }
    match table.get_mut(&sender) {
        Some(p) if p.id == chunk.id && p.next == chunk.frag => {
            p.bytes.extend_from_slice(&chunk.bytes);
            p.next += 1;
            if chunk.last {
                let done = table.remove(&sender).map(|p| p.bytes).unwrap_or_default();
                Reassembled::Complete(chunk.id, done)
            } else {
                Reassembled::Pending
            }
        }
        _ => Reassembled::Orphan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> MsgId {
        MsgId {
            origin: Pid::new(0, 1),
            n,
        }
    }

    fn cfg(max: usize) -> RingConfig {
        RingConfig {
            max_packet_payload: max,
            chunk_overhead: 2,
            ..RingConfig::new(vec![0])
        }
    }

    #[test]
    fn packs_small_messages_of_one_service() {
        let mut q: VecDeque<Outgoing> = VecDeque::from(vec![
            Outgoing::new(id(1), Service::Agreed, vec![1; 3]),
            Outgoing::new(id(2), Service::Agreed, vec![2; 3]),
            Outgoing::new(id(3), Service::Safe, vec![3; 3]),
        ]);
        let (s, chunks) = next_packet(&mut q, &cfg(20)).unwrap();
        assert_eq!(s, Service::Agreed);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.last && c.frag == 0));
        let (s, chunks) = next_packet(&mut q, &cfg(20)).unwrap();
        assert_eq!((s, chunks.len()), (Service::Safe, 1));
        assert!(next_packet(&mut q, &cfg(20)).is_none());
    }

    #[test]
    fn fragments_and_reassembles_a_large_message() {
        let payload: Vec<u8> = (0..25).collect();
        let mut q = VecDeque::from(vec![Outgoing::new(id(1), Service::Agreed, payload.clone())]);
        let mut table = BTreeMap::new();
        let mut got = None;
        let mut packets = 0;
        while let Some((_, chunks)) = next_packet(&mut q, &cfg(10)) {
            packets += 1;
            for c in &chunks {
                if let Reassembled::Complete(i, b) = reassemble(&mut table, Pid::new(0, 1), c) {
                    got = Some((i, b));
                }
            }
        }
        assert_eq!(packets, 4); // 8 + 8 + 8 + 1 bytes
        assert_eq!(got, Some((id(1), payload)));
        assert!(table.is_empty());
    }

    #[test]
    fn does_not_fragment_a_message_that_fits_the_next_packet() {
        let mut q = VecDeque::from(vec![
            Outgoing::new(id(1), Service::Agreed, vec![1; 5]),
            Outgoing::new(id(2), Service::Agreed, vec![2; 6]),
        ]);
        let (_, a) = next_packet(&mut q, &cfg(12)).unwrap();
        assert_eq!(a.len(), 1);
        let (_, b) = next_packet(&mut q, &cfg(12)).unwrap();
        assert_eq!((b.len(), b[0].last), (1, true));
    }

    #[test]
    fn orphan_fragments_are_reported() {
        let mut table = BTreeMap::new();
        let c = Chunk {
            id: id(1),
            frag: 1,
            last: true,
            bytes: vec![],
        };
        assert_eq!(reassemble(&mut table, Pid::new(1, 1), &c), Reassembled::Orphan);
    }
}
