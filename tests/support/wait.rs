//! Waiting for something a test started to become true (a server listening, a socket created, a
//! screen showing a word): poll until it holds and, past a deadline, fail with what was last
//! seen. Deadlines only bound a hang: nothing here measures or asserts how fast anything was.

use std::future::Future;
use std::time::{Duration, Instant};

/// Call `probe` every `every` until it gives a value; `None` when `within` has passed first.
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Call `probe` every `every` until it returns `Ok`. Past `within` the test fails with
/// "waited {within} for {what}; " and the text of the last `Err` (what the probe saw).
pub fn until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let mut seen = String::new();
    let got = poll(within, every, || probe().map_err(|s| seen = s).ok());
    got.unwrap_or_else(|| panic!("waited {within:?} for {what}; {seen}"))
}

/// `poll` for a probe that is itself async (an HTTP request); sleeps on the runtime's timer.
pub async fn poll_async<T, F: Future<Output = Option<T>>>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
