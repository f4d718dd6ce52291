//! One container: image, restart policy, ports, env, probes, lifecycle,
//! volume mounts, security context (resources are in `resources.rs`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, ObjectFieldSelector, Probe,
    ResourceFieldSelector, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{invalid_each, names, non_negative, resources};
use crate::manifest::field::{FieldError, FieldPath};
use crate::manifest::model::ContainerKind;
use crate::manifest::quantity::Quantity;

/// What a container's checks need to know about the pod around it.
pub struct PodContext<'a> {
    pub volumes: &'a BTreeSet<String>,
    pub grace_period: i64,
    pub host_network: bool,
    pub os_name: Option<&'a str>,
}

pub fn validate(
    c: &Container,
    kind: ContainerKind,
    path: &FieldPath,
    pod: &PodContext,
    errors: &mut Vec<FieldError>,
) {
    let name_path = path.child("name");
    if c.name.is_empty() {
        errors.push(FieldError::required(&name_path));
    } else {
        invalid_each(errors, &name_path, &c.name, names::dns1123_label(&c.name));
    }
    image(c, path, errors);
    restart_policy(c, kind, path, errors);
    if kind == ContainerKind::Init {
        for (field, set) in [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ] {
            if set {
                errors.push(FieldError::forbidden(
                    &path.child(field),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    } else {
        probes(c, path, errors);
        lifecycle(c, path, pod, errors);
    }
    if let Some(policy) = c.termination_message_policy.as_deref()
        && !matches!(policy, "File" | "FallbackToLogsOnError")
    {
        errors.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            policy,
            &["File", "FallbackToLogsOnError"],
        ));
    }
    ports(c, path, pod.host_network, errors);
    env(c, path, errors);
    volume_mounts(c, path, pod.volumes, errors);
    resources::container(c.resources.as_ref(), &path.child("resources"), errors);
    security_context(c, path, errors);
}

fn image(c: &Container, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let image_path = path.child("image");
    match c.image.as_deref() {
        None | Some("") => errors.push(FieldError::required(&image_path)),
        Some(image) if image.trim() != image => errors.push(FieldError::invalid(
            &image_path,
            image,
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    if let Some(policy) = c.image_pull_policy.as_deref()
        && !matches!(policy, "Always" | "IfNotPresent" | "Never")
    {
        errors.push(FieldError::not_supported(
            &path.child("imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
}

fn restart_policy(
    c: &Container,
    kind: ContainerKind,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let policy_path = path.child("restartPolicy");
    match (kind, c.restart_policy.as_deref()) {
        (_, None) => {}
        (ContainerKind::App, Some(_)) => errors.push(FieldError::forbidden(
            &policy_path,
            "may not be set for non-init containers",
        )),
        (_, Some("Always")) => {}
        (_, Some(other)) => {
            errors.push(FieldError::not_supported(&policy_path, other, &["Always"]))
        }
    }
    if c.restart_policy_rules
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        errors.push(FieldError::forbidden(
            &path.child("restartPolicyRules"),
            "container restart rules (the ContainerRestartRules feature) are not supported by podrun",
        ));
    }
}

fn probes(c: &Container, path: &FieldPath, errors: &mut Vec<FieldError>) {
    for (field, probe, kind) in [
        ("livenessProbe", &c.liveness_probe, ProbeKind::Liveness),
        ("readinessProbe", &c.readiness_probe, ProbeKind::Readiness),
        ("startupProbe", &c.startup_probe, ProbeKind::Startup),
    ] {
        if let Some(p) = probe {
            self::probe(p, kind, &path.child(field), errors);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn probe(p: &Probe, kind: ProbeKind, path: &FieldPath, errors: &mut Vec<FieldError>) {
    handlers(
        path,
        &p.exec,
        &p.http_get,
        &p.tcp_socket,
        p.grpc.as_ref(),
        false,
        errors,
    );
    for (field, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        non_negative(errors, &path.child(field), value.map(i64::from));
    }
    if kind != ProbeKind::Readiness
        && let Some(s) = p.success_threshold
        && s != 1
    {
        errors.push(FieldError::invalid(
            &path.child("successThreshold"),
            s,
            "must be 1",
        ));
    }
    if let Some(grace) = p.termination_grace_period_seconds {
        let grace_path = path.child("terminationGracePeriodSeconds");
        if kind == ProbeKind::Readiness {
            errors.push(FieldError::invalid(
                &grace_path,
                grace,
                "must not be set for readinessProbes",
            ));
        } else if grace <= 0 {
            errors.push(FieldError::invalid(
                &grace_path,
                grace,
                "must be greater than 0",
            ));
        }
    }
}

/// Exactly one handler, each valid. `grpc` exists on probes only, `sleep`
/// on lifecycle hooks only.
fn handlers(
    path: &FieldPath,
    exec: &Option<ExecAction>,
    http_get: &Option<HTTPGetAction>,
    tcp_socket: &Option<TCPSocketAction>,
    grpc: Option<&GRPCAction>,
    sleep: bool,
    errors: &mut Vec<FieldError>,
) {
    let mut count = 0;
    let mut one = |field: &str, errors: &mut Vec<FieldError>| {
        count += 1;
        if count > 1 {
            errors.push(FieldError::forbidden(
                &path.child(field),
                "may not specify more than 1 handler type",
            ));
        }
    };
    if let Some(e) = exec {
        one("exec", errors);
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            errors.push(FieldError::required(&path.child("exec").child("command")));
        }
    }
    if let Some(h) = http_get {
        one("httpGet", errors);
        let h_path = path.child("httpGet");
        port_ref(&h.port, &h_path.child("port"), errors);
        if let Some(scheme) = h.scheme.as_deref()
            && !matches!(scheme, "HTTP" | "HTTPS")
        {
            errors.push(FieldError::not_supported(
                &h_path.child("scheme"),
                scheme,
                &["HTTP", "HTTPS"],
            ));
        }
        for (i, header) in h.http_headers.iter().flatten().enumerate() {
            if header.name.is_empty() || !header.name.bytes().all(is_http_token_byte) {
                errors.push(FieldError::invalid(
                    &h_path.child("httpHeaders").index(i).child("name"),
                    &header.name,
                    "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
                ));
            }
        }
    }
    if let Some(t) = tcp_socket {
        one("tcpSocket", errors);
        port_ref(&t.port, &path.child("tcpSocket").child("port"), errors);
    }
    if let Some(g) = grpc {
        one("grpc", errors);
        if let Some(msg) = names::port_number(g.port.into()) {
            errors.push(FieldError::invalid(
                &path.child("grpc").child("port"),
                g.port,
                msg,
            ));
        }
    }
    if sleep {
        one("sleep", errors);
    }
    if count == 0 {
        errors.push(FieldError::required_because(
            path,
            "must specify a handler type",
        ));
    }
}

fn is_http_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn port_ref(port: &IntOrString, path: &FieldPath, errors: &mut Vec<FieldError>) {
    match port {
        IntOrString::Int(n) => {
            if let Some(msg) = names::port_number((*n).into()) {
                errors.push(FieldError::invalid(path, *n, msg));
            }
        }
        IntOrString::String(name) => invalid_each(errors, path, name, names::port_name(name)),
    }
}

fn lifecycle(c: &Container, path: &FieldPath, pod: &PodContext, errors: &mut Vec<FieldError>) {
    let Some(lc) = &c.lifecycle else {
        return;
    };
    let lc_path = path.child("lifecycle");
    for (field, hook) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
        if let Some(h) = hook {
            lifecycle_handler(h, &lc_path.child(field), pod, errors);
        }
    }
    if let Some(signal) = lc.stop_signal.as_deref() {
        let signal_path = lc_path.child("stopSignal");
        match pod.os_name {
            None => errors.push(FieldError::forbidden(
                &signal_path,
                "may not be set for containers with empty `spec.os.name`",
            )),
            Some("windows") if !matches!(signal, "SIGKILL" | "SIGTERM") => errors.push(
                FieldError::not_supported(&signal_path, signal, &["SIGKILL", "SIGTERM"]),
            ),
            Some(_) if !LINUX_STOP_SIGNALS.contains(&signal) => errors.push(
                FieldError::not_supported(&signal_path, signal, LINUX_STOP_SIGNALS),
            ),
            Some(_) => {}
        }
    }
}

const LINUX_STOP_SIGNALS: &[&str] = &[
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGIOT",
    "SIGKILL",
    "SIGPIPE",
    "SIGPOLL",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGRTMIN",
    "SIGRTMAX",
];

fn lifecycle_handler(
    h: &LifecycleHandler,
    path: &FieldPath,
    pod: &PodContext,
    errors: &mut Vec<FieldError>,
) {
    handlers(
        path,
        &h.exec,
        &h.http_get,
        &h.tcp_socket,
        None,
        h.sleep.is_some(),
        errors,
    );
    if let Some(sleep) = &h.sleep
        && (sleep.seconds < 0 || sleep.seconds > pod.grace_period)
    {
        errors.push(FieldError::invalid(
            &path.child("sleep"),
            sleep.seconds,
            format!(
                "must be non-negative and less than terminationGracePeriodSeconds ({})",
                pod.grace_period
            ),
        ));
    }
}

fn ports(c: &Container, path: &FieldPath, host_network: bool, errors: &mut Vec<FieldError>) {
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let p_path = path.child("ports").index(i);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let name_path = p_path.child("name");
            invalid_each(errors, &name_path, name, names::port_name(name));
            if !port_names.insert(name) {
                errors.push(FieldError::duplicate(&name_path, name));
            }
        }
        let cp_path = p_path.child("containerPort");
        if p.container_port == 0 {
            errors.push(FieldError::required(&cp_path));
        } else if let Some(msg) = names::port_number(p.container_port.into()) {
            errors.push(FieldError::invalid(&cp_path, p.container_port, msg));
        }
        if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
            let hp_path = p_path.child("hostPort");
            if let Some(msg) = names::port_number(hp.into()) {
                errors.push(FieldError::invalid(&hp_path, hp, msg));
            } else if host_network && hp != p.container_port {
                errors.push(FieldError::invalid(
                    &hp_path,
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        match p.protocol.as_deref() {
            None | Some("") => errors.push(FieldError::required(&p_path.child("protocol"))),
            Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => errors.push(FieldError::not_supported(
                &p_path.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

fn env(c: &Container, path: &FieldPath, errors: &mut Vec<FieldError>) {
    for (i, e) in c.env.iter().flatten().enumerate() {
        let e_path = path.child("env").index(i);
        let name_path = e_path.child("name");
        if e.name.is_empty() {
            errors.push(FieldError::required(&name_path));
        } else {
            invalid_each(errors, &name_path, &e.name, names::env_var_name(&e.name));
        }
        let Some(from) = &e.value_from else {
            continue;
        };
        let from_path = e_path.child("valueFrom");
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.file_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(FieldError::invalid(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        match sources {
            0 => errors.push(FieldError::invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`",
            )),
            1 => {}
            _ => errors.push(FieldError::invalid(
                &from_path,
                "",
                "may not have more than one field specified at a time",
            )),
        }
        if let Some(r) = &from.config_map_key_ref {
            key_selector(&r.name, &r.key, &from_path.child("configMapKeyRef"), errors);
        }
        if let Some(r) = &from.secret_key_ref {
            key_selector(&r.name, &r.key, &from_path.child("secretKeyRef"), errors);
        }
        if let Some(r) = &from.field_ref {
            object_field_selector(r, ENV_FIELD_PATHS, &from_path.child("fieldRef"), errors);
        }
        if let Some(r) = &from.resource_field_ref {
            resource_field_selector(r, false, &from_path.child("resourceFieldRef"), errors);
        }
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let e_path = path.child("envFrom").index(i);
        if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty()) {
            invalid_each(
                errors,
                &e_path.child("prefix"),
                prefix,
                names::env_var_name(prefix),
            );
        }
        for (field, name) in [
            ("configMapRef", e.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", e.secret_ref.as_ref().map(|r| &r.name)),
        ] {
            let Some(name) = name else { continue };
            let name_path = e_path.child(field).child("name");
            if name.is_empty() {
                errors.push(FieldError::required(&name_path));
            } else {
                // Validated as a name prefix, whose trailing dash is let
                // through (apimachinery's `maskTrailingDash`, which
                // replaces the last two characters).
                let masked = match name.strip_suffix('-') {
                    Some(_) if name.len() > 1 => {
                        let mut cut = name[..name.len() - 1].to_owned();
                        cut.pop();
                        cut + "a"
                    }
                    _ => name.clone(),
                };
                invalid_each(errors, &name_path, name, names::dns1123_subdomain(&masked));
            }
        }
        let count = [e.config_map_ref.is_some(), e.secret_ref.is_some()]
            .into_iter()
            .filter(|s| *s)
            .count();
        if count != 1 {
            errors.push(FieldError::invalid(
                &e_path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        }
    }
}

/// A `configMapKeyRef` or `secretKeyRef`: a named object and a valid key.
fn key_selector(name: &str, key: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    invalid_each(
        errors,
        &path.child("name"),
        name,
        names::dns1123_subdomain(name),
    );
    let key_path = path.child("key");
    if key.is_empty() {
        errors.push(FieldError::required(&key_path));
    } else {
        invalid_each(errors, &key_path, key, names::config_map_key(key));
    }
}

/// The `fieldRef` paths an environment variable may name (besides
/// `metadata.labels['k']` and `metadata.annotations['k']`).
pub const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The `fieldRef` paths a downwardAPI volume's file may name (besides
/// the subscripted ones).
pub const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// The `resource`s a `resourceFieldRef` may name, besides
/// `limits.hugepages-<size>` and `requests.hugepages-<size>`.
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// The field labels of a v1 Pod the API server converts
/// (`ConvertDownwardAPIFieldLabel`): the path as the downward API knows it.
fn convert_field_label(api_version: &str, label: &str) -> Result<String, String> {
    if api_version != "v1" {
        return Err(format!("unsupported pod version: {api_version}"));
    }
    if let Some((path, _)) = crate::manifest::field::split_subscript(label) {
        return match path {
            "metadata.annotations" | "metadata.labels" => Ok(label.to_owned()),
            _ => Err(format!("field label does not support subscript: {label}")),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(label.to_owned()),
        // What old clients call spec.nodeName.
        "spec.host" => Ok("spec.nodeName".to_owned()),
        _ => Err(format!("field label not supported: {label}")),
    }
}

/// A downward API `fieldRef` (`validateObjectFieldSelector`): a path the
/// API server converts, among `supported`, or a label or annotation key.
pub fn object_field_selector(
    r: &ObjectFieldSelector,
    supported: &[&'static str],
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let api_version = r.api_version.as_deref().unwrap_or_default();
    if api_version.is_empty() {
        errors.push(FieldError::required(&path.child("apiVersion")));
        return;
    }
    if r.field_path.is_empty() {
        errors.push(FieldError::required(&path.child("fieldPath")));
        return;
    }
    let internal = match convert_field_label(api_version, &r.field_path) {
        Ok(internal) => internal,
        Err(e) => {
            errors.push(FieldError::invalid(
                &path.child("fieldPath"),
                &r.field_path,
                format!("error converting fieldPath: {e}"),
            ));
            return;
        }
    };
    match crate::manifest::field::split_subscript(&internal) {
        Some(("metadata.annotations", key)) => {
            let key = key.to_lowercase();
            invalid_each(errors, path, &key, names::qualified_name(&key));
        }
        Some((_, key)) => invalid_each(errors, path, key, names::qualified_name(key)),
        None if !supported.contains(&internal.as_str()) => {
            errors.push(FieldError::not_supported(
                &path.child("fieldPath"),
                internal,
                supported,
            ));
        }
        None => {}
    }
}

/// A `resourceFieldRef` (`validateContainerResourceFieldSelector`): a
/// container's name where a volume names it, a resource it has, and a
/// divisor of that resource's.
pub fn resource_field_selector(
    r: &ResourceFieldSelector,
    volume: bool,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    if volume && r.container_name.as_deref().is_none_or(str::is_empty) {
        errors.push(FieldError::required(&path.child("containerName")));
    } else if r.resource.is_empty() {
        errors.push(FieldError::required(&path.child("resource")));
    } else if !RESOURCE_FIELDS.contains(&r.resource.as_str())
        && !r.resource.starts_with("requests.hugepages-")
        && !r.resource.starts_with("limits.hugepages-")
    {
        errors.push(FieldError::not_supported(
            &path.child("resource"),
            &r.resource,
            RESOURCE_FIELDS,
        ));
    }
    if let Some(divisor) = &r.divisor {
        resource_divisor(&r.resource, &divisor.0, &path.child("divisor"), errors);
    }
}

/// `validateContainerResourceDivisor`: a cpu divisor is 1m or 1, any
/// other one a power of 1000 or of 1024 up to E and Ei, compared as the
/// API server compares them, by the quantity's canonical text (so `1000`
/// is `1k` and passes, `1024` stays `1024` and does not).
fn resource_divisor(resource: &str, text: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let divisor = match Quantity::parse(text) {
        Ok(q) => q,
        Err(e) => {
            errors.push(FieldError::invalid(path, text, e.to_string()));
            return;
        }
    };
    // Zero is an unset divisor.
    if divisor.is_zero() {
        return;
    }
    const SIZES: &str = "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the";
    let (cpu, message) = match resource {
        "limits.cpu" | "requests.cpu" => (
            true,
            "only divisor's values 1m and 1 are supported with the cpu resource".to_owned(),
        ),
        "limits.memory" | "requests.memory" => (false, format!("{SIZES} memory resource")),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => {
            (false, format!("{SIZES} local ephemeral storage resource"))
        }
        r if r.starts_with("requests.hugepages-") || r.starts_with("limits.hugepages-") => {
            (false, format!("{SIZES} hugepages resource"))
        }
        _ => return,
    };
    if !canonical_divisor(text, divisor, cpu) {
        errors.push(FieldError::invalid(path, resource, message));
    }
}

/// Whether the divisor's canonical text (resource.Quantity's `String()`)
/// is one the API server allows: `1m` or `1` for cpu, else `1`, `1k` …
/// `1E`, `1Ki` … `1Ei`. The text keeps the format it was written in: a
/// binary suffix (below 1024 printed as decimal), an `e` exponent
/// (printed as `1e3`), or decimal SI.
fn canonical_divisor(text: &str, divisor: Quantity, cpu: bool) -> bool {
    let any_of = |texts: &[&str]| texts.iter().any(|t| Quantity::parse(t) == Ok(divisor));
    let decimal = || {
        if cpu {
            any_of(&["1m", "1"])
        } else {
            any_of(&["1", "1k", "1M", "1G", "1T", "1P", "1E"])
        }
    };
    let suffix = text.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
    if ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].contains(&suffix) {
        match Quantity::parse("1024") {
            Ok(kibi) if divisor < kibi => decimal(),
            _ => !cpu && any_of(&["1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"]),
        }
    } else if suffix.starts_with(['e', 'E']) && suffix.len() > 1 {
        any_of(&["1"])
    } else {
        decimal()
    }
}

fn volume_mounts(
    c: &Container,
    path: &FieldPath,
    volumes: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let mut mount_paths: BTreeMap<&str, ()> = BTreeMap::new();
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let m_path = path.child("volumeMounts").index(i);
        let name_path = m_path.child("name");
        if m.name.is_empty() {
            errors.push(FieldError::required(&name_path));
        } else if !volumes.contains(&m.name) {
            errors.push(FieldError::not_found(&name_path, &m.name));
        }
        let mp_path = m_path.child("mountPath");
        if m.mount_path.is_empty() {
            errors.push(FieldError::required(&mp_path));
        } else if mount_paths.insert(&m.mount_path, ()).is_some() {
            errors.push(FieldError::invalid(
                &mp_path,
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            relative_path(sub, &m_path.child("subPath"), errors);
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                errors.push(FieldError::invalid(
                    &m_path.child("subPathExpr"),
                    m.sub_path_expr.as_deref().unwrap_or_default(),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            relative_path(expr, &m_path.child("subPathExpr"), errors);
        }
        let propagation = m.mount_propagation.as_deref();
        match propagation {
            None | Some("None" | "HostToContainer") => {}
            Some("Bidirectional") if !privileged => errors.push(FieldError::forbidden(
                &m_path.child("mountPropagation"),
                "Bidirectional mount propagation is available only to privileged containers",
            )),
            Some("Bidirectional") => {}
            Some(other) => errors.push(FieldError::not_supported(
                &m_path.child("mountPropagation"),
                other,
                &["Bidirectional", "HostToContainer", "None"],
            )),
        }
        if let Some(rro) = m.recursive_read_only.as_deref() {
            let rro_path = m_path.child("recursiveReadOnly");
            if !matches!(rro, "Disabled" | "Enabled" | "IfPossible") {
                errors.push(FieldError::not_supported(
                    &rro_path,
                    rro,
                    &["Disabled", "Enabled", "IfPossible"],
                ));
            } else if rro != "Disabled" {
                if m.read_only != Some(true) {
                    errors.push(FieldError::forbidden(
                        &rro_path,
                        "may only be specified when readOnly is true",
                    ));
                }
                if !matches!(propagation, None | Some("None")) {
                    errors.push(FieldError::forbidden(
                        &rro_path,
                        "may only be specified when mountPropagation is None or not specified",
                    ));
                }
            }
        }
    }
}

/// A subPath stays inside its volume: relative, with no `..` element.
pub fn relative_path(p: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if p.starts_with('/') {
        errors.push(FieldError::invalid(path, p, "must be a relative path"));
    }
    if p.split('/').any(|part| part == "..") {
        errors.push(FieldError::invalid(path, p, "must not contain '..'"));
    }
}

const MAX_ID: i64 = 2_147_483_647;

fn security_context(c: &Container, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let Some(sc) = &c.security_context else {
        return;
    };
    let sc_path = path.child("securityContext");
    for (field, id) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        id_range(id, &sc_path.child(field), errors);
    }
    if sc.allow_privilege_escalation == Some(false) {
        let sys_admin = sc
            .capabilities
            .as_ref()
            .and_then(|caps| caps.add.as_ref())
            .is_some_and(|add| add.iter().any(|cap| cap == "CAP_SYS_ADMIN"));
        if sc.privileged == Some(true) {
            errors.push(FieldError::invalid(
                &sc_path,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sys_admin {
            errors.push(FieldError::invalid(
                &sc_path,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    if let Some(proc_mount) = sc.proc_mount.as_deref()
        && !matches!(proc_mount, "Default" | "Unmasked")
    {
        errors.push(FieldError::not_supported(
            &sc_path.child("procMount"),
            proc_mount,
            &["Default", "Unmasked"],
        ));
    }
    if let Some(profile) = &sc.seccomp_profile {
        seccomp(profile, &sc_path.child("seccompProfile"), errors);
    }
}

pub fn id_range(id: Option<i64>, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if let Some(id) = id
        && !(0..=MAX_ID).contains(&id)
    {
        errors.push(FieldError::invalid(
            path,
            id,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
}

pub fn seccomp(
    profile: &k8s_openapi::api::core::v1::SeccompProfile,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    match profile.type_.as_str() {
        "Localhost" => {
            if profile
                .localhost_profile
                .as_deref()
                .is_none_or(str::is_empty)
            {
                errors.push(FieldError::required_because(
                    &path.child("localhostProfile"),
                    "must be set when seccomp type is Localhost",
                ));
            }
        }
        "RuntimeDefault" | "Unconfined" => {
            if profile.localhost_profile.is_some() {
                errors.push(FieldError::invalid(
                    &path.child("localhostProfile"),
                    profile.localhost_profile.as_deref().unwrap_or_default(),
                    "can only be set if seccomp type is Localhost",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ManifestError, parse};

    /// The errors of a pod with one container of `env` and `envFrom`.
    fn errors(container: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: a\n    image: busybox\n{container}\n"
        );
        match parse(&text) {
            Err(ManifestError::Invalid { errors, .. }) => {
                errors.iter().map(ToString::to_string).collect()
            }
            Ok(_) => Vec::new(),
            Err(other) => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn env_sources_are_validated_as_the_api_server_does() {
        assert_eq!(
            errors(
                r#"    env:
    - {name: A, valueFrom: {configMapKeyRef: {name: My_Map, key: "bad key"}}}
    - {name: B, valueFrom: {secretKeyRef: {name: s, key: ""}}}
    - {name: C, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
    - {name: D, valueFrom: {fieldRef: {fieldPath: "metadata.name['x']"}}}
    - {name: E, valueFrom: {fieldRef: {fieldPath: spec.restartPolicy}}}
    - {name: F, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}
    - {name: G, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1k}}}
    - {name: H, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1000m}}}
    - {name: I, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['ok.example/key']"}}}
    - {name: J, valueFrom: {fieldRef: {fieldPath: spec.host}}}
    - {name: K, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage, divisor: 2Ki}}}
    - {name: L, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: ".5Ki"}}}
    - {name: M, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: "1e3"}}}"#
            ),
            [
                "spec.containers[0].env[0].valueFrom.configMapKeyRef.name: Invalid value: \"My_Map\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                "spec.containers[0].env[1].valueFrom.secretKeyRef.key: Required value",
                "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Invalid value: \"metadata.name['x']\": error converting fieldPath: field label does not support subscript: metadata.name['x']",
                "spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.restartPolicy\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                "spec.containers[0].env[5].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"",
                "spec.containers[0].env[6].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.cpu\": only divisor's values 1m and 1 are supported with the cpu resource",
                "spec.containers[0].env[10].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.ephemeral-storage\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource",
                // 512, written in Ki, is printed "512".
                "spec.containers[0].env[11].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
                // 1000 with an exponent is printed "1e3".
                "spec.containers[0].env[12].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
            ]
        );
    }

    #[test]
    fn env_from_prefixes_and_names() {
        assert_eq!(
            errors(
                r#"    envFrom:
    - {configMapRef: {name: cm}, prefix: "A=B"}
    - {secretRef: {name: ""}}
    - {configMapRef: {name: "trailing-"}, prefix: "ok-prefix."}
    - {secretRef: {name: Bad}}
    - {prefix: X}"#
            ),
            [
                "spec.containers[0].envFrom[0].prefix: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].envFrom[1].secretRef.name: Required value",
                "spec.containers[0].envFrom[3].secretRef.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.containers[0].envFrom[4]: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
            ]
        );
    }

    #[test]
    fn divisors_are_compared_by_their_canonical_text() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        for (text, cpu, ok) in [
            ("1", true, true),
            ("1m", true, true),
            ("1000m", true, true),
            ("0.001", true, true),
            ("1k", true, false),
            ("1e0", true, true),
            ("1e-3", true, false),
            ("1k", false, true),
            ("1000", false, true),
            ("1E", false, true),
            ("1e3", false, false),
            ("1Ki", false, true),
            ("1024", false, false),
            ("1024Ki", false, true),
            ("2Ki", false, false),
            ("0.9765625Ki", false, true),
            ("1Ei", false, true),
            ("1Ki", true, false),
        ] {
            assert_eq!(
                canonical_divisor(text, q(text), cpu),
                ok,
                "{text} cpu={cpu}"
            );
        }
    }
}
