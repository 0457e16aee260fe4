//! The store namespace the catalog is built into.

use store::Namespace;

/// The store namespace that holds the catalog (what `docker pull` sees).
pub const HUB_NAMESPACE: &str = "hub";

/// The hub namespace as the store's type.
pub fn hub() -> Namespace {
    // A constant that is a valid namespace id; checked by a test.
    Namespace::new(HUB_NAMESPACE).unwrap_or_else(|_| unreachable!("\"hub\" is a valid namespace"))
}
