//! Course loading end to end: a course is written into a temp dir, loaded,
//! and its diagnostics or rendered HTML compared with expectations.

use std::fs;
use std::path::Path;

use expect_test::{Expect, expect};
use tempfile::TempDir;

use crate::{CheckKind, Course, Run};

/// Writes `files` (path relative to the course dir, content) into a fresh
/// course directory.
fn course_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, content) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create folders");
        fs::write(path, content).expect("write course file");
    }
    dir
}

/// The one entry point for diagnostics tests: load `files` as a course and
/// compare every diagnostic, one per line.
fn check(files: &[(&str, &str)], expected: Expect) {
    let dir = course_dir(files);
    check_dir(dir.path(), expected);
}

fn check_dir(dir: &Path, expected: Expect) {
    expected.assert_eq(&crate::check(dir).to_string());
}

/// Renders `body` as lesson `01-a` of a course that also has `02-b` and an
/// asset `01-a/assets/pic.png`; fails if loading reports anything.
fn render(body: &str) -> String {
    let lesson = format!("---\ntitle: A\n---\n{body}");
    let dir = course_dir(&[
        ("01-a/lesson.md", &lesson),
        ("01-a/assets/pic.png", "png"),
        ("02-b/lesson.md", "---\ntitle: B\n---\n"),
    ]);
    let course =
        Course::load(dir.path()).unwrap_or_else(|d| panic!("unexpected diagnostics:\n{d}"));
    course.lessons[0].html.clone()
}

const TASK: &str = "    checks:\n      - command: {run: \"true\"}\n";

#[test]
fn a_complete_lesson_loads_with_every_field() {
    let lesson = r#"---
title: First container
summary: What a container is.
duration: 1h 15 min
node:
  image: workstation
  limits: {memory: 512m, pids: 200, cpus: 1.5}
  setup: |
    echo ready
tasks:
  - id: hello-file
    title: Create /root/hello.txt containing "hi"
    points: 10
    hints:
      - text: Use echo and a redirection.
        cost: 2
    checks:
      - file: {path: /root/hello.txt, contains: "hi", mode: 0644}
        fail: "/root/hello.txt doesn't contain hi yet"
      - command: {run: "test -x /root/run.sh", exit: 0, timeout: 5}
      - command: {run: [docker, ps, -a], stdout: "hello-world"}
      - http: {url: "http://localhost:8080/", status: 200, body_contains: "Welcome", header: {Content-Type: text/html}}
      - registry: {host: "localhost:5000", repository: nginx}
        name: nginx pushed
---
# Hello
"#;
    let dir = course_dir(&[("01-first/lesson.md", lesson)]);
    let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let l = course.lesson("01-first").expect("lesson by slug");
    assert_eq!(l.title, "First container");
    assert_eq!(l.duration_minutes, Some(75));
    assert_eq!(l.node.limits.memory_bytes, Some(512 << 20));
    assert_eq!(l.node.limits.pids, Some(200));
    assert_eq!(l.node.limits.cpus, Some(1.5));
    assert_eq!(l.node.setup.as_deref(), Some("echo ready\n"));
    let task = l.task("hello-file").expect("task by id");
    assert_eq!((task.points, task.hints[0].cost), (10, 2));
    let names: Vec<&str> = task.checks.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "file /root/hello.txt",
            "command `test -x /root/run.sh`",
            "command `docker ps -a`",
            "http GET http://localhost:8080/",
            "nginx pushed"
        ]
    );
    let CheckKind::File(file) = &task.checks[0].kind else {
        panic!("not a file check")
    };
    assert_eq!((file.mode, file.exists), (Some(0o644), true));
    let CheckKind::Command(cmd) = &task.checks[2].kind else {
        panic!("not a command check")
    };
    assert_eq!(
        cmd.run,
        Run::Argv(vec!["docker".into(), "ps".into(), "-a".into()])
    );
    assert!(
        cmd.stdout
            .as_ref()
            .is_some_and(|p| p.regex().is_match("x hello-world y"))
    );
    let CheckKind::Registry(reg) = &task.checks[4].kind else {
        panic!("not a registry check")
    };
    assert_eq!(reg.tag.as_deref(), Some("latest"));
    assert_eq!(l.html, "<h1 id=\"hello\">Hello</h1>\n");
}

#[test]
fn json_shapes_for_the_api() {
    let dir = course_dir(&[(
        "01-a/lesson.md",
        "---\ntitle: A\nsummary: S\ntasks:\n  - id: t\n    title: T\n    points: 5\n    hints: [{text: secret, cost: 1}]\n    checks:\n      - file: {path: /x, regex: \"^a\"}\n        fail: nope\n---\n",
    )]);
    let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    expect![[r##"[{"slug":"01-a","title":"A","summary":"S","duration_minutes":null,"tasks":[{"id":"t","title":"T","points":5,"hint_costs":[1]}]}]"##]]
        .assert_eq(&serde_json::to_string(&course.outlines()).expect("json"));
    expect![[r##"{"file":{"path":"/x","exists":true,"mode":null,"owner":null,"contains":null,"regex":"^a"},"fail":"nope","name":"file /x"}"##]]
        .assert_eq(&serde_json::to_string(&course.lessons[0].tasks[0].checks[0]).expect("json"));
}

#[test]
fn unknown_keys_point_at_their_line() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: a\n    title: A\n    points: 1\n    checks:\n      - file: {path: /a, contans: b}\n        fial: x\ntitel: y\n---\n",
        )],
        expect![[r#"
            01-x/lesson.md:8: unknown key `contans` in `file` check (expected one of: path, exists, mode, owner, contains, regex)
            01-x/lesson.md:9: unknown key `fial` in check (expected one of: command, file, http, registry, image, container, fail, name)
            01-x/lesson.md:10: unknown key `titel` in front matter (expected one of: title, summary, duration, node, tasks)
        "#]],
    );
}

#[test]
fn missing_required_keys() {
    check(
        &[(
            "01-x/lesson.md",
            "---\nsummary: no title\ntasks:\n  - id: a\n---\n",
        )],
        expect![[r##"
            01-x/lesson.md:2: missing required key `title` in front matter
            01-x/lesson.md:4: missing required key `checks` in task
            01-x/lesson.md:4: missing required key `points` in task
            01-x/lesson.md:4: missing required key `title` in task
        "##]],
    );
}

#[test]
fn wrong_types_are_all_reported() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: [a, b]\nduration: soon\nnode: {limits: {memory: lots, pids: -1, cpus: 0}}\ntasks:\n  - id: a\n    title: A\n    points: ten\n    hints: {text: x}\n    checks:\n      - file: {path: relative, exists: yes}\n      - command: {run: [], exit: 300, timeout: 0}\n      - http: {url: ftp://x, method: FETCH, status: 42}\n      - registry: {host: \"bad host\", repository: Nginx, digest: md5:1}\n---\n",
        )],
        expect![[r##"
            01-x/lesson.md:2: `title` must be text, found a list
            01-x/lesson.md:3: `duration` must look like `15 min` or `1h 30min` (at most a day), found `soon`
            01-x/lesson.md:4: `cpus` must be a number above 0 and at most 64, like 0.5 or 2, found `0`
            01-x/lesson.md:4: `memory` must be a size between 1m and 64g like `512m` or `1g`, found `lots`
            01-x/lesson.md:4: `pids` must be a whole number, found `-1`
            01-x/lesson.md:8: `points` must be a whole number, found `ten`
            01-x/lesson.md:9: `hints` must be a list (lines starting with `- `), found a mapping
            01-x/lesson.md:11: `exists` must be true or false, found `yes`
            01-x/lesson.md:11: `path` must be absolute (start with /), found `relative`
            01-x/lesson.md:12: `exit` must be between 0 and 255, found 300
            01-x/lesson.md:12: `run` is an empty list: give the program and its arguments
            01-x/lesson.md:12: `timeout` must be between 1 and 300, found 0
            01-x/lesson.md:13: `method` must be one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, found `FETCH`
            01-x/lesson.md:13: `status` must be between 100 and 599, found 42
            01-x/lesson.md:13: `url` must be an http:// or https:// URL without spaces, found `ftp://x`
            01-x/lesson.md:14: `digest` `md5:1` is not valid: write sha256: and 64 hex digits
            01-x/lesson.md:14: `host` `bad host` is not valid: write host:port, like localhost:5000
            01-x/lesson.md:14: `repository` `Nginx` is not valid: use lowercase letters and digits, with . _ - or / between them
        "##]],
    );
}

#[test]
fn bad_yaml_reports_its_line() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: a\n   title: [unclosed\n---\n",
        )],
        expect![[r#"
            01-x/lesson.md:5: invalid YAML: while parsing a block collection, did not find expected '-' indicator
        "#]],
    );
}

#[test]
fn front_matter_must_exist_and_end() {
    check(
        &[
            ("01-none/lesson.md", "# Just markdown\n"),
            ("02-open/lesson.md", "---\ntitle: X\n"),
            ("03-empty/lesson.md", "---\n---\nbody\n"),
            ("04-list/lesson.md", "---\n- a\n- b\n---\n"),
        ],
        expect![[r##"
            01-none/lesson.md:1: no front matter: start lesson.md with a `---` line, then `title: …`, then another `---` line
            02-open/lesson.md:1: front matter never ends: add a `---` line after the last front matter key
            03-empty/lesson.md:2: front matter is empty: add at least `title: …`
            04-list/lesson.md:2: front matter must be a mapping of `key: value` lines, found a list
        "##]],
    );
}

#[test]
fn duplicate_slugs_and_invalid_folder_names() {
    check(
        &[
            ("01-x/lesson.md", "---\ntitle: X\n---\n"),
            ("01-X/lesson.md", "---\ntitle: X\n---\n"),
            ("02 spaced/lesson.md", "---\ntitle: X\n---\n"),
            ("03_under/lesson.md", "---\ntitle: X\n---\n"),
            ("README.md", "not a lesson"),
            (".hidden/lesson.md", "ignored"),
        ],
        expect![[r##"
            01-x: folder `01-x` has the same slug `01-x` as folder `01-X`: rename one of them
            02 spaced: folder name `02 spaced` is not a valid slug: use lowercase letters, digits and dashes
            03_under: folder name `03_under` is not a valid slug: use lowercase letters, digits and dashes
        "##]],
    );
}

#[test]
fn duplicate_task_ids_and_keys() {
    check(
        &[(
            "01-x/lesson.md",
            &format!(
                "---\ntitle: X\ntitle: Y\ntasks:\n  - id: a\n    title: A\n    points: 1\n{TASK}  - id: a\n    title: B\n    points: 1\n{TASK}---\n"
            ),
        )],
        expect![[r#"
            01-x/lesson.md:3: duplicate key `title` in front matter (first at line 2): keep one
            01-x/lesson.md:10: duplicate task id `a` (first at line 5): task ids must be unique within a lesson
        "#]],
    );
}

#[test]
fn invalid_regexes_in_checks() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: a\n    title: A\n    points: 1\n    checks:\n      - command: {run: ls, stdout: \"(\"}\n      - file: {path: /a, regex: \"[z-a]\"}\n      - http: {url: \"http://a/\", body_regex: \"a{99999}\"}\n---\n",
        )],
        expect![[r#"
            01-x/lesson.md:8: `stdout` is not a valid regular expression: unclosed group
            01-x/lesson.md:9: `regex` is not a valid regular expression: invalid character class range, the start must be <= the end
            01-x/lesson.md:10: `body_regex` is too large once compiled (over 1048576 bytes): simplify the pattern
        "#]],
    );
}

#[test]
fn check_types_must_be_exactly_one() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: a\n    title: A\n    points: 1\n    checks:\n      - fail: no type\n      - file: {path: /a}\n        command: {run: ls}\n      - layers: {name: nginx}\n  - id: b\n    title: B\n    points: 1\n    checks: []\n---\n",
        )],
        expect![[r#"
            01-x/lesson.md:8: check has no type: add one of command, file, http, registry, image, container
            01-x/lesson.md:10: check has two types, `file` and `command`: split it into two checks
            01-x/lesson.md:11: check has no type: add one of command, file, http, registry, image, container
            01-x/lesson.md:11: unknown key `layers` in check (expected one of: command, file, http, registry, image, container, fail, name)
            01-x/lesson.md:15: `checks` is empty: a task needs at least one check to be gradable
        "#]],
    );
}

#[test]
fn engine_checks_parse_with_their_defaults() {
    let dir = course_dir(&[(
        "01-x/lesson.md",
        "---\ntitle: X\ntasks:\n  - id: a\n    title: A\n    points: 1\n    checks:\n      - image: {name: \"localhost:5000/tool:v1\", cmd: [figlet, hi], entrypoint: \"^nmap\", exposed_ports: [\"8080\", 53/udp], env: [A=1, PATH], labels: {a.b: c}, layers: {at_most: 3}, made_by: build}\n      - container: {name: /web, ports: [\"8080:80\", 53/udp], mounts: [\"/root/site:/usr/share/nginx/html\", /data]}\n      - container: {image: busybox, exit_code: 3}\n      - registry: {host: \"localhost:5000\", repository: tool, same_as: \"localhost:5000/tool:v1\"}\n---\n",
    )]);
    let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let checks = &course.lessons[0].tasks[0].checks;
    let CheckKind::Image(image) = &checks[0].kind else {
        panic!("not an image check: {:?}", checks[0])
    };
    assert_eq!(image.name, "localhost:5000/tool:v1");
    assert_eq!(
        image.cmd,
        Some(crate::Words::Exactly(vec!["figlet".into(), "hi".into()]))
    );
    assert!(matches!(&image.entrypoint, Some(crate::Words::Matching(p)) if p.as_str() == "^nmap"));
    assert_eq!(image.exposed_ports, ["8080/tcp", "53/udp"]);
    assert!(image.env[0].holds(&["A=1".into()]) && !image.env[0].holds(&["A=12".into()]));
    assert!(image.env[1].holds(&["PATH=/bin".into()]) && !image.env[1].holds(&["PATHS=x".into()]));
    assert_eq!(image.labels.get("a.b").map(String::as_str), Some("c"));
    assert_eq!(image.layers.and_then(|l| l.at_most), Some(3));
    assert_eq!(image.made_by, Some(crate::MadeBy::Build));
    assert_eq!(checks[0].name(), "image localhost:5000/tool:v1");
    let CheckKind::Container(web) = &checks[1].kind else {
        panic!("not a container check: {:?}", checks[1])
    };
    assert_eq!(web.name.as_deref(), Some("web"));
    assert_eq!(
        web.state,
        crate::ContainerState::Running,
        "running unless told"
    );
    assert_eq!(web.ports[0].to_string(), "8080:80");
    assert_eq!(
        (
            web.ports[1].host,
            web.ports[1].container,
            web.ports[1].protocol.as_str()
        ),
        (None, 53, "udp")
    );
    assert_eq!(web.mounts[0].source.as_deref(), Some("/root/site"));
    assert_eq!(web.mounts[1].source, None);
    let CheckKind::Container(once) = &checks[2].kind else {
        panic!("not a container check: {:?}", checks[2])
    };
    assert_eq!(
        once.state,
        crate::ContainerState::Exited,
        "an exit code means it exited"
    );
    assert_eq!(checks[2].name(), "container of busybox");
    let CheckKind::Registry(registry) = &checks[3].kind else {
        panic!("not a registry check: {:?}", checks[3])
    };
    assert_eq!(registry.same_as.as_deref(), Some("localhost:5000/tool:v1"));
    assert_eq!(registry.tag.as_deref(), Some("latest"));
}

#[test]
fn bad_engine_checks_are_all_reported() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: a\n    title: A\n    points: 1\n    checks:\n      - image: {cmd: [a]}\n      - image: {name: \"Bad Name\", env: [\"=x\"], exposed_ports: [http], labels: [a], layers: {at_least: 3, at_most: 2}, made_by: magic, workdir: srv, history: \"(\"}\n      - image: {name: a, layers: {}}\n      - container: {state: running}\n      - container: {name: \"-x\", image: nginx, state: sleeping, ports: [\"80:\", \"x:80\", \"8080:80/icmp\"], mounts: [data, \"a:b:c\"]}\n      - container: {name: web, state: running, exit_code: 1}\n      - registry: {host: \"localhost:5000\", repository: a, digest: \"sha256:0000000000000000000000000000000000000000000000000000000000000000\", same_as: a}\n---\n",
        )],
        expect![[r#"
            01-x/lesson.md:8: missing required key `name` in `image` check
            01-x/lesson.md:9: `env` entry `=x` is not NAME=value or NAME
            01-x/lesson.md:9: `exposed_ports` entry `http` is not a port: write 80 or 53/udp
            01-x/lesson.md:9: `history` is not a valid regular expression: unclosed group
            01-x/lesson.md:9: `labels` must be a mapping of `label: value` lines, found a list
            01-x/lesson.md:9: `layers` asks for at least 3 and at most 2: no image has both
            01-x/lesson.md:9: `made_by` must be build or commit, found `magic`
            01-x/lesson.md:9: `name` `Bad Name` is not an image name: write it as for docker run, like nginx, app:v1 or localhost:5000/app:v1
            01-x/lesson.md:9: `workdir` must be an absolute path (start with /), found `srv`
            01-x/lesson.md:10: `layers` needs `at_least`, `at_most` or both
            01-x/lesson.md:11: `container` check needs `name` or `image` to find the container
            01-x/lesson.md:12: `mounts` entry `data` is not a mount: write /root/site:/usr/share/nginx/html, volume:/data or just /data
            01-x/lesson.md:12: `name` `-x` is not a container name: letters, digits and _ . - only
            01-x/lesson.md:12: `ports` entry `80:` is not a published port: write 8080:80, 53:53/udp or just 80
            01-x/lesson.md:12: `state` must be running, exited, created or any, found `sleeping`
            01-x/lesson.md:13: `exit_code` needs a container that exited: drop it or say `state: exited`
            01-x/lesson.md:14: `registry` check has both `digest` and `same_as`: keep one
        "#]],
    );
}

#[test]
fn task_rules_beyond_types() {
    check(
        &[(
            "01-x/lesson.md",
            "---\ntitle: X\ntasks:\n  - id: Bad_Id\n    title: A\n    points: 3\n    hints:\n      - {text: one, cost: 2}\n      - {text: two, cost: 2}\n    checks:\n      - file: {path: /a, exists: false, contains: x}\n---\n",
        )],
        expect![[r##"
            01-x/lesson.md:4: task id `Bad_Id` must use lowercase letters, digits and dashes
            01-x/lesson.md:8: hints cost 4 points in total, more than the task's 3: lower the costs
            01-x/lesson.md:11: `contains` cannot be checked on a file that must not exist: drop `contains` or `exists: false`
        "##]],
    );
}

#[test]
fn missing_assets_and_broken_links() {
    check(
        &[
            (
                "01-x/lesson.md",
                "---\ntitle: X\n---\n![ok](assets/pic.png)\n![gone](assets/missing.png)\n\n[b](../02-y/) [c](/lessons/03-z) [d](../04-none/)\n[e](/lessons/05-none#top) [f](notes.md) [g](../02-y/assets/pic.png)\n",
            ),
            ("01-x/assets/pic.png", "png"),
            ("02-y/lesson.md", "---\ntitle: Y\n---\n"),
            ("03-z/lesson.md", "---\ntitle: Z\n---\n"),
        ],
        expect![[r##"
            01-x/lesson.md:5: broken asset link `assets/missing.png`: `missing.png` does not exist in the lesson folder: add the file or fix the link
            01-x/lesson.md:7: link `../04-none/` points to lesson `04-none`, which is not in the course
            01-x/lesson.md:8: link `../02-y/assets/pic.png` leaves this lesson: link to another lesson as `../slug/` or to a file in `assets/`
            01-x/lesson.md:8: link `/lessons/05-none#top` points to lesson `05-none`, which is not in the course
            01-x/lesson.md:8: link `notes.md` points to nothing in the course: use `assets/…`, `../other-lesson/` or a full URL
        "##]],
    );
}

#[test]
fn hostile_asset_links_are_refused() {
    check(
        &[
            (
                "01-x/lesson.md",
                "---\ntitle: X\n---\n![a](assets/../lesson.md)\n![b](assets/%2e%2e/%2e%2e/etc/passwd)\n![c](assets/.secret)\n![d](assets//etc/passwd)\n",
            ),
            ("01-x/assets/.secret", "s"),
        ],
        expect![[r##"
            01-x/lesson.md:4: broken asset link `assets/../lesson.md`: `../lesson.md` is not a plain relative path: use names separated by /, without `..`, leading / or hidden parts
            01-x/lesson.md:5: broken asset link `assets/%2e%2e/%2e%2e/etc/passwd`: `../../etc/passwd` is not a plain relative path: use names separated by /, without `..`, leading / or hidden parts
            01-x/lesson.md:6: broken asset link `assets/.secret`: `.secret` is not a plain relative path: use names separated by /, without `..`, leading / or hidden parts
            01-x/lesson.md:7: broken asset link `assets//etc/passwd`: `/etc/passwd` is not a plain relative path: use names separated by /, without `..`, leading / or hidden parts
        "##]],
    );
}

#[test]
fn symlinks_escaping_the_lesson_are_reported_and_refused() {
    let dir = course_dir(&[
        (
            "01-x/lesson.md",
            "---\ntitle: X\n---\n![p](assets/passwd)\n![i](assets/inside.md)\n",
        ),
        ("outside/secret.txt", "secret"),
    ]);
    let lesson = dir.path().join("01-x");
    fs::create_dir_all(lesson.join("assets")).expect("assets dir");
    std::os::unix::fs::symlink("/etc/passwd", lesson.join("assets/passwd")).expect("symlink");
    std::os::unix::fs::symlink("../lesson.md", lesson.join("assets/inside.md")).expect("symlink");
    std::os::unix::fs::symlink("nowhere", lesson.join("assets/dangling")).expect("symlink");
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("02-linked"))
        .expect("symlink");
    check_dir(
        dir.path(),
        expect![[r##"
            01-x/assets/dangling: symbolic link leading outside the lesson folder (or nowhere): copy the file in instead
            01-x/assets/passwd: symbolic link leading outside the lesson folder (or nowhere): copy the file in instead
            01-x/lesson.md:4: broken asset link `assets/passwd`: `passwd` is a symbolic link leading outside the lesson folder: copy the file in instead
            02-linked: is a symbolic link: lesson folders must be real folders inside the course
            outside: lesson folder has no lesson.md: add one or move the folder out
        "##]],
    );
    // The same rules hold when the server asks for an asset.
    let (course, _) = Course::load_partial(dir.path());
    assert!(
        course.lessons.is_empty(),
        "a lesson with problems is left out"
    );
    let lesson_dir = dir.path().join("01-x");
    assert_eq!(
        crate::assets::lookup(&lesson_dir, &lesson_dir.join("assets"), "passwd").ok(),
        None
    );
    assert!(crate::assets::lookup(&lesson_dir, &lesson_dir.join("assets"), "inside.md").is_ok());
}

#[test]
fn asset_lookup_for_serving() {
    let dir = course_dir(&[
        ("01-x/lesson.md", "---\ntitle: X\n---\n"),
        ("01-x/assets/diagram.svg", "<svg/>"),
        ("01-x/assets/sub/data.json", "{}"),
        ("01-x/assets/.env", "secret"),
    ]);
    let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let lesson = course.lesson("01-x").expect("lesson");
    let svg = lesson.asset("diagram.svg").expect("svg asset");
    assert_eq!(crate::content_type(&svg), "image/svg+xml");
    let json = lesson.asset("sub/data.json").expect("nested asset");
    assert_eq!(crate::content_type(&json), "application/json");
    for refused in [
        "",
        "../lesson.md",
        "/etc/passwd",
        ".env",
        "sub/../diagram.svg",
        "sub",
        "missing.png",
        "sub\\data.json",
    ] {
        assert_eq!(
            lesson.asset(refused),
            None,
            "asset({refused:?}) must be refused"
        );
    }
}

#[test]
fn a_solution_script_beside_lesson_md_is_accepted_and_never_served() {
    let dir = course_dir(&[
        (
            "01-x/lesson.md",
            "---\ntitle: X\n---\n![pic](assets/pic.png)\n",
        ),
        ("01-x/solution.sh", "hostname > /root/hostname.txt\n"),
        ("01-x/assets/pic.png", "png"),
    ]);
    check_dir(dir.path(), expect![[""]]);
    let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let lesson = course.lesson("01-x").expect("lesson");
    assert!(lesson.asset("pic.png").is_some());
    for refused in ["solution.sh", "../solution.sh", "./../solution.sh"] {
        assert_eq!(
            lesson.asset(refused),
            None,
            "asset({refused:?}) must not serve the solution"
        );
    }
}

#[test]
fn non_utf8_and_missing_lesson_md() {
    let dir = course_dir(&[("02-empty/assets/a.png", "png")]);
    fs::create_dir_all(dir.path().join("01-bin")).expect("dir");
    fs::write(
        dir.path().join("01-bin/lesson.md"),
        b"---\ntitle: X\n---\nok\n\xff\xfe bad\n",
    )
    .expect("write");
    check_dir(
        dir.path(),
        expect![[r##"
            01-bin/lesson.md:5: not valid UTF-8 (first bad byte on this line): save lesson.md as UTF-8
            02-empty: lesson folder has no lesson.md: add one or move the folder out
        "##]],
    );
}

#[test]
fn oversized_files_are_rejected() {
    let dir = course_dir(&[
        ("01-x/lesson.md", "---\ntitle: X\n---\n"),
        ("02-y/assets/a.txt", ""),
    ]);
    // Sparse files: the size is what matters, not the disk used.
    let big = fs::File::create(dir.path().join("01-x/huge.iso")).expect("create");
    big.set_len(9 << 20).expect("grow");
    let md = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("01-x/lesson.md"))
        .expect("open");
    md.set_len(2 << 20).expect("grow");
    fs::write(dir.path().join("02-y/lesson.md"), "---\ntitle: Y\n---\n").expect("write");
    check_dir(
        dir.path(),
        expect![[r##"
            01-x/huge.iso: file is 9.0 MiB, more than the 8.0 MiB allowed: make it smaller
            01-x/lesson.md: file is 2.0 MiB, more than the 1.0 MiB allowed: make it smaller
        "##]],
    );
}

#[test]
fn hostile_yaml_is_refused_without_panicking() {
    let deep = format!("---\ntitle: X\nnode: {}\n---\n", "[".repeat(50_000));
    check(
        &[
            ("01-alias/lesson.md", "---\na: &x [1, 2]\ntitle: *x\n---\n"),
            ("02-deep/lesson.md", &deep),
            ("03-tag/lesson.md", "---\ntitle: !!binary aGk=\n---\n"),
            ("04-docs/lesson.md", "---\ntitle: X\n---\n"),
        ],
        expect![[r#"
            01-alias/lesson.md:3: invalid YAML: YAML aliases (`*name`) are not supported: write the value out
            02-deep/lesson.md:3: invalid YAML: recursion limit exceeded
            03-tag/lesson.md:2: invalid YAML: YAML tags (`!name`) are not supported: write a plain value
        "#]],
    );
}

#[test]
fn every_problem_in_a_course_is_collected() {
    check(
        &[
            ("01-a/lesson.md", "---\ntitel: X\n---\n[x](../09-gone/)\n"),
            (
                "02-b/lesson.md",
                "---\ntitle: [\n---\n![x](assets/nope.png)\n",
            ),
            ("03-c/notes.txt", ""),
        ],
        expect![[r#"
            01-a/lesson.md:2: missing required key `title` in front matter
            01-a/lesson.md:2: unknown key `titel` in front matter (expected one of: title, summary, duration, node, tasks)
            01-a/lesson.md:4: link `../09-gone/` points to lesson `09-gone`, which is not in the course
            02-b/lesson.md:3: invalid YAML: while parsing a node, did not find expected node content
            02-b/lesson.md:4: broken asset link `assets/nope.png`: `nope.png` does not exist in the lesson folder: add the file or fix the link
            03-c: lesson folder has no lesson.md: add one or move the folder out
        "#]],
    );
}

#[test]
fn an_empty_or_missing_course_says_so() {
    check(
        &[],
        expect![[r##"
        .: no lessons found: add a folder with a lesson.md
    "##]],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let diags = crate::check(&missing);
    assert_eq!(diags.len(), 1);
    assert!(
        diags
            .to_string()
            .starts_with(".: cannot read the course folder"),
        "{diags}"
    );
}

#[test]
fn renders_gfm() {
    expect![[r##"
        <table><thead><tr><th>Image</th><th style="text-align:right">Container</th></tr></thead><tbody>
        <tr><td><del>old</del></td><td style="text-align:right">new</td></tr>
        </tbody></table>
        <ul>
        <li><input disabled="" type="checkbox">
        todo</li>
        <li><input disabled="" type="checkbox" checked="">
        done</li>
        </ul>
        <p>Note<sup class="footnote-reference"><a href="#1" rel="noopener noreferrer">1</a></sup></p>
        <div class="footnote-definition" id="1"><sup class="footnote-definition-label">1</sup>
        <p>Footnote.</p>
        </div>
    "##]]
    .assert_eq(&render(
        "| Image | Container |\n|---|--:|\n| ~~old~~ | new |\n\n- [ ] todo\n- [x] done\n\nNote[^1]\n\n[^1]: Footnote.\n",
    ));
}

#[test]
fn run_blocks_get_a_button_with_the_escaped_command() {
    expect![[r#"
        <div class="code-run"><pre><code class="language-bash">echo "&lt;hi&gt;" &amp;&amp; ls 'a b'
        </code></pre><button type="button" class="run-button" data-command="echo &quot;&lt;hi&gt;&quot; &amp;&amp; ls &#39;a b&#39;" aria-label="Run echo &quot;&lt;hi&gt;&quot; &amp;&amp; ls &#39;a b&#39;">Run</button></div>
        <div class="code-run"><pre><code class="language-sh">docker ps
        docker images
        </code></pre><button type="button" class="run-button" data-command="docker ps
        docker images" aria-label="Run docker ps docker images">Run</button></div>
        <pre><code class="language-rust">fn main() {}
        </code></pre>
        <pre><code>indented
        </code></pre>

        <ul>
        <li>
        <p>In a list:</p>
        <div class="code-run"><pre><code class="language-bash">id
        </code></pre><button type="button" class="run-button" data-command="id" aria-label="Run id">Run</button></div>
        </li>
        </ul>
    "#]]
    .assert_eq(&render(
        "```run\necho \"<hi>\" && ls 'a b'\n```\n\n```sh run\ndocker ps\ndocker images\n```\n\n```rust\nfn main() {}\n```\n\n    indented\n\n- In a list:\n\n  ```bash run\n  id\n  ```\n",
    ));
}

#[test]
fn urls_to_assets_and_lessons_are_rewritten() {
    expect![[r##"
        <p><img src="/lessons/01-a/assets/pic.png" alt="pic"> <a href="/lessons/01-a/assets/pic.png?v=1" rel="noopener noreferrer">file</a>
        <a href="/lessons/02-b" rel="noopener noreferrer">next</a> <a href="/lessons/02-b#intro" rel="noopener noreferrer">next intro</a> <a href="/lessons/02-b" rel="noopener noreferrer">abs</a>
        <a href="https://example.org/x" rel="noopener noreferrer">web</a> <a href="#top" rel="noopener noreferrer">top</a></p>
    "##]]
    .assert_eq(&render(
        "![pic](assets/pic.png) [file](./assets/pic.png?v=1)\n[next](../02-b/) [next intro](../02-b#intro) [abs](/lessons/02-b)\n[web](https://example.org/x) [top](#top)\n",
    ));
}

#[test]
fn headings_get_unique_anchors() {
    expect![[r##"
        <h1 id="images-vs-containers">Images vs. <code>containers</code></h1>
        <h2 id="try-it">Try it!</h2>
        <h2 id="try-it-2">Try it</h2>
        <h3 id="section">???</h3>
    "##]]
    .assert_eq(&render(
        "# Images vs. `containers`\n## Try it!\n## Try it\n### ???\n",
    ));
}

#[test]
fn author_html_is_sanitized() {
    let html = render(concat!(
        "<script>alert(1)</script>\n\n",
        "<img src=x onerror=\"alert(2)\">\n\n",
        "[click](javascript:alert(3)) <a href=\"javascript:alert(4)\">raw</a>\n\n",
        "<iframe src=\"https://evil.example\"></iframe>\n\n",
        "<button class=\"run-button\" data-command=\"rm -rf /\">Run</button>\n\n",
        "<p style=\"position:fixed\" onclick=\"x()\">styled</p>\n\n",
        "<input type=\"password\">\n\n",
        "\u{E000}0\u{E000}\n\n```run\nls\n```\n",
    ));
    for banned in [
        "<script",
        "alert",
        "onerror",
        "onclick",
        "javascript",
        "<iframe",
        "rm -rf",
        "position",
        "password",
    ] {
        assert!(
            !html.contains(banned),
            "`{banned}` survived sanitizing:\n{html}"
        );
    }
    assert_eq!(
        html.matches("data-command=").count(),
        1,
        "only the real run block has a button:\n{html}"
    );
    assert!(html.contains("data-command=\"ls\""), "{html}");
    assert!(
        html.contains("\u{FFFD}0\u{FFFD}"),
        "a forged placeholder stays inert text:\n{html}"
    );
}

#[test]
fn duration_forms() {
    let cases = [
        ("15", 15),
        ("15 min", 15),
        ("20 minutes", 20),
        ("1h", 60),
        ("1 hour 30 min", 90),
        ("45m", 45),
    ];
    for (text, minutes) in cases {
        let lesson = format!("---\ntitle: X\nduration: {text}\n---\n");
        let dir = course_dir(&[("01-x/lesson.md", &lesson)]);
        let course = Course::load(dir.path()).unwrap_or_else(|d| panic!("{text}: {d}"));
        assert_eq!(
            course.lessons[0].duration_minutes,
            Some(minutes),
            "duration {text:?}"
        );
    }
}

#[test]
fn the_bundled_course_loads_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    let course = Course::load(&dir).unwrap_or_else(|d| panic!("bundled course has problems:\n{d}"));
    let slugs: Vec<&str> = course.lessons.iter().map(|l| l.slug.as_str()).collect();
    assert_eq!(
        slugs,
        [
            "01-what-is-a-container",
            "02-images-vs-containers",
            "03-running-containers",
            "04-images-from-containers",
            "05-writing-a-dockerfile",
            "06-entrypoint-and-cmd",
            "07-layers-and-the-build-cache",
            "08-inspecting-images",
            "09-registries",
            "10-saving-and-loading-images",
            "11-best-practices",
        ]
    );
    for lesson in &course.lessons {
        assert!(
            lesson.dir.join("solution.sh").is_file(),
            "{}: has a solution.sh",
            lesson.slug
        );
        assert!(
            lesson.html.contains(">What you learned</h2>"),
            "{}: ends with what was learned",
            lesson.slug
        );
        assert!(
            lesson.tasks.len() >= 2,
            "{}: at least 2 tasks to grade",
            lesson.slug
        );
        assert!(
            lesson.html.contains("class=\"run-button\""),
            "{}: has run blocks",
            lesson.slug
        );
        assert!(
            lesson.tasks.iter().all(|t| !t.hints.is_empty()),
            "{}: every task has hints",
            lesson.slug
        );
    }
    let second = &course.lessons[1];
    assert!(
        second
            .html
            .contains("href=\"/lessons/01-what-is-a-container"),
        "links back to lesson 1"
    );
    assert!(
        second.html.contains("<table>"),
        "has the image vs container table"
    );
    assert!(
        second
            .html
            .contains("src=\"/lessons/02-images-vs-containers/assets/"),
        "shows its diagram"
    );
    let registry_checks = second
        .tasks
        .iter()
        .flat_map(|t| &t.checks)
        .filter(|c| matches!(c.kind, CheckKind::Registry(_)))
        .count();
    assert_eq!(
        registry_checks, 1,
        "the last task is graded by a registry check"
    );
}

#[test]
fn deep_nesting_and_tag_floods_are_refused() {
    // Each body is about 1 MiB, the most a lesson.md may hold; sanitizing
    // them would take html5ever minutes, so they must be refused up front.
    let lesson = |body: String| format!("---\ntitle: X\n---\nintro\n\n{body}");
    check(
        &[
            ("01-div/lesson.md", &lesson("<div>".repeat(150_000))),
            ("02-quote/lesson.md", &lesson("> ".repeat(150_000) + "x")),
            ("03-list/lesson.md", &lesson("- ".repeat(150_000) + "x")),
            ("04-spans/lesson.md", &lesson("<b>x</b> ".repeat(2_001))),
            (
                "05-fine/lesson.md",
                &lesson("> ".repeat(20) + "x" + &"<b>x</b> ".repeat(500)),
            ),
        ],
        expect![[r#"
            01-div/lesson.md:4: 150000 raw HTML tags, more than the 2000 allowed: write the content in Markdown
            02-quote/lesson.md:6: Markdown nested 150001 levels deep here, more than the 64 allowed: flatten the lists and quotes
            03-list/lesson.md:6: Markdown nested 300000 levels deep here, more than the 64 allowed: flatten the lists and quotes
            04-spans/lesson.md:4: 2001 raw HTML tags, more than the 2000 allowed: write the content in Markdown
        "#]],
    );
}

/// Flips, drops and duplicates bytes of a real lesson many times: every
/// variant must load or report problems, never panic.
#[test]
fn mutated_lessons_never_panic() {
    let original = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons/01-what-is-a-container/lesson.md"),
    )
    .expect("bundled lesson 1");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let lesson_dir = dir.path().join("01-x");
    fs::create_dir_all(&lesson_dir).expect("lesson dir");
    let specials = b"-:[]{}#&*!|>'\"%@`\n \t\\\xff";
    for _ in 0..400 {
        let mut bytes = original.clone();
        for _ in 0..1 + next(4) {
            let at = next(bytes.len());
            match next(3) {
                0 => bytes[at] = specials[next(specials.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => {
                    let end = (at + next(64)).min(bytes.len());
                    let chunk = bytes[at..end].to_vec();
                    bytes.splice(at..at, chunk);
                }
            }
        }
        fs::write(lesson_dir.join("lesson.md"), &bytes).expect("write lesson");
        let _ = Course::load_partial(dir.path());
    }
}
