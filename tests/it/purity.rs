//! `src/plan/` is the pure core: it never touches files, clocks, the environment, processes or
//! the network (style guide rule 1). This keeps it that way.

use std::path::Path;

#[test]
fn the_plan_core_does_no_io() {
    let forbidden = [
        "std::fs",
        "fs_err",
        "std::env",
        "Utc::now",
        "Local::now",
        "std::process",
        "std::net",
        "SystemTime",
        "Instant::now",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/plan") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        for word in forbidden {
            if text.contains(word) {
                found.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "I/O in the pure core: {found:?}");
}
