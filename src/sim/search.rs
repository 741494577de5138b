//! The engine's search language, as far as its clients use it: terms joined by `and`
//! (`name=web*`, `vm.name="web 01"`, free words), and `page N` with `max` for paging.

/// A search's terms: split at spaces outside double quotes, the word `and` dropped (every term
/// must match; `or` is not served).
pub(crate) fn terms(search: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut term = String::new();
    let mut quoted = false;
    for c in search.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                term.push(c);
            }
            c if c.is_whitespace() && !quoted => terms.push(std::mem::take(&mut term)),
            c => term.push(c),
        }
    }
    terms.push(term);
    terms
        .into_iter()
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("and"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn terms_split_outside_quotes_without_and() {
        assert_eq!(
            terms(r#"vm.name="web 01" and severity=error  b1"#),
            [r#"vm.name="web 01""#, "severity=error", "b1"]
        );
        assert!(terms("  ").is_empty());
    }
}
