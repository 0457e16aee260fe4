//! Push: monolithic (POST + PUT, single POST), chunked (PATCH in order,
//! status), mount, manifests (OCI and Docker, manifest and index) with
//! their validation, and content negotiation.

use reqwest::StatusCode;

use crate::harness::*;

fn location(r: &reqwest::Response) -> String {
    r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn monolithic_post_then_put() {
    let s = Server::start().await;
    let data = b"monolithic blob".to_vec();
    let digest = digest_of(&data);
    let r = s.post("/v2/app/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("Docker-Upload-UUID"));
    let loc = location(&r);
    assert!(loc.starts_with("/v2/app/blobs/uploads/"), "{loc}");
    let r = s
        .client
        .put(s.at(&format!("{loc}?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/app/blobs/{digest}"));
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    let got = s.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.expect("body").as_ref(), &data[..]);
    // The upload is finished: its URL is gone.
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn empty_blob_and_single_post() {
    let s = Server::start().await;
    let digest = s.push_blob("app", b"").await;
    assert_eq!(
        digest,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let r = s.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Content-Length"], "0");
}

#[tokio::test]
async fn chunked_upload_in_order_with_status() {
    let s = Server::start().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = digest_of(&data);
    let r = s.post("/v2/app/blobs/uploads/").await;
    let mut loc = location(&r);
    let chunks = [&data[..100_000], &data[100_000..250_000], &data[250_000..]];
    let mut offset = 0usize;
    for chunk in chunks {
        let end = offset + chunk.len() - 1;
        let r = s
            .client
            .patch(s.at(&loc))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{end}"))
            .body(chunk.to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["Range"], format!("0-{end}").as_str());
        loc = location(&r);
        offset = end + 1;
        let st = s.get(&loc).await;
        assert_eq!(st.status(), StatusCode::NO_CONTENT);
        assert_eq!(st.headers()["Range"], format!("0-{end}").as_str());
    }
    let r = s.put(&format!("{loc}?digest={digest}")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = s.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.expect("body").as_ref(), &data[..]);
}

#[tokio::test]
async fn a_chunk_out_of_order_is_refused_with_416() {
    let s = Server::start().await;
    let r = s.post("/v2/app/blobs/uploads/").await;
    let loc = location(&r);
    let first = s
        .client
        .patch(s.at(&loc))
        .header("Content-Range", "0-9")
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("patch");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    for range in ["20-29", "0-9", "5-14"] {
        let r = s
            .client
            .patch(s.at(&loc))
            .header("Content-Range", range)
            .body(vec![2u8; 10])
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.headers()["Range"], "0-9");
    }
    // A Content-Range that disagrees with the body's length.
    let r = s
        .client
        .patch(s.at(&loc))
        .header("Content-Range", "10-19")
        .body(vec![3u8; 4])
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Nothing of the refused chunks was kept.
    let st = s.get(&loc).await;
    assert_eq!(st.headers()["Range"], "0-9");
}

#[tokio::test]
async fn mount_from_another_repository() {
    let s = Server::start().await;
    let digest = s.push_blob("source", b"shared layer").await;
    let blob_in_target = format!("/v2/target/blobs/{digest}");
    assert_eq!(
        s.head(&blob_in_target).await.status(),
        StatusCode::NOT_FOUND
    );
    // A repository that does not hold the blob cannot lend it.
    let r = s.mount("target", &digest, "elsewhere").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s.mount("target", &digest, "source").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), blob_in_target);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    assert_eq!(s.head(&blob_in_target).await.status(), StatusCode::OK);
    // An unknown blob cannot be mounted: a plain upload session starts.
    let unknown = format!("sha256:{}", "1".repeat(64));
    let r = s.mount("target", &unknown, "source").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(location(&r).starts_with("/v2/target/blobs/uploads/"));
}

#[tokio::test]
async fn manifests_need_their_blobs_and_a_matching_digest() {
    let s = Server::start().await;
    let config = s
        .push_blob(
            "app",
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .await;
    let missing = format!("sha256:{}", "2".repeat(64));
    let manifest = manifest_json(
        OCI_MANIFEST,
        OCI_CONFIG,
        &config,
        81,
        &[(missing.clone(), 5)],
        None,
    );
    let r = s
        .put_manifest("app", "v1", OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    let good = manifest_json(OCI_MANIFEST, OCI_CONFIG, &config, 81, &[], None);
    let wrong = format!("sha256:{}", "3".repeat(64));
    let r = s
        .put_manifest("app", &wrong, OCI_MANIFEST, good.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    let r = s
        .put_manifest("app", "v1", DOCKER_MANIFEST, good.as_bytes())
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "Content-Type disagrees with mediaType"
    );
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");

    for bad in [
        &b"not json"[..],
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        br#"{"schemaVersion":2,"mediaType":"text/plain","layers":[]}"#,
    ] {
        let r = s.put_manifest("app", "v1", OCI_MANIFEST, bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    }
    let listed = s.get("/v2/app/tags/list").await;
    assert_eq!(listed.status(), StatusCode::NOT_FOUND, "nothing was stored");

    // By digest, then by tag: both answer with the digest.
    let digest = digest_of(good.as_bytes());
    let r = s
        .put_manifest("app", &digest, OCI_MANIFEST, good.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    assert_eq!(location(&r), format!("/v2/app/manifests/{digest}"));
}

#[tokio::test]
async fn docker_manifests_lists_and_oci_indexes_with_negotiation() {
    let s = Server::start().await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = s.push_blob("multi", config).await;
    let docker = manifest_json(
        DOCKER_MANIFEST,
        "application/vnd.docker.container.image.v1+json",
        &config_digest,
        config.len(),
        &[],
        None,
    );
    let docker_digest = digest_of(docker.as_bytes());
    let r = s
        .put_manifest("multi", &docker_digest, DOCKER_MANIFEST, docker.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let entry = |mt: &str, d: &str, size: usize| {
        format!(
            r#"{{"mediaType":"{mt}","digest":"{d}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}}"#
        )
    };
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{}]}}"#,
        entry(DOCKER_MANIFEST, &docker_digest, docker.len())
    );
    let r = s
        .put_manifest("multi", "list", DOCKER_LIST, list.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // An index whose child is not in the repository is refused.
    let orphan = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entry(OCI_MANIFEST, &format!("sha256:{}", "4".repeat(64)), 10)
    );
    let r = s
        .put_manifest("multi", "orphan", OCI_INDEX, orphan.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    // A client accepting lists gets the list; one that does not gets the
    // platform's manifest.
    let url = s.at("/v2/multi/manifests/list");
    let r = s
        .client
        .get(&url)
        .header("Accept", format!("{DOCKER_MANIFEST}, {DOCKER_LIST}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["Content-Type"], DOCKER_LIST);
    assert_eq!(r.bytes().await.expect("body").as_ref(), list.as_bytes());
    let r = s
        .client
        .get(&url)
        .header("Accept", DOCKER_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["Content-Type"], DOCKER_MANIFEST);
    assert_eq!(r.headers()["Docker-Content-Digest"], docker_digest.as_str());
    assert_eq!(r.bytes().await.expect("body").as_ref(), docker.as_bytes());
}
