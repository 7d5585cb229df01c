//! A watchdog on the reference UA's thread: it wakes every millisecond, and when the host woke
//! it late (a busy machine can pause any thread for tens of milliseconds) it records how long
//! the device could not run (`EventKind::HostStall`). A check measuring how fast the device
//! reacted (F2: within T1 after a refusal) then takes that time off, and says so. A real
//! device has no watchdog: nothing is ever taken off its times.

use std::time::Duration;

use tokio::time::Instant;

use crate::timeline::{EventKind, Timeline};

/// How often the watchdog wakes.
const PERIOD: Duration = Duration::from_millis(1);

/// From this lateness on, a wake-up is recorded as a stall: below it lies the timer's own
/// granularity (tokio rounds a sleep up to the next millisecond).
pub const STALL_NOTICE: Duration = Duration::from_millis(2);

/// Watches until dropped or aborted; run it on the device's own runtime, beside the device.
pub async fn watch(timeline: Timeline) {
    loop {
        let due = Instant::now() + PERIOD;
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due);
        if late >= STALL_NOTICE {
            timeline.record(EventKind::HostStall {
                stalled_ns: u64::try_from(late.as_nanos()).unwrap_or(u64::MAX),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime thread blocked for 30 ms (as a descheduled one would be) is recorded as a
    /// stall of about that length.
    #[test]
    fn a_blocked_device_thread_is_recorded_as_a_stall() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let timeline = Timeline::new();
        let stalls = |timeline: &Timeline| -> Vec<u64> {
            timeline
                .events()
                .iter()
                .filter_map(|e| match e.kind {
                    EventKind::HostStall { stalled_ns } => Some(stalled_ns),
                    _ => None,
                })
                .collect()
        };
        runtime.block_on(async {
            let dog = tokio::spawn(watch(timeline.clone()));
            tokio::time::sleep(Duration::from_millis(10)).await;
            std::thread::sleep(Duration::from_millis(30));
            tokio::time::sleep(Duration::from_millis(5)).await;
            dog.abort();
        });
        let recorded = stalls(&timeline);
        assert!(
            recorded
                .iter()
                .any(|ns| (25_000_000..200_000_000).contains(ns)),
            "{recorded:?}"
        );
    }
}
