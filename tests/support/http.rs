//! A small real HTTP server on 127.0.0.1 for checklist and notification tests: an app with
//! `/up`, `/slow`, `/metrics` (Prometheus text), and a webhook receiver at `/hook` that records
//! what it gets and can answer 500 or hang. It stops when dropped.

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
