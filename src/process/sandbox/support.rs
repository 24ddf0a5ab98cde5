//! What this machine can enforce, found out once at start-up ([`detect`]) and described in one
//! line for the `doctor`-style start-up message.
//!
//! Landlock features arrive with ABI versions; the ones this agent uses are listed on
//! [`LandlockAbi`]. The detected version is the kernel's word, and [`super::landlock`] asks the
//! kernel for exactly that much (hard requirement), so what the line says is what is enforced.

use std::path::PathBuf;

/// The newest Landlock ABI whose access rights the agent asks for. Newer kernels are used at this
/// level; see `docs/sandbox.md` for what each version adds.
pub const TARGET_LANDLOCK_ABI: u32 = 10;

/// A Landlock ABI version with the features the agent derives from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LandlockAbi(pub u32);

impl LandlockAbi {
    /// The version the rules are built for: the kernel's, capped at [`TARGET_LANDLOCK_ABI`].
    pub fn effective(self) -> u32 {
        self.0.min(TARGET_LANDLOCK_ABI)
    }
    /// File access rules (ABI 1).
    pub fn files(self) -> bool {
        self.0 >= 1
    }
    /// Renames and links across directories are allowed inside write roots (ABI 2; before it,
    /// they fail with EXDEV and tools fall back to copying).
    pub fn refer(self) -> bool {
        self.0 >= 2
    }
    /// `truncate(2)` is controlled (ABI 3; before it, any file the user may write can be
    /// truncated, though not opened for writing).
    pub fn truncate(self) -> bool {
        self.0 >= 3
    }
    /// TCP connect/bind rules by port (ABI 4).
    pub fn tcp(self) -> bool {
        self.0 >= 4
    }
    /// ioctl on device files is controlled (ABI 5).
    pub fn ioctl(self) -> bool {
        self.0 >= 5
    }
    /// Signals and abstract UNIX sockets are scoped to the sandbox (ABI 6): a confined command
    /// cannot signal the agent or reach its abstract sockets.
    pub fn scopes(self) -> bool {
        self.0 >= 6
    }
    /// Connecting to pathname UNIX sockets is a file right (ABI 9).
    pub fn unix_paths(self) -> bool {
        self.0 >= 9
    }
    /// UDP rules (ABI 10).
    pub fn udp(self) -> bool {
        self.0 >= 10
    }

    /// The feature words of the start-up line: `files, TCP, signals`.
    pub fn feature_words(self) -> String {
        let mut words = vec!["files"];
        if self.tcp() {
            words.push("TCP");
        }
        if self.scopes() {
            words.push("signals");
        }
        if self.unix_paths() {
            words.push("UNIX sockets");
        }
        if self.udp() {
            words.push("UDP");
        }
        words.join(", ")
    }
}

/// Why Landlock cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoLandlock {
    /// The kernel was built without Landlock (`ENOSYS`; Linux before 5.13 or not configured).
    NotBuilt,
    /// Landlock is built but not enabled (`EOPNOTSUPP`): it is missing from the `lsm=` boot
    /// parameter or `CONFIG_LSM`.
    Disabled,
    /// The probe failed otherwise (a seccomp filter in a container often returns `EPERM`).
    Probe(i32),
}

impl NoLandlock {
    /// What to do about it, for the `hint:` line.
    pub fn hint(&self) -> &'static str {
        match self {
            NoLandlock::NotBuilt => {
                "run on Linux 5.13 or newer with CONFIG_SECURITY_LANDLOCK=y (6.7+ for egress rules)"
            }
            NoLandlock::Disabled => {
                "add landlock to the kernel's lsm= boot parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor)"
            }
            NoLandlock::Probe(_) => {
                "allow the landlock_* syscalls in the container's seccomp profile (Docker 25+ allows them)"
            }
        }
    }
}

impl std::fmt::Display for NoLandlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoLandlock::NotBuilt => write!(f, "kernel has no Landlock"),
            NoLandlock::Disabled => write!(f, "Landlock is not enabled in this kernel"),
            NoLandlock::Probe(errno) => write!(
                f,
                "the Landlock probe failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// What the running machine can enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxSupport {
    /// Linux with Landlock at this ABI.
    Landlock(LandlockAbi),
    /// Linux without usable Landlock.
    NoLandlock(NoLandlock),
    /// macOS with `sandbox-exec` at this path.
    SandboxExec(PathBuf),
    /// macOS without `sandbox-exec`.
    NoSandboxExec,
    /// Any other system.
    Unsupported(&'static str),
}

impl SandboxSupport {
    /// Whether commands can be confined at all.
    pub fn can_confine(&self) -> bool {
        matches!(
            self,
            SandboxSupport::Landlock(_) | SandboxSupport::SandboxExec(_)
        )
    }

    /// Whether outgoing TCP can be restricted.
    pub fn can_restrict_egress(&self) -> bool {
        match self {
            SandboxSupport::Landlock(abi) => abi.tcp(),
            SandboxSupport::SandboxExec(_) => true,
            _ => false,
        }
    }

    /// What is missing, as the `(…)` of an "unavailable" line.
    pub fn reason(&self) -> String {
        match self {
            SandboxSupport::Landlock(_) | SandboxSupport::SandboxExec(_) => String::new(),
            SandboxSupport::NoLandlock(why) => why.to_string(),
            SandboxSupport::NoSandboxExec => "/usr/bin/sandbox-exec not found".into(),
            SandboxSupport::Unsupported(os) => format!("no sandbox backend for {os}"),
        }
    }

    /// The fix, for the `hint:` line of a `require` failure.
    pub fn hint(&self) -> String {
        match self {
            SandboxSupport::NoLandlock(why) => why.hint().into(),
            SandboxSupport::NoSandboxExec => {
                "sandbox-exec ships with macOS; check that /usr/bin/sandbox-exec exists".into()
            }
            _ => "run on Linux with Landlock or on macOS, or pass --sandbox off".into(),
        }
    }

    /// The mechanism part of the start-up line: `landlock ABI 7 (files, TCP, signals)`.
    pub fn mechanism(&self) -> String {
        match self {
            SandboxSupport::Landlock(abi) => {
                format!("landlock ABI {} ({})", abi.0, abi.feature_words())
            }
            SandboxSupport::SandboxExec(path) => format!("sandbox-exec ({})", path.display()),
            _ => "unavailable".into(),
        }
    }
}

/// Find out what this machine can enforce. Cheap (one syscall or one `stat`); call once at
/// start-up and keep the value.
pub fn detect() -> SandboxSupport {
    #[cfg(target_os = "linux")]
    {
        match super::landlock::kernel_abi() {
            Ok(abi) if abi >= 1 => SandboxSupport::Landlock(LandlockAbi(abi)),
            Ok(_) => SandboxSupport::NoLandlock(NoLandlock::NotBuilt),
            Err(errno) if errno == libc::ENOSYS => SandboxSupport::NoLandlock(NoLandlock::NotBuilt),
            Err(errno) if errno == libc::EOPNOTSUPP => {
                SandboxSupport::NoLandlock(NoLandlock::Disabled)
            }
            Err(errno) => SandboxSupport::NoLandlock(NoLandlock::Probe(errno)),
        }
    }
    #[cfg(target_os = "macos")]
    {
        let path = PathBuf::from(super::macos::SANDBOX_EXEC);
        if path.is_file() {
            SandboxSupport::SandboxExec(path)
        } else {
            SandboxSupport::NoSandboxExec
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        SandboxSupport::Unsupported(std::env::consts::OS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_abi() {
        assert_eq!(LandlockAbi(1).feature_words(), "files");
        assert_eq!(LandlockAbi(4).feature_words(), "files, TCP");
        assert_eq!(LandlockAbi(7).feature_words(), "files, TCP, signals");
        assert_eq!(
            LandlockAbi(12).feature_words(),
            "files, TCP, signals, UNIX sockets, UDP"
        );
        assert_eq!(LandlockAbi(12).effective(), TARGET_LANDLOCK_ABI);
        assert!(!LandlockAbi(3).tcp() && LandlockAbi(3).truncate());
    }

    #[test]
    fn unavailable_support_says_why_and_what_to_do() {
        let s = SandboxSupport::NoLandlock(NoLandlock::Disabled);
        assert!(!s.can_confine());
        assert_eq!(s.reason(), "Landlock is not enabled in this kernel");
        assert!(s.hint().contains("lsm="));
        assert_eq!(s.mechanism(), "unavailable");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_kernel_reports_a_landlock_abi_or_a_reason() {
        // Printed so that CI logs show what the suite ran against.
        let support = detect();
        println!("detected: {support:?} -> {}", support.mechanism());
        match support {
            SandboxSupport::Landlock(abi) => assert!(abi.0 >= 1),
            SandboxSupport::NoLandlock(why) => assert!(!why.to_string().is_empty()),
            other => panic!("a Linux machine reported {other:?}"),
        }
    }
}
