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

/// Polls `path` until its page satisfies `done`, for up to ten seconds.
async fn page_until(server: &Server, path: &str, done: impl Fn(&str) -> bool) -> String {
    let client = browser();
    let mut page = String::new();
    for _ in 0..100 {
        page = get_page(&client, &server.at(path)).await;
        if done(&page) {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never changed as expected: {page}");
}

#[tokio::test]
async fn a_watched_course_reloads_and_shows_what_keeps_a_change_from_loading() {
    let course = temp_dir();
    write(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: First draft\n---\nHello\n",
    );
    let data = temp_dir();
    let lessons = course.path().to_str().unwrap();
    let server = Server::start(data.path(), &["--lessons", lessons, "--watch"]);
    let version = || async {
        let answer: serde_json::Value = browser()
            .get(server.at("/api/course/version"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["version"].as_u64().unwrap()
    };
    let first = get_page(&browser(), &server.at("/lessons/01-draft")).await;
    assert!(
        first.contains("First draft") && first.contains("id=\"course-watch\""),
        "{first}"
    );
    assert_eq!(version().await, 0);

    save(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Second draft\n---\nHello\n",
    );
    page_until(&server, "/lessons/01-draft", |p| p.contains("Second draft")).await;
    assert_eq!(version().await, 1);

    save(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Broken draft\ntitel: typo\n---\nHello\n",
    );
    let broken = page_until(&server, "/lessons/01-draft", |p| {
        p.contains("course-problems")
    })
    .await;
    assert!(
        broken.contains("Second draft"),
        "the last good course stays: {broken}"
    );
    assert!(
        broken.contains("01-draft/lesson.md:3: unknown key `titel`"),
        "{broken}"
    );
    assert!(
        get_page(&browser(), &server.at("/"))
            .await
            .contains("course-problems")
    );

    save(
        course.path(),
        "02-more/lesson.md",
        "---\ntitle: Another lesson\n---\nMore\n",
    );
    save(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Fixed draft\n---\nHello\n",
    );
    let fixed = page_until(&server, "/lessons/01-draft", |p| p.contains("Fixed draft")).await;
    assert!(!fixed.contains("course-problems"), "{fixed}");
    assert!(
        get_page(&browser(), &server.at("/lessons/02-more"))
            .await
            .contains("Another lesson")
    );
}

#[test]
fn check_watch_reports_each_change() {
    use std::io::{BufRead, BufReader};
    let course = temp_dir();
    write(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Draft\n---\nHello\n",
    );
    let mut child = std::process::Command::new(BIN)
        .args([
            "lessons",
            "check",
            "--watch",
            course.path().to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut read_until = |want: &str| {
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(want) {
                return seen;
            }
        }
        panic!("`lessons check --watch` ended before {want:?}: {seen}");
    };
    assert!(read_until("watching").contains("1 lessons, no problems"));
    save(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Draft\ntitel: typo\n---\nHello\n",
    );
    assert!(read_until("watching").contains("01-draft/lesson.md:3: unknown key `titel`"));
    save(
        course.path(),
        "01-draft/lesson.md",
        "---\ntitle: Draft\n---\nHello again\n",
    );
    assert!(read_until("watching").contains("no problems"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Replaces a file whole, as editors save: a watcher never sees it half
/// written (`write` truncates first, so a check could read it empty).
fn save(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = tempfile::NamedTempFile::new_in(root.parent().unwrap()).unwrap();
    std::io::Write::write_all(&mut file, content.as_bytes()).unwrap();
    file.persist(path).unwrap();
}

#[tokio::test]
async fn the_bundled_course_comes_from_the_binary_into_the_data_directory() {
    let data = temp_dir();
    let server = Server::start(data.path(), &[]);
    let page = get_page(&browser(), &server.at(&format!("/lessons/{FIRST}"))).await;
    assert!(page.contains("What is a container?"), "{page}");
    let written: Vec<_> = std::fs::read_dir(data.path().join("course"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(written.len(), 1, "one copy per content: {written:?}");
    assert!(written[0].join(FIRST).join("lesson.md").is_file());
    drop(server);

    let watch = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--watch", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!watch.status.success());
    assert!(
        text(&watch.stderr).contains(
            "--watch reloads a course you are writing: give its folder with --lessons DIR"
        )
    );
}
