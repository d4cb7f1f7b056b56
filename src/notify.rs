//! Notifications, the seed's communication flow: Slack and Teams incoming webhooks and a generic
//! JSON webhook hear "starting", "node failed", "complete", "issues detected", "rolling back",
//! "rolled back" and "all systems normal", with app, environment, release, who and duration.
//!
//! The notifier only watches events. Messages go out from one background task, in order, each
//! with retries and backoff; a webhook that fails or hangs never blocks or fails a deployment:
//! at the end of a run deckhand waits for the queue at most the configured timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use crate::event::{CheckStatus, Event, EventKind, NodeState, Outcome, RunKind, StepResult};
use crate::inventory::Notify;

/// What a message is about (also the generic webhook's `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Starting,
    NodeFailed,
    Complete,
    IssuesDetected,
    RollingBack,
    RolledBack,
    AllNormal,
    Failed,
}

impl Topic {
    pub fn key(self) -> &'static str {
        match self {
            Topic::Starting => "starting",
            Topic::NodeFailed => "node_failed",
            Topic::Complete => "complete",
            Topic::IssuesDetected => "issues_detected",
            Topic::RollingBack => "rolling_back",
            Topic::RolledBack => "rolled_back",
            Topic::AllNormal => "all_normal",
            Topic::Failed => "failed",
        }
    }
    fn icon(self) -> &'static str {
        match self {
            Topic::Starting => "🚀",
            Topic::NodeFailed => "❌",
            Topic::Complete => "✅",
            Topic::IssuesDetected => "🚨",
            Topic::RollingBack => "🔄",
            Topic::RolledBack => "↩️",
            Topic::AllNormal => "📊",
            Topic::Failed => "🛑",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Topic,
    pub text: String,
    pub app: String,
    pub env: String,
    pub release: String,
    pub who: String,
    pub deployment: String,
    pub duration_s: u64,
    pub node: Option<String>,
    pub check: Option<String>,
}

#[derive(Default)]
struct Context {
    app: String,
    env: String,
    release: String,
    who: String,
    deployment: String,
    started: Option<Instant>,
    last_failure: HashMap<String, String>,
    issues_sent: Vec<String>,
    kind: Option<RunKind>,
    nodes: usize,
    landed: Vec<String>,
    complete_sent: bool,
}

pub struct Notifier {
    tx: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    ctx: Mutex<Context>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    timeout: Duration,
}

impl Notifier {
    /// None when no webhook is configured.
    pub fn start(cfg: &Notify) -> Option<Notifier> {
        if cfg.slack.is_none() && cfg.teams.is_none() && cfg.webhook.is_none() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = tokio::spawn(deliver(cfg.clone(), rx));
        Some(Notifier {
            tx: Mutex::new(Some(tx)),
            ctx: Mutex::new(Context::default()),
            worker: Mutex::new(Some(worker)),
            timeout: cfg.timeout,
        })
    }

    fn send(
        &self,
        ctx: &Context,
        topic: Topic,
        text: String,
        node: Option<String>,
        check: Option<String>,
    ) {
        let msg = Message {
            topic,
            text,
            app: ctx.app.clone(),
            env: ctx.env.clone(),
            release: ctx.release.clone(),
            who: ctx.who.clone(),
            deployment: ctx.deployment.clone(),
            duration_s: ctx.started.map(|s| s.elapsed().as_secs()).unwrap_or(0),
            node,
            check,
        };
        if let Ok(g) = self.tx.lock() {
            if let Some(tx) = g.as_ref() {
                let _ = tx.send(msg);
            }
        }
    }

    /// Look at an (already masked) event and queue the message it calls for, if any.
    pub(crate) fn observe(&self, e: &Event) {
        let mut ctx = match self.ctx.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match &e.kind {
            EventKind::Started {
                kind,
                app,
                env,
                release,
                who,
                deployment,
                nodes,
                ..
            } => {
                ctx.app = app.clone();
                ctx.env = env.clone();
                ctx.release = release.clone();
                ctx.who = who.clone();
                ctx.deployment = deployment.clone();
                ctx.started = Some(Instant::now());
                ctx.kind = Some(*kind);
                ctx.nodes = nodes.len();
                let text = match kind {
                    RunKind::Deploy => format!(
                        "Deployment starting: {app} {release} to {env} ({} nodes) by {who}",
                        nodes.len()
                    ),
                    RunKind::Rollback => {
                        format!("Rollback starting: {app} in {env} to {release} by {who}")
                    }
                };
                self.send(&ctx, Topic::Starting, text, None, None);
            }
            EventKind::StepFinished {
                node: Some(n),
                phase,
                result: StepResult::Failed | StepResult::TimedOut,
                message,
                ..
            } => {
                ctx.last_failure.insert(
                    n.clone(),
                    format!("{phase}: {}", message.clone().unwrap_or_default()),
                );
            }
            EventKind::NodeState {
                node,
                state: NodeState::Done | NodeState::Skipped,
            } if ctx.kind == Some(RunKind::Deploy) => {
                if !ctx.landed.contains(node) {
                    ctx.landed.push(node.clone());
                }
                if ctx.landed.len() == ctx.nodes && !ctx.complete_sent {
                    ctx.complete_sent = true;
                    let took = ctx
                        .started
                        .map(|s| crate::util::format_duration(s.elapsed()))
                        .unwrap_or_default();
                    let text = format!(
                        "Deployment complete: {} {} is live on all {} nodes of {} after {took}; watching the checklist",
                        ctx.app, ctx.release, ctx.nodes, ctx.env
                    );
                    self.send(&ctx, Topic::Complete, text, None, None);
                }
            }
            EventKind::NodeState {
                node,
                state: NodeState::Failed,
            } => {
                let why = ctx.last_failure.get(node).cloned().unwrap_or_default();
                let text = format!("Node failed: {node} in {} {} ({why})", ctx.app, ctx.release);
                self.send(&ctx, Topic::NodeFailed, text, Some(node.clone()), None);
            }
            EventKind::Check {
                name,
                status: CheckStatus::Fail,
                value,
                node,
            } if !ctx.issues_sent.contains(name) => {
                ctx.issues_sent.push(name.clone());
                let at = node
                    .as_ref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                let v = value
                    .as_ref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default();
                let text = format!(
                    "Issues detected after {} {}: {name}{at}{v}",
                    ctx.app, ctx.release
                );
                self.send(
                    &ctx,
                    Topic::IssuesDetected,
                    text,
                    node.clone(),
                    Some(name.clone()),
                );
            }
            EventKind::RollbackStarted { reason, nodes } => {
                let text = format!(
                    "Rolling back {} {} in {}: {reason} ({} nodes)",
                    ctx.app,
                    ctx.release,
                    ctx.env,
                    nodes.len()
                );
                self.send(&ctx, Topic::RollingBack, text, None, None);
            }
            EventKind::Decision { verdict, reason } if verdict == "all_normal" => {
                let text = format!(
                    "All systems normal: {} {} in {} ({reason})",
                    ctx.app, ctx.release, ctx.env
                );
                self.send(&ctx, Topic::AllNormal, text, None, None);
            }
            EventKind::Decision { verdict, reason } if verdict == "alert" => {
                let text = format!(
                    "Issues detected after {} {}: {reason}",
                    ctx.app, ctx.release
                );
                self.send(&ctx, Topic::IssuesDetected, text, None, None);
            }
            EventKind::Finished {
                outcome: Outcome::Deployed,
                ..
            } if ctx.complete_sent => {}
            EventKind::Finished {
                outcome, message, ..
            } => {
                let topic = match outcome {
                    Outcome::Deployed => Topic::Complete,
                    Outcome::RolledBack => Topic::RolledBack,
                    _ => Topic::Failed,
                };
                let took = ctx
                    .started
                    .map(|s| crate::util::format_duration(s.elapsed()))
                    .unwrap_or_default();
                let text = format!("{} in {} after {took}: {message}", outcome.word(), ctx.env);
                let mut text = text;
                if let Some(first) = text.get(..1) {
                    text = first.to_uppercase() + &text[1..];
                }
                self.send(&ctx, topic, text, None, None);
            }
            _ => {}
        }
    }

    /// Close the queue and wait for it to drain, at most the configured timeout.
    pub async fn finish(&self) -> bool {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        match worker {
            Some(w) => {
                let abort = w.abort_handle();
                match tokio::time::timeout(self.timeout, w).await {
                    Ok(_) => true,
                    Err(_) => {
                        abort.abort();
                        false
                    }
                }
            }
            None => true,
        }
    }
}

pub(crate) fn slack_payload(m: &Message) -> serde_json::Value {
    json!({ "text": format!("{} {}", m.topic.icon(), m.text) })
}

pub(crate) fn teams_payload(m: &Message) -> serde_json::Value {
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": format!("deckhand: {} {}", m.app, m.topic.key()),
        "title": format!("{} {} · {} · {}", m.topic.icon(), m.app, m.env, m.release),
        "text": m.text,
    })
}

pub(crate) fn webhook_payload(m: &Message) -> serde_json::Value {
    json!({
        "event": m.topic.key(),
        "text": m.text,
        "app": m.app,
        "env": m.env,
        "release": m.release,
        "who": m.who,
        "deployment": m.deployment,
        "duration_s": m.duration_s,
        "node": m.node,
        "check": m.check,
    })
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    retries: u32,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(300);
    let mut last = String::new();
    for attempt in 0..=retries {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status().as_u16()),
            Err(e) if e.is_timeout() => last = "timed out".into(),
            Err(e) => last = format!("failed: {}", e.without_url()),
        }
        if attempt < retries {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(last)
}

async fn deliver(cfg: Notify, mut rx: mpsc::UnboundedReceiver<Message>) {
    let client = match reqwest::Client::builder().timeout(cfg.timeout).build() {
        Ok(c) => c,
        Err(_) => return,
    };
    while let Some(m) = rx.recv().await {
        let mut targets: Vec<(&str, &String, serde_json::Value)> = Vec::new();
        if let Some(u) = &cfg.slack {
            targets.push(("slack", u, slack_payload(&m)));
        }
        if let Some(u) = &cfg.teams {
            targets.push(("teams", u, teams_payload(&m)));
        }
        if let Some(u) = &cfg.webhook {
            targets.push(("webhook", u, webhook_payload(&m)));
        }
        for (name, url, body) in targets {
            if let Err(e) = post(&client, url, &body, cfg.retries).await {
                log::warn!("{name} notification '{}' not delivered: {e}", m.topic.key());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            topic: Topic::RollingBack,
            text: "Rolling back shop v2 in production: health check failing (3 nodes)".into(),
            app: "shop".into(),
            env: "production".into(),
            release: "v2".into(),
            who: "ann".into(),
            deployment: "d1".into(),
            duration_s: 42,
            node: None,
            check: Some("Health endpoint responding".into()),
        }
    }

    #[test]
    fn slack_gets_one_text_with_the_seed_icon() {
        let p = slack_payload(&msg());
        assert_eq!(
            p["text"],
            "🔄 Rolling back shop v2 in production: health check failing (3 nodes)"
        );
        assert_eq!(p.as_object().unwrap().len(), 1);
    }

    #[test]
    fn teams_gets_a_message_card() {
        let p = teams_payload(&msg());
        assert_eq!(p["@type"], "MessageCard");
        assert_eq!(p["title"], "🔄 shop · production · v2");
        assert!(p["text"].as_str().unwrap().starts_with("Rolling back"));
    }

    #[test]
    fn the_generic_webhook_gets_every_field() {
        let p = webhook_payload(&msg());
        assert_eq!(p["event"], "rolling_back");
        assert_eq!(p["who"], "ann");
        assert_eq!(p["duration_s"], 42);
        assert_eq!(p["check"], "Health endpoint responding");
    }
}
