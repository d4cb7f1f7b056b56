//! A real Prometheus (Debian's `prometheus`) on 127.0.0.1, scraping one target every second.
//! Killed and its data removed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, tools, wait};

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
        let bin = tools::prometheus();
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
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("Prometheus's log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let ready = wait::poll_async(Duration::from_secs(15), Duration::from_millis(100), || {
            let probe = client.get(format!("{}/-/ready", p.url)).send();
            async move { probe.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        if ready.is_none() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(10).collect();
            panic!(
                "Prometheus did not become ready on {} within 15s; its last log lines:\n{}",
                p.url,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        p
    }

    /// Wait until the target has been scraped at least twice (so rate/increase have data).
    pub async fn wait_for_samples(&self, metric: &str) {
        let client = reqwest::Client::new();
        let q = format!("count_over_time({metric}[1m])");
        let scraped = wait::poll_async(Duration::from_secs(20), Duration::from_millis(200), || {
            let probe = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", q.as_str())])
                .send();
            async move {
                let v = probe.await.ok()?.json::<serde_json::Value>().await.ok()?;
                let n: f64 = v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0);
                (n >= 2.0).then_some(())
            }
        })
        .await;
        if scraped.is_none() {
            panic!("Prometheus never scraped {metric} twice within 20s");
        }
    }
}
