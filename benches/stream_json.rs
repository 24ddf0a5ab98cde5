//! `claude` CLI stream-json parse throughput (MB/s) on recorded CLI output.
//!
//! `cargo bench --bench stream_json`. The input is a long session built from the recorded
//! successful run in `tests/fixtures/claude-cli/`: its init line once, then its assistant and
//! tool-result lines many times over (with a large tool result, as `cat` of a file gives),
//! then its result line. Every line goes through `parse_line`, as the CLI runner does.

use std::hint::black_box;

use buildd_agent::runner::stream_json::{Event, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn session() -> String {
    let fixture = include_str!("../tests/fixtures/claude-cli/success-bash-tool.jsonl");
    let lines: Vec<&str> = fixture.lines().collect();
    let (first, rest) = lines.split_first().expect("fixture has lines");
    let (last, middle) = rest.split_last().expect("fixture has a result line");
    let big_result = json!({"type":"user","message":{"role":"user","content":[
        {"tool_use_id":"toolu_big","type":"tool_result",
         "content":"fn main() {\n    println!(\"hello\");\n}\n".repeat(400)}]}});
    let mut s = String::new();
    s.push_str(first);
    s.push('\n');
    for i in 0..300 {
        for l in middle {
            s.push_str(l);
            s.push('\n');
        }
        if i % 10 == 0 {
            s.push_str(&big_result.to_string());
            s.push('\n');
        }
    }
    s.push_str(last);
    s.push('\n');
    s
}

fn parse_all(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match parse_line(l).expect("recorded lines parse") {
            Event::Unknown { .. } => 0,
            _ => 1,
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let text = session();
    assert!(
        parse_all(&text) > 1000,
        "the session must parse into real events"
    );
    let mut g = c.benchmark_group("stream_json");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_session", |b| b.iter(|| parse_all(black_box(&text))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
