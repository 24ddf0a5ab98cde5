//! A kernel without Landlock, simulated honestly: a seccomp filter, installed in the agent's
//! process between fork and exec ([`Agent::without_landlock`](super::Agent::without_landlock)),
//! makes the three `landlock_*` syscalls fail with `ENOSYS`, which is what a kernel built
//! without `CONFIG_SECURITY_LANDLOCK` returns. The filter is inherited by everything the agent
//! starts, so the agent's probe, its children and their children all see the same kernel.
//!
//! The program is written out with `libc`'s BPF types rather than through a seccomp crate:
//! it is five instructions, and it must be ready before `fork` (the child may not allocate).

use std::io;

/// `AUDIT_ARCH_*` of `<linux/audit.h>` for this build: seccomp numbers syscalls per
/// architecture, so the filter first checks it is looking at the numbering it was written for.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE

/// `landlock_create_ruleset`, `landlock_add_rule`, `landlock_restrict_self`: 444, 445 and 446
/// on both x86_64 and aarch64 (syscalls added since Linux 5.1 share one number everywhere);
/// taken from `libc` so another architecture would get its own.
const FIRST: u32 = libc::SYS_landlock_create_ruleset as u32;
const LAST: u32 = libc::SYS_landlock_restrict_self as u32;

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const ARCH_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, arch) as u32;
const NR_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, nr) as u32;

/// Other architectures' calls (a 32-bit binary on x86_64) pass untouched; on ours, syscall
/// numbers `FIRST..=LAST` return `ENOSYS` and everything else is allowed.
static PROGRAM: [libc::sock_filter; 7] = [
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
    jump(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        AUDIT_ARCH,
        0,
        4,
    ),
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
    jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, FIRST, 0, 2),
    jump(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, LAST, 1, 0),
    stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
    ),
    stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
];

/// Install the filter on the calling process. Meant for `pre_exec`: two syscalls on static
/// data, nothing allocated. `no_new_privs` first, which an unprivileged process needs before
/// it may install a filter (and which the agent sets on its children anyway).
pub(super) fn deny_landlock() -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: PROGRAM.len() as u16,
        filter: PROGRAM.as_ptr().cast_mut(),
    };
    // SAFETY: prctl takes integers; seccomp reads `prog` and the static program it points at,
    // both alive for the call (the kernel copies the program).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        let prog_ptr: *const libc::sock_fprog = &prog;
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            prog_ptr,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// The filter really hides Landlock: a child under it asks the kernel for the ABI version
    /// (through python's `ctypes`, any program would do) and gets ENOSYS, while an unfiltered
    /// child gets a version. Skips the comparison on a kernel that has no Landlock itself.
    #[test]
    fn the_filter_turns_the_landlock_probe_into_enosys() {
        let probe = format!(
            "import ctypes, os\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             r = libc.syscall({}, None, 0, 1)\n\
             print(r, os.strerror(ctypes.get_errno()) if r < 0 else 'ok')",
            libc::SYS_landlock_create_ruleset
        );
        let run = |filtered: bool| {
            let mut cmd = Command::new("python3");
            cmd.args(["-c", &probe]);
            if filtered {
                // SAFETY: deny_landlock only makes two syscalls on static data.
                unsafe { cmd.pre_exec(super::deny_landlock) };
            }
            let out = cmd.output().expect("run python3");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let filtered = run(true);
        assert!(
            filtered.starts_with("-1 ") && filtered.contains("not implemented"),
            "{filtered}"
        );
        let plain = run(false);
        if !plain.starts_with("-1") {
            assert!(plain.ends_with(" ok"), "{plain}");
        }
    }
}
