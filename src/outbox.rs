//! The durable outbox: reports the server must see survive a crash.
//!
//! Before the agent sends a terminal report it writes it to a small journal in
//! the state dir, and removes it once the server acknowledged it (2xx, or
//! 409/404 meaning the server had already closed the worker). While a task
//! runs, an *active* entry names the worker, the agent's pid and the latest
//! progress (refreshed at most every 10 s, `worker/link.rs`). On start-up the agent replays what is left: terminal reports are
//! sent again, and active entries whose process is gone become a `failed`
//! report, so a `kill -9` costs the server one restart, not a 15-minute expiry.
//!
//! Entries are one file per worker and kind, written to a temp file and renamed
//! into place, so concurrent agents never corrupt each other's entries. Replay
//! takes an exclusive lock file so two agents starting together do not both
//! send the same report. A file that cannot be parsed is moved to `corrupt/`
//! with a warning.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::buildd::types::WorkerUpdate;

const FORMAT_VERSION: u32 = 1;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A task is running in process `pid`; `update` is its latest progress.
    Active,
    /// A terminal report not yet acknowledged.
    Terminal,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    pub kind: EntryKind,
    /// The server the worker belongs to (an outbox may serve several).
    pub server: String,
    pub worker_id: String,
    pub task_id: String,
    pub pid: u32,
    /// The PATCH body to send (a `WorkerUpdate` as JSON).
    pub update: serde_json::Value,
}

/// The journal in `<state dir>/outbox`.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// Replay holds this lock; dropping it releases it.
pub struct ReplayLock {
    _lock: nix::fcntl::Flock<fs::File>,
}

impl Outbox {
    /// Open (creating, private to the user) `<state_dir>/outbox`.
    pub fn open(state_dir: &Path) -> io::Result<Outbox> {
        let dir = state_dir.join("outbox");
        fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Reports can hold summaries of private code: owner only.
            let _ = fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700));
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        }
        Ok(Outbox { dir })
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, worker_id: &str, kind: EntryKind) -> PathBuf {
        let k = match kind {
            EntryKind::Active => "active",
            EntryKind::Terminal => "terminal",
        };
        self.dir.join(format!("{worker_id}.{k}.json"))
    }

    /// Write (or replace) an entry atomically.
    pub fn write(
        &self,
        kind: EntryKind,
        server: &str,
        worker_id: &str,
        task_id: &str,
        update: &WorkerUpdate,
    ) -> io::Result<()> {
        let entry = Entry {
            version: FORMAT_VERSION,
            kind,
            server: server.to_string(),
            worker_id: worker_id.to_string(),
            task_id: task_id.to_string(),
            pid: std::process::id(),
            update: serde_json::to_value(update).map_err(io::Error::other)?,
        };
        let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        let final_path = self.path(worker_id, kind);
        let tmp = self
            .dir
            .join(format!(".{worker_id}.{}.tmp", std::process::id()));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            // Terminal reports must survive a power cut; progress can be lost.
            if kind == EntryKind::Terminal {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, &final_path)?;
        if kind == EntryKind::Terminal {
            // The terminal report supersedes what a crash would have reported.
            let _ = fs::remove_file(self.path(worker_id, EntryKind::Active));
        }
        Ok(())
    }

    /// Forget everything about a worker (its report was acknowledged).
    pub fn remove(&self, worker_id: &str) {
        for kind in [EntryKind::Active, EntryKind::Terminal] {
            let _ = fs::remove_file(self.path(worker_id, kind));
        }
    }

    /// Take the replay lock, or `None` if another agent is replaying now.
    pub fn lock_for_replay(&self) -> io::Result<Option<ReplayLock>> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".replay.lock"))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(ReplayLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// Entries left for `server`, oldest first. Unreadable files are moved
    /// to `corrupt/` and reported through `on_corrupt`.
    pub fn pending(&self, server: &str, mut on_corrupt: impl FnMut(&Path, &str)) -> Vec<Entry> {
        let mut found: Vec<(std::time::SystemTime, Entry)> = Vec::new();
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
                .and_then(|entry| {
                    if entry.version != FORMAT_VERSION {
                        Err(format!("unknown format version {}", entry.version))
                    } else if path != self.path(&entry.worker_id, entry.kind) {
                        Err("file name does not match its content".into())
                    } else {
                        Ok(entry)
                    }
                });
            match parsed {
                Ok(entry) if entry.server == server => {
                    let mtime = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    found.push((mtime, entry));
                }
                Ok(_) => {}
                Err(why) => {
                    let corrupt = self.dir.join("corrupt");
                    let _ = fs::create_dir_all(&corrupt);
                    let _ = fs::rename(&path, corrupt.join(&name));
                    on_corrupt(&path, &why);
                }
            }
        }
        found.sort_by_key(|(t, _)| *t);
        found.into_iter().map(|(_, e)| e).collect()
    }
}

/// Whether `pid` is a live process other than this one.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::WorkerStatus;

    fn failed(reason: &str) -> WorkerUpdate {
        WorkerUpdate {
            status: Some(WorkerStatus::Failed),
            error: Some(reason.into()),
            ..Default::default()
        }
    }

    #[test]
    fn entries_round_trip_and_are_removed_once_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        ob.write(
            EntryKind::Terminal,
            "http://s",
            "wkr_1",
            "tsk_1",
            &failed("x"),
        )
        .unwrap();
        ob.write(
            EntryKind::Active,
            "http://s",
            "wkr_2",
            "tsk_2",
            &WorkerUpdate::default(),
        )
        .unwrap();
        ob.write(
            EntryKind::Terminal,
            "http://other",
            "wkr_3",
            "tsk_3",
            &failed("y"),
        )
        .unwrap();
        let pending = ob.pending("http://s", |_, _| panic!("nothing is corrupt"));
        assert_eq!(pending.len(), 2);
        let t = pending
            .iter()
            .find(|e| e.kind == EntryKind::Terminal)
            .unwrap();
        assert_eq!(t.worker_id, "wkr_1");
        assert_eq!(t.update["error"], "x");
        ob.remove("wkr_1");
        ob.remove("wkr_2");
        assert!(ob.pending("http://s", |_, _| {}).is_empty());
        assert_eq!(ob.pending("http://other", |_, _| {}).len(), 1);
    }

    #[test]
    fn a_needs_input_report_keeps_its_waiting_for() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let mut update = failed("needs_input: Which DB?");
        update.waiting_for = Some(crate::buildd::types::WaitingFor {
            kind: "question".into(),
            prompt: "Which DB?".into(),
            options: vec![crate::buildd::types::WaitingForOption {
                label: "pg".into(),
                description: None,
            }],
        });
        ob.write(EntryKind::Terminal, "http://s", "wkr_1", "tsk_1", &update)
            .unwrap();
        let pending = ob.pending("http://s", |_, _| panic!("nothing is corrupt"));
        assert_eq!(
            pending[0].update["waitingFor"],
            serde_json::json!({"type": "question", "prompt": "Which DB?", "options": [{"label": "pg"}]}),
            "/respond needs it on the failed worker"
        );
    }

    #[test]
    fn corrupt_entries_are_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        fs::write(ob.dir().join("wkr_9.terminal.json"), b"{not json").unwrap();
        let mut seen = Vec::new();
        assert!(
            ob.pending("http://s", |p, _| seen.push(p.to_path_buf()))
                .is_empty()
        );
        assert_eq!(seen.len(), 1);
        assert!(ob.dir().join("corrupt/wkr_9.terminal.json").exists());
    }

    #[test]
    fn only_one_replayer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let first = ob.lock_for_replay().unwrap();
        assert!(first.is_some());
        // flock locks belong to the open file description: a second open
        // in the same process conflicts just as another process would.
        assert!(ob.lock_for_replay().unwrap().is_none());
        drop(first);
        assert!(ob.lock_for_replay().unwrap().is_some());
    }

    #[test]
    fn liveness() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
    }
}
