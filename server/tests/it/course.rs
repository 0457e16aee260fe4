//! The bundled course on real labs, lesson by lesson: every task fails on
//! a fresh lab, the lesson's `solution.sh` typed into the node's terminal
//! as a student would type it passes every task, and the lesson's
//! progress then shows full points. Lessons are found in `lessons/`, so a
//! new lesson is covered as soon as it has a folder.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;
use crate::labs::{Socket, connect, lab_server, start_lesson_lab, user_token};
use crate::sandbox::catalog;

/// Labs running at once: enough to overlap one lesson's builds with
/// another's typing on two cores, few enough to keep each step quick.
const PARALLEL: usize = 3;
/// A whole lesson: lab start, checks before, the solution, checks after.
const LESSON_TIME: Duration = Duration::from_secs(420);
/// One command of a solution (an apt-get install in a build is the slowest).
const STEP_TIME: Duration = Duration::from_secs(180);

/// The bundled lessons' slugs, in course order.
fn lesson_slugs() -> Vec<String> {
    let mut slugs: Vec<String> = std::fs::read_dir(bundled_lessons())
        .expect("list the bundled lessons")
        .map(|entry| entry.expect("read a lessons entry").path())
        .filter(|path| path.join("lesson.md").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    slugs.sort();
    slugs
}

/// What a student types: one command per line, except that a here-document
/// runs from its opening line to its terminator and a line ending in `\`
/// continues on the next. Blank lines and comments are left out.
fn commands(script: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut command = line.to_string();
        while command.ends_with('\\') {
            match lines.next() {
                Some(next) => {
                    command.push('\n');
                    command.push_str(next);
                }
                None => break,
            }
        }
        if let Some(end) = heredoc_terminator(&command) {
            for body in lines.by_ref() {
                command.push('\n');
                command.push_str(body);
                if body == end {
                    break;
                }
            }
        }
        commands.push(command);
    }
    commands
}

/// The terminator of a here-document opened on `line` (`<<'END'`,
/// `<<END`, `<<-"END"`), not of a here-string (`<<<`).
fn heredoc_terminator(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        let after = &rest[at + 2..];
        if let Some(more) = after.strip_prefix('<') {
            rest = more;
            continue;
        }
        let word = after
            .trim_start_matches('-')
            .trim_start()
            .trim_start_matches(['\'', '"']);
        let end: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !end.is_empty() {
            return Some(end);
        }
        rest = after;
    }
    None
}

/// Types `command` and waits for the marker echoed after it; returns the
/// command's exit status, or the terminal's last output when the marker
/// never came.
async fn type_command(
    term: &mut Socket,
    step: usize,
    command: &str,
    transcript: &mut String,
) -> Result<i32, String> {
    let marker = format!(" step-{}-done", 1000 + step);
    // The typed line holds `$((1000+N))`, the output the number, so the
    // echo of the typing never matches.
    let typed = format!(
        "{}\recho \"rc=$? step-$((1000+{step}))-done\"\r",
        command.replace('\n', "\r")
    );
    term.send(Message::Binary(typed.into_bytes().into()))
        .await
        .map_err(|e| format!("typing failed: {e}"))?;
    let start = transcript.len();
    let deadline = Instant::now() + STEP_TIME;
    loop {
        if let Some(at) = transcript[start..].find(&marker) {
            let before = &transcript[..start + at];
            let rc = before
                .rsplit("rc=")
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(-1);
            return Ok(rc);
        }
        match tokio::time::timeout_at(deadline, term.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                transcript.push_str(&String::from_utf8_lossy(&bytes));
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => {
                return Err(format!(
                    "the terminal ended during step {step} ({other:?}); last output:\n{}",
                    tail(transcript, 3000)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "step {step} did not finish within {} s: {command}\nlast output:\n{}",
                    STEP_TIME.as_secs(),
                    tail(transcript, 3000)
                ));
            }
        }
    }
}

/// The last `max` bytes of `text`, without bash's bracketed-paste switches.
fn tail(text: &str, max: usize) -> String {
    let mut from = text.len().saturating_sub(max);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    text[from..]
        .replace("\u{1b}[?2004h", "")
        .replace("\u{1b}[?2004l", "")
}

/// `POST …/check`, waiting out the per-user rate limit and a check of the
/// same task still running.
async fn check(server: &Server, token: &str, lab: &str, task: &str) -> Result<Value, String> {
    let url = server.at(&format!("/api/labs/{lab}/tasks/{task}/check"));
    for _ in 0..60 {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("check {task}: {e}"))?;
        match response.status().as_u16() {
            200 => {
                return response
                    .json()
                    .await
                    .map_err(|e| format!("check {task}: {e}"));
            }
            409 | 429 => tokio::time::sleep(Duration::from_millis(700)).await,
            status => {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("check {task}: {status} {body}"));
            }
        }
    }
    Err(format!("check {task} was refused for a minute"))
}

/// The messages of the checks that did not pass, one per line.
fn failed_checks(result: &Value) -> String {
    result["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["passed"] != true)
                .map(|c| format!("    {}: {}", c["name"], c["message"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// One lesson from a fresh lab to full points, or what went wrong.
async fn run_lesson(
    server: Arc<Server>,
    token: String,
    slug: String,
    tasks: Vec<(String, u64)>,
) -> Result<(), String> {
    let script = std::fs::read_to_string(bundled_lessons().join(&slug).join("solution.sh"))
        .map_err(|e| format!("no solution.sh: {e}"))?;
    let (lab, _guard) = start_lesson_lab(&server, &token, &slug).await;

    let mut passed_early = Vec::new();
    for (task, _) in &tasks {
        if check(&server, &token, &lab, task).await?["passed"] == true {
            passed_early.push(task.clone());
        }
    }
    let mut failures = Vec::new();
    if !passed_early.is_empty() {
        failures.push(format!(
            "  passed on a fresh lab, before any work: {}",
            passed_early.join(", ")
        ));
    }

    let mut term = connect(&server, &token, &lab, "node1", None)
        .await
        .map_err(|e| format!("terminal: {e}"))?;
    let mut transcript = String::new();
    let mut failed_steps = Vec::new();
    for (step, command) in commands(&script).iter().enumerate() {
        let rc = type_command(&mut term, step, command, &mut transcript).await?;
        if rc != 0 {
            failed_steps.push(format!("    exit {rc}: {command}"));
        }
    }

    for (task, points) in &tasks {
        let result = check(&server, &token, &lab, task).await?;
        if result["passed"] != true || result["points"].as_u64() != Some(*points) {
            failures.push(format!(
                "  {task} did not pass:\n{}",
                failed_checks(&result)
            ));
        }
    }
    let progress = json(
        reqwest::Client::new()
            .get(server.at(&format!("/api/lessons/{slug}/progress")))
            .bearer_auth(&token),
    )
    .await;
    let max: u64 = tasks.iter().map(|(_, points)| points).sum();
    if failures.is_empty() && (progress["score"] != max || progress["max_points"] != max) {
        failures.push(format!("  progress is not full points ({max}): {progress}"));
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n  commands that failed:\n{}\n  the terminal's last output:\n{}",
        failures.join("\n"),
        if failed_steps.is_empty() {
            "    none".to_string()
        } else {
            failed_steps.join("\n")
        },
        tail(&transcript, 4000)
    ))
}

#[test]
fn solutions_are_split_into_what_a_student_types() {
    let script = "# comment\n\ncd /root\ncat > Dockerfile <<'END'\nFROM busybox\n\nCMD [\"sh\"]\nEND\ndocker build \\\n  -t x .\ncat <<<\"$x\"\nprintf '%s\\n' a > b\n";
    assert_eq!(
        commands(script),
        [
            "cd /root",
            "cat > Dockerfile <<'END'\nFROM busybox\n\nCMD [\"sh\"]\nEND",
            "docker build \\\n  -t x .",
            "cat <<<\"$x\"",
            "printf '%s\\n' a > b",
        ]
    );
    assert_eq!(heredoc_terminator("cat <<-\"EOF\" > f"), Some("EOF".into()));
    assert_eq!(heredoc_terminator("cat > f <<END"), Some("END".into()));
    assert_eq!(heredoc_terminator("echo '<<'"), None);
}

#[test]
fn every_solution_can_be_typed_into_bash() {
    for slug in lesson_slugs() {
        let path = bundled_lessons().join(&slug).join("solution.sh");
        let script = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{slug} has no solution.sh: {e}"));
        for command in commands(&script) {
            // A tab completes, `!` expands history, and a terminal attached
            // with -it swallows the lines typed after it.
            assert!(
                !command.contains('\t') && !command.contains('!'),
                "{slug}: {command:?} has a tab or a `!`"
            );
            let words: Vec<&str> = command.split_whitespace().collect();
            let runs = matches!(words.get(..2), Some(["docker", "run" | "exec"]));
            assert!(
                !words.iter().any(|word| {
                    matches!(*word, "-it" | "-ti" | "--interactive" | "--tty")
                        || (runs && matches!(*word, "-i" | "-t"))
                }),
                "{slug}: {command:?} waits for a terminal"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_lesson_solution_earns_full_points_on_a_real_lab() {
    let slugs = lesson_slugs();
    assert!(!slugs.is_empty(), "no lessons in {:?}", bundled_lessons());
    let data = temp_dir();
    // One student per lesson: the per-user lab and check limits stay those
    // of a real class.
    let tokens: Vec<String> = (0..slugs.len())
        .map(|i| user_token(&data, &format!("student{i}")))
        .collect();
    // `apt-get install` in the labs is served from the catalog's package
    // repository, as a server's own data directory would hold it.
    std::os::unix::fs::symlink(
        std::path::Path::new(catalog()).join("packages"),
        data.path().join("packages"),
    )
    .expect("link the catalog's package repository");
    let server = Arc::new(lab_server(&data));
    let outlines: Value = json(reqwest::Client::new().get(server.at("/api/lessons"))).await;
    let outlines = outlines.as_array().expect("lessons list").clone();
    let listed: BTreeSet<&str> = outlines
        .iter()
        .map(|l| l["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        slugs.iter().map(String::as_str).collect(),
        "the server serves every lesson folder"
    );

    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut runs = Vec::new();
    for (slug, token) in slugs.iter().zip(tokens) {
        let lesson = outlines.iter().find(|l| l["slug"] == *slug).unwrap();
        let tasks: Vec<(String, u64)> = lesson["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["points"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(!tasks.is_empty(), "{slug} has no tasks");
        let (server, permits, slug) = (server.clone(), permits.clone(), slug.clone());
        runs.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let started = Instant::now();
            let outcome =
                tokio::time::timeout(LESSON_TIME, run_lesson(server, token, slug.clone(), tasks))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("did not finish within {} s", LESSON_TIME.as_secs()))
                    });
            eprintln!(
                "{slug}: {} in {:.1} s",
                if outcome.is_ok() {
                    "full points"
                } else {
                    "FAILED"
                },
                started.elapsed().as_secs_f64()
            );
            (slug, outcome)
        }));
    }
    let mut failures = Vec::new();
    for run in runs {
        match run.await {
            Ok((_, Ok(()))) => {}
            Ok((slug, Err(report))) => failures.push(format!("{slug}:\n{report}")),
            Err(panic) => failures.push(format!("a lesson's run panicked: {panic}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lessons failed:\n\n{}\n\nserver log tail:\n{}",
        failures.len(),
        slugs.len(),
        failures.join("\n\n"),
        tail(&server.log(), 3000)
    );
}
