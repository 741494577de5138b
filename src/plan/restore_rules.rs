//! Stage 2d: the checks of the restore settings that shape the DR VM (issue 16): the names in
//! `network_map`, `mac_policy`, and the `cpu` and `memory_mib` overrides, each with its own
//! code.
//!
//! Like [`super::rules`], they tolerate any shape: a value of the wrong type is the schema's to
//! report, and a schema error at a place one of these explains is dropped (`collect`).

use serde_json::{Map, Value};

use super::diagnostic::{Code, Diagnostic, Mark};
use super::model::{MAX_CPU_COUNT, MAX_MEMORY_MIB, MacPolicy};
use super::names;
use super::source::escape_token;

/// Every problem of the DR VM's keys of `restore_settings` in a decoded policy.
pub fn check(doc: &Value) -> Vec<Diagnostic> {
    let Some(settings) = doc.get("restore_settings").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(Value::Object(map)) = settings.get("network_map") {
        found.extend(map.iter().flat_map(|(from, to)| network_entry(from, to)));
    }
    found.extend(mac_policy(settings.get("mac_policy")));
    if let Some(Value::Object(cpu)) = settings.get("cpu") {
        found.extend(cpu_counts(cpu));
    }
    found.extend(memory(settings.get("memory_mib")));
    found
}

/// The problems of one `network_map` entry: its key (a production network or vNIC profile)
/// and its value (a DR vNIC profile). A control character in the value is reported once, as
/// `control-character`; one in the key is this rule's (the safety check skips keys).
fn network_entry(from: &str, to: &Value) -> Vec<Diagnostic> {
    let pointer = format!("/restore_settings/network_map/{}", escape_token(from));
    let mut found = Vec::new();
    if let Some(why) = names::unsafe_network_name(from) {
        let message = format!(
            "{} cannot name a production network or vNIC profile: {why}",
            shown(from)
        );
        found.push(unsafe_name(&pointer, message).mark(Mark::Key));
    }
    if let Some(to) = to.as_str().filter(|t| !t.chars().any(char::is_control))
        && let Some(why) = names::unsafe_network_name(to)
    {
        let message = format!(
            "{} is mapped to {}, which cannot name a DR vNIC profile: {why}",
            shown(from),
            shown(to)
        );
        found.push(unsafe_name(&pointer, message));
    }
    found
}

/// A name as a message shows it: quoted, its control characters escaped.
fn shown(name: &str) -> String {
    if name.is_empty() {
        "an empty name".to_owned()
    } else {
        format!("`{}`", name.escape_debug())
    }
}

fn unsafe_name(pointer: &str, message: String) -> Diagnostic {
    Diagnostic::new(Code::UnsafeNetworkName, pointer, message)
        .help("write the name exactly as the engine shows it: 1 to 256 characters, without white space at either end")
}

/// A `mac_policy` that names no policy; lower case only, like the policy's other closed sets.
fn mac_policy(policy: Option<&Value>) -> Option<Diagnostic> {
    let Some(Value::String(word)) = policy else {
        return None;
    };
    MacPolicy::parse(word).is_none().then(|| {
        let words = MacPolicy::ALL.map(MacPolicy::as_str);
        Diagnostic::new(
            Code::UnknownMacPolicy,
            "/restore_settings/mac_policy",
            format!(
                "there is no MAC policy `{word}`; the policies are {}",
                words.join(", ")
            ),
        )
        .help(mac_policy_help(word, &words))
    })
}

/// "Did you mean" for a near miss (`Keep`, `news`), else what each policy does.
fn mac_policy_help(word: &str, words: &[&str]) -> String {
    match names::did_you_mean(word, words.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "new gives the DR VM's NICs MAC addresses from the DR engine's pool, so DR and production never share one; keep gives them production's (only where the two never share a network)".to_owned(),
    }
}

/// The CPU counts outside 1 to [`MAX_CPU_COUNT`].
fn cpu_counts(cpu: &Map<String, Value>) -> Vec<Diagnostic> {
    let counts = [
        ("sockets", "sockets"),
        ("cores", "cores per socket"),
        ("threads", "threads per core"),
    ];
    counts
        .into_iter()
        .filter_map(|(key, what)| {
            let n = whole(cpu.get(key)?)?;
            let bad = !(1..=i128::from(MAX_CPU_COUNT)).contains(&n);
            bad.then(|| cpu_out_of_range(key, what, n))
        })
        .collect()
}

fn cpu_out_of_range(key: &str, what: &str, n: i128) -> Diagnostic {
    Diagnostic::new(
        Code::CpuOutOfRange,
        format!("/restore_settings/cpu/{key}"),
        format!("the DR VM cannot have {n} {what}: each CPU count is 1 to {MAX_CPU_COUNT}"),
    )
    .help(format!(
        "write a whole number from 1 to {MAX_CPU_COUNT}, or leave `{key}` out to keep the production VM's {what} (as the backup point recorded them)"
    ))
}

/// A `memory_mib` outside 1 to [`MAX_MEMORY_MIB`].
fn memory(memory: Option<&Value>) -> Option<Diagnostic> {
    let n = whole(memory?)?;
    if (1..=i128::from(MAX_MEMORY_MIB)).contains(&n) {
        return None;
    }
    Some(
        Diagnostic::new(
            Code::MemoryOutOfRange,
            "/restore_settings/memory_mib",
            format!("the DR VM cannot have {n} MiB of memory: `memory_mib` is 1 to {MAX_MEMORY_MIB} (16 TiB)"),
        )
        .help(memory_help(n)),
    )
}

/// Bytes written for MiB are named; otherwise how to write it.
fn memory_help(n: i128) -> String {
    const MIB: i128 = 1024 * 1024;
    if n > i128::from(MAX_MEMORY_MIB) && n % MIB == 0 {
        format!(
            "`memory_mib` counts MiB, and {n} looks like bytes: that is {} MiB",
            n / MIB
        )
    } else {
        "write the memory in MiB (8192 for 8 GiB), or leave `memory_mib` out to keep the production VM's memory (as the backup point recorded it)".to_owned()
    }
}

/// A JSON integer, whatever its sign; `None` for anything else (the schema's to report).
pub(super) fn whole(value: &Value) -> Option<i128> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(restore_settings: &str) -> Vec<(Code, String, String)> {
        let doc: Value =
            serde_json::from_str(&format!(r#"{{"restore_settings": {restore_settings}}}"#))
                .expect("test JSON");
        check(&doc)
            .into_iter()
            .map(|d| (d.code, d.pointer, d.message))
            .collect()
    }

    #[test]
    fn valid_settings_have_no_problem() {
        let settings = r#"{"network_map": {"ovirtmgmt": "dr-mgmt", "prod LAN": "DR LAN"},
            "mac_policy": "keep", "cpu": {"sockets": 1, "cores": 256, "threads": 2},
            "memory_mib": 16777216}"#;
        assert_eq!(found(settings), []);
        let wrong_types = r#"{"network_map": {"a": 1}, "mac_policy": 2, "cpu": {"sockets": 1.5},
            "memory_mib": "8G"}"#;
        assert_eq!(found(wrong_types), [], "the schema's to report");
    }

    #[test]
    fn each_problem_has_its_code_and_place() {
        let cases: &[(&str, Code, &str)] = &[
            (
                r#"{"network_map": {" lan": "dr"}}"#,
                Code::UnsafeNetworkName,
                "/restore_settings/network_map/ lan",
            ),
            (
                r#"{"network_map": {"a/b": ""}}"#,
                Code::UnsafeNetworkName,
                "/restore_settings/network_map/a~1b",
            ),
            (
                r#"{"mac_policy": "same"}"#,
                Code::UnknownMacPolicy,
                "/restore_settings/mac_policy",
            ),
            (
                r#"{"cpu": {"cores": 0}}"#,
                Code::CpuOutOfRange,
                "/restore_settings/cpu/cores",
            ),
            (
                r#"{"cpu": {"threads": 257}}"#,
                Code::CpuOutOfRange,
                "/restore_settings/cpu/threads",
            ),
            (
                r#"{"memory_mib": -1}"#,
                Code::MemoryOutOfRange,
                "/restore_settings/memory_mib",
            ),
        ];
        for (settings, code, pointer) in cases {
            let found = found(settings);
            assert_eq!(found.len(), 1, "{settings}: {found:?}");
            assert_eq!((found[0].0, found[0].1.as_str()), (*code, *pointer));
        }
    }

    #[test]
    fn a_control_character_in_a_value_is_left_to_its_own_code() {
        let found = found(r#"{"network_map": {"lan\t": "dr\n"}}"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].2.starts_with("`lan\\t` cannot name"), "{found:?}");
    }

    #[test]
    fn memory_in_bytes_is_named() {
        assert_eq!(
            memory_help(8 << 30),
            "`memory_mib` counts MiB, and 8589934592 looks like bytes: that is 8192 MiB"
        );
        assert!(memory_help(0).starts_with("write the memory in MiB"));
    }
}
