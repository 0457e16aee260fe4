//! The dispatcher against a recording backend: every metadata instruction,
//! the cache rules, build arguments, stages and triggers, with no root.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};

use builder::backend::{Backend, BackendError, BackendResult, StepContainer};
use builder::config::{Config, Image};
use builder::dispatch::{Build, BuildError, Options};
use builder::progress::Event;
use serde_json::{Value, json};
use sha2::Digest as _;

#[derive(Default)]
struct Recorder {
    images: Vec<Image>,
    calls: Vec<String>,
    /// Exit code of every RUN.
    exit: i64,
    next: usize,
}

impl Recorder {
    fn store(&mut self, json: Value) -> Image {
        let id = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(json.to_string().as_bytes()))
        );
        let image = Image { id, json };
        self.images.push(image.clone());
        image
    }
}

impl Backend for Recorder {
    fn image(&mut self, name: &str, _pull: bool, _: &mut dyn FnMut(Event)) -> BackendResult<Image> {
        self.calls.push(format!("image {name}"));
        if name == "missing" {
            return Err(BackendError("pull access denied for missing".into()));
        }
        let mut config = json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]});
        if name == "triggers" {
            config["OnBuild"] = json!(["ENV FROM_TRIGGER=1", "LABEL t=1"]);
        }
        Ok(self.store(json!({
            "architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created_by": name}],
        })))
    }

    fn probe(&mut self, parent: &Image, step: &Config) -> BackendResult<Option<Image>> {
        Ok(self
            .images
            .iter()
            .rev()
            .find(|i| {
                i.parent() == Some(parent.id.as_str()) && i.container_config().same_step(step)
            })
            .cloned())
    }

    fn create(&mut self, _: &Image, config: &Config) -> BackendResult<StepContainer> {
        self.next += 1;
        self.calls
            .push(format!("create {:?} env {:?}", config.cmd, config.env));
        Ok(StepContainer {
            id: format!("{:064x}", self.next),
        })
    }

    fn run(&mut self, c: &StepContainer, progress: &mut dyn FnMut(Event)) -> BackendResult<i64> {
        self.calls.push(format!("run {}", &c.id[60..]));
        progress(Event::Stream("out\n".into()));
        progress(Event::Stderr("err\n".into()));
        Ok(self.exit)
    }

    fn is_dir(&mut self, _: &StepContainer, path: &str) -> BackendResult<Option<bool>> {
        Ok((path == "/app").then_some(true))
    }

    fn read_file(&mut self, _: &StepContainer, path: &str) -> BackendResult<String> {
        Ok(match path {
            "/etc/passwd" => "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            "/etc/group" => "root:x:0:\nstaff:x:50:\n",
            _ => "",
        }
        .into())
    }

    fn make_dirs(&mut self, _: &StepContainer, dir: &str) -> BackendResult<()> {
        self.calls.push(format!("make dirs {dir}"));
        Ok(())
    }

    fn copy_into(
        &mut self,
        _: &StepContainer,
        dir: &str,
        archive: &mut (dyn Read + Send),
    ) -> BackendResult<()> {
        let mut names = Vec::new();
        for entry in tar::Archive::new(archive)
            .entries()
            .map_err(|e| BackendError(e.to_string()))?
        {
            let entry = entry.map_err(|e| BackendError(e.to_string()))?;
            let h = entry.header();
            names.push(format!(
                "{}:{}:{}:{:o}",
                entry
                    .path()
                    .map_err(|e| BackendError(e.to_string()))?
                    .display(),
                h.uid().unwrap_or(9),
                h.gid().unwrap_or(9),
                h.mode().unwrap_or(0)
            ));
        }
        self.calls.push(format!("copy into {dir} {names:?}"));
        Ok(())
    }

    fn fetch(&mut self, url: &str, out: &mut dyn Write) -> BackendResult<()> {
        self.calls.push(format!("fetch {url}"));
        if url.ends_with("/missing") {
            return Err(BackendError(format!("GET {url}: 404 Not Found")));
        }
        out.write_all(b"fetched")
            .map_err(|e| BackendError(e.to_string()))
    }

    fn copy_out(&mut self, image: &Image, path: &str, out: &mut dyn Write) -> BackendResult<()> {
        self.calls
            .push(format!("copy out {} {path}", &image.id[..12]));
        let mut tar = tar::Builder::new(out);
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        let name = path.rsplit('/').next().unwrap_or(path);
        tar.append_data(&mut header, name, &b"bin"[..])
            .map_err(|e| BackendError(e.to_string()))?;
        tar.finish().map_err(|e| BackendError(e.to_string()))
    }

    fn commit(
        &mut self,
        parent: &Image,
        container: Option<&StepContainer>,
        mut json: Value,
    ) -> BackendResult<Image> {
        if let Some(c) = container {
            json["rootfs"]["diff_ids"]
                .as_array_mut()
                .expect("diff ids")
                .push(json!(format!("sha256:layer-of-{}", &c.id[60..])));
        }
        assert_eq!(json["config"]["Image"], json!(parent.id));
        Ok(self.store(json))
    }

    fn remove(&mut self, c: &StepContainer) -> BackendResult<()> {
        self.calls.push(format!("remove {}", &c.id[60..]));
        Ok(())
    }
}

struct Built {
    image: Result<Image, BuildError>,
    stream: String,
}

fn options(scratch: &std::path::Path) -> Options {
    Options {
        build_args: BTreeMap::new(),
        target: None,
        no_cache: false,
        pull: false,
        remove: true,
        force_remove: false,
        labels: BTreeMap::new(),
        docker_version: "test".into(),
        scratch: scratch.to_owned(),
    }
}

fn build_with(
    backend: &mut Recorder,
    dockerfile: &str,
    options: Options,
    files: &[(&str, &str)],
) -> Built {
    let context = tempfile::tempdir().expect("context");
    for (name, text) in files {
        let path = context.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let root = File::open(context.path()).expect("open");
    let mut stream = String::new();
    let image = Build::new(dockerfile.as_bytes(), options).and_then(|b| {
        b.run(&root, context.path(), backend, &mut |e| match e {
            Event::Stream(s) => stream.push_str(&s),
            Event::Stderr(s) => stream.push_str(&format!("<err>{s}</err>")),
            Event::Status(s) => stream.push_str(&format!("<status>{s}</status>")),
            Event::ImageId(id) => stream.push_str(&format!("<aux {}>\n", &id[..19])),
        })
    });
    Built { image, stream }
}

fn build(backend: &mut Recorder, dockerfile: &str) -> Built {
    let scratch = tempfile::tempdir().expect("scratch");
    build_with(backend, dockerfile, options(scratch.path()), &[])
}

fn history(image: &Image) -> Vec<String> {
    image.json["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            format!(
                "{}{}",
                h["created_by"].as_str().unwrap_or_default(),
                if h["empty_layer"] == json!(true) {
                    " (empty)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

const METADATA: &str = "FROM base\nLABEL x=y\nENV A=1 B=\"two words\"\nUSER app\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGQUIT\nMAINTAINER me\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT run $A\nCMD [\"cat\",\"/r\"]\nHEALTHCHECK NONE\nONBUILD RUN echo later\n";

#[test]
fn metadata_steps_set_the_config_and_record_docker_history() {
    let mut backend = Recorder::default();
    let built = build(&mut backend, METADATA);
    let image = built.image.expect("built");
    let config = image.config();
    assert_eq!(config.env_var("B"), Some("two words"));
    assert_eq!(
        config.labels,
        Some(BTreeMap::from([("x".into(), "y".into())]))
    );
    assert_eq!(config.user, "app");
    assert_eq!(
        config
            .exposed_ports
            .expect("ports")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["53/udp", "80/tcp"]
    );
    assert_eq!(config.stop_signal, "SIGQUIT");
    assert_eq!(config.shell, Some(vec!["/bin/bash".into(), "-c".into()]));
    assert_eq!(
        config.entrypoint,
        Some(vec!["/bin/bash".into(), "-c".into(), "run $A".into()])
    );
    assert_eq!(config.cmd, Some(vec!["cat".into(), "/r".into()]));
    assert_eq!(config.healthcheck, Some(json!({"Test": ["NONE"]})));
    assert_eq!(config.on_build, Some(vec!["RUN echo later".into()]));
    assert_eq!(image.json["author"], json!("me"));
    assert_eq!(
        history(&image)[1..],
        [
            "/bin/sh -c #(nop)  LABEL x=y (empty)",
            "/bin/sh -c #(nop)  ENV A=1 B=two words (empty)",
            "/bin/sh -c #(nop)  USER app (empty)",
            "/bin/sh -c #(nop)  EXPOSE 80 53/udp (empty)",
            "/bin/sh -c #(nop)  VOLUME [/data] (empty)",
            "/bin/sh -c #(nop)  STOPSIGNAL SIGQUIT (empty)",
            "/bin/sh -c #(nop)  MAINTAINER me (empty)",
            // SHELL's own line is made with the new shell, as dockerd's.
            "/bin/bash -c #(nop)  SHELL [/bin/bash -c] (empty)",
            "/bin/bash -c #(nop)  ENTRYPOINT [\"/bin/bash\" \"-c\" \"run $A\"] (empty)",
            "/bin/bash -c #(nop)  CMD [\"cat\" \"/r\"] (empty)",
            "/bin/bash -c #(nop)  HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'} (empty)",
            "/bin/bash -c #(nop)  ONBUILD RUN echo later (empty)",
        ]
    );
    assert!(
        built.stream.starts_with("Step 1/13 : FROM base\n ---> "),
        "{}",
        built.stream
    );
    assert!(
        built
            .stream
            .contains("Step 3/13 : ENV A=1 B=\"two words\"\n ---> Running in ")
    );
    assert!(built.stream.contains("Removing intermediate container "));

    // The same Dockerfile again: every step from the cache, the same image.
    let again = build(&mut backend, METADATA);
    assert_eq!(again.image.expect("rebuilt").id, image.id);
    assert_eq!(again.stream.matches(" ---> Using cache\n").count(), 12);
    assert!(!again.stream.contains("Running in"));

    // A changed step misses, and so does every step after it.
    let changed = build(&mut backend, &METADATA.replace("USER app", "USER other"));
    assert_eq!(
        changed.stream.matches(" ---> Using cache\n").count(),
        2,
        "{}",
        changed.stream
    );
}

#[test]
fn no_cache_builds_every_step() {
    let mut backend = Recorder::default();
    build(&mut backend, METADATA).image.expect("built");
    let scratch = tempfile::tempdir().expect("scratch");
    let mut opts = options(scratch.path());
    opts.no_cache = true;
    let again = build_with(&mut backend, METADATA, opts, &[]);
    again.image.expect("built");
    assert!(!again.stream.contains("Using cache"));
}

#[test]
fn run_steps_see_build_args_and_fail_with_their_code() {
    let mut backend = Recorder::default();
    let scratch = tempfile::tempdir().expect("scratch");
    let mut opts = options(scratch.path());
    opts.build_args.insert("V".into(), Some("2".into()));
    opts.build_args.insert("UNUSED".into(), Some("x".into()));
    let built = build_with(&mut backend, "FROM base\nARG V=1\nRUN echo $V\n", opts, &[]);
    let image = built.image.expect("built");
    assert_eq!(history(&image)[2], "|1 V=2 /bin/sh -c echo $V");
    assert!(
        backend.calls.contains(
            &"create Some([\"/bin/sh\", \"-c\", \"echo $V\"]) env Some([\"PATH=/bin\", \"V=2\"])"
                .to_owned()
        ),
        "{:?}",
        backend.calls
    );
    assert!(built.stream.contains(" ---> Running in "));
    assert!(
        built
            .stream
            .contains("out\n<err>err\n</err>Removing intermediate container")
    );
    assert!(
        built
            .stream
            .contains("[Warning] One or more build-args [UNUSED] were not consumed")
    );
    // The container was removed after its layer was committed.
    assert_eq!(
        image.json["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );

    backend.exit = 100;
    let failed = build(&mut backend, "FROM base\nRUN apt-get install nope\n");
    match failed.image {
        Err(BuildError::Failed { message, code }) => {
            assert_eq!(
                message,
                "The command '/bin/sh -c apt-get install nope' returned a non-zero code: 100"
            );
            assert_eq!(code, Some(100));
        }
        other => panic!("{other:?}"),
    }
    // The failed container is kept for inspection, as without --force-rm.
    assert_ne!(
        backend.calls.last().map(|c| c.starts_with("remove")),
        Some(true)
    );
}

#[test]
fn copy_lands_under_its_destination_with_owners_and_modes() {
    let mut backend = Recorder::default();
    let scratch = tempfile::tempdir().expect("scratch");
    let built = build_with(
        &mut backend,
        "FROM base\nWORKDIR /app\nCOPY a.txt .\nCOPY --chown=app:staff --chmod=600 src /srv/\nCOPY a.txt /etc/renamed\nCOPY *.txt /many/\n",
        options(scratch.path()),
        &[("a.txt", "a"), ("b.txt", "b"), ("src/x/y", "y")],
    );
    let image = built.image.expect("built");
    let copies: Vec<&String> = backend
        .calls
        .iter()
        .filter(|c| c.starts_with("copy into") || c.starts_with("make dirs"))
        .collect();
    assert_eq!(
        copies,
        [
            "make dirs /app",
            "copy into /app [\"a.txt:0:0:644\"]",
            "copy into /srv [\"x:1000:50:600\", \"x/y:1000:50:600\"]",
            "copy into /etc [\"renamed:0:0:644\"]",
            "copy into /many [\"a.txt:0:0:644\"]",
            "copy into /many [\"b.txt:0:0:644\"]",
        ]
    );
    let lines = history(&image);
    assert_eq!(lines[1], "/bin/sh -c #(nop) WORKDIR /app");
    assert!(
        lines[2].starts_with("/bin/sh -c #(nop) COPY file:") && lines[2].ends_with(" in . "),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("/bin/sh -c #(nop) COPY --chown=app:stafffile:")
            || lines[3].starts_with("/bin/sh -c #(nop) COPY --chown=app:staffdir:"),
        "{}",
        lines[3]
    );
    assert!(lines[5].contains("COPY multi:"), "{}", lines[5]);
    // COPY prints no container; WORKDIR does, as dockerd.
    assert_eq!(built.stream.matches("Running in").count(), 1);

    let e = build_with(
        &mut backend,
        "FROM base\nCOPY a.txt b.txt /notadir\n",
        options(scratch.path()),
        &[("a.txt", "a"), ("b.txt", "b")],
    )
    .image
    .expect_err("many into a file");
    assert!(
        e.to_string()
            .contains("must be a directory and end with a /"),
        "{e}"
    );
    let e = build_with(
        &mut backend,
        "FROM base\nCOPY ../../etc /x\n",
        options(scratch.path()),
        &[],
    )
    .image
    .expect_err("outside");
    assert_eq!(
        e.to_string(),
        "forbidden path outside the build context: ../../etc ()"
    );
    let e = build_with(
        &mut backend,
        "FROM base\nCOPY --chown=nobody a.txt /x\n",
        options(scratch.path()),
        &[("a.txt", "a")],
    )
    .image
    .expect_err("no such user");
    assert!(e.to_string().contains("no such user: nobody"), "{e}");
    // ADD fetches a URL (through the backend: the lab's network), names
    // the file after the URL, mode 0600, and never unpacks it.
    build_with(
        &mut backend,
        "FROM base\nADD http://10.0.0.1:8000/files/app.tar?v=1 /srv/\n",
        options(scratch.path()),
        &[],
    )
    .image
    .expect("fetched");
    let last_copy = backend
        .calls
        .iter()
        .rfind(|c| c.starts_with("copy into"))
        .cloned();
    assert_eq!(
        last_copy.as_deref(),
        Some("copy into /srv [\"app.tar:0:0:600\"]")
    );
    for (dockerfile, message) in [
        (
            "FROM base\nADD http://10.0.0.1/missing /x\n",
            "ADD failed: GET http://10.0.0.1/missing: 404 Not Found",
        ),
        (
            "FROM base\nADD http://10.0.0.1/ /x\n",
            "cannot determine a file name from the URL",
        ),
        (
            "FROM base\nCOPY http://10.0.0.1/x /x\n",
            "source can't be a URL for COPY",
        ),
    ] {
        let e = build_with(&mut backend, dockerfile, options(scratch.path()), &[])
            .image
            .expect_err(dockerfile);
        assert!(e.to_string().contains(message), "{dockerfile}: {e}");
    }
}

#[test]
fn stages_targets_and_triggers() {
    let mut backend = Recorder::default();
    let scratch = tempfile::tempdir().expect("scratch");
    let dockerfile = "ARG BASE=base\nFROM $BASE AS build\nRUN make\nFROM base AS test\nRUN false\nFROM scratch\nCOPY --from=build /out/app /app\nCMD [\"/app\"]\n";
    let mut opts = options(scratch.path());
    opts.target = Some("build".into());
    let built = build_with(&mut backend, dockerfile, opts, &[]);
    built.image.expect("target");
    assert!(
        built
            .stream
            .starts_with("Step 1/3 : ARG BASE=base\nStep 2/3 : FROM $BASE AS build\n"),
        "{}",
        built.stream
    );
    assert!(!backend.calls.iter().any(|c| c.contains("false")));

    let e = build_with(
        &mut backend,
        dockerfile,
        {
            let mut o = options(scratch.path());
            o.target = Some("nope".into());
            o
        },
        &[],
    )
    .image
    .expect_err("no such target");
    assert_eq!(
        e.to_string(),
        "failed to reach build target nope in Dockerfile"
    );

    let built = build(&mut backend, &dockerfile.replace("RUN false", "RUN true"));
    let image = built.image.expect("all stages");
    assert_eq!(built.stream.matches("<aux ").count(), 3);
    assert!(
        backend.calls.iter().any(|c| c.ends_with("/out/app")),
        "{:?}",
        backend.calls
    );
    assert_eq!(image.config().cmd, Some(vec!["/app".into()]));

    let triggered = build(&mut backend, "FROM triggers\nRUN true\n");
    let image = triggered.image.expect("triggers");
    assert!(triggered.stream.contains("# Executing 2 build triggers\n"));
    assert_eq!(image.config().env_var("FROM_TRIGGER"), Some("1"));
    assert_eq!(image.config().on_build, None);

    let e = build(&mut backend, "FROM missing\n")
        .image
        .expect_err("pull");
    assert_eq!(e.to_string(), "pull access denied for missing");
    let e = build(&mut backend, "FROM base\nRUNN x\n")
        .image
        .expect_err("parse");
    assert!(matches!(e, BuildError::Parse(_)));
    assert_eq!(
        e.to_string(),
        "dockerfile parse error line 2: unknown instruction: RUNN"
    );
}

#[test]
fn labels_from_the_command_line_are_a_last_step() {
    let mut backend = Recorder::default();
    let scratch = tempfile::tempdir().expect("scratch");
    let mut opts = options(scratch.path());
    opts.labels.insert("course".into(), "docker 101".into());
    let built = build_with(&mut backend, "FROM base\nCMD [\"sh\"]\n", opts, &[]);
    let image = built.image.expect("built");
    assert!(
        built
            .stream
            .contains("Step 3/3 : LABEL course=\"docker 101\"\n"),
        "{}",
        built.stream
    );
    assert_eq!(
        image.config().labels,
        Some(BTreeMap::from([("course".into(), "docker 101".into())]))
    );
}
