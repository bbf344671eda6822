//! Observe (RFC 7641) helpers that are pure functions: the 24-bit sequence
//! number space and the client's freshness rule of §3.4.

use core::time::Duration;

use crate::time::Instant;

/// Observe sequence numbers are 24-bit (RFC 7641 §4.4).
pub const SEQUENCE_MASK: u32 = 0x00ff_ffff;

/// How long after the last notification any new one counts as fresh (§3.4: 128 s).
pub const FRESHNESS_WINDOW: Duration = Duration::from_secs(128);

/// The next sequence number after `seq` (wrapping in 24 bits).
pub fn next_sequence(seq: u32) -> u32 {
    seq.wrapping_add(1) & SEQUENCE_MASK
}

/// RFC 7641 §3.4: is a notification `(v2, t2)` newer than the last one
/// accepted, `(v1, t1)`? `window` is 128 s divided by the time scale.
pub fn is_fresh(v1: u32, t1: Instant, v2: u32, t2: Instant, window: Duration) -> bool {
    let v1 = v1 & SEQUENCE_MASK;
    let v2 = v2 & SEQUENCE_MASK;
    (v1 < v2 && v2 - v1 < (1 << 23))
        || (v1 > v2 && v1 - v2 > (1 << 23))
        || t2 > t1.saturating_add(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_rule_of_rfc7641_section_3_4() {
        let t = Instant::from_micros(0);
        let w = FRESHNESS_WINDOW;
        assert!(is_fresh(5, t, 6, t, w));
        assert!(!is_fresh(6, t, 5, t, w));
        assert!(!is_fresh(5, t, 5, t, w));
        // wrap-around: 0xFFFFFF then 0 is fresh.
        assert!(is_fresh(SEQUENCE_MASK, t, 0, t, w));
        // a jump of exactly 2^23 is not fresh either way.
        assert!(!is_fresh(0, t, 1 << 23, t, w));
        // older but more than 128 s later: fresh.
        assert!(is_fresh(6, t, 5, t + Duration::from_secs(129), w));
        assert!(!is_fresh(6, t, 5, t + Duration::from_secs(128), w));
        assert_eq!(next_sequence(SEQUENCE_MASK), 0);
    }
}
