//! Labs over the API on the fake host: who may use one, how many may run,
//! and when they stop.

use std::time::Duration;

use host::SandboxHost;
use serde_json::{Value, json};

use crate::harness::*;

const LESSON: &str = "01-what-is-a-container";

async fn lab_json(app: &App, token: &str, id: &str) -> Value {
    let (status, lab) = app
        .api(token, "GET", &format!("/api/labs/{id}"), None)
        .await;
    assert_eq!(status, 200, "{lab}");
    lab
}

#[tokio::test]
async fn labs_belong_to_their_owner() {
    let app = App::in_process(&[]).await;
    let ada = app.user_token("ada").await;
    let eve = app.user_token("eve").await;
    let id = app.start_lab(&ada, LESSON).await;
    let path = format!("/api/labs/{id}");

    assert_eq!(app.api(&eve, "GET", &path, None).await.0, 403);
    assert_eq!(app.api(&eve, "DELETE", &path, None).await.0, 403);
    assert_eq!(
        app.api(&ada, "GET", "/api/labs/lab-nope", None).await.0,
        404
    );
    assert_eq!(app.api("no-such-token", "GET", &path, None).await.0, 401);
    let (status, body) = app
        .api(
            &ada,
            "POST",
            "/api/labs",
            Some(json!({ "lesson": "../etc" })),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        app.api(&eve, "POST", &format!("{path}/tasks/run-hello/check"), None)
            .await
            .0,
        403,
        "someone else's Check"
    );
    assert_eq!(app.api(&ada, "DELETE", &path, None).await.0, 204);
    assert!(
        app.host.sandboxes().expect("list").is_empty(),
        "the node is gone"
    );
}

/// A terminal opens for its lab's owner from our own origin only, under a
/// valid name.
#[tokio::test]
async fn terminals_open_for_the_owner_from_our_origin_only() {
    let app = App::start(&[]).await;
    let ada = app.user_token("ada").await;
    let eve = app.user_token("eve").await;
    let id = app.start_lab(&ada, LESSON).await;
    let refused = |result: Result<Socket, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => 101,
    };
    assert_eq!(
        refused(connect(&app, &eve, &id, "node1", None).await),
        403,
        "someone else's terminal"
    );
    assert_eq!(
        refused(connect(&app, &ada, &id, "node1", Some("http://evil.example")).await),
        403,
        "a foreign Origin"
    );
    assert_eq!(
        refused(connect(&app, &ada, &id, "Bad%2FName", None).await),
        400,
        "a bad name"
    );
    let mut own = connect(&app, &ada, &id, "node1", Some(app.url()))
        .await
        .expect("the owner from our own origin gets the terminal");
    type_line(&mut own, "echo from-the-fake-node").await;
    read_until(&mut own, "from-the-fake-node\r\nfrom-the-fake-node").await;
}

/// The lab API's first name answers like the new one.
#[tokio::test]
async fn the_lab_api_answers_under_its_first_name_too() {
    let app = App::in_process(&[]).await;
    let ada = app.user_token("ada").await;
    let (status, lab) = app
        .api(
            &ada,
            "POST",
            "/api/sessions",
            Some(json!({ "lesson": LESSON })),
        )
        .await;
    assert_eq!(status, 201, "{lab}");
    let id = lab["id"].as_str().expect("id");
    app.wait_ready(&ada, id).await;
    let (status, same) = app
        .api(&ada, "GET", &format!("/api/sessions/{id}"), None)
        .await;
    assert_eq!((status, &same["id"]), (200, &lab["id"]));
    assert_eq!(lab_json(&app, &ada, id).await["lesson"], LESSON);
    let (status, ports) = app
        .api(&ada, "GET", &format!("/api/sessions/{id}/ports"), None)
        .await;
    assert_eq!(status, 200, "{ports}");
    assert_eq!(
        app.api(&ada, "DELETE", &format!("/api/sessions/{id}"), None)
            .await
            .0,
        204
    );
}

#[tokio::test]
async fn lab_slots_are_limited_per_user_and_per_server() {
    let app = App::in_process(&["--max-labs", "1", "--max-labs-per-user", "1"]).await;
    let ada = app.user_token("ada").await;
    let eve = app.user_token("eve").await;
    app.start_lab(&ada, LESSON).await;
    let (status, body) = app
        .api(
            &ada,
            "POST",
            "/api/labs",
            Some(json!({ "lesson": "02-images-vs-containers" })),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("you already have 1 labs running")),
        "{body}"
    );
    let (status, body) = app
        .api(&eve, "POST", "/api/labs", Some(json!({ "lesson": LESSON })))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "all 1 lab slots are busy, try again in a minute"
    );
}

/// Admission counts the memory limits of the running labs: with room for
/// one and a half nodes of 512 MiB, a second lab waits until the first is
/// stopped.
#[tokio::test]
async fn lab_memory_admission_counts_the_running_labs() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    let total = total_kib << 10;
    // What --lab-memory-overcommit multiplies: the host less 1 GiB (or a quarter).
    let usable = total - (1u64 << 30).min(total / 4);
    let ratio = format!("{:.12}", (768u64 << 20) as f64 / usable as f64);
    let app = App::in_process(&["--lab-memory-overcommit", &ratio]).await;
    let ada = app.user_token("ada").await;
    let eve = app.user_token("eve").await;
    let first = app.start_lab(&ada, LESSON).await;
    let (status, body) = app
        .api(&eve, "POST", "/api/labs", Some(json!({ "lesson": LESSON })))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().is_some_and(
            |e| e.starts_with("lab slots are full: running labs hold 512 MiB of the 76")
        ),
        "{body}"
    );
    assert_eq!(
        app.api(&ada, "DELETE", &format!("/api/labs/{first}"), None)
            .await
            .0,
        204
    );
    app.start_lab(&eve, LESSON).await;
}

/// Terminal input keeps a lab alive past its idle timeout; then it stops
/// and says why. Time passes on the test's clock, not in real sleeps.
#[tokio::test]
async fn idle_labs_are_stopped_and_typing_keeps_them_alive() {
    let clock = TestClock::default();
    let app = App::on_clock(&["--lab-idle-timeout", "6s"], &clock).await;
    let token = app.user_token("idle").await;
    let id = app.start_lab(&token, LESSON).await;
    let lab = lab_json(&app, &token, &id).await;
    assert_eq!(lab["expires_because"], "idle", "{lab}");

    // Keystrokes 2 s apart (activity is recorded at most every 1.5 s here).
    for _ in 0..6 {
        app.state.labs.note_activity(&id);
        settle(&app, &id).await;
        clock.advance(Duration::from_secs(2));
        app.state.labs.reap().await.expect("reap");
    }
    assert_eq!(
        lab_json(&app, &token, &id).await["state"],
        "ready",
        "typing for 12 s of a 6 s timeout"
    );

    clock.advance(Duration::from_secs(7));
    app.state.labs.reap().await.expect("reap");
    let lab = lab_json(&app, &token, &id).await;
    assert_eq!(lab["state"], "stopped", "{lab}");
    assert_eq!(lab["end_reason"], "stopped after 6 s without activity");
    assert!(
        app.host.sandboxes().expect("list").is_empty(),
        "the node is gone"
    );
}

/// A lab at its lifetime stops however busy its student is.
#[tokio::test]
async fn a_lab_stops_at_its_lifetime_whatever_the_activity() {
    let clock = TestClock::default();
    let app = App::on_clock(
        &["--lab-idle-timeout", "1h", "--lab-max-lifetime", "2h"],
        &clock,
    )
    .await;
    let token = app.user_token("busy").await;
    let id = app.start_lab(&token, LESSON).await;
    for _ in 0..4 {
        clock.advance(Duration::from_secs(1800));
        app.state.labs.note_activity(&id);
        settle(&app, &id).await;
        app.state.labs.reap().await.expect("reap");
    }
    clock.advance(Duration::from_secs(1));
    app.state.labs.reap().await.expect("reap");
    let lab = lab_json(&app, &token, &id).await;
    assert_eq!(lab["state"], "stopped", "{lab}");
    assert_eq!(lab["end_reason"], "stopped at its time limit of 2 h");
}

/// Waits until the activity just noted reached the host (it is recorded on
/// a blocking thread): until the node's stamp is the clock's now.
async fn settle(app: &App, id: &str) {
    let wall = std::time::Instant::now();
    let now = (app.state.labs.clock())();
    while app.host.sandbox(id).expect("the lab's node").last_activity != Some(now) {
        assert!(
            wall.elapsed() < Duration::from_secs(10),
            "activity never reached the host"
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}
