//! The authoritative DNS server that a device under test resolves its SIP servers with.

mod handler;
mod in_process;
mod server;

pub use in_process::InProcess;
pub use server::{DnsError, DnsServer};
