//! L9: the first choice within an SRV priority group follows the weights (RFC 2782), judged by
//! a chi-square goodness-of-fit test over the opening requests of the run.
//!
//! The model, exactly as RFC 2782 (and the reference UA, `ua/locate/srv.rs`) draws: the group's
//! records in DNS order with the weight-0 ones moved to the front; a number n uniform in
//! 0..=S (S the weight sum); the first record whose running weight sum is ≥ n. So:
//! - with weight-0 records: the first of them is chosen when n = 0, P = 1/(S+1); the other
//!   weight-0 records are never first (P = 0); a record of weight w has P = w/(S+1);
//! - without: the first record (DNS order) also takes n = 0, P = (w+1)/(S+1); the others
//!   w/(S+1);
//! - all weights 0 (S = 0): the first record always.
//!
//! DNS order is the order of the first answer to that SRV name on the timeline, else the
//! zone's.

use hickory_server::proto::rr::Name;
use serde_json::json;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::Context;
use super::failures::{failures, srv_is_dirty};
use super::resolution::resolved_set;
use super::targets::SrvTarget;
use super::verdict::{Level, Status, Verdict};
use crate::timeline::EventKind;

/// False-fail rate of L9 on a device that draws correctly.
pub const DEFAULT_ALPHA: f64 = 0.001;

/// A chi-square cell needs at least this expected count to be trusted; smaller ones merge.
pub const MIN_EXPECTED: f64 = 5.0;

/// P(first = record i) for weights in DNS order (see the module comment).
pub fn first_choice_probabilities(weights: &[u16]) -> Vec<f64> {
    let sum: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    let mut p = vec![0.0; weights.len()];
    let first_zero = weights.iter().position(|w| *w == 0);
    match first_zero {
        _ if weights.is_empty() => {}
        Some(zero) => {
            p[zero] = 1.0 / (sum + 1.0);
            for (i, w) in weights.iter().enumerate().filter(|(_, w)| **w > 0) {
                p[i] = f64::from(*w) / (sum + 1.0);
            }
        }
        None => {
            for (i, w) in weights.iter().enumerate() {
                p[i] = f64::from(*w) / (sum + 1.0);
            }
            p[0] += 1.0 / (sum + 1.0);
        }
    }
    p
}

/// The outcome of a goodness-of-fit test.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub statistic: f64,
    pub df: usize,
    pub p_value: f64,
    /// The cells after merging: (labels, observed, expected).
    pub cells: Vec<(Vec<usize>, u64, f64)>,
}

/// Chi-square goodness of fit of `observed` against `probabilities`, cells with an expected
/// count below [`MIN_EXPECTED`] merged (smallest first, into the next smallest). `None` when
/// fewer than two cells survive: the sample is too small to say anything.
pub fn chi_square(observed: &[u64], probabilities: &[f64]) -> Option<Fit> {
    let n: u64 = observed.iter().sum();
    let mut cells: Vec<(Vec<usize>, u64, f64)> = observed
        .iter()
        .zip(probabilities)
        .enumerate()
        .filter(|(_, (_, p))| **p > 0.0)
        .map(|(i, (o, p))| (vec![i], *o, *p * n as f64))
        .collect();
    loop {
        cells.sort_by(|a, b| a.2.total_cmp(&b.2));
        if cells.len() < 2 || cells[0].2 >= MIN_EXPECTED {
            break;
        }
        let (labels, o, e) = cells.remove(0);
        cells[0].0.extend(labels);
        cells[0].1 += o;
        cells[0].2 += e;
    }
    if cells.len() < 2 || cells.iter().any(|c| c.2 < MIN_EXPECTED) {
        return None;
    }
    let statistic: f64 = cells
        .iter()
        .map(|(_, o, e)| (*o as f64 - e).powi(2) / e)
        .sum();
    let df = cells.len() - 1;
    let p_value = ChiSquared::new(df as f64).ok()?.sf(statistic);
    Some(Fit {
        statistic,
        df,
        p_value,
        cells,
    })
}

/// Whether `sequence` cycles through its distinct values in a fixed order (Snom's
/// round-robin), over at least two full rounds.
pub fn is_alternation(sequence: &[usize]) -> bool {
    let mut distinct: Vec<usize> = Vec::new();
    for &x in sequence {
        if distinct.contains(&x) {
            break;
        }
        distinct.push(x);
    }
    let m = distinct.len();
    m >= 2
        && sequence.len() >= 2 * m
        && sequence
            .iter()
            .enumerate()
            .all(|(i, x)| *x == distinct[i % m])
}

/// The group's records in the order the device was given them (the first DNS answer for the
/// name, else the zone's).
fn dns_order(ctx: &Context, owner: &Name, group: Vec<SrvTarget>) -> Vec<SrvTarget> {
    let answer = ctx.events.iter().find_map(|e| match &e.kind {
        EventKind::DnsAnswer(a)
            if a.qtype.eq_ignore_ascii_case("SRV")
                && Name::from_ascii(&a.name).is_ok_and(|n| n == *owner) =>
        {
            Some(a.answers.clone())
        }
        _ => None,
    });
    let Some(answers) = answer else {
        return group;
    };
    let position = |srv: &SrvTarget| {
        answers.iter().position(|line| {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let tail = tokens.len().saturating_sub(4);
            match tokens.get(tail..) {
                Some([p, w, port, target]) => {
                    *p == srv.priority.to_string()
                        && *w == srv.weight.to_string()
                        && *port == srv.port.to_string()
                        && Name::from_ascii(target).is_ok_and(|t| t == srv.target)
                }
                _ => false,
            }
        })
    };
    let mut ordered = group;
    ordered.sort_by_key(|srv| position(srv).unwrap_or(usize::MAX));
    ordered
}

/// L9 at significance `alpha`.
pub fn l9(ctx: &Context, alpha: f64) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let all_failures = failures(ctx, &requests);
    // Trials: each opening request's first attempt, with the best priority group of what it
    // resolved, when no record of that group was dirty (a dirty record is no fair trial).
    let mut trials: Vec<(Name, u16, Vec<SrvTarget>, usize, u64)> = Vec::new();
    for request in requests.iter().filter(|r| r.opening) {
        let Some(first) = request.attempts.first() else {
            continue;
        };
        let Some(records) = resolved_set(ctx, first) else {
            continue;
        };
        let best = records.iter().map(|r| r.priority).min().unwrap_or(0);
        let group: Vec<SrvTarget> = records.into_iter().filter(|r| r.priority == best).collect();
        if group
            .iter()
            .any(|r| srv_is_dirty(&all_failures, r, first.first_sent()))
        {
            continue;
        }
        let Some(owner) = group.first().map(|r| r.owner.clone()) else {
            continue;
        };
        let group = dns_order(ctx, &owner, group);
        if let Some(chosen) = group.iter().position(|r| r.matches(first)) {
            trials.push((owner, best, group, chosen, first.first_seq()));
        }
    }
    // Judge the group with the most trials.
    let mut keys: Vec<(Name, u16)> = trials.iter().map(|t| (t.0.clone(), t.1)).collect();
    keys.dedup();
    let Some((owner, priority)) = keys
        .iter()
        .max_by_key(|k| trials.iter().filter(|t| (&t.0, t.1) == (&k.0, k.1)).count())
        .cloned()
    else {
        return Verdict::new(
            "L9",
            level,
            Status::Inconclusive,
            "no opening request chose among SRV records the device had resolved",
        );
    };
    let mine: Vec<&(Name, u16, Vec<SrvTarget>, usize, u64)> = trials
        .iter()
        .filter(|t| t.0 == owner && t.1 == priority)
        .collect();
    let group = mine[0].2.clone();
    if group.len() < 2 {
        return Verdict::new(
            "L9",
            level,
            Status::NotApplicable,
            format!("priority {priority} of {owner} holds one record: there is no choice to judge"),
        );
    }
    let weights: Vec<u16> = group.iter().map(|r| r.weight).collect();
    let probabilities = first_choice_probabilities(&weights);
    let sequence: Vec<usize> = mine.iter().map(|t| t.3).collect();
    let mut observed = vec![0u64; group.len()];
    for &i in &sequence {
        observed[i] += 1;
    }
    let n = sequence.len();
    let names: Vec<String> = group.iter().map(|r| r.target.to_string()).collect();
    let expected: Vec<f64> = probabilities.iter().map(|p| p * n as f64).collect();
    let alternation = is_alternation(&sequence);
    let mut figures = json!({
        "name": owner.to_string(), "priority": priority, "trials": n, "alpha": alpha,
        "targets": names, "weights": weights, "probabilities": probabilities,
        "observed": observed, "expected": expected, "deterministic_alternation": alternation,
        "always_first_record": sequence.len() >= 2 && sequence.iter().all(|&i| i == 0),
    });
    let evidence: Vec<u64> = mine.iter().map(|t| t.4).collect();
    let counts = names
        .iter()
        .zip(&observed)
        .zip(&expected)
        .map(|((name, o), e)| format!("{name} {o} (expected {e:.1})"))
        .collect::<Vec<_>>()
        .join(", ");
    // Every trial took the first record of the answer: the order of the answer, not a draw,
    // decided (issue 14: such a device was read as sticky elsewhere; here it fails, and the
    // sentence says why).
    let first_record = n >= 2 && sequence.iter().all(|&i| i == 0);
    let alternation_note = if alternation {
        "; the choices follow a deterministic alternation (Info)".to_owned()
    } else if first_record {
        format!(
            "; every first choice was the first record of the DNS answer ({}): the device takes the first record rather than drawing by weight",
            names[0]
        )
    } else {
        String::new()
    };
    // A record the draw can never put first, chosen first: no sample size excuses that.
    if let Some(i) = (0..group.len()).find(|&i| probabilities[i] == 0.0 && observed[i] > 0) {
        return Verdict::new(
            "L9",
            level,
            Verdict::violation(level),
            format!(
                "{} was chosen first {} time(s) in {n} trials, but after another weight-0 record it can never come first (RFC 2782); {counts}",
                names[i], observed[i]
            ),
        )
        .with_evidence(evidence)
        .with_figures(figures);
    }
    let Some(fit) = chi_square(&observed, &probabilities) else {
        return Verdict::new(
            "L9",
            level,
            Status::Inconclusive,
            format!("{n} trial(s) in priority {priority} of {owner} are too few for a goodness-of-fit test (every cell needs {MIN_EXPECTED} expected); {counts}"),
        )
        .with_evidence(evidence)
        .with_figures(figures);
    };
    figures["chi_square"] = json!(fit.statistic);
    figures["df"] = json!(fit.df);
    figures["p_value"] = json!(fit.p_value);
    figures["cells"] = json!(fit
        .cells
        .iter()
        .map(|(labels, o, e)| json!({"targets": labels.iter().map(|i| names[*i].clone()).collect::<Vec<_>>(), "observed": o, "expected": e}))
        .collect::<Vec<_>>());
    let test = format!(
        "chi-square {:.2} on {} df, p = {:.4} (alpha {alpha})",
        fit.statistic, fit.df, fit.p_value
    );
    if fit.p_value < alpha {
        return Verdict::new(
            "L9",
            level,
            Verdict::violation(level),
            format!("first choices in priority {priority} of {owner} over {n} trials do not follow the weights: {counts}; {test}{alternation_note}"),
        )
        .with_evidence(evidence)
        .with_figures(figures);
    }
    Verdict::new(
        "L9",
        level,
        Status::Pass,
        format!("first choices in priority {priority} of {owner} over {n} trials fit the weights: {counts}; {test}{alternation_note}"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
