//! A server's script as a state machine, free of I/O: it is told what happened (a new request,
//! the time, a case step) and answers which behaviour applies and when the phase changes.

use std::time::Duration;

use crate::model::case::{Behaviour, Phase, Until};

/// A phase change: the new phase's index and behaviour, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub phase: usize,
    pub behaviour: Behaviour,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct ScriptState {
    phases: Vec<Phase>,
    index: usize,
    /// New requests (transactions, not retransmissions or ACKs) seen in this phase.
    requests: u32,
    /// When this phase began, as time since the world started.
    started: Duration,
}

impl ScriptState {
    /// # Panics
    /// Never for a validated case (a script has at least one phase); an empty script is
    /// treated as one `accept` phase.
    pub fn new(phases: Vec<Phase>, now: Duration) -> Self {
        let phases = if phases.is_empty() {
            vec![Phase {
                behaviour: Behaviour::Accept {
                    challenge: false,
                    expires: crate::model::case::DEFAULT_EXPIRES,
                },
                until: None,
            }]
        } else {
            phases
        };
        Self {
            phases,
            index: 0,
            requests: 0,
            started: now,
        }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.phases[self.index].behaviour
    }

    fn until(&self) -> Option<&Until> {
        self.phases[self.index].until.as_ref()
    }

    fn advance(&mut self, now: Duration, reason: String) -> Transition {
        if self.index + 1 < self.phases.len() {
            self.index += 1;
        }
        self.requests = 0;
        self.started = now;
        Transition {
            phase: self.index,
            behaviour: self.behaviour().clone(),
            reason,
        }
    }

    /// A new request arrived: it gets the current behaviour; if it was the phase's last, the
    /// phase changes after it.
    pub fn on_request(&mut self, now: Duration) -> (Behaviour, Option<Transition>) {
        let behaviour = self.behaviour().clone();
        self.requests += 1;
        let transition = match self.until() {
            Some(Until::Requests(limit)) if self.requests >= *limit => {
                let reason = format!("after {} requests", self.requests);
                Some(self.advance(now, reason))
            }
            _ => None,
        };
        (behaviour, transition)
    }

    /// When the current phase ends by time, as time since the world started.
    pub fn deadline(&self) -> Option<Duration> {
        match self.until() {
            Some(Until::After(d)) => Some(self.started + d.0),
            _ => None,
        }
    }

    /// Time passed: every phase whose time is up ends (several, if time jumped far).
    pub fn on_time(&mut self, now: Duration) -> Vec<Transition> {
        let mut transitions = Vec::new();
        while let Some(deadline) = self.deadline() {
            if now < deadline || self.index + 1 >= self.phases.len() {
                break;
            }
            let reason = match self.until() {
                Some(Until::After(d)) => format!("after {d}"),
                _ => String::new(),
            };
            // The next phase starts when the last one was due, not when we noticed.
            transitions.push(self.advance(deadline, reason));
        }
        transitions
    }

    /// The case reached a step: a phase waiting for it ends.
    pub fn on_step(&mut self, name: &str, now: Duration) -> Option<Transition> {
        match self.until() {
            Some(Until::Step(step)) if step == name => {
                Some(self.advance(now, format!("at step {name}")))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::duration::DurationSpec;

    fn accept() -> Behaviour {
        Behaviour::Accept {
            challenge: false,
            expires: 60,
        }
    }

    fn phase(behaviour: Behaviour, until: Option<Until>) -> Phase {
        Phase { behaviour, until }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn crash_after_five_minutes() {
        let mut script = ScriptState::new(
            vec![
                phase(accept(), Some(Until::After(DurationSpec(secs(300))))),
                phase(Behaviour::Refuse, None),
            ],
            secs(0),
        );
        assert_eq!(script.deadline(), Some(secs(300)));
        assert!(script.on_time(secs(299)).is_empty());
        assert_eq!(script.on_request(secs(299)).0, accept());
        let changes = script.on_time(secs(300));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].behaviour, Behaviour::Refuse);
        assert_eq!(changes[0].reason, "after 5m");
        assert_eq!(script.deadline(), None, "the last phase runs on");
        assert!(script.on_time(secs(10_000)).is_empty());
    }

    #[test]
    fn the_nth_request_is_the_phases_last() {
        let stall = Behaviour::Stall { trying: false };
        let mut script = ScriptState::new(
            vec![
                phase(accept(), Some(Until::Requests(2))),
                phase(stall.clone(), None),
            ],
            secs(0),
        );
        assert_eq!(script.on_request(secs(1)), (accept(), None));
        let (behaviour, transition) = script.on_request(secs(2));
        assert_eq!(behaviour, accept(), "the 2nd request is still accepted");
        let transition = transition.expect("then the phase changes");
        assert_eq!(
            (transition.phase, transition.reason.as_str()),
            (1, "after 2 requests")
        );
        assert_eq!(script.on_request(secs(3)).0, stall);
    }

    #[test]
    fn time_is_counted_from_the_phase_start_and_jumps_pass_several_phases() {
        let mut script = ScriptState::new(
            vec![
                phase(accept(), Some(Until::Requests(1))),
                phase(
                    Behaviour::Refuse,
                    Some(Until::After(DurationSpec(secs(10)))),
                ),
                phase(
                    Behaviour::Stall { trying: true },
                    Some(Until::After(DurationSpec(secs(5)))),
                ),
                phase(accept(), None),
            ],
            secs(0),
        );
        script.on_request(secs(100));
        assert_eq!(script.deadline(), Some(secs(110)));
        let changes = script.on_time(secs(200));
        assert_eq!(
            changes.iter().map(|t| t.phase).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(script.index(), 3);
    }

    #[test]
    fn a_step_ends_only_the_phase_waiting_for_it() {
        let mut script = ScriptState::new(
            vec![
                phase(accept(), Some(Until::Step("crash".into()))),
                phase(Behaviour::Refuse, None),
            ],
            secs(0),
        );
        assert_eq!(script.on_step("other", secs(1)), None);
        let transition = script.on_step("crash", secs(2)).unwrap();
        assert_eq!(transition.reason, "at step crash");
        assert_eq!(script.on_step("crash", secs(3)), None);
    }
}
