//! Shared by the integration tests: paths, a DNS client that sends exactly one query, and a
//! server started on a free port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use srvlab::dns::DnsServer;
use srvlab::model::diag::SourceFile;
use srvlab::model::zone::ZoneSet;
use srvlab::timeline::{Timeline, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The workspace root (where `fixtures/` lives).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// A fixture file read with its path shown relative to the workspace root, as a user types it.
pub fn fixture(relative: &str) -> Arc<SourceFile> {
    let text = std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|err| panic!("read {relative}: {err}"));
    SourceFile::new(relative, text)
}

/// A world from case YAML (`name` for its diagnostics, `base` where its relative paths
/// start); the DNS listens on a free port of 127.0.0.1, without TLS of a lab.
pub async fn world_from(name: &str, yaml: &str, base: &Path) -> srvlab::world::World {
    use srvlab::model::case::Case;
    use srvlab::world::{World, WorldOptions};
    let (case, diagnostics) = Case::parse(&SourceFile::new(name, yaml), base);
    let case = case.unwrap_or_else(|| panic!("{name} does not validate:\n{diagnostics}"));
    let options = WorldOptions {
        dns_given_by: "the test".into(),
        ..WorldOptions::default()
    };
    World::start(&case, &options, Timeline::new())
        .await
        .expect("the world comes up")
}

/// Zones from YAML text; panics with the diagnostics when they do not validate.
pub fn zones_from(texts: &[&str]) -> ZoneSet {
    let files: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| SourceFile::new(format!("inline-{i}.yaml"), *t))
        .collect();
    let (set, diagnostics) = ZoneSet::parse(&files);
    set.unwrap_or_else(|| panic!("zones do not validate:\n{diagnostics}"))
}

pub fn fixture_zones(relative: &str) -> ZoneSet {
    let (set, diagnostics) = ZoneSet::parse(&[fixture(relative)]);
    set.unwrap_or_else(|| panic!("{relative} does not validate:\n{diagnostics}"))
}

/// A server on 127.0.0.1 with a free port, recording on a fresh timeline.
pub async fn start(zones: ZoneSet) -> DnsServer {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    DnsServer::start(zones, &[listen], Timeline::new())
        .await
        .expect("start the DNS server")
}

/// Sends one query (never retried) and waits up to `wait` for its answer.
pub async fn query_within(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut message = Message::query();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    let bytes = message.to_vec().unwrap();
    let exchange = async {
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.send_to(&bytes, server).await.unwrap();
                let mut buf = vec![0; 65535];
                let (len, _) = socket.recv_from(&mut buf).await.unwrap();
                buf.truncate(len);
                buf
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await.unwrap();
                let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
                stream
                    .write_all(&[&len[..], &bytes].concat())
                    .await
                    .unwrap();
                let length = usize::from(stream.read_u16().await.unwrap());
                let mut buf = vec![0; length];
                stream.read_exact(&mut buf).await.unwrap();
                buf
            }
            Transport::Tls => panic!("srvlab's DNS server does not speak DNS over TLS"),
        }
    };
    let answer = tokio::time::timeout(wait, exchange).await.ok()?;
    let answer = Message::from_vec(&answer).expect("the server's answer decodes");
    assert_eq!(answer.metadata.id, message.metadata.id, "answer id matches");
    Some(answer)
}

/// One query; loopback answers come in milliseconds, so 5 s only guards against a hang.
pub async fn query(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
) -> Message {
    query_within(server, transport, name, qtype, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer to {name} {qtype} over {transport}"))
}

/// (status, sentence) of one case's check in a report.json.
pub fn verdict(report: &serde_json::Value, case: &str, check: &str) -> (String, String) {
    let case = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == case)
        .unwrap_or_else(|| panic!("no case {case}"));
    let verdict = case["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == check)
        .unwrap_or_else(|| panic!("no verdict {check} in {case}"));
    (
        verdict["status"].as_str().unwrap().to_string(),
        verdict["sentence"].as_str().unwrap().to_string(),
    )
}

/// A network namespace of a test's own (root and iproute2), with `lo` up and the given
/// addresses on it; removed when dropped.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn create(name: &str, addresses: &[&str]) -> Self {
        use std::process::{Command, Stdio};
        // A namespace left over from a killed run goes first.
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let made = Command::new("ip").args(["netns", "add", name]).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "`ip netns add {name}` failed: this test needs root and iproute2"
        );
        let namespace = Self {
            name: name.to_owned(),
        };
        namespace.ip(&["link", "set", "lo", "up"]);
        for address in addresses {
            // nodad: usable at once, without duplicate address detection's wait.
            namespace.ip(&["addr", "add", address, "dev", "lo", "nodad"]);
        }
        namespace
    }

    /// `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let status = std::process::Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip -n {} {args:?}",
            self.name
        );
    }

    /// `program` to be run inside the namespace.
    pub fn exec(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A lab's own CA, as a lab keeps it (certificate and PKCS#8 key in PEM), written to `dir`.
pub fn lab_ca(dir: &Path, name: &str) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("lab-ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("lab-ca.key"), key.serialize_pem()).unwrap();
    dir.join("lab-ca.pem")
}
