//! The gRPC `grpc-timeout` header: up to 8 ASCII digits and a unit letter
//! (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).

use std::time::Duration;

/// Largest value the header can carry (8 digits).
const MAX_VALUE: u64 = 99_999_999;

/// Longest deadline the header can express (99,999,999 hours). Longer durations must be
/// clamped to it before [`tonic::Request::set_timeout`], which panics beyond it.
pub const MAX_GRPC_TIMEOUT: Duration = Duration::from_secs(MAX_VALUE * 3600);

/// `timeout`, shortened to what `grpc-timeout` can express.
pub fn clamp_grpc_timeout(timeout: Duration) -> Duration {
    timeout.min(MAX_GRPC_TIMEOUT)
}

/// Parse a `grpc-timeout` value; `None` if it is malformed. `0` (in any unit) is a deadline
/// that has passed, not "no deadline": callers refuse such calls with `DEADLINE_EXCEEDED`.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    let unit = value.chars().last()?;
    let digits = value.get(..value.len().checked_sub(unit.len_utf8())?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount.checked_mul(3600)?),
        'M' => Duration::from_secs(amount.checked_mul(60)?),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Format a duration as a `grpc-timeout` value, rounding up to the finest unit that fits in
/// 8 digits.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, letter) in units {
        let amount = nanos.div_ceil(per_unit);
        if amount <= u128::from(MAX_VALUE) {
            return format!("{amount}{letter}");
        }
    }
    format!("{MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        // Zero is a deadline (one that has passed), not "none".
        assert_eq!(parse_grpc_timeout("0n"), Some(Duration::ZERO));
        assert_eq!(parse_grpc_timeout("0H"), Some(Duration::ZERO));
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1)), "1n");
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in ["", "m", "10", "10x", "123456789S", "-1S", "1.5S", "é", "1é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_timeouts_are_clamped() {
        let huge = Duration::from_secs(u64::MAX);
        assert_eq!(clamp_grpc_timeout(huge), MAX_GRPC_TIMEOUT);
        let mut request = tonic::Request::new(());
        request.set_timeout(clamp_grpc_timeout(huge));
        assert_eq!(format_grpc_timeout(MAX_GRPC_TIMEOUT), "99999999H");
    }

    #[test]
    fn formats_round_trip() {
        for d in [
            Duration::from_millis(1),
            Duration::from_millis(1500),
            Duration::from_secs(86_400 * 365),
        ] {
            let text = format_grpc_timeout(d);
            let back = parse_grpc_timeout(&text).unwrap();
            assert!(back >= d, "{text}");
        }
        assert_eq!(format_grpc_timeout(Duration::from_millis(1)), "1000000n");
    }
}
