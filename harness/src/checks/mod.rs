//! The oracle: pure functions over (case data, device profile, timeline) that decide whether
//! what the device did is one of the behaviours the RFCs allow, with the events that prove it.
//! No sockets, no clock: every check can be run on a timeline built by hand.
//!
//! - [`verdict`]: what a check says (level, status, sentence, evidence, figures).
//! - [`attempts`]: the timeline regrouped as requests and attempts.
//! - [`targets`]: the zone's SRV records and which one an attempt went to.
//! - [`failures`]: when attempts failed, and which targets were dirty when.
//! - [`measure`]: tolerances and how times are printed.
//! - [`lookups`]: the device's DNS queries, and what each request set out to reach (its
//!   Request-URI) with the lookups it made for it.
//! - one module per area: [`uri_rules`] (L1, L2, L3), [`resolution`] (L8, L10, L11, L12),
//!   [`weights`] (L9), [`timers`] (T1, T2, T3, T4), [`failover`] (F1, F2, F3), [`dirty`] (D1,
//!   D2), [`dirty_scope`] (D3), [`registration`] (D4, D5, D6), [`caching`] (C1),
//!   [`transactions`] (T5, T6), [`responses`] (F4, F5), [`discovery`] (L4, L5, L7),
//!   [`srv_search`] (L6), [`expiry`] (C2), [`reuse`] (C3), [`dual_stack`] (L13),
//!   [`connections`] (T7), [`certificates`] (F6).

pub mod attempts;
pub mod caching;
pub mod certificates;
pub mod connections;
pub mod dirty;
pub mod dirty_scope;
pub mod discovery;
pub mod dual_stack;
pub mod expiry;
pub mod failover;
pub mod failures;
pub mod lookups;
pub mod measure;
pub mod registration;
pub mod resolution;
pub mod responses;
pub mod reuse;
pub mod srv_search;
pub mod targets;
pub mod timers;
pub mod transactions;
pub mod uri_rules;
pub mod verdict;
pub mod weights;

#[cfg(test)]
mod tests;

use std::time::Duration;

use thiserror::Error;

pub use attempts::{Attempt, AttemptEnd, Request};
pub use verdict::{Level, Status, Verdict};

use crate::model::case::ServerSpec;
use crate::model::profile::Profile;
use crate::model::zone::ZoneSet;
use crate::timeline::{Event, EventKind};

/// Everything a check may look at.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub zones: &'a ZoneSet,
    pub servers: &'a [ServerSpec],
    pub events: &'a [Event],
}

impl Context<'_> {
    /// The timeline regrouped as the device's requests outside dialogs (see [`attempts`]): a
    /// BYE, a re-INVITE or the ACK of a 2xx follows the dialog's route, not DNS, and no check
    /// judges it as a decision of the device's locator.
    pub fn requests(&self) -> Vec<Request> {
        let mut requests = attempts::group(self.events, self.profile);
        requests.retain(|r| !r.in_dialog);
        requests
    }

    /// When the last event was recorded: how far the run was watched.
    pub fn end_ns(&self) -> u64 {
        self.events.iter().map(|e| e.t_ns).max().unwrap_or(0)
    }

    /// How much of `from_ns..to_ns` the host did not run srvlab's reference UA (its watchdog's
    /// `HostStall` reports; a real device has none, so nothing is ever taken off its times).
    pub fn host_stalled_ns(&self, from_ns: u64, to_ns: u64) -> u64 {
        self.events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::HostStall { stalled_ns } => {
                    let start = e.t_ns.saturating_sub(stalled_ns).max(from_ns);
                    Some(e.t_ns.min(to_ns).saturating_sub(start))
                }
                _ => None,
            })
            .sum()
    }

    /// How long the device waits for an answer before it moves on: the vendor's declared
    /// failover time (T4) when the profile has one, else Timer B/F (64·T1).
    pub fn timeout(&self) -> Duration {
        attempts::give_up_after(self.profile)
    }
}

/// Why a check could not be judged at all.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckError {
    /// A case asked for a check id the oracle does not know (or not yet): a mistake in the
    /// case, not a property of the device, so it is an error rather than a verdict.
    #[error("no check `{0}` (implemented: {list})", list = IMPLEMENTED.join(", "))]
    Unknown(String),
}

/// The check ids [`judge`] knows.
pub const IMPLEMENTED: &[&str] = &[
    "L8", "L9", "L10", "L11", "L12", "T1", "T3", "F1", "F2", "F3", "D1", "D2", "C1", "T5", "T6",
    "F4", "F5", "L4", "L5", "L7", "C2", "L1", "L2", "L3", "L6", "C3", "T2", "T4", "D3", "D4", "D5",
    "D6", "L13", "T7", "F6",
];

/// A checklist row's level as CONFORMANCE.md gives it (a profile's claim may raise a SHOULD to
/// PROFILE when the check is judged).
pub fn level_of(id: &str) -> Option<Level> {
    Some(match id {
        "L1" | "L2" | "L3" | "L5" | "L7" | "L8" | "L9" | "L10" | "L11" | "T1" | "T2" | "T3"
        | "T5" | "T6" | "F1" | "F3" | "F6" | "C1" | "C2" => Level::Must,
        "L4" | "L12" | "L13" | "F2" | "F5" | "D4" | "D5" => Level::Should,
        "L6" | "F4" | "D3" | "D6" | "C3" | "T7" => Level::Info,
        "T4" | "D1" | "D2" => Level::Profile,
        _ => return None,
    })
}

/// A check's parameters as a case may set them (`checks: [{L9: {alpha: 0.01}}]`).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckParams {
    /// L9: the goodness-of-fit test's significance level (default [`weights::DEFAULT_ALPHA`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
}

impl CheckParams {
    /// Why these parameters do not fit check `id`, if they do not.
    pub fn problem(&self, id: &str) -> Option<String> {
        match self.alpha {
            Some(_) if id != "L9" => Some(format!("`alpha` is a parameter of L9, not of {id}")),
            Some(alpha) if !(alpha > 0.0 && alpha <= 0.5) => {
                Some(format!("alpha {alpha} must lie in (0, 0.5]"))
            }
            _ => None,
        }
    }
}

/// Judges one check with the parameters a case gave it.
pub fn judge_with(id: &str, ctx: &Context, params: &CheckParams) -> Result<Verdict, CheckError> {
    match (id, params.alpha) {
        ("L9", Some(alpha)) => Ok(weights::l9(ctx, alpha)),
        _ => judge(id, ctx),
    }
}

/// Judges one check on one run. L9 uses [`weights::DEFAULT_ALPHA`]; call
/// [`weights::l9`] for another alpha.
pub fn judge(id: &str, ctx: &Context) -> Result<Verdict, CheckError> {
    Ok(match id {
        "L8" => resolution::l8(ctx),
        "L9" => weights::l9(ctx, weights::DEFAULT_ALPHA),
        "L10" => resolution::l10(ctx),
        "L11" => resolution::l11(ctx),
        "L12" => resolution::l12(ctx),
        "L13" => dual_stack::l13(ctx),
        "T1" => timers::t1(ctx),
        "T3" => timers::t3(ctx),
        "F1" => failover::f1(ctx),
        "F2" => failover::f2(ctx),
        "F3" => failover::f3(ctx),
        "D1" => dirty::d1(ctx),
        "D2" => dirty::d2(ctx),
        "C1" => caching::c1(ctx),
        "T5" => transactions::t5(ctx),
        "T6" => transactions::t6(ctx),
        "F4" => responses::f4(ctx),
        "F5" => responses::f5(ctx),
        "L4" => discovery::l4(ctx),
        "L5" => discovery::l5(ctx),
        "L7" => discovery::l7(ctx),
        "C2" => expiry::c2(ctx),
        "L1" => uri_rules::l1(ctx),
        "L2" => uri_rules::l2(ctx),
        "L3" => uri_rules::l3(ctx),
        "L6" => srv_search::l6(ctx),
        "C3" => reuse::c3(ctx),
        "T2" => timers::t2(ctx),
        "T4" => timers::t4(ctx),
        "D3" => dirty_scope::d3(ctx),
        "D4" => registration::d4(ctx),
        "D5" => registration::d5(ctx),
        "D6" => registration::d6(ctx),
        "T7" => connections::t7(ctx),
        "F6" => certificates::f6(ctx),
        other => return Err(CheckError::Unknown(other.to_owned())),
    })
}
