//! Which cases may run at the same time: two cases whose worlds or devices could touch the same
//! address would see each other's packets (a refusal from one case's closed port would land on
//! the other's timeline), so a case starts only when its addresses are free.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::case::Case;
use crate::model::zone::RecordData;
use crate::ua::uri::{Host, SipUri};

/// Every IP address a case's world listens on or its device may send to: the servers', every
/// A/AAAA record of its zones and of the zones its steps switch to (a device may try any of
/// them, or be refused there), and a
/// numeric host in the device's URIs.
pub fn footprint(case: &Case) -> BTreeSet<IpAddr> {
    let mut addresses: BTreeSet<IpAddr> = case
        .servers
        .iter()
        .flat_map(|s| s.addresses.iter().copied())
        .collect();
    let zone_sets = std::iter::once(&case.zones).chain(case.zone_changes.values());
    for zone in zone_sets.flat_map(|set| &set.zones) {
        for record in &zone.records {
            match record.data {
                RecordData::A(ip) => {
                    addresses.insert(IpAddr::V4(ip));
                }
                RecordData::Aaaa(ip) => {
                    addresses.insert(IpAddr::V6(ip));
                }
                _ => {}
            }
        }
    }
    for uri in [&case.uri, &case.aor] {
        if let Ok(SipUri {
            host: Host::Ip(ip), ..
        }) = SipUri::parse(uri)
        {
            addresses.insert(ip);
        }
    }
    addresses
}

/// Hands out cases in file order, at most `jobs` at a time, never two whose footprints meet.
#[derive(Debug)]
pub struct Schedule {
    jobs: usize,
    footprints: Vec<BTreeSet<IpAddr>>,
    waiting: Vec<usize>,
    running: Vec<usize>,
}

impl Schedule {
    pub fn new(footprints: Vec<BTreeSet<IpAddr>>, jobs: usize) -> Self {
        Self {
            jobs: jobs.max(1),
            waiting: (0..footprints.len()).collect(),
            footprints,
            running: Vec::new(),
        }
    }

    /// The next case that may start now, if any. A case that collides with a running one
    /// waits; later cases that do not collide may go ahead of it.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.running.len() >= self.jobs {
            return None;
        }
        let position = self.waiting.iter().position(|&candidate| {
            self.running
                .iter()
                .all(|&busy| self.footprints[candidate].is_disjoint(&self.footprints[busy]))
        })?;
        let index = self.waiting.remove(position);
        self.running.push(index);
        Some(index)
    }

    /// Case `index` has finished: its addresses are free again.
    pub fn finished(&mut self, index: usize) {
        self.running.retain(|&i| i != index);
    }

    pub fn is_done(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(last: &[u8]) -> BTreeSet<IpAddr> {
        last.iter().map(|&n| IpAddr::from([127, 0, 0, n])).collect()
    }

    #[test]
    fn colliding_cases_wait_and_others_go_ahead() {
        let mut schedule = Schedule::new(vec![set(&[1, 2]), set(&[2]), set(&[3])], 4);
        assert_eq!(schedule.start_next(), Some(0));
        // Case 1 shares 127.0.0.2 with case 0; case 2 goes ahead of it.
        assert_eq!(schedule.start_next(), Some(2));
        assert_eq!(schedule.start_next(), None);
        schedule.finished(0);
        assert_eq!(schedule.start_next(), Some(1));
        schedule.finished(1);
        schedule.finished(2);
        assert!(schedule.is_done());
    }

    #[test]
    fn never_more_than_jobs_at_once() {
        let mut schedule = Schedule::new(vec![set(&[1]), set(&[2]), set(&[3])], 2);
        assert_eq!(schedule.start_next(), Some(0));
        assert_eq!(schedule.start_next(), Some(1));
        assert_eq!(schedule.start_next(), None);
        schedule.finished(1);
        assert_eq!(schedule.start_next(), Some(2));
    }

    #[test]
    fn one_job_runs_in_file_order() {
        let mut schedule = Schedule::new(vec![set(&[1]), set(&[2])], 1);
        assert_eq!(schedule.start_next(), Some(0));
        assert_eq!(schedule.start_next(), None);
        schedule.finished(0);
        assert_eq!(schedule.start_next(), Some(1));
    }
}
