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

/// A search parsed once: its terms, `page N` taken out, and that page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    /// The terms every object must match.
    pub(crate) terms: Vec<String>,
    /// The page asked for (from 1).
    pub(crate) page: Option<usize>,
}

/// `search` parsed: its [`terms`], with `page N` taken out as the page.
pub(crate) fn parse(search: &str) -> Search {
    let mut terms = terms(search);
    let at = terms.iter().position(|t| t.eq_ignore_ascii_case("page"));
    let page = at.and_then(|at| {
        let page = terms.get(at + 1).and_then(|n| n.parse().ok());
        terms.drain(at..(at + 2).min(terms.len()));
        page
    });
    Search { terms, page }
}

/// The field and the value (unquoted) of a `FIELD=VALUE` term; `None` for a free word.
pub(crate) fn field(term: &str) -> Option<(&str, &str)> {
    term.split_once('=')
        .map(|(key, value)| (key, value.trim_matches('"')))
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
