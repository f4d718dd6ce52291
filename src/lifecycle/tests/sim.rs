//! A simulated node: it carries out the engine's actions through the same
//! `Effects` trait as the supervisor's node (processes that run for a
//! while and exit, react to signals, hooks that take time, probe checks
//! that answer at once), on a fake clock, and records a readable trace.
//! The engine times the probes: a behaviour's `period_ms` stands for the
//! probe's initial delay and period, so that each probe's first result
//! comes one period after it starts.

use std::collections::{BTreeMap, HashMap};

use crate::lifecycle::{
    Action, Effects, Engine, Event, ExitStatus, Hook, Phase, PodModel, ProbeKind, Signal, Time,
    Timer, carry_out,
};
use crate::manifest;

/// How one container behaves in the simulation. Times in milliseconds.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Exit code per run (the last repeats); `None` runs until signalled.
    pub exits: Vec<Option<i32>>,
    /// How long each run lasts before exiting on its own.
    pub run_ms: i64,
    /// Exits this long after SIGTERM; `None` ignores SIGTERM.
    pub term_ms: Option<i64>,
    /// The exit code on SIGTERM (143 when unset: killed by the signal).
    pub term_code: Option<i32>,
    /// postStart takes this long; `Err` fails it.
    pub post_start: (i64, Result<(), String>),
    /// preStop takes this long.
    pub pre_stop_ms: i64,
    /// preStop fails with this output.
    pub pre_stop_fails: Option<String>,
    /// Startup probe: fails this many times per run, then passes.
    pub startup_failures: u32,
    /// Readiness probe: fails this many times per run, then passes.
    pub readiness_failures: u32,
    /// Liveness probe: passes this many times per run, then fails.
    pub liveness_passes: Option<u32>,
    /// Probe period.
    pub period_ms: i64,
    /// Fails to exec on these runs (0-based).
    pub start_error_runs: Vec<u32>,
    /// OOM-killed on these runs.
    pub oom_runs: Vec<u32>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            exits: vec![None],
            run_ms: 0,
            term_ms: Some(0),
            term_code: None,
            post_start: (0, Ok(())),
            pre_stop_ms: 0,
            pre_stop_fails: None,
            startup_failures: 0,
            readiness_failures: 0,
            liveness_passes: None,
            period_ms: 1000,
            start_error_runs: Vec::new(),
            oom_runs: Vec::new(),
        }
    }
}

impl Behaviour {
    /// Runs `ms`, then exits with `code`, every run.
    pub fn exits(code: i32, ms: i64) -> Behaviour {
        Behaviour {
            exits: vec![Some(code)],
            run_ms: ms,
            ..Behaviour::default()
        }
    }

    /// Runs until signalled; exits at once on SIGTERM.
    pub fn serves() -> Behaviour {
        Behaviour::default()
    }

    /// The e2e suite's containers: run `secs`, exit with `code`; on SIGTERM
    /// exit after `term_secs` with the same code.
    pub fn e2e(secs: i64, code: i32, term_secs: i64) -> Behaviour {
        Behaviour {
            exits: vec![Some(code)],
            run_ms: secs * 1000,
            term_ms: Some(term_secs * 1000),
            term_code: Some(code),
            ..Behaviour::default()
        }
    }
}

pub struct Sim {
    pub engine: Engine,
    pub now: Time,
    behaviours: HashMap<String, Behaviour>,
    queue: BTreeMap<(Time, u64), Event>,
    seq: u64,
    runs: HashMap<String, u32>,
    alive: HashMap<String, bool>,
    /// Running probes: results given so far, and the run they probe.
    probes: HashMap<(String, ProbeKind), (u32, u64)>,
    /// The queue key of the event being handled: a probe check's result
    /// takes its place, as the check answers at once.
    current: (Time, u64),
    /// Each container's current run, from the engine's `Start`.
    current_run: HashMap<String, u64>,
    pub trace: Vec<String>,
    /// Every event delivered and every action returned, in the order they
    /// happened.
    pub log: Vec<(Time, Entry)>,
    pub finished: Option<Phase>,
    timers: HashMap<Timer, Time>,
}

#[derive(Debug, Clone)]
pub enum Entry {
    Event(Event),
    Action(Action),
}

/// The engine's model of a pod manifest, compiled as podrun compiles it.
pub fn model(yaml: &str) -> PodModel {
    let m = manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    let node = crate::plan::NodeFacts {
        memory_bytes: 8 << 30,
        cpus: 4,
        hugepage_sizes: Vec::new(),
    };
    let resources = crate::plan::plan(&m.pod, &node, &Default::default());
    let id = crate::pod::Identity {
        uid: "uid".to_owned(),
        node_name: "node".to_owned(),
    };
    let plan = crate::pod::compile(&m.pod, &resources, &id, &Default::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    PodModel::from_plan(&plan)
}

impl Sim {
    pub fn new(yaml: &str, behaviours: &[(&str, Behaviour)]) -> Sim {
        Sim::from_model(model(yaml), behaviours)
    }

    pub fn from_model(mut model: PodModel, behaviours: &[(&str, Behaviour)]) -> Sim {
        let mut map: HashMap<String, Behaviour> = model
            .containers
            .iter()
            .map(|c| (c.name.clone(), Behaviour::default()))
            .collect();
        for (name, b) in behaviours {
            map.insert((*name).to_owned(), b.clone());
        }
        for c in &mut model.containers {
            let period = map[&c.name].period_ms;
            for p in [
                &mut c.startup_probe,
                &mut c.readiness_probe,
                &mut c.liveness_probe,
            ]
            .into_iter()
            .flatten()
            {
                p.initial_delay_ms = period;
                p.period_ms = period;
            }
        }
        Sim {
            engine: Engine::new(model),
            now: Time(0),
            behaviours: map,
            queue: BTreeMap::new(),
            seq: 0,
            runs: HashMap::new(),
            alive: HashMap::new(),
            probes: HashMap::new(),
            current: (Time(0), 0),
            current_run: HashMap::new(),
            trace: Vec::new(),
            log: Vec::new(),
            finished: None,
            timers: HashMap::new(),
        }
    }

    pub fn start(&mut self) {
        let actions = self.engine.start(self.now);
        self.apply(actions);
    }

    fn at(&mut self, delay_ms: i64, event: Event) {
        self.seq += 1;
        self.queue
            .insert((self.now.plus_millis(delay_ms.max(0)), self.seq), event);
    }

    /// Injects an event at `ms` from now (a stop request, an image change).
    pub fn schedule(&mut self, delay_ms: i64, event: Event) {
        self.at(delay_ms, event);
    }

    fn still_relevant(&self, event: &Event) -> bool {
        match event {
            Event::TimerFired(timer) => self.timers.contains_key(timer),
            _ => true,
        }
    }

    /// Records exits in the trace.
    fn note_event(&mut self, event: Event) -> Event {
        self.log.push((self.now, Entry::Event(event.clone())));
        if let Event::Exited { container, .. } = &event {
            self.alive.insert(container.clone(), false);
            self.trace(format!("exit {container} {}", exit_text(&event)));
        }
        event
    }

    fn trace(&mut self, line: String) {
        self.trace
            .push(format!("{:>7.3} {line}", self.now.0 as f64 / 1000.0));
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.log.push((self.now, Entry::Action(action.clone())));
            carry_out([action], self);
        }
    }

    fn launch(&mut self, name: &str, run_id: u64) {
        let run = *self.runs.entry(name.to_owned()).or_insert(0);
        *self.runs.get_mut(name).expect("run") += 1;
        let b = self.behaviours[name].clone();
        if b.start_error_runs.contains(&run) {
            self.at(
                0,
                Event::StartFailed {
                    container: name.to_owned(),
                    run: run_id,
                    message: "exec: not found".to_owned(),
                },
            );
            return;
        }
        self.alive.insert(name.to_owned(), true);
        self.at(
            0,
            Event::Started {
                container: name.to_owned(),
                run: run_id,
                pid: 100 + run,
            },
        );
        let exit = b.exits[(run as usize).min(b.exits.len() - 1)];
        if let Some(code) = exit {
            let oom = b.oom_runs.contains(&run);
            self.at(
                b.run_ms,
                Event::Exited {
                    container: name.to_owned(),
                    run: run_id,
                    status: if oom {
                        ExitStatus::Signal(9)
                    } else {
                        ExitStatus::Code(code)
                    },
                    oom_killed: oom,
                },
            );
        }
    }

    fn drop_exits(&mut self, name: &str) {
        self.queue
            .retain(|_, e| !matches!(e, Event::Exited { container, .. } if container == name));
    }

    fn deliver(&mut self, name: &str, signal: Signal) {
        if !self.alive.get(name).copied().unwrap_or(false) {
            return;
        }
        let b = self.behaviours[name].clone();
        match signal {
            Signal::Term => {
                if let Some(ms) = b.term_ms {
                    self.drop_exits(name);
                    self.at(
                        ms,
                        Event::Exited {
                            container: name.to_owned(),
                            run: self.current_run[name],
                            status: ExitStatus::Code(b.term_code.unwrap_or(143)),
                            oom_killed: false,
                        },
                    );
                }
            }
            Signal::Kill => {
                self.drop_exits(name);
                self.at(
                    0,
                    Event::Exited {
                        container: name.to_owned(),
                        run: self.current_run[name],
                        status: ExitStatus::Signal(9),
                        oom_killed: false,
                    },
                );
            }
        }
    }

    /// A probe's check answers at once: in the queue's place of the event
    /// that asked for it.
    fn answer_probe(&mut self, name: &str, probe: ProbeKind) {
        let b = &self.behaviours[name];
        let key = (name.to_owned(), probe);
        let Some((count, run)) = self.probes.get(&key).copied() else {
            return;
        };
        let success = match probe {
            ProbeKind::Startup => count >= b.startup_failures,
            ProbeKind::Readiness => count >= b.readiness_failures,
            ProbeKind::Liveness => b.liveness_passes.is_none_or(|n| count < n),
        };
        self.probes.insert(key, (count + 1, run));
        let event = Event::ProbeResult {
            container: name.to_owned(),
            run,
            probe,
            success,
            output: if success {
                String::new()
            } else {
                "probe failed".to_owned()
            },
        };
        let at = if self.queue.contains_key(&self.current) {
            self.seq += 1;
            (self.current.0, self.seq)
        } else {
            self.current
        };
        self.queue.insert(at, event);
    }

    /// Runs until the pod finishes or the clock reaches `limit_ms`; probe
    /// results keep coming every period while a probe runs.
    pub fn run(&mut self, limit_ms: i64) {
        let limit = Time(limit_ms);
        while let Some((&(t, seq), _)) = self.queue.iter().next() {
            if t > limit || self.finished.is_some() {
                break;
            }
            let event = self.queue.remove(&(t, seq)).expect("queued");
            self.now = t;
            self.current = (t, seq);
            if !self.still_relevant(&event) {
                continue;
            }

            let event = self.note_event(event);
            match self.engine.handle(self.now, event.clone()) {
                Ok(actions) => self.apply(actions),
                Err(e) => panic!(
                    "engine refused {event:?} at {:?}: {e}\ntrace:\n{}",
                    self.now,
                    self.trace.join("\n")
                ),
            }
        }
        if self.finished.is_none() && self.now < limit {
            self.now = limit;
        }
    }

    /// The trace lines that match any of the given prefixes after the time.
    pub fn lines(&self, words: &[&str]) -> Vec<String> {
        self.trace
            .iter()
            .filter(|l| {
                let body = &l[8..];
                words.iter().any(|w| body.starts_with(w))
            })
            .cloned()
            .collect()
    }

    /// When the first trace line with this body happened, in ms.
    pub fn when(&self, body: &str) -> Option<i64> {
        self.trace.iter().find(|l| &l[8..] == body).map(|l| {
            let secs: f64 = l[..7].trim().parse().expect("time");
            (secs * 1000.0).round() as i64
        })
    }

    /// Every action the engine returned.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.log.iter().filter_map(|(_, e)| match e {
            Entry::Action(a) => Some(a),
            Entry::Event(_) => None,
        })
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(self.engine.status()).expect("status serializes")
    }
}

impl Effects for Sim {
    fn start(&mut self, container: &str, run: u64, restart_count: u32, _image: &str) {
        self.trace(format!("start {container}#{restart_count}"));
        self.current_run.insert(container.to_owned(), run);
        self.launch(container, run);
    }

    fn run_hook(&mut self, container: &str, run: u64, hook: Hook, _timeout_ms: Option<i64>) {
        let b = self.behaviours[container].clone();
        let (delay, result) = match hook {
            Hook::PostStart => (b.post_start.0, b.post_start.1.clone()),
            Hook::PreStop => (b.pre_stop_ms, b.pre_stop_fails.clone().map_or(Ok(()), Err)),
        };
        self.trace(format!("{hook:?} {container}"));
        self.at(
            delay,
            Event::HookFinished {
                container: container.to_owned(),
                run,
                hook,
                result,
            },
        );
    }

    fn start_probe(&mut self, container: &str, run: u64, probe: ProbeKind) {
        self.trace(format!("probe+ {container} {probe:?}"));
        self.probes.insert((container.to_owned(), probe), (0, run));
    }

    fn run_probe(&mut self, container: &str, _run: u64, probe: ProbeKind, _timeout_ms: i64) {
        self.answer_probe(container, probe);
    }

    fn stop_probe(&mut self, container: &str, probe: ProbeKind) {
        self.trace(format!("probe- {container} {probe:?}"));
        self.probes.remove(&(container.to_owned(), probe));
    }

    fn signal(&mut self, container: &str, signal: Signal) {
        self.trace(format!("{signal:?} {container}"));
        self.deliver(container, signal);
    }

    fn kill_pod(&mut self) {
        self.trace("kill pod".to_owned());
    }

    fn arm_timer(&mut self, at: Time, timer: Timer) {
        // A sleep hook starts: the engine times it.
        if let crate::lifecycle::TimerKind::HookSleep {
            container, hook, ..
        } = &timer.kind
        {
            self.trace(format!("{hook:?} {container}"));
        }
        self.timers.insert(timer.clone(), at);
        self.seq += 1;
        self.queue.insert((at, self.seq), Event::TimerFired(timer));
    }

    fn finished(&mut self, phase: Phase) {
        self.trace(format!("finished {phase:?}"));
        self.finished = Some(phase);
    }
}

fn exit_text(event: &Event) -> String {
    match event {
        Event::Exited {
            status: ExitStatus::Code(c),
            oom_killed,
            ..
        } => {
            format!("{c}{}", if *oom_killed { " oom" } else { "" })
        }
        Event::Exited {
            status: ExitStatus::Signal(s),
            oom_killed,
            ..
        } => {
            format!("sig{s}{}", if *oom_killed { " oom" } else { "" })
        }
        _ => String::new(),
    }
}
