//! [`KeyRing`]: the current and the previous epoch key of the servers, the per-sender keys
//! derived from them, the own sequence counter and the replay windows.
//!
//! **Derivation.** For epoch `e` with servers' key `K`:
//! `PRK_e = HKDF-Extract(salt = "sgc seal v1", K)`, and for sender `s` (the transport's 64-bit
//! sender id: node and incarnation) and suite `c`:
//! `K_enc(e, s) = HKDF-Expand(PRK_e, "sgc seal enc" ‖ c ‖ e ‖ s)`,
//! `K_mac(e, s) = HKDF-Expand(PRK_e, "sgc seal mac" ‖ c ‖ e ‖ s)` (integers big-endian).
//! Keys are per sender so that a nonce (sender ‖ 64-bit sequence number, the sequence number
//! starting at 0 in every epoch) can never repeat under one key, even if two processes (a
//! daemon and its restarted incarnation) were ever given the same epoch key.
//!
//! **Epochs.** [`KeyRing::install`] makes a strictly newer epoch current and the current one
//! previous (the older previous one is dropped and its keys zeroized). Packets are sealed under
//! the current epoch (or explicitly the previous one, see [`KeyRing::seal`]); packets of either
//! epoch are opened, so a key change under load loses nothing as long as no sender is more
//! than one epoch ahead of a receiver.

use std::collections::BTreeMap;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::replay::{Refusal, ReplayWindow};
use super::suite::{SenderCipher, Suite};
use super::{SealError, SealInfo};

/// Salt of the epoch key extraction.
const SALT: &[u8] = b"sgc seal v1";
/// Shortest servers' key accepted.
pub const MIN_KEY_LEN: usize = 16;
/// Senders remembered per epoch (a receiver derives a sender's keys on its first authentic
/// packet of the epoch; more than this many distinct senders is refused).
pub const MAX_SENDERS: usize = 4096;

/// The extracted pseudo-random key of one epoch, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Prk([u8; 32]);

/// The keys of one sender under one epoch and what was accepted from it.
#[derive(Debug)]
struct Peer {
    cipher: SenderCipher,
    window: ReplayWindow,
}

/// One installed epoch.
struct Epoch {
    epoch: u64,
    prk: Prk,
    /// Own keys and next sequence number.
    own: SenderCipher,
    next_seq: u64,
    peers: BTreeMap<u64, Peer>,
}

impl Epoch {
    fn new(suite: Suite, epoch: u64, key: &[u8], me: u64) -> Result<Self, SealError> {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(SALT), key);
        let prk = Prk(prk.into());
        let own = derive(suite, &prk, epoch, me)?;
        Ok(Self {
            epoch,
            prk,
            own,
            next_seq: 0,
            peers: BTreeMap::new(),
        })
    }
}

fn derive(suite: Suite, prk: &Prk, epoch: u64, sender: u64) -> Result<SenderCipher, SealError> {
    let hk = Hkdf::<Sha256>::from_prk(&prk.0).map_err(|_| SealError::Internal("PRK length"))?;
    let mut enc = [0u8; 32];
    let mut mac = [0u8; 32];
    let expand = |label: &[u8], out: &mut [u8]| {
        let mut info = Vec::with_capacity(label.len() + 17);
        info.extend_from_slice(label);
        info.push(suite.id());
        info.extend_from_slice(&epoch.to_be_bytes());
        info.extend_from_slice(&sender.to_be_bytes());
        hk.expand(&info, out)
            .map_err(|_| SealError::Internal("HKDF length"))
    };
    let el = suite.enc_key_len();
    let ml = suite.mac_key_len();
    let r = (|| {
        expand(
            b"sgc seal enc",
            enc.get_mut(..el).ok_or(SealError::Internal("key length"))?,
        )?;
        expand(
            b"sgc seal mac",
            mac.get_mut(..ml).ok_or(SealError::Internal("key length"))?,
        )?;
        SenderCipher::new(suite, &enc[..el], &mac[..ml])
    })();
    enc.zeroize();
    mac.zeroize();
    r
}

/// The servers' keys of the current and previous epoch for one suite and one sender.
pub struct KeyRing {
    suite: Suite,
    me: u64,
    /// Current epoch first, then the previous one.
    epochs: Vec<Epoch>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("suite", &self.suite)
            .field("me", &self.me)
            .field("epochs", &self.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// An empty ring for `suite`, sealing as sender `me`.
    pub const fn new(suite: Suite, me: u64) -> Self {
        Self {
            suite,
            me,
            epochs: Vec::new(),
        }
    }

    /// The suite.
    pub const fn suite(&self) -> Suite {
        self.suite
    }

    /// This sender's id.
    pub const fn me(&self) -> u64 {
        self.me
    }

    /// The current (newest) epoch, if any key is installed.
    pub fn current(&self) -> Option<u64> {
        self.epochs.first().map(|e| e.epoch)
    }

    /// The previous epoch, if one is still held.
    pub fn previous(&self) -> Option<u64> {
        self.epochs.get(1).map(|e| e.epoch)
    }

    /// Whether packets of `epoch` can be sealed and opened.
    pub fn holds(&self, epoch: u64) -> bool {
        self.epochs.iter().any(|e| e.epoch == epoch)
    }

    /// Install the servers' key of a strictly newer `epoch`: it becomes current, the current
    /// one previous, the older previous one is forgotten (its keys zeroized).
    pub fn install(&mut self, epoch: u64, servers_key: &[u8]) -> Result<(), SealError> {
        if servers_key.len() < MIN_KEY_LEN {
            return Err(SealError::KeyTooShort(servers_key.len()));
        }
        if let Some(cur) = self.current()
            && epoch <= cur
        {
            return Err(SealError::EpochNotNewer { epoch, current: cur });
        }
        let e = Epoch::new(self.suite, epoch, servers_key, self.me)?;
        self.epochs.insert(0, e);
        self.epochs.truncate(2);
        Ok(())
    }

    /// Forget every key (e.g. on leaving every ring).
    pub fn clear(&mut self) {
        self.epochs.clear();
    }

    /// Seal one packet under `epoch` (the current one if `None`). The caller gives the
    /// header length `body` (`buf[..body]`, authenticated, sent in clear) and the plaintext
    /// (`buf[body..]`); `fill` writes the [`SealInfo`] (suite, epoch, sender, sequence number)
    /// into the header before it is authenticated. On return `buf` is the whole datagram.
    /// Every call takes a fresh sequence number, so a nonce is never used twice.
    pub fn seal(
        &mut self,
        epoch: Option<u64>,
        buf: &mut Vec<u8>,
        body: usize,
        fill: impl FnOnce(&SealInfo, &mut [u8]),
    ) -> Result<SealInfo, SealError> {
        let (suite, me) = (self.suite, self.me);
        let e = match epoch {
            None => self.epochs.first_mut().ok_or(SealError::NoKey)?,
            Some(want) => self
                .epochs
                .iter_mut()
                .find(|e| e.epoch == want)
                .ok_or(SealError::UnknownEpoch(want))?,
        };
        let seq = e.next_seq;
        e.next_seq = seq.checked_add(1).ok_or(SealError::SequenceExhausted)?;
        let info = SealInfo {
            suite,
            epoch: e.epoch,
            sender: me,
            seq,
        };
        let header = buf
            .get_mut(..body)
            .ok_or(SealError::Internal("header longer than the buffer"))?;
        fill(&info, header);
        e.own.seal(me, seq, buf, body)?;
        Ok(info)
    }

    /// Check a received datagram whose header announced `info` (`datagram[..body]` is the
    /// header, authenticated with the rest) and return its plaintext body. Checks, in order:
    /// suite, epoch held, replay window, authenticity; the window moves only after the packet
    /// authenticated.
    pub fn open(&mut self, info: &SealInfo, datagram: &[u8], body: usize) -> Result<Vec<u8>, SealError> {
        if info.suite != self.suite {
            return Err(SealError::WrongSuite {
                expected: self.suite,
                got: info.suite,
            });
        }
        let suite = self.suite;
        let Some(e) = self.epochs.iter_mut().find(|e| e.epoch == info.epoch) else {
            return Err(match self.epochs.first() {
                None => SealError::NoKey,
                Some(cur) if info.epoch > cur.epoch => SealError::FutureEpoch(info.epoch),
                Some(_) => SealError::UnknownEpoch(info.epoch),
            });
        };
        let refused = |r: Refusal| match r {
            Refusal::Replay => SealError::Replay {
                sender: info.sender,
                seq: info.seq,
            },
            Refusal::TooOld => SealError::TooOld {
                sender: info.sender,
                seq: info.seq,
            },
        };
        if let Some(p) = e.peers.get_mut(&info.sender) {
            p.window.check(info.seq).map_err(refused)?;
            let plain = p.cipher.open(info.sender, info.seq, datagram, body)?;
            p.window.accept(info.seq).map_err(refused)?;
            return Ok(plain);
        }
        if e.peers.len() >= MAX_SENDERS {
            return Err(SealError::TooManySenders);
        }
        let cipher = derive(suite, &e.prk, e.epoch, info.sender)?;
        let plain = cipher.open(info.sender, info.seq, datagram, body)?;
        let mut window = ReplayWindow::new();
        window.accept(info.seq).map_err(refused)?;
        e.peers.insert(info.sender, Peer { cipher, window });
        Ok(plain)
    }
}
