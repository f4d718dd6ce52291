//! The planner: a manifest that validates is planned for a node whose facts
//! the fuzzer chooses too, and the plan keeps the invariants that hold for
//! every pod.
//!
//! Input: node memory (8 bytes), cpus (4), huge page sizes (1: a bit per
//! size in HUGEPAGE_SIZES, the last bit for the next 8 bytes as a size of
//! any value), that size (8), `--pod-max-pids` (8; 0 is unset), then the
//! manifest text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podrun::manifest::{self, ContainerKind, Quantity};
use podrun::plan::{NodeFacts, Plan, Settings, plan};

/// Page sizes x86-64, arm64 and ppc64 kernels offer.
const HUGEPAGE_SIZES: [u64; 7] = [
    64 << 10,
    2 << 20,
    16 << 20,
    32 << 20,
    512 << 20,
    1 << 30,
    16 << 30,
];

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let memory_bytes = u64::from_le_bytes(take(&mut data));
    let cpus = u32::from_le_bytes(take(&mut data));
    let [sizes] = take::<1>(&mut data);
    let odd_size = u64::from_le_bytes(take(&mut data));
    let pids = u64::from_le_bytes(take(&mut data));
    let mut hugepage_sizes: Vec<u64> = HUGEPAGE_SIZES
        .iter()
        .enumerate()
        .filter(|(i, _)| sizes & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect();
    if sizes & 0x80 != 0 {
        hugepage_sizes.push(odd_size);
    }
    let node = NodeFacts {
        memory_bytes,
        cpus,
        hugepage_sizes,
    };
    let settings = Settings {
        pod_pids_limit: (pids != 0).then_some(pids),
    };
    let Ok(m) = manifest::parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    let p = plan(&m.pod, &node, &settings);
    check(&m.pod, &p);
    serde_json::to_string(&p).expect("a plan serializes");
    let _ = podrun::plan::render_text(&m.pod, &p);
});

fn check(pod: &manifest::Pod, p: &Plan) {
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    let order: Vec<&str> = p.start_order.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(order, names, "the start order is the containers' order");

    // The pod asks for at least what its apps ask for together, and at
    // least what any one init or sidecar container asks for (requests are
    // non-negative once validated).
    for (name, figure) in &p.why.requests {
        let mut apps = Quantity::ZERO;
        for c in &pod.containers {
            let Some(q) = c.resources.requests.get(name) else {
                continue;
            };
            assert!(!q.is_negative(), "{name}: a negative request validated");
            if c.kind == ContainerKind::App {
                apps = apps.saturating_add(*q);
            } else {
                assert!(figure.total >= *q, "{name}: pod request below {}'s", c.name);
            }
        }
        assert!(
            figure.total >= apps,
            "{name}: pod request below the apps' sum"
        );
    }

    // Every container's request is at most its limit, so where the pod
    // cgroup gets a limit it is not below the pod's request.
    let e = &p.effective;
    for (limit, request) in [
        (e.limits.cpu_millis, e.requests.cpu_millis),
        (e.limits.memory_bytes, e.requests.memory_bytes),
    ] {
        if let (Some(limit), Some(request)) = (limit, request) {
            assert!(
                limit >= request,
                "pod limit {limit} below request {request}"
            );
        }
    }

    for adj in p.oom_score_adj.values() {
        assert!((-1000..=1000).contains(adj), "oom_score_adj {adj}");
    }
    let all = std::iter::once(&p.cgroup.pod).chain(p.cgroup.containers.values());
    for files in all {
        let weight: u64 = files["cpu.weight"].parse().expect("cpu.weight is a number");
        assert!((1..=10_000).contains(&weight), "cpu.weight {weight}");
    }
    assert_eq!(p.admission.admitted, p.admission.reasons.is_empty());
}
