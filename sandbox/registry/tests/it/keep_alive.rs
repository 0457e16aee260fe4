//! Answers sent before the request's body arrived (a chunk out of order, a
//! manifest declared too large) leave a keep-alive client a connection it
//! can use for its next request, or tell it `Connection: close`.

use axum::http::{Method, Request};
use bytes::Bytes;
use reqwest::StatusCode;
use testkit::http::answer_before_body;

use crate::harness::*;

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::from(body)).expect("request")
}

fn get(path: &str) -> Request<()> {
    Request::builder().uri(path).body(()).expect("request")
}

async fn upload_with_ten_bytes(s: &Server) -> String {
    let r = s.post("/v2/app/blobs/uploads/").await;
    let loc = r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_owned();
    let r = s
        .client
        .patch(s.at(&loc))
        .header("Content-Range", "0-9")
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn an_answer_before_the_body_leaves_the_connection_usable() {
    let s = Server::start_with(|c| registry::Config {
        max_manifest_size: 1000,
        ..c
    })
    .await;
    let loc = upload_with_ten_bytes(&s).await;
    let digest = digest_of(b"whatever");

    // A chunk out of order, by PATCH and by the final PUT.
    for (method, path) in [
        (Method::PATCH, loc.clone()),
        (Method::PUT, format!("{loc}?digest={digest}")),
    ] {
        let answer = answer_before_body(
            s.addr,
            request(
                method.clone(),
                &path,
                &[("Content-Range", "20-29")],
                vec![2u8; 10],
            ),
            get(&loc),
        )
        .await;
        assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE, "{method}");
        assert!(!answer.says_close(), "{method}: {answer:?}");
        assert_eq!(answer.next, Ok(StatusCode::NO_CONTENT), "{method}");
    }

    // A manifest declared larger than the limit.
    let answer = answer_before_body(
        s.addr,
        request(
            Method::PUT,
            "/v2/app/manifests/big",
            &[("Content-Type", OCI_MANIFEST)],
            vec![b' '; 2000],
        ),
        get("/v2/"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.next, Ok(StatusCode::OK), "{answer:?}");

    // A rest too large to read for nothing: the answer says so.
    let answer = answer_before_body(
        s.addr,
        request(
            Method::PATCH,
            &loc,
            &[("Content-Range", "20-2097171")],
            vec![3u8; 2 << 20],
        ),
        get(&loc),
    )
    .await;
    assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(answer.says_close(), "{answer:?}");

    // None of the refused bytes became part of the upload.
    let r = s.get(&loc).await;
    assert_eq!(r.headers()["Range"], "0-9");
}

/// The chunked workflow of the conformance suite, out-of-order chunks
/// included, many times over one client's pool of keep-alive connections.
#[tokio::test]
async fn a_keep_alive_client_recovers_from_refused_chunks_every_time() {
    let s = Server::start().await;
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let digest = digest_of(&bytes);
    for round in 0..30 {
        let r = s.post("/v2/app/blobs/uploads/").await;
        let mut loc = r.headers()["Location"]
            .to_str()
            .expect("location")
            .to_owned();
        for start in [0usize, 1000, 2000] {
            let end = start + 999;
            let ahead = (start + 1000) % 3000;
            let r = s
                .client
                .patch(s.at(&loc))
                .header("Content-Range", format!("{ahead}-{}", ahead + 999))
                .body(bytes[ahead..ahead + 1000].to_vec())
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}: out-of-order chunk: {e}"));
            assert_eq!(
                r.status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "round {round}"
            );
            let r = s
                .client
                .get(s.at(&loc))
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}: status after a refused chunk: {e}"));
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "round {round}");
            let r = s
                .client
                .patch(s.at(&loc))
                .header("Content-Range", format!("{start}-{end}"))
                .body(bytes[start..=end].to_vec())
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}: chunk: {e}"));
            assert_eq!(r.status(), StatusCode::ACCEPTED, "round {round}");
            loc = r.headers()["Location"]
                .to_str()
                .expect("location")
                .to_owned();
        }
        let r = s.put(&format!("{loc}?digest={digest}")).await;
        assert_eq!(r.status(), StatusCode::CREATED, "round {round}");
        let r = s.delete(&format!("/v2/app/blobs/{digest}")).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "round {round}");
    }
}
