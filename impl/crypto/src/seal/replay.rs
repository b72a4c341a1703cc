//! [`ReplayWindow`]: a sliding bitmap of the sequence numbers already accepted from one sender
//! under one epoch key (RFC 4303 §3.4.3 style, [`WINDOW`] = 1024 positions).
//!
//! `check` is called before authentication (cheap rejection of replays and too-old packets),
//! `accept` only after the packet authenticated, so a forgery cannot move the window.

/// Positions of the window (sequence numbers `highest - WINDOW + 1 ..= highest` are tracked).
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// Why [`ReplayWindow::check`] refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Already accepted once.
    Replay,
    /// Older than the window.
    TooOld,
}

/// The sequence numbers accepted from one sender: the highest one and a bitmap of the
/// [`WINDOW`] positions below it, indexed by `seq % WINDOW`.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    /// Highest accepted sequence number, if any.
    highest: Option<u64>,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// An empty window: every sequence number is acceptable.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest accepted sequence number.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn bit(seq: u64) -> (usize, u64) {
        let pos = seq % WINDOW;
        // Invariant: pos < WINDOW, so pos / 64 < WORDS.
        ((pos / 64) as usize, 1u64 << (pos % 64))
    }

    /// Whether `seq` would be accepted (does not change the window).
    pub fn check(&self, seq: u64) -> Result<(), Refusal> {
        let Some(h) = self.highest else {
            return Ok(());
        };
        if seq > h {
            return Ok(());
        }
        if h - seq >= WINDOW {
            return Err(Refusal::TooOld);
        }
        let (w, m) = Self::bit(seq);
        if self.bits.get(w).is_some_and(|word| word & m != 0) {
            Err(Refusal::Replay)
        } else {
            Ok(())
        }
    }

    /// Record `seq` as accepted (after [`check`](Self::check) and authentication).
    pub fn accept(&mut self, seq: u64) -> Result<(), Refusal> {
        self.check(seq)?;
        match self.highest {
            Some(h) if seq <= h => {}
            Some(h) if seq - h < WINDOW => {
                // Clear the positions of the sequence numbers skipped over (h+1 ..= seq).
                for s in h + 1..=seq {
                    let (w, m) = Self::bit(s);
                    if let Some(word) = self.bits.get_mut(w) {
                        *word &= !m;
                    }
                }
                self.highest = Some(seq);
            }
            _ => {
                self.bits = [0; WORDS];
                self.highest = Some(seq);
            }
        }
        let (w, m) = Self::bit(seq);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reorder_replay_and_too_old() {
        let mut w = ReplayWindow::new();
        for s in 0..3000 {
            assert_eq!(w.accept(s), Ok(()));
            assert_eq!(w.check(s), Err(Refusal::Replay));
        }
        assert_eq!(w.check(2999 - WINDOW), Err(Refusal::TooOld));
        assert_eq!(w.check(2999 - WINDOW + 1), Err(Refusal::Replay));
        // A jump leaves a gap that can still be filled once.
        assert_eq!(w.accept(3100), Ok(()));
        assert_eq!(w.accept(3050), Ok(()));
        assert_eq!(w.accept(3050), Err(Refusal::Replay));
        assert_eq!(w.check(3000), Ok(()));
        // A jump of more than the window forgets everything below.
        assert_eq!(w.accept(10_000), Ok(()));
        assert_eq!(w.check(3100), Err(Refusal::TooOld));
        assert_eq!(w.check(10_000 - WINDOW + 1), Ok(()));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(Refusal::Replay));
    }

    #[test]
    fn matches_a_set_model() {
        // Pseudo-random order over a range a bit wider than the window.
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let s = (x >> 33) % 5000;
            let h = seen.last().copied();
            let expect = match h {
                Some(h) if s <= h && h - s >= WINDOW => Err(Refusal::TooOld),
                _ if seen.contains(&s) => Err(Refusal::Replay),
                _ => Ok(()),
            };
            assert_eq!(w.accept(s), expect, "seq {s} highest {h:?}");
            if expect.is_ok() {
                seen.insert(s);
            }
        }
    }
}
