//! Running cases: bring each case's world up, make the device act, judge the timeline, report.
//!
//! - [`record`]: timeline.jsonl and capture.pcap written as events happen.
//! - [`case`]: one case against the device under test.
//! - [`external`]: a real device acting at each step, read from the wire.
//! - [`trigger`]: how srvlab makes a real device act (manual, command, http, passive).
//! - [`report`]: report.json, summary.md, junit.xml.
//! - [`html`]: report.html, with [`ladder`] diagrams of each case.
//! - [`baseline`]: known deviations, so that the exit code reflects changes only.
//! - [`schedule`]: which cases may run at the same time.
//! - [`watchdog`]: when the host did not run the reference UA (its stalls, for the checks).

pub mod baseline;
pub mod case;
pub mod external;
pub mod html;
pub mod ladder;
pub mod record;
pub mod report;
pub mod schedule;
pub mod trigger;
pub mod watchdog;
