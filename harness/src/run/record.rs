//! Writing a timeline to disk as it grows: `timeline.jsonl` and `capture.pcap` in one folder,
//! both flushed event by event so that a failure, Ctrl-C or a kill loses nothing seen; and,
//! once a TLS session began, `keylog.txt` (NSS key log) beside them, with which Wireshark
//! decrypts the capture.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::capture::{CaptureError, PcapRecorder};
use crate::timeline::jsonl::JsonlWriter;
use crate::timeline::{Event, EventKind, Timeline};
use crate::tls::keylog_line;
use crate::{say, tell};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {path}: {source}")]
    Timeline { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// The files of one timeline; attached as an observer, it records every later event.
pub struct Recorder {
    pcap: Arc<Mutex<Option<PcapRecorder>>>,
    pub timeline_path: PathBuf,
    pub capture_path: PathBuf,
    /// Written only when a TLS session's secrets appear on the timeline.
    pub keylog_path: PathBuf,
}

impl Recorder {
    /// Starts both files in `dir` (which must exist). With `echo`, every event is also
    /// printed, one readable line each.
    pub fn attach(dir: &Path, timeline: &Timeline, echo: bool) -> Result<Self, RecordError> {
        let timeline_path = dir.join("timeline.jsonl");
        let capture_path = dir.join("capture.pcap");
        let mut jsonl =
            JsonlWriter::create(&timeline_path, timeline.wall_start()).map_err(|source| {
                RecordError::Timeline {
                    path: timeline_path.clone(),
                    source,
                }
            })?;
        let pcap = Arc::new(Mutex::new(Some(PcapRecorder::create(
            &capture_path,
            timeline.wall_start(),
        )?)));
        let in_observer = pcap.clone();
        let keylog_path = dir.join("keylog.txt");
        let mut keylog = KeyLogFile::new(keylog_path.clone());
        let mut warned = false;
        timeline.observe(move |event: &Event| {
            if echo {
                say!("{event}");
            }
            let mut failures = Vec::new();
            if let Err(err) = jsonl.write(event) {
                failures.push(format!("timeline.jsonl: {err}"));
            }
            let mut guard = in_observer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pcap) = guard.as_mut()
                && let Err(err) = pcap.record(event)
            {
                failures.push(format!("capture.pcap: {err}"));
            }
            if let EventKind::TlsSecret(secret) = &event.kind
                && let Err(err) = keylog.write(&keylog_line(secret))
            {
                failures.push(format!("keylog.txt: {err}"));
            }
            // Say it once; the run goes on (the timeline in memory is still whole).
            if !failures.is_empty() && !warned {
                warned = true;
                tell!("srvlab: warning: cannot record: {}", failures.join("; "));
            }
        });
        Ok(Self {
            pcap,
            timeline_path,
            capture_path,
            keylog_path,
        })
    }

    /// Flushes and closes the capture; later events are no longer written to it.
    pub fn finish(self) -> Result<(), CaptureError> {
        let pcap = self
            .pcap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match pcap {
            Some(pcap) => pcap.finish(),
            None => Ok(()),
        }
    }
}

/// `keylog.txt`, created with the first secret (a run without TLS leaves no empty file).
struct KeyLogFile {
    path: PathBuf,
    file: Option<File>,
}

impl KeyLogFile {
    fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    fn write(&mut self, line: &str) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::create(&self.path)?),
        };
        // Unbuffered: a run cut short still leaves every secret that was logged.
        file.write_all(line.as_bytes())
    }
}
