//! Palettes and glyphs: turns a theme (a flat TOML file of semantic names such as
//! `mode_deploying` or `node_drained`) into ratatui styles, and picks Unicode or ASCII glyphs.
//!
//! The built-in themes live in `themes/*.toml` and are compiled in; `--theme` accepts one of
//! their names or a path to a file of the same shape. This module only reads theme files the
//! operator names; it draws nothing and knows nothing about deployments.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use ratatui::style::{Color, Modifier, Style};

/// The built-in themes, in the order `t` cycles through them. The first is the default.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

/// Every semantic name a theme may set. A file that sets anything else is refused, so a typo
/// is reported instead of silently ignored.
const KEYS: &[&str] = &[
    "background",
    "text",
    "dim",
    "title",
    "border",
    "border_focus",
    "selection",
    "key",
    "accent",
    "mode_ready",
    "mode_deploying",
    "mode_pausing",
    "mode_paused",
    "mode_waiting",
    "mode_rolling_back",
    "mode_failed",
    "mode_done",
    "node_waiting",
    "node_in_rotation",
    "node_drained",
    "node_updating",
    "node_healthy",
    "node_failed",
    "node_rolling_back",
    "node_rolled_back",
    "node_skipped",
    "connector",
    "connector_cut",
    "balancer",
    "phase_pending",
    "phase_running",
    "phase_ok",
    "phase_failed",
    "phase_skipped",
    "check_pending",
    "check_running",
    "check_pass",
    "check_fail",
    "check_unknown",
    "check_confirm",
    "flash_info",
    "flash_warn",
    "flash_error",
];

/// A resolved palette: one style per semantic name.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub(crate) name: String,
    styles: BTreeMap<String, Style>,
}

impl Theme {
    /// The style for a semantic name; unknown names fall back to plain text.
    pub fn get(&self, key: &str) -> Style {
        self.styles
            .get(key)
            .or_else(|| self.styles.get("text"))
            .copied()
            .unwrap_or_default()
    }

    /// The built-in theme of that name.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, src) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        // The built-in files are part of the program and covered by tests.
        parse(src, None).ok()
    }

    pub fn default_theme() -> Theme {
        Theme::builtin("dark").unwrap_or(Theme {
            name: "dark".into(),
            styles: BTreeMap::new(),
        })
    }

    /// `--theme NAME|FILE`: a built-in name, or a path to a theme file.
    pub(crate) fn resolve(spec: &str) -> anyhow::Result<Theme> {
        if let Some(t) = Theme::builtin(spec) {
            return Ok(t);
        }
        let path = Path::new(spec);
        if !path.exists() {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            bail!(
                "theme `{spec}` is neither a built-in theme ({}) nor a file that exists",
                names.join(", ")
            );
        }
        let src = std::fs::read_to_string(path)
            .with_context(|| format!("reading theme file {}", path.display()))?;
        parse(&src, Some(path)).with_context(|| format!("in theme file {}", path.display()))
    }

    /// The theme to start with: the `--theme` flag wins, then `NO_COLOR` (monochrome), then the
    /// inventory's `theme` key, then the default.
    pub(crate) fn choose(
        flag: Option<&str>,
        inventory: Option<&str>,
        no_color: bool,
    ) -> anyhow::Result<Theme> {
        if let Some(spec) = flag {
            return Theme::resolve(spec);
        }
        if no_color {
            return Ok(Theme::builtin("monochrome").unwrap_or_else(Theme::default_theme));
        }
        if let Some(spec) = inventory {
            return Theme::resolve(spec);
        }
        Ok(Theme::default_theme())
    }

    /// The built-in theme after this one (for the `t` key).
    pub(crate) fn next_builtin(&self) -> Theme {
        let pos = BUILTIN.iter().position(|(n, _)| *n == self.name);
        let next = match pos {
            Some(i) => (i + 1) % BUILTIN.len(),
            None => 0,
        };
        Theme::builtin(BUILTIN[next].0).unwrap_or_else(Theme::default_theme)
    }
}

/// True when the environment asks for no colour (<https://no-color.org>: set and not empty).
pub(crate) fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn parse(src: &str, path: Option<&Path>) -> anyhow::Result<Theme> {
    let table: toml::Table = toml::from_str(src).map_err(|e| anyhow!("{e}"))?;
    let mut name = path
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "custom".into());
    let mut styles = BTreeMap::new();
    if let Some(base) = table.get("inherits") {
        let base = base
            .as_str()
            .ok_or_else(|| anyhow!("`inherits` must be the name of a built-in theme"))?;
        let base = Theme::builtin(base)
            .ok_or_else(|| anyhow!("`inherits = \"{base}\"`: no built-in theme of that name"))?;
        styles = base.styles;
    } else if path.is_some() {
        // A partial file starts from the default palette.
        styles = Theme::default_theme().styles;
    }
    for (key, value) in &table {
        match key.as_str() {
            "inherits" => {}
            "name" => {
                name = value
                    .as_str()
                    .ok_or_else(|| anyhow!("`name` must be a string"))?
                    .to_string();
            }
            k if KEYS.contains(&k) => {
                let spec = value
                    .as_str()
                    .ok_or_else(|| anyhow!("`{k}` must be a string such as \"#5fafff bold\""))?;
                let style = parse_style(spec).map_err(|e| anyhow!("`{k} = \"{spec}\"`: {e}"))?;
                styles.insert(k.to_string(), style);
            }
            other => {
                let hint = KEYS
                    .iter()
                    .map(|k| (strsim::jaro_winkler(k, other), *k))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .filter(|(score, _)| *score > 0.8)
                    .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                bail!("unknown key `{other}`{hint}");
            }
        }
    }
    Ok(Theme { name, styles })
}

/// `"<fg> [on <bg>] [bold] [dim] [italic] [underline] [reverse]"`.
pub(crate) fn parse_style(spec: &str) -> anyhow::Result<Style> {
    let mut style = Style::default();
    let mut words = spec.split_whitespace().peekable();
    let mut fg_set = false;
    while let Some(word) = words.next() {
        match word.to_ascii_lowercase().as_str() {
            "bold" => style = style.add_modifier(Modifier::BOLD),
            "dim" => style = style.add_modifier(Modifier::DIM),
            "italic" => style = style.add_modifier(Modifier::ITALIC),
            "underline" => style = style.add_modifier(Modifier::UNDERLINED),
            "reverse" => style = style.add_modifier(Modifier::REVERSED),
            "on" => {
                let bg = words
                    .next()
                    .ok_or_else(|| anyhow!("`on` needs a background colour after it"))?;
                style = style.bg(parse_color(bg)?);
            }
            _ if !fg_set => {
                style = style.fg(parse_color(word)?);
                fg_set = true;
            }
            _ => bail!("`{word}` is not a colour, `on <colour>` or a modifier"),
        }
    }
    Ok(style)
}

fn parse_color(word: &str) -> anyhow::Result<Color> {
    let w = word.to_ascii_lowercase();
    if let Some(hex) = w.strip_prefix('#') {
        if hex.len() == 6 {
            if let Ok(v) = u32::from_str_radix(hex, 16) {
                return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
            }
        }
        bail!("`{word}` is not a #rrggbb colour");
    }
    if let Ok(i) = w.parse::<u8>() {
        return Ok(Color::Indexed(i));
    }
    Ok(match w.as_str() {
        "default" | "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => bail!("`{word}` is not a colour name, #rrggbb or 0-255"),
    })
}

/// The characters the screen is drawn with: Unicode by default, ASCII when the terminal cannot
/// show more (`--ascii`, or a locale that is not UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyphs {
    pub(crate) ascii: bool,
    pub(crate) arrow: &'static str,
    pub(crate) down: &'static str,
    pub(crate) cut: &'static str,
    pub(crate) vline: &'static str,
    pub(crate) hline: &'static str,
    pub(crate) tee_down: &'static str,
    pub(crate) dot: &'static str,
    pub(crate) spinner: &'static [&'static str],
    pub(crate) ok: &'static str,
    pub(crate) fail: &'static str,
    pub(crate) pending: &'static str,
    pub(crate) skipped: &'static str,
    pub(crate) drained: &'static str,
    pub(crate) in_rotation: &'static str,
    pub(crate) healthy: &'static str,
    pub(crate) rolled_back: &'static str,
    pub(crate) unknown: &'static str,
    pub(crate) confirm: &'static str,
    pub(crate) box_empty: &'static str,
    pub(crate) ellipsis: &'static str,
    /// A node mid-update with no step running (paused, or between two steps).
    pub(crate) paused: &'static str,
    pub(crate) between: &'static str,
    pub(crate) border: ratatui::symbols::border::Set<'static>,
}

pub(crate) const ASCII_BORDER: ratatui::symbols::border::Set<'static> =
    ratatui::symbols::border::Set {
        top_left: "+",
        top_right: "+",
        bottom_left: "+",
        bottom_right: "+",
        vertical_left: "|",
        vertical_right: "|",
        horizontal_top: "-",
        horizontal_bottom: "-",
    };

impl Glyphs {
    pub const UNICODE: Glyphs = Glyphs {
        ascii: false,
        arrow: "→",
        down: "▼",
        cut: "✕",
        vline: "│",
        hline: "─",
        tee_down: "┬",
        dot: "·",
        spinner: &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"],
        ok: "✓",
        fail: "✗",
        pending: "○",
        skipped: "–",
        drained: "◌",
        in_rotation: "●",
        healthy: "●",
        rolled_back: "↺",
        unknown: "?",
        confirm: "☐",
        box_empty: "□",
        ellipsis: "…",
        paused: "‖",
        between: "◐",
        border: ratatui::symbols::border::PLAIN,
    };
    pub const ASCII: Glyphs = Glyphs {
        ascii: true,
        arrow: "->",
        down: "v",
        cut: "x",
        vline: "|",
        hline: "-",
        tee_down: "+",
        dot: "-",
        spinner: &["|", "/", "-", "\\"],
        ok: "+",
        fail: "x",
        pending: ".",
        skipped: "-",
        drained: "o",
        in_rotation: "*",
        healthy: "*",
        rolled_back: "<",
        unknown: "?",
        confirm: "!",
        box_empty: "[ ]",
        ellipsis: "~",
        paused: "=",
        between: "~",
        border: ASCII_BORDER,
    };

    pub(crate) fn new(ascii: bool) -> Glyphs {
        if ascii {
            Glyphs::ASCII
        } else {
            Glyphs::UNICODE
        }
    }

    /// Whether the terminal can show the Unicode glyphs: the locale must promise UTF-8, and the
    /// bare consoles (`TERM=linux`, `vt100`, `vt220`, `dumb`) cannot, whatever the locale says.
    pub(crate) fn unicode_ok() -> bool {
        let term = std::env::var("TERM").unwrap_or_default();
        if matches!(
            term.as_str(),
            "linux" | "vt100" | "vt102" | "vt220" | "dumb"
        ) {
            return false;
        }
        Glyphs::locale_is_utf8()
    }

    /// Whether the locale promises UTF-8; without that, glyphs fall back to ASCII.
    pub(crate) fn locale_is_utf8() -> bool {
        for var in ["LC_ALL", "LC_CTYPE", "LANG"] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    let v = v.to_ascii_lowercase();
                    return v.contains("utf-8") || v.contains("utf8");
                }
            }
        }
        false
    }

    pub(crate) fn spinner_frame(&self, frame: usize) -> &'static str {
        self.spinner[frame % self.spinner.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_and_sets_every_key() {
        for (name, src) in BUILTIN {
            let theme = parse(src, None).unwrap_or_else(|e| panic!("theme {name}: {e:#}"));
            assert_eq!(&theme.name, name);
            for key in KEYS.iter().filter(|k| **k != "background") {
                assert!(theme.styles.contains_key(*key), "theme {name} lacks {key}");
            }
        }
    }

    #[test]
    fn monochrome_uses_no_colour() {
        let theme = Theme::builtin("monochrome").unwrap();
        for (key, style) in &theme.styles {
            for c in [style.fg, style.bg].into_iter().flatten() {
                assert_eq!(c, Color::Reset, "{key} has a colour");
            }
        }
    }

    #[test]
    fn no_color_beats_the_inventory_but_not_the_flag() {
        assert_eq!(
            Theme::choose(None, Some("light"), true).unwrap().name,
            "monochrome"
        );
        assert_eq!(
            Theme::choose(Some("light"), None, true).unwrap().name,
            "light"
        );
        assert_eq!(
            Theme::choose(None, Some("light"), false).unwrap().name,
            "light"
        );
        assert_eq!(Theme::choose(None, None, false).unwrap().name, "dark");
    }

    #[test]
    fn a_theme_file_may_inherit_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(
            &path,
            "inherits = \"light\"\nmode_done = \"black on #00ff00 bold\"\n",
        )
        .unwrap();
        let theme = Theme::resolve(path.to_str().unwrap()).unwrap();
        assert_eq!(theme.name, "mine");
        assert_eq!(theme.get("mode_done").bg, Some(Color::Rgb(0, 255, 0)));
        assert_eq!(
            theme.get("node_failed"),
            Theme::builtin("light").unwrap().get("node_failed")
        );
    }

    #[test]
    fn a_typo_in_a_theme_file_is_reported_with_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "node_helthy = \"green\"\n").unwrap();
        let err = format!("{:#}", Theme::resolve(path.to_str().unwrap()).unwrap_err());
        assert!(
            err.contains("node_helthy") && err.contains("node_healthy"),
            "{err}"
        );
        let err = format!("{:#}", Theme::resolve("no-such-theme").unwrap_err());
        assert!(
            err.contains("dark, light, high-contrast, monochrome"),
            "{err}"
        );
    }

    #[test]
    fn t_cycles_through_the_builtin_themes() {
        let mut t = Theme::default_theme();
        let mut seen = vec![t.name.clone()];
        for _ in 0..BUILTIN.len() {
            t = t.next_builtin();
            seen.push(t.name.clone());
        }
        assert_eq!(
            seen,
            ["dark", "light", "high-contrast", "monochrome", "dark"]
        );
    }
}
