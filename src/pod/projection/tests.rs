use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::manifest;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)], binary: &[(&str, &[u8])]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        binary_data: (!binary.is_empty()).then(|| {
            binary
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                .collect()
        }),
        ..Default::default()
    }
}

fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn objects() -> Objects {
    Objects {
        config_maps: vec![config_map(
            "app",
            &[("app.conf", "port=80\n"), ("mode", "fast")],
            &[("logo.png", &[0x89, b'P', b'N', b'G', 0])],
        )],
        secrets: vec![secret(
            "creds",
            &[("password", b"hunter2"), ("key", &[0xff, 0x00])],
        )],
    }
}

fn node() -> NodeFacts {
    NodeFacts {
        memory_bytes: 8 << 30,
        cpus: 4,
        hugepage_sizes: vec![],
    }
}

/// The pod of a manifest whose spec has `volumes` and one container
/// `main` with `resources`.
fn pod(volumes: &str, resources: &str) -> Pod {
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {{app: web, tier: front}}
  annotations: {{note: "say \"hi\"\n\tbye", plain: x}}
spec:
  securityContext: {{fsGroup: 2000}}
  containers:
  - name: main
    image: busybox
    resources: {resources}
  volumes:
{volumes}
"#
    );
    manifest::parse(&yaml).unwrap_or_else(|e| panic!("{e}")).pod
}

/// The objects of namespace `shop`, where the pod is.
fn shop_objects() -> Objects {
    let mut o = objects();
    for c in &mut o.config_maps {
        c.metadata.namespace = Some("shop".to_owned());
    }
    for s in &mut o.secrets {
        s.metadata.namespace = Some("shop".to_owned());
    }
    o
}

/// Files as (path, mode, data), whether on tmpfs, the files' group.
type Projected = (Vec<(String, u32, Vec<u8>)>, bool, Option<i64>);

/// The volume's files, or its error's text.
fn project(pod: &Pod, objects: &Objects) -> Result<Projected, String> {
    let given = Given {
        objects,
        node: Some(&NODE),
    };
    let v = &pod.spec.volumes.as_ref().unwrap()[0];
    match volume_source(v, pod, "uid-1", &given).expect("a projected kind") {
        Ok(VolumeSource::Projected {
            files,
            memory,
            fs_group,
        }) => Ok((
            files
                .into_iter()
                .map(|f| (f.path, f.mode, f.data))
                .collect(),
            memory,
            fs_group,
        )),
        Ok(other) => panic!("not projected: {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

static NODE: NodeFacts = NodeFacts {
    memory_bytes: 8 << 30,
    cpus: 4,
    hugepage_sizes: Vec::new(),
};

fn f(path: &str, mode: u32, data: &[u8]) -> (String, u32, Vec<u8>) {
    (path.to_owned(), mode, data.to_vec())
}

#[test]
fn a_config_map_volume_holds_every_key_of_data_and_binary_data() {
    let p = pod("  - {name: v, configMap: {name: app}}", "{}");
    let (files, memory, fs_group) = project(&p, &shop_objects()).unwrap();
    assert_eq!(
        files,
        [
            f("app.conf", 0o644, b"port=80\n"),
            f("logo.png", 0o644, &[0x89, b'P', b'N', b'G', 0]),
            f("mode", 0o644, b"fast"),
        ]
    );
    // A configMap volume is on disk, as the kubelet's; its files belong
    // to the pod's fsGroup.
    assert!(!memory);
    assert_eq!(fs_group, Some(2000));
}

#[test]
fn items_choose_keys_paths_and_modes() {
    let p = pod(
        "  - {name: v, configMap: {name: app, defaultMode: 0400, items: [{key: mode, path: conf/mode}, {key: logo.png, path: ./img//logo, mode: 0755}]}}",
        "{}",
    );
    let (files, _, _) = project(&p, &shop_objects()).unwrap();
    assert_eq!(
        files,
        [
            f("conf/mode", 0o400, b"fast"),
            f("img/logo", 0o755, &[0x89, b'P', b'N', b'G', 0]),
        ]
    );
}

#[test]
fn a_missing_config_map_or_key_is_refused_unless_optional() {
    let o = shop_objects();
    let p = pod("  - {name: v, configMap: {name: gone}}", "{}");
    assert_eq!(
        project(&p, &o).unwrap_err(),
        "configmap \"gone\" not found: give it in the manifest's file or with --configmap FILE"
    );
    let p = pod(
        "  - {name: v, configMap: {name: gone, optional: true}}",
        "{}",
    );
    assert_eq!(project(&p, &o).unwrap().0, []);
    let p = pod(
        "  - {name: v, configMap: {name: app, items: [{key: nope, path: nope}, {key: mode, path: mine}]}}",
        "{}",
    );
    assert_eq!(
        project(&p, &o).unwrap_err(),
        "configmap \"app\" references non-existent config key: nope"
    );
    let p = pod(
        "  - {name: v, configMap: {name: app, optional: true, items: [{key: nope, path: nope}, {key: mode, path: mine}]}}",
        "{}",
    );
    assert_eq!(project(&p, &o).unwrap().0, [f("mine", 0o644, b"fast")]);
    // Another namespace's ConfigMap is not the pod's.
    assert!(project(&p, &objects()).unwrap().0.is_empty());
}

#[test]
fn a_secret_volume_is_on_tmpfs_with_its_bytes() {
    let o = shop_objects();
    let p = pod(
        "  - {name: v, secret: {secretName: creds, defaultMode: 0440}}",
        "{}",
    );
    let (files, memory, _) = project(&p, &o).unwrap();
    assert_eq!(
        files,
        [
            f("key", 0o440, &[0xff, 0x00]),
            f("password", 0o440, b"hunter2")
        ]
    );
    assert!(memory);
    let p = pod(
        "  - {name: v, secret: {secretName: creds, items: [{key: token, path: t}]}}",
        "{}",
    );
    assert_eq!(
        project(&p, &o).unwrap_err(),
        "secret \"creds\" references non-existent secret key: token"
    );
    let p = pod("  - {name: v, secret: {secretName: nope}}", "{}");
    assert_eq!(
        project(&p, &o).unwrap_err(),
        "secret \"nope\" not found: give it in the manifest's file or with --secret FILE"
    );
    let p = pod(
        "  - {name: v, secret: {secretName: nope, optional: true}}",
        "{}",
    );
    assert_eq!(project(&p, &o).unwrap(), (vec![], true, Some(2000)));
}

#[test]
fn downward_api_files_in_the_kubelets_formats() {
    let p = pod(
        r#"  - name: v
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: ns, fieldRef: {fieldPath: metadata.namespace}}
      - {path: uid, fieldRef: {fieldPath: metadata.uid}, mode: 0600}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}
      - {path: none, fieldRef: {fieldPath: "metadata.annotations['absent']"}}
      - {path: cpu, resourceFieldRef: {containerName: main, resource: limits.cpu, divisor: 1m}}
      - {path: mem, resourceFieldRef: {containerName: main, resource: requests.memory, divisor: 1Mi}}
"#,
        "{limits: {cpu: 250m}, requests: {memory: 100M}}",
    );
    let (files, memory, _) = project(&p, &Objects::default()).unwrap();
    assert_eq!(
        files,
        [
            f(
                "annotations",
                0o644,
                b"note=\"say \\\"hi\\\"\\n\\tbye\"\nplain=\"x\""
            ),
            f("cpu", 0o644, b"250"),
            f("labels", 0o644, b"app=\"web\"\ntier=\"front\""),
            // 100M / 1Mi = 95.37…, rounded up.
            f("mem", 0o644, b"96"),
            f("name", 0o644, b"web"),
            f("none", 0o644, b""),
            f("ns", 0o644, b"shop"),
            f("tier", 0o644, b"front"),
            f("uid", 0o600, b"uid-1"),
        ]
    );
    // The kubelet wraps downward API volumes in a Memory emptyDir.
    assert!(memory);
}

#[test]
fn a_job_pods_labels_are_its_templates() {
    let yaml = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {of: job}}
spec:
  template:
    metadata: {labels: {of: template}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
      volumes: [{name: v, downwardAPI: {items: [{path: l, fieldRef: {fieldPath: metadata.labels}}]}}]
"#;
    let p = manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}")).pod;
    assert_eq!(
        project(&p, &Objects::default()).unwrap().0,
        [f("l", 0o644, b"of=\"template\"")]
    );
}

#[test]
fn projected_sources_merge_later_over_earlier() {
    let p = pod(
        r#"  - name: v
    projected:
      defaultMode: 0440
      sources:
      - configMap: {name: app}
      - secret: {name: creds, items: [{key: password, path: mode, mode: 0400}]}
      - downwardAPI: {items: [{path: pod/name, fieldRef: {fieldPath: metadata.name}}]}
      - secret: {name: absent, optional: true}
"#,
        "{}",
    );
    let (files, memory, fs_group) = project(&p, &shop_objects()).unwrap();
    assert_eq!(
        files,
        [
            f("app.conf", 0o440, b"port=80\n"),
            f("logo.png", 0o440, &[0x89, b'P', b'N', b'G', 0]),
            // The secret's item replaces the ConfigMap's key of that
            // name (the API server checks only items against items).
            f("mode", 0o400, b"hunter2"),
            f("pod/name", 0o440, b"web"),
        ]
    );
    assert!(memory);
    assert_eq!(fs_group, Some(2000));
}

#[test]
fn projected_sources_podrun_cannot_issue_are_refused() {
    let p = pod(
        "  - {name: v, projected: {sources: [{configMap: {name: app}}, {serviceAccountToken: {path: token}}]}}",
        "{}",
    );
    assert_eq!(
        project(&p, &shop_objects()).unwrap_err(),
        "sources[1].serviceAccountToken: podrun has no API server to issue service account tokens"
    );
    let p = pod(
        "  - {name: v, projected: {sources: [{clusterTrustBundle: {name: b, path: ca.pem}}]}}",
        "{}",
    );
    assert_eq!(
        project(&p, &shop_objects()).unwrap_err(),
        "sources[0].clusterTrustBundle: podrun has no API server to read ClusterTrustBundles from"
    );
}

#[test]
fn a_path_both_file_and_directory_is_refused() {
    let p = pod(
        "  - {name: v, configMap: {name: app, items: [{key: mode, path: a}, {key: app.conf, path: a/b}]}}",
        "{}",
    );
    assert_eq!(
        project(&p, &shop_objects()).unwrap_err(),
        "invalid path \"a\": it is a file, and the directory of \"a/b\""
    );
    // Not next to each other in path order: `a.b` sorts between.
    let apart = pod(
        "  - {name: v, configMap: {name: app, items: [{key: mode, path: a}, {key: mode, path: a.b}, {key: app.conf, path: a/c/d}]}}",
        "{}",
    );
    assert_eq!(
        project(&apart, &shop_objects()).unwrap_err(),
        "invalid path \"a\": it is a file, and the directory of \"a/c/d\""
    );
    assert!(checked_path(&"x".repeat(256)).is_err());
    assert!(checked_path(&"x".repeat(255)).is_ok());
    assert!(checked_path("./.").is_err());
    assert!(checked_path("a/../b").is_err());
    assert!(checked_path("..a").is_err());
    assert_eq!(checked_path("a/.b//c/").unwrap(), "a/.b/c");
}

#[test]
fn go_quoting() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(
        go_quote("\x07\x08\x0c\n\r\t\x0b\x00\x1b\x7f"),
        "\"\\a\\b\\f\\n\\r\\t\\v\\x00\\x1b\\x7f\""
    );
    // Printable Unicode stays; controls, spaces other than U+0020,
    // format and private-use characters are escaped as Go escapes them.
    assert_eq!(go_quote("héllo 世界 ✓"), "\"héllo 世界 ✓\"");
    assert_eq!(
        go_quote("\u{85}\u{a0}\u{200b}\u{2028}\u{feff}\u{e000}\u{fffe}\u{1f600}\u{f0000}"),
        "\"\\u0085\\u00a0\\u200b\\u2028\\ufeff\\ue000\\ufffe😀\\U000f0000\""
    );
    let map: BTreeMap<String, String> = [("b", "2"), ("a", "1\n")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(format_map(&map), "a=\"1\\n\"\nb=\"2\"");
    assert_eq!(format_map(&BTreeMap::new()), "");
}

#[test]
fn resource_values_round_up_and_default_to_the_node() {
    let p = pod(
        "  - {name: v, emptyDir: {}}",
        "{limits: {cpu: 1500m, hugepages-2Mi: 4Mi, memory: 1Gi}, requests: {ephemeral-storage: 1Ki}}",
    );
    let value = |resource: &str, divisor: Option<&str>, node: Option<&NodeFacts>| {
        let selector = ResourceFieldSelector {
            container_name: None,
            resource: resource.to_owned(),
            divisor: divisor
                .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.to_owned())),
        };
        resource_value(&p, "main", &selector, node).map_err(|e| e.to_string())
    };
    let n = node();
    let n = Some(&n);
    assert_eq!(value("limits.cpu", None, n).unwrap(), "2");
    assert_eq!(value("limits.cpu", Some("1m"), n).unwrap(), "1500");
    // A zero divisor is 1.
    assert_eq!(value("limits.cpu", Some("0"), n).unwrap(), "2");
    assert_eq!(value("limits.memory", Some("1Mi"), n).unwrap(), "1024");
    assert_eq!(value("limits.memory", Some("1G"), n).unwrap(), "2");
    assert_eq!(value("limits.hugepages-2Mi", Some("1Mi"), n).unwrap(), "4");
    // Requests defaulted from limits by the API server.
    assert_eq!(value("requests.cpu", Some("1m"), n).unwrap(), "1500");
    assert_eq!(
        value("requests.ephemeral-storage", None, n).unwrap(),
        "1024"
    );
    // An unset request is 0; an unset hugepages limit too.
    assert_eq!(value("requests.hugepages-1Gi", None, n).unwrap(), "0");
    assert_eq!(value("limits.hugepages-1Gi", None, n).unwrap(), "0");
    assert_eq!(
        value("limits.ephemeral-storage", None, n).unwrap_err(),
        "limits.ephemeral-storage of container \"main\": it sets no limit, and podrun does not know this node's ephemeral storage capacity to stand for it"
    );
    assert_eq!(
        value("limits.nvidia.com/gpu", None, n).unwrap_err(),
        "unsupported container resource: limits.nvidia.com/gpu"
    );

    // An unset limit is the node's allocatable.
    let bare = pod("  - {name: v, emptyDir: {}}", "{}");
    let selector = |resource: &str, divisor: &str| ResourceFieldSelector {
        container_name: None,
        resource: resource.to_owned(),
        divisor: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            divisor.to_owned(),
        )),
    };
    assert_eq!(
        resource_value(&bare, "main", &selector("limits.cpu", "1m"), n).unwrap(),
        "4000"
    );
    assert_eq!(
        resource_value(&bare, "main", &selector("limits.memory", "1Mi"), n).unwrap(),
        "8192"
    );
    assert_eq!(
        resource_value(&bare, "main", &selector("limits.memory", "1"), None)
            .unwrap_err()
            .to_string(),
        "limits.memory of container \"main\": it sets no limit, and podrun does not know this node's allocatable to stand for it"
    );
    assert_eq!(
        resource_value(&bare, "side", &selector("limits.cpu", "1"), n),
        Err(DownwardError::ContainerNotFound("side".to_owned()))
    );
}

#[test]
fn ratios_are_exact_ceilings() {
    let q = |s: &str| Quantity::parse(s).unwrap();
    assert_eq!(ratio_ceil(q("1"), q("1m")), Some(1000));
    assert_eq!(ratio_ceil(q("1001m"), q("1")), Some(2));
    assert_eq!(ratio_ceil(q("1n"), q("1")), Some(1));
    assert_eq!(ratio_ceil(q("0"), q("1")), Some(0));
    assert_eq!(ratio_ceil(q("-1"), q("1")), Some(0));
    assert_eq!(ratio_ceil(q("1E"), q("1m")), Some(i128::from(i64::MAX)));
    assert_eq!(ratio_ceil(q("1"), q("1n")), None);
}

#[test]
fn field_paths_and_subscripts() {
    assert_eq!(
        split_subscript("metadata.labels['a/b']"),
        Some(("metadata.labels", "a/b"))
    );
    assert_eq!(split_subscript("metadata.labels"), None);
    assert_eq!(split_subscript("['x']"), None);
    let p = pod("  - {name: v, emptyDir: {}}", "{}");
    assert_eq!(
        object_field(&p, "u", "spec.nodeName"),
        Err(DownwardError::FieldPath("spec.nodeName".to_owned()))
    );
    assert_eq!(
        object_field(&p, "u", "metadata.name['x']"),
        Err(DownwardError::Subscript("metadata.name['x']".to_owned()))
    );
}
