//! A task's private temporary directory: the only temp space its confined commands can write
//! (the shared `/tmp` is closed, since it holds other tasks' and other users' files).
//!
//! Created `0700` with a random name under the root the config layer chose, removed with
//! everything in it when the task's [`super::TaskSandbox`] is dropped. Next to it, outside
//! what the commands may write, the task's global git config (`<dir>.gitconfig`), removed
//! with it.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// An owned temp directory, removed on drop.
#[derive(Debug)]
pub(super) struct TaskTemp {
    path: PathBuf,
    /// `<path>.gitconfig`, once written.
    git_config: Option<PathBuf>,
}

impl TaskTemp {
    /// Create `<root>/buildd-task-<random>`.
    pub(super) fn create(root: &Path) -> Result<Self, SandboxError> {
        let err = |source| SandboxError::TempDir {
            path: root.to_path_buf(),
            source,
        };
        let root = std::fs::canonicalize(root).map_err(err)?;
        // A name collision (astronomically unlikely) is retried with a new name; any other
        // failure is the root's fault and reported.
        let mut last = None;
        for _ in 0..4 {
            let bits: u64 = rand::random();
            let path = root.join(format!("buildd-task-{bits:016x}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    return Ok(Self {
                        path,
                        git_config: None,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(
            last.unwrap_or_else(|| std::io::Error::other("no free name"))
        ))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Write `text` as `<path>.gitconfig` (a sibling of the directory, so a rule can make it
    /// readable without making it writable) and return its path.
    pub(super) fn write_git_config(&mut self, text: &str) -> Result<PathBuf, SandboxError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".gitconfig");
        let file = PathBuf::from(name);
        std::fs::write(&file, text).map_err(|source| SandboxError::TempDir {
            path: file.clone(),
            source,
        })?;
        self.git_config = Some(file.clone());
        Ok(file)
    }

    pub(super) fn git_config(&self) -> Option<&Path> {
        self.git_config.as_deref()
    }
}

impl Drop for TaskTemp {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the task's temp dir");
        }
        if let Some(file) = &self.git_config {
            let _ = std::fs::remove_file(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn is_private_and_removed_with_its_contents() {
        let root = tempfile::tempdir().unwrap();
        let temp = TaskTemp::create(root.path()).unwrap();
        let path = temp.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::create_dir_all(path.join("a/b")).unwrap();
        std::fs::write(path.join("a/b/c"), "x").unwrap();
        drop(temp);
        assert!(!path.exists());
    }

    #[test]
    fn the_git_config_sits_next_to_the_dir_and_goes_with_it() {
        let root = tempfile::tempdir().unwrap();
        let mut temp = TaskTemp::create(root.path()).unwrap();
        let file = temp.write_git_config("[user]\n").unwrap();
        assert_eq!(file.parent(), temp.path().parent());
        assert_eq!(
            file.file_name().unwrap().to_string_lossy(),
            format!(
                "{}.gitconfig",
                temp.path().file_name().unwrap().to_string_lossy()
            )
        );
        assert_eq!(temp.git_config(), Some(file.as_path()));
        drop(temp);
        assert!(!file.exists());
    }

    #[test]
    fn a_missing_root_is_a_typed_error() {
        let err = TaskTemp::create(Path::new("/nonexistent/root")).unwrap_err();
        assert!(matches!(err, SandboxError::TempDir { .. }), "{err:?}");
    }
}
