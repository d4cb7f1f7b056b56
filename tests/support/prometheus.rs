//! A real Prometheus (Debian's `prometheus`) on 127.0.0.1, scraping one target every second.
//! Killed and its data removed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub async fn start(target_port: u16) -> Prometheus {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "Prometheus is not installed: apt-get install prometheus (scripts/test.sh does it)",
            );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..150 {
            if let Ok(r) = client.get(format!("{}/-/ready", p.url)).send().await {
                if r.status().is_success() {
                    return p;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready on {}", p.url);
    }

    /// Wait until the target has been scraped at least twice (so rate/increase have data).
    pub async fn wait_for_samples(&self, metric: &str) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let q = format!("count_over_time({metric}[1m])");
            if let Ok(r) = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", q.as_str())])
                .send()
                .await
            {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    let n: f64 = v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0.0);
                    if n >= 2.0 {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Prometheus never scraped {metric}");
    }
}
