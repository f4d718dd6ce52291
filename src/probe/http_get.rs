//! The kubelet's HTTP check of a probe or a hook: a GET over HTTP/1.1
//! (hyper), or HTTPS through `super::tls`, that follows redirects while
//! they stay on the host it started at, as the kubelet's Go client does
//! (at most ten requests), judged as pkg/probe/http judges a probe and
//! pkg/kubelet/lifecycle a hook.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use iri_string::format::ToDedicatedString;
use iri_string::types::{UriAbsoluteStr, UriReferenceStr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use super::tcp::{self, join_host_port};
use super::tls::{self, TlsError};
use super::verdict::Verdict;
use super::wording::{self, GetError, Purpose, UrlError};

/// An HTTP GET as the kubelet makes it for a probe or a hook.
#[derive(Debug, Clone, Copy)]
pub struct HttpGet<'a> {
    /// HTTPS: TLS without certificate verification, as the kubelet.
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
}

/// The most of an answer's body read (the kubelet's limit).
const MAX_BODY: usize = 10 * 1024;

/// The requests one GET may make, its redirects' included (Go's limit).
const MAX_REQUESTS: usize = 10;

/// The kubelet's HTTP probe: a GET answered with a status in 200..=299
/// succeeds, in 300..=399 (a redirect to another host, not followed)
/// passes with a warning, and anything else fails, all within `timeout`.
pub async fn probe(get: &HttpGet<'_>, timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    let response = match fetch(get, Purpose::Probe, deadline).await {
        Ok(response) => response,
        Err(e) => return Verdict::Failure(e.to_string()),
    };
    let status = response.status().as_u16();
    // The kubelet reads the body whatever the status: one it cannot read
    // in time fails the probe.
    let body = match timeout_at(deadline, body(response)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Verdict::Failure(e.to_string()),
        Err(_) => return Verdict::Failure(GetError::BodyTimeout.to_string()),
    };
    match status {
        200..300 => Verdict::Success(wording::http_succeeded(status)),
        300..400 => Verdict::Warning(wording::redirects_terminated(&body)),
        _ => Verdict::Failure(wording::http_failed(status)),
    }
}

/// The kubelet's HTTP hook: any answer succeeds, whatever its status (the
/// kubelet judges none). An HTTPS request that a plain HTTP server
/// answered is made again over HTTP without its Authorization header (the
/// kubelet's fallback for hooks written when it ignored the scheme), which
/// passes with a warning; when that fails too, the first error stands.
pub async fn hook(get: &HttpGet<'_>, timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    let error = match fetch(get, Purpose::Hook, deadline).await {
        Ok(response) => {
            return Verdict::Success(wording::http_succeeded(response.status().as_u16()));
        }
        Err(e) => e,
    };
    if !matches!(error.error, GetError::PlainHttp) {
        return Verdict::Failure(error.to_string());
    }
    let headers: Vec<_> = get
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
        .cloned()
        .collect();
    let plain = HttpGet {
        tls: false,
        headers: &headers,
        ..*get
    };
    match fetch(&plain, Purpose::Hook, deadline).await {
        Ok(_) => Verdict::Warning(wording::hook_fell_back(&plain.first().authority())),
        Err(_) => Verdict::Failure(error.to_string()),
    }
}

/// Where one request of a GET goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Lower-case, as Go's URL parser leaves it.
    scheme: String,
    /// An IPv6 address without its brackets.
    host: String,
    port: u16,
    /// The path and query, escaped as in a request line.
    path: String,
}

impl Target {
    fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.path)
    }

    fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Where a redirect's `location` leads from here: the reference
    /// resolved against this URL (RFC 3986, as Go's URL.Parse).
    fn follow(&self, location: &str) -> Result<Target, GetError> {
        let bad = |reason: String| GetError::BadLocation {
            location: location.to_owned(),
            reason,
        };
        let base = self.url();
        let base = UriAbsoluteStr::new(&base).map_err(|e| bad(e.to_string()))?;
        let escaped = escape(location);
        let reference = UriReferenceStr::new(&escaped).map_err(|e| bad(e.to_string()))?;
        let next = reference.resolve_against(base).to_dedicated_string();
        let scheme = next.scheme_str().to_ascii_lowercase();
        let authority = next
            .authority_components()
            .ok_or_else(|| bad("no host".to_owned()))?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = match authority.port().filter(|p| !p.is_empty()) {
            Some(p) => p
                .parse()
                .map_err(|_| bad(format!("invalid port \":{p}\" after host")))?,
            None if scheme == "https" => 443,
            None => 80,
        };
        let mut path = next.path_str().to_owned();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(query) = next.query_str() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Target {
            scheme,
            host,
            port,
            path,
        })
    }
}

/// A redirect Go's client follows: its Location, when it has one.
fn redirect_location(response: &Response<Incoming>) -> Option<String> {
    let redirect = matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308);
    let location = response.headers().get(http::header::LOCATION)?;
    let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
    (redirect && !location.is_empty()).then_some(location)
}

/// A reference with a scheme (Go's URL.IsAbs).
fn is_absolute(location: &str) -> bool {
    UriReferenceStr::new(&escape(location)).is_ok_and(|r| r.to_iri().is_ok())
}

/// `s` with what may not stand in a URI percent-encoded (spaces, controls,
/// non-ASCII), as Go escapes a path it accepted.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// A header name as Go's http.CanonicalHeaderKey writes it.
fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

impl HttpGet<'_> {
    fn first(&self) -> Target {
        Target {
            scheme: if self.tls { "https" } else { "http" }.to_owned(),
            host: self.host.to_owned(),
            port: self.port,
            path: escape(self.path),
        }
    }

    /// The first value of the user's header `name`.
    fn first_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request to `target`, its headers in Go's order: Host (`host`),
    /// User-Agent (the user's, or the kubelet's for `purpose`; an empty one
    /// is left out), the rest sorted by name (an Accept of */* unless the
    /// user set one, an empty one removing it; the Referer of a redirect),
    /// then what the kubelet's transport adds.
    fn request(
        &self,
        target: &Target,
        purpose: Purpose,
        host: &str,
        referer: Option<&str>,
    ) -> Result<Request<Empty<Bytes>>, GetError> {
        let mut lines: Vec<(String, &str)> = Vec::new();
        let user_agent = self
            .first_value("user-agent")
            .map_or_else(|| wording::user_agent(purpose), str::to_owned);
        let drop_accept = self.first_value("accept") == Some("");
        let mut rest: Vec<(String, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (canonical(n), v.as_str()))
            .filter(|(n, _)| match n.as_str() {
                // Written first, or not at all.
                "Host" | "User-Agent" => false,
                "Accept" => !drop_accept,
                _ => true,
            })
            .collect();
        if self.first_value("accept").is_none() {
            rest.push(("Accept".to_owned(), "*/*"));
        }
        if let Some(referer) = referer.filter(|_| self.first_value("referer").is_none()) {
            rest.push(("Referer".to_owned(), referer));
        }
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        lines.push(("Host".to_owned(), host));
        if !user_agent.is_empty() {
            lines.push(("User-Agent".to_owned(), &user_agent));
        }
        lines.extend(rest);
        match purpose {
            // The probe's transport keeps no connection alive.
            Purpose::Probe => {
                let closes = self
                    .first_value("connection")
                    .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
                if !closes {
                    lines.push(("Connection".to_owned(), "close"));
                }
            }
            // The hooks' transport asks for gzip, as Go's default one.
            Purpose::Hook => {
                if self.first_value("accept-encoding").is_none()
                    && self.first_value("range").is_none()
                {
                    lines.push(("Accept-Encoding".to_owned(), "gzip"));
                }
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| GetError::HeaderName(name.clone()))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|_| GetError::HeaderValue(name))?;
            headers.append(header, value);
        }
        let uri: Uri = target.path.parse().map_err(|_| GetError::BadLocation {
            location: target.path.clone(),
            reason: "invalid request path".to_owned(),
        })?;
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// The GET's last answer: its redirects followed under the kubelet's
/// rule (on to the same host; a redirect elsewhere is the answer), every
/// request before `deadline`.
async fn fetch(
    get: &HttpGet<'_>,
    purpose: Purpose,
    deadline: Instant,
) -> Result<Response<Incoming>, UrlError> {
    let first = get.first();
    // Go's Request.Host: the user's Host header, else the URL's.
    let own_host = get
        .first_value("host")
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    let mut target = first.clone();
    let mut host = own_host.clone().unwrap_or_else(|| first.authority());
    let mut referer = None;
    let mut made = 0;
    loop {
        let url = target.url();
        let failed = |error| UrlError {
            url: url.clone(),
            error,
        };
        let request = get
            .request(&target, purpose, &host, referer.as_deref())
            .map_err(failed)?;
        made += 1;
        let response = timeout_at(deadline, send(&target, request))
            .await
            .map_err(|_| failed(GetError::HeadersTimeout))?
            .map_err(failed)?;
        let Some(location) = redirect_location(&response) else {
            return Ok(response);
        };
        let next = target.follow(&location).map_err(failed)?;
        if next.host != first.host {
            return Ok(response);
        }
        if made >= MAX_REQUESTS {
            // Go names the Location as it came, not as resolved.
            return Err(UrlError {
                url: location,
                error: GetError::TooManyRedirects,
            });
        }
        // As Go: no Referer from HTTPS to HTTP; the user's Host header
        // kept only through a relative redirect.
        referer = (!(target.scheme == "https" && next.scheme == "http")).then_some(url);
        host = match &own_host {
            Some(own) if !is_absolute(&location) => own.clone(),
            _ => next.authority(),
        };
        target = next;
    }
}

/// One request's answer, on a connection of its own.
async fn send(
    target: &Target,
    request: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, GetError> {
    let tls = match target.scheme.as_str() {
        "http" => false,
        "https" => true,
        other => return Err(GetError::UnsupportedScheme(other.to_owned())),
    };
    let tcp = tcp::dial(&target.host, target.port).await?;
    if tls {
        let stream = tls::connect(tcp, &target.host).await.map_err(|e| match e {
            TlsError::PlainHttp => GetError::PlainHttp,
            other => GetError::Tls(other),
        })?;
        exchange(stream, request).await
    } else {
        exchange(tcp, request).await
    }
}

async fn exchange<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Response<Incoming>, GetError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // Title-case header names, as Go's canonical ones.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(GetError::Http)?;
    // The connection's own task moves the bytes, the body's too; it ends
    // with the answer, or with the check's runtime.
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(GetError::Http)
}

/// The first 10 KiB of an answer's body, all the kubelet reads.
async fn body(response: Response<Incoming>) -> Result<String, GetError> {
    let mut body = response.into_body();
    let mut read = Vec::new();
    while read.len() < MAX_BODY {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(GetError::Http(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
        }
    }
    read.truncate(MAX_BODY);
    Ok(String::from_utf8_lossy(&read).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{block_on, http_get, http_hook};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;

    /// A request's head, read up to its blank line.
    fn read_head(s: &mut TcpStream) -> String {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&request).into_owned()
    }

    /// A server answering one request with `status`; it sends the
    /// request's head on the channel.
    fn serve(status: &'static str) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let request = read_head(&mut s);
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
                let _ = tx.send(request);
            }
        });
        (port, rx)
    }

    /// A server answering every request by its path with `answer`'s status
    /// line, extra header lines and body; it sends each request's head on
    /// the channel.
    fn serve_paths(
        answer: impl Fn(&str, u16) -> (&'static str, String, String) + Send + 'static,
    ) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = listener.accept() {
                let request = read_head(&mut s);
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, headers, body) = answer(&path, port);
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = tx.send(request);
            }
        });
        (port, rx)
    }

    fn get<'a>(port: u16, path: &'a str, headers: &'a [(String, String)]) -> HttpGet<'a> {
        HttpGet {
            tls: false,
            host: "127.0.0.1",
            port,
            path,
            headers,
        }
    }

    #[test]
    fn http_status_decides() {
        let t = Duration::from_secs(2);
        let (ok, _) = serve("204 No Content");
        assert_eq!(
            http_get(&get(ok, "/", &[]), t),
            Verdict::Success("HTTP probe succeeded with statuscode: 204".to_owned())
        );
        let (bad, _) = serve("503 Service Unavailable");
        assert_eq!(
            http_get(&get(bad, "/healthz", &[]), t),
            Verdict::Failure("HTTP probe failed with statuscode: 503".to_owned())
        );
    }

    #[test]
    fn the_request_carries_the_kubelets_headers_unless_the_user_sets_them() {
        let t = Duration::from_secs(2);
        let (port, rx) = serve("200 OK");
        assert!(http_get(&get(port, "/a", &[]), t).passed());
        let head = rx.recv().unwrap();
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "GET /a HTTP/1.1",
                &format!("Host: 127.0.0.1:{port}"),
                "User-Agent: kube-probe/1.37",
                "Accept: */*",
                "Connection: close",
            ]
        );

        let own = [
            ("host".to_owned(), "example.test".to_owned()),
            ("User-Agent".to_owned(), "mine".to_owned()),
            ("Accept".to_owned(), String::new()),
            ("X-A".to_owned(), "b".to_owned()),
        ];
        let (port, rx) = serve("200 OK");
        assert!(http_get(&get(port, "/", &own), t).passed());
        let head = rx.recv().unwrap();
        let lines: Vec<&str> = head.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "GET / HTTP/1.1",
                "Host: example.test",
                "User-Agent: mine",
                "X-A: b",
                "Connection: close",
            ]
        );

        let (port, rx) = serve("200 OK");
        assert_eq!(
            http_hook(&get(port, "/", &[]), t),
            Verdict::Success("HTTP probe succeeded with statuscode: 200".to_owned())
        );
        assert!(
            rx.recv()
                .unwrap()
                .contains("\r\nUser-Agent: kube-lifecycle/1.37\r\n")
        );
    }

    #[test]
    fn a_server_that_does_not_answer_times_out_as_gos_client_says() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let verdict = http_get(&get(port, "/", &[]), Duration::from_millis(300));
        assert_eq!(
            verdict,
            Verdict::Failure(format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        drop(listener);
    }

    #[test]
    fn nothing_listening_fails_both_checks() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Duration::from_secs(1);
        let tcp_verdict = block_on(tcp::check("127.0.0.1", port, t));
        assert!(
            !tcp_verdict.passed() && tcp_verdict.message().starts_with("dial tcp 127.0.0.1:"),
            "{tcp_verdict:?}"
        );
        let http_verdict = http_get(&get(port, "/", &[]), t);
        assert!(
            !http_verdict.passed()
                && http_verdict
                    .message()
                    .starts_with(&format!("Get \"http://127.0.0.1:{port}/\": dial tcp")),
            "{http_verdict:?}"
        );
        let (open, _) = serve("200 OK");
        assert_eq!(
            block_on(tcp::check("127.0.0.1", open, t)),
            Verdict::Success(String::new())
        );
    }

    /// `/moved` answers `code` to `/there`; `/r/N` redirects to `/r/N+1`
    /// while N < `chain`; anything else answers by its name.
    fn redirecting(code: &'static str, chain: usize) -> (u16, mpsc::Receiver<String>) {
        serve_paths(move |path, port| {
            let redirect = |to: String| (code, format!("Location: {to}\r\n"), "moved".to_owned());
            match path {
                "/moved" => redirect("/there".to_owned()),
                "/moved-far" => redirect(format!("http://localhost:{port}/there")),
                "/there" if code.starts_with("301") => {
                    ("500 Internal Server Error", String::new(), String::new())
                }
                "/there" => ("200 OK", String::new(), "here".to_owned()),
                _ => match path
                    .strip_prefix("/r/")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    Some(n) if n < chain => redirect(format!("/r/{}", n + 1)),
                    Some(_) => ("200 OK", String::new(), String::new()),
                    None => ("404 Not Found", String::new(), String::new()),
                },
            }
        })
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn a_redirect_to_the_same_host_is_followed_and_its_answer_judged() {
        let (port, _) = redirecting("301 Moved Permanently", 0);
        assert_eq!(
            http_get(&get(port, "/moved", &[]), T),
            Verdict::Failure("HTTP probe failed with statuscode: 500".to_owned())
        );
        let (port, seen) = redirecting("302 Found", 0);
        let headers = [("X-A".to_owned(), "b".to_owned())];
        assert_eq!(
            http_get(&get(port, "/moved", &headers), T),
            Verdict::Success("HTTP probe succeeded with statuscode: 200".to_owned())
        );
        seen.recv().unwrap();
        // The second request carries the first one's headers and, as Go's
        // client sends it, the Referer.
        let second = seen.recv().unwrap();
        assert!(second.starts_with("GET /there HTTP/1.1\r\n"), "{second}");
        assert!(second.contains("\r\nX-A: b\r\n"), "{second}");
        assert!(
            second.contains(&format!("\r\nReferer: http://127.0.0.1:{port}/moved\r\n")),
            "{second}"
        );
    }

    #[test]
    fn a_redirect_to_another_host_is_a_warning_with_its_body() {
        // localhost is another hostname than 127.0.0.1, as the kubelet
        // compares them.
        let (port, seen) = redirecting("302 Found", 0);
        assert_eq!(
            http_get(&get(port, "/moved-far", &[]), T),
            Verdict::Warning("Probe terminated redirects, Response body: moved".to_owned())
        );
        seen.recv().unwrap();
        assert!(seen.try_recv().is_err(), "the redirect was not followed");
        // A hook takes any answer.
        let (port, _) = redirecting("302 Found", 0);
        assert_eq!(
            http_hook(&get(port, "/moved-far", &[]), T),
            Verdict::Success("HTTP probe succeeded with statuscode: 302".to_owned())
        );
    }

    #[test]
    fn the_tenth_redirect_is_not_followed() {
        let (port, _) = redirecting("302 Found", 9);
        assert_eq!(
            http_get(&get(port, "/r/0", &[]), T),
            Verdict::Success("HTTP probe succeeded with statuscode: 200".to_owned())
        );
        let (port, _) = redirecting("302 Found", 11);
        assert_eq!(
            http_get(&get(port, "/r/0", &[]), T),
            Verdict::Failure("Get \"/r/10\": stopped after 10 redirects".to_owned())
        );
        let (port, _) = redirecting("307 Temporary Redirect", 11);
        assert_eq!(
            http_hook(&get(port, "/r/0", &[]), T),
            Verdict::Failure("Get \"/r/10\": stopped after 10 redirects".to_owned())
        );
    }

    #[test]
    fn a_hook_takes_any_status() {
        let (port, _) = serve("500 Internal Server Error");
        assert_eq!(
            http_hook(&get(port, "/", &[]), T),
            Verdict::Success("HTTP probe succeeded with statuscode: 500".to_owned())
        );
    }

    #[test]
    fn locations_resolve_as_uri_references() {
        let here = Target {
            scheme: "http".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 8080,
            path: "/a/b?q=1".to_owned(),
        };
        let to = |l: &str| here.follow(l).unwrap().url();
        assert_eq!(to("c"), "http://127.0.0.1:8080/a/c");
        assert_eq!(to("../d?x"), "http://127.0.0.1:8080/d?x");
        assert_eq!(to("//other/e"), "http://other:80/e");
        assert_eq!(to("HTTPS://[::1]/f g"), "https://[::1]:443/f%20g");
        assert!(is_absolute("http://x/"));
        assert!(!is_absolute("/x"));
        assert_eq!(canonical("x-forwarded-FOR"), "X-Forwarded-For");
    }
}
