//! `podrun ps`: the pods on this machine, as `kubectl get pods` lists them
//! (NAME READY STATUS RESTARTS AGE; sidecars count in READY).

use anyhow::Context;
use podrun::api::ContainerStatus;
use podrun::api::state::{self, State};
use serde::Serialize;

use super::Failure;

/// `-o`: kubectl's table, its wide form (with IP and NODE), or JSON.
#[derive(Clone, Copy, Default, clap::ValueEnum)]
enum Output {
    #[default]
    Text,
    Wide,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    ready: String,
    status: String,
    restarts: i32,
    age_seconds: Option<i64>,
    phase: String,
    uid: String,
    /// `status.podIP`, once the pod has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    /// `status.podIPs`.
    ips: Vec<String>,
}

fn waiting_or_terminated(s: &ContainerStatus) -> Option<String> {
    let st = s.state.as_ref()?;
    if let Some(w) = &st.waiting {
        return w.reason.clone();
    }
    st.terminated
        .as_ref()
        .map(|t| t.reason.clone().unwrap_or_else(|| "Error".to_owned()))
}

/// kubectl's STATUS column, for the cases a podrun pod can be in.
fn status_column(state: &State) -> String {
    let s = &state.status;
    let phase = s.phase.clone().unwrap_or_else(|| "Unknown".to_owned());
    if let Some(reason) = &s.reason {
        return reason.clone();
    }
    if state.finished {
        // The first container that failed says why, as kubectl shows it.
        let failed = s
            .init_container_statuses
            .iter()
            .flatten()
            .filter(|c| !state.sidecars.contains(&c.name))
            .chain(s.container_statuses.iter().flatten())
            .find_map(|c| {
                let t = c.state.as_ref()?.terminated.as_ref()?;
                (t.exit_code != 0).then(|| t.reason.clone().unwrap_or_else(|| "Error".to_owned()))
            });
        return match phase.as_str() {
            "Succeeded" => "Completed".to_owned(),
            _ => failed.unwrap_or_else(|| "Error".to_owned()),
        };
    }
    let inits: Vec<&ContainerStatus> = s.init_container_statuses.iter().flatten().collect();
    let regular: Vec<&&ContainerStatus> = inits
        .iter()
        .filter(|c| !state.sidecars.contains(&c.name))
        .collect();
    for c in &inits {
        let sidecar = state.sidecars.contains(&c.name);
        let st = c.state.as_ref();
        let done = st
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        if sidecar && c.started == Some(true) || done {
            continue;
        }
        if let Some(t) = st.and_then(|s| s.terminated.as_ref()) {
            return format!("Init:{}", t.reason.as_deref().unwrap_or("Error"));
        }
        if let Some(w) = st.and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| *r != "PodInitializing")
        {
            return format!("Init:{reason}");
        }
        let done = regular
            .iter()
            .filter(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0)
            })
            .count();
        return format!("Init:{done}/{}", regular.len());
    }
    let apps: Vec<&ContainerStatus> = s.container_statuses.iter().flatten().collect();
    let mut status = phase;
    for c in apps.iter().rev() {
        let running = c.state.as_ref().is_some_and(|st| st.running.is_some());
        if !running && let Some(reason) = waiting_or_terminated(c) {
            status = reason;
        }
    }
    status
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn row(state: &State) -> Row {
    let s = &state.status;
    let counted: Vec<&ContainerStatus> = s
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| state.sidecars.contains(&c.name))
        .chain(s.container_statuses.iter().flatten())
        .collect();
    let ready = counted
        .iter()
        .filter(|c| c.ready && c.state.as_ref().is_some_and(|st| st.running.is_some()))
        .count();
    let restarts = s
        .init_container_statuses
        .iter()
        .flatten()
        .chain(s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Row {
        name: state.name.clone(),
        ready: format!("{ready}/{}", counted.len()),
        status: status_column(state),
        restarts,
        age_seconds: s
            .start_time
            .as_ref()
            .map(|t| (now - t.0.as_second()).max(0)),
        phase: s.phase.clone().unwrap_or_default(),
        uid: state.uid.clone(),
        ip: s.pod_ip.clone(),
        ips: s.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect(),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let rows: Vec<Row> = state::names()
        .iter()
        .filter_map(|name| State::load(name).ok())
        .map(|s| row(&s))
        .collect();
    match args.output {
        Output::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).context("encoding")?
            );
        }
        Output::Text | Output::Wide => {
            if rows.is_empty() {
                eprintln!("No pods found.");
                return Ok(());
            }
            let wide = matches!(args.output, Output::Wide);
            let node = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
            let ip_width = rows
                .iter()
                .filter_map(|r| r.ip.as_ref().map(String::len))
                .max()
                .unwrap_or(0)
                .max(6);
            let mut header = format!(
                "{:<width$}   {:<5}   {:<16}   {:<8}   {:<5}",
                "NAME", "READY", "STATUS", "RESTARTS", "AGE"
            );
            if wide {
                header.push_str(&format!("   {:<ip_width$}   NODE", "IP"));
            }
            println!("{}", header.trim_end());
            for r in rows {
                let mut line = format!(
                    "{:<width$}   {:<5}   {:<16}   {:<8}   {:<5}",
                    r.name,
                    r.ready,
                    r.status,
                    r.restarts,
                    r.age_seconds.map_or_else(|| "<unknown>".to_owned(), age)
                );
                if wide {
                    let ip = r.ip.as_deref().unwrap_or("<none>");
                    line.push_str(&format!("   {ip:<ip_width$}   {node}"));
                }
                println!("{}", line.trim_end());
            }
        }
    }
    Ok(())
}
