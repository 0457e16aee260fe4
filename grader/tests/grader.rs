//! The grader against real nodes: an `EmbeddedHost` on the shared test
//! catalog, a course written to a temporary folder and loaded by the
//! course crate, and checks evaluated before and after the node is put in
//! the wanted state. Run as root; fails loudly when something is missing.
//! This binary is also the sandbox helper executable (it calls
//! `main_if_requested` first), hence `harness = false` and the runner at
//! the bottom.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use grader::TaskResult;
use host::{EmbeddedConfig, EmbeddedHost, SandboxHost, SandboxSpec};

/// A small HTTP server for the node, in the perl that Debian's base system
/// carries: files under /srv/www, `/slow` never answers, `/big` never ends,
/// and manifests are refused (406) unless both the OCI and the Docker
/// manifest types are accepted, as a strict registry does.
const SERVER: &str = r#"use IO::Socket::INET;
$SIG{CHLD} = 'IGNORE';
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0], Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
  if (fork() == 0) {
    my $req = <$c>; my ($m, $p) = split ' ', $req; my %h;
    while (my $l = <$c>) { $l =~ s/\r?\n$//; last if $l eq ''; my ($k, $v) = split /:\s*/, $l, 2; $h{lc $k} = $v; }
    if ($p eq '/slow') { sleep 60; exit }
    if ($p eq '/big') { print $c "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello from node1 "; print $c ("x" x 65536) while 1; }
    my $a = $h{accept} || '';
    if ($p =~ m{/manifests/} && ($a !~ /oci\.image\.manifest\.v1\+json/ || $a !~ /docker\.distribution\.manifest\.v2\+json/)) {
      print $c "HTTP/1.1 406 Not Acceptable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"; exit
    }
    my $f = "/srv/www$p"; $f =~ s/\.\.//g;
    if (-f $f) { open my $fh, '<', $f; local $/; my $b = <$fh>; print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Node: node1\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; }
    else { print $c "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" }
    exit;
  }
  close $c;
}
"#;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One node on a host of its own, and a course; removed on drop.
struct Lab {
    host: EmbeddedHost,
    cgroup_parent: String,
    course: course::Course,
    slug: String,
    /// The node's id, unique in this process: a lab's engine names its
    /// images in the shared store under it.
    id: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir),
}

impl Lab {
    /// A running node and the course made of `tasks` (front matter YAML).
    fn new(tasks: &str) -> Lab {
        let lessons = tempfile::tempdir().expect("lessons dir");
        let folder = lessons.path().join("01-graded");
        std::fs::create_dir(&folder).expect("lesson folder");
        std::fs::write(
            folder.join("lesson.md"),
            format!("---\ntitle: Graded\ntasks:\n{tasks}---\n\nText.\n"),
        )
        .expect("write lesson");
        let course = course::Course::load(lessons.path()).unwrap_or_else(|d| panic!("{d}"));
        Lab::with_course(course, "01-graded", lessons)
    }

    /// A running node and `course`, whose lesson `slug` is graded.
    fn with_course(course: course::Course, slug: &str, lessons: tempfile::TempDir) -> Lab {
        let state = tempfile::Builder::new()
            .prefix("layerlab-grader-")
            .tempdir_in("/dev/shm")
            .expect("state dir");
        let mut config = EmbeddedConfig::new(
            testkit::CATALOG_STORE,
            state.path(),
            std::env::current_exe().expect("current exe"),
        );
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let cgroup_parent = format!("layerlab-grader-test-{}-{n}", std::process::id());
        let id = format!("grader-node-{n}");
        config.cgroup_parent = cgroup_parent.clone();
        config.stop_grace = Duration::from_secs(1);
        let disk = testkit::disk_dir();
        config.disk_dir = disk.path().to_owned();
        let host = EmbeddedHost::new(config).expect("create embedded host");
        host.create_sandbox(SandboxSpec::new(id.clone()))
            .expect("create the node");
        Lab {
            host,
            cgroup_parent,
            course,
            slug: slug.to_owned(),
            id,
            _dirs: (lessons, state, disk),
        }
    }

    fn grade(&self, task: &str) -> TaskResult {
        let lesson = self
            .course
            .lessons
            .iter()
            .find(|l| l.slug == self.slug)
            .expect("the graded lesson");
        let task = lesson
            .task(task)
            .unwrap_or_else(|| panic!("no task {task}"));
        grader::grade(&self.host, &self.id, task)
    }

    fn sh(&self, script: &str) {
        let out = self
            .host
            .exec(
                &self.id,
                &["bash".into(), "-c".into(), script.into()],
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("exec {script:?}: {e}"));
        assert_eq!(
            out.status.code,
            Some(0),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts [`SERVER`] on `port` in the node and waits until it listens.
    fn serve(&self, port: u16) {
        let mut script = String::from("mkdir -p /srv/www && cat > /srv/serve.pl <<'PERL'\n");
        script.push_str(SERVER);
        script.push_str("PERL\n");
        script.push_str(&format!(
            "setsid perl /srv/serve.pl {port} </dev/null >/dev/null 2>&1 &\n\
             for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.05; done; exit 1\n"
        ));
        self.sh(&script);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.host.destroy_sandbox(&self.id);
        testkit::remove_cgroup_parent(&self.cgroup_parent);
    }
}

fn file_and_command_tasks_fail_then_pass_once_the_work_is_done() {
    let lab = Lab::new(
        r#"  - id: hello
    title: Write hi into /root/hello.txt, mode 0600
    points: 10
    checks:
      - file: {path: /root/hello.txt, contains: "hi", mode: "0600", owner: root}
        fail: /root/hello.txt is not there yet
  - id: user
    title: Create the user student
    points: 5
    checks:
      - command:
          run: [id, -un, student]
          stdout: "(?m)^student$"
  - id: gone
    title: Remove /root/hello.txt again
    points: 1
    checks:
      - file: {path: /root/hello.txt, exists: false}
"#,
    );
    let before = lab.grade("hello");
    assert!(!before.passed, "{before:?}");
    assert_eq!(
        before.checks[0].message, "/root/hello.txt is not there yet",
        "the author's fail text is shown"
    );
    assert!(lab.grade("gone").passed);
    let user = lab.grade("user");
    assert!(!user.passed);
    assert!(
        user.checks[0].message.contains("exited with 1, expected 0"),
        "{user:?}"
    );

    lab.sh("echo 'say hi' > /root/hello.txt && chmod 644 /root/hello.txt");
    let wrong_mode = lab.grade("hello");
    assert!(!wrong_mode.passed, "mode 0644 is not 0600: {wrong_mode:?}");
    lab.sh("chmod 600 /root/hello.txt && useradd student");
    let after = lab.grade("hello");
    assert!(after.passed, "{after:?}");
    assert_eq!(
        after.checks[0].message,
        "/root/hello.txt is a regular file, with mode 0600, owned by root, containing \"hi\"",
        "a pass says what was verified"
    );
    let user = lab.grade("user");
    assert!(user.passed);
    assert_eq!(
        user.checks[0].message,
        "\"id -un student\" exited with 0 and printed what /(?m)^student$/ asks"
    );
    let gone = lab.grade("gone");
    assert!(!gone.passed);
    assert!(
        gone.checks[0].message.contains("exists but should not"),
        "{gone:?}"
    );
}

fn a_hanging_check_times_out_with_a_clear_message() {
    let lab = Lab::new(
        r#"  - id: hang
    title: Never finishes
    points: 1
    checks:
      - command: {run: "sleep 60", timeout: 2}
        fail: this text is not shown for a timeout
"#,
    );
    let start = Instant::now();
    let result = lab.grade("hang");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(!result.passed);
    assert_eq!(result.checks[0].message, "timed out after 2 s");
}

fn http_checks_reach_the_node_and_never_the_host() {
    // A server on the host's loopback, which the node must not reach.
    let outside = TcpListener::bind("127.0.0.1:0").expect("bind on the host");
    outside.set_nonblocking(true).expect("nonblocking");
    let port = outside.local_addr().expect("address").port();
    let lab = Lab::new(&format!(
        r#"  - id: web
    title: Serve a page on port 8080
    points: 10
    checks:
      - http: {{url: "http://localhost:8080/index.html", body_contains: "hello from node1", header: {{x-node: node1}}}}
  - id: host
    title: The host's own port
    points: 1
    checks:
      - http: {{url: "http://127.0.0.1:{port}/"}}
  - id: slow
    title: A page that never comes
    points: 1
    checks:
      - http: {{url: "http://localhost:8080/slow"}}
  - id: big
    title: A page that never ends
    points: 1
    checks:
      - http: {{url: "http://localhost:8080/big", body_regex: "^hello from node1 x+$"}}
  - id: missing
    title: A page that is not there
    points: 1
    checks:
      - http: {{url: "http://localhost:8080/nope", status: 200}}
"#
    ));
    let before = lab.grade("web");
    assert!(!before.passed);
    assert!(
        before.checks[0].message.contains("nothing answered"),
        "{before:?}"
    );

    lab.serve(8080);
    lab.sh("echo 'hello from node1' > /srv/www/index.html");
    let after = lab.grade("web");
    assert!(after.passed, "{after:?}");

    // Nothing on the host's 127.0.0.1 is reachable, and nothing arrived.
    let host = lab.grade("host");
    assert!(!host.passed);
    assert!(
        host.checks[0].message.contains("nothing answered"),
        "{host:?}"
    );
    match outside.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection reached the host's listener: {other:?}"),
    }

    let start = Instant::now();
    let slow = lab.grade("slow");
    assert_eq!(slow.checks[0].message, "timed out after 5 s");
    assert!(start.elapsed() < Duration::from_secs(8));

    // An endless body is cut at the limit, and what was read is judged.
    let big = lab.grade("big");
    assert!(big.passed, "{big:?}");

    let missing = lab.grade("missing");
    assert!(
        missing.checks[0]
            .message
            .contains("answered 404, expected 200"),
        "{missing:?}"
    );
}

fn registry_checks_ask_for_oci_and_docker_manifests_and_compare_digests() {
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = format!("sha256:{}", hex_sha256(manifest.as_bytes()));
    let lab = Lab::new(&format!(
        r#"  - id: pushed
    title: Push demo:v1
    points: 10
    checks:
      - registry: {{host: "localhost:5000", repository: demo, tag: v1, digest: "{digest}"}}
  - id: other
    title: Push demo:v2
    points: 10
    checks:
      - registry: {{host: "localhost:5000", repository: demo, tag: v2}}
  - id: wrong-digest
    title: demo:v1 at another digest
    points: 1
    checks:
      - registry: {{host: "localhost:5000", repository: demo, tag: v1, digest: "sha256:{zeros}"}}
"#,
        zeros = "0".repeat(64)
    ));
    let before = lab.grade("pushed");
    assert!(!before.passed);

    lab.serve(5000);
    let script = format!(
        "mkdir -p /srv/www/v2/demo/manifests /srv/www/v2/demo/tags && \
         printf '%s' '{manifest}' > /srv/www/v2/demo/manifests/v1 && \
         echo '{{\"name\":\"demo\",\"tags\":[\"v1\"]}}' > /srv/www/v2/demo/tags/list"
    );
    lab.sh(&script);
    let after = lab.grade("pushed");
    assert!(after.passed, "{after:?}");

    let other = lab.grade("other");
    assert!(!other.passed);
    assert!(
        other.checks[0].message.contains("demo has the tags \"v1\""),
        "{other:?}"
    );
    let wrong = lab.grade("wrong-digest");
    assert!(!wrong.passed);
    assert!(
        wrong.checks[0]
            .message
            .contains(&format!("points at {digest}")),
        "{wrong:?}"
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    // The node computes it independently of the grader's code.
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

/// `image`, `container` and `registry … same_as` read the lab's engine:
/// each fails with what is missing in words a student acts on, then
/// passes once the work is done.
fn engine_checks_say_what_is_missing_then_pass() {
    let lab = Lab::new(
        r#"  - id: web
    title: Publish nginx on 8080 with a site and MODE=dev
    points: 10
    checks:
      - container:
          name: web
          image: nginx
          ports: ["8080:80"]
          env: [MODE=dev]
          mounts: ["/root/site:/usr/share/nginx/html"]
          command: "^nginx -g"
  - id: failed
    title: A container that exited with 3
    points: 1
    checks:
      - container: {name: once, exit_code: 3}
  - id: built
    title: Build tool:v1
    points: 10
    checks:
      - image:
          name: tool:v1
          env: [GREETING=hi, PATH]
          cmd: [echo, hi]
          entrypoint: []
          user: nobody
          workdir: /srv
          exposed_ports: ["8080"]
          labels: {title: tool}
          layers: {at_least: 1, at_most: 2}
          history: "EXPOSE"
          shares_base_with: busybox
          made_by: build
  - id: committed
    title: Commit snap:v1
    points: 5
    checks:
      - image: {name: snap:v1, made_by: commit, layers: {at_least: 2}}
  - id: pushed
    title: Push tool:v1 as localhost:5000/tool:v1
    points: 5
    checks:
      - registry: {host: "localhost:5000", repository: tool, tag: v1, same_as: "localhost:5000/tool:v1"}
"#,
    );
    let message = |task: &str| {
        let result = lab.grade(task);
        assert!(!result.passed, "{task} passed too early: {result:?}");
        result.checks[0].message.clone()
    };
    assert_eq!(
        message("web"),
        "there is no container named web (docker ps -a lists them all)"
    );
    assert_eq!(
        message("built"),
        "there is no image tool:v1 yet (docker images lists what there is)"
    );

    lab.sh("docker run -d --name web nginx");
    assert_eq!(
        message("web"),
        "web (from nginx) is running, but it publishes no port; run it with -p 8080:80; \
         nothing is mounted at /usr/share/nginx/html (-v SOURCE:/usr/share/nginx/html); \
         its environment lacks MODE=dev (-e MODE=dev)"
    );
    lab.sh("docker stop -t 1 web");
    assert!(
        message("web").contains("is exited with code")
            && message("web").contains("docker start web"),
        "{}",
        message("web")
    );
    lab.sh("docker rm web && mkdir -p /root/site && \
            docker run -d --name web -p 8080:80 -e MODE=dev -v /root/site:/usr/share/nginx/html nginx");
    let web = lab.grade("web");
    assert!(web.passed, "{web:?}");

    lab.sh("docker run --name once busybox sh -c 'exit 2' || true");
    assert!(
        message("failed").contains("exited with code 2, not 3"),
        "{}",
        message("failed")
    );
    lab.sh("docker rm once && (docker run --name once busybox sh -c 'exit 3' || true)");
    assert!(lab.grade("failed").passed, "{:?}", lab.grade("failed"));

    lab.sh("mkdir -p /root/tool && cd /root/tool && printf '%s\\n' \
            'FROM busybox' 'ENV GREETING=hi' 'LABEL title=tool' 'EXPOSE 8080' \
            'WORKDIR /srv' 'USER nobody' 'CMD [\"echo\", \"hello\"]' > Dockerfile && \
            docker build -q -t tool:v1 .");
    let wrong_cmd = message("built");
    assert!(
        wrong_cmd.contains(r#"its CMD is ["echo","hello"], not ["echo","hi"]"#),
        "{wrong_cmd}"
    );
    lab.sh("cd /root/tool && sed -i 's/hello/hi/' Dockerfile && docker build -q -t tool:v1 .");
    let built = lab.grade("built");
    assert!(built.passed, "{built:?}");

    lab.sh("docker run --name snapper busybox touch /made && docker commit snapper snap:v1");
    assert!(
        lab.grade("committed").passed,
        "{:?}",
        lab.grade("committed")
    );
    lab.sh("docker tag tool:v1 snap:v1");
    assert!(
        message("committed").contains(
            "it was built with docker build, not made from a container with docker commit"
        ),
        "{}",
        message("committed")
    );

    lab.sh("docker run -d -p 5000:5000 registry:2 && \
            until curl -sf localhost:5000/v2/ >/dev/null; do sleep 0.1; done && \
            docker tag tool:v1 localhost:5000/tool:v1 && docker push -q localhost:5000/tool:v1");
    let pushed = lab.grade("pushed");
    assert!(pushed.passed, "{pushed:?}");
    lab.sh("docker tag busybox localhost:5000/tool:v1");
    assert!(
        message("pushed").contains("is not the image localhost:5000/tool:v1 you have: push"),
        "{}",
        message("pushed")
    );
}

use testkit::Test;

const TESTS: &[Test] = &[
    (
        "file_and_command_tasks_fail_then_pass_once_the_work_is_done",
        file_and_command_tasks_fail_then_pass_once_the_work_is_done,
    ),
    (
        "a_hanging_check_times_out_with_a_clear_message",
        a_hanging_check_times_out_with_a_clear_message,
    ),
    (
        "http_checks_reach_the_node_and_never_the_host",
        http_checks_reach_the_node_and_never_the_host,
    ),
    (
        "registry_checks_ask_for_oci_and_docker_manifests_and_compare_digests",
        registry_checks_ask_for_oci_and_docker_manifests_and_compare_digests,
    ),
    (
        "the_bundled_docker_lesson_grades_the_engines_state",
        the_bundled_docker_lesson_grades_the_engines_state,
    ),
    (
        "engine_checks_say_what_is_missing_then_pass",
        engine_checks_say_what_is_missing_then_pass,
    ),
];

/// The bundled course's docker lesson, graded on a real lab's engine: each
/// task fails before the student's work and passes after it.
fn the_bundled_docker_lesson_grades_the_engines_state() {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    let course = course::Course::load(&bundled).unwrap_or_else(|d| panic!("{d}"));
    let unused = tempfile::tempdir().expect("dir");
    let lab = Lab::with_course(course, "02-images-vs-containers", unused);
    for task in ["run-web", "writable-layer", "push-local-registry"] {
        let before = lab.grade(task);
        assert!(!before.passed, "{task} passed before any work: {before:?}");
    }
    lab.sh("docker run -d --name web nginx");
    assert!(lab.grade("run-web").passed, "{:?}", lab.grade("run-web"));
    lab.sh("docker exec web touch /tmp/i-was-here");
    let layer = lab.grade("writable-layer");
    assert!(layer.passed, "{layer:?}");
    lab.sh("docker run -d -p 5000:5000 registry:2 && \
         until curl -sf localhost:5000/v2/ >/dev/null; do sleep 0.1; done && \
         docker tag nginx localhost:5000/my-nginx:v1 && docker push localhost:5000/my-nginx:v1");
    let pushed = lab.grade("push-local-registry");
    assert!(pushed.passed, "{pushed:?}");
}

fn main() {
    runtime::helper::main_if_requested();
    testkit::run(TESTS, 2, testkit::ensure_catalog)
}
