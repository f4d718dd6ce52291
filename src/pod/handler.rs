//! What a probe or a hook does, from the manifest: a port named in the
//! container's ports becomes its number, a path gets its leading `/`, the
//! host defaults to the pod's own address.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::HookPlan;
use crate::api::runtime::Handler;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    #[error("no port named {0:?} in the container's ports")]
    NoSuchPort(String),
    #[error("port {0} is out of range")]
    BadPort(i32),
    #[error("the handler has no action")]
    Empty,
}

fn port_number(number: i32) -> Result<u16, HandlerError> {
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or(HandlerError::BadPort(number))
}

fn port(p: &IntOrString, c: &Container) -> Result<u16, HandlerError> {
    let number = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .map(|cp| cp.container_port)
            .ok_or_else(|| HandlerError::NoSuchPort(name.clone()))?,
    };
    port_number(number)
}

fn http(
    get: &k8s_openapi::api::core::v1::HTTPGetAction,
    c: &Container,
) -> Result<Handler, HandlerError> {
    let path = get
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_default();
    Ok(Handler::Http {
        tls: get
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("https")),
        host: get.host.clone().filter(|h| !h.is_empty()),
        port: port(&get.port, c)?,
        path: if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        },
        headers: get
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

fn tcp(
    t: &k8s_openapi::api::core::v1::TCPSocketAction,
    c: &Container,
) -> Result<Handler, HandlerError> {
    Ok(Handler::Tcp {
        host: t.host.clone().filter(|h| !h.is_empty()),
        port: port(&t.port, c)?,
    })
}

/// What a probe runs.
pub fn of_probe(p: &Probe, c: &Container) -> Result<Handler, HandlerError> {
    if let Some(e) = &p.exec {
        return Ok(Handler::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(get) = &p.http_get {
        return http(get, c);
    }
    if let Some(t) = &p.tcp_socket {
        return tcp(t, c);
    }
    if let Some(g) = &p.grpc {
        // The kubelet calls the pod's own address; there is no host.
        return Ok(Handler::Grpc {
            host: None,
            port: port_number(g.port)?,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    Err(HandlerError::Empty)
}

/// What a lifecycle hook does: wait, or run a check.
pub fn of_hook(h: &LifecycleHandler, c: &Container) -> Result<HookPlan, HandlerError> {
    if let Some(e) = &h.exec {
        return Ok(HookPlan::Run(Handler::Exec(
            e.command.clone().unwrap_or_default(),
        )));
    }
    if let Some(get) = &h.http_get {
        return http(get, c).map(HookPlan::Run);
    }
    if let Some(t) = &h.tcp_socket {
        return tcp(t, c).map(HookPlan::Run);
    }
    if let Some(s) = &h.sleep {
        return Ok(HookPlan::Sleep { seconds: s.seconds });
    }
    Err(HandlerError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::Timing;

    fn container(yaml: &str) -> Container {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn handlers_from_the_manifest() {
        let c = container(
            r#"
name: web
ports: [{name: http, containerPort: 8080}]
readinessProbe: {httpGet: {path: healthz, port: http, httpHeaders: [{name: X-A, value: b}]}, periodSeconds: 2}
livenessProbe: {tcpSocket: {port: 9000}, initialDelaySeconds: 5, timeoutSeconds: 3}
startupProbe: {exec: {command: [cat, /ready]}}
lifecycle: {preStop: {sleep: {seconds: 4}}}
"#,
        );
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            of_probe(ready, &c).unwrap(),
            Handler::Http {
                tls: false,
                host: None,
                port: 8080,
                path: "/healthz".to_owned(),
                headers: vec![("X-A".to_owned(), "b".to_owned())],
            }
        );
        assert_eq!(
            Timing::of(ready),
            Timing {
                initial_delay_ms: 0,
                period_ms: 2000,
                timeout_ms: 1000
            }
        );
        let live = c.liveness_probe.as_ref().unwrap();
        assert_eq!(
            of_probe(live, &c).unwrap(),
            Handler::Tcp {
                host: None,
                port: 9000
            }
        );
        assert_eq!(Timing::of(live).initial_delay_ms, 5000);
        assert_eq!(Timing::of(live).timeout_ms, 3000);
        assert_eq!(
            of_probe(c.startup_probe.as_ref().unwrap(), &c).unwrap(),
            Handler::Exec(vec!["cat".to_owned(), "/ready".to_owned()])
        );
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(
            of_hook(pre_stop, &c).unwrap(),
            HookPlan::Sleep { seconds: 4 }
        );
    }

    #[test]
    fn https_and_grpc_handlers() {
        let c = container(
            r#"
name: web
ports: [{name: tls, containerPort: 8443}]
readinessProbe: {grpc: {port: 9000}}
livenessProbe: {grpc: {port: 9001, service: db}}
startupProbe: {httpGet: {port: tls, scheme: HTTPS, host: example.test}}
lifecycle: {postStart: {httpGet: {port: 443, path: /start, scheme: https}}}
"#,
        );
        assert_eq!(
            of_probe(c.readiness_probe.as_ref().unwrap(), &c).unwrap(),
            Handler::Grpc {
                host: None,
                port: 9000,
                service: String::new(),
            }
        );
        assert_eq!(
            of_probe(c.liveness_probe.as_ref().unwrap(), &c).unwrap(),
            Handler::Grpc {
                host: None,
                port: 9001,
                service: "db".to_owned(),
            }
        );
        assert_eq!(
            of_probe(c.startup_probe.as_ref().unwrap(), &c).unwrap(),
            Handler::Http {
                tls: true,
                host: Some("example.test".to_owned()),
                port: 8443,
                path: "/".to_owned(),
                headers: vec![],
            }
        );
        let post_start = c.lifecycle.as_ref().unwrap().post_start.as_ref().unwrap();
        assert_eq!(
            of_hook(post_start, &c).unwrap(),
            HookPlan::Run(Handler::Http {
                tls: true,
                host: None,
                port: 443,
                path: "/start".to_owned(),
                headers: vec![],
            })
        );
    }

    #[test]
    fn what_cannot_be_run_is_an_error() {
        let c = container(
            r#"
name: web
readinessProbe: {httpGet: {port: metrics}}
livenessProbe: {grpc: {port: 70000}}
startupProbe: {tcpSocket: {port: 0}}
"#,
        );
        let err = |p: &Option<Probe>| of_probe(p.as_ref().unwrap(), &c).unwrap_err().to_string();
        assert_eq!(
            err(&c.readiness_probe),
            "no port named \"metrics\" in the container's ports"
        );
        assert_eq!(err(&c.liveness_probe), "port 70000 is out of range");
        assert_eq!(err(&c.startup_probe), "port 0 is out of range");
        let empty: Probe = serde_saphyr::from_str("periodSeconds: 1").unwrap();
        assert_eq!(of_probe(&empty, &c).unwrap_err(), HandlerError::Empty);
    }
}
