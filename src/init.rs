//! `deckhand init`: writes a commented inventory to start from, either a template's example
//! servers (`generic`, or `laravel` after the seed's pipeline) or servers imported from Ansible,
//! Deployer or an ssh config, with the template's phases and checklist around them.
//!
//! It never overwrites a file unless told to (`--force`), checks what it wrote with the real
//! inventory loader before it says it succeeded (a generated file that does not validate is a
//! bug, and is not written), and asks questions only on a terminal. It contacts no server.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::import::{self, ImportError, ImportedEnvironment, ImportedNode, Scaffold, Servers};

/// Which kind of application the file is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Any application shipped as a bundle: upload, unpack, switch, restart
    Generic,
    /// A Laravel app, after the seed's pipeline: backup, migrations once, assets, caches, the
    /// three-window checklist
    Laravel,
}

impl Template {
    pub fn word(self) -> &'static str {
        match self {
            Template::Generic => "generic",
            Template::Laravel => "laravel",
        }
    }
}

/// Where the servers come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The template's example servers.
    Example,
    Ansible(PathBuf),
    Deployer(PathBuf),
    /// An ssh config file; None: `~/.ssh/config`.
    SshConfig(Option<PathBuf>),
}

impl Source {
    /// From the command line's three flags (at most one given; `--from-ssh-config` without a
    /// file, or with an empty one, means the default one).
    pub fn from_flags(
        ansible: Option<PathBuf>,
        deployer: Option<PathBuf>,
        ssh_config: Option<Option<PathBuf>>,
    ) -> Source {
        match (ansible, deployer, ssh_config) {
            (Some(a), _, _) => Source::Ansible(a),
            (_, Some(d), _) => Source::Deployer(d),
            (_, _, Some(s)) => Source::SshConfig(s.filter(|p| !p.as_os_str().is_empty())),
            _ => Source::Example,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    /// None: generic, or laravel for a Deployer recipe that imports Laravel's.
    pub template: Option<Template>,
    pub source: Source,
    /// With an ssh config: only the aliases matching these patterns.
    pub hosts: Option<String>,
    pub force: bool,
    /// Where to write (default `deckhand.toml` in the current directory).
    pub output: Option<PathBuf>,
    /// The app's name (default: an imported one, else the directory's name).
    pub app_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists; nothing was written\n  = help: use --force to replace it, or --output FILE to write elsewhere", .0.display())]
    Exists(PathBuf),
    #[error("{0}")]
    Import(#[from] ImportError),
    #[error("--hosts picks Host aliases of an ssh config; use it with --from-ssh-config")]
    HostsWithoutSshConfig,
    #[error("cannot write {}: {source}\n  = help: check that the directory exists and is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the generated inventory does not validate, so it was not written (this is a bug in deckhand init; please report it with the command you ran):\n{0}")]
    Invalid(String),
}

/// What `init` did, for the lines it prints.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub path: PathBuf,
    pub template: Template,
    pub nodes: usize,
    pub environments: Vec<String>,
    /// The import's own account (renamed names, passwords, what was left out).
    pub import_notes: Vec<String>,
    pub next_steps: Vec<String>,
}

impl InitReport {
    /// The lines `deckhand init` prints: what was written, what needs attention, what to do next.
    pub fn render(&self, explicit_path: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "wrote {} ({} template, {}, {}: {}); it validates",
            self.path.display(),
            self.template.word(),
            crate::util::count(self.nodes, "node", "nodes"),
            crate::util::count(self.environments.len(), "environment", "environments"),
            self.environments.join(", ")
        );
        for n in &self.import_notes {
            let _ = writeln!(s, "  {n}");
        }
        s.push_str("\nWhat to edit next:\n");
        for (i, step) in self.next_steps.iter().enumerate() {
            let _ = writeln!(s, "  {}. {step}", i + 1);
        }
        let inv = if explicit_path {
            format!(
                "deckhand -i {} ",
                crate::util::sh_quote(&self.path.display().to_string())
            )
        } else {
            "deckhand ".to_string()
        };
        let env = self
            .environments
            .iter()
            .find(|e| import::is_staging(e))
            .or(self.environments.first())
            .cloned()
            .unwrap_or_else(|| "production".into());
        let _ = writeln!(
            s,
            "\nThen: {inv}validate, and {inv}plan {env} to see every step before a deployment."
        );
        s
    }
}

/// Ask for what was not given on the command line (the template and the app's name), on a
/// terminal only; the caller decides whether there is one.
pub(crate) fn ask_missing(
    opts: &mut InitOptions,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if opts.template.is_none() && opts.source == Source::Example {
        write!(out, "Template: generic or laravel? [generic] ")?;
        out.flush()?;
        let mut line = String::new();
        input.read_line(&mut line)?;
        opts.template = match line.trim().to_ascii_lowercase().as_str() {
            "laravel" | "l" => Some(Template::Laravel),
            _ => Some(Template::Generic),
        };
    }
    if opts.app_name.is_none() && !matches!(opts.source, Source::Deployer(_)) {
        let default = default_app_name(opts.output.as_deref());
        write!(out, "Application name? [{default}] ")?;
        out.flush()?;
        let mut line = String::new();
        input.read_line(&mut line)?;
        let given = line.trim();
        if !given.is_empty() {
            opts.app_name = Some(import::plain_name(given));
        }
    }
    Ok(())
}

/// The app's name from the directory the inventory goes into, or `app`.
fn default_app_name(output: Option<&Path>) -> String {
    let dir = match output
        .and_then(|o| o.parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(p) => std::fs::canonicalize(p).ok(),
        None => std::env::current_dir().ok(),
    };
    dir.and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| import::plain_name(&n))
        .filter(|n| n != "node")
        .unwrap_or_else(|| "app".into())
}

/// Build the file's text without writing it: the servers (imported or the template's), and
/// the template around them.
pub fn render(opts: &InitOptions) -> Result<(String, Servers, Template), InitError> {
    if opts.hosts.is_some() && !matches!(opts.source, Source::SshConfig(_)) {
        return Err(InitError::HostsWithoutSshConfig);
    }
    let mut laravel_recipe = false;
    let servers = match &opts.source {
        Source::Example => Servers::default(),
        Source::Ansible(p) => import::ansible::import(p)?,
        Source::Deployer(p) => {
            let s = import::deployer::import(p)?;
            laravel_recipe = s.app.laravel;
            s
        }
        Source::SshConfig(p) => {
            let (path, shown) = match p {
                Some(p) => {
                    let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                    let shown = abs.display().to_string();
                    (abs, shown)
                }
                None => {
                    let home = std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_default();
                    (home.join(".ssh/config"), "~/.ssh/config".to_string())
                }
            };
            import::ssh_config::import(&path, &shown, opts.hosts.as_deref())?
        }
    };
    let template = opts.template.unwrap_or(if laravel_recipe {
        Template::Laravel
    } else {
        Template::Generic
    });
    let mut servers = servers;
    if opts.source == Source::Example {
        servers = example_servers(template);
    }
    let app_name = opts
        .app_name
        .clone()
        .or_else(|| servers.app.name.clone())
        .unwrap_or_else(|| default_app_name(opts.output.as_deref()));
    if opts.app_name.is_some() {
        servers.app.name = opts.app_name.clone();
    }
    // `once` phases may name the migrator role only if every environment has such a node.
    let migrator = !servers.environments.is_empty()
        && servers.environments.iter().all(|e| {
            e.nodes.iter().any(|name| {
                servers
                    .nodes
                    .iter()
                    .any(|n| &n.name == name && n.roles.iter().any(|r| r == "migrator"))
            })
        });
    let scaffold = match template {
        Template::Generic => generic(&app_name, &opts.source),
        Template::Laravel => laravel(&app_name, &opts.source, migrator),
    };
    let text = import::write_toml(&servers, &scaffold);
    Ok((text, servers, template))
}

/// Write the inventory (never over an existing file without `force`), after checking that the
/// real loader accepts it.
pub fn run(opts: &InitOptions) -> Result<InitReport, InitError> {
    let path = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("deckhand.toml"));
    if path.exists() && !opts.force {
        return Err(InitError::Exists(path));
    }
    let (text, servers, template) = render(opts)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let write_err = |e: std::io::Error| InitError::Write {
        path: path.clone(),
        source: e,
    };
    // Validated in place (same directory, so relative paths mean the same), then moved over.
    let mut tmp = tempfile::Builder::new()
        .prefix(".deckhand-init-")
        .suffix(".toml")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(text.as_bytes()).map_err(write_err)?;
    tmp.flush().map_err(write_err)?;
    let inv = crate::inventory::load(tmp.path()).map_err(|e| InitError::Invalid(e.to_string()))?;
    if opts.force {
        tmp.persist(&path).map_err(|e| write_err(e.error))?;
    } else {
        tmp.persist_noclobber(&path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                InitError::Exists(path.clone())
            } else {
                write_err(e.error)
            }
        })?;
    }
    let scaffold_steps = match template {
        Template::Generic => generic_steps(&opts.source),
        Template::Laravel => laravel_steps(&opts.source),
    };
    Ok(InitReport {
        path,
        template,
        nodes: inv.nodes.len(),
        environments: inv.environments.iter().map(|e| e.name.clone()).collect(),
        import_notes: if servers.source.is_empty() {
            Vec::new()
        } else {
            import::summary(&servers)
        },
        next_steps: scaffold_steps,
    })
}

/// The whole `deckhand init` command: ask on a terminal for what is missing, write, print what
/// was done and what to edit next; returns the exit code (0 written, 2 not written).
pub fn cli(mut opts: InitOptions) -> i32 {
    use std::io::IsTerminal;
    let explicit = opts.output.is_some();
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let stdin = std::io::stdin();
        if let Err(e) = ask_missing(&mut opts, &mut stdin.lock(), &mut std::io::stderr()) {
            eprintln!("error: cannot read the answer: {e}");
            return 2;
        }
    }
    match run(&opts) {
        Ok(report) => {
            print!("{}", report.render(explicit));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// The template's own example servers, when nothing is imported.
fn example_servers(template: Template) -> Servers {
    let node = |name: &str, host: &str, roles: &[&str]| ImportedNode {
        name: name.into(),
        host: host.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..ImportedNode::default()
    };
    let migrator = template == Template::Laravel;
    let with = |base: &[&'static str], extra: &'static str| -> Vec<&'static str> {
        let mut v = base.to_vec();
        if migrator {
            v.push(extra);
        }
        v
    };
    let mut nodes = vec![
        node("staging-1", "10.0.2.11", &with(&["app"], "migrator")),
        node("web-1", "10.0.1.11", &with(&["app"], "migrator")),
        node("web-2", "10.0.1.12", &["app"]),
        node("web-3", "10.0.1.13", &["app"]),
    ];
    nodes[0].note = Some(
        "Example servers: replace the addresses with yours, add or remove [nodes.*] tables.".into(),
    );
    Servers {
        nodes,
        environments: vec![
            ImportedEnvironment {
                name: "staging".into(),
                nodes: vec!["staging-1".into()],
                from: "the rehearsal: every release goes here first".into(),
            },
            ImportedEnvironment {
                name: "production".into(),
                nodes: vec!["web-1".into(), "web-2".into(), "web-3".into()],
                from: "in this order".into(),
            },
        ],
        ..Servers::default()
    }
}

const SSH_EXTRA: &str = "host_key_checking = \"strict\"             # strict: the host must be in known_hosts | accept-new\n\
connect_timeout = \"10s\"\n";

fn generic_steps(source: &Source) -> Vec<String> {
    let mut v = Vec::new();
    if *source == Source::Example {
        v.push(
            "[nodes.*]: your servers' addresses (host), and [ssh] user: who deckhand logs in as."
                .into(),
        );
    } else {
        v.push("[nodes.*] and [environments.*]: check the imported servers and which environment each is in.".into());
    }
    v.push("[app] deploy_path: where the app lives on the servers.".into());
    v.push("[[phases]] upload_bundle: build dist/<app>-<release>.tar.gz before each deployment (or replace the upload with your own way of getting the code there).".into());
    v.push("[[phases]] restart: the command that restarts your app.".into());
    v.push(
        "health in each environment: uncomment it and point it at your app's health endpoint."
            .into(),
    );
    v
}

fn laravel_steps(source: &Source) -> Vec<String> {
    let mut v = Vec::new();
    if *source == Source::Example {
        v.push("[nodes.*]: your servers' addresses; the node with role migrator runs the backup and the migrations.".into());
    } else {
        v.push("[nodes.*] and [environments.*]: check the imported servers; give the node that should run the backup and the migrations the role migrator.".into());
    }
    v.push("[[phases]] pull_latest_code: your repository's URL (releases are its tags).".into());
    v.push("[[phases]] backup_database: your database's name and dump command.".into());
    v.push("[[phases]] restart_services: your PHP-FPM service's name.".into());
    v.push("health and [[checks]]: the health URL (Laravel's /up) and the thresholds.".into());
    v
}

fn title(template: Template, app: &str, source: &Source) -> Vec<String> {
    let what = match template {
        Template::Generic => "an application shipped as a bundle".to_string(),
        Template::Laravel => {
            "a Laravel application, deployed the way the seed's pipeline does".to_string()
        }
    };
    let how = match source {
        Source::Example => format!("deckhand init --template {}", template.word()),
        Source::Ansible(_) => format!(
            "deckhand init --template {} --from-ansible",
            template.word()
        ),
        Source::Deployer(_) => format!(
            "deckhand init --template {} --from-deployer",
            template.word()
        ),
        Source::SshConfig(_) => format!(
            "deckhand init --template {} --from-ssh-config",
            template.word()
        ),
    };
    vec![
        format!("deckhand inventory for {app}: {what}."),
        format!("Written by `{how}`."),
    ]
}

/// `setting` with its comment in column 42, like the rest of the file.
fn commented(s: &mut String, setting: &str, comment: &str) {
    let _ = writeln!(s, "{setting:<41}# {comment}");
}

fn rolling_lines(name: &str, on_failure_prod: &str) -> String {
    let prod = import::is_production(name);
    let mut s = String::new();
    commented(
        &mut s,
        "strategy = \"rolling\"",
        "rolling | canary | blue-green",
    );
    commented(
        &mut s,
        "batches = [1, \"50%\", \"100%\"]",
        "one node first, then half, then the rest",
    );
    commented(
        &mut s,
        "max_fail = \"0%\"",
        "any failed node triggers on_failure",
    );
    if prod {
        commented(
            &mut s,
            &format!("on_failure = \"{on_failure_prod}\""),
            "pause | rollback | abort",
        );
        commented(
            &mut s,
            "pause_after_first = true",
            "look at the first node before the rest follows",
        );
        commented(
            &mut s,
            "protected = true",
            "a rollback asks you to type the environment's name",
        );
    } else {
        commented(
            &mut s,
            "on_failure = \"rollback\"",
            "pause | rollback | abort",
        );
    }
    s
}

fn generic_environment(name: &str, _cx: &import::EnvContext) -> String {
    let mut s = rolling_lines(name, "rollback");
    s.push_str("# health = { url = \"http://{host}/health\", expect = 200, timeout = \"5s\", interval = \"2s\", retries = 15 }\n");
    s.push_str("# (or a command on the node: health = { run = \"curl -fsS http://127.0.0.1/health\" }); without a\n");
    s.push_str("# health check a node goes back into rotation as soon as it restarted.\n");
    s
}

fn generic(app: &str, source: &Source) -> Scaffold {
    Scaffold {
        title: title(Template::Generic, app, source),
        next_steps: generic_steps(source),
        app_name: app.to_string(),
        deploy_path: format!("/srv/{app}"),
        keep_releases: 5,
        shared_files: Vec::new(),
        shared_dirs: Vec::new(),
        ssh_extra: SSH_EXTRA.to_string(),
        environment: generic_environment,
        body: GENERIC_BODY.to_string(),
    }
}

const GENERIC_BODY: &str = r#"# ---------------------------------------------------------------------------------------------
# The deployment: node phases run on each node, in its deploy_path, one batch at a time.
# {release} is the release name you deploy (`deckhand deploy ENV --release v1.2`), {release_path}
# its directory. Phases after `switch` also run on a rollback.

[[phases]]
name = "release"
builtin = "release"                      # make releases/{release}, link shared files and dirs

[[phases]]
name = "upload_bundle"                   # build it first, e.g. tar -czf dist/APP-v1.2.tar.gz -C build .
upload = { from = "dist/{app}-{release}.tar.gz", to = "{release_path}/bundle.tar.gz" }
timeout = "10m"

[[phases]]
name = "unpack"
run = "cd {release_path} && tar -xzf bundle.tar.gz && rm bundle.tar.gz"

[[phases]]
name = "switch"
builtin = "switch"                       # atomic: a new link renamed over `current`

[[phases]]
name = "restart"
run = "sudo systemctl restart {app}"     # the deploy user needs sudo without a password for this
timeout = "2m"

[[phases]]
name = "cleanup"
stage = "after"
builtin = "cleanup"                      # keeps keep_releases; never the live, previous or new one

# After the last node: the post-deploy checklist. Uncomment and adapt; see the README's
# "The post-deploy checklist" for every kind of check.
# [[checks]]
# name = "Health endpoint responding"
# window = "immediate"
# kind = "health"
# per_node = true
# http = { url = "http://{host}/health", expect = 200, max_latency = "500ms" }
"#;

fn laravel_environment(name: &str, cx: &import::EnvContext) -> String {
    let mut s = rolling_lines(name, "pause");
    if let Some(r) = &cx.requires {
        let _ = writeln!(
            s,
            "{:<41}# a release must pass {r}'s checklist first",
            format!("requires = {}", import::toml_string(r))
        );
    }
    s.push_str("# config = { example = \".env.example\" }  # with the file beside this one: every node's shared/.env must have its keys\n");
    s.push_str("health = { url = \"http://{host}/up\", expect = 200, timeout = \"5s\", interval = \"2s\", retries = 15 }\n");
    s.push_str(
        "# Laravel answers /up from its health route; run_health_checks of the seed's deploy.sh\n",
    );
    s
}

fn laravel(app: &str, source: &Source, migrator: bool) -> Scaffold {
    let once = |what: &str| {
        if migrator {
            format!("once = true                              # on one node: the first with role migrator\nroles = [\"migrator\"]\n# {what}\n")
        } else {
            format!("once = true                              # on the environment's first node (give one node role\n                                         # migrator and add roles = [\"migrator\"] to choose it)\n# {what}\n")
        }
    };
    let on = if migrator {
        "on = \"migrator\"\n"
    } else {
        "per_node = true\n"
    };
    let body = format!(
        r#"# ---------------------------------------------------------------------------------------------
# The deployment, in the phases of the seed's deploy.sh. Node phases run on each node in its
# deploy_path; {{release}} is the release you deploy (a tag of your repository), {{release_path}} its
# directory. Phases after `switch` also run on a rollback. The seed's run_health_checks is each
# environment's `health`, notify_team is [notify] below, rollback_on_failure is deckhand's rollback.

# Pre-deployment
[[phases]]
name = "backup_database"
stage = "before"
{backup_once}run = "mkdir -p ~/backups && mysqldump --single-transaction {{app}} | gzip > ~/backups/{{app}}-{{release}}.sql.gz"
timeout = "15m"                          # the database is named after the app here; pg_dump for PostgreSQL

[[phases]]
name = "create_deployment_tag"
stage = "before"
where = "local"                          # on this machine, in this file's directory (a git checkout)
run = "git tag -f deploy-{{env}}-{{release}}"

# Deployment
[[phases]]
name = "release"
builtin = "release"                      # make releases/{{release}}, link .env and storage from shared/

[[phases]]
name = "pull_latest_code"                # a mirror of the repository on the node; the release is a tag
run = "repo={{deploy_path}}/repo.git; if [ -d \"$repo\" ]; then git -C \"$repo\" remote update --prune; else git clone --quiet --mirror git@github.com:your-org/{{app}}.git \"$repo\"; fi && git -C \"$repo\" archive {{release}} | tar -x --keep-directory-symlink -C {{release_path}}"
timeout = "5m"

[[phases]]
name = "install_dependencies"
run = "cd {{release_path}} && composer install --no-dev --prefer-dist --no-interaction --optimize-autoloader"
timeout = "10m"

[[phases]]
name = "run_migrations"
{migrate_once}run = "cd {{release_path}} && php artisan migrate --force"
timeout = "10m"

[[phases]]
name = "build_assets"
run = "cd {{release_path}} && npm ci && npm run build"
timeout = "10m"

[[phases]]
name = "clear_caches"
run = "cd {{release_path}} && php artisan config:cache && php artisan route:cache && php artisan view:cache"

[[phases]]
name = "switch"
builtin = "switch"                       # atomic: a new link renamed over `current`

# Post-deployment
[[phases]]
name = "restart_services"                # the deploy user needs sudo without a password for the reload
run = "cd {{deploy_path}}/current && php artisan queue:restart && sudo systemctl reload php8.3-fpm"
timeout = "2m"

[[phases]]
name = "cleanup"
stage = "after"
builtin = "cleanup"                      # keeps keep_releases; never the live, previous or new one

# ---------------------------------------------------------------------------------------------
# The post-deploy checklist: the seed's three windows, and its decision tree:
#   health failing -> roll back; error rate abnormal -> roll back;
#   performance not OK -> keep (and alert) if every critical check passes, else roll back.

[checklist]
immediate = "5m"                         # how long each window watches; "0s" skips it
short = "30m"
long = "2h"
interval = "30s"                         # checks repeat this often within their window
auto_rollback = true                     # false: pause and ask the operator instead

# Immediate (0-5 minutes)
[[checks]]
name = "Health endpoint responding"
window = "immediate"
kind = "health"
per_node = true
http = {{ url = "http://{{host}}/up", expect = 200 }}

[[checks]]
name = "Database connections stable"
window = "immediate"
kind = "health"
run = "cd {{deploy_path}}/current && php artisan migrate:status > /dev/null"
{on}
[[checks]]
name = "Queue workers processing"
window = "immediate"
kind = "critical"
run = "cd {{deploy_path}}/current && php artisan tinker --execute='echo Queue::size();'"   # prints the depth
{on}max = 1000                               # more than 1000 waiting jobs -> failing

[[checks]]
name = "No 500 errors in logs"
window = "immediate"
kind = "errors"
per_node = true
run = "grep -c '\" 500 ' /var/log/nginx/access.log || true"   # rotate the log at deploy time, or narrow this
max = 0

[[checks]]
name = "Response times < 500ms"
window = "immediate"
kind = "performance"
per_node = true
http = {{ url = "http://{{host}}/up", expect = 200, max_latency = "500ms" }}

# Short-term (5-30 minutes)
[[checks]]
name = "All critical paths tested"
window = "short"
kind = "critical"
manual = true                            # ticked by the operator in the console

[[checks]]
name = "Memory usage stable"
window = "short"
kind = "performance"
per_node = true
run = "free | awk '/Mem:/ {{printf \"%.0f\\n\", $3 / $2 * 100}}'"   # percent used
max = 90
on_fail = "alert"

# With Prometheus, the seed's error rate (and, in the long window, cache hit rates):
# [[checks]]
# name = "Error rate < 0.1%"
# window = "short"
# kind = "errors"
# prometheus = {{ url = "http://127.0.0.1:9090", query = "sum(rate(http_requests_total{{status=~\"5..\"}}[5m])) / sum(rate(http_requests_total[5m]))", max = 0.001 }}

# Long-term (30+ minutes)
[[checks]]
name = "No memory leaks detected"
window = "long"
kind = "performance"
per_node = true
run = "free | awk '/Mem:/ {{printf \"%.0f\\n\", $3 / $2 * 100}}'"
max = 90
on_fail = "alert"

[[checks]]
name = "Customer complaints = 0"
window = "long"
kind = "info"
manual = true

# The seed's communication flow (starting, complete, issues detected, rolling back, all normal):
# [notify]                               # webhook URLs are secrets: masked everywhere
# slack = "${{SLACK_WEBHOOK_URL}}"
# teams = "${{TEAMS_WEBHOOK_URL}}"
"#,
        backup_once = once("the seed's safe migration flow: a backup before the migrations"),
        migrate_once = once("migrations run once per deployment, after the backup"),
    );
    Scaffold {
        title: title(Template::Laravel, app, source),
        next_steps: laravel_steps(source),
        app_name: app.to_string(),
        deploy_path: format!("/var/www/{app}"),
        keep_releases: 5,
        shared_files: vec![".env".into()],
        shared_dirs: vec!["storage".into()],
        ssh_extra: SSH_EXTRA.to_string(),
        environment: laravel_environment,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(template: Template) -> InitOptions {
        InitOptions {
            template: Some(template),
            source: Source::Example,
            hosts: None,
            force: false,
            output: None,
            app_name: Some("shop".into()),
        }
    }

    #[test]
    fn both_templates_load_as_written() {
        for t in [Template::Generic, Template::Laravel] {
            let (text, _, _) = render(&opts(t)).unwrap();
            let inv = crate::inventory::load_str(Path::new("deckhand.toml"), &text, &|_| None)
                .unwrap_or_else(|r| panic!("{} template:\n{r}\n{text}", t.word()));
            assert_eq!(inv.app.name, "shop");
            let envs: Vec<&str> = inv.environments.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(envs, ["staging", "production"]);
        }
    }

    #[test]
    fn questions_fill_what_is_missing() {
        let mut o = opts(Template::Generic);
        o.template = None;
        o.app_name = None;
        let mut input = std::io::Cursor::new("laravel\nmy shop\n");
        let mut out = Vec::new();
        ask_missing(&mut o, &mut input, &mut out).unwrap();
        assert_eq!(o.template, Some(Template::Laravel));
        assert_eq!(o.app_name.as_deref(), Some("my-shop"));
        assert!(String::from_utf8_lossy(&out).contains("Template: generic or laravel?"));
    }
}
