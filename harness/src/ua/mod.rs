//! The reference UA: srvlab's own RFC 3263 client, the device under test when there is no
//! phone. The core is free of I/O and driven by explicit time (like quinn-proto); `io` runs
//! it on real sockets.
//!
//! - [`config`]: how it is configured, like a phone.
//! - [`fault`]: named faults that make it misbehave on purpose.
//! - [`rng`]: the seeded generator behind every random choice.
//! - [`target`]: where a request goes.
//! - [`dns_cache`]: DNS answers kept for their TTL, negative ones too.
//! - [`dirty`]: targets avoided for a while after they failed.
//! - [`locate`]: RFC 3263 server location, one target at a time.
//! - [`transaction`]: RFC 3261 §17.1 client transactions: when to resend, time out, ACK.
//! - [`request`]: the requests the UA sends, their ACKs and CANCELs.
//! - [`agent`]: requests carried out: resolution, attempts, failover, dirty hosts.
//! - [`io`]: the agent on real sockets and timers.

pub mod agent;
pub mod config;
pub mod dirty;
pub mod dns_cache;
pub mod fault;
pub mod io;
pub mod locate;
pub mod request;
pub mod rng;
pub mod target;
pub mod transaction;

pub use crate::sip::uri::{Host, Scheme, SipUri};
pub use config::UaConfig;
pub use dirty::{DirtyHosts, DirtyUntil};
pub use dns_cache::{Cached, DnsCache, Received};
pub use fault::{Fault, Faults};
pub use locate::{Next, Resolution};
pub use request::{RequestSpec, build_ack, build_cancel, build_request, new_branch, sdp_offer};
pub use rng::Rng;
pub use target::{SrvOrigin, Target, TargetKey};
pub use transaction::{ClientTransaction, Kind, State, TxEvent};
