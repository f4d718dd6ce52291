//! The OCI distribution API (v2), for pulling: manifests by tag or digest,
//! blobs streamed to a file and checked (size and digest) as they come,
//! and the registry's authentication: Basic, or a Bearer token from the
//! realm its `WWW-Authenticate` challenge names, with each matching
//! credential tried in turn.

use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::auth::Candidate;
use super::http::{Http, HttpError, STALL_TIMEOUT, Scheme, Url, read_body};
use crate::image::digest::{format_digest, sha256};
use crate::image::store::MAX_JSON;

/// What a manifest GET asks for: every manifest and index podrun reads.
const ACCEPTED: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{registry}: unauthorized: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("{what}: not found{}", detail(.message))]
    NotFound { what: String, message: String },
    #[error("{what}: the registry answered {status}{}", detail(.message))]
    Status {
        what: String,
        status: StatusCode,
        message: String,
    },
    #[error("{what}: {reason}")]
    Content { what: String, reason: String },
    #[error("getting a token from {realm}: {reason}")]
    Token { realm: String, reason: String },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl RegistryError {
    /// The registry could not be reached or spoken to at all (the next
    /// mirror may do better), as opposed to an answer about the image.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RegistryError::Http(_))
    }
}

/// A manifest or index as the registry gave it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: String,
}

/// One repository at one registry endpoint, with the authorization that
/// worked kept for the requests after.
pub struct Repository<'a> {
    http: &'a Http,
    base: Url,
    /// The location named its port (an HTTP fallback keeps it).
    explicit_port: bool,
    /// The repository's path at the registry, e.g. `library/alpine`.
    name: String,
    candidates: Vec<Candidate>,
    authorization: Mutex<Option<HeaderValue>>,
}

impl<'a> Repository<'a> {
    /// `location` is the endpoint's `host[:port]`, `name` the
    /// repository's path there.
    pub fn new(
        http: &'a Http,
        location: &str,
        name: &str,
        candidates: Vec<Candidate>,
    ) -> Result<Repository<'a>, RegistryError> {
        let base = Url::parse(&format!("https://{location}/"))?;
        let explicit_port = location
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        Ok(Repository {
            http,
            base,
            explicit_port,
            name: name.to_owned(),
            candidates,
            authorization: Mutex::new(None),
        })
    }

    /// `host[:port]` of the endpoint.
    pub fn authority(&self) -> String {
        self.base.authority()
    }

    /// Finds out whether the endpoint speaks HTTPS; an insecure one that
    /// does not is spoken to in plain HTTP from here on.
    /// As containers/image: any failure to speak HTTPS to an insecure
    /// registry (refused, timed out, not TLS) tries plain HTTP, on port 80
    /// unless the location names one.
    pub async fn connect(&mut self, insecure: bool) -> Result<(), RegistryError> {
        let ping = self.base.join("/v2/")?;
        match self.http.get(Method::GET, &ping, &HeaderMap::new()).await {
            Ok(_) => Ok(()),
            Err(_) if insecure => {
                self.base.scheme = Scheme::Http;
                if !self.explicit_port {
                    self.base.port = 80;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `/v2/` with the credentials: whether the registry takes them.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        self.request(Method::GET, "/v2/", None, "the registry's API")
            .await
            .map(drop)
    }

    /// The manifest or index `reference` (a tag or a digest) names.
    pub async fn manifest(&self, reference: &str) -> Result<Fetched, RegistryError> {
        let sep = if reference.contains(':') { '@' } else { ':' };
        let what = format!("manifest {}{sep}{reference}", self.name);
        let response = self
            .request(
                Method::GET,
                &format!("/v2/{}/manifests/{reference}", self.name),
                Some(ACCEPTED),
                &what,
            )
            .await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default();
        let bytes = read_body(response, MAX_JSON, &what)
            .await
            .map_err(|reason| content(&what, reason))?;
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            // Some registries send no type: the manifest says what it is.
            media_type_of(&bytes).unwrap_or(media_type)
        } else {
            media_type
        };
        if media_type.starts_with(SCHEMA1) {
            return Err(content(
                &what,
                "a Docker schema 1 manifest: podrun reads schema 2 and OCI images (push the image again with a current tool)",
            ));
        }
        let digest = sha256(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(content(
                &what,
                format!("digest mismatch: the registry sent {digest}"),
            ));
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// Streams blob `digest` into `file`, checking its size and digest as
    /// it comes; `progress` is told the bytes so far.
    pub async fn blob(
        &self,
        digest: &str,
        size: u64,
        file: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let what = format!("blob {digest}");
        let response = self
            .request(
                Method::GET,
                &format!("/v2/{}/blobs/{digest}", self.name),
                None,
                &what,
            )
            .await?;
        let io = |e: std::io::Error| content(&what, format!("writing {}: {e}", file.display()));
        let mut out = tokio::fs::File::create(file).await.map_err(io)?;
        let mut hasher = sha2::Sha256::default();
        let mut got = 0u64;
        let mut body = response.into_body();
        loop {
            let frame = match timeout(STALL_TIMEOUT, body.frame()).await {
                Err(_) => {
                    return Err(content(
                        &what,
                        format!(
                            "truncated: no data for {}s after {got} of {size} bytes",
                            STALL_TIMEOUT.as_secs()
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(content(
                        &what,
                        format!(
                            "truncated: the transfer broke off after {got} of {size} bytes ({e})"
                        ),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            got += data.len() as u64;
            if got > size {
                return Err(content(
                    &what,
                    format!(
                        "size mismatch: the manifest says {size} bytes, the registry sent more"
                    ),
                ));
            }
            sha2::Digest::update(&mut hasher, &data);
            out.write_all(&data).await.map_err(io)?;
            progress(got);
        }
        if got != size {
            return Err(content(
                &what,
                format!("truncated: the registry sent {got} of {size} bytes"),
            ));
        }
        out.flush().await.map_err(io)?;
        let got_digest = format_digest(&sha2::Digest::finalize(hasher));
        if got_digest != digest {
            return Err(content(
                &what,
                format!("digest mismatch: the content the registry sent is {got_digest}"),
            ));
        }
        Ok(())
    }

    /// A request with the authorization that works, found on the first
    /// 401: each matching credential in turn (anonymous when none match).
    async fn request(
        &self,
        method: Method,
        path: &str,
        accept: Option<&'static str>,
        what: &str,
    ) -> Result<Response<Incoming>, RegistryError> {
        let url = self.base.join(path)?;
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(ACCEPT, HeaderValue::from_static(a));
        }
        let current = self
            .authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(auth) = current {
            headers.insert(AUTHORIZATION, auth);
        }
        let (_, response) = self.http.get(method.clone(), &url, &headers).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.judge(response, what).await;
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(Challenge::parse)
            .unwrap_or_default();
        let mut last = self.refusal(response).await;
        let anonymous = [None];
        let tries: Vec<Option<&Candidate>> = if self.candidates.is_empty() {
            anonymous.to_vec()
        } else {
            self.candidates.iter().map(Some).collect()
        };
        for candidate in tries {
            let auth = match self.authorize(&challenge, candidate).await {
                Ok(Some(auth)) => auth,
                Ok(None) => break,
                Err(RegistryError::Unauthorized { detail, .. }) => {
                    last = detail;
                    continue;
                }
                Err(e) => return Err(e),
            };
            headers.insert(AUTHORIZATION, auth.clone());
            let (_, response) = self.http.get(method.clone(), &url, &headers).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                last = self.refusal(response).await;
                continue;
            }
            *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(auth);
            return self.judge(response, what).await;
        }
        let tried = match self.candidates.len() {
            0 => "no credentials for it were found".to_owned(),
            1 => format!("with the credentials of {}", self.candidates[0].origin),
            n => format!("with each of {n} matching credentials"),
        };
        Err(RegistryError::Unauthorized {
            registry: self.authority(),
            detail: format!("{last} ({tried})"),
        })
    }

    /// The Authorization for `challenge` with `candidate` (`None` when the
    /// challenge asks for nothing podrun can give).
    async fn authorize(
        &self,
        challenge: &Challenge,
        candidate: Option<&Candidate>,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        if let Some(c) = candidate
            && c.credentials.identity_token.is_some()
            && c.credentials.password.is_empty()
        {
            return Err(RegistryError::Unauthorized {
                registry: self.authority(),
                detail: format!(
                    "the credentials of {} are an identity token, which podrun cannot use yet: log in with a password (podrun login)",
                    c.origin
                ),
            });
        }
        let basic = candidate.map(|c| {
            let pair = format!("{}:{}", c.credentials.username, c.credentials.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        match challenge.scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(basic.and_then(|b| HeaderValue::from_str(&b).ok())),
            "bearer" => {
                let token = self.token(challenge, candidate, basic.as_deref()).await?;
                Ok(HeaderValue::from_str(&format!("Bearer {token}")).ok())
            }
            _ => Ok(None),
        }
    }

    /// A token from the challenge's realm for pulling this repository.
    async fn token(
        &self,
        challenge: &Challenge,
        candidate: Option<&Candidate>,
        basic: Option<&str>,
    ) -> Result<String, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let failed = |reason: String| RegistryError::Token {
            realm: realm.to_owned(),
            reason,
        };
        let mut url = Url::parse(realm).map_err(|e| failed(e.to_string()))?;
        // No repository (a login) asks for no scope.
        let scope = challenge
            .param("scope")
            .map(str::to_owned)
            .or_else(|| (!self.name.is_empty()).then(|| format!("repository:{}:pull", self.name)));
        let mut query: Vec<(&str, String)> = scope.into_iter().map(|s| ("scope", s)).collect();
        if let Some(service) = challenge.param("service") {
            query.push(("service", service.to_owned()));
        }
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        url.path
            .push(if url.path.contains('?') { '&' } else { '?' });
        url.path.push_str(&encoded.join("&"));
        let mut headers = HeaderMap::new();
        // Basic credentials, which every token server takes (an identity
        // token, OAuth2's refresh token, is refused in `authorize`).
        if let Some(b) = basic.and_then(|b| HeaderValue::from_str(b).ok()) {
            headers.insert(AUTHORIZATION, b);
        }
        let (_, response) = self.http.get(Method::GET, &url, &headers).await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let who = candidate.map_or("anonymous".to_owned(), |c| {
                format!("user {:?} ({})", c.credentials.username, c.origin)
            });
            return Err(RegistryError::Unauthorized {
                registry: self.authority(),
                detail: format!("the token server refused {who} ({status})"),
            });
        }
        let body = read_body(response, MAX_JSON, "token")
            .await
            .map_err(failed)?;
        if !status.is_success() {
            return Err(failed(format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token =
            serde_json::from_slice(&body).map_err(|e| failed(format!("not a token: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("the answer holds no token".to_owned()))
    }

    /// An error for anything but success, with the registry's own words.
    async fn judge(
        &self,
        response: Response<Incoming>,
        what: &str,
    ) -> Result<Response<Incoming>, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = self.refusal(response).await;
        Err(match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                what: what.to_owned(),
                // An empty body says no more than "not found".
                message: if message == status.to_string() {
                    String::new()
                } else {
                    message
                },
            },
            StatusCode::FORBIDDEN => RegistryError::Unauthorized {
                registry: self.authority(),
                detail: format!("denied: {message}"),
            },
            _ => RegistryError::Status {
                what: what.to_owned(),
                status,
                message,
            },
        })
    }

    /// The registry's error message: its `errors` list, else the body's text.
    async fn refusal(&self, response: Response<Incoming>) -> String {
        let status = response.status();
        let body = read_body(response, 64 << 10, "error")
            .await
            .unwrap_or_default();
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_slice::<Errors>(&body) {
            Ok(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{} ({})", e.message, e.code),
                    (true, _) => e.message.clone(),
                    (false, true) => e.code.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() || text.len() > 300 {
                    status.to_string()
                } else {
                    text.to_owned()
                }
            }
        }
    }
}

fn content(what: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Content {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// The `mediaType` a manifest names itself with.
fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
    }
    let t: Typed = serde_json::from_slice(bytes).ok()?;
    match (t.media_type, t.schema_version, t.manifests) {
        (Some(m), _, _) => Some(m),
        (None, Some(1), _) => Some(SCHEMA1.to_owned()),
        (None, _, Some(_)) => Some("application/vnd.oci.image.index.v1+json".to_owned()),
        (None, _, None) => Some("application/vnd.oci.image.manifest.v1+json".to_owned()),
    }
}

/// Query-string escaping of a token request's values.
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = chars.by_ref().take_while(|c| *c != ',').collect();
            }
            params.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Challenge {
            scheme: scheme.to_owned(),
            params,
        }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let b = Challenge::parse(r#"Basic realm="Registry Realm""#);
        assert_eq!(b.scheme, "Basic");
        assert_eq!(b.param("realm"), Some("Registry Realm"));
        assert_eq!(Challenge::parse("").scheme, "");
    }

    #[test]
    fn names_untyped_manifests() {
        assert_eq!(
            media_type_of(br#"{"schemaVersion":1,"name":"x"}"#).as_deref(),
            Some(SCHEMA1)
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(percent("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}
