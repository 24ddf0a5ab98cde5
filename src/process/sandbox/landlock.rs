//! The Linux backend: a Landlock ruleset built once per task in the agent, and a step between
//! fork and exec that makes the child (and everything it starts) live inside it.
//!
//! Built in the parent: opening every policy path (`O_PATH`), the ruleset itself and its rules,
//! all through the `landlock` crate, which checks each right against the ABI we ask for.
//! Done in the child, and nothing else, because between fork and exec only async-signal-safe
//! calls are allowed: `prctl(PR_SET_NO_NEW_PRIVS, 1)`, dropping capabilities from the bounding
//! set (`prctl(PR_CAPBSET_DROP)`, which only matters for a root agent) and
//! `landlock_restrict_self(fd, 0)`.
//!
//! Why raw syscalls for the child step: `RulesetCreated` has no `AsFd`; its `restrict_self()`
//! consumes the value, so each spawn would need a `try_clone()` (a `dup` in the parent) and the
//! call does status bookkeeping the crate does not promise to be async-signal-safe. The crate
//! does convert a finished ruleset into its `Option<OwnedFd>`, which we keep (shared by `Arc`
//! with every `pre_exec` closure, so the descriptor outlives any command built from it) and
//! hand to the syscall. The descriptor is close-on-exec: the confined program never sees it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

use super::SandboxError;
use super::opened::{OpenedPath, OpenedPaths};
use super::policy::{Access, Egress, Origin, PathRule};
use super::support::LandlockAbi;

/// Ask the kernel for its Landlock ABI version (`landlock_create_ruleset(NULL, 0, VERSION)`).
/// `Err` carries the errno: `ENOSYS` (not built) or `EOPNOTSUPP` (not enabled).
pub(super) fn kernel_abi() -> Result<u32, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the syscall reads and
    // writes no memory; it only returns a number or an errno.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(u32::try_from(ret).unwrap_or(0))
    }
}

/// A finished ruleset, ready to be applied in children.
#[derive(Debug, Clone)]
pub(super) struct Built {
    /// The ruleset descriptor.
    fd: Arc<OwnedFd>,
    /// Policy paths that did not exist or could not be opened (reported, not fatal).
    pub(super) skipped: Vec<PathBuf>,
}

/// Build the ruleset for `rules` and `egress` at ABI `abi` (the detected kernel's version).
///
/// Every right is a hard requirement: we only ask for what `abi` has, so a refusal means the
/// detection and the kernel disagree, and that must not pass silently.
pub(super) fn build(
    rules: &[PathRule],
    egress: &Egress,
    abi: LandlockAbi,
    opened: &OpenedPaths,
) -> Result<Built, SandboxError> {
    let level = ABI::from(i32::try_from(abi.effective()).unwrap_or(1));
    let read = AccessFs::from_read(level);
    let all = AccessFs::from_all(level);
    // Handled but never granted: a device node made in the worktree would open the raw disk.
    let write = all & !AccessFs::MakeChar & !AccessFs::MakeBlock;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)?;
    let net = handled_net(egress, abi, level);
    if !net.is_empty() {
        ruleset = ruleset.handle_access(net)?;
    }
    let scopes = Scope::from_all(level);
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes)?;
    }
    let mut created = ruleset.create()?;
    let mut skipped = Vec::new();
    for rule in rules {
        let Some((fd, is_dir)) = open_rule_path(rule, opened, &mut skipped)? else {
            continue;
        };
        let mut access = match rule.access {
            Access::Read => read,
            Access::ReadWrite => write,
        };
        if !is_dir {
            // Directory-only rights on a file are an error; a file gets the file subset.
            access &= AccessFs::from_file(level);
        }
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    if let Egress::Ports(ports) = egress
        && net.contains(AccessNet::ConnectTcp)
    {
        for port in ports {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or(SandboxError::NoRulesetFd)?;
    Ok(Built {
        fd: Arc::new(fd),
        skipped,
    })
}

/// Which network rights the ruleset handles. Only connecting is filtered: binding stays free so
/// test suites can still listen (they then cannot connect to themselves under `Deny`, which is
/// what "no TCP" means without address rules). UDP is handled only under `Deny`, where DNS is
/// of no use anyway; with a port list DNS must keep working.
fn handled_net(egress: &Egress, abi: LandlockAbi, level: ABI) -> BitFlags<AccessNet> {
    if !abi.tcp() {
        return BitFlags::EMPTY;
    }
    match egress {
        Egress::Allow => BitFlags::EMPTY,
        Egress::Ports(_) => AccessNet::ConnectTcp.into(),
        Egress::Deny => {
            let mut net: BitFlags<AccessNet> = AccessNet::ConnectTcp.into();
            if abi.udp() {
                net |= AccessNet::from_all(level) & !AccessNet::BindTcp & !AccessNet::BindUdp;
            }
            net
        }
    }
}

/// Open a rule's path with `O_PATH` (a default path's descriptor may be the agent's kept
/// one, see `opened.rs`). A missing default or extra path is skipped (extra ones with a
/// warning); a missing task path is an error.
fn open_rule_path(
    rule: &PathRule,
    kept: &OpenedPaths,
    skipped: &mut Vec<PathBuf>,
) -> Result<Option<OpenedPath>, SandboxError> {
    let opened = match rule.origin {
        Origin::Default => kept.get_or_open(&rule.path, Instant::now(), || open_path(&rule.path)),
        Origin::Task | Origin::Extra => open_path(&rule.path).map(|(fd, d)| (Arc::new(fd), d)),
    };
    match opened {
        Ok(found) => Ok(Some(found)),
        Err(source) => match rule.origin {
            Origin::Task => Err(SandboxError::Path {
                path: rule.path.clone(),
                source,
            }),
            Origin::Extra => {
                tracing::warn!(path = %rule.path.display(), %source, "sandbox path skipped");
                skipped.push(rule.path.clone());
                Ok(None)
            }
            Origin::Default => Ok(None),
        },
    }
}

/// `path` opened with `O_PATH`, and whether it is a directory. The type comes from the
/// opened descriptor (`fstat`), not a second walk of the path.
fn open_path(path: &Path) -> io::Result<(PathFd, bool)> {
    let fd = PathFd::new(path).map_err(|e| match e {
        PathFdError::OpenCall { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(io::Error::from)?;
    let is_dir = stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
    Ok((fd, is_dir))
}

impl Built {
    /// The closure for `pre_exec`: no_new_privs, capabilities, then the ruleset.
    pub(super) fn child_step(&self) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
        let step = ChildStep {
            ruleset: Some(Arc::clone(&self.fd)),
            last_cap: last_cap(),
        };
        move || step.run()
    }
}

/// The step without a ruleset, for machines without Landlock: no_new_privs and capabilities.
pub(super) fn unconfined_child_step() -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
    let step = ChildStep {
        ruleset: None,
        last_cap: last_cap(),
    };
    move || step.run()
}

/// Capabilities a child of a root agent keeps: managing the owners and modes of the files it
/// may write anyway (`tar` and `npm` chown what they unpack as root). Every other capability
/// is dropped from the bounding set, so the program the child executes never has it. The
/// dropped ones include each that would defeat the sandbox: `SYS_MODULE` (load code into the
/// kernel), `SYS_ADMIN`, `SYS_PTRACE` (read a non-dumpable agent's `/proc/<pid>/environ`),
/// `MKNOD` (a block device node in the worktree is the raw disk), `NET_RAW` (raw sockets are
/// outside Landlock's TCP rules), `SETUID`/`SETGID`, `KILL`, `BPF`, `DAC_READ_SEARCH`
/// (`open_by_handle_at`).
const KEEP_CAPS: [libc::c_ulong; 5] = [
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    10, // CAP_NET_BIND_SERVICE
];

/// The highest capability number this kernel knows (read in the parent; the child must not
/// read files).
fn last_cap() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// What the child does between fork and exec.
#[derive(Debug, Clone)]
struct ChildStep {
    /// The ruleset (kept open by this `Arc` for as long as any command holds the closure).
    ruleset: Option<Arc<OwnedFd>>,
    last_cap: libc::c_ulong,
}

impl ChildStep {
    /// Only raw syscalls: no allocation, no lock (`io::Error::last_os_error()` wraps the errno
    /// without allocating).
    fn run(&self) -> io::Result<()> {
        // SAFETY (all blocks below): prctl and landlock_restrict_self take integers and a
        // descriptor we keep alive; they read or write no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for cap in 0..=self.last_cap {
            if KEEP_CAPS.contains(&cap) {
                continue;
            }
            // EPERM: not privileged (nothing to drop); EINVAL: unknown to this kernel.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        if let Some(fd) = &self.ruleset {
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    fd.as_raw_fd(),
                    0 as libc::c_uint,
                )
            };
            if ret != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_rights_follow_egress_and_abi() {
        let v4 = LandlockAbi(4);
        assert!(handled_net(&Egress::Allow, v4, ABI::V4).is_empty());
        assert_eq!(
            handled_net(&Egress::Deny, v4, ABI::V4),
            AccessNet::ConnectTcp
        );
        assert!(handled_net(&Egress::Deny, LandlockAbi(3), ABI::V3).is_empty());
        let v10 = handled_net(&Egress::Deny, LandlockAbi(10), ABI::V10);
        assert!(v10.contains(AccessNet::ConnectTcp) && v10.contains(AccessNet::ConnectSendUdp));
        assert!(!v10.contains(AccessNet::BindTcp));
        assert_eq!(
            handled_net(&Egress::Ports(vec![443]), LandlockAbi(10), ABI::V10),
            AccessNet::ConnectTcp
        );
    }
}
