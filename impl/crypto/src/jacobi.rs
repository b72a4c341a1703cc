//! The Jacobi symbol `(a|n)` on [`BigUint`], by the binary algorithm (shifts and subtractions,
//! no divisions after the first reduction).
//!
//! For a safe prime `p = 2q + 1` the Jacobi symbol is the Legendre symbol, and `(x|p) = +1`
//! exactly when `x` lies in the prime-order-`q` subgroup (the quadratic residues): a much
//! cheaper membership test than `x^q mod p == 1`. Used to validate blinded keys.
//!
//! Not constant time; the inputs are public (received blinded keys and the public modulus).

use num_bigint::BigUint;
use num_traits::Zero;

/// The Jacobi symbol `(a|n)` for an odd `n > 0`: `0` if `gcd(a, n) > 1`, else `+1` or `-1`.
///
/// # Panics
/// If `n` is even (a programming error: the moduli here are fixed odd primes).
pub fn jacobi(a: &BigUint, n: &BigUint) -> i8 {
    assert!(n.bit(0), "the Jacobi symbol needs an odd modulus");
    let mut a = a % n;
    let mut n = n.clone();
    let mut sign: i8 = 1;
    loop {
        if a.is_zero() {
            return if n == BigUint::from(1u32) { sign } else { 0 };
        }
        // Pull out the factors of two: (2|n) = -1 iff n ≡ 3, 5 (mod 8).
        let twos = a.trailing_zeros().unwrap_or(0);
        a >>= twos;
        if twos % 2 == 1 && matches!(low_bits(&n) & 7, 3 | 5) {
            sign = -sign;
        }
        // Both odd now. Keep a ≥ n, flipping by quadratic reciprocity when swapping.
        if a < n {
            std::mem::swap(&mut a, &mut n);
            if low_bits(&a) & 3 == 3 && low_bits(&n) & 3 == 3 {
                sign = -sign;
            }
        }
        // (a|n) = (a - n|n); the difference is even (or zero).
        a -= &n;
    }
}

/// The lowest 64 bits of `x`.
fn low_bits(x: &BigUint) -> u64 {
    x.iter_u64_digits().next().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::FfdhGroup;

    /// Euler's criterion: `a^((p-1)/2) mod p` as -1, 0 or +1.
    fn euler(a: &BigUint, p: &BigUint) -> i8 {
        let r = a.modpow(&((p - 1u32) >> 1u32), p);
        if r.is_zero() {
            0
        } else if r == BigUint::from(1u32) {
            1
        } else {
            assert_eq!(r, p - 1u32);
            -1
        }
    }

    fn random_below(bound: &BigUint) -> BigUint {
        let len = usize::try_from(bound.bits().div_ceil(8)).unwrap() + 8;
        let bytes: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        BigUint::from_bytes_be(&bytes) % bound
    }

    #[test]
    fn small_known_values() {
        let j = |a: u32, n: u32| jacobi(&BigUint::from(a), &BigUint::from(n));
        // Quadratic residues mod 23: 1, 2, 3, 4, 6, 8, 9, 12, 13, 16, 18.
        let residues = [1, 2, 3, 4, 6, 8, 9, 12, 13, 16, 18];
        for a in 1..23 {
            assert_eq!(j(a, 23), if residues.contains(&a) { 1 } else { -1 }, "({a}|23)");
        }
        assert_eq!(j(0, 23), 0);
        assert_eq!(j(46, 23), 0);
        assert_eq!(j(1001, 9907), -1); // Wikipedia's worked example.
        assert_eq!(j(19, 45), 1);
        assert_eq!(j(8, 21), -1);
        assert_eq!(j(5, 21), 1);
        assert_eq!(j(6, 15), 0);
        assert_eq!(j(5, 1), 1);
    }

    #[test]
    fn agrees_with_euler_on_a_small_safe_prime() {
        let p = BigUint::from(2_147_483_579u32); // largest safe prime below 2^31
        for _ in 0..2000 {
            let a = random_below(&p);
            assert_eq!(jacobi(&a, &p), euler(&a, &p), "a = {a}");
        }
    }

    #[test]
    fn agrees_with_euler_on_ffdhe2048() {
        let params = FfdhGroup::Ffdhe2048.params();
        let mut seen = [false; 2];
        for _ in 0..24 {
            let a = random_below(&params.p);
            let j = jacobi(&a, &params.p);
            assert_eq!(j, euler(&a, &params.p));
            seen[usize::from(j == 1)] = true;
        }
        assert_eq!(jacobi(&params.g, &params.p), 1);
        assert_eq!(jacobi(&params.p_minus_1, &params.p), -1);
        assert_eq!(seen, [true, true], "24 random draws should hit both symbols");
    }
}
