//! The default allow-lists: the system and toolchains (read-only), devices and build caches
//! (read-write), laid out for Linux or macOS ([`HostOs`]) and moved by the usual variables
//! (`CARGO_HOME`, `XDG_CACHE_HOME`, …) through [`HostPaths`].
//!
//! Every entry names something a build needs and nothing that holds a credential: of
//! `$CARGO_HOME` only `bin/`, the config and the caches (never `credentials.toml`), of `/etc`
//! only named files (never `shadow`, `ssh/`, `sudoers`), nothing of `~/.config`, `~/.ssh`,
//! `~/.aws`, `~/.npmrc`, `~/.docker`. The snapshot test prints the whole Linux list.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment values the default lists depend on, read once by the config layer (nothing
/// in this module reads the process environment itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPaths {
    /// `$HOME`; without it no home-relative default is added.
    pub home: Option<PathBuf>,
    /// The variables in [`HostPaths::VARS`] that were set and not empty.
    vars: Vec<(&'static str, PathBuf)>,
}

impl HostPaths {
    /// Every variable that moves a default path, besides `HOME`.
    pub const VARS: &'static [&'static str] = &[
        "CARGO_HOME",
        "RUSTUP_HOME",
        "GOPATH",
        "GOMODCACHE",
        "GOCACHE",
        "XDG_CACHE_HOME",
        "npm_config_cache",
        "PIP_CACHE_DIR",
        "UV_CACHE_DIR",
        "PYENV_ROOT",
        "NVM_DIR",
        "VOLTA_HOME",
        "BUN_INSTALL",
    ];

    /// Build from a lookup, e.g. `HostPaths::from_lookup(|k| std::env::var_os(k))` in the config
    /// layer, or a map in tests. Relative values are ignored: a relative `CARGO_HOME` would
    /// resolve against whatever directory the child starts in.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let absolute = |v: Option<OsString>| {
            v.filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let home = absolute(lookup("HOME"));
        let vars = Self::VARS
            .iter()
            .filter_map(|k| absolute(lookup(k)).map(|p| (*k, p)))
            .collect();
        Self { home, vars }
    }

    fn var(&self, name: &str) -> Option<&Path> {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_path())
    }

    /// `$NAME`, else `$HOME/<rel>`.
    fn var_or_home(&self, name: &str, rel: &str) -> Option<PathBuf> {
        self.var(name)
            .map(Path::to_path_buf)
            .or_else(|| self.home.as_ref().map(|h| h.join(rel)))
    }

    fn home_join(&self, rel: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(rel))
    }

    fn cargo_home(&self) -> Option<PathBuf> {
        self.var_or_home("CARGO_HOME", ".cargo")
    }

    fn gopath(&self) -> Option<PathBuf> {
        self.var_or_home("GOPATH", "go")
    }

    fn xdg_cache(&self) -> Option<PathBuf> {
        self.var_or_home("XDG_CACHE_HOME", ".cache")
    }
}

/// Which operating system's default layout to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOs {
    Linux,
    MacOs,
}

impl HostOs {
    /// The system this binary was built for.
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            HostOs::MacOs
        } else {
            HostOs::Linux
        }
    }
}

/// System directories every program needs, read-only. `/etc` is listed entry by entry: it also
/// holds `/etc/shadow`, SSH host keys, `sudoers` and `/etc/environment`, which a root agent
/// could otherwise read.
pub fn system_paths(os: HostOs) -> Vec<PathBuf> {
    let (dirs, etc_dir, etc): (&[&str], &str, &[&str]) = match os {
        HostOs::Linux => (LINUX_DIRS, "/etc", LINUX_ETC),
        HostOs::MacOs => (MACOS_DIRS, "/private/etc", MACOS_ETC),
    };
    let mut paths: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
    paths.extend(etc.iter().map(|e| Path::new(etc_dir).join(e)));
    paths
}

const LINUX_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/nix/store",
    "/snap",
    "/home/linuxbrew/.linuxbrew",
    // /proc is readable so that programs can see themselves (/proc/self, /proc/cpuinfo). Other
    // processes' environ, maps, mem, exe and fd targets stay closed by the ptrace checks; see
    // `docs/sandbox.md` for what that relies on.
    "/proc",
    // Of /sys only what runtimes read to size themselves: CPUs, NUMA nodes, cgroup limits.
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/fs/cgroup",
    "/sys/kernel/mm/transparent_hugepage",
    "/run/systemd/resolve",
];

const LINUX_ETC: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "debian_version",
    "gai.conf",
    "gitattributes",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ld.so.preload",
    "locale.alias",
    "locale.conf",
    "localtime",
    "lsb-release",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "profile",
    "profile.d",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
    // Debian's pythons import /etc/pythonX.Y/sitecustomize.py through a symlink.
    "python3",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "java-17-openjdk",
    "java-21-openjdk",
];

const MACOS_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/System",
    "/Library",
    "/opt/homebrew",
    "/Applications/Xcode.app",
    "/private/var/db/timezone",
    "/private/var/db/xcode_select_link",
    "/private/var/run/resolv.conf",
];

const MACOS_ETC: &[&str] = &[
    "group",
    "hosts",
    "localtime",
    "passwd",
    "paths",
    "paths.d",
    "profile",
    "protocols",
    "services",
    "shells",
    "ssl",
    "bashrc",
    "zshrc",
];

/// Device files a confined command reads and writes (`/dev/shm` is shared memory).
pub fn device_paths() -> Vec<PathBuf> {
    [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/pts",
        "/dev/shm",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Toolchain installs under `$HOME`, read-only. Only the parts that hold programs: e.g. of
/// `$CARGO_HOME` only `bin/` and the config, never `credentials.toml`.
pub fn toolchain_paths(host: &HostPaths) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(cargo) = host.cargo_home() {
        paths.push(cargo.join("bin"));
        paths.push(cargo.join("config.toml"));
        paths.push(cargo.join("config"));
        paths.push(cargo.join("env"));
    }
    let homes = [
        host.var_or_home("RUSTUP_HOME", ".rustup"),
        host.var_or_home("PYENV_ROOT", ".pyenv"),
        host.var_or_home("NVM_DIR", ".nvm"),
        host.var_or_home("VOLTA_HOME", ".volta"),
        host.var_or_home("BUN_INSTALL", ".bun")
            .map(|b| b.join("bin")),
        host.gopath().map(|g| g.join("bin")),
        host.home_join("sdk"),
        host.home_join(".local/bin"),
        host.home_join(".local/lib"),
        host.home_join(".local/share/uv/python"),
        host.home_join(".local/share/fnm"),
        host.home_join(".local/share/mise"),
        host.home_join(".asdf"),
        host.home_join(".rbenv"),
        host.home_join(".deno/bin"),
    ];
    paths.extend(homes.into_iter().flatten());
    paths
}

/// Build caches that real builds write to. A confined command can change what is in them, so a
/// hostile task can poison them for later tasks on this host; see `docs/sandbox.md`.
pub fn cache_paths(host: &HostPaths) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(cargo) = host.cargo_home() {
        paths.push(cargo.join("registry"));
        paths.push(cargo.join("git"));
    }
    let cache = host.xdg_cache();
    let caches = [
        host.var("npm_config_cache")
            .map(Path::to_path_buf)
            .or_else(|| host.home_join(".npm")),
        host.var("PIP_CACHE_DIR")
            .map(Path::to_path_buf)
            .or_else(|| cache.as_ref().map(|c| c.join("pip"))),
        host.var("UV_CACHE_DIR")
            .map(Path::to_path_buf)
            .or_else(|| cache.as_ref().map(|c| c.join("uv"))),
        host.var("GOCACHE")
            .map(Path::to_path_buf)
            .or_else(|| cache.as_ref().map(|c| c.join("go-build"))),
        host.var("GOMODCACHE")
            .map(Path::to_path_buf)
            .or_else(|| host.gopath().map(|g| g.join("pkg/mod"))),
        cache.as_ref().map(|c| c.join("yarn")),
        cache.as_ref().map(|c| c.join("pnpm")),
        cache.as_ref().map(|c| c.join("deno")),
        host.home_join(".yarn/berry/cache"),
        host.home_join(".local/share/pnpm/store"),
        host.var_or_home("BUN_INSTALL", ".bun")
            .map(|b| b.join("install/cache")),
        host.home_join(".gradle/caches"),
        host.home_join(".gradle/wrapper"),
        host.home_join(".m2/repository"),
    ];
    paths.extend(caches.into_iter().flatten());
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::sandbox::policy::{Access, SandboxPolicy};

    fn host(home: &str, vars: &[(&str, &str)]) -> HostPaths {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HostPaths::from_lookup(|k| {
            if k == "HOME" {
                return Some(home.into());
            }
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.into())
        })
    }

    fn listing(policy: &SandboxPolicy) -> String {
        policy
            .rules()
            .iter()
            .map(|r| format!("{:?} {}", r.access, r.path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn default_lists_for_a_plain_home() {
        let policy = SandboxPolicy::defaults_for(&host("/home/u", &[]), HostOs::Linux);
        insta::assert_snapshot!(listing(&policy));
    }

    #[test]
    fn macos_defaults_use_macos_names() {
        let policy = SandboxPolicy::defaults_for(&host("/Users/u", &[]), HostOs::MacOs);
        let paths: Vec<&Path> = policy.rules().iter().map(|r| r.path.as_path()).collect();
        assert!(paths.contains(&Path::new("/System")));
        assert!(paths.contains(&Path::new("/private/etc/hosts")));
        assert!(paths.contains(&Path::new("/Users/u/.cargo/registry")));
        assert!(
            !paths
                .iter()
                .any(|p| p.starts_with("/proc") || p.starts_with("/etc"))
        );
    }

    #[test]
    fn variables_move_the_toolchain_and_cache_defaults() {
        let h = host(
            "/home/u",
            &[
                ("CARGO_HOME", "/opt/cargo"),
                ("XDG_CACHE_HOME", "/var/cache/u"),
                ("GOMODCACHE", "/srv/gomod"),
                ("npm_config_cache", "relative/ignored"),
            ],
        );
        let rules = SandboxPolicy::defaults(&h);
        let has = |p: &str, a: Access| {
            rules
                .rules()
                .iter()
                .any(|r| r.path == Path::new(p) && r.access == a)
        };
        assert!(has("/opt/cargo/registry", Access::ReadWrite));
        assert!(has("/opt/cargo/bin", Access::Read));
        assert!(has("/var/cache/u/pip", Access::ReadWrite));
        assert!(has("/srv/gomod", Access::ReadWrite));
        // A relative value is ignored, the home default stays.
        assert!(has("/home/u/.npm", Access::ReadWrite));
    }

    #[test]
    fn nothing_secret_of_home_is_in_the_defaults() {
        for os in [HostOs::Linux, HostOs::MacOs] {
            let policy = SandboxPolicy::defaults_for(&host("/home/u", &[]), os);
            for r in policy.rules() {
                assert_ne!(r.path, Path::new("/home/u"), "the home itself");
                assert_ne!(r.path, Path::new("/etc"), "all of /etc");
                for secret in [
                    ".ssh",
                    ".buildd",
                    ".aws",
                    ".config",
                    ".gitconfig",
                    ".bashrc",
                    ".cargo/credentials",
                    ".npmrc",
                    ".docker",
                    ".kube",
                    ".gnupg",
                    ".netrc",
                ] {
                    assert!(
                        !r.path.starts_with(Path::new("/home/u").join(secret)),
                        "{} exposes ~/{secret}",
                        r.path.display()
                    );
                }
                for secret in [
                    "/etc/shadow",
                    "/etc/ssh",
                    "/etc/sudoers",
                    "/etc/environment",
                ] {
                    assert!(!r.path.starts_with(secret), "{}", r.path.display());
                }
            }
        }
    }
}
