//! The planner against hand-computed Kubernetes numbers. Every test plans
//! for a node with 8Gi of memory (8589934592 bytes) and 4 cpus.

use serde_json::{Value, json};

use super::{NodeFacts, Settings, plan};
use crate::manifest;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

fn node() -> NodeFacts {
    NodeFacts {
        memory_bytes: 8 * GI,
        cpus: 4,
        hugepage_sizes: Vec::new(),
    }
}

fn plan_json(yaml: &str) -> Value {
    plan_json_with(yaml, &node(), &Settings::default())
}

fn plan_json_with(yaml: &str, node: &NodeFacts, settings: &Settings) -> Value {
    let m = manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(plan(&m.pod, node, settings)).unwrap()
}

fn pod(init: &str, apps: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers: {init}\n  containers: {apps}\n"
    )
}

#[test]
fn regular_init_larger_than_apps_and_sidecars() {
    let yaml = pod(
        "[{name: setup, image: i, resources: {requests: {cpu: 2, memory: 1Gi}, limits: {cpu: 2, memory: 1Gi}}},
          {name: proxy, image: i, restartPolicy: Always, resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}}]",
        "[{name: web, image: i, resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {cpu: 1, memory: 512Mi}}}]",
    );
    let p = plan_json(&yaml);
    // cpu request: apps+sidecars = 500m + 100m = 600m; init peak = setup 2000m
    // (no sidecar before it) → max = 2000m.
    // memory request: 256Mi + 64Mi = 320Mi < setup 1Gi → 1Gi.
    // limits: cpu 1 + 200m = 1200m < 2 → 2000m; memory 512Mi + 128Mi < 1Gi → 1Gi.
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 2000, "memoryBytes": GI},
               "limits": {"cpuMillis": 2000, "memoryBytes": GI}})
    );
    // setup is Guaranteed, proxy and web are not → Burstable.
    assert_eq!(p["qosClass"], "Burstable");
    // pod: shares = 2000·1024/1000 = 2048 → weight 174; quota = 2000·100 =
    // 200000 (every container has a cpu limit); memory.max = 1Gi.
    assert_eq!(
        p["cgroup"]["pod"],
        json!({"cpu.weight": "174", "cpu.max": "200000 100000",
               "memory.max": GI.to_string(), "pids.max": "max"})
    );
    // proxy: shares = 100·1024/1000 = 102 → weight 17; quota = 200·100 = 20000.
    assert_eq!(
        p["cgroup"]["containers"]["proxy"],
        json!({"cpu.weight": "17", "cpu.max": "20000 100000", "memory.max": (128 * MI).to_string()})
    );
    // web: shares 512 → weight 59; quota 100000; memory 512Mi.
    assert_eq!(
        p["cgroup"]["containers"]["web"],
        json!({"cpu.weight": "59", "cpu.max": "100000 100000", "memory.max": (512 * MI).to_string()})
    );
    // oom_score_adj = 1000 − 1000·request/8Gi (integer division):
    //   setup: 1000 − 1000·1Gi/8Gi = 1000 − 125 = 875
    //   web:   1000 − 1000·256Mi/8Gi = 1000 − 31 = 969
    //   proxy: 1000 − 1000·64Mi/8Gi = 1000 − 7 = 993, capped at web's 969
    assert_eq!(
        p["oomScoreAdj"],
        json!({"setup": 875, "proxy": 969, "web": 969})
    );
    assert_eq!(
        p["startOrder"],
        json!([{"name": "setup", "kind": "init"}, {"name": "proxy", "kind": "sidecar"},
               {"name": "web", "kind": "app"}])
    );
}

#[test]
fn sidecar_before_a_regular_init_runs_beside_it() {
    let yaml = pod(
        "[{name: log, image: i, restartPolicy: Always, resources: {requests: {cpu: 250m, memory: 128Mi}}},
          {name: migrate, image: i, resources: {requests: {cpu: 1, memory: 512Mi}}}]",
        "[{name: web, image: i, resources: {requests: {cpu: 500m, memory: 256Mi}}}]",
    );
    let p = plan_json(&yaml);
    // cpu: apps+sidecars = 500m + 250m = 750m; init peak = migrate 1000m +
    // log 250m (started before it, still running) = 1250m → 1250m.
    // memory: 256Mi + 128Mi = 384Mi; init peak = 512Mi + 128Mi = 640Mi → 640Mi.
    // No container sets a limit: limits are null.
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 1250, "memoryBytes": 640 * MI},
               "limits": {"cpuMillis": null, "memoryBytes": null}})
    );
    assert_eq!(p["qosClass"], "Burstable");
    // shares = 1250·1024/1000 = 1280 → weight 120; no limits → kernel defaults.
    assert_eq!(
        p["cgroup"]["pod"],
        json!({"cpu.weight": "120", "cpu.max": "max 100000", "memory.max": "max", "pids.max": "max"})
    );
    // web: 1000 − 1000·256Mi/8Gi = 969; migrate: 1000 − 1000·512Mi/8Gi = 938;
    // log: 1000 − 1000·128Mi/8Gi = 985, capped at web's 969.
    assert_eq!(
        p["oomScoreAdj"],
        json!({"log": 969, "migrate": 938, "web": 969})
    );
}

#[test]
fn two_sidecars_accumulate_before_a_last_init() {
    let yaml = pod(
        "[{name: a, image: i, restartPolicy: Always, resources: {requests: {cpu: 200m, memory: 100Mi}}},
          {name: b, image: i, restartPolicy: Always, resources: {requests: {cpu: 300m, memory: 200Mi}}},
          {name: last, image: i, resources: {requests: {cpu: 1, memory: 1Gi}}},
          {name: c, image: i, restartPolicy: Always, resources: {requests: {cpu: 400m, memory: 50Mi}}}]",
        "[{name: main, image: i, resources: {requests: {cpu: 100m, memory: 100Mi}}}]",
    );
    let p = plan_json(&yaml);
    // cpu: apps+sidecars = 100m + 200m + 300m + 400m = 1000m; init peak =
    // last 1000m + a 200m + b 300m = 1500m (c starts after last) → 1500m.
    // memory: 100Mi + 100Mi + 200Mi + 50Mi = 450Mi; init peak = 1024Mi +
    // 100Mi + 200Mi = 1324Mi → 1324Mi.
    assert_eq!(
        p["effective"]["requests"],
        json!({"cpuMillis": 1500, "memoryBytes": 1324 * MI})
    );
    // shares = 1500·1024/1000 = 1536 → weight 138.
    assert_eq!(p["cgroup"]["pod"]["cpu.weight"], "138");
    assert_eq!(
        p["startOrder"],
        json!([{"name": "a", "kind": "sidecar"}, {"name": "b", "kind": "sidecar"},
               {"name": "last", "kind": "init"}, {"name": "c", "kind": "sidecar"},
               {"name": "main", "kind": "app"}])
    );
}

#[test]
fn limits_only_containers_are_guaranteed() {
    let yaml = pod(
        "[{name: init, image: i, resources: {limits: {cpu: 1, memory: 1Gi}}},
          {name: side, image: i, restartPolicy: Always, resources: {limits: {cpu: 500m, memory: 256Mi}}}]",
        "[{name: app, image: i, resources: {limits: {cpu: 1, memory: 512Mi}}}]",
    );
    let p = plan_json(&yaml);
    // requests default to limits, so every container is Guaranteed.
    assert_eq!(p["qosClass"], "Guaranteed");
    // cpu: app 1000m + side 500m = 1500m vs init 1000m → 1500m (both sides).
    // memory: 512Mi + 256Mi = 768Mi vs init 1Gi → 1Gi.
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 1500, "memoryBytes": GI},
               "limits": {"cpuMillis": 1500, "memoryBytes": GI}})
    );
    // shares 1536 → weight 138; quota 1500·100 = 150000.
    assert_eq!(
        p["cgroup"]["pod"],
        json!({"cpu.weight": "138", "cpu.max": "150000 100000",
               "memory.max": GI.to_string(), "pids.max": "max"})
    );
    assert_eq!(
        p["oomScoreAdj"],
        json!({"init": -997, "side": -997, "app": -997})
    );
}

#[test]
fn best_effort() {
    let yaml = pod(
        "[{name: side, image: i, restartPolicy: Always}]",
        "[{name: app, image: i}]",
    );
    let p = plan_json(&yaml);
    assert_eq!(p["qosClass"], "BestEffort");
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 0, "memoryBytes": 0},
               "limits": {"cpuMillis": null, "memoryBytes": null}})
    );
    // BestEffort pods get the minimum shares, 2 → weight 1, and no limits.
    assert_eq!(
        p["cgroup"]["pod"],
        json!({"cpu.weight": "1", "cpu.max": "max 100000", "memory.max": "max", "pids.max": "max"})
    );
    assert_eq!(p["oomScoreAdj"], json!({"side": 1000, "app": 1000}));
}

#[test]
fn overhead_is_added() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  overhead: {cpu: 250m, memory: 120Mi}\n  containers:\n  - {name: web, image: i, resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {cpu: 1, memory: 512Mi}}}\n";
    let p = plan_json(yaml);
    // requests: 500m + 250m = 750m; 256Mi + 120Mi = 376Mi.
    // limits (set, so overhead is added): 1000m + 250m = 1250m; 512Mi + 120Mi = 632Mi.
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 750, "memoryBytes": 376 * MI},
               "limits": {"cpuMillis": 1250, "memoryBytes": 632 * MI}})
    );
    // shares = 750·1024/1000 = 768 → weight 80; quota 1250·100 = 125000.
    assert_eq!(
        p["cgroup"]["pod"],
        json!({"cpu.weight": "80", "cpu.max": "125000 100000",
               "memory.max": (632 * MI).to_string(), "pids.max": "max"})
    );
}

#[test]
fn overhead_does_not_create_a_limit() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  overhead: {cpu: 250m}\n  containers:\n  - {name: web, image: i, resources: {requests: {cpu: 500m}}}\n";
    let p = plan_json(yaml);
    // No limit anywhere: overhead adds to requests (500m + 250m) only.
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 750, "memoryBytes": 0},
               "limits": {"cpuMillis": null, "memoryBytes": null}})
    );
}

#[test]
fn a_limit_missing_on_one_container_leaves_the_pod_unbounded() {
    let yaml = pod(
        "[{name: side, image: i, restartPolicy: Always, resources: {requests: {cpu: 100m, memory: 64Mi}}}]",
        "[{name: web, image: i, resources: {limits: {cpu: 1, memory: 1Gi}}}]",
    );
    let p = plan_json(&yaml);
    // side sets no limit, so the kubelet writes none on the pod cgroup.
    assert_eq!(
        p["effective"]["limits"],
        json!({"cpuMillis": null, "memoryBytes": null})
    );
    assert_eq!(p["cgroup"]["pod"]["cpu.max"], "max 100000");
    assert_eq!(p["cgroup"]["pod"]["memory.max"], "max");
    // The container's own limits still apply to its own cgroup.
    assert_eq!(p["cgroup"]["containers"]["web"]["cpu.max"], "100000 100000");
    // requests: web 1000m (defaulted from its limit) + side 100m.
    assert_eq!(p["effective"]["requests"]["cpuMillis"], 1100);
}

#[test]
fn pids_and_hugepages() {
    let yaml = pod(
        "[]",
        "[{name: db, image: i, resources: {limits: {cpu: 1, memory: 1Gi, hugepages-2Mi: 4Mi}}}]",
    );
    let node = NodeFacts {
        hugepage_sizes: vec![2 * MI, GI],
        ..node()
    };
    let settings = Settings {
        pod_pids_limit: Some(1024),
    };
    let p = plan_json_with(&yaml, &node, &settings);
    assert_eq!(p["cgroup"]["pod"]["pids.max"], "1024");
    // The pod's 2Mi pages come from its requests (defaulted from the limit);
    // the 1Gi size it does not ask for is closed, as the kubelet does.
    assert_eq!(p["cgroup"]["pod"]["hugetlb.2MB.max"], (4 * MI).to_string());
    assert_eq!(p["cgroup"]["pod"]["hugetlb.1GB.max"], "0");
    assert_eq!(
        p["cgroup"]["containers"]["db"]["hugetlb.2MB.max"],
        (4 * MI).to_string()
    );
    assert_eq!(
        p["effective"]["requests"]["hugepages-2Mi"],
        (4 * MI).to_string()
    );
}

#[test]
fn the_issue_example_shape() {
    // From the plan contract: requests 600m/1Gi, limits 1200m/2Gi → weight 67,
    // cpu.max 120000 100000.
    let yaml = pod(
        "[{name: setup, image: i, resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 200m, memory: 256Mi}}},
          {name: proxy, image: i, restartPolicy: Always, resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {cpu: 200m, memory: 1Gi}}}]",
        "[{name: web, image: i, resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {cpu: 1, memory: 1Gi}}}]",
    );
    let p = plan_json(&yaml);
    assert_eq!(
        p["effective"],
        json!({"requests": {"cpuMillis": 600, "memoryBytes": GI},
               "limits": {"cpuMillis": 1200, "memoryBytes": 2 * GI}})
    );
    assert_eq!(p["cgroup"]["pod"]["cpu.weight"], "67");
    assert_eq!(p["cgroup"]["pod"]["cpu.max"], "120000 100000");
    assert_eq!(p["cgroup"]["pod"]["memory.max"], (2 * GI).to_string());
}

#[test]
fn admission_refuses_what_does_not_fit() {
    let yaml = pod(
        "[]",
        "[{name: big, image: i, resources: {requests: {cpu: 8}}}]",
    );
    let p = plan_json(&yaml);
    assert_eq!(p["admission"]["admitted"], false);
    assert!(
        p["admission"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("OutOfcpu")
    );
}

#[test]
fn the_text_report_says_why() {
    let yaml = pod(
        "[{name: log, image: i, restartPolicy: Always, resources: {requests: {cpu: 250m}}},
          {name: migrate, image: i, resources: {requests: {cpu: 1}}}]",
        "[{name: web, image: i, resources: {requests: {cpu: 500m}}}]",
    );
    let m = manifest::parse(&yaml).unwrap();
    let p = plan(&m.pod, &node(), &Settings::default());
    let text = super::render_text(&m.pod, &p);
    assert!(
        text.contains("cpu request 1250m: init peak: migrate (1) + sidecars before it log (250m)"),
        "{text}"
    );
    assert!(
        text.contains("cpu limit none: not set by log, migrate, web"),
        "{text}"
    );
    assert!(
        text.contains("log (sidecar) → migrate (init) → web (app)"),
        "{text}"
    );
}

#[test]
fn a_zero_cpu_request_takes_the_limit_for_shares() {
    // kubelet calculateLinuxResources: request 0 with a limit → shares from
    // the limit: 1000m → 1024 → weight 100.
    let yaml = pod(
        "[]",
        "[{name: web, image: i, resources: {requests: {cpu: '0'}, limits: {cpu: 1}}}]",
    );
    let p = plan_json(&yaml);
    assert_eq!(p["cgroup"]["containers"]["web"]["cpu.weight"], "100");
}

#[test]
fn node_critical_pods_are_protected() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: system-node-critical\n  containers: [{name: a, image: i, resources: {requests: {memory: 1Gi}}}]\n";
    let p = plan_json(yaml);
    assert_eq!(p["qosClass"], "Burstable");
    assert_eq!(p["oomScoreAdj"]["a"], -997);
}
