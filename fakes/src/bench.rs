//! Whole-process benchmarks of `buildd-agent` against the local fakes.
//!
//! `buildd-dev bench --agent target/release/buildd-agent` (run by `scripts/bench`) starts the
//! real binary as a child, as a user would, against a fake buildd server and a fake Messages
//! API whose replies are scripted and instant, and prints one Markdown table: each figure of
//! issue 9, its target, what was measured, and whether the target was met.
//!
//! How each figure is taken (the harness is in-process so that it can see both ends):
//! - times are `Instant`s in this process: just before `spawn` and when the fake buildd server
//!   handles the first claim, or when `wait` returns;
//! - agent CPU is `getrusage(RUSAGE_CHILDREN)` before and after the agent is reaped: it counts
//!   the agent's own threads (and any process it ran; the CPU scripts use in-process tools only
//!   so there are none), never the fakes, which are threads of this process;
//! - memory is `VmRSS` / `VmHWM` read from `/proc/<pid>/status` while the agent runs.
//!
//! Every run also checks its own result (all tasks completed, no protocol violation in either
//! fake) so that a fast number from a broken run is never reported as a pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::json;

mod cost;
mod sandbox;

use crate::buildd::{DEFAULT_KEY, FakeBuildd, TaskSeed};
use crate::messages::{
    FakeClock, FakeMessages, FakeOptions, Pick, Script, ScriptUsage, Step, UsageMode,
};

/// The Anthropic key the benchmark's fake Messages API expects.
const KEY: &str = "sk-ant-bench-key-not-a-real-one-0000000";

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `buildd-agent` binary under test (the stripped release build).
    pub agent: PathBuf,
    /// Fewer repetitions and shorter waits: a smoke run, not numbers to record.
    pub quick: bool,
    /// Run only this figure (`size`, `startup`, `idle`, `twenty`, `cpu`, `thousand`,
    /// `sandbox`, `cost`), e.g.
    /// to profile it with `--agent` pointing at a wrapper that runs the agent under a profiler.
    pub only: Option<String>,
}

/// The fake Messages API as a cost benchmark needs it (issue 15): usage computed from the
/// breakpoints each request sends, thinking blocks bound to their prefix (a rewritten
/// history is refused, as on today's preserved-thinking models), every conversation
/// following the whole script, and cache TTLs on the wall clock.
pub fn cost_options() -> FakeOptions {
    FakeOptions {
        pick: Pick::PerConversation,
        usage: UsageMode::Computed,
        bind_thinking: true,
        clock: FakeClock::real(),
        ..FakeOptions::default()
    }
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: &'static str,
    pub target: &'static str,
    pub measured: String,
    /// `None` when the run itself went wrong (the number means nothing).
    pub met: Option<bool>,
}

/// Print rows as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| figure | target | measured | met |");
    println!("|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "run failed",
        };
        println!("| {} | {} | {} | {met} |", r.figure, r.target, r.measured);
    }
}

/// Run every whole-process figure. `model` must live on a tokio runtime that keeps running
/// while this blocks (the caller's).
pub fn run_all(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Row>> {
    let agent = std::path::absolute(&opts.agent)?;
    if !agent.is_file() {
        bail!(
            "no agent binary at {} (build it with `cargo build --release`)",
            agent.display()
        );
    }
    let opts = Options {
        agent,
        ..opts.clone()
    };
    let want = |name: &str| opts.only.as_deref().is_none_or(|o| o == name);
    let mut rows = Vec::new();
    if want("size") {
        rows.push(binary_size(&opts.agent)?);
    }
    if want("startup") {
        rows.extend(startup(&opts)?);
    }
    if want("idle") {
        rows.push(idle_memory(&opts)?);
    }
    if want("twenty") {
        rows.extend(twenty_running(&opts, rt)?);
    }
    if want("cpu") {
        rows.push(cpu_per_task(&opts, rt)?);
    }
    if want("thousand") {
        rows.push(thousand_tasks(&opts, rt)?);
    }
    if want("sandbox") {
        rows.extend(sandbox::overhead(&opts, rt)?);
    }
    if want("cost") {
        rows.extend(cost::input_cost(&opts, rt)?);
    }
    Ok(rows)
}

fn binary_size(agent: &Path) -> anyhow::Result<Row> {
    let len = std::fs::metadata(agent)?.len();
    Ok(Row {
        figure: "release binary, stripped, linux x86_64",
        target: "< 10 MB",
        measured: format!("{:.3} MB ({len} bytes)", len as f64 / 1e6),
        met: Some(len < 10_000_000),
    })
}

/// A scratch directory for one agent run: home, checkout, state, log.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = tempfile::tempdir()?;
        for sub in ["home", "work", "state"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        // The file the scripted model views: small, like a README.
        std::fs::write(
            dir.path().join("work/README.md"),
            "# bench\n\nA file the scripted model reads.\n".repeat(20),
        )?;
        Ok(Scratch { dir })
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// The agent with a clean environment, the api runner and the default intervals, unless
    /// `env` overrides them.
    fn agent(
        &self,
        agent: &Path,
        server: &FakeBuildd,
        model_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Command> {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        let mut cmd = Command::new(agent);
        // The API runner unless the run names one.
        if !args.contains(&"--runner") {
            cmd.args(["--runner", "api"]);
        }
        cmd.env_clear()
            .current_dir(d.join("work"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", d.join("home"))
            .env("BUILDD_STATE_DIR", d.join("state"))
            .env("BUILDD_SERVER", server.url())
            .env("BUILDD_API_KEY", DEFAULT_KEY)
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", model_url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    /// The end of the agent's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// The agent's user+system CPU so far, counted over reaped children of this process.
fn children_cpu() -> anyhow::Result<Duration> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(d(u.user_time()) + d(u.system_time()))
}

/// `VmRSS` and `VmHWM` of a live process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Fail with the agent's log if a run went wrong.
fn check_run(
    what: &str,
    scratch: &Scratch,
    server: &FakeBuildd,
    model: Option<&FakeMessages>,
    tasks: usize,
    status: std::process::ExitStatus,
) -> anyhow::Result<()> {
    let mut problems: Vec<String> = server.violations();
    if let Some(m) = model {
        problems.extend(m.violations());
    }
    let done = server
        .tasks()
        .iter()
        .filter(|t| t.status == "completed")
        .count();
    if done != tasks {
        problems.push(format!("{done} of {tasks} tasks completed"));
    }
    if !status.success() {
        problems.push(format!("agent exited with {status}"));
    }
    if !problems.is_empty() {
        bail!(
            "{what}: the run went wrong: {}\nagent log (tail):\n{}",
            problems.join("; "),
            scratch.log_tail()
        );
    }
    Ok(())
}

/// exec → first claim, and `--until-idle` exec → exit, on an empty queue.
fn startup(opts: &Options) -> anyhow::Result<Vec<Row>> {
    let runs = if opts.quick { 10 } else { 50 };
    let scratch = Scratch::new()?;
    let server = FakeBuildd::start();
    // Nothing answers here: an empty queue means the model is never asked.
    let model_url = "http://127.0.0.1:9";
    let mut to_claim = Vec::new();
    let mut to_exit = Vec::new();
    // One unmeasured run first, so that every measured run finds the binary in the page cache.
    for i in 0..=runs {
        let before = server.claims().len();
        let mut cmd = scratch.agent(&opts.agent, &server, model_url, &["--until-idle"], &[])?;
        let t0 = Instant::now();
        let status = cmd.spawn()?.wait()?;
        let exited = t0.elapsed();
        check_run("startup", &scratch, &server, None, 0, status)?;
        let claims = server.claims();
        let Some(first) = claims.get(before) else {
            bail!("startup: the agent exited without claiming");
        };
        if i > 0 {
            to_claim.push(first.at.saturating_duration_since(t0));
            to_exit.push(exited);
        }
    }
    let (claim, exit) = (median(to_claim.clone()), median(to_exit.clone()));
    let range = |v: &[Duration]| {
        format!(
            "{}–{}",
            ms(v.iter().min().copied().unwrap_or_default()),
            ms(v.iter().max().copied().unwrap_or_default())
        )
    };
    Ok(vec![
        Row {
            figure: "exec → first claim request received by the server",
            target: "< 5 ms median",
            measured: format!("{} median ({runs} runs, {})", ms(claim), range(&to_claim)),
            met: Some(claim < Duration::from_millis(5)),
        },
        Row {
            figure: "`--until-idle` on an empty queue, exec → exit",
            target: "< 20 ms median",
            measured: format!("{} median ({runs} runs, {})", ms(exit), range(&to_exit)),
            met: Some(exit < Duration::from_millis(20)),
        },
    ])
}

/// The daemon's resident memory after polling an empty queue for 60 s (1 s poll interval, so
/// that it really polls: 60 claims rather than the default 6).
fn idle_memory(opts: &Options) -> anyhow::Result<Row> {
    let wait = Duration::from_secs(if opts.quick { 10 } else { 60 });
    let scratch = Scratch::new()?;
    let server = FakeBuildd::start();
    let mut child = scratch
        .agent(
            &opts.agent,
            &server,
            "http://127.0.0.1:9",
            &[],
            &[("BUILDD_POLL_INTERVAL", "1s")],
        )?
        .spawn()?;
    std::thread::sleep(wait);
    let mem = memory_kib(child.id());
    let polls = server.claims().len();
    stop(&mut child)?;
    let Some((rss, hwm)) = mem else {
        bail!(
            "idle daemon: it exited early\nagent log (tail):\n{}",
            scratch.log_tail()
        );
    };
    Ok(Row {
        figure: "daemon idle resident memory after 60 s of polling",
        target: "< 10 MB",
        measured: format!(
            "{:.1} MB RSS (peak {:.1} MB) after {}s, {polls} claims",
            rss as f64 * 1024.0 / 1e6,
            hwm as f64 * 1024.0 / 1e6,
            wait.as_secs()
        ),
        met: Some(rss * 1024 < 10_000_000),
    })
}

/// SIGTERM, then wait.
fn stop(child: &mut Child) -> anyhow::Result<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    child.wait()?;
    Ok(())
}

fn usage() -> ScriptUsage {
    ScriptUsage {
        input_tokens: 1000,
        output_tokens: 50,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
    }
}

/// A scripted task of `turns` model turns: `turns - 1` tool calls made by `tool(i)`, then a
/// final text reply.
fn script(turns: usize, tool: impl Fn(usize) -> (&'static str, serde_json::Value)) -> Script {
    let mut steps: Vec<Step> = (0..turns.saturating_sub(1))
        .map(|i| {
            let (name, input) = tool(i);
            Step::Reply {
                content: vec![
                    json!({"type":"text","text":format!("Step {i}: looking.")}),
                    json!({"type":"tool_use","id":format!("toolu_b{i}"),"name":name,"input":input}),
                ],
                stop_reason: "tool_use".into(),
                usage: usage(),
                tiny_chunks: false,
            }
        })
        .collect();
    steps.push(Step::text("Done: the task is finished.", usage()));
    Script {
        api_key: KEY.into(),
        steps,
    }
}

/// `turns` turns of viewing README.md: in-process tools only, so all CPU is the agent's.
fn viewing_script(turns: usize) -> Script {
    script(turns, |_| {
        (
            "str_replace_based_edit_tool",
            json!({"command":"view","path":"README.md"}),
        )
    })
}

fn seed(server: &FakeBuildd, n: usize) {
    for i in 0..n {
        server.add_task(TaskSeed {
            title: format!("Benchmark task {i}"),
            description: Some("Read README.md and report.".into()),
            ..Default::default()
        });
    }
}

/// 20 tasks at once, each 10 turns whose tools sleep 0.5 s (so the tasks overlap and take
/// seconds): peak resident memory while they run, and the server requests each task cost
/// with the default progress (2 s) and lease (30 s) intervals.
fn twenty_running(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Row>> {
    const TASKS: usize = 20;
    let scratch = Scratch::new()?;
    let server = FakeBuildd::start();
    seed(&server, TASKS);
    let model = rt.block_on(FakeMessages::start_with(
        script(10, |_| ("bash", json!({"command":"sleep 0.5"}))),
        Pick::PerConversation,
    ))?;
    let mut child = scratch
        .agent(
            &opts.agent,
            &server,
            &model.url(),
            &["--until-idle", "--max-tasks", "20"],
            &[],
        )?
        .spawn()?;
    let pid = child.id();
    let (mut peak_rss_all_running, mut hwm, mut most_running) = (0u64, 0u64, 0usize);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let running = server
            .workers()
            .iter()
            .filter(|w| w.status == "running")
            .count();
        if let Some((rss, h)) = memory_kib(pid) {
            hwm = hwm.max(h);
            if running == TASKS {
                peak_rss_all_running = peak_rss_all_running.max(rss);
            }
        }
        most_running = most_running.max(running);
        std::thread::sleep(Duration::from_millis(20));
    };
    check_run("20 tasks", &scratch, &server, Some(&model), TASKS, status)?;
    if most_running < TASKS {
        bail!("20 tasks: at most {most_running} ran at once");
    }

    // Requests per task: its share of the claims plus its own updates, against what the
    // target allows: one per 2 s of task time (first to last update) plus its status
    // changes, counting the claim (pending → assigned) as one, with running and the end.
    let claims = server.claims().len();
    let requests = server.requests();
    let mut worst: Option<(f64, f64, f64, usize)> = None; // (requests, allowed, secs, updates)
    for w in server.workers() {
        let path = format!("/api/workers/{}", w.id);
        let times: Vec<Instant> = requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.at)
            .collect();
        let (Some(first), Some(last)) = (times.first(), times.last()) else {
            bail!("20 tasks: worker {} sent no updates", w.id);
        };
        let secs = last.saturating_duration_since(*first).as_secs_f64();
        let status_changes = 1 + w
            .updates
            .iter()
            .filter(|u| u.get("status").is_some())
            .count();
        let sent = times.len() as f64 + claims as f64 / TASKS as f64;
        let allowed = secs / 2.0 + status_changes as f64;
        if worst.is_none_or(|(s, a, _, _)| sent - allowed > s - a) {
            worst = Some((sent, allowed, secs, times.len()));
        }
    }
    let Some((sent, allowed, secs, updates)) = worst else {
        bail!("20 tasks: no workers");
    };
    rt.block_on(model.shutdown());
    let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
    Ok(vec![
        Row {
            figure: "resident memory with 20 tasks running (scripted model)",
            target: "< 40 MB",
            measured: format!(
                "{:.1} MB RSS with all 20 running (peak over the run {:.1} MB)",
                mb(peak_rss_all_running),
                mb(hwm)
            ),
            met: Some(hwm * 1024 < 40_000_000),
        },
        Row {
            figure: "server requests per 10-turn task (claim share + updates)",
            target: "≤ 1 per 2 s of task time + status changes",
            measured: format!(
                "worst task: {sent:.2} requests ({updates} updates + {claims}/{TASKS} claims) in {secs:.1} s; {allowed:.2} allowed"
            ),
            met: Some(sent <= allowed),
        },
    ])
}

/// Drain `tasks` tasks of `script`, the agent run with `args`; the wall time and the
/// agent's user+sys CPU, after checking that every task completed without a protocol
/// violation, and the run's scratch directory (its log) for further checks.
fn timed_drain(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
    label: &str,
    script: Script,
    tasks: usize,
    args: &[&str],
) -> anyhow::Result<(Duration, Duration, Scratch)> {
    let scratch = Scratch::new()?;
    let server = FakeBuildd::start();
    seed(&server, tasks);
    let model = rt.block_on(FakeMessages::start_with(script, Pick::PerConversation))?;
    let mut cmd = scratch.agent(&opts.agent, &server, &model.url(), args, &[])?;
    let cpu0 = children_cpu()?;
    let t0 = Instant::now();
    let status = cmd.spawn()?.wait()?;
    let wall = t0.elapsed();
    let cpu = children_cpu()?.saturating_sub(cpu0);
    check_run(label, &scratch, &server, Some(&model), tasks, status)?;
    rt.block_on(model.shutdown());
    Ok((wall, cpu, scratch))
}

/// Agent CPU per scripted 10-turn task, with replies that come back at once.
fn cpu_per_task(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let tasks = if opts.quick { 30 } else { 200 };
    let args = ["--until-idle", "--max-tasks", "10"];
    let (wall, cpu, _) = timed_drain(opts, rt, "cpu", viewing_script(10), tasks, &args)?;
    let per = cpu / u32::try_from(tasks)?;
    Ok(Row {
        figure: "agent CPU per task, scripted 10-turn task, excluding model time",
        target: "< 5 ms",
        measured: format!(
            "{} ({tasks} tasks: {} user+sys in {} wall)",
            ms(per),
            ms(cpu),
            ms(wall)
        ),
        met: Some(per < Duration::from_millis(5)),
    })
}

/// 1000 scripted 3-turn tasks through `--until-idle --max-tasks 50`, exec → exit.
fn thousand_tasks(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let tasks = if opts.quick { 200 } else { 1000 };
    let args = ["--until-idle", "--max-tasks", "50"];
    let (wall, cpu, _) = timed_drain(opts, rt, "1000 tasks", viewing_script(3), tasks, &args)?;
    // The quick run does fewer tasks; scale the target with it.
    let limit = Duration::from_secs_f64(15.0 * tasks as f64 / 1000.0);
    Ok(Row {
        figure: "1000 tasks through `--until-idle --max-tasks 50`, scripted 3-turn model",
        target: "< 15 s wall",
        measured: format!(
            "{:.2} s wall for {tasks} tasks (agent CPU {:.2} s)",
            wall.as_secs_f64(),
            cpu.as_secs_f64()
        ),
        met: Some(wall < limit),
    })
}
