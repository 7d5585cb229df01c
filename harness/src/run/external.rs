//! A real device carries out a case's steps: srvlab triggers each action (see
//! [`super::trigger`]), then reads from the wire whether and how the device acted.
//!
//! A step is over when the device got a final answer that ends it (a 2xx, or a final response
//! that is no failover trigger), or when it has been quiet for longer than any correct device
//! waits between two sends (Timer B plus a margin), or at the step's limit. A device that never
//! sends the request is recorded as such: the case's verdicts are then inconclusive with the
//! reason, never a pass.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::case::{RunOptions, cache_lifetime, switch_zone};
use super::trigger;
use crate::model::case::{Behaviour, Case};
use crate::model::lab::{Action, Lab, LabDevice, Vars};
use crate::model::steps::{Between, Step};
use crate::sip::uri::SipUri;
use crate::timeline::{Event, EventKind};
use crate::world::World;

/// What the device did over a whole case.
#[derive(Debug, Default)]
pub struct Acted {
    /// What the device got, request by request, as the reference UA's outcomes read.
    pub outcomes: Vec<String>,
    /// Why the device could not be judged on some step (it never acted, a trigger failed).
    pub missed: Vec<String>,
}

/// Prints a line for the person at the console (a closed stdout is no error).
pub fn say(text: &str) {
    crate::say!("{text}");
}

/// Whether `event` is traffic of the device at `address` (or no traffic at all): on a lab
/// network other hosts may query the DNS server or probe the SIP ports, and only the device
/// is judged.
pub fn concerns_device(event: &Event, device: &LabDevice) -> bool {
    let address = match traffic_source(event) {
        Some(ip) => ip,
        None => return true,
    };
    device.sends_from(address)
}

/// The address of the other end of a packet event (the device's side); `None` for what is
/// no traffic at all (notes, steps, phases).
pub fn traffic_source(event: &Event) -> Option<IpAddr> {
    Some(match &event.kind {
        EventKind::DnsQuery(q) => q.client.ip(),
        EventKind::DnsAnswer(a) => a.client.ip(),
        EventKind::DnsDropped(d) => d.client.ip(),
        EventKind::DnsMalformed(m) => m.client.ip(),
        EventKind::SipReceived(m) | EventKind::SipSent(m) => m.remote.ip(),
        EventKind::SipMalformed(m) => m.remote.ip(),
        EventKind::Refused(r) => r.remote.ip(),
        EventKind::KeepAlive(k) => k.remote.ip(),
        EventKind::TcpConnected(c) => c.remote.ip(),
        EventKind::TcpClosed(c) => c.remote.ip(),
        EventKind::TcpUnframed(u) => u.remote.ip(),
        EventKind::TlsBytes(b) => b.remote.ip(),
        EventKind::TlsFailed(t) => t.remote.ip(),
        EventKind::TlsSecret(_)
        | EventKind::PhaseChanged(_)
        | EventKind::Step { .. }
        | EventKind::Note { .. }
        | EventKind::Trigger { .. }
        | EventKind::Stopped { .. }
        | EventKind::HostDelay { .. }
        | EventKind::HostStall { .. } => return None,
    })
}

/// Carries out the case's steps with the lab's device.
pub async fn act(case: &Case, options: &RunOptions, world: &World, lab: &Lab) -> Acted {
    let (sender, events) = mpsc::unbounded_channel();
    world.timeline().observe(move |event| {
        let _ = sender.send(event.clone());
    });
    // Checked when the case loaded; the parse cannot fail here, but a run must not panic.
    let uri = match SipUri::parse(&case.uri) {
        Ok(uri) => uri,
        Err(err) => {
            return Acted {
                missed: vec![format!("device uri: {err}")],
                ..Acted::default()
            };
        }
    };
    let (user, domain) = user_and_domain(&uri);
    let mut driver = Driver {
        case,
        options,
        world,
        lab,
        events,
        vars: Vars {
            uri: case.uri.clone(),
            user,
            domain,
            aor: case.aor.clone(),
            device: lab.device.address.to_string(),
            step: String::new(),
            trial: "0".into(),
            request: "0".into(),
            srvlab: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "srvlab".into()),
        },
        requests: 0,
        acted: Acted::default(),
    };
    for (index, step) in case.steps.iter().enumerate() {
        driver.vars.step = (index + 1).to_string();
        driver.step(step, 0).await;
    }
    driver.acted
}

/// `sip:100@snom.rocks;transport=tcp` → ("100", "snom.rocks"); a port stays with the domain.
fn user_and_domain(uri: &SipUri) -> (String, String) {
    let user = uri.user_name().unwrap_or_default().to_string();
    let domain = match uri.port {
        Some(port) => format!("{}:{port}", uri.host),
        None => uri.host.to_string(),
    };
    (user, domain)
}

struct Driver<'a> {
    case: &'a Case,
    options: &'a RunOptions,
    world: &'a World,
    lab: &'a Lab,
    events: mpsc::UnboundedReceiver<Event>,
    vars: Vars,
    /// Actions asked of the device so far (`{request}`).
    requests: u32,
    acted: Acted,
}

impl Driver<'_> {
    fn note(&self, text: String) {
        self.world.timeline().record(EventKind::Note { text });
    }

    /// Events recorded so far are of the past: what follows a trigger is read fresh.
    fn forget_pending(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// The next event of the device before `deadline`.
    async fn next_device_event(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event))
                    if is_activity(&event) && concerns_device(&event, &self.lab.device) =>
                {
                    return Some(event);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    fn step<'b>(
        &'b mut self,
        step: &'b Step,
        depth: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>> {
        Box::pin(async move {
            match step {
                Step::Register => self.request(Action::Register).await,
                Step::Call => self.request(Action::Call).await,
                Step::Options => self.request(Action::Options).await,
                Step::Registers(n) => {
                    for _ in 0..*n {
                        self.request(Action::Register).await;
                    }
                }
                Step::Calls(n) => {
                    for _ in 0..*n {
                        self.request(Action::Call).await;
                    }
                }
                Step::Wait(wait) => match wait.resolve(&self.options.profile) {
                    Some(duration) => wait_showing(duration, &format!("wait {wait}")).await,
                    None => self.note(super::case::no_wait(wait)),
                },
                Step::Step(name) => self.world.step(name),
                Step::Zone(path) => {
                    if let Err(why) = switch_zone(self.case, self.world, path) {
                        self.acted.missed.push(why);
                    }
                }
                Step::Trials(trials) => {
                    if depth > 2 {
                        self.acted
                            .missed
                            .push("trials nested more than twice".into());
                        return;
                    }
                    for trial in 0..trials.count {
                        self.vars.trial = trial.to_string();
                        if trial > 0 {
                            self.between_trials(trials.between, trial, trials.count)
                                .await;
                        }
                        for inner in &trials.steps {
                            self.step(inner, depth + 1).await;
                        }
                        // A device that does not act at all would make every trial wait its
                        // full time: one miss is enough to know.
                        if !self.acted.missed.is_empty() {
                            return;
                        }
                    }
                }
            }
        })
    }

    /// A real device cannot be replaced by a fresh one: between trials that need a cold
    /// start it is reset (when the lab can), or srvlab waits until everything it could have
    /// cached has expired and every dirty mark has run out.
    async fn between_trials(&mut self, between: Between, trial: u32, count: u32) {
        let zones_expire = cache_lifetime(&self.world.dns().zones());
        if between == Between::FreshDevice && self.lab.trigger.template(Action::Reset).is_some() {
            let fired = self.fire(Action::Reset).await;
            self.note(format!(
                "trial {}/{count}: reset the device: {fired}",
                trial + 1
            ));
            return;
        }
        // Dirty marks need waiting out only where some server can fail the device.
        let can_fail = self.case.servers.iter().any(|server| {
            server
                .script
                .iter()
                .any(|phase| !matches!(phase.behaviour, Behaviour::Accept { .. }))
        });
        let dirty_marks_expire = match self.options.profile.dirty_host_ttl {
            Some(ttl) if can_fail => ttl + Duration::from_millis(500),
            _ => Duration::ZERO,
        };
        let wait = match between {
            Between::FreshDevice => zones_expire.max(dirty_marks_expire),
            Between::TtlExpiry => zones_expire,
        };
        wait_showing(
            wait,
            &format!(
                "trial {}/{count}: letting the device's DNS cache and dirty hosts expire",
                trial + 1
            ),
        )
        .await;
    }

    async fn fire(&mut self, action: Action) -> String {
        match self.ask(action).await {
            Ok(done) | Err(done) => done,
        }
    }

    /// Fires the trigger's `action`. When it can reach the device (the lab has the action and
    /// is not passive), the timeline says so first: what the device sends next for it is
    /// srvlab's doing, not a decision of its own (CONFORMANCE: checks judge only the latter).
    async fn ask(&mut self, action: Action) -> trigger::Fired {
        let limit = self.lab.device.act_within;
        let asks = self.lab.trigger.kind != crate::model::lab::TriggerKind::Passive
            && self.lab.trigger.template(action).is_some();
        if asks {
            self.world.timeline().record(EventKind::Trigger {
                action: action.name().to_owned(),
                method: action.method().map(str::to_owned),
                within_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            });
        }
        trigger::fire(&self.lab.trigger, action, &self.vars, limit, &say).await
    }

    /// One request the device must send, followed until it is over.
    async fn request(&mut self, action: Action) {
        let method = action.method().unwrap_or("OPTIONS");
        let within = self.lab.device.act_within;
        self.requests += 1;
        self.vars.request = self.requests.to_string();
        // What came before a trigger is of the past; a device that acts by itself may have
        // sent this step's request already, while the last step settled.
        if self.lab.trigger.kind != crate::model::lab::TriggerKind::Passive {
            self.forget_pending();
        }
        let asked = Instant::now();
        let fired = self.ask(action).await;
        let step = self.vars.step.clone();
        // Whether the device acted is read from the wire, not from the trigger: a program that
        // drove the device and then exited non-zero (a rejected call) still made it act. After
        // a failed trigger, a short grace only.
        let deadline = match &fired {
            Ok(done) => {
                self.note(format!("step {step}: {}: {done}", action.name()));
                asked + within
            }
            Err(why) => {
                self.note(format!(
                    "step {step}: {} trigger failed: {why}",
                    action.name()
                ));
                say(&format!("    the trigger failed: {why}"));
                Instant::now() + within.min(Duration::from_secs(2))
            }
        };
        let manual = self.lab.trigger.kind == crate::model::lab::TriggerKind::Manual;
        let waited = self.wait_for_request(method, deadline, manual).await;
        if waited == Waited::ResolvedOnly {
            let what = format!(
                "step {step} ({}): the device resolved but sent no {method}",
                action.name()
            );
            say(&format!("    {what}"));
            self.note(what);
            self.acted.outcomes.push(format!("{method} → none sent"));
            return;
        }
        if waited == Waited::Nothing {
            let why = match &fired {
                Ok(_) => format!(
                    "step {step} ({}): the device ({}) sent no {method} within {within:?}",
                    action.name(),
                    self.lab.device.describe()
                ),
                Err(failed) => format!(
                    "step {step} ({}): the trigger failed ({failed}) and the device ({}) sent no {method}",
                    action.name(),
                    self.lab.device.describe()
                ),
            };
            say(&format!("    {why}"));
            self.note(why.clone());
            self.acted.missed.push(why);
            return;
        }
        say(&format!(
            "    {method} seen from the device after {:.1}s; carrying on",
            asked.elapsed().as_secs_f64()
        ));
        let outcome = self.follow(method).await;
        self.acted.outcomes.push(format!("{method} → {outcome}"));
    }

    /// Waits for the device's first `method` (sent, or refused by a closed port); a manual
    /// trigger shows the person a countdown meanwhile. A device that only resolves (a correct
    /// one, when DNS says there is no service) has acted too: it gets Timer B after its last
    /// query to send the request.
    async fn wait_for_request(
        &mut self,
        method: &str,
        mut deadline: Instant,
        countdown: bool,
    ) -> Waited {
        let tty = std::io::stdout().is_terminal();
        // On a terminal the countdown rewrites one line each second; in a log a line every
        // five seconds is enough.
        let tick = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let quiet = self.options.profile.timer_b() + Duration::from_secs(2);
        let bound = deadline + quiet * (self.case.servers.len() as u32 + 2);
        let address = self.lab.device.describe();
        let mut resolved = false;
        let mut next_tick = Instant::now();
        let end_line = || {
            if countdown && tty {
                crate::say!();
            }
        };
        loop {
            if countdown && Instant::now() >= next_tick {
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                let line = format!("    waiting for {method} from {address}: {left} s left");
                if tty {
                    crate::console::partial(format_args!("\r{line}   "));
                } else {
                    say(&line);
                }
                next_tick += tick;
            }
            let until = if countdown {
                next_tick.min(deadline)
            } else {
                deadline
            };
            match self.next_device_event(until).await {
                Some(event) if request_method(&event) == Some(method) => {
                    end_line();
                    return Waited::Request;
                }
                Some(event) => {
                    if matches!(event.kind, EventKind::DnsQuery(_)) {
                        // It acted: it has Timer B after its last query to send the request,
                        // within a bound a device that resolves forever does not pass.
                        resolved = true;
                        deadline = deadline.max(Instant::now() + quiet).min(bound);
                    }
                }
                None if Instant::now() >= deadline => {
                    end_line();
                    return if resolved {
                        Waited::ResolvedOnly
                    } else {
                        Waited::Nothing
                    };
                }
                None => {}
            }
        }
    }

    /// Follows the device's `method` from its first send until it is over; returns what the
    /// device got, in the words of the reference UA's outcomes.
    async fn follow(&mut self, method: &str) -> String {
        let profile = &self.options.profile;
        // The longest a correct device stays silent between two sends of one request: Timer
        // B (an attempt over TCP, or one answered by 100 Trying), plus time to resolve.
        let quiet = profile.timer_b() + Duration::from_secs(2);
        let span = quiet * (self.case.servers.len() as u32 + 2);
        let limit = Instant::now() + span;
        let failover_codes: Vec<u16> = std::iter::once(503)
            .chain(profile.failover_codes.iter().copied())
            .collect();
        // The last final response that did not end the request (a 503 the device may fail over
        // from), and how many copies of the request went out after it: what the step came to
        // when the device then went quiet (issue 14: a 503 with no retry read "no final answer").
        let mut last_final: Option<String> = None;
        let mut sent_after = 0usize;
        loop {
            let deadline = (Instant::now() + quiet).min(limit);
            let Some(event) = self.next_device_event(deadline).await else {
                if Instant::now() >= limit {
                    return format!("still going at the step's limit ({span:?})");
                }
                return match &last_final {
                    Some(answer) if sent_after == 0 => {
                        format!("{answer}, then no other attempt; quiet for {quiet:?}")
                    }
                    Some(answer) => format!(
                        "{answer}, then {sent_after} more {method} send(s) without a final answer; quiet for {quiet:?}"
                    ),
                    None => format!("no final answer; quiet for {quiet:?}"),
                };
            };
            if last_final.is_some() && request_method(&event) == Some(method) {
                sent_after += 1;
            }
            let EventKind::SipSent(response) = &event.kind else {
                continue;
            };
            let (Some(status), Some(cseq)) = (response.summary.status, &response.summary.cseq)
            else {
                continue;
            };
            let ends = status >= 200
                && cseq.ends_with(method)
                && !failover_codes.contains(&status)
                // A challenge is answered, not the end.
                && status != 401
                && status != 407;
            let outcome = format!(
                "{status} from {} over {}",
                response.local, response.transport
            );
            if !ends {
                if status >= 200 && cseq.ends_with(method) {
                    last_final = Some(outcome);
                    sent_after = 0;
                }
                continue;
            }
            if method == "INVITE" && (200..300).contains(&status) {
                self.hang_up().await;
            }
            // ACKs and retransmitted responses still belong to this step.
            tokio::time::sleep((profile.t1 * 4).max(Duration::from_millis(200))).await;
            return outcome;
        }
    }

    /// An answered call is ended before the next step, and the BYE awaited.
    async fn hang_up(&mut self) {
        let step = self.vars.step.clone();
        if self.lab.trigger.template(Action::Hangup).is_none() {
            self.note(format!(
                "step {step}: the lab has no hangup action; waiting for the device to end the call"
            ));
        } else {
            let fired = self.fire(Action::Hangup).await;
            self.note(format!("step {step}: hangup: {fired}"));
        }
        let deadline = Instant::now() + self.lab.device.act_within;
        while let Some(event) = self.next_device_event(deadline).await {
            if request_method(&event) == Some("BYE") {
                return;
            }
        }
        self.note(format!("step {step}: the device sent no BYE"));
    }
}

/// What waiting for the device's request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waited {
    Request,
    /// It queried DNS but sent no request (what L10 asks of it when there is no service).
    ResolvedOnly,
    /// Not a packet from it.
    Nothing,
}

/// Whether `event` is something the device did, which keeps a step open: not srvlab's own
/// records, and not keep-alives (RFC 5626), which a device sends every few seconds whatever
/// it is doing. TLS records are not counted either: what they carry is recorded decrypted
/// (a message, a keep-alive), and a handshake shows as its connection.
fn is_activity(event: &Event) -> bool {
    !matches!(
        event.kind,
        EventKind::KeepAlive(_)
            | EventKind::TlsBytes(_)
            | EventKind::PhaseChanged(_)
            | EventKind::Step { .. }
            | EventKind::Note { .. }
            | EventKind::Trigger { .. }
            | EventKind::Stopped { .. }
            | EventKind::HostDelay { .. }
            | EventKind::HostStall { .. }
    )
}

/// The method of a request from the device: sent to a server, or refused at its closed port.
fn request_method(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::SipReceived(m) => m.summary.method.as_deref(),
        EventKind::Refused(r) => r.summary.method.as_deref(),
        _ => None,
    }
}

/// Sleeps `duration`, telling the person what for and how long is left (long waits are the
/// normal state of a run against a real phone).
pub async fn wait_showing(duration: Duration, what: &str) {
    if duration < Duration::from_secs(5) {
        tokio::time::sleep(duration).await;
        return;
    }
    let end = Instant::now() + duration;
    say(&format!("    {what}: {:.0} s", duration.as_secs_f64()));
    let step = Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(step)).await;
        let left = end.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            say(&format!("    {what}: {:.0} s left", left.as_secs_f64()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: a device's keep-alives (and the TLS records that carry them) are no activity
    /// that keeps a step open; its messages and connections are.
    #[test]
    fn keep_alives_are_no_activity() {
        use crate::timeline::{Flow, KeepAlive, KeepAliveKind, TcpConnection, TlsBytes};
        let (local, remote) = (
            "127.0.0.52:5061".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        );
        let event = |kind| Event {
            seq: 0,
            t_ns: 0,
            kind,
        };
        let ping = event(EventKind::KeepAlive(KeepAlive {
            server: "s.".into(),
            transport: crate::timeline::Transport::Tls,
            local,
            remote,
            flow: Flow::ToServer,
            kind: KeepAliveKind::DoubleCrlf,
            refused: false,
            seen_ns: None,
            raw: b"\r\n\r\n".to_vec(),
        }));
        let record = event(EventKind::TlsBytes(TlsBytes {
            server: "s.".into(),
            local,
            remote,
            flow: Flow::ToServer,
            seen_ns: None,
            raw: vec![23, 3, 3, 0, 22],
        }));
        let connected = event(EventKind::TcpConnected(TcpConnection {
            server: "s.".into(),
            local,
            remote,
        }));
        let device = LabDevice {
            address: remote.ip(),
            other_addresses: Vec::new(),
            sip_port: None,
            profile_path: "p.yaml".into(),
            act_within: Duration::from_secs(1),
        };
        assert!(concerns_device(&ping, &device));
        assert!(!is_activity(&ping));
        assert!(!is_activity(&record));
        assert!(is_activity(&connected));
    }

    #[test]
    fn a_uri_gives_its_user_and_domain() {
        assert_eq!(
            user_and_domain(&SipUri::parse("sip:100@snom.rocks;transport=tcp").unwrap()),
            ("100".into(), "snom.rocks".into())
        );
        assert_eq!(
            user_and_domain(&SipUri::parse("sips:alice:secret@example.test:5061").unwrap()),
            ("alice".into(), "example.test:5061".into())
        );
    }
}
