//! Writing a timeline to disk as it grows: `timeline.jsonl` and `capture.pcap` in one folder,
//! both flushed event by event so that a failure, Ctrl-C or a kill loses nothing seen.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::capture::{CaptureError, PcapRecorder};
use crate::timeline::jsonl::JsonlWriter;
use crate::timeline::{Event, Timeline};

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
        let mut warned = false;
        timeline.observe(move |event: &Event| {
            if echo {
                println!("{event}");
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
            // Say it once; the run goes on (the timeline in memory is still whole).
            if !failures.is_empty() && !warned {
                warned = true;
                eprintln!("srvlab: warning: cannot record: {}", failures.join("; "));
            }
        });
        Ok(Self {
            pcap,
            timeline_path,
            capture_path,
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
