//! The commands of the `deckhand` binary (not part of the library): each loads what it needs,
//! asks the operator where a command must, starts library work and prints the result. Rules
//! (what may be promoted, how a resume is planned, what an exit code is) live in the library.
//!
//! Every command answers `Result<i32, i32>`: Ok is the exit code of work done, Err the exit
//! code of a problem already printed, so `?` leaves early with the right code.

pub(crate) mod follow;
pub(crate) mod home;
pub(crate) mod inspect;
pub(crate) mod runs;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use deckhand::engine::RunOptions;
use deckhand::exit;
use deckhand::inventory::{self, Environment, Inventory};
use deckhand::ui::UiOptions;
use deckhand::{plan, util};

/// What every command gets from the command line's global flags.
pub(crate) struct Ctx {
    /// `-i FILE`.
    pub inventory: Option<PathBuf>,
    pub ui: UiOptions,
    pub lock_wait: Option<Duration>,
    pub take_over_stale: bool,
}

pub(crate) type Code = Result<i32, i32>;

impl Ctx {
    /// The inventory file: `-i`, else `./deckhand.toml`, else `$DECKHAND_INVENTORY`.
    fn inventory_path(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.inventory {
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

    /// Load and validate the inventory; problems are printed with file, line and column.
    pub fn load(&self) -> Result<Inventory, i32> {
        let path = self.inventory_path().map_err(|e| {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        })?;
        inventory::load(&path).map_err(|e| {
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            exit::BAD_INPUT
        })
    }

    /// Load the inventory and find an environment in it.
    pub fn load_env(&self, env: &str) -> Result<(Inventory, Environment), i32> {
        let inv = self.load()?;
        match inv.environment(env).cloned() {
            Some(e) => Ok((inv, e)),
            None => {
                let defined = inv
                    .environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                eprintln!(
                    "error: {}",
                    plan::PlanError::UnknownEnvironment(env.to_string(), defined)
                );
                Err(exit::BAD_INPUT)
            }
        }
    }

    /// Run options from the command line's lock flags, for every run this process starts.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            lock_wait: self.lock_wait,
            take_over_stale: self.take_over_stale,
            ..RunOptions::default()
        }
    }

    /// The console options with the inventory's own theme.
    pub fn ui_for(&self, inv: &Inventory) -> UiOptions {
        UiOptions {
            inventory_theme: inv.theme.clone(),
            ..self.ui.clone()
        }
    }

    /// The command that resumes this environment, as the operator would type it.
    pub fn resume_hint(&self, env: &str) -> String {
        resume_hint(self.inventory.as_deref(), env)
    }
}

pub(crate) fn resume_hint(inventory: Option<&Path>, env: &str) -> String {
    match inventory {
        Some(p) => format!("deckhand -i {} resume {env}", shell_path(p)),
        None => format!("deckhand resume {env}"),
    }
}

pub(crate) fn shell_path(p: &Path) -> String {
    util::sh_quote(&p.display().to_string())
}

pub(crate) fn check_release(release: &str) -> Result<(), i32> {
    if util::valid_release(release) {
        Ok(())
    } else {
        eprintln!(
            "error: release name {release:?} is not allowed\n  = help: use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (e.g. v1.1 or 2024-06-01.2)"
        );
        Err(exit::BAD_INPUT)
    }
}

pub(crate) fn build_plan(inv: &Inventory, env: &str, release: &str) -> Result<plan::Plan, i32> {
    plan::build(inv, env, release).map_err(|e| {
        eprintln!("error: {e}");
        exit::BAD_INPUT
    })
}

/// A run is headless when asked, or when nobody can see a screen.
pub(crate) fn headless_wanted(flag: bool) -> bool {
    flag || !std::io::stdout().is_terminal()
}

/// Somebody is at a terminal to answer questions.
pub(crate) fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}

fn read_answer() -> Option<String> {
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

/// Ask a yes/no question on the terminal; anything but y/yes is no.
pub(crate) fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    matches!(
        read_answer().map(|a| a.to_ascii_lowercase()).as_deref(),
        Some("y" | "yes")
    )
}

/// Ask the operator to type a word (the environment's name) to confirm.
pub(crate) fn confirm_typed(word: &str, question: &str) -> bool {
    eprint!("{question}\nType the environment's name ({word}) to confirm: ");
    read_answer().as_deref() == Some(word)
}

/// Ask a question whose answer is one line.
pub(crate) fn ask(question: &str) -> String {
    eprint!("{question}");
    read_answer().unwrap_or_default()
}
