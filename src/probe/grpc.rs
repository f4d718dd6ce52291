//! The kubelet's gRPC probe: a grpc.health.v1.Health/Check call (tonic's
//! health client) over plaintext HTTP/2 (hyper, prior knowledge), a
//! success only when the answer is SERVING, its failures worded as
//! pkg/probe/grpc words them (`super::wording`).
//!
//! grpc-go's blocking dial, which the kubelet uses, is kept: the
//! connection is made again, after a backoff, until the server speaks
//! HTTP/2; the time running out before then is a connect timeout, after
//! it an RPC timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::MapErr;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::tcp::{self, Head, Peeked, join_host_port};
use super::verdict::Verdict;
use super::wording::{self, DialError, GrpcError, Purpose};

/// The kubelet's gRPC check of `service` ("" for the whole server) at
/// `host:port`, within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Verdict {
    let call = Call {
        host,
        port,
        authority: join_host_port(host, port),
        service,
        timeout,
    };
    match call.run().await {
        Ok(()) => Verdict::Success(wording::SERVICE_HEALTHY.to_owned()),
        Err(e) => Verdict::Failure(e.to_string()),
    }
}

struct Call<'a> {
    host: &'a str,
    port: u16,
    authority: String,
    service: &'a str,
    timeout: Duration,
}

/// How one connection's attempt ended short of an answer.
enum Failure {
    /// The host has no address: no attempt can do better.
    Lookup(String),
    /// The server never spoke HTTP/2 (grpc-go's connection is not READY
    /// until the server's SETTINGS): try again.
    NotReady,
    Status(Status),
}

impl Call<'_> {
    /// As grpc-go's blocking dial: connect, and connect again after a
    /// backoff (1 s, then 1.6 times longer each time) until the server
    /// speaks HTTP/2 or the time is up; then the call.
    async fn run(&self) -> Result<(), GrpcError> {
        let deadline = Instant::now() + self.timeout;
        let connect_timeout = || GrpcError::ConnectTimeout {
            addr: self.authority.clone(),
            timeout: self.timeout,
        };
        let mut backoff = Duration::from_secs(1);
        loop {
            let head = Head::default();
            let attempt = tokio::time::timeout_at(deadline, self.attempt(deadline, &head)).await;
            match attempt {
                Err(_) if is_ready(&head) => {
                    return Err(GrpcError::RpcTimeout(self.timeout));
                }
                Err(_) => return Err(connect_timeout()),
                Ok(Ok(status)) if status == ServingStatus::Serving as i32 => return Ok(()),
                Ok(Ok(status)) => return Err(GrpcError::Unhealthy(status)),
                Ok(Err(Failure::Lookup(reason))) => {
                    return Err(GrpcError::Connect {
                        addr: self.authority.clone(),
                        reason,
                    });
                }
                Ok(Err(Failure::Status(s))) => {
                    return Err(GrpcError::of_status(
                        s.code(),
                        s.message().to_owned(),
                        self.timeout,
                    ));
                }
                Ok(Err(Failure::NotReady)) => {}
            }
            let next = Instant::now() + backoff;
            if next >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(connect_timeout());
            }
            tokio::time::sleep_until(next).await;
            backoff = backoff.mul_f64(1.6).min(Duration::from_secs(120));
        }
    }

    /// One connection and, once it is up, the call: the serving status
    /// answered.
    async fn attempt(&self, deadline: Instant, seen: &Head) -> Result<i32, Failure> {
        let tcp = match tcp::dial(self.host, self.port).await {
            Ok(tcp) => tcp,
            Err(DialError::Lookup { reason, .. }) => return Err(Failure::Lookup(reason)),
            Err(_) => return Err(Failure::NotReady),
        };
        let _ = tcp.set_nodelay(true);
        let io = Peeked::new(tcp, 4, seen);
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|_| Failure::NotReady)?;
        // The connection's own task reads and writes frames; it ends with
        // the runtime.
        tokio::spawn(connection);
        let origin: Uri = format!("http://{}", self.authority)
            .parse()
            .map_err(|e: http::uri::InvalidUri| Failure::Status(Status::internal(e.to_string())))?;
        let mut client = HealthClient::with_origin(Http2(send), origin);
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.service.to_owned(),
        });
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        match client.check(request).await {
            Ok(answer) => Ok(answer.into_inner().status),
            Err(_) if !is_ready(seen) => Err(Failure::NotReady),
            Err(status) => Err(Failure::Status(status)),
        }
    }
}

/// The HTTP/2 connection as the service tonic's client calls: each call
/// with the kubelet's User-Agent, and what grpc-go's transport says of an
/// answer that is not gRPC, or of a stream the server reset, as the call's
/// status (tonic's client passes a `Status` through as it is).
struct Http2(SendRequest<Body>);

/// An answer's body, its errors turned into grpc-go's statuses.
type AnswerBody = MapErr<Incoming, fn(hyper::Error) -> Status>;

impl tower_service::Service<Request<Body>> for Http2 {
    type Response = Response<AnswerBody>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<AnswerBody>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx).map_err(status_of)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if let Ok(agent) = HeaderValue::from_str(&wording::user_agent(Purpose::Probe)) {
            request.headers_mut().insert(USER_AGENT, agent);
        }
        let sent = self.0.send_request(request);
        Box::pin(async move {
            let answer = sent.await.map_err(status_of)?;
            let content_type = answer
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            if let Some((code, message)) =
                wording::not_grpc(answer.status(), content_type.as_deref())
            {
                return Err(Status::new(code, message));
            }
            Ok(answer.map(|body| body.map_err(status_of as fn(hyper::Error) -> Status)))
        })
    }
}

/// A broken stream or connection as grpc-go reports it: a reset by its
/// HTTP/2 code, anything else as Unavailable.
fn status_of(e: hyper::Error) -> Status {
    let h2 = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<h2::Error>());
    match h2.and_then(|h| h.reason().filter(|_| h.is_reset() && h.is_remote())) {
        Some(reason) => {
            let (code, message) = wording::reset(reason);
            Status::new(code, message)
        }
        None => Status::unavailable(e.to_string()),
    }
}

/// The type of an HTTP/2 SETTINGS frame, the fourth byte of its header.
const SETTINGS: u8 = 0x4;

/// Whether the server's first frame, its SETTINGS, has begun to arrive:
/// from then on the connection is up, as grpc-go's READY.
fn is_ready(head: &Head) -> bool {
    head.bytes().get(3) == Some(&SETTINGS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::block_on;
    use bytes::Bytes;
    use http::HeaderMap;
    use std::sync::mpsc;

    /// HealthCheckResponse.ServingStatus.SERVING.
    const SERVING: i32 = ServingStatus::Serving as i32;

    /// The check's verdict as a result: its message either way.
    fn health(host: &str, port: u16, service: &str, timeout: Duration) -> Result<String, String> {
        match block_on(check(host, port, service, timeout)) {
            Verdict::Success(m) => Ok(m),
            Verdict::Failure(m) => Err(m),
            Verdict::Warning(m) => panic!("a gRPC check gives no warning: {m}"),
        }
    }

    /// How the test server answers a call.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        /// A HealthCheckResponse with this status, then grpc-status 0.
        Status(i32),
        /// A trailers-only answer: grpc-status and grpc-message.
        TrailersOnly(u32, &'static str),
        /// A plain HTTP answer, not gRPC.
        Http(u16),
        /// The stream reset with this HTTP/2 error code.
        Reset(h2::Reason),
        /// HTTP/2 is up, the call is never answered.
        Never,
        /// The TCP connection is accepted, nothing is ever said.
        Mute,
    }

    /// The request the server saw: its head and body.
    type Seen = (http::request::Parts, Vec<u8>);

    /// A server answering every call on one connection with `answer`.
    fn serve(answer: Answer) -> (u16, mpsc::Receiver<Seen>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                if let Answer::Mute = answer {
                    let _held = tcp;
                    return std::future::pending().await;
                }
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(answer_call(answer, request, respond, tx.clone()));
                }
            });
        });
        (port, rx)
    }

    async fn answer_call(
        answer: Answer,
        request: Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        seen: mpsc::Sender<Seen>,
    ) {
        let (head, mut body) = request.into_parts();
        let mut data = Vec::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let _ = seen.send((head, data));
        let grpc = http::Response::builder().header("content-type", "application/grpc");
        match answer {
            Answer::Status(status) => {
                let mut send = respond
                    .send_response(grpc.body(()).unwrap(), false)
                    .unwrap();
                let message = [1 << 3, status as u8];
                let mut frame = vec![0, 0, 0, 0, message.len() as u8];
                frame.extend_from_slice(&message);
                send.send_data(Bytes::from(frame), false).unwrap();
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                send.send_trailers(trailers).unwrap();
            }
            Answer::TrailersOnly(code, message) => {
                let response = grpc
                    .header("grpc-status", code.to_string())
                    .header("grpc-message", message)
                    .body(())
                    .unwrap();
                respond.send_response(response, true).unwrap();
            }
            Answer::Http(status) => {
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain")
                    .body(())
                    .unwrap();
                respond.send_response(response, true).unwrap();
            }
            Answer::Reset(reason) => respond.send_reset(reason),
            Answer::Never => {
                let _held = respond;
                std::future::pending::<()>().await;
            }
            Answer::Mute => unreachable!("a mute server takes no call"),
        }
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn serving_is_healthy_and_the_call_is_the_kubelets() {
        let (port, seen) = serve(Answer::Status(SERVING));
        assert_eq!(health("127.0.0.1", port, "", T).unwrap(), "service healthy");
        let (head, body) = seen.recv().unwrap();
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(head.uri.path(), "/grpc.health.v1.Health/Check");
        assert_eq!(
            head.uri.authority().unwrap().as_str(),
            format!("127.0.0.1:{port}")
        );
        assert_eq!(head.headers["content-type"], "application/grpc");
        assert_eq!(head.headers["te"], "trailers");
        assert_eq!(head.headers["user-agent"], "kube-probe/1.37");
        let timeout = head.headers["grpc-timeout"].to_str().unwrap();
        let micros: u64 = timeout.strip_suffix('u').unwrap().parse().unwrap();
        assert!(micros > 0 && micros <= 1_000_000, "{timeout}");
        // An empty HealthCheckRequest: the service "" is left out.
        assert_eq!(body, [0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_service_is_asked_for_by_name() {
        let (port, seen) = serve(Answer::Status(SERVING));
        health("127.0.0.1", port, "db", T).unwrap();
        let (_, body) = seen.recv().unwrap();
        assert_eq!(body, [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
    }

    #[test]
    fn any_other_status_is_unhealthy() {
        let (port, _) = serve(Answer::Status(2));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        let (port, _) = serve(Answer::Status(3));
        assert_eq!(
            health("127.0.0.1", port, "x", T).unwrap_err(),
            "service unhealthy (responded with \"SERVICE_UNKNOWN\")"
        );
    }

    #[test]
    fn an_error_status_is_the_rpc_error() {
        let (port, _) = serve(Answer::TrailersOnly(
            12,
            "unknown service grpc.health.v1.Health",
        ));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
        );
        let (port, _) = serve(Answer::TrailersOnly(5, "no service caf%C3%A9"));
        assert_eq!(
            health("127.0.0.1", port, "café", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = NotFound desc = no service café"
        );
        let (port, _) = serve(Answer::TrailersOnly(4, "too slow"));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "timeout: health rpc did not complete within 1s"
        );
    }

    #[test]
    fn a_plain_http_answer_is_judged_by_its_status() {
        let (port, _) = serve(Answer::Http(404));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unexpected HTTP status code received from server: 404 (Not Found); transport: received unexpected content-type \"text/plain\""
        );
        let (port, _) = serve(Answer::Http(503));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = Unavailable desc = unexpected HTTP status code received from server: 503 (Service Unavailable); transport: received unexpected content-type \"text/plain\""
        );
    }

    #[test]
    fn a_reset_stream_is_an_rpc_error_by_its_http2_code() {
        let (port, _) = serve(Answer::Reset(h2::Reason::REFUSED_STREAM));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = Unavailable desc = stream terminated by RST_STREAM with error code: REFUSED_STREAM"
        );
    }

    #[test]
    fn an_unanswered_call_times_out() {
        let (port, seen) = serve(Answer::Never);
        let began = std::time::Instant::now();
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "timeout: health rpc did not complete within 1s"
        );
        assert!(began.elapsed() >= T);
        assert!(seen.recv().is_ok(), "the call reached the server");
    }

    #[test]
    fn a_server_that_never_speaks_http2_is_a_connect_timeout() {
        let (port, _) = serve(Answer::Mute);
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
            )
        );
    }

    #[test]
    fn nothing_listening_is_retried_until_the_timeout() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let began = std::time::Instant::now();
        assert_eq!(
            health("127.0.0.1", port, "", Duration::from_secs(2)).unwrap_err(),
            format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 2s: context deadline exceeded"
            )
        );
        assert!(began.elapsed() >= Duration::from_secs(2));
    }

    #[test]
    fn a_server_that_starts_late_is_reached_on_a_retry() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            // Serve one call on the listener at the fixed port.
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_nonblocking(true).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                let (tx, _rx) = mpsc::channel();
                if let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(answer_call(Answer::Status(SERVING), request, respond, tx));
                }
                // Drive the connection until the client is done with it.
                while conn.accept().await.is_some() {}
            });
        });
        assert_eq!(
            health("127.0.0.1", port, "", Duration::from_secs(3)).unwrap(),
            "service healthy"
        );
        late.join().unwrap();
    }

    /// A tonic server on a thread of its own, serving `routes` on every
    /// connection; it holds `keep` (a health reporter) while it runs.
    fn serve_tonic(routes: tonic::service::Routes, keep: impl Send + 'static) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let _keep = keep;
            block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = tonic::transport::Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming(incoming)
                    .await;
            });
        });
        port
    }

    /// tonic-health's server, with `statuses` set before it serves.
    fn serve_health(statuses: &[(&str, tonic_health::ServingStatus)]) -> u16 {
        let (reporter, service) = tonic_health::server::health_reporter();
        block_on(async {
            for (name, status) in statuses {
                reporter.set_service_status(*name, *status).await;
            }
        });
        serve_tonic(tonic::service::Routes::new(service), reporter)
    }

    #[test]
    fn a_tonic_health_server_is_judged_by_its_answers() {
        let port = serve_health(&[]);
        assert_eq!(health("127.0.0.1", port, "", T).unwrap(), "service healthy");
        assert_eq!(
            health("127.0.0.1", port, "db", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
        );
        let port = serve_health(&[
            ("", tonic_health::ServingStatus::NotServing),
            ("db", tonic_health::ServingStatus::Serving),
        ]);
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        assert_eq!(
            health("127.0.0.1", port, "db", T).unwrap(),
            "service healthy"
        );
    }

    #[test]
    fn a_tonic_server_without_the_health_service_does_not_implement_it() {
        let port = serve_tonic(tonic::service::Routes::default(), ());
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
        );
    }

    /// A health service too busy to answer: its check holds the server's
    /// only thread for `for_how_long`, so not even the server's own
    /// reading of grpc-timeout can answer in time.
    struct Busy(Duration);

    #[tonic::async_trait]
    impl tonic_health::pb::health_server::Health for Busy {
        async fn check(
            &self,
            _: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, Status> {
            std::thread::sleep(self.0);
            Err(Status::internal("answered too late"))
        }

        type WatchStream = tonic::codegen::tokio_stream::Empty<
            Result<tonic_health::pb::HealthCheckResponse, Status>,
        >;

        async fn watch(
            &self,
            _: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<Self::WatchStream>, Status> {
            Err(Status::unimplemented("not watched here"))
        }
    }

    #[test]
    fn a_tonic_server_that_answers_too_late_is_an_rpc_timeout() {
        let busy = tonic_health::pb::health_server::HealthServer::new(Busy(Duration::from_secs(3)));
        let port = serve_tonic(tonic::service::Routes::new(busy), ());
        let began = std::time::Instant::now();
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "timeout: health rpc did not complete within 1s"
        );
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "the check kept its own time"
        );
    }
}
