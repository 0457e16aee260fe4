use std::path::Path;

use reqwest::StatusCode;

use crate::harness::*;

const FIRST: &str = "01-what-is-a-container";
const SECOND: &str = "02-images-vs-containers";

#[tokio::test]
async fn course_page_lists_lessons_and_shows_progress() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    let anonymous = get_page(&client, &server.at("/")).await;
    assert!(
        anonymous.contains(&format!("/lessons/{FIRST}"))
            && anonymous.contains(&format!("/lessons/{SECOND}"))
    );
    assert!(
        !anonymous.contains("not started"),
        "no progress for visitors"
    );

    signup(&client, &server, "ivy", "ivy's password").await;
    let lessons = std::fs::read_dir(bundled_lessons())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("lesson.md").is_file())
        .count();
    let before = get_page(&client, &server.at("/")).await;
    assert_eq!(before.matches("not started").count(), lessons, "{before}");
    get_page(&client, &server.at(&format!("/lessons/{FIRST}"))).await;
    let after = get_page(&client, &server.at("/")).await;
    assert_eq!(after.matches("not started").count(), lessons - 1);
    assert!(after.contains("progress started"));
}

#[tokio::test]
async fn lesson_page_renders_markdown_run_buttons_and_the_lab_pane() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let page = get_page(&browser(), &server.at(&format!("/lessons/{SECOND}"))).await;
    assert!(page.contains("<table>"), "GFM tables render");
    assert!(
        page.contains("class=\"run-button\"") && page.contains("data-command=\"docker"),
        "run buttons carry their command"
    );
    assert!(
        page.contains("id=\"lab\"") && page.contains("Log in</a> to start a lab"),
        "lab pane present"
    );
    assert!(
        page.contains(&format!("/lessons/{SECOND}/assets/")),
        "asset links are rewritten"
    );
    assert!(
        page.contains(&format!("href=\"/lessons/{FIRST}\"")),
        "lesson links are rewritten"
    );

    let missing = browser()
        .get(server.at("/lessons/no-such-lesson"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("pick one from the course page")
    );
}

#[tokio::test]
async fn lesson_assets_are_served_and_traversal_is_refused() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let page = get_page(&client, &server.at(&format!("/lessons/{SECOND}"))).await;
    let marker = format!("/lessons/{SECOND}/assets/");
    let start = page.find(&marker).unwrap();
    let end = start + page[start..].find('"').unwrap();
    let asset = client
        .get(server.at(&page[start..end]))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/")
    );
    assert!(
        asset.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    for path in [
        "../lesson.md",
        "..%2Flesson.md",
        "../solution.sh",
        "..%2Fsolution.sh",
        "solution.sh",
        "%2e%2e/%2e%2e/Cargo.toml",
        "/etc/passwd",
        ".hidden",
    ] {
        let response = client
            .get(server.at(&format!("{marker}{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // A lesson's solution lives beside lesson.md, outside assets/.
    for url in [
        format!("/lessons/{SECOND}/solution.sh"),
        format!("/lessons/{SECOND}/assets/../solution.sh"),
    ] {
        let response = client.get(server.at(&url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
    }
}

#[tokio::test]
async fn api_lists_lessons_with_tasks() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let lessons: serde_json::Value = reqwest::get(server.at("/api/lessons"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = lessons.as_array().unwrap();
    assert_eq!(list[0]["slug"], FIRST);
    assert_eq!(list[1]["slug"], SECOND);
    for lesson in list {
        assert!(lesson["title"].as_str().is_some_and(|t| !t.is_empty()));
        let tasks = lesson["tasks"].as_array().unwrap();
        assert!(!tasks.is_empty(), "bundled lessons have tasks");
        assert!(
            tasks
                .iter()
                .all(|t| t["id"].is_string() && t["points"].is_number())
        );
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn invalid_course_is_rejected_with_file_and_line() {
    let course = temp_dir();
    write(
        course.path(),
        "01-good/lesson.md",
        "---\ntitle: Good\n---\nHello\n",
    );
    write(
        course.path(),
        "02-bad/lesson.md",
        "---\ntitle: Bad\ntitel: typo\n---\nSee ![x](assets/missing.png)\n",
    );
    write(
        course.path(),
        "03-worse/lesson.md",
        "no front matter here\n",
    );
    let data = temp_dir();

    let check = cli(&["lessons", "check", course.path().to_str().unwrap()], "");
    assert!(!check.status.success());
    let report = text(&check.stderr);
    assert!(
        report.contains("02-bad/lesson.md:3:"),
        "unknown key on its line: {report}"
    );
    assert!(report.contains("titel"));
    assert!(
        report.contains("02-bad/lesson.md:") && report.contains("missing.png"),
        "missing asset: {report}"
    );
    assert!(
        report.contains("03-worse/lesson.md:1:"),
        "no front matter: {report}"
    );

    let serve = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lessons",
            course.path().to_str().unwrap(),
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        !serve.status.success(),
        "the server refuses an invalid course"
    );
    let log = text(&serve.stderr);
    assert!(
        log.contains("02-bad/lesson.md:3:") && log.contains("03-worse/lesson.md:1:"),
        "{log}"
    );
}

#[test]
fn bundled_course_passes_the_check() {
    let check = cli(
        &["lessons", "check", bundled_lessons().to_str().unwrap()],
        "",
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[tokio::test]
async fn lesson_html_is_sanitized() {
    let course = temp_dir();
    write(
        course.path(),
        "01-hostile/lesson.md",
        "---\ntitle: Hostile\n---\n<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))\n\n<a href=\"javascript:alert(4)\">raw</a>\n<iframe src=\"https://evil.example\"></iframe>\n",
    );
    let data = temp_dir();
    let server = Server::start(data.path(), &["--lessons", course.path().to_str().unwrap()]);
    let page = get_page(&browser(), &server.at("/lessons/01-hostile")).await;
    let body = &page[page.find("class=\"markdown\"").unwrap()..];
    for bad in ["<script>alert", "onerror", "href=\"javascript:", "<iframe"] {
        assert!(!body.contains(bad), "{bad} survived sanitizing: {body}");
    }
}
