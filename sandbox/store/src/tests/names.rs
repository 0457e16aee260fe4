use crate::{ErrorKind, Namespace, Reference};

use super::store;

#[test]
fn namespaces_are_isolated_and_survive_reopen() {
    let (dir, s) = store();
    let a = Namespace::new("engine-a").expect("ns");
    let b = Namespace::new("engine-b").expect("ns");
    let m1 = s
        .write_blob_bytes(b"{\"manifest\":1}")
        .expect("blob")
        .digest;
    let m2 = s
        .write_blob_bytes(b"{\"manifest\":2}")
        .expect("blob")
        .digest;
    let busybox = Reference::parse("busybox").expect("ref");
    assert_eq!(s.tag(&a, &busybox, &m1).expect("tag"), None);
    assert_eq!(
        s.tag(
            &b,
            &Reference::parse("docker.io/library/busybox:latest").expect("ref"),
            &m2
        )
        .expect("tag"),
        None
    );
    assert_eq!(
        s.resolve(&a, &Reference::parse("busybox:latest").expect("ref"))
            .expect("resolve"),
        m1
    );
    assert_eq!(s.resolve(&b, &busybox).expect("resolve"), m2);
    // A digest reference resolves only where the namespace names it.
    let pinned = busybox.with_digest(m1.clone());
    assert_eq!(s.resolve(&a, &pinned).expect("pinned"), m1);
    assert_eq!(
        s.resolve(&b, &pinned).expect_err("other ns").kind(),
        ErrorKind::NotFound
    );
    let hub = Namespace::new("hub").expect("ns");
    assert_eq!(
        s.resolve(&hub, &busybox).expect_err("empty ns").kind(),
        ErrorKind::NotFound
    );

    let s2 = crate::Store::open(&dir.path().join("store")).expect("reopen");
    let names: Vec<String> = s2
        .list(&a)
        .expect("list")
        .into_iter()
        .map(|t| t.reference.familiar())
        .collect();
    assert_eq!(names, vec!["busybox:latest"]);
    assert_eq!(s2.untag(&a, &busybox).expect("untag"), m1);
    assert!(s2.list(&a).expect("list").is_empty());
    assert_eq!(
        s2.untag(&a, &busybox).expect_err("twice").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(s2.resolve(&b, &busybox).expect("b untouched"), m2);
}

#[test]
fn tagging_needs_a_stored_manifest_and_a_valid_namespace() {
    let (_d, s) = store();
    let ns = Namespace::new("hub").expect("ns");
    let missing = crate::Digest::of(b"missing");
    assert_eq!(
        s.tag(&ns, &Reference::parse("x").expect("ref"), &missing)
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
    for bad in ["", "Hub", "../x", "a/b", "-x", &"a".repeat(129)] {
        assert!(Namespace::new(bad).is_err(), "{bad}");
    }
}
