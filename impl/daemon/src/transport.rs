//! Daemon-to-daemon datagrams: a small versioned header followed by a `postcard`-encoded
//! [`Packet`], and the checks that turn untrusted bytes into a `(Pid, Packet)` or a counted
//! [`DecodeError`].
//!
//! ```text
//!  0      4    5    6              14      16          20
//!  | SGCR | ver| 0  | cluster (u64) | node  | incarnation | postcard(Packet) ...
//! ```
//!
//! This is version 1 (plaintext). Three-Step packet protection adds version 2 (sealed and
//! signed datagrams), laid out and checked in [`crate::protection`].
//!
//! All integers are big-endian. The decoded size is bounded by the datagram size (checked
//! against `runtime.max_datagram` before decoding; postcard allocates at most in proportion to
//! its input), and trailing bytes are rejected.

use sgc_model::ring::{Packet, Pid};

/// First bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"SGCR";
/// Wire version of this header and body encoding.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 20;

/// Why a datagram was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than the configured bound.
    #[error("datagram of {0} bytes exceeds the bound")]
    Oversize(usize),
    /// Shorter than the header.
    #[error("datagram of {0} bytes is shorter than the header")]
    Truncated(usize),
    /// Not our magic.
    #[error("bad magic")]
    BadMagic,
    /// Another wire version.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Another cluster's packet.
    #[error("packet of another cluster ({0:#018x})")]
    WrongCluster(u64),
    /// The body does not decode as a packet.
    #[error("undecodable body: {0}")]
    Undecodable(String),
    /// The body decodes but leaves bytes over.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A protected (version 2) datagram failed its checks (`protection.rs`).
    #[error("sealed datagram refused: {0}")]
    Seal(#[from] sgc_crypto::seal::SealError),
    /// A plaintext (version 1) datagram where protection is required.
    #[error("plaintext datagram refused: packet protection is on")]
    Plaintext,
    /// A protected datagram when this daemon runs without protection.
    #[error("protected datagram while packet protection is off")]
    Unexpected,
    /// A signed (bootstrap) datagram whose signature does not verify, or from a daemon
    /// whose verifying key is unknown.
    #[error("bad or unverifiable signature")]
    BadSignature,
    /// A protected datagram of an unknown mode.
    #[error("unknown protected mode {0}")]
    BadMode(u8),
    /// The claimed sender is not a configured daemon at the datagram's source address.
    #[error("unknown sender")]
    UnknownSender,
}

impl DecodeError {
    /// A short label for counters and logs.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Oversize(_) => "oversize",
            Self::Truncated(_) => "truncated",
            Self::BadMagic => "bad_magic",
            Self::BadVersion(_) => "bad_version",
            Self::WrongCluster(_) => "wrong_cluster",
            Self::Undecodable(_) | Self::Trailing(_) => "undecodable",
            Self::Seal(e) => seal_label(e),
            Self::Plaintext => "plaintext",
            Self::Unexpected => "unexpected_protected",
            Self::BadSignature => "bad_signature",
            Self::BadMode(_) => "bad_version",
            Self::UnknownSender => "unknown_sender",
        }
    }
}

const fn seal_label(e: &sgc_crypto::seal::SealError) -> &'static str {
    use sgc_crypto::seal::SealError as E;
    match e {
        E::NoKey => "seal_no_key",
        E::UnknownEpoch(_) => "seal_unknown_epoch",
        E::FutureEpoch(_) => "seal_future_epoch",
        E::WrongSuite { .. } | E::UnknownSuite(_) => "seal_wrong_suite",
        E::Replay { .. } => "seal_replay",
        E::TooOld { .. } => "seal_too_old",
        E::Unauthentic => "seal_unauthentic",
        E::Truncated => "seal_truncated",
        E::BadPadding => "seal_bad_padding",
        E::TooManySenders => "seal_too_many_senders",
        _ => "seal_other",
    }
}

/// The cluster tag carried in every header: 64-bit FNV-1a of the cluster name.
pub fn cluster_tag(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Encoder/decoder bound to one cluster and one sender.
#[derive(Clone, Debug)]
pub struct Codec {
    /// [`cluster_tag`] of this cluster.
    pub cluster: u64,
    /// Largest datagram accepted.
    pub max_datagram: usize,
}

impl Codec {
    /// A codec for a cluster.
    pub fn new(cluster: &str, max_datagram: usize) -> Self {
        Self {
            cluster: cluster_tag(cluster),
            max_datagram,
        }
    }

    /// Encode a packet sent by `from`.
    pub fn encode(&self, from: Pid, pkt: &Packet) -> Vec<u8> {
        // Sized for a full data packet at once: growing 64 → 128 → … → 2048 cost four
        // reallocations and copies per data packet.
        let cap = match pkt {
            Packet::Data(_) => 1536,
            _ => 128,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + cap);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.extend_from_slice(&from.node.to_be_bytes());
        out.extend_from_slice(&from.inc.to_be_bytes());
        // Serializing an in-memory `Packet` into a Vec cannot fail (no maps with non-string
        // keys issue in postcard, no I/O): fall back to an empty body that peers reject.
        postcard::to_extend(pkt, out).unwrap_or_default()
    }

    /// Decode a datagram into its claimed sender and packet.
    pub fn decode(&self, bytes: &[u8]) -> Result<(Pid, Packet), DecodeError> {
        if bytes.len() > self.max_datagram {
            return Err(DecodeError::Oversize(bytes.len()));
        }
        let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated(bytes.len()));
        };
        if header[0..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(DecodeError::BadVersion(header[4]));
        }
        let cluster = u64::from_be_bytes([
            header[6], header[7], header[8], header[9], header[10], header[11], header[12], header[13],
        ]);
        if cluster != self.cluster {
            return Err(DecodeError::WrongCluster(cluster));
        }
        let node = u16::from_be_bytes([header[14], header[15]]);
        let inc = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
        Ok((Pid::new(node, inc), decode_body(body)?))
    }
}

/// Decode a whole body as one packet (no trailing bytes).
pub(crate) fn decode_body(body: &[u8]) -> Result<Packet, DecodeError> {
    let (pkt, rest) =
        postcard::take_from_bytes::<Packet>(body).map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(pkt)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sgc_model::ring::{Join, RingId};

    use super::*;

    fn codec() -> Codec {
        Codec::new("test", 65_507)
    }

    fn join() -> Packet {
        Packet::Join(Join {
            proc_set: BTreeSet::from([Pid::new(0, 1), Pid::new(1, 3)]),
            fail_set: BTreeSet::new(),
            ring_seq: 7,
        })
    }

    #[test]
    fn round_trip() {
        let c = codec();
        let from = Pid::new(2, 9);
        for pkt in [
            join(),
            Packet::Probe {
                ring: RingId { seq: 4, rep: from },
            },
        ] {
            let bytes = c.encode(from, &pkt);
            assert_eq!(c.decode(&bytes), Ok((from, pkt)));
        }
    }

    /// The worst-case encoding of a data packet stays within `packet_payload` plus
    /// [`crate::config::DATA_PACKET_OVERHEAD`]: every integer at its longest varint, chunks
    /// filling the payload as the packer counts them, wrapped in a recovery packet.
    #[test]
    fn worst_case_data_packet_fits_the_overhead_bound() {
        use sgc_model::ring::{Body, Chunk, DataPkt, MsgId, RingConfig, Service};
        let cfg = RingConfig::new(vec![0]);
        let big = Pid::new(u16::MAX, u32::MAX);
        let ring = RingId {
            seq: u64::MAX,
            rep: big,
        };
        for (payload, sizes) in [
            (cfg.max_packet_payload, vec![0usize; 1]),
            (1350, vec![0; 1350 / 22]),
            (1350, vec![1; 1350 / 23]),
            (1350, vec![1350 - 22]),
            (65_385, vec![65_385 - 22]),
            (65_385, vec![0; 65_385 / 22]),
        ] {
            let chunks: Vec<Chunk> = sizes
                .iter()
                .map(|n| Chunk {
                    id: MsgId {
                        origin: big,
                        n: u32::MAX,
                    },
                    frag: u32::MAX,
                    last: true,
                    bytes: vec![0xa5; *n],
                })
                .collect();
            let counted: usize = sizes.iter().map(|n| n + cfg.chunk_overhead).sum();
            assert!(counted <= payload);
            let inner = DataPkt {
                ring,
                seq: u64::MAX,
                sender: big,
                round: u64::MAX,
                service: Service::Safe,
                body: Body::Chunks(chunks),
            };
            let outer = Packet::Data(DataPkt {
                ring,
                seq: u64::MAX,
                sender: big,
                round: u64::MAX,
                service: Service::Safe,
                body: Body::Recovered(Box::new(inner)),
            });
            let bytes = Codec::new("test", 65_507).encode(big, &outer);
            assert!(
                bytes.len() <= payload + crate::config::DATA_PACKET_OVERHEAD,
                "{} > {payload} + overhead",
                bytes.len()
            );
        }
    }

    #[test]
    fn hostile_datagrams_are_rejected_not_panicking() {
        let c = codec();
        let good = c.encode(Pid::new(1, 1), &join());
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert_eq!(c.decode(&bad_magic), Err(DecodeError::BadMagic));
        let mut bad_version = good.clone();
        bad_version[4] = 9;
        assert_eq!(c.decode(&bad_version), Err(DecodeError::BadVersion(9)));
        let other = Codec::new("other", 65_507).encode(Pid::new(1, 1), &join());
        assert!(matches!(c.decode(&other), Err(DecodeError::WrongCluster(_))));
        assert_eq!(c.decode(&good[..10]), Err(DecodeError::Truncated(10)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(c.decode(&trailing), Err(DecodeError::Trailing(1)));
        assert_eq!(
            Codec::new("test", 512).decode(&[0; 600]),
            Err(DecodeError::Oversize(600))
        );
        // Every truncation and a sweep of byte flips: errors or packets, never a panic.
        for n in 0..good.len() {
            let _ = c.decode(&good[..n]);
        }
        for i in HEADER_LEN..good.len() {
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = c.decode(&b);
            }
        }
        // A huge length prefix must not allocate beyond the input.
        let mut huge = good[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&[2, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(c.decode(&huge), Err(DecodeError::Undecodable(_))));
    }
}
