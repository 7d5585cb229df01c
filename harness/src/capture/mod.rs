//! The timeline rendered as a pcap file that Wireshark and tshark decode: every DNS and SIP
//! message as the UDP datagram or TCP segments it travelled in, keep-alives as the payload they
//! were, TCP handshakes and closes, refusals as ICMP port unreachable or RST.
//!
//! Link type RAW (IPv4 and IPv6 packets, no Ethernet header: there are no MACs to tell) with
//! nanosecond timestamps, each `wall_start + t_ns`. What cannot be known is synthesized
//! deterministically (TCP sequence numbers), so a timeline always renders the same bytes.

mod packet;
mod render;
mod tcp;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapTsResolution, PcapWriteError, PcapWriter};
use pcap_file::{DataLink, Endianness};

use crate::timeline::Event;
use render::Renderer;

/// Snapshot length: whole packets, including an IPv6 packet with a full 65535-byte payload.
const SNAPLEN: u32 = 262_144;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: PcapWriteError,
    },
    #[error("{}: event #{seq} cannot be a pcap packet: {reason}", path.display())]
    Packet {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
}

/// Writes packets to a pcap file event by event, flushing after each, so a run that fails or
/// is interrupted leaves a readable capture of everything up to then. Use it as a timeline
/// observer:
///
/// ```no_run
/// # use srvlab::{capture::PcapRecorder, timeline::Timeline};
/// let timeline = Timeline::new();
/// let mut pcap = PcapRecorder::create("run.pcap".as_ref(), timeline.wall_start())?;
/// timeline.observe(move |event| {
///     if let Err(e) = pcap.record(event) {
///         tracing::warn!("{e}");
///     }
/// });
/// # Ok::<(), srvlab::capture::CaptureError>(())
/// ```
pub struct PcapRecorder {
    path: PathBuf,
    /// `wall_start` as time since the Unix epoch.
    epoch_offset: Duration,
    writer: PcapWriter<BufWriter<File>>,
    renderer: Renderer,
}

impl std::fmt::Debug for PcapRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapRecorder")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PcapRecorder {
    /// Creates (or replaces) the file at `path` and writes the pcap header. `wall_start` is the
    /// wall-clock time of t = 0 ([`crate::timeline::Timeline::wall_start`]).
    pub fn create(path: &Path, wall_start: SystemTime) -> Result<Self, CaptureError> {
        let file = File::create(path).map_err(|source| CaptureError::Create {
            path: path.to_owned(),
            source,
        })?;
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::RAW,
            ts_resolution: PcapTsResolution::NanoSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(BufWriter::new(file), header)
            .map_err(|source| write_error(path, source))?;
        writer.flush().map_err(|source| write_error(path, source))?;
        Ok(Self {
            path: path.to_owned(),
            // A clock before 1970 is not worth an error: such packets land at the epoch.
            epoch_offset: wall_start.duration_since(UNIX_EPOCH).unwrap_or_default(),
            writer,
            renderer: Renderer::default(),
        })
    }

    /// Writes the packets `event` stands for (possibly none) and flushes them to the file.
    pub fn record(&mut self, event: &Event) -> Result<(), CaptureError> {
        let packets = self
            .renderer
            .packets(&event.kind)
            .map_err(|e| self.packet_error(event, e.0))?;
        if packets.is_empty() {
            return Ok(());
        }
        let timestamp = self
            .epoch_offset
            .checked_add(Duration::from_nanos(event.happened_ns()))
            .ok_or_else(|| self.packet_error(event, "timestamp overflows".into()))?;
        for data in &packets {
            // Packets are at most 40 + 65535 bytes (see `packet`), far below u32::MAX.
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let packet = PcapPacket::new(timestamp, len, data.as_slice())
                .map_err(|e| self.packet_error(event, e.to_string()))?;
            self.writer
                .write_packet(&packet)
                .map_err(|source| write_error(&self.path, source))?;
        }
        self.writer
            .flush()
            .map_err(|source| write_error(&self.path, source))
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<(), CaptureError> {
        self.writer
            .flush()
            .map_err(|source| write_error(&self.path, source))
    }

    fn packet_error(&self, event: &Event, reason: String) -> CaptureError {
        CaptureError::Packet {
            path: self.path.clone(),
            seq: event.seq,
            reason,
        }
    }
}

/// Writes a whole timeline to `path` (see [`PcapRecorder`]).
pub fn write_pcap(
    path: &Path,
    wall_start: SystemTime,
    events: &[Event],
) -> Result<(), CaptureError> {
    let mut recorder = PcapRecorder::create(path, wall_start)?;
    for event in events {
        recorder.record(event)?;
    }
    recorder.finish()
}

fn write_error(path: &Path, source: PcapWriteError) -> CaptureError {
    CaptureError::Write {
        path: path.to_owned(),
        source,
    }
}
