//! Running cases: bring each case's world up, make the device act, judge the timeline, report.

pub mod record;
