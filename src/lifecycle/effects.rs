//! What the engine's actions ask of the world, as one trait: the real
//! supervisor carries them out on the node (through the runtime), the
//! tests' simulated node in simulated time. Results come back to the
//! engine as events (a start's `Started`, a check's `ProbeResult`, a
//! timer's `TimerFired`).

use super::{Action, Hook, Phase, ProbeKind, Signal, Time, Timer};

pub trait Effects {
    /// Start a new run of the container, with this image.
    fn start(&mut self, container: &str, run: u64, restart_count: u32, image: &str);
    /// Run the container's hook check (never a sleep: the engine times
    /// those), for at most `timeout_ms` when given.
    fn run_hook(&mut self, container: &str, run: u64, hook: Hook, timeout_ms: Option<i64>);
    /// A probe of the container's current run starts: its checks will be
    /// asked for (`run_probe`) until `stop_probe`.
    fn start_probe(&mut self, container: &str, run: u64, probe: ProbeKind);
    /// Run one check of the probe, for at most `timeout_ms`.
    fn run_probe(&mut self, container: &str, run: u64, probe: ProbeKind, timeout_ms: i64);
    /// The probe stops: no more checks of it.
    fn stop_probe(&mut self, container: &str, probe: ProbeKind);
    fn signal(&mut self, container: &str, signal: Signal);
    /// Kill whatever is left in the pod.
    fn kill_pod(&mut self);
    /// Feed `Event::TimerFired(timer)` back at `at`.
    fn arm_timer(&mut self, at: Time, timer: Timer);
    fn finished(&mut self, phase: Phase);
}

/// Carries the engine's actions out, in order.
pub fn carry_out<E: Effects + ?Sized>(actions: impl IntoIterator<Item = Action>, fx: &mut E) {
    for action in actions {
        match action {
            Action::Start {
                container,
                run,
                restart_count,
                image,
            } => fx.start(&container, run, restart_count, &image),
            Action::RunHook {
                container,
                run,
                hook,
                timeout_ms,
            } => fx.run_hook(&container, run, hook, timeout_ms),
            Action::StartProbe {
                container,
                run,
                probe,
            } => fx.start_probe(&container, run, probe),
            Action::RunProbe {
                container,
                run,
                probe,
                timeout_ms,
            } => fx.run_probe(&container, run, probe, timeout_ms),
            Action::StopProbe { container, probe } => fx.stop_probe(&container, probe),
            Action::Signal { container, signal } => fx.signal(&container, signal),
            Action::KillPod => fx.kill_pod(),
            Action::ArmTimer { at, timer } => fx.arm_timer(at, timer),
            Action::Finished { phase } => fx.finished(phase),
        }
    }
}
