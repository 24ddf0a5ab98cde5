//! `buildd-dev`: the local stack for trying buildd-agent with no account and
//! no network.
//!
//! `buildd-dev serve` runs the fake buildd server seeded with sample tasks
//! until Ctrl-C. `buildd-dev demo` (see `scripts/demo`) starts the stack, runs
//! `buildd-agent --until-idle` against it and shows what the server saw.

use std::path::PathBuf;

use buildd_fakes::buildd::{DEFAULT_KEY, FakeBuildd, TaskSeed};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "buildd-dev",
    about = "Local fake buildd stack for demos and manual testing"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the fake buildd server until interrupted
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
        /// JSON file with an array of tasks to seed (default: the sample tasks)
        #[arg(long)]
        tasks: Option<PathBuf>,
    },
}

fn sample_tasks() -> Vec<TaskSeed> {
    vec![
        TaskSeed {
            title: "Add a greeting to the README".into(),
            description: Some("The README should say hello to new contributors.".into()),
            priority: 2,
            ..Default::default()
        },
        TaskSeed {
            title: "Fix the off-by-one in the counter".into(),
            description: Some("count.txt says 41; it should say 42.".into()),
            priority: 1,
            ..Default::default()
        },
        TaskSeed {
            title: "Report the project's line count".into(),
            description: Some("Run wc -l on the sources and summarise.".into()),
            ..Default::default()
        },
    ]
}

fn load_tasks(path: Option<PathBuf>) -> anyhow::Result<Vec<TaskSeed>> {
    match path {
        None => Ok(sample_tasks()),
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a JSON array of tasks: {e}", p.display()))
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Cmd::Serve { addr, tasks } => {
            let server = FakeBuildd::start_on(&addr);
            for t in load_tasks(tasks)? {
                server.add_task(t);
            }
            println!("fake buildd server on {}", server.url());
            println!(
                "  BUILDD_SERVER={} BUILDD_API_KEY={DEFAULT_KEY}",
                server.url()
            );
            println!("  state: {}/__fake/state   (Ctrl-C to stop)", server.url());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(tokio::signal::ctrl_c())?;
            Ok(())
        }
    }
}
