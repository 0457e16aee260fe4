//! What an operator watches: `/metrics` on its own address and behind a
//! token, `/healthz` and `/readyz`, and the admin's page of running labs
//! with its Stop button, on a real lab.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::labs::{
    connect, lab_server_with, post_lab, read_until, start_lesson_lab, type_line, user_token,
};
use crate::registry::hub_address;

const LESSON: &str = "01-what-is-a-container";
const TOKEN: &str = "metrics-token-0123456789abcdef";

/// The metrics URL the server logged (`metrics at URL`).
fn metrics_url(server: &Server) -> String {
    server
        .log()
        .lines()
        .find_map(|l| l.split("metrics at ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{}", server.log()))
        .to_owned()
}

/// Every sample of a scrape, `name{labels}` to value.
async fn scrape(url: &str) -> HashMap<String, f64> {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {samples:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_a_lab_and_an_admin_stops_it_from_the_labs_page() {
    let data = temp_dir();
    let token = user_token(&data, "ada");
    add_user(data.path(), "root", "admin", "root password here");
    let server = lab_server_with(
        &data,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--hub-listen",
            "127.0.0.1:0",
            "--max-labs-per-user",
            "1",
        ],
    );
    let metrics = metrics_url(&server);
    let hub = hub_address(&server).await;

    let before = scrape(&metrics).await;
    assert_eq!(sample(&before, r#"layerlab_labs{state="ready"}"#), 0.0);
    assert_eq!(
        sample(&before, "layerlab_lab_start_duration_seconds_count"),
        0.0
    );
    assert!(sample(&before, "layerlab_process_resident_memory_bytes") > 1e6);
    assert!(sample(&before, "layerlab_process_uptime_seconds") > 0.0);

    // Alive and ready: the database answers and the catalog has its node image.
    let health = reqwest::get(server.at("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = reqwest::get(server.at("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    // Without --metrics-token the main address has no /metrics.
    let hidden = reqwest::get(server.at("/metrics")).await.unwrap();
    assert_eq!(hidden.status(), 404);

    let (id, _guard) = start_lesson_lab(&server, &token, LESSON).await;
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "echo typed-$((6*7))").await;
    read_until(&mut term, "typed-42").await;
    let check = reqwest::Client::new()
        .post(server.at(&format!("/api/labs/{id}/tasks/save-hostname/check")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    // A second lab is one too many for this user: refused, and counted.
    let refused = post_lab(&server, &token, "02-images-vs-containers").await;
    assert_eq!(refused.status(), 429);
    let missing = reqwest::Client::new()
        .get(server.at("/api/labs/lab-nothing-here"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The hub counts what it sends, HEAD answers not.
    let manifest = |method| {
        reqwest::Client::new()
            .request(method, format!("http://{hub}/v2/busybox/manifests/latest"))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
    };
    let head = manifest(reqwest::Method::HEAD).await.unwrap();
    assert_eq!(head.status(), 200);
    let body = manifest(reqwest::Method::GET)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body.len() > 100);

    let during = scrape(&metrics).await;
    assert_eq!(
        sample(&during, "layerlab_hub_sent_bytes_total"),
        body.len() as f64
    );
    assert_eq!(sample(&during, r#"layerlab_labs{state="ready"}"#), 1.0);
    assert_eq!(sample(&during, r#"layerlab_labs{state="starting"}"#), 0.0);
    assert_eq!(
        sample(&during, "layerlab_lab_start_duration_seconds_count"),
        1.0
    );
    let took = sample(&during, "layerlab_lab_start_duration_seconds_sum");
    assert!(took > 0.0 && took < 120.0, "{took}");
    assert_eq!(
        sample(&during, r#"layerlab_checks_total{result="failed"}"#),
        1.0
    );
    assert_eq!(
        sample(&during, "layerlab_check_duration_seconds_count"),
        1.0
    );
    assert_eq!(sample(&during, "layerlab_attempts_total"), 1.0);
    assert_eq!(sample(&during, "layerlab_terminals"), 1.0);
    assert!(sample(&during, "layerlab_websocket_received_bytes_total") >= 20.0);
    assert!(sample(&during, "layerlab_websocket_sent_bytes_total") > 20.0);
    assert!(sample(&during, r#"layerlab_errors_total{kind="not_found"}"#) >= 1.0);
    assert_eq!(
        sample(
            &during,
            r#"layerlab_lab_start_failures_total{reason="user_full"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &during,
            r#"layerlab_lab_start_failures_total{reason="node"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &during,
            r#"layerlab_errors_total{kind="too_many_requests"}"#
        ),
        1.0
    );
    assert!(sample(&during, "layerlab_sandbox_memory_bytes") > 1e6);
    assert!(sample(&during, "layerlab_sandbox_pids") >= 2.0);
    // The store is measured in the background; the first walk ends soon.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sample(&scrape(&metrics).await, "layerlab_store_size_bytes") < 1e6 {
        assert!(Instant::now() < deadline, "the store was never measured");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A student may not see or use the admin's labs page.
    let student = browser();
    login(&student, &server, "ada", "correct horse battery").await;
    let refused = student.get(server.at("/admin/labs")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let token_of_student = csrf_of(&get_page(&student, &server.at("/")).await);
    let refused = student
        .post(server.at(&format!("/admin/labs/{id}/stop")))
        .form(&[("_csrf", token_of_student.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The admin sees the lab with its owner, lesson and memory, and stops it.
    let admin = browser();
    login(&admin, &server, "root", "root password here").await;
    let page = get_page(&admin, &server.at("/admin/labs")).await;
    assert!(page.contains("<th scope=\"row\">ada</th>"), "{page}");
    assert!(page.contains(LESSON), "{page}");
    assert!(page.contains(" MiB of 512 MiB"), "{page}");
    assert!(page.contains(&format!("/admin/labs/{id}/stop")), "{page}");
    assert!(
        page.contains("href=\"/admin/labs\""),
        "linked from the navigation"
    );
    // Without the form token the Stop is refused and the lab runs on.
    let forged = admin
        .post(server.at(&format!("/admin/labs/{id}/stop")))
        .form(&[("_csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let stop = submit(
        &admin,
        &server,
        "/admin/labs",
        &format!("/admin/labs/{id}/stop"),
        &[],
    )
    .await;
    assert_eq!(stop.status(), 303);
    assert_eq!(stop.headers()["location"], "/admin/labs");
    let lab: Value = json(
        reqwest::Client::new()
            .get(server.at(&format!("/api/labs/{id}")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(lab["state"], "stopped", "{lab}");
    assert_eq!(lab["end_reason"], "stopped by admin root", "{lab}");
    let page = get_page(&admin, &server.at("/admin/labs")).await;
    assert!(page.contains("No lab is running."), "{page}");
    // A lab that is not there is a clear 404.
    let gone = submit(
        &admin,
        &server,
        "/admin/labs",
        "/admin/labs/lab-nothing-here/stop",
        &[],
    )
    .await;
    assert_eq!(gone.status(), 404);

    let after = scrape(&metrics).await;
    assert_eq!(sample(&after, r#"layerlab_labs{state="ready"}"#), 0.0);
    assert_eq!(sample(&after, "layerlab_terminals"), 0.0);
    assert_eq!(sample(&after, "layerlab_sandbox_pids"), 0.0);
    assert!(sample(&after, r#"layerlab_errors_total{kind="forbidden"}"#) >= 3.0);
    // The metrics listener ends with the server.
    server.stop();
    assert!(
        reqwest::get(&metrics).await.is_err(),
        "metrics outlived the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_on_the_main_address_need_the_token_and_readyz_names_what_is_missing() {
    let data = temp_dir();
    // No catalog in this data directory, and the harness has the server
    // refuse to build one: it runs, no lab can start.
    let server = Server::start(data.path(), &["--metrics-token", TOKEN]);
    let client = reqwest::Client::new();
    let url = server.at("/metrics");

    let bare = client.get(&url).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Bearer realm=\"metrics\""
    );
    let body: Value = bare.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    for wrong in [
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Basic {TOKEN}"),
        "Bearer ".to_owned(),
        format!("bearer{TOKEN}"),
    ] {
        let refused = client
            .get(&url)
            .header("authorization", &wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{wrong}");
    }
    let scraped = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains("\nlayerlab_process_uptime_seconds "),
        "{text}"
    );
    assert!(
        text.contains("layerlab_errors_total{kind=\"unauthorized\"} 6"),
        "the refusals are counted: {text}"
    );

    let health = reqwest::get(server.at("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(server.at("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(
        reason.starts_with("not ready: the lab images could not be prepared")
            && reason.contains("workstation"),
        "{reason}"
    );
}

#[test]
fn a_guessable_metrics_token_is_refused_at_start() {
    let data = temp_dir();
    for token in ["short", "sixteen chars ok", "  padded-token-0123  "] {
        let out = cli(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.path().to_str().unwrap(),
                "--metrics-token",
                token,
            ],
            "",
        );
        assert!(!out.status.success(), "{token:?} was accepted");
        assert!(
            text(&out.stderr).contains("a metrics token needs at least 16 printable characters"),
            "{}",
            text(&out.stderr)
        );
    }
}
