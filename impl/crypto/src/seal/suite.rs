//! The cipher suites and the per-sender cipher state derived from an epoch key.
//!
//! | suite | id | encryption | integrity | overhead |
//! |---|---|---|---|---|
//! | `aes-256-gcm` (default) | 1 | AES-256-GCM, nonce = sender (32 bits) ‖ seq (64 bits) | GCM tag, 16 B | 16 B |
//! | `aes128-cbc-hmac-sha1` | 2 | AES-128-CBC, PKCS#7, IV = AES_K(nonce) | HMAC-SHA1, 20 B | 21–36 B |
//! | `blowfish-cbc-hmac-sha1` | 3 | Blowfish-CBC (128-bit key), PKCS#7, IV = BF_K(seq) | HMAC-SHA1, 20 B | 21–28 B |
//! | `hmac-sha1` | 4 | none | HMAC-SHA1, 20 B | 20 B |
//!
//! CBC suites are encrypt-then-MAC: the MAC covers the whole datagram before it (header and
//! ciphertext) and is checked, in constant time, before anything is decrypted. CBC IVs are
//! not sent: they are the encryption of the packet's unique nonce under the encryption key
//! (NIST SP 800-38A, appendix C), hence unpredictable without the key.

use aes::Aes128;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use blowfish::Blowfish;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::SealError;

type HmacSha1 = Hmac<Sha1>;

/// Length of an HMAC-SHA1 tag.
pub const HMAC_SHA1_LEN: usize = 20;
/// Length of a GCM tag.
pub const GCM_TAG_LEN: usize = 16;

/// A packet-protection cipher suite (`[security] transport_suite`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Suite {
    /// AES-256-GCM (the default).
    #[default]
    Aes256Gcm,
    /// AES-128-CBC then HMAC-SHA1 (the paper's).
    Aes128CbcHmacSha1,
    /// Blowfish-CBC then HMAC-SHA1 (the paper's default).
    BlowfishCbcHmacSha1,
    /// HMAC-SHA1 only: integrity and authentication, no confidentiality.
    HmacSha1,
}

impl Suite {
    /// Every suite, default first.
    pub const ALL: [Self; 4] = [
        Self::Aes256Gcm,
        Self::Aes128CbcHmacSha1,
        Self::BlowfishCbcHmacSha1,
        Self::HmacSha1,
    ];

    /// The configuration and command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::Aes128CbcHmacSha1 => "aes128-cbc-hmac-sha1",
            Self::BlowfishCbcHmacSha1 => "blowfish-cbc-hmac-sha1",
            Self::HmacSha1 => "hmac-sha1",
        }
    }

    /// Parse a name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The wire identifier (one byte in the sealed header; 0 is never a suite).
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::Aes128CbcHmacSha1 => 2,
            Self::BlowfishCbcHmacSha1 => 3,
            Self::HmacSha1 => 4,
        }
    }

    /// The suite of a wire identifier.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.id() == id)
    }

    /// Whether the body is encrypted (all but `hmac-sha1`).
    pub const fn confidential(self) -> bool {
        !matches!(self, Self::HmacSha1)
    }

    const fn block(self) -> usize {
        match self {
            Self::Aes128CbcHmacSha1 => 16,
            Self::BlowfishCbcHmacSha1 => 8,
            Self::Aes256Gcm | Self::HmacSha1 => 0,
        }
    }

    /// Bytes a sealed body adds to a plaintext body of `len` bytes (tag and padding).
    pub const fn overhead(self, len: usize) -> usize {
        match self {
            Self::Aes256Gcm => GCM_TAG_LEN,
            Self::HmacSha1 => HMAC_SHA1_LEN,
            Self::Aes128CbcHmacSha1 | Self::BlowfishCbcHmacSha1 => {
                let b = self.block();
                b - len % b + HMAC_SHA1_LEN
            }
        }
    }

    /// The largest [`overhead`](Self::overhead) of any suite and length (36 B).
    pub const MAX_OVERHEAD: usize = 16 + HMAC_SHA1_LEN;

    /// Length of the encryption key derived for this suite (0: none).
    pub(crate) const fn enc_key_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 32,
            Self::Aes128CbcHmacSha1 | Self::BlowfishCbcHmacSha1 => 16,
            Self::HmacSha1 => 0,
        }
    }

    /// Length of the MAC key derived for this suite (0: none, GCM authenticates itself).
    pub(crate) const fn mac_key_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 0,
            _ => HMAC_SHA1_LEN,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The keyed state of one sender under one epoch: expanded key schedules and a pre-keyed HMAC,
/// so that sealing a packet costs no key setup (Blowfish's takes ~33 µs). Key material is
/// zeroized on drop by the RustCrypto types (`zeroize` features).
#[derive(Clone)]
pub(crate) enum SenderCipher {
    Gcm(Box<Aes256Gcm>),
    AesCbc { aes: Box<Aes128>, mac: Box<HmacSha1> },
    BfCbc { bf: Box<Blowfish>, mac: Box<HmacSha1> },
    Mac(Box<HmacSha1>),
}

impl std::fmt::Debug for SenderCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderCipher(***)")
    }
}

fn mac_of(key: &[u8]) -> Result<Box<HmacSha1>, SealError> {
    HmacSha1::new_from_slice(key)
        .map(Box::new)
        .map_err(|_| SealError::Internal("HMAC key length"))
}

impl SenderCipher {
    /// Key the suite with derived `enc` and `mac` keys of [`Suite::enc_key_len`] and
    /// [`Suite::mac_key_len`] bytes.
    pub(crate) fn new(suite: Suite, enc: &[u8], mac: &[u8]) -> Result<Self, SealError> {
        let bad = |_| SealError::Internal("derived key length");
        Ok(match suite {
            Suite::Aes256Gcm => Self::Gcm(Box::new(Aes256Gcm::new_from_slice(enc).map_err(bad)?)),
            Suite::Aes128CbcHmacSha1 => Self::AesCbc {
                aes: Box::new(Aes128::new_from_slice(enc).map_err(bad)?),
                mac: mac_of(mac)?,
            },
            Suite::BlowfishCbcHmacSha1 => Self::BfCbc {
                bf: Box::new(Blowfish::new_from_slice(enc).map_err(bad)?),
                mac: mac_of(mac)?,
            },
            Suite::HmacSha1 => Self::Mac(mac_of(mac)?),
        })
    }

    fn gcm_nonce(sender: u64, seq: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        // Low 32 bits of the sender id; the key is per sender anyway (see `ring.rs`).
        n[..4].copy_from_slice(&(sender as u32).to_be_bytes());
        n[4..].copy_from_slice(&seq.to_be_bytes());
        n
    }

    fn aes_iv(aes: &Aes128, sender: u64, seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..4].copy_from_slice(&(sender as u32).to_be_bytes());
        block[4..12].copy_from_slice(&seq.to_be_bytes());
        let mut b = block.into();
        aes.encrypt_block(&mut b);
        b.into()
    }

    fn bf_iv(bf: &Blowfish, seq: u64) -> [u8; 8] {
        let mut b = seq.to_be_bytes().into();
        bf.encrypt_block(&mut b);
        b.into()
    }

    fn tag_of(mac: &HmacSha1, data: &[u8]) -> [u8; HMAC_SHA1_LEN] {
        let mut m = mac.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Seal in place: `buf[..body]` is the header (authenticated), `buf[body..]` the
    /// plaintext, replaced by ciphertext and followed by the tag.
    pub(crate) fn seal(
        &self,
        sender: u64,
        seq: u64,
        buf: &mut Vec<u8>,
        body: usize,
    ) -> Result<(), SealError> {
        if body > buf.len() {
            return Err(SealError::Internal("header longer than the buffer"));
        }
        match self {
            Self::Gcm(gcm) => {
                let nonce = Self::gcm_nonce(sender, seq).into();
                let (aad, pt) = buf.split_at_mut(body);
                let tag = gcm
                    .encrypt_inout_detached(&nonce, aad, InOutBuf::from(pt))
                    .map_err(|_| SealError::Internal("GCM length limits"))?;
                buf.extend_from_slice(&tag);
            }
            Self::AesCbc { aes, mac } => {
                let iv = Self::aes_iv(aes, sender, seq);
                let enc = cbc::Encryptor::<Aes128>::inner_iv_init((**aes).clone(), &iv.into());
                Self::cbc_encrypt(enc, 16, buf, body)?;
                let tag = Self::tag_of(mac, buf);
                buf.extend_from_slice(&tag);
            }
            Self::BfCbc { bf, mac } => {
                let iv = Self::bf_iv(bf, seq);
                let enc = cbc::Encryptor::<Blowfish>::inner_iv_init((**bf).clone(), &iv.into());
                Self::cbc_encrypt(enc, 8, buf, body)?;
                let tag = Self::tag_of(mac, buf);
                buf.extend_from_slice(&tag);
            }
            Self::Mac(mac) => {
                let tag = Self::tag_of(mac, buf);
                buf.extend_from_slice(&tag);
            }
        }
        Ok(())
    }

    fn cbc_encrypt<E: BlockModeEncrypt>(
        enc: E,
        block: usize,
        buf: &mut Vec<u8>,
        body: usize,
    ) -> Result<(), SealError> {
        let len = buf.len() - body;
        let padded = (len / block + 1) * block;
        buf.resize(body + padded, 0);
        let out = buf.get_mut(body..).ok_or(SealError::Internal("CBC buffer"))?;
        enc.encrypt_padded::<Pkcs7>(out, len)
            .map_err(|_| SealError::Internal("CBC padding space"))?;
        Ok(())
    }

    /// Verify and decrypt `datagram` (`datagram[..body]` is the header) into its plaintext.
    pub(crate) fn open(
        &self,
        sender: u64,
        seq: u64,
        datagram: &[u8],
        body: usize,
    ) -> Result<Vec<u8>, SealError> {
        let sealed = datagram.get(body..).ok_or(SealError::Truncated)?;
        match self {
            Self::Gcm(gcm) => {
                let Some(ct_len) = sealed.len().checked_sub(GCM_TAG_LEN) else {
                    return Err(SealError::Truncated);
                };
                let (ct, tag) = sealed.split_at(ct_len);
                let aad = datagram.get(..body).ok_or(SealError::Truncated)?;
                let mut out = ct.to_vec();
                let nonce = Self::gcm_nonce(sender, seq).into();
                let tag: [u8; GCM_TAG_LEN] = tag.try_into().map_err(|_| SealError::Truncated)?;
                gcm.decrypt_inout_detached(&nonce, aad, InOutBuf::from(&mut out[..]), &tag.into())
                    .map_err(|_| SealError::Unauthentic)?;
                Ok(out)
            }
            Self::AesCbc { aes, mac } => {
                let ct = Self::verify(mac, datagram, body, 16)?;
                let iv = Self::aes_iv(aes, sender, seq);
                let dec = cbc::Decryptor::<Aes128>::inner_iv_init((**aes).clone(), &iv.into());
                Self::cbc_decrypt(dec, ct)
            }
            Self::BfCbc { bf, mac } => {
                let ct = Self::verify(mac, datagram, body, 8)?;
                let iv = Self::bf_iv(bf, seq);
                let dec = cbc::Decryptor::<Blowfish>::inner_iv_init((**bf).clone(), &iv.into());
                Self::cbc_decrypt(dec, ct)
            }
            Self::Mac(mac) => Self::verify(mac, datagram, body, 1).map(<[u8]>::to_vec),
        }
    }

    /// Check the trailing HMAC over everything before it (constant time) and return the
    /// bytes between the header and the tag, whose length must be a multiple of `block`.
    fn verify<'a>(
        mac: &HmacSha1,
        datagram: &'a [u8],
        body: usize,
        block: usize,
    ) -> Result<&'a [u8], SealError> {
        let Some(end) = datagram.len().checked_sub(HMAC_SHA1_LEN) else {
            return Err(SealError::Truncated);
        };
        if end < body {
            return Err(SealError::Truncated);
        }
        let (covered, tag) = datagram.split_at(end);
        let mut m = (*mac).clone();
        m.update(covered);
        m.verify_slice(tag).map_err(|_| SealError::Unauthentic)?;
        let ct = covered.get(body..).ok_or(SealError::Truncated)?;
        if block > 1 && (ct.is_empty() || ct.len() % block != 0) {
            // Authentic but not a CBC body: only a key holder can produce this.
            return Err(SealError::BadPadding);
        }
        Ok(ct)
    }

    fn cbc_decrypt<D: BlockModeDecrypt>(dec: D, ct: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = ct.to_vec();
        let n = dec
            .decrypt_padded::<Pkcs7>(&mut out)
            .map_err(|_| SealError::BadPadding)?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// NIST GCM spec test case 16 (AES-256, 60-byte plaintext, 20-byte AAD), through the
    /// suite's own framing: IV = sender (0xcafebabe) ‖ seq (0xfacedbaddecaf888), header = AAD.
    #[test]
    fn aes_256_gcm_known_answer() {
        let k = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let p = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let a = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let c = hex(concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ));
        let t = hex("76fc6ece0f4e1768cddf8853bb2d551b");
        let s = SenderCipher::new(Suite::Aes256Gcm, &k, &[]).expect("key");
        let mut buf = [a.clone(), p.clone()].concat();
        s.seal(0xcafe_babe, 0xface_dbad_deca_f888, &mut buf, a.len())
            .expect("seal");
        assert_eq!(buf, [a.clone(), c, t].concat());
        let opened = s
            .open(0xcafe_babe, 0xface_dbad_deca_f888, &buf, a.len())
            .expect("open");
        assert_eq!(opened, p);
    }

    /// RFC 2202 test case 1 (HMAC-SHA1): key 0x0b × 20, "Hi There".
    #[test]
    fn hmac_sha1_known_answer() {
        let s = SenderCipher::new(Suite::HmacSha1, &[], &[0x0b; 20]).expect("key");
        let mut buf = b"Hi There".to_vec();
        s.seal(0, 0, &mut buf, 8).expect("seal");
        assert_eq!(buf[8..], hex("b617318655057264e28bc0b6fb378c8ef146be00")[..]);
    }

    /// SP 800-38A F.2.1 (AES-128-CBC, first block) and Schneier's Blowfish vector (zero key,
    /// zero block), on the primitives the CBC suites are built from.
    #[test]
    fn cbc_primitives_known_answers() {
        use cbc::cipher::KeyIvInit;
        let k = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut b = hex("6bc1bee22e409f96e93d7e117393172a");
        let enc = cbc::Encryptor::<Aes128>::new_from_slices(&k, &iv).expect("key");
        enc.encrypt_padded::<cbc::cipher::block_padding::NoPadding>(&mut b, 16)
            .expect("block");
        assert_eq!(b, hex("7649abac8119b246cee98e9b12e9197d"));
        let bf: Blowfish = Blowfish::new_from_slice(&[0; 8]).expect("key");
        let mut blk = [0u8; 8].into();
        bf.encrypt_block(&mut blk);
        assert_eq!(blk[..], hex("4ef997456198dd78")[..]);
    }

    #[test]
    fn overhead_matches_sealed_length() {
        for suite in Suite::ALL {
            let s = SenderCipher::new(
                suite,
                &vec![7; suite.enc_key_len()],
                &vec![9; suite.mac_key_len()],
            )
            .expect("key");
            for len in [0usize, 1, 7, 8, 15, 16, 17, 1350] {
                let mut buf = vec![1u8; 10 + len];
                s.seal(1, 2, &mut buf, 10).expect("seal");
                assert_eq!(buf.len(), 10 + len + suite.overhead(len), "{suite} {len}");
                assert!(suite.overhead(len) <= Suite::MAX_OVERHEAD);
            }
        }
    }
}
