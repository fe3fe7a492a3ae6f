//! Random spreads of timers that many connections or feeds start at once.

use std::time::Duration;

/// `base` scaled by a random factor in `from..to`. Thousands of sockets and feeds open
/// within seconds (a server restart, a big chat going live); a timer each starts then would
/// otherwise fire for all of them at the same instant, every interval.
pub fn spread(base: Duration, from: f64, to: f64) -> Duration {
    let mut bytes = [0u8; 2];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    base.mul_f64(from + (to - from) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_its_range_and_varies() {
        let base = Duration::from_secs(60);
        let spreads: Vec<Duration> = (0..50).map(|_| spread(base, 0.5, 1.5)).collect();
        assert!(
            spreads
                .iter()
                .all(|d| *d >= base / 2 && *d <= base.mul_f64(1.5))
        );
        assert!(spreads.iter().any(|d| *d != spreads[0]), "{spreads:?}");
    }
}
