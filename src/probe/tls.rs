//! The TLS side of an HTTPS check, as the kubelet makes it: any
//! certificate is accepted (its prober sets InsecureSkipVerify), but the
//! handshake's signatures are still checked, so the session is with the
//! holder of the certificate's key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::tcp::{Head, Peeked};
pub use super::wording::TlsError;

/// Accepts every certificate (a probe's, as the kubelet's prober; an
/// insecure registry's); verifies handshake signatures with the
/// provider's algorithms.
#[derive(Debug)]
pub struct AnyCertificate(pub WebPkiSupportedAlgorithms);

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

fn config() -> Result<ClientConfig, TlsError> {
    let provider: CryptoProvider = rustls::crypto::ring::default_provider();
    let verifier = AnyCertificate(provider.signature_verification_algorithms);
    Ok(ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The TLS session, over a socket that keeps the first bytes the server
/// sent: "HTTP/" there means it speaks plain HTTP (how Go tells).
pub type Stream = tokio_rustls::client::TlsStream<Peeked>;

/// A TLS session over `tcp` with the server at `host`, its handshake done.
pub async fn connect(tcp: TcpStream, host: &str) -> Result<Stream, TlsError> {
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))?;
    let connector = TlsConnector::from(Arc::new(config()?));
    let head = Head::default();
    let socket = Peeked::new(tcp, 5, &head);
    match connector.connect(name, socket).into_fallible().await {
        Ok(stream) => Ok(stream),
        Err(_) if head.bytes() == b"HTTP/" => Err(TlsError::PlainHttp),
        Err((e, _)) => Err(TlsError::Handshake(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::sign::{CertifiedKey, SingleCertAndKey};
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    use crate::probe::http_get::HttpGet;
    use crate::probe::test_support::{http_get, http_hook};
    use crate::probe::verdict::Verdict;

    /// A self-signed certificate for "localhost" and the DER of a key:
    /// its own, or (`mismatched`) another one.
    fn certificate(mismatched: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = if mismatched {
            rcgen::KeyPair::generate().unwrap()
        } else {
            made.signing_key
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (made.cert.der().clone(), key)
    }

    /// An HTTPS server answering one request with `status`; it sends the
    /// request's head on the channel.
    fn serve_tls(status: &'static str, mismatched: bool) -> (u16, mpsc::Receiver<String>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert, key) = certificate(mismatched);
        // A resolver, not with_single_cert: that would refuse a key that
        // does not match its certificate.
        let signing_key = provider.key_provider.load_private_key(key).unwrap();
        let resolver = SingleCertAndKey::from(CertifiedKey::new(vec![cert], signing_key));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let conn = ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = StreamOwned::new(conn, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            s.conn.send_close_notify();
            let _ = s.flush();
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
        });
        (port, rx)
    }

    fn https<'a>(port: u16, headers: &'a [(String, String)]) -> HttpGet<'a> {
        HttpGet {
            tls: true,
            host: "127.0.0.1",
            port,
            path: "/healthz",
            headers,
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn https_accepts_a_self_signed_certificate_and_judges_the_status() {
        let (ok, rx) = serve_tls("200 OK", false);
        assert_eq!(
            http_get(&https(ok, &[]), T),
            Verdict::Success("HTTP probe succeeded with statuscode: 200".to_owned())
        );
        let head = rx.recv().unwrap();
        assert!(head.starts_with(&format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{ok}\r\n"
        )));
        assert!(head.contains("\r\nUser-Agent: kube-probe/1.37\r\n"));

        let (bad, _) = serve_tls("500 Internal Server Error", false);
        assert_eq!(
            http_get(&https(bad, &[]), T),
            Verdict::Failure("HTTP probe failed with statuscode: 500".to_owned())
        );
    }

    #[test]
    fn https_still_checks_the_handshake_signature() {
        let (port, _) = serve_tls("200 OK", true);
        assert_eq!(
            http_get(&https(port, &[]), T),
            Verdict::Failure(format!(
                "Get \"https://127.0.0.1:{port}/healthz\": invalid peer certificate: BadSignature"
            ))
        );
    }

    /// A plain HTTP server: answers anything with 200 and sends the
    /// request's bytes on the channel.
    fn serve_plain(requests: usize) -> (u16, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..requests {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tx.send(buf[..n].to_vec());
            }
        });
        (port, rx)
    }

    #[test]
    fn a_plain_http_server_fails_an_https_probe_but_a_hook_falls_back_to_http() {
        let (port, _) = serve_plain(1);
        assert_eq!(
            http_get(&https(port, &[]), T),
            Verdict::Failure(format!(
                "Get \"https://127.0.0.1:{port}/healthz\": http: server gave HTTP response to HTTPS client"
            ))
        );

        let (port, rx) = serve_plain(2);
        let headers = [
            ("Authorization".to_owned(), "Bearer x".to_owned()),
            ("X-A".to_owned(), "b".to_owned()),
        ];
        // The kubelet tells of the fallback with a warning event.
        assert_eq!(
            http_hook(&https(port, &headers), T),
            Verdict::Warning(format!(
                "request to HTTPS lifecycle hook 127.0.0.1:{port} got HTTP response, retry with HTTP succeeded"
            ))
        );
        let hello = rx.recv().unwrap();
        assert_eq!(hello[0], 0x16, "a TLS handshake record first");
        let retried = String::from_utf8(rx.recv().unwrap()).unwrap();
        assert!(
            retried.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{retried}"
        );
        assert!(retried.contains("\r\nX-A: b\r\n"), "{retried}");
        assert!(!retried.contains("Authorization"), "{retried}");
    }
}
