//! The authoritative DNS server that a device under test resolves its SIP servers with.

mod fit;
mod handler;
mod in_process;
mod limits;
mod listen;
mod server;

pub use in_process::InProcess;
pub use limits::DnsLimits;
pub use server::{DnsError, DnsServer};
