//! What the user writes: zones, cases, device profiles and lab profiles (with their trigger
//! templates), validated with exact file:line:column diagnostics.

pub mod case;
pub mod diag;
pub mod duration;
pub mod lab;
pub mod profile;
pub mod steps;
pub mod template;
pub mod zone;

/// What kind of file a YAML file is, judged by its top-level keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Zone,
    Case,
    Profile,
    Lab,
}

impl FileKind {
    /// A case has `id`/`servers`; anything else is read as a zone (and errors say why).
    pub fn of(text: &str) -> Self {
        let top_level_keys = diag::lines(text).filter_map(|line| {
            let key = line.split(':').next()?;
            let is_key = !key.is_empty()
                && !line.starts_with([' ', '\t', '#', '-'])
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            is_key.then_some(key)
        });
        for key in top_level_keys {
            match key {
                "lab" | "trigger" | "hosts" => return Self::Lab,
                "id" | "title" | "servers" | "zone" | "steps" | "checks" => return Self::Case,
                "origin" | "ttl" | "records" | "additional" | "negative_ttl" => return Self::Zone,
                "device" | "t1" | "t2" | "dirty_host_ttl" => return Self::Profile,
                _ => {}
            }
        }
        Self::Zone
    }
}
