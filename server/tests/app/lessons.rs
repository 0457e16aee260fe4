//! The course and lesson pages, lesson assets and the lessons API, in process.

use reqwest::StatusCode;

use crate::harness::*;

const FIRST: &str = "01-what-is-a-container";
const SECOND: &str = "02-images-vs-containers";

#[tokio::test]
async fn course_page_lists_lessons_and_shows_progress() {
    let server = App::start(&[]).await;
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
    let server = App::start(&[]).await;
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
    let server = App::start(&[]).await;
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
    let server = App::start(&[]).await;
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

#[tokio::test]
async fn lesson_html_is_sanitized() {
    let course = temp_dir();
    write_file(
        course.path(),
        "01-hostile/lesson.md",
        "---\ntitle: Hostile\n---\n<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))\n\n<a href=\"javascript:alert(4)\">raw</a>\n<iframe src=\"https://evil.example\"></iframe>\n",
    );
    let server = App::start(&["--lessons", course.path().to_str().unwrap()]).await;
    let page = get_page(&browser(), &server.at("/lessons/01-hostile")).await;
    let body = &page[page.find("class=\"markdown\"").unwrap()..];
    for bad in ["<script>alert", "onerror", "href=\"javascript:", "<iframe"] {
        assert!(!body.contains(bad), "{bad} survived sanitizing: {body}");
    }
}
