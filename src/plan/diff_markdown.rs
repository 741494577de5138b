//! `ovplan diff --format markdown`: a [`Review`] as a merge request's comment or a CI job's
//! summary (GitHub Flavored Markdown): a summary line, the policy-wide settings that changed,
//! then for each VM a table of its facts before and after, a table of its next runs before and
//! after with their kinds and, with a catalog, the points the new retention would delete.
//!
//! Every value from the policy goes into a code span or is escaped, and `|` is escaped in table
//! cells, so no VM name or schedule can break the layout.

use std::fmt::Write;

use serde_json::Value;

use super::diff::{FactChange, Review, Run, SettingChange, Status, StoredPoint, VmChange};

/// The review as Markdown (also when nothing changed: the summary says so).
pub fn markdown(review: &Review) -> String {
    let mut out = format!(
        "### ovplan diff: {} → {}\n\n{}\n\n",
        code(&review.old),
        code(&review.new),
        summary_line(review)
    );
    let _ = writeln!(out, "{}\n", when_line(review));
    if !review.settings.is_empty() {
        settings_section(&mut out, &review.settings);
    }
    for vm in &review.vms {
        vm_section(&mut out, vm);
    }
    out
}

/// `**VMs:** 1 added, 1 removed, 3 changed · **schedules:** 1 · ...`.
fn summary_line(review: &Review) -> String {
    let s = &review.summary;
    if review.is_empty() {
        return "**No change:** every VM is backed up, kept and restored as before.".to_owned();
    }
    let settings: Vec<String> = review.settings.iter().map(|c| code(&c.key)).collect();
    let settings = if settings.is_empty() {
        "none".to_owned()
    } else {
        settings.join(", ")
    };
    format!(
        "**VMs:** {} added, {} removed, {} changed · **schedules changed:** {} · \
         **retention changed:** {} · **restore changed:** {} · **policy-wide settings:** {settings}",
        s.added, s.removed, s.changed, s.schedules, s.retention, s.restore
    )
}

fn when_line(review: &Review) -> String {
    let from = review.from.to_rfc3339();
    if review.catalog {
        format!("Next runs are counted after {from}; retention is applied to the catalog then.")
    } else {
        format!("Next runs are counted after {from}.")
    }
}

fn settings_section(out: &mut String, settings: &[SettingChange]) {
    out.push_str("#### Policy-wide settings\n\n");
    let shown =
        |value: &Option<Value>| value.as_ref().map_or_else(absent, |v| code(&v.to_string()));
    let rows = settings
        .iter()
        .map(|c| [code(&c.key), shown(&c.before), shown(&c.after)]);
    table(out, ["setting", "before", "after"], rows);
}

fn vm_section(out: &mut String, vm: &VmChange) {
    let _ = writeln!(out, "#### {}: {}\n", code(&vm.name), vm.status.as_str());
    facts_table(out, &vm.facts);
    if vm.status != Status::Removed || !vm.runs_before.is_empty() {
        runs_table(out, &vm.runs_before, &vm.runs_after);
    }
    if let Some(cut) = &vm.retention_cut {
        cut_section(out, vm, cut);
    }
}

fn facts_table(out: &mut String, facts: &[FactChange]) {
    let shown = |value: &Option<String>| value.as_deref().map_or_else(absent, code);
    let rows = facts
        .iter()
        .map(|f| [escape(f.fact), shown(&f.before), shown(&f.after)]);
    table(out, ["", "before", "after"], rows);
}

/// The next runs side by side, row by row (a side with fewer runs shows `—`).
fn runs_table(out: &mut String, before: &[Run], after: &[Run]) {
    let shown = |run: Option<&Run>| run.map_or_else(absent, |r| format!("{} {}", r.at, r.kind));
    let rows = (0..before.len().max(after.len())).map(|i| {
        [
            (i + 1).to_string(),
            shown(before.get(i)),
            shown(after.get(i)),
        ]
    });
    table(out, ["next run", "before", "after"], rows);
}

/// What the new retention deletes from the catalog, when anything, or when a VM's retention
/// changed.
fn cut_section(out: &mut String, vm: &VmChange, cut: &[StoredPoint]) {
    if cut.is_empty() {
        if vm.status == Status::Changed && vm.changed("retention") {
            out.push_str(
                "The new retention deletes no point of the catalog that the old one keeps.\n\n",
            );
        }
        return;
    }
    let points = if cut.len() == 1 { "point" } else { "points" };
    let _ = writeln!(
        out,
        "**The new retention deletes {} {points} of the catalog that the old one keeps:**\n",
        cut.len()
    );
    let rows = cut
        .iter()
        .map(|p| [code(&p.point), escape(&p.kind), p.taken_at.to_rfc3339()]);
    table(out, ["point", "kind", "taken at"], rows);
}

/// A table with a header and a blank line after it.
fn table(out: &mut String, header: [&str; 3], rows: impl Iterator<Item = [String; 3]>) {
    let _ = writeln!(out, "| {} | {} | {} |", header[0], header[1], header[2]);
    out.push_str("|---|---|---|\n");
    for [a, b, c] in rows {
        let _ = writeln!(out, "| {a} | {b} | {c} |");
    }
    out.push('\n');
}

fn absent() -> String {
    "—".to_owned()
}

/// `text` as a code span: fenced by more backticks than it holds in a row, padded when it starts
/// or ends with one, its `|` escaped (GitHub splits table cells before it reads code spans).
fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

/// `text` with every ASCII punctuation character that Markdown could read as markup escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]<>()#+-.!|~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_any_text() {
        for (text, span) in [
            ("web01", "`web01`"),
            ("a`b", "``a`b``"),
            ("`x``", "``` `x`` ```"),
            ("a|b", "`a\\|b`"),
        ] {
            assert_eq!(code(text), span, "{text}");
        }
    }

    #[test]
    fn escape_leaves_words_and_escapes_markup() {
        assert_eq!(escape("full backups"), "full backups");
        assert_eq!(escape("*a_b*|[c](d)"), "\\*a\\_b\\*\\|\\[c\\]\\(d\\)");
    }
}
