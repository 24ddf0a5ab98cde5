//! Confinement: every path the model names is turned into a real path inside
//! the task's checkout, or refused.
//!
//! The model's paths are untrusted input. The rules, in the order they are
//! checked:
//! - a path is taken relative to the checkout; an absolute path is accepted
//!   only if it names something inside the checkout;
//! - a path whose `..` components climb out of the checkout is refused before
//!   the file system is consulted, so a refusal never says whether something
//!   outside exists;
//! - an existing path is canonicalized by the OS (symlinks anywhere in it are
//!   followed exactly as `open` would follow them) and must land inside;
//! - a path that does not exist yet (a file about to be created) must have its
//!   nearest existing ancestor inside the checkout, and the part below that
//!   ancestor must be plain names (no `..`), so the directories created for it
//!   are real directories inside.
//!
//! The file tools (`editor`, `search`) call [`Confined`]; the shell is not
//! confined by paths (it runs as the agent's user with the checkout as cwd).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused. The messages are written for the model: they say
/// what was wrong and name the path as it was given.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "`{path}` is outside the checkout; use a path inside it (relative paths are relative to the checkout)"
    )]
    Outside { path: String },
    #[error("`{path}` goes through a symbolic link that leads outside the checkout")]
    SymlinkOutside { path: String },
    #[error("`{path}` is a symbolic link that points nowhere; refusing to write through it")]
    Dangling { path: String },
    #[error("`{path}` does not exist")]
    NotFound { path: String },
    #[error("`{path}` is not a valid path: {reason}")]
    Invalid { path: String, reason: &'static str },
    #[error("cannot access `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The checkout, canonicalized once, and the rules for paths inside it.
#[derive(Debug, Clone)]
pub struct Confined {
    root: PathBuf,
}

impl Confined {
    /// Confine paths to `checkout`. If the checkout cannot be canonicalized
    /// (it does not exist yet), the path is kept as given: every later check
    /// then compares against it, which can only refuse more, never less.
    pub fn new(checkout: PathBuf) -> Self {
        let root = match std::fs::canonicalize(&checkout) {
            Ok(root) => root,
            Err(_) => checkout,
        };
        Self { root }
    }

    /// The canonical checkout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the checkout, shown to the model relative to it
    /// (`.` for the checkout itself).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    /// Resolve a path that must already exist (to read, edit, list or search).
    /// The result is canonical and inside the checkout.
    pub fn existing(&self, raw: &str) -> Result<PathBuf, PathError> {
        let joined = self.join_checked(raw)?;
        match std::fs::canonicalize(&joined) {
            Ok(real) => self.inside(real, raw),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A dangling symlink also reports NotFound; say which it is.
                if is_symlink(&joined) {
                    Err(PathError::Dangling {
                        path: raw.to_string(),
                    })
                } else {
                    Err(PathError::NotFound {
                        path: raw.to_string(),
                    })
                }
            }
            Err(source) => Err(PathError::Io {
                path: raw.to_string(),
                source,
            }),
        }
    }

    /// Resolve a path to write to, which may not exist yet. If it exists it
    /// is resolved like [`Confined::existing`]; otherwise the nearest
    /// existing ancestor must be a directory inside the checkout and the rest
    /// must be plain names. The caller creates the missing directories and
    /// must re-check them with [`Confined::recheck_dir`] before writing.
    pub fn for_write(&self, raw: &str) -> Result<PathBuf, PathError> {
        let joined = self.join_checked(raw)?;
        if std::fs::symlink_metadata(&joined).is_ok() {
            return self.existing(raw);
        }
        let mut ancestor = joined.as_path();
        let mut tail: Vec<&std::ffi::OsStr> = Vec::new();
        loop {
            match std::fs::symlink_metadata(ancestor) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(PathError::Invalid {
                        path: raw.to_string(),
                        reason: "a parent of it is a file, not a directory",
                    });
                }
                Err(source) => {
                    return Err(PathError::Io {
                        path: raw.to_string(),
                        source,
                    });
                }
            }
            // `joined` is absolute, so popping always ends at `/`, which exists.
            let Some(parent) = ancestor.parent() else {
                return Err(PathError::Outside {
                    path: raw.to_string(),
                });
            };
            match ancestor.components().next_back() {
                Some(Component::Normal(name)) => tail.push(name),
                Some(Component::CurDir) => {}
                // `missing/../x`: what `..` means depends on directories that
                // do not exist yet; refuse rather than guess.
                _ => {
                    return Err(PathError::Invalid {
                        path: raw.to_string(),
                        reason: "`..` after a directory that does not exist",
                    });
                }
            }
            ancestor = parent;
        }
        let real_ancestor = match std::fs::canonicalize(ancestor) {
            Ok(real) => self.inside(real, raw)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PathError::Dangling {
                    path: raw.to_string(),
                });
            }
            Err(source) => {
                return Err(PathError::Io {
                    path: raw.to_string(),
                    source,
                });
            }
        };
        if !real_ancestor.is_dir() {
            return Err(PathError::Invalid {
                path: raw.to_string(),
                reason: "a parent of it is a file, not a directory",
            });
        }
        let mut out = real_ancestor;
        for name in tail.iter().rev() {
            out.push(name);
        }
        Ok(out)
    }

    /// After creating the parents of a [`Confined::for_write`] result, check
    /// that the parent directory still resolves inside the checkout (someone
    /// may have raced a symlink into place).
    pub fn recheck_dir(&self, dir: &Path, raw: &str) -> Result<(), PathError> {
        let real = std::fs::canonicalize(dir).map_err(|source| PathError::Io {
            path: raw.to_string(),
            source,
        })?;
        self.inside(real, raw).map(|_| ())
    }

    /// Join `raw` onto the checkout and refuse it if its `..` components
    /// climb out lexically. No file system access.
    fn join_checked(&self, raw: &str) -> Result<PathBuf, PathError> {
        if raw.contains('\0') {
            return Err(PathError::Invalid {
                path: raw.escape_debug().to_string(),
                reason: "it contains a NUL byte",
            });
        }
        let given = Path::new(raw);
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.root.join(given)
        };
        if !lexically_normal(&joined).starts_with(&self.root) {
            return Err(PathError::Outside {
                path: raw.to_string(),
            });
        }
        Ok(joined)
    }

    /// Accept a canonical path only if it is inside the checkout. The lexical
    /// check already passed, so a path that lands outside got there through a
    /// symlink.
    fn inside(&self, real: PathBuf, raw: &str) -> Result<PathBuf, PathError> {
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(PathError::SymlinkOutside {
                path: raw.to_string(),
            })
        }
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// Resolve `.` and `..` textually (`/a/b/../c` → `/a/c`; `..` at `/` stays at
/// `/`). Only used to refuse early; the OS decides what a path really means.
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _outside: tempfile::TempDir,
        _checkout: tempfile::TempDir,
        outside: PathBuf,
        confined: Confined,
    }

    /// A checkout with `src/lib.rs`, and a sibling directory outside it with
    /// `secret.txt`.
    fn fixture() -> Fixture {
        let outside_dir = tempfile::tempdir().expect("tempdir");
        let checkout_dir = tempfile::tempdir().expect("tempdir");
        let outside = std::fs::canonicalize(outside_dir.path()).expect("canon");
        std::fs::write(outside.join("secret.txt"), "s3cret").expect("write");
        std::fs::create_dir(checkout_dir.path().join("src")).expect("mkdir");
        std::fs::write(checkout_dir.path().join("src/lib.rs"), "fn a() {}\n").expect("write");
        let confined = Confined::new(checkout_dir.path().to_path_buf());
        Fixture {
            _outside: outside_dir,
            _checkout: checkout_dir,
            outside,
            confined,
        }
    }

    #[test]
    fn relative_and_absolute_paths_inside_resolve() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        let want = root.join("src/lib.rs");
        assert_eq!(f.confined.existing("src/lib.rs").expect("rel"), want);
        assert_eq!(
            f.confined.existing("./src/../src/lib.rs").expect("dots"),
            want
        );
        let abs = want.to_string_lossy().into_owned();
        assert_eq!(f.confined.existing(&abs).expect("abs"), want);
        assert_eq!(f.confined.existing("").expect("empty"), root);
        assert_eq!(f.confined.existing(".").expect("dot"), root);
        assert_eq!(f.confined.display(&want), "src/lib.rs");
        assert_eq!(f.confined.display(&root), ".");
    }

    #[test]
    fn dotdot_escape_is_refused() {
        let f = fixture();
        for raw in ["../x", "src/../../x", "..", "src/../..", "./../secret.txt"] {
            let err = f.confined.existing(raw).expect_err(raw);
            assert!(matches!(err, PathError::Outside { .. }), "{raw}: {err}");
            let err = f.confined.for_write(raw).expect_err(raw);
            assert!(matches!(err, PathError::Outside { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn absolute_path_outside_is_refused_without_saying_whether_it_exists() {
        let f = fixture();
        for raw in ["/etc/passwd", "/definitely/not/here"] {
            let err = f.confined.existing(raw).expect_err(raw);
            assert!(matches!(err, PathError::Outside { .. }), "{raw}: {err}");
            let err = f.confined.for_write(raw).expect_err(raw);
            assert!(matches!(err, PathError::Outside { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn symlink_to_outside_file_is_refused() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        symlink(f.outside.join("secret.txt"), root.join("link")).expect("symlink");
        let err = f.confined.existing("link").expect_err("file link");
        assert!(matches!(err, PathError::SymlinkOutside { .. }), "{err}");
        let err = f.confined.for_write("link").expect_err("file link write");
        assert!(matches!(err, PathError::SymlinkOutside { .. }), "{err}");
    }

    #[test]
    fn symlink_to_outside_dir_is_refused_in_any_position() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        symlink(&f.outside, root.join("out")).expect("symlink");
        for raw in ["out", "out/secret.txt", "out/new.txt", "out/a/b/new.txt"] {
            let err = f.confined.existing(raw).expect_err(raw);
            assert!(
                matches!(
                    err,
                    PathError::SymlinkOutside { .. } | PathError::NotFound { .. }
                ),
                "{raw}: {err}"
            );
            let err = f.confined.for_write(raw).expect_err(raw);
            assert!(
                matches!(err, PathError::SymlinkOutside { .. }),
                "{raw}: {err}"
            );
        }
    }

    #[test]
    fn symlink_then_dotdot_follows_the_link_like_the_os() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        // `out/..` is lexically the checkout but really the outside's parent.
        symlink(f.outside.join("secret.txt"), root.join("s")).expect("symlink");
        std::fs::create_dir(f.outside.join("d")).expect("mkdir");
        symlink(f.outside.join("d"), root.join("out")).expect("symlink");
        let err = f.confined.existing("out/../d").expect_err("escape");
        assert!(matches!(err, PathError::SymlinkOutside { .. }), "{err}");
    }

    #[test]
    fn symlink_inside_the_checkout_is_fine() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        symlink(root.join("src"), root.join("alias")).expect("symlink");
        assert_eq!(
            f.confined.existing("alias/lib.rs").expect("inside"),
            root.join("src/lib.rs")
        );
        assert_eq!(
            f.confined.for_write("alias/new/x.rs").expect("inside"),
            root.join("src/new/x.rs")
        );
    }

    #[test]
    fn dangling_symlink_is_refused_for_write() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        symlink(f.outside.join("nope.txt"), root.join("dangling")).expect("symlink");
        let err = f.confined.for_write("dangling").expect_err("dangling");
        assert!(matches!(err, PathError::Dangling { .. }), "{err}");
        let err = f.confined.existing("dangling").expect_err("dangling");
        assert!(matches!(err, PathError::Dangling { .. }), "{err}");
        assert!(!f.outside.join("nope.txt").exists());
    }

    #[test]
    fn new_file_below_missing_dirs_resolves_inside() {
        let f = fixture();
        let root = f.confined.root().to_path_buf();
        assert_eq!(
            f.confined.for_write("a/b/./c.txt").expect("new"),
            root.join("a/b/c.txt")
        );
        let err = f
            .confined
            .for_write("a/../b.txt")
            .expect_err("dotdot in tail");
        assert!(matches!(err, PathError::Invalid { .. }), "{err}");
        let err = f
            .confined
            .for_write("src/lib.rs/x")
            .expect_err("file parent");
        assert!(matches!(err, PathError::Invalid { .. }), "{err}");
    }

    #[test]
    fn nul_byte_is_refused() {
        let f = fixture();
        let err = f.confined.existing("a\0b").expect_err("nul");
        assert!(matches!(err, PathError::Invalid { .. }), "{err}");
    }

    #[test]
    fn missing_checkout_refuses_rather_than_allows() {
        let confined = Confined::new(PathBuf::from("/nonexistent/checkout"));
        assert!(confined.existing("/etc/passwd").is_err());
        assert!(confined.existing("x").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("..".to_string()),
                Just(".".to_string()),
                Just("src".to_string()),
                Just("lib.rs".to_string()),
                Just("out".to_string()),
                Just("loop".to_string()),
                Just("".to_string()),
                "[a-z]{1,3}",
            ]
        }

        fn raw_path() -> impl Strategy<Value = String> {
            (any::<bool>(), prop::collection::vec(segment(), 0..8)).prop_map(|(abs, segs)| {
                let joined = segs.join("/");
                if abs { format!("/{joined}") } else { joined }
            })
        }

        proptest! {
            /// Whatever the model sends, an accepted path is inside the
            /// checkout once the OS resolves it, and resolving never panics.
            #[test]
            fn accepted_paths_are_inside(raws in prop::collection::vec(raw_path(), 1..16)) {
                let f = fixture();
                let root = f.confined.root().to_path_buf();
                symlink(&f.outside, root.join("out")).expect("symlink");
                symlink(root.join("src"), root.join("loop")).expect("symlink");
                for raw in &raws {
                    if let Ok(p) = f.confined.existing(raw) {
                        let real = std::fs::canonicalize(&p).expect("exists");
                        prop_assert!(real.starts_with(&root), "{raw} -> {}", real.display());
                    }
                    if let Ok(p) = f.confined.for_write(raw) {
                        prop_assert!(p.starts_with(&root), "{raw} -> {}", p.display());
                        let mut existing = p.as_path();
                        while !existing.exists() {
                            existing = existing.parent().expect("root exists");
                        }
                        let real = std::fs::canonicalize(existing).expect("exists");
                        prop_assert!(real.starts_with(&root), "{raw} -> {}", real.display());
                    }
                }
            }
        }
    }
}
