//! Every kind of bad manifest the API server refuses, with its exact error.

use crate::manifest::{ManifestError, parse};

fn pod(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}")
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ManifestError::Invalid { errors, .. }) => {
            errors.iter().map(ToString::to_string).collect()
        }
        Ok(_) => panic!("accepted:\n{text}"),
        Err(other) => panic!("not a field error: {other}"),
    }
}

/// The manifest is refused with exactly this error among its errors.
fn refused(text: &str, expected: &str) {
    let errors = errors(text);
    assert!(
        errors.iter().any(|e| e == expected),
        "expected {expected:?} in {errors:#?}"
    );
}

#[test]
fn metadata_name_must_be_a_dns_subdomain() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec: {containers: [{name: a, image: i}]}\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain"
        )
    );
    refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: a, image: i}]}\n",
        "metadata.name: Required value: name or generateName is required",
    );
}

#[test]
fn container_names_are_labels_and_unique_across_init_and_apps() {
    let text = pod(
        "  initContainers: [{name: web, image: i}]\n  containers: [{name: web, image: i}, {name: Web_1, image: i}]\n",
    );
    let errors = errors(&text);
    assert!(
        errors.contains(&"spec.containers[0].name: Duplicate value: \"web\"".to_owned()),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(
            "spec.containers[1].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label"
        )),
        "{errors:?}"
    );
    refused(
        &pod("  containers: [{name: a.b, image: i}]\n"),
        "spec.containers[0].name: Invalid value: \"a.b\": must not contain dots",
    );
}

#[test]
fn image_is_required() {
    refused(
        &pod("  containers: [{name: a}]\n"),
        "spec.containers[0].image: Required value",
    );
    refused(
        &pod("  containers: [{name: a, image: ''}]\n"),
        "spec.containers[0].image: Required value",
    );
    refused(
        &pod("  containers: [{name: a, image: ' x'}]\n"),
        "spec.containers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace",
    );
}

#[test]
fn containers_are_required() {
    refused(
        &pod("  containers: []\n"),
        "spec.containers: Required value",
    );
    refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        "spec.containers: Required value",
    );
}

#[test]
fn container_restart_policy_only_on_init_and_only_always() {
    refused(
        &pod("  containers: [{name: a, image: i, restartPolicy: Always}]\n"),
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
    );
    refused(
        &pod(
            "  initContainers: [{name: s, image: i, restartPolicy: Never}]\n  containers: [{name: a, image: i}]\n",
        ),
        "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    );
}

#[test]
fn regular_init_containers_have_no_probes_or_hooks() {
    let text = pod(
        "  initContainers: [{name: s, image: i, readinessProbe: {exec: {command: [x]}}, startupProbe: {exec: {command: [x]}}, livenessProbe: {exec: {command: [x]}}, lifecycle: {preStop: {exec: {command: [x]}}}}]\n  containers: [{name: a, image: i}]\n",
    );
    for field in [
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ] {
        refused(
            &text,
            &format!(
                "spec.initContainers[0].{field}: Forbidden: may not be set for init containers without restartPolicy=Always"
            ),
        );
    }
    // A sidecar may have them.
    parse(&pod("  initContainers: [{name: s, image: i, restartPolicy: Always, readinessProbe: {exec: {command: [x]}}, startupProbe: {exec: {command: [x]}}, lifecycle: {preStop: {sleep: {seconds: 1}}}}]\n  containers: [{name: a, image: i}]\n")).unwrap();
}

#[test]
fn success_threshold_is_one_for_liveness_and_startup() {
    let text = pod(
        "  containers: [{name: a, image: i, livenessProbe: {exec: {command: [x]}, successThreshold: 2}, startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}, readinessProbe: {tcpSocket: {port: 80}, successThreshold: 3}}]\n",
    );
    let errors = errors(&text);
    assert_eq!(
        errors,
        [
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
        ]
    );
}

#[test]
fn probes_need_exactly_one_handler() {
    refused(
        &pod("  containers: [{name: a, image: i, readinessProbe: {periodSeconds: 1}}]\n"),
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    );
    refused(
        &pod(
            "  containers: [{name: a, image: i, readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}}]\n",
        ),
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
    );
    refused(
        &pod("  containers: [{name: a, image: i, readinessProbe: {httpGet: {port: 0}}}]\n"),
        "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    refused(
        &pod(
            "  containers: [{name: a, image: i, livenessProbe: {exec: {command: [x]}, periodSeconds: -1}}]\n",
        ),
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
    );
}

#[test]
fn hooks() {
    refused(
        &pod(
            "  terminationGracePeriodSeconds: 5\n  containers: [{name: a, image: i, lifecycle: {preStop: {sleep: {seconds: 10}}}}]\n",
        ),
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 10: must be non-negative and less than terminationGracePeriodSeconds (5)",
    );
    refused(
        &pod("  containers: [{name: a, image: i, lifecycle: {postStart: {}}}]\n"),
        "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
    );
}

#[test]
fn volume_mounts_name_declared_volumes_and_names_are_unique() {
    refused(
        &pod("  containers: [{name: a, image: i, volumeMounts: [{name: data, mountPath: /d}]}]\n"),
        "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
    );
    refused(
        &pod(
            "  volumes: [{name: data, emptyDir: {}}, {name: data, emptyDir: {}}]\n  containers: [{name: a, image: i}]\n",
        ),
        "spec.volumes[1].name: Duplicate value: \"data\"",
    );
    refused(
        &pod(
            "  volumes: [{name: data}]\n  containers: [{name: a, image: i, volumeMounts: [{name: data, mountPath: /d}, {name: data, mountPath: /d}]}]\n",
        ),
        "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
    );
    refused(
        &pod(
            "  volumes: [{name: data, emptyDir: {}}]\n  containers: [{name: a, image: i, volumeMounts: [{name: data, mountPath: /d, subPath: ../etc}]}]\n",
        ),
        "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'",
    );
    refused(
        &pod(
            "  volumes: [{name: data, emptyDir: {}, hostPath: {path: /x}}]\n  containers: [{name: a, image: i}]\n",
        ),
        "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
    );
    refused(
        &pod(
            "  volumes: [{name: h, hostPath: {path: /x, type: Dir}}]\n  containers: [{name: a, image: i}]\n",
        ),
        "spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
    );
}

#[test]
fn quantities_follow_the_kubernetes_grammar() {
    refused(
        &pod("  containers: [{name: a, image: i, resources: {limits: {memory: 12Mib}}}]\n"),
        "spec.containers[0].resources.limits[memory]: Invalid value: \"12Mib\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    );
    for good in ["128Mi", "0.5", "500m", "1e3", "1G"] {
        parse(&pod(&format!(
            "  containers: [{{name: a, image: i, resources: {{limits: {{memory: '{good}', cpu: '{good}'}}}}}}]\n"
        )))
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    refused(
        &pod("  containers: [{name: a, image: i, resources: {requests: {cpu: '-1'}}}]\n"),
        "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
    );
    refused(
        &pod("  containers: [{name: a, image: i, resources: {requests: {cpus: 1}}}]\n"),
        "spec.containers[0].resources.requests[cpus]: Invalid value: \"cpus\": must be a standard resource type or fully qualified",
    );
}

#[test]
fn requests_may_not_exceed_limits() {
    refused(
        &pod(
            "  containers: [{name: a, image: i, resources: {requests: {cpu: 2}, limits: {cpu: 1}}}]\n",
        ),
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
    );
    refused(
        &pod("  containers: [{name: a, image: i, resources: {requests: {example.com/gpu: 1}}}]\n"),
        "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
    );
}

#[test]
fn port_numbers() {
    refused(
        &pod("  containers: [{name: a, image: i, ports: [{containerPort: 70000}]}]\n"),
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    );
    refused(
        &pod("  containers: [{name: a, image: i, ports: [{containerPort: 0}]}]\n"),
        "spec.containers[0].ports[0].containerPort: Required value",
    );
    refused(
        &pod("  containers: [{name: a, image: i, ports: [{containerPort: 80, protocol: tcp}]}]\n"),
        "spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    );
    refused(
        &pod(
            "  containers: [{name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}]}, {name: b, image: i, ports: [{containerPort: 81, hostPort: 8080}]}]\n",
        ),
        "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"",
    );
}

#[test]
fn pod_level_fields() {
    refused(
        &pod("  restartPolicy: Sometimes\n  containers: [{name: a, image: i}]\n"),
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    );
    refused(
        &pod("  activeDeadlineSeconds: 0\n  containers: [{name: a, image: i}]\n"),
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
    );
    refused(
        &pod("  dnsPolicy: None\n  containers: [{name: a, image: i}]\n"),
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
    );
    refused(
        &pod(
            "  shareProcessNamespace: true\n  hostPID: true\n  containers: [{name: a, image: i}]\n",
        ),
        "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
    );
    refused(
        &pod("  containers: [{name: a, image: i, env: [{name: 'A=B', value: x}]}]\n"),
        "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
    );
    refused(
        &pod(
            "  containers: [{name: a, image: i, securityContext: {privileged: true, allowPrivilegeEscalation: false}}]\n",
        ),
        "spec.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
    );
}

#[test]
fn job_restart_policy_is_never_or_on_failure() {
    let job = |policy: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n  template:\n    spec:\n{policy}      containers: [{{name: a, image: i}}]\n"
        )
    };
    refused(
        &job(""),
        "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
    );
    refused(
        &job("      restartPolicy: Always\n"),
        "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
    );
    parse(&job("      restartPolicy: Never\n")).unwrap();
    parse(&job("      restartPolicy: OnFailure\n")).unwrap();
    refused(
        &job("      restartPolicy: Never\n")
            .replace("  template:", "  completions: 3\n  template:"),
        "spec.completions: Invalid value: 3: podrun runs a single pod: only 1 is supported",
    );
}

#[test]
fn deployment_runs_one_replica_with_matching_selector() {
    let deployment = |replicas: u32, selector: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {selector}}}}}\n  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      containers: [{{name: a, image: i}}]\n"
        )
    };
    parse(&deployment(1, "d")).unwrap();
    refused(
        &deployment(3, "d"),
        "spec.replicas: Invalid value: 3: podrun runs one pod per Deployment: only 1 replica is supported for now",
    );
    refused(
        &deployment(1, "other"),
        "spec.template.metadata.labels: Invalid value: {\"app\":\"d\"}: `selector` does not match template `labels`",
    );
    refused(
        &deployment(1, "d").replace(
            "      containers",
            "      restartPolicy: Never\n      containers",
        ),
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  restartPolicy: Sometimes\n  initContainers: [{name: s, image: i, restartPolicy: Never}]\n  containers:\n  - {name: a, resources: {limits: {memory: 12Mib}}, ports: [{containerPort: 0}]}\n  - {name: a, image: i, livenessProbe: {exec: {command: [x]}, successThreshold: 2}}\n";
    let errors = errors(text);
    for expected in [
        "metadata.name",
        "spec.restartPolicy",
        "spec.initContainers[0].restartPolicy",
        "spec.containers[0].image",
        "spec.containers[0].resources.limits[memory]",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[1].name: Duplicate",
        "spec.containers[1].livenessProbe.successThreshold",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected} missing from {errors:#?}"
        );
    }
}

#[test]
fn kubectl_shape() {
    let e = parse(&pod("  containers: [{name: a}]\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Pod \"p\" is invalid:\n* spec.containers[0].image: Required value"
    );
}

#[test]
fn accepts_the_examples() {
    for example in [
        include_str!("../../../examples/all-kinds.yaml"),
        include_str!("../../../examples/deployment-sidecar.yaml"),
        include_str!("../../../examples/job-sidecar.yaml"),
    ] {
        parse(example).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn non_overcommittable_resources() {
    refused(
        &pod(
            "  containers: [{name: a, image: i, resources: {requests: {cpu: 1, example.com/gpu: 1.5}, limits: {example.com/gpu: 1.5}}}]\n",
        ),
        "spec.containers[0].resources.requests[example.com/gpu]: Invalid value: \"1.5\": must be an integer",
    );
    refused(
        &pod(
            "  containers: [{name: a, image: i, resources: {limits: {memory: 1Gi, hugepages-2Mi: 3Mi}}}]\n",
        ),
        "spec.containers[0].resources.limits[hugepages-2Mi]: Invalid value: \"3Mi\": 3Mi is not positive integer multiple of hugepages-2Mi",
    );
    refused(
        &pod("  containers: [{name: a, image: i, resources: {limits: {hugepages-2Mi: 4Mi}}}]\n"),
        "spec.containers[0].resources: Forbidden: HugePages require cpu or memory",
    );
}

#[test]
fn zero_and_empty_mean_default_as_in_the_api_server() {
    // Go's plain fields cannot tell 0 or "" from absent: they are defaulted.
    let m = parse(&pod("  restartPolicy: ''\n  dnsPolicy: ''\n  containers: [{name: a, image: i, imagePullPolicy: '', ports: [{containerPort: 80, protocol: ''}], livenessProbe: {exec: {command: [x]}, successThreshold: 0, periodSeconds: 0}}]\n")).unwrap();
    let c = &m.pod.spec.containers[0];
    assert_eq!(m.pod.spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        c.ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    let probe = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (probe.success_threshold, probe.period_seconds),
        (Some(1), Some(10))
    );
}

#[test]
fn a_bad_limit_is_reported_once_at_the_limit() {
    let errors = errors(&pod(
        "  containers: [{name: a, image: i, resources: {limits: {cpu: '1_000'}}}]\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.containers[0].resources.limits[cpu]"));
}

#[test]
fn standard_names_that_are_not_for_containers() {
    let errors = errors(&pod(
        "  containers: [{name: a, image: i, resources: {requests: {storage: 1Gi}}}]\n",
    ));
    assert_eq!(
        errors,
        [
            "spec.containers[0].resources.requests[storage]: Invalid value: \"storage\": must be a standard resource for containers"
        ]
    );
}

#[test]
fn scheduling_fields() {
    refused(
        &pod("  tolerations: [{key: k, operator: equals}]\n  containers: [{name: a, image: i}]\n"),
        "spec.tolerations[0].operator: Unsupported value: \"equals\": supported values: \"Equal\", \"Exists\"",
    );
    let found = errors(&pod(
        "  nodeSelector: {'bad key!': x}\n  containers: [{name: a, image: i}]\n",
    ));
    assert!(
        found[0].starts_with("spec.nodeSelector: Invalid value: \"bad key!\""),
        "{found:?}"
    );
    let errors = errors(&pod(
        "  securityContext: {sysctls: [{name: bad name, value: '1'}]}\n  containers: [{name: a, image: i}]\n",
    ));
    assert!(errors[0].starts_with("spec.securityContext.sysctls[0].name: Invalid value: \"bad name\": must have at most 253 characters"), "{errors:?}");
    parse(&pod("  securityContext: {sysctls: [{name: net.ipv4.ip_forward, value: '1'}, {name: kernel/shm_rmid_forced, value: '1'}]}\n  containers: [{name: a, image: i}]\n")).unwrap();
}

#[test]
fn deployment_strategy_and_job_failure_policy() {
    refused(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: a, image: i}]}\n",
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
    );
    refused(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  podFailurePolicy: {rules: [{action: Bogus, onExitCodes: {operator: In, values: [1]}}]}\n  template:\n    spec: {restartPolicy: Never, containers: [{name: a, image: i}]}\n",
        "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Bogus\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
    );
}

#[test]
fn yaml_is_read_as_kubectl_reads_it() {
    // YAML 1.1, as kubectl: a leading zero is octal.
    let m = parse(&pod(
        "  containers: [{name: a, image: i, resources: {requests: {cpu: 010}}}]\n",
    ))
    .unwrap();
    assert_eq!(
        m.pod.containers[0].resources.requests["cpu"].millis_ceil(),
        8000
    );
}
