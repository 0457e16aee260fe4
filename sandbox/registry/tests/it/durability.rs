//! Uploads outlive the process serving them (the `kill -9` case runs the
//! real binary in the server's tests), and what a push leaves is consistent.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn an_upload_resumes_after_a_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let digest = digest_of(&data);

    let first = Server::on_store(root.path(), |c| c).await;
    let r = first.post("/v2/app/blobs/uploads/").await;
    let loc = r.headers()["Location"].to_str().expect("loc").to_owned();
    let r = first
        .client
        .patch(first.at(&loc))
        .header("Content-Range", "0-99999")
        .body(data[..100_000].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    first.stop().await;

    let second = Server::on_store(root.path(), |c| c).await;
    // Not visible before the final PUT.
    let r = second.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = second.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["Range"], "0-99999");
    let r = second
        .client
        .patch(second.at(&loc))
        .header("Content-Range", "100000-199999")
        .body(data[100_000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = second.put(&format!("{loc}?digest={digest}")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = second.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.bytes().await.expect("body").as_ref(), &data[..]);
    second.stop().await;

    // A third start still serves it: the namespace's blobs are on disk.
    let third = Server::on_store(root.path(), |c| c).await;
    let r = third.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Two registries on one namespace would each rewrite the blob lease from
/// their own copy and drop each other's blobs; the second is refused.
#[tokio::test]
async fn a_second_registry_on_the_same_namespace_is_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let first = Server::on_store(root.path(), |c| c).await;
    let open = || {
        let store = store::Store::open(root.path()).expect("open store");
        let namespace = store::Namespace::new("registry-test").expect("namespace");
        registry::Registry::open(registry::Config::new(store, namespace))
    };
    let err = open().expect_err("a second registry while the first runs");
    assert!(err.to_string().contains("in use"), "{err}");
    first.stop().await;
    open().expect("a registry once the first stopped");
}

#[tokio::test]
async fn cancelled_uploads_leave_nothing() {
    let s = Server::start().await;
    let r = s.post("/v2/app/blobs/uploads/").await;
    let loc = r.headers()["Location"].to_str().expect("loc").to_owned();
    s.client
        .patch(s.at(&loc))
        .body(vec![1u8; 1000])
        .send()
        .await
        .expect("patch");
    let r = s.delete(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        store::content::IngestManager::ingests(s.store.content())
            .expect("ingests")
            .is_empty()
    );
}
