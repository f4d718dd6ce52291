use super::*;
use crate::api::runtime::{ProjectedFile, VolumeSource};
use crate::manifest;
use crate::plan::NodeFacts;

fn compiled(yaml: &str) -> Result<PodPlan, Vec<String>> {
    compiled_with(yaml, &Objects::default())
}

fn compiled_with(yaml: &str, objects: &Objects) -> Result<PodPlan, Vec<String>> {
    let pod = manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}")).pod;
    let node = NodeFacts {
        memory_bytes: 8 << 30,
        cpus: 4,
        hugepage_sizes: vec![],
    };
    let resources = crate::plan::plan(&pod, &node, &Default::default());
    let id = Identity {
        uid: "u-1".to_owned(),
        node_name: "node".to_owned(),
    };
    compile(&pod, &resources, &id, objects)
}

#[test]
fn names_each_thing_not_supported_yet() {
    let refused = compiled(
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
    .unwrap_err();
    // gRPC probes and HTTPS checks run: only the port and the rootfs
    // are refused (images of the store are checked against it).
    assert_eq!(
        refused,
        [
            "container \"a\": livenessProbe: no port named \"admin\" in the container's ports",
            "container \"a\": image \"rootfs:srv\": a rootfs image is rootfs:/ or rootfs:/ABSOLUTE/DIR",
        ]
    );
}

#[test]
fn volumes_and_propagation_podrun_does_not_do_are_refused() {
    let refused = compiled(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: busybox
    securityContext: {privileged: true}
    volumeMounts: [{name: cm, mountPath: /c}, {name: d, mountPath: /d, mountPropagation: Bidirectional}]
  volumes: [{name: cm, configMap: {name: x}}, {name: d, emptyDir: {}}]
"#,
    )
    .unwrap_err();
    assert_eq!(
        refused,
        [
            "container \"a\": volumeMounts \"/d\": podrun does not do Bidirectional mount propagation yet",
            "volume \"cm\": configmap \"x\" not found: give it in the manifest's file or with --configmap FILE",
        ]
    );
}

#[test]
fn every_default_is_resolved_once() {
    let plan = compiled(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: side
    image: busybox:1.36
    restartPolicy: Always
    startupProbe: {tcpSocket: {port: 80}}
    lifecycle: {preStop: {sleep: {seconds: 3}}}
  containers:
  - name: app
    image: busybox
    env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: k}}}]
    livenessProbe: {exec: {command: [x]}, periodSeconds: 2, failureThreshold: 5, terminationGracePeriodSeconds: 7}
"#,
    )
    .unwrap();
    assert_eq!(plan.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(plan.grace_seconds, 30);
    assert_eq!(plan.uid, "u-1");
    assert_eq!(plan.sandbox.hostname, "web");
    let side = plan.container("side").unwrap();
    assert_eq!(side.kind, ContainerKind::Sidecar);
    assert_eq!(side.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(
        side.startup_probe.as_ref().unwrap().timing,
        Timing {
            initial_delay_ms: 0,
            period_ms: 10_000,
            timeout_ms: 1000
        }
    );
    assert_eq!(side.pre_stop, Some(HookPlan::Sleep { seconds: 3 }));
    let app = plan.container("app").unwrap();
    assert_eq!(
        app.pull_policy,
        PullPolicy::Always,
        "defaulted from the tag"
    );
    let live = app.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (
            live.timing.period_ms,
            live.failure_threshold,
            live.success_threshold,
            live.termination_grace_seconds
        ),
        (2000, 5, 1, Some(7))
    );
    assert_eq!(app.config, Err("secret \"s\" not found".to_owned()));
    let side_config = side.config.as_ref().unwrap();
    assert_eq!(side_config.cgroup["cpu.weight"], "1");
    assert_eq!(
        plan.manifest["spec"]["initContainers"][0]["image"],
        "busybox:1.36"
    );
}

/// A ConfigMap `app` and a Secret `creds` in namespace default.
fn objects() -> Objects {
    let config_map = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app"},
        "data": {"LEVEL": "debug", "app.conf": "port=80"},
    });
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"token": "czNjcjN0"},
    });
    Objects {
        config_maps: vec![serde_json::from_value(config_map).unwrap()],
        secrets: vec![serde_json::from_value(secret).unwrap()],
    }
}

#[test]
fn unsupported_sources_are_refused_by_name() {
    let refused = compiled_with(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: a, image: busybox, volumeMounts: [{name: cfg, mountPath: /c}]}]
  volumes:
  - {name: cfg, configMap: {name: app, items: [{key: missing, path: m}]}}
  - {name: sec, secret: {secretName: other}}
  - {name: token, projected: {sources: [{secret: {name: creds}}, {serviceAccountToken: {path: t}}]}}
  - {name: claim, persistentVolumeClaim: {claimName: c}}
"#,
        &objects(),
    )
    .unwrap_err();
    assert_eq!(
        refused,
        [
            "volume \"cfg\": configmap \"app\" references non-existent config key: missing",
            "volume \"sec\": secret \"other\" not found: give it in the manifest's file or with --secret FILE",
            "volume \"token\": sources[1].serviceAccountToken: podrun has no API server to issue service account tokens",
            "volume \"claim\": persistentVolumeClaim volumes are not supported by podrun yet",
        ]
    );
}

#[test]
fn config_map_and_secret_data_reach_volumes_and_environment() {
    let plan = compiled_with(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {fsGroup: 3000}
  containers:
  - name: a
    image: busybox
    envFrom: [{configMapRef: {name: app}, prefix: APP_}]
    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}]
    volumeMounts: [{name: cfg, mountPath: /c}, {name: sec, mountPath: /s, readOnly: false}]
  volumes:
  - {name: cfg, configMap: {name: app, items: [{key: app.conf, path: conf/app.conf, mode: 0600}]}}
  - {name: sec, secret: {secretName: creds}}
"#,
        &objects(),
    )
    .unwrap();
    let volumes = &plan.sandbox.volumes;
    assert_eq!(
        volumes[0].source,
        VolumeSource::Projected {
            files: vec![ProjectedFile {
                path: "conf/app.conf".to_owned(),
                mode: 0o600,
                data: b"port=80".to_vec(),
            }],
            memory: false,
            fs_group: Some(3000),
        }
    );
    assert_eq!(
        volumes[1].source,
        VolumeSource::Projected {
            files: vec![ProjectedFile {
                path: "token".to_owned(),
                mode: 0o644,
                data: b"s3cr3t".to_vec(),
            }],
            memory: true,
            fs_group: Some(3000),
        }
    );
    let config = plan.containers[0].config.as_ref().unwrap();
    let env: Vec<(&str, &str)> = config
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env[2..],
        [
            ("APP_LEVEL", "debug"),
            ("APP_app.conf", "port=80"),
            ("TOKEN", "s3cr3t")
        ]
    );
    assert!(config.mounts.iter().all(|m| m.read_only));
}

#[test]
fn configurations_made_again_for_addresses_keep_the_objects() {
    let mut plan = compiled_with(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: "rootfs:/"
    env:
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: app, key: LEVEL}}}
    - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
"#,
        &objects(),
    )
    .unwrap();
    plan.resolve_addresses(&container::Addresses {
        pod_ips: vec!["10.89.0.4".to_owned()],
        host_ips: vec![],
    });
    let env = &plan.containers[0].config.as_ref().unwrap().env;
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("IP"), Some("10.89.0.4"));
    assert_eq!(get("LEVEL"), Some("debug"));
    // The node's 4 cpus, for a container without a cpu limit.
    assert_eq!(get("CPUS"), Some("4"));
}

#[test]
fn an_environment_naming_the_pods_address_waits_for_the_sandbox() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: "rootfs:/"
    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 5353, protocol: UDP, hostIP: 127.0.0.1}, {containerPort: 9}]
    env:
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: URL, value: "http://$(IP):80"}
"#;
    let env = |plan: &PodPlan| plan.containers[0].config.as_ref().unwrap().env.clone();
    let value = |env: &[(String, String)], k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let mut plan = compiled(yaml).unwrap();
    assert!(plan.waits_for_addresses.is_some());
    assert_eq!(value(&env(&plan), "IP"), "");
    plan.resolve_addresses(&container::Addresses {
        pod_ips: vec!["10.89.0.4".to_owned(), "fd00::4".to_owned()],
        host_ips: vec!["192.0.2.10".to_owned()],
    });
    assert!(plan.waits_for_addresses.is_none());
    let e = env(&plan);
    assert_eq!(value(&e, "IP"), "10.89.0.4");
    assert_eq!(value(&e, "IPS"), "10.89.0.4,fd00::4");
    assert_eq!(value(&e, "HOST"), "192.0.2.10");
    assert_eq!(value(&e, "URL"), "http://10.89.0.4:80");
    // The app container's hostPorts, as CNI's portMappings take them.
    let ports: Vec<_> = plan
        .sandbox
        .port_mappings
        .iter()
        .map(|p| {
            (
                p.host_port,
                p.container_port,
                p.protocol.as_str(),
                p.host_ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [(8080, 80, "tcp", ""), (5353, 53, "udp", "127.0.0.1")]
    );

    // A pod that names no address keeps nothing of what it was made from.
    let plain = compiled(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: \"rootfs:/\"}]\n",
    )
    .unwrap();
    assert!(plain.waits_for_addresses.is_none());
}
