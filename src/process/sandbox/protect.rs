//! Hardening of the agent's own process, so that what it holds in memory and in its
//! environment is not there for the taking by the commands it runs.
//!
//! - [`set_non_dumpable`]: `PR_SET_DUMPABLE 0`. The kernel then treats the agent like a setuid
//!   program: its `/proc/<pid>/{environ,mem,maps,fd,…}` belong to root and `ptrace` needs
//!   `CAP_SYS_PTRACE`, so a process of the same (non-root) user cannot read them, sandboxed or
//!   not. It does **not** stop root, or any process with `CAP_SYS_PTRACE`: root reads
//!   `/proc/<pid>/environ` of a non-dumpable process all the same. Against a root model
//!   command the barrier is Landlock, whose ptrace rule forbids a confined process from
//!   reading or tracing any process outside its domain (the agent), root or not. Also turns off
//!   core dumps of the agent. Children start dumpable again (exec resets the flag), which is
//!   what lets the agent kill and wait for them as usual.
//! - [`remove_env_vars`]: drop secrets from the process environment once the config layer read
//!   them, so neither a later `/proc/<pid>/environ` read nor a child that inherits the
//!   environment by mistake sees them. Removing a variable (`unsetenv`) only takes it out of
//!   libc's `environ` array: `/proc/<pid>/environ` shows the block the kernel copied onto the
//!   stack at `exec`, which still holds the value. So the value's bytes are overwritten in
//!   place first (Linux), and what anyone who may read the file sees is `NAME=` and zero bytes.
//!
//! What remains readable to anyone: the agent's command line (`/proc/<pid>/cmdline` is not
//! guarded by the dumpable flag) — never pass a secret as an argument.

use std::ffi::OsStr;

/// Why hardening failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("cannot make the agent process non-dumpable: {0}")]
    Dumpable(#[source] std::io::Error),
}

/// Make this process non-dumpable (Linux; a no-op elsewhere). Idempotent; call early in
/// `main`, before any secret is read.
pub fn set_non_dumpable() -> Result<(), ProtectError> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_dumpable(false)
            .map_err(|errno| ProtectError::Dumpable(std::io::Error::from(errno)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}

/// Whether this process is dumpable (`None` where the question does not apply).
pub fn is_dumpable() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::get_dumpable().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Remove each named variable from this process's environment; returns the names that were
/// set. Call it right after the config layer copied the values into `Secret`s.
///
/// # Safety
///
/// Changing the environment is not thread-safe (edition 2024 makes `std::env::remove_var`
/// `unsafe` for that reason): a concurrent `getenv` in another thread — including one inside
/// libc, e.g. a DNS lookup reading `RES_OPTIONS` — may read freed memory. Call this only while
/// the process has a single thread: in `main`, before the tokio runtime is built (the runtime
/// starts its worker threads when it is built, so after `#[tokio::main]` is too late; use a
/// plain `main` that builds the runtime after this call).
pub unsafe fn remove_env_vars<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut removed = Vec::new();
    for name in names {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            continue;
        }
        if std::env::var_os(OsStr::new(name)).is_some() {
            // SAFETY: the caller guarantees that no other thread runs (see above).
            unsafe {
                scrub_value(name);
                std::env::remove_var(name);
            }
            removed.push(name.to_string());
        }
    }
    removed
}

/// Overwrite with zero bytes the value of every `name=value` entry of `environ`, where it
/// lies: for the variables the process started with, that is the block on the stack that
/// `/proc/<pid>/environ` shows. The entry stays `name=` (an empty value) until it is removed.
///
/// # Safety
///
/// As [`remove_env_vars`]: no other thread may read the environment meanwhile.
#[cfg(target_os = "linux")]
unsafe fn scrub_value(name: &str) {
    unsafe extern "C" {
        // glibc and musl both define it; `libc` declares it for glibc only.
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: `environ` is a null-terminated array of pointers to NUL-terminated strings,
    // each in writable memory this process owns (the initial stack block, or what `setenv`
    // allocated); nothing else reads or changes it while we run (the caller's guarantee).
    // Writing zeros inside a string's own bytes keeps it NUL-terminated.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(value) = text
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
            {
                let start = (*entry).add(name.len() + 1);
                std::ptr::write_bytes(start, 0, value.len());
            }
            entry = entry.add(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
unsafe fn scrub_value(_name: &str) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::Command;

    /// Fork a child that becomes `uid`, sets dumpable to `dumpable`, reports ready and waits
    /// until killed. Returns its pid. The child only makes async-signal-safe calls.
    fn forked_sleeper(uid: u32, dumpable: bool) -> nix::unistd::Pid {
        use nix::unistd::{ForkResult, fork};
        let (rd, wr) = nix::unistd::pipe().unwrap();
        // SAFETY: the child calls only setgid/setuid/prctl/write/pause/_exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                let ok = libc::setgid(uid) == 0
                    && libc::setuid(uid) == 0
                    && libc::prctl(
                        libc::PR_SET_DUMPABLE,
                        libc::c_ulong::from(dumpable),
                        0,
                        0,
                        0,
                    ) == 0;
                let byte = [u8::from(ok)];
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&wr),
                    byte.as_ptr().cast(),
                    1,
                );
                loop {
                    libc::pause();
                }
            },
            ForkResult::Parent { child } => {
                drop(wr);
                let mut byte = [0u8];
                nix::unistd::read(&rd, &mut byte).unwrap();
                assert_eq!(byte[0], 1, "the child could not set itself up");
                child
            }
        }
    }

    fn reap(pid: nix::unistd::Pid) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }

    /// `cat /proc/<pid>/environ` as `uid` (via setpriv), returning whether it succeeded.
    fn read_environ_as(uid: u32, pid: nix::unistd::Pid) -> bool {
        let uid = uid.to_string();
        Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "cat"])
            .arg(format!("/proc/{pid}/environ"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn have_root_and_setpriv() -> bool {
        if !nix::unistd::geteuid().is_root() || which::which("setpriv").is_err() {
            println!("skipped: needs root (to switch uids) and setpriv");
            return false;
        }
        true
    }

    #[test]
    fn a_same_uid_process_cannot_read_a_non_dumpable_environ() {
        if !have_root_and_setpriv() {
            return;
        }
        const NOBODY: u32 = 65534;
        // Control: dumpable, the same uid reads it.
        let open = forked_sleeper(NOBODY, true);
        let readable = read_environ_as(NOBODY, open);
        reap(open);
        assert!(
            readable,
            "a dumpable process's environ should be readable by its uid"
        );
        // Non-dumpable: the same uid no longer can.
        let closed = forked_sleeper(NOBODY, false);
        let readable = read_environ_as(NOBODY, closed);
        reap(closed);
        assert!(
            !readable,
            "PR_SET_DUMPABLE 0 must close environ to the same uid"
        );
    }

    #[test]
    fn root_still_reads_a_non_dumpable_environ() {
        // Documents the limit of PR_SET_DUMPABLE: CAP_SYS_PTRACE wins. Landlock closes this
        // for confined commands (see the sandbox tests).
        if !have_root_and_setpriv() {
            return;
        }
        let closed = forked_sleeper(0, false);
        let readable = std::fs::read(format!("/proc/{closed}/environ")).is_ok();
        reap(closed);
        assert!(readable, "root (CAP_SYS_PTRACE) reads it regardless");
    }

    #[test]
    fn set_non_dumpable_takes_effect() {
        // In a forked child, so the test harness itself stays dumpable.
        use nix::unistd::{ForkResult, fork};
        // SAFETY: the child makes two prctl calls and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = set_non_dumpable().is_ok() && is_dumpable() == Some(false);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn remove_env_vars_removes_only_what_is_set() {
        // In a forked child: the test harness is multi-threaded, the child is not.
        use nix::unistd::{ForkResult, fork};
        // SAFETY: in the single-threaded child; it exits without returning.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                std::env::set_var("BUILDD_TEST_SECRET_A", "s3cret");
                let removed =
                    remove_env_vars(["BUILDD_TEST_SECRET_A", "BUILDD_TEST_UNSET", "BAD=NAME"]);
                let ok = removed == ["BUILDD_TEST_SECRET_A"]
                    && std::env::var_os("BUILDD_TEST_SECRET_A").is_none();
                libc::_exit(if ok { 0 } else { 1 })
            },
            ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn a_removed_value_is_overwritten_where_it_was() {
        // The entry's own bytes, looked up before removal, hold `NAME=` and zeros afterwards
        // (the agent binary's test reads its /proc/<pid>/environ, the block at exec).
        use nix::unistd::{ForkResult, fork};
        unsafe extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: in the single-threaded child; it exits without returning.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                std::env::set_var("BUILDD_TEST_SECRET_B", "s3cret-value");
                let mut entry = environ;
                let mut found = std::ptr::null_mut();
                while !(*entry).is_null() {
                    if std::ffi::CStr::from_ptr(*entry)
                        .to_bytes()
                        .starts_with(b"BUILDD_TEST_SECRET_B=")
                    {
                        found = *entry;
                    }
                    entry = entry.add(1);
                }
                let removed = remove_env_vars(["BUILDD_TEST_SECRET_B"]);
                let bytes = std::slice::from_raw_parts(found.cast::<u8>(), 33);
                let ok = !found.is_null()
                    && removed == ["BUILDD_TEST_SECRET_B"]
                    && bytes.starts_with(b"BUILDD_TEST_SECRET_B=")
                    && bytes[21..].iter().all(|b| *b == 0);
                libc::_exit(if ok { 0 } else { 1 })
            },
            ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
