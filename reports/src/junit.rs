//! JUnit XML, the format CI systems read: a test suite per scenario, a test case per seed.
//!
//! A failing seed's case carries a `<failure>` whose message names the broken invariants, whose
//! type is the first of them, and whose text gives each violation's detail and the command
//! that replays the seed. Text is escaped for XML 1.0, whose documents cannot hold most
//! control characters at all: those are dropped.

use std::fmt::Write;

use crate::RunRecord;

/// One scenario's seeds, as a test suite.
pub struct JunitSuite<'a> {
    pub scenario: &'a str,
    pub scenario_hash: &'a str,
    pub runs: &'a [RunRecord],
}

/// The JUnit XML document of `suites`.
pub fn junit_xml(suites: &[JunitSuite<'_>]) -> String {
    let tests: usize = suites.iter().map(|s| s.runs.len()).sum();
    let failures: usize = suites.iter().map(|s| failures(s.runs)).sum();
    let time: f64 = suites.iter().map(|s| seconds(s.runs)).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    _ = writeln!(
        xml,
        "<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">"
    );
    for suite in suites {
        write_suite(&mut xml, suite);
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn write_suite(xml: &mut String, suite: &JunitSuite<'_>) {
    let name = escape(suite.scenario);
    _ = writeln!(
        xml,
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">",
        suite.runs.len(),
        failures(suite.runs),
        seconds(suite.runs)
    );
    _ = writeln!(
        xml,
        "    <properties><property name=\"scenario_hash\" value=\"{}\"/></properties>",
        escape(suite.scenario_hash)
    );
    for run in suite.runs {
        write_case(xml, &name, run);
    }
    xml.push_str("  </testsuite>\n");
}

fn write_case(xml: &mut String, suite: &str, run: &RunRecord) {
    let time = run.wall_ms / 1000.0;
    let open = format!(
        "    <testcase classname=\"faultline.{suite}\" name=\"seed {}\" time=\"{time:.3}\"",
        run.seed
    );
    if run.passed() {
        _ = writeln!(xml, "{open}/>");
        return;
    }
    let names: Vec<&str> = run.violations.iter().map(|v| v.invariant.as_str()).collect();
    let kind = names.first().copied().unwrap_or("fail");
    let mut text = String::new();
    for v in &run.violations {
        _ = writeln!(text, "{}: {}", v.invariant, v.detail);
    }
    _ = write!(text, "replay: {}", run.repro);
    _ = writeln!(xml, "{open}>");
    _ = writeln!(
        xml,
        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
        escape(&names.join(", ")),
        escape(kind),
        escape(&text)
    );
    xml.push_str("    </testcase>\n");
}

fn failures(runs: &[RunRecord]) -> usize {
    runs.iter().filter(|r| !r.passed()).count()
}

fn seconds(runs: &[RunRecord]) -> f64 {
    runs.iter().map(|r| r.wall_ms).sum::<f64>() / 1000.0
}

/// Escapes text for an XML attribute or element, dropping what XML 1.0 cannot hold.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_a_document_well_formed() {
        assert_eq!(escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(escape("bell\u{7}\nline"), "bell&#10;line");
    }
}
