//! One container: image, restart policy, ports, env, probes, lifecycle,
//! volume mounts, security context (resources are in `resources.rs`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{invalid_each, names, non_negative, resources};
use crate::manifest::field::{FieldError, FieldPath};
use crate::manifest::model::ContainerKind;

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
        if let Some(r) = &from.config_map_key_ref
            && r.key.is_empty()
        {
            errors.push(FieldError::required(
                &from_path.child("configMapKeyRef").child("key"),
            ));
        }
        if let Some(r) = &from.secret_key_ref
            && r.key.is_empty()
        {
            errors.push(FieldError::required(
                &from_path.child("secretKeyRef").child("key"),
            ));
        }
        if let Some(r) = &from.field_ref
            && r.field_path.is_empty()
        {
            errors.push(FieldError::required(
                &from_path.child("fieldRef").child("fieldPath"),
            ));
        }
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let count = [e.config_map_ref.is_some(), e.secret_ref.is_some()]
            .into_iter()
            .filter(|s| *s)
            .count();
        if count != 1 {
            errors.push(FieldError::invalid(
                &path.child("envFrom").index(i),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        }
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
