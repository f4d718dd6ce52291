//! The kubelet's node e2e sidecar scenarios (test/e2e_node/
//! container_lifecycle_test.go), ported to the simulator. Each test is
//! named after the e2e case it mirrors and asserts what that case asserts,
//! with the suite's own log-based checks (StartsBefore, ExitsBefore,
//! RunTogether, ...) read from the engine's trace. docs/
//! kubernetes-conformance.md lists which cases are covered and why the
//! others are not.

use super::sim::{Behaviour, Entry, Sim};
use crate::lifecycle::{
    Action, ContainerModel, Event, Hook, HookSpec, PodModel, ProbeSpec, RestartPolicy, Signal,
};
use crate::manifest::ContainerKind;

use ContainerKind::{App, Init, Sidecar};

const NEVER: RestartPolicy = RestartPolicy::Never;
const ON_FAILURE: RestartPolicy = RestartPolicy::OnFailure;
const ALWAYS: RestartPolicy = RestartPolicy::Always;

/// One container of an e2e pod.
struct C {
    name: &'static str,
    kind: ContainerKind,
    b: Behaviour,
    startup: Option<ProbeSpec>,
    liveness: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
    pre_stop: bool,
    post_start: bool,
}

fn c(name: &'static str, kind: ContainerKind, b: Behaviour) -> C {
    C {
        name,
        kind,
        b,
        startup: None,
        liveness: None,
        readiness: None,
        pre_stop: false,
        post_start: false,
    }
}

/// `D` seconds, then exit `code`; after SIGTERM, `ts` seconds and the same code.
fn d(secs: i64, code: i32, ts: i64) -> Behaviour {
    Behaviour::e2e(secs, code, ts)
}

fn probe(failure_threshold: u32) -> Option<ProbeSpec> {
    Some(ProbeSpec {
        success_threshold: 1,
        failure_threshold,
        termination_grace_seconds: None,
        // The simulated node's behaviour times the probe.
        ..ProbeSpec::default()
    })
}

fn pod(policy: RestartPolicy, grace: i64, containers: Vec<C>) -> Sim {
    let model = PodModel {
        name: "pod".to_owned(),
        restart_policy: policy,
        grace_seconds: grace,
        active_deadline_seconds: None,
        qos_class: "BestEffort".to_owned(),
        containers: containers
            .iter()
            .map(|c| ContainerModel {
                name: c.name.to_owned(),
                kind: c.kind,
                image: "busybox".to_owned(),
                post_start: c.post_start.then_some(HookSpec::Run),
                pre_stop: c.pre_stop.then_some(HookSpec::Run),
                startup_probe: c.startup,
                readiness_probe: c.readiness,
                liveness_probe: c.liveness,
            })
            .collect(),
    };
    let behaviours: Vec<(&str, Behaviour)> =
        containers.iter().map(|c| (c.name, c.b.clone())).collect();
    let mut sim = Sim::from_model(model, &behaviours);
    sim.start();
    sim
}

/// The e2e suite's checks over the merged log (`parseOutput`).
struct Log<'a>(&'a Sim);

impl Log<'_> {
    fn index_of(&self, pred: impl Fn(&Entry) -> bool) -> Vec<usize> {
        self.0
            .log
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| pred(e))
            .map(|(i, _)| i)
            .collect()
    }

    fn started(&self, name: &str) -> Vec<usize> {
        self.index_of(
            |e| matches!(e, Entry::Event(Event::Started { container, .. }) if container == name),
        )
    }

    fn exited(&self, name: &str) -> Vec<usize> {
        self.index_of(
            |e| matches!(e, Entry::Event(Event::Exited { container, .. }) if container == name),
        )
    }

    fn hook(&self, name: &str, hook: Hook) -> Vec<usize> {
        self.index_of(|e| {
            matches!(e, Entry::Action(Action::RunHook { container, hook: h, .. }) if container == name && *h == hook)
        })
    }

    /// a has started, and b starts (again) after that.
    fn starts_before(&self, a: &str, b: &str) -> bool {
        let Some(&first_a) = self.started(a).first() else {
            return false;
        };
        self.started(b).iter().any(|&i| i > first_a)
    }

    fn exits_before(&self, a: &str, b: &str) -> bool {
        let Some(&first_a) = self.exited(a).first() else {
            return false;
        };
        self.exited(b).iter().any(|&i| i > first_a)
    }

    /// a starts, then b starts before a's exit; both exit in the end.
    fn run_together_lhs_first(&self, a: &str, b: &str) -> bool {
        let (Some(&sa), Some(&ea)) = (self.started(a).first(), self.exited(a).first()) else {
            return false;
        };
        self.started(b).iter().any(|&sb| sb > sa && sb < ea) && !self.exited(b).is_empty()
    }

    fn run_together(&self, a: &str, b: &str) -> bool {
        self.run_together_lhs_first(a, b) || self.run_together_lhs_first(b, a)
    }

    /// RunTogether(container, its hook): the hook ran while a run of the
    /// container was alive.
    fn hook_runs_with(&self, a: &str, hook: Hook) -> bool {
        let starts = self.started(a);
        let exits = self.exited(a);
        self.hook(a, hook).iter().any(|&h| {
            starts
                .iter()
                .any(|&s| s < h && exits.iter().find(|&&x| x > s).is_none_or(|&x| x > h))
        })
    }

    fn starts(&self, a: &str) -> bool {
        !self.started(a).is_empty()
    }

    fn exits(&self, a: &str) -> bool {
        !self.exited(a).is_empty()
    }

    fn has_restarted(&self, a: &str) -> bool {
        self.started(a).len() >= 2
    }
}

fn phase(sim: &Sim) -> String {
    sim.status_json()["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn restarts(sim: &Sim, name: &str) -> i64 {
    let s = sim.status_json();
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in s[list].as_array().into_iter().flatten() {
            if c["name"] == name {
                return c["restartCount"].as_i64().unwrap_or_default();
            }
        }
    }
    panic!("no status for {name}")
}

fn terminated(sim: &Sim, name: &str) -> (i64, String) {
    let s = sim.status_json();
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in s[list].as_array().into_iter().flatten() {
            if c["name"] == name {
                let t = &c["state"]["terminated"];
                return (
                    t["exitCode"].as_i64().expect("terminated"),
                    t["reason"].as_str().unwrap_or_default().to_owned(),
                );
            }
        }
    }
    panic!("no status for {name}")
}

/// Each container ended with this exit code and the reason that goes with
/// it (`expectPodTerminationContainerStatuses`).
fn assert_ended(sim: &Sim, expected: &[(&str, i64)]) {
    for (name, code) in expected {
        let reason = if *code == 0 { "Completed" } else { "Error" };
        assert_eq!(terminated(sim, name), (*code, reason.to_owned()), "{name}");
    }
}

fn stop(sim: &mut Sim, at_ms: i64, grace: i64) {
    sim.schedule(
        at_ms,
        Event::StopRequested {
            grace_seconds: Some(grace),
        },
    );
}

fn change_image(sim: &mut Sim, at_ms: i64, name: &str) {
    sim.schedule(
        at_ms,
        Event::ImageChanged {
            container: name.to_owned(),
            image: "busybox:new".to_owned(),
        },
    );
}

// ---- "using a Pod with restartPolicy=Never, three init container and two
// restartable init containers" (S1-S8) ----

fn three_inits_two_sidecars() -> Sim {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("init-1", Init, d(1, 0, 0)),
            c("restartable-init-1", Sidecar, d(600, 0, 0)),
            c("init-2", Init, d(1, 0, 0)),
            c("restartable-init-2", Sidecar, d(600, 0, 0)),
            c("init-3", Init, d(1, 0, 0)),
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(1_000_000);
    sim
}

#[test]
fn should_finish_and_produce_log() {
    let sim = three_inits_two_sidecars();
    assert_eq!(phase(&sim), "Succeeded");
}

#[test]
fn should_run_the_first_init_container_to_completion_before_starting_first_restartable_init_container()
 {
    let sim = three_inits_two_sidecars();
    let log = Log(&sim);
    assert!(log.starts_before("init-1", "restartable-init-1"));
    assert!(log.exits_before("init-1", "restartable-init-1"));
}

#[test]
fn should_run_first_init_container_and_first_restartable_init_container_together() {
    let sim = three_inits_two_sidecars();
    assert!(Log(&sim).run_together_lhs_first("restartable-init-1", "init-2"));
}

#[test]
fn should_run_second_init_container_to_completion_before_starting_second_restartable_init_container()
 {
    let sim = three_inits_two_sidecars();
    let log = Log(&sim);
    assert!(log.starts_before("init-2", "restartable-init-2"));
    assert!(log.exits_before("init-2", "restartable-init-2"));
}

#[test]
fn should_start_second_restartable_init_container_before_third_init_container() {
    let sim = three_inits_two_sidecars();
    assert!(Log(&sim).starts_before("restartable-init-2", "init-3"));
}

#[test]
fn should_run_both_restartable_init_containers_and_third_init_container_together() {
    let sim = three_inits_two_sidecars();
    let log = Log(&sim);
    assert!(log.run_together("restartable-init-1", "restartable-init-2"));
    assert!(log.run_together("restartable-init-1", "init-3"));
    assert!(log.run_together("restartable-init-2", "init-3"));
}

#[test]
fn should_run_third_init_container_to_completion_before_starting_regular_container() {
    let sim = three_inits_two_sidecars();
    let log = Log(&sim);
    assert!(log.starts_before("init-3", "regular-1"));
    assert!(log.exits_before("init-3", "regular-1"));
}

#[test]
fn should_run_both_restartable_init_containers_and_a_regular_container_together() {
    let sim = three_inits_two_sidecars();
    let log = Log(&sim);
    assert!(log.run_together("restartable-init-1", "regular-1"));
    assert!(log.run_together("restartable-init-2", "regular-1"));
}

// ---- "initializing an init container after a restartable init container"
// (S9-S11): the sidecar's image changes while a later init runs ----

fn image_change_during_init(policy: RestartPolicy, init2: Behaviour) -> Sim {
    let mut sim = pod(
        policy,
        30,
        vec![
            c("init-1", Init, d(1, 0, 0)),
            c("restartable-init-1", Sidecar, d(600, 0, 5)),
            c("init-2", Init, init2),
            c("restartable-init-2", Sidecar, d(1, 0, 1)),
            c("regular-1", App, d(1, 0, 1)),
        ],
    );
    change_image(&mut sim, 10_000, "restartable-init-1");
    sim.run(25_000);
    sim
}

fn assert_image_change_during_init(sim: &Sim) {
    let log = Log(sim);
    assert!(log.starts_before("init-1", "restartable-init-1"));
    assert!(log.starts_before("restartable-init-1", "init-2"));
    assert!(!log.starts("restartable-init-2"));
    assert!(!log.starts("regular-1"));
    assert!(!log.has_restarted("init-1"));
    assert!(!log.has_restarted("init-2"));
    assert!(log.has_restarted("restartable-init-1"));
    assert_eq!(
        sim.status_json()["initContainerStatuses"][1]["image"],
        "busybox:new"
    );
}

#[test]
fn should_begin_initializing_the_pod_restart_policy_always() {
    let sim = image_change_during_init(ALWAYS, d(600, 0, 0));
    assert_image_change_during_init(&sim);
    assert_eq!(phase(&sim), "Pending");
}

#[test]
fn should_begin_initializing_the_pod_restart_policy_on_failure() {
    let sim = image_change_during_init(ON_FAILURE, d(600, 0, 0));
    assert_image_change_during_init(&sim);
    assert_eq!(phase(&sim), "Pending");
}

#[test]
fn should_begin_initializing_the_pod_restart_policy_never() {
    let mut sim = image_change_during_init(NEVER, d(30, 1, 0));
    sim.run(1_000_000);
    let log = Log(&sim);
    assert!(log.has_restarted("restartable-init-1"));
    assert!(!log.starts("regular-1"));
    assert!(log.exits("init-2") && log.exits("restartable-init-1") && log.exits("init-1"));
    assert!(log.exits_before("init-2", "restartable-init-1"));
    assert_eq!(phase(&sim), "Failed");
    assert!(log.starts_before("init-1", "restartable-init-1"));
    assert!(log.starts_before("restartable-init-1", "init-2"));
    assert!(!log.starts("restartable-init-2"));
    assert!(!log.has_restarted("init-1") && !log.has_restarted("init-2"));
    assert_eq!(
        sim.status_json()["initContainerStatuses"][1]["image"],
        "busybox:new"
    );
}

// ---- "a restartable init container runs continuously" (S12-S15) ----

fn sidecar_runs_continuously(policy: RestartPolicy) -> Sim {
    let mut sim = pod(
        policy,
        30,
        vec![
            c("restartable-init-1", Sidecar, d(600, 0, 0)),
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(if policy == ALWAYS { 60_000 } else { 1_000_000 });
    sim
}

#[test]
fn should_complete_a_pod_successfully_and_produce_log() {
    for policy in [NEVER, ON_FAILURE] {
        assert_eq!(phase(&sidecar_runs_continuously(policy)), "Succeeded");
    }
}

#[test]
fn should_not_restart_a_restartable_init_container() {
    for policy in [NEVER, ON_FAILURE, ALWAYS] {
        let sim = sidecar_runs_continuously(policy);
        assert!(!Log(&sim).has_restarted("restartable-init-1"), "{policy:?}");
    }
}

#[test]
fn should_run_a_regular_container_to_completion() {
    for policy in [NEVER, ON_FAILURE] {
        assert!(Log(&sidecar_runs_continuously(policy)).exits("regular-1"));
    }
}

#[test]
fn should_keep_running_a_pod_continuously_and_produce_log() {
    let sim = sidecar_runs_continuously(ALWAYS);
    assert!(restarts(&sim, "regular-1") >= 2);
    assert!(Log(&sim).has_restarted("regular-1"));
    assert_eq!(phase(&sim), "Running");
}

#[test]
fn should_restart_when_updated_with_a_new_image() {
    for (policy, app_secs) in [(NEVER, 60), (ON_FAILURE, 30), (ALWAYS, 10)] {
        let mut sim = pod(
            policy,
            30,
            vec![
                c("restartable-init-1", Sidecar, d(600, 0, 0)),
                c("restartable-init-2", Sidecar, d(600, 0, 0)),
                c("regular-1", App, d(app_secs, 0, 0)),
            ],
        );
        change_image(&mut sim, 5_000, "restartable-init-1");
        sim.run(if policy == ALWAYS { 40_000 } else { 1_000_000 });
        let log = Log(&sim);
        assert!(log.has_restarted("restartable-init-1"), "{policy:?}");
        assert!(!log.has_restarted("restartable-init-2"), "{policy:?}");
        assert_eq!(
            sim.status_json()["initContainerStatuses"][0]["image"],
            "busybox:new"
        );
        if policy == ALWAYS {
            assert!(restarts(&sim, "regular-1") >= 2);
        }
        if policy != ALWAYS {
            assert!(!log.has_restarted("regular-1"), "{policy:?}");
            assert_eq!(phase(&sim), "Succeeded");
        }
    }
}

// ---- "a restartable init container starts and exits with exit code 0/1
// continuously" (S19-S26, S40-S47, S61-S68) ----

fn sidecar_keeps_exiting(policy: RestartPolicy, code: i32) -> Sim {
    let mut sim = pod(
        policy,
        30,
        vec![
            c("restartable-init-1", Sidecar, d(5, code, 0)),
            c("init-1", Init, d(5, 0, 0)),
            c("regular-1", App, d(60, 0, 0)),
        ],
    );
    sim.run(if policy == ALWAYS { 200_000 } else { 1_000_000 });
    sim
}

#[test]
fn should_restart_a_restartable_init_container_before_the_regular_container_started() {
    for policy in [NEVER, ON_FAILURE, ALWAYS] {
        for code in [0, 1] {
            let sim = sidecar_keeps_exiting(policy, code);
            assert!(Log(&sim).starts_before("restartable-init-1", "regular-1"));
            assert!(Log(&sim).has_restarted("restartable-init-1"));
        }
    }
}

#[test]
fn should_restart_a_restartable_init_container_after_the_regular_container_started() {
    for policy in [NEVER, ON_FAILURE, ALWAYS] {
        for code in [0, 1] {
            let sim = sidecar_keeps_exiting(policy, code);
            assert!(
                Log(&sim).starts_before("regular-1", "restartable-init-1"),
                "{policy:?} {code}"
            );
        }
    }
}

#[test]
fn sidecar_exits_continuously_should_complete_a_pod_successfully_and_produce_log() {
    for policy in [NEVER, ON_FAILURE] {
        for code in [0, 1] {
            let sim = sidecar_keeps_exiting(policy, code);
            assert_eq!(phase(&sim), "Succeeded", "{policy:?} {code}");
            assert!(Log(&sim).exits("regular-1"));
        }
    }
    for code in [0, 1] {
        let sim = sidecar_keeps_exiting(ALWAYS, code);
        assert!(restarts(&sim, "regular-1") >= 1);
        assert!(Log(&sim).starts("regular-1"));
    }
}

// ---- "an Init container before/after restartable init container fails"
// (S27-S32, S48-S53, S69-S74) ----

#[test]
fn should_mark_a_pod_as_failed_when_an_init_container_before_restartable_init_container_fails() {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("init-1", Init, d(1, 1, 0)),
            c("restartable-init-1", Sidecar, d(600, 0, 0)),
            c("regular-1", App, d(600, 0, 0)),
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    assert_eq!(phase(&sim), "Failed");
    assert!(log.exits("init-1"));
    assert!(!log.starts("restartable-init-1"));
}

#[test]
fn should_be_running_restartable_init_container_and_a_failed_init_container_in_parallel() {
    for policy in [NEVER, ON_FAILURE, ALWAYS] {
        let mut sim = pod(
            policy,
            30,
            vec![
                c("restartable-init-1", Sidecar, d(5, 1, 0)),
                c("init-1", Init, d(1, 1, 0)),
                c("regular-1", App, d(600, 0, 0)),
            ],
        );
        sim.run(200_000);
        let log = Log(&sim);
        assert!(
            log.run_together("restartable-init-1", "init-1"),
            "{policy:?}"
        );
        assert!(log.exits("init-1"));
        if policy == NEVER {
            assert_eq!(phase(&sim), "Failed");
        } else {
            // Keeps retrying: Pending, the init container restarted.
            assert_eq!(phase(&sim), "Pending");
            assert!(log.has_restarted("init-1"));
            assert!(restarts(&sim, "init-1") >= 3);
            // The e2e reads initContainerStatuses[0], the sidecar here; it
            // restarts too, every time it exits.
            assert!(
                sim.status_json()["initContainerStatuses"][0]["restartCount"].as_i64() >= Some(3)
            );
        }
    }
}

#[test]
fn should_continuously_run_pod_keeping_it_pending() {
    for policy in [ON_FAILURE, ALWAYS] {
        let mut sim = pod(
            policy,
            30,
            vec![
                c("init-1", Init, d(1, 1, 0)),
                c("restartable-init-1", Sidecar, d(600, 0, 0)),
                c("regular-1", App, d(600, 0, 0)),
            ],
        );
        sim.run(200_000);
        let log = Log(&sim);
        assert_eq!(phase(&sim), "Pending");
        assert!(restarts(&sim, "init-1") >= 3);
        assert!(log.has_restarted("init-1"));
        assert!(!log.starts("restartable-init-1"));
    }
}

// ---- "running restartable init containers with startup probes" (S75-S79) ----

#[test]
fn should_launch_restartable_init_containers_serially_considering_the_startup_probe() {
    // Each sidecar's startup probe passes 10 s after it starts.
    let slow = Behaviour {
        startup_failures: 10,
        ..d(600, 0, 0)
    };
    let sidecar = |name| C {
        startup: probe(30),
        ..c(name, Sidecar, slow.clone())
    };
    let mut sim = pod(
        NEVER,
        30,
        vec![
            sidecar("restartable-init-1"),
            sidecar("restartable-init-2"),
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    assert!(log.starts_before("restartable-init-1", "restartable-init-2"));
    assert!(log.starts_before("restartable-init-2", "regular-1"));
    assert_eq!(sim.when("start restartable-init-2#0"), Some(11_000));
    assert_eq!(sim.when("start regular-1#0"), Some(22_000));
    assert_eq!(phase(&sim), "Succeeded");
}

#[test]
fn should_update_the_image_when_the_startup_probe_fails() {
    for policy in [NEVER, ON_FAILURE, ALWAYS] {
        let failing = Behaviour {
            startup_failures: u32::MAX,
            ..d(600, 0, 0)
        };
        let mut sim = pod(
            policy,
            30,
            vec![
                c("restartable-init-1", Sidecar, d(600, 0, 0)),
                C {
                    startup: probe(1),
                    ..c("restartable-init-2", Sidecar, failing)
                },
                c("regular-1", App, d(1, 0, 0)),
            ],
        );
        change_image(&mut sim, 5_000, "restartable-init-2");
        sim.run(60_000);
        let log = Log(&sim);
        assert!(restarts(&sim, "restartable-init-2") >= 2, "{policy:?}");
        assert_eq!(
            sim.status_json()["initContainerStatuses"][1]["image"],
            "busybox:new"
        );
        assert_eq!(phase(&sim), "Pending");
        assert!(!log.starts("regular-1"));
        assert!(!log.has_restarted("restartable-init-1"));
    }
}

#[test]
fn should_call_the_containers_prestop_hook_and_not_launch_next_container_if_the_restartable_init_containers_startup_probe_fails()
 {
    let b = Behaviour {
        startup_failures: u32::MAX,
        pre_stop_ms: 1000,
        ..d(600, 0, 15)
    };
    let mut sim = pod(
        ALWAYS,
        30,
        vec![
            C {
                startup: probe(1),
                pre_stop: true,
                ..c("restartable-init-1", Sidecar, b)
            },
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(120_000);
    let log = Log(&sim);
    assert!(restarts(&sim, "restartable-init-1") >= 2);
    assert_eq!(phase(&sim), "Pending");
    assert!(log.hook_runs_with("restartable-init-1", Hook::PreStop));
    assert!(log.exits("restartable-init-1"));
    assert!(!log.starts("regular-1"));
}

// ---- "running restartable init containers with liveness probes" (S80-S83) ----

#[test]
fn should_call_the_containers_prestop_hook_and_start_the_next_container_if_the_restartable_init_containers_liveness_probe_fails()
 {
    let b = Behaviour {
        liveness_passes: Some(0),
        pre_stop_ms: 1000,
        ..d(600, 0, 15)
    };
    let mut sim = pod(
        ALWAYS,
        30,
        vec![
            C {
                liveness: probe(1),
                pre_stop: true,
                ..c("restartable-init-1", Sidecar, b)
            },
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(200_000);
    let log = Log(&sim);
    assert!(restarts(&sim, "restartable-init-1") >= 2);
    assert!(restarts(&sim, "regular-1") >= 1);
    assert!(log.hook_runs_with("restartable-init-1", Hook::PreStop));
    assert!(log.starts("regular-1"));
}

#[test]
fn should_update_the_image_when_the_liveness_probe_fails() {
    for (policy, app) in [
        (NEVER, d(600, 0, 0)),
        (ON_FAILURE, d(600, 0, 0)),
        (ALWAYS, d(5, 0, 0)),
    ] {
        let failing = Behaviour {
            liveness_passes: Some(0),
            ..d(600, 0, 0)
        };
        let mut sim = pod(
            policy,
            30,
            vec![
                c("restartable-init-1", Sidecar, d(600, 0, 0)),
                C {
                    liveness: probe(1),
                    ..c("restartable-init-2", Sidecar, failing)
                },
                c("regular-1", App, app),
            ],
        );
        change_image(&mut sim, 5_000, "restartable-init-2");
        sim.run(60_000);
        let log = Log(&sim);
        assert!(restarts(&sim, "restartable-init-2") >= 2, "{policy:?}");
        assert_eq!(
            sim.status_json()["initContainerStatuses"][1]["image"],
            "busybox:new"
        );
        assert!(log.starts("regular-1"));
        assert!(!log.has_restarted("restartable-init-1"));
        assert_eq!(
            log.has_restarted("regular-1"),
            policy == ALWAYS,
            "{policy:?}"
        );
    }
}

// ---- "A pod with restartable init containers is terminating" (S84-S97) ----

fn three_sidecars(grace: i64, sidecars: [Behaviour; 3], app: Behaviour, hooks: bool) -> Sim {
    let names = [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ];
    let mut containers: Vec<C> = names
        .iter()
        .zip(sidecars)
        .map(|(name, b)| C {
            pre_stop: hooks,
            ..c(name, Sidecar, b)
        })
        .collect();
    containers.push(c("regular-1", App, app));
    pod(NEVER, grace, containers)
}

fn assert_start_and_exit_order(sim: &Sim) {
    let log = Log(sim);
    let [s1, s2, s3] = [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ];
    assert!(log.starts_before(s1, s2) && log.starts_before(s1, s3) && log.starts_before(s2, s3));
    for s in [s1, s2, s3] {
        assert!(log.starts_before(s, "regular-1"));
        assert!(log.exits_before("regular-1", s));
    }
    assert!(log.exits_before(s3, s2) && log.exits_before(s2, s1));
}

#[test]
fn should_terminate_sidecars_in_reverse_order_after_all_main_containers_have_exited() {
    let mut sim = three_sidecars(
        30,
        [d(60, 0, 5), d(60, 0, 5), d(60, 0, 5)],
        d(5, 0, 0),
        false,
    );
    sim.run(1_000_000);
    assert_start_and_exit_order(&sim);
    for s in [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ] {
        assert_eq!(terminated(&sim, s), (0, "Completed".to_owned()));
    }
}

#[test]
fn should_terminate_gracefully_when_the_image_is_updated_during_termination() {
    for policy in [ALWAYS, ON_FAILURE, NEVER] {
        let mut sim = pod(
            policy,
            180,
            vec![
                c("init-1", Init, d(1, 0, 5)),
                c("restartable-init-2", Sidecar, d(600, 0, 10)),
                c("restartable-init-3", Sidecar, d(600, 0, 10)),
                c("regular-1", App, d(600, 0, 10)),
            ],
        );
        stop(&mut sim, 5_000, 180);
        change_image(&mut sim, 6_000, "restartable-init-2");
        sim.run(1_000_000);
        let log = Log(&sim);
        assert!(!log.has_restarted("init-1"));
        assert!(!log.has_restarted("restartable-init-2"));
        assert!(sim.finished.is_some());
        assert!(
            sim.now.0 <= 5_000 + 70_000,
            "{policy:?} took until {:?}",
            sim.now
        );
    }
}

#[test]
fn should_terminate_sidecars_simultaneously_if_prestop_doesnt_exit() {
    let hung = Behaviour {
        pre_stop_ms: i64::MAX / 4,
        ..d(60, 0, 5)
    };
    let mut sim = three_sidecars(30, [hung.clone(), hung.clone(), hung], d(5, 0, 0), true);
    sim.run(1_000_000);
    assert_start_and_exit_order_loose(&sim);
    for s in [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ] {
        assert_eq!(terminated(&sim, s), (137, "Error".to_owned()));
        // The hook starts when the app exits (5 s) and lives until the
        // SIGKILL: the 30 s grace period plus the 2 s minimum.
        assert_eq!(sim.when(&format!("PreStop {s}")), Some(5_000));
        assert_eq!(sim.when(&format!("Kill {s}")), Some(37_000));
    }
}

/// The six StartsBefore checks (the exit order is not asserted when the
/// hooks hang: the sidecars are killed together).
fn assert_start_and_exit_order_loose(sim: &Sim) {
    let log = Log(sim);
    let [s1, s2, s3] = [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ];
    assert!(log.starts_before(s1, s2) && log.starts_before(s1, s3) && log.starts_before(s2, s3));
    for s in [s1, s2, s3] {
        assert!(log.starts_before(s, "regular-1"));
    }
}

#[test]
fn should_call_sidecar_container_prestop_hook_simultaneously() {
    let hooked = Behaviour {
        pre_stop_ms: 1000,
        ..d(60, 0, 5)
    };
    let mut sim = three_sidecars(
        30,
        [hooked.clone(), hooked.clone(), hooked],
        d(5, 0, 0),
        true,
    );
    sim.run(1_000_000);
    assert_start_and_exit_order(&sim);
    let starts: Vec<i64> = [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ]
    .iter()
    .map(|s| sim.when(&format!("PreStop {s}")).expect("hook ran"))
    .collect();
    assert!(
        starts.iter().all(|t| (t - starts[0]).abs() <= 1000),
        "{starts:?}"
    );
    for s in [
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ] {
        assert_eq!(terminated(&sim, s), (0, "Completed".to_owned()));
    }
}

#[test]
fn should_not_hang_in_termination_if_terminated_during_initialization() {
    let hooked = Behaviour {
        pre_stop_ms: 1000,
        ..d(600, 0, 0)
    };
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("start-init", Init, d(300, 0, 0)),
            C {
                pre_stop: true,
                ..c("restartable-init-1", Sidecar, hooked.clone())
            },
            C {
                pre_stop: true,
                ..c("restartable-init-2", Sidecar, hooked.clone())
            },
            C {
                pre_stop: true,
                ..c("restartable-init-3", Sidecar, hooked)
            },
            c("regular-1", App, d(5, 0, 0)),
        ],
    );
    stop(&mut sim, 2_000, 3);
    sim.run(1_000_000);
    assert!(sim.finished.is_some());
    assert!(sim.now.0 < 2_000 + 6_000, "took until {:?}", sim.now);
}

#[test]
fn should_terminate_restartable_init_containers_gracefully_if_there_is_a_non_started_restartable_init_container()
 {
    let never_started = Behaviour {
        startup_failures: u32::MAX,
        ..d(600, 0, 1)
    };
    let mut sim = pod(
        NEVER,
        180,
        vec![
            c("init-1", Init, d(1, 0, 5)),
            C {
                startup: probe(600),
                ..c("restartable-init-2", Sidecar, never_started)
            },
            c("restartable-init-3", Sidecar, d(600, 0, 1)),
            c("regular-1", App, d(600, 0, 1)),
        ],
    );
    stop(&mut sim, 10_000, 180);
    sim.run(1_000_000);
    assert!(sim.finished.is_some());
    assert!(sim.now.0 <= 10_000 + 61_000);
}

#[test]
fn should_mark_pod_as_succeeded_if_any_of_the_restartable_init_containers_have_terminated_with_non_zero_exit_code()
 {
    let mut sim = three_sidecars(
        30,
        [d(600, 0, 1), d(600, 1, 1), d(600, 0, 1)],
        d(600, 0, 1),
        false,
    );
    stop(&mut sim, 10_000, 30);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Succeeded");
    assert_ended(
        &sim,
        &[
            ("regular-1", 0),
            ("restartable-init-1", 0),
            ("restartable-init-2", 1),
            ("restartable-init-3", 0),
        ],
    );
}

#[test]
fn should_mark_pod_as_succeeded_if_any_of_the_restartable_init_containers_have_terminated_with_non_zero_exit_code_by_prestop_hook()
 {
    let hooked = Behaviour {
        pre_stop_ms: 0,
        ..d(600, 0, 1)
    };
    // restartable-init-2's preStop exits 1: a failed preStop is ignored.
    let failing = Behaviour {
        pre_stop_fails: Some("exit 1".to_owned()),
        ..hooked.clone()
    };
    let mut sim = three_sidecars(30, [hooked.clone(), failing, hooked], d(600, 0, 1), true);
    stop(&mut sim, 10_000, 30);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Succeeded");
    for s in [
        "regular-1",
        "restartable-init-1",
        "restartable-init-2",
        "restartable-init-3",
    ] {
        assert_eq!(terminated(&sim, s), (0, "Completed".to_owned()));
    }
}

#[test]
fn should_mark_pod_as_failed_if_regular_container_has_exceeded_its_termination_grace_period_seconds()
 {
    let mut sim = three_sidecars(
        5,
        [d(600, 0, 20), d(600, 0, 1), d(600, 0, 20)],
        d(600, 0, 20),
        false,
    );
    stop(&mut sim, 10_000, 5);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Failed");
    assert_ended(
        &sim,
        &[
            ("regular-1", 137),
            ("restartable-init-1", 137),
            ("restartable-init-2", 0),
            ("restartable-init-3", 137),
        ],
    );
}

#[test]
fn should_mark_pod_as_succeeded_if_any_of_the_restartable_init_containers_have_exceeded_its_termination_grace_period_seconds()
 {
    let mut sim = three_sidecars(
        5,
        [d(600, 0, 1), d(600, 0, 20), d(600, 0, 1)],
        d(600, 0, 1),
        false,
    );
    stop(&mut sim, 10_000, 5);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Succeeded");
    assert_ended(
        &sim,
        &[
            ("regular-1", 0),
            ("restartable-init-1", 0),
            ("restartable-init-2", 137),
            ("restartable-init-3", 0),
        ],
    );
}

#[test]
fn should_mark_pod_as_failed_if_any_of_the_prestop_hook_in_regular_container_has_exceeded_its_termination_grace_period_seconds()
 {
    let app = Behaviour {
        pre_stop_ms: 20_000,
        ..d(600, 0, 20)
    };
    let mut containers: Vec<C> = [
        ("restartable-init-1", d(600, 0, 1)),
        ("restartable-init-2", d(600, 0, 20)),
        ("restartable-init-3", d(600, 0, 1)),
    ]
    .into_iter()
    .map(|(n, b)| c(n, Sidecar, b))
    .collect();
    containers.push(C {
        pre_stop: true,
        ..c("regular-1", App, app)
    });
    let mut sim = pod(NEVER, 5, containers);
    stop(&mut sim, 10_000, 5);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Failed");
    assert_ended(
        &sim,
        &[
            ("regular-1", 137),
            ("restartable-init-1", 0),
            ("restartable-init-2", 137),
            ("restartable-init-3", 0),
        ],
    );
}

#[test]
fn should_mark_pod_as_succeeded_if_any_of_the_prestop_hook_in_restartable_init_containers_have_exceeded_its_termination_grace_period_seconds()
 {
    let hook = |ms, ts| Behaviour {
        pre_stop_ms: ms,
        ..d(600, 0, ts)
    };
    let mut sim = three_sidecars(
        5,
        [hook(1000, 1), hook(30_000, 20), hook(1000, 1)],
        d(600, 0, 1),
        true,
    );
    stop(&mut sim, 10_000, 5);
    sim.run(1_000_000);
    assert_eq!(phase(&sim), "Succeeded");
    assert_ended(
        &sim,
        &[
            ("regular-1", 0),
            ("restartable-init-1", 0),
            ("restartable-init-2", 137),
            ("restartable-init-3", 0),
        ],
    );
}

#[test]
fn should_continue_probing_and_allow_regular_container_to_start_after_the_restartable_init_container_recovers()
 {
    let recovers = Behaviour {
        exits: vec![Some(1), None],
        run_ms: 1000,
        ..Behaviour::default()
    };
    let mut sim = pod(
        NEVER,
        30,
        vec![
            C {
                startup: probe(10),
                ..c("restartable-init-1", Sidecar, recovers)
            },
            c("regular-1", App, Behaviour::serves()),
        ],
    );
    sim.run(60_000);
    assert!(restarts(&sim, "restartable-init-1") > 0);
    let s = sim.status_json();
    assert!(s["initContainerStatuses"][0]["state"]["running"].is_object());
    assert!(s["containerStatuses"][0]["state"]["running"].is_object());
}

// ---- plain init and regular containers (R-cases) ----

#[test]
fn should_successfully_restart_when_the_image_is_updated() {
    for policy in [ALWAYS, ON_FAILURE, NEVER] {
        let mut sim = pod(
            policy,
            30,
            vec![
                c("regular-1", App, d(60, 0, 0)),
                c("regular-2", App, d(60, 0, 0)),
            ],
        );
        change_image(&mut sim, 5_000, "regular-1");
        sim.run(25_000);
        assert!(restarts(&sim, "regular-1") > 0, "{policy:?}");
        assert_eq!(restarts(&sim, "regular-2"), 0);
        assert_eq!(
            sim.status_json()["containerStatuses"][0]["image"],
            "busybox:new"
        );
    }
}

#[test]
fn should_not_start_a_regular_container_when_its_image_is_updated_during_initialization() {
    for policy in [ALWAYS, ON_FAILURE, NEVER] {
        let mut sim = pod(
            policy,
            30,
            vec![
                c("init-1", Init, d(60, 0, 0)),
                c("regular-1", App, d(10, 0, 1)),
                c("regular-2", App, d(10, 0, 1)),
            ],
        );
        change_image(&mut sim, 5_000, "regular-1");
        sim.run(55_000);
        assert_eq!(phase(&sim), "Pending");
        assert!(!Log(&sim).starts("regular-1"));
        sim.run(65_000);
        let s = sim.status_json();
        assert_eq!(phase(&sim), "Running");
        for i in 0..2 {
            assert!(
                s["containerStatuses"][i]["state"]["running"].is_object(),
                "{policy:?}"
            );
            assert_eq!(s["containerStatuses"][i]["restartCount"], 0);
        }
        assert_eq!(restarts(&sim, "regular-1"), 0);
        assert_eq!(
            sim.status_json()["containerStatuses"][0]["image"],
            "busybox:new"
        );
    }
}

#[test]
fn should_update_the_image_of_a_regular_container_after_a_failed_probe() {
    for policy in [ALWAYS, ON_FAILURE] {
        for startup in [true, false] {
            let b = Behaviour {
                startup_failures: if startup { u32::MAX } else { 0 },
                liveness_passes: if startup { None } else { Some(0) },
                ..d(600, 0, 0)
            };
            let container = if startup {
                C {
                    startup: probe(1),
                    ..c("regular-1", App, b)
                }
            } else {
                C {
                    liveness: probe(1),
                    ..c("regular-1", App, b)
                }
            };
            let mut sim = pod(policy, 30, vec![container]);
            change_image(&mut sim, 5_000, "regular-1");
            sim.run(60_000);
            assert!(
                restarts(&sim, "regular-1") > 1,
                "{policy:?} startup={startup}"
            );
            assert_eq!(
                sim.status_json()["containerStatuses"][0]["image"],
                "busybox:new"
            );
        }
    }
}

#[test]
fn should_not_update_the_image_when_it_changes_during_termination() {
    for policy in [ALWAYS, ON_FAILURE, NEVER] {
        let mut sim = pod(policy, 120, vec![c("regular-1", App, d(10, 1, 60))]);
        stop(&mut sim, 5_000, 120);
        change_image(&mut sim, 6_000, "regular-1");
        sim.run(1_000_000);
        assert!(!Log(&sim).has_restarted("regular-1"), "{policy:?}");
        assert!(sim.now.0 <= 5_000 + 60_000);
    }
}

#[test]
fn should_launch_init_container_serially_before_a_regular_container() {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("init-1", Init, d(1, 0, 0)),
            c("init-2", Init, d(1, 0, 0)),
            c("init-3", Init, d(1, 0, 0)),
            C {
                startup: probe(3),
                ..c("regular-1", App, d(1, 0, 0))
            },
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    for (a, b) in [
        ("init-1", "init-2"),
        ("init-2", "init-3"),
        ("init-3", "regular-1"),
    ] {
        assert!(log.starts_before(a, b) && log.exits_before(a, b), "{a} {b}");
    }
}

#[test]
fn should_not_launch_regular_containers_if_an_init_container_fails() {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("init-1", Init, d(1, 1, 0)),
            c("regular-1", App, d(1, 0, 0)),
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    assert_eq!(phase(&sim), "Failed");
    assert!(log.starts("init-1") && log.exits("init-1"));
    assert!(!log.starts("regular-1"));
}

#[test]
fn should_run_init_container_to_completion_before_call_to_post_start_of_regular_container() {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            c("init-1", Init, d(1, 0, 0)),
            C {
                post_start: true,
                ..c(
                    "regular-1",
                    App,
                    Behaviour {
                        post_start: (1000, Ok(())),
                        ..d(5, 0, 0)
                    },
                )
            },
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    let post_start = log.hook("regular-1", Hook::PostStart)[0];
    assert!(log.exited("init-1")[0] < post_start);
    assert!(log.hook_runs_with("regular-1", Hook::PostStart));
}

#[test]
fn should_restart_failing_container_when_pod_restart_policy_is_always() {
    let mut sim = pod(ALWAYS, 30, vec![c("regular-1", App, d(1, 1, 0))]);
    sim.run(60_000);
    let log = Log(&sim);
    assert!(restarts(&sim, "regular-1") >= 3);
    assert!(log.starts_before("regular-1", "regular-1"));
    assert!(log.exits_before("regular-1", "regular-1"));
}

#[test]
fn should_not_launch_second_container_before_post_start_of_the_first_container_completed() {
    let mut sim = pod(
        NEVER,
        30,
        vec![
            C {
                post_start: true,
                ..c(
                    "regular-1",
                    App,
                    Behaviour {
                        post_start: (5000, Ok(())),
                        ..d(10, 0, 0)
                    },
                )
            },
            c("regular-2", App, d(10, 0, 0)),
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    let post_start_done = sim
        .log
        .iter()
        .position(|(_, e)| matches!(e, Entry::Event(Event::HookFinished { container, hook: Hook::PostStart, .. }) if container == "regular-1"))
        .expect("postStart finished");
    assert!(log.started("regular-2")[0] > post_start_done);
    assert_eq!(sim.when("start regular-2#0"), Some(5000));
}

#[test]
fn shouldnt_restart_init_containers_upon_regular_container_restart() {
    let mut sim = pod(
        ALWAYS,
        30,
        vec![
            c("init-1", Init, d(1, 0, 0)),
            c("init-2", Init, d(1, 0, 0)),
            c("init-3", Init, d(1, 0, 0)),
            c("regular-1", App, d(10, 255, 0)),
        ],
    );
    sim.run(200_000);
    let log = Log(&sim);
    assert!(restarts(&sim, "regular-1") >= 3);
    for i in ["init-1", "init-2", "init-3"] {
        assert!(!log.has_restarted(i));
    }
    for (a, b) in [
        ("init-1", "init-2"),
        ("init-2", "init-3"),
        ("init-3", "regular-1"),
    ] {
        assert!(log.starts_before(a, b) && log.exits_before(a, b), "{a} {b}");
    }
}

#[test]
fn should_respect_termination_grace_period_seconds() {
    for hook in [false, true] {
        let stubborn = Behaviour {
            term_ms: None,
            pre_stop_ms: i64::MAX / 4,
            ..Behaviour::serves()
        };
        let mut sim = pod(
            ALWAYS,
            30,
            vec![C {
                pre_stop: hook,
                ..c("regular-1", App, stubborn)
            }],
        );
        stop(&mut sim, 5_000, 30);
        sim.run(1_000_000);
        assert!(sim.finished.is_some());
        // 30 s of grace, then at most the 2 s minimum after a late SIGTERM.
        assert!(sim.now.0 <= 5_000 + 60_000);
        assert_eq!(
            sim.when("Kill regular-1"),
            Some(if hook { 37_000 } else { 35_000 })
        );
    }
}

#[test]
fn should_call_the_containers_prestop_hook_and_terminate_it_if_its_probe_fails() {
    for startup in [true, false] {
        let b = Behaviour {
            startup_failures: if startup { u32::MAX } else { 0 },
            liveness_passes: if startup { None } else { Some(0) },
            pre_stop_ms: 1000,
            ..d(100, 0, 15)
        };
        let container = C {
            pre_stop: true,
            startup: if startup { probe(1) } else { None },
            liveness: if startup { None } else { probe(1) },
            ..c("regular-1", App, b)
        };
        let mut sim = pod(NEVER, 30, vec![container]);
        sim.run(1_000_000);
        let log = Log(&sim);
        let hook = log.hook("regular-1", Hook::PreStop);
        assert!(!hook.is_empty(), "startup={startup}");
        assert!(log.started("regular-1")[0] < hook[0] && hook[0] < log.exited("regular-1")[0]);
    }
}

#[test]
fn should_execute_readiness_probe_while_in_prestop_but_not_liveness() {
    let b = Behaviour {
        liveness_passes: Some(0),
        pre_stop_ms: 10_000,
        ..d(100, 0, 15)
    };
    let mut sim = pod(
        NEVER,
        100,
        vec![C {
            pre_stop: true,
            liveness: probe(1),
            readiness: probe(3),
            ..c("regular-1", App, b)
        }],
    );
    sim.run(1_000_000);
    let hook_at = sim.when("PreStop regular-1").expect("preStop ran");
    let term_at = sim.when("Term regular-1").expect("SIGTERM");
    let during = |kind: &str| {
        sim.log.iter().any(|(t, e)| {
            t.0 > hook_at && t.0 < term_at
                && matches!(e, Entry::Event(Event::ProbeResult { probe, .. }) if format!("{probe:?}") == kind)
        })
    };
    assert!(during("Readiness"));
    assert!(!during("Liveness"));
}

#[test]
fn should_not_restart_init_container_when_updated_with_a_new_image_after_finishing() {
    for during_stop in [false, true] {
        let mut sim = pod(
            if during_stop { NEVER } else { ALWAYS },
            30,
            vec![
                c("init-1", Init, d(1, 0, 0)),
                c("regular-1", App, d(600, 0, 10)),
            ],
        );
        if during_stop {
            // The image changes while the pod terminates (the app takes 10 s).
            stop(&mut sim, 5_000, 30);
        }
        change_image(&mut sim, 5_000, "init-1");
        sim.run(9_000);
        if during_stop {
            assert!(
                sim.finished.is_none(),
                "the change must land during termination"
            );
        }
        sim.run(40_000);
        assert!(!Log(&sim).has_restarted("init-1"));
        assert_eq!(terminated(&sim, "init-1"), (0, "Completed".to_owned()));
        assert_eq!(restarts(&sim, "init-1"), 0);
        // The status reports the image the container ran, not the new one.
        assert_eq!(
            sim.status_json()["initContainerStatuses"][0]["image"],
            "busybox"
        );
    }
}

#[test]
fn should_not_continue_running_liveness_probes_for_restartable_init_containers_and_restart_them_while_in_prestop()
 {
    // regular-1 fails its liveness probe after 10 s and, under Never, will
    // not come back: the kubelet then kills the whole pod, so during
    // regular-1's 50 s preStop the sidecar is neither probed nor restarted.
    let app = Behaviour {
        liveness_passes: Some(10),
        pre_stop_ms: 50_000,
        ..d(100, 0, 15)
    };
    let side = Behaviour {
        liveness_passes: Some(0),
        ..d(100, 0, 1)
    };
    let mut sim = pod(
        NEVER,
        100,
        vec![
            C {
                liveness: probe(1),
                ..c("restartable-init-1", Sidecar, side)
            },
            C {
                pre_stop: true,
                liveness: probe(1),
                ..c("regular-1", App, app)
            },
        ],
    );
    sim.run(1_000_000);
    let log = Log(&sim);
    let hook = log.hook("regular-1", Hook::PreStop)[0];
    let hook_done = sim
        .log
        .iter()
        .position(|(_, e)| matches!(e, Entry::Event(Event::HookFinished { container, hook: Hook::PreStop, .. }) if container == "regular-1"))
        .expect("preStop finished");
    // StartsBefore(PreStop-regular-1, Liveness-restartable-init-1) fails:
    // no liveness result of the sidecar after the hook started.
    let sidecar_liveness_after_hook = sim.log.iter().skip(hook).any(|(_, e)| {
        matches!(e, Entry::Event(Event::ProbeResult { container, probe: crate::lifecycle::ProbeKind::Liveness, .. }) if container == "restartable-init-1")
    });
    assert!(!sidecar_liveness_after_hook, "{}", sim.trace.join("\n"));
    // RunTogetherLhsFirst(PreStop-regular-1, restartable-init-1) fails: the
    // sidecar does not start again while the hook runs.
    assert!(
        log.started("restartable-init-1")
            .iter()
            .all(|&i| i < hook || i > hook_done)
    );
    // The pod terminated in order: the sidecar got SIGTERM, never SIGKILL.
    assert!(sim.finished.is_some());
    assert!(sim.actions().all(|a| !matches!(a, Action::Signal { container, signal: Signal::Kill } if container == "restartable-init-1")));
}
