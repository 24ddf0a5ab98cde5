//! The host's default policy paths, opened once per agent rather than once per task.
//!
//! Every task's ruleset grants the same fifty-odd system, toolchain and cache paths, and
//! opening each (`openat` with `O_PATH`, then `fstat`, then `close`) was about half of the
//! agent's system calls per task (issue 14's profile). A Landlock rule names an inode
//! through its descriptor, so a descriptor kept open grants exactly what a fresh one would,
//! as long as the path still names that inode. Paths can be replaced (a toolchain
//! reinstalled, a cache dir deleted and made again), so a kept descriptor is used for
//! [`FRESH_FOR`] and then opened again. Most defaults name toolchains a host does not have,
//! so "not there" is kept for as long (a toolchain installed meanwhile is granted within a
//! minute); any other failure is not kept. The task's own paths (worktree, git metadata, temp dir) are never kept: they differ per
//! task.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use landlock::PathFd;

/// How long a kept descriptor stands for its path before it is opened again.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(60);

/// A path's descriptor and whether it is a directory.
pub(super) type OpenedPath = (Arc<PathFd>, bool);

/// Descriptors of default paths (or that they are missing), shared by every task of the
/// agent.
#[derive(Default)]
pub(super) struct OpenedPaths {
    kept: Mutex<HashMap<PathBuf, (Option<OpenedPath>, Instant)>>,
}

impl std::fmt::Debug for OpenedPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("OpenedPaths").field("kept", &n).finish()
    }
}

impl OpenedPaths {
    /// `path`'s kept descriptor while it is fresh, else what `open` gives (kept when it
    /// succeeds). `now` is passed in so the expiry can be tested.
    pub(super) fn get_or_open(
        &self,
        path: &Path,
        now: Instant,
        open: impl FnOnce() -> io::Result<(PathFd, bool)>,
    ) -> io::Result<OpenedPath> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((opened, at)) = kept.get(path)
            && now.saturating_duration_since(*at) < FRESH_FOR
        {
            return opened.clone().ok_or_else(|| io::ErrorKind::NotFound.into());
        }
        match open() {
            Ok((fd, is_dir)) => {
                let opened = (Arc::new(fd), is_dir);
                kept.insert(path.to_path_buf(), (Some(opened.clone()), now));
                Ok(opened)
            }
            Err(e) => {
                let missing = e.kind() == io::ErrorKind::NotFound;
                if missing {
                    kept.insert(path.to_path_buf(), (None, now));
                } else {
                    kept.remove(path);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(path: &Path) -> io::Result<(PathFd, bool)> {
        PathFd::new(path)
            .map(|fd| (fd, true))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    #[test]
    fn a_default_path_is_opened_once_while_fresh_and_again_after() {
        let dir = tempfile::tempdir().unwrap();
        let kept = OpenedPaths::default();
        let start = Instant::now();
        let mut opens = 0;
        let mut open = || {
            opens += 1;
            open_dir(dir.path())
        };
        let first = kept.get_or_open(dir.path(), start, &mut open).unwrap();
        let again = kept
            .get_or_open(dir.path(), start + FRESH_FOR / 2, &mut open)
            .unwrap();
        assert!(Arc::ptr_eq(&first.0, &again.0), "the kept descriptor");
        let later = kept
            .get_or_open(dir.path(), start + FRESH_FOR, &mut open)
            .unwrap();
        assert!(!Arc::ptr_eq(&first.0, &later.0), "opened again when stale");
        assert_eq!(opens, 2);
    }

    #[test]
    fn a_missing_path_is_tried_again_once_stale_and_other_failures_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let later = dir.path().join("later");
        let kept = OpenedPaths::default();
        let now = Instant::now();
        let open = || {
            PathFd::new(&later)
                .map(|fd| (fd, true))
                .map_err(|_| io::ErrorKind::NotFound.into())
        };
        assert!(kept.get_or_open(&later, now, open).is_err());
        std::fs::create_dir(&later).unwrap();
        let err = kept
            .get_or_open(&later, now, || panic!("kept as missing"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            kept.get_or_open(&later, now + FRESH_FOR, open).is_ok(),
            "tried again"
        );

        let denied = dir.path().join("denied");
        let refuse = || Err(io::ErrorKind::PermissionDenied.into());
        assert!(kept.get_or_open(&denied, now, refuse).is_err());
        assert!(
            kept.get_or_open(&denied, now, || open_dir(dir.path()))
                .is_ok(),
            "not kept"
        );
    }
}
