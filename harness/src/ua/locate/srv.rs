//! SRV records as RFC 2782 uses them: priority groups (L8, L11) and the weighted draw within a
//! group (L9).

use std::collections::{BTreeMap, VecDeque};

use hickory_server::proto::rr::{Name, RData, Record};

use crate::ua::fault::{Fault, Faults};
use crate::ua::rng::Rng;
use crate::ua::target::SrvOrigin;

/// The SRV records of an answer to a query for `owner`, in DNS order.
pub(super) fn records(answer: &[Record], owner: &Name) -> Vec<SrvOrigin> {
    answer
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvOrigin {
                name: owner.clone(),
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// L8/L11: groups by ascending priority, each in DNS order. Fault `ignore-priority`: one
/// group with every record.
pub(super) fn groups(records: Vec<SrvOrigin>, faults: &Faults) -> VecDeque<Vec<SrvOrigin>> {
    if faults.has(Fault::IgnorePriority) {
        return VecDeque::from([records]);
    }
    let mut by_priority: BTreeMap<u16, Vec<SrvOrigin>> = BTreeMap::new();
    for record in records {
        by_priority.entry(record.priority).or_default().push(record);
    }
    by_priority.into_values().collect()
}

/// L9: takes the next record out of `group`, with a note on how it was chosen.
///
/// RFC 2782: the records not yet ordered, weight-0 ones at the beginning; a number drawn
/// uniformly in 0..=S (S the sum of their weights); the first record whose running sum is ≥
/// the number. So a record of weight w comes first with probability w/(S+1) and the leading
/// weight-0 record with 1/(S+1). Fault `ignore-weights`: DNS order; fault
/// `weight-zero-first`: a weight-0 record whenever one is left.
pub(super) fn draw(
    group: &mut Vec<SrvOrigin>,
    rng: &mut Rng,
    faults: &Faults,
) -> Option<(SrvOrigin, String)> {
    if group.is_empty() {
        return None;
    }
    if faults.has(Fault::IgnoreWeights) {
        return Some((
            group.remove(0),
            "fault ignore-weights: DNS order".to_owned(),
        ));
    }
    if faults.has(Fault::WeightZeroFirst)
        && let Some(zero) = group.iter().position(|r| r.weight == 0)
    {
        return Some((group.remove(zero), "fault weight-zero-first".to_owned()));
    }
    let order: Vec<usize> = (0..group.len())
        .filter(|&i| group[i].weight == 0)
        .chain((0..group.len()).filter(|&i| group[i].weight != 0))
        .collect();
    let sum: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
    let number = rng.up_to(sum);
    let mut running = 0u64;
    let pick = order
        .iter()
        .copied()
        .find(|&i| {
            running += u64::from(group[i].weight);
            running >= number
        })
        // Unreachable: the last running sum is S ≥ number.
        .unwrap_or(0);
    let note = format!("drew {number} of 0..={sum} among {} record(s)", group.len());
    Some((group.remove(pick), note))
}
