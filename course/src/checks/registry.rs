//! `registry`: ask a registry reachable from the node whether it holds a
//! repository at a tag or digest.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::Node;

// The shapes below follow the OCI distribution spec's grammar for names,
// tags and digests, so a typo fails at `lessons check` instead of at grading.
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$").expect("static pattern")
});
static REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
        .expect("static pattern")
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static pattern"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$").expect("static pattern")
});

/// Passes when the registry serves a manifest for the repository at the
/// tag (and digest) given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryCheck {
    /// `host:port` as seen from the node (`localhost:5000`).
    pub host: String,
    /// Repository name inside the registry (`my-nginx`, `team/app`).
    pub repository: String,
    /// `latest` when neither a tag nor a digest is given.
    pub tag: Option<String>,
    /// When given with a tag, the tag must point at this digest.
    pub digest: Option<String>,
    /// The tag must point at the manifest of this image of the lab's
    /// engine (what was pushed is what the lab has).
    pub same_as: Option<String>,
}

impl CheckSpec for RegistryCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`registry` check",
            &["host", "repository", "tag", "digest", "same_as"],
        )?;
        let host = f.required(reader, "host").and_then(|n| {
            shaped(
                reader,
                n,
                "host",
                &HOST,
                "write host:port, like localhost:5000",
            )
        });
        let repository = f.required(reader, "repository").and_then(|n| {
            let hint = "use lowercase letters and digits, with . _ - or / between them";
            shaped(reader, n, "repository", &REPOSITORY, hint)
        });
        let tag = optional(f.get("tag").map(|n| {
            shaped(
                reader,
                n,
                "tag",
                &TAG,
                "use letters, digits, _ . - (at most 128)",
            )
        }));
        let digest = optional(f.get("digest").map(|n| {
            shaped(
                reader,
                n,
                "digest",
                &DIGEST,
                "write sha256: and 64 hex digits",
            )
        }));
        let same_as = optional(
            f.get("same_as")
                .map(|n| super::engine::image_name(reader, n, "same_as")),
        );
        let (tag, digest, same_as) = (tag.ok()?, digest.ok()?, same_as.ok()?);
        if digest.is_some() && same_as.is_some() {
            reader.error(
                f.line(),
                "`registry` check has both `digest` and `same_as`: keep one",
            );
            return None;
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Some(RegistryCheck {
            host: host?,
            repository: repository?,
            tag,
            digest,
            same_as,
        })
    }

    fn describe(&self) -> String {
        let mut name = format!("registry {}/{}", self.host, self.repository);
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(digest);
        }
        shorten(&name)
    }
}

fn shaped(
    reader: &mut Reader<'_>,
    node: &Node,
    key: &str,
    re: &Regex,
    hint: &str,
) -> Option<String> {
    let value = reader.string(node, key)?;
    if re.is_match(&value) {
        Some(value)
    } else {
        reader.error(
            node.line,
            format!("`{key}` `{}` is not valid: {hint}", shorten(&value)),
        );
        None
    }
}
