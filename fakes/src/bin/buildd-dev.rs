//! `buildd-dev`: the local stack for trying buildd-agent with no account and
//! no network.
//!
//! `buildd-dev serve` runs the fake buildd server seeded with sample tasks
//! until Ctrl-C (with `--model`, also the fake Messages API scripted to work
//! them). `buildd-dev demo` (see `scripts/demo`) starts the stack, runs
//! `buildd-agent --until-idle` against it and shows what the server saw.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use buildd_fakes::buildd::{DEFAULT_KEY, FakeBuildd, TaskSeed};
use buildd_fakes::messages::{FakeClock, FakeMessages, FakeOptions, Script, ScriptFile, UsageMode};
use buildd_fakes::{bench, demo};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

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
        /// Also serve the scripted fake Messages API that works the sample tasks (run the
        /// agent with --max-tasks 1 so it takes them in order); on exit, say whether the
        /// script was followed
        #[arg(long, conflicts_with = "tasks")]
        model: bool,
        /// Write the sample project the sample tasks work on into this directory
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        #[command(flatten)]
        messages: MessagesArgs,
    },
    /// Run buildd-agent --until-idle against the fakes on a sample project and show the result
    Demo {
        /// The buildd-agent binary to run
        #[arg(long, default_value = "target/debug/buildd-agent")]
        agent: PathBuf,
        /// Keep the sample project and state in this directory (default: a temp dir, removed)
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Measure buildd-agent as whole processes against the fakes and print one table
    /// (see scripts/bench and BENCHMARKS.md)
    Bench {
        /// The buildd-agent binary to measure (the stripped release build)
        #[arg(long, default_value = "target/release/buildd-agent")]
        agent: PathBuf,
        /// Fewer runs and shorter waits: a smoke test of the harness, not numbers to record
        #[arg(long)]
        quick: bool,
        /// Run only one figure: size, startup, idle, twenty, cpu, thousand, sandbox or cost
        #[arg(long, value_name = "FIGURE")]
        only: Option<String>,
    },
}

/// How `serve` runs the fake Messages API beyond the sample script (for cost measurements:
/// e.g. the `claude` CLI pointed at it with `--model-script FILE --messages-mode computed`).
#[derive(ClapArgs)]
struct MessagesArgs {
    /// Serve the fake Messages API with this script instead of the sample one (JSON
    /// `{"api_key", "steps", "options"}`, see `buildd_fakes::messages::ScriptFile`); every
    /// conversation follows the whole script
    #[arg(long, value_name = "FILE")]
    model_script: Option<PathBuf>,
    /// Where reply usage comes from: `scripted` (as written) or `computed` (cache reads and
    /// writes from the breakpoints each request sends; the cost benchmark's mode)
    #[arg(long, value_name = "MODE")]
    messages_mode: Option<MessagesMode>,
    /// Sign thinking blocks over their prefix and refuse a changed prefix, as
    /// preserved-thinking models do
    #[arg(long)]
    bind_thinking: bool,
    /// Refuse any request that changes what its conversation sent before
    #[arg(long)]
    append_only: bool,
    /// A context window (tokens) for every model instead of the model's own
    #[arg(long, value_name = "TOKENS")]
    context_window: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MessagesMode {
    Scripted,
    Computed,
}

impl MessagesArgs {
    /// The script and options to serve (`None`: no script file; the sample one then).
    fn script(&self) -> anyhow::Result<Option<(Script, FakeOptions)>> {
        let Some(path) = &self.model_script else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file = ScriptFile::from_json(&text)
            .with_context(|| format!("{} is not a Messages API script", path.display()))?;
        let (script, mut options) = file.into_parts();
        options.pick = buildd_fakes::messages::Pick::PerConversation;
        Ok(Some((script, options)))
    }

    /// Apply the flags over `options` (flags win over the script file's options).
    fn apply(&self, mut options: FakeOptions) -> FakeOptions {
        match self.messages_mode {
            Some(MessagesMode::Scripted) => options.usage = UsageMode::Scripted,
            Some(MessagesMode::Computed) => options.usage = UsageMode::Computed,
            None => {}
        }
        options.bind_thinking |= self.bind_thinking;
        options.append_only |= self.append_only;
        options.context_window = self.context_window.or(options.context_window);
        // Processes run for real here: cache TTLs follow the wall clock.
        options.clock = FakeClock::real();
        options
    }
}

fn sample_tasks() -> Vec<TaskSeed> {
    demo::tasks()
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
        Cmd::Demo { agent, keep } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let ok = rt.block_on(run_demo(&agent, keep))?;
            if !ok {
                bail!("the demo did not end as expected (see above)");
            }
            Ok(())
        }
        Cmd::Bench { agent, quick, only } => {
            // One worker thread serves the fake Messages API; the fake buildd server has its
            // own. The agent gets the rest of the machine.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let rows = bench::run_all(&bench::Options { agent, quick, only }, &rt)?;
            bench::print_table(&rows);
            Ok(())
        }
        Cmd::Serve {
            addr,
            tasks,
            model,
            project,
            messages,
        } => serve(&addr, tasks, model, project, &messages),
    }
}

/// `buildd-dev serve`: the fake server (and the fake Messages API) until Ctrl-C.
fn serve(
    addr: &str,
    tasks: Option<PathBuf>,
    model: bool,
    project: Option<PathBuf>,
    messages: &MessagesArgs,
) -> anyhow::Result<()> {
    if let Some(dir) = project {
        write_project(&dir)?;
        println!("sample project in {}", dir.display());
    }
    // A busy port is one line, not the fake's panic (which suits tests, not a person).
    if let Err(e) = std::net::TcpListener::bind(addr) {
        anyhow::bail!(
            "cannot listen on {addr}: {e} (another `buildd-dev serve`? choose a port with --addr)"
        );
    }
    let server = FakeBuildd::start_on(addr);
    for t in load_tasks(tasks)? {
        server.add_task(t);
    }
    println!("fake buildd server on {}", server.url());
    println!(
        "  BUILDD_SERVER={} BUILDD_API_KEY={DEFAULT_KEY}",
        server.url()
    );
    let state_url = format!("{}/__fake/state", server.url());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let chosen = messages
            .script()?
            .or_else(|| model.then(|| (demo::script(), FakeOptions::default())));
        let mut model_env = String::new();
        let model = match chosen {
            Some((script, options)) => {
                let key = script.api_key.clone();
                let m = FakeMessages::start_with_options(script, messages.apply(options)).await?;
                println!("fake Messages API on {}", m.url());
                println!("  ANTHROPIC_BASE_URL={} ANTHROPIC_API_KEY={key}", m.url());
                model_env = format!(" ANTHROPIC_BASE_URL={} ANTHROPIC_API_KEY={key}", m.url());
                Some(m)
            }
            None => None,
        };
        // One command to paste (not indented like the settings lines above, which
        // scripts read as KEY=value pairs).
        println!(
            "run an agent against it, from this repository:\n  env BUILDD_SERVER={} BUILDD_API_KEY={DEFAULT_KEY}{model_env} target/debug/buildd-agent --until-idle --max-tasks 1",
            server.url()
        );
        // Last, so that scripts can wait for this line: everything is up.
        println!("state: {state_url}   (Ctrl-C to stop)");
        tokio::signal::ctrl_c().await?;
        let Some(m) = model else { return Ok(()) };
        let violations = m.violations();
        for v in &violations {
            println!("Messages API protocol violation: {v}");
        }
        println!("Messages API script steps left: {}", m.remaining_steps());
        let t = m.usage_totals();
        println!(
            "Messages API usage: {} replies, input {} + cache writes {} + cache reads {} \
             ({:.1} % read from cache), output {}",
            t.replies,
            t.input_tokens,
            t.cache_creation_input_tokens,
            t.cache_read_input_tokens,
            100.0 * t.cache_read_share(),
            t.output_tokens
        );
        if !violations.is_empty() {
            bail!("the fake Messages API saw protocol violations");
        }
        Ok(())
    })
}

/// Writes the sample project's files under `dir`.
fn write_project(dir: &Path) -> anyhow::Result<()> {
    for (path, text) in demo::PROJECT_FILES {
        let p = dir.join(path);
        let parent = p.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Start both fakes, run the agent on a fresh copy of the sample project, and
/// print what happened. Returns whether everything ended as the script says.
async fn run_demo(agent: &Path, keep: Option<PathBuf>) -> anyhow::Result<bool> {
    let agent = std::fs::canonicalize(agent).with_context(|| {
        format!(
            "no buildd-agent at {} (build it with `cargo build`)",
            agent.display()
        )
    })?;
    let temp = tempfile::tempdir()?;
    let root = match keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            std::fs::canonicalize(dir)?
        }
        None => temp.path().to_path_buf(),
    };
    let project = root.join("project");
    write_project(&project)?;

    let server = FakeBuildd::start();
    for t in demo::tasks() {
        server.add_task(t);
    }
    let model = FakeMessages::start(demo::script()).await?;
    println!("fake buildd server  {}", server.url());
    println!("fake Messages API   {}", model.url());
    println!("sample project      {}\n", project.display());

    let summary = root.join("summary.md");
    // An empty config file of its own, so the user's ~/.buildd/config.json plays no part.
    let config = root.join("config.json");
    std::fs::write(&config, "{}")?;
    let status = tokio::process::Command::new(&agent)
        .args([
            "--until-idle",
            "--max-tasks",
            "1",
            "--runner",
            "api",
            "--summary",
        ])
        .arg(&summary)
        .current_dir(&project)
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("GITHUB_ACTIONS")
        .env("BUILDD_SERVER", server.url())
        .env("BUILDD_API_KEY", DEFAULT_KEY)
        .env("BUILDD_CONFIG", &config)
        .env("BUILDD_STATE_DIR", root.join("state"))
        .env("ANTHROPIC_BASE_URL", model.url())
        .env("ANTHROPIC_API_KEY", demo::DEMO_ANTHROPIC_KEY)
        .env_remove("ANTHROPIC_MODEL")
        .stdin(Stdio::null())
        .status()
        .await
        .context("cannot start buildd-agent")?;

    println!(
        "\nbuildd-agent exited with {}\n",
        status.code().map_or("a signal".into(), |c| c.to_string())
    );
    println!(
        "{:<36} {:<10} {:>5} {:>8} {:>8} {:>9}  summary",
        "task", "status", "turns", "in", "out", "cost"
    );
    for w in server.workers() {
        let title = server
            .tasks()
            .into_iter()
            .find(|t| t.id == w.task_id)
            .map(|t| t.title)
            .unwrap_or_default();
        let f = |k: &str| w.fields.get(k).cloned().unwrap_or_default();
        let n = |k: &str| f(k).as_u64().map_or("-".into(), |v| v.to_string());
        println!(
            "{:<36} {:<10} {:>5} {:>8} {:>8} {:>9}  {}",
            title.chars().take(36).collect::<String>(),
            w.status,
            n("turns"),
            n("inputTokens"),
            n("outputTokens"),
            f("costUsd")
                .as_f64()
                .map_or("-".into(), |c| format!("${c:.4}")),
            f("summary").as_str().or(f("error").as_str()).unwrap_or("")
        );
    }
    println!("\nproject files after the run:");
    for (path, before) in demo::PROJECT_FILES {
        let after = std::fs::read_to_string(project.join(path)).unwrap_or_default();
        let mark = if after == *before {
            "unchanged"
        } else {
            "changed"
        };
        println!("  {path} ({mark})");
        if after != *before {
            for line in after.lines() {
                println!("    | {line}");
            }
        }
    }
    if temp.path() == root {
        println!("\n(the project and job summary are removed on exit; --keep DIR keeps them)");
    } else {
        println!("\njob summary written to {}", summary.display());
    }

    let violations: Vec<String> = server
        .violations()
        .into_iter()
        .chain(model.violations())
        .collect();
    for v in &violations {
        println!("protocol violation: {v}");
    }
    let all_done = server.tasks().iter().all(|t| t.status == "completed");
    let ok = status.success() && all_done && violations.is_empty() && model.remaining_steps() == 0;
    if ok {
        println!("demo OK: every task completed, no protocol violations");
    }
    model.shutdown().await;
    Ok(ok)
}
