//! The published JSON Schema files (`schema/*.schema.json`) are the ones the record types
//! generate: a change to a record shows up here until the files are written again with
//! `UPDATE_SCHEMAS=1 cargo test -p faultline-reports --test schema`.

use std::path::Path;

#[test]
fn the_published_schemas_are_generated_from_the_records() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in faultline_reports::schemas() {
        let path = dir.join(format!("{name}.schema.json"));
        let generated = serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n";
        if update {
            std::fs::write(&path, &generated).expect("the schema file is written");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale schema files {stale:?}: run UPDATE_SCHEMAS=1 cargo test -p faultline-reports --test schema"
    );
}
