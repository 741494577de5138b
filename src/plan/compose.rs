//! The docker-compose file, built as data and written by a YAML serializer: a path with a
//! quote, a colon, a `#` or a line break cannot change the file's structure, as pasted text
//! could. Compose interpolates `$` in every value, so the policy's strings have theirs
//! doubled ([`compose_escape`]); only the fixed `${VAR:-default}` values interpolate.

use std::collections::BTreeMap;

use serde::Serialize;

/// The whole file.
#[derive(Debug, Serialize)]
pub(crate) struct ComposeFile {
    pub(crate) name: &'static str,
    pub(crate) services: BTreeMap<&'static str, Service>,
    pub(crate) secrets: BTreeMap<String, SecretFile>,
}

/// The scheduler container.
#[derive(Debug, Serialize)]
pub(crate) struct Service {
    pub(crate) build: Build,
    pub(crate) image: &'static str,
    pub(crate) restart: &'static str,
    pub(crate) init: bool,
    pub(crate) environment: BTreeMap<&'static str, &'static str>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) secrets: Vec<SecretMount>,
}

/// How the image is built.
#[derive(Debug, Serialize)]
pub(crate) struct Build {
    pub(crate) context: &'static str,
    pub(crate) dockerfile: &'static str,
    pub(crate) additional_contexts: BTreeMap<&'static str, &'static str>,
}

/// A bind mount.
#[derive(Debug, Serialize)]
pub(crate) struct Volume {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) source: String,
    pub(crate) target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) read_only: bool,
}

impl Volume {
    /// A bind mount of `source` at `target`.
    pub(crate) fn bind(source: String, target: String, read_only: bool) -> Self {
        Self {
            kind: "bind",
            source,
            target,
            read_only,
        }
    }
}

/// A secret mounted into the container.
#[derive(Debug, Serialize)]
pub(crate) struct SecretMount {
    pub(crate) source: String,
    pub(crate) target: String,
    /// 0o400 (YAML has no octal a compose reader agrees on, so it is written in decimal).
    pub(crate) mode: u32,
}

/// Where a secret's content comes from on the host.
#[derive(Debug, Serialize)]
pub(crate) struct SecretFile {
    pub(crate) file: String,
}

/// A policy string as a compose value: compose reads `$$` as one `$`.
pub fn compose_escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// The YAML text of a compose file.
pub(crate) fn to_yaml(file: &ComposeFile) -> String {
    serde_norway::to_string(file).expect("a compose file of strings, numbers and maps serializes")
}
