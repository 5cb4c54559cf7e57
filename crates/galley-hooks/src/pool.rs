//! The threads that run routes and after-commit hooks, off the async runtime's threads
//! (a handler blocks on its own reads and writes). Each has its own engine (engine.rs).

use crossbeam_channel::{Receiver, Sender};

type Task = Box<dyn FnOnce() + Send>;

pub(crate) struct Pool {
    tasks: Sender<Task>,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Pool {
        let (tasks, rx) = crossbeam_channel::unbounded::<Task>();
        for i in 0..size.max(1) {
            let rx: Receiver<Task> = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("galley-hooks-{i}"))
                .spawn(move || {
                    while let Ok(task) = rx.recv() {
                        task();
                    }
                });
        }
        Pool { tasks }
    }

    /// Runs `f` on a pool thread and waits for its answer without blocking the runtime.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
}
