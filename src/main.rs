//! The `deckhand` command: parses the command line and dispatches to the commands in `cmd/`.
//! Exit codes come from `deckhand::exit` (0 deployed, 1 failed, 2 bad input, 3 lock held,
//! 4 not ready). All deployment rules live in the library; `cmd/` only loads, asks, starts and
//! prints.

mod cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use deckhand::headless::Format;
use deckhand::util;

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
    command: Option<Command>,
}

/// How a run is shown and how far it may go without asking.
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct RunArgs {
    /// Print events instead of drawing the console
    #[arg(long)]
    pub headless: bool,
    /// Pass gates without asking (needed for headless runs that have gates)
    #[arg(long)]
    pub yes: bool,
    /// Watch the post-deploy checklist at most this long (e.g. 10m), then decide
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub watch: Option<std::time::Duration>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Format,
    /// Step mode: start paused before the first step; in the console `s` runs the next step of
    /// each node in flight, `p` goes on normally
    #[arg(long)]
    pub step: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The home screen (also `deckhand` alone): every environment, its nodes and history;
    /// deploy, roll back, promote, unlock and watch from there
    Console,
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
stopped (--continue: nodes that finished their turn are checked and put back into rotation; a node switched but not \
finished runs its phases from switch on again) or rolls back the nodes that \
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
    /// An environment's deployments and rollbacks, newest first, as its nodes recorded them
    #[command(
        long_about = "Reads every node's own history (.deckhand/history.jsonl) and joins the lines of each run: \
when, kind (deploy, rollback, resume, promote), release, outcome, who and from which host, duration and failed nodes. \
Every operator sees the same history, from whichever machine they ran. A node that cannot be read is named (exit 4)."
    )]
    History {
        /// Environment, as named under [environments.NAME] in the inventory
        env: String,
        /// Show at most this many runs (newest first)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Watch, read-only, a deployment another console runs on ENV (any user, any machine that
    /// reaches the nodes)
    #[command(
        long_about = "Follows the deployment that holds ENV's lock, in the same grid as the console that runs it: each \
node's live release, what it is doing (from the progress the running console records beside its lock), its history and \
the balancer's own answer, read from the nodes every half second. Nothing here can pause, promote or roll back that run. \
Without a terminal, prints one line per change."
    )]
    Watch {
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
        #[arg(long, value_name = "FILE", num_args = 0..=1, group = "servers")]
        from_ssh_config: Option<Option<PathBuf>>,
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
    // ssh runs this binary to open a node's TCP connection (transport/connect.rs); nothing
    // else of deckhand starts for that.
    let mut args = std::env::args_os();
    if args
        .nth(1)
        .is_some_and(|a| a == deckhand::transport::connect::HELPER_ARG)
    {
        let rest: Vec<_> = args.collect();
        std::process::exit(deckhand::transport::connect::helper_main(&rest));
    }
    if let Ok(me) = std::env::current_exe() {
        deckhand::transport::connect::set_helper(me);
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(deckhand::exit::FAILED);
        }
    };
    let code = rt.block_on(run(cli));
    // Leave at once: no background task may hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    let ctx = cmd::Ctx {
        inventory: cli.inventory,
        ui: deckhand::ui::UiOptions {
            theme: cli.theme,
            inventory_theme: None,
            ascii: cli.ascii,
        },
        lock_wait: cli.lock_wait,
        take_over_stale: cli.take_over_stale,
    };
    let Some(command) = cli.command else {
        return match cmd::home::home(&ctx).await {
            Ok(c) | Err(c) => c,
        };
    };
    let result = match command {
        Command::Console => cmd::home::home(&ctx).await,
        Command::Validate => cmd::inspect::validate(&ctx),
        Command::Plan {
            env,
            release,
            output,
        } => cmd::inspect::plan(&ctx, &env, &release, output),
        Command::Config { env, output } => cmd::inspect::config(&ctx, &env, output).await,
        Command::Status { env, output } => cmd::inspect::status(&ctx, &env, output).await,
        Command::History { env, limit, output } => {
            cmd::inspect::history(&ctx, &env, limit, output).await
        }
        Command::Watch { env, output } => cmd::inspect::watch(&ctx, &env, output).await,
        Command::Unlock { env, yes } => cmd::inspect::unlock(&ctx, &env, yes).await,
        Command::Replay { journal, speed } => cmd::inspect::replay(&ctx, &journal, speed).await,
        Command::Deploy { env, release, run } => cmd::runs::deploy(&ctx, &env, &release, run).await,
        Command::Promote { from, to, run } => cmd::runs::promote(&ctx, &from, &to, run).await,
        Command::Rollback {
            env,
            to,
            headless,
            yes,
            output,
        } => cmd::runs::rollback(&ctx, &env, to, headless, yes, output).await,
        Command::Resume {
            env,
            r#continue,
            rollback,
            run,
        } => cmd::runs::resume(&ctx, &env, r#continue, rollback, run).await,
        Command::Demo {
            headless,
            nodes,
            dir,
            fail_node,
            fast,
            output,
        } => {
            cmd::runs::demo(
                &ctx,
                cmd::runs::DemoArgs {
                    headless,
                    nodes,
                    dir,
                    fail_node,
                    fast,
                    output,
                },
            )
            .await
        }
        Command::Init {
            template,
            from_ansible,
            from_deployer,
            from_ssh_config,
            hosts,
            force,
            output,
        } => Ok(deckhand::init::cli(deckhand::init::InitOptions {
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
        })),
        Command::Completions { shell } => Ok(deckhand::manual::print_completions(
            &mut <Cli as clap::CommandFactory>::command(),
            shell,
        )),
        Command::Man => Ok(deckhand::manual::print_man(
            <Cli as clap::CommandFactory>::command(),
        )),
    };
    match result {
        Ok(code) | Err(code) => code,
    }
}
