//! RFC 3261 §17.1 client transactions, free of I/O: the caller says when the request went out,
//! what came back and when a timer is due, and gets told what to do. Time is an explicit
//! `now` measured from any fixed origin (the caller's run start, say).
//!
//! Choices where the RFC leaves room, or where srvlab's needs differ from a phone's:
//!
//! - Timer B stops once an INVITE got a provisional (17.1.1.2 only runs it in Calling); how
//!   long to wait for a final answer after that is the transaction user's decision.
//! - A non-INVITE in Proceeding keeps its pending Timer E; when it fires the request is
//!   resent and Timer E restarts at T2 (17.1.2.2), so from then on every T2. Timer F still
//!   runs there.
//! - Timer D is 32 s over UDP whatever T1 is (17.1.1.2 asks for at least 32 s), 0 over TCP.
//! - A provisional is reported the first time and whenever its status differs from the last
//!   one reported; a retransmitted 180 is not news.
//! - When Timer B/F and a retransmission are due at the same instant, the transaction times
//!   out without sending: a copy sent as the target is abandoned would be judged as one more
//!   retransmission to the old target.
//! - A late `on_timer` (the caller slept through more than one interval) sends one copy, not
//!   a burst, and the next interval counts from `now`.
//! - Status codes outside 100–699 are not SIP responses and are ignored.
//! - A vendor's earlier failover (`failover_after`, T4) ends a transaction that got no response
//!   at all at that time, reported as `TimedOut` like Timer B/F: the TU cannot tell them apart
//!   and need not. A provisional response means the server is there: an INVITE stops its
//!   timers as usual, a non-INVITE goes back to Timer F. The `ignore-failover-after` fault
//!   leaves only Timer B/F.
//! - A transport error ends the transaction at once (F2). The `wait-timer-b-on-refusal`
//!   fault is not handled here: the caller shows it by not reporting the error, so the
//!   transaction runs on to Timer B/F as if the target were silent.

use std::time::Duration;

use super::config::UaConfig;
use super::fault::Fault;

/// Timer D over an unreliable transport (RFC 3261 17.1.1.2: at least 32 s).
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// The shortest retransmission interval: a zero T1 or T2 would otherwise make a timer due
/// again at the very instant it fired, and the caller would spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invite,
    NonInvite,
}

/// The states of RFC 3261 figures 5 and 6: `Calling` is the INVITE's first state, `Trying`
/// the non-INVITE's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// What the transaction tells its user to do or to know, in the order it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// Send the request again, to the same target (T5).
    Retransmit,
    /// A 1xx arrived (first time, or with a status different from the last one).
    Provisional(u16),
    /// The first final response.
    Final(u16),
    /// INVITE with a 300–699 final: send the ACK (again, for a retransmitted final).
    SendAck,
    /// Timer B (INVITE) or Timer F (non-INVITE) fired without a final response.
    TimedOut,
    /// The transport reported the target refused or unreachable.
    TransportError,
    /// The transaction is over.
    Terminated,
}

#[derive(Clone, Debug)]
pub struct ClientTransaction {
    kind: Kind,
    reliable: bool,
    state: State,
    t2: Duration,
    /// Timer D or K: how long Completed lasts.
    linger: Duration,
    /// Whether retransmission intervals back off (off under `no-retransmit-doubling`).
    doubling: bool,
    /// The interval Timer A/E was last started with.
    interval: Duration,
    /// When Timer A/E fires next.
    retransmit_at: Option<Duration>,
    /// When the transaction gives up waiting: Timer B/F, or the earlier failover time.
    timeout_at: Option<Duration>,
    /// When Timer B/F fires (after a provisional, a non-INVITE waits for it, not for the early
    /// failover).
    timer_f_at: Option<Duration>,
    /// Whether Timer E keeps doubling past T2 (the `no-t2-cap` fault).
    t2_cap: bool,
    /// When Timer D/K ends Completed.
    terminate_at: Option<Duration>,
    last_provisional: Option<u16>,
}

impl ClientTransaction {
    /// The request was sent at `now` over a reliable (TCP) or unreliable (UDP) transport.
    pub fn new(kind: Kind, reliable: bool, config: &UaConfig, now: Duration) -> Self {
        let interval = config.t1.max(MIN_INTERVAL);
        let linger = match (reliable, kind) {
            (true, _) => Duration::ZERO,
            (false, Kind::Invite) => TIMER_D_UNRELIABLE,
            (false, Kind::NonInvite) => config.t4,
        };
        let timer_f_at = now.saturating_add(timer_b(config));
        let early = config
            .failover_after
            .filter(|_| !config.faults.has(Fault::IgnoreFailoverAfter))
            .map(|after| now.saturating_add(after.max(MIN_INTERVAL)));
        Self {
            kind,
            reliable,
            state: match kind {
                Kind::Invite => State::Calling,
                Kind::NonInvite => State::Trying,
            },
            t2: config.t2.max(MIN_INTERVAL),
            linger,
            doubling: !config.faults.has(Fault::NoRetransmitDoubling),
            interval,
            // RFC 3261 17.1.1.2: Timer A runs only over an unreliable transport.
            retransmit_at: (!reliable || config.faults.has(Fault::RetransmitOverTcp))
                .then(|| now.saturating_add(interval)),
            timeout_at: Some(early.map_or(timer_f_at, |early| early.min(timer_f_at))),
            timer_f_at: Some(timer_f_at),
            t2_cap: !config.faults.has(Fault::NoT2Cap),
            terminate_at: None,
            last_provisional: None,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the transport is reliable (no retransmissions, no lingering).
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// When `on_timer` should be called next (None: no timer running).
    pub fn deadline(&self) -> Option<Duration> {
        [self.retransmit_at, self.timeout_at, self.terminate_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires whatever timers are due at `now`.
    pub fn on_timer(&mut self, now: Duration) -> Vec<TxEvent> {
        if self.terminate_at.is_some_and(|at| at <= now) {
            self.terminate();
            return vec![TxEvent::Terminated];
        }
        if self.timeout_at.is_some_and(|at| at <= now) {
            self.terminate();
            return vec![TxEvent::TimedOut, TxEvent::Terminated];
        }
        match self.retransmit_at {
            Some(at) if at <= now => {
                self.interval = self.next_interval();
                let next = at.saturating_add(self.interval);
                let next = if next <= now {
                    now.saturating_add(self.interval)
                } else {
                    next
                };
                self.retransmit_at = Some(next);
                vec![TxEvent::Retransmit]
            }
            _ => Vec::new(),
        }
    }

    /// A response with `status` arrived at `now`.
    pub fn on_response(&mut self, status: u16, now: Duration) -> Vec<TxEvent> {
        if !(100..=699).contains(&status) {
            return Vec::new();
        }
        match self.state {
            State::Terminated => Vec::new(),
            State::Completed => {
                // 17.1.1.2: a retransmitted final is answered with the same ACK; the
                // non-INVITE transaction just absorbs it (17.1.2.2).
                if self.kind == Kind::Invite && status >= 300 {
                    vec![TxEvent::SendAck]
                } else {
                    Vec::new()
                }
            }
            State::Calling | State::Trying | State::Proceeding if status < 200 => {
                self.on_provisional(status)
            }
            State::Calling | State::Trying | State::Proceeding => self.on_final(status, now),
        }
    }

    /// The transport reported the target refused or unreachable at `now` (ICMP port
    /// unreachable, TCP RST or connection refused).
    pub fn on_transport_error(&mut self, _now: Duration) -> Vec<TxEvent> {
        match self.state {
            State::Calling | State::Trying | State::Proceeding => {
                self.terminate();
                vec![TxEvent::TransportError, TxEvent::Terminated]
            }
            // Completed only sends ACKs, and they are best effort; Terminated is deaf.
            State::Completed | State::Terminated => Vec::new(),
        }
    }

    fn on_provisional(&mut self, status: u16) -> Vec<TxEvent> {
        self.state = State::Proceeding;
        if self.kind == Kind::Invite {
            // 17.1.1.2: Proceeding has neither Timer A nor Timer B.
            self.retransmit_at = None;
            self.timeout_at = None;
        } else {
            // The server is there: an early failover no longer applies, Timer F does.
            self.timeout_at = self.timer_f_at;
        }
        if self.last_provisional == Some(status) {
            return Vec::new();
        }
        self.last_provisional = Some(status);
        vec![TxEvent::Provisional(status)]
    }

    fn on_final(&mut self, status: u16, now: Duration) -> Vec<TxEvent> {
        let mut events = vec![TxEvent::Final(status)];
        if self.kind == Kind::Invite && status < 300 {
            // The ACK of a 2xx belongs to the dialog: the transaction user sends it.
            self.terminate();
            events.push(TxEvent::Terminated);
            return events;
        }
        if self.kind == Kind::Invite {
            events.push(TxEvent::SendAck);
        }
        self.retransmit_at = None;
        self.timeout_at = None;
        self.timer_f_at = None;
        if self.linger.is_zero() {
            self.terminate();
            events.push(TxEvent::Terminated);
        } else {
            self.state = State::Completed;
            self.terminate_at = Some(now.saturating_add(self.linger));
        }
        events
    }

    /// The interval after the one that just ran out: Timer A doubles without a cap, Timer E
    /// doubles up to T2 and stays at T2 in Proceeding; `no-retransmit-doubling` keeps every
    /// interval at T1, `no-t2-cap` doubles Timer E like Timer A.
    fn next_interval(&self) -> Duration {
        if !self.doubling {
            return self.interval;
        }
        let doubled = self.interval.saturating_mul(2);
        match (self.kind, self.state) {
            (Kind::Invite, _) => doubled,
            (Kind::NonInvite, _) if !self.t2_cap => doubled,
            (Kind::NonInvite, State::Proceeding) => self.t2,
            (Kind::NonInvite, _) => doubled.min(self.t2),
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit_at = None;
        self.timeout_at = None;
        self.timer_f_at = None;
        self.terminate_at = None;
    }
}

/// Timer B/F from the configuration, without the overflow `64·T1` would hit for an absurd T1
/// (such a timer never fires).
fn timer_b(config: &UaConfig) -> Duration {
    if config.faults.has(Fault::TimerBFixed32s) || config.t1.checked_mul(64).is_some() {
        config.timer_b()
    } else {
        Duration::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ua::fault::Faults;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(t1_ms: u64) -> UaConfig {
        UaConfig {
            t1: ms(t1_ms),
            ..UaConfig::default()
        }
    }

    fn with_fault(mut config: UaConfig, fault: Fault) -> UaConfig {
        config.faults = Faults::one(fault);
        config
    }

    /// Every timer event from `now` on, with its time, calling `on_timer` exactly at each
    /// deadline until the transaction ends (or a bound, so a broken transaction fails the test
    /// instead of hanging it).
    fn drive(tx: &mut ClientTransaction) -> Vec<(Duration, TxEvent)> {
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            let Some(at) = tx.deadline() else { break };
            for event in tx.on_timer(at) {
                seen.push((at, event));
            }
            if tx.is_terminated() {
                break;
            }
        }
        seen
    }

    /// The times of `Retransmit`s and the time of `TimedOut`, in milliseconds.
    fn schedule(kind: Kind, reliable: bool, config: &UaConfig) -> (Vec<u128>, Option<u128>) {
        let mut tx = ClientTransaction::new(kind, reliable, config, Duration::ZERO);
        let events = drive(&mut tx);
        let sends = events
            .iter()
            .filter(|(_, e)| *e == TxEvent::Retransmit)
            .map(|(at, _)| at.as_millis())
            .collect();
        let timed_out = events
            .iter()
            .find(|(_, e)| *e == TxEvent::TimedOut)
            .map(|(at, _)| at.as_millis());
        assert_eq!(events.last().map(|(_, e)| *e), Some(TxEvent::Terminated));
        assert!(tx.is_terminated());
        (sends, timed_out)
    }

    #[rstest::rstest]
    #[case::t1_20ms(20, &[20, 60, 140, 300, 620, 1260], 1280)]
    #[case::t1_100ms(100, &[100, 300, 700, 1500, 3100, 6300], 6400)]
    #[case::t1_500ms(500, &[500, 1500, 3500, 7500, 15500, 31500], 32000)]
    fn timer_a_doubles_without_cap_until_timer_b(
        #[case] t1: u64,
        #[case] sends: &[u128],
        #[case] timed_out: u128,
    ) {
        assert_eq!(
            schedule(Kind::Invite, false, &config(t1)),
            (sends.to_vec(), Some(timed_out))
        );
    }

    #[rstest::rstest]
    #[case::t1_20ms(20, &[20, 60, 140, 300, 620, 1260], 1280)]
    #[case::t1_100ms(100, &[100, 300, 700, 1500, 3100, 6300], 6400)]
    #[case::t1_500ms(
        500,
        &[500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
        32000
    )]
    #[case::t1_1s(
        1000,
        &[1000, 3000, 7000, 11000, 15000, 19000, 23000, 27000, 31000, 35000, 39000, 43000,
          47000, 51000, 55000, 59000, 63000],
        64000
    )]
    fn timer_e_doubles_up_to_t2_until_timer_f(
        #[case] t1: u64,
        #[case] sends: &[u128],
        #[case] timed_out: u128,
    ) {
        assert_eq!(
            schedule(Kind::NonInvite, false, &config(t1)),
            (sends.to_vec(), Some(timed_out))
        );
    }

    fn with_t2(t1_ms: u64, t2_ms: u64) -> UaConfig {
        UaConfig {
            t2: ms(t2_ms),
            ..config(t1_ms)
        }
    }

    #[test]
    fn timer_e_stays_at_t2_once_it_reached_it() {
        // T1 = 20 ms, T2 = 80 ms: intervals 20, 40, 80, 80, … until Timer F at 1.28 s.
        let mut sends = vec![20, 60, 140];
        sends.extend((1..=14).map(|k| 140 + 80 * k));
        assert_eq!(
            schedule(Kind::NonInvite, false, &with_t2(20, 80)),
            (sends, Some(1280))
        );
        // Timer A knows no T2.
        assert_eq!(
            schedule(Kind::Invite, false, &with_t2(20, 80)),
            (vec![20, 60, 140, 300, 620, 1260], Some(1280))
        );
    }

    #[test]
    fn no_t2_cap_doubles_non_invite_intervals_past_t2() {
        let faulty = with_fault(with_t2(20, 80), Fault::NoT2Cap);
        assert_eq!(
            schedule(Kind::NonInvite, false, &faulty),
            (vec![20, 60, 140, 300, 620, 1260], Some(1280))
        );
        // After a provisional it keeps doubling too, instead of resending every T2.
        let mut tx = ClientTransaction::new(Kind::NonInvite, false, &faulty, Duration::ZERO);
        tx.on_response(100, ms(5));
        let resent: Vec<u128> = drive(&mut tx)
            .iter()
            .filter(|(_, e)| *e == TxEvent::Retransmit)
            .map(|(at, _)| at.as_millis())
            .collect();
        assert_eq!(resent, vec![20, 60, 140, 300, 620, 1260]);
    }

    fn early(t1_ms: u64, after_ms: u64) -> UaConfig {
        UaConfig {
            failover_after: Some(ms(after_ms)),
            ..config(t1_ms)
        }
    }

    #[rstest::rstest]
    #[case::invite(Kind::Invite)]
    #[case::non_invite(Kind::NonInvite)]
    fn t4_an_unanswered_attempt_is_abandoned_at_the_configured_time(#[case] kind: Kind) {
        // 300 ms = 15·T1: copies at 0, 20, 60, 140; the one due at 300 ms is not sent, the
        // transaction times out instead.
        assert_eq!(
            schedule(kind, false, &early(20, 300)),
            (vec![20, 60, 140], Some(300))
        );
        assert_eq!(schedule(kind, true, &early(20, 300)), (vec![], Some(300)));
        // The fault waits for Timer B/F.
        let ignored = with_fault(early(20, 300), Fault::IgnoreFailoverAfter);
        let (_, timed_out) = schedule(kind, false, &ignored);
        assert_eq!(timed_out, Some(1280));
    }

    #[test]
    fn t4_a_provisional_brings_back_timer_f_for_a_non_invite() {
        let mut tx = ClientTransaction::new(Kind::NonInvite, false, &early(20, 300), ms(1000));
        assert_eq!(
            tx.on_response(100, ms(1010)),
            vec![TxEvent::Provisional(100)]
        );
        let events = drive(&mut tx);
        assert_eq!(
            events
                .iter()
                .find(|(_, e)| *e == TxEvent::TimedOut)
                .map(|(at, _)| *at),
            Some(ms(2280))
        );
        // An INVITE in Proceeding waits for its final answer (the TU's limit), as ever.
        let mut tx = ClientTransaction::new(Kind::Invite, false, &early(20, 300), ms(1000));
        tx.on_response(180, ms(1010));
        assert_eq!(tx.deadline(), None);
    }

    #[rstest::rstest]
    #[case::invite(Kind::Invite)]
    #[case::non_invite(Kind::NonInvite)]
    fn no_retransmit_doubling_resends_every_t1(#[case] kind: Kind) {
        let config = with_fault(config(500), Fault::NoRetransmitDoubling);
        // 63 copies at 0.5 s … 31.5 s; at 32 s Timer B/F wins over the 64th.
        let every_t1: Vec<u128> = (1..=63).map(|k| k * 500).collect();
        assert_eq!(schedule(kind, false, &config), (every_t1, Some(32_000)));
    }

    #[test]
    fn timer_b_fixed_32s_ignores_t1() {
        let config = with_fault(config(20), Fault::TimerBFixed32s);
        assert_eq!(
            schedule(Kind::Invite, false, &config),
            (
                vec![20, 60, 140, 300, 620, 1260, 2540, 5100, 10220, 20460],
                Some(32_000)
            )
        );
        let (_, timed_out) = schedule(Kind::NonInvite, false, &config);
        assert_eq!(timed_out, Some(32_000));
    }

    #[rstest::rstest]
    #[case::invite_500ms(Kind::Invite, 500)]
    #[case::non_invite_500ms(Kind::NonInvite, 500)]
    #[case::invite_20ms(Kind::Invite, 20)]
    #[case::non_invite_100ms(Kind::NonInvite, 100)]
    fn tcp_never_retransmits_and_times_out_at_64_t1(#[case] kind: Kind, #[case] t1: u64) {
        let (sends, timed_out) = schedule(kind, true, &config(t1));
        assert_eq!(sends, Vec::<u128>::new());
        assert_eq!(timed_out, Some(u128::from(t1) * 64));
    }

    #[test]
    fn the_retransmit_over_tcp_fault_runs_timer_a_over_tcp() {
        let config = with_fault(config(20), Fault::RetransmitOverTcp);
        let (sends, timed_out) = schedule(Kind::Invite, true, &config);
        assert_eq!(sends, vec![20, 60, 140, 300, 620, 1260]);
        assert_eq!(timed_out, Some(1280));
    }

    #[test]
    fn provisional_stops_invite_retransmissions_and_timer_b() {
        let mut tx = ClientTransaction::new(Kind::Invite, false, &config(500), Duration::ZERO);
        assert_eq!(tx.state(), State::Calling);
        assert_eq!(tx.on_timer(ms(500)), vec![TxEvent::Retransmit]);
        assert_eq!(
            tx.on_response(100, ms(600)),
            vec![TxEvent::Provisional(100)]
        );
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.deadline(), None);
        // Neither Timer A's 1.5 s nor Timer B's 32 s fires any more.
        assert_eq!(tx.on_timer(ms(1500)), vec![]);
        assert_eq!(tx.on_timer(ms(120_000)), vec![]);
        // A repeated 100 is not news; a new status is.
        assert_eq!(tx.on_response(100, ms(700)), vec![]);
        assert_eq!(
            tx.on_response(180, ms(800)),
            vec![TxEvent::Provisional(180)]
        );
        assert_eq!(tx.on_response(180, ms(900)), vec![]);
        assert_eq!(
            tx.on_response(486, ms(200_000)),
            vec![TxEvent::Final(486), TxEvent::SendAck]
        );
        assert_eq!(tx.deadline(), Some(ms(232_000)));
    }

    #[test]
    fn non_invite_after_1xx_resends_every_t2() {
        let mut tx = ClientTransaction::new(Kind::NonInvite, false, &config(500), Duration::ZERO);
        assert_eq!(tx.state(), State::Trying);
        assert_eq!(
            tx.on_response(100, ms(200)),
            vec![TxEvent::Provisional(100)]
        );
        assert_eq!(tx.state(), State::Proceeding);
        let events = drive(&mut tx);
        let sends: Vec<u128> = events
            .iter()
            .filter(|(_, e)| *e == TxEvent::Retransmit)
            .map(|(at, _)| at.as_millis())
            .collect();
        // The pending Timer E (0.5 s) fires, then every T2 = 4 s; Timer F still ends it.
        assert_eq!(
            sends,
            vec![500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]
        );
        assert_eq!(
            events.iter().rev().take(2).collect::<Vec<_>>(),
            vec![
                &(ms(32_000), TxEvent::Terminated),
                &(ms(32_000), TxEvent::TimedOut)
            ]
        );
    }

    #[test]
    fn invite_non_2xx_is_acked_again_during_timer_d_over_udp() {
        let mut tx = ClientTransaction::new(Kind::Invite, false, &config(500), ms(1000));
        assert_eq!(
            tx.on_response(503, ms(1200)),
            vec![TxEvent::Final(503), TxEvent::SendAck]
        );
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.deadline(), Some(ms(33_200)));
        assert_eq!(tx.on_timer(ms(1500)), vec![], "no Timer A in Completed");
        assert_eq!(tx.on_response(503, ms(5000)), vec![TxEvent::SendAck]);
        assert_eq!(tx.on_response(180, ms(5100)), vec![]);
        assert_eq!(tx.on_timer(ms(33_199)), vec![]);
        assert_eq!(tx.on_timer(ms(33_200)), vec![TxEvent::Terminated]);
        assert!(tx.is_terminated());
        assert_eq!(tx.deadline(), None);
        assert_eq!(tx.on_response(503, ms(34_000)), vec![]);
    }

    #[test]
    fn invite_non_2xx_over_tcp_ends_at_once() {
        let mut tx = ClientTransaction::new(Kind::Invite, true, &config(500), Duration::ZERO);
        assert_eq!(
            tx.on_response(180, ms(100)),
            vec![TxEvent::Provisional(180)]
        );
        assert_eq!(
            tx.on_response(603, ms(200)),
            vec![TxEvent::Final(603), TxEvent::SendAck, TxEvent::Terminated]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.on_response(603, ms(300)), vec![]);
    }

    #[rstest::rstest]
    #[case::udp(false)]
    #[case::tcp(true)]
    fn invite_2xx_ends_without_ack(#[case] reliable: bool) {
        let mut tx = ClientTransaction::new(Kind::Invite, reliable, &config(500), Duration::ZERO);
        assert_eq!(
            tx.on_response(200, ms(100)),
            vec![TxEvent::Final(200), TxEvent::Terminated]
        );
        assert_eq!(tx.deadline(), None);
        assert_eq!(tx.on_response(200, ms(200)), vec![]);
    }

    #[test]
    fn non_invite_final_lingers_for_t4_over_udp_only() {
        let mut tx = ClientTransaction::new(Kind::NonInvite, false, &config(500), Duration::ZERO);
        assert_eq!(tx.on_response(401, ms(300)), vec![TxEvent::Final(401)]);
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.deadline(), Some(ms(5300)));
        assert_eq!(tx.on_response(401, ms(400)), vec![], "absorbed");
        assert_eq!(tx.on_timer(ms(5300)), vec![TxEvent::Terminated]);

        let mut tx = ClientTransaction::new(Kind::NonInvite, true, &config(500), Duration::ZERO);
        assert_eq!(
            tx.on_response(200, ms(300)),
            vec![TxEvent::Final(200), TxEvent::Terminated]
        );
    }

    #[rstest::rstest]
    #[case::invite_calling(Kind::Invite, None)]
    #[case::invite_proceeding(Kind::Invite, Some(180))]
    #[case::non_invite_trying(Kind::NonInvite, None)]
    #[case::non_invite_proceeding(Kind::NonInvite, Some(100))]
    fn transport_error_ends_the_transaction(#[case] kind: Kind, #[case] first: Option<u16>) {
        let mut tx = ClientTransaction::new(kind, false, &config(500), Duration::ZERO);
        if let Some(status) = first {
            tx.on_response(status, ms(10));
        }
        assert_eq!(
            tx.on_transport_error(ms(20)),
            vec![TxEvent::TransportError, TxEvent::Terminated]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.deadline(), None);
        assert_eq!(tx.on_response(200, ms(30)), vec![]);
        assert_eq!(tx.on_transport_error(ms(40)), vec![]);
    }

    #[test]
    fn a_late_timer_call_sends_one_copy() {
        let mut tx = ClientTransaction::new(Kind::Invite, false, &config(500), Duration::ZERO);
        // Slept through 0.5 s and 1.5 s.
        assert_eq!(tx.on_timer(ms(2000)), vec![TxEvent::Retransmit]);
        let next = tx.deadline().unwrap();
        assert!(next > ms(2000), "{next:?}");
        assert_eq!(tx.on_timer(ms(2000)), vec![]);
    }

    #[test]
    fn odd_input_neither_panics_nor_spins() {
        let mut tx = ClientTransaction::new(Kind::Invite, false, &config(500), Duration::ZERO);
        assert_eq!(tx.on_response(0, ms(1)), vec![]);
        assert_eq!(tx.on_response(700, ms(1)), vec![]);
        assert_eq!(tx.state(), State::Calling);
        assert_eq!(tx.on_timer(ms(0)), vec![], "nothing due yet");

        let zero = UaConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            ..with_fault(UaConfig::default(), Fault::TimerBFixed32s)
        };
        // A zero T1 is taken as 1 ms, so time moves on between copies.
        let (sends, timed_out) = schedule(Kind::Invite, false, &zero);
        assert_eq!(timed_out, Some(32_000));
        assert_eq!(&sends[..4], &[1, 3, 7, 15]);

        // 64·T1 would overflow: Timer B never fires before the end of time.
        let huge = config(u64::MAX);
        let mut tx = ClientTransaction::new(Kind::Invite, false, &huge, ms(5));
        let first = tx.deadline().unwrap();
        assert_eq!(first, ms(5) + ms(u64::MAX));
        assert_eq!(tx.on_timer(first), vec![TxEvent::Retransmit]);
        assert!(tx.deadline().is_some_and(|next| next > first));
        assert_eq!(
            tx.on_timer(Duration::MAX),
            vec![TxEvent::TimedOut, TxEvent::Terminated]
        );
    }

    #[test]
    fn sends_are_counted_from_the_first_send() {
        let mut tx = ClientTransaction::new(Kind::Invite, false, &config(100), ms(7000));
        let times: Vec<Duration> = drive(&mut tx).into_iter().map(|(at, _)| at).collect();
        assert_eq!(times.first(), Some(&ms(7100)));
        assert_eq!(times.last(), Some(&ms(13_400)));
    }
}
