//! The `validate` and `plan` verbs as a user and a tool see them: exit
//! codes, stdout, stderr. No root needed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn podrun(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podrun runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("podrun finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_examples() {
    for (file, name) in [
        ("examples/all-kinds.yaml", "web"),
        ("examples/deployment-sidecar.yaml", "myapp"),
        ("examples/job-sidecar.yaml", "myjob"),
        ("examples/config-and-secret.yaml", "configured"),
    ] {
        let out = podrun(&["validate", file], None);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("pod/{name} valid\n"));
    }
}

#[test]
fn validate_refuses_with_exit_2_and_kubectl_shape() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    comand: [sh]\n";
    let out = podrun(&["validate", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "The Pod \"x\" is invalid:\n* spec.containers[0].comand: unknown field\n* spec.containers[0].image: Required value\n"
    );
    assert!(out.stdout.is_empty());

    let one = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n";
    let out = podrun(&["validate", "-"], Some(one));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "The Pod \"x\" is invalid: spec.containers[0].image: Required value\n"
    );
}

#[test]
fn validate_refuses_unreadable_and_unparsable_input() {
    let out = podrun(&["validate", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: cannot read no/such/file.yaml:"));

    let out = podrun(&["validate", "-"], Some("{\"apiVersion\": "));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: json:"),
        "{}",
        text(&out.stderr)
    );
}

const TWO_PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: i}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\nspec:\n  selector: {matchLabels: {app: b}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: a, image: i}]}\n";

#[test]
fn validate_takes_every_pod_of_a_file_and_warns_of_what_it_ignores() {
    let out = podrun(&["validate", "-"], Some(TWO_PODS));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pod/a valid\npod/b valid\n");
    assert_eq!(
        text(&out.stderr),
        "warning: -: ignoring v1 Service \"s\" (document 2): podrun runs Pods, Jobs and Deployments, and reads ConfigMaps and Secrets\n"
    );
    let out = podrun(&["plan", "-", "-o", "json"], Some(TWO_PODS));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plans[0]["pod"], "a");
    assert_eq!(plans[1]["pod"], "b");
}

const NEEDS_CONFIG: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: i, volumeMounts: [{name: cfg, mountPath: /cfg}]}]\n  volumes: [{name: cfg, configMap: {name: app-config}}]\n";

#[test]
fn validate_reports_what_up_would_refuse_and_takes_the_objects_given() {
    let out = podrun(&["validate", "-"], Some(NEEDS_CONFIG));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: pod \"x\" cannot run here:\n* volume \"cfg\": configmap \"app-config\" not found"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let dir = tempfile::tempdir().expect("tempdir");
    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {k: v}\n",
    )
    .expect("write");
    let cm = cm.to_str().expect("utf-8 path");
    let out = podrun(&["validate", "-", "--configmap", cm], Some(NEEDS_CONFIG));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pod/x valid\n");

    // What the sandbox would check on this machine: a hostPath's type.
    let host = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: i}]\n  volumes: [{name: h, hostPath: {path: /no/such/dir, type: Directory}}, {name: m, hostPath: {path: /no/such/dir2, type: DirectoryOrCreate}}]\n";
    let out = podrun(&["validate", "-"], Some(host));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: pod \"x\" cannot run here:\n* volume \"h\": hostPath /no/such/dir does not exist (type Directory)\n"
    );

    // A ConfigMap file that holds a Secret is refused, naming the file.
    let out = podrun(&["validate", "-", "--secret", cm], Some(NEEDS_CONFIG));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a file of Secrets holds v1 Secrets only: found v1 ConfigMap \"app-config\" (document 1)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn other_workloads_are_refused_not_ignored() {
    let set = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: i}]}\n";
    let out = podrun(&["validate", "-"], Some(set));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: apps/v1 DaemonSet \"agent\" (document 1): podrun does not run DaemonSets (yet): it runs Pods, Jobs and Deployments\n"
    );
}

#[test]
fn plan_json_is_the_contract_shape() {
    let out = podrun(
        &[
            "plan",
            "examples/all-kinds.yaml",
            "-o",
            "json",
            "--node-memory",
            "8Gi",
            "--node-cpus",
            "4",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["pod"], "web");
    assert_eq!(plan["qosClass"], "Burstable");
    // The init peak: migrate 1500m + proxy 250m beside it.
    assert_eq!(plan["effective"]["requests"]["cpuMillis"], 1750);
    assert_eq!(plan["cgroup"]["pod"]["cpu.weight"], "156");
    assert_eq!(plan["startOrder"][0]["kind"], "sidecar");
    assert_eq!(plan["oomScoreAdj"]["web"], 969);
}

#[test]
fn plan_text_explains() {
    let out = podrun(
        &["plan", "examples/all-kinds.yaml", "--node-memory", "8Gi"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("init peak: migrate (1500m) + sidecars before it proxy (250m)"),
        "{stdout}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = podrun(
        &["plan", "examples/all-kinds.yaml", "--node-memory", "lots"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--node-memory"));
    let out = podrun(&["plan", "examples/all-kinds.yaml", "-o", "xml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn image_verbs_refuse_bad_names_and_sources_with_exit_2() {
    // Checked before the store is opened: no root and no store needed.
    for (args, says) in [
        (
            &["image", "import", "busybox.tar"][..],
            "invalid image source \"busybox.tar\"",
        ),
        (
            &["image", "import", "docker://busybox"][..],
            "the docker: transport is not supported",
        ),
        (
            &["image", "import", "oci:/x", "Bad:Name"][..],
            "invalid image name \"Bad:Name\"",
        ),
        (
            &["image", "inspect", "busybox:"][..],
            "invalid image name \"busybox:\"",
        ),
        (
            &["image", "rm", "ok", "UPPER"][..],
            "repository name must be lowercase",
        ),
    ] {
        let out = podrun(args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}
