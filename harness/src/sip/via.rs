//! One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=…;rport`.

use std::fmt;

use super::syntax::{WSP, digits, is_token, is_token_char, parse_params};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The transport, upper-case: UDP, TCP, TLS, SCTP, WS, …
    pub transport: String,
    /// `host[:port]` as written.
    pub sent_by: String,
    /// The parameters in order, names and values as written.
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses one Via value (one element of a comma-separated Via line); the error says why not.
    pub fn parse(value: &str) -> Result<Self, String> {
        let rest = value.trim_matches(WSP);
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH allows
        // white space around it.
        let (name, rest) = take_token(rest);
        let rest = expect_slash(rest)?;
        let (version, rest) = take_token(rest);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(format!("protocol `{name}/{version}` is not SIP/2.0"));
        }
        let rest = expect_slash(rest)?;
        let (transport, rest) = take_token(rest);
        if transport.is_empty() {
            return Err("has no transport".into());
        }
        if rest.trim_start_matches(WSP).is_empty() {
            return Err("has no sent-by".into());
        }
        if !rest.starts_with(WSP) {
            return Err("needs white space between the transport and sent-by".into());
        }
        let rest = rest.trim_start_matches(WSP);
        let sent_by_len = rest
            .find(|c: char| c == ';' || WSP.contains(&c))
            .unwrap_or(rest.len());
        let (sent_by, rest) = rest.split_at(sent_by_len);
        check_sent_by(sent_by)?;
        let rest = rest.trim_start_matches(WSP);
        let params = if rest.is_empty() {
            Vec::new()
        } else if let Some(params) = rest.strip_prefix(';') {
            let params = parse_params(params);
            for (name, value) in &params {
                if !is_token(name) {
                    return Err(format!("parameter name `{name}` is not a token"));
                }
                if value.is_some_and(str::is_empty) {
                    return Err(format!("parameter `{name}=` has an empty value"));
                }
            }
            params
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.map(str::to_owned)))
                .collect()
        } else {
            return Err(format!("unexpected `{rest}` after sent-by"));
        };
        Ok(Self {
            transport: transport.to_ascii_uppercase(),
            sent_by: sent_by.to_owned(),
            params,
        })
    }

    /// A parameter by name (case-insensitive): `Some(None)` for a flag such as `rport`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// RFC 3581: `None` without the parameter, `Some(None)` for the bare request flag,
    /// `Some(Some(port))` once a server filled it in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|value| value.and_then(digits))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by)?;
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, ";{name}={value}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

fn take_token(s: &str) -> (&str, &str) {
    let len = s.bytes().take_while(|&b| is_token_char(b)).count();
    // Token characters are ASCII, so `len` is a character boundary.
    s.split_at(len)
}

fn expect_slash(s: &str) -> Result<&str, String> {
    s.trim_start_matches(WSP)
        .strip_prefix('/')
        .map(|rest| rest.trim_start_matches(WSP))
        .ok_or_else(|| "is not `SIP/2.0/transport sent-by`".to_owned())
}

/// `host [":" port]`: a host name, IPv4 address or bracketed IPv6 reference.
fn check_sent_by(sent_by: &str) -> Result<(), String> {
    if sent_by.is_empty() {
        return Err("has no sent-by".into());
    }
    let (host, port) = if let Some(bracketed) = sent_by.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err(format!("sent-by `{sent_by}` has no closing `]`"));
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("sent-by `{sent_by}` is not an IPv6 reference"));
        }
        match after {
            "" => ("", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return Err(format!("sent-by `{sent_by}` is not host[:port]")),
            },
        }
    } else {
        match sent_by.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (sent_by, None),
        }
    };
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_ok || (host.is_empty() && !sent_by.starts_with('[')) {
        return Err(format!("sent-by `{sent_by}` is not host[:port]"));
    }
    if let Some(port) = port
        && digits::<u16>(port).is_none()
    {
        return Err(format!("sent-by `{sent_by}` has a bad port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params_and_spacing() {
        let via = Via::parse("SIP / 2.0 / udp 192.0.2.1:5060 ;branch=z9hG4bK1 ; rport").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.sent_by, "192.0.2.1:5060");
        assert_eq!(via.branch(), Some("z9hG4bK1"));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(via.received(), None);
        assert_eq!(
            via.to_string(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"
        );
    }

    #[test]
    fn filled_rport_and_ipv6() {
        let via = Via::parse("SIP/2.0/TLS [fd00::52]:5061;rport=4000;received=fd00::1").unwrap();
        assert_eq!(via.rport(), Some(Some(4000)));
        assert_eq!(via.received(), Some("fd00::1"));
    }

    #[test]
    fn rejects_broken_values() {
        for bad in [
            "SIP/2.0/UDP",
            "SIP/2.0/UDPhost",
            "SIP/3.0/UDP host",
            "SIP/2.0 host",
            "SIP/2.0/UDP host:port",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP ho_st",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }
}
