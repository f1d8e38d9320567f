//! Colour for people: verdicts and violations in colour on a terminal, never in a pipe or a
//! file, and never when `NO_COLOR` is set (<https://no-color.org>) unless `--color always`.

use std::ffi::OsString;
use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

use super::ColorWhen;

/// Whether and how to colour what is printed for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Decides once per command. `NO_COLOR` counts when set to anything but the empty string.
    pub fn new(when: ColorWhen, terminal: bool, no_color: Option<OsString>) -> Self {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        let on = match when {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && !no_color,
        };
        Paint { on }
    }

    pub fn pass(self, text: &str) -> String {
        self.styled(AnsiColor::Green.on_default().bold(), text)
    }

    pub fn fail(self, text: &str) -> String {
        self.styled(AnsiColor::Red.on_default().bold(), text)
    }

    /// A violation's invariant name.
    pub fn violation(self, text: &str) -> String {
        self.styled(AnsiColor::Red.on_default(), text)
    }

    /// A warning, or a verdict that is not a failure of safety (a liveness failure).
    pub fn warn(self, text: &str) -> String {
        self.styled(AnsiColor::Yellow.on_default().bold(), text)
    }

    fn styled(self, style: Style, text: &str) -> String {
        match self.on {
            true => format!("{style}{text}{style:#}"),
            false => text.to_string(),
        }
    }
}

/// Whether this process's stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(when: ColorWhen, terminal: bool, no_color: Option<&str>) -> Paint {
        Paint::new(when, terminal, no_color.map(OsString::from))
    }

    #[test]
    fn auto_colours_a_terminal_only_and_never_under_no_color() {
        assert!(paint(ColorWhen::Auto, true, None).on);
        assert!(!paint(ColorWhen::Auto, false, None).on, "a pipe or a file");
        assert!(!paint(ColorWhen::Auto, true, Some("1")).on, "NO_COLOR set");
        assert!(paint(ColorWhen::Auto, true, Some("")).on, "NO_COLOR empty counts as unset");
        assert!(paint(ColorWhen::Always, false, Some("1")).on, "a flag outranks NO_COLOR");
        assert!(!paint(ColorWhen::Never, true, None).on);
    }

    #[test]
    fn plain_text_stays_plain_and_colour_wraps_it() {
        assert_eq!(paint(ColorWhen::Never, true, None).fail("FAIL"), "FAIL");
        let coloured = paint(ColorWhen::Always, false, None).fail("FAIL");
        assert!(
            coloured.starts_with("\u{1b}[") && coloured.contains("FAIL") && coloured.ends_with("\u{1b}[0m")
        );
    }
}
