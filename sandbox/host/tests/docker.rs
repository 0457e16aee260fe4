//! The real Docker CLI (Debian's docker.io 20.10 in the `workstation`
//! image) inside real labs, talking to each lab's own engine. Run as root;
//! they fail loudly when something is missing, never skip. Like the host
//! suite, this binary is also the sandbox helper (`harness = false`).

mod common;

use common::{Dockerd, Labs, STORE, hub_image_id};
use host::SandboxHost;
use store::{Namespace, Reference, Store};

fn version_and_info_come_from_the_labs_engine() {
    let labs = Labs::new();
    let lab = labs.lab("version");
    assert_eq!(
        labs.ok(
            &lab,
            "docker version --format '{{.Server.APIVersion}} {{.Client.Version}}'"
        )
        .trim(),
        "1.41 20.10.24+dfsg1"
    );
    let info = labs.ok(
        &lab,
        "docker info --format '{{.Images}} {{.Containers}} {{.OSType}} {{.Swarm.LocalNodeState}}'",
    );
    assert_eq!(info.trim(), "0 0 linux inactive");
    // The node's mount table names none of the host's directories: the
    // engine's socket directory is under a neutral path.
    let mounts = labs.ok(&lab, "cat /proc/self/mountinfo");
    for host_dir in [&labs.config.runtime_state_dir, &labs.config.disk_dir] {
        let host_dir = host_dir.display().to_string();
        assert!(
            !mounts.contains(&host_dir),
            "{host_dir} shows in:\n{mounts}"
        );
    }
    // The socket is where the CLI and curl expect it.
    let ping = labs.ok(
        &lab,
        "curl -s --unix-socket /var/run/docker.sock http://x/_ping",
    );
    assert_eq!(ping, "OK");
}

fn pull_list_inspect_tag_and_remove_like_docker() {
    let labs = Labs::new();
    let lab = labs.lab("images");
    let pulled = labs.ok(&lab, "docker pull busybox");
    assert!(
        pulled.contains("latest: Pulling from library/busybox")
            && pulled.contains("Status: Downloaded newer image for busybox:latest")
            && pulled.contains("docker.io/library/busybox:latest"),
        "pull output:\n{pulled}"
    );
    let again = labs.ok(&lab, "docker pull busybox:latest");
    assert!(
        again.contains("Status: Image is up to date for busybox:latest"),
        "second pull:\n{again}"
    );
    let id = hub_image_id("busybox");
    assert_eq!(
        labs.ok(
            &lab,
            "docker image inspect busybox --format '{{.Id}} {{.Os}} {{index .RepoTags 0}}'"
        )
        .trim(),
        format!("{id} linux busybox:latest")
    );
    // By ID prefix, as the CLI's users type it.
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(labs.ok(&lab, "docker images -q").trim(), short);
    assert_eq!(
        labs.ok(
            &lab,
            &format!("docker image inspect {short} --format '{{{{.Id}}}}'")
        )
        .trim(),
        id
    );
    labs.ok(&lab, "docker tag busybox localhost:5000/busybox:v1");
    let listed = labs.ok(
        &lab,
        "docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
    );
    // The CLI prints one image's tags in map order.
    let mut rows: Vec<&str> = listed.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            format!("busybox:latest {short}"),
            format!("localhost:5000/busybox:v1 {short}")
        ]
    );
    let history = labs.ok(
        &lab,
        "docker history --no-trunc --format '{{.ID}}|{{.CreatedBy}}' busybox",
    );
    let first = history.lines().next().expect("a history line");
    assert!(first.starts_with(&format!("{id}|")), "history:\n{history}");
    assert_eq!(
        labs.ok(&lab, "docker rmi localhost:5000/busybox:v1").trim(),
        "Untagged: localhost:5000/busybox:v1"
    );
    let removed = labs.ok(&lab, "docker rmi busybox");
    assert_eq!(
        removed.lines().collect::<Vec<_>>(),
        vec![
            "Untagged: busybox:latest".to_owned(),
            format!("Deleted: {id}")
        ]
    );
    assert_eq!(labs.ok(&lab, "docker images -q"), "");
}

fn errors_read_like_dockers() {
    let labs = Labs::new();
    let lab = labs.lab("errors");
    labs.fails(&lab, "docker image inspect nope", 1, "No such image: nope");
    labs.fails(
        &lab,
        "docker pull nosuchimage",
        1,
        "pull access denied for nosuchimage, repository does not exist or may require 'docker login'",
    );
    labs.fails(
        &lab,
        "docker pull busybox:nope",
        1,
        "manifest for busybox:nope not found: manifest unknown",
    );
    // The CLI words a missing image for rmi itself.
    labs.fails(&lab, "docker rmi nope", 1, "Error: No such image: nope");
    labs.fails(&lab, "docker tag nope x", 1, "No such image: nope:latest");
    labs.fails(
        &lab,
        "docker pull 'Bad//Name'",
        1,
        "invalid reference format",
    );
    labs.fails(
        &lab,
        "docker swarm init",
        1,
        "swarm mode is not available in a layerlab lab",
    );
    labs.fails(
        &lab,
        "mkdir -p /tmp/ctx && echo 'FROM busybox' > /tmp/ctx/Dockerfile && DOCKER_BUILDKIT=1 docker build /tmp/ctx",
        1,
        "unable to upgrade to h2c, received 501",
    );
}

fn hostile_requests_get_answers_not_crashes() {
    let labs = Labs::new();
    let lab = labs.lab("hostile");
    let curl = "curl -s --unix-socket /var/run/docker.sock -o /dev/null -w '%{http_code}'";
    let status =
        |path: &str, extra: &str| labs.ok(&lab, &format!("{curl} {extra} 'http://x{path}'"));
    assert_eq!(status("/v1.42/info", ""), "400");
    assert_eq!(status("/no/such/path", ""), "404");
    assert_eq!(status("/images/json", "-X DELETE"), "404");
    assert_eq!(
        status(&format!("/images/{}/json", "a".repeat(10_000)), ""),
        "400"
    );
    assert_eq!(status("/images/%0aevil/json", ""), "400");
    assert_eq!(status("/images/..%2F..%2Fetc/json", ""), "404");
    assert_eq!(status("/images/json?filters=notjson", ""), "400");
    assert_eq!(status("/images/nope/tag?repo=ok", "-X POST"), "404");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    assert_eq!(status("/images/busybox/tag?repo=UPPER", "-X POST"), "400");
    assert_eq!(status("/images/busybox/tag?repo=a%0ab", "-X POST"), "400");
    // A huge request line is refused before anything reads it.
    let big = "x".repeat(100_000);
    let run = labs.sh(&lab, &format!("{curl} 'http://x/images/json?f={big}'"));
    assert_eq!(run.stdout, "414", "stderr: {}", run.stderr);
    // The engine still answers.
    assert_eq!(status("/_ping", ""), "200");
}

fn labs_do_not_see_each_others_images() {
    let labs = Labs::new();
    let a = labs.lab("alice");
    let b = labs.lab("bob");
    labs.ok(
        &a,
        "docker pull -q busybox && docker tag busybox mine:secret",
    );
    assert_eq!(labs.ok(&b, "docker images -q"), "");
    labs.fails(
        &b,
        "docker image inspect mine:secret",
        1,
        "No such image: mine:secret",
    );
    assert!(labs.ok(&a, "docker images").contains("mine"));
    // Removing one lab removes its names, not the other lab's.
    labs.host().destroy_sandbox(&b).expect("destroy b");
    let store = Store::open(STORE.as_ref()).expect("store");
    let ns_b = Namespace::new(&format!("engine-{b}")).expect("namespace");
    assert!(store.list(&ns_b).expect("list").is_empty());
    assert!(labs.ok(&a, "docker images").contains("mine"));
    labs.host().destroy_sandbox(&a).expect("destroy a");
    let ns_a = Namespace::new(&format!("engine-{a}")).expect("namespace");
    assert!(store.list(&ns_a).expect("list").is_empty());
}

fn the_engine_comes_back_after_a_restart() {
    let mut labs = Labs::new();
    let lab = labs.lab("restart");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.restart();
    assert_eq!(
        labs.ok(&lab, "docker images --format '{{.Repository}}'")
            .trim(),
        "busybox"
    );
}

fn run_prints_output_and_passes_the_exit_code() {
    let labs = Labs::new();
    let lab = labs.lab("run");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    assert_eq!(labs.ok(&lab, "docker run --rm busybox echo hi"), "hi\n");
    let run = labs.sh(
        &lab,
        "docker run --name three busybox sh -c 'echo out; echo err >&2; exit 3'",
    );
    assert_eq!((run.code, run.stdout.as_str()), (3, "out\n"));
    assert_eq!(run.stderr, "err\n");
    assert_eq!(
        labs.ok(
            &lab,
            "docker ps -a --format '{{.Names}} {{.Status}} {{.Command}}'"
        )
        .split(" Exited (3) ")
        .next(),
        Some("three")
    );
    // --rm removed the first one.
    assert_eq!(labs.ok(&lab, "docker ps -a -q | wc -l").trim(), "1");
    assert_eq!(
        labs.ok(
            &lab,
            "docker inspect -f '{{.State.ExitCode}} {{.Name}} {{.Config.Image}}' three"
        )
        .trim(),
        "3 /three busybox"
    );
    // A command the image lacks fails the start, with the CLI's 127.
    labs.fails(
        &lab,
        "docker run --rm busybox nosuchcommand",
        127,
        "exec: \"nosuchcommand\": executable file not found in $PATH",
    );
    // A missing image is pulled first, as Docker does.
    let pulled = labs.sh(
        &lab,
        "docker rmi -f busybox >/dev/null; docker run --rm busybox true",
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    assert!(
        pulled
            .stderr
            .contains("Unable to find image 'busybox:latest' locally")
    );
}

fn a_detached_container_lives_its_whole_life() {
    let labs = Labs::new();
    let lab = labs.lab("life");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(
        &lab,
        "docker run -d --name web busybox sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done'",
    );
    labs.ok(
        &lab,
        "until docker logs web | grep -q 'tick 3'; do sleep 0.1; done",
    );
    assert!(
        labs.ok(&lab, "docker logs web")
            .starts_with("tick 0\ntick 1\n")
    );
    assert_eq!(labs.ok(&lab, "docker logs --tail 1 web").lines().count(), 1);
    assert_eq!(
        labs.ok(&lab, "docker exec web echo from-exec"),
        "from-exec\n"
    );
    assert_eq!(labs.sh(&lab, "docker exec web sh -c 'exit 7'").code, 7);
    assert_eq!(
        labs.ok(&lab, "docker ps --format '{{.Names}} {{.State}}'")
            .trim(),
        "web running"
    );
    labs.fails(
        &lab,
        "docker rm web",
        1,
        "You cannot remove a running container",
    );
    labs.ok(&lab, "docker stop -t 1 web");
    assert_eq!(
        labs.ok(
            &lab,
            "docker inspect -f '{{.State.Status}} {{.State.Running}}' web"
        )
        .trim(),
        "exited false"
    );
    assert_eq!(labs.ok(&lab, "docker ps -q"), "");
    labs.ok(&lab, "docker start web && docker restart -t 1 web");
    assert_eq!(
        labs.ok(&lab, "docker inspect -f '{{.State.Status}}' web")
            .trim(),
        "running"
    );
    labs.ok(&lab, "docker rename web site");
    labs.ok(&lab, "docker rm -f site");
    assert_eq!(labs.ok(&lab, "docker ps -a -q"), "");
    labs.fails(&lab, "docker logs site", 1, "No such container: site");
}

fn stdin_and_terminals_reach_the_container() {
    let labs = Labs::new();
    let lab = labs.lab("stdin");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    assert_eq!(
        labs.ok(&lab, "echo hello | docker run -i --rm busybox cat"),
        "hello\n"
    );
    // `script` gives the CLI the terminal a student's browser would.
    let shell = labs.ok(
        &lab,
        "printf 'echo in-$((6*7))\\nexit\\n' | script -qc 'docker run -it --rm busybox sh' /dev/null",
    );
    assert!(shell.contains("in-42"), "{shell}");
    labs.ok(&lab, "docker run -d --name box busybox sleep 600");
    let exec = labs.ok(
        &lab,
        "printf 'echo via-$((6*7))\\nexit\\n' | script -qc 'docker exec -it box sh' /dev/null",
    );
    assert!(exec.contains("via-42"), "{exec}");
    assert!(!exec.contains("job control turned off"), "{exec}");
}

/// `-t` gives a container's process a terminal of the container's own
/// devpts, as Docker does: `docker run -it` puts the main process on
/// `/dev/pts/0`, `docker exec -it` on a pty that exists inside, both
/// sized by the CLI's resize requests and both stopped by ^C. `script`
/// gives the CLI the terminal a student's browser would.
fn terminals_come_from_the_containers_devpts() {
    let labs = Labs::new();
    let lab = labs.lab("ttys");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    // The container polls until the CLI's resize arrives: Docker's API
    // 1.41 has no size at create, so the CLI sends one right after start.
    // `script`'s input, a FIFO opened for writing too, stays open and
    // silent: at its end `script` would type a byte that the container's
    // terminal echoes.
    labs.ok(
        &lab,
        r#"mkdir -p /tmp/t && mkfifo /tmp/t/in && cat > /tmp/t/sized <<'EOF'
tty
i=0
while [ "$(stty size)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "size=$(stty size)"
stat -c "owner=%u:%g:%a" "$(tty)"
ls /dev/pts | tr '\n' ' '
echo
EOF"#,
    );
    let run = labs.ok(
        &lab,
        "script -qec 'stty cols 123 rows 45; docker run -it --rm -v /tmp/t:/t busybox sh /t/sized \"45 123\"' /dev/null 0<>/tmp/t/in",
    );
    let lines: Vec<&str> = run.lines().map(str::trim).collect();
    assert_eq!(lines.first(), Some(&"/dev/pts/0"), "{run}");
    assert!(lines.contains(&"size=45 123"), "{run}");
    assert!(lines.contains(&"owner=0:5:620"), "{run}");
    assert!(lines.contains(&"0 ptmx"), "{run}");

    labs.ok(
        &lab,
        "docker run -d --name box -v /tmp/t:/t busybox sleep 600",
    );
    let run = labs.ok(
        &lab,
        "script -qec 'stty cols 77 rows 21; docker exec -it box sh /t/sized \"21 77\"' /dev/null 0<>/tmp/t/in",
    );
    let lines: Vec<&str> = run.lines().map(str::trim).collect();
    let tty = lines.first().copied().unwrap_or_default();
    let n = tty
        .strip_prefix("/dev/pts/")
        .unwrap_or_else(|| panic!("exec -it printed no pty path: {run}"));
    assert!(n.parse::<u32>().is_ok(), "{run}");
    assert!(lines.contains(&"size=21 77"), "{run}");
    assert!(lines.contains(&"owner=0:5:620"), "{run}");
    assert!(
        lines.iter().any(|l| l.split(' ').any(|e| e == n)),
        "{tty} is not in the container's /dev/pts: {run}"
    );

    // A command that is not there fails on a terminal as it does on pipes.
    let run = labs.sh(
        &lab,
        "script -qec 'docker run -it --rm busybox nosuchcommand' /dev/null 0<>/tmp/t/in",
    );
    assert_eq!(run.code, 127, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{}",
        run.stdout
    );

    // ^C is a byte on the CLI's raw terminal, typed into the container's
    // terminal, whose line discipline interrupts the foreground process.
    // It is typed once the process runs (earlier, it would hit the CLI).
    for (what, command, container, process) in [
        (
            "run",
            "docker run -it --rm --name fg busybox sleep 31",
            "fg",
            "sleep 31",
        ),
        ("exec", "docker exec -it box sleep 32", "box", "sleep 32"),
    ] {
        let run = labs.ok(
            &lab,
            &format!(
                "start=$(date +%s)
                 (until docker top {container} 2>/dev/null | grep -q '{process}'; do sleep 0.1; done
                  sleep 0.5; printf '\\003'; sleep 1) |
                   script -qec '{command}' /dev/null >/dev/null
                 echo \"code=$? took=$(( $(date +%s) - start ))\""
            ),
        );
        let took: u64 = run
            .trim()
            .rsplit("took=")
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(run.contains("code=130"), "{what}: ^C did not end it: {run}");
        assert!(took < 20, "{what}: ^C did not end it: {run}");
    }
}

/// Resizes with absurd sizes get a 400 that says what fits, for
/// containers and execs alike, and the engine carries on.
fn absurd_resizes_are_refused() {
    let labs = Labs::new();
    let lab = labs.lab("resize");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    let id = labs
        .ok(&lab, "docker run -dit busybox sh")
        .trim()
        .to_owned();
    let exec = labs.ok(
        &lab,
        &format!(
            "curl -s --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \
             -d '{{\"Cmd\":[\"sleep\",\"60\"],\"Tty\":true}}' http://x/containers/{id}/exec | jq -r .Id"
        ),
    );
    let exec = exec.trim();
    labs.ok(
        &lab,
        &format!(
            "curl -s --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \
             -d '{{\"Detach\":true,\"Tty\":true}}' http://x/exec/{exec}/start"
        ),
    );
    let curl = "curl -s --unix-socket /var/run/docker.sock -X POST -w ' %{http_code}'";
    for target in [format!("containers/{id}"), format!("exec/{exec}")] {
        for query in [
            "h=0&w=80",
            "h=24&w=0",
            "h=65535&w=80",
            "h=24&w=70000",
            "h=-1&w=80",
            "h=abc&w=80",
            "w=80",
            "",
        ] {
            let answer = labs.ok(&lab, &format!("{curl} 'http://x/{target}/resize?{query}'"));
            assert!(
                answer.ends_with(" 400") && answer.contains("must be a number from 1 to 1000"),
                "{target} resize?{query}: {answer}"
            );
        }
        let answer = labs.ok(
            &lab,
            &format!("{curl} 'http://x/{target}/resize?h=40&w=100'"),
        );
        assert!(answer.ends_with(" 200"), "{target}: {answer}");
    }
    assert_eq!(
        labs.ok(
            &lab,
            &format!("docker inspect -f '{{{{.State.Running}}}}' {id}")
        )
        .trim(),
        "true"
    );
}

fn names_limits_and_unsupported_features_say_so() {
    let labs = Labs::new();
    let lab = labs.lab("limits");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(&lab, "docker create --name dup busybox true");
    labs.fails(
        &lab,
        "docker create --name dup busybox true",
        1,
        "Conflict. The container name \"/dup\" is already in use",
    );
    labs.fails(
        &lab,
        "docker create --name '-bad' busybox true",
        1,
        "Invalid container name",
    );
    labs.fails(
        &lab,
        "docker run --rm nope-image true",
        125,
        "pull access denied for nope-image",
    );

    labs.ok(
        &lab,
        "for i in $(seq 2 32); do docker create busybox true >/dev/null; done",
    );
    labs.fails(
        &lab,
        "docker create busybox true",
        1,
        &format!(
            "this lab has {} containers, its limit",
            engine::MAX_CONTAINERS
        ),
    );
    labs.ok(&lab, "docker container prune -f >/dev/null");
    assert_eq!(labs.ok(&lab, "docker ps -a -q"), "");
}

fn hostile_container_requests_are_refused() {
    let labs = Labs::new();
    let lab = labs.lab("hostilec");
    let other = labs.lab("victim");
    labs.ok(&other, "docker pull -q busybox >/dev/null");
    let victim = labs
        .ok(&other, "docker run -d busybox sleep 600")
        .trim()
        .to_owned();
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    let curl = "curl -s --unix-socket /var/run/docker.sock -o /dev/null -w '%{http_code}'";
    let status =
        |path: &str, extra: &str| labs.ok(&lab, &format!("{curl} {extra} 'http://x{path}'"));
    // Another lab's container, by its full ID, does not exist here.
    assert_eq!(status(&format!("/containers/{victim}/json"), ""), "404");
    assert_eq!(
        status(&format!("/containers/{victim}/kill"), "-X POST"),
        "404"
    );
    // A body over the limit, and JSON that is not a config.
    labs.ok(&lab, "head -c 2000000 /dev/zero | tr '\\0' a > /tmp/big");
    assert_eq!(
        status(
            "/containers/create",
            "-X POST -H 'Content-Type: application/json' --data-binary @/tmp/big"
        ),
        "400"
    );
    assert_eq!(
        status(
            "/containers/create",
            "-X POST -H 'Content-Type: application/json' -d '{\"Image\":5}'"
        ),
        "400"
    );
    assert_eq!(
        status(
            "/containers/create?name=a%0ab",
            "-X POST -H 'Content-Type: application/json' -d '{\"Image\":\"busybox\"}'"
        ),
        "400"
    );
    assert_eq!(status("/containers/nope/attach?stream=1", "-X POST"), "404");
    assert_eq!(status("/exec/nope/start", "-X POST -d '{}'"), "404");
    assert_eq!(
        status("/containers/nope/wait?condition=bogus", "-X POST"),
        "404"
    );
    // The victim still runs, untouched.
    assert_eq!(
        labs.ok(
            &other,
            &format!("docker inspect -f '{{{{.State.Running}}}}' {victim}")
        )
        .trim(),
        "true"
    );
}

fn containers_run_inside_the_labs_boundary() {
    let labs = Labs::new();
    let a = labs.lab("bounda");
    let b = labs.lab("boundb");
    labs.ok(&a, "docker pull -q busybox >/dev/null");
    labs.ok(&a, "docker run -d --name secret busybox sleep 600");
    // The container maps root to the lab's own uid range, as the node does.
    assert_eq!(
        labs.ok(&a, "docker exec secret cat /proc/self/uid_map"),
        labs.ok(&a, "cat /proc/self/uid_map")
    );
    // Its own pid namespace: it sees itself, not the node.
    let ps = labs.ok(&a, "docker exec secret ps -o comm");
    assert!(!ps.contains("bash"), "{ps}");
    assert!(ps.contains("sleep"), "{ps}");
    // The other lab sees nothing of it.
    assert_eq!(labs.ok(&b, "docker ps -a -q"), "");
    labs.fails(&b, "docker logs secret", 1, "No such container: secret");
}

fn containers_survive_a_restart_as_records() {
    let mut labs = Labs::new();
    let lab = labs.lab("records");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    assert_eq!(
        labs.sh(&lab, "docker run --name done busybox sh -c 'exit 2'")
            .code,
        2
    );
    labs.restart();
    assert_eq!(
        labs.ok(&lab, "docker ps -a --format '{{.Names}} {{.State}}'")
            .trim(),
        "done exited"
    );
    assert_eq!(
        labs.ok(&lab, "docker inspect -f '{{.State.ExitCode}}' done")
            .trim(),
        "2"
    );
    assert_eq!(labs.ok(&lab, "docker start -a done; echo $?").trim(), "2");
}

/// Containers running when the engine restarts keep running: their
/// output before and after, their published ports, exec, and in the end
/// their exit code are all there for the next engine.
fn running_containers_outlive_an_engine_restart() {
    let mut labs = Labs::new();
    let lab = labs.lab("outlive");
    labs.ok(
        &lab,
        "docker pull -q busybox >/dev/null && docker pull -q nginx >/dev/null",
    );
    labs.ok(
        &lab,
        "docker run -d --name ticker busybox sh -c 'echo before; read line < /tmp/go 2>/dev/null; while [ ! -e /tmp/stop ]; do sleep 0.05; done; echo after; exit 7'",
    );
    labs.ok(&lab, "docker run -d --name web -p 8080:80 nginx");
    labs.ok(&lab, "docker run -dit --name shell busybox sh");
    labs.ok(
        &lab,
        "until docker logs ticker | grep -q before; do sleep 0.05; done",
    );
    labs.restart();
    assert_eq!(
        labs.ok(&lab, "docker ps --format '{{.Names}} {{.State}}' | sort"),
        "shell running\nticker running\nweb running\n"
    );
    assert_eq!(labs.ok(&lab, "docker logs ticker"), "before\n");
    assert_eq!(
        labs.ok(&lab, "for i in $(seq 50); do code=$(curl -s -o /dev/null -w '%{http_code}' localhost:8080) && break; sleep 0.1; done; printf %s $code"),
        "200"
    );
    assert_eq!(labs.ok(&lab, "docker exec shell echo alive"), "alive\n");
    labs.ok(&lab, "docker exec ticker touch /tmp/stop");
    assert_eq!(labs.ok(&lab, "docker wait ticker"), "7\n");
    assert_eq!(labs.ok(&lab, "docker logs ticker"), "before\nafter\n");
    labs.ok(&lab, "docker rm -f web shell ticker >/dev/null");
}

/// `-p` on one address of the node, and `-p …/udp` relayed both ways.
fn ports_publish_on_an_address_and_over_udp() {
    let labs = Labs::new();
    let lab = labs.lab("udp");
    labs.ok(&lab, "docker pull -q debian >/dev/null");
    // A UDP echo server in Perl, which Debian's base system has.
    labs.ok(
        &lab,
        r#"docker run -d --name echo -p 127.0.0.1:5353:53/udp debian perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 53, Proto => "udp") or die; while ($s->recv($m, 1024)) { $s->send($m) }'"#,
    );
    assert_eq!(
        labs.ok(&lab, "docker port echo").trim(),
        "53/udp -> 127.0.0.1:5353"
    );
    assert_eq!(
        labs.ok(&lab, "docker ps --format '{{.Ports}}'").trim(),
        "127.0.0.1:5353->53/udp"
    );
    let echoed = labs.ok(
        &lab,
        "for i in $(seq 30); do r=$(exec 3<>/dev/udp/127.0.0.1/5353; echo ping-udp >&3; timeout 1 head -n1 <&3); [ -n \"$r\" ] && echo \"$r\" && break; done",
    );
    assert_eq!(echoed.trim(), "ping-udp");
    let elsewhere = labs.sh(&lab, "docker run -d -p 10.9.9.9:80:80 debian true");
    assert_ne!(elsewhere.code, 0);
    assert!(
        elsewhere.stderr.contains("not an address of the node"),
        "{}",
        elsewhere.stderr
    );
    labs.ok(&lab, "docker rm -f echo >/dev/null");
}

fn ports_publish_on_the_node_and_containers_share_a_bridge() {
    let labs = Labs::new();
    let lab = labs.lab("ports");
    labs.ok(
        &lab,
        "docker pull -q nginx >/dev/null && docker pull -q busybox >/dev/null",
    );
    labs.ok(&lab, "docker run -d --name web -p 8080:80 nginx");
    assert_eq!(
        labs.ok(&lab, "for i in $(seq 50); do code=$(curl -s -o /dev/null -w '%{http_code}' localhost:8080) && break; sleep 0.1; done; printf %s $code"),
        "200"
    );
    assert_eq!(
        labs.ok(&lab, "docker port web").trim(),
        "80/tcp -> 0.0.0.0:8080"
    );
    assert_eq!(
        labs.ok(&lab, "docker ps --format '{{.Ports}}'").trim(),
        "0.0.0.0:8080->80/tcp"
    );
    let ip = labs.ok(
        &lab,
        "docker inspect -f '{{.NetworkSettings.IPAddress}}' web",
    );
    let ip = ip.trim();
    assert!(ip.starts_with("172.17.0."), "{ip}");
    // Another container reaches it over the lab's bridge.
    let page = labs.ok(
        &lab,
        &format!("docker run --rm busybox wget -qO- http://{ip}/"),
    );
    assert!(page.contains("nginx"), "{page}");
    labs.fails(
        &lab,
        "docker run -d -p 8080:80 nginx",
        125,
        "Bind for 0.0.0.0:8080 failed: port is already allocated",
    );
    // --network host is the node's network: its published port, its bridge.
    let via_node = labs.ok(
        &lab,
        "docker run --rm --network host busybox wget -qO- http://127.0.0.1:8080/",
    );
    assert!(via_node.contains("nginx"), "{via_node}");
    assert!(
        labs.ok(&lab, "docker run --rm --network host busybox ip -o link")
            .contains("docker0")
    );
    let none = labs.ok(&lab, "docker run --rm --network none busybox ip -o -4 addr");
    assert!(!none.contains("eth0"), "{none}");
    assert!(
        labs.ok(&lab, "docker logs web")
            .contains("\"GET / HTTP/1.1\" 200")
    );
    // The port goes with the container.
    labs.ok(&lab, "docker rm -f web");
    assert_ne!(
        labs.sh(&lab, "curl -s -o /dev/null localhost:8080").code,
        0,
        "the published port outlived its container"
    );
}

fn push_and_pull_through_a_registry_in_the_lab() {
    let labs = Labs::new();
    let lab = labs.lab("registry");
    labs.ok(
        &lab,
        "docker pull -q registry:2 >/dev/null && docker pull -q busybox >/dev/null",
    );
    labs.ok(
        &lab,
        "docker run -d --name registry -p 5000:5000 registry:2",
    );
    labs.ok(
        &lab,
        "until curl -sf localhost:5000/v2/ >/dev/null; do sleep 0.1; done",
    );
    labs.ok(&lab, "docker tag busybox localhost:5000/busybox:v1");
    let pushed = labs.ok(&lab, "docker push localhost:5000/busybox:v1");
    let digest = labs.ok(
        &lab,
        "docker image inspect -f '{{index .RepoDigests 0}}' localhost:5000/busybox:v1",
    );
    let digest = digest
        .trim()
        .rsplit('@')
        .next()
        .expect("a digest")
        .to_owned();
    assert!(
        pushed.contains("The push refers to repository [localhost:5000/busybox]")
            && pushed.contains(": Pushed")
            && pushed.contains(&format!("v1: digest: {digest} size: ")),
        "{pushed}"
    );
    assert!(
        labs.ok(&lab, "docker push localhost:5000/busybox:v1")
            .contains("Layer already exists")
    );
    assert_eq!(
        labs.ok(&lab, "curl -s localhost:5000/v2/busybox/tags/list"),
        r#"{"name":"busybox","tags":["v1"]}"#
    );
    labs.ok(&lab, "docker rmi localhost:5000/busybox:v1");
    let pulled = labs.ok(&lab, "docker pull localhost:5000/busybox:v1");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    // One progress line per layer, as dockerd prints; none for the config.
    let config = labs.ok(&lab, "docker image inspect -f '{{.Id}}' busybox");
    let config = &config.trim().trim_start_matches("sha256:")[..12];
    assert!(!pulled.contains(&format!("{config}: ")), "{pulled}");
    assert_eq!(
        pulled
            .lines()
            .filter(|l| l.ends_with(": Already exists") || l.ends_with(": Pull complete"))
            .count()
            .to_string(),
        labs.ok(
            &lab,
            "docker image inspect -f '{{len .RootFS.Layers}}' busybox"
        )
        .trim(),
        "{pulled}"
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm localhost:5000/busybox:v1 echo round-trip"
        ),
        "round-trip\n"
    );
    labs.fails(
        &lab,
        "docker pull localhost:5000/nope:v1",
        1,
        "manifest for localhost:5000/nope:v1 not found: manifest unknown",
    );
    labs.fails(
        &lab,
        "docker push busybox",
        1,
        "cannot push busybox:latest to Docker Hub from a lab",
    );
    labs.ok(&lab, "docker tag busybox localhost:5999/busybox");
    labs.fails(
        &lab,
        "docker push localhost:5999/busybox",
        1,
        "dial tcp 127.0.0.1:5999: connect:",
    );
    let login = labs.ok(&lab, "docker login -u student -p any localhost:5000 2>&1");
    assert!(login.contains("Login Succeeded"), "{login}");
}

fn save_load_top_and_stats() {
    let labs = Labs::new();
    let lab = labs.lab("saveload");
    labs.ok(
        &lab,
        "docker pull -q busybox >/dev/null && docker tag busybox mine:v1",
    );
    labs.ok(&lab, "cd /tmp && docker save -o mine.tar mine:v1");
    let members = labs.ok(&lab, "tar tf /tmp/mine.tar");
    assert!(
        members.contains("manifest.json") && members.contains("layer.tar"),
        "{members}"
    );
    labs.ok(&lab, "docker rmi mine:v1");
    assert_eq!(
        labs.ok(&lab, "docker load -i /tmp/mine.tar").trim(),
        "Loaded image: mine:v1"
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm mine:v1 echo loaded"),
        "loaded\n"
    );
    labs.fails(
        &lab,
        "echo garbage > /tmp/bad.tar && docker load -i /tmp/bad.tar",
        1,
        "cannot load the archive",
    );
    labs.fails(
        &lab,
        "head -c 100000 /tmp/mine.tar > /tmp/cut.tar && docker load -i /tmp/cut.tar",
        1,
        "cannot load the archive",
    );
    labs.ok(
        &lab,
        "docker run -d --name spin busybox sh -c 'while true; do :; done'",
    );
    let top = labs.ok(&lab, "docker top spin");
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.contains("sh -c while true; do :; done"), "{top}");
    let stats = labs.ok(
        &lab,
        "docker stats --no-stream --format '{{.Name}} {{.PIDs}} {{.CPUPerc}}' spin",
    );
    let fields: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(&fields[..2], ["spin", "2"], "{stats}");
    let cpu: f64 = fields[2]
        .trim_end_matches('%')
        .parse()
        .expect("a percentage");
    assert!(cpu > 10.0, "a busy loop used only {cpu}% of a CPU");
}

/// The same command sequences, through the same CLI, against a lab's
/// engine and against real dockerd: exit codes, output and messages must
/// match once IDs and times are masked.
fn the_engine_answers_like_dockerd() {
    let dockerd = Dockerd::start();
    let labs = Labs::new();
    let lab = labs.lab("oracle");
    // busybox from the catalog into both engines.
    let store = Store::open(STORE.as_ref()).expect("store");
    let archive = dockerd.dir.path().join("busybox.tar");
    let file = std::fs::File::create(&archive).expect("archive");
    store
        .export_docker_save(
            &images::hub(),
            &[Reference::parse("busybox").expect("reference")],
            file,
        )
        .expect("export busybox");
    let loaded = dockerd.run("docker load -i busybox.tar");
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    let steps = [
        "docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
        "docker image inspect busybox -f '{{.Os}} {{.Architecture}} {{json .Config.Cmd}} {{json .RepoTags}}'",
        "docker history --no-trunc --format '{{.ID}}|{{.CreatedBy}}|{{.Size}}' busybox",
        "docker run --rm busybox echo hi",
        "docker run --name cmp1 busybox sh -c 'echo out; echo err >&2; exit 3'",
        "docker ps -a --format '{{.Names}}|{{.Image}}|{{.State}}|{{.Status}}'",
        "docker ps -a --no-trunc --format '{{.Command}}'",
        "docker inspect -f '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}} {{json .Config.Cmd}} {{.Path}} {{json .Args}}' cmp1",
        "docker logs cmp1",
        "docker run --name cmp3 busybox sh -c 'echo a; echo b; echo c'",
        "docker logs --tail 2 cmp3",
        "docker start -a cmp1",
        "docker rm cmp1",
        "docker rm cmp1",
        "docker logs nope",
        "docker image inspect nope",
        "docker rmi nope",
        "docker run -d --name cmp2 busybox sleep 1000",
        "docker exec cmp2 sh -c 'echo in; echo err >&2; exit 5'",
        "echo piped | docker exec -i cmp2 cat",
        "docker rm cmp2",
        "docker create --name cmp2 busybox true",
        "docker kill -s KILL cmp2 && docker wait cmp2",
        "docker kill cmp2",
        "docker rm -f cmp2",
        "echo hello | docker run -i --rm busybox cat",
        "docker run --rm -e A=1 -w /tmp busybox sh -c 'echo $A $(pwd)'",
        "docker run --rm busybox sh -c 'exit 42'",
        "docker tag busybox other:v2 && docker images --format '{{.Repository}}:{{.Tag}}' | sort",
        "docker rmi other:v2",
        "docker run --name cmp4 busybox sh -c 'echo hi > /hello'",
        "docker diff cmp4",
        "docker commit -c 'CMD [\"cat\",\"/hello\"]' cmp4 snap:v1 >/dev/null && docker run --rm snap:v1",
        "docker history --format '{{.CreatedBy}}' snap:v1 | head -1",
        "docker rm cmp4 && docker rmi snap:v1 | grep -c Untagged",
        "docker ps -aq | wc -l",
    ];
    let steps: Vec<(&str, &str)> = steps.iter().map(|&step| (step, step)).collect();
    common::assert_same_as_dockerd(&labs, &lab, &dockerd, &steps);
}

fn volumes_and_bind_mounts_come_from_the_node() {
    let labs = Labs::new();
    let lab = labs.lab("volumes");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(
        &lab,
        "mkdir -p /root/src && echo from-node > /root/src/file.txt",
    );
    assert_eq!(
        labs.ok(
            &lab,
            "cd /root/src && docker run --rm -v \"$PWD\":/src busybox cat /src/file.txt"
        ),
        "from-node\n"
    );
    labs.ok(
        &lab,
        "docker run --rm -v /root/src:/src busybox sh -c 'echo back > /src/back.txt'",
    );
    assert_eq!(labs.ok(&lab, "cat /root/src/back.txt"), "back\n");
    labs.fails(
        &lab,
        "docker run --rm -v /root/src:/src:ro busybox sh -c 'echo x > /src/nope'",
        1,
        "Read-only file system",
    );
    // `/` is the node's root, and a symlink cannot lead out of the node.
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm -v /:/host busybox cat /host/etc/hostname"
        ),
        "node1\n"
    );
    labs.ok(&lab, "ln -s /etc /root/evil");
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm -v /root/evil:/x busybox cat /x/hostname"
        ),
        "node1\n"
    );
    // A missing source is created, as dockerd does.
    labs.ok(
        &lab,
        "docker run --rm -v /srv/new:/x busybox true && test -d /srv/new",
    );
    // Named volumes live where Docker keeps them, and keep their data.
    labs.ok(&lab, "docker volume create data");
    labs.ok(
        &lab,
        "docker run --rm -v data:/data busybox sh -c 'echo kept > /data/f'",
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm -v data:/data busybox cat /data/f"),
        "kept\n"
    );
    assert_eq!(
        labs.ok(&lab, "cat /var/lib/docker/volumes/data/_data/f"),
        "kept\n"
    );
    assert!(
        labs.ok(&lab, "docker volume ls -q")
            .lines()
            .any(|l| l == "data")
    );
    labs.ok(
        &lab,
        "docker run -d --name holder -v data:/data busybox sleep 600",
    );
    assert_eq!(
        labs.ok(&lab, "docker inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}' holder").trim(),
        "volume data /data"
    );
    let df = labs.ok(
        &lab,
        "docker system df --format '{{.Type}} {{.TotalCount}} {{.Active}}'",
    );
    assert_eq!(
        df.lines().collect::<Vec<_>>(),
        vec![
            "Images 1 1",
            "Containers 1 1",
            "Local Volumes 1 1",
            "Build Cache 0 0"
        ],
        "{df}"
    );
    labs.fails(&lab, "docker volume rm data", 1, "volume is in use");
    labs.ok(&lab, "docker rm -f holder && docker volume rm data");
    labs.fails(
        &lab,
        "docker volume inspect data",
        1,
        "No such volume: data",
    );
    // `-v /path` alone, and an image's VOLUME, get a volume of their own,
    // which `--rm` and `rm -v` delete.
    labs.ok(&lab, "docker pull -q registry:2 >/dev/null");
    labs.ok(&lab, "docker run -d --name reg registry:2");
    assert_eq!(
        labs.ok(
            &lab,
            "docker inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}' reg"
        )
        .trim(),
        "volume /var/lib/registry"
    );
    assert_eq!(labs.ok(&lab, "docker volume ls -q | wc -l").trim(), "1");
    labs.ok(&lab, "docker rm -f -v reg");
    labs.ok(&lab, "docker run --rm -v /scratch busybox touch /scratch/x");
    assert_eq!(labs.ok(&lab, "docker volume ls -q | wc -l").trim(), "0");
    labs.fails(
        &lab,
        "docker volume create 'bad name'",
        1,
        "includes invalid characters",
    );
    labs.fails(
        &lab,
        "docker run --rm -v /a/../b:/c busybox true",
        125,
        "invalid volume specification",
    );
}

fn user_networks_give_containers_each_others_names() {
    let labs = Labs::new();
    let lab = labs.lab("networks");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(&lab, "docker network create app");
    assert_eq!(
        labs.ok(
            &lab,
            "docker network ls --format '{{.Name}} {{.Driver}}' | sort"
        ),
        "app bridge\nbridge bridge\nhost host\nnone null\n"
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker network inspect app -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}'"
        )
        .trim(),
        "172.18.0.0/16 172.18.0.1"
    );
    labs.ok(
        &lab,
        "docker run -d --network app --name db busybox sleep 600",
    );
    let ping = labs.ok(
        &lab,
        "docker run --rm --network app busybox ping -c1 -W2 db",
    );
    assert!(ping.contains("1 packets received"), "{ping}");
    // A container started later is added to the names of those running.
    labs.ok(
        &lab,
        "docker run -d --network app --name cache busybox sleep 600",
    );
    let ping = labs.ok(&lab, "docker exec db ping -c1 -W2 cache");
    assert!(ping.contains("1 packets received"), "{ping}");
    assert_eq!(
        labs.ok(&lab, "docker exec cache cat /sys/class/net/eth0/address"),
        "02:42:ac:12:00:03\n",
        "MACs follow addresses, as on Docker"
    );
    // And over DNS, from the network's own server at its gateway.
    assert_eq!(
        labs.ok(&lab, "docker exec db cat /etc/resolv.conf"),
        "nameserver 172.18.0.1\noptions ndots:0\n"
    );
    let found = labs.ok(&lab, "docker exec db nslookup cache");
    assert!(found.contains("172.18.0.3"), "{found}");
    let short = labs.ok(&lab, "docker exec db sh -c 'nslookup $(hostname)'");
    assert!(
        short.contains("172.18.0.2"),
        "a container finds its own short ID: {short}"
    );
    assert_ne!(
        labs.sh(&lab, "docker exec db nslookup nope.example").code,
        0
    );
    labs.ok(&lab, "docker rm -f cache");
    assert_ne!(
        labs.sh(&lab, "docker exec db nslookup cache").code,
        0,
        "a removed container's name still resolves"
    );
    assert!(
        !labs
            .ok(&lab, "docker exec db cat /etc/hosts")
            .contains("cache"),
        "a removed container's name stays"
    );
    let written = labs.sh(
        &lab,
        "docker exec db sh -c 'echo 1.2.3.4 evil >> /etc/hosts'",
    );
    assert_ne!(written.code, 0, "/etc/hosts on a network is the engine's");
    assert!(
        labs.ok(
            &lab,
            "docker network inspect app -f '{{range .Containers}}{{.Name}}{{end}}'"
        )
        .contains("db")
    );
    // The default bridge has no names, as on Docker.
    assert_ne!(
        labs.sh(&lab, "docker run --rm busybox ping -c1 -W1 db")
            .code,
        0
    );
    labs.fails(&lab, "docker network rm app", 1, "has active endpoints");
    labs.fails(
        &lab,
        "docker network create app",
        1,
        "network with name app already exists",
    );
    labs.fails(
        &lab,
        "docker run --rm --network nope busybox true",
        125,
        "network nope not found",
    );
    labs.ok(&lab, "docker rm -f db && docker network rm app");
    labs.fails(
        &lab,
        "docker network inspect app",
        1,
        "No such network: app",
    );
    labs.fails(&lab, "docker network rm bridge", 1, "pre-defined network");
}

fn docker_cp_copies_both_ways() {
    let labs = Labs::new();
    let lab = labs.lab("copy");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(
        &lab,
        "docker run -d --name box busybox sh -c 'echo hi > /hello; mkdir -p /d/e; echo x > /d/e/f; sleep 600'",
    );
    labs.ok(
        &lab,
        "until docker exec box test -f /d/e/f; do sleep 0.1; done",
    );
    assert_eq!(
        labs.ok(&lab, "cd /tmp && docker cp box:/hello . && cat hello"),
        "hi\n"
    );
    assert_eq!(
        labs.ok(&lab, "cd /tmp && docker cp box:/d ./dcopy && cat dcopy/e/f"),
        "x\n"
    );
    labs.ok(
        &lab,
        "echo payload > /tmp/file && docker cp /tmp/file box:/tmp/",
    );
    assert_eq!(labs.ok(&lab, "docker exec box cat /tmp/file"), "payload\n");
    labs.fails(
        &lab,
        "cd /tmp && docker cp box:/nope .",
        1,
        "No such container:path: box:/nope",
    );
    // A name that looks like an option stays a name.
    labs.ok(&lab, "docker exec box sh -c 'echo safe > /tmp/-rf'");
    assert_eq!(
        labs.ok(&lab, "cd /tmp && docker cp box:/tmp/-rf ./dash && cat dash"),
        "safe\n"
    );
    labs.ok(&lab, "docker stop -t 0 box");
    // Stopped, its files are read from its kept writable layer.
    assert_eq!(
        labs.ok(&lab, "cd /tmp && docker cp box:/hello h2 && cat h2"),
        "hi\n"
    );
    // And copied into: its next start finds the file, owned by its root.
    labs.ok(
        &lab,
        "cd /tmp && echo into-stopped > h3 && docker cp h3 box:/d/",
    );
    labs.ok(&lab, "docker start box");
    assert_eq!(
        labs.ok(
            &lab,
            "docker exec box sh -c 'cat /d/h3; stat -c %u:%g /d/h3'"
        ),
        "into-stopped\n0:0\n"
    );
    labs.ok(&lab, "docker rm -f box");
    // A container that never ran takes files too, and starts with them.
    labs.ok(&lab, "docker create --name fresh busybox cat /h3");
    labs.ok(&lab, "cd /tmp && docker cp h3 fresh:/");
    assert_eq!(labs.ok(&lab, "docker start -a fresh"), "into-stopped\n");
}

/// A container's files outlive its process: `start` finds them again,
/// `diff` lists them as dockerd does, `commit` makes an image of them,
/// `export` and `cp` read them while it is stopped.
fn a_stopped_containers_files_are_kept_diffed_committed_and_exported() {
    let labs = Labs::new();
    let lab = labs.lab("files");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    labs.ok(
        &lab,
        "docker run --name c1 busybox sh -c 'echo hi > /hello; mkdir -p /tmp/a/b; echo x > /tmp/a/b/f; rm /bin/ls; touch /etc/new'",
    );
    assert_eq!(
        labs.ok(&lab, "docker diff c1"),
        "C /bin\nD /bin/ls\nC /etc\nA /etc/new\nA /hello\nC /tmp\nA /tmp/a\nA /tmp/a/b\nA /tmp/a/b/f\n"
    );
    // The files are still there for the next run of the same container.
    assert_eq!(
        labs.ok(
            &lab,
            "docker start -a c1 >/dev/null; docker diff c1 | grep -c ."
        ),
        "9\n"
    );
    labs.ok(&lab, "docker rm c1");
    labs.ok(
        &lab,
        "docker run --name c2 busybox sh -c 'echo kept > /data.txt && chown 1000:1000 /data.txt'",
    );
    assert_eq!(
        labs.ok(&lab, "docker start -a c2 >/dev/null; docker run --rm busybox true; docker start -a c2; docker diff c2"),
        "A /data.txt\n"
    );
    let id = labs.ok(
        &lab,
        "docker commit -m 'a note' -a me -c 'CMD [\"cat\",\"/data.txt\"]' -c 'ENV GREETING=hello' c2 mine:v1",
    );
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(labs.ok(&lab, "docker run --rm mine:v1"), "kept\n");
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm mine:v1 sh -c 'echo $GREETING; stat -c %u:%g /data.txt; ls /bin/ls'"
        ),
        "hello\n1000:1000\n/bin/ls\n"
    );
    let history = labs.ok(
        &lab,
        "docker history --no-trunc --format '{{.CreatedBy}}|{{.Comment}}' mine:v1 | head -1",
    );
    assert!(
        history.starts_with("sh -c echo kept > /data.txt"),
        "{history}"
    );
    assert!(history.trim_end().ends_with("|a note"), "{history}");
    assert_eq!(
        labs.ok(
            &lab,
            "docker image inspect mine:v1 -f '{{.Author}} {{.Comment}} {{json .Config.Cmd}}'"
        ),
        "me a note [\"cat\",\"/data.txt\"]\n"
    );
    // Saved, removed and loaded again, the image runs the same.
    labs.ok(&lab, "docker save -o /root/mine.tar mine:v1 && docker rmi mine:v1 >/dev/null && docker load -i /root/mine.tar >/dev/null");
    assert_eq!(labs.ok(&lab, "docker run --rm mine:v1"), "kept\n");
    // An export imported again is the same tree as one layer.
    let imported = labs.ok(
        &lab,
        "docker export c2 | docker import -c 'CMD [\"cat\",\"/data.txt\"]' -m flat - flat:v1",
    );
    assert!(imported.starts_with("sha256:"), "{imported}");
    assert_eq!(labs.ok(&lab, "docker run --rm flat:v1"), "kept\n");
    assert_eq!(
        labs.ok(&lab, "docker history --format '{{.Comment}}' flat:v1"),
        "flat\n"
    );
    let garbage = labs.sh(&lab, "echo garbage | docker import - bad:v1");
    assert_ne!(garbage.code, 0);
    assert!(
        garbage.stderr.contains("Error processing tar file"),
        "{}",
        garbage.stderr
    );
    let escape = labs.sh(
        &lab,
        "cd /tmp && echo x > esc && tar --transform 's,^,../../,' -cf - esc | docker import - evil:v1",
    );
    assert_ne!(escape.code, 0, "a tar climbing out was imported");
    assert!(escape.stderr.contains(".."), "{}", escape.stderr);
    // Nor copied into a stopped container, whatever the API is sent.
    assert_eq!(
        labs.ok(
            &lab,
            "cd /tmp && tar --transform 's,^,../../,' -cf - esc | curl -s --unix-socket /var/run/docker.sock -o /dev/null -w '%{http_code}' -X PUT 'http://x/v1.41/containers/c2/archive?path=/tmp' --data-binary @-",
        ),
        "400"
    );
    // While stopped: export and cp read the files, owners as inside.
    let listing = labs.ok(
        &lab,
        "docker export c2 | tar tv | grep -E ' data.txt| bin/busybox'",
    );
    assert!(
        listing.contains("1000/1000") && listing.contains("data.txt"),
        "{listing}"
    );
    assert!(listing.contains("bin/busybox"), "{listing}");
    assert_eq!(
        labs.ok(&lab, "cd /root && docker cp c2:/data.txt . && cat data.txt"),
        "kept\n"
    );
    let missing = labs.sh(&lab, "docker cp c2:/nope /root/");
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("No such container:path"),
        "{}",
        missing.stderr
    );
    // A symlink that points out of the container leads nowhere outside it.
    let secret = format!("/tmp/layerlab-host-secret-{}", std::process::id());
    std::fs::write(&secret, "host secret\n").expect("write a host file");
    labs.ok(
        &lab,
        &format!("docker run --name c3 busybox sh -c 'ln -s {secret} /abs; ln -s ../../../../../..{secret} /rel; ln -s /tmp /tmpdir'"),
    );
    for source in ["/abs", "/rel", "/tmpdir/../../..{secret}"] {
        let source = source.replace("{secret}", &secret);
        labs.sh(&lab, &format!("docker cp -L c3:{source} /root/copied 2>&1"));
        let copied = labs.ok(&lab, "cat /root/copied 2>/dev/null; rm -rf /root/copied");
        assert!(
            !copied.contains("host secret"),
            "{source} led to the host: {copied}"
        );
    }
    // Nor does a copy into it: the link resolves inside the container.
    labs.ok(&lab, "echo x > /root/f && docker cp /root/f c3:/abs");
    assert_eq!(
        labs.ok(
            &lab,
            &format!("docker export c3 | tar -xO {}", &secret[1..])
        ),
        "x\n"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).expect("the host file"),
        "host secret\n"
    );
    std::fs::remove_file(&secret).expect("remove the host file");
    assert_eq!(
        labs.ok(&lab, "docker diff nope 2>&1; echo $?"),
        "Error response from daemon: No such container: nope\n1\n"
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker create --name fresh busybox >/dev/null; docker diff fresh; echo $?"
        ),
        "0\n"
    );
    // Without a name the image is dangling: <none>, until pruned.
    let unnamed = labs.ok(&lab, "docker commit c2");
    let short = &unnamed.trim().trim_start_matches("sha256:")[..12];
    assert_eq!(
        labs.ok(
            &lab,
            "docker images -f dangling=true --format '{{.Repository}}:{{.Tag}} {{.ID}}'"
        ),
        format!("<none>:<none> {short}\n")
    );
    assert_eq!(
        labs.ok(&lab, &format!("docker run --rm {short} cat /data.txt")),
        "kept\n"
    );
    // A tag moved to a new image leaves the old one dangling, as a rebuild does.
    labs.ok(
        &lab,
        "docker commit c2 moving:v1 >/dev/null && sleep 1 && docker commit c2 moving:v1 >/dev/null",
    );
    assert_eq!(
        labs.ok(&lab, "docker images -qf dangling=true | wc -l"),
        "2\n"
    );
    let pruned = labs.ok(&lab, "docker image prune -f");
    assert!(
        pruned.contains(&format!(
            "deleted: sha256:{}",
            unnamed.trim().trim_start_matches("sha256:")
        )),
        "{pruned}"
    );
    assert_eq!(
        labs.ok(&lab, "docker images -qf dangling=true | wc -l"),
        "0\n"
    );
    assert_eq!(labs.ok(&lab, "docker images -q moving:v1 | wc -l"), "1\n");
    // Images filtered by label, every filter at once, as dockerd does.
    labs.ok(
        &lab,
        "docker commit -c 'LABEL stage=test' c2 labelled:v1 >/dev/null",
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker images -f label=stage --format '{{.Repository}}:{{.Tag}}'"
        ),
        "labelled:v1\n"
    );
    assert_eq!(
        labs.ok(&lab, "docker images -qf label=stage=other | wc -l"),
        "0\n"
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker images -f label=stage=test -f reference=moving --format '{{.Repository}}' | wc -l"
        ),
        "0\n"
    );
    labs.fails(
        &lab,
        "docker images -f colour=blue",
        1,
        "invalid filter 'colour'",
    );
    labs.fails(
        &lab,
        "docker tag busybox layerlab-unnamed:x",
        1,
        "is reserved",
    );
    let bad = labs.sh(&lab, "docker commit -c 'RUN rm -rf /' c2 bad:v1");
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("not a valid change command"),
        "{}",
        bad.stderr
    );
    // A removed container's files go with it, and a removed lab's with it.
    let kept = || {
        std::fs::read_dir(&labs.config.disk_dir)
            .expect("disk dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".kept.ext4"))
            .count()
    };
    let before = kept();
    labs.ok(&lab, "docker rm c2 c3 fresh >/dev/null");
    assert_eq!(labs.ok(&lab, "docker ps -aq | wc -l"), "0\n");
    assert_eq!(kept(), before - 3, "docker rm leaves files behind");
    labs.ok(&lab, "docker run --name last busybox touch /x");
    assert_eq!(kept(), before - 2);
    labs.host().destroy_sandbox(&lab).expect("remove the lab");
    assert_eq!(
        kept(),
        before - 3,
        "a removed lab leaves its containers' files"
    );
}

/// `docker login` against a registry:2 that asks for an htpasswd user,
/// then push and pull with those credentials; wrong ones are refused.
fn login_push_and_pull_through_an_htpasswd_registry() {
    let labs = Labs::new();
    let lab = labs.lab("login");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    labs.ok(
        &lab,
        &format!("mkdir -p /root/auth && printf '%s\\n' 'alice:{hash}' > /root/auth/htpasswd"),
    );
    labs.ok(
        &lab,
        "docker pull -q registry:2 >/dev/null && docker pull -q busybox >/dev/null",
    );
    labs.ok(
        &lab,
        "docker run -d --name registry -p 5000:5000 -v /root/auth:/auth \
         -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=lab \
         -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd registry:2",
    );
    labs.ok(
        &lab,
        "until curl -s -o /dev/null localhost:5000/v2/; do sleep 0.1; done",
    );
    labs.ok(&lab, "docker tag busybox localhost:5000/busybox:v1");
    let anonymous = labs.sh(&lab, "docker push localhost:5000/busybox:v1");
    assert_ne!(anonymous.code, 0, "pushed without logging in");
    assert!(
        anonymous.stderr.contains("no basic auth credentials")
            || anonymous.stderr.contains("unauthorized"),
        "{}",
        anonymous.stderr
    );
    let wrong = labs.sh(&lab, "docker login -u alice -p wrong localhost:5000");
    assert_ne!(wrong.code, 0, "logged in with a wrong password");
    assert!(wrong.stderr.contains("unauthorized"), "{}", wrong.stderr);
    let login = labs.ok(
        &lab,
        "echo s3cret | docker login -u alice --password-stdin localhost:5000",
    );
    assert!(login.contains("Login Succeeded"), "{login}");
    let pushed = labs.ok(&lab, "docker push localhost:5000/busybox:v1");
    assert!(pushed.contains("v1: digest: sha256:"), "{pushed}");
    labs.ok(&lab, "docker rmi localhost:5000/busybox:v1 >/dev/null");
    let pulled = labs.ok(&lab, "docker pull localhost:5000/busybox:v1");
    assert!(
        pulled.contains("Downloaded newer image for localhost:5000/busybox:v1"),
        "{pulled}"
    );
    labs.ok(&lab, "docker logout localhost:5000");
    let after = labs.sh(&lab, "docker pull localhost:5000/busybox:v1");
    assert_ne!(after.code, 0, "pulled after logging out");
}

/// `--user` by number or by name from the container's own /etc/passwd and
/// /etc/group, for `run` and `exec`; such a process has no capabilities.
fn containers_and_execs_run_as_the_user_asked() {
    let labs = Labs::new();
    let lab = labs.lab("users");
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm --user 4242 busybox sh -c 'id -u; id -g; echo $HOME; grep CapEff /proc/self/status'"
        ),
        "4242\n0\n/\nCapEff:\t0000000000000000\n"
    );
    labs.ok(
        &lab,
        "docker run --name mk busybox sh -c 'echo bob:x:1000:1000::/home/bob:/bin/sh >> /etc/passwd; echo bob:x:1000: >> /etc/group; echo staff:x:50:bob >> /etc/group; mkdir -p /home/bob; chown bob /home/bob' && docker commit mk withbob >/dev/null",
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm -u bob withbob sh -c 'id -u; id -g; id -G; echo $HOME; touch /home/bob/ok && echo ok; touch /root/no 2>/dev/null || echo denied'"
        ),
        "1000\n1000\n1000 50\n/home/bob\nok\ndenied\n"
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm -u bob:staff withbob id -g"),
        "50\n"
    );
    labs.ok(&lab, "docker run -d --name u1 withbob sleep 600");
    assert_eq!(
        labs.ok(
            &lab,
            "docker exec -u bob u1 sh -c 'id -u; echo $HOME'; docker exec u1 id -u"
        ),
        "1000\n/home/bob\n0\n"
    );
    let ghost = labs.sh(&lab, "docker run --rm -u ghost busybox true");
    assert_ne!(ghost.code, 0);
    assert!(
        ghost
            .stderr
            .contains("unable to find user ghost: no matching entries in passwd file"),
        "{}",
        ghost.stderr
    );
    let far = labs.sh(&lab, "docker exec -u 70000 u1 true");
    assert_ne!(far.code, 0);
    assert!(far.stderr.contains("65536"), "{}", far.stderr);
    labs.ok(&lab, "docker rm -f u1 mk >/dev/null");
}

/// Without internet, `apt-get install` in a lab's containers (default
/// bridge and user-defined networks) and in its node is served by the
/// lab's engine from the signed repository the catalog build made.
fn apt_installs_from_the_labs_package_repository() {
    let mut labs = Labs::new();
    let lab = labs.lab("apt");
    let out = labs.ok(
        &lab,
        "docker run --rm debian sh -c 'apt-get update && apt-get install -y figlet && figlet hi'",
    );
    assert!(out.contains("| '_ \\| |"), "figlet did not draw:\n{out}");
    labs.fails(
        &lab,
        "docker run --rm debian sh -c 'apt-get update -qq && apt-get install -y nope'",
        100,
        "Unable to locate package nope",
    );
    labs.ok(&lab, "docker network create apps >/dev/null");
    let out = labs.ok(
        &lab,
        "docker run --rm --network apps debian sh -c \
         'grep packages.layerlab.internal /etc/hosts && apt-get update -qq && apt-get install -y -qq jq >/dev/null && echo [7] | jq .[0]'",
    );
    assert!(
        out.starts_with("172.18.0.1\tpackages.layerlab.internal\n"),
        "{out}"
    );
    assert!(out.ends_with("\n7\n"), "jq did not run:\n{out}");
    let out = labs.ok(
        &lab,
        "apt-get update -qq && apt-get install -y -qq figlet iputils-ping >/dev/null \
         && figlet -v | head -1 && ping -V",
    );
    assert!(out.contains("FIGlet"), "{out}");
    assert!(out.contains("ping from iputils"), "{out}");

    // A restarted server serves the labs that outlived it again, once
    // the old listener has let go of the port.
    labs.restart();
    labs.ok(
        &lab,
        "timeout 20 sh -c 'until apt-get update -qq; do sleep 0.5; done' \
         && docker run --rm debian sh -c 'apt-get update -qq && apt-get install -y -qq figlet >/dev/null'",
    );
}

/// A repository whose Release does not match its signature is refused.
fn a_tampered_package_repository_is_refused() {
    let mirror = images::packages::Mirror::new(testkit::CATALOG_PACKAGES.as_ref());
    let dists = mirror.repository().join("dists/bookworm");
    let tampered = tempfile::tempdir().expect("temp dir");
    let copy = tampered.path().join("dists/bookworm");
    std::fs::create_dir_all(copy.join("main")).expect("create dists");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(dists.join("main"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    for name in ["InRelease", "Release", "Release.gpg"] {
        let text = std::fs::read_to_string(dists.join(name)).expect("read the repository");
        let forged = text.replace("Label: layerlab", "Label: forged!!");
        std::fs::write(copy.join(name), forged).expect("write the forgery");
    }
    let labs = Labs::with_packages(tampered.path().to_owned());
    let lab = labs.lab("apt-tampered");
    let run = labs.sh(&lab, "docker run --rm debian apt-get update");
    assert_ne!(
        run.code, 0,
        "apt accepted a forged Release:\n{}",
        run.stdout
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("BADSIG") && said.contains("is not signed"),
        "apt should refuse the signature:\n{said}"
    );
}

fn main() {
    runtime::helper::main_if_requested();
    testkit::run(
        &[
            (
                "apt_installs_from_the_labs_package_repository",
                apt_installs_from_the_labs_package_repository,
            ),
            (
                "a_tampered_package_repository_is_refused",
                a_tampered_package_repository_is_refused,
            ),
            ("docker_cp_copies_both_ways", docker_cp_copies_both_ways),
            (
                "ports_publish_on_an_address_and_over_udp",
                ports_publish_on_an_address_and_over_udp,
            ),
            (
                "running_containers_outlive_an_engine_restart",
                running_containers_outlive_an_engine_restart,
            ),
            (
                "containers_and_execs_run_as_the_user_asked",
                containers_and_execs_run_as_the_user_asked,
            ),
            (
                "login_push_and_pull_through_an_htpasswd_registry",
                login_push_and_pull_through_an_htpasswd_registry,
            ),
            (
                "a_stopped_containers_files_are_kept_diffed_committed_and_exported",
                a_stopped_containers_files_are_kept_diffed_committed_and_exported,
            ),
            (
                "user_networks_give_containers_each_others_names",
                user_networks_give_containers_each_others_names,
            ),
            (
                "volumes_and_bind_mounts_come_from_the_node",
                volumes_and_bind_mounts_come_from_the_node,
            ),
            (
                "the_engine_answers_like_dockerd",
                the_engine_answers_like_dockerd,
            ),
            ("save_load_top_and_stats", save_load_top_and_stats),
            (
                "version_and_info_come_from_the_labs_engine",
                version_and_info_come_from_the_labs_engine,
            ),
            (
                "pull_list_inspect_tag_and_remove_like_docker",
                pull_list_inspect_tag_and_remove_like_docker,
            ),
            ("errors_read_like_dockers", errors_read_like_dockers),
            (
                "hostile_requests_get_answers_not_crashes",
                hostile_requests_get_answers_not_crashes,
            ),
            (
                "labs_do_not_see_each_others_images",
                labs_do_not_see_each_others_images,
            ),
            (
                "the_engine_comes_back_after_a_restart",
                the_engine_comes_back_after_a_restart,
            ),
            (
                "run_prints_output_and_passes_the_exit_code",
                run_prints_output_and_passes_the_exit_code,
            ),
            (
                "a_detached_container_lives_its_whole_life",
                a_detached_container_lives_its_whole_life,
            ),
            (
                "stdin_and_terminals_reach_the_container",
                stdin_and_terminals_reach_the_container,
            ),
            (
                "terminals_come_from_the_containers_devpts",
                terminals_come_from_the_containers_devpts,
            ),
            ("absurd_resizes_are_refused", absurd_resizes_are_refused),
            (
                "names_limits_and_unsupported_features_say_so",
                names_limits_and_unsupported_features_say_so,
            ),
            (
                "hostile_container_requests_are_refused",
                hostile_container_requests_are_refused,
            ),
            (
                "containers_run_inside_the_labs_boundary",
                containers_run_inside_the_labs_boundary,
            ),
            (
                "containers_survive_a_restart_as_records",
                containers_survive_a_restart_as_records,
            ),
            (
                "ports_publish_on_the_node_and_containers_share_a_bridge",
                ports_publish_on_the_node_and_containers_share_a_bridge,
            ),
            (
                "push_and_pull_through_a_registry_in_the_lab",
                push_and_pull_through_a_registry_in_the_lab,
            ),
        ],
        2,
        testkit::ensure_catalog,
    )
}
