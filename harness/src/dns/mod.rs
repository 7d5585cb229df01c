//! The authoritative DNS server that a device under test resolves its SIP servers with.

mod handler;
mod server;

pub use server::{DnsError, DnsServer};
