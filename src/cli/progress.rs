//! A pull's progress on stderr: a bar per layer, redrawn in place, on a
//! terminal; otherwise a line when each layer starts and ends, as skopeo
//! prints it to a pipe.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use podrun::image::{Progress, short_digest};

const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 30;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

pub struct PullProgress {
    terminal: bool,
    state: Mutex<State>,
    /// Where a plain line goes.
    line: Sink,
}

#[derive(Default)]
struct State {
    layers: Vec<Layer>,
    /// Lines of bars drawn last time, to move back over.
    drawn: usize,
    last: Option<Instant>,
    /// The supervisor's output count when the bars were drawn: anything
    /// written since, they are drawn afresh below it.
    epoch: u64,
}

struct Layer {
    digest: String,
    done: u64,
    total: u64,
    cached: bool,
}

impl PullProgress {
    /// Bars on stderr when it is a terminal, else lines.
    pub fn stderr() -> PullProgress {
        PullProgress {
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
            line: Box::new(|l| eprintln!("{l}")),
        }
    }

    /// Plain lines, each given to `line`.
    pub fn lines(line: Sink) -> PullProgress {
        PullProgress {
            terminal: false,
            state: Mutex::new(State::default()),
            line,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for PullProgress {
    fn resolved(&self, reference: &str, source: &str, digest: &str) {
        let mut s = self.lock();
        (self.line)(&format!("Pulling {reference} from {source} ({digest})"));
        // The bars start again under the line, without the finished ones
        // of earlier pulls.
        s.drawn = 0;
        s.layers.retain(|l| l.done < l.total && !l.cached);
    }

    fn layer(&self, digest: &str, done: u64, total: u64, cached: bool) {
        let mut s = self.lock();
        let known = s.layers.iter().position(|l| l.digest == digest);
        let i = match known {
            Some(i) => i,
            None => {
                s.layers.push(Layer {
                    digest: digest.to_owned(),
                    done: 0,
                    total,
                    cached,
                });
                s.layers.len() - 1
            }
        };
        let was = s.layers[i].done;
        s.layers[i].done = done;
        s.layers[i].cached = cached;
        if self.terminal {
            let finished = done == total;
            let due = s.last.is_none_or(|t| t.elapsed() >= REDRAW);
            if due || finished || known.is_none() {
                draw(&mut s);
            }
        } else if cached {
            (self.line)(&format!("Layer {} already present", short_digest(digest)));
        } else if known.is_none() {
            (self.line)(&format!(
                "Copying layer {} ({})",
                short_digest(digest),
                human_size(total)
            ));
        } else if done == total && was != total {
            (self.line)(&format!("Copying layer {} done", short_digest(digest)));
        }
    }

    fn storing(&self) {
        let mut s = self.lock();
        if self.terminal {
            draw(&mut s);
            s.drawn = 0;
        }
        (self.line)("Unpacking and storing");
    }
}

fn draw(s: &mut State) {
    let mut out = String::new();
    let epoch = podrun::supervisor::echo::OUTPUT.load(std::sync::atomic::Ordering::Relaxed);
    if epoch != s.epoch {
        s.drawn = 0;
        s.epoch = epoch;
    }
    if s.drawn > 0 {
        out.push_str(&format!("\x1b[{}A", s.drawn));
    }
    for l in &s.layers {
        let fraction = if l.total == 0 {
            1.0
        } else {
            l.done as f64 / l.total as f64
        };
        let filled = (fraction * BAR as f64) as usize;
        let state = if l.cached {
            "already present".to_owned()
        } else if l.done == l.total {
            format!("{} done", human_size(l.total))
        } else {
            format!("{} / {}", human_size(l.done), human_size(l.total))
        };
        out.push_str(&format!(
            "\r\x1b[2K{} [{}{}] {state}\n",
            short_digest(&l.digest),
            "=".repeat(filled),
            " ".repeat(BAR - filled.min(BAR)),
        ));
    }
    s.drawn = s.layers.len();
    s.last = Some(Instant::now());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

/// Decimal units with three significant digits, as Docker prints sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if unit == 0 || value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    // "4.20MB" reads as Docker's "4.2MB".
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}
