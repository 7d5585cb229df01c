//! Triggers: how srvlab makes a real device act at a step (see [`crate::model::lab`]).
//!
//! A trigger only starts the action; whether the device acted is read from the wire
//! ([`super::external`]), so a trigger that "succeeds" while the phone does nothing still ends
//! in an inconclusive verdict, never a pass.

use std::time::Duration;

use md5::{Digest, Md5};

use crate::model::lab::{Action, AuthScheme, HttpAuth, Trigger, TriggerKind, Vars};

/// What firing a trigger did, for the timeline.
pub type Fired = Result<String, String>;

/// Carries out `action` with `trigger`; `say` prints to the person at the console.
pub async fn fire(
    trigger: &Trigger,
    action: Action,
    vars: &Vars,
    limit: Duration,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Fired {
    let Some(template) = trigger.template(action) else {
        return match trigger.kind {
            TriggerKind::Passive => Ok(format!(
                "passive trigger: waiting for the device to {} by itself",
                action.name()
            )),
            kind => Err(format!(
                "the lab's {kind} trigger has no `{}` action",
                action.name()
            )),
        };
    };
    // Every value encoded for where it goes; one that cannot be is not sent at all.
    let filled = template.fill(vars).map_err(|err| err.to_string())?;
    match trigger.kind {
        TriggerKind::Passive => Ok("passive trigger".into()),
        TriggerKind::Manual => {
            let prompt = filled.join(" ");
            say(&format!(">>> {prompt}"));
            Ok(format!("asked the person: {prompt}"))
        }
        TriggerKind::Command => run_command(&filled, limit).await,
        TriggerKind::Http => http_get(&filled.concat(), trigger.auth.as_ref(), limit).await,
    }
}

/// Runs the program with its arguments as a vector: no shell ever sees them.
async fn run_command(argv: &[String], limit: Duration) -> Fired {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err("the command names no program".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, child).await {
        Err(_) => Err(format!("`{shown}` did not end within {limit:?}")),
        Ok(Err(err)) => Err(format!("`{shown}` could not start: {err}")),
        Ok(Ok(output)) if output.status.success() => Ok(format!(
            "ran `{shown}`{}",
            tail(&output.stdout)
                .map(|out| format!(": {out}"))
                .unwrap_or_default()
        )),
        Ok(Ok(output)) => Err(format!(
            "`{shown}` failed ({}){}",
            output.status,
            tail(&output.stderr)
                .or_else(|| tail(&output.stdout))
                .map(|out| format!(": {out}"))
                .unwrap_or_default()
        )),
    }
}

/// The last line of a program's output, if any, trimmed for one line of a report.
fn tail(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(line.chars().take(200).collect())
}

/// A GET to a device's web interface, answering a basic or digest challenge once.
async fn http_get(url: &str, auth: Option<&HttpAuth>, limit: Duration) -> Fired {
    let target = HttpTarget::parse(url)?;
    let exchange = async {
        let first = target.get(None).await?;
        let response = match (first.status, auth) {
            (401, Some(auth)) => {
                let challenge = first.header("www-authenticate").unwrap_or_default();
                let authorization = authorization(auth, &challenge, &target.path)?;
                target.get(Some(&authorization)).await?
            }
            _ => first,
        };
        if (200..300).contains(&response.status) {
            Ok(format!("GET {url} → {}", response.status))
        } else {
            Err(format!("GET {url} → {}", response.status))
        }
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("GET {url}: no answer within {limit:?}")),
    }
}

struct HttpTarget {
    host: String,
    port: u16,
    path: String,
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

impl HttpTarget {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: srvlab speaks plain http:// to devices"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
                host,
                port.parse()
                    .map_err(|_| format!("`{url}`: `{port}` is not a port"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        Ok(Self {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            path: path.into(),
        })
    }

    async fn get(&self, authorization: Option<&str>) -> Result<HttpResponse, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|err| format!("http://{}:{}: {err}", self.host, self.port))?;
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: srvlab\r\nConnection: close\r\n",
            self.path, self.host
        );
        if let Some(authorization) = authorization {
            request += &format!("Authorization: {authorization}\r\n");
        }
        request += "\r\n";
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| format!("http://{}:{}: {err}", self.host, self.port))?;
        // The head is all we need; a phone's page can be large, so read only so far.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|err| format!("http://{}:{}: {err}", self.host, self.port))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        parse_head(&head).ok_or_else(|| {
            format!(
                "http://{}:{}{}: not an HTTP response",
                self.host, self.port, self.path
            )
        })
    }
}

fn parse_head(bytes: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    Some(HttpResponse { status, headers })
}

/// The Authorization header for a challenge: basic as asked, digest (MD5, qop=auth when
/// offered) as RFC 7616 says. A lab that asked for basic never answers a digest challenge
/// with its password in the clear, nor the other way round.
fn authorization(auth: &HttpAuth, challenge: &str, path: &str) -> Result<String, String> {
    let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(format!(
            "Basic {}",
            base64(format!("{}:{}", auth.user, auth.password).as_bytes())
        ));
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(format!(
            "the device asks for `{scheme}` auth, which srvlab does not speak"
        ));
    }
    if auth.scheme == AuthScheme::Basic {
        return Err("the device asks for digest auth; the lab says basic".into());
    }
    let param = |name: &str| digest_param(params, name);
    let realm = param("realm").unwrap_or_default();
    let nonce = param("nonce").ok_or("the digest challenge has no nonce")?;
    if let Some(algorithm) = param("algorithm")
        && !algorithm.eq_ignore_ascii_case("md5")
    {
        return Err(format!(
            "the device asks for digest {algorithm}; srvlab speaks MD5"
        ));
    }
    let ha1 = md5_hex(&format!("{}:{realm}:{}", auth.user, auth.password));
    let ha2 = md5_hex(&format!("GET:{path}"));
    let qop_auth = param("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
    let mut header = format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{path}\"",
        auth.user
    );
    if qop_auth {
        let cnonce = format!("{:016x}", nonce_seed());
        let nc = "00000001";
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        header += &format!(
            ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\", algorithm=MD5"
        );
    } else {
        let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        header += &format!(", response=\"{response}\", algorithm=MD5");
    }
    if let Some(opaque) = param("opaque") {
        header += &format!(", opaque=\"{opaque}\"");
    }
    Ok(header)
}

/// A client nonce: not a secret, only different each time.
fn nonce_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::from(now.subsec_nanos()) ^ (now.as_secs() << 20) ^ u64::from(std::process::id())
}

/// One parameter of a challenge (`realm="x", nonce="y", qop="auth,auth-int"`).
fn digest_param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_string());
        }
        rest = next.trim_start_matches([',', ' ']);
    }
    None
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_base64() {
        // RFC 7617's example.
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn digest_follows_rfc_2617s_example() {
        // RFC 2617 §3.5, with its cnonce: the response must be 6629fae4…
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex("GET:/dir/index.html");
        let response = md5_hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
        let challenge = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let auth = HttpAuth {
            user: "Mufasa".into(),
            password: "Circle Of Life".into(),
            scheme: AuthScheme::Digest,
        };
        let header = authorization(&auth, challenge, "/dir/index.html").unwrap();
        assert!(header.starts_with("Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001"), "{header}");
        assert!(header.ends_with("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        let basic_only = HttpAuth {
            scheme: AuthScheme::Basic,
            ..auth
        };
        assert!(authorization(&basic_only, challenge, "/").is_err());
    }

    #[test]
    fn urls_and_heads_parse() {
        let target = HttpTarget::parse("http://127.0.0.1:8080/command.htm?number=100").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8080));
        assert_eq!(target.path, "/command.htm?number=100");
        let target = HttpTarget::parse("http://phone").unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("phone", 80, "/")
        );
        assert!(HttpTarget::parse("https://phone/").is_err());
        let head = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(head.status, 401);
        assert_eq!(
            head.header("www-authenticate").as_deref(),
            Some("Basic realm=\"x\"")
        );
        assert!(parse_head(b"garbage").is_none());
    }
}
