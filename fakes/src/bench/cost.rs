//! What a task's input costs (issue 15): whole-process runs of a scripted task against the
//! fake Messages API in its cost mode ([`super::cost_options`]: cache reads and writes computed
//! from the breakpoints each request sends, thinking blocks bound to their prefix so that a
//! rewritten history is refused, and every earlier turn checked byte for byte).
//!
//! Two scripts, as the issue names them, on the default model: 10 turns that each `cat` a
//! 4 KB file, and 40 turns that each `cat` a 16 KB file, then a final answer. Every reply
//! thinks first, so every thinking block goes back bound to the history before it.
//!
//! The input cost is computed here from the fake's usage at the list prices of
//! `shared/protocol/anthropic-messages.md` (Sonnet 5.5, from 2026-10-07), independently of the
//! agent's own price table; the agent's reported `costUsd` (output included) is shown beside it.
//!
//! The CLI runner's figure needs the real `claude` CLI: set `BUILDD_BENCH_CLAUDE` to its path
//! and the same scripts run under `--runner cli` (with Claude Code's `Bash` tool); every request
//! the CLI makes is counted, its side requests included.

use std::path::Path;

use anyhow::bail;
use serde_json::json;

use super::{KEY, Options, Row, Scratch, check_run, seed};
use crate::buildd::FakeBuildd;
use crate::harness::numbered_lines;
use crate::messages::{FakeMessages, FakeOptions, Script, Step, UsageTotals};

/// The default model, whose prices follow.
const MODEL: &str = "claude-sonnet-5-5";
/// Sonnet 5.5 list prices in USD per million tokens (protocol doc §2): uncached input,
/// 5-minute cache write, 1-hour cache write, cache read (the 2026-10-07 price).
const PRICE_INPUT: f64 = 2.0;
const PRICE_WRITE_5M: f64 = 2.5;
const PRICE_WRITE_1H: f64 = 4.0;
const PRICE_READ: f64 = 0.10;
/// The 40-turn task's target.
const READ_SHARE_TARGET: f64 = 0.95;

/// One script: turns, and the size of the file each turn reads.
struct Case {
    turns: usize,
    kib: usize,
}

const CASES: [Case; 2] = [Case { turns: 10, kib: 4 }, Case { turns: 40, kib: 16 }];

/// Which runner a run uses, and the name of its shell tool.
#[derive(Clone, Copy)]
enum Runner<'a> {
    Api,
    Cli { claude: &'a Path },
}

impl Runner<'_> {
    fn name(&self) -> &'static str {
        match self {
            Runner::Api => "api",
            Runner::Cli { .. } => "cli",
        }
    }

    fn shell_tool(&self) -> &'static str {
        match self {
            Runner::Api => "bash",
            Runner::Cli { .. } => "Bash",
        }
    }
}

/// A row per case for the API runner, and for the CLI runner when `BUILDD_BENCH_CLAUDE` is set.
pub(super) fn input_cost(opts: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Row>> {
    let claude = std::env::var_os("BUILDD_BENCH_CLAUDE").map(std::path::PathBuf::from);
    let mut rows = Vec::new();
    for case in &CASES {
        let api = run(opts, rt, case, Runner::Api)?;
        let cli = match &claude {
            Some(path) => Some(run(opts, rt, case, Runner::Cli { claude: path })?),
            None => None,
        };
        rows.push(row(case, &api, cli.as_ref()));
    }
    Ok(rows)
}

/// What one run measured.
struct Measured {
    totals: UsageTotals,
    requests: usize,
    /// The agent's last reported `costUsd`, output included.
    reported_usd: Option<f64>,
}

impl Measured {
    fn input_usd(&self) -> f64 {
        let t = &self.totals;
        // A write the fake did not split by TTL is priced as a 5-minute write.
        let unsplit = t
            .cache_creation_input_tokens
            .saturating_sub(t.ephemeral_5m_input_tokens + t.ephemeral_1h_input_tokens);
        (t.input_tokens as f64 * PRICE_INPUT
            + (t.ephemeral_5m_input_tokens + unsplit) as f64 * PRICE_WRITE_5M
            + t.ephemeral_1h_input_tokens as f64 * PRICE_WRITE_1H
            + t.cache_read_input_tokens as f64 * PRICE_READ)
            / 1e6
    }

    fn describe(&self) -> String {
        let t = &self.totals;
        let reported = self
            .reported_usd
            .map_or("none".to_string(), |c| format!("${c:.4}"));
        format!(
            "**${:.4}** input; cache reads {:.1}% of {} input tokens ({} uncached, {} written \
             5m / {} written 1h, {} read) over {} requests; agent-reported cost {reported}",
            self.input_usd(),
            t.cache_read_share() * 100.0,
            t.prompt_tokens(),
            t.input_tokens,
            t.ephemeral_5m_input_tokens,
            t.ephemeral_1h_input_tokens,
            t.cache_read_input_tokens,
            self.requests,
        )
    }
}

fn row(case: &Case, api: &Measured, cli: Option<&Measured>) -> Row {
    let long = case.turns >= 40;
    let (figure, target) = if long {
        (
            "input cost, 40-turn task, 16 KB tool outputs, default model, thinking bound",
            "completes; ≥ 95 % of input tokens read from cache",
        )
    } else {
        (
            "input cost, 10-turn task, 4 KB tool outputs, default model, thinking bound",
            "completes; cost printed",
        )
    };
    let cli = match cli {
        Some(m) => format!(
            "; CLI runner (real `claude`): {} (API/CLI input cost {:.2})",
            m.describe(),
            api.input_usd() / m.input_usd()
        ),
        None => "; CLI runner: not measured (set BUILDD_BENCH_CLAUDE)".to_string(),
    };
    Row {
        figure,
        target,
        measured: format!("API runner: {}{cli}", api.describe()),
        met: Some(!long || api.totals.cache_read_share() >= READ_SHARE_TARGET),
    }
}

/// `turns - 1` replies that think, then `cat out.txt` in the runner's shell tool; then a
/// final answer.
fn cat_script(turns: usize, tool: &str) -> Script {
    let mut steps: Vec<Step> = (0..turns.saturating_sub(1))
        .map(|i| {
            Step::respond(
                vec![
                    json!({"type":"thinking","thinking":format!("Turn {i}: read the file again."),
                           "signature":""}),
                    json!({"type":"text","text":format!("Reading out.txt ({i}).")}),
                    json!({"type":"tool_use","id":format!("toolu_c{i:03}"),"name":tool,
                           "input":{"command":"cat out.txt","description":"Read out.txt"}}),
                ],
                "tool_use",
            )
        })
        .collect();
    steps.push(Step::respond(
        vec![json!({"type":"text","text":"Read everything."})],
        "end_turn",
    ));
    Script {
        api_key: KEY.into(),
        steps,
    }
}

fn run(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
    case: &Case,
    runner: Runner<'_>,
) -> anyhow::Result<Measured> {
    let what = format!("cost ({} turns, {} runner)", case.turns, runner.name());
    let scratch = Scratch::new()?;
    std::fs::write(
        scratch.dir.path().join("work/out.txt"),
        numbered_lines(case.kib),
    )?;
    let server = FakeBuildd::start();
    seed(&server, 1);
    let options = FakeOptions {
        append_only: true,
        ..super::cost_options()
    };
    let model = rt.block_on(FakeMessages::start_with_options(
        cat_script(case.turns, runner.shell_tool()),
        options,
    ))?;
    let mut args = vec!["--until-idle", "--model", MODEL];
    let claude;
    if let Runner::Cli { claude: path } = runner {
        claude = path.to_string_lossy().into_owned();
        args.extend(["--runner", "cli", "--claude-bin", &claude]);
    }
    let mut cmd = scratch.agent(&opts.agent, &server, &model.url(), &args, &[])?;
    let status = cmd.spawn()?.wait()?;
    check_run(&what, &scratch, &server, Some(&model), 1, status)?;
    let totals = model.usage_totals();
    // The whole script was served: every turn, once (a refused or retried request would
    // change the figure).
    if totals.replies != case.turns as u64 {
        bail!(
            "{what}: {} replies for a {}-turn script\n{}",
            totals.replies,
            case.turns,
            scratch.log_tail()
        );
    }
    let reported_usd = server
        .workers()
        .first()
        .and_then(|w| w.fields.get("costUsd").and_then(|c| c.as_f64()));
    let measured = Measured {
        totals,
        requests: model.requests().len(),
        reported_usd,
    };
    rt.block_on(model.shutdown());
    Ok(measured)
}
