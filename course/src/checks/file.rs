//! `file`: look at a path in the node's file system.

use serde::Serialize;

use super::pattern::Pattern;
use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::Node;

/// Passes when the path exists (or not) with every property given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCheck {
    /// Absolute path inside the node.
    pub path: String,
    /// `false` checks that the path is absent; then no other property may be
    /// given.
    pub exists: bool,
    /// Permission bits (`0o755`), compared exactly.
    pub mode: Option<u32>,
    /// User name or numeric uid of the owner.
    pub owner: Option<String>,
    /// Substring the file's content must contain.
    pub contains: Option<String>,
    /// Pattern that must match somewhere in the file's content.
    pub regex: Option<Pattern>,
}

impl CheckSpec for FileCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`file` check",
            &["path", "exists", "mode", "owner", "contains", "regex"],
        )?;
        let path = f.required(reader, "path").and_then(|n| {
            let p = reader.string(n, "path")?;
            if !p.starts_with('/') || p.contains('\0') {
                reader.error(
                    n.line,
                    format!(
                        "`path` must be absolute (start with /), found `{}`",
                        shorten(&p)
                    ),
                );
                return None;
            }
            Some(p)
        });
        let exists = optional(f.get("exists").map(|n| reader.boolean(n, "exists")));
        let mode = optional(f.get("mode").map(|n| parse_mode(reader, n)));
        let owner = optional(f.get("owner").map(|n| reader.string(n, "owner")));
        let contains = optional(f.get("contains").map(|n| reader.string(n, "contains")));
        let regex = optional(f.get("regex").map(|n| reader.pattern(n, "regex")));
        let mut consistent = true;
        if let Ok(Some(false)) = exists {
            for key in ["mode", "owner", "contains", "regex"] {
                if let Some(n) = f.get(key) {
                    reader.error(
                        n.line,
                        format!("`{key}` cannot be checked on a file that must not exist: drop `{key}` or `exists: false`"),
                    );
                    consistent = false;
                }
            }
        }
        if !consistent {
            return None;
        }
        Some(FileCheck {
            path: path?,
            exists: exists.ok()?.unwrap_or(true),
            mode: mode.ok()?,
            owner: owner.ok()?,
            contains: contains.ok()?,
            regex: regex.ok()?,
        })
    }

    fn describe(&self) -> String {
        if self.exists {
            format!("file {}", shorten(&self.path))
        } else {
            format!("no file {}", shorten(&self.path))
        }
    }
}

/// Modes are read as octal digits whatever YAML thinks they are: authors
/// write `mode: 0755` or `mode: "755"` and both mean rwxr-xr-x.
fn parse_mode(reader: &mut Reader<'_>, node: &Node) -> Option<u32> {
    let text = reader.string(node, "mode")?;
    let digits = text.strip_prefix("0o").unwrap_or(&text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode)
            if mode <= 0o7777
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(mode)
        }
        _ => {
            reader.error(
                node.line,
                format!(
                    "`mode` must be octal permission bits like 0644 or 0755, found `{}`",
                    shorten(&text)
                ),
            );
            None
        }
    }
}
