//! srvlab: a conformance test harness for SIP server location and failover over DNS.
//!
//! Layout, one concern per module; dependencies point one way (model ← timeline ← world):
//!
//! - [`model`]: the YAML a user writes (zones), loaded and validated with file:line:column
//!   diagnostics ([`model::diag`]).
//! - [`timeline`]: the ordered record of every observed event; the single source of truth.
//! - [`dns`]: the authoritative DNS server (hickory-server's catalog behind srvlab's own
//!   sockets) that serves the zones and records every message in and out on the timeline, with
//!   scripted faults and limits (UDP answer size, TCP idle time and connections).
//! - [`capture`]: the timeline rendered as a pcap file for Wireshark / tshark.
//! - [`sip`]: SIP messages: a strict parser, an exact builder, stream framing for TCP.
//! - [`servers`]: the scripted SIP servers (accept, reply, stall, refuse, delay) and how
//!   refused attempts are observed.
//! - [`world`]: a case's DNS and servers brought up together on one timeline.
//! - [`checks`]: the oracle: pure functions that judge a timeline against the RFCs and the
//!   device's profile, each verdict with its evidence.
//!
//! - [`console`]: what srvlab prints for a person; a closed stdout never stops a run.
//! - [`tls`]: the run's test CA (or a lab's own), server certificates and rustls
//!   configurations.
//!
//! - [`fuzz`]: one entry point per parser of outside input, for `fuzz/` and its replay test.
//!
//! `main.rs` only parses the command line; `commands/` carries each subcommand out.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod capture;
pub mod checks;
pub mod console;
pub mod dns;
pub mod fuzz;
pub mod model;
pub mod run;
pub mod servers;
pub mod sip;
pub mod timeline;
pub mod tls;
pub mod ua;
pub mod world;
