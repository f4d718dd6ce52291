//! Invariants over random pods: random init/sidecar/app shapes, restart
//! policies, exit codes, timings, grace periods and stop requests. Each run
//! is checked against the engine's own actions and events, replayed here by
//! an independent bookkeeping of what is running.

use std::collections::HashMap;

use proptest::prelude::*;

use super::sim::{Behaviour, Entry, Sim};
use crate::lifecycle::{
    Action, ContainerModel, Event, ExitStatus, Hook, HookSpec, PodModel, ProbeKind, ProbeSpec,
    RestartPolicy, Signal,
};
use crate::manifest::ContainerKind;

#[derive(Debug, Clone)]
struct Shape {
    kinds: Vec<ContainerKind>,
    policy: RestartPolicy,
    grace: i64,
    behaviours: Vec<Behaviour>,
    stop_at: Option<i64>,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    (
        prop::collection::vec(prop_oneof![Just(None), (0i32..3).prop_map(Some)], 1..4),
        0i64..4000,
        prop_oneof![Just(None), (0i64..4000).prop_map(Some)],
        prop_oneof![Just(None), (0i64..3000).prop_map(Some)],
        prop_oneof![Just(None), (0i64..3000).prop_map(Some)],
        prop_oneof![Just(None), (0u32..4).prop_map(Some)],
        prop_oneof![Just(None), (0u32..4).prop_map(Some)],
    )
        .prop_map(
            |(exits, run_ms, term_ms, post_start, pre_stop, startup, readiness)| Behaviour {
                exits,
                run_ms,
                term_ms,
                post_start: (post_start.unwrap_or(-1), Ok(())),
                pre_stop_ms: pre_stop.unwrap_or(-1),
                // u32::MAX failures stands for "no such probe" here.
                startup_failures: startup.unwrap_or(u32::MAX),
                readiness_failures: readiness.unwrap_or(u32::MAX),
                period_ms: 700,
                ..Behaviour::default()
            },
        )
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        0usize..=4,
        0usize..=3,
        1usize..=3,
        prop::sample::select(vec![
            RestartPolicy::Always,
            RestartPolicy::OnFailure,
            RestartPolicy::Never,
        ]),
        0i64..8,
        prop_oneof![Just(None), (0i64..60_000).prop_map(Some)],
        any::<u64>(),
    )
        .prop_flat_map(|(inits, sidecars, apps, policy, grace, stop_at, seed)| {
            // Interleave regular inits and sidecars by the seed's bits.
            let mut kinds = Vec::new();
            let (mut r, mut s) = (inits, sidecars);
            let mut bits = seed;
            while r + s > 0 {
                let take_sidecar = s > 0 && (r == 0 || bits & 1 == 1);
                bits >>= 1;
                if take_sidecar {
                    s -= 1;
                    kinds.push(ContainerKind::Sidecar);
                } else {
                    r -= 1;
                    kinds.push(ContainerKind::Init);
                }
            }
            kinds.extend(std::iter::repeat_n(ContainerKind::App, apps));
            let n = kinds.len();
            prop::collection::vec(behaviour(), n).prop_map(move |behaviours| Shape {
                kinds: kinds.clone(),
                policy,
                grace,
                behaviours,
                stop_at,
            })
        })
}

fn model(shape: &Shape) -> PodModel {
    PodModel {
        name: "p".to_owned(),
        restart_policy: shape.policy,
        grace_seconds: shape.grace,
        active_deadline_seconds: None,
        qos_class: "BestEffort".to_owned(),
        containers: shape
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| ContainerModel {
                name: format!("c{i}"),
                kind: *kind,
                image: "i".to_owned(),
                // A negative duration in the behaviour means "no hook".
                post_start: (shape.behaviours[i].post_start.0 >= 0).then_some(HookSpec::Run),
                pre_stop: (shape.behaviours[i].pre_stop_ms >= 0).then_some(HookSpec::Run),
                // Startup probes that pass after a few tries (their failure
                // threshold is never reached), readiness probes that flap.
                startup_probe: (shape.behaviours[i].startup_failures != u32::MAX).then_some(
                    ProbeSpec {
                        success_threshold: 1,
                        failure_threshold: 10,
                        termination_grace_seconds: None,
                        ..ProbeSpec::default()
                    },
                ),
                readiness_probe: (shape.behaviours[i].readiness_failures != u32::MAX).then_some(
                    ProbeSpec {
                        success_threshold: 1,
                        failure_threshold: 1,
                        termination_grace_seconds: None,
                        ..ProbeSpec::default()
                    },
                ),
                liveness_probe: None,
            })
            .collect(),
    }
}

/// The kubelet's backoff, written again independently of the engine's.
#[derive(Default)]
struct ExpectedBackoff {
    delay_ms: Option<i64>,
    updated: i64,
}

impl ExpectedBackoff {
    fn due(&self, finished: i64) -> i64 {
        match self.delay_ms {
            Some(d) if finished - self.updated <= 600_000 => finished + d,
            _ => finished,
        }
    }

    fn restarted(&mut self, finished: i64, now: i64) {
        self.delay_ms = Some(match self.delay_ms {
            Some(d) if finished - self.updated <= 600_000 => (d * 2).min(300_000),
            _ => 10_000,
        });
        self.updated = now;
    }
}

fn check(shape: &Shape) -> Result<(), TestCaseError> {
    let model = model(shape);
    let names: Vec<String> = model.containers.iter().map(|c| c.name.clone()).collect();
    let behaviours: Vec<(&str, Behaviour)> = names
        .iter()
        .map(String::as_str)
        .zip(shape.behaviours.iter().cloned())
        .collect();
    let mut sim = Sim::from_model(model, &behaviours);
    sim.start();
    if let Some(at) = shape.stop_at {
        sim.schedule(
            at,
            Event::StopRequested {
                grace_seconds: None,
            },
        );
    }
    sim.run(1_200_000);

    // Replay actions and events in time order.
    let kind = |name: &str| shape.kinds[names.iter().position(|n| n == name).expect("name")];
    let idx = |name: &str| names.iter().position(|n| n == name).expect("name");
    let has_post_start = |name: &str| shape.behaviours[idx(name)].post_start.0 >= 0;
    let has_startup = |name: &str| shape.behaviours[idx(name)].startup_failures != u32::MAX;
    let mut running: HashMap<String, bool> = HashMap::new();
    let mut completed: HashMap<String, bool> = HashMap::new();
    let mut sidecar_started: HashMap<String, bool> = HashMap::new();
    let mut last_exit: HashMap<String, i64> = HashMap::new();
    let mut backoff: HashMap<String, ExpectedBackoff> = HashMap::new();
    let mut stop_at: Option<(i64, i64)> = None;

    for (t, entry) in &sim.log {
        let now = t.0;
        match entry {
            Entry::Event(Event::Started { container, .. }) => {
                running.insert(container.clone(), true);
                if kind(container) == ContainerKind::Sidecar
                    && !has_post_start(container)
                    && !has_startup(container)
                {
                    sidecar_started.insert(container.clone(), true);
                }
            }
            Entry::Event(Event::HookFinished {
                container,
                hook: Hook::PostStart,
                result: Ok(()),
                ..
            }) => {
                if kind(container) == ContainerKind::Sidecar
                    && !has_startup(container)
                    && running.get(container).copied().unwrap_or(false)
                {
                    sidecar_started.insert(container.clone(), true);
                }
            }
            Entry::Action(Action::RunHook {
                container, hook, ..
            }) => {
                prop_assert!(
                    running.get(container).copied().unwrap_or(false),
                    "{hook:?} for {container}, which is not running\n{}",
                    sim.trace.join("\n")
                );
                if *hook == Hook::PreStop && stop_at.is_none() {
                    stop_at = Some((now, now + shape.grace * 1000));
                }
            }
            Entry::Event(Event::Exited {
                container, status, ..
            }) => {
                running.insert(container.clone(), false);
                last_exit.insert(container.clone(), now);
                if kind(container) == ContainerKind::Init && *status == ExitStatus::Code(0) {
                    completed.insert(container.clone(), true);
                }
            }
            Entry::Event(Event::StopRequested { .. }) => {
                if stop_at.is_none() {
                    stop_at = Some((now, now + shape.grace * 1000));
                }
            }
            Entry::Event(_) => {}
            Entry::Action(Action::Start {
                container,
                restart_count,
                ..
            }) => {
                prop_assert!(
                    !running.get(container).copied().unwrap_or(false),
                    "{container} started while running\n{}",
                    sim.trace.join("\n")
                );
                prop_assert!(
                    stop_at.is_none(),
                    "{container} started after the stop\n{}",
                    sim.trace.join("\n")
                );
                let i = idx(container);
                // Init order: every earlier entry is done.
                for (j, name) in names.iter().enumerate().take(i) {
                    match shape.kinds[j] {
                        ContainerKind::Init => prop_assert!(
                            completed.get(name).copied().unwrap_or(false),
                            "{container} started before {name} completed\n{}",
                            sim.trace.join("\n")
                        ),
                        ContainerKind::Sidecar => prop_assert!(
                            sidecar_started.get(name).copied().unwrap_or(false),
                            "{container} started before sidecar {name} started\n{}",
                            sim.trace.join("\n")
                        ),
                        ContainerKind::App => {}
                    }
                }
                // A regular init never runs beside a later entry.
                if kind(container) == ContainerKind::Init {
                    for name in names.iter().skip(i + 1) {
                        prop_assert!(
                            !running.get(name).copied().unwrap_or(false),
                            "{container} started while later {name} runs\n{}",
                            sim.trace.join("\n")
                        );
                    }
                }
                // Restart delays are the kubelet's backoff.
                let b = backoff.entry(container.clone()).or_default();
                if *restart_count > 0 {
                    let finished = last_exit[container];
                    prop_assert_eq!(
                        now,
                        b.due(finished).max(finished),
                        "restart of {} at the wrong time\n{}",
                        container,
                        sim.trace.join("\n")
                    );
                    b.restarted(finished, now);
                }
            }
            Entry::Action(Action::Signal { container, signal }) => {
                // Without probes or hooks, the first signal begins the
                // pod's termination (a stop request or completion).
                if stop_at.is_none() {
                    stop_at = Some((now, now + shape.grace * 1000));
                }
                prop_assert!(
                    running.get(container).copied().unwrap_or(false),
                    "{signal:?} to {container}, which is not running\n{}",
                    sim.trace.join("\n")
                );
                if *signal == Signal::Term
                    && kind(container) == ContainerKind::Sidecar
                    && let Some((_, deadline)) = stop_at
                    && now < deadline
                {
                    let i = idx(container);
                    for (j, name) in names.iter().enumerate() {
                        let must_be_gone = shape.kinds[j] != ContainerKind::Sidecar || j > i;
                        prop_assert!(
                            !(must_be_gone && running.get(name).copied().unwrap_or(false)),
                            "SIGTERM to sidecar {container} while {name} runs\n{}",
                            sim.trace.join("\n")
                        );
                    }
                }
            }
            // A startup probe stops for good on success: the sidecar started.
            Entry::Action(Action::StopProbe {
                container,
                probe: ProbeKind::Startup,
            }) if kind(container) == ContainerKind::Sidecar
                && running.get(container).copied().unwrap_or(false) =>
            {
                sidecar_started.insert(container.clone(), true);
            }
            Entry::Action(Action::StartProbe {
                container, probe, ..
            }) => {
                prop_assert!(
                    running.get(container).copied().unwrap_or(false),
                    "{probe:?} probe for {container}, which is not running\n{}",
                    sim.trace.join("\n")
                );
            }
            Entry::Action(_) => {}
        }
    }

    // Never / OnFailure pods whose apps all finish for good reach a
    // terminal phase (as do pods asked to stop).
    let all_finish = |of: ContainerKind| {
        shape
            .kinds
            .iter()
            .zip(&shape.behaviours)
            .filter(|(k, _)| **k == of)
            .all(|(_, b)| finishes_for_good(shape.policy, &b.exits))
    };
    // A sidecar that always dies before its postStart hook is done or its
    // startup probe has passed never starts, and init waits for it forever,
    // as the kubelet's does.
    let sidecars_start = shape
        .kinds
        .iter()
        .zip(&shape.behaviours)
        .filter(|(k, _)| **k == ContainerKind::Sidecar)
        .all(|(_, b)| {
            // postStart, then the startup probe's passing result.
            let hook = b.post_start.0.max(0);
            let probe = if b.startup_failures == u32::MAX {
                0
            } else {
                i64::from(b.startup_failures + 1) * b.period_ms
            };
            let needs = hook + probe;
            needs == 0 || b.exits.contains(&None) || b.run_ms > needs
        });
    let terminates = shape.stop_at.is_some()
        || (shape.policy != RestartPolicy::Always
            && sidecars_start
            && all_finish(ContainerKind::Init)
            && all_finish(ContainerKind::App));
    if terminates {
        prop_assert!(
            sim.finished.is_some(),
            "never finished\n{}",
            sim.trace.join("\n")
        );
    }
    if sim.finished.is_some() {
        prop_assert!(
            running.values().all(|r| !r),
            "finished with containers running\n{}",
            sim.trace.join("\n")
        );
    }
    Ok(())
}

/// Whether a container with these exit codes per run (the last repeating;
/// `None` runs until stopped) stops being restarted under `policy`.
fn finishes_for_good(policy: RestartPolicy, exits: &[Option<i32>]) -> bool {
    match policy {
        RestartPolicy::Always => false,
        RestartPolicy::Never => exits[0].is_some(),
        RestartPolicy::OnFailure => {
            for exit in exits {
                match exit {
                    Some(0) => return true,
                    None => return false,
                    Some(_) => {}
                }
            }
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_random_pods(shape in shape()) {
        check(&shape)?;
    }
}
