//! The `deckhand` command: parses the command line, loads the inventory, picks the console or the
//! headless printer, and turns outcomes into exit codes (0 deployed, 1 failed, 2 bad input,
//! 3 lock held, 4 preflight failed). All deployment logic lives in the library.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use deckhand::engine::{self, Control, EventKind, Outcome, RollbackTarget, RunHandle, RunOptions};
use deckhand::headless::{Format, Printer};
use deckhand::inventory::{self, Inventory};
use deckhand::ui::{UiOptions, SIGNAL_GRACE};
use deckhand::{demo, plan, util};

const EXIT_BAD_INPUT: i32 = 2;

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    util::parse_duration(s).map_err(|_| format!("{s:?} is not a duration; use e.g. 30s, 10m, 1h"))
}

#[derive(Parser)]
#[command(
    name = "deckhand",
    version,
    about = "A terminal console for rolling deployments",
    long_about = "deckhand deploys a release to the nodes of an environment, batch by batch: each node is \
drained from the load balancer, gets the new release built beside the old one, switches `current` \
atomically, restarts, passes its health check and goes back into rotation. You can pause, resume, \
promote, abort or roll back at any moment.\n\n\
Try it without any setup:  deckhand demo",
    after_help = "Exit codes: 0 deployed (or rolled back on request), 1 failed (the message says rolled back, halted \
or aborted), 2 bad input, 3 lock held by another deployment, 4 preflight failed (a node unreachable, a host key refused).\n\n\
Examples:\n  deckhand validate\n  deckhand plan production --release v1.1\n  deckhand deploy production --release v1.1\n  \
deckhand deploy staging --release v1.1 --headless --yes --output json\n  deckhand rollback production\n  deckhand status production"
)]
struct Cli {
    /// Inventory file [default: ./deckhand.toml, then $DECKHAND_INVENTORY]
    #[arg(short = 'i', long = "inventory", global = true, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Console colours: dark, light, high-contrast, monochrome, or a theme file [default: the
    /// inventory's `theme`, monochrome when NO_COLOR is set, else dark]
    #[arg(long, global = true, value_name = "NAME|FILE")]
    theme: Option<String>,
    /// Draw the console with ASCII characters only
    #[arg(long, global = true)]
    ascii: bool,
    /// Wait up to this long for another deployment's live lock to be released
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    lock_wait: Option<std::time::Duration>,
    /// Take over a lock whose console stopped refreshing it (stale), after you checked it is gone
    #[arg(long, global = true)]
    take_over_stale: bool,
    #[command(subcommand)]
    command: Command,
}

/// How a run is shown and how far it may go without asking.
#[derive(clap::Args, Clone, Copy)]
struct RunArgs {
    /// Print events instead of drawing the console
    #[arg(long)]
    headless: bool,
    /// Pass gates without asking (needed for headless runs that have gates)
    #[arg(long)]
    yes: bool,
    /// Watch the post-deploy checklist at most this long (e.g. 10m), then decide
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    watch: Option<std::time::Duration>,
    #[arg(long, value_enum, default_value = "text")]
    output: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Check the inventory and report every problem with file, line and column
    Validate,
    /// Show the steps a deployment would run, in order, without touching any node
    Plan {
        /// Environment, as named under [environments.NAME]
        env: String,
        /// Release name to show in the plan
        #[arg(long, default_value = "RELEASE")]
        release: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Deploy a release to an environment, node by node
    #[command(long_about = "Deploy a release to an environment, batch by batch.\n\n\
Before anything changes, every node is contacted and its live release and lock are read; \
any failure stops the run (exit 4). The lock is then taken on every node (exit 3 if another \
deployment holds it). Headless runs (--headless, or when stdout is not a terminal) print one line \
per event; gates such as pause_after_first need --yes to pass there.")]
    Deploy {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        /// Release name: letters, digits, '.', '_', '+', '-' (it becomes a directory name)
        #[arg(long)]
        release: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Deploy to TO the release that FROM verified (its checklist passed there)
    #[command(
        long_about = "Deploy to TO the release that is live on FROM and passed FROM's post-deploy checklist on every FROM node (recorded in their history). With `requires = \"FROM\"` on TO, this is the only way a release gets there without being verified first."
    )]
    Promote {
        /// The environment whose verified release is shipped
        from: String,
        /// The environment that receives it
        to: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Show, per node, where each .env key comes from (environment, .env, .env.example)
    Config {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Put every node of an environment back on its previous release (or --to a given one)
    Rollback {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        /// Release to go back to (it must still be on every node); default: each node's previous
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        headless: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Continue or roll back a deployment that did not finish (the console died, a signal)
    #[command(
        long_about = "Finds the newest journal of this environment; if that deployment never finished, shows per node \
what is true now (live release, the release before the run, the lock) and then continues the deployment from where it \
stopped (--continue: nodes already on the release are checked and put back into rotation) or rolls back the nodes that \
switched (--rollback). The lock is taken over only by the same deployment."
    )]
    Resume {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        /// Carry the interrupted deployment through
        #[arg(long, conflicts_with = "rollback")]
        r#continue: bool,
        /// Put every node back on the release it had before the interrupted deployment
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Show each node's live release, previous release and lock holder
    Status {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Remove a lock left by a deployment that died (shows the holder and asks first)
    Unlock {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Deploy v1.1 over v1.0 on local demo nodes: no SSH, no setup
    #[command(
        long_about = "Builds N demo nodes under a directory on this machine (default: a fresh temp dir), \
puts v1.0 live on them, writes their inventory there, and deploys v1.1 through the normal engine: \
real releases, atomic switches, a file-backed load balancer and real health checks.\n\n\
Try --fail-node web-3 to watch a failing health check and the rollback."
    )]
    Demo {
        #[arg(long)]
        headless: bool,
        /// Number of demo nodes
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Directory for the demo nodes and their inventory
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Make this node's health check fail (e.g. web-3)
        #[arg(long, value_name = "NAME")]
        fail_node: Option<String>,
        /// No pauses between steps and one round of checks (for tests)
        #[arg(long)]
        fast: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Write a commented deckhand.toml to start from: a template, or your own servers imported
    /// from Ansible, Deployer or an ssh config
    #[command(
        long_about = "Writes a commented inventory that `deckhand validate` accepts as written, and says what to edit next. \
The phases and checklist come from --template (generic: upload a bundle, unpack, switch, restart; laravel: the seed's \
deploy.sh phases with shared .env and storage, a backup and migrations once, the three-window checklist and a health URL). \
The servers are the template's examples, or imported with one of --from-ansible, --from-deployer, --from-ssh-config: \
passwords are never copied, renamed hosts and anything that could not be carried over are listed at the top of the file.\n\n\
It never replaces an existing file (exit 2) unless --force is given, and asks nothing when stdin is not a terminal.\n\n\
Examples:\n  deckhand init --template laravel\n  deckhand init --from-ansible inventories/production/hosts.ini\n  \
deckhand init --from-deployer deploy.yaml --output deploy/deckhand.toml\n  deckhand init --from-ssh-config --hosts 'web*'"
    )]
    Init {
        /// What the phases and checklist are written for [default: generic; laravel for a
        /// Deployer recipe that imports Laravel's]
        #[arg(long, value_enum, value_name = "NAME")]
        template: Option<deckhand::init::Template>,
        /// Nodes from an Ansible inventory: an INI or YAML file, or a directory; its group_vars/
        /// and host_vars/ are read too. Groups become roles; groups named like an environment
        /// (production, staging, ...) become environments
        #[arg(long, value_name = "FILE|DIR", group = "servers")]
        from_ansible: Option<PathBuf>,
        /// Nodes from a Deployer YAML recipe: hosts, labels (roles), stage (environments),
        /// shared_files, shared_dirs, keep_releases
        #[arg(long, value_name = "FILE", group = "servers")]
        from_deployer: Option<PathBuf>,
        /// One node per Host alias of an ssh config (ssh keeps applying its settings)
        /// [default FILE: ~/.ssh/config]
        #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "", group = "servers")]
        from_ssh_config: Option<PathBuf>,
        /// With --from-ssh-config: only these aliases (ssh patterns, comma-separated, e.g. 'web*,!web9')
        #[arg(long, value_name = "PATTERN", requires = "from_ssh_config")]
        hosts: Option<String>,
        /// Replace the file if it exists
        #[arg(long)]
        force: bool,
        /// Write to FILE instead of ./deckhand.toml
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Prints the completion script for SHELL on stdout. Install it, e.g.:\n  \
bash:  deckhand completions bash > ~/.local/share/bash-completion/completions/deckhand\n  \
zsh:   deckhand completions zsh > ~/.zfunc/_deckhand   (with fpath+=~/.zfunc before compinit)\n  \
fish:  deckhand completions fish > ~/.config/fish/completions/deckhand.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: deckhand::manual::Shell,
    },
    /// Print the man page (roff); read it with `deckhand man | man -l -`
    #[command(
        long_about = "Prints the manual page in roff on stdout: read it with `deckhand man | man -l -`, or install it with \
`deckhand man > ~/.local/share/man/man1/deckhand.1`."
    )]
    Man,
    /// Play a recorded deployment (a JSONL journal) through the console, for post-mortems and demos
    #[command(
        long_about = "Plays a journal written by a deployment (one JSON event per line) through \
the same console screen. Keys: p or space stops and goes on, '.' plays one event while stopped, \
+ and - change the speed, q leaves. Nothing is sent to any node."
    )]
    Replay {
        /// The journal file
        journal: PathBuf,
        /// Playback speed (1 = as recorded, with long quiet stretches shortened)
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(cli));
    // Leave at once: no background task may hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}

fn inventory_path(cli: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = cli {
        return Ok(p.clone());
    }
    let local = PathBuf::from("deckhand.toml");
    if local.is_file() {
        return Ok(local);
    }
    if let Some(p) = std::env::var_os("DECKHAND_INVENTORY").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Err("no inventory: ./deckhand.toml does not exist and DECKHAND_INVENTORY is not set\n  = help: pass one with -i FILE (see inventory/demo.toml and inventory/askproai.toml for examples)".into())
}

fn load(cli: &Option<PathBuf>) -> Result<Inventory, i32> {
    let path = inventory_path(cli).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_BAD_INPUT
    })?;
    inventory::load(&path).map_err(|e| {
        eprint!("{e}");
        if !e.to_string().ends_with('\n') {
            eprintln!();
        }
        EXIT_BAD_INPUT
    })
}

/// Load the inventory and find an environment in it; errors are printed, the exit code returned.
fn load_env(
    inventory: &Option<PathBuf>,
    env: &str,
) -> Result<(Inventory, deckhand::inventory::Environment), i32> {
    let inv = load(inventory)?;
    match inv.environment(env).cloned() {
        Some(e) => Ok((inv, e)),
        None => {
            eprintln!(
                "error: {}",
                plan::PlanError::UnknownEnvironment(env.to_string(), defined_envs(&inv))
            );
            Err(EXIT_BAD_INPUT)
        }
    }
}

fn defined_envs(inv: &Inventory) -> String {
    inv.environments
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_release(release: &str) -> Result<(), i32> {
    if util::valid_release(release) {
        Ok(())
    } else {
        eprintln!(
            "error: release name {release:?} is not allowed\n  = help: use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (e.g. v1.1 or 2024-06-01.2)"
        );
        Err(EXIT_BAD_INPUT)
    }
}

fn build_plan(inv: &Inventory, env: &str, release: &str) -> Result<plan::Plan, i32> {
    plan::build(inv, env, release).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_BAD_INPUT
    })
}

fn headless_wanted(flag: bool) -> bool {
    flag || !std::io::stdout().is_terminal()
}

/// Ask a yes/no question on the terminal; anything but y/yes is no.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Ask the operator to type a word (the environment's name) to confirm.
fn confirm_typed(word: &str, question: &str) -> bool {
    eprint!("{question}\nType the environment's name ({word}) to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    line.trim() == word
}

/// Lock options from the command line, for every run this process starts.
static LOCK_FLAGS: std::sync::OnceLock<(Option<std::time::Duration>, bool)> =
    std::sync::OnceLock::new();

fn run_options() -> RunOptions {
    let (lock_wait, take_over_stale) = LOCK_FLAGS.get().copied().unwrap_or((None, false));
    RunOptions {
        lock_wait,
        take_over_stale,
        ..RunOptions::default()
    }
}

async fn run(cli: Cli) -> i32 {
    let ui = UiOptions {
        theme: cli.theme.clone(),
        inventory_theme: None,
        ascii: cli.ascii,
    };
    let _ = LOCK_FLAGS.set((cli.lock_wait, cli.take_over_stale));
    match cli.command {
        Command::Resume {
            env,
            r#continue,
            rollback,
            run,
        } => resume(&cli.inventory, env, r#continue, rollback, run, ui).await,
        Command::Validate => match load(&cli.inventory) {
            Ok(inv) => {
                println!(
                    "{}: ok — app {}, {}, {} ({}), {}",
                    inv.file.display(),
                    inv.app.name,
                    util::count(inv.nodes.len(), "node", "nodes"),
                    util::count(inv.environments.len(), "environment", "environments"),
                    inv.environments
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    util::count(inv.phases.len(), "phase", "phases")
                );
                0
            }
            Err(code) => code,
        },
        Command::Plan {
            env,
            release,
            output,
        } => {
            let inv = match load(&cli.inventory) {
                Ok(i) => i,
                Err(c) => return c,
            };
            if release != "RELEASE" {
                if let Err(c) = check_release(&release) {
                    return c;
                }
            }
            let p = match build_plan(&inv, &env, &release) {
                Ok(p) => p,
                Err(c) => return c,
            };
            match output {
                Format::Text => print!("{}", plan::render_text(&p, &inv)),
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default())
                }
            }
            0
        }
        Command::Deploy { env, release, run } => {
            deploy(&cli.inventory, env, release, run, ui).await
        }
        Command::Promote { from, to, run } => {
            let (inv, src) = match load_env(&cli.inventory, &from) {
                Ok(pair) => pair,
                Err(c) => return c,
            };
            let statuses = engine::status::read_status(&inv, &src.nodes).await;
            let lives: Vec<Option<String>> =
                statuses.iter().map(|s| s.live_release.clone()).collect();
            let release = match lives.first().cloned().flatten() {
                Some(r) if lives.iter().all(|l| l.as_deref() == Some(r.as_str())) => r,
                _ => {
                    eprintln!(
                        "error: {from} does not run one release on every node ({}); nothing to promote",
                        statuses
                            .iter()
                            .map(|s| format!("{}: {}", s.node, s.live_release.as_deref().unwrap_or("none")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return 4;
                }
            };
            let unverified: Vec<&str> = statuses
                .iter()
                .filter(|s| !s.verified.contains(&release))
                .map(|s| s.node.as_str())
                .collect();
            if !unverified.is_empty() {
                eprintln!(
                    "error: {release} is live on {from} but has not passed its checklist on {}; nothing to promote\n  = help: let the checklist finish on {from} (deckhand deploy {from} --release {release})",
                    unverified.join(", ")
                );
                return 4;
            }
            eprintln!("promote: {release} passed {from}'s checklist; deploying it to {to}");
            deploy(&cli.inventory, to, release, run, ui).await
        }
        Command::Config { env, output } => {
            let (inv, e) = match load_env(&cli.inventory, &env) {
                Ok(pair) => pair,
                Err(c) => return c,
            };
            let example = match &e.config_example {
                Some(x) => std::fs::read_to_string(inv.base_dir().join(x)).unwrap_or_default(),
                None => String::new(),
            };
            let mut all = Vec::new();
            let mut code = 0;
            for n in &e.nodes {
                let Some(node) = inv.node(n) else { continue };
                let r = async {
                    let t = deckhand::transport::for_node(node, &inv.base_dir())
                        .map_err(|e| e.to_string())?;
                    let o = t
                        .exec(
                            &deckhand::transport::ExecRequest::new(
                                deckhand::config::node_config_script(&node.deploy_path),
                            )
                            .timeout(std::time::Duration::from_secs(30)),
                            None,
                            &tokio_util::sync::CancellationToken::new(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<String, String>(o.stdout)
                }
                .await;
                match r {
                    Ok(out) => {
                        let (dotenv, names) = out
                            .split_once("__deckhand_environment__\n")
                            .unwrap_or((out.as_str(), ""));
                        let names: Vec<String> = names.lines().map(String::from).collect();
                        let mut resolved = deckhand::config::resolve(&example, dotenv, &names);
                        for r in resolved.iter_mut() {
                            r.value = inv.secrets.mask(&r.value);
                        }
                        all.push((n.clone(), resolved));
                    }
                    Err(err) => {
                        eprintln!("error: {n}: {err}");
                        code = 4;
                    }
                }
            }
            match output {
                Format::Json => {
                    let v: Vec<serde_json::Value> = all
                        .iter()
                        .map(|(n, r)| serde_json::json!({"node": n, "keys": r}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                Format::Text => {
                    for (n, r) in &all {
                        println!("{n}:");
                        for k in r {
                            println!("  {:<28} {:<13} {}", k.key, k.source, k.value);
                        }
                    }
                }
            }
            code
        }
        Command::Rollback {
            env,
            to,
            headless,
            yes,
            output,
        } => {
            if let Some(r) = &to {
                if let Err(c) = check_release(r) {
                    return c;
                }
            }
            let inv = match load(&cli.inventory) {
                Ok(i) => i,
                Err(c) => return c,
            };
            let label = to.clone().unwrap_or_else(|| "previous".into());
            let p = match build_plan(&inv, &env, &label) {
                Ok(p) => p,
                Err(c) => return c,
            };
            let headless = headless_wanted(headless);
            if !yes {
                if headless || !std::io::stdin().is_terminal() {
                    eprintln!("error: a rollback changes every node of {env}; confirm with --yes when running headless");
                    return EXIT_BAD_INPUT;
                }
                let statuses = engine::status::read_status(&inv, &p.nodes).await;
                let lines: Vec<String> = statuses
                    .iter()
                    .map(|s| {
                        let to = to
                            .clone()
                            .or(s.previous_release.clone())
                            .unwrap_or_else(|| "(none)".into());
                        format!(
                            "  {}: {} → {}",
                            s.node,
                            s.live_release.as_deref().unwrap_or("(none)"),
                            to
                        )
                    })
                    .collect();
                let question = format!("Roll back {env}?\n{}", lines.join("\n"));
                let protected = inv.environment(&env).map(|e| e.protected).unwrap_or(false);
                let ok = if protected {
                    confirm_typed(&env, &question)
                } else {
                    confirm(&question)
                };
                if !ok {
                    eprintln!("nothing was changed");
                    return 1;
                }
            }
            let target = match to {
                Some(r) => RollbackTarget::Release(r),
                None => RollbackTarget::Previous,
            };
            let opts = RunOptions {
                auto_promote: true,
                headless,
                ..run_options()
            };
            let ui = UiOptions {
                inventory_theme: inv.theme.clone(),
                ..ui
            };
            match engine::spawn_rollback(Arc::new(inv), p, target, opts) {
                Ok(h) if !headless => {
                    console(h, ui, true, &resume_hint(&cli.inventory, &env)).await
                }
                Ok(h) => drive(h, output, true, &resume_hint(&cli.inventory, &env)).await,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Status { env, output } => {
            let (inv, e) = match load_env(&cli.inventory, &env) {
                Ok(pair) => pair,
                Err(c) => return c,
            };
            let statuses = engine::status::read_status(&inv, &e.nodes).await;
            let unreachable = statuses.iter().any(|s| !s.reachable);
            match output {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&statuses).unwrap_or_default()
                ),
                Format::Text => {
                    println!(
                        "{:<14} {:<18} {:<12} {:<12} LOCK",
                        "NODE", "HOST", "LIVE", "PREVIOUS"
                    );
                    for s in &statuses {
                        let lock = match (&s.lock, s.locked, &s.error) {
                            (_, _, Some(err)) => format!("unreachable: {err}"),
                            (Some(l), _, _) => {
                                format!("held by {}{}", l.describe(), age_note(s.lock_age_s))
                            }
                            (None, true, _) => "held (holder unreadable)".into(),
                            _ => "-".into(),
                        };
                        println!(
                            "{:<14} {:<18} {:<12} {:<12} {}",
                            s.node,
                            s.host,
                            s.live_release.as_deref().unwrap_or("-"),
                            s.previous_release.as_deref().unwrap_or("-"),
                            lock
                        );
                    }
                }
            }
            if unreachable {
                4
            } else {
                0
            }
        }
        Command::Unlock { env, yes } => {
            let (inv, e) = match load_env(&cli.inventory, &env) {
                Ok(pair) => pair,
                Err(c) => return c,
            };
            let statuses = engine::status::read_status(&inv, &e.nodes).await;
            let held: Vec<&engine::status::NodeStatus> =
                statuses.iter().filter(|s| s.locked).collect();
            if held.is_empty() {
                println!("no node of {env} is locked");
                return 0;
            }
            for s in &held {
                match &s.lock {
                    Some(l) => println!(
                        "{}: locked by {}{}",
                        s.node,
                        l.describe(),
                        age_note(s.lock_age_s)
                    ),
                    None => println!("{}: locked (holder unreadable)", s.node),
                }
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    eprintln!("error: removing a lock needs confirmation; add --yes once you are sure that deployment is dead");
                    return EXIT_BAD_INPUT;
                }
                if !confirm(
                    "Remove these locks? Only do this if that deployment is no longer running.",
                ) {
                    eprintln!("nothing was changed");
                    return 1;
                }
            }
            let names: Vec<String> = held.iter().map(|s| s.node.clone()).collect();
            let errors = engine::status::force_unlock(&inv, &names).await;
            if errors.is_empty() {
                println!("unlocked {}", util::count(names.len(), "node", "nodes"));
                0
            } else {
                for e in errors {
                    eprintln!("error: {e}");
                }
                1
            }
        }
        Command::Demo {
            headless,
            nodes,
            dir,
            fail_node,
            fast,
            output,
        } => run_demo(headless, nodes, dir, fail_node, fast, output, ui).await,
        Command::Init {
            template,
            from_ansible,
            from_deployer,
            from_ssh_config,
            hosts,
            force,
            output,
        } => deckhand::init::cli(deckhand::init::InitOptions {
            template,
            source: deckhand::init::Source::from_flags(
                from_ansible,
                from_deployer,
                from_ssh_config,
            ),
            hosts,
            force,
            output,
            app_name: None,
        }),
        Command::Completions { shell } => deckhand::manual::print_completions(
            &mut <Cli as clap::CommandFactory>::command(),
            shell,
        ),
        Command::Man => deckhand::manual::print_man(<Cli as clap::CommandFactory>::command()),
        Command::Replay { journal, speed } => match deckhand::ui::replay(&journal, ui, speed).await
        {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                EXIT_BAD_INPUT
            }
        },
    }
}

async fn deploy(
    inventory: &Option<PathBuf>,
    env: String,
    release: String,
    run: RunArgs,
    ui: UiOptions,
) -> i32 {
    let RunArgs {
        headless,
        yes,
        watch,
        output,
    } = run;
    if let Err(c) = check_release(&release) {
        return c;
    }
    let inv = match load(inventory) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let p = match build_plan(&inv, &env, &release) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let headless = headless_wanted(headless);
    if headless && !p.gates.is_empty() && !yes {
        eprintln!(
                    "error: this deployment waits for a promote after batch {} (pause_after_first), and a headless run has nobody to promote it\n  = help: add --yes to pass the gate, or run in a terminal without --headless",
                    p.gates[0] + 1
                );
        return EXIT_BAD_INPUT;
    }
    let opts = RunOptions {
        auto_promote: yes,
        headless,
        watch,
        ..run_options()
    };
    let ui = UiOptions {
        inventory_theme: inv.theme.clone(),
        ..ui
    };
    match engine::spawn_deploy(Arc::new(inv), p, opts) {
        Ok(h) if !headless => console(h, ui, false, &resume_hint(inventory, &env)).await,
        Ok(h) => drive(h, output, false, &resume_hint(inventory, &env)).await,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

async fn run_demo(
    headless: bool,
    nodes: usize,
    dir: Option<PathBuf>,
    fail_node: Option<String>,
    fast: bool,
    output: Format,
    ui: UiOptions,
) -> i32 {
    let dir = match dir {
        Some(d) => d,
        None => match tempfile::Builder::new().prefix("deckhand-demo-").tempdir() {
            Ok(t) => t.keep(),
            Err(e) => {
                eprintln!("error: cannot create a temp dir for the demo: {e}");
                return 1;
            }
        },
    };
    let d = match demo::prepare(&dir, nodes, fail_node.as_deref(), fast).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_BAD_INPUT;
        }
    };
    eprintln!(
        "demo: {} with {} live under {}\n      inventory: {}",
        util::count(d.nodes.len(), "node", "nodes"),
        demo::FROM,
        d.dir.join("nodes").display(),
        d.inventory.display()
    );
    let inv = match demo::load(&d.inventory) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 1;
        }
    };
    let p = match build_plan(&inv, demo::ENV, demo::TO) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let headless = headless_wanted(headless);
    let opts = RunOptions {
        // Nobody promotes a headless demo: its gate passes by itself.
        auto_promote: headless,
        headless,
        watch: fast.then_some(std::time::Duration::ZERO),
        ..run_options()
    };
    let ui = UiOptions {
        inventory_theme: inv.theme.clone(),
        ..ui
    };
    let code = match engine::spawn_deploy(Arc::new(inv), p, opts) {
        Ok(h) if !headless => {
            console(
                h,
                ui,
                false,
                &resume_hint(&Some(d.inventory.clone()), demo::ENV),
            )
            .await
        }
        Ok(h) => {
            drive(
                h,
                output,
                false,
                &resume_hint(&Some(d.inventory.clone()), demo::ENV),
            )
            .await
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    eprintln!(
        "demo: try `deckhand -i {} status demo`",
        shell_path(&d.inventory)
    );
    code
}

async fn resume(
    inventory: &Option<PathBuf>,
    env: String,
    cont: bool,
    rollback: bool,
    run: RunArgs,
    ui: UiOptions,
) -> i32 {
    let RunArgs {
        headless,
        yes,
        watch,
        output,
    } = run;
    let (inv, e) = match load_env(inventory, &env) {
        Ok(pair) => pair,
        Err(c) => return c,
    };
    let dir = deckhand::journal::default_journal_dir();
    let found = match deckhand::resume::find(&dir, &inv.app.name, &env) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    let int = match found {
        deckhand::resume::Found::Nothing => {
            println!(
                "nothing to resume: no journal of {} in {env} under {}",
                inv.app.name,
                dir.display()
            );
            return 0;
        }
        deckhand::resume::Found::Finished { journal, outcome } => {
            println!(
                "nothing to resume: the last deployment of {env} finished ({outcome}); journal {}",
                journal.display()
            );
            return 0;
        }
        deckhand::resume::Found::Interrupted(i) => i,
    };
    if int.kind != deckhand::event::RunKind::Deploy {
        eprintln!(
            "error: the interrupted run was a rollback; run `deckhand rollback {env}` again to finish it (journal {})",
            int.journal.display()
        );
        return 1;
    }
    for p in &int.problems {
        eprintln!("warning: {p} (not trusted)");
    }
    println!(
        "interrupted: deployment {} of {} to {env}; last recorded: {}\njournal: {}",
        int.deployment,
        int.release,
        int.last,
        int.journal.display()
    );
    let statuses = engine::status::read_status(&inv, &e.nodes).await;
    println!("{:<14} {:<12} {:<12} LOCK", "NODE", "BEFORE", "NOW");
    for s in &statuses {
        let before = int
            .before
            .get(&s.node)
            .cloned()
            .flatten()
            .unwrap_or_else(|| "-".into());
        let now = match (&s.live_release, &s.error) {
            (_, Some(err)) => format!("unreachable: {err}"),
            (Some(r), _) => r.clone(),
            (None, _) => "-".into(),
        };
        let lock = match &s.lock {
            Some(l) if l.id == int.deployment => "held by the interrupted run".to_string(),
            Some(l) => format!("held by another deployment: {}", l.describe()),
            None if s.locked => "held (holder unreadable)".into(),
            None => "-".into(),
        };
        println!("{:<14} {:<12} {:<12} {lock}", s.node, before, now);
    }
    if statuses.iter().any(|s| !s.reachable) {
        eprintln!("error: some nodes cannot be reached; resume once they answer");
        return 4;
    }
    let choice = if cont {
        'c'
    } else if rollback {
        'r'
    } else if headless || !std::io::stdin().is_terminal() {
        eprintln!("error: choose --continue (carry {} through) or --rollback (back to the releases before it)", int.release);
        return EXIT_BAD_INPUT;
    } else {
        eprint!(
            "[c]ontinue the deployment of {}, [r]oll back, or [q]uit? ",
            int.release
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        match line.trim() {
            "c" | "continue" => 'c',
            "r" | "rollback" => 'r',
            _ => {
                eprintln!("nothing was changed");
                return 1;
            }
        }
    };
    let headless = headless_wanted(headless);
    let mut opts = run_options();
    opts.resume_id = Some(int.deployment.clone());
    opts.watch = watch;
    opts.headless = headless;
    opts.auto_promote = yes || choice == 'r';
    let ui = UiOptions {
        inventory_theme: inv.theme.clone(),
        ..ui
    };
    let inv = Arc::new(inv);
    let hint = resume_hint(inventory, &env);
    if choice == 'c' {
        let p = match build_plan(&inv, &env, &int.release) {
            Ok(p) => p,
            Err(c) => return c,
        };
        if headless && !p.gates.is_empty() && !yes {
            eprintln!("error: this deployment has a gate; add --yes to pass it headless");
            return EXIT_BAD_INPUT;
        }
        match engine::spawn_deploy(inv, p, opts) {
            Ok(h) if !headless => console(h, ui, false, &hint).await,
            Ok(h) => drive(h, output, false, &hint).await,
            Err(err) => {
                eprintln!("error: {err}");
                1
            }
        }
    } else {
        let p = match build_plan(&inv, &env, "previous") {
            Ok(p) => p,
            Err(c) => return c,
        };
        let to = int
            .before
            .iter()
            .filter_map(|(n, r)| r.clone().map(|r| (n.clone(), r)))
            .collect();
        let target = RollbackTarget::Resume {
            to,
            abandon: int.release.clone(),
        };
        match engine::spawn_rollback(inv, p, target, opts) {
            Ok(h) if !headless => console(h, ui, true, &hint).await,
            Ok(h) => drive(h, output, true, &hint).await,
            Err(err) => {
                eprintln!("error: {err}");
                1
            }
        }
    }
}

/// How alive a lock is, from its heartbeat's age.
fn age_note(age: Option<u64>) -> String {
    engine::remote::lock_age_note(age, engine::run::DEFAULT_STALE_AFTER)
}

/// The command that resumes this environment, as the operator would type it.
fn resume_hint(inventory: &Option<PathBuf>, env: &str) -> String {
    match inventory {
        Some(p) => format!("deckhand -i {} resume {env}", shell_path(p)),
        None => format!("deckhand resume {env}"),
    }
}

fn shell_path(p: &Path) -> String {
    util::sh_quote(&p.display().to_string())
}

/// Ask at a gate, on the terminal: promote, roll back or abort.
fn ask_at_gate(controls: tokio::sync::mpsc::UnboundedSender<Control>) {
    tokio::task::spawn_blocking(move || loop {
        eprint!("promote and continue? [y = promote, r = roll back, a = abort] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let c = match line.trim() {
            "y" | "yes" => Control::Promote,
            "r" => Control::Rollback,
            "a" => Control::Abort,
            _ => continue,
        };
        let _ = controls.send(c);
        return;
    });
}

/// Follow a run in the console until the operator leaves; the outcome becomes the exit code.
/// A console left while the run is paused (quit, or a signal) keeps the lock for `resume`.
async fn console(h: RunHandle, ui: UiOptions, rollback_run: bool, resume_hint: &str) -> i32 {
    match deckhand::ui::run_until_left(h, ui).await {
        Ok(deckhand::ui::Ending::Finished(outcome)) => {
            eprintln!("deckhand: {}", outcome.word());
            exit_code(rollback_run, outcome)
        }
        Ok(deckhand::ui::Ending::LeftPaused) => {
            say_left_paused(resume_hint);
            1
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// The exit code of a run: its outcome's, except that a rollback asked for and done is a success.
fn exit_code(rollback_run: bool, outcome: Outcome) -> i32 {
    match (rollback_run, outcome) {
        (true, Outcome::RolledBack) => 0,
        _ => outcome.exit_code(),
    }
}

/// Say that the run was left paused, with the lock held, and how to go on.
fn say_left_paused(resume_hint: &str) {
    eprintln!(
        "paused and leaving: nothing is running; every node is on a whole release and the lock stays held.\n  = help: continue or roll back with `{resume_hint} --continue` or `{resume_hint} --rollback`"
    );
}

/// Follow a run to its end with the line printer. SIGINT, SIGTERM or SIGHUP pause it at the
/// next step boundary and leave with the lock held, saying how to resume; a second signal aborts.
async fn drive(mut h: RunHandle, output: Format, rollback_run: bool, resume_hint: &str) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let mut printer = Printer::new(std::io::stdout(), output);
    let controls = h.controls.clone();
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut finished_msg = None;
    let mut sigs: Vec<(&str, Option<tokio::signal::unix::Signal>)> = vec![
        ("SIGINT", signal(SignalKind::interrupt()).ok()),
        ("SIGTERM", signal(SignalKind::terminate()).ok()),
        ("SIGHUP", signal(SignalKind::hangup()).ok()),
    ];
    let mut leaving: Option<tokio::time::Instant> = None;
    let mut aborted = false;
    loop {
        let any_signal = async {
            let futs = sigs.iter_mut().map(|(name, s)| {
                Box::pin(async move {
                    match s.as_mut() {
                        Some(s) => {
                            s.recv().await;
                            *name
                        }
                        None => std::future::pending::<&str>().await,
                    }
                })
            });
            futures::future::select_all(futs).await.0
        };
        let grace = async {
            match leaving {
                Some(t) if !aborted => tokio::time::sleep_until(t + SIGNAL_GRACE).await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            ev = h.events.recv() => match ev {
                Some(e) => {
                    if let EventKind::Finished { outcome, message, .. } = &e.kind {
                        finished_msg = Some((*outcome, message.clone()));
                    }
                    printer.print(&e);
                    if leaving.is_some() && !aborted && matches!(e.kind, EventKind::Paused) {
                        say_left_paused(resume_hint);
                        return 1;
                    }
                    if interactive && leaving.is_none() && matches!(e.kind, EventKind::Gate { .. }) {
                        ask_at_gate(controls.clone());
                    }
                }
                None => break,
            },
            name = any_signal => {
                if leaving.is_none() {
                    leaving = Some(tokio::time::Instant::now());
                    eprintln!("{name}: pausing at the next step boundary, then leaving (send it again to abort now)");
                    let _ = controls.send(Control::Interrupt { reason: format!("{name} received") });
                } else if !aborted {
                    aborted = true;
                    eprintln!("{name} again: aborting — running steps are killed, unfinished releases removed, the lock released");
                    let _ = controls.send(Control::Abort);
                }
            }
            _ = grace => {
                aborted = true;
                eprintln!("the running step did not end within {}; aborting it", util::format_duration(SIGNAL_GRACE));
                let _ = controls.send(Control::Abort);
            }
        }
    }
    let outcome = h.done.await.unwrap_or(Outcome::Failed);
    if let Some((_, msg)) = &finished_msg {
        if output == Format::Text && !std::io::stdout().is_terminal() {
            // The printer already wrote it to stdout; repeat on stderr for people who only see that.
            eprintln!("{}: {msg}", outcome.word());
        }
    }
    exit_code(rollback_run, outcome)
}
