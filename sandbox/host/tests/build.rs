//! `docker build` with the real Docker CLI in real labs: every
//! instruction, the cache, failures in Docker's words, hostile contexts,
//! and the same builds on Debian's dockerd as the oracle. Like the other
//! suites, this binary is also the sandbox helper (`harness = false`).

mod common;

use common::{Dockerd, Labs};

/// Writes `files` (path, contents) under `dir` in the lab's node.
fn write_files(labs: &Labs, lab: &str, dir: &str, files: &[(&str, &str)]) {
    let mut script = format!("set -e; rm -rf {dir}; mkdir -p {dir}; cd {dir}\n");
    for (path, text) in files {
        script.push_str(&format!(
            "mkdir -p \"$(dirname '{path}')\"; cat > '{path}' <<'LAYERLAB_EOF'\n{text}LAYERLAB_EOF\n"
        ));
    }
    labs.ok(lab, &script);
}

const EVERY_INSTRUCTION: &str = "\
ARG BASE=busybox
FROM $BASE
LABEL course=docker level=\"one two\"
ENV GREETING=hello TARGET=world
ARG WHO=student
WORKDIR /app
COPY hello.txt .
COPY conf/ /etc/app/
ADD bundle.tar /opt/
COPY --chown=1000:1000 --chmod=640 secret.txt /app/secret.txt
RUN echo \"$GREETING $TARGET from $WHO\" > /app/built.txt && echo to-stderr >&2
EXPOSE 8080 53/udp
VOLUME /data
USER 1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=2 CMD cat /app/built.txt
SHELL [\"/bin/sh\", \"-ec\"]
ENTRYPOINT [\"cat\"]
CMD [\"/app/built.txt\"]
ONBUILD RUN echo child
";

fn every_instruction_builds_runs_and_caches() {
    let labs = Labs::new();
    let lab = labs.lab("build-all");
    write_files(
        &labs,
        &lab,
        "/src",
        &[
            ("Dockerfile", EVERY_INSTRUCTION),
            ("hello.txt", "hi\n"),
            ("conf/app.conf", "key=value\n"),
            ("secret.txt", "s3cret\n"),
            (".dockerignore", "*.log\n"),
            ("debug.log", "noise\n"),
        ],
    );
    labs.ok(
        &lab,
        "cd /src && mkdir -p b && echo inside > b/inside.txt && tar -cf bundle.tar -C b inside.txt",
    );
    let built = labs.ok(
        &lab,
        "cd /src && docker build --no-cache --build-arg WHO=tester -t app:v1 -t app:latest .",
    );
    for line in [
        "Step 1/20 : ARG BASE=busybox",
        "Step 2/20 : FROM $BASE",
        "Step 3/20 : LABEL course=docker level=\"one two\"",
        " ---> Running in ",
        "Removing intermediate container ",
        "Step 11/20 : RUN echo \"$GREETING $TARGET from $WHO\" > /app/built.txt && echo to-stderr >&2",
        "to-stderr",
        "Successfully built ",
        "Successfully tagged app:v1",
        "Successfully tagged app:latest",
    ] {
        assert!(built.contains(line), "no {line:?} in:\n{built}");
    }
    assert_eq!(
        labs.ok(&lab, "docker run --rm app:v1"),
        "hello world from tester\n"
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm --entrypoint sh app:v1 -c 'cat /app/hello.txt /etc/app/app.conf /opt/inside.txt; stat -c \"%a %u %g\" /app/secret.txt; ls /app'"),
        "hi\nkey=value\ninside\n640 1000 1000\nbuilt.txt\nhello.txt\nsecret.txt\n"
    );
    let config = labs.ok(
        &lab,
        "docker image inspect app:v1 -f '{{json .Config.Env}}|{{index .Config.Labels \"course\"}},{{index .Config.Labels \"level\"}}|{{.Config.WorkingDir}}|{{.Config.User}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck}}|{{json .Config.Shell}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.OnBuild}}'",
    );
    assert_eq!(
        config.trim(),
        "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"GREETING=hello\",\"TARGET=world\"]|docker,one two|/app|1000|{\"53/udp\":{},\"8080/tcp\":{}}|{\"/data\":{}}|SIGTERM|{\"Test\":[\"CMD-SHELL\",\"cat /app/built.txt\"],\"Interval\":30000000000,\"Retries\":2}|[\"/bin/sh\",\"-ec\"]|[\"cat\"]|[\"/app/built.txt\"]|[\"RUN echo child\"]"
    );
    let history = labs.ok(
        &lab,
        "docker history --no-trunc --format '{{.CreatedBy}}|{{.Size}}' app:v1 | head -12",
    );
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines[0], "/bin/sh -ec #(nop)  ONBUILD RUN echo child|0B");
    assert_eq!(lines[1], "/bin/sh -ec #(nop)  CMD [\"/app/built.txt\"]|0B");
    assert_eq!(lines[3], "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]|0B");
    assert_eq!(
        lines[4],
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"cat /app/built.txt\"] \"30s\" \"0s\" \"0s\" '\\x02'}|0B"
    );
    assert!(
        lines[9].starts_with("|1 WHO=tester /bin/sh -c echo \"$GREETING $TARGET from $WHO\""),
        "{history}"
    );
    assert!(!lines[9].ends_with("|0B"), "RUN wrote a file: {history}");
    assert!(
        lines[10].starts_with("/bin/sh -c #(nop) COPY --chown=1000:1000file:")
            && lines[10].ends_with(" in /app/secret.txt |7B"),
        "{history}"
    );
    // Intermediate images are hidden, as Docker hides them, and shown
    // with -a; each history line of this build names its image.
    let images = labs.ok(
        &lab,
        "docker images --format '{{.Repository}}:{{.Tag}}' | sort",
    );
    assert_eq!(images, "app:latest\napp:v1\nbusybox:latest\n");
    let all = labs.ok(&lab, "docker images -a -q | sort -u | wc -l");
    assert_eq!(
        all.trim(),
        "19",
        "one image per step after FROM, and busybox"
    );
    let ids = labs.ok(
        &lab,
        "docker history -q app:v1 | head -18 | grep -vc missing",
    );
    assert_eq!(ids.trim(), "18");
    // No step container is left behind.
    assert_eq!(labs.ok(&lab, "docker ps -aq | wc -l").trim(), "0");

    // Again: every step from the cache, the same image.
    let again = labs.ok(
        &lab,
        "cd /src && docker build --build-arg WHO=tester -t app:v2 .",
    );
    assert_eq!(again.matches(" ---> Using cache").count(), 18, "{again}");
    let id = |tag: &str| {
        labs.ok(
            &lab,
            &format!("docker image inspect -f '{{{{.Id}}}}' {tag}"),
        )
    };
    assert_eq!(id("app:v1"), id("app:v2"));
    // A touched file keeps the cache; changed contents miss from there on.
    labs.ok(&lab, "cd /src && sleep 1 && touch hello.txt");
    let touched = labs.ok(&lab, "cd /src && docker build --build-arg WHO=tester -q .");
    assert_eq!(touched.trim(), id("app:v1").trim());
    // (New contents each run: the machine's cache remembers old ones.)
    labs.ok(&lab, "cd /src && date +%s%N > hello.txt");
    let changed = labs.ok(&lab, "cd /src && docker build --build-arg WHO=tester .");
    assert_eq!(changed.matches(" ---> Using cache").count(), 4, "{changed}");
    // --no-cache builds every step.
    let fresh = labs.ok(
        &lab,
        "cd /src && docker build --no-cache --build-arg WHO=tester .",
    );
    assert!(!fresh.contains("Using cache"), "{fresh}");
}

/// Sends a hand-made context to the lab's engine with curl, as a hostile
/// client would: the HTTP status and the body.
fn post_build(labs: &Labs, lab: &str, tar_script: &str, query: &str) -> (String, String) {
    let out = labs.ok(
        lab,
        &format!(
            "rm -rf /ctx && mkdir -p /ctx && cd /ctx && {tar_script} && curl -s -o /tmp/body -w '%{{http_code}}' --unix-socket /var/run/docker.sock -X POST -H 'Content-Type: application/x-tar' --data-binary @/tmp/ctx.tar 'http://x/v1.41/build?{query}'; echo; cat /tmp/body"
        ),
    );
    let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
    (status.to_owned(), body.to_owned())
}

fn failures_and_hostile_contexts_read_like_dockers() {
    let labs = Labs::new();
    let lab = labs.lab("build-bad");
    let fails = |files: &[(&str, &str)], args: &str, code: i32, message: &str| {
        write_files(&labs, &lab, "/bad", files);
        labs.fails(
            &lab,
            &format!("cd /bad && docker build {args} ."),
            code,
            message,
        );
    };
    fails(
        &[("Dockerfile", "FROM busybox\n\nRUNN x\n")],
        "",
        1,
        "Error response from daemon: dockerfile parse error line 3: unknown instruction: RUNN",
    );
    // A RUN's exit status becomes the CLI's; its container stays for a
    // look, unless --force-rm.
    fails(
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo partial > /p && exit 3\n",
        )],
        "",
        3,
        "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3",
    );
    assert_eq!(labs.ok(&lab, "docker ps -aq | wc -l").trim(), "1");
    fails(
        &[("Dockerfile", "FROM busybox\nRUN exit 4\n")],
        "--force-rm",
        4,
        "returned a non-zero code: 4",
    );
    assert_eq!(labs.ok(&lab, "docker ps -aq | wc -l").trim(), "1");
    fails(
        &[("Dockerfile", "FROM busybox\nCOPY nope.txt /\n")],
        "",
        1,
        "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist",
    );
    fails(
        &[("Dockerfile", "FROM busybox\nCOPY ../../etc/passwd /x\n")],
        "",
        1,
        "forbidden path outside the build context: ../../etc/passwd ()",
    );
    fails(
        &[("Dockerfile", "FROM busybox\nADD http://example.com/x /x\n")],
        "",
        1,
        "cannot fetch http://example.com/x: example.com is not an address in this lab",
    );
    fails(
        &[("Dockerfile", "FROM nosuchimage\n")],
        "",
        1,
        "pull access denied for nosuchimage",
    );
    let deep = format!(
        "FROM busybox\nARG A={}x{}\n",
        "${B:-".repeat(40),
        "}".repeat(40)
    );
    fails(&[("Dockerfile", &deep)], "", 1, "nested more than 32 deep");
    // A link in the context that points at the host's /etc is copied as
    // a link, and a path through it stays inside the context.
    write_files(
        &labs,
        &lab,
        "/bad",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY link /link\nCOPY link/passwd /x\n",
        )],
    );
    labs.ok(&lab, "cd /bad && ln -s /etc link");
    labs.fails(
        &lab,
        "cd /bad && docker build .",
        1,
        "stat link/passwd: file does not exist",
    );
    write_files(
        &labs,
        &lab,
        "/bad",
        &[("Dockerfile", "FROM busybox\nCOPY link /link\n")],
    );
    labs.ok(
        &lab,
        "cd /bad && ln -s /etc link && docker build -t linked .",
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm linked readlink /link")
            .trim(),
        "/etc"
    );
    // A Dockerfile outside the context, as -f sends it.
    write_files(
        &labs,
        &lab,
        "/elsewhere",
        &[(
            "Build.docker",
            "FROM busybox\nCMD [\"echo\", \"from -f\"]\n",
        )],
    );
    labs.ok(
        &lab,
        "cd /bad && docker build -q -f /elsewhere/Build.docker -t fromf .",
    );
    assert_eq!(labs.ok(&lab, "docker run --rm fromf").trim(), "from -f");

    // Hand-made requests: a context that climbs out, no Dockerfile, a
    // Dockerfile too long, BuildKit, a bad tag.
    let (status, body) = post_build(
        &labs,
        &lab,
        "printf 'FROM busybox\\n' > Dockerfile && tar -cf /tmp/ctx.tar Dockerfile --transform 's|Dockerfile|../Dockerfile|' -P",
        "t=x",
    );
    assert_eq!(status, "400", "{body}");
    assert!(
        body.contains("the build context is not a valid archive"),
        "{body}"
    );
    let (status, body) = post_build(&labs, &lab, "echo x > a && tar -cf /tmp/ctx.tar a", "");
    assert_eq!(
        (status.as_str(), body.trim()),
        (
            "500",
            "{\"message\":\"Cannot locate specified Dockerfile: Dockerfile\"}"
        )
    );
    let (status, body) = post_build(
        &labs,
        &lab,
        "(echo 'FROM busybox'; for i in $(seq 1 20000); do echo 'ENV A=1'; done) > Dockerfile && tar -cf /tmp/ctx.tar Dockerfile",
        "",
    );
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("more than 10000 instructions"), "{body}");
    let (status, body) = post_build(
        &labs,
        &lab,
        "printf 'FROM busybox\\n' > Dockerfile && tar -cf /tmp/ctx.tar Dockerfile",
        "version=2",
    );
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("classic builder"), "{body}");
    let (status, body) = post_build(
        &labs,
        &lab,
        "printf 'FROM busybox\\n' > Dockerfile && tar -cf /tmp/ctx.tar Dockerfile",
        "t=Bad%20Tag",
    );
    assert_eq!(status, "400", "{body}");
    // Nothing of the contexts is left in the lab's engine directory.
    assert_eq!(labs.ok(&lab, "docker images -q linked | wc -l").trim(), "1");
}

fn stages_targets_triggers_and_entrypoints() {
    let labs = Labs::new();
    let lab = labs.lab("build-stages");
    write_files(
        &labs,
        &lab,
        "/multi",
        &[(
            "Dockerfile",
            "FROM busybox AS build\nRUN mkdir /out && printf '#!/bin/sh\\necho built by stage one\\n' > /out/app && chmod +x /out/app\nFROM busybox AS unused\nRUN echo unused > /u\nFROM busybox\nCOPY --from=build /out/app /usr/local/bin/app\nCOPY --from=0 /out /copied\nCMD [\"app\"]\n",
        )],
    );
    labs.ok(&lab, "cd /multi && docker build -t multi .");
    assert_eq!(
        labs.ok(&lab, "docker run --rm multi").trim(),
        "built by stage one"
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm multi ls /copied").trim(),
        "app"
    );
    labs.ok(
        &lab,
        "cd /multi && docker build --target build -t multi:build .",
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm multi:build /out/app").trim(),
        "built by stage one"
    );
    labs.fails(
        &lab,
        "cd /multi && docker build --target nope .",
        1,
        "failed to reach build target nope in Dockerfile",
    );

    // ENTRYPOINT and CMD: the CMD is the default argument.
    write_files(
        &labs,
        &lab,
        "/ep",
        &[(
            "Dockerfile",
            "FROM busybox\nENTRYPOINT [\"echo\", \"hello\"]\nCMD [\"world\"]\n",
        )],
    );
    labs.ok(&lab, "cd /ep && docker build -q -t greeter .");
    assert_eq!(
        labs.ok(&lab, "docker run --rm greeter").trim(),
        "hello world"
    );
    assert_eq!(
        labs.ok(&lab, "docker run --rm greeter class").trim(),
        "hello class"
    );

    // ONBUILD triggers run in the child's build, with its context.
    write_files(
        &labs,
        &lab,
        "/parent",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD COPY . /app\nONBUILD RUN ls /app > /listing\n",
        )],
    );
    labs.ok(&lab, "cd /parent && docker build -q -t parent .");
    write_files(
        &labs,
        &lab,
        "/child",
        &[("Dockerfile", "FROM parent\n"), ("mine.txt", "x\n")],
    );
    let child = labs.ok(&lab, "cd /child && docker build -t child .");
    assert!(child.contains("# Executing 2 build triggers"), "{child}");
    assert_eq!(
        labs.ok(&lab, "docker run --rm child cat /listing"),
        "Dockerfile\nmine.txt\n"
    );

    // Build arguments, labels from the command line, and -q.
    write_files(
        &labs,
        &lab,
        "/args",
        &[(
            "Dockerfile",
            "ARG TAG=latest\nFROM busybox:$TAG\nARG GREETING=hi\nENV FROM_ARG=$GREETING\nRUN echo $GREETING > /g\n",
        )],
    );
    let id = labs.ok(
        &lab,
        "cd /args && docker build -q --build-arg GREETING=hey --label course=101 -t args .",
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        labs.ok(&lab, "docker run --rm args sh -c 'cat /g; echo $FROM_ARG'"),
        "hey\nhey\n"
    );
    assert_eq!(
        labs.ok(
            &lab,
            "docker inspect -f '{{index .Config.Labels \"course\"}}' args"
        )
        .trim(),
        "101"
    );

    // ADD fetches from a server in the lab, through the lab's network.
    labs.ok(
        &lab,
        "docker run -d --name web busybox sh -c 'mkdir /www && echo remote file > /www/file.txt && exec httpd -f -p 8000 -h /www' >/dev/null",
    );
    let ip = labs.ok(
        &lab,
        "docker inspect -f '{{.NetworkSettings.IPAddress}}' web",
    );
    let ip = ip.trim();
    let add = |path: &str, dest: &str| {
        let dockerfile = format!("FROM busybox\nADD http://{ip}:8000/{path} {dest}\n");
        write_files(&labs, &lab, "/fetch", &[("Dockerfile", &dockerfile)]);
    };
    add("file.txt", "/fetched/");
    labs.ok(&lab, "cd /fetch && docker build -q -t fetched .");
    assert_eq!(
        labs.ok(
            &lab,
            "docker run --rm fetched sh -c 'cat /fetched/file.txt; stat -c %a /fetched/file.txt'"
        ),
        "remote file\n600\n"
    );
    add("nope", "/x");
    labs.fails(&lab, "cd /fetch && docker build .", 1, "404 Not Found");
}

/// The same Dockerfile and context through the same CLI, built by a lab's
/// engine and by Debian's dockerd: build output, history and config must
/// match once IDs, sums and times are masked.
fn builds_match_dockerds() {
    let dockerd = Dockerd::start();
    let labs = Labs::new();
    let lab = labs.lab("build-oracle");
    let store = store::Store::open(common::STORE.as_ref()).expect("store");
    let archive = dockerd.dir.path().join("busybox.tar");
    store
        .export_docker_save(
            &images::hub(),
            &[store::Reference::parse("busybox").expect("reference")],
            std::fs::File::create(&archive).expect("archive"),
        )
        .expect("export busybox");
    assert_eq!(dockerd.run("docker load -i busybox.tar").code, 0);
    labs.ok(&lab, "docker pull -q busybox >/dev/null");
    // A nonce keeps the machine's shared cache, which dockerd lacks, out.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dockerfile = format!(
        "FROM busybox\nLABEL x=y nonce={nonce}\nENV A=1 B=\"two words\"\nWORKDIR /app\nCOPY a.txt .\nCOPY sub /app/sub/\nWORKDIR /tmp\nRUN echo built > /r && echo err >&2\nUSER 1000:1000\nEXPOSE 80\nVOLUME /data\nHEALTHCHECK --interval=5s CMD true\nSTOPSIGNAL SIGQUIT\nENTRYPOINT [\"cat\"]\nCMD [\"/r\"]\n"
    );
    let files = [
        ("Dockerfile", dockerfile.as_str()),
        ("a.txt", "hello\n"),
        ("sub/b.txt", "sub\n"),
    ];
    write_files(&labs, &lab, "/ctx", &files);
    let mut setup = String::from("set -e; rm -rf ctx; mkdir -p ctx/sub\n");
    for (path, text) in files {
        setup.push_str(&format!(
            "cat > 'ctx/{path}' <<'LAYERLAB_EOF'\n{text}LAYERLAB_EOF\n"
        ));
    }
    assert_eq!(dockerd.run(&setup).code, 0);
    let steps = [
        (
            "cd ctx && DOCKER_BUILDKIT=0 docker build -t cmp:v1 . 2>&1 | grep -v -e DEPRECATED -e 'BuildKit is currently' -e 'environment-variable' -e '^ *$'",
            "cd /ctx && docker build -t cmp:v1 . 2>&1",
        ),
        (
            "cd ctx && DOCKER_BUILDKIT=0 docker build -t cmp:v1 . 2>&1 | grep -v -e DEPRECATED -e 'BuildKit is currently' -e 'environment-variable' -e '^ *$'",
            "cd /ctx && docker build -t cmp:v1 . 2>&1",
        ),
        (
            "docker history --no-trunc --format '{{.CreatedBy}}|{{.Size}}' cmp:v1",
            "",
        ),
        (
            "docker image inspect cmp:v1 -f '{{json .Config}}' | sed 's/\"Image\":\"[^\"]*\"/IMAGE/; s/\"Hostname\":\"[^\"]*\"/HOST/'",
            "",
        ),
        (
            "docker image inspect cmp:v1 -f '{{json .ContainerConfig.Cmd}} {{.ContainerConfig.User}}'",
            "",
        ),
        // WORKDIR of a directory that exists commits Docker's empty layer.
        (
            "docker image inspect cmp:v1 -f '{{len .RootFS.Layers}} {{index .RootFS.Layers 4}}'",
            "",
        ),
        ("docker run --rm cmp:v1", ""),
        (
            "docker run --rm --entrypoint sh cmp:v1 -c 'ls -ln /app /app/sub | sed 1d | cut -c1-10,16-30 | tr -s \" \"'",
            "",
        ),
        (
            "docker images --format '{{.Repository}}:{{.Tag}}' | sort",
            "",
        ),
        ("docker images -a -q | sort -u | wc -l", ""),
        ("docker history -q cmp:v1 | grep -c -v missing", ""),
    ];
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .map(|&(theirs, ours)| (if ours.is_empty() { theirs } else { ours }, theirs))
        .collect();
    common::assert_same_as_dockerd(&labs, &lab, &dockerd, &steps);
}

/// The lessons' Dockerfiles, on the Debian-based catalog, with the lab's
/// package repository standing in for the internet.
fn lesson_dockerfiles_build_offline() {
    let labs = Labs::new();
    let lab = labs.lab("build-lessons");
    write_files(
        &labs,
        &lab,
        "/figlet",
        &[(
            "Dockerfile",
            "FROM debian\nRUN apt-get update && apt-get install -y figlet\nENTRYPOINT [\"figlet\"]\nCMD [\"hello\"]\n",
        )],
    );
    // --no-cache: apt runs, whatever an earlier build left in the cache.
    let built = labs.ok(&lab, "cd /figlet && docker build --no-cache -t figlet .");
    assert!(built.contains("Setting up figlet"), "{built}");
    let hello = labs.ok(&lab, "docker run --rm figlet");
    assert!(hello.contains("| |__   ___| | |"), "{hello}");
    let class = labs.ok(&lab, "docker run --rm figlet -f small class");
    assert_ne!(class, hello);

    write_files(
        &labs,
        &lab,
        "/nmap",
        &[(
            "Dockerfile",
            "FROM debian\nRUN apt-get update && apt-get install -y nmap\nENTRYPOINT [\"nmap\"]\n",
        )],
    );
    labs.ok(&lab, "cd /nmap && docker build -q -t nmap .");
    assert!(
        labs.ok(&lab, "docker run --rm nmap --version")
            .contains("Nmap version")
    );

    write_files(
        &labs,
        &lab,
        "/banner",
        &[(
            "Dockerfile",
            "FROM debian AS build\nRUN apt-get update && apt-get install -y figlet && figlet -f small hi > /banner.txt\nFROM busybox\nCOPY --from=build /banner.txt /banner.txt\nCMD [\"cat\", \"/banner.txt\"]\n",
        )],
    );
    labs.ok(&lab, "cd /banner && docker build -q -t banner .");
    assert_eq!(
        labs.ok(&lab, "docker run --rm banner"),
        labs.ok(&lab, "docker run --rm figlet -f small hi")
    );

    // A package the repository lacks fails as apt says it, with apt's code.
    write_files(
        &labs,
        &lab,
        "/nope",
        &[(
            "Dockerfile",
            "FROM debian\nRUN apt-get update && apt-get install -y nope\n",
        )],
    );
    labs.fails(
        &lab,
        "cd /nope && docker build .",
        100,
        "The command '/bin/sh -c apt-get update && apt-get install -y nope' returned a non-zero code: 100",
    );
    let log = labs.sh(&lab, "cd /nope && docker build . 2>&1");
    assert!(
        log.stdout.contains("Unable to locate package nope"),
        "{}",
        log.stdout
    );
}

/// Two labs building the same Dockerfile: the second takes every step
/// from the machine's cache, and each keeps its own names; a step's
/// container is out of the lab's reach while the build holds it.
fn labs_share_build_steps_but_not_names() {
    let labs = Labs::new();
    let first = labs.lab("build-share-a");
    let second = labs.lab("build-share-b");
    // A nonce in the Dockerfile keeps earlier runs' shared steps out.
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let dockerfile = format!(
        "FROM busybox\nLABEL nonce=\"{nonce}\"\nCOPY app.txt /app/\nRUN sleep 2 && echo ran > /ran\nCMD [\"cat\", \"/ran\"]\n"
    );
    for lab in [&first, &second] {
        write_files(
            &labs,
            lab,
            "/share",
            &[("Dockerfile", &dockerfile), ("app.txt", "same\n")],
        );
    }
    let during = labs.ok(
        &first,
        "cd /share && (docker build -t mine . > /tmp/build.log 2>&1 &) && sleep 1.5 && docker ps -aq | wc -l; wait; sleep 2; cat /tmp/build.log",
    );
    assert!(
        during.starts_with("0\n"),
        "a step's container was visible:\n{during}"
    );
    assert!(
        during.contains("Successfully tagged mine:latest"),
        "{during}"
    );
    let built = labs.ok(&second, "cd /share && docker build -t theirs .");
    assert_eq!(built.matches(" ---> Using cache").count(), 4, "{built}");
    let id = |lab: &str, name: &str| {
        labs.ok(
            lab,
            &format!("docker image inspect -f '{{{{.Id}}}}' {name}"),
        )
    };
    assert_eq!(id(&first, "mine"), id(&second, "theirs"));
    assert_eq!(labs.ok(&second, "docker run --rm theirs").trim(), "ran");
    labs.fails(
        &second,
        "docker image inspect mine",
        1,
        "No such image: mine",
    );
    labs.fails(
        &first,
        "docker image inspect theirs",
        1,
        "No such image: theirs",
    );

    // At once: one lab builds the step, the other waits for it and takes
    // it, so the RUN ran once (its output, a random UUID, is the same).
    let dockerfile = format!(
        "FROM busybox\nLABEL nonce=\"{nonce} again\"\nRUN sleep 1 && cat /proc/sys/kernel/random/uuid > /ran\n"
    );
    for lab in [&first, &second] {
        write_files(&labs, lab, "/again", &[("Dockerfile", &dockerfile)]);
    }
    // Started in the background in both labs, so neither waits for the
    // other's command to come back.
    for lab in [&first, &second] {
        labs.ok(
            lab,
            "cd /again && (docker build -t again . > /tmp/again.log 2>&1; echo $? > /tmp/again.done) > /dev/null 2>&1 &",
        );
    }
    let outputs: Vec<(String, String)> = [&first, &second]
        .into_iter()
        .map(|lab| {
            let done = labs.ok(lab, "timeout 60 sh -c 'until [ -e /tmp/again.done ]; do sleep 0.1; done'; cat /tmp/again.done /tmp/again.log");
            assert!(done.starts_with("0\n"), "{done}");
            (labs.ok(lab, "docker run --rm again cat /ran"), done)
        })
        .collect();
    assert_eq!(outputs[0].0, outputs[1].0, "{outputs:?}");
}

/// A build whose client goes away (Ctrl-C on `docker build`) stops: its
/// running step is killed, as dockerd cancels it, rather than looping on
/// unseen. The step calls a server in the node while it runs, so the
/// calls stopping is what shows it.
fn an_interrupted_build_stops_its_running_step() {
    let labs = Labs::new();
    let lab = labs.lab("build-cancel");
    labs.ok(
        &lab,
        "rm -f /tmp/hits; (perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 9999, Listen => 50, ReuseAddr => 1) or die; while ($c = $s->accept) { open F, \">>\", \"/tmp/hits\"; print F \"hit\\n\"; close F; print $c \"HTTP/1.0 200 OK\\r\\n\\r\\nok\"; close $c }' > /dev/null 2>&1 &)",
    );
    let nonce = format!("{:?}", std::time::SystemTime::now());
    write_files(
        &labs,
        &lab,
        "/loop",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nLABEL nonce=\"{nonce}\"\nRUN while true; do wget -q -O /dev/null http://172.17.0.1:9999/; sleep 0.2; done\n"
            ),
        )],
    );
    let interrupted = labs.sh(&lab, "cd /loop && timeout -s INT 3 docker build .");
    assert_ne!(interrupted.code, 0, "{}", interrupted.stdout);
    let hits = || {
        labs.ok(&lab, "wc -l < /tmp/hits")
            .trim()
            .parse::<u32>()
            .expect("a count")
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after_stop = hits();
    assert!(after_stop > 0, "the step never ran");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        hits(),
        after_stop,
        "the step kept running after its build was interrupted"
    );
    // Nothing of it is left for the lab to see.
    assert_eq!(labs.ok(&lab, "docker ps -aq | wc -l").trim(), "0");
}

/// WORKDIR makes only what is missing, through symlinks inside the image
/// too; an existing directory, found with or without a symlink on the way,
/// adds no layer, as with dockerd.
fn workdir_makes_only_what_is_missing() {
    let labs = Labs::new();
    let lab = labs.lab("build-workdir");
    write_files(
        &labs,
        &lab,
        "/w",
        &[(
            "Dockerfile",
            "FROM busybox\nWORKDIR /tmp\nRUN ln -s /tmp /linked && mkdir /tmp/there\nWORKDIR /linked/there\nWORKDIR /linked/new/deeper\nRUN pwd > /where && ls -d /tmp/new/deeper\n",
        )],
    );
    labs.ok(&lab, "cd /w && docker build --no-cache -q -t workdir .");
    let layers = labs.ok(
        &lab,
        "docker image inspect workdir -f '{{range .RootFS.Layers}}{{println .}}{{end}}'",
    );
    // busybox, the first RUN, WORKDIR /linked/new/deeper, the second RUN.
    assert_eq!(layers.split_whitespace().count(), 4, "{layers}");
    assert_eq!(
        labs.ok(&lab, "docker run --rm workdir cat /where").trim(),
        "/tmp/new/deeper",
        "the step ran in the directory made through the symlink"
    );
    let history = labs.ok(
        &lab,
        "docker history --format '{{.Size}} {{.CreatedBy}}' workdir",
    );
    let sizes: Vec<&str> = history
        .lines()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    // Newest first: RUN pwd, WORKDIR deeper, WORKDIR there, RUN ln,
    // WORKDIR /tmp; directories weigh nothing, as in dockerd's history.
    assert_ne!(sizes[0], "0B", "RUN pwd:\n{history}");
    assert_eq!(sizes[2], "0B", "WORKDIR /linked/there:\n{history}");
    assert_eq!(sizes[4], "0B", "WORKDIR /tmp:\n{history}");
}

fn main() {
    runtime::helper::main_if_requested();
    testkit::run(
        &[
            (
                "an_interrupted_build_stops_its_running_step",
                an_interrupted_build_stops_its_running_step,
            ),
            ("builds_match_dockerds", builds_match_dockerds),
            (
                "workdir_makes_only_what_is_missing",
                workdir_makes_only_what_is_missing,
            ),
            (
                "every_instruction_builds_runs_and_caches",
                every_instruction_builds_runs_and_caches,
            ),
            (
                "labs_share_build_steps_but_not_names",
                labs_share_build_steps_but_not_names,
            ),
            (
                "lesson_dockerfiles_build_offline",
                lesson_dockerfiles_build_offline,
            ),
            (
                "failures_and_hostile_contexts_read_like_dockers",
                failures_and_hostile_contexts_read_like_dockers,
            ),
            (
                "stages_targets_triggers_and_entrypoints",
                stages_targets_triggers_and_entrypoints,
            ),
        ],
        2,
        testkit::ensure_catalog,
    )
}
