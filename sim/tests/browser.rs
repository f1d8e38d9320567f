//! The pages in a real browser: headless Chromium renders a run's report, a comparison and a
//! swarm page, as the CLI writes them. A page fails on any error it raises (a script error, a
//! resource that does not load, a `console.error`), on an SVG drawn with no size, or on being
//! wider than the browser's viewport.
//!
//! Each page is measured by a probe injected into a copy of it: a listener first in `<head>`
//! collects errors, and a script last in `<body>` measures the page once it has loaded and
//! writes what it found into the DOM, which `--dump-dom` prints. CI installs Chromium and sets
//! `FAULTLINE_REQUIRE_BROWSER`; elsewhere the test says it was skipped when no Chromium is found.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The viewport every page must fit in.
const VIEWPORT: (u32, u32) = (1280, 900);

const PROBE_HEAD: &str = "<script>
window.__probe = { errors: [] };
window.addEventListener('error', function (e) {
  var t = e.target;
  var what = e.message ? e.message : (t ? (t.src || t.href || t.tagName) : 'unknown');
  window.__probe.errors.push('error: ' + what);
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__probe.errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  __consoleError.apply(console, arguments);
};
</script>";

const PROBE_BODY: &str = "<script>
window.addEventListener('load', function () {
  var p = window.__probe;
  p.viewport = window.innerWidth;
  p.width = document.documentElement.scrollWidth;
  p.svgs = Array.prototype.map.call(document.querySelectorAll('svg'), function (s) {
    var r = s.getBoundingClientRect();
    return [r.width, r.height];
  });
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(p);
  document.body.appendChild(out);
});
</script>";

#[derive(serde::Deserialize, Debug)]
struct Probe {
    errors: Vec<String>,
    viewport: f64,
    width: f64,
    svgs: Vec<(f64, f64)>,
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAULTLINE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    let names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
    std::env::split_paths(&path).flat_map(|dir| names.map(|n| dir.join(n))).find(|p| p.is_file())
}

fn faultline(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline")).args(args).current_dir(root).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Renders `page` with its probe in headless Chromium and reads what the probe found.
fn measure(browser: &Path, page: &Path, scratch: &Path) -> Probe {
    let html = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let probed = html.replacen("<head>", &format!("<head>\n{PROBE_HEAD}"), 1).replacen(
        "</body>",
        &format!("{PROBE_BODY}\n</body>"),
        1,
    );
    assert!(probed.contains("window.__probe = ") && probed.contains("id = 'probe'"), "{}", page.display());
    // Beside the page, so that the files it links to resolve as they would.
    let copy = page.with_file_name(format!("probe-{}", page.file_name().unwrap().to_string_lossy()));
    std::fs::write(&copy, probed).unwrap();
    let profile = scratch.join(format!("profile-{}", copy.file_name().unwrap().to_string_lossy()));
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", copy.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| {
        panic!(
            "{}: no probe in the dumped page; chromium said {}",
            page.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let text = &dom[start + "<pre id=\"probe\">".len()..];
    let text = &text[..text.find("</pre>").expect("the probe's end")];
    let json = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: probe {json}: {e}", page.display()))
}

fn assert_fits(page: &Path, probe: &Probe) {
    let name = page.display();
    assert!(probe.errors.is_empty(), "{name}: {:?}", probe.errors);
    assert_eq!(probe.viewport, f64::from(VIEWPORT.0), "{name}: the window size took");
    assert!(
        probe.width <= probe.viewport,
        "{name}: {} px wide in a {} px viewport",
        probe.width,
        probe.viewport
    );
    for (i, &(w, h)) in probe.svgs.iter().enumerate() {
        assert!(w > 0.0 && h > 0.0, "{name}: svg {i} is {w}×{h}");
    }
}

#[test]
fn reports_render_in_headless_chromium_without_errors_and_fit_the_viewport() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("FAULTLINE_REQUIRE_BROWSER").is_none(),
            "FAULTLINE_REQUIRE_BROWSER is set but no chromium was found (set FAULTLINE_CHROMIUM)"
        );
        eprintln!("skipped: no chromium on PATH (CI installs it and requires this test)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("faultline-browser-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |name: &str| dir.join(name).to_str().unwrap().to_string();
    faultline(&["run", "scenarios/processor-crash.toml", "--seed", "3", "--report", &d("run")]);
    let vary = "--vary=engine.recovery=rollback,passive-replication";
    faultline(&["compare", "scenarios/recovery-compare.toml", "--seeds", "2", vary, "--out", &d("compare")]);
    let swarm = ["swarm", "scenarios/processor-crash.toml", "--seeds", "4", "--jobs", "2"];
    faultline(&[&swarm[..], &["--set", "engine.sink=plain", "--report", &d("swarm")]].concat());
    let mut pages =
        vec![dir.join("run/report.html"), dir.join("compare/compare.html"), dir.join("swarm/swarm.html")];
    let seed_pages = std::fs::read_dir(dir.join("swarm")).unwrap().filter_map(|e| e.ok().map(|e| e.path()));
    pages.extend(seed_pages.filter(|p| p.is_dir()).map(|p| p.join("report.html")).take(1));
    assert_eq!(pages.len(), 4, "a failing seed's report beside the swarm page: {pages:?}");
    for page in &pages {
        let probe = measure(&browser, page, &dir);
        assert!(!probe.svgs.is_empty() || page.ends_with("swarm.html"), "{}: no chart drawn", page.display());
        assert_fits(page, &probe);
    }
    _ = std::fs::remove_dir_all(&dir);
}

/// The probe sees what it must catch: a page that raises an error, has an SVG with no size and
/// is wider than the viewport fails all three checks.
#[test]
fn a_broken_page_fails_every_browser_check() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    let dir = std::env::temp_dir().join(format!("faultline-browser-bad-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("bad.html");
    let body = "<div style=\"width: 3000px\">wide</div><svg width=\"0\" height=\"10\"></svg>\
                <img src=\"missing.png\" /><script>console.error('planted');</script>";
    std::fs::write(&page, format!("<!DOCTYPE html><html><head></head><body>{body}</body></html>")).unwrap();
    let probe = measure(&browser, &page, &dir);
    assert!(probe.errors.iter().any(|e| e.contains("planted")), "{probe:?}");
    assert!(probe.errors.iter().any(|e| e.contains("missing.png")), "{probe:?}");
    assert!(probe.width > probe.viewport, "{probe:?}");
    assert!(probe.svgs.iter().any(|&(w, _)| w == 0.0), "{probe:?}");
    _ = std::fs::remove_dir_all(&dir);
}
