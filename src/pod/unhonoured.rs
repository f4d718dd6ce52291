//! Fields of a valid pod that podrun does not act on. Nothing valid is
//! passed over in silence: what podrun cannot honour (yet) refuses the
//! pod with the reason; what a node's kubelet itself leaves to others
//! (the scheduler's fields, a cluster's objects) or ignores on a node like
//! this one is accepted with one warning line each.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};

use crate::manifest::Pod;

/// What compiling found that podrun does not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unhonoured {
    /// One line each: why the pod cannot run here.
    pub refused: Vec<String>,
    /// One line each: what is accepted and has no effect here.
    pub ignored: Vec<String>,
}

/// The fields of `pod` that podrun does not act on.
pub fn of(pod: &Pod) -> Unhonoured {
    let mut out = Unhonoured::default();
    let spec = &pod.spec;
    let mut ignore = |field: &str, why: &str| out.ignored.push(format!("{field}: {why}"));
    let scheduler = "only a scheduler acts on it; podrun runs the pod on this machine";
    let set = [
        ("spec.nodeSelector", spec.node_selector.is_some()),
        ("spec.affinity", spec.affinity.is_some()),
        ("spec.tolerations", spec.tolerations.is_some()),
        (
            "spec.topologySpreadConstraints",
            spec.topology_spread_constraints.is_some(),
        ),
        ("spec.schedulingGates", spec.scheduling_gates.is_some()),
        ("spec.schedulingGroup", spec.scheduling_group.is_some()),
        ("spec.schedulerName", spec.scheduler_name.is_some()),
        ("spec.priorityClassName", spec.priority_class_name.is_some()),
        ("spec.priority", spec.priority.is_some()),
        ("spec.preemptionPolicy", spec.preemption_policy.is_some()),
    ];
    for (field, present) in set {
        if present {
            ignore(field, scheduler);
        }
    }
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        ignore(
            "spec.nodeName",
            &format!("podrun runs the pod on this machine, whatever its name (not {node:?})"),
        );
    }
    if spec.eviction_responders.is_some() {
        ignore(
            "spec.evictionResponders",
            "eviction requests are a cluster's; nothing asks for one here",
        );
    }
    let account = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref());
    if account.is_some_and(|a| !a.is_empty() && a != "default")
        && spec.automount_service_account_token != Some(false)
    {
        ignore(
            "spec.serviceAccountName",
            "podrun has no API server: no service account token is mounted (a node's kubelet mounts one only when the API server has added its volume)",
        );
    }
    let pod_sc = spec.security_context.as_ref();
    if let Some(sc) = pod_sc {
        pod_security(sc, &mut out);
    }
    let mut refuse = |field: String, why: &str| out.refused.push(format!("{field}: {why}"));
    if spec.host_users == Some(false) {
        refuse(
            "spec.hostUsers".to_owned(),
            "podrun does not run pods in user namespaces yet",
        );
    }
    if spec.readiness_gates.as_ref().is_some_and(|g| !g.is_empty()) {
        refuse(
            "spec.readinessGates".to_owned(),
            "nothing on this machine sets the conditions they wait for: the pod would never be Ready",
        );
    }
    if let Some(class) = spec.runtime_class_name.as_deref().filter(|c| !c.is_empty()) {
        refuse(
            "spec.runtimeClassName".to_owned(),
            &format!(
                "podrun is the one runtime here; RuntimeClass {class:?} is a cluster's object"
            ),
        );
    }
    let containers = pod
        .init_containers()
        .iter()
        .map(|c| ("spec.initContainers", c))
        .chain(spec.containers.iter().map(|c| ("spec.containers", c)));
    for (list, c) in containers {
        container(&format!("{list}[{}]", c.name), c, &mut out);
    }
    annotations(pod, &mut out);
    out
}

fn pod_security(sc: &PodSecurityContext, out: &mut Unhonoured) {
    let path = "spec.securityContext";
    if sc.sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
        out.refused
            .push(format!("{path}.sysctls: podrun does not set sysctls yet"));
    }
    profiles(
        path,
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
        out,
    );
    if sc.se_linux_options.is_some() || sc.se_linux_change_policy.is_some() {
        out.ignored.push(format!(
            "{path}.seLinuxOptions: podrun does not label with SELinux (a kubelet on a node without SELinux ignores it too)"
        ));
    }
    if sc.windows_options.is_some() {
        out.ignored.push(format!(
            "{path}.windowsOptions: for Windows nodes only (the kubelet on Linux ignores it)"
        ));
    }
}

/// seccomp and AppArmor: only `Unconfined` is what podrun does today.
fn profiles(path: &str, seccomp: Option<&str>, apparmor: Option<&str>, out: &mut Unhonoured) {
    if let Some(t) = seccomp.filter(|t| *t != "Unconfined") {
        out.refused.push(format!(
            "{path}.seccompProfile: podrun does not apply seccomp profiles yet ({t})"
        ));
    }
    if let Some(t) = apparmor.filter(|t| *t != "Unconfined") {
        out.refused.push(format!(
            "{path}.appArmorProfile: podrun does not apply AppArmor profiles yet ({t})"
        ));
    }
}

fn container_security(path: &str, sc: &SecurityContext, out: &mut Unhonoured) {
    profiles(
        path,
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
        out,
    );
    if sc.se_linux_options.is_some() {
        out.ignored.push(format!(
            "{path}.seLinuxOptions: podrun does not label with SELinux (a kubelet on a node without SELinux ignores it too)"
        ));
    }
    if sc.windows_options.is_some() {
        out.ignored.push(format!(
            "{path}.windowsOptions: for Windows nodes only (the kubelet on Linux ignores it)"
        ));
    }
    if sc.proc_mount.as_deref() == Some("Unmasked") {
        out.refused.push(format!(
            "{path}.procMount: podrun does not mount /proc unmasked yet"
        ));
    }
}

fn container(path: &str, c: &Container, out: &mut Unhonoured) {
    if let Some(sc) = &c.security_context {
        container_security(&format!("{path}.securityContext"), sc, out);
    }
    if c.tty == Some(true) || c.stdin == Some(true) {
        out.refused.push(format!(
            "{path}: stdin and tty: podrun does not give a container a terminal or standard input yet (`podrun exec -it` gives a command one)"
        ));
    }
    let message_path = c.termination_message_path.as_deref();
    if message_path.is_some_and(|p| p != "/dev/termination-log")
        || c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        out.refused.push(format!(
            "{path}: terminationMessagePath and terminationMessagePolicy: podrun does not read termination messages yet"
        ));
    }
    if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        out.refused.push(format!(
            "{path}.volumeDevices: podrun does not give containers raw block devices"
        ));
    }
}

/// Annotations the kubelet acts on.
fn annotations(pod: &Pod, out: &mut Unhonoured) {
    const APPARMOR: &str = "container.apparmor.security.beta.kubernetes.io/";
    for (key, value) in &pod.annotations {
        if key.starts_with(APPARMOR) && value != "unconfined" {
            out.refused.push(format!(
                "metadata.annotations[{key}]: podrun does not apply AppArmor profiles yet ({value})"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn notes(spec: &str) -> Unhonoured {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}");
        of(&manifest::parse(&text).unwrap().pod)
    }

    #[test]
    fn a_plain_pod_has_nothing_to_say() {
        assert_eq!(
            notes("  containers: [{name: a, image: i}]\n"),
            Unhonoured::default()
        );
        // Unconfined is what podrun does; the default account has no token.
        assert_eq!(
            notes(
                "  serviceAccountName: default\n  securityContext: {seccompProfile: {type: Unconfined}}\n  containers: [{name: a, image: i}]\n"
            ),
            Unhonoured::default()
        );
    }

    #[test]
    fn scheduling_fields_are_warned_of() {
        let n = notes(
            "  nodeSelector: {disk: ssd}\n  tolerations: [{operator: Exists}]\n  priorityClassName: high\n  nodeName: elsewhere\n  containers: [{name: a, image: i}]\n",
        );
        assert!(n.refused.is_empty(), "{n:?}");
        assert_eq!(n.ignored.len(), 4, "{n:?}");
        assert!(n.ignored[0].starts_with("spec.nodeSelector: only a scheduler acts on it"));
        assert!(n.ignored[3].contains("not \"elsewhere\""));
    }

    #[test]
    fn what_podrun_does_not_apply_is_refused_with_the_reason() {
        let n = notes(
            "  hostUsers: false\n  readinessGates: [{conditionType: x.example/ready}]\n  securityContext: {seccompProfile: {type: RuntimeDefault}, sysctls: [{name: net.ipv4.ip_forward, value: '1'}]}\n  containers:\n  - name: a\n    image: i\n    tty: true\n    stdin: true\n    terminationMessagePolicy: FallbackToLogsOnError\n    securityContext: {appArmorProfile: {type: RuntimeDefault}}\n",
        );
        assert_eq!(
            n.refused,
            [
                "spec.securityContext.sysctls: podrun does not set sysctls yet",
                "spec.securityContext.seccompProfile: podrun does not apply seccomp profiles yet (RuntimeDefault)",
                "spec.hostUsers: podrun does not run pods in user namespaces yet",
                "spec.readinessGates: nothing on this machine sets the conditions they wait for: the pod would never be Ready",
                "spec.containers[a].securityContext.appArmorProfile: podrun does not apply AppArmor profiles yet (RuntimeDefault)",
                "spec.containers[a]: stdin and tty: podrun does not give a container a terminal or standard input yet (`podrun exec -it` gives a command one)",
                "spec.containers[a]: terminationMessagePath and terminationMessagePolicy: podrun does not read termination messages yet",
            ]
        );
    }
}
