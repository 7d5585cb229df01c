//! The timeline: one ordered record of everything observed in a world, the single source of
//! truth that captures and reports are rendered from.
//!
//! Every event gets a sequence number and a monotonic timestamp (nanoseconds since the
//! timeline started) taken under one lock, so sequence order and time order agree.

mod event;
pub mod jsonl;

pub use event::{
    CloseKind, DnsAnswer, DnsDropped, DnsMalformed, DnsQuery, EventKind, Flow, PhaseChanged,
    RefusalSeen, Refused, SipMalformed, SipMessage, SipSummary, TcpClosed, TcpConnection,
    TcpUnframed, TlsBytes, TlsFailed, TlsSecret, Transport, UnframedWhy,
};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// One observed event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the timeline, from 0.
    pub seq: u64,
    /// Nanoseconds since the timeline started (monotonic clock).
    pub t_ns: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub fn at(&self) -> Duration {
        Duration::from_nanos(self.t_ns)
    }

    /// When it happened: the timeline time, except where the kernel's receive time is known
    /// (a refusal, read by the raw-socket reader a little after the fact; a UDP message,
    /// recorded once the server's task got to it; TLS bytes to the device, stamped before the
    /// write).
    pub fn happened_ns(&self) -> u64 {
        match &self.kind {
            EventKind::Refused(refused) => refused.seen_ns.unwrap_or(self.t_ns),
            EventKind::SipReceived(message) => message.seen_ns.unwrap_or(self.t_ns),
            EventKind::TlsBytes(bytes) => bytes.seen_ns.unwrap_or(self.t_ns),
            _ => self.t_ns,
        }
    }

    /// `at`, a wall-clock time from the kernel, as ns since `wall_start` (t = 0).
    pub fn ns_since(wall_start: SystemTime, at: SystemTime) -> Option<u64> {
        u64::try_from(at.duration_since(wall_start).ok()?.as_nanos()).ok()
    }
}

type Observer = Box<dyn FnMut(&Event) + Send>;

struct State {
    events: Vec<Event>,
    observers: Vec<Observer>,
}

struct Inner {
    start: Instant,
    wall_start: SystemTime,
    state: Mutex<State>,
}

/// A shared, append-only list of events. Cloning shares it.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Inner>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("events", &self.state().events.len())
            .finish()
    }
}

impl Timeline {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                start: Instant::now(),
                wall_start: SystemTime::now(),
                state: Mutex::new(State {
                    events: Vec::new(),
                    observers: Vec::new(),
                }),
            }),
        }
    }

    // A panicking observer must not cost us the record: keep going with the data as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event stamped now, tells every observer, and returns its sequence number.
    pub fn record(&self, kind: EventKind) -> u64 {
        let mut state = self.state();
        let elapsed = self.inner.start.elapsed();
        let event = Event {
            seq: state.events.len() as u64,
            t_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            kind,
        };
        for observer in &mut state.observers {
            observer(&event);
        }
        let seq = event.seq;
        state.events.push(event);
        seq
    }

    /// Calls `observer` with every later event, in order, as it is recorded.
    pub fn observe(&self, observer: impl FnMut(&Event) + Send + 'static) {
        self.state().observers.push(Box::new(observer));
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.state().events.clone()
    }

    pub fn len(&self) -> usize {
        self.state().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wall-clock time at which the timeline started (t = 0).
    pub fn wall_start(&self) -> SystemTime {
        self.inner.wall_start
    }

    /// The monotonic instant of t = 0.
    pub fn start_instant(&self) -> Instant {
        self.inner.start
    }

    /// Time elapsed since t = 0.
    pub fn elapsed(&self) -> Duration {
        self.inner.start.elapsed()
    }
}

/// Lower-case hex, how raw packet bytes are kept in JSON.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn encode(bytes: &[u8]) -> String {
        use std::fmt::Write;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        if !text.len().is_multiple_of(2) {
            return Err("hex text has an odd length".into());
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .map_err(|_| format!("`{}` is not hex", &text[i..i + 2]))
            })
            .collect()
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = vec![0u8, 1, 0x7f, 0xff, 0x10];
        assert_eq!(hex_bytes::encode(&bytes), "00017fff10");
        assert_eq!(hex_bytes::decode("00017fff10").unwrap(), bytes);
        assert!(hex_bytes::decode("abc").is_err());
        assert!(hex_bytes::decode("zz").is_err());
    }

    #[test]
    fn sequence_and_time_agree_and_observers_see_every_event() {
        let timeline = Timeline::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        timeline.observe(move |e| sink.lock().unwrap().push(e.seq));
        for _ in 0..5 {
            timeline.record(EventKind::Note {
                text: "step".into(),
            });
        }
        let events = timeline.events();
        assert_eq!(events.len(), 5);
        assert!(events.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
