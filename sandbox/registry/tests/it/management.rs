//! Content management: deleting tags, manifests and blobs, and GC.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn delete_tag_then_manifest_then_blob() {
    let s = Server::start().await;
    let (_, digest) = s.push_image("app", "v1", "delete").await;
    s.push_image("app", "v2", "delete").await;

    let r = s.delete("/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s.get("/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.get("/v2/app/manifests/v2").await;
    assert_eq!(r.status(), StatusCode::OK, "the other tag stays");

    let r = s.delete(&format!("/v2/app/manifests/{digest}")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for reference in ["v2", digest.as_str()] {
        let r = s.get(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{reference}");
    }
    let r = s.delete(&format!("/v2/app/manifests/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");

    let blob = digest_of(b"delete");
    let r = s.delete(&format!("/v2/app/blobs/{blob}")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s.get(&format!("/v2/app/blobs/{blob}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = s.delete(&format!("/v2/app/blobs/{blob}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn gc_frees_unreferenced_blobs_and_keeps_images() {
    let s = Server::start().await;
    let (_, kept) = s.push_image("app", "kept", "kept layer").await;
    let (_, dropped) = s.push_image("app", "dropped", "dropped layer").await;
    let loose = s.push_blob("app", b"never referenced").await;
    let r = s.delete(&format!("/v2/app/manifests/{dropped}")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let registry = s.registry.clone();
    let report = tokio::task::spawn_blocking(move || registry.gc(Duration::ZERO))
        .await
        .expect("join")
        .expect("gc");
    let freed: Vec<String> = report.store.blobs.iter().map(ToString::to_string).collect();
    for gone in [&dropped, &digest_of(b"dropped layer"), &loose] {
        assert!(freed.contains(gone), "{gone} not freed: {freed:?}");
    }
    assert!(!freed.contains(&kept));
    assert!(!freed.contains(&digest_of(b"kept layer")));
    let r = s.get("/v2/app/manifests/kept").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .get(&format!("/v2/app/blobs/{}", digest_of(b"kept layer")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.get(&format!("/v2/app/blobs/{loose}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Within the grace period a fresh push survives even unreferenced.
    let fresh = s.push_blob("app", b"fresh").await;
    let registry = s.registry.clone();
    let report = tokio::task::spawn_blocking(move || registry.gc(Duration::from_secs(600)))
        .await
        .expect("join")
        .expect("gc");
    assert!(report.released.is_empty());
    let r = s.head(&format!("/v2/app/blobs/{fresh}")).await;
    assert_eq!(r.status(), StatusCode::OK);
}
