//! Content discovery: tag lists with pagination, the catalog, referrers.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn tags_list_in_pages_with_link() {
    let s = Server::start().await;
    for tag in ["c", "a", "e", "b", "d"] {
        s.push_image("paged/app", tag, "same").await;
    }
    let r = s.get("/v2/paged/app/tags/list").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("Link").is_none());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["name"], "paged/app");
    assert_eq!(body["tags"], serde_json::json!(["a", "b", "c", "d", "e"]));

    let r = s.get("/v2/paged/app/tags/list?n=2").await;
    let link = r.headers()["Link"].to_str().expect("link").to_owned();
    assert_eq!(link, "</v2/paged/app/tags/list?n=2&last=b>; rel=\"next\"");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["a", "b"]));

    let r = s.get("/v2/paged/app/tags/list?n=2&last=b").await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["c", "d"]));
    let r = s.get("/v2/paged/app/tags/list?n=2&last=d").await;
    assert!(r.headers().get("Link").is_none());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["e"]));
    let r = s.get("/v2/paged/app/tags/list?n=0").await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!([]));
    let r = s.get("/v2/paged/app/tags/list?n=many").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn catalog_lists_repositories() {
    let s = Server::start().await;
    for name in ["b/two", "a", "c"] {
        s.push_image(name, "v1", name).await;
    }
    let r = s.get("/v2/_catalog").await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["repositories"], serde_json::json!(["a", "b/two", "c"]));
    let r = s.get("/v2/_catalog?n=1&last=a").await;
    assert!(
        r.headers()["Link"]
            .to_str()
            .expect("link")
            .contains("last=b/two")
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["repositories"], serde_json::json!(["b/two"]));
}

#[tokio::test]
async fn referrers_list_manifests_by_subject_and_artifact_type() {
    let s = Server::start().await;
    let (subject_bytes, subject) = s.push_image("app", "v1", "subject").await;
    let empty = s.push_blob("app", b"{}").await;
    let mut pushed = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sbom", "one"),
        ("application/vnd.example.signature", "two"),
    ] {
        let layer = s.push_blob("app", note.as_bytes()).await;
        let extra = format!(
            r#""artifactType":"{artifact_type}","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{}}},"annotations":{{"note":"{note}"}}"#,
            subject_bytes.len()
        );
        let manifest = manifest_json(
            OCI_MANIFEST,
            "application/vnd.oci.empty.v1+json",
            &empty,
            2,
            &[(layer, note.len())],
            Some(&extra),
        );
        let digest = digest_of(manifest.as_bytes());
        let r = s
            .put_manifest("app", &digest, OCI_MANIFEST, manifest.as_bytes())
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["OCI-Subject"], subject.as_str());
        pushed.push((digest, artifact_type));
    }

    let r = s.get(&format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Content-Type"], OCI_INDEX);
    assert!(r.headers().get("OCI-Filters-Applied").is_none());
    let index: serde_json::Value = r.json().await.expect("json");
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{index}");
    for m in manifests {
        let (_, artifact_type) = pushed
            .iter()
            .find(|(d, _)| m["digest"] == d.as_str())
            .expect("a pushed referrer");
        assert_eq!(m["artifactType"], *artifact_type);
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert!(m["annotations"]["note"].is_string());
    }

    let r = s
        .get(&format!(
            "/v2/app/referrers/{subject}?artifactType=application/vnd.example.signature"
        ))
        .await;
    assert_eq!(r.headers()["OCI-Filters-Applied"], "artifactType");
    let index: serde_json::Value = r.json().await.expect("json");
    assert_eq!(index["manifests"].as_array().expect("manifests").len(), 1);
    assert_eq!(index["manifests"][0]["digest"], pushed[1].0.as_str());

    // No referrers: an empty index, not an error.
    let nobody = format!("sha256:{}", "5".repeat(64));
    let r = s.get(&format!("/v2/app/referrers/{nobody}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let index: serde_json::Value = r.json().await.expect("json");
    assert_eq!(index["manifests"], serde_json::json!([]));
}
