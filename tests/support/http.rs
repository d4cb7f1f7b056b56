//! HTTP on loopback, both ends. `App`: a small real server on 127.0.0.1 for checklist and
//! notification tests, with `/up`, `/slow`, `/metrics` (Prometheus text), and a webhook receiver
//! at `/hook` that records what it gets and can answer 500 or hang; it stops when dropped.
//! `http_get`: one plain GET, for asking a node's app what it serves. `Load`: a bounded load
//! loop that counts failed requests and the versions served. Only 127.0.0.1 is ever contacted
//! by what this module starts itself; `Load` goes where the test points it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Default)]
pub struct AppState {
    pub up_fails: bool,
    pub slow_ms: u64,
    pub errors_total: u64,
    pub requests_total: u64,
    /// Bodies posted to /hook, in order.
    pub hooks: Vec<String>,
    /// How /hook answers: 200, 500, or 0 = never answer.
    pub hook_status: u16,
}

pub struct App {
    pub port: u16,
    pub state: Arc<Mutex<AppState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl App {
    pub async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(AppState {
            hook_status: 200,
            ..Default::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then as much body as Content-Length says.
                    let (head, body) = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                            let len: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            while buf.len() < pos + 4 + len {
                                let Ok(n) = sock.read(&mut chunk).await else {
                                    return;
                                };
                                if n == 0 {
                                    break;
                                }
                                buf.extend_from_slice(&chunk[..n]);
                            }
                            break (head, String::from_utf8_lossy(&buf[pos + 4..]).to_string());
                        }
                    };
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .split('?')
                        .next()
                        .unwrap_or("/")
                        .to_string();
                    let (status, text, delay) = {
                        let mut s = st.lock().unwrap();
                        s.requests_total += 1;
                        match path.as_str() {
                            "/up" if s.up_fails => {
                                s.errors_total += 1;
                                (500, "down".to_string(), 0)
                            }
                            "/up" => (200, "ok".to_string(), 0),
                            "/slow" => (200, "ok".to_string(), s.slow_ms),
                            "/metrics" => (
                                200,
                                format!(
                                    "# TYPE app_requests_total counter\napp_requests_total {}\n# TYPE app_errors_total counter\napp_errors_total {}\n",
                                    s.requests_total, s.errors_total
                                ),
                                0,
                            ),
                            "/hook" => {
                                s.hooks.push(body);
                                match s.hook_status {
                                    0 => (0, String::new(), 0),
                                    c => (c, "{}".to_string(), 0),
                                }
                            }
                            _ => (404, "not found".to_string(), 0),
                        }
                    };
                    if status == 0 {
                        // Hang: hold the connection without answering.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        App { port, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, f: impl FnOnce(&mut AppState)) {
        f(&mut self.state.lock().unwrap());
    }

    pub fn hooks(&self) -> Vec<serde_json::Value> {
        self.state
            .lock()
            .unwrap()
            .hooks
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    }
}

/// A minimal HTTP/1.0 GET against 127.0.0.1:`port`: (status, body), or None when nothing
/// answers within 5 s.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// Versions in the order they were first and last seen, e.g. v1, v2.
    pub sequence: Vec<String>,
    pub errors: Vec<String>,
    /// When each failed request ended, for a test that tells failures inside a fault's window
    /// from the others.
    pub failed_at: Vec<std::time::Instant>,
}

impl LoadReport {
    pub fn count(&self, v: &str) -> usize {
        self.sequence.iter().filter(|s| *s == v).count()
    }
}

/// A bounded load loop through the balancer (at most `max` requests, one every 10 ms).
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LoadReport>,
}

impl Load {
    pub fn start(url: String, max: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap();
            let mut r = LoadReport::default();
            for _ in 0..max {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                match client.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        r.ok += 1;
                        let v = resp.text().await.unwrap_or_default().trim().to_string();
                        if r.sequence.last() != Some(&v) {
                            r.sequence.push(v);
                        }
                    }
                    Ok(resp) => {
                        r.failed += 1;
                        r.failed_at.push(std::time::Instant::now());
                        if r.errors.len() < 5 {
                            r.errors.push(format!("HTTP {}", resp.status()));
                        }
                    }
                    Err(e) => {
                        r.failed += 1;
                        r.failed_at.push(std::time::Instant::now());
                        if r.errors.len() < 5 {
                            r.errors.push(e.to_string());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r
        });
        Load { stop, task }
    }

    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
