//! TLS to registries as containers-certs.d(5) sets it up: the system's
//! roots plus a host's `certs.d/HOST[:PORT]/*.crt`, its client
//! certificate when it has one, and no verification at all for a registry
//! registries.conf marks insecure.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::{ClientConfig, RootCertStore};

use super::certs::{self, CertsError};
// An insecure registry's certificate is not verified, as a probe's is not;
// the handshake's signatures still are.
use crate::probe::tls::AnyCertificate;

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
