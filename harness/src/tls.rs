//! TLS for a case: the run's own test CA, one server certificate per zone host name, and the
//! rustls configurations built from them. Every session's secrets go on the timeline as
//! [`EventKind::TlsSecret`] events, so the recorded capture can be decrypted (the run writes them
//! as an NSS key log, `keylog.txt`, next to `capture.pcap`).
//!
//! A fresh CA per run: nothing to install, nothing that expires between runs, and a device that
//! trusts it has been configured for this lab on purpose.

use std::collections::HashMap;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ClientConfig, KeyLog, RootCertStore, ServerConfig};

use crate::timeline::{EventKind, Timeline, TlsSecret};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate for {host}: {source}")]
    Certificate { host: String, source: rcgen::Error },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// One host's certificate chain and key.
#[derive(Debug)]
struct HostCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// The run's test CA and the certificates it issued.
#[derive(Debug)]
pub struct TestPki {
    ca: CertificateDer<'static>,
    ca_pem: String,
    hosts: HashMap<String, HostCert>,
}

/// A zone host name as a certificate names it: lower case, without the trailing dot.
pub fn certificate_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

impl TestPki {
    /// A CA and one certificate per host (SAN = the host name without its trailing dot).
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<Self, TlsError> {
        let cert_error = |host: &str| {
            let host = host.to_string();
            move |source| TlsError::Certificate { host, source }
        };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_error("the test CA"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "srvlab test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(cert_error("the test CA"))?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(cert_error("the test CA"))?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut issued = HashMap::new();
        for host in hosts {
            let name = certificate_name(host);
            if issued.contains_key(&name) {
                continue;
            }
            let mut params =
                CertificateParams::new(vec![name.clone()]).map_err(cert_error(&name))?;
            params.distinguished_name.push(DnType::CommonName, &name);
            let key = KeyPair::generate().map_err(cert_error(&name))?;
            let cert = params.signed_by(&key, &issuer).map_err(cert_error(&name))?;
            issued.insert(
                name,
                HostCert {
                    chain: vec![cert.der().clone(), ca_cert.der().clone()],
                    key: PrivatePkcs8KeyDer::from(key.serialize_der()),
                },
            );
        }
        Ok(Self {
            ca: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            hosts: issued,
        })
    }

    /// The CA certificate in PEM, for a device that is to trust it.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
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
            .with_single_cert(
                cert.chain.clone(),
                PrivateKeyDer::Pkcs8(cert.key.clone_key()),
            )?;
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

    /// A client configuration that trusts this run's CA only (the reference UA's). It logs no
    /// secrets: the server logs the same ones for every session.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
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
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    async fn handshake(pki: &TestPki, server_host: &str, asked_name: &str) -> Result<(), String> {
        let timeline = Timeline::new();
        let server = pki.server_config(server_host, &timeline).unwrap().unwrap();
        let client = pki.client_config().unwrap();
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
        let client = pki.client_config().unwrap();
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
