//! The plan for people: a short table and one line per figure saying why
//! it is what it is.

use std::fmt::Write;

use super::resources::{Figure, Source};
use super::{CgroupFiles, Plan};
use crate::manifest::{ContainerKind, Pod, Quantity};

pub fn render_text(pod: &Pod, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pod {} ({})", plan.pod, plan.qos_class.as_str());
    let _ = writeln!(out);
    let mut rows = vec![[
        "CONTAINER".to_owned(),
        "KIND".to_owned(),
        "CPU REQ".to_owned(),
        "CPU LIM".to_owned(),
        "MEM REQ".to_owned(),
        "MEM LIM".to_owned(),
        "OOM ADJ".to_owned(),
    ]];
    for c in &pod.containers {
        let r = &c.resources;
        rows.push([
            c.name.clone(),
            c.kind.as_str().to_owned(),
            opt(r.requests.get("cpu"), cpu),
            opt(r.limits.get("cpu"), cpu),
            opt(r.requests.get("memory"), memory),
            opt(r.limits.get("memory"), memory),
            plan.oom_score_adj
                .get(&c.name)
                .map_or("-".to_owned(), ToString::to_string),
        ]);
    }
    table(&mut out, &rows);
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "effective   requests: {}   limits: {}",
        pair(&plan.why.requests, |_| true),
        pair(&plan.why.limits, |name| !plan
            .why
            .unlimited_by
            .contains_key(name)),
    );
    for name in ["cpu", "memory"] {
        if let Some(f) = plan.why.requests.get(name) {
            let _ = writeln!(out, "  {name} request {}", why(name, f));
        }
        match plan.why.unlimited_by.get(name) {
            Some(missing) => {
                let _ = writeln!(
                    out,
                    "  {name} limit none: not set by {}",
                    missing.join(", ")
                );
            }
            None => {
                if let Some(f) = plan.why.limits.get(name) {
                    let _ = writeln!(out, "  {name} limit {}", why(name, f));
                }
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "cgroup      pod: {}", files(&plan.cgroup.pod));
    for c in &pod.containers {
        if let Some(f) = plan.cgroup.containers.get(&c.name) {
            let _ = writeln!(out, "            {}: {}", c.name, files(f));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "start       {}", start_order(pod));
    for reason in &plan.admission.reasons {
        let _ = writeln!(
            out,
            "\nwarning: the kubelet would not admit this pod here: {reason}"
        );
    }
    out
}

fn table(out: &mut String, rows: &[[String; 7]]) {
    let mut widths = [0; 7];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn opt(q: Option<&Quantity>, f: fn(Quantity) -> String) -> String {
    q.map_or("-".to_owned(), |q| f(*q))
}

fn cpu(q: Quantity) -> String {
    let millis = q.millis_ceil();
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Bytes in the largest binary unit that divides them exactly.
fn memory(q: Quantity) -> String {
    let bytes = q.value_ceil();
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes != 0 && bytes % (1i128 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn format_for(name: &str) -> fn(Quantity) -> String {
    match name {
        "cpu" => cpu,
        "memory" => memory,
        _ => |q: Quantity| q.to_string(),
    }
}

fn pair(
    figures: &std::collections::BTreeMap<String, Figure>,
    include: impl Fn(&str) -> bool,
) -> String {
    let parts: Vec<String> = ["cpu", "memory"]
        .iter()
        .map(|name| match figures.get(*name) {
            _ if !include(name) => format!("{name} none"),
            Some(f) => format!("{name} {}", format_for(name)(f.total)),
            None => format!("{name} 0"),
        })
        .collect();
    parts.join(", ")
}

fn terms(list: &[(String, Quantity)], f: fn(Quantity) -> String) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|(name, q)| format!("{name} ({})", f(*q)))
        .collect();
    parts.join(" + ")
}

fn why(name: &str, figure: &Figure) -> String {
    let f = format_for(name);
    let mut line = format!("{}: ", f(figure.total));
    match &figure.source {
        Source::Steady { apps, sidecars } => {
            let mut parts = Vec::new();
            if !apps.is_empty() {
                parts.push(format!("apps {}", terms(apps, f)));
            }
            if !sidecars.is_empty() {
                parts.push(format!("sidecars {}", terms(sidecars, f)));
            }
            if parts.is_empty() {
                parts.push("no container sets it".to_owned());
            }
            line.push_str(&parts.join(" + "));
        }
        Source::InitPeak {
            init,
            sidecars_before,
        } => {
            let _ = write!(line, "init peak: {} ({})", init.0, f(init.1));
            if !sidecars_before.is_empty() {
                let _ = write!(line, " + sidecars before it {}", terms(sidecars_before, f));
            }
            line.push_str(", more than apps + sidecars");
        }
    }
    if let Some(extra) = figure.overhead {
        let _ = write!(line, " + overhead ({})", f(extra));
    }
    line
}

fn files(files: &CgroupFiles) -> String {
    let parts: Vec<String> = files.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("  ")
}

fn start_order(pod: &Pod) -> String {
    let mut steps: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| c.kind != ContainerKind::App)
        .map(|c| format!("{} ({})", c.name, c.kind.as_str()))
        .collect();
    let apps: Vec<&str> = pod
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::App)
        .map(|c| c.name.as_str())
        .collect();
    let label = if apps.len() > 1 {
        "apps, together"
    } else {
        "app"
    };
    steps.push(format!("{} ({label})", apps.join(", ")));
    steps.join(" → ")
}
