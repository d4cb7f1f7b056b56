//! Post-deploy checks: the probes that measure (HTTP, Prometheus; command probes run through the
//! engine's transports), and the decision tree that turns their results into keep or roll back.
//!
//! A probe never throws: whatever goes wrong becomes a result. A probe that cannot run (timeout,
//! connection refused, bad answer) is `Unknown`, never `Pass`.

pub mod decision;

use std::time::{Duration, Instant};

use crate::event::CheckStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub status: CheckStatus,
    /// What was measured, for the checklist ("182 ms", "0.0021").
    pub value: Option<String>,
    /// Why it failed or could not run.
    pub detail: Option<String>,
}

impl ProbeResult {
    pub fn pass(value: impl Into<Option<String>>) -> Self {
        ProbeResult {
            status: CheckStatus::Pass,
            value: value.into(),
            detail: None,
        }
    }
    pub fn fail(value: Option<String>, detail: impl Into<String>) -> Self {
        ProbeResult {
            status: CheckStatus::Fail,
            value,
            detail: Some(detail.into()),
        }
    }
    pub fn unknown(detail: impl Into<String>) -> Self {
        ProbeResult {
            status: CheckStatus::Unknown,
            value: None,
            detail: Some(detail.into()),
        }
    }
}

pub(crate) fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else if v.abs() >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Compare a measured number with optional bounds.
pub fn within(value: f64, min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    if let Some(m) = min {
        if value < m {
            return Err(format!(
                "{} is below the minimum {}",
                format_number(value),
                format_number(m)
            ));
        }
    }
    if let Some(m) = max {
        if value > m {
            return Err(format!(
                "{} is above the maximum {}",
                format_number(value),
                format_number(m)
            ));
        }
    }
    Ok(())
}

/// The last number in a command's output (`queue depth: 1234` → 1234).
pub(crate) fn last_number(text: &str) -> Option<f64> {
    text.split(|c: char| {
        !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+')
    })
    .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
    .filter_map(|t| {
        t.trim_matches(|c| c == '.' || c == 'e' || c == 'E')
            .parse::<f64>()
            .ok()
    })
    .next_back()
}

/// One HTTP client for every probe (building one loads the TLS roots). It keeps no idle
/// connections, so each probe still measures a fresh connection, as a user's browser would.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// GET `url`: the status must be `expect`, the answer must come within `max_latency`, and the
/// body must contain `body` when given.
pub async fn http(
    url: &str,
    expect: u16,
    max_latency: Option<Duration>,
    body: Option<&str>,
    timeout: Duration,
) -> ProbeResult {
    let c = match client() {
        Ok(c) => c,
        Err(e) => return ProbeResult::unknown(e),
    };
    let started = Instant::now();
    let resp = match c.get(url).timeout(timeout).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return ProbeResult::fail(
                Some(format!("> {} ms", timeout.as_millis())),
                format!(
                    "GET {url} timed out after {}",
                    crate::util::format_duration(timeout)
                ),
            )
        }
        Err(e) => return ProbeResult::fail(None, format!("GET {url} failed: {e}")),
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let took = started.elapsed();
    let ms = took.as_millis();
    let value = Some(format!("{ms} ms"));
    if status != expect {
        return ProbeResult::fail(
            Some(format!("HTTP {status}")),
            format!("GET {url} answered {status}, expected {expect}"),
        );
    }
    if let Some(limit) = max_latency {
        if took > limit {
            return ProbeResult::fail(
                value,
                format!("GET {url} took {ms} ms, above {} ms", limit.as_millis()),
            );
        }
    }
    if let Some(b) = body {
        if !text.contains(b) {
            return ProbeResult::fail(
                value,
                format!("GET {url}: the answer does not contain {b:?}"),
            );
        }
    }
    ProbeResult::pass(value)
}

/// A Prometheus instant query; the first sample's value is compared with the bounds.
pub async fn prometheus(
    base: &str,
    query: &str,
    min: Option<f64>,
    max: Option<f64>,
    timeout: Duration,
) -> ProbeResult {
    let c = match client() {
        Ok(c) => c,
        Err(e) => return ProbeResult::unknown(e),
    };
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let resp = match c
        .get(&url)
        .query(&[("query", query)])
        .timeout(timeout)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return ProbeResult::unknown(format!("Prometheus at {base} did not answer: {e}")),
    };
    let status = resp.status();
    let body: serde_json::Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => {
            return ProbeResult::unknown(format!(
                "Prometheus answered {status} with something that is not JSON: {e}"
            ))
        }
    };
    if body["status"] != "success" {
        return ProbeResult::unknown(format!(
            "Prometheus refused the query: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let sample = &body["data"]["result"][0]["value"][1];
    let value = match body["data"]["resultType"].as_str() {
        Some("scalar") => body["data"]["result"][1].as_str(),
        _ => sample.as_str(),
    };
    let Some(v) = value.and_then(|s| s.parse::<f64>().ok()) else {
        return ProbeResult::unknown(format!("the query returned no sample: {query}"));
    };
    if v.is_nan() {
        return ProbeResult::unknown(format!("the query returned NaN (no data yet?): {query}"));
    }
    match within(v, min, max) {
        Ok(()) => ProbeResult::pass(Some(format_number(v))),
        Err(e) => ProbeResult::fail(Some(format_number(v)), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_output() {
        assert_eq!(last_number("queue depth: 1234\n"), Some(1234.0));
        assert_eq!(last_number("rate 0.02 of 3 workers, 17.5%"), Some(17.5));
        assert_eq!(last_number("no digits"), None);
    }

    #[test]
    fn bounds() {
        assert!(within(5.0, Some(1.0), Some(10.0)).is_ok());
        assert!(within(0.5, Some(1.0), None).unwrap_err().contains("below"));
        assert!(within(1001.0, None, Some(1000.0))
            .unwrap_err()
            .contains("above the maximum 1000"));
    }
}
