//! Repository names and tags as the spec defines them, and how they map to
//! references in the store's namespace.
//!
//! A repository name matches
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
//! so `..`, empty components, upper case, `%` escapes and anything else a
//! path trick needs are refused before a name touches the store.

use std::sync::OnceLock;

use regex::Regex;
use store::{Digest, Reference};

use crate::error::{Code, Error, Result};

/// The domain under which a registry namespace keeps its repositories:
/// repository `team/app` tag `1` is `localhost/team/app:1` in the store.
pub const REPOSITORY_DOMAIN: &str = "localhost";

/// Longest repository name accepted (the store's references are at most
/// 255 characters including the domain).
const MAX_NAME: usize = 255 - REPOSITORY_DOMAIN.len() - 1;

/// How repository names become store references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Docker Hub's rules, for the hub namespace: `busybox` and
    /// `library/busybox` are both `docker.io/library/busybox`.
    Hub,
    /// The name as given, under [`REPOSITORY_DOMAIN`].
    Registry,
}

fn name_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$",
        )
        .unwrap_or_else(|_| unreachable!("the spec's name pattern compiles"))
    })
}

/// Checks a repository name against the spec's pattern.
pub fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_NAME || !name_regex().is_match(name) {
        return Err(Error::protocol(
            Code::NameInvalid,
            format!(
                "{:?} is not a repository name: use lower-case letters, digits and separators (., _, __, -), components joined by /, at most {MAX_NAME} characters",
                name.chars().take(300).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// A tag or a digest, the last path segment of a manifest URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    Tag(String),
    /// `sha256:<64 hex>` or `sha512:<128 hex>`.
    Digest(Digest),
}

impl ManifestRef {
    /// A digest when the text has a `:`, else a tag; both checked.
    pub fn parse(text: &str) -> Result<ManifestRef> {
        if text.contains(':') {
            return text
                .parse::<Digest>()
                .map(ManifestRef::Digest)
                .map_err(|e| Error::protocol(Code::DigestInvalid, e.to_string()));
        }
        let b = text.as_bytes();
        let valid = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if valid {
            Ok(ManifestRef::Tag(text.to_owned()))
        } else {
            Err(Error::protocol(
                Code::ManifestInvalid,
                format!(
                    "{:?} is neither a tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}) nor a digest",
                    text.chars().take(200).collect::<String>()
                ),
            ))
        }
    }

    /// The digest a document's `bytes` have when addressed by this
    /// reference: in the algorithm of a digest, in sha256 for a tag.
    pub fn digest_of(&self, bytes: &[u8]) -> Digest {
        match self {
            ManifestRef::Digest(d) => d.algorithm().digest(bytes),
            ManifestRef::Tag(_) => Digest::of(bytes),
        }
    }
}

impl Naming {
    /// The store reference of `name` with a tag or digest.
    pub fn reference(self, name: &str, reference: &ManifestRef) -> Result<Reference> {
        let base = self.base(name)?;
        match reference {
            ManifestRef::Tag(tag) => base
                .with_tag(tag)
                .map_err(|e| Error::protocol(Code::ManifestInvalid, e.to_string())),
            ManifestRef::Digest(digest) => Ok(base.with_digest(digest.clone())),
        }
    }

    /// The reference of the repository itself (its `latest` tag).
    fn base(self, name: &str) -> Result<Reference> {
        check_name(name)?;
        let text = match self {
            Naming::Hub => name.to_owned(),
            Naming::Registry => format!("{REPOSITORY_DOMAIN}/{name}"),
        };
        Reference::parse(&text).map_err(|e| Error::protocol(Code::NameInvalid, e.to_string()))
    }

    /// The repository name clients use for a store reference, if this
    /// naming produced it.
    pub fn repository(self, reference: &Reference) -> Option<String> {
        match self {
            Naming::Hub => {
                (reference.registry() == store::reference::DEFAULT_REGISTRY).then(|| {
                    let repo = reference.repository();
                    repo.strip_prefix("library/").unwrap_or(repo).to_owned()
                })
            }
            Naming::Registry => (reference.registry() == REPOSITORY_DOMAIN)
                .then(|| reference.repository().to_owned()),
        }
    }

    /// What [`Reference::name`] is for every reference of repository `name`.
    pub fn repository_key(self, name: &str) -> Result<String> {
        Ok(self.base(name)?.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_pattern() {
        for good in ["a", "library/busybox", "a.b/c-d/e__f", "x--y/0"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "a/../b",
            "/a",
            "a/",
            "a//b",
            "A",
            "a%2fb",
            "a b",
            "-a",
            "a-",
            "a___b",
            "a/./b",
            &"a".repeat(300),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hub_names_normalize_like_docker() {
        let tag = ManifestRef::Tag("latest".into());
        let a = Naming::Hub.reference("busybox", &tag).expect("valid");
        let b = Naming::Hub
            .reference("library/busybox", &tag)
            .expect("valid");
        assert_eq!(a, b);
        assert_eq!(Naming::Hub.repository(&a).as_deref(), Some("busybox"));
        let r = Naming::Registry.reference("team/app", &tag).expect("valid");
        assert_eq!(r.to_string(), "localhost/team/app:latest");
        assert_eq!(Naming::Registry.repository(&r).as_deref(), Some("team/app"));
    }

    #[test]
    fn tags_and_digests_are_checked() {
        assert!(ManifestRef::parse("v1.0_rc-2").is_ok());
        assert!(ManifestRef::parse(".hidden").is_err());
        assert!(ManifestRef::parse(&"t".repeat(129)).is_err());
        assert!(ManifestRef::parse("sha256:abc").is_err());
        assert!(ManifestRef::parse("md5:0123").is_err());
    }
}
