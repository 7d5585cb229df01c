//! What a case makes the device do (`steps`) and what it judges (`checks`).
//!
//! ```yaml
//! device: {uri: "sip:100@snom.rocks", aor: "sip:alice@snom.rocks"}
//! steps:
//!   - register
//!   - calls: 3                     # or `call` for one; `options`
//!   - step: crash                  # a named step: scripted phases waiting for it end
//!   - wait: 2s                     # or {dirty_host_ttl: 1.2} / {timer_b: 1.5}: profile units
//!   - trials: {count: 200, steps: [call]}   # each trial a fresh device (cold DNS cache)
//!   - trials: {count: 5, steps: [call], between: ttl_expiry}  # same device, TTLs run out
//!   - zone: moved.yaml             # the DNS server serves this zone file from now on
//! checks: [L8, F1, D1]
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::duration::DurationSpec;
use super::profile::Profile;

/// Every checklist id of CONFORMANCE.md.
pub const CHECKLIST: &[&str] = &[
    "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9", "L10", "L11", "L12", "L13", "T1", "T2",
    "T3", "T4", "T5", "T6", "T7", "F1", "F2", "F3", "F4", "F5", "F6", "D1", "D2", "D3", "D4", "D5",
    "D6", "C1", "C2", "C3",
];

/// How long to wait: fixed, or in the device profile's own units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wait {
    Fixed(Duration),
    /// This many dirty-host TTLs of the profile.
    DirtyHostTtl(f64),
    /// This many Timer B (64·T1) of the profile.
    TimerB(f64),
}

impl Wait {
    /// The wait for a device with `profile`; `None` when the profile has no dirty-host TTL.
    pub fn resolve(&self, profile: &Profile) -> Option<Duration> {
        match *self {
            Self::Fixed(d) => Some(d),
            Self::DirtyHostTtl(times) => profile.dirty_host_ttl.map(|t| t.mul_f64(times)),
            Self::TimerB(times) => Some(profile.timer_b().mul_f64(times)),
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(d) => write!(f, "{}", DurationSpec(*d)),
            Self::DirtyHostTtl(times) => write!(f, "{times}× the dirty-host TTL"),
            Self::TimerB(times) => write!(f, "{times}× Timer B"),
        }
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WaitVisitor;
        impl<'de> Visitor<'de> for WaitVisitor {
            type Value = Wait;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (2s) or {dirty_host_ttl: N} or {timer_b: N}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Wait, E> {
                Ok(Wait::Fixed(Duration::from_secs(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Wait, E> {
                if (0.0..=1e9).contains(&v) {
                    Ok(Wait::Fixed(Duration::from_secs_f64(v)))
                } else {
                    Err(E::custom("a wait must be a positive number of seconds"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Wait, E> {
                DurationSpec::parse(v)
                    .map(|d| Wait::Fixed(d.0))
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wait, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("expected dirty_host_ttl or timer_b"));
                };
                let times: f64 = map.next_value()?;
                if !(0.0..=1e6).contains(&times) {
                    return Err(de::Error::custom(
                        "the factor must be between 0 and 1000000",
                    ));
                }
                let wait = match key.as_str() {
                    "dirty_host_ttl" => Wait::DirtyHostTtl(times),
                    "timer_b" => Wait::TimerB(times),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown unit `{other}`: use dirty_host_ttl or timer_b"
                        )));
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("give one unit only"));
                }
                Ok(wait)
            }
        }
        deserializer.deserialize_any(WaitVisitor)
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trials {
    pub count: u32,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub between: Between,
}

/// What makes trials independent of each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Between {
    /// Each trial is a fresh device: cold DNS cache, no dirty hosts. Only the reference UA can
    /// be reset like this.
    #[default]
    FreshDevice,
    /// The same device throughout; between trials the runner waits until every record the
    /// zones serve has expired (the longest TTL, or negative TTL, plus a margin), which is how
    /// a real phone's cache is made cold. Dirty hosts carry over.
    TtlExpiry,
}

/// One step of a case.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Register,
    Call,
    Options,
    Registers(u32),
    Calls(u32),
    Wait(Wait),
    /// A named step: the servers' phases waiting for it end.
    Step(String),
    /// Repeat steps, each time as a fresh device or after the TTLs ran out.
    Trials(Trials),
    /// Serve another zone file from now on (path relative to the case file).
    Zone(String),
}

/// The most a step may repeat (`calls`, `registers`, `trials`): a weight test needs about a
/// thousand trials, a soak test a few thousand; a typo of four billion would otherwise run
/// for days and fill the disk with its timeline.
pub const MAX_REPEAT: u32 = 10_000;
/// The most requests the steps of one case may ask of the device in all (trials multiply).
pub const MAX_REQUESTS: u64 = 100_000;

impl Step {
    /// How many requests this step asks of the device (trials times their steps).
    pub fn requests(&self) -> u64 {
        match self {
            Self::Register | Self::Call | Self::Options => 1,
            Self::Registers(n) | Self::Calls(n) => u64::from(*n),
            Self::Trials(t) => {
                u64::from(t.count).saturating_mul(t.steps.iter().map(Self::requests).sum())
            }
            Self::Wait(_) | Self::Step(_) | Self::Zone(_) => 0,
        }
    }

    /// A count beyond [`MAX_REPEAT`] in this step or the steps of its trials, if any.
    pub fn excessive_repeat(&self) -> Option<String> {
        let (what, n) = match self {
            Self::Registers(n) => ("registers: ", *n),
            Self::Calls(n) => ("calls: ", *n),
            Self::Trials(t) => ("trials: {count: ", t.count),
            _ => return None,
        };
        if n > MAX_REPEAT {
            let close = if what.contains('{') { ", …}" } else { "" };
            return Some(format!(
                "`{what}{n}{close}` is more than srvlab repeats a step ({MAX_REPEAT})"
            ));
        }
        match self {
            Self::Trials(t) => t.steps.iter().find_map(Self::excessive_repeat),
            _ => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register => f.write_str("register"),
            Self::Call => f.write_str("call"),
            Self::Options => f.write_str("options"),
            Self::Registers(n) => write!(f, "register ×{n}"),
            Self::Calls(n) => write!(f, "call ×{n}"),
            Self::Wait(w) => write!(f, "wait {w}"),
            Self::Step(name) => write!(f, "step {name}"),
            Self::Trials(t) => write!(f, "{} trials", t.count),
            Self::Zone(path) => write!(f, "zone {path}"),
        }
    }
}

/// Who the device is and whom it calls, as written (checked as SIP URIs when the case loads).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTarget {
    /// The URI calls and OPTIONS go to (default `sip:100@ORIGIN`).
    #[serde(default)]
    pub uri: Option<serde_saphyr::Spanned<String>>,
    /// The address of record it registers (default `sip:alice@ORIGIN`).
    #[serde(default)]
    pub aor: Option<serde_saphyr::Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_written() {
        let steps: Vec<Step> = serde_saphyr::from_str(
            "- register\n- calls: 3\n- wait: 2s\n- wait: {dirty_host_ttl: 1.5}\n- step: crash\n\
             - trials: {count: 5, steps: [call, options]}\n\
             - trials: {count: 2, steps: [call], between: ttl_expiry}\n- zone: moved.yaml\n",
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Register,
                Step::Calls(3),
                Step::Wait(Wait::Fixed(Duration::from_secs(2))),
                Step::Wait(Wait::DirtyHostTtl(1.5)),
                Step::Step("crash".into()),
                Step::Trials(Trials {
                    count: 5,
                    steps: vec![Step::Call, Step::Options],
                    between: Between::FreshDevice,
                }),
                Step::Trials(Trials {
                    count: 2,
                    steps: vec![Step::Call],
                    between: Between::TtlExpiry,
                }),
                Step::Zone("moved.yaml".into()),
            ]
        );
        let err = serde_saphyr::from_str::<Vec<Step>>("- wait: {fortnights: 2}\n").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }
}
