//! Grading rules on the fake host: what a check sees, what is recorded,
//! how concurrent and continuous checks are held back. The node's answers
//! come from the fake's built-ins and from the test (`FakeHost::on_exec`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const COURSE: &str = r#"---
title: Graded on a fake node
tasks:
  - id: made
    title: Make /root/made
    points: 10
    hints:
      - text: Use touch.
        cost: 3
    checks:
      - command: {run: "test -f /root/made"}
        fail: /root/made is not there yet
  - id: hang
    title: A check that waits for the test
    points: 1
    checks:
      - command: {run: "hang"}
  - id: counted
    title: A check that counts its runs
    points: 1
    checks:
      - command: {run: "count; exit 1"}
---

Graded in memory.
"#;

/// A server on the course above with a ready lab of `ada`'s: the app,
/// her token and the lab's id.
async fn graded_lab() -> (App, String, String, tempfile::TempDir) {
    let course = temp_dir();
    write_file(course.path(), "01-graded/lesson.md", COURSE);
    let app = App::start(&["--lessons", course.path().to_str().unwrap()]).await;
    let ada = app.user_token("ada").await;
    let id = app.start_lab(&ada, "01-graded").await;
    (app, ada, id, course)
}

async fn check(app: &App, token: &str, lab: &str, task: &str) -> (u16, Value) {
    app.api(
        token,
        "POST",
        &format!("/api/labs/{lab}/tasks/{task}/check"),
        None,
    )
    .await
}

#[tokio::test]
async fn a_task_passes_once_the_node_has_it_and_hints_cost_points() {
    let (app, ada, lab, _course) = graded_lab().await;
    let (status, before) = check(&app, &ada, &lab, "made").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["passed"], false, "{before}");
    assert_eq!(
        before["checks"][0]["message"],
        "/root/made is not there yet"
    );

    let (status, hint) = app
        .api(
            &ada,
            "POST",
            "/api/lessons/01-graded/tasks/made/hints",
            None,
        )
        .await;
    assert_eq!(
        (status, &hint["text"]),
        (200, &json!("Use touch.")),
        "{hint}"
    );
    app.host
        .write_file(&lab, "/root/made", b"")
        .expect("the student's work");
    let (status, after) = check(&app, &ada, &lab, "made").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        (&after["passed"], &after["points"]),
        (&json!(true), &json!(10)),
        "{after}"
    );
    let ran: Vec<Vec<String>> = app.host.execs().into_iter().map(|(_, argv)| argv).collect();
    assert!(
        ran.iter()
            .filter(|argv| argv.last().is_some_and(|a| a == "test -f /root/made"))
            .count()
            == 2,
        "each check ran the task's command in the node: {ran:?}"
    );

    let (status, progress) = app
        .api(&ada, "GET", "/api/lessons/01-graded/progress", None)
        .await;
    assert_eq!(status, 200, "{progress}");
    assert_eq!(
        progress["score"], 7,
        "10 points less the hint's 3: {progress}"
    );
    let iris = app.account("iris", layerlab::db::Role::Instructor).await;
    let (status, history) = app
        .api(&iris, "GET", "/api/lessons/01-graded/grades/ada", None)
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["attempts"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
    let (status, _) = app
        .api(&ada, "GET", "/api/lessons/01-graded/grades/ada", None)
        .await;
    assert_eq!(status, 403, "a student reads no gradebook");
}

/// A gate the `hang` check waits at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

#[tokio::test]
async fn a_check_asked_for_again_while_it_runs_is_refused_and_recorded_once() {
    let (app, ada, lab, _course) = graded_lab().await;
    let gate = Arc::new(Gate::default());
    let entered = Arc::new(AtomicUsize::new(0));
    app.host.on_exec({
        let (gate, entered) = (gate.clone(), entered.clone());
        move |_, argv| {
            if argv.last().is_some_and(|a| a == "hang") {
                entered.fetch_add(1, Ordering::SeqCst);
                let open = gate.open.lock().expect("gate");
                drop(gate.opened.wait_while(open, |open| !*open).expect("gate"));
            }
            None
        }
    });
    let app = Arc::new(app);
    let first = tokio::spawn({
        let (app, ada, lab) = (app.clone(), ada.clone(), lab.clone());
        async move { check(&app, &ada, &lab, "hang").await }
    });
    let wall = std::time::Instant::now();
    while entered.load(Ordering::SeqCst) == 0 {
        assert!(
            wall.elapsed() < Duration::from_secs(10),
            "the check never ran"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for _ in 0..3 {
        let (status, body) = check(&app, &ada, &lab, "hang").await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            body["error"],
            "task \"hang\" is being checked already; wait for that check's result"
        );
    }
    *gate.open.lock().expect("gate") = true;
    gate.opened.notify_all();
    let (status, body) = first.await.expect("join");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        entered.load(Ordering::SeqCst),
        1,
        "the refused checks ran nothing"
    );

    let iris = app.account("iris", layerlab::db::Role::Instructor).await;
    let (_, history) = app
        .api(&iris, "GET", "/api/lessons/01-graded/grades/ada", None)
        .await;
    assert_eq!(
        history["attempts"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    // Once it has answered, the task can be checked again.
    assert_eq!(check(&app, &ada, &lab, "hang").await.0, 200);
}

/// A client polling continuous mode as fast as it can gets no more check
/// runs than the page's own polling would.
#[tokio::test]
async fn continuous_checks_are_throttled_per_lab() {
    let (app, ada, lab, _course) = graded_lab().await;
    let runs = Arc::new(AtomicUsize::new(0));
    app.host.on_exec({
        let runs = runs.clone();
        move |_, argv| {
            if argv.last().is_some_and(|a| a.starts_with("count")) {
                runs.fetch_add(1, Ordering::SeqCst);
            }
            None
        }
    });
    // Continuous checks run only while the student types.
    app.state.labs.note_activity(&lab);
    let started = std::time::Instant::now();
    let mut asked = 0;
    while started.elapsed() < Duration::from_secs(4) && asked < 400 {
        let (status, body) = app
            .api(&ada, "POST", "/lessons/01-graded/tasks/auto", None)
            .await;
        assert_eq!(status, 204, "{body}");
        asked += 1;
    }
    // A check asked for runs on a thread of its own: let the first finish.
    let wall = std::time::Instant::now();
    while runs.load(Ordering::SeqCst) == 0 && wall.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let runs = runs.load(Ordering::SeqCst);
    assert!(asked > 10, "only {asked} polls in 4 s");
    assert!(
        (1..=5).contains(&runs),
        "{runs} check runs from {asked} polls in 4 s"
    );
}
