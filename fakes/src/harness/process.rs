//! Waiting on processes and conditions, bounded: a hang fails the test instead of
//! wedging the suite. The bounds are generous safety limits, not timing assertions.

use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// How long [`wait_for`] waits before it gives up.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Poll `cond` until it holds; panics naming `what` after a minute.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > WAIT_LIMIT {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` names a live process. A zombie counts as gone: it has exited and only
/// waits for a parent to reap it (in a container, PID 1 may never).
pub fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is gone within a bounded wait: SIGKILL is delivered asynchronously, so
/// a process killed a moment ago may still be exiting.
pub fn gone_soon(pid: i32) -> bool {
    for _ in 0..500 {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Write `body` to `path` as an executable script, through a `sh` child.
///
/// Writing it from this process would race: the test binary runs tests on many threads,
/// and a sibling thread that forks while the write descriptor is open hands a copy to its
/// child until that child execs; running the script in that window fails with ETXTBSY
/// ("Text file busy"). A descriptor that only ever lived in a child that has exited
/// cannot leak that way.
pub fn write_executable(path: &std::path::Path, body: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start sh to write a script");
    let mut stdin = child.stdin.take().expect("the writer's stdin");
    stdin
        .write_all(body.as_bytes())
        .expect("hand the script to sh");
    drop(stdin);
    let status = child.wait().expect("wait for the script writer");
    assert!(
        status.success(),
        "writing {} failed: {status}",
        path.display()
    );
}
