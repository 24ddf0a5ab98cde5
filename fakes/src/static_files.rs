//! A static file server standing in for GitHub releases (and the GitHub API's
//! `releases/latest`) in the install-script tests and the demo.
//!
//! It serves one directory on `127.0.0.1`, answers `404` for anything that is
//! not a regular file under that directory, refuses methods other than `GET`
//! and `HEAD`, and records every request it gets (method, path, status,
//! `Authorization` header). Tests assert on that record: "the re-run downloaded
//! nothing" is only provable if the server says what it was asked for.
//!
//! The server runs on its own thread with its own runtime, so synchronous tests
//! can start it and then block on a child process without starving it; dropping
//! the [`StaticFiles`] handle stops it.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request path, without the query string, e.g. `/v1.2.3/x.tar.gz`.
    pub path: String,
    /// The status the server answered with.
    pub status: u16,
    /// The `Authorization` header, if the client sent one.
    pub authorization: Option<String>,
}

/// A running static file server; stops when dropped.
#[derive(Debug)]
pub struct StaticFiles {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    root: Arc<PathBuf>,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl StaticFiles {
    /// Serves `root` on an ephemeral port of 127.0.0.1 until the handle is
    /// dropped. Fails if `root` is not a directory or no port can be bound.
    pub fn start(root: impl AsRef<Path>) -> std::io::Result<Self> {
        // Canonical root, so the containment check below compares like with like.
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        // Bind before spawning so the caller gets the address (and any bind
        // error) synchronously, and the port is listening before we return.
        let listener = StdTcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;

        let log = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            root: Arc::new(root),
            log: Arc::clone(&log),
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("static-files".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            tracing::error!(%err, "static-files: cannot adopt listener");
                            return;
                        }
                    };
                    let app = Router::new().fallback(serve).with_state(state);
                    let result = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            // A dropped sender also means "stop".
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(err) = result {
                        tracing::error!(%err, "static-files: server failed");
                    }
                });
            })?;

        Ok(Self {
            addr,
            log,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    /// The requests whose path ends with `suffix` (e.g. `.tar.gz`).
    pub fn requests_ending_with(&self, suffix: &str) -> Vec<RecordedRequest> {
        lock(&self.log)
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

impl Drop for StaticFiles {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned log only means another test thread panicked mid-push; the
/// records themselves are still whole, so keep using them.
fn lock(log: &Mutex<Vec<RecordedRequest>>) -> MutexGuard<'_, Vec<RecordedRequest>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (status, body) = if method != Method::GET && method != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, None)
    } else {
        match resolve(&state.root, uri.path()) {
            None => (StatusCode::NOT_FOUND, None),
            Some(path) => match tokio::fs::read(&path).await {
                Ok(bytes) => (StatusCode::OK, Some(bytes)),
                Err(_) => (StatusCode::NOT_FOUND, None),
            },
        }
    };
    lock(&state.log).push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: status.as_u16(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    match body {
        Some(bytes) if method == Method::HEAD => (
            status,
            [(header::CONTENT_LENGTH, bytes.len().to_string())],
            Body::empty(),
        )
            .into_response(),
        Some(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        None => (status, status.canonical_reason().unwrap_or("error")).into_response(),
    }
}

/// Maps a URL path to a regular file under `root`, or `None`. Only plain
/// path segments are accepted (no `..`, no percent-encoding — the files we
/// serve have plain names), and the result must still be under `root` after
/// resolving symlinks.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.strip_prefix('/')?;
    if relative.is_empty() || relative.contains(['%', '\\', '\0']) {
        return None;
    }
    let relative = Path::new(relative);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let path = root.join(relative).canonicalize().ok()?;
    (path.starts_with(root) && path.is_file()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("v1.0.0")).expect("mkdir");
        std::fs::write(dir.path().join("v1.0.0/a.tar.gz"), b"payload").expect("write");
        dir
    }

    #[test]
    fn resolve_accepts_files_under_root_only() {
        let dir = tree();
        let root = dir.path().canonicalize().expect("canonical root");
        assert_eq!(
            resolve(&root, "/v1.0.0/a.tar.gz"),
            Some(root.join("v1.0.0/a.tar.gz"))
        );
        for bad in [
            "/",
            "",
            "/v1.0.0",
            "/v1.0.0/missing",
            "/../etc/passwd",
            "/v1.0.0/../v1.0.0/a.tar.gz",
            "/v1.0.0/%2e%2e/a.tar.gz",
            "//etc/passwd",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad:?} must not resolve");
        }
    }

    #[test]
    fn resolve_refuses_symlinks_out_of_root() {
        let dir = tree();
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"x").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link"))
            .expect("symlink");
        let root = dir.path().canonicalize().expect("canonical root");
        assert_eq!(resolve(&root, "/link"), None);
    }

    #[tokio::test]
    async fn serves_files_404s_the_rest_and_records_everything() {
        let dir = tree();
        let server = StaticFiles::start(dir.path()).expect("start");
        let base = server.base_url();
        let (status, body) = raw_get(&base, "/v1.0.0/a.tar.gz", Some("Bearer t")).await;
        assert_eq!(status, 200);
        assert_eq!(body, b"payload");
        let (status, _) = raw_get(&base, "/v1.0.0/missing.tar.gz", None).await;
        assert_eq!(status, 404);

        let log = server.requests();
        assert_eq!(
            log,
            vec![
                RecordedRequest {
                    method: "GET".into(),
                    path: "/v1.0.0/a.tar.gz".into(),
                    status: 200,
                    authorization: Some("Bearer t".into()),
                },
                RecordedRequest {
                    method: "GET".into(),
                    path: "/v1.0.0/missing.tar.gz".into(),
                    status: 404,
                    authorization: None,
                },
            ]
        );
        assert_eq!(server.requests_ending_with(".tar.gz").len(), 2);
        assert_eq!(server.requests_ending_with("a.tar.gz").len(), 1);
    }

    /// A minimal HTTP/1.1 GET over a raw socket: the fakes crate has no HTTP
    /// client dependency, and this keeps it that way.
    async fn raw_get(base: &str, path: &str, auth: Option<&str>) -> (u16, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        (status, raw[split + 4..].to_vec())
    }
}
