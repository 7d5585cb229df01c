//! `timeline.jsonl`: a header line, then one event per line, flushed as each is recorded so a
//! crash or Ctrl-C loses nothing seen so far.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Event;

/// The first line of a timeline file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version of the file.
    pub timeline: u32,
    /// Wall-clock time of t = 0, in nanoseconds since the Unix epoch and as RFC 3339 (UTC).
    pub wall_start_unix_ns: u128,
    pub wall_start: String,
    pub srvlab: String,
}

impl Header {
    pub fn new(wall_start: SystemTime) -> Self {
        let since_epoch = wall_start.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            timeline: 1,
            wall_start_unix_ns: since_epoch.as_nanos(),
            wall_start: rfc3339(since_epoch.as_secs(), since_epoch.subsec_micros()),
            srvlab: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// `2026-11-25T01:02:03.000004Z` from Unix seconds (proleptic Gregorian, UTC).
pub fn rfc3339(unix_seconds: u64, micros: u32) -> String {
    let days = unix_seconds / 86_400;
    let rest = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

pub struct JsonlWriter {
    out: BufWriter<File>,
}

impl JsonlWriter {
    pub fn create(path: &Path, wall_start: SystemTime) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        serde_json::to_writer(&mut out, &Header::new(wall_start))?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(Self { out })
    }

    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Reads a timeline file back: its header and events, with the line of any bad one.
pub fn read(path: &Path) -> io::Result<(Header, Vec<Event>)> {
    let file = BufReader::new(File::open(path)?);
    let mut lines = file.lines();
    let bad = |line: usize, err: serde_json::Error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}:{line}: {err}", path.display()),
        )
    };
    let header = match lines.next() {
        Some(line) => serde_json::from_str(&line?).map_err(|e| bad(1, e))?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: empty timeline file", path.display()),
            ));
        }
    };
    let mut events = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(&line).map_err(|e| bad(index + 2, e))?);
    }
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(1_795_568_523, 123_456),
            "2026-11-25T01:02:03.123456Z"
        );
    }
}
