//! Checks: the conditions a task's grader evaluates, parsed and validated here.
//!
//! A check in front matter is a mapping with exactly one type key plus the
//! optional `fail` (message shown when it does not pass) and `name`:
//!
//! ```yaml
//! - file: {path: /root/hello.txt, contains: "hi"}
//!   fail: "/root/hello.txt doesn't contain hi yet"
//! ```
//!
//! Each type lives in its own module with a struct implementing `CheckSpec`
//! (module `spec`, with what the types share; `pattern` holds [`Pattern`]);
//! the `check_kinds!` list below is the only other place that names it, so a
//! new type is one module and one line there.
//! This crate never evaluates a check: the grader does.

mod command;
mod container;
mod engine;
mod file;
mod http;
mod image;
mod pattern;
mod registry;
mod spec;

use serde::Serialize;

pub use command::{CommandCheck, Run};
pub use container::{ContainerCheck, MountRule, PortRule, State as ContainerState};
pub use engine::{EnvRule, Words};
pub use file::FileCheck;
pub use http::HttpCheck;
pub use image::{ImageCheck, LayerCount, MadeBy};
pub use pattern::Pattern;
pub use registry::RegistryCheck;
use spec::CheckSpec;

use crate::schema::Reader;
use crate::yaml::Node;

macro_rules! check_kinds {
    ($($(#[$doc:meta])* $key:literal => $variant:ident($ty:ty),)*) => {
        /// The type of a check and its parameters. Serialized the way it is
        /// written: `{"file": {"path": …}}`.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub enum CheckKind {
            $($(#[$doc])* #[serde(rename = $key)] $variant($ty),)*
        }

        /// The type keys, in the order error messages list them.
        const KINDS: &[&str] = &[$($key),*];

        impl CheckKind {
            /// `None` when `key` names no check type.
            fn parse(key: &str, reader: &mut Reader<'_>, node: &Node) -> Option<Option<Self>> {
                match key {
                    $($key => Some(<$ty as CheckSpec>::parse(reader, node).map(CheckKind::$variant)),)*
                    _ => None,
                }
            }

            fn describe(&self) -> String {
                match self {
                    $(CheckKind::$variant(c) => c.describe(),)*
                }
            }
        }
    };
}

check_kinds! {
    /// Run a command in the node and look at its exit code and output.
    "command" => Command(CommandCheck),
    /// Look at a file in the node.
    "file" => File(FileCheck),
    /// Send an HTTP request inside the node's network.
    "http" => Http(HttpCheck),
    /// Ask a registry reachable from the node for a manifest.
    "registry" => Registry(RegistryCheck),
    /// Look at an image in the lab's Docker engine.
    "image" => Image(ImageCheck),
    /// Look at a container in the lab's Docker engine.
    "container" => Container(ContainerCheck),
}

/// Keys a check may carry besides its type key.
const COMMON_KEYS: &[&str] = &["fail", "name"];

/// One condition of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The type and its parameters.
    #[serde(flatten)]
    pub kind: CheckKind,
    /// The message a student sees when the check does not pass; the grader
    /// falls back to its own wording when absent.
    pub fail: Option<String>,
    /// The author's `name`, or a description derived from the check.
    name: String,
}

impl Check {
    /// What the grader reports this check as (`file /root/hello.txt`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Check> {
        let allowed: Vec<&str> = KINDS.iter().chain(COMMON_KEYS).copied().collect();
        let fields = reader.fields(node, "check", &allowed)?;
        let mut kind = None;
        let mut kind_key: Option<&str> = None;
        let mut ok = true;
        for (key, value) in fields.keys() {
            if COMMON_KEYS.contains(&key) {
                continue;
            }
            if let Some(first) = kind_key {
                reader.error(
                    value.line,
                    format!("check has two types, `{first}` and `{key}`: split it into two checks"),
                );
                ok = false;
                continue;
            }
            kind_key = Some(key);
            match CheckKind::parse(key, reader, value) {
                Some(Some(parsed)) => kind = Some(parsed),
                _ => ok = false,
            }
        }
        if kind_key.is_none() {
            reader.error(
                fields.line(),
                format!("check has no type: add one of {}", KINDS.join(", ")),
            );
        }
        let fail = fields.get("fail").and_then(|n| reader.string(n, "fail"));
        let custom_name = fields.get("name").and_then(|n| reader.string(n, "name"));
        let kind = kind.filter(|_| ok)?;
        let name = custom_name.unwrap_or_else(|| kind.describe());
        Some(Check { kind, fail, name })
    }
}
