//! SSE parse and reply assembly throughput (MB/s) on a realistic Messages API stream.
//!
//! `cargo bench --bench sse`. The stream is a long text reply plus a tool call, fed whole,
//! in 4 KiB network-sized chunks, and in 7-byte chunks (the worst case the parser must
//! still handle correctly).

use std::hint::black_box;

use buildd_agent::anthropic::sse::SseParser;
use buildd_agent::anthropic::stream::MessageAssembler;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn stream_bytes() -> Vec<u8> {
    let mut s = String::new();
    let mut ev = |name: &str, data: serde_json::Value| {
        s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    ev(
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-5-5","role":"assistant","content":[],"usage":{"input_tokens":1000,"output_tokens":1}}}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for i in 0..4000 {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!("token {i} of a long reply, ")}}),
        );
        if i % 500 == 0 {
            ev("ping", json!({"type":"ping"}));
        }
    }
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"bash","input":{}}}),
    );
    let mut pieces = vec![r#"{"command": ""#.to_string()];
    pieces.extend((0..200).map(|i| format!("echo {i}; ")));
    pieces.push(r#""}"#.to_string());
    for p in pieces {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":p}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":1}),
    );
    ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5000}}),
    );
    ev("message_stop", json!({"type":"message_stop"}));
    s.into_bytes()
}

fn parse(bytes: &[u8], chunk: usize) -> usize {
    let mut parser = SseParser::default();
    let mut n = 0;
    for c in bytes.chunks(chunk) {
        n += parser.push(c).expect("within limits").len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let bytes = stream_bytes();
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse_whole", |b| {
        b.iter(|| parse(black_box(&bytes), bytes.len()))
    });
    g.bench_function("parse_4k_chunks", |b| {
        b.iter(|| parse(black_box(&bytes), 4096))
    });
    g.bench_function("parse_7b_chunks", |b| {
        b.iter(|| parse(black_box(&bytes), 7))
    });
    // Assembly also parses every event's JSON and the tool input.
    g.bench_function("parse_and_assemble_4k_chunks", |b| {
        b.iter(|| {
            let mut parser = SseParser::default();
            let mut asm = MessageAssembler::new();
            for c in black_box(&bytes).chunks(4096) {
                for e in parser.push(c).expect("within limits") {
                    asm.handle(&e).expect("valid event");
                }
            }
            asm.finish().expect("complete reply")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
