//! Times as the sentences print them, and srvlab's tolerances (CONFORMANCE.md: ±10 % or
//! ±2 ms, whichever is larger).

use std::time::Duration;

/// The absolute floor of every timing tolerance: below it, scheduling noise dominates.
pub const FLOOR: Duration = Duration::from_millis(2);

/// ±10 % of `expected`, at least [`FLOOR`].
pub fn tolerance(expected: Duration) -> Duration {
    (expected / 10).max(FLOOR)
}

/// The tolerance of `expected` for a sentence: `± 10 % (30 ms)`, or `± 2 ms` at the floor.
pub fn plus_minus(expected: Duration) -> String {
    let tol = tolerance(expected);
    if tol == FLOOR {
        format!("± {}", millis(ns(tol)))
    } else {
        format!("± 10 % ({})", millis(ns(tol)))
    }
}

pub fn ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether `measured_ns` lies within `expected` ± [`tolerance`].
pub fn within(measured_ns: u64, expected: Duration) -> bool {
    let tol = ns(tolerance(expected));
    measured_ns.abs_diff(ns(expected)) <= tol
}

/// `1.283 s`
pub fn secs(t_ns: u64) -> String {
    format!("{:.3} s", t_ns as f64 / 1e9)
}

/// `20 ms` (three decimals only when needed).
pub fn millis(t_ns: u64) -> String {
    let ms = t_ns as f64 / 1e6;
    if (ms - ms.round()).abs() < 1e-9 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// `80 ms` below a second, `4.000 s` from there on.
pub fn duration(t_ns: u64) -> String {
    if t_ns < 1_000_000_000 {
        millis(t_ns)
    } else {
        secs(t_ns)
    }
}

/// `64.2·T1`
pub fn in_t1(t_ns: u64, t1: Duration) -> String {
    if t1.is_zero() {
        return "?·T1".to_owned();
    }
    format!("{:.1}·T1", t_ns as f64 / t1.as_nanos() as f64)
}
