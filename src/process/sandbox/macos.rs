//! The macOS backend: a Seatbelt (SBPL) profile generated from the same [`SandboxPolicy`]
//! rules, applied by running the command as `/usr/bin/sandbox-exec -p <profile> -- program …`.
//!
//! The shape follows what Claude Code does on macOS (its `@anthropic-ai/sandbox-runtime`
//! package): `(deny default)`, then process, Mach, sysctl and IPC allowances a normal toolchain
//! needs, then file and network rules. Two differences, both to match the Landlock backend:
//! reads are an allow-list (Claude Code allows reading everything but a deny-list), and the
//! network is filtered by port, not through a proxy. Metadata (`stat`, path lookup) is allowed
//! everywhere: macOS needs it to resolve paths, and it shows names and sizes, not contents.
//!
//! Seatbelt matches resolved paths (`/private/tmp`, not `/tmp`), so every policy path is
//! canonicalized first ([`resolve`]). Profile generation is pure and tested on every platform
//! (snapshot); only running `sandbox-exec` needs macOS.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SandboxError;
use super::policy::{Access, Egress, Origin, PathRule};
use crate::process::spawn::CommandSpec;

/// Where macOS ships `sandbox-exec`.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// A policy's rules with canonical paths, as Seatbelt matches them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    pub rules: Vec<(PathBuf, Access)>,
    /// Operator-added paths that do not exist (reported, not fatal).
    pub skipped: Vec<PathBuf>,
}

/// Canonicalize the policy's paths; missing default paths are dropped, missing extra paths are
/// returned as skipped, a missing task path is an error (as in the Landlock backend).
pub fn resolve(rules: &[PathRule]) -> Result<Resolved, SandboxError> {
    let mut resolved = Vec::new();
    let mut skipped = Vec::new();
    for rule in rules {
        match std::fs::canonicalize(&rule.path) {
            Ok(path) => resolved.push((path, rule.access)),
            Err(source) => match rule.origin {
                Origin::Task => {
                    return Err(SandboxError::Path {
                        path: rule.path.clone(),
                        source,
                    });
                }
                Origin::Extra => skipped.push(rule.path.clone()),
                Origin::Default => {}
            },
        }
    }
    Ok(Resolved {
        rules: resolved,
        skipped,
    })
}

/// The SBPL profile for resolved `rules` and `egress`.
pub fn profile(rules: &[(PathBuf, Access)], egress: &Egress) -> Result<String, SandboxError> {
    let mut p = String::from(PREAMBLE);
    p.push_str("\n; Files: metadata everywhere, contents only where the policy says\n");
    p.push_str("(allow file-read-metadata)\n");
    let read: Vec<&Path> = rules.iter().map(|(path, _)| path.as_path()).collect();
    let write: Vec<&Path> = rules
        .iter()
        .filter(|(_, a)| *a == Access::ReadWrite)
        .map(|(path, _)| path.as_path())
        .collect();
    push_filter_rule(&mut p, "file-read*", &read)?;
    push_filter_rule(&mut p, "file-write*", &write)?;
    push_filter_rule(&mut p, "file-ioctl", &write)?;
    p.push_str("\n; Network\n");
    match egress {
        Egress::Allow => p.push_str("(allow network*)\n"),
        Egress::Deny | Egress::Ports(_) => {
            // Local sockets, binding and listening stay allowed; only outgoing IP is filtered,
            // as with Landlock's connect rules.
            p.push_str("(allow system-socket)\n");
            p.push_str("(allow network-bind (local ip \"*:*\"))\n");
            p.push_str("(allow network-inbound (local ip \"*:*\"))\n");
            p.push_str("(allow network-outbound (remote unix-socket))\n");
            if let Egress::Ports(ports) = egress {
                for port in ports {
                    let _ = writeln!(p, "(allow network-outbound (remote tcp \"*:{port}\"))");
                }
            }
        }
    }
    Ok(p)
}

/// `(allow <op> (subpath "…") …)`, or nothing for an empty list.
fn push_filter_rule(p: &mut String, op: &str, paths: &[&Path]) -> Result<(), SandboxError> {
    if paths.is_empty() {
        return Ok(());
    }
    let _ = writeln!(p, "(allow {op}");
    for path in paths {
        let _ = writeln!(p, "  (subpath {})", quote(path)?);
    }
    p.push_str(")\n");
    Ok(())
}

/// An SBPL string literal. Backslash and double quote are escaped; control characters are
/// written as `\xNN`, so a path cannot end the literal or the profile line.
fn quote(path: &Path) -> Result<String, SandboxError> {
    let s = path
        .to_str()
        .ok_or_else(|| SandboxError::ProfilePath(path.to_path_buf()))?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Rewrite `spec` to run under `sandbox-exec`. `--` ends sandbox-exec's options, so a program
/// whose name starts with `-` is not read as one.
pub fn wrap(exec: &Path, profile: &str, spec: CommandSpec) -> CommandSpec {
    let mut args: Vec<OsString> = vec!["-p".into(), profile.into(), "--".into(), spec.program];
    args.extend(spec.args);
    CommandSpec {
        program: exec.as_os_str().to_owned(),
        args,
        cwd: spec.cwd,
        env: spec.env,
    }
}

/// The part of every profile that does not depend on the policy.
const PREAMBLE: &str = r#"(version 1)
(deny default)

; Processes: run and fork; see and signal only processes inside this sandbox
(allow process-exec)
(allow process-fork)
(allow process-info* (target same-sandbox))
(allow signal (target same-sandbox))
(allow mach-priv-task-port (target same-sandbox))

; System information and preferences toolchains read
(allow sysctl-read)
(allow user-preference-read)

; Mach services: user/group lookup, logging, TLS trust evaluation
(allow mach-lookup
  (global-name "com.apple.system.opendirectoryd.libinfo")
  (global-name "com.apple.system.opendirectoryd.membership")
  (global-name "com.apple.system.logger")
  (global-name "com.apple.logd")
  (global-name "com.apple.system.notification_center")
  (global-name "com.apple.bsd.dirhelper")
  (global-name "com.apple.coreservices.launchservicesd")
  (global-name "com.apple.lsd.mapdb")
  (global-name "com.apple.SecurityServer")
  (global-name "com.apple.securityd.xpc")
  (global-name "com.apple.trustd.agent")
)

; POSIX shared memory and semaphores (Python multiprocessing)
(allow ipc-posix-shm)
(allow ipc-posix-sem)

; Terminals
(allow pseudo-tty)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<(PathBuf, Access)> {
        vec![
            ("/usr".into(), Access::Read),
            ("/private/etc/hosts".into(), Access::Read),
            ("/dev/null".into(), Access::ReadWrite),
            ("/Users/u/work/wt".into(), Access::ReadWrite),
            (
                "/private/var/folders/x/buildd-task-1".into(),
                Access::ReadWrite,
            ),
        ]
    }

    #[test]
    fn profile_with_egress_denied() {
        insta::assert_snapshot!(profile(&rules(), &Egress::Deny).unwrap());
    }

    #[test]
    fn profile_with_network_allowed_or_by_port() {
        let allowed = profile(&rules(), &Egress::Allow).unwrap();
        assert!(allowed.contains("(allow network*)\n"));
        assert!(!allowed.contains("remote tcp"));
        let ports = profile(&rules(), &Egress::Ports(vec![443, 8443])).unwrap();
        assert!(ports.contains("(allow network-outbound (remote tcp \"*:443\"))\n"));
        assert!(ports.contains("(allow network-outbound (remote tcp \"*:8443\"))\n"));
        assert!(!ports.contains("(allow network*)"));
    }

    #[test]
    fn a_hostile_path_cannot_break_out_of_its_literal() {
        let evil = PathBuf::from("/Users/u/wt\")\n(allow file-write* (subpath \"/\")) ;\\");
        let p = profile(&[(evil, Access::ReadWrite)], &Egress::Deny).unwrap();
        assert!(
            p.contains(r#"(subpath "/Users/u/wt\")\x0a(allow file-write* (subpath \"/\")) ;\\")"#)
        );
        // Every line that opens an allow rule is one we wrote.
        assert!(
            !p.lines()
                .any(|l| l.starts_with("(allow file-write* (subpath"))
        );
    }

    #[test]
    fn wrap_runs_the_program_under_sandbox_exec() {
        let spec = CommandSpec {
            program: "bash".into(),
            args: vec!["-c".into(), "echo hi".into()],
            cwd: "/w".into(),
            env: vec![("A".into(), "1".into())],
        };
        let wrapped = wrap(Path::new(SANDBOX_EXEC), "(version 1)", spec);
        assert_eq!(wrapped.program, OsString::from(SANDBOX_EXEC));
        assert_eq!(
            wrapped.args,
            ["-p", "(version 1)", "--", "bash", "-c", "echo hi"]
                .map(OsString::from)
                .to_vec()
        );
        assert_eq!(wrapped.cwd, PathBuf::from("/w"));
        assert_eq!(wrapped.env.len(), 1);
    }

    #[test]
    fn resolve_skips_missing_defaults_and_refuses_a_missing_task_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let rule = |path: &Path, origin| PathRule {
            path: path.to_path_buf(),
            access: Access::Read,
            origin,
        };
        let missing = dir.path().join("missing");
        let resolved = resolve(&[
            rule(dir.path(), Origin::Task),
            rule(&missing, Origin::Default),
            rule(&missing, Origin::Extra),
        ])
        .unwrap();
        assert_eq!(resolved.rules, vec![(real, Access::Read)]);
        assert_eq!(resolved.skipped, vec![missing.clone()]);
        assert!(resolve(&[rule(&missing, Origin::Task)]).is_err());
    }
}
