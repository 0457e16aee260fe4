//! Manifests, indexes, image configs and image references: what the
//! registry and the engine read from clients and upstream registries before
//! anything reaches the store.
//!
//! The first byte picks the parser (and, for documents, the media type the
//! transport claimed); the rest is the document or the reference.

#![no_main]

use libfuzzer_sys::fuzz_target;
use store::manifests::{self, Document};
use store::media_types;
use store::{Digest, Reference};

/// Media types a `Content-Type` or a descriptor may claim.
const CLAIMED: [Option<&str>; 6] = [
    None,
    Some(media_types::OCI_MANIFEST),
    Some(media_types::OCI_INDEX),
    Some(media_types::DOCKER_MANIFEST),
    Some(media_types::DOCKER_MANIFEST_LIST),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let digest = Digest::of(bytes);
    match selector % 4 {
        0 | 1 => {
            let claimed = CLAIMED[usize::from(selector / 4) % CLAIMED.len()];
            document(&digest, bytes, claimed);
        }
        2 => {
            if let Ok(diff_ids) = manifests::config_diff_ids(&digest, bytes) {
                let chain = manifests::chain_ids(&diff_ids);
                assert_eq!(chain.len(), diff_ids.len());
                assert_eq!(chain.first(), diff_ids.first());
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                reference(text);
            }
        }
    }
});

/// The store's parse and the registry's, which validates with it: the two
/// must agree, and everything a document references must be readable.
fn document(digest: &Digest, bytes: &[u8], claimed: Option<&str>) {
    // The registry drops a Content-Type's parameters before the store sees it.
    let bare = claimed.map(|c| c.split(';').next().unwrap_or_default().trim());
    let stored = manifests::parse_document(&digest.to_string(), bytes, bare);
    if let Ok((Document::Index(index), _)) = &stored {
        let _ = manifests::for_this_host(index);
    }
    if let Ok(media_type) = registry::fuzzing::parse_document(digest, bytes, claimed) {
        let (_, stored_type) = stored.expect("the registry accepted what the store refused");
        assert_eq!(media_type, stored_type);
    }
}

/// A reference the engine or the registry was given: once parsed, its
/// normalized form parses back to itself, and so does its familiar form.
fn reference(text: &str) {
    let Ok(parsed) = Reference::parse(text) else {
        return;
    };
    let full = parsed.to_string();
    let again = Reference::parse(&full)
        .unwrap_or_else(|e| panic!("{text:?} parsed, its form {full:?} does not: {e}"));
    assert_eq!(again, parsed, "{text:?} → {full:?}");
    let familiar = parsed.familiar();
    let again = Reference::parse(&familiar).unwrap_or_else(|e| {
        panic!("{text:?} parsed, its familiar form {familiar:?} does not: {e}")
    });
    assert_eq!(again, parsed, "{text:?} → {familiar:?}");
    let _ = parsed.familiar_name();
    let _ = parsed.name();
}
