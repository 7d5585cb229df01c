//! Trigger templates: the argv, URL or prompt a lab writes, with `{placeholders}` for the
//! values of the case and the run. A value goes where the template puts it encoded for that
//! place, so that nothing a case writes becomes a second command to a phone or a header of
//! srvlab's request:
//!
//! - in a URL (an `http` trigger) a value after the host is percent-encoded, every byte outside
//!   RFC 3986's unreserved set (§2.1, §2.3): `sip:+49#1&key=X` → `sip%3A%2B49%231%26key%3DX`.
//!   Only `{device}` may stand in the host (an address; IPv6 in brackets);
//! - in an argument (a `command` trigger) a value is one argument, never seen by a shell, and
//!   must hold no control character: programs write their arguments into line-based control
//!   protocols, where a CR or LF would start a command of its own;
//! - in a prompt (a `manual` trigger) control characters are shown escaped.
//!
//! A template is parsed when its lab file loads: an unknown placeholder, or a URL that is not
//! plain `http://` or holds a space or control character, is bad input then, with its place.

use std::fmt;

/// A value a template can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Uri,
    User,
    Domain,
    Aor,
    Device,
    Step,
    Trial,
    Request,
    Srvlab,
}

impl Var {
    pub const ALL: [Self; 9] = [
        Self::Uri,
        Self::User,
        Self::Domain,
        Self::Aor,
        Self::Device,
        Self::Step,
        Self::Trial,
        Self::Request,
        Self::Srvlab,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Uri => "uri",
            Self::User => "user",
            Self::Domain => "domain",
            Self::Aor => "aor",
            Self::Device => "device",
            Self::Step => "step",
            Self::Trial => "trial",
            Self::Request => "request",
            Self::Srvlab => "srvlab",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|var| var.name() == name)
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

/// The values a template's placeholders take.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    pub uri: String,
    pub user: String,
    pub domain: String,
    pub aor: String,
    pub device: String,
    pub step: String,
    pub trial: String,
    /// How many actions the case has asked of the device so far, this one included (1, 2, …).
    pub request: String,
    /// This srvlab program itself: a lab may use srvlab's own UA as the device.
    pub srvlab: String,
}

impl Vars {
    pub fn get(&self, var: Var) -> &str {
        match var {
            Var::Uri => &self.uri,
            Var::User => &self.user,
            Var::Domain => &self.domain,
            Var::Aor => &self.aor,
            Var::Device => &self.device,
            Var::Step => &self.step,
            Var::Trial => &self.trial,
            Var::Request => &self.request,
            Var::Srvlab => &self.srvlab,
        }
    }
}

/// Where a template's text goes, which decides how a value is encoded in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A program's argument vector (`command`).
    Argv,
    /// One `http://` URL (`http`).
    Url,
    /// A line for a person (`manual`).
    Prompt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// One action's template: argv (command), one URL (http) or one prompt (manual), parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    place: Place,
    parts: Vec<Vec<Piece>>,
}

/// A value that cannot be put where the template puts it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var} = `{shown}` cannot go into {place}: it holds {bad:?}")]
pub struct FillError {
    var: Var,
    shown: String,
    bad: char,
    place: &'static str,
}

impl Template {
    /// Parses the parts a lab wrote for `place`; the problems found, each a sentence.
    pub fn parse(place: Place, parts: &[String]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let parts: Vec<Vec<Piece>> = parts
            .iter()
            .map(|part| pieces(part, &mut problems))
            .collect();
        if place == Place::Url {
            match parts.as_slice() {
                [url] => check_url(url, &mut problems),
                _ => problems.push("an http trigger takes one URL per action".into()),
            }
        }
        if place == Place::Argv {
            if parts.is_empty() {
                problems.push("the command names no program".into());
            }
            let nul = parts
                .iter()
                .flatten()
                .any(|p| matches!(p, Piece::Text(t) if t.contains('\0')));
            if nul {
                problems.push("a program's argument cannot hold a NUL character".into());
            }
        }
        if problems.is_empty() {
            Ok(Self { place, parts })
        } else {
            Err(problems)
        }
    }

    /// A fixed prompt for a person (its placeholders are filled like any other).
    pub fn prompt(text: &str) -> Self {
        Self {
            place: Place::Prompt,
            parts: vec![pieces(text, &mut Vec::new())],
        }
    }

    /// Each part with its placeholders filled in, every value encoded for its place.
    pub fn fill(&self, vars: &Vars) -> Result<Vec<String>, FillError> {
        self.parts
            .iter()
            .map(|part| {
                let mut out = String::new();
                // In a URL, values before the first `/`, `?` or `#` after `http://` are in the
                // host (only `{device}` may be; checked when parsed).
                let mut in_authority = self.place == Place::Url;
                for piece in part {
                    match piece {
                        Piece::Text(text) => {
                            out.push_str(text);
                            if in_authority {
                                let after_scheme = out.strip_prefix("http://").unwrap_or(&out);
                                in_authority = !after_scheme.contains(['/', '?', '#']);
                            }
                        }
                        Piece::Var(var) => {
                            let value = vars.get(*var);
                            match self.place {
                                Place::Url if in_authority => push_host(&mut out, value),
                                Place::Url => percent_encode(&mut out, value),
                                Place::Argv => {
                                    if let Some(bad) = value.chars().find(|c| c.is_control()) {
                                        return Err(FillError {
                                            var: *var,
                                            shown: value.escape_debug().to_string(),
                                            bad,
                                            place: "a program's argument",
                                        });
                                    }
                                    out.push_str(value);
                                }
                                Place::Prompt => {
                                    out.extend(value.chars().flat_map(|c| {
                                        let escaped: Vec<char> = if c.is_control() {
                                            c.escape_default().collect()
                                        } else {
                                            vec![c]
                                        };
                                        escaped
                                    }));
                                }
                            }
                        }
                    }
                }
                Ok(out)
            })
            .collect()
    }
}

/// `text` split into literal text and placeholders; `{{` and `}}` stand for braces.
fn pieces(text: &str, problems: &mut Vec<String>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        literal.push_str(&rest[..open]);
        let tail = &rest[open..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            literal.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let close = tail.find('}').filter(|_| tail.starts_with('{'));
        let Some(close) = close else {
            literal.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        };
        let name = &tail[1..close];
        match Var::from_name(name) {
            Some(var) => {
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var(var));
            }
            None => problems.push(format!(
                "unknown placeholder `{{{name}}}`: use {} (a literal brace is written `{{{{` or `}}}}`)",
                Var::ALL
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        rest = &tail[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    pieces
}

/// A URL template: plain `http://`, a host, nothing a request line cannot carry as written.
fn check_url(pieces: &[Piece], problems: &mut Vec<String>) {
    match pieces.first() {
        Some(Piece::Text(text)) if text.starts_with("http://") => {}
        _ => {
            problems.push(
                "srvlab speaks plain http:// to devices: the URL must begin with `http://`".into(),
            );
            return;
        }
    }
    let mut written = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => {
                if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic()) {
                    problems.push(format!(
                        "a URL cannot hold {bad:?} as written: percent-encode it (a space is %20)"
                    ));
                }
                written.push_str(text);
            }
            Piece::Var(var) => {
                let after_scheme = &written["http://".len()..];
                let in_authority = !after_scheme.contains(['/', '?', '#']);
                if in_authority && *var != Var::Device {
                    problems.push(format!(
                        "{var} cannot stand in the URL's host (only {{device}} can): put it in the path or query, where it is percent-encoded"
                    ));
                }
                written.push('x');
            }
        }
    }
    let host = written["http://".len()..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if host.is_empty() {
        problems.push("the URL names no host".into());
    }
}

/// RFC 3986 §2.1: every byte outside the unreserved set as `%HH`.
fn percent_encode(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// `{device}` in a URL's host: an address, IPv6 in brackets (RFC 3986 §3.2.2). Anything else
/// (a value srvlab did not make) is percent-encoded and so cannot leave the host.
fn push_host(out: &mut String, value: &str) {
    match value.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => out.push_str(&format!("[{ip}]")),
        Ok(ip) => out.push_str(&ip.to_string()),
        Err(_) => percent_encode(out, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            uri: "sip:100@snom.rocks".into(),
            user: "100".into(),
            domain: "snom.rocks".into(),
            aor: "sip:alice@snom.rocks".into(),
            device: "127.0.0.1".into(),
            step: "3".into(),
            trial: "0".into(),
            request: "7".into(),
            srvlab: "srvlab".into(),
        }
    }

    fn parse(place: Place, parts: &[&str]) -> Result<Template, Vec<String>> {
        let parts: Vec<String> = parts.iter().map(ToString::to_string).collect();
        Template::parse(place, &parts)
    }

    #[test]
    fn templates_fill_their_placeholders_and_keep_escaped_braces() {
        let template = parse(
            Place::Argv,
            &[
                "dial {uri} as {user}@{domain} ({aor}) #{step}/{trial}",
                "{{\"json\": {user}}}",
            ],
        )
        .unwrap();
        assert_eq!(
            template.fill(&vars()).unwrap(),
            [
                "dial sip:100@snom.rocks as 100@snom.rocks (sip:alice@snom.rocks) #3/0",
                "{\"json\": 100}"
            ]
        );
        assert_eq!(
            Template::prompt("a lone { stays").fill(&vars()).unwrap(),
            ["a lone { stays"]
        );
        let problems = parse(Place::Argv, &["{uri} {nope} {{x}}"]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("unknown placeholder `{nope}`"),
            "{problems:?}"
        );
    }

    /// Issue 13's reproducer: a number with `&key=` in it was a second command to the phone.
    #[test]
    fn a_url_value_is_percent_encoded_and_cannot_add_a_parameter() {
        let template = parse(
            Place::Url,
            &["http://{device}:8080/command.htm?number={user}&outgoing_uri={uri}"],
        )
        .unwrap();
        let vars = Vars {
            user: "+4930123%239&key=CANCEL".into(),
            uri: "sip:+4930123%239&key=CANCEL@inject.test".into(),
            ..vars()
        };
        assert_eq!(
            template.fill(&vars).unwrap(),
            [
                "http://127.0.0.1:8080/command.htm?number=%2B4930123%25239%26key%3DCANCEL&outgoing_uri=sip%3A%2B4930123%25239%26key%3DCANCEL%40inject.test"
            ]
        );
        // Nor can a value add a header: CR and LF are encoded too.
        let vars = Vars {
            user: "1\r\nX-Injected: 1".into(),
            device: "::1".into(),
            ..vars
        };
        assert_eq!(
            template.fill(&vars).unwrap()[0],
            "http://[::1]:8080/command.htm?number=1%0D%0AX-Injected%3A%201&outgoing_uri=sip%3A%2B4930123%25239%26key%3DCANCEL%40inject.test"
        );
    }

    #[test]
    fn a_url_template_is_checked_when_it_loads() {
        for (url, expected) in [
            ("https://phone/x", "plain http://"),
            ("http://phone/dial number={user}", "cannot hold ' '"),
            ("http://phone/x\r\nX: 1", "cannot hold '\\r'"),
            (
                "http://{user}.lab/x",
                "{user} cannot stand in the URL's host",
            ),
            ("http:///x", "names no host"),
        ] {
            let problems = parse(Place::Url, &[url]).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{url}: {problems:?}"
            );
        }
        assert!(parse(Place::Url, &["http://{device}/x?n={user}"]).is_ok());
    }

    #[test]
    fn an_argument_takes_no_control_character() {
        let template = parse(Place::Argv, &["ctrl", "dial {uri}"]).unwrap();
        let vars = Vars {
            uri: "sip:100@x.test\nhangup".into(),
            ..vars()
        };
        let err = template.fill(&vars).unwrap_err().to_string();
        assert_eq!(
            err,
            "{uri} = `sip:100@x.test\\nhangup` cannot go into a program's argument: it holds '\\n'"
        );
        assert!(parse(Place::Argv, &["ctrl", "a\0b"]).is_err());
        assert!(parse(Place::Argv, &[]).is_err());
    }

    #[test]
    fn a_prompt_shows_control_characters_escaped() {
        let vars = Vars {
            user: "1\r\n2".into(),
            ..vars()
        };
        assert_eq!(
            Template::prompt("dial {user}").fill(&vars).unwrap(),
            ["dial 1\\r\\n2"]
        );
    }
}
