use std::path::Path;

use crate::harness::*;

const FIRST: &str = "01-what-is-a-container";

#[test]
fn invalid_course_is_rejected_with_file_and_line() {
    let course = temp_dir();
    write_file(
        course.path(),
        "01-good/lesson.md",
        "---\ntitle: Good\n---\nHello\n",
    );
    write_file(
        course.path(),
        "02-bad/lesson.md",
        "---\ntitle: Bad\ntitel: typo\n---\nSee ![x](assets/missing.png)\n",
    );
    write_file(
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
    write_file(
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
    write_file(
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
