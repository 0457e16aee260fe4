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

/// Blobs belong to the repositories they were pushed to or mounted into:
/// invisible elsewhere, deleted per repository, kept across a restart.
#[tokio::test]
async fn blobs_belong_to_their_repositories() {
    let root = tempfile::tempdir().expect("temp dir");
    let s = Server::on_store(root.path(), |c| c).await;
    let config = s.push_blob("team/a", b"{}").await;
    let layer = s.push_blob("team/a", b"layer of a").await;
    let in_b = |d: &str| format!("/v2/team/b/blobs/{d}");
    assert_eq!(s.head(&in_b(&layer)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.get(&in_b(&layer)).await.status(), StatusCode::NOT_FOUND);

    // A manifest may only reference blobs of its own repository.
    let manifest = manifest_json(
        OCI_MANIFEST,
        OCI_CONFIG,
        &config,
        2,
        &[(layer.clone(), 10)],
        None,
    );
    let r = s
        .put_manifest("team/b", "v1", OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    for d in [&config, &layer] {
        let r = s.mount("team/b", d, "team/a").await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = s
        .put_manifest("team/b", "v1", OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Deleting from a leaves b's link.
    let r = s.delete(&format!("/v2/team/a/blobs/{layer}")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s.head(&format!("/v2/team/a/blobs/{layer}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.head(&in_b(&layer)).await.status(), StatusCode::OK);
    s.stop().await;

    let again = Server::on_store(root.path(), |c| c).await;
    let r = again.get(&in_b(&layer)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"layer of a");
    let r = again.head(&format!("/v2/team/a/blobs/{layer}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = again.head(&format!("/v2/team/a/blobs/{config}")).await;
    assert_eq!(r.status(), StatusCode::OK);
}
