//! The bench's deployment, written once: the steps every runner executes (deckhand, the work
//! alone, Capistrano, Ansible), as shell text. Modelled on the seed's deploy script: before the
//! nodes, once, a database backup, a deployment tag and the migrations; on each node in turn
//! nine steps (fetch the code, install dependencies, build assets, link the shared config,
//! write the version, clear caches, switch `current`, restart the app, prune old releases) and
//! the health check; after the nodes, once, the team is notified. 9N + 4 commands, plus the
//! health check of each node; drain and enable are each runner's own business.
//!
//! Every command starts with the same four assignments (`D` deploy path, `R` release, `N` node,
//! `F` the fleet's directory, every value shell-quoted), so the text a runner executes is
//! byte for byte the text the others execute. Nothing here runs anything.

use deckhand::util::sh_quote;

pub struct Step {
    pub name: &'static str,
    pub body: &'static str,
}

/// Once, on the first node, before any node changes.
pub const BEFORE: &[Step] = &[
    Step {
        name: "backup",
        body: r#"mkdir -p "$D/../backups" && tar -czf "$D/../backups/db-$R.tgz" -C "$D/../data" ."#,
    },
    Step {
        name: "tag",
        body: r#"printf '%s %s\n' "$R" "$(date +%s)" >> "$D/../tags""#,
    },
    Step {
        name: "migrate",
        body: r#"/usr/bin/python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table if not exists migrations (release text, at text)")
db.execute("insert into migrations values (?, datetime())", (sys.argv[2],))
db.commit()' "$D/../data/app.db" "$R""#,
    },
];

/// On every node, in order.
pub const NODE: &[Step] = &[
    Step {
        name: "fetch",
        body: r#"mkdir -p "$D/releases/$R" && tar -xzf "$F/source.tgz" -C "$D/releases/$R""#,
    },
    Step {
        name: "install",
        body: r#"cd "$D/releases/$R" && mkdir -p vendor && find src -name '*.py' | sort | xargs sha256sum > vendor/lock && cp -R src/lib vendor/"#,
    },
    Step {
        name: "build",
        body: r#"cd "$D/releases/$R" && mkdir -p public && cat src/assets/*.js | gzip -6 > public/app.js.gz"#,
    },
    Step {
        name: "config",
        body: r#"mkdir -p "$D/shared" && touch "$D/shared/.env" && ln -sfn "$D/shared/.env" "$D/releases/$R/.env""#,
    },
    Step {
        name: "version",
        body: r#"printf '%s\n' "$R" > "$D/releases/$R/VERSION" && printf '%s %s\n' "$N" "$R" > "$D/releases/$R/REVISION""#,
    },
    Step {
        name: "cache",
        body: r#"rm -rf "$D/shared/cache" && mkdir -p "$D/shared/cache/views" && cp "$D/releases/$R/src/assets/"*.js "$D/shared/cache/views/""#,
    },
    Step {
        name: "switch",
        body: r#"ln -sfn "releases/$R" "$D/current.new" && mv -T "$D/current.new" "$D/current""#,
    },
    Step {
        name: "restart",
        body: r#""$F/bench/restart" "$D""#,
    },
    Step {
        name: "prune",
        body: r#"cd "$D/releases" && ls -1t | tail -n +6 | xargs -r rm -rf"#,
    },
];

/// Each node's health check, after its steps: its app serves the new release.
pub const HEALTH: Step = Step {
    name: "health",
    body: r#""$F/check-app" "$D" "$R""#,
};

/// Once, on the first node, after every node.
pub const AFTER: &[Step] = &[Step {
    name: "notify",
    body: r#"printf '%s deployed %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$R" >> "$D/../notifications""#,
}];

/// How many commands one deploy of `nodes` nodes runs, health checks included.
pub fn commands(nodes: usize) -> usize {
    BEFORE.len() + AFTER.len() + nodes * (NODE.len() + 1)
}

/// The command text for one node: what the work alone, Capistrano and Ansible run.
pub fn command(step: &Step, deploy_path: &str, release: &str, node: &str, fleet: &str) -> String {
    format!(
        "D={} R={} N={} F={}; {}",
        sh_quote(deploy_path),
        sh_quote(release),
        sh_quote(node),
        sh_quote(fleet),
        step.body
    )
}

/// The same command as a deckhand `run`: deckhand fills in (and quotes) the placeholders.
pub fn deckhand_run(step: &Step, fleet: &str) -> String {
    format!(
        "D={{deploy_path}} R={{release}} N={{node}} F={}; {}",
        sh_quote(fleet),
        step.body
    )
}
