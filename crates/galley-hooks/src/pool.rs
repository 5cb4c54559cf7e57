//! The threads that run routes and after-commit hooks, off the async runtime's threads
//! (a handler blocks on its own reads and writes). Each has its own engine (engine.rs).
//!
//! The queue is a mutex and a condition variable: an idle thread sleeps on a futex until a
//! task comes. (A crossbeam channel's receivers spin and `sched_yield` before they sleep:
//! with 16 idle threads on 2 cores, a profile of the hook route showed 11 % of the
//! server's time in `sched_yield` and 20 % in task switches.)

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;

type Task = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    tasks: Mutex<(VecDeque<Task>, bool)>,
    ready: Condvar,
}

pub(crate) struct Pool {
    queue: Arc<Queue>,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Pool {
        let queue = Arc::new(Queue::default());
        for i in 0..size.max(1) {
            let q = queue.clone();
            let _ = std::thread::Builder::new()
                .name(format!("galley-hooks-{i}"))
                .spawn(move || loop {
                    let task = {
                        let mut t = q.tasks.lock();
                        loop {
                            if let Some(task) = t.0.pop_front() {
                                break task;
                            }
                            if t.1 {
                                return;
                            }
                            q.ready.wait(&mut t);
                        }
                    };
                    task();
                });
        }
        Pool { queue }
    }

    /// Runs `f` on a pool thread and waits for its answer without blocking the runtime.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut t = self.queue.tasks.lock();
            if t.1 {
                return None;
            }
            t.0.push_back(Box::new(move || {
                let _ = tx.send(f());
            }));
        }
        self.queue.ready.notify_one();
        rx.await.ok()
    }
}

impl Drop for Pool {
    /// The threads end once the tasks queued are done.
    fn drop(&mut self) {
        self.queue.tasks.lock().1 = true;
        self.queue.ready.notify_all();
    }
}
