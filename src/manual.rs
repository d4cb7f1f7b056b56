//! Shell completions and the man page, generated from the command line's own definition (the
//! binary hands its `clap::Command` in), so they can never disagree with `--help`.
//!
//! This module only writes text to the writer it is given; installing the files is the user's
//! (the README says where they go).

use std::io::Write;

pub use clap_complete::Shell;

/// Write the completion script for `shell` (bash, zsh, fish, elvish, powershell).
pub fn completions(cmd: &mut clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, cmd, name, out);
}

/// `deckhand completions SHELL`: the script on stdout; returns the exit code.
pub fn print_completions(cmd: &mut clap::Command, shell: Shell) -> i32 {
    completions(cmd, shell, &mut std::io::stdout().lock());
    0
}

/// `deckhand man`: the page on stdout; returns the exit code.
pub fn print_man(cmd: clap::Command) -> i32 {
    match man_page(cmd, &mut std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            1
        }
    }
}

/// Write the man page (roff) of the command and, after it, a section per subcommand.
pub(crate) fn man_page(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = cmd.disable_help_subcommand(true);
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    // One section listing every subcommand with its synopsis and options, so `man deckhand`
    // is the whole reference (clap_mangen would otherwise want one page per subcommand).
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full = format!("{} {}", cmd.get_name(), sub.get_name());
        writeln!(out, ".SS \"{}\"", roff_text(&full))?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            for para in about.to_string().split("\n\n") {
                writeln!(out, ".PP")?;
                writeln!(out, "{}", roff_text(para))?;
            }
        }
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(full.clone()));
        let mut synopsis = Vec::new();
        sub_man.render_synopsis_section(&mut synopsis)?;
        let synopsis = String::from_utf8_lossy(&synopsis);
        // Keep the synopsis body, not its own section header.
        writeln!(out, ".PP")?;
        for line in synopsis.lines().filter(|l| !l.starts_with(".SH")) {
            writeln!(out, "{line}")?;
        }
        let has_args = sub
            .get_arguments()
            .any(|a| !a.is_hide_set() && !a.is_global_set());
        if has_args {
            let mut opts = Vec::new();
            sub_man.render_options_section(&mut opts)?;
            let opts = String::from_utf8_lossy(&opts);
            for line in opts.lines().filter(|l| !l.starts_with(".SH")) {
                writeln!(out, "{line}")?;
            }
        }
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(out)?;
    }
    if cmd.get_version().is_some() || cmd.get_long_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// Text for a roff line: backslashes escaped, no line starting with a control character.
fn roff_text(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("tool").about("A tool").subcommand(
            clap::Command::new("go").about("Go somewhere").arg(
                clap::Arg::new("fast")
                    .long("fast")
                    .action(clap::ArgAction::SetTrue),
            ),
        )
    }

    #[test]
    fn the_page_lists_every_subcommand_with_its_options() {
        let mut out = Vec::new();
        man_page(cmd(), &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.contains(".SH COMMANDS"), "{page}");
        assert!(page.contains(".SS \"tool go\""), "{page}");
        assert!(page.contains("\\-\\-fast"), "{page}");
    }

    #[test]
    fn bash_completion_names_the_function_after_the_binary() {
        let mut out = Vec::new();
        completions(&mut cmd(), Shell::Bash, &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("_tool()"), "{script}");
        assert!(script.contains("complete -F _tool"), "{script}");
    }
}
