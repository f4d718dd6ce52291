//! No input makes the manifest reader or the planner panic: arbitrary text,
//! and arbitrary JSON trees built from Kubernetes field names and values
//! grafted into a valid pod, so that generated inputs reach validation and
//! planning rather than stopping at the parser.

use podrun::manifest;
use podrun::plan::{NodeFacts, Settings, plan};
use proptest::prelude::*;
use serde_json::{Value, json};

const FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "restartPolicy",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "hugepages-2Mi",
    "example.com/gpu",
    "ports",
    "containerPort",
    "hostPort",
    "protocol",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "port",
    "successThreshold",
    "periodSeconds",
    "lifecycle",
    "preStop",
    "postStart",
    "sleep",
    "seconds",
    "volumeMounts",
    "mountPath",
    "subPath",
    "env",
    "value",
    "valueFrom",
    "securityContext",
    "privileged",
    "runAsUser",
    "emptyDir",
    "hostPath",
    "path",
    "type",
    "sizeLimit",
    "medium",
    "stopSignal",
    "comand",
];

const STRINGS: &[&str] = &[
    "",
    "a",
    "Always",
    "Never",
    "OnFailure",
    "1",
    "0.5",
    "500m",
    "128Mi",
    "12Mib",
    "-1",
    "1e3",
    "1e400",
    "../x",
    "/abs",
    "data",
    "SIGTERM",
    "TCP",
    "http",
    "\u{0}",
    "ÿ",
    "99999999999999999999Ei",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-70000i64..70000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn node() -> NodeFacts {
    NodeFacts {
        memory_bytes: 1 << 33,
        cpus: 2,
        hugepage_sizes: vec![2 << 20],
    }
}

fn check(text: &str) {
    if let Ok(m) = manifest::parse(text) {
        let p = plan(
            &m.pod,
            &node(),
            &Settings {
                pod_pids_limit: Some(10),
            },
        );
        serde_json::to_string(&p).expect("a plan always serializes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in ".{0,300}") {
        check(&text);
    }

    #[test]
    fn arbitrary_yaml_like_text(lines in prop::collection::vec("[ -]{0,4}[a-zA-Z:{}\\[\\],'\"&*!|>-]{0,12}( [0-9a-zA-Z.:&*!]{0,8})?", 0..12)) {
        check(&lines.join("\n"));
    }

    #[test]
    fn grafted_containers(init in prop::collection::vec(tree(), 0..3), apps in prop::collection::vec(tree(), 1..3), spec in tree()) {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"initContainers": init, "containers": apps}
        });
        if let (Value::Object(extra), Some(Value::Object(s))) = (spec, pod.get_mut("spec")) {
            for (k, v) in extra {
                s.entry(k).or_insert(v);
            }
        }
        let text = pod.to_string();
        check(&text);
    }

    #[test]
    fn mutated_valid_containers(resources in tree(), probe in tree(), restart in prop::sample::select(STRINGS)) {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "s", "image": "i", "restartPolicy": restart, "startupProbe": probe}],
                "containers": [{"name": "a", "image": "i", "resources": resources}]
            }
        });
        check(&pod.to_string());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    check(&deep);
    let deep_yaml = "- ".repeat(50_000);
    check(&deep_yaml);
}

#[test]
fn alias_bombs_are_refused() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    assert!(manifest::parse(bomb).is_err());
}
