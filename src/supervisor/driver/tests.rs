//! The supervisor's core over a fake node: what it asks of the node and
//! when (the engine's timers on a fake clock), and what it reports, as
//! events and as the lines `up` prints.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;
use crate::api::events::Recorder;
use crate::lifecycle::{Effects, Hook, Phase, PodModel, ProbeKind, Signal, Time, Timer};
use crate::supervisor::timers::Timers;

/// A node that answers at once, as a test tells it to.
#[derive(Default)]
struct FakeNode {
    /// What it was asked, in order.
    calls: Vec<String>,
    timers: Timers,
    outbox: Vec<Observed>,
    /// The time the test's clock shows.
    now: Rc<Cell<i64>>,
    pids: u32,
    /// Containers whose start fails with this message.
    create_fails: BTreeMap<String, String>,
    /// Containers whose image pull fails with this message.
    pull_fails: BTreeMap<String, String>,
    /// Probe checks' answers per container, in order (the last repeats);
    /// none: success.
    probe_answers: BTreeMap<String, Vec<bool>>,
    /// Containers that exit at once on SIGTERM (with 143).
    exit_on_term: Vec<String>,
    runs: BTreeMap<String, u64>,
    probes_run: BTreeMap<String, usize>,
}

impl FakeNode {
    fn event(&mut self, e: Event) {
        self.outbox.push(Observed::Event(e));
    }
}

impl Effects for FakeNode {
    fn start(&mut self, container: &str, run: u64, restart_count: u32, image: &str) {
        self.calls
            .push(format!("start {container}#{restart_count} {image}"));
        self.runs.insert(container.to_owned(), run);
        if let Some(message) = self.pull_fails.get(container).cloned() {
            self.outbox.push(Observed::Pulling {
                container: container.to_owned(),
                image: image.to_owned(),
            });
            self.event(Event::PullStarted {
                container: container.to_owned(),
                run,
            });
            self.event(Event::PullFailed {
                container: container.to_owned(),
                run,
                never: false,
                message,
            });
            return;
        }
        self.outbox.push(Observed::Pulled {
            container: container.to_owned(),
            message: format!("Container image {image:?} already present on machine"),
        });
        if let Some(message) = self.create_fails.get(container).cloned() {
            self.event(Event::CreateFailed {
                container: container.to_owned(),
                run,
                message,
            });
            return;
        }
        self.pids += 1;
        let pid = 100 + self.pids;
        self.event(Event::Started {
            container: container.to_owned(),
            run,
            pid,
        });
    }

    fn run_hook(&mut self, container: &str, run: u64, hook: Hook, timeout_ms: Option<i64>) {
        self.calls
            .push(format!("hook {container} {hook:?} {timeout_ms:?}"));
        self.event(Event::HookFinished {
            container: container.to_owned(),
            run,
            hook,
            result: Err("hook said no".to_owned()),
        });
    }

    fn start_probe(&mut self, container: &str, _run: u64, probe: ProbeKind) {
        self.calls.push(format!("probe+ {container} {probe:?}"));
    }

    fn run_probe(&mut self, container: &str, run: u64, probe: ProbeKind, timeout_ms: i64) {
        let now = self.now.get();
        self.calls.push(format!(
            "check {container} {probe:?} at {now} for {timeout_ms}"
        ));
        let n = self.probes_run.entry(container.to_owned()).or_default();
        let answers = self
            .probe_answers
            .get(container)
            .cloned()
            .unwrap_or_default();
        let success = answers.get(*n).or(answers.last()).copied().unwrap_or(true);
        *n += 1;
        self.event(Event::ProbeResult {
            container: container.to_owned(),
            run,
            probe,
            success,
            output: if success {
                String::new()
            } else {
                "nope".to_owned()
            },
        });
    }

    fn stop_probe(&mut self, container: &str, probe: ProbeKind) {
        self.calls.push(format!("probe- {container} {probe:?}"));
    }

    fn signal(&mut self, container: &str, signal: Signal) {
        self.calls.push(format!("signal {container} {signal:?}"));
        self.outbox.push(Observed::Signalled {
            container: container.to_owned(),
            signal,
            name: match signal {
                Signal::Term => "SIGTERM",
                Signal::Kill => "SIGKILL",
            },
        });
        let run = self.runs.get(container).copied().unwrap_or(0);
        if signal == Signal::Kill || self.exit_on_term.iter().any(|c| c == container) {
            let status = match signal {
                Signal::Term => ExitStatus::Code(143),
                Signal::Kill => ExitStatus::Signal(9),
            };
            self.event(Event::Exited {
                container: container.to_owned(),
                run,
                status,
                oom_killed: false,
            });
        }
    }

    fn kill_pod(&mut self) {
        self.calls.push("kill pod".to_owned());
    }

    fn arm_timer(&mut self, at: Time, timer: Timer) {
        self.timers.arm(at, timer);
    }

    fn finished(&mut self, phase: Phase) {
        self.calls.push(format!("finished {phase:?}"));
    }
}

impl Node for FakeNode {
    fn observed(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.outbox)
    }

    fn due(&mut self, now: Time) -> Vec<Timer> {
        self.timers.due(now)
    }

    fn next_deadline(&self) -> Option<Time> {
        self.timers.next()
    }
}

struct Test {
    driver: Driver<FakeNode>,
    now: Rc<Cell<i64>>,
    said: Rc<RefCell<Vec<String>>>,
    _dir: tempfile::TempDir,
}

fn model(yaml: &str) -> PodModel {
    let pod = crate::manifest::parse(yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .pod;
    let node = crate::plan::NodeFacts {
        memory_bytes: 8 << 30,
        cpus: 4,
        hugepage_sizes: Vec::new(),
    };
    let resources = crate::plan::plan(&pod, &node, &Default::default());
    let id = crate::pod::Identity {
        uid: "u-1".to_owned(),
        node_name: "node".to_owned(),
    };
    PodModel::from_plan(&crate::pod::compile(&pod, &resources, &id, &Default::default()).unwrap())
}

impl Test {
    fn new(yaml: &str, node: FakeNode) -> Test {
        let dir = tempfile::tempdir().unwrap();
        let now = Rc::clone(&node.now);
        let said = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&said);
        let driver = Driver::new(
            model(yaml),
            node,
            Recorder::open(dir.path()),
            PodRef {
                name: "p".to_owned(),
                namespace: "default".to_owned(),
                uid: "u-1".to_owned(),
                node_name: "node".to_owned(),
                addresses: Default::default(),
            },
            Some("no controllers".to_owned()),
            Box::new(move |line| sink.borrow_mut().push(line.to_owned())),
        );
        Test {
            driver,
            now,
            said,
            _dir: dir,
        }
    }

    /// Moves the clock to `ms` and lets the driver handle what is due,
    /// as the supervisor's loop does when it wakes.
    fn at(&mut self, ms: i64) {
        self.now.set(ms);
        self.driver.collect();
        self.driver.fire_due(Time(ms));
        let now = Rc::clone(&self.now);
        self.driver.settle(&move || Time(now.get()));
    }

    /// A container's process ends, as the node sees it.
    fn exits(&mut self, container: &str, run: u64, status: ExitStatus, oom_killed: bool) {
        self.driver.node.outbox.push(Observed::Event(Event::Exited {
            container: container.to_owned(),
            run,
            status,
            oom_killed,
        }));
    }

    fn calls(&self) -> Vec<String> {
        self.driver.node.calls.clone()
    }

    fn events(&self) -> Vec<String> {
        self.driver
            .events()
            .since(0)
            .map(|e| format!("{} {} {}", e.reason, e.object, e.message))
            .collect()
    }

    fn said(&self) -> Vec<String> {
        self.said.borrow().clone()
    }
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init, image: "rootfs:/", command: ["true"]}
  - name: side
    image: "rootfs:/"
    command: [sleep, "1000"]
    restartPolicy: Always
    startupProbe: {tcpSocket: {port: 80}, initialDelaySeconds: 2, periodSeconds: 1, timeoutSeconds: 3}
  containers:
  - {name: app, image: "busybox:1.36", command: ["true"]}
"#;

#[test]
fn the_pod_starts_in_order_with_probe_checks_on_the_engines_clock() {
    let mut t = Test::new(
        POD,
        FakeNode {
            probe_answers: [("side".to_owned(), vec![false, true])].into(),
            exit_on_term: vec!["side".to_owned()],
            ..FakeNode::default()
        },
    );
    t.driver.start(Time(0));
    t.at(0);
    assert_eq!(t.calls(), ["start init#0 rootfs:/"]);
    t.exits("init", 1, ExitStatus::Code(0), false);
    t.at(500);
    // The sidecar's startup probe waits its initial delay: no check yet.
    t.at(2499);
    assert_eq!(
        t.calls()[1..],
        ["start side#0 rootfs:/", "probe+ side Startup"]
    );
    assert_eq!(t.driver.next_deadline(), Some(Time(2500)));
    // First check at 2.5 s fails; the next, a period later, passes, and
    // only then does the app start.
    t.at(2500);
    t.at(3000);
    assert!(!t.calls().iter().any(|c| c.starts_with("start app")));
    t.at(3500);
    assert_eq!(
        t.calls()[3..],
        [
            "check side Startup at 2500 for 3000",
            "check side Startup at 3500 for 3000",
            "probe- side Startup",
            "start app#0 busybox:1.36",
        ]
    );
    // The app ends: the sidecar is stopped and the pod succeeds.
    t.exits("app", 1, ExitStatus::Code(0), false);
    t.at(4000);
    assert_eq!(
        t.calls()[7..],
        ["signal side Term", "kill pod", "finished Succeeded"]
    );
    assert_eq!(t.driver.finished(), Some(Phase::Succeeded));
    assert_eq!(
        t.said(),
        [
            "init: Started (pid 101)",
            "init: Exited (exit code 0)",
            "side: Started (pid 102)",
            "side: Unhealthy: Startup probe failed: nope",
            "app: Started (pid 103)",
            "app: Exited (exit code 0)",
            "side: Killing (SIGTERM)",
            "side: Exited (exit code 143)",
        ]
    );
    let events = t.events();
    assert_eq!(
        events[..4],
        [
            "Scheduled pod/p Successfully assigned default/p to node",
            "Pulled spec.containers{init} Container image \"rootfs:/\" already present on machine",
            "Created spec.containers{init} Created container: init",
            "Started spec.containers{init} Started container init",
        ]
    );
    assert!(
        events.contains(&"Unhealthy spec.containers{side} Startup probe failed: nope".to_owned())
    );
    assert!(
        events.contains(
            &"Killing spec.containers{side} Stopping container side (SIGTERM)".to_owned()
        )
    );
    // podrun's own condition says why limits are not enforced.
    let status = t.driver.status();
    let limits = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "podrun.io/LimitsEnforced")
        .unwrap();
    assert_eq!(
        (limits.status.as_str(), limits.message.as_deref()),
        ("False", Some("no controllers"))
    );
}

#[test]
fn a_second_stop_request_kills_at_once() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 30\n  containers: [{name: app, image: \"rootfs:/\", command: [sh]}]\n";
    let mut t = Test::new(yaml, FakeNode::default());
    t.driver.start(Time(0));
    t.at(0);
    t.driver.request_stop(Some(5));
    t.at(100);
    // The app ignores SIGTERM: SIGKILL at the end of the asked grace.
    assert_eq!(t.calls()[1..], ["signal app Term"]);
    assert_eq!(t.driver.next_deadline(), Some(Time(5100)));
    t.driver.request_stop(None);
    t.at(200);
    assert_eq!(
        t.calls()[2..],
        ["signal app Kill", "kill pod", "finished Failed"]
    );
    assert_eq!(
        t.said()[1..3],
        ["podrun: stopping pod p", "app: Killing (SIGTERM)"]
    );
    assert!(t.said().contains(&"podrun: stopping pod p now".to_owned()));
}

#[test]
fn failures_are_said_and_recorded_as_the_kubelet_records_them() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: bad, image: "rootfs:/", command: [x]}
  - name: hooked
    image: "rootfs:/"
    command: [x]
    lifecycle: {postStart: {exec: {command: [check]}}}
    readinessProbe: {exec: {command: [z]}, periodSeconds: 1}
"#;
    let mut t = Test::new(
        yaml,
        FakeNode {
            create_fails: [("bad".to_owned(), "no such image".to_owned())].into(),
            ..FakeNode::default()
        },
    );
    t.driver.start(Time(0));
    t.at(0);
    assert!(t.calls().contains(&"hook hooked PostStart None".to_owned()));
    let events = t.events();
    assert!(events.contains(&"Failed spec.containers{bad} Error: no such image".to_owned()));
    assert!(
        events.contains(&"FailedPostStartHook spec.containers{hooked} hook said no".to_owned())
    );
    assert!(t.said().contains(&"bad: Failed: no such image".to_owned()));
    assert!(
        t.said()
            .contains(&"hooked: FailedPostStartHook: hook said no".to_owned())
    );
    // An OOM kill, and a probe that passed with a warning.
    t.driver.node.outbox.push(Observed::Warning {
        container: "hooked".to_owned(),
        of: CheckOf::Probe(ProbeKind::Readiness),
        output: "Probe terminated redirects".to_owned(),
    });
    t.driver.node.outbox.push(Observed::Warning {
        container: "hooked".to_owned(),
        of: CheckOf::Hook(Hook::PostStart),
        output: "Get \"https://127.0.0.1:80/\": http: server gave HTTP response to HTTPS client"
            .to_owned(),
    });
    t.exits("hooked", 1, ExitStatus::Signal(9), true);
    t.at(10);
    let events = t.events();
    assert!(events.contains(
        &"ProbeWarning spec.containers{hooked} Readiness probe warning: Probe terminated redirects"
            .to_owned()
    ));
    assert!(
        events.contains(
            &"OOMKilled spec.containers{hooked} Container hooked was killed by the OOM killer"
                .to_owned()
        )
    );
    assert!(
        t.said()
            .contains(&"hooked: Exited (signal 9, OOMKilled)".to_owned())
    );
}

#[test]
fn a_crash_loop_is_a_back_off_warning_and_a_retried_create_error_is_not() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: \"rootfs:/\", command: [x]}\n  - {name: gone, image: \"rootfs:/\", command: [x]}\n";
    let mut t = Test::new(
        yaml,
        FakeNode {
            create_fails: [("gone".to_owned(), "image not there".to_owned())].into(),
            ..FakeNode::default()
        },
    );
    t.driver.start(Time(0));
    t.at(0);
    for (run, at) in [(1, 1000), (2, 2000)] {
        t.exits("app", run, ExitStatus::Code(1), false);
        t.at(at);
    }
    // The first restart is at once; the second waits 10 s.
    assert_eq!(
        t.calls()
            .iter()
            .filter(|c| c.starts_with("start app"))
            .count(),
        2
    );
    let backoffs: Vec<String> = t
        .events()
        .into_iter()
        .filter(|e| e.starts_with("BackOff"))
        .collect();
    assert_eq!(
        backoffs,
        [
            "BackOff spec.containers{app} Back-off restarting failed container app in pod p_default(u-1)"
        ]
    );
    t.at(12_000);
    assert_eq!(
        t.calls()
            .iter()
            .filter(|c| c.starts_with("start app"))
            .count(),
        3
    );
    assert_eq!(
        t.calls()
            .iter()
            .filter(|c| c.starts_with("start gone"))
            .count(),
        2,
        "the create error is retried"
    );
}

#[test]
fn a_failed_pull_is_err_image_pull_then_image_pull_back_off_as_the_kubelet_says() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: \"rootfs:/\", command: [x]}\n  - {name: bad, image: \"127.0.0.1:1/x:1\", command: [x]}\n";
    let mut t = Test::new(
        yaml,
        FakeNode {
            pull_fails: [("bad".to_owned(), "connection refused".to_owned())].into(),
            ..FakeNode::default()
        },
    );
    t.driver.start(Time(0));
    t.at(0);
    let image = "127.0.0.1:1/x:1";
    let first = [
        format!("Pulling spec.containers{{bad}} Pulling image {image:?}"),
        format!("Failed spec.containers{{bad}} Failed to pull image {image:?}: connection refused"),
        "Failed spec.containers{bad} Error: ErrImagePull".to_owned(),
    ];
    let events = t.events();
    for e in &first {
        assert!(events.contains(e), "{e} not in {events:#?}");
    }
    assert!(events.contains(&"Started spec.containers{app} Started container app".to_owned()));
    assert!(
        !events.iter().any(|e| e.starts_with("BackOff")),
        "{events:#?}"
    );
    // Tried again after 10 s, failing again: the sync 10 s later finds the
    // image backing off (20 s now).
    t.at(10_000);
    t.at(20_000);
    let events = t.events();
    assert!(
        events.contains(&format!(
            "BackOff spec.containers{{bad}} Back-off pulling image {image:?}"
        )),
        "{events:#?}"
    );
    assert!(events.contains(&"Failed spec.containers{bad} Error: ImagePullBackOff".to_owned()));
    let starts = t
        .calls()
        .iter()
        .filter(|c| c.starts_with("start bad"))
        .count();
    assert_eq!(starts, 2, "{:?}", t.calls());
    t.at(30_000);
    let starts = t
        .calls()
        .iter()
        .filter(|c| c.starts_with("start bad"))
        .count();
    assert_eq!(starts, 3, "{:?}", t.calls());
    assert!(t.said().contains(&format!("bad: Pulling image {image:?}")));
    assert!(t.said().contains(&"bad: ImagePullBackOff".to_owned()));
}
