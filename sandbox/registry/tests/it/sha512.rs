//! sha512, the second algorithm the image spec registers: blobs pushed
//! every way the spec allows (one POST, POST and PUT, chunks in order,
//! the last chunk in the PUT, a chunk out of order and the recovery, a
//! stream without ranges, `?digest-algorithm=`), mounts, manifests and
//! indexes addressed by their sha512 digest, referrers of a sha512
//! subject, GC, and the hub pulling a sha512 manifest through.

use std::time::Duration;

use reqwest::{Response, StatusCode};

use crate::harness::*;

fn location(r: &Response) -> String {
    r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_owned()
}

/// Bytes that differ per test and are not all alike.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8)
        .collect()
}

async fn patch(s: &Server, loc: &str, range: Option<(usize, usize)>, body: &[u8]) -> Response {
    let mut request = s
        .client
        .patch(s.at(loc))
        .header("Content-Type", "application/octet-stream")
        .body(body.to_vec());
    if let Some((start, end)) = range {
        request = request.header("Content-Range", format!("{start}-{end}"));
    }
    request.send().await.expect("patch")
}

async fn put_last(s: &Server, loc: &str, digest: &str, start: usize, body: &[u8]) -> Response {
    let mut request = s
        .client
        .put(s.at(&format!("{loc}?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(body.to_vec());
    if !body.is_empty() {
        let end = start + body.len() - 1;
        request = request.header("Content-Range", format!("{start}-{end}"));
    }
    request.send().await.expect("put")
}

/// The blob is served whole, by range and by HEAD under its sha512
/// digest, then deleted.
async fn check_served_then_delete(s: &Server, name: &str, digest: &str, bytes: &[u8]) {
    let path = format!("/v2/{name}/blobs/{digest}");
    let r = s.head(&path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    assert_eq!(r.headers()["Docker-Content-Digest"], digest);
    assert_eq!(
        r.headers()["Content-Length"],
        bytes.len().to_string().as_str()
    );
    let r = s.get(&path).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest);
    assert_eq!(r.bytes().await.expect("body").as_ref(), bytes);
    if bytes.len() >= 5 {
        let r = s
            .client
            .get(s.at(&path))
            .header("Range", "bytes=1-4")
            .send()
            .await
            .expect("range");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[1..5]);
    }
    assert!(
        s.store.blob_exists(&digest.parse().expect("digest")),
        "{digest} is in the store under its sha512 digest"
    );
    let r = s.delete(&path).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s.get(&path).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn sha512_blobs_are_pushed_every_way_and_served() {
    let s = Server::start().await;

    // One POST.
    let bytes = data(1, 512);
    let digest = s.push_blob_as("app", &bytes, sha512_of(&bytes)).await;
    check_served_then_delete(&s, "app", &digest, &bytes).await;

    // POST, then PUT with the bytes.
    let bytes = data(2, 512);
    let digest = sha512_of(&bytes);
    let loc = location(&s.post("/v2/app/blobs/uploads/").await);
    let r = put_last(&s, &loc, &digest, 0, &bytes).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/app/blobs/{digest}"));
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    check_served_then_delete(&s, "app", &digest, &bytes).await;

    // Three chunks in order, then an empty PUT; and the same with the
    // last chunk in the PUT.
    for put_carries_last in [false, true] {
        let bytes = data(3 + u8::from(put_carries_last), 3 * 1024 - 5);
        let digest = sha512_of(&bytes);
        let mut loc = location(&s.post("/v2/app/blobs/uploads/").await);
        let chunks: Vec<(usize, &[u8])> = bytes
            .chunks(1024)
            .scan(0, |at, c| {
                let start = *at;
                *at += c.len();
                Some((start, c))
            })
            .collect();
        let (last_start, last) = chunks[chunks.len() - 1];
        let sent_by_patch = if put_carries_last {
            &chunks[..chunks.len() - 1]
        } else {
            &chunks[..]
        };
        for (start, chunk) in sent_by_patch {
            let r = patch(&s, &loc, Some((*start, start + chunk.len() - 1)), chunk).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            loc = location(&r);
        }
        let r = if put_carries_last {
            put_last(&s, &loc, &digest, last_start, last).await
        } else {
            put_last(&s, &loc, &digest, 0, b"").await
        };
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "last chunk in PUT: {put_carries_last}"
        );
        assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
        check_served_then_delete(&s, "app", &digest, &bytes).await;
    }

    // A chunk out of order is refused; the client recovers from the
    // upload's status and finishes.
    let bytes = data(5, 3000);
    let digest = sha512_of(&bytes);
    let loc = location(&s.post("/v2/app/blobs/uploads/").await);
    let r = patch(&s, &loc, Some((0, 999)), &bytes[..1000]).await;
    let loc = location(&r);
    let r = patch(&s, &loc, Some((2000, 2999)), &bytes[2000..]).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = put_last(&s, &loc, &digest, 2000, &bytes[2000..]).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["Range"], "0-999");
    let r = patch(&s, &location(&r), Some((1000, 1999)), &bytes[1000..2000]).await;
    let r = put_last(&s, &location(&r), &digest, 2000, &bytes[2000..]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    check_served_then_delete(&s, "app", &digest, &bytes).await;

    // A stream: PATCH without Content-Range, then PUT.
    let bytes = data(6, 2048);
    let digest = sha512_of(&bytes);
    let loc = location(&s.post("/v2/app/blobs/uploads/").await);
    let r = patch(&s, &loc, None, &bytes).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = put_last(&s, &location(&r), &digest, 0, b"").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    check_served_then_delete(&s, "app", &digest, &bytes).await;

    // The POST may name the algorithm; a final digest in another one is
    // still checked.
    for (algorithm, final_digest) in [
        ("sha512", sha512_of as fn(&[u8]) -> String),
        ("sha512", digest_of),
        ("sha256", sha512_of),
    ] {
        let bytes = data(7, 1500);
        let digest = final_digest(&bytes);
        let r = s
            .post(&format!(
                "/v2/app/blobs/uploads/?digest-algorithm={algorithm}"
            ))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{algorithm}");
        let r = patch(&s, &location(&r), Some((0, 1499)), &bytes).await;
        let r = put_last(&s, &location(&r), &digest, 0, b"").await;
        assert_eq!(r.status(), StatusCode::CREATED, "{algorithm} then {digest}");
        check_served_then_delete(&s, "app", &digest, &bytes).await;
    }

    // The same bytes under both algorithms are two addresses, both served.
    let bytes = b"{}".to_vec();
    let d256 = s.push_blob("app", &bytes).await;
    let d512 = s.push_blob_as("app", &bytes, sha512_of(&bytes)).await;
    for digest in [&d256, &d512] {
        let r = s.get(&format!("/v2/app/blobs/{digest}")).await;
        assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
        assert_eq!(r.bytes().await.expect("body").as_ref(), b"{}");
    }
    let empty = s.push_blob_as("app", b"", sha512_of(b"")).await;
    check_served_then_delete(&s, "app", &empty, b"").await;
}

#[tokio::test]
async fn sha512_blobs_mount_from_a_repository_and_anonymously() {
    let s = Server::start().await;
    let bytes = data(9, 512);
    let digest = s.push_blob_as("repo2", &bytes, sha512_of(&bytes)).await;
    let r = s.mount("repo1", &digest, "repo2").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/repo1/blobs/{digest}"));
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    check_served_then_delete(&s, "repo1", &digest, &bytes).await;

    let r = s
        .post(&format!("/v2/repo3/blobs/uploads/?mount={digest}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "anonymous mount");
    check_served_then_delete(&s, "repo3", &digest, &bytes).await;

    // A blob the source lacks: a plain upload session instead.
    let missing = sha512_of(b"never pushed");
    let r = s.mount("repo1", &missing, "repo2").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(location(&r).starts_with("/v2/repo1/blobs/uploads/"));
}

/// Pushes a one-layer image whose every digest is sha512, by its digest.
async fn push_sha512_image(s: &Server, name: &str, seed: &str) -> (Vec<u8>, String) {
    s.push_image_as(name, None, seed, sha512_of).await
}

#[tokio::test]
async fn sha512_manifests_and_indexes_are_addressed_by_their_digest() {
    let s = Server::start().await;
    let (manifest, digest) = push_sha512_image(&s, "app", "sha512 layer").await;
    // Pushed again, it answers with where it is and its sha512 digest.
    let r = s
        .put_manifest("app", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/app/manifests/{digest}"));
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    for method in ["GET", "HEAD"] {
        let r = s
            .client
            .request(
                method.parse().expect("method"),
                s.at(&format!("/v2/app/manifests/{digest}")),
            )
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .expect("manifest");
        assert_eq!(r.status(), StatusCode::OK, "{method}");
        assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
        assert_eq!(r.headers()["Content-Type"], OCI_MANIFEST);
        if method == "GET" {
            assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);
        }
    }
    // The bytes under another sha512 digest are refused.
    let wrong = sha512_of(b"something else");
    let r = s.put_manifest("app", &wrong, OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    // A sha512 blob the repository lacks is a missing blob.
    let dangling = manifest_json(
        OCI_MANIFEST,
        OCI_CONFIG,
        &sha512_of(b"no config"),
        9,
        &[],
        None,
    );
    let r = s
        .put_manifest(
            "app",
            &sha512_of(dangling.as_bytes()),
            OCI_MANIFEST,
            dangling.as_bytes(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    // An index of sha512 manifests, itself addressed by sha512.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    let index_digest = sha512_of(index.as_bytes());
    let r = s
        .put_manifest("app", &index_digest, OCI_INDEX, index.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .get_accepting(&format!("/v2/app/manifests/{index_digest}"), OCI_INDEX)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], index_digest.as_str());
    assert_eq!(r.bytes().await.expect("body").as_ref(), index.as_bytes());
    // A tag may point at a sha512 document; its digest stays sha256 there,
    // the algorithm a tag push is addressed by.
    let r = s
        .put_manifest("app", "v1", OCI_INDEX, index.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["Docker-Content-Digest"],
        digest_of(index.as_bytes()).as_str()
    );

    // Deletes by digest.
    for d in [&index_digest, &digest] {
        let r = s.delete(&format!("/v2/app/manifests/{d}")).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{d}");
        let r = s.get(&format!("/v2/app/manifests/{d}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{d}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    }
}

#[tokio::test]
async fn referrers_of_a_sha512_subject_are_listed() {
    let s = Server::start().await;
    let (manifest, subject) = push_sha512_image(&s, "app", "subject layer").await;
    let config = s.push_blob_as("app", b"{}", sha512_of(b"{}")).await;
    let artifact = manifest_json(
        OCI_MANIFEST,
        "application/vnd.example.signature",
        &config,
        2,
        &[],
        Some(&format!(
            r#""subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{}}}"#,
            manifest.len()
        )),
    );
    let artifact_digest = sha512_of(artifact.as_bytes());
    let r = s
        .put_manifest("app", &artifact_digest, OCI_MANIFEST, artifact.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["OCI-Subject"], subject.as_str());
    let r = s.get(&format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let index: serde_json::Value = r.json().await.expect("index");
    let listed = index["manifests"].as_array().expect("manifests");
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["digest"], artifact_digest.as_str());
    assert_eq!(
        listed[0]["artifactType"],
        "application/vnd.example.signature"
    );
}

#[tokio::test]
async fn gc_keeps_what_sha512_manifests_reference_and_frees_the_rest() {
    let s = Server::start().await;
    let (manifest, digest) = push_sha512_image(&s, "app", "kept layer").await;
    let document: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let referenced: Vec<String> = std::iter::once(&document["config"])
        .chain(document["layers"].as_array().expect("layers"))
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect();
    let loose = s.push_blob_as("app", b"loose", sha512_of(b"loose")).await;
    let registry = s.registry.clone();
    let report = tokio::task::spawn_blocking(move || registry.gc(Duration::ZERO))
        .await
        .expect("gc task")
        .expect("gc");
    let freed: Vec<String> = report.store.blobs.iter().map(ToString::to_string).collect();
    assert_eq!(freed, vec![loose.clone()]);
    for kept in referenced.iter().chain([&digest]) {
        assert!(
            s.store.blob_exists(&kept.parse().expect("digest")),
            "{kept}"
        );
        assert!(!freed.contains(kept), "{kept}");
    }
    let r = s
        .get_accepting(&format!("/v2/app/manifests/{digest}"), OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
