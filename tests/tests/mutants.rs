//! The planted bugs of `mutants/` stay plantable: each patch applies to the engine as it is
//! now. A patch that no longer applies is a bug the mutation sweep (`scripts/mutants`) would
//! silently stop planting.

use std::path::Path;
use std::process::Command;

#[test]
fn every_planted_bug_still_applies_to_the_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut patches: Vec<_> = std::fs::read_dir(root.join("mutants"))
        .expect("mutants/ is in the repository")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    assert!(patches.len() >= 15, "the planted bugs are there ({})", patches.len());
    let stale: Vec<String> = patches
        .iter()
        .filter(|patch| {
            let check = Command::new("git")
                .current_dir(&root)
                .args(["apply", "--check"])
                .arg(patch)
                .output()
                .expect("git runs");
            !check.status.success()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(stale.is_empty(), "these patches no longer apply; regenerate them: {stale:?}");
}
