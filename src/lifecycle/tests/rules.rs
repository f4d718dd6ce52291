//! One scenario per rule of SEMANTICS.md: the exact action sequence (as the
//! simulator's trace) and the resulting PodStatus.

use serde_json::json;

use super::sim::{Behaviour, Sim};
use crate::lifecycle::{Event, Phase, TimerKind};

fn pod(restart: &str, grace: i64, init: &str, apps: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: {restart}\n  terminationGracePeriodSeconds: {grace}\n  initContainers: {init}\n  containers: {apps}\n"
    )
}

const SIDE: &str = "{name: side, image: i, restartPolicy: Always}";

#[test]
fn init_entries_run_in_order_then_apps_together() {
    let yaml = pod(
        "Never",
        30,
        &format!("[{{name: a, image: i}}, {SIDE}, {{name: b, image: i}}]"),
        "[{name: x, image: i}, {name: z, image: i}]",
    );
    let mut sim = Sim::new(
        &yaml,
        &[
            ("a", Behaviour::exits(0, 1000)),
            ("b", Behaviour::exits(0, 2000)),
            ("x", Behaviour::exits(0, 5000)),
            ("z", Behaviour::exits(0, 5000)),
        ],
    );
    sim.start();
    sim.run(60_000);
    assert_eq!(
        sim.lines(&["start", "exit", "Term", "finished"]),
        [
            "  0.000 start a#0",
            "  1.000 exit a 0",
            "  1.000 start side#0",
            "  1.000 start b#0",
            "  3.000 exit b 0",
            "  3.000 start x#0",
            "  3.000 start z#0",
            "  8.000 exit x 0",
            "  8.000 exit z 0",
            "  8.000 Term side",
            "  8.000 exit side 143",
            "  8.000 finished Succeeded",
        ]
    );
    let status = sim.status_json();
    assert_eq!(status["phase"], "Succeeded");
    assert_eq!(
        status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    // Sidecar exit codes at termination are not failures.
    assert_eq!(
        status["initContainerStatuses"][1]["state"]["terminated"]["exitCode"],
        143
    );
}

#[test]
fn next_entry_waits_for_a_sidecar_startup_probe() {
    let yaml = pod(
        "Never",
        30,
        "[{name: side, image: i, restartPolicy: Always, startupProbe: {exec: {command: [x]}, periodSeconds: 1, failureThreshold: 10}}]",
        "[{name: app, image: i}]",
    );
    let side = Behaviour {
        startup_failures: 3,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", Behaviour::exits(0, 1000))]);
    sim.start();
    sim.run(2500);
    // Two failed startup probes so far: the app has not started, and the
    // sidecar is running but not started.
    assert!(sim.when("start app#0").is_none());
    let status = sim.status_json();
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["initContainerStatuses"][0]["started"], false);
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    sim.run(60_000);
    // The fourth probe (at 4 s) passes: the app starts then.
    assert_eq!(sim.when("start app#0"), Some(4000));
    assert_eq!(sim.finished, Some(Phase::Succeeded));
}

#[test]
fn post_start_gates_started() {
    let yaml = pod(
        "Never",
        30,
        "[{name: side, image: i, restartPolicy: Always, lifecycle: {postStart: {exec: {command: [x]}}}}]",
        "[{name: app, image: i}]",
    );
    let side = Behaviour {
        post_start: (2000, Ok(())),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", Behaviour::exits(0, 100))]);
    sim.start();
    sim.run(60_000);
    assert_eq!(sim.when("start app#0"), Some(2000));
}

#[test]
fn failed_post_start_kills_the_container() {
    let yaml = pod(
        "Never",
        30,
        "[]",
        "[{name: app, image: i, lifecycle: {postStart: {exec: {command: [x]}}}}]",
    );
    let app = Behaviour {
        post_start: (500, Err("boom".to_owned())),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", app)]);
    sim.start();
    sim.run(60_000);
    assert_eq!(
        sim.lines(&["start", "PostStart", "Term", "exit", "finished"]),
        [
            "  0.000 start app#0",
            "  0.000 PostStart app",
            "  0.500 Term app",
            "  0.500 exit app 143",
            "  0.500 finished Failed",
        ]
    );
    let status = sim.status_json();
    assert_eq!(
        status["containerStatuses"][0]["state"]["terminated"]["message"],
        "PostStartHook failed: boom"
    );
}

#[test]
fn regular_init_failure_under_never_fails_the_pod_without_apps() {
    let yaml = pod(
        "Never",
        30,
        &format!("[{SIDE}, {{name: init, image: i}}]"),
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[("init", Behaviour::exits(3, 1000))]);
    sim.start();
    sim.run(60_000);
    assert!(sim.when("start app#0").is_none());
    assert_eq!(
        sim.lines(&["start", "exit", "Term", "finished"]),
        [
            "  0.000 start side#0",
            "  0.000 start init#0",
            "  1.000 exit init 3",
            "  1.000 Term side",
            "  1.000 exit side 143",
            "  1.000 finished Failed",
        ]
    );
    let status = sim.status_json();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(
        status["initContainerStatuses"][1]["state"]["terminated"]["exitCode"],
        3
    );
    assert_eq!(
        status["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Error"
    );
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(status["conditions"][1]["type"], "Initialized");
    assert_eq!(status["conditions"][1]["status"], "False");
}

#[test]
fn regular_init_failure_under_on_failure_restarts_it_with_backoff() {
    let yaml = pod(
        "OnFailure",
        30,
        "[{name: init, image: i}]",
        "[{name: app, image: i}]",
    );
    let init = Behaviour {
        exits: vec![Some(1), Some(1), Some(1), Some(0)],
        run_ms: 1000,
        ..Behaviour::default()
    };
    let mut sim = Sim::new(&yaml, &[("init", init), ("app", Behaviour::exits(0, 1000))]);
    sim.start();
    sim.run(5000);
    let status = sim.status_json();
    assert_eq!(
        status["initContainerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert_eq!(
        status["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    sim.run(120_000);
    // Runs at 0, 1 (at once), 12 (10 s after 2), 33 (20 s after 13).
    assert_eq!(
        sim.lines(&["start"]),
        [
            "  0.000 start init#0",
            "  1.000 start init#1",
            " 12.000 start init#2",
            " 33.000 start init#3",
            " 34.000 start app#0",
        ]
    );
    assert_eq!(sim.finished, Some(Phase::Succeeded));
}

#[test]
fn sidecar_restarts_on_any_exit_without_touching_apps() {
    let yaml = pod("Never", 30, &format!("[{SIDE}]"), "[{name: app, image: i}]");
    let mut sim = Sim::new(
        &yaml,
        &[
            ("side", Behaviour::exits(0, 2000)),
            ("app", Behaviour::exits(0, 15_000)),
        ],
    );
    sim.start();
    sim.run(60_000);
    assert_eq!(
        sim.lines(&["start", "exit", "finished"]),
        [
            "  0.000 start side#0",
            "  0.000 start app#0",
            "  2.000 exit side 0",
            "  2.000 start side#1",
            "  4.000 exit side 0",
            " 14.000 start side#2",
            " 15.000 exit app 0",
            " 15.000 exit side 143",
            " 15.000 finished Succeeded",
        ]
    );
}

#[test]
fn app_restarts_follow_the_restart_policy() {
    for (policy, code, restarts) in [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 1, true),
        ("OnFailure", 0, false),
        ("Never", 1, false),
    ] {
        let yaml = pod(policy, 30, "[]", "[{name: app, image: i}]");
        let mut sim = Sim::new(&yaml, &[("app", Behaviour::exits(code, 1000))]);
        sim.start();
        sim.run(5000);
        assert_eq!(
            sim.when("start app#1").is_some(),
            restarts,
            "{policy} exit {code}"
        );
    }
}

#[test]
fn crash_loop_backoff_doubles_to_five_minutes_and_resets_after_ten() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut sim = Sim::new(&yaml, &[("app", Behaviour::exits(1, 0))]);
    sim.start();
    sim.run(1_000_000);
    let starts: Vec<i64> = sim
        .lines(&["start"])
        .iter()
        .map(|l| (l[..7].trim().parse::<f64>().unwrap() * 1000.0) as i64 / 1000)
        .collect();
    assert_eq!(&starts[..9], [0, 0, 10, 30, 70, 150, 310, 610, 910]);
    let status = sim.status_json();
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert!(
        status["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 300s restarting failed container=app")
    );

    // After running 10 minutes, the next crash restarts at once.
    let long = Behaviour {
        exits: vec![Some(1), Some(1), Some(1), Some(1)],
        run_ms: 0,
        ..Behaviour::default()
    };
    let mut sim = Sim::new(&yaml, &[("app", long)]);
    sim.start();
    sim.run(11_000);
    // Two crashes: started at 0, 0, 10. Now it runs 601 s before crashing.
    assert_eq!(sim.lines(&["start"]).len(), 3);
}

#[test]
fn liveness_failure_kills_and_restarts() {
    let yaml = pod(
        "Always",
        5,
        "[]",
        "[{name: app, image: i, livenessProbe: {exec: {command: [x]}, periodSeconds: 1, failureThreshold: 2}}]",
    );
    let app = Behaviour {
        liveness_passes: Some(1),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", app)]);
    sim.start();
    sim.run(3500);
    assert_eq!(
        sim.lines(&["start", "probe", "Term", "exit"]),
        [
            "  0.000 start app#0",
            "  0.000 probe+ app Liveness",
            "  3.000 probe- app Liveness",
            "  3.000 Term app",
            "  3.000 exit app 143",
            "  3.000 start app#1",
            "  3.000 probe+ app Liveness",
        ]
    );
    let status = sim.status_json();
    assert_eq!(status["containerStatuses"][0]["restartCount"], 1);
    assert!(
        status["containerStatuses"][0]["lastState"]["terminated"]["message"]
            .as_str()
            .unwrap()
            .contains("failed liveness probe")
    );
}

#[test]
fn startup_failure_kills_and_probes_wait_for_startup() {
    let yaml = pod(
        "Never",
        5,
        "[]",
        "[{name: app, image: i, startupProbe: {exec: {command: [x]}, periodSeconds: 1, failureThreshold: 2}, readinessProbe: {exec: {command: [x]}}, livenessProbe: {exec: {command: [x]}}}]",
    );
    let app = Behaviour {
        startup_failures: 100,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", app)]);
    sim.start();
    sim.run(60_000);
    // Readiness and liveness never started; killed after two failures.
    assert!(
        sim.lines(&["probe+ app Readiness", "probe+ app Liveness"])
            .is_empty()
    );
    assert_eq!(sim.when("Term app"), Some(2000));
    assert_eq!(sim.finished, Some(Phase::Failed));
}

#[test]
fn readiness_gates_ready_for_apps_and_sidecars() {
    let yaml = pod(
        "Always",
        30,
        "[{name: side, image: i, restartPolicy: Always, readinessProbe: {exec: {command: [x]}, periodSeconds: 1}}]",
        "[{name: app, image: i, readinessProbe: {exec: {command: [x]}, periodSeconds: 1}}]",
    );
    let side = Behaviour {
        readiness_failures: 5,
        ..Behaviour::serves()
    };
    let app = Behaviour {
        readiness_failures: 1,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", app)]);
    sim.start();
    sim.run(3000);
    let status = sim.status_json();
    assert_eq!(status["containerStatuses"][0]["ready"], true);
    assert_eq!(status["initContainerStatuses"][0]["ready"], false);
    let ready = &status["conditions"][2];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["message"], "containers with unready status: [side]");
    sim.run(7000);
    let status = sim.status_json();
    assert_eq!(status["conditions"][2]["status"], "True");
    assert_eq!(status["conditions"][3]["type"], "ContainersReady");
    assert_eq!(status["conditions"][3]["status"], "True");
}

#[test]
fn completion_is_not_blocked_by_sidecars() {
    let yaml = pod("Never", 30, &format!("[{SIDE}]"), "[{name: app, image: i}]");
    let side = Behaviour {
        term_ms: None, // ignores SIGTERM: killed at the deadline
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", Behaviour::exits(0, 1000))]);
    sim.start();
    sim.run(120_000);
    assert_eq!(
        sim.lines(&["exit", "Term", "Kill", "finished"]),
        [
            "  1.000 exit app 0",
            "  1.000 Term side",
            " 31.000 Kill side",
            " 31.000 exit side sig9",
            " 31.000 finished Succeeded",
        ]
    );
}

#[test]
fn termination_apps_first_then_sidecars_in_reverse() {
    let yaml = pod(
        "Always",
        30,
        "[{name: s1, image: i, restartPolicy: Always}, {name: s2, image: i, restartPolicy: Always}, {name: s3, image: i, restartPolicy: Always}]",
        "[{name: a1, image: i}, {name: a2, image: i}]",
    );
    let slow = |ms| Behaviour {
        term_ms: Some(ms),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(
        &yaml,
        &[
            ("a1", slow(1000)),
            ("a2", slow(2000)),
            ("s1", slow(500)),
            ("s2", slow(500)),
            ("s3", slow(500)),
        ],
    );
    sim.start();
    sim.schedule(
        10_000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(120_000);
    assert_eq!(
        sim.lines(&["Term", "exit", "finished", "kill"]),
        [
            " 10.000 Term a1",
            " 10.000 Term a2",
            " 11.000 exit a1 143",
            " 12.000 exit a2 143",
            " 12.000 Term s3",
            " 12.500 exit s3 143",
            " 12.500 Term s2",
            " 13.000 exit s2 143",
            " 13.000 Term s1",
            " 13.500 exit s1 143",
            " 13.500 kill pod",
            " 13.500 finished Failed",
        ]
    );
}

#[test]
fn one_grace_deadline_for_the_pod_and_a_minimum_for_each_sidecar() {
    let yaml = pod(
        "Always",
        10,
        "[{name: s1, image: i, restartPolicy: Always}, {name: s2, image: i, restartPolicy: Always}]",
        "[{name: app, image: i}]",
    );
    let stubborn = Behaviour {
        term_ms: None,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(
        &yaml,
        &[
            ("app", stubborn.clone()),
            ("s1", stubborn.clone()),
            ("s2", stubborn),
        ],
    );
    sim.start();
    sim.schedule(
        1000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(120_000);
    // The app is killed at the pod deadline (11 s); then the sidecars, whose
    // share of the grace period is gone, each get the 2 s minimum, in
    // reverse order.
    assert_eq!(
        sim.lines(&["Term", "Kill", "finished"]),
        [
            "  1.000 Term app",
            " 11.000 Kill app",
            " 11.000 Term s2",
            " 11.000 Term s1",
            " 13.000 Kill s2",
            " 13.000 Kill s1",
            " 13.000 finished Failed",
        ]
    );
}

#[test]
fn prestop_runs_before_sigterm() {
    let yaml = pod(
        "Always",
        30,
        "[{name: side, image: i, restartPolicy: Always, lifecycle: {preStop: {sleep: {seconds: 2}}}}]",
        "[{name: app, image: i, lifecycle: {preStop: {exec: {command: [x]}}}}]",
    );
    let hook = |ms| Behaviour {
        pre_stop_ms: ms,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", hook(3000)), ("side", hook(2000))]);
    sim.start();
    sim.schedule(
        1000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(120_000);
    // The kubelet kills every container in parallel: preStop hooks, the
    // sidecars' included, start together (e2e: "should call sidecar
    // container PreStop hook simultaneously"); a sidecar's SIGTERM still
    // waits until the apps have exited.
    assert_eq!(
        sim.lines(&["PreStop", "Term", "exit"]),
        [
            "  1.000 PreStop app",
            "  1.000 PreStop side",
            "  4.000 Term app",
            "  4.000 exit app 143",
            "  4.000 Term side",
            "  4.000 exit side 143",
        ]
    );
}

#[test]
fn active_deadline_fails_the_pod() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  activeDeadlineSeconds: 5\n  containers: [{name: app, image: i}]\n";
    let mut sim = Sim::new(yaml, &[]);
    sim.start();
    sim.run(60_000);
    assert_eq!(sim.when("Term app"), Some(5000));
    assert_eq!(sim.finished, Some(Phase::Failed));
    let status = sim.status_json();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "DeadlineExceeded");
    assert_eq!(
        status["message"],
        "Pod was active on the node longer than the specified deadline"
    );
}

#[test]
fn image_change_restarts_only_that_container() {
    let yaml = pod(
        "Always",
        30,
        &format!("[{SIDE}]"),
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[]);
    sim.start();
    sim.schedule(
        5000,
        Event::ImageChanged {
            container: "side".to_owned(),
            image: "i:2".to_owned(),
        },
    );
    sim.run(20_000);
    assert_eq!(
        sim.lines(&["start", "Term", "exit"]),
        [
            "  0.000 start side#0",
            "  0.000 start app#0",
            "  5.000 Term side",
            "  5.000 exit side 143",
            "  5.000 start side#1",
        ]
    );
    let status = sim.status_json();
    assert_eq!(status["initContainerStatuses"][0]["image"], "i:2");
    assert_eq!(status["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn stop_during_init_never_starts_the_apps() {
    let yaml = pod(
        "Always",
        30,
        &format!("[{SIDE}, {{name: init, image: i}}]"),
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[("init", Behaviour::exits(0, 10_000))]);
    sim.start();
    sim.schedule(
        2000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(60_000);
    assert!(sim.when("start app#0").is_none());
    assert_eq!(
        sim.lines(&["Term", "exit", "finished"]),
        [
            "  2.000 Term init",
            "  2.000 exit init 143",
            "  2.000 Term side",
            "  2.000 exit side 143",
            "  2.000 finished Failed",
        ]
    );
}

#[test]
fn exit_reasons_oom_and_start_error() {
    let yaml = pod("OnFailure", 30, "[]", "[{name: app, image: i}]");
    let app = Behaviour {
        exits: vec![Some(1), Some(1), Some(1), Some(0)],
        run_ms: 1000,
        oom_runs: vec![0],
        start_error_runs: vec![2],
        ..Behaviour::default()
    };
    let mut sim = Sim::new(&yaml, &[("app", app)]);
    sim.start();
    sim.run(1500);
    let s = sim.status_json();
    // Run 0 was OOM-killed (SIGKILL): 137, OOMKilled; restarted at once.
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "OOMKilled"
    );
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["signal"],
        9
    );
    sim.run(12_500);
    // Run 1 exited 1 at 2 s; run 2, 10 s later, could not exec: StartError.
    let s = sim.status_json();
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "StartError"
    );
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        128
    );
    sim.run(60_000);
    let s = sim.status_json();
    assert_eq!(sim.finished, Some(Phase::Succeeded));
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "StartError"
    );
    assert_eq!(s["containerStatuses"][0]["restartCount"], 3);
}

#[test]
fn force_stop_kills_at_once() {
    let yaml = pod(
        "Always",
        30,
        &format!("[{SIDE}]"),
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[]);
    sim.start();
    sim.schedule(
        1000,
        Event::StopRequested {
            grace_seconds: Some(0),
        },
    );
    sim.run(60_000);
    assert_eq!(
        sim.lines(&["Term", "Kill", "finished"]),
        [
            "  1.000 Kill app",
            "  1.000 Kill side",
            "  1.000 finished Failed"
        ]
    );
}

#[test]
fn status_shape() {
    let yaml = pod(
        "Always",
        30,
        &format!("[{SIDE}]"),
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[]);
    sim.start();
    sim.run(1000);
    let s = sim.status_json();
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["qosClass"], "BestEffort");
    assert_eq!(s["startTime"], "1970-01-01T00:00:00Z");
    let types: Vec<&str> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    assert_eq!(
        s["containerStatuses"][0],
        json!({"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
               "started": true, "state": {"running": {"startedAt": "1970-01-01T00:00:00Z"}},
               "lastState": {}})
    );
}

#[test]
fn create_container_error_waits_and_retries() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    let t0 = crate::lifecycle::Time(0);
    assert_eq!(
        engine.start(t0),
        [crate::lifecycle::Action::Start {
            container: "app".to_owned(),
            run: 1,
            restart_count: 0,
            image: "i".to_owned(),
        }]
    );
    let actions = engine
        .handle(
            t0,
            Event::CreateFailed {
                container: "app".to_owned(),
                run: 1,
                message: "no such image".to_owned(),
            },
        )
        .unwrap();
    // Retried after the first backoff step, without counting a restart.
    let [crate::lifecycle::Action::ArmTimer { at, timer }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(*at, crate::lifecycle::Time(10_000));
    let s = serde_json::to_value(engine.status()).unwrap();
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"],
        json!({"reason": "CreateContainerError", "message": "no such image"})
    );
    let actions = engine
        .handle(*at, Event::TimerFired(timer.clone()))
        .unwrap();
    assert_eq!(
        actions,
        [crate::lifecycle::Action::Start {
            container: "app".to_owned(),
            run: 2,
            restart_count: 0,
            image: "i".to_owned(),
        }]
    );
}

#[test]
fn a_second_stop_request_can_only_hasten_termination() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let stubborn = Behaviour {
        term_ms: None,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", stubborn)]);
    sim.start();
    sim.schedule(
        1000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    // A later request with a longer grace changes nothing; Ctrl-C twice
    // (grace 0) kills at once.
    sim.schedule(
        2000,
        Event::StopRequested {
            grace_seconds: Some(60),
        },
    );
    sim.schedule(
        5000,
        Event::StopRequested {
            grace_seconds: Some(0),
        },
    );
    sim.run(120_000);
    assert_eq!(
        sim.lines(&["Term", "Kill", "finished"]),
        [
            "  1.000 Term app",
            "  5.000 Kill app",
            "  5.000 finished Failed"
        ]
    );
}

#[test]
fn events_for_unknown_or_idle_containers_are_errors() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    let t = crate::lifecycle::Time(0);
    let started = |name: &str| Event::Started {
        container: name.to_owned(),
        run: 1,
        pid: 1,
    };
    assert_eq!(
        engine.handle(t, started("app")),
        Err(crate::lifecycle::LifecycleError::NotStarted)
    );
    engine.start(t);
    assert!(matches!(
        engine.handle(t, started("nope")),
        Err(crate::lifecycle::LifecycleError::UnknownContainer(_))
    ));
    engine.handle(t, started("app")).unwrap();
    assert!(matches!(
        engine.handle(t, started("app")),
        Err(crate::lifecycle::LifecycleError::Unexpected { .. })
    ));
    // An event about an earlier run is stale and ignored.
    let stale = Event::ProbeResult {
        container: "app".to_owned(),
        run: 0,
        probe: crate::lifecycle::ProbeKind::Liveness,
        success: false,
        output: String::new(),
    };
    assert_eq!(engine.handle(t, stale), Ok(vec![]));
}

// ---- kubelet details found by review ----

#[test]
fn phase_stays_running_until_everything_stopped_and_never_flips() {
    // The app exits 0 at 1 s; the sidecar takes 2 s to stop. The kubelet's
    // getPhase counts the running sidecar: Running until it is gone.
    let yaml = pod("Never", 30, &format!("[{SIDE}]"), "[{name: app, image: i}]");
    let side = Behaviour {
        term_ms: Some(2000),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", Behaviour::exits(0, 1000))]);
    sim.start();
    let mut phases = Vec::new();
    for t in (500..6000).step_by(500) {
        sim.run(t);
        let phase = sim.status_json()["phase"].as_str().unwrap().to_owned();
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
    }
    assert_eq!(phases, ["Running", "Succeeded"]);
    assert_eq!(sim.when("finished Succeeded"), Some(3000));
    let s = sim.status_json();
    assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
    assert_eq!(s["conditions"][1]["reason"], "PodCompleted");
}

#[test]
fn a_late_post_start_of_a_dead_run_does_not_start_the_next_entry() {
    let yaml = pod(
        "Never",
        30,
        "[{name: side, image: i, restartPolicy: Always, lifecycle: {postStart: {exec: {command: [x]}}}}]",
        "[{name: app, image: i}]",
    );
    // Run 1 dies at 1 s while its 5 s postStart runs; run 2 starts at once
    // and its own postStart ends at 6 s.
    let side = Behaviour {
        exits: vec![Some(0), None],
        run_ms: 1000,
        post_start: (5000, Ok(())),
        ..Behaviour::default()
    };
    let mut sim = Sim::new(&yaml, &[("side", side), ("app", Behaviour::exits(0, 1000))]);
    sim.start();
    sim.run(20_000);
    assert_eq!(sim.when("start side#1"), Some(1000));
    assert_eq!(sim.when("start app#0"), Some(6000));
}

#[test]
fn init_containers_are_ready_once_completed() {
    let yaml = pod(
        "Always",
        30,
        "[{name: init, image: i}]",
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[("init", Behaviour::exits(0, 2000))]);
    sim.start();
    sim.run(1000);
    assert_eq!(
        sim.status_json()["initContainerStatuses"][0]["ready"],
        false
    );
    sim.run(3000);
    assert_eq!(sim.status_json()["initContainerStatuses"][0]["ready"], true);
}

#[test]
fn containers_that_never_ended_are_reported_unknown_when_the_pod_ends() {
    // app-2 waits for app-1's 10 s postStart; the pod is stopped first.
    let yaml = pod(
        "Always",
        30,
        "[]",
        "[{name: app-1, image: i, lifecycle: {postStart: {exec: {command: [x]}}}}, {name: app-2, image: i}]",
    );
    let slow_hook = Behaviour {
        post_start: (10_000, Ok(())),
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app-1", slow_hook)]);
    sim.start();
    sim.schedule(
        2000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(60_000);
    let s = sim.status_json();
    assert_eq!(
        s["containerStatuses"][1]["state"]["terminated"],
        json!({"exitCode": 137, "reason": "ContainerStatusUnknown",
               "message": "The container could not be located when the pod was terminated",
               "finishedAt": "1970-01-01T00:00:02Z"})
    );
}

#[test]
fn an_image_change_ends_the_backoff() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut sim = Sim::new(&yaml, &[("app", Behaviour::exits(1, 0))]);
    sim.start();
    sim.schedule(
        4000,
        Event::ImageChanged {
            container: "app".to_owned(),
            image: "i:2".to_owned(),
        },
    );
    sim.run(5000);
    // Crashes at 0 and 0 (restarted at once), then a 10 s backoff the new
    // image cuts short at 4 s.
    assert_eq!(sim.when("start app#2"), Some(4000));
}

#[test]
fn an_image_change_leaves_a_running_regular_init_container_alone() {
    let yaml = pod(
        "Always",
        30,
        "[{name: init, image: i}]",
        "[{name: app, image: i}]",
    );
    let mut sim = Sim::new(&yaml, &[("init", Behaviour::exits(0, 5000))]);
    sim.start();
    sim.schedule(
        1000,
        Event::ImageChanged {
            container: "init".to_owned(),
            image: "i:2".to_owned(),
        },
    );
    sim.run(10_000);
    assert!(sim.when("Term init").is_none());
    assert_eq!(sim.when("start app#0"), Some(5000));
}

#[test]
fn a_spec_grace_of_zero_still_gets_sigterm_and_the_minimum() {
    let yaml = pod("Always", 0, "[]", "[{name: app, image: i}]");
    let stubborn = Behaviour {
        term_ms: None,
        ..Behaviour::serves()
    };
    let mut sim = Sim::new(&yaml, &[("app", stubborn)]);
    sim.start();
    sim.schedule(
        1000,
        Event::StopRequested {
            grace_seconds: None,
        },
    );
    sim.run(60_000);
    assert_eq!(
        sim.lines(&["Term", "Kill"]),
        ["  1.000 Term app", "  3.000 Kill app"]
    );
}

#[test]
fn odd_events_never_panic_or_fail_the_pod() {
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    let t = crate::lifecycle::Time(0);
    engine.start(t);
    // A made-up activeDeadlineSeconds timer on a pod without one.
    let fake = crate::lifecycle::Timer {
        kind: crate::lifecycle::TimerKind::ActiveDeadline,
        generation: 999,
    };
    assert_eq!(engine.handle(t, Event::TimerFired(fake)), Ok(vec![]));
    assert_eq!(engine.status().reason, None);
    engine
        .handle(
            t,
            Event::Started {
                container: "app".to_owned(),
                run: 1,
                pid: 7,
            },
        )
        .unwrap();
    // An absurd signal number is not an overflow.
    engine
        .handle(
            t,
            Event::Exited {
                container: "app".to_owned(),
                run: 1,
                status: crate::lifecycle::ExitStatus::Signal(i32::MAX),
                oom_killed: false,
            },
        )
        .unwrap();
    let s = serde_json::to_value(engine.status()).unwrap();
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        i32::MAX
    );
}

// ---- the engine's own timing of probes and hooks ----

/// The actions of one step, with timers shown as `timer KIND at MS`.
fn shown(actions: &[crate::lifecycle::Action]) -> Vec<String> {
    use crate::lifecycle::{Action, TimerKind};
    actions
        .iter()
        .map(|a| match a {
            Action::ArmTimer { at, timer } => {
                let kind = match &timer.kind {
                    TimerKind::Probe { container, probe } => format!("probe {container} {probe:?}"),
                    TimerKind::HookSleep {
                        container, hook, ..
                    } => format!("sleep {container} {hook:?}"),
                    TimerKind::KillDeadline(c) => format!("kill {c}"),
                    other => format!("{other:?}"),
                };
                format!("timer {kind} at {}", at.0)
            }
            Action::RunProbe {
                container,
                probe,
                timeout_ms,
                ..
            } => format!("check {container} {probe:?} for {timeout_ms}"),
            Action::RunHook {
                container,
                hook,
                timeout_ms,
                ..
            } => format!("hook {container} {hook:?} for {timeout_ms:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// The timer of kind `prefix` among `actions`.
fn timer_in(actions: &[crate::lifecycle::Action], prefix: &str) -> crate::lifecycle::Timer {
    let shown = shown(actions);
    let i = shown
        .iter()
        .position(|s| s.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {shown:?}"));
    match &actions[i] {
        crate::lifecycle::Action::ArmTimer { timer, .. } => timer.clone(),
        _ => unreachable!("a timer is shown as one"),
    }
}

#[test]
fn probe_checks_come_at_the_initial_delay_then_each_period_one_at_a_time() {
    use crate::lifecycle::{Engine, ProbeKind, Time};
    let yaml = pod(
        "Always",
        30,
        "[]",
        "[{name: app, image: i, readinessProbe: {exec: {command: [x]}, initialDelaySeconds: 3, periodSeconds: 2, timeoutSeconds: 5}}]",
    );
    let mut engine = Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let started = engine
        .handle(
            Time(100),
            Event::Started {
                container: "app".to_owned(),
                run: 1,
                pid: 9,
            },
        )
        .unwrap();
    let s = shown(&started);
    assert!(
        s.contains(&"timer probe app Readiness at 3100".to_owned()),
        "{s:?}"
    );
    let tick = timer_in(&started, "timer probe");
    let first = engine.handle(Time(3100), Event::TimerFired(tick)).unwrap();
    assert_eq!(
        shown(&first),
        [
            "check app Readiness for 5000",
            "timer probe app Readiness at 5100"
        ]
    );
    // The check still runs a period later: that period is skipped.
    let tick = timer_in(&first, "timer probe");
    let skipped = engine.handle(Time(5100), Event::TimerFired(tick)).unwrap();
    assert_eq!(shown(&skipped), ["timer probe app Readiness at 7100"]);
    let result = engine
        .handle(
            Time(6000),
            Event::ProbeResult {
                container: "app".to_owned(),
                run: 1,
                probe: ProbeKind::Readiness,
                success: true,
                output: String::new(),
            },
        )
        .unwrap();
    assert!(result.is_empty(), "{result:?}");
    assert!(engine.status().container_statuses.unwrap()[0].ready);
    let tick = timer_in(&skipped, "timer probe");
    let next = engine
        .handle(Time(7100), Event::TimerFired(tick.clone()))
        .unwrap();
    assert_eq!(
        shown(&next),
        [
            "check app Readiness for 5000",
            "timer probe app Readiness at 9100"
        ]
    );
    // A tick already handled (stale) does nothing.
    assert_eq!(
        engine.handle(Time(7200), Event::TimerFired(tick)),
        Ok(vec![])
    );
}

#[test]
fn sleep_hooks_end_on_the_engines_timer_and_pre_stop_has_what_is_left_of_the_grace() {
    use crate::lifecycle::{Engine, Time};
    let yaml = pod(
        "Always",
        10,
        "[]",
        "[{name: app, image: i, lifecycle: {postStart: {sleep: {seconds: 2}}, preStop: {exec: {command: [x]}}}}]",
    );
    let mut engine = Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let started = engine
        .handle(
            Time(0),
            Event::Started {
                container: "app".to_owned(),
                run: 1,
                pid: 9,
            },
        )
        .unwrap();
    // No hook to run: the engine waits the 2 s itself.
    assert_eq!(shown(&started), ["timer sleep app PostStart at 2000"]);
    assert_eq!(
        engine.status().container_statuses.unwrap()[0].started,
        Some(false)
    );
    let slept = timer_in(&started, "timer sleep");
    engine.handle(Time(2000), Event::TimerFired(slept)).unwrap();
    assert_eq!(
        engine.status().container_statuses.unwrap()[0].started,
        Some(true)
    );
    // Stopped with a grace of 4 s: preStop gets the 4 s, the kill
    // deadline follows.
    let stop = engine
        .handle(
            Time(3000),
            Event::StopRequested {
                grace_seconds: Some(4),
            },
        )
        .unwrap();
    let s = shown(&stop);
    assert!(
        s.contains(&"hook app PreStop for Some(4000)".to_owned()),
        "{s:?}"
    );
    assert!(s.contains(&"timer kill app at 7000".to_owned()), "{s:?}");
}

#[test]
fn no_pre_stop_without_time_left_to_run_it() {
    use crate::lifecycle::{Action, Engine, Signal, Time};
    let yaml = pod(
        "Always",
        0,
        "[]",
        "[{name: app, image: i, lifecycle: {preStop: {exec: {command: [x]}}}}]",
    );
    let mut engine = Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    engine
        .handle(
            Time(0),
            Event::Started {
                container: "app".to_owned(),
                run: 1,
                pid: 9,
            },
        )
        .unwrap();
    // A grace period of 0 leaves no time for preStop, which the kubelet
    // then skips: SIGTERM at once, then its minimum grace.
    let stop = engine
        .handle(
            Time(1000),
            Event::StopRequested {
                grace_seconds: None,
            },
        )
        .unwrap();
    assert!(
        !stop.iter().any(|a| matches!(a, Action::RunHook { .. })),
        "{stop:?}"
    );
    assert!(stop.contains(&Action::Signal {
        container: "app".to_owned(),
        signal: Signal::Term
    }));
    assert!(shown(&stop).contains(&"timer kill app at 3000".to_owned()));
}

/// The waiting state of the first app container, as the API shows it.
fn app_waiting(engine: &crate::lifecycle::Engine) -> serde_json::Value {
    serde_json::to_value(engine.status()).unwrap()["containerStatuses"][0]["state"]["waiting"]
        .clone()
}

fn pull_failed(run: u64, never: bool) -> Event {
    Event::PullFailed {
        container: "app".to_owned(),
        run,
        never,
        message: "connection refused".to_owned(),
    }
}

#[test]
fn a_failed_pull_waits_in_err_image_pull_then_image_pull_back_off() {
    use crate::lifecycle::{Action, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    // The first failure: back-off 10 s, the same as the pod worker's next
    // sync, so the pull is simply tried again.
    let actions = engine.handle(Time(0), pull_failed(1, false)).unwrap();
    let [Action::ArmTimer { at, timer }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(*at, Time(10_000));
    assert_eq!(
        app_waiting(&engine),
        json!({"reason": "ErrImagePull", "message": "connection refused"})
    );
    let actions = engine
        .handle(*at, Event::TimerFired(timer.clone()))
        .unwrap();
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Start {
                run: 2,
                restart_count: 0,
                ..
            }]
        ),
        "{actions:?}"
    );
    // The second: back-off 20 s; the sync 10 s in finds it backing off.
    let actions = engine.handle(Time(10_000), pull_failed(2, false)).unwrap();
    let mut timers: Vec<_> = actions
        .iter()
        .map(|a| match a {
            Action::ArmTimer { at, timer } => (*at, timer.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    timers.sort_by_key(|(at, _)| *at);
    assert_eq!(
        timers.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [Time(20_000), Time(30_000)]
    );
    assert!(matches!(timers[0].1.kind, TimerKind::PullResync(ref c) if c == "app"));
    engine
        .handle(Time(20_000), Event::TimerFired(timers[0].1.clone()))
        .unwrap();
    assert_eq!(
        app_waiting(&engine),
        json!({"reason": "ImagePullBackOff", "message": "Back-off pulling image \"i\""})
    );
    let actions = engine
        .handle(Time(30_000), Event::TimerFired(timers[1].1.clone()))
        .unwrap();
    assert!(
        matches!(actions.as_slice(), [Action::Start { run: 3, .. }]),
        "{actions:?}"
    );
}

#[test]
fn a_missing_image_with_policy_never_waits_in_err_image_never_pull() {
    use crate::lifecycle::{Action, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let actions = engine.handle(Time(0), pull_failed(1, true)).unwrap();
    // Tried again after the back-off; never shown as ImagePullBackOff.
    assert!(
        matches!(
            actions.as_slice(),
            [Action::ArmTimer {
                at: Time(10_000),
                ..
            }]
        ),
        "{actions:?}"
    );
    assert_eq!(app_waiting(&engine)["reason"], "ErrImageNeverPull");
}

#[test]
fn an_app_that_never_ran_keeps_the_pod_pending_as_the_kubelets_get_phase() {
    use crate::lifecycle::{Action, Phase, Time};
    let yaml = pod(
        "Always",
        30,
        "[]",
        "[{name: app, image: i}, {name: other, image: i}]",
    );
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let started = |container: &str, run: u64| Event::Started {
        container: container.to_owned(),
        run,
        pid: 10 + run as u32,
    };
    // "app" cannot have its image; "other" is started and runs.
    let actions = engine.handle(Time(0), pull_failed(1, false)).unwrap();
    let Some(Action::ArmTimer { at, timer }) = actions
        .iter()
        .find(|a| matches!(a, Action::ArmTimer { .. }))
    else {
        panic!("{actions:?}");
    };
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Start { container, .. } if container == "other")),
        "{actions:?}"
    );
    engine.handle(Time(0), started("other", 1)).unwrap();
    // One app runs, one has never run: the kubelet's `waiting > 0`.
    assert_eq!(engine.phase(), Phase::Pending);
    let actions = engine
        .handle(*at, Event::TimerFired(timer.clone()))
        .unwrap();
    assert!(
        matches!(actions.as_slice(), [Action::Start { run: 2, .. }]),
        "{actions:?}"
    );
    engine.handle(*at, started("app", 2)).unwrap();
    assert_eq!(engine.phase(), Phase::Running);
}

fn pull_event(started: bool, run: u64) -> Event {
    if started {
        Event::PullStarted {
            container: "app".to_owned(),
            run,
        }
    } else {
        Event::ImagePulled {
            container: "app".to_owned(),
            run,
        }
    }
}

#[test]
fn a_stop_does_not_wait_for_a_pull_and_its_image_is_then_ignored() {
    use crate::lifecycle::{Action, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    engine.handle(Time(0), pull_event(true, 1)).unwrap();
    engine
        .handle(
            Time(5),
            Event::StopRequested {
                grace_seconds: None,
            },
        )
        .unwrap();
    assert!(engine.finished().is_some(), "the pod waited for a pull");
    let after = engine.handle(Time(9), pull_event(false, 1));
    let started = after
        .iter()
        .flatten()
        .any(|a| matches!(a, Action::Start { .. }));
    assert!(!started, "{after:?}");
}

#[test]
fn an_image_changed_during_a_pull_is_the_one_the_container_is_made_from() {
    use crate::lifecycle::{Action, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    engine.handle(Time(0), pull_event(true, 1)).unwrap();
    engine
        .handle(
            Time(1),
            Event::ImageChanged {
                container: "app".to_owned(),
                image: "j".to_owned(),
            },
        )
        .unwrap();
    let actions = engine.handle(Time(2), pull_event(false, 1)).unwrap();
    assert_eq!(
        actions,
        [Action::Start {
            container: "app".to_owned(),
            run: 1,
            restart_count: 0,
            image: "j".to_owned(),
        }]
    );
}

#[test]
fn retrying_a_pull_after_a_crash_counts_no_restart() {
    use crate::lifecycle::{Action, ExitStatus, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let started = |run| Event::Started {
        container: "app".to_owned(),
        run,
        pid: 10,
    };
    engine.handle(Time(0), started(1)).unwrap();
    let exited = |run| Event::Exited {
        container: "app".to_owned(),
        run,
        status: ExitStatus::Code(1),
        oom_killed: false,
    };
    // The first restart is at once: run 2, the first restart counted.
    let actions = engine.handle(Time(100), exited(1)).unwrap();
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Start {
                run: 2,
                restart_count: 1,
                ..
            }
        )),
        "{actions:?}"
    );
    // Its pull fails; each retry is still that first restart.
    let mut t = 100;
    for run in 2..5 {
        let actions = engine.handle(Time(t), pull_failed(run, false)).unwrap();
        let (at, timer) = actions
            .iter()
            .find_map(|a| match a {
                Action::ArmTimer { at, timer } if matches!(timer.kind, TimerKind::Backoff(_)) => {
                    Some((*at, timer.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{actions:?}"));
        t = at.0;
        let actions = engine.handle(at, Event::TimerFired(timer)).unwrap();
        assert!(
            matches!(
                actions.as_slice(),
                [Action::Start {
                    restart_count: 1,
                    ..
                }]
            ),
            "run {run}: {actions:?}"
        );
    }
    let s = serde_json::to_value(engine.status()).unwrap();
    assert_eq!(s["containerStatuses"][0]["restartCount"], 1);
}

#[test]
fn err_image_never_pull_is_looked_at_again_every_sync_without_doubling() {
    use crate::lifecycle::{Action, Time};
    let yaml = pod("Always", 30, "[]", "[{name: app, image: i}]");
    let mut engine = crate::lifecycle::Engine::new(super::sim::model(&yaml));
    engine.start(Time(0));
    let mut now = 0;
    for run in 1..4 {
        let actions = engine.handle(Time(now), pull_failed(run, true)).unwrap();
        let [Action::ArmTimer { at, timer }] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert_eq!(at.0 - now, 10_000, "run {run}");
        now = at.0;
        engine
            .handle(*at, Event::TimerFired(timer.clone()))
            .unwrap();
    }
}
