//! What a device can make a scripted server hold over TCP and TLS: connections, time and bytes.
//! Without limits a slowloris connection stays open for ever, a hundred connections with a
//! pending megabyte each cost a hundred megabytes, and idle connections can use up the process's
//! descriptors so that no new device gets in (issue 13).
//!
//! Every limit that bites closes one connection, with a note on the timeline that names the
//! connection, the limit and its value. A new device always gets in: at the connection cap the
//! connection idle the longest makes room for it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::timeline::{EventKind, Timeline, Transport};

/// The limits of one server's TCP and TLS connections (a world's option: every server of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection over which no byte has crossed, either way, for this long is closed.
    ///
    /// An hour and five minutes: a phone registered over TCP may send nothing between two
    /// REGISTER refreshes (not every phone sends RFC 5626 keep-alives), and a registration
    /// lasts 3600 s unless the server says otherwise (RFC 3261 §10.2.1.1; the `accept`
    /// behaviour grants that by default); the phone refreshes before it runs out, and five
    /// minutes of slack cover a phone that refreshes late. A connection with CRLF keep-alives
    /// (every 30–120 s) is never idle that long.
    pub idle: Duration,
    /// A message whose first byte has arrived must be complete within this (a TLS handshake
    /// too, from the connection's start): a slowloris sender, a byte now and then, is closed.
    ///
    /// 32 s, 64·T1 at RFC 3261's default T1 of 500 ms: by then the sender's transaction has
    /// timed out (Timer B/F), so a message still incomplete is of no use to it. A real device
    /// writes a whole message at once; the loopback or a lab LAN delivers it in milliseconds.
    pub message: Duration,
    /// Connections one server holds at once (TCP and TLS together). Also bounded, across every
    /// server of the process, by [`descriptor_budget`].
    pub connections: usize,
    /// Bytes one connection may hold that are not yet a whole message (a message's header block
    /// and body are also each held to this).
    ///
    /// 128 KiB: twice the largest message common SIP servers take over TCP at all (Kamailio's
    /// and pjsip's 64 KiB). What a device sends is far smaller: an SDP offer of a few KiB, a
    /// MESSAGE of at most 1300 bytes on UDP-sized paths (RFC 3428 §9), presence documents of
    /// a few KiB.
    pub pending_per_connection: usize,
    /// Bytes all connections of one server may hold together that are not yet a whole message;
    /// above it the connection holding the most is closed.
    ///
    /// 8 MiB: 64 connections each with a full 128 KiB pending at once, far beyond what the
    /// devices of a lab do, and a bound on what a flood of begun messages costs.
    pub pending_per_server: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(3600 + 300),
            message: Duration::from_secs(32),
            // Kamailio's default (tcp_max_connections) is 2048; a lab has a few phones, and the
            // idle longest give way to new ones.
            connections: 1024,
            pending_per_connection: 128 * 1024,
            pending_per_server: 8 * 1024 * 1024,
        }
    }
}

/// How many server connections the whole process may hold open: RLIMIT_NOFILE's soft limit
/// less a reserve for everything else srvlab opens (listeners, the DNS server, raw sockets,
/// files, the reference UA's own sockets). Read once.
pub fn descriptor_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| budget_for(open_files_limit()))
}

/// The soft RLIMIT_NOFILE (`u64::MAX` when unlimited or unreadable).
pub fn open_files_limit() -> u64 {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which lives for the call.
    let read = unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) };
    if read == 0 { limit.rlim_cur } else { u64::MAX }
}

/// A quarter of the descriptors (at least 64) stay for the rest of srvlab.
fn budget_for(soft_limit: u64) -> usize {
    let soft = usize::try_from(soft_limit).unwrap_or(usize::MAX);
    soft.saturating_sub((soft / 4).max(64))
}

/// Server connections open in this process, every server's.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One connection counted in [`OPEN`] while it lives.
struct Descriptor;

impl Descriptor {
    fn take() -> Self {
        OPEN.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a limit closed a connection: the end of its note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    Idle {
        limit: Duration,
    },
    Message {
        limit: Duration,
        pending: usize,
    },
    Handshake {
        limit: Duration,
    },
    /// It was the one idle the longest when a new connection came and the server was at its
    /// cap (`budget: false`) or the process at its descriptor budget (`budget: true`).
    Evicted {
        limit: usize,
        budget: bool,
        idle_for: Duration,
    },
    PendingConnection {
        limit: usize,
        pending: usize,
    },
    PendingServer {
        limit: usize,
        pending: usize,
    },
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idle { limit } => write!(f, "no byte crossed it for {limit:?} (idle limit)"),
            Self::Message { limit, pending } => write!(
                f,
                "a message begun {limit:?} before was still incomplete ({pending} bytes; message time limit {limit:?})"
            ),
            Self::Handshake { limit } => write!(
                f,
                "its TLS handshake was not complete within {limit:?} (message time limit)"
            ),
            Self::Evicted {
                limit,
                budget: false,
                idle_for,
            } => write!(
                f,
                "a new connection came with the server at its limit of {limit} connections, and this one had been idle the longest ({idle_for:?})"
            ),
            Self::Evicted {
                limit,
                budget: true,
                idle_for,
            } => write!(
                f,
                "a new connection came with srvlab at its budget of {limit} connections (from RLIMIT_NOFILE {}), and this one had been idle the longest ({idle_for:?})",
                open_files_limit()
            ),
            Self::PendingConnection { limit, pending } => write!(
                f,
                "it held {pending} bytes that were not yet a whole message (limit {limit} bytes per connection)"
            ),
            Self::PendingServer { limit, pending } => write!(
                f,
                "the server's connections held more than {limit} bytes that were not yet a whole message (its limit), this one the most ({pending} bytes)"
            ),
        }
    }
}

/// One server's open TCP and TLS connections, where its limits are kept.
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    server: String,
    limits: ConnectionLimits,
    budget: usize,
    timeline: Timeline,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
    /// The sum of every entry's `pending`.
    pending: usize,
}

struct Entry {
    last_active: Instant,
    pending: usize,
    cut: oneshot::Sender<Cut>,
    /// Told when the connection's slot is dropped: its socket is closed.
    gone: Arc<Notify>,
}

impl Table {
    /// Takes `id` out and tells its connection to close; what tells when it has.
    fn cut(&mut self, id: u64, why: Cut) -> Option<Arc<Notify>> {
        let entry = self.open.remove(&id)?;
        self.pending -= entry.pending;
        let _ = entry.cut.send(why);
        Some(entry.gone)
    }
}

impl Connections {
    pub fn new(server: &str, limits: ConnectionLimits, timeline: Timeline) -> Self {
        Self::with_budget(server, limits, timeline, descriptor_budget())
    }

    fn with_budget(
        server: &str,
        limits: ConnectionLimits,
        timeline: Timeline,
        budget: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                server: server.to_owned(),
                limits,
                budget,
                timeline,
                table: Mutex::new(Table::default()),
            }),
        }
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.shared.limits
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table half-updated: every change is one step.
        self.shared
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new connection, after making room for it: at the server's cap or the process's
    /// budget the connection of this server idle the longest is closed, and admitting waits
    /// (at most a second) until its socket is: the accept loop takes no more descriptors than
    /// it gives back. `None` when there is none to close (other servers hold the whole
    /// budget): the caller closes the new one at once; the note is recorded.
    pub async fn admit(
        &self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<Slot> {
        let (slot, evicted) = self.make_room(transport, local, remote)?;
        if let Some(gone) = evicted {
            let _ = tokio::time::timeout(Duration::from_secs(1), gone.notified()).await;
        }
        Some(slot)
    }

    fn make_room(
        &self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<(Slot, Option<Arc<Notify>>)> {
        let limits = &self.shared.limits;
        let now = Instant::now();
        let mut table = self.table();
        let mut evicted = None;
        let at_cap = table.open.len() >= limits.connections;
        let at_budget = OPEN.load(Ordering::SeqCst) >= self.shared.budget;
        if at_cap || at_budget {
            let oldest = table
                .open
                .iter()
                .min_by_key(|(id, entry)| (entry.last_active, **id))
                .map(|(id, entry)| (*id, now.saturating_duration_since(entry.last_active)));
            match oldest {
                Some((id, idle_for)) => {
                    evicted = table.cut(
                        id,
                        Cut::Evicted {
                            limit: if at_cap {
                                limits.connections
                            } else {
                                self.shared.budget
                            },
                            budget: !at_cap,
                            idle_for,
                        },
                    )
                }
                None => {
                    drop(table);
                    self.shared.timeline.record(EventKind::Note {
                        text: format!(
                            "{}: closed the new {transport} connection from {remote} to {local} at once: srvlab's budget of {} connections (from RLIMIT_NOFILE {}) is held by other servers' connections",
                            self.shared.server,
                            self.shared.budget,
                            open_files_limit()
                        ),
                    });
                    return None;
                }
            }
        }
        let id = table.next;
        table.next += 1;
        let (cut, cut_rx) = oneshot::channel();
        let gone = Arc::new(Notify::new());
        table.open.insert(
            id,
            Entry {
                last_active: now,
                pending: 0,
                cut,
                gone: gone.clone(),
            },
        );
        let slot = Slot {
            id,
            connections: self.clone(),
            transport,
            local,
            remote,
            started: now,
            last_active: now,
            message_started: None,
            cut: cut_rx,
            gone,
            _descriptor: Descriptor::take(),
        };
        Some((slot, evicted))
    }
}

/// One connection's place among its server's: drop it when the connection is closed.
pub struct Slot {
    id: u64,
    connections: Connections,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    started: Instant,
    last_active: Instant,
    /// When the bytes now pending began to arrive.
    message_started: Option<Instant>,
    cut: oneshot::Receiver<Cut>,
    gone: Arc<Notify>,
    _descriptor: Descriptor,
}

impl Slot {
    /// Bytes crossed the connection (either way): it is not idle.
    pub fn active(&mut self) {
        let now = Instant::now();
        self.last_active = now;
        if let Some(entry) = self.connections.table().open.get_mut(&self.id) {
            entry.last_active = now;
        }
    }

    /// The connection now holds `pending` bytes that are not yet a whole message; `framed`:
    /// a message was completed since the last call (what is pending now began after it).
    /// `Err` when this connection is to close for it; another connection may be closed
    /// instead when the server's total is over its limit.
    pub fn pending(&mut self, pending: usize, framed: bool) -> Result<(), Cut> {
        let now = Instant::now();
        self.message_started = match (pending, self.message_started) {
            (0, _) => None,
            (_, Some(started)) if !framed => Some(started),
            _ => Some(now),
        };
        let limits = self.connections.shared.limits;
        let mut table = self.connections.table();
        let Some(entry) = table.open.get_mut(&self.id) else {
            return Ok(()); // cut already: the reason is on its way
        };
        let before = std::mem::replace(&mut entry.pending, pending);
        table.pending = table.pending - before + pending;
        if pending > limits.pending_per_connection {
            return Err(Cut::PendingConnection {
                limit: limits.pending_per_connection,
                pending,
            });
        }
        while table.pending > limits.pending_per_server {
            let Some((id, most)) = table
                .open
                .iter()
                .max_by_key(|(id, entry)| (entry.pending, u64::MAX - **id))
                .map(|(id, entry)| (*id, entry.pending))
            else {
                break;
            };
            let why = Cut::PendingServer {
                limit: limits.pending_per_server,
                pending: most,
            };
            if id == self.id {
                return Err(why);
            }
            let _ = table.cut(id, why);
        }
        Ok(())
    }

    /// Waits until a limit closes this connection: its idle time, its message's time, or
    /// another connection's arrival (see [`Connections::admit`]).
    pub async fn cut(&mut self) -> Cut {
        let limits = self.connections.shared.limits;
        let idle = tokio::time::sleep_until(self.last_active + limits.idle);
        let message = async {
            match self.message_started {
                Some(started) => tokio::time::sleep_until(started + limits.message).await,
                None => std::future::pending().await,
            }
        };
        let pending = self
            .connections
            .table()
            .open
            .get(&self.id)
            .map_or(0, |entry| entry.pending);
        tokio::select! {
            cut = &mut self.cut => match cut {
                Ok(cut) => cut,
                // The sender goes only with a cut; never without one.
                Err(_) => std::future::pending().await,
            },
            () = idle => Cut::Idle { limit: limits.idle },
            () = message => Cut::Message { limit: limits.message, pending },
        }
    }

    /// Waits until the connection's TLS handshake has run out of time, or another limit
    /// closes it (see [`Slot::cut`]).
    pub async fn handshake_cut(&mut self) -> Cut {
        let limit = self.connections.shared.limits.message;
        let deadline = self.started + limit;
        tokio::select! {
            cut = self.cut() => cut,
            () = tokio::time::sleep_until(deadline) => Cut::Handshake { limit },
        }
    }

    /// Records that `cut` closed this connection.
    pub fn note(&self, cut: &Cut) {
        let shared = &self.connections.shared;
        shared.timeline.record(EventKind::Note {
            text: format!(
                "{}: closed the {} connection from {} to {}: {cut}",
                shared.server, self.transport, self.remote, self.local
            ),
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.connections.table();
        if let Some(entry) = table.open.remove(&self.id) {
            table.pending -= entry.pending;
        }
        // A permit is kept when nobody waits yet: the wake-up is not lost.
        self.gone.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const SERVER: &str = "127.0.0.52:5060";

    fn connections(limits: ConnectionLimits, budget: usize) -> (Connections, Timeline) {
        let timeline = Timeline::new();
        let c = Connections::with_budget("s.test.", limits, timeline.clone(), budget);
        (c, timeline)
    }

    #[test]
    fn the_budget_leaves_a_quarter_of_the_descriptors_and_at_least_64() {
        assert_eq!(budget_for(1024), 768);
        assert_eq!(budget_for(200), 136);
        assert_eq!(budget_for(50), 0);
        assert_eq!(budget_for(u64::MAX), usize::MAX - usize::MAX / 4);
        assert!(descriptor_budget() > 0);
    }

    #[test]
    fn defaults_let_a_registered_phone_stay_and_cut_a_slowloris() {
        let limits = ConnectionLimits::default();
        // No keep-alive between REGISTER refreshes of a 3600 s registration.
        assert!(limits.idle > Duration::from_secs(3600));
        // CRLF keep-alives every 30–120 s (RFC 5626 §4.4.1) are far inside it.
        assert!(limits.idle > Duration::from_secs(120));
        // A message takes no longer than Timer B/F at the default T1.
        assert_eq!(limits.message, 64 * Duration::from_millis(500));
        assert!(limits.pending_per_connection >= 64 * 1024);
        assert!(limits.pending_per_server >= 16 * limits.pending_per_connection);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_idle_the_longest_makes_room() {
        let limits = ConnectionLimits {
            connections: 2,
            ..ConnectionLimits::default()
        };
        let (c, _) = connections(limits, usize::MAX);
        let mut first = c.admit(Transport::Tcp, addr(5060), addr(1)).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut second = c.admit(Transport::Tcp, addr(5060), addr(2)).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        first.active(); // the second is now idle the longest
        tokio::time::advance(Duration::from_secs(1)).await;
        let _third = c.admit(Transport::Tls, addr(5060), addr(3)).await.unwrap();
        assert_eq!(
            second.cut().await,
            Cut::Evicted {
                limit: 2,
                budget: false,
                idle_for: Duration::from_secs(2)
            }
        );
        assert_eq!(c.table().open.len(), 2);
        drop(second);
        assert_eq!(c.table().open.len(), 2, "already out of the table");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), first.cut())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_descriptor_budget_too_and_without_a_connection_to_close_the_new_one_goes() {
        let (c, timeline) = connections(ConnectionLimits::default(), 0);
        assert!(c.admit(Transport::Tcp, addr(5060), addr(1)).await.is_none());
        let notes: Vec<String> = timeline.events().iter().map(ToString::to_string).collect();
        assert!(
            notes[0].contains(&format!(
                "s.test.: closed the new tcp connection from {} to {} at once: srvlab's budget of 0 connections",
                addr(1),
                addr(5060)
            )),
            "{notes:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_message_time_limits() {
        let limits = ConnectionLimits {
            idle: Duration::from_secs(10),
            message: Duration::from_secs(3),
            ..ConnectionLimits::default()
        };
        let (c, timeline) = connections(limits, usize::MAX);
        let mut slot = c
            .admit(Transport::Tcp, SERVER.parse().unwrap(), addr(1))
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(slot.cut().await, Cut::Idle { limit: limits.idle });
        assert_eq!(started.elapsed(), limits.idle);
        slot.note(&Cut::Idle { limit: limits.idle });
        assert!(
            timeline.events()[0].to_string().ends_with(&format!(
                "note s.test.: closed the tcp connection from {} to {SERVER}: no byte crossed it for 10s (idle limit)",
                addr(1)
            )),
            "{}",
            timeline.events()[0]
        );

        // A byte now and then keeps it from idling, not its message from running out of time.
        slot.active();
        slot.pending(10, false).unwrap();
        let begun = Instant::now();
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(1)).await;
            slot.active();
            slot.pending(11, false).unwrap();
        }
        assert_eq!(
            slot.cut().await,
            Cut::Message {
                limit: limits.message,
                pending: 11
            }
        );
        assert_eq!(begun.elapsed(), limits.message);
        // A completed message starts the clock again for what follows it; none pending, none.
        slot.pending(5, true).unwrap();
        assert_eq!(slot.message_started, Some(Instant::now()));
        slot.pending(0, true).unwrap();
        assert_eq!(slot.message_started, None);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_bytes_per_connection_and_per_server() {
        let limits = ConnectionLimits {
            pending_per_connection: 100,
            pending_per_server: 250,
            ..ConnectionLimits::default()
        };
        let (c, _) = connections(limits, usize::MAX);
        let mut a = c.admit(Transport::Tcp, addr(5060), addr(1)).await.unwrap();
        let mut b = c.admit(Transport::Tcp, addr(5060), addr(2)).await.unwrap();
        let mut d = c.admit(Transport::Tcp, addr(5060), addr(3)).await.unwrap();
        assert_eq!(
            a.pending(101, false),
            Err(Cut::PendingConnection {
                limit: 100,
                pending: 101
            })
        );
        a.pending(100, false).unwrap();
        b.pending(90, false).unwrap();
        // Over the server's 250: the one holding the most goes, not the one that came last.
        d.pending(80, false).unwrap();
        assert_eq!(
            a.cut().await,
            Cut::PendingServer {
                limit: 250,
                pending: 100
            }
        );
        assert_eq!(c.table().pending, 170);
        d.pending(100, false).unwrap();
        let mut e = c.admit(Transport::Tcp, addr(5060), addr(4)).await.unwrap();
        e.pending(99, false).unwrap(); // 289: d holds the most
        assert_eq!(
            d.cut().await,
            Cut::PendingServer {
                limit: 250,
                pending: 100
            }
        );
        // When the one that grows holds the most, it goes itself.
        let mut f = c.admit(Transport::Tcp, addr(5060), addr(5)).await.unwrap();
        f.pending(60, false).unwrap(); // 90 + 99 + 60
        assert_eq!(
            b.pending(100, false),
            Err(Cut::PendingServer {
                limit: 250,
                pending: 100
            })
        );
        drop(b);
        assert_eq!(c.table().pending, 159);
        drop((d, e, f));
        assert_eq!(c.table().pending, 0);
    }
}
