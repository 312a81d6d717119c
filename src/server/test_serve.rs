//! A server in this process, on a fresh data directory, for unit tests of the modules that
//! talk to a real server (the hand-served calls here, the bench's drivers in `cli`). It lives
//! in `server` so that those tests depend downward only.

use std::path::PathBuf;

pub(crate) struct TestServe {
    pub(crate) addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), super::ServerError>>,
    dir: PathBuf,
}

impl TestServe {
    pub(crate) async fn start() -> TestServe {
        let dir = fresh_dir();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = crate::config::Config::new(&dir);
        let task = tokio::spawn(super::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServe {
            addr,
            stop,
            task,
            dir,
        }
    }

    /// Stops the server, checks it ended well and removes its data.
    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn fresh_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("taskhive-test-serve-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
