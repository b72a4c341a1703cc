//! Montgomery arithmetic for the finite-field groups: allocation-free modular multiplication
//! on fixed-size `u64` limb arrays, a sliding-window variable-base exponentiation, and a
//! fixed-base windowed exponentiation with a per-group precomputed table for `g^x`.
//!
//! ```text
//!   Montgomery form   ã = a·R mod p,  R = 2^(64·N)
//!   mul(ã, b̃)         = a·b·R mod p    (FIOS, one pass per limb of b)
//!   sqr(ã)            = a²·R mod p     (half the cross products, then a separate REDC)
//!   pow(b, x)         left-to-right sliding window over odd powers b, b³, …, b^(2^w − 1)
//!   pow_g(x)          fixed base: x = Σ d_i·2^(W·i), 0 ≤ d_i < 2^W,
//!                     g^x = Π table[i][d_i],  table[i][d] = g^(d·2^(W·i))   (no squarings)
//! ```
//!
//! For a 256-bit exponent, `pow_g` costs one multiplication per nonzero `W`-bit digit
//! (⌈256/W⌉ = 43 with `W = 6`) instead of ~256 squarings and ~64 multiplications, and `pow`
//! costs 256 squarings and ~45 multiplications (num-bigint's `modpow`: 256 squarings and 64
//! multiplications with a fixed 4-bit window, each allocating).
//!
//! The table of a group is built once, on first use (`OnceLock`): `⌈256/W⌉ · (2^W − 1)`
//! elements, 0.69 MB for a 2048-bit group and 1.04 MB for `ffdhe3072`, about 2,700
//! multiplications (a few milliseconds).
//!
//! **Side channels**: like num-bigint's `modpow`, none of this is constant time: the window
//! digits select table entries (cache-timing), zero digits skip multiplications, the sliding
//! window's control flow follows the exponent bits, and the final subtraction is conditional.
//! The exponents are secret (node secrets), so this matters against a co-located attacker;
//! a constant-time backend can replace this module behind the same provider.

use std::sync::OnceLock;

use num_bigint::BigUint;

use crate::groups::FfdhGroup;

/// Bits per digit of the fixed-base table.
pub(crate) const FIXED_WINDOW: usize = 6;
/// The exponent length (bits) covered by the fixed-base table: node secrets are 256-bit.
pub(crate) const FIXED_BITS: usize = 256;
/// Rows of the fixed-base table: one per `FIXED_WINDOW`-bit digit.
const FIXED_ROWS: usize = FIXED_BITS.div_ceil(FIXED_WINDOW);
/// Entries per row: the nonzero digits.
const FIXED_COLS: usize = (1 << FIXED_WINDOW) - 1;

/// `(hi, lo)` of `a·b + c + d` (cannot overflow 128 bits).
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, d: u64) -> (u64, u64) {
    let z = u128::from(a) * u128::from(b) + u128::from(c) + u128::from(d);
    // Truncations intended: the two halves of a 128-bit value.
    ((z >> 64) as u64, z as u64)
}

/// `-m^(-1) mod 2^64` for an odd `m` (Newton iteration: each step doubles the correct bits).
fn neg_inv_u64(m: u64) -> u64 {
    debug_assert!(m & 1 == 1);
    let mut inv: u64 = 1;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(inv)));
    }
    debug_assert_eq!(m.wrapping_mul(inv), 1);
    inv.wrapping_neg()
}

/// The little-endian limbs of `x`, zero-extended to `N` (`x` must have at most `N` limbs).
fn limbs<const N: usize>(x: &BigUint) -> [u64; N] {
    let mut out = [0u64; N];
    for (o, d) in out.iter_mut().zip(x.iter_u64_digits()) {
        *o = d;
    }
    out
}

/// A Montgomery context for an odd modulus of exactly `N` 64-bit limbs.
pub(crate) struct Monty<const N: usize> {
    /// The modulus, little-endian limbs.
    p: [u64; N],
    /// The modulus as a number.
    p_big: BigUint,
    /// `-p^(-1) mod 2^64`.
    p_inv: u64,
    /// `R² mod p`: converts into Montgomery form.
    r2: [u64; N],
    /// `R mod p`: one in Montgomery form.
    one: [u64; N],
}

impl<const N: usize> Monty<N> {
    /// The context for `p`.
    ///
    /// # Panics
    /// If `p` is even or not exactly `N` limbs long (programming errors: fixed group moduli).
    pub(crate) fn new(p: &BigUint) -> Self {
        assert!(p.bit(0), "Montgomery arithmetic needs an odd modulus");
        assert_eq!(p.iter_u64_digits().len(), N, "modulus length");
        let p_limbs = limbs::<N>(p);
        let r = BigUint::from(1u32) << (64 * N);
        let one = limbs::<N>(&(&r % p));
        let r2 = limbs::<N>(&((&r * &r) % p));
        Self {
            p: p_limbs,
            p_big: p.clone(),
            p_inv: neg_inv_u64(p_limbs[0]),
            r2,
            one,
        }
    }

    /// `t − p` if `t ≥ p` (with `carry` the limb above `t`), else `t`. `t < 2p` on entry.
    #[inline(always)]
    fn reduce_once(&self, mut t: [u64; N], carry: u64) -> [u64; N] {
        let mut ge = carry != 0;
        if !ge {
            ge = true; // t == p counts as ≥
            for (ti, pi) in t.iter().zip(self.p.iter()).rev() {
                if ti != pi {
                    ge = ti > pi;
                    break;
                }
            }
        }
        if ge {
            let mut borrow = false;
            for (ti, pi) in t.iter_mut().zip(self.p.iter()) {
                let (d, b1) = ti.overflowing_sub(*pi);
                let (d, b2) = d.overflowing_sub(u64::from(borrow));
                *ti = d;
                borrow = b1 || b2;
            }
        }
        t
    }

    /// Montgomery product `a·b·R⁻¹ mod p` of reduced inputs (FIOS: one pass per limb of `b`,
    /// the product and the reduction in two interleaved carry chains).
    #[allow(clippy::needless_range_loop)] // several arrays indexed in step
    pub(crate) fn mul(&self, a: &[u64; N], b: &[u64; N]) -> [u64; N] {
        let p = &self.p;
        let mut t = [0u64; N];
        let mut t_hi: u64 = 0;
        for &bi in b {
            let (mut c1, t0) = mac(a[0], bi, t[0], 0);
            let m = t0.wrapping_mul(self.p_inv);
            let (mut c2, _) = mac(m, p[0], t0, 0);
            for j in 1..N {
                let x;
                (c1, x) = mac(a[j], bi, t[j], c1);
                (c2, t[j - 1]) = mac(m, p[j], x, c2);
            }
            let s = u128::from(t_hi) + u128::from(c1) + u128::from(c2);
            t[N - 1] = s as u64;
            t_hi = (s >> 64) as u64;
        }
        self.reduce_once(t, t_hi)
    }

    /// Montgomery square `a²·R⁻¹ mod p` of a reduced input (SOS: the cross products `a_i·a_j`,
    /// `i < j`, once and doubled, the squares `a_i²`, then a separate reduction).
    #[allow(clippy::needless_range_loop)] // several arrays indexed in step
    pub(crate) fn sqr(&self, a: &[u64; N]) -> [u64; N] {
        let mut wide = [[0u64; N]; 2];
        let t = wide.as_flattened_mut();
        for i in 0..N {
            let mut c: u64 = 0;
            for j in i + 1..N {
                (c, t[i + j]) = mac(a[i], a[j], t[i + j], c);
            }
            t[i + N] = c;
        }
        let mut top = 0u64;
        for v in t.iter_mut() {
            let next = *v >> 63;
            *v = (*v << 1) | top;
            top = next;
        }
        let mut c: u64 = 0;
        for i in 0..N {
            let (hi, lo) = mac(a[i], a[i], t[2 * i], c);
            t[2 * i] = lo;
            let (hi2, lo2) = mac(1, t[2 * i + 1], hi, 0);
            t[2 * i + 1] = lo2;
            c = hi2;
        }
        let mut extra: u64 = 0;
        for i in 0..N {
            let m = t[i].wrapping_mul(self.p_inv);
            let mut c: u64 = 0;
            for j in 0..N {
                (c, t[i + j]) = mac(m, self.p[j], t[i + j], c);
            }
            (extra, t[i + N]) = mac(1, t[i + N], c, extra);
        }
        let mut out = [0u64; N];
        out.copy_from_slice(&t[N..]);
        self.reduce_once(out, extra)
    }

    /// `x` in Montgomery form (`x` is reduced mod `p` first if needed).
    pub(crate) fn encode(&self, x: &BigUint) -> [u64; N] {
        let x = if x >= &self.p_big {
            x % &self.p_big
        } else {
            x.clone()
        };
        self.mul(&limbs::<N>(&x), &self.r2)
    }

    /// The number that `a` (Montgomery form) stands for.
    pub(crate) fn decode(&self, a: &[u64; N]) -> BigUint {
        let mut one = [0u64; N];
        one[0] = 1;
        let plain = self.mul(a, &one);
        let mut bytes = Vec::with_capacity(8 * N);
        for limb in plain {
            bytes.extend_from_slice(&limb.to_le_bytes());
        }
        BigUint::from_bytes_le(&bytes)
    }

    /// `b^x` in Montgomery form for `b` in Montgomery form: left-to-right sliding window.
    pub(crate) fn pow(&self, b: &[u64; N], x: &BigUint) -> [u64; N] {
        let bits = usize::try_from(x.bits()).unwrap_or(usize::MAX);
        if bits == 0 {
            return self.one;
        }
        let w = match bits {
            0..=8 => 1,
            9..=24 => 2,
            25..=80 => 3,
            81..=240 => 4,
            241..=672 => 5,
            _ => 6,
        };
        // odd[k] = b^(2k+1).
        let mut odd = Vec::with_capacity(1 << (w - 1));
        odd.push(*b);
        if w > 1 {
            let b2 = self.sqr(b);
            for k in 1..1 << (w - 1) {
                let next = self.mul(&odd[k - 1], &b2);
                odd.push(next);
            }
        }
        let bit = |i: usize| x.bit(i as u64);
        let mut acc: Option<[u64; N]> = None;
        let mut i = bits; // bits i-1, i-2, … remain
        while i > 0 {
            if !bit(i - 1) {
                if let Some(a) = acc.as_mut() {
                    *a = self.sqr(a);
                }
                i -= 1;
                continue;
            }
            // The window: bits i-1 down to j, with bit j set, at most w bits.
            let mut j = i.saturating_sub(w);
            while !bit(j) {
                j += 1;
            }
            let mut digit = 0usize;
            for k in (j..i).rev() {
                digit = (digit << 1) | usize::from(bit(k));
            }
            let entry = &odd[digit >> 1];
            acc = Some(match acc {
                None => *entry,
                Some(mut a) => {
                    for _ in j..i {
                        a = self.sqr(&a);
                    }
                    self.mul(&a, entry)
                }
            });
            i = j;
        }
        acc.unwrap_or(self.one)
    }
}

/// A group's arithmetic: the Montgomery context, `g` in Montgomery form and the lazily built
/// fixed-base table.
pub(crate) struct GroupArith<const N: usize> {
    monty: Monty<N>,
    g: [u64; N],
    /// `table[i·FIXED_COLS + d − 1] = g^(d·2^(FIXED_WINDOW·i))`, Montgomery form.
    table: OnceLock<Vec<[u64; N]>>,
}

impl<const N: usize> GroupArith<N> {
    fn new(p: &BigUint, g: &BigUint) -> Self {
        let monty = Monty::new(p);
        let g = monty.encode(g);
        Self {
            monty,
            g,
            table: OnceLock::new(),
        }
    }

    fn table(&self) -> &[[u64; N]] {
        self.table.get_or_init(|| {
            let mut table = Vec::with_capacity(FIXED_ROWS * FIXED_COLS);
            let mut row_base = self.g; // g^(2^(W·i))
            for _ in 0..FIXED_ROWS {
                let mut e = row_base;
                table.push(e);
                for _ in 1..FIXED_COLS {
                    e = self.monty.mul(&e, &row_base);
                    table.push(e);
                }
                // (g^(2^(W·i)))^(2^W) = entry (2^W − 1) times the base once more.
                row_base = self.monty.mul(&e, &row_base);
            }
            table
        })
    }

    /// `g^x mod p`.
    fn pow_g(&self, x: &BigUint) -> BigUint {
        if x.bits() > FIXED_BITS as u64 {
            return self.monty.decode(&self.monty.pow(&self.g, x));
        }
        let table = self.table();
        let mut acc: Option<[u64; N]> = None;
        for (row, chunk) in table.chunks_exact(FIXED_COLS).enumerate() {
            let mut digit = 0usize;
            for k in (0..FIXED_WINDOW).rev() {
                let bit = row * FIXED_WINDOW + k;
                digit = (digit << 1) | usize::from(x.bit(bit as u64));
            }
            if digit != 0 {
                let entry = &chunk[digit - 1];
                acc = Some(match acc {
                    None => *entry,
                    Some(a) => self.monty.mul(&a, entry),
                });
            }
        }
        self.monty.decode(&acc.unwrap_or(self.monty.one))
    }

    /// `b^x mod p`.
    fn pow(&self, b: &BigUint, x: &BigUint) -> BigUint {
        let bm = self.monty.encode(b);
        self.monty.decode(&self.monty.pow(&bm, x))
    }
}

/// The arithmetic of one of the [`FfdhGroup`]s, by modulus size.
pub(crate) enum Arith {
    /// 2048-bit moduli.
    L32(Box<GroupArith<32>>),
    /// 3072-bit moduli.
    L48(Box<GroupArith<48>>),
}

impl Arith {
    fn new(group: FfdhGroup) -> Self {
        let params = group.params();
        match group.bits() {
            2048 => Self::L32(Box::new(GroupArith::new(&params.p, &params.g))),
            3072 => Self::L48(Box::new(GroupArith::new(&params.p, &params.g))),
            bits => unreachable!("no {bits}-bit group"),
        }
    }

    /// The shared arithmetic of `group` (built on first use).
    pub(crate) fn of(group: FfdhGroup) -> &'static Self {
        static ARITH: [OnceLock<Arith>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let slot = match group {
            FfdhGroup::Ffdhe2048 => 0,
            FfdhGroup::Ffdhe3072 => 1,
            FfdhGroup::Modp2048 => 2,
        };
        ARITH[slot].get_or_init(|| Self::new(group))
    }

    /// `g^x mod p` (fixed-base table for exponents up to [`FIXED_BITS`] bits).
    pub(crate) fn pow_g(&self, x: &BigUint) -> BigUint {
        match self {
            Self::L32(a) => a.pow_g(x),
            Self::L48(a) => a.pow_g(x),
        }
    }

    /// `b^x mod p` (any `b`; reduced mod `p` first).
    pub(crate) fn pow(&self, b: &BigUint, x: &BigUint) -> BigUint {
        match self {
            Self::L32(a) => a.pow(b, x),
            Self::L48(a) => a.pow(b, x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bits(bits: usize) -> BigUint {
        let bytes: Vec<u8> = (0..bits.div_ceil(8)).map(|_| rand::random::<u8>()).collect();
        BigUint::from_bytes_be(&bytes) >> (bytes.len() * 8 - bits)
    }

    fn random_below(bound: &BigUint) -> BigUint {
        random_bits(usize::try_from(bound.bits()).unwrap() + 64) % bound
    }

    #[test]
    fn neg_inv_is_an_inverse() {
        for m in [1u64, 3, 5, 0xffff_ffff_ffff_ffff, 0x1234_5678_9abc_def1] {
            assert_eq!(m.wrapping_mul(neg_inv_u64(m)), u64::MAX, "{m}");
        }
    }

    #[test]
    fn mul_and_sqr_match_biguint_in_every_group() {
        for group in FfdhGroup::ALL {
            let params = group.params();
            let p = &params.p;
            let check = |a: &BigUint, b: &BigUint| match Arith::of(group) {
                Arith::L32(g) => {
                    let (am, bm) = (g.monty.encode(a), g.monty.encode(b));
                    assert_eq!(g.monty.decode(&am), a % p);
                    assert_eq!(g.monty.decode(&g.monty.mul(&am, &bm)), (a * b) % p);
                    assert_eq!(g.monty.decode(&g.monty.sqr(&am)), (a * a) % p);
                }
                Arith::L48(g) => {
                    let (am, bm) = (g.monty.encode(a), g.monty.encode(b));
                    assert_eq!(g.monty.decode(&am), a % p);
                    assert_eq!(g.monty.decode(&g.monty.mul(&am, &bm)), (a * b) % p);
                    assert_eq!(g.monty.decode(&g.monty.sqr(&am)), (a * a) % p);
                }
            };
            // Edge values: 0, 1, 2, p − 1, p − 2, all-ones limbs below p, p itself (≡ 0).
            let p1 = &params.p_minus_1;
            let edges = [
                BigUint::from(0u32),
                BigUint::from(1u32),
                BigUint::from(2u32),
                p1.clone(),
                p1 - 1u32,
                (BigUint::from(1u32) << (p.bits() - 65)) - 1u32,
                p.clone(),
            ];
            for a in &edges {
                for b in &edges {
                    check(a, b);
                }
            }
            for _ in 0..300 {
                check(&random_below(p), &random_below(p));
            }
        }
    }

    #[test]
    fn pow_matches_modpow_in_every_group() {
        for group in FfdhGroup::ALL {
            let params = group.params();
            let arith = Arith::of(group);
            for bits in [
                0usize, 1, 2, 5, 8, 9, 24, 25, 64, 80, 81, 200, 240, 241, 255, 256, 257, 700,
            ] {
                for _ in 0..3 {
                    let b = random_below(&params.p);
                    let x = random_bits(bits);
                    assert_eq!(arith.pow(&b, &x), b.modpow(&x, &params.p), "{group} {bits}");
                }
            }
            for _ in 0..40 {
                let b = random_below(&params.p);
                let x = random_bits(256);
                assert_eq!(arith.pow(&b, &x), b.modpow(&x, &params.p), "{group}");
            }
            // Bases at the edges, and bases ≥ p (reduced first).
            let x = random_bits(256);
            for b in [
                BigUint::from(0u32),
                BigUint::from(1u32),
                params.p_minus_1.clone(),
                params.p.clone(),
                &params.p + 7u32,
            ] {
                assert_eq!(arith.pow(&b, &x), b.modpow(&x, &params.p), "{group} {b}");
            }
            // A full-length exponent, and the subgroup order: g^q = 1.
            let x = random_bits(usize::try_from(params.p.bits()).unwrap());
            assert_eq!(arith.pow(&params.g, &x), params.g.modpow(&x, &params.p));
            assert_eq!(arith.pow(&params.g, &params.q), BigUint::from(1u32));
        }
    }

    #[test]
    fn fixed_base_matches_modpow_in_every_group() {
        for group in FfdhGroup::ALL {
            let params = group.params();
            let arith = Arith::of(group);
            let g_pow = |x: &BigUint| params.g.modpow(x, &params.p);
            for _ in 0..100 {
                let x = random_bits(256);
                assert_eq!(arith.pow_g(&x), g_pow(&x), "{group}");
            }
            for bits in 0..=16 {
                let x = random_bits(bits);
                assert_eq!(arith.pow_g(&x), g_pow(&x), "{group} {bits} bits");
            }
            // Digit patterns: all ones, every single bit, all top digits, each digit maximal;
            // beyond the table (257 bits, full length): the variable-base fallback.
            let all_ones = (BigUint::from(1u32) << 256) - 1u32;
            let mut special = vec![BigUint::from(0u32), all_ones];
            for bit in 0..256 {
                special.push(BigUint::from(1u32) << bit);
            }
            for row in 0..FIXED_ROWS {
                special.push(BigUint::from(FIXED_COLS) << (row * FIXED_WINDOW));
            }
            special.push(random_bits(257));
            special.push(random_bits(usize::try_from(params.p.bits()).unwrap()));
            special.push(params.q.clone());
            for x in &special {
                assert_eq!(arith.pow_g(x), g_pow(x), "{group} x = {x:x}");
            }
        }
    }

    #[test]
    fn fixed_table_stays_small() {
        // 2048-bit: 43 rows × 63 entries × 256 bytes ≈ 0.69 MB; 3072-bit ≈ 1.04 MB.
        let Arith::L48(a) = Arith::of(FfdhGroup::Ffdhe3072) else {
            panic!("ffdhe3072 has 48 limbs");
        };
        let table = a.table();
        assert_eq!(table.len(), FIXED_ROWS * FIXED_COLS);
        assert!(size_of_val(table) <= 2 * 1024 * 1024);
        const { assert!(FIXED_ROWS * FIXED_WINDOW >= FIXED_BITS) };
    }
}
