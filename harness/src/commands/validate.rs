//! `srvlab validate PATH...`: check zone, case and profile files, each on its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use srvlab::model::FileKind;
use srvlab::model::case::Case;
use srvlab::model::diag::{Diagnostics, SourceFile};
use srvlab::model::zone::ZoneSet;
use srvlab::say;

use super::{exit_bad_input, print_diagnostics};

pub fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        collect_yaml(path, &mut files)
            .with_context(|| format!("cannot list {}", path.display()))?;
    }
    let mut all = Diagnostics::default();
    let mut broken = 0;
    for file in &files {
        let (kind, diagnostics) = check(file);
        if diagnostics.has_errors() {
            broken += 1;
        } else {
            say!("ok    {} ({kind})", file.display());
        }
        all.extend(diagnostics);
    }
    print_diagnostics(&all);
    say!(
        "{} file{} checked: {} ok, {} with errors",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        files.len() - broken,
        broken
    );
    Ok(if broken > 0 {
        exit_bad_input()
    } else {
        ExitCode::SUCCESS
    })
}

fn check(path: &Path) -> (&'static str, Diagnostics) {
    let file = match SourceFile::read(path) {
        Ok(file) => file,
        Err(diagnostic) => return ("unreadable", Diagnostics(vec![*diagnostic])),
    };
    match FileKind::of(&file.text) {
        FileKind::Zone => ("zone", ZoneSet::parse(&[file]).1),
        FileKind::Profile => ("profile", srvlab::model::profile::Profile::parse(&file).1),
        FileKind::Case => {
            let base = path.parent().unwrap_or(Path::new("."));
            ("case", Case::parse(&file, base).1)
        }
        FileKind::Lab => {
            let base = path.parent().unwrap_or(Path::new("."));
            let (lab, mut found) = srvlab::model::lab::Lab::parse(&file, base);
            // The lab's device profile is part of it: its errors are the lab's.
            if let Some(lab) = lab {
                found.extend(lab.profile().1);
            }
            ("lab", found)
        }
    }
}

/// A file as given (whatever its name), or every *.yaml / *.yml below a folder, sorted.
pub fn collect_yaml(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let is_yaml = entry
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if entry.is_dir() || is_yaml {
            collect_yaml(&entry, out)?;
        }
    }
    Ok(())
}
