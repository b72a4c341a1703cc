//! The finite-field Diffie-Hellman groups: RFC 7919 `ffdhe2048`, `ffdhe3072` and RFC 3526
//! group 14 (2048-bit MODP), all safe primes `p = 2q + 1` with generator `g = 2` of the
//! prime-order-`q` subgroup (`p ≡ 7 mod 8`, so 2 is a quadratic residue).
//!
//! The hexadecimal constants were taken from OpenSSL 3.0.19 (`openssl genpkey -genparam
//! -pkeyopt group:…`) and checked against the RFCs' defining formulas (π and e computed
//! independently); the tests re-check primality witnesses, bit lengths and the RFC's first and
//! last words.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;

/// A named finite-field group (safe prime, `g = 2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FfdhGroup {
    /// RFC 7919 `ffdhe2048` (about 103-bit strength with 256-bit exponents, as in TLS).
    Ffdhe2048,
    /// RFC 7919 `ffdhe3072` (about 125-bit strength).
    Ffdhe3072,
    /// RFC 3526 group 14, the 2048-bit MODP group (IKE).
    Modp2048,
}

impl FfdhGroup {
    /// Every group, in a fixed order.
    pub const ALL: [Self; 3] = [Self::Ffdhe2048, Self::Ffdhe3072, Self::Modp2048];

    /// The group's name: `ffdhe2048`, `ffdhe3072` or `modp2048`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ffdhe2048 => "ffdhe2048",
            Self::Ffdhe3072 => "ffdhe3072",
            Self::Modp2048 => "modp2048",
        }
    }

    /// The modulus `p` in hexadecimal (upper case, no prefix).
    pub fn prime_hex(self) -> &'static str {
        match self {
            Self::Ffdhe2048 => FFDHE2048_P,
            Self::Ffdhe3072 => FFDHE3072_P,
            Self::Modp2048 => MODP2048_P,
        }
    }

    /// The size of `p` in bits (2048 or 3072).
    pub fn bits(self) -> u64 {
        match self {
            Self::Ffdhe2048 | Self::Modp2048 => 2048,
            Self::Ffdhe3072 => 3072,
        }
    }

    /// The parsed parameters (`p`, `q`, `g`) of this group.
    pub fn params(self) -> FfdhParams {
        // Invariant: the constants above are valid hexadecimal (checked by the tests).
        let p = BigUint::parse_bytes(self.prime_hex().as_bytes(), 16).expect("valid hex constant");
        let p_minus_1 = &p - 1u32;
        let q = &p_minus_1 >> 1u32;
        let byte_len = usize::try_from(p.bits().div_ceil(8)).unwrap_or(usize::MAX);
        FfdhParams {
            group: self,
            p,
            p_minus_1,
            q,
            g: BigUint::from(2u32),
            byte_len,
        }
    }
}

impl fmt::Display for FfdhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown group name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown group {0:?} (expected one of: {1})")]
pub struct UnknownGroup(pub String, pub &'static str);

impl FromStr for FfdhGroup {
    type Err = UnknownGroup;

    fn from_str(s: &str) -> Result<Self, UnknownGroup> {
        Self::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| UnknownGroup(s.to_owned(), "ffdhe2048, ffdhe3072, modp2048"))
    }
}

/// The parsed parameters of a safe-prime group: `p = 2q + 1`, generator `g` of the order-`q`
/// subgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfdhParams {
    /// Which group these are.
    pub group: FfdhGroup,
    /// The safe prime modulus.
    pub p: BigUint,
    /// `p - 1`.
    pub p_minus_1: BigUint,
    /// The subgroup order `(p - 1) / 2`, itself prime.
    pub q: BigUint,
    /// The generator, 2.
    pub g: BigUint,
    /// The length of `p` in bytes: the fixed length of encoded group elements.
    pub byte_len: usize,
}

impl FfdhParams {
    /// `x` as big-endian bytes, left-padded with zeros to [`Self::byte_len`]. `x` must be
    /// below `p`.
    pub fn encode(&self, x: &BigUint) -> Vec<u8> {
        let raw = x.to_bytes_be();
        let mut out = vec![0u8; self.byte_len.saturating_sub(raw.len())];
        out.extend_from_slice(&raw);
        out
    }
}

/// RFC 7919 appendix A.1 `ffdhe2048`: p = 2^2048 - 2^1984 + (floor(2^1918 e) + 560316) 2^64 - 1.
const FFDHE2048_P: &str = concat!(
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695",
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A",
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935",
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A",
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4",
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61",
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005",
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF",
);

/// RFC 7919 appendix A.2 `ffdhe3072`: p = 2^3072 - 2^3008 + (floor(2^2942 e) + 2625351) 2^64 - 1.
const FFDHE3072_P: &str = concat!(
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695",
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A",
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935",
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A",
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4",
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61",
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005",
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B",
    "BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C",
    "AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF",
    "5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E",
    "0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF",
);

/// RFC 3526 section 3 (group 14): p = 2^2048 - 2^1984 - 1 + 2^64 (floor(2^1918 pi) + 124476).
const MODP2048_P: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_is_a_safe_prime_with_generator_2() {
        for group in FfdhGroup::ALL {
            let params = group.params();
            assert_eq!(params.p.bits(), group.bits(), "{group}");
            assert_eq!(params.byte_len * 8, usize::try_from(group.bits()).unwrap());
            assert_eq!(&params.p % 8u32, BigUint::from(7u32), "{group}: p ≡ 7 mod 8");
            // Fermat witnesses: 2^q ≡ 1 (mod p) (g generates the order-q subgroup, and p is a
            // probable prime), 3^(q-1) ≡ 1 (mod q) (q is a probable prime).
            assert_eq!(
                params.g.modpow(&params.q, &params.p),
                BigUint::from(1u32),
                "{group}"
            );
            let q_minus_1 = &params.q - 1u32;
            assert_eq!(
                BigUint::from(3u32).modpow(&q_minus_1, &params.q),
                BigUint::from(1u32),
                "{group}"
            );
            // Both ends of every RFC prime are 64 one bits.
            assert!(group.prime_hex().starts_with("FFFFFFFFFFFFFFFF"));
            assert!(group.prime_hex().ends_with("FFFFFFFFFFFFFFFF"));
        }
    }

    #[test]
    fn ffdhe2048_matches_the_rfc_words() {
        // RFC 7919 A.1, first and last lines of the printed prime.
        let hex = FfdhGroup::Ffdhe2048.prime_hex();
        assert!(hex.starts_with("FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1"));
        assert!(hex.ends_with("886B423861285C97FFFFFFFFFFFFFFFF"));
        // RFC 3526 group 14 starts with the bits of π.
        assert!(
            FfdhGroup::Modp2048
                .prime_hex()
                .starts_with("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B")
        );
        // ffdhe3072 shares ffdhe2048's leading words (both come from e).
        assert_eq!(&FfdhGroup::Ffdhe3072.prime_hex()[..400], &hex[..400]);
    }

    #[test]
    fn names_round_trip() {
        for group in FfdhGroup::ALL {
            assert_eq!(group.name().parse::<FfdhGroup>(), Ok(group));
            assert_eq!(group.to_string(), group.name());
        }
        assert!("ffdhe1024".parse::<FfdhGroup>().is_err());
    }

    #[test]
    fn encode_is_fixed_length() {
        let params = FfdhGroup::Ffdhe2048.params();
        let one = params.encode(&BigUint::from(1u32));
        assert_eq!(one.len(), 256);
        assert_eq!(one[255], 1);
        assert_eq!(params.encode(&params.p_minus_1).len(), 256);
    }
}
