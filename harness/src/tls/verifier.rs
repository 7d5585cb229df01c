//! How the reference UA checks a server's certificate: fully (chain to a trusted CA and the
//! SRV target's name, RFC 5922 §7.2), or — under a named fault — as two common TLS bugs of
//! SIP stacks do: the chain but not the name, or nothing at all.

use std::sync::Arc;

use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::provider;

/// What a client checks of the certificate a server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertificateCheck {
    /// Chain to a trusted CA, and the name.
    #[default]
    Full,
    /// The chain only: a trusted CA's certificate for any name passes (fault `no-hostname-check`).
    ChainOnly,
    /// Nothing: any certificate passes (fault `no-certificate-check`).
    Nothing,
}

/// WebPKI's verdict, overruled where the check is lax. Signatures are always verified: the
/// server must hold the key of the certificate it presents.
#[derive(Debug)]
struct Lax {
    inner: Arc<WebPkiServerVerifier>,
    check: CertificateCheck,
}

impl ServerCertVerifier for Lax {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match (verdict, self.check) {
            (Ok(verified), _) => Ok(verified),
            (Err(_), CertificateCheck::Nothing) => Ok(ServerCertVerified::assertion()),
            (
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )),
                CertificateCheck::ChainOnly,
            ) => Ok(ServerCertVerified::assertion()),
            (Err(err), _) => Err(err),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The verifier for `roots` under `check`.
pub fn verifier(
    roots: RootCertStore,
    check: CertificateCheck,
) -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    Ok(match check {
        CertificateCheck::Full => inner,
        _ => Arc::new(Lax { inner, check }),
    })
}
