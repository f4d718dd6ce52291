//! `podrun status NAME`: the pod's Kubernetes PodStatus, from its state on
//! disk (still there after the pod finished, until `podrun rm`).

use anyhow::Context;

use super::Failure;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
    Yaml,
}

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let state = super::load(&args.name)?;
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&state.status).context("encoding")?;
            println!("{json}");
        }
        Output::Yaml => {
            let yaml = serde_saphyr::to_string(&state.status).context("encoding")?;
            print!("{yaml}");
        }
        Output::Text => {
            let s = &state.status;
            println!(
                "pod/{}  {}",
                state.name,
                s.phase.as_deref().unwrap_or("Unknown")
            );
            let statuses = s
                .init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten());
            for c in statuses {
                let st = c.state.as_ref();
                let what = if let Some(t) = st.and_then(|s| s.terminated.as_ref()) {
                    format!(
                        "Terminated {} (exit code {})",
                        t.reason.as_deref().unwrap_or(""),
                        t.exit_code
                    )
                } else if st.and_then(|s| s.running.as_ref()).is_some() {
                    "Running".to_owned()
                } else if let Some(w) = st.and_then(|s| s.waiting.as_ref()) {
                    format!("Waiting {}", w.reason.as_deref().unwrap_or(""))
                } else {
                    "Unknown".to_owned()
                };
                println!(
                    "  {:<20} {what}  restarts={} ready={}",
                    c.name, c.restart_count, c.ready
                );
            }
            if let Some(reason) = &state.limits.reason {
                println!("  limits not enforced: {reason}");
            }
        }
    }
    Ok(())
}
