//! `srvlab doctor --lab LAB.yaml [PATH...]`: whether a run against a real device can start on
//! this host, and for each thing that stops it, the command that would fix it.
//!
//! Every finding is tried for real rather than guessed: an address exists when a socket binds
//! to it, a port is free when it binds, raw sockets are allowed when one opens, the device
//! answers when it answers a SIP OPTIONS (or a ping).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use srvlab::model::case::{Case, TlsFailure};
use srvlab::model::lab::{Action, Lab, TriggerKind, Vars};
use srvlab::say;
use srvlab::timeline::Transport;
use srvlab::tls::{CertInfo, CertSource};

use super::{exit_bad_input, exit_run_failed, print_diagnostics};

/// One line of the doctor's report.
struct Finding {
    ok: bool,
    /// Not in the way of a run, but soon will be (a certificate about to expire).
    warn: bool,
    what: String,
    fixes: Vec<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Self {
        Self {
            ok: true,
            warn: false,
            what: what.into(),
            fixes: Vec::new(),
        }
    }

    fn warn(what: impl Into<String>, fixes: Vec<String>) -> Self {
        Self {
            ok: true,
            warn: true,
            what: what.into(),
            fixes,
        }
    }

    fn fail(what: impl Into<String>, fixes: Vec<String>) -> Self {
        Self {
            ok: false,
            warn: false,
            what: what.into(),
            fixes,
        }
    }
}

pub fn run(lab_path: &Path, cases: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (lab, mut diagnostics) = Lab::load(lab_path);
    let profile = lab.as_ref().map(|lab| {
        let (profile, found) = lab.profile();
        diagnostics.extend(found);
        profile
    });
    let mut loaded = Vec::new();
    let mut files = Vec::new();
    for path in cases {
        if path.exists() {
            super::validate::collect_yaml(path, &mut files)?;
        }
    }
    for file in &files {
        let (case, found) = Case::load(file);
        diagnostics.extend(found);
        loaded.extend(case);
    }
    print_diagnostics(&diagnostics);
    let (Some(lab), Some(Some(_))) = (lab, profile) else {
        return Ok(exit_bad_input());
    };
    if diagnostics.has_errors() {
        return Ok(exit_bad_input());
    }
    let mut findings = Vec::new();
    findings.extend(addresses(&lab));
    findings.extend(ports(&lab, &loaded));
    findings.push(raw_sockets());
    findings.extend(cases_fit(&lab, &loaded));
    findings.extend(tls(&lab, &loaded, unix_now()));
    findings.push(trigger(&lab));
    findings.extend(actions(&lab, &loaded));
    findings.push(device_answers(&lab));
    let mut failed = 0;
    for finding in &findings {
        say!(
            "{}  {}",
            match (finding.ok, finding.warn) {
                (true, false) => "ok  ",
                (true, true) => "warn",
                (false, _) => "FAIL",
            },
            finding.what
        );
        for fix in &finding.fixes {
            say!("        fix: {fix}");
        }
        failed += usize::from(!finding.ok);
    }
    if failed == 0 {
        say!(
            "a run can start: srvlab run --dut external --lab {}",
            lab_path.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        say!("{failed} problem(s): a run cannot start until they are fixed");
        Ok(exit_run_failed())
    }
}

/// Every address srvlab must listen on exists on this host.
fn addresses(lab: &Lab) -> Vec<Finding> {
    let interface = lab.interface.clone().unwrap_or_else(|| "IFACE".into());
    let mut missing = Vec::new();
    let mut present = 0;
    for address in lab.local_addresses() {
        match UdpSocket::bind(SocketAddr::new(address, 0)) {
            Err(err) if err.kind() == ErrorKind::AddrNotAvailable => missing.push(address),
            _ => present += 1,
        }
    }
    if missing.is_empty() {
        return vec![Finding::ok(format!(
            "all {present} lab addresses exist on this host"
        ))];
    }
    missing
        .iter()
        .map(|address| {
            let prefix = if address.is_ipv4() { 32 } else { 128 };
            Finding::fail(
                format!("{address} is not an address of this host"),
                vec![format!("ip addr add {address}/{prefix} dev {interface}")],
            )
        })
        .collect()
}

/// The DNS port and every SIP port a case uses are free on the lab's addresses (binding is
/// the test; it also says whether a port below 1024 may be bound).
fn ports(lab: &Lab, cases: &[Case]) -> Vec<Finding> {
    let mut wanted: BTreeSet<(SocketAddr, &str)> = BTreeSet::new();
    for dns in &lab.dns {
        wanted.insert((*dns, "DNS"));
    }
    let mut sip_ports: BTreeSet<u16> = cases
        .iter()
        .flat_map(|case| case.servers.iter().map(|s| s.port))
        .collect();
    if sip_ports.is_empty() {
        sip_ports.insert(5060);
    }
    for address in lab.pool.iter().chain(lab.hosts.values()) {
        for port in &sip_ports {
            wanted.insert((SocketAddr::new(*address, *port), "SIP"));
        }
    }
    let mut findings = Vec::new();
    let mut free = 0;
    for (addr, what) in &wanted {
        let udp = std::net::UdpSocket::bind(addr).err();
        let tcp = std::net::TcpListener::bind(addr).err();
        match udp.or(tcp) {
            None => free += 1,
            Some(err) if err.kind() == ErrorKind::AddrNotAvailable => {}
            Some(err) if err.kind() == ErrorKind::AddrInUse => findings.push(Finding::fail(
                format!("{what} port {addr} is in use"),
                vec![
                    format!("see what holds it: ss -lntup 'sport = :{}'", addr.port()),
                    "stop it (e.g. systemctl stop systemd-resolved, named or dnsmasq for port 53)"
                        .into(),
                ],
            )),
            Some(err) if err.kind() == ErrorKind::PermissionDenied => findings.push(Finding::fail(
                format!("{what} port {addr} may not be bound by this user"),
                privilege_fixes(),
            )),
            Some(err) => findings.push(Finding::fail(format!("{what} port {addr}: {err}"), vec![])),
        }
    }
    if findings.is_empty() {
        findings.push(Finding::ok(format!(
            "{free} DNS and SIP ports are free ({} for the cases' servers)",
            sip_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    findings
}

fn privilege_fixes() -> Vec<String> {
    let program = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "srvlab".into());
    vec![
        "run srvlab as root".into(),
        format!("or: setcap cap_net_bind_service,cap_net_raw+ep {program}"),
    ]
}

/// Refusals (ICMP port unreachable, RST) are seen through raw sockets.
fn raw_sockets() -> Finding {
    use socket2::{Domain, Protocol, Socket, Type};
    match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
        Ok(_) => Finding::ok("raw sockets are allowed (refused attempts will be seen)"),
        Err(err) => Finding::fail(
            format!(
                "raw sockets are not allowed ({err}): refused attempts (F2, L11) cannot be seen"
            ),
            privilege_fixes(),
        ),
    }
}

/// Each case's addresses fit the lab.
fn cases_fit(lab: &Lab, cases: &[Case]) -> Vec<Finding> {
    let problems: Vec<Finding> = cases
        .iter()
        .filter_map(|case| {
            lab.apply(case).err().map(|err| {
                Finding::fail(
                    format!("case {}: {err}", case.id),
                    vec![format!(
                        "add addresses to `addresses:` in {}",
                        lab.file.path
                    )],
                )
            })
        })
        .collect();
    if problems.is_empty() && !cases.is_empty() {
        vec![Finding::ok(format!(
            "the {} case(s) fit the lab's addresses",
            cases.len()
        ))]
    } else {
        problems
    }
}

/// A certificate expiring within this many days is warned of: a bench needs time to renew
/// and roll out a CA.
const EXPIRY_WARNING_DAYS: i64 = 30;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether a certificate is still valid at `now` and for how long.
fn expiry(what: &str, info: &CertInfo, now: i64) -> Finding {
    let days = (info.not_after - now).div_euclid(86_400);
    if info.not_after <= now {
        Finding::fail(
            format!("{what} expired on {}", info.not_after_text),
            vec!["renew it (a device rejects an expired certificate)".into()],
        )
    } else if days < EXPIRY_WARNING_DAYS {
        Finding::warn(
            format!(
                "{what} expires in {days} day(s), on {}",
                info.not_after_text
            ),
            vec!["renew it before the bench's next runs".into()],
        )
    } else {
        Finding::ok(format!("{what} is valid until {}", info.not_after_text))
    }
}

/// The lab's CA and fixed certificates load (the lab file's parsing did that) and are not
/// expired, and which certificate each TLS host of the cases would present.
fn tls(lab: &Lab, cases: &[Case], now: i64) -> Vec<Finding> {
    let pki = lab.tls.as_deref().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    if let Some(ca) = &pki.ca {
        findings.push(Finding::ok(format!(
            "lab CA {} loads: {}, SHA-256 {}{}",
            ca.path.display(),
            ca.info.subject,
            ca.info.sha256,
            if ca.can_issue() {
                ", with its key"
            } else {
                ", without a key"
            }
        )));
        findings.push(expiry(
            &format!("lab CA {}", ca.path.display()),
            &ca.info,
            now,
        ));
    }
    for (host, cert) in &pki.fixed {
        findings.push(Finding::ok(format!(
            "certificate for {host} ({}) loads: names {}, issued by {}",
            cert.path.display(),
            cert.info.names.join(", "),
            cert.info.issuer
        )));
        findings.push(expiry(
            &format!("certificate for {host} ({})", cert.path.display()),
            &cert.info,
            now,
        ));
    }
    for case in cases {
        let hosts: Vec<String> = case
            .servers
            .iter()
            .filter(|server| server.transports.contains(&Transport::Tls))
            .map(|server| {
                let host = server.host.to_ascii();
                let named = match server.tls.fail {
                    Some(TlsFailure::WrongName) => srvlab::tls::WRONG_NAME.to_owned(),
                    _ => host.clone(),
                };
                let source = if matches!(server.tls.fail, Some(TlsFailure::BadCertificate)) {
                    "a self-signed certificate (tls fail: bad_certificate)".to_string()
                } else {
                    match pki.source_for(&named) {
                        CertSource::Fixed => pki
                            .fixed
                            .get(&srvlab::tls::certificate_name(&named))
                            .map_or_else(
                                || CertSource::Fixed.to_string(),
                                |cert| format!("{}", cert.path.display()),
                            ),
                        CertSource::RunCa => {
                            "issued by the run's own CA (the device must trust the case's ca.pem)"
                                .to_string()
                        }
                        source => source.to_string(),
                    }
                };
                format!("{host} → {source}")
            })
            .collect();
        if !hosts.is_empty() {
            findings.push(Finding::ok(format!(
                "case {}: {}",
                case.id,
                hosts.join("; ")
            )));
        }
    }
    findings
}

/// The trigger can be carried out: its programs exist, its URLs are plain http.
/// Cases whose steps ask for an action the lab's trigger lacks: they will be reported as not
/// applicable, without running (a warning: the rest of the run can start).
fn actions(lab: &Lab, cases: &[Case]) -> Option<Finding> {
    let mut by_action: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for case in cases {
        let missing = lab.trigger.missing_actions(&case.steps);
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|a| a.name()).collect();
            by_action
                .entry(names.join(", "))
                .or_default()
                .push(&case.id);
        }
    }
    if by_action.is_empty() {
        return None;
    }
    let lines: Vec<String> = by_action
        .iter()
        .map(|(actions, ids)| format!("{} ({}): {}", actions, ids.len(), ids.join(", ")))
        .collect();
    Some(Finding::warn(
        format!(
            "{} case(s) need an action the lab's {} trigger lacks and will be not applicable: {}",
            by_action.values().map(Vec::len).sum::<usize>(),
            lab.trigger.kind,
            lines.join("; ")
        ),
        vec!["add the action to the lab's trigger, or leave those cases out of the run".into()],
    ))
}

fn trigger(lab: &Lab) -> Finding {
    let vars = Vars {
        srvlab: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ..Vars::default()
    };
    match lab.trigger.kind {
        TriggerKind::Manual => Finding::ok("manual trigger: a person at this console acts"),
        TriggerKind::Passive => Finding::ok("passive trigger: the device acts by itself"),
        TriggerKind::Http => Finding::ok(format!(
            "http trigger with {} action(s)",
            lab.trigger.actions.len()
        )),
        TriggerKind::Command => {
            let mut missing = Vec::new();
            for action in [
                Action::Register,
                Action::Call,
                Action::Hangup,
                Action::Options,
                Action::Reset,
            ] {
                let Some(template) = lab.trigger.template(action) else {
                    continue;
                };
                match template.fill(&vars) {
                    Ok(argv) => {
                        if let Some(program) = argv.first()
                            && !is_executable(program)
                        {
                            missing.push(format!("{}: `{program}`", action.name()));
                        }
                    }
                    Err(err) => missing.push(format!("{}: {err}", action.name())),
                }
            }
            if missing.is_empty() {
                Finding::ok("command trigger: every program exists")
            } else {
                Finding::fail(
                    format!(
                        "command trigger: no such program for {}",
                        missing.join(", ")
                    ),
                    vec!["give a path that exists (relative to where srvlab runs) or a program on PATH".into()],
                )
            }
        }
    }
}

fn is_executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(program))))
}

/// The device answers a SIP OPTIONS on its SIP port, or else a ping.
fn device_answers(lab: &Lab) -> Finding {
    let address = lab.device.address;
    let Some(port) = lab.device.sip_port else {
        return ping(address);
    };
    let device = SocketAddr::new(address, port);
    match options(device, lab.dns.first().map(SocketAddr::ip)) {
        Ok(status) => Finding::ok(format!("the device answers OPTIONS at {device}: {status}")),
        Err(why) => Finding::fail(
            format!("the device does not answer OPTIONS at {device}: {why}"),
            vec![
                "is the phone on, on this network, and its SIP port the lab's `device.sip_port`?"
                    .into(),
                format!("try: sipsak -vv -s sip:{device}"),
            ],
        ),
    }
}

/// Sends one OPTIONS over UDP (from `from`, when the lab gives a source) and reads the status
/// line of the first answer.
fn options(device: SocketAddr, from: Option<IpAddr>) -> Result<String, String> {
    let local = match (from, device.ip()) {
        (Some(from), to) if from.is_ipv4() == to.is_ipv4() && !to.is_loopback() => from,
        (_, IpAddr::V4(_)) => IpAddr::from([0, 0, 0, 0]),
        (_, IpAddr::V6(_)) => IpAddr::from([0u16; 8]),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).map_err(|e| e.to_string())?;
    socket.connect(device).map_err(|e| e.to_string())?;
    let me = socket.local_addr().map_err(|e| e.to_string())?;
    let host = match device.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let me_host = match me.ip() {
        IpAddr::V6(v6) => format!("[{v6}]:{}", me.port()),
        IpAddr::V4(v4) => format!("{v4}:{}", me.port()),
    };
    let tag = std::process::id();
    let request = format!(
        "OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/{transport} {me_host};branch=z9hG4bK-doctor-{tag};rport\r\nMax-Forwards: 70\r\nFrom: <sip:doctor@{me_host}>;tag=doctor{tag}\r\nTo: <sip:{host}:{port}>\r\nCall-ID: doctor-{tag}@srvlab\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nUser-Agent: srvlab doctor\r\nContent-Length: 0\r\n\r\n",
        port = device.port(),
        transport = Transport::Udp.to_string().to_uppercase(),
    );
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    // A few sends, as a SIP client would (the device may drop the first while it wakes).
    for _ in 0..4 {
        socket.send(request.as_bytes()).map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or_default().to_string();
                return if line.starts_with("SIP/2.0 ") {
                    Ok(line)
                } else {
                    Err(format!("it answered something that is not SIP: {line:?}"))
                };
            }
            Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
                return Err("nothing listens there (ICMP port unreachable)".into());
            }
            Err(_) => {}
        }
    }
    Err("no answer within 2 s".into())
}

fn ping(address: IpAddr) -> Finding {
    match echo(address) {
        Ok(rtt) => Finding::ok(format!(
            "the device answers ping at {address} ({:.1} ms; give `device.sip_port` to check SIP)",
            rtt.as_secs_f64() * 1000.0
        )),
        Err(why) => Finding::fail(
            format!("the device does not answer ping at {address}: {why}"),
            vec!["is the phone on and on this network? (or give `device.sip_port`)".into()],
        ),
    }
}

/// One ICMP echo over a raw socket (the ping program may not be installed).
fn echo(address: IpAddr) -> Result<Duration, String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let (domain, protocol, request, reply) = match address {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128, 129),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol)).map_err(|e| e.to_string())?;
    let id = (std::process::id() & 0xffff) as u16;
    let mut packet = vec![request, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(b"srvlab doctor");
    if address.is_ipv4() {
        // ICMPv6's checksum the kernel fills in; ICMPv4's is ours.
        let sum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let sent = std::time::Instant::now();
    socket
        .send_to(&packet, &SockAddr::from(SocketAddr::new(address, 0)))
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    while sent.elapsed() < Duration::from_secs(2) {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        // SAFETY: recv_from initialised the first n bytes.
        let bytes: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        // An IPv4 raw socket hands over the IP header too.
        let icmp = if address.is_ipv4() {
            let header = usize::from(bytes.first().copied().unwrap_or(0) & 0x0f) * 4;
            bytes.get(header..).unwrap_or_default()
        } else {
            &bytes[..]
        };
        let from_device = from.as_socket().is_some_and(|f| f.ip() == address);
        if from_device && icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
            return Ok(sent.elapsed());
        }
    }
    Err("no echo reply within 2 s".into())
}

fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_until(not_after: i64) -> CertInfo {
        CertInfo {
            subject: "CN=bench CA".into(),
            issuer: "CN=bench CA".into(),
            names: Vec::new(),
            not_after,
            not_after_text: "then".into(),
            sha256: String::new(),
            is_ca: true,
        }
    }

    #[test]
    fn an_expired_certificate_fails_and_one_about_to_expire_is_warned_of() {
        let now = 1_800_000_000;
        let day = 86_400;
        let expired = expiry("lab CA", &valid_until(now - 1), now);
        assert!(!expired.ok, "{}", expired.what);
        assert_eq!(expired.what, "lab CA expired on then");
        let soon = expiry("lab CA", &valid_until(now + 10 * day + 5), now);
        assert!(soon.ok && soon.warn, "{}", soon.what);
        assert_eq!(soon.what, "lab CA expires in 10 day(s), on then");
        let fine = expiry("lab CA", &valid_until(now + 31 * day), now);
        assert!(fine.ok && !fine.warn, "{}", fine.what);
    }
}
