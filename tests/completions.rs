//! Shell completion and the man page, as a user meets them: the bash script loaded into a real
//! bash and asked to complete, and the page rendered by `man -l` (package man-db; scripts/test.sh
//! installs it).

use std::path::Path;
use std::process::{Command, Stdio};

#[path = "support/output.rs"]
mod output;
use output::{assert_exit, text};

fn deckhand(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run deckhand")
}

/// Load the completion script into bash, complete `words` (the last one may be empty), and
/// return what bash would offer, sorted.
fn complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{script}'\n\
         COMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         _deckhand deckhand '{cur}' '{prev}' 2>/dev/null\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script = script.display(),
        words = quoted.join(" "),
        cur = words[cword],
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(program)
        .output()
        .expect("bash is needed to test the bash completion");
    assert!(out.status.success(), "bash: {}", text(&out));
    let mut offered: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    // bash sorts what it shows; the script's order is the definition's.
    offered.sort();
    offered
}

#[test]
fn bash_completes_subcommands_flags_and_values() {
    let out = deckhand(&["completions", "bash"]);
    assert_exit(&out, 0);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("deckhand.bash");
    std::fs::write(&script, &out.stdout).unwrap();

    let subcommands = complete(&script, &["deckhand", "de"]);
    assert_eq!(
        subcommands,
        ["demo", "deploy"],
        "subcommands starting with de"
    );
    let init = complete(&script, &["deckhand", "in"]);
    assert_eq!(init, ["init"]);
    let from = complete(&script, &["deckhand", "init", "--from"]);
    assert_eq!(
        from,
        ["--from-ansible", "--from-deployer", "--from-ssh-config"]
    );
    let templates = complete(&script, &["deckhand", "init", "--template", ""]);
    assert_eq!(templates, ["generic", "laravel"]);
    let shells = complete(&script, &["deckhand", "completions", ""]);
    for s in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.contains(&s.to_string()), "{s} in {shells:?}");
    }
    let deploy = complete(&script, &["deckhand", "deploy", "--he"]);
    assert_eq!(deploy, ["--headless", "--help"]);
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = deckhand(&["completions", shell]);
        assert_exit(&out, 0);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("from-ansible"), "{shell}: {script}");
    }
    let bad = deckhand(&["completions", "tcsh"]);
    assert_exit(&bad, 2);
    assert!(
        text(&bad).contains("possible values: bash"),
        "{}",
        text(&bad)
    );
}

#[test]
fn the_man_page_renders_with_man() {
    let out = deckhand(&["man"]);
    assert_exit(&out, 0);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("deckhand.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run man ({e}): install it with `apt-get install man-db` (scripts/test.sh does)")
        });
    assert!(rendered.status.success(), "man -l: {}", text(&rendered));
    let shown = String::from_utf8_lossy(&rendered.stdout);
    // man may embolden with overstrikes when it thinks it writes to a terminal; read plain text.
    let plain: String = {
        let mut s = String::new();
        for c in shown.chars() {
            if c == '\u{8}' {
                s.pop();
            } else {
                s.push(c);
            }
        }
        // groff justifies lines by widening the spaces between words: read one space.
        s.split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for needle in [
        "NAME",
        "deckhand - A terminal console for rolling deployments",
        "SYNOPSIS",
        "COMMANDS",
        "deckhand deploy",
        "deckhand init",
        "--from-ansible <FILE|DIR>",
        "--from-ssh-config [<FILE>]",
        "deckhand completions",
        "Exit codes: 0 deployed",
    ] {
        assert!(
            plain.contains(needle),
            "{needle:?} missing from the rendered page:\n{plain}"
        );
    }
}
