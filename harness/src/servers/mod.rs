//! The scripted SIP servers a case's zone points devices at.
//!
//! - [`script`]: phases and when they change (pure).
//! - [`responder`]: what a behaviour answers to a request (pure).
//! - [`server`]: one server on real UDP/TCP sockets.
//! - [`limits`]: what a device can make a server hold over TCP/TLS (connections, time, bytes).
//! - [`refusal`]: seeing refused attempts with raw sockets.
//! - [`wire`]: a TLS connection's bytes as they crossed the wire, on the timeline.
//! - [`client_hello`]: a device's ClientHello read, for a server that shares no cipher.
//! - [`drops`]: datagrams the kernel dropped on a UDP socket (the DNS server's too), as notes.

pub mod client_hello;
pub mod drops;
pub mod limits;
pub mod refusal;
pub mod responder;
pub mod script;
pub mod server;
pub(crate) mod stamp;
pub mod wire;

pub use limits::ConnectionLimits;
pub use refusal::{RefusalWatcher, RefusingPorts, WatchError};
pub use server::{ServerError, ServerHandle};
