//! Grading on real labs: checks before and after the student's work in the
//! terminal, hints and scores, attempts across a restart, the gradebook as
//! JSON, CSV and pages, who may read what, continuous mode, timeouts, and
//! HTTP checks that reach the node's network and not the host's.

use std::net::TcpListener;

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::*;
use crate::labs::{
    LabGuard, Socket, connect, create_token, lab_server, lab_server_with, read_until,
    start_lesson_lab, type_line, user_token,
};
use crate::sandbox::catalog;

const LESSON: &str = "01-what-is-a-container";

async fn check(server: &Server, token: &str, lab: &str, task: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at(&format!("/api/labs/{lab}/tasks/{task}/check")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn check_json(server: &Server, token: &str, lab: &str, task: &str) -> Value {
    let response = check(server, token, lab, task).await;
    assert_eq!(response.status(), 200, "check {task}");
    response.json().await.unwrap()
}

async fn get(server: &Server, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn post(server: &Server, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Runs `line` in the lab's shell and waits for it to finish.
async fn shell(term: &mut Socket, line: &str) {
    type_line(term, &format!("{line}; echo done-$((40+2))")).await;
    read_until(term, "done-42").await;
}

async fn lab_with_terminal(
    server: &Server,
    token: &str,
    lesson: &str,
) -> (String, LabGuard, Socket) {
    let (id, guard) = start_lesson_lab(server, token, lesson).await;
    let term = connect(server, token, &id, "node1", None).await.unwrap();
    (id, guard, term)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_passes_after_work_in_the_terminal_and_hints_cost_points() {
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server(&data);
    let (lab, _guard, mut term) = lab_with_terminal(&server, &token, LESSON).await;

    let before = check_json(&server, &token, &lab, "save-hostname").await;
    assert_eq!(before["passed"], false, "{before}");
    assert_eq!(before["points"], 0);
    assert_eq!(
        before["checks"][0]["message"],
        "/root/hostname.txt does not hold the line node1 yet"
    );
    assert_eq!(before["checks"][0]["passed"], false);

    shell(&mut term, "hostname > /root/hostname.txt").await;
    let after = check_json(&server, &token, &lab, "save-hostname").await;
    assert_eq!(after["passed"], true, "{after}");
    assert_eq!(after["points"], 10);

    // The command task of the lesson, the same way.
    let user = check_json(&server, &token, &lab, "add-user").await;
    assert_eq!(user["passed"], false);
    shell(&mut term, "useradd student").await;
    assert_eq!(
        check_json(&server, &token, &lab, "add-user").await["passed"],
        true
    );

    // Two hints of an unfinished task: 2 and 5 points off the 20 earned.
    let hint = |n: u32| {
        let (server, token) = (&server, &token);
        async move {
            let response = post(
                server,
                token,
                &format!("/api/lessons/{LESSON}/tasks/save-kernel/hints"),
            )
            .await;
            assert_eq!(response.status(), 200, "hint {n}");
            response.json::<Value>().await.unwrap()
        }
    };
    let first = hint(1).await;
    assert_eq!(first["cost"], 2);
    assert_eq!(first["score"], 18);
    assert!(first["text"].as_str().unwrap().contains("uname -r"));
    assert_eq!(hint(2).await["score"], 13);
    let none_left = post(
        &server,
        &token,
        &format!("/api/lessons/{LESSON}/tasks/save-kernel/hints"),
    )
    .await;
    assert_eq!(none_left.status(), 409);

    let progress: Value = get(&server, &token, &format!("/api/lessons/{LESSON}/progress"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(progress["score"], 13, "{progress}");
    assert_eq!(progress["hint_cost"], 7);

    // A passed task stays passed when its work is undone.
    shell(&mut term, "rm /root/hostname.txt").await;
    let undone = check_json(&server, &token, &lab, "save-hostname").await;
    assert_eq!(undone["passed"], true, "{undone}");
    assert_eq!(undone["checks"][0]["passed"], false);

    // Manual checks are rate-limited with a clear message.
    let mut limited = None;
    for _ in 0..12 {
        let response = check(&server, &token, &lab, "save-kernel").await;
        if response.status() == 429 {
            limited = Some(response.json::<Value>().await.unwrap());
            break;
        }
    }
    let limited = limited.expect("12 quick checks are rate-limited");
    assert!(
        limited["error"]
            .as_str()
            .unwrap()
            .starts_with("too many checks; wait"),
        "{limited}"
    );

    // The lesson page shows the task list with its buttons and polling.
    let page = reqwest::Client::new()
        .get(server.at(&format!("/lessons/{LESSON}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"task-save-hostname\""), "{page}");
    assert!(page.contains(&format!(
        "hx-post=\"/lessons/{LESSON}/tasks/save-kernel/check\""
    )));
    assert!(
        !page.contains(&format!(
            "hx-post=\"/lessons/{LESSON}/tasks/save-hostname/check\""
        )),
        "a passed task has nothing left to check"
    );
    assert!(page.contains("hx-trigger=\"every 2s\""));
    assert!(
        page.contains("class=\"hint-text\">Run <code>uname -r &#62; /root/kernel.txt</code>"),
        "revealed hints are shown: {page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grades_survive_a_restart_match_as_csv_and_stay_private() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    let bob = user_token(&data, "bob");
    add_user(data.path(), "iris", "instructor", "correct horse battery");
    let iris = create_token(&data, "iris");
    let server = lab_server(&data);
    let (lab, guard, mut term) = lab_with_terminal(&server, &ada, LESSON).await;
    check_json(&server, &ada, &lab, "save-hostname").await;
    shell(&mut term, "hostname > /root/hostname.txt").await;
    check_json(&server, &ada, &lab, "save-hostname").await;
    let hint = post(
        &server,
        &bob,
        &format!("/api/lessons/{LESSON}/tasks/add-user/hints"),
    )
    .await;
    assert_eq!(hint.status(), 200);
    drop(term);
    drop(guard);

    let server = server.restart(
        data.path(),
        &["--store-dir", &format!("{}/store", catalog())],
    );

    let book: Value = get(&server, &iris, &format!("/api/lessons/{LESSON}/grades"))
        .await
        .json()
        .await
        .unwrap();
    let students = book["students"].as_array().unwrap();
    assert_eq!(students.len(), 2, "{book}");
    let ada_row = &students[0];
    assert_eq!(ada_row["name"], "ada");
    assert_eq!(ada_row["score"], 10);
    let hostname = ada_row["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "save-hostname")
        .unwrap();
    assert_eq!(hostname["passed"], true);
    assert_eq!(
        hostname["attempts"], 2,
        "both attempts survived the restart"
    );
    assert_eq!(students[1]["name"], "bob");
    assert_eq!(students[1]["hint_cost"], 2);
    assert_eq!(students[1]["score"], 0, "a score never drops below zero");

    // The CSV says the same as the JSON, cell for cell.
    let csv_response = get(
        &server,
        &iris,
        &format!("/api/lessons/{LESSON}/grades?format=csv"),
    )
    .await;
    assert_eq!(csv_response.status(), 200);
    assert!(
        csv_response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv_response.text().await.unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let tasks: Vec<&str> = book["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut header = vec!["student".to_owned(), "score".into(), "max_points".into()];
    for task in &tasks {
        header.extend([
            format!("{task} passed"),
            format!("{task} points"),
            format!("{task} attempts"),
        ]);
    }
    header.extend(["hint_cost".into(), "last_activity".into(), "checked".into()]);
    assert_eq!(
        rows[0],
        header.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(rows.len(), 1 + students.len());
    for (row, student) in rows[1..].iter().zip(students) {
        let mut want = vec![
            student["name"].as_str().unwrap().to_string(),
            student["score"].to_string(),
            book["max_points"].to_string(),
        ];
        for task in student["tasks"].as_array().unwrap() {
            want.push(if task["passed"] == true { "yes" } else { "no" }.into());
            want.push(task["points"].to_string());
            want.push(task["attempts"].to_string());
        }
        want.push(student["hint_cost"].to_string());
        let when =
            time::OffsetDateTime::from_unix_timestamp(student["last_activity"].as_i64().unwrap())
                .unwrap();
        want.push(format!(
            "{}T{:02}:{:02}:{:02}Z",
            when.date(),
            when.hour(),
            when.minute(),
            when.second()
        ));
        want.push(
            if student["checked"] == true {
                "yes"
            } else {
                "no"
            }
            .into(),
        );
        assert_eq!(row, &want.iter().map(String::as_str).collect::<Vec<_>>());
    }
    assert_eq!(rows[1][rows[1].len() - 1], "yes", "ada checked");
    assert_eq!(rows[2][rows[2].len() - 1], "no", "bob only revealed a hint");

    // Attempt history and the instructor's pages.
    let history: Value = get(&server, &iris, &format!("/api/lessons/{LESSON}/grades/ada"))
        .await
        .json()
        .await
        .unwrap();
    let attempts = history["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{history}");
    assert_eq!(attempts[0]["passed"], true, "newest first");
    assert_eq!(
        attempts[1]["checks"][0]["message"],
        "/root/hostname.txt does not hold the line node1 yet"
    );
    let page = get(&server, &iris, &format!("/lessons/{LESSON}/grades")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("href=\"/lessons/01-what-is-a-container/grades/ada\""),
        "{page}"
    );
    let page = get(&server, &iris, &format!("/lessons/{LESSON}/grades/ada"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("does not hold the line node1 yet"), "{page}");
    assert!(
        page.contains("datetime=\""),
        "times carry their ISO form: {page}"
    );
    let bobs = get(&server, &iris, &format!("/lessons/{LESSON}/grades/bob"))
        .await
        .text()
        .await
        .unwrap();
    assert!(bobs.contains("hint 1 revealed (−2)"), "{bobs}");
    let book_page = get(&server, &iris, &format!("/lessons/{LESSON}/grades"))
        .await
        .text()
        .await
        .unwrap();
    let first_title = lesson_task_title(LESSON, 0)
        .replace('&', "&#38;")
        .replace('\'', "&#39;")
        .replace('"', "&#34;")
        .replace('<', "&#60;")
        .replace('>', "&#62;");
    assert!(
        book_page.contains(&format!(">{first_title}</th>")),
        "columns by task title: {book_page}"
    );

    // Students see only their own standing.
    for path in [
        format!("/api/lessons/{LESSON}/grades"),
        format!("/api/lessons/{LESSON}/grades?format=csv"),
        format!("/api/lessons/{LESSON}/grades/ada"),
        format!("/lessons/{LESSON}/grades"),
    ] {
        let response = get(&server, &bob, &path).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    let own: Value = get(&server, &bob, &format!("/api/lessons/{LESSON}/progress"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["hint_cost"], 2);
    assert_eq!(own["tasks"][0]["passed"], false, "ada's pass is not bob's");
    // Nor can they check someone else's lab.
    let (ada_lab, _guard) = start_lesson_lab(&server, &ada, LESSON).await;
    let carol = user_token(&data, "carol");
    let (_, _carol_lab) = start_lesson_lab(&server, &carol, LESSON).await;
    let teach = get(&server, &iris, "/teach").await.text().await.unwrap();
    assert!(
        teach.contains("<th scope=\"row\">ada</th>")
            && teach.contains("<th scope=\"row\">carol</th>"),
        "labs running now: {teach}"
    );
    assert!(
        teach.contains(&format!("href=\"/lessons/{LESSON}/grades\"")),
        "{teach}"
    );
    assert_eq!(get(&server, &bob, "/teach").await.status(), 403);
    let book: Value = get(&server, &iris, &format!("/api/lessons/{LESSON}/grades"))
        .await
        .json()
        .await
        .unwrap();
    let carol_row = book["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "carol")
        .cloned();
    assert_eq!(
        carol_row.map(|r| r["checked"].clone()),
        Some(Value::Bool(false)),
        "a student who only started a lab is listed: {book}"
    );
    assert_eq!(
        check(&server, &bob, &ada_lab, "save-hostname")
            .await
            .status(),
        403
    );
}

/// A course with checks the bundled lessons do not have.
fn custom_course(host_port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lesson = dir.path().join("01-web");
    std::fs::create_dir(&lesson).unwrap();
    std::fs::write(
        lesson.join("lesson.md"),
        format!(
            r#"---
title: A web page
tasks:
  - id: web
    title: Serve hello on port 8080
    points: 10
    checks:
      - http: {{url: "http://localhost:8080/", body_contains: "hello from node1"}}
        fail: Nothing serves hello on port 8080 yet
  - id: host-port
    title: The host's own port
    points: 1
    checks:
      - http: {{url: "http://127.0.0.1:{host_port}/"}}
  - id: hang
    title: A check that never ends
    points: 1
    checks:
      - command: {{run: "sleep 60", timeout: 2}}
---

Serve a page.
"#
        ),
    )
    .unwrap();
    dir
}

/// A one-file web server in the perl of Debian's base system.
const SERVE: &str = "(setsid perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>q(127.0.0.1),LocalPort=>8080,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){while(<$c>){last if /^\\r?$/} print $c qq(HTTP/1.1 200 OK\\r\\nContent-Length: 17\\r\\nConnection: close\\r\\n\\r\\nhello from node1\\n); close $c}' >/dev/null 2>&1 &)";

#[tokio::test(flavor = "multi_thread")]
async fn continuous_checks_turn_tasks_green_and_http_reaches_only_the_node() {
    let outside = TcpListener::bind("127.0.0.1:0").unwrap();
    outside.set_nonblocking(true).unwrap();
    let course = custom_course(outside.local_addr().unwrap().port());
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server_with(&data, &["--lessons", course.path().to_str().unwrap()]);
    let (lab, _guard, mut term) = lab_with_terminal(&server, &token, "01-web").await;

    // Nothing passes yet: continuous mode has nothing to swap.
    let auto = post(&server, &token, "/lessons/01-web/tasks/auto").await;
    assert_eq!(auto.status(), 204);

    // A hanging check fails with a clear message, in time.
    let started = std::time::Instant::now();
    let hang = check_json(&server, &token, &lab, "hang").await;
    assert_eq!(hang["checks"][0]["message"], "timed out after 2 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // The host's 127.0.0.1 is not the node's.
    let host = check_json(&server, &token, &lab, "host-port").await;
    assert_eq!(host["passed"], false);
    assert!(
        host["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing answered"),
        "{host}"
    );
    assert!(
        outside
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
    );

    let web = check_json(&server, &token, &lab, "web").await;
    assert_eq!(
        web["checks"][0]["message"],
        "Nothing serves hello on port 8080 yet"
    );
    shell(&mut term, SERVE).await;
    shell(
        &mut term,
        "until (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; do sleep 0.1; done",
    )
    .await;

    // The next poll swaps the task in, green, out of band.
    let auto = post(&server, &token, "/lessons/01-web/tasks/auto").await;
    assert_eq!(auto.status(), 200);
    let html = auto.text().await.unwrap();
    assert!(html.contains("id=\"task-web\""), "{html}");
    assert!(html.contains("hx-swap-oob=\"true\""));
    assert!(html.contains("task passed"), "{html}");
    let progress: Value = get(&server, &token, "/api/lessons/01-web/progress")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(progress["score"], 10);
    let history: Value = {
        add_user(data.path(), "iris", "admin", "correct horse battery");
        let iris = create_token(&data, "iris");
        get(&server, &iris, "/api/lessons/01-web/grades/ada")
            .await
            .json()
            .await
            .unwrap()
    };
    let modes: Vec<&str> = history["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes.iter().filter(|m| **m == "auto").count(),
        1,
        "only the passing auto run is recorded: {modes:?}"
    );
}

/// Pushes `demo:v1` (one gzip layer, a config, an OCI manifest) to the
/// registry at 127.0.0.1:5000 with curl, the distribution API by hand:
/// POST an upload, PUT each blob with its digest, PUT the manifest.
const PUSH: &[&str] = &[
    "cd /tmp && mkdir -p img && echo hello > img/hello.txt && tar -czf layer.tgz -C img hello.txt",
    "L=$(sha256sum layer.tgz | cut -d' ' -f1); D=$(gunzip -c layer.tgz | sha256sum | cut -d' ' -f1)",
    r#"printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $D > config.json; C=$(sha256sum config.json | cut -d' ' -f1)"#,
    r#"up() { loc=$(curl -sS -o /dev/null -D - -X POST http://127.0.0.1:5000/v2/demo/blobs/uploads/ | tr -d '\r' | sed -n 's/^[Ll]ocation: //p'); case $loc in http*) ;; *) loc=http://127.0.0.1:5000$loc;; esac; case $loc in *\?*) loc="$loc&";; *) loc="$loc?";; esac; curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @$1 "${loc}digest=sha256:$2"; }"#,
    r#"up layer.tgz $L && up config.json $C && printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' $C $(stat -c %s config.json) $L $(stat -c %s layer.tgz) > manifest.json && curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @manifest.json http://127.0.0.1:5000/v2/demo/manifests/v1 && echo pushed-$((1+1))"#,
];

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_check_sees_an_image_pushed_to_a_registry_in_the_lab() {
    let course = tempfile::tempdir().unwrap();
    let lesson = course.path().join("01-push");
    std::fs::create_dir(&lesson).unwrap();
    std::fs::write(
        lesson.join("lesson.md"),
        r#"---
title: Push an image
tasks:
  - id: pushed
    title: Push demo:v1 to the registry on port 5000
    points: 10
    checks:
      - registry: {host: "localhost:5000", repository: demo, tag: v1}
---

Push it.
"#,
    )
    .unwrap();
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server_with(&data, &["--lessons", course.path().to_str().unwrap()]);
    let (lab, _guard, mut term) = lab_with_terminal(&server, &token, "01-push").await;

    let before = check_json(&server, &token, &lab, "pushed").await;
    assert_eq!(before["passed"], false);
    assert!(
        before["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing answered"),
        "{before}"
    );

    shell(
        &mut term,
        "(setsid layerlab registry serve --listen 127.0.0.1:5000 --root /tmp/registry >/tmp/registry.log 2>&1 &)",
    )
    .await;
    shell(
        &mut term,
        "until curl -sf -o /dev/null http://127.0.0.1:5000/v2/; do sleep 0.1; done",
    )
    .await;
    let empty = check_json(&server, &token, &lab, "pushed").await;
    assert_eq!(
        empty["checks"][0]["message"], "demo:v1 is not in the registry at localhost:5000",
        "{empty}"
    );

    for line in &PUSH[..PUSH.len() - 1] {
        shell(&mut term, line).await;
    }
    type_line(&mut term, PUSH[PUSH.len() - 1]).await;
    read_until(&mut term, "pushed-2").await;

    let after = check_json(&server, &token, &lab, "pushed").await;
    assert_eq!(after["passed"], true, "{after}");
    assert_eq!(
        after["checks"][0]["message"],
        "demo:v1 is in the registry at localhost:5000"
    );
}

/// The title of a bundled lesson's task, as its front matter gives it.
fn lesson_task_title(lesson: &str, index: usize) -> String {
    let course = course::Course::load(bundled_lessons()).unwrap();
    course.lesson(lesson).unwrap().tasks[index].title.clone()
}

/// An instructor follows a student's terminal read-only: the same output,
/// nothing typed reaches the lab, and the student's pane names the watcher
/// while the view is open.
#[tokio::test(flavor = "multi_thread")]
async fn an_instructor_watches_a_students_terminal_read_only() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    add_user(data.path(), "iris", "instructor", "correct horse battery");
    let iris = create_token(&data, "iris");
    let server = lab_server(&data);
    let (lab, _guard, mut term) = lab_with_terminal(&server, &ada, LESSON).await;
    shell(&mut term, "echo before-$((20+1))").await;

    let watch_url = |token: &str| {
        let url = server
            .at(&format!("/api/labs/{lab}/terminals/node1/watch"))
            .replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(watch_url(&ada)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403, "a student watches nobody")
        }
        other => panic!("a student opened a watch socket: {:?}", other.map(|_| ())),
    }
    let (mut watch, _) = tokio_tungstenite::connect_async(watch_url(&iris))
        .await
        .expect("the instructor's watch socket");
    read_until(&mut watch, "before-21").await;

    let status = get(&server, &ada, &format!("/lessons/{LESSON}/lab/status"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        status.contains("iris is watching your terminal"),
        "{status}"
    );

    type_line(&mut watch, "touch /root/typed-by-the-watcher").await;
    shell(&mut term, "echo after-$((20+2))").await;
    read_until(&mut watch, "after-22").await;
    shell(
        &mut term,
        "test -e /root/typed-by-the-watcher && echo leaked-$((1+1)) || echo sealed-$((1+1))",
    )
    .await;
    let seen = read_until(&mut watch, "sealed-2").await;
    assert!(!seen.contains("leaked-2"), "{seen}");

    drop(watch);
    let mut gone = String::new();
    for _ in 0..50 {
        gone = get(&server, &ada, &format!("/lessons/{LESSON}/lab/status"))
            .await
            .text()
            .await
            .unwrap();
        if !gone.contains("watching") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!gone.contains("watching"), "the watcher left: {gone}");
}
