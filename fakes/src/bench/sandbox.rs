//! What confining the model's commands costs (issue 16): the same whole-process runs with
//! `--sandbox off` and `--sandbox auto` (confined, where the kernel has Landlock), alternated
//! so that a change in the machine's load hits both, and compared as medians.
//!
//! - **start-up**: exec → first claim on an empty queue (the sandbox is decided at start:
//!   one `landlock_create_ruleset` probe);
//! - **per task**: a 1-turn task (a final answer, no tool call), one at a time: everything a
//!   task costs besides its commands, so the difference is preparing the task's sandbox (its
//!   private temp dir and git config, a ruleset of every allowed path) and removing it;
//! - **per command**: a task of 50 `bash` calls running `cat README.md` (a `fork` and `exec`
//!   inside the task's one shell, and file opens Landlock checks), one task at a time.
//!
//! Every auto run must have confined (its log says so), or the figure is an error.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::{Options, Row, Scratch, check_run, median, ms, script, timed_drain, viewing_script};
use crate::buildd::FakeBuildd;
use crate::messages::Script;

/// The modes compared, in the order each round runs them.
const MODES: [&str; 2] = ["off", "auto"];
/// The start-up line of a confining agent.
const CONFINED: &str = "model commands confined to the worktree";
/// Bash calls per task of the per-command figure.
const COMMANDS: usize = 50;
/// What "not visible next to a model turn" is taken to mean: under 1% of a one-second turn.
const INVISIBLE: Duration = Duration::from_millis(10);

/// The three rows.
pub(super) fn overhead(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Row>> {
    Ok(vec![
        startup(opts)?,
        per_task(opts, rt)?,
        per_command(opts, rt)?,
    ])
}

/// `--sandbox <mode>` for the agent, and a check that `auto` really confined.
fn check_mode(scratch: &Scratch, mode: &str) -> anyhow::Result<()> {
    let log = std::fs::read_to_string(scratch.log()).unwrap_or_default();
    if mode == "auto" && !log.contains(CONFINED) {
        bail!(
            "sandbox: --sandbox auto did not confine here, nothing to compare\n{}",
            scratch.log_tail()
        );
    }
    Ok(())
}

/// A row comparing the two medians; the difference is signed (noise can favour either).
fn row(figure: &'static str, unit: &str, off: Duration, auto: Duration, how: String) -> Row {
    let diff = if auto >= off {
        format!("+{}", ms(auto - off))
    } else {
        format!("−{}", ms(off - auto))
    };
    Row {
        figure,
        target: "not visible next to a model turn (< 10 ms)",
        measured: format!("off {} / auto {} {unit}: {diff} ({how})", ms(off), ms(auto)),
        met: Some(auto.saturating_sub(off) < INVISIBLE),
    }
}

fn startup(opts: &Options) -> anyhow::Result<Row> {
    let runs = if opts.quick { 10 } else { 50 };
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let scratch = [Scratch::new()?, Scratch::new()?];
    let server = FakeBuildd::start();
    for i in 0..=runs {
        for (m, mode) in MODES.iter().enumerate() {
            let before = server.claims().len();
            let mut cmd = scratch[m].agent(
                &opts.agent,
                &server,
                "http://127.0.0.1:9",
                &["--until-idle", "--sandbox", mode],
                &[],
            )?;
            let t0 = Instant::now();
            let status = cmd.spawn()?.wait()?;
            check_run("sandbox start-up", &scratch[m], &server, None, 0, status)?;
            let Some(first) = server.claims().get(before).map(|c| c.at) else {
                bail!("sandbox start-up: the agent exited without claiming");
            };
            // The first round only warms the page cache.
            if i > 0 {
                times[m].push(first.saturating_duration_since(t0));
            }
        }
    }
    check_mode(&scratch[1], "auto")?;
    let [off, auto] = times.map(median);
    Ok(row(
        "sandbox: exec → first claim, `--sandbox off` vs `auto`",
        "median",
        off,
        auto,
        format!("{runs} runs each, alternated"),
    ))
}

/// Drain `tasks` tasks of `script` one at a time under `--sandbox <mode>`; wall and agent CPU.
fn drain(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
    script: &Script,
    tasks: usize,
    mode: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let args = ["--until-idle", "--max-tasks", "1", "--sandbox", mode];
    let (wall, cpu, scratch) = timed_drain(opts, rt, "sandbox", script.clone(), tasks, &args)?;
    check_mode(&scratch, mode)?;
    Ok((wall, cpu))
}

/// Per-unit medians over `rounds` alternated drains: ([off, auto] wall, [off, auto] CPU).
fn compare(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
    script: &Script,
    tasks: usize,
    units: usize,
) -> anyhow::Result<([Duration; 2], [Duration; 2])> {
    let rounds = if opts.quick { 1 } else { 5 };
    let mut wall: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let per = |d: Duration| d / u32::try_from(units).unwrap_or(u32::MAX);
    for _ in 0..rounds {
        for (m, mode) in MODES.iter().enumerate() {
            let (w, c) = drain(opts, rt, script, tasks, mode)?;
            wall[m].push(per(w));
            cpu[m].push(per(c));
        }
    }
    Ok((wall.map(median), cpu.map(median)))
}

fn per_task(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let tasks = if opts.quick { 10 } else { 40 };
    let (wall, cpu) = compare(opts, rt, &viewing_script(1), tasks, tasks)?;
    Ok(row(
        "sandbox: per task (1-turn task, one at a time), `off` vs `auto`",
        "wall per task",
        wall[0],
        wall[1],
        format!(
            "agent CPU per task {} / {}; {tasks} tasks per run, median of alternated runs",
            ms(cpu[0]),
            ms(cpu[1])
        ),
    ))
}

fn per_command(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let tasks = if opts.quick { 2 } else { 5 };
    let calls = script(COMMANDS + 1, |_| {
        ("bash", json!({"command": "cat README.md > /dev/null"}))
    });
    let (wall, _) = compare(opts, rt, &calls, tasks, tasks * COMMANDS)?;
    Ok(row(
        "sandbox: per `bash` command (`cat README.md`), `off` vs `auto`",
        "wall per command",
        wall[0],
        wall[1],
        format!(
            "{tasks} tasks of {COMMANDS} calls per run, one task at a time, model replies \
             instant; includes 1/{COMMANDS} of the per-task difference"
        ),
    ))
}
