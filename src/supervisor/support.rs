//! What `up` cannot run yet, found before anything is created.

use crate::container::rootfs::Root;
use crate::manifest::Pod;

/// One line per thing this pod asks for that podrun does not do yet.
pub fn unsupported(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    for info in &pod.containers {
        let Some(c) = pod.container(info) else {
            continue;
        };
        let name = &info.name;
        let probes = [
            ("startupProbe", c.startup_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
        ];
        for (field, set) in probes {
            if set {
                out.push(format!(
                    "container {name:?}: {field}: podrun does not run probes yet"
                ));
            }
        }
        let lifecycle = c.lifecycle.as_ref();
        let hooks = [
            (
                "postStart",
                lifecycle.is_some_and(|l| l.post_start.is_some()),
            ),
            ("preStop", lifecycle.is_some_and(|l| l.pre_stop.is_some())),
        ];
        for (field, set) in hooks {
            if set {
                out.push(format!(
                    "container {name:?}: lifecycle.{field}: podrun does not run lifecycle hooks yet"
                ));
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
        if let Err(e) = Root::from_image(c.image.as_deref().unwrap_or_default()) {
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
    image: nginx
    readinessProbe: {exec: {command: ["true"]}}
    lifecycle: {preStop: {sleep: {seconds: 1}}}
  - {name: b, image: "rootfs:/", command: ["true"]}
"#,
        )
        .unwrap()
        .pod;
        assert_eq!(
            unsupported(&pod),
            [
                "container \"a\": readinessProbe: podrun does not run probes yet",
                "container \"a\": lifecycle.preStop: podrun does not run lifecycle hooks yet",
                "container \"a\": image \"nginx\": podrun runs rootfs:DIR and rootfs:/ until its image store lands",
            ]
        );
    }
}
