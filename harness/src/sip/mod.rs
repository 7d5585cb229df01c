//! SIP messages of our own (RFC 3261 §7, §20, §25): a strict parser for what devices send, an
//! exact serializer and builder for what scripted servers send, a lenient summary for cut-off
//! payloads, and stream framing for TCP.
//!
//! - [`message`]: the message, its headers and what they say; exact bytes out.
//! - `parse`: the strict parser ([`Message::parse`], [`ParseError`]).
//! - [`via`]: one Via value.
//! - [`summary`]: [`summarize_partial`] and [`to_tag_partial`] for truncated or broken payloads.
//! - [`builder`]: responses to requests, a message builder, reason phrases.
//! - [`framing`]: [`StreamFramer`], messages (and keep-alives) out of a TCP stream.
//! - [`keepalive`]: RFC 5626 keep-alives told from SIP; the STUN Binding response.
//! - [`uri`]: the SIP URI a user writes (a case's device URI and AOR, `srvlab ua`).

pub mod builder;
pub mod framing;
pub mod keepalive;
pub mod message;
mod parse;
pub mod summary;
mod syntax;
pub mod uri;
pub mod via;

pub use builder::{MessageBuilder, reason_phrase, response_to, response_to_with_tag};
pub use framing::{Framed, FramingError, StreamFramer};
pub use message::{Header, Message, StartLine};
pub use parse::ParseError;
pub use summary::{summarize_partial, to_tag_partial};
pub use via::Via;
