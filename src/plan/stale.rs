//! `ovplan build --check`: whether a bundle directory is what the policy compiles to, as a
//! unified diff of every file that differs (pure: the binary reads the directory).

use std::collections::BTreeMap;

use super::compile::Bundle;

/// The unified diff (`a/PATH` is what the directory holds, `b/PATH` what the policy compiles
/// to, three lines of context) of every file that differs, missing or extra files included, in
/// path order; `None` when the directory is up to date.
#[must_use]
pub fn stale_diff(bundle: &Bundle, existing: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let mut paths: Vec<&String> = bundle.keys().chain(existing.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut diffs = String::new();
    let mut stale = false;
    for path in paths {
        let want = bundle.get(path).map(String::as_str);
        let have = existing
            .get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        if want == have.as_deref() {
            continue;
        }
        stale = true;
        let diff = similar::TextDiff::from_lines(have.as_deref().unwrap_or(""), want.unwrap_or(""));
        let (a, b) = (format!("a/{path}"), format!("b/{path}"));
        diffs.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&a, &b)
                .to_string(),
        );
    }
    stale.then_some(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_stale_by_a_changed_a_missing_or_an_extra_file() {
        let bundle: Bundle = [("a".to_owned(), "one\n".to_owned())].into();
        let same: BTreeMap<String, Vec<u8>> = [("a".to_owned(), b"one\n".to_vec())].into();
        assert_eq!(stale_diff(&bundle, &same), None);
        let changed: BTreeMap<String, Vec<u8>> = [("a".to_owned(), b"two\n".to_vec())].into();
        let diff = stale_diff(&bundle, &changed).expect("stale");
        assert!(
            diff.contains("--- a/a\n+++ b/a\n") && diff.contains("-two\n+one\n"),
            "{diff}"
        );
        let extra: BTreeMap<String, Vec<u8>> = [
            ("a".to_owned(), b"one\n".to_vec()),
            ("b".to_owned(), b"x\n".to_vec()),
        ]
        .into();
        assert!(stale_diff(&bundle, &extra).expect("stale").contains("-x\n"));
        assert!(
            stale_diff(&bundle, &BTreeMap::new())
                .expect("stale")
                .contains("+one\n")
        );
    }
}
