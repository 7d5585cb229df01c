//! The SIP or SIPS URI a user types (RFC 3261 §19.1): only the parts server location needs —
//! scheme, user, host, port and the `transport` parameter.
//!
//! Other URI parameters are ignored, as RFC 3261 §19.1.1 asks of unknown ones, so `Display`
//! prints the canonical form of what was kept. `maddr` and headers (`?…`) are refused rather
//! than ignored: `maddr` would change where the request goes (RFC 3263 §4), and silently
//! dropping it would locate the wrong server.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_server::proto::rr::Name;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
}

impl Scheme {
    /// RFC 3261 §19.1.2: 5060 for sip, 5061 for sips.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Sip => 5060,
            Self::Sips => 5061,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sip => "sip",
            Self::Sips => "sips",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A domain name, always fully qualified (the URI's host is absolute).
    Name(Name),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Written as a user types it: without the root's trailing dot.
            Self::Name(name) => f.write_str(name.to_ascii().trim_end_matches('.')),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    /// The userinfo as written (user, and a password if one was given).
    pub user: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// The `transport` parameter's value, lower-cased.
    pub transport: Option<String>,
}

/// Why a URI was refused; the message quotes the URI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(String);

impl From<String> for UriError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl SipUri {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{}`: a URI cannot contain {c:?}", text.escape_debug()).into());
        }
        let (scheme, rest) = split_scheme(text)?;
        if rest.contains('?') {
            return Err(format!("`{text}`: URI headers (`?…`) are not supported").into());
        }
        // The user part ends at the first '@': RFC 3261's user and password grammar has no
        // unescaped '@', and neither host nor the parameters we keep contain one.
        let (user, rest) = match rest.split_once('@') {
            Some(("", _)) => return Err(format!("`{text}`: empty user before `@`").into()),
            Some((user, rest)) => {
                check_userinfo(user).map_err(|e| format!("`{text}`: {e}"))?;
                (Some(user.to_owned()), rest)
            }
            None => (None, rest),
        };
        let (hostport, params) = match rest.split_once(';') {
            Some((hostport, params)) => (hostport, Some(params)),
            None => (rest, None),
        };
        let (host, port) = split_hostport(hostport).map_err(|e| format!("`{text}`: {e}"))?;
        let transport = match params {
            Some(params) => parse_params(params).map_err(|e| format!("`{text}`: {e}"))?,
            None => None,
        };
        Ok(Self {
            scheme,
            user,
            host,
            port,
            transport,
        })
    }
}

impl SipUri {
    /// The user without a password (`100` of `sip:100:secret@example.test`).
    pub fn user_name(&self) -> Option<&str> {
        let user = self.user.as_deref()?;
        Some(user.split_once(':').map_or(user, |(name, _)| name))
    }
}

impl FromStr for SipUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(transport) = &self.transport {
            write!(f, ";transport={transport}")?;
        }
        Ok(())
    }
}

fn split_scheme(text: &str) -> Result<(Scheme, &str), String> {
    let Some((scheme, rest)) = text.split_once(':') else {
        return Err(format!("`{text}`: expected `sip:` or `sips:` first"));
    };
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else {
        return Err(format!(
            "`{text}`: scheme `{scheme}` is neither `sip` nor `sips`"
        ));
    };
    Ok((scheme, rest))
}

/// RFC 3261 §25.1: `user [":" password]`, each of unreserved characters, the few marks the
/// grammar allows, and `%HH` escapes. Anything else (a `#` or `<` in a dialled number) must be
/// escaped: a device would send it escaped, and a trigger must not pass it on raw.
fn check_userinfo(userinfo: &str) -> Result<(), String> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    if user.is_empty() {
        return Err("empty user before `:`".to_owned());
    }
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c);
    let parts = [
        (user, "&=+$,;?/", "user"),
        (password.unwrap_or(""), "&=+$,", "password"),
    ];
    for (part, marks, what) in parts {
        let bytes = part.as_bytes();
        for (i, c) in part.char_indices() {
            if c == '%' {
                let escape = bytes.get(i + 1..i + 3);
                if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(format!(
                        "`%` in the {what} part must begin an escape such as %23"
                    ));
                }
            } else if !(unreserved(c) || marks.contains(c)) {
                let mut utf8 = [0; 4];
                let escaped: String = c
                    .encode_utf8(&mut utf8)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect();
                return Err(format!(
                    "{c:?} is not allowed in the {what} part of a SIP URI: write it as {escaped} (RFC 3261 §25.1)"
                ));
            }
        }
    }
    Ok(())
}

fn split_hostport(hostport: &str) -> Result<(Host, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err("`[` of an IPv6 address without its `]`".to_owned());
        };
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("`{inside}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected `{after}` after `]`")),
            },
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        if hostport.matches(':').count() > 1 {
            return Err(format!(
                "`{hostport}`: an IPv6 address must be written in brackets"
            ));
        }
        let (host, port) = match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        (parse_host(host)?, port)
    };
    let port = match port {
        None => None,
        Some(port) => Some(parse_port(port)?),
    };
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port `{port}` is not a number"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be contacted".to_owned()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("port `{port}` is larger than 65535")),
    }
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    if host.contains(':') {
        return Err(format!(
            "`{host}`: an IPv6 address must be written in brackets"
        ));
    }
    let without_root = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = without_root.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(format!("`{host}` has an empty label"));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!("`{host}`: {bad:?} is not allowed in a host name"));
    }
    // RFC 3261's toplabel starts with a letter, so a host ending in a digit label is an IPv4
    // address or nothing: `999.1.1.1` must not be looked up as a name.
    let top_is_numeric = labels
        .last()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()));
    if top_is_numeric {
        return match without_root.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V4(ip))),
            Err(_) => Err(format!("`{host}` is not an IPv4 address")),
        };
    }
    if labels
        .iter()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Err(format!("`{host}`: a label cannot begin or end with `-`"));
    }
    let mut name = Name::from_ascii(without_root)
        .map_err(|e| format!("`{host}` is not a domain name: {e}"))?;
    name.set_fqdn(true);
    Ok(Host::Name(name))
}

/// The `transport` parameter's value, if any; other parameters are ignored except `maddr`.
fn parse_params(params: &str) -> Result<Option<String>, String> {
    let mut transport = None;
    for param in params.split(';') {
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (param, None),
        };
        if key.is_empty() {
            return Err("empty URI parameter".to_owned());
        }
        if key.eq_ignore_ascii_case("transport") {
            let value = match value {
                Some(value) if !value.is_empty() => value,
                _ => return Err("`transport` parameter without a value".to_owned()),
            };
            if transport.is_some() {
                return Err("`transport` given twice".to_owned());
            }
            transport = Some(value.to_ascii_lowercase());
        } else if key.eq_ignore_ascii_case("maddr") {
            return Err("the `maddr` parameter is not supported".to_owned());
        }
    }
    Ok(transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Host {
        Host::Name(Name::from_ascii(text).unwrap())
    }

    #[test]
    fn parses_what_users_type() {
        let uri = SipUri::parse("sip:100@example.test").unwrap();
        assert_eq!(uri.scheme, Scheme::Sip);
        assert_eq!(uri.user.as_deref(), Some("100"));
        assert_eq!(uri.host, name("example.test."));
        assert_eq!((uri.port, uri.transport), (None, None));

        let uri = SipUri::parse("sips:alice@Example.Test").unwrap();
        assert_eq!(uri.scheme, Scheme::Sips);
        assert_eq!(uri.host, name("example.test."));

        let uri = SipUri::parse("sip:example.test:5070").unwrap();
        assert_eq!((uri.user, uri.port), (None, Some(5070)));

        let uri = SipUri::parse("sip:100@127.0.0.1").unwrap();
        assert_eq!(uri.host, Host::Ip("127.0.0.1".parse().unwrap()));

        let uri = SipUri::parse("SIP:100@[::1]:5062;lr;Transport=TCP").unwrap();
        assert_eq!(uri.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(uri.port, Some(5062));
        assert_eq!(uri.transport.as_deref(), Some("tcp"));
    }

    #[test]
    fn displays_back_to_text() {
        for text in [
            "sip:100@example.test",
            "sips:example.test:5071",
            "sip:100@127.0.0.1",
            "sip:100@[::1]:5062;transport=tcp",
            "sip:alice:secret@example.test;transport=udp",
            "sip:+4930123%239&key=CANCEL@inject.test",
            "sip:+49-30-123;phone-context=example.test@example.test",
        ] {
            assert_eq!(SipUri::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            SipUri::parse("sip:example.test.;transport=UDP;lr")
                .unwrap()
                .to_string(),
            "sip:example.test;transport=udp"
        );
    }

    #[test]
    fn refuses_with_readable_errors() {
        for (text, expected) in [
            ("example.test", "expected `sip:` or `sips:`"),
            ("tel:+4930123", "neither `sip` nor `sips`"),
            ("sip:", "no host"),
            ("sip:@example.test", "empty user"),
            ("sip:100@example.test:", "port `` is not a number"),
            ("sip:100@example.test:70000", "larger than 65535"),
            ("sip:100@example.test:0", "port 0"),
            ("sip:100@::1", "in brackets"),
            ("sip:100@[::1", "without its `]`"),
            ("sip:100@[fe80::zz]", "not an IPv6 address"),
            ("sip:100@[::1]x", "unexpected `x`"),
            ("sip:100@999.1.1.1", "not an IPv4 address"),
            ("sip:100@exa_mple.test", "not allowed in a host name"),
            ("sip:100@example..test", "empty label"),
            ("sip:100@-example.test", "begin or end with `-`"),
            ("sip:100@example.test;transport", "without a value"),
            ("sip:100@example.test;transport=udp;transport=tcp", "twice"),
            ("sip:100@example.test;maddr=10.0.0.1", "`maddr`"),
            ("sip:100@example.test?subject=hi", "headers"),
            ("sip:100 @example.test", "cannot contain"),
            (
                "sip:100@example.test\r\nX-Injected: 1",
                "cannot contain '\\r'",
            ),
            (
                "sip:+4930123#9&key=CANCEL@inject.test",
                "'#' is not allowed in the user part of a SIP URI: write it as %23",
            ),
            ("sip:10<0@example.test", "write it as %3C"),
            ("sip:100%2@example.test", "must begin an escape"),
            ("sip:alice:se#cret@example.test", "password part"),
            ("sip::secret@example.test", "empty user before `:`"),
        ] {
            let err = SipUri::parse(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
