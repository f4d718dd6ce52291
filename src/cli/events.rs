//! `podrun events NAME`: the pod's Kubernetes-style events.

use std::time::Duration;

use podrun::api::events::{self, Record};
use podrun::api::state::State;

use super::{Failure, Output};

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// Keep printing new events until the pod has finished
    #[arg(short, long)]
    follow: bool,
    /// `json`: one JSON object per line
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

fn print(records: &[Record], output: Output, header: &mut bool) {
    for r in records {
        match output {
            Output::Json => println!("{}", serde_json::to_string(r).unwrap_or_default()),
            Output::Text => {
                if !*header {
                    println!(
                        "{:<20}   {:<7}   {:<12}   {:<28}   MESSAGE",
                        "TIME", "TYPE", "REASON", "OBJECT"
                    );
                    *header = true;
                }
                println!(
                    "{:<20}   {:<7}   {:<12}   {:<28}   {}",
                    r.time, r.type_, r.reason, r.object, r.message
                );
            }
        }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let state = super::load(&args.name)?;
    let mut header = false;
    let mut seen = 0;
    loop {
        let records = events::read(&state.dirs.run);
        print(
            &records[seen.min(records.len())..],
            args.output,
            &mut header,
        );
        seen = records.len();
        let finished = State::load(&args.name).map(|s| s.finished).unwrap_or(true);
        if !args.follow || finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if seen == 0 && args.output == Output::Text && !args.follow {
        eprintln!("No events found for pod {}.", args.name);
    }
    Ok(())
}
