//! Serving a fake on its own thread and runtime, so sync tests and async
//! tests can both use it, until its handle is dropped.

use std::net::SocketAddr;

use axum::Router;

/// A router being served; dropping it stops the server.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _thread: std::thread::JoinHandle<()>,
}

/// Bind `addr` (`127.0.0.1:0` for an ephemeral port) and serve `app` on a
/// new thread. Panics if it cannot bind: a fake that cannot start is a broken
/// test environment, not a test result.
pub fn in_thread(addr: &str, app: Router, what: &str) -> Served {
    let listener =
        std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {what} on {addr}: {e}"));
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let bound = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    Served {
        addr: bound,
        _stop: stop,
        _thread: thread,
    }
}
