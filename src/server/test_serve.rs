//! A server in this process, on a fresh data directory, for unit tests of the modules that
//! talk to a real server (the hand-served calls here, the bench's drivers in `cli`). It lives
//! in `server` so that those tests depend downward only.

pub(crate) struct TestServe {
    pub(crate) addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), super::ServerError>>,
    _dir: tempfile::TempDir,
}

impl TestServe {
    pub(crate) async fn start() -> TestServe {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = crate::config::Config::new(dir.path());
        let task = tokio::spawn(super::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServe {
            addr,
            stop,
            task,
            _dir: dir,
        }
    }

    /// Stops the server, checks it ended well and removes its data (the directory's drop).
    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}
