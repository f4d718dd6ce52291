//! HTTP for the registry client: one request at a time over a fresh
//! connection (HTTP/1.1, plain or TLS), with connect and stall timeouts,
//! and redirects followed as a registry's blob storage needs them (to
//! another host, without the registry's credentials).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use iri_string::format::ToDedicatedString;
use iri_string::types::{UriAbsoluteStr, UriReferenceStr};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::tls::TlsPolicy;

/// How long a connection may take to open, and a request to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a body may go without a byte before the pull gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 10;
const AGENT: &str = concat!("podrun/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error(
        "TLS with {addr}: {reason}{}",
        hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default()
    )]
    Tls {
        addr: String,
        reason: String,
        hint: Option<String>,
    },
    #[error("{addr}: {reason}")]
    Exchange { addr: String, reason: String },
    #[error("{addr}: no answer in {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout { addr: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    Redirects { url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// An absolute http(s) URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// As in the URL: a name, an IPv4 address or a bracketed IPv6 one.
    pub host: String,
    pub port: u16,
    /// Path and query, from `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |reason: &str| HttpError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = UriAbsoluteStr::new(url).map_err(|e| bad(&e.to_string()))?;
        let scheme = match parsed.scheme_str().to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(bad(&format!("scheme {other:?} is not http or https"))),
        };
        let authority = parsed
            .authority_components()
            .ok_or_else(|| bad("no host"))?;
        if authority.userinfo().is_some() {
            return Err(bad("credentials in a URL are not accepted"));
        }
        let host = authority.host().to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match authority.port().filter(|p| !p.is_empty()) {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None if scheme == Scheme::Https => 443,
            None => 80,
        };
        let mut path = parsed.path_str().to_owned();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = parsed.query_str() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Url {
            scheme,
            host,
            port,
            path,
        })
    }

    /// `host:port` as certs.d and the credentials name it (the port only
    /// when it is not the scheme's).
    pub fn authority(&self) -> String {
        let default = match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The host without IPv6 brackets, for DNS and TLS.
    fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// `location` (absolute or relative) resolved against this URL.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        let base = self.to_string();
        let bad = |reason: String| HttpError::Url {
            url: location.to_owned(),
            reason,
        };
        let base = UriAbsoluteStr::new(&base).map_err(|e| bad(e.to_string()))?;
        let reference = UriReferenceStr::new(location).map_err(|e| bad(e.to_string()))?;
        Url::parse(
            reference
                .resolve_against(base)
                .to_dedicated_string()
                .as_ref(),
        )
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Makes connections: TLS set up per host by `tls`.
pub struct Http {
    pub tls: Arc<TlsPolicy>,
}

impl Http {
    /// Sends a GET or HEAD to `url` with `headers` and follows redirects;
    /// the Authorization header goes only to the first URL's host.
    pub async fn get(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<(Url, Response<Incoming>), HttpError> {
        let mut current = url.clone();
        let mut headers = headers.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(method.clone(), &current, &headers).await?;
            let redirect = matches!(
                response.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok());
            let (true, Some(location)) = (redirect, location) else {
                return Ok((current, response));
            };
            let next = current.join(location)?;
            if next.host != current.host
                || next.port != current.port
                || next.scheme != current.scheme
            {
                headers.remove(AUTHORIZATION);
            }
            current = next;
        }
        Err(HttpError::Redirects {
            url: url.to_string(),
        })
    }

    /// One request over a new connection.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, HttpError> {
        let addr = url.addr();
        let tcp = timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((url.bare_host(), url.port)),
        )
        .await
        .map_err(|_| HttpError::Timeout { addr: addr.clone() })?
        .map_err(|e| HttpError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        let _ = tcp.set_nodelay(true);
        let mut request = Request::builder()
            .method(method)
            .uri(&url.path)
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpError::Url {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        *request.headers_mut() = headers.clone();
        let host = HeaderValue::from_str(&url.authority()).map_err(|e| HttpError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        request.headers_mut().insert(HOST, host);
        request
            .headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static(AGENT));
        match url.scheme {
            Scheme::Http => exchange(tcp, request, &addr).await,
            Scheme::Https => {
                let config = self
                    .tls
                    .config_for(&url.authority())
                    .map_err(|e| HttpError::Tls {
                        addr: addr.clone(),
                        reason: e.to_string(),
                        hint: None,
                    })?;
                let name = ServerName::try_from(url.bare_host().to_owned()).map_err(|_| {
                    HttpError::Url {
                        url: url.to_string(),
                        reason: "invalid host name".to_owned(),
                    }
                })?;
                let stream = timeout(
                    CONNECT_TIMEOUT,
                    TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| HttpError::Timeout { addr: addr.clone() })?
                .map_err(|e| HttpError::Tls {
                    addr: addr.clone(),
                    hint: self.tls.hint(&e, &url.authority()),
                    reason: e.to_string(),
                })?;
                exchange(stream, request, &addr).await
            }
        }
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
    addr: &str,
) -> Result<Response<Incoming>, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| HttpError::Exchange {
        addr: addr.to_owned(),
        reason: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    // The connection lives as long as its response's body is read.
    tokio::spawn(conn);
    timeout(CONNECT_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| HttpError::Timeout {
            addr: addr.to_owned(),
        })?
        .map_err(failed)
}

/// A whole (small) body, at most `limit` bytes.
pub async fn read_body(
    response: Response<Incoming>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    loop {
        let frame = match timeout(STALL_TIMEOUT, body.frame()).await {
            Err(_) => return Err(format!("{what}: no data for {}s", STALL_TIMEOUT.as_secs())),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(format!("{what}: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(format!("{what}: more than {limit} bytes"));
            }
            out.extend_from_slice(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins_urls() {
        let u = Url::parse("https://127.0.0.1:5000/v2/a/b/manifests/latest").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.authority(), "127.0.0.1:5000");
        assert_eq!(u.path, "/v2/a/b/manifests/latest");
        let j = u.join("/v2/a/b/blobs/x?y=1").unwrap();
        assert_eq!(j.to_string(), "https://127.0.0.1:5000/v2/a/b/blobs/x?y=1");
        let other = u.join("http://[::1]:8080/s3").unwrap();
        assert_eq!(other.host, "[::1]");
        assert_eq!(other.bare_host(), "::1");
        assert_eq!(other.authority(), "[::1]:8080");
        assert_eq!(Url::parse("https://h/").unwrap().authority(), "h");
        for bad in ["ftp://h/", "https://u:p@h/", "nope", "https:///x"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
