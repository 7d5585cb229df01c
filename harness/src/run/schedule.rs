//! Which cases may run at the same time: two cases whose worlds or devices could touch the same
//! address would see each other's packets (a refusal from one case's closed port would land on
//! the other's timeline), so a case starts only when its addresses are free.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::case::Case;
use crate::model::steps::Step;
use crate::model::zone::RecordData;
use crate::sip::uri::{Host, SipUri};

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

/// How many requests a case makes its device send, at least (trials multiply their steps).
pub fn requests(steps: &[Step]) -> u64 {
    steps
        .iter()
        .map(|step| match step {
            Step::Register | Step::Call | Step::Options => 1,
            Step::Registers(n) | Step::Calls(n) => u64::from(*n),
            Step::Trials(trials) => u64::from(trials.count).saturating_mul(requests(&trials.steps)),
            Step::Wait(_) | Step::Step(_) | Step::Zone(_) => 0,
        })
        .fold(0, u64::saturating_add)
}

/// From this many requests on, a case keeps the CPUs busy (its device sends back to back) and
/// runs alone: beside it, another device's retransmission woke up to 3 ms late (Linux's EEVDF
/// scheduler lets a busy thread finish its slice), past T1's ±2 ms.
pub const BUSY_REQUESTS: u64 = 100;

/// Hands out cases in file order, at most `jobs` at a time, never two whose footprints meet,
/// and a busy case only alone.
#[derive(Debug)]
pub struct Schedule {
    jobs: usize,
    footprints: Vec<BTreeSet<IpAddr>>,
    busy: Vec<bool>,
    waiting: Vec<usize>,
    running: Vec<usize>,
}

impl Schedule {
    pub fn new(footprints: Vec<BTreeSet<IpAddr>>, jobs: usize) -> Self {
        let busy = vec![false; footprints.len()];
        Self::with_busy(footprints, busy, jobs)
    }

    /// `busy[i]`: case i must run alone.
    pub fn with_busy(footprints: Vec<BTreeSet<IpAddr>>, busy: Vec<bool>, jobs: usize) -> Self {
        Self {
            jobs: jobs.max(1),
            waiting: (0..footprints.len()).collect(),
            footprints,
            busy,
            running: Vec::new(),
        }
    }

    /// The schedule for `cases`.
    pub fn of(cases: &[impl AsRef<Case>], jobs: usize) -> Self {
        Self::with_busy(
            cases.iter().map(|c| footprint(c.as_ref())).collect(),
            cases
                .iter()
                .map(|c| requests(&c.as_ref().steps) >= BUSY_REQUESTS)
                .collect(),
            jobs,
        )
    }

    /// The next case that may start now, if any. A case that collides with a running one
    /// waits; later cases that do not collide may go ahead of it.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.running.len() >= self.jobs || self.running.iter().any(|&i| self.busy[i]) {
            return None;
        }
        let position = self.waiting.iter().position(|&candidate| {
            (!self.busy[candidate] || self.running.is_empty())
                && self
                    .running
                    .iter()
                    .all(|&other| self.footprints[candidate].is_disjoint(&self.footprints[other]))
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
    fn a_busy_case_runs_alone() {
        let mut schedule = Schedule::with_busy(
            vec![set(&[1]), set(&[2]), set(&[3])],
            vec![false, true, false],
            4,
        );
        assert_eq!(schedule.start_next(), Some(0));
        // The busy case waits for case 0; case 2 goes ahead of it.
        assert_eq!(schedule.start_next(), Some(2));
        assert_eq!(schedule.start_next(), None);
        schedule.finished(0);
        assert_eq!(schedule.start_next(), None);
        schedule.finished(2);
        assert_eq!(schedule.start_next(), Some(1));
        assert!(!schedule.is_done());
        schedule.finished(1);
        assert!(schedule.is_done());
    }

    #[test]
    fn trials_multiply_their_requests() {
        let steps: Vec<Step> = serde_saphyr::from_str(
            "- register\n- calls: 3\n- trials: {count: 40, steps: [call, options]}\n- wait: 1s\n",
        )
        .unwrap();
        assert_eq!(requests(&steps), 84);
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
