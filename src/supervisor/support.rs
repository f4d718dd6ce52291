//! What `up` cannot run yet, found before anything is created.

use crate::container::rootfs::Root;
use crate::manifest::Pod;
use crate::probe::Handler;

/// One line per thing this pod asks for that podrun does not do yet.
pub fn unsupported(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    for info in &pod.containers {
        let Some(c) = pod.container(info) else {
            continue;
        };
        let name = &info.name;
        let probes = [
            ("startupProbe", c.startup_probe.as_ref()),
            ("readinessProbe", c.readiness_probe.as_ref()),
            ("livenessProbe", c.liveness_probe.as_ref()),
        ];
        for (field, probe) in probes {
            if let Some(Err(e)) = probe.map(|p| Handler::of_probe(p, c)) {
                out.push(format!("container {name:?}: {field}: {e}"));
            }
        }
        let lifecycle = c.lifecycle.as_ref();
        let hooks = [
            ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
            ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
        ];
        for (field, hook) in hooks {
            if let Some(Err(e)) = hook.map(|h| Handler::of_hook(h, c)) {
                out.push(format!("container {name:?}: lifecycle.{field}: {e}"));
            }
        }
        for m in c.volume_mounts.iter().flatten() {
            if m.mount_propagation.as_deref() == Some("Bidirectional") {
                out.push(format!(
                    "container {name:?}: volumeMounts {:?}: podrun does not do Bidirectional mount propagation yet",
                    m.mount_path
                ));
            }
        }
        // Images of the store are checked against it before the pod is
        // created (`images::refusals`); a `rootfs:` one must be well-formed.
        let image = c.image.as_deref().unwrap_or_default();
        if Root::is_rootfs(image)
            && let Err(e) = Root::from_image(image)
        {
            out.push(format!("container {name:?}: {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_thing_not_supported_yet() {
        let pod = crate::manifest::parse(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: rootfs:srv
    readinessProbe: {grpc: {port: 9000}}
    livenessProbe: {httpGet: {port: admin, scheme: HTTPS}}
    lifecycle: {preStop: {sleep: {seconds: 1}}, postStart: {httpGet: {port: 443, scheme: HTTPS}}}
  - {name: b, image: "rootfs:/", command: ["true"], startupProbe: {grpc: {port: 9000, service: b}}}
"#,
        )
        .unwrap()
        .pod;
        // gRPC probes and HTTPS checks run: only the port and the rootfs
        // are refused (images of the store are checked against it).
        assert_eq!(
            unsupported(&pod),
            [
                "container \"a\": livenessProbe: no port named \"admin\" in the container's ports",
                "container \"a\": image \"rootfs:srv\": a rootfs image is rootfs:/ or rootfs:/ABSOLUTE/DIR",
            ]
        );
    }
}
