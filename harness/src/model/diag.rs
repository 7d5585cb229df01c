//! Diagnostics for input files: every problem names file:line:column, says what is wrong, and
//! shows the offending line with a caret, like a compiler.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The text of one input file, kept so that diagnostics can quote the offending line.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it (printed in diagnostics).
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            text: text.into(),
        })
    }

    /// Reads a file; a file that cannot be read becomes a diagnostic at 0:0, one that is not
    /// UTF-8 a diagnostic at the first byte that is not.
    pub fn read(path: &Path) -> Result<Arc<Self>, Box<Diagnostic>> {
        let shown = path.display().to_string();
        match read_input(path) {
            Ok(bytes) => Self::from_bytes(shown, bytes),
            Err(err) => {
                let file = Self::new(shown, String::new());
                Err(Box::new(Diagnostic::error(
                    Span::new(&file, 0, 0),
                    format!("cannot read file: {err}"),
                )))
            }
        }
    }

    /// A file's bytes as text, the way [`SourceFile::read`] takes them (the fuzz targets feed
    /// the loaders through here); bytes that are not UTF-8 are an error at their line and
    /// column (the quoted line shows them replaced).
    pub fn from_bytes(
        path: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<Arc<Self>, Box<Diagnostic>> {
        let path = path.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(path, text)),
            Err(err) => {
                let bytes = err.as_bytes();
                let at = err.utf8_error().valid_up_to();
                // Everything before `at` is valid UTF-8, so lines and columns count characters,
                // lines ended as YAML ends them (as the quoted line is found).
                let before = String::from_utf8_lossy(&bytes[..at]);
                let ended = before.ends_with(['\r', '\n']);
                let line = lines(&before).count().max(1) + usize::from(ended && !before.is_empty());
                let column = if ended {
                    1
                } else {
                    lines(&before).last().map_or(0, |l| l.chars().count()) + 1
                };
                let file = Self::new(path, String::from_utf8_lossy(bytes).into_owned());
                Err(Box::new(Diagnostic::error(
                    Span::new(&file, line as u64, column as u64),
                    format!(
                        "byte 0x{:02X} is not UTF-8: save the file as UTF-8",
                        bytes[at]
                    ),
                )))
            }
        }
    }

    /// Line `line` (1-based) as the YAML parser numbers lines.
    pub fn line(&self, line: u64) -> Option<&str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        lines(&self.text).nth(index)
    }
}

/// The most srvlab reads of a file a user names (cases, zones, profiles, labs, certificates):
/// far more than any of them holds, and little enough that `zone: /dev/zero` ends at once.
pub const MAX_INPUT_BYTES: u64 = 8 << 20;

/// A file's bytes, when it is a regular file of at most [`MAX_INPUT_BYTES`]: a device, a pipe
/// or a huge file named by mistake is an error, never a hang.
pub fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB, more than any srvlab file holds",
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// The lines of a text as YAML ends them (YAML 1.2 §5.4: CR LF, LF, or a lone CR), so that the
/// parser's line numbers find their line; like `str::lines`, a last line end starts no line.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = (!text.is_empty()).then_some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let Some(at) = text.find(['\r', '\n']) else {
            rest = None;
            return Some(text);
        };
        let next = if text[at..].starts_with("\r\n") {
            at + 2
        } else {
            at + 1
        };
        rest = text.get(next..).filter(|more| !more.is_empty());
        text.get(..at)
    })
}

/// A place in a source file: 1-based line and column; 0 means "the file as a whole".
#[derive(Clone, Debug)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub line: u64,
    pub column: u64,
}

impl Span {
    pub fn new(file: &Arc<SourceFile>, line: u64, column: u64) -> Self {
        Self {
            file: file.clone(),
            line,
            column,
        }
    }

    /// The span of a value read with `serde_saphyr::Spanned`.
    pub fn of<T>(file: &Arc<SourceFile>, spanned: &serde_saphyr::Spanned<T>) -> Self {
        Self::new(file, spanned.referenced.line(), spanned.referenced.column())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.path, self.line, self.column)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One problem found in an input file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span,
            message: message.into(),
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            span,
            message: message.into(),
        }
    }

    /// Turns a YAML error (syntax, type, range, unknown field, duplicate key) into a diagnostic.
    pub fn from_yaml(file: &Arc<SourceFile>, err: &serde_saphyr::Error) -> Self {
        let (line, column) = err.location().map_or((0, 0), |at| (at.line(), at.column()));
        Self::error(
            Span::new(file, line, column),
            yaml_message(err.without_snippet()),
        )
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// saphyr's messages end with "at line L, column C" and sometimes a hint meant for the
/// programmer; we print the location ourselves and say what the user should write instead.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    let text = text
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace("duplicate mapping key: ", "duplicate key: ")
        .replace("unknown variant `", "unknown value `")
        .replace(
            "cannot deserialize null into string; use Option<String>",
            "a value is missing here (write \"\" for an empty text)",
        )
        .replace(
            "expected mapping start",
            "expected a mapping (`key: value` lines) here",
        );
    let range = |ty: &str| match ty {
        "u8" => Some("a whole number from 0 to 255"),
        "u16" => Some("a whole number from 0 to 65535"),
        "u32" => Some("a whole number from 0 to 4294967295"),
        "u64" => Some("a whole number from 0 upwards"),
        _ => None,
    };
    if let Some(ty) = text.strip_prefix("invalid ")
        && let Some(expected) = range(ty)
    {
        return format!("expected {expected}");
    }
    text
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: error: message`, then the line with a caret under the column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}: {}", self.span, self.severity, self.message)?;
        if let Some(text) = self.span.file.line(self.span.line) {
            let number = self.span.line.to_string();
            let pad = " ".repeat(number.len());
            let caret_at = usize::try_from(self.span.column.saturating_sub(1)).unwrap_or(0);
            // Keep tabs so the caret lines up with the quoted text.
            let lead: String = text
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{number} | {text}")?;
            writeln!(f, "{pad} | {lead}^")?;
        }
        Ok(())
    }
}

/// All problems found in a set of files; errors first within each file, in source order.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by file, then position, so output does not depend on the order checks ran in.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.span.file.path, a.span.line, a.span.column, a.severity).cmp(&(
                &b.span.file.path,
                b.span.line,
                b.span.column,
                b.severity,
            ))
        });
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zone::ZoneSet;

    #[test]
    fn a_lone_cr_ends_a_line_as_in_yaml() {
        // Found by the loaders' fuzz targets: saphyr counts a lone CR as a line end (YAML 1.2
        // §5.4), so its line numbers pointed past the file and no line was quoted.
        let file = SourceFile::new("cr.yaml", "origin: x.\rttl: 300\r\nbogus: 1\rrecords: []\n");
        let (_, found) = ZoneSet::parse(&[file]);
        let shown = found.to_string();
        assert!(
            shown.contains("cr.yaml:3:1: error: unknown field `bogus`"),
            "{shown}"
        );
        assert!(shown.contains("3 | bogus: 1\n"), "{shown}");
    }

    #[test]
    fn lines_split_as_str_lines_does_and_at_a_lone_cr() {
        let split = |text| lines(text).collect::<Vec<_>>();
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\n"), ["a"]);
        assert_eq!(split("a\r\n\nb\rc\r"), ["a", "", "b", "c"]);
        assert_eq!(split("\r\r\n"), ["", ""]);
    }
}
