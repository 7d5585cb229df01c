//! RFC 5626 keep-alives on real sockets (issue 14.1): a device's CRLFs and STUN Binding
//! requests to a listening server and to a closed port are recorded as keep-alives (timeline
//! event `keep_alive`), answered as the RFC asks (a pong over TCP, a Binding success response
//! over UDP, nothing to CRLFs over UDP), never a request, a malformed message or an attempt;
//! tshark reads them from the pcap.
//!
//! The events are read as their JSON (timeline.jsonl's form). Loopback block 127.0.97.0/24.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use srvlab::timeline::Event;
use srvlab::world::World;
use support::root;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const DEVICE: &str = "127.0.97.10";

/// `up` accepts over UDP and TCP; `down` is a closed port.
async fn world(up: &str, down: &str) -> World {
    let yaml = format!(
        "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n\
         \x20   - A: {{name: up, address: {up}}}\n    - A: {{name: down, address: {down}}}\n\
         servers:\n  - host: up.lab.test.\n    script: [{{behaviour: accept}}]\n\
         \x20 - host: down.lab.test.\n    script: [{{behaviour: refuse}}]\n"
    );
    let world =
        support::world_from("keep-alives.yaml", &yaml, &root().join("fixtures/cases")).await;
    assert!(
        world.sees_refusals(),
        "these tests run as root (CI does) so that raw sockets can see refusals"
    );
    world
}

fn json(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// The events of `kind`, e.g. "keep_alive".
fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// `(flow, kind, refused)` of every keep-alive, in timeline order.
fn keep_alives(events: &[Value]) -> Vec<(String, String, bool)> {
    of_kind(events, "keep_alive")
        .into_iter()
        .map(|e| {
            (
                e["flow"].as_str().unwrap_or_default().to_owned(),
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["refused"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn shown(events: &[Event]) -> String {
    events
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The timeline once it holds `enough`, or after 2 s (the raw-socket reader lags a little).
async fn events_when(world: &World, enough: impl Fn(&[Value]) -> bool) -> Vec<Event> {
    for _ in 0..100 {
        let events = world.timeline().events();
        if enough(&json(&events)) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.timeline().events()
}

fn binding_request(transaction: [u8; 12]) -> Vec<u8> {
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&transaction);
    request
}

/// The XOR-MAPPED-ADDRESS of a STUN Binding success response to `transaction`, decoded as RFC
/// 5389 §15.2 says (written here apart from srvlab's encoder).
fn xor_mapped_address(response: &[u8], transaction: [u8; 12]) -> SocketAddr {
    assert!(response.len() >= 20, "a STUN header: {response:?}");
    assert_eq!(&response[..2], &[0x01, 0x01], "Binding success response");
    assert_eq!(&response[4..8], &[0x21, 0x12, 0xa4, 0x42], "magic cookie");
    assert_eq!(
        &response[8..20],
        &transaction,
        "the request's transaction id"
    );
    let length = usize::from(u16::from_be_bytes([response[2], response[3]]));
    assert_eq!(response.len(), 20 + length);
    let mut at = 20;
    while at + 4 <= response.len() {
        let kind = u16::from_be_bytes([response[at], response[at + 1]]);
        let len = usize::from(u16::from_be_bytes([response[at + 2], response[at + 3]]));
        let value = &response[at + 4..at + 4 + len];
        if kind == 0x0020 {
            assert_eq!(value[1], 0x01, "IPv4");
            let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
            let ip: [u8; 4] = std::array::from_fn(|i| value[4 + i] ^ [0x21, 0x12, 0xa4, 0x42][i]);
            return SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    panic!("no XOR-MAPPED-ADDRESS in {response:?}");
}

/// tshark's reading of the capture of `events`: one line per packet, `fields` joined by `|`.
async fn tshark(world: &World, events: &[Event], name: &str, fields: &[&str]) -> Vec<String> {
    let pcap = std::env::temp_dir().join(format!("srvlab-ka-{name}-{}.pcap", std::process::id()));
    srvlab::capture::write_pcap(&pcap, world.timeline().wall_start(), events).unwrap();
    let mut args = vec![
        "-r".to_owned(),
        pcap.display().to_string(),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "separator=|".into(),
    ];
    for field in fields {
        args.extend(["-e".to_owned(), (*field).to_owned()]);
    }
    let out = tokio::process::Command::new("tshark")
        .args(&args)
        .output()
        .await
        .expect("tshark is needed (scripts/test installs it from Debian's packages)");
    let _ = std::fs::remove_file(&pcap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Over UDP: CRLFs to a listening server are keep-alives (not `sip_malformed`) and get no
/// answer; a STUN Binding request gets a success response naming the device's address and port;
/// the same to a closed port are refused keep-alives, no attempt. tshark shows them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_keep_alives_are_recorded_and_stun_is_answered() {
    let world = world("127.0.97.1", "127.0.97.2").await;
    let up: SocketAddr = "127.0.97.1:5060".parse().unwrap();
    let down: SocketAddr = "127.0.97.2:5060".parse().unwrap();
    let device = UdpSocket::bind(format!("{DEVICE}:0")).await.unwrap();
    let mut buf = vec![0u8; 2048];

    device.send_to(b"\r\n\r\n", up).await.unwrap();
    device.send_to(b"\r\n", up).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_millis(300), device.recv_from(&mut buf));
    assert!(answered.await.is_err(), "no answer to CRLFs over UDP");

    let transaction: [u8; 12] =
        std::array::from_fn(|i| (std::process::id() as u8) ^ (i as u8).wrapping_mul(37));
    device
        .send_to(&binding_request(transaction), up)
        .await
        .unwrap();
    let (len, from) = tokio::time::timeout(Duration::from_secs(2), device.recv_from(&mut buf))
        .await
        .expect("a STUN Binding success response")
        .unwrap();
    assert_eq!(from, up);
    assert_eq!(
        xor_mapped_address(&buf[..len], transaction),
        device.local_addr().unwrap(),
        "XOR-MAPPED-ADDRESS is where the request came from"
    );

    // To a closed port: the kernel refuses each, srvlab sees the ICMP quoting it.
    device.send_to(b"\r\n\r\n", down).await.unwrap();
    device
        .send_to(&binding_request(transaction), down)
        .await
        .unwrap();

    let events = events_when(&world, |events| {
        keep_alives(events).iter().filter(|k| k.2).count() >= 2
    })
    .await;
    let values = json(&events);
    let to = |e: &&Value, server: &str| e["local"] == server;
    assert_eq!(
        keep_alives(&values),
        [
            ("to_server".into(), "double_crlf".into(), false),
            ("to_server".into(), "crlf".into(), false),
            ("to_server".into(), "stun_request".into(), false),
            ("to_device".into(), "stun_response".into(), false),
            ("to_server".into(), "double_crlf".into(), true),
            ("to_server".into(), "stun_request".into(), true),
        ],
        "{}",
        shown(&events)
    );
    let recorded = of_kind(&values, "keep_alive");
    assert!(recorded[..4].iter().all(|e| to(e, "127.0.97.1:5060")));
    assert!(recorded[4..].iter().all(|e| to(e, "127.0.97.2:5060")));
    assert_eq!(recorded[0]["raw"], "0d0a0d0a");
    assert_eq!(
        recorded[0]["remote"],
        device.local_addr().unwrap().to_string()
    );
    for kind in ["sip_malformed", "sip_received", "refused"] {
        assert!(
            of_kind(&values, kind).is_empty(),
            "no {kind}:\n{}",
            shown(&events)
        );
    }
    let lines = shown(&events);
    assert!(
        lines.contains("keep-alive udp 127.0.97.10:")
            && lines.contains(
                "→ 127.0.97.2:5060 [down.lab.test.] double CRLF, refused (ICMP port unreachable)"
            ),
        "{lines}"
    );
    assert!(
        srvlab::checks::attempts::group(&events, &reference_profile()).is_empty(),
        "no attempt"
    );

    let rows = tshark(
        &world,
        &events,
        "udp",
        &[
            "udp.dstport",
            "ip.dst",
            "udp.payload",
            "stun.type",
            "stun.att.ipv4",
            "stun.att.port",
            "icmp.type",
            "_ws.malformed",
        ],
    )
    .await;
    world.shutdown().await.unwrap();
    let device_port = device.local_addr().unwrap().port().to_string();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("5060|127.0.97.1|0d0a0d0a|")),
        "the ping as UDP payload: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(&format!("|127.0.97.10|{device_port}|")) && r.contains("|0x0101|")),
        "tshark decodes the Binding success response and its XOR-MAPPED-ADDRESS: {rows:?}"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.split('|').nth(6) == Some("3"))
            .count(),
        2,
        "each refused keep-alive is followed by its ICMP port unreachable: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.ends_with('|')),
        "nothing malformed: {rows:?}"
    );
}

/// What the server sent next, within 2 s.
async fn read_some(tcp: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .expect("an answer within 2 s")
        .unwrap();
    buf.truncate(len);
    buf
}

/// Over TCP a ping (double CRLF) gets a pong (one CRLF) at once, before, between and after
/// messages; both are recorded in stream order, and the stream's bytes in the pcap are whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_ping_gets_a_pong() {
    let world = world("127.0.97.3", "127.0.97.4").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{DEVICE}:0").parse().unwrap()).unwrap();
    let mut tcp = socket
        .connect("127.0.97.3:5060".parse().unwrap())
        .await
        .unwrap();
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_some(&mut tcp).await, b"\r\n", "the pong");

    let local = tcp.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:up.lab.test SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKka1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:d@lab.test>;tag=1\r\nTo: <sip:up.lab.test>\r\n\
         Call-ID: ka-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(format!("{options}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n\r\n") {
        answer.extend(read_some(&mut tcp).await);
    }
    assert!(
        answer.starts_with(b"SIP/2.0 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(tcp);

    let events = events_when(&world, |events| !of_kind(events, "tcp_closed").is_empty()).await;
    let values = json(&events);
    let order: Vec<String> = values
        .iter()
        .filter_map(|e| match e["event"].as_str()? {
            "keep_alive" => Some(format!("{} {}", e["flow"].as_str()?, e["kind"].as_str()?)),
            "sip_received" => Some(format!("in {}", e["method"].as_str()?)),
            "sip_sent" => Some(format!("out {}", e["status"])),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "to_server double_crlf",
            "to_device crlf",
            "in OPTIONS",
            "out 200",
            "to_server double_crlf",
            "to_device crlf",
        ],
        "{}",
        shown(&events)
    );
    for kind in ["sip_malformed", "tcp_unframed"] {
        assert!(
            of_kind(&values, kind).is_empty(),
            "no {kind}:\n{}",
            shown(&events)
        );
    }

    let rows = tshark(
        &world,
        &events,
        "tcp",
        &[
            "tcp.srcport",
            "tcp.payload",
            "sip.Method",
            "sip.Status-Code",
            "_ws.malformed",
        ],
    )
    .await;
    world.shutdown().await.unwrap();
    let payloads: Vec<&str> = rows
        .iter()
        .filter_map(|r| {
            r.split('|')
                .nth(1)
                .filter(|p| p.len() <= 8 && !p.is_empty())
        })
        .collect();
    assert_eq!(
        payloads,
        ["0d0a0d0a", "0d0a", "0d0a0d0a", "0d0a"],
        "pings and pongs as TCP payload: {rows:?}"
    );
    assert!(rows.iter().any(|r| r.contains("|OPTIONS|")), "{rows:?}");
    assert!(
        rows.iter().all(|r| r.ends_with('|')),
        "nothing malformed: {rows:?}"
    );
}

/// Over TLS the same pong, inside the TLS stream; a stalled server (its SIP stack hung) answers
/// no ping at all, and the ping is recorded all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_ping_gets_a_pong_and_a_stalled_server_none() {
    let yaml = "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n\
        \x20   - A: {name: up, address: 127.0.97.5}\n    - A: {name: hung, address: 127.0.97.6}\n\
        servers:\n  - host: up.lab.test.\n    transports: [tls]\n    script: [{behaviour: accept}]\n\
        \x20 - host: hung.lab.test.\n    transports: [tcp]\n    script: [{behaviour: stall}]\n";
    let world = support::world_from("keep-alives.yaml", yaml, &root().join("fixtures/cases")).await;
    let connect = |to: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{DEVICE}:0").parse().unwrap()).unwrap();
        socket.connect(to.parse().unwrap()).await.unwrap()
    };
    let config = world
        .pki()
        .unwrap()
        .client_config(srvlab::tls::CertificateCheck::Full)
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("up.lab.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, connect("127.0.97.5:5061").await)
        .await
        .unwrap();
    tls.write_all(b"\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let mut pong = [0u8; 16];
    let len = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut pong))
        .await
        .expect("the pong within 2 s")
        .unwrap();
    assert_eq!(&pong[..len], b"\r\n");

    let mut hung = connect("127.0.97.6:5060").await;
    hung.write_all(b"\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let answered = tokio::time::timeout(Duration::from_millis(300), hung.read(&mut buf));
    assert!(answered.await.is_err(), "a stalled server answers nothing");

    let events = events_when(&world, |events| of_kind(events, "keep_alive").len() >= 3).await;
    world.shutdown().await.unwrap();
    let values = json(&events);
    let at = |local: &str| -> Vec<(String, String, String)> {
        of_kind(&values, "keep_alive")
            .into_iter()
            .filter(|e| e["local"] == local)
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                (text("transport"), text("flow"), text("kind"))
            })
            .collect()
    };
    let tuple = |t: &str, f: &str, k: &str| (t.to_owned(), f.to_owned(), k.to_owned());
    assert_eq!(
        at("127.0.97.5:5061"),
        [
            tuple("tls", "to_server", "double_crlf"),
            tuple("tls", "to_device", "crlf")
        ],
        "{}",
        shown(&events)
    );
    assert_eq!(
        at("127.0.97.6:5060"),
        [tuple("tcp", "to_server", "double_crlf")],
        "{}",
        shown(&events)
    );
    assert!(
        of_kind(&values, "sip_malformed").is_empty(),
        "{}",
        shown(&events)
    );
}

/// A "device" for the lab: it sends one REGISTER to `registrar` (which stalls: no answer, no
/// retransmission), then returns to srvlab's command trigger and keeps sending RFC 5626
/// keep-alives every second, to the registrar and to a closed port, for at most 30 s.
const PINGING_DEVICE: &str = r#"
import os, socket, sys, time

device, registrar, closed, pidfile = sys.argv[1:5]

def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((device, 0))
port = s.getsockname()[1]
tag = os.getpid()
register = (
    f"REGISTER sip:ka.test SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP {device}:{port};branch=z9hG4bKka{tag}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@ka.test>;tag=ka\r\n"
    "To: <sip:alice@ka.test>\r\n"
    f"Call-ID: ka-{tag}@{device}\r\n"
    "CSeq: 1 REGISTER\r\n"
    f"Contact: <sip:alice@{device}:{port}>\r\n"
    "Content-Length: 0\r\n\r\n"
)
s.sendto(register.encode(), addr(registrar))
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
for _ in range(30):
    for to in (registrar, closed):
        try:
            s.sendto(b"\r\n\r\n", addr(to))
        except OSError:
            pass
    time.sleep(1)
"#;

/// Issue 14: a device that sends keep-alives every second while a step waits for it to go
/// quiet. The step ends when the device has been quiet (keep-alives aside) for Timer B + 2 s,
/// not at the step's limit; the pings to the closed port are no refusals and F2 has nothing to
/// judge. Before: "REGISTER → still going at the step's limit", F2 on the pings.
#[test]
fn keep_alives_do_not_keep_a_step_open() {
    let dir = std::env::temp_dir().join(format!("srvlab-ka-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("pinging-device.py");
    std::fs::write(&script, PINGING_DEVICE).unwrap();
    let pidfile = dir.join("device.pid");
    let case = dir.join("keepalive-quiet.yaml");
    std::fs::write(
        &case,
        "id: keepalive-quiet\ntitle: a device that pings every second still goes quiet\n\
         zone:\n  origin: ka.test.\n  ttl: 60\n  records:\n\
         \x20   - SRV: {name: _sip._udp, priority: 1, weight: 50, port: 5060, target: a}\n\
         \x20   - SRV: {name: _sip._udp, priority: 2, weight: 50, port: 5060, target: b}\n\
         \x20   - A: {name: a, address: 127.0.97.21}\n\
         \x20   - A: {name: b, address: 127.0.97.22}\n\
         servers:\n  - host: a.ka.test.\n    script: [{behaviour: stall}]\n\
         \x20 - host: b.ka.test.\n    script: [{behaviour: refuse}]\n\
         device: {uri: \"sip:100@ka.test\", aor: \"sip:alice@ka.test\"}\n\
         steps: [register]\nchecks: [F2]\n",
    )
    .unwrap();
    let lab = dir.join("lab.yaml");
    std::fs::write(
        &lab,
        format!(
            "lab: pinging\ndns: 127.0.97.9:5391\naddresses: [127.0.97.21, 127.0.97.22]\n\
             device:\n  address: {DEVICE}\n  profile: {}\n  act_within: 5s\n\
             trigger:\n  kind: command\n  register: [python3, {}, {DEVICE}, \"127.0.97.21:5060\", \"127.0.97.22:5060\", {}]\n",
            root().join("fixtures/profiles/reference.yaml").display(),
            script.display(),
            pidfile.display()
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(&lab)
        .arg(&case)
        .arg("--out")
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let outcomes = report["cases"][0]["outcomes"].to_string();
    // Timer B at the profile's T1 of 20 ms is 1.28 s: quiet after 3.28 s, the step's limit
    // four times that.
    assert!(
        outcomes.contains("REGISTER → no final answer; quiet for 3.28s"),
        "{outcomes}\n{stdout}"
    );
    let (status, sentence) = support::verdict(&report, "keepalive-quiet", "F2");
    assert_eq!(status, "inconclusive", "{sentence}");
    let (_, events) =
        srvlab::timeline::jsonl::read(&out.join("cases/keepalive-quiet/timeline.jsonl")).unwrap();
    let values = json(&events);
    let pings = keep_alives(&values);
    assert!(
        pings.iter().filter(|k| k.2).count() >= 2 && pings.iter().filter(|k| !k.2).count() >= 2,
        "pings to the closed port and to the registrar: {pings:?}"
    );
    for kind in ["sip_malformed", "refused"] {
        assert!(
            of_kind(&values, kind).is_empty(),
            "no {kind}:\n{}",
            shown(&events)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn reference_profile() -> srvlab::model::profile::Profile {
    let (profile, diagnostics) =
        srvlab::model::profile::Profile::load(&root().join("fixtures/profiles/reference.yaml"));
    profile.unwrap_or_else(|| panic!("{diagnostics}"))
}
