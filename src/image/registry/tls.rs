//! TLS to registries as containers-certs.d(5) sets it up: the system's
//! roots plus a host's `certs.d/HOST[:PORT]/*.crt`, its client
//! certificate when it has one, and no verification at all for a registry
//! registries.conf marks insecure.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::certs::{self, CertsError};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// How each registry host is spoken to over TLS.
pub struct TlsPolicy {
    cert_dirs: Vec<PathBuf>,
    /// Authorities (`host[:port]`) whose certificates are not verified.
    insecure: BTreeSet<String>,
    configs: Mutex<HashMap<String, Arc<ClientConfig>>>,
}

impl TlsPolicy {
    pub fn new(cert_dirs: Vec<PathBuf>, insecure: BTreeSet<String>) -> TlsPolicy {
        TlsPolicy {
            cert_dirs,
            insecure,
            configs: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_insecure(&self, authority: &str) -> bool {
        self.insecure.contains(certs_name(authority))
    }

    /// The client configuration for `authority`, made once.
    pub fn config_for(&self, authority: &str) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = configs.get(authority) {
            return Ok(c.clone());
        }
        let config = Arc::new(self.make(authority)?);
        configs.insert(authority.to_owned(), config.clone());
        Ok(config)
    }

    fn make(&self, authority: &str) -> Result<ClientConfig, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let host = certs::for_host(certs_name(authority), &self.cert_dirs)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.is_insecure(authority) {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider.signature_verification_algorithms,
                )))
        } else {
            let mut roots = RootCertStore::empty();
            // A bad certificate among the system's is skipped, as Go does;
            // no system roots at all leaves certs.d's.
            match certs::system_roots() {
                Ok(system) => {
                    roots.add_parsable_certificates(system);
                }
                Err(e) => tracing::warn!("no system CA certificates: {e}"),
            }
            for cert in host.roots {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots)
        };
        Ok(match host.identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        })
    }

    /// What to do about a handshake that failed on the certificate.
    pub fn hint(&self, e: &std::io::Error, authority: &str) -> Option<String> {
        let certificate = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
        if !certificate {
            return None;
        }
        let dir = self
            .cert_dirs
            .iter()
            .find(|d| d.ends_with("containers/certs.d"))
            .or(self.cert_dirs.first())?;
        Some(format!(
            "the registry's certificate is not trusted here: put its CA certificate in {}/{authority}/ca.crt, or mark the registry insecure in registries.conf",
            dir.display()
        ))
    }
}

/// The name certs.d and registries.conf know a registry by: Docker Hub's
/// API host is docker.io to them, as to containers/image.
fn certs_name(authority: &str) -> &str {
    if authority == "registry-1.docker.io" {
        "docker.io"
    } else {
        authority
    }
}

/// Accepts every certificate (an insecure registry); still checks the
/// handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
