//! TLS for a case: the run's own test CA, one server certificate per zone host name, and the
//! rustls configurations built from them. Every session's secrets go on the timeline as
//! [`EventKind::TlsSecret`] events, so the recorded capture can be decrypted (the run writes them
//! as an NSS key log, `keylog.txt`, next to `capture.pcap`).
//!
//! A fresh CA per run: nothing to install, nothing that expires between runs, and a device that
//! trusts it has been configured for this lab on purpose. A real phone on a bench trusts its
//! lab's CA instead: a lab profile's `tls:` names that CA (and its key, to issue each host's
//! certificate from it) or fixed certificates by host ([`LabPki`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ClientConfig, KeyLog, RootCertStore, ServerConfig};

use crate::timeline::{EventKind, Timeline, TlsSecret};

mod verifier;
pub use verifier::CertificateCheck;

/// The name on the certificate a `tls: {fail: wrong_name}` server presents.
pub const WRONG_NAME: &str = "wrong-name.invalid.";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate for {host}: {source}")]
    Certificate { host: String, source: rcgen::Error },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("the lab's CA cannot issue certificates: {0}")]
    LabCa(#[from] PemError),
}

/// What is wrong with a lab's PEM file (the lab file's diagnostics say which one).
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("no PEM certificate in it (a `-----BEGIN CERTIFICATE-----` block)")]
    NoCertificate,
    #[error("not a readable X.509 certificate: {0}")]
    BadCertificate(String),
    #[error("no PEM private key in it: {0}")]
    BadKey(String),
    #[error(
        "the CA's key must be PKCS#8 (`-----BEGIN PRIVATE KEY-----`; openssl pkcs8 -topk8 -nocrypt converts one): {0}"
    )]
    NotPkcs8(rcgen::Error),
    #[error("the key does not belong to the certificate ({0})")]
    KeyMismatch(rustls::Error),
    #[error("the certificate is no CA (its basicConstraints do not say CA:TRUE)")]
    NotCa,
    #[error("the certificate names {names}, not {host}")]
    WrongName { host: String, names: String },
}

/// What a certificate says about itself, for the doctor and the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// The DNS names of its subjectAltName, lower case.
    pub names: Vec<String>,
    /// The end of its validity, in seconds since the Unix epoch, and as a person reads it.
    pub not_after: i64,
    pub not_after_text: String,
    /// SHA-256 of its DER, colon-separated upper-case hex (as `openssl x509 -fingerprint
    /// -sha256` prints it), so a person can compare it with the CA the phone trusts.
    pub sha256: String,
    pub is_ca: bool,
}

impl CertInfo {
    pub fn of(der: &CertificateDer<'_>) -> Result<Self, PemError> {
        let (_, x509) = x509_parser::parse_x509_certificate(der)
            .map_err(|err| PemError::BadCertificate(err.to_string()))?;
        let names = match x509.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(err) => return Err(PemError::BadCertificate(err.to_string())),
        };
        let digest = ::ring::digest::digest(&::ring::digest::SHA256, der);
        Ok(Self {
            subject: x509.subject().to_string(),
            issuer: x509.issuer().to_string(),
            names,
            not_after: x509.validity().not_after.timestamp(),
            not_after_text: x509.validity().not_after.to_string(),
            sha256: digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
            is_ca: x509.is_ca(),
        })
    }

    /// Whether the certificate is good for `host` (a zone name): one of its names is the
    /// host's, or a wildcard for the host's parent (`*.snom.rocks`).
    pub fn names_host(&self, host: &str) -> bool {
        let name = certificate_name(host);
        self.names.iter().any(|san| {
            san.trim_end_matches('.') == name
                || san.strip_prefix("*.").is_some_and(|parent| {
                    name.split_once('.')
                        .is_some_and(|(_, rest)| rest == parent.trim_end_matches('.'))
                })
        })
    }
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| PemError::BadCertificate(err.to_string()))?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(chain)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| PemError::BadKey(err.to_string()))
}

/// `key` belongs to the first certificate of `chain` (what rustls checks before serving).
fn keys_match(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), PemError> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|err| match err {
        rustls::Error::InconsistentKeys(_) => PemError::KeyMismatch(err),
        other => PemError::BadKey(other.to_string()),
    })?;
    Ok(())
}

/// A lab's own CA: the one its phones trust. With its key, srvlab issues each host's
/// certificate from it; without, it is only what the lab's fixed certificates chain to.
#[derive(Clone)]
pub struct LabCa {
    /// Where it was read from, for the reports.
    pub path: PathBuf,
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    key_pem: Option<String>,
    pub info: CertInfo,
}

impl fmt::Debug for LabCa {
    // Never the key: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabCa")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("has_key", &self.key_pem.is_some())
            .finish()
    }
}

impl LabCa {
    /// The CA certificate (the first in `cert_pem`); [`Self::with_key`] adds its key.
    pub fn from_pem(path: PathBuf, cert_pem: &str) -> Result<Self, PemError> {
        let cert = certificates(cert_pem)?.swap_remove(0);
        let info = CertInfo::of(&cert)?;
        if !info.is_ca {
            return Err(PemError::NotCa);
        }
        Ok(Self {
            path,
            // As the lab wrote it: ca.pem beside a capture is then the very file the phone has.
            cert_pem: cert_pem.to_string(),
            cert,
            key_pem: None,
            info,
        })
    }

    /// The CA's key, checked against the certificate and readable by rcgen.
    pub fn with_key(mut self, key_pem: &str) -> Result<Self, PemError> {
        KeyPair::from_pem(key_pem).map_err(PemError::NotPkcs8)?;
        keys_match(vec![self.cert.clone()], private_key(key_pem)?)?;
        self.key_pem = Some(key_pem.to_string());
        Ok(self)
    }

    pub fn can_issue(&self) -> bool {
        self.key_pem.is_some()
    }

    fn issuer(&self) -> Result<Option<Issuer<'static, KeyPair>>, PemError> {
        let Some(key_pem) = &self.key_pem else {
            return Ok(None);
        };
        let key = KeyPair::from_pem(key_pem).map_err(PemError::NotPkcs8)?;
        Issuer::from_ca_cert_der(&self.cert, key)
            .map(Some)
            .map_err(|err| PemError::BadCertificate(err.to_string()))
    }
}

/// A lab's fixed certificate for one host: served as it is, chain and key.
#[derive(Clone)]
pub struct FixedCert {
    pub path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The first (the host's own) certificate.
    pub info: CertInfo,
}

impl fmt::Debug for FixedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedCert")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

impl FixedCert {
    /// `host`'s chain (its own certificate first) and key; the certificate must name the host.
    pub fn from_pem(
        path: PathBuf,
        host: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<Self, PemError> {
        let chain = certificates(chain_pem)?;
        let info = CertInfo::of(&chain[0])?;
        if !info.names_host(host) {
            return Err(PemError::WrongName {
                host: certificate_name(host),
                names: if info.names.is_empty() {
                    "no DNS name (no subjectAltName)".into()
                } else {
                    info.names.join(", ")
                },
            });
        }
        let key = private_key(key_pem)?;
        keys_match(chain.clone(), key.clone_key())?;
        Ok(Self {
            path,
            chain,
            key: Arc::new(key),
            info,
        })
    }
}

/// What a lab brings for TLS: its CA, and fixed certificates by certificate name.
#[derive(Clone, Debug, Default)]
pub struct LabPki {
    pub ca: Option<LabCa>,
    pub fixed: BTreeMap<String, FixedCert>,
}

/// Where a host's certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CertSource {
    /// Issued by this run's own CA (ca.pem beside the capture).
    RunCa,
    /// Issued by the lab's CA.
    LabCa,
    /// The lab's fixed certificate for the host.
    Fixed,
}

impl fmt::Display for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RunCa => "issued by the run's own CA",
            Self::LabCa => "issued by the lab's CA",
            Self::Fixed => "the lab's fixed certificate",
        })
    }
}

impl LabPki {
    pub fn source_for(&self, host: &str) -> CertSource {
        if self.fixed.contains_key(&certificate_name(host)) {
            CertSource::Fixed
        } else if self.ca.as_ref().is_some_and(LabCa::can_issue) {
            CertSource::LabCa
        } else {
            CertSource::RunCa
        }
    }
}

/// One host's certificate chain and key.
#[derive(Debug)]
struct HostCert {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    source: CertSource,
}

/// The certificates of a case's hosts, and the CA a device is to trust for them.
#[derive(Debug)]
pub struct TestPki {
    /// What a client trusts: the lab's CA and the run's, whichever are in play.
    roots: Vec<CertificateDer<'static>>,
    ca_pem: Option<String>,
    /// Whether ca.pem is the lab's CA (else the run's, or none).
    labs_ca: bool,
    hosts: HashMap<String, HostCert>,
}

/// A zone host name as a certificate names it: lower case, without the trailing dot.
pub fn certificate_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A fresh CA for this run.
fn run_ca() -> Result<(rcgen::Certificate, Issuer<'static, KeyPair>), TlsError> {
    let cert_error = |source| TlsError::Certificate {
        host: "the test CA".into(),
        source,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "srvlab test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
    Ok((ca_cert, Issuer::new(ca_params, ca_key)))
}

/// How long a certificate from a lab's CA is valid at most: what strict clients accept of a
/// server certificate.
const LAB_CERT_DAYS: i64 = 397;

/// A server certificate for `name` from `issuer`, with the issuer's certificate as its chain.
/// From a lab's CA (`ca_not_after` given) it is valid from an hour ago for [`LAB_CERT_DAYS`],
/// never beyond the CA itself: a phone may check both, unlike the run's own CA's certificates
/// (rcgen's 1975–4096), which only srvlab's run trusts.
fn issue(
    name: &str,
    issuer: &Issuer<'static, KeyPair>,
    issuer_cert: &CertificateDer<'static>,
    source: CertSource,
    ca_not_after: Option<i64>,
) -> Result<HostCert, TlsError> {
    use x509_parser::time::ASN1Time;
    let cert_error = |source| TlsError::Certificate {
        host: name.to_string(),
        source,
    };
    let mut params = CertificateParams::new(vec![name.to_string()]).map_err(cert_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    if let Some(ca_not_after) = ca_not_after {
        let now = ASN1Time::now().timestamp();
        let end = ca_not_after.min(now + LAB_CERT_DAYS * 86_400);
        if let (Ok(from), Ok(to)) = (
            ASN1Time::from_timestamp(now - 3600),
            ASN1Time::from_timestamp(end),
        ) {
            params.not_before = from.to_datetime();
            params.not_after = to.to_datetime();
        }
    }
    // Some phones insist on serverAuth in a server's certificate.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    Ok(HostCert {
        chain: vec![cert.der().clone(), issuer_cert.clone()],
        key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        ))),
        source,
    })
}

impl TestPki {
    /// A CA and one certificate per host (SAN = the host name without its trailing dot).
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<Self, TlsError> {
        Self::with_lab(hosts, &LabPki::default())
    }

    /// One certificate per host as the lab says: its fixed certificate, else one issued by
    /// the lab's CA, else one from a CA of this run (made only when a host needs it).
    pub fn with_lab<'a>(
        hosts: impl IntoIterator<Item = &'a str>,
        lab: &LabPki,
    ) -> Result<Self, TlsError> {
        let lab_issuer = match &lab.ca {
            Some(ca) => ca
                .issuer()?
                .map(|issuer| (issuer, ca.cert.clone(), ca.info.not_after)),
            None => None,
        };
        let mut run: Option<(rcgen::Certificate, Issuer<'static, KeyPair>)> = None;
        let mut issued = HashMap::new();
        for host in hosts {
            let name = certificate_name(host);
            if issued.contains_key(&name) {
                continue;
            }
            let cert = match (lab.fixed.get(&name), &lab_issuer) {
                (Some(fixed), _) => HostCert {
                    chain: fixed.chain.clone(),
                    key: fixed.key.clone(),
                    source: CertSource::Fixed,
                },
                (None, Some((issuer, ca, not_after))) => {
                    issue(&name, issuer, ca, CertSource::LabCa, Some(*not_after))?
                }
                (None, None) => {
                    let (ca, issuer) = match run.take() {
                        Some(made) => made,
                        None => run_ca()?,
                    };
                    let cert = issue(&name, &issuer, ca.der(), CertSource::RunCa, None)?;
                    run = Some((ca, issuer));
                    cert
                }
            };
            issued.insert(name, cert);
        }
        let mut roots = Vec::new();
        let mut ca_pem = None;
        if let Some(ca) = &lab.ca {
            roots.push(ca.cert.clone());
            ca_pem = Some(ca.cert_pem.clone());
        }
        if let Some((ca, _)) = &run {
            roots.push(ca.der().clone());
            // Beside a lab's CA that cannot issue (no key), the run's issued some hosts'
            // certificates: a device trusting ca.pem is to trust both.
            match &mut ca_pem {
                Some(labs) => {
                    if !labs.ends_with('\n') {
                        labs.push('\n');
                    }
                    labs.push_str(&ca.pem());
                }
                None => ca_pem = Some(ca.pem()),
            }
        }
        Ok(Self {
            roots,
            ca_pem,
            labs_ca: lab.ca.is_some(),
            hosts: issued,
        })
    }

    /// The CA certificate(s) in PEM, for a device that is to trust them: the lab's when it
    /// has one, the run's when it issued any (both, when a lab's CA without its key stands
    /// beside hosts the run's CA issued for); `None` when every host has a fixed certificate
    /// and the lab names no CA.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Whether [`Self::ca_pem`] holds the lab's CA file.
    pub fn ca_is_labs(&self) -> bool {
        self.labs_ca
    }

    /// Where each host's certificate came from, by certificate name, sorted.
    pub fn sources(&self) -> Vec<(String, CertSource)> {
        let mut all: Vec<(String, CertSource)> = self
            .hosts
            .iter()
            .map(|(name, cert)| (name.clone(), cert.source))
            .collect();
        all.sort();
        all
    }

    /// A server configuration presenting `host`'s certificate, logging its secrets on
    /// `timeline`; `None` when no certificate was made for `host`.
    pub fn server_config(
        &self,
        host: &str,
        timeline: &Timeline,
    ) -> Result<Option<Arc<ServerConfig>>, TlsError> {
        let Some(cert) = self.hosts.get(&certificate_name(host)) else {
            return Ok(None);
        };
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())?;
        config.key_log = Arc::new(TimelineKeyLog(timeline.clone()));
        Ok(Some(Arc::new(config)))
    }

    /// A server configuration presenting a self-signed certificate for `host`: right name,
    /// untrusted issuer (a `tls: {fail: bad_certificate}` server).
    pub fn untrusted_server_config(
        host: &str,
        timeline: &Timeline,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let name = certificate_name(host);
        let cert_error = |source| TlsError::Certificate {
            host: name.clone(),
            source,
        };
        let mut params = CertificateParams::new(vec![name.clone()]).map_err(cert_error)?;
        params.distinguished_name.push(DnType::CommonName, &name);
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.key_log = Arc::new(TimelineKeyLog(timeline.clone()));
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts the CAs in play only (the reference UA's). It logs
    /// no secrets: the server logs the same ones for every session.
    pub fn client_config(&self, check: CertificateCheck) -> Result<Arc<ClientConfig>, TlsError> {
        client_config_trusting(&self.roots, check)
    }
}

/// A client configuration that trusts `roots` only (`srvlab ua --ca FILE`), checking what
/// `check` says of a server's certificate.
pub fn client_config_trusting(
    roots: &[CertificateDer<'static>],
    check: CertificateCheck,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier::verifier(store, check)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM text (a CA file a client is to trust).
pub fn certificates_in_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certificates(pem)
}

/// Puts each TLS secret on the timeline: the capture is a lab's, made to be decrypted.
#[derive(Debug)]
struct TimelineKeyLog(Timeline);

impl KeyLog for TimelineKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.0.record(EventKind::TlsSecret(TlsSecret {
            label: label.to_string(),
            client_random: client_random.to_vec(),
            secret: secret.to_vec(),
        }));
    }
}

/// The NSS key log line for a secret (`LABEL <client random hex> <secret hex>`), as Wireshark's
/// `tls.keylog_file` reads it.
pub fn keylog_line(secret: &TlsSecret) -> String {
    format!(
        "{} {} {}\n",
        secret.label,
        hex(&secret.client_random),
        hex(&secret.secret)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    #[test]
    fn certificate_names_drop_the_trailing_dot() {
        assert_eq!(
            certificate_name("SipServer1.Snom.Rocks."),
            "sipserver1.snom.rocks"
        );
    }

    #[test]
    fn unknown_host_has_no_server_config() {
        let pki = TestPki::new(["a.example."]).unwrap();
        let timeline = Timeline::new();
        assert!(
            pki.server_config("b.example.", &timeline)
                .unwrap()
                .is_none()
        );
        assert!(
            pki.ca_pem()
                .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----"))
        );
    }

    async fn handshake(pki: &TestPki, server_host: &str, asked_name: &str) -> Result<(), String> {
        handshake_trusting(
            pki,
            pki.client_config(CertificateCheck::Full).unwrap(),
            server_host,
            asked_name,
        )
        .await
    }

    async fn handshake_trusting(
        pki: &TestPki,
        client: Arc<ClientConfig>,
        server_host: &str,
        asked_name: &str,
    ) -> Result<(), String> {
        let timeline = Timeline::new();
        let server = pki.server_config(server_host, &timeline).unwrap().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = TlsAcceptor::from(server).accept(tcp).await.ok()?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.ok()?;
            Some(buf)
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(asked_name.to_string()).unwrap();
        let result = TlsConnector::from(client).connect(name, tcp).await;
        match result {
            Ok(mut tls) => {
                tls.write_all(b"hello").await.unwrap();
                tls.flush().await.unwrap();
                assert_eq!(accept.await.unwrap(), Some(*b"hello"));
                let secrets = timeline
                    .events()
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::TlsSecret(_)))
                    .count();
                assert!(secrets >= 4, "the server's TLS 1.3 secrets: {secrets}");
                Ok(())
            }
            Err(err) => Err(err.to_string()),
        }
    }

    #[tokio::test]
    async fn client_trusts_the_test_ca_for_the_right_name_only() {
        let pki = TestPki::new(["sip1.example.", "sip2.example."]).unwrap();
        handshake(&pki, "sip1.example.", "sip1.example")
            .await
            .unwrap();
        let wrong = handshake(&pki, "sip1.example.", "sip2.example").await;
        assert!(wrong.is_err_and(|e| e.contains("certificate")));
        // A certificate from another run's CA is not trusted.
        let other = TestPki::new(["sip1.example."]).unwrap();
        let timeline = Timeline::new();
        let server = other
            .server_config("sip1.example.", &timeline)
            .unwrap()
            .unwrap();
        let client = pki.client_config(CertificateCheck::Full).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = TlsAcceptor::from(server).accept(tcp).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("sip1.example").unwrap();
        assert!(TlsConnector::from(client).connect(name, tcp).await.is_err());
    }

    /// A lab's CA as a lab makes it: certificate and PKCS#8 key in PEM.
    fn lab_ca(name: &str) -> (String, String, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        (cert.pem(), key_pem, Issuer::new(params, key))
    }

    fn leaf(name: &str, issuer: &Issuer<'static, KeyPair>) -> (String, String) {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn the_labs_ca_issues_and_only_a_client_trusting_it_connects() {
        let (cert_pem, key_pem, _) = lab_ca("bench CA");
        let ca = LabCa::from_pem("ca.pem".into(), &cert_pem)
            .unwrap()
            .with_key(&key_pem)
            .unwrap();
        assert!(ca.info.is_ca && ca.info.subject.contains("bench CA"));
        assert_eq!(ca.info.sha256.len(), 32 * 3 - 1, "{}", ca.info.sha256);
        let lab = LabPki {
            ca: Some(ca),
            fixed: BTreeMap::new(),
        };
        let pki = TestPki::with_lab(["sip1.example."], &lab).unwrap();
        assert_eq!(pki.ca_pem(), Some(cert_pem.as_str()));
        assert_eq!(
            pki.sources(),
            [("sip1.example".to_string(), CertSource::LabCa)]
        );
        let issued = CertInfo::of(&pki.hosts["sip1.example"].chain[0]).unwrap();
        let now = x509_parser::time::ASN1Time::now().timestamp();
        assert!(issued.not_after > now && issued.not_after <= now + LAB_CERT_DAYS * 86_400);
        assert_eq!(issued.names, ["sip1.example"]);
        let trusts_lab = client_config_trusting(
            &certificates_in_pem(&cert_pem).unwrap(),
            CertificateCheck::Full,
        )
        .unwrap();
        handshake_trusting(&pki, trusts_lab, "sip1.example.", "sip1.example")
            .await
            .unwrap();
        // A device that trusts a run's CA (or any other) does not get through.
        let run = TestPki::new(["sip1.example."]).unwrap();
        let refused = handshake_trusting(
            &pki,
            run.client_config(CertificateCheck::Full).unwrap(),
            "sip1.example.",
            "sip1.example",
        )
        .await;
        assert!(refused.is_err_and(|e| e.contains("UnknownIssuer")));
    }

    #[tokio::test]
    async fn a_fixed_certificate_is_served_as_it_is() {
        let (other_ca, _, issuer) = lab_ca("elsewhere");
        let (chain, key) = leaf("s52.snom.rocks", &issuer);
        let fixed = FixedCert::from_pem("s52.pem".into(), "S52.snom.rocks.", &chain, &key).unwrap();
        let lab = LabPki {
            ca: None,
            fixed: [("s52.snom.rocks".to_string(), fixed)]
                .into_iter()
                .collect(),
        };
        let pki = TestPki::with_lab(["s52.snom.rocks.", "s53.snom.rocks."], &lab).unwrap();
        assert_eq!(
            pki.sources(),
            [
                ("s52.snom.rocks".to_string(), CertSource::Fixed),
                ("s53.snom.rocks".to_string(), CertSource::RunCa)
            ]
        );
        // The run's CA is what ca.pem holds; the fixed one's CA srvlab has no file for.
        assert!(pki.ca_pem().is_some_and(|pem| pem != other_ca));
        let trusts_other = client_config_trusting(
            &certificates_in_pem(&other_ca).unwrap(),
            CertificateCheck::Full,
        )
        .unwrap();
        handshake_trusting(&pki, trusts_other, "s52.snom.rocks.", "s52.snom.rocks")
            .await
            .unwrap();
        let only_fixed = TestPki::with_lab(["s52.snom.rocks."], &lab).unwrap();
        assert_eq!(only_fixed.ca_pem(), None);
        // The fixed certificate's CA named without its key: ca.pem holds it and the run's CA,
        // which issued for the other host.
        let with_ca = LabPki {
            ca: Some(LabCa::from_pem("ca.pem".into(), &other_ca).unwrap()),
            ..lab
        };
        let pki = TestPki::with_lab(["s52.snom.rocks.", "s53.snom.rocks."], &with_ca).unwrap();
        let ca_pem = pki.ca_pem().unwrap();
        assert!(ca_pem.starts_with(&other_ca) && pki.ca_is_labs());
        assert_eq!(ca_pem.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    }

    #[test]
    fn a_labs_pem_files_are_checked() {
        let (ca_pem, ca_key, issuer) = lab_ca("bench CA");
        let (_, other_key, _) = lab_ca("other");
        let (chain, key) = leaf("s52.snom.rocks", &issuer);
        let wrong_name = FixedCert::from_pem("x".into(), "s53.snom.rocks.", &chain, &key);
        assert!(wrong_name.is_err_and(
            |e| e.to_string() == "the certificate names s52.snom.rocks, not s53.snom.rocks"
        ),);
        assert!(matches!(
            FixedCert::from_pem("x".into(), "s52.snom.rocks.", &chain, &other_key),
            Err(PemError::KeyMismatch(_))
        ));
        assert!(matches!(
            LabCa::from_pem("x".into(), &ca_pem)
                .unwrap()
                .with_key(&other_key),
            Err(PemError::KeyMismatch(_))
        ));
        assert!(
            LabCa::from_pem("x".into(), &ca_pem)
                .unwrap()
                .with_key(&ca_key)
                .is_ok()
        );
        assert!(matches!(
            LabCa::from_pem("x".into(), &chain),
            Err(PemError::NotCa)
        ));
        assert!(matches!(
            LabCa::from_pem("x".into(), "not a certificate"),
            Err(PemError::NoCertificate)
        ));
        assert!(matches!(
            LabCa::from_pem("x".into(), &ca_pem)
                .unwrap()
                .with_key("junk"),
            Err(PemError::NotPkcs8(_))
        ));
        let wildcard = CertInfo {
            names: vec!["*.snom.rocks".into()],
            ..CertInfo::of(&certificates_in_pem(&chain).unwrap()[0]).unwrap()
        };
        assert!(wildcard.names_host("s9.snom.rocks."));
        assert!(!wildcard.names_host("a.s9.snom.rocks."));
    }

    #[test]
    fn keylog_lines_are_nss_format() {
        let line = keylog_line(&TlsSecret {
            label: "CLIENT_RANDOM".into(),
            client_random: vec![0xab, 0x01],
            secret: vec![0xff],
        });
        assert_eq!(line, "CLIENT_RANDOM ab01 ff\n");
    }
}
