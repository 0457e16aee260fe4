//! Real catalog builds: debootstrap, apt-get from Debian's archive, overlay
//! chroots, the real store. They need root, network to deb.debian.org,
//! `debootstrap`, `busybox-static`, `gcc`, `libc6-dev` and `skopeo`, and
//! fail with a message saying so when something is missing.
//!
//! All tests share ONE catalog build in /var/tmp/layerlab/test-data
//! (laid out like a layerlab data directory: `store/` and `cache/images/`,
//! so the server tests run sandboxes from the same catalog). The first test process to get there builds it (a few
//! minutes the first time); every other one, in this process or another,
//! waits on the cache's flock and then gets a verified cache hit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use images::recipes::{AddFile, FileSource, Recipe, Step};
use images::{BuiltImage, Error, Progress, StepStatus};
use store::{Reference, Store};

const SHARED_ROOT: &str = "/var/tmp/layerlab/test-data";

struct Shared {
    store: Store,
    cache: PathBuf,
    built: HashMap<String, BuiltImage>,
}

impl Shared {
    fn image(&self, name: &str) -> &BuiltImage {
        self.built
            .get(name)
            .unwrap_or_else(|| panic!("the catalog build did not produce {name}"))
    }
}

/// The executable the catalog puts at /usr/local/bin/layerlab. This crate
/// cannot build the layerlab binary, so its tests stand in their own;
/// the server's tests rebuild the catalog with the real one (only the
/// binary's layer and the images on it change, the rest stays cached).
fn layerlab() -> PathBuf {
    std::env::current_exe().expect("the test's own executable")
}

/// The package repository of the shared catalog, beside its store.
fn mirror() -> images::packages::Mirror {
    images::packages::Mirror::new(&Path::new(SHARED_ROOT).join("packages"))
}

/// The one shared catalog build.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = Path::new(SHARED_ROOT);
        let store = Store::open(&root.join("store")).expect("cannot open the shared test store");
        let cache = root.join("cache").join("images");
        let built = images::build_catalog(&store, &cache, &layerlab(), &mirror(), |event| {
            // Visible with --nocapture: the first build takes minutes.
            eprintln!("{event}");
        })
        .unwrap_or_else(|e| panic!("catalog build failed (needs root and deb.debian.org): {e}"));
        let built = built.into_iter().map(|b| (b.name.clone(), b)).collect();
        Shared {
            store,
            cache,
            built,
        }
    })
}

fn hub_digest(store: &Store, name: &str) -> store::Digest {
    let reference = Reference::parse(name).expect("test names are valid");
    store
        .resolve(&images::hub(), &reference)
        .unwrap_or_else(|e| panic!("{name} does not resolve in the hub: {e}"))
}

/// Whether `rel` exists in any of the image's unpacked layers.
fn in_layers(lowerdirs: &[PathBuf], rel: &str) -> bool {
    lowerdirs
        .iter()
        .any(|dir| dir.join(rel).symlink_metadata().is_ok())
}

#[test]
fn every_catalog_image_resolves_in_the_hub() {
    let s = shared();
    for recipe in images::catalog(&layerlab(), &mirror().public_key()) {
        let built = s.image(recipe.name());
        for tag in &recipe.tags {
            assert_eq!(hub_digest(&s.store, tag), built.manifest_digest, "{tag}");
        }
        // Verified, not trusted: every blob the manifest names is stored.
        let image = s.store.image(&built.manifest_digest).expect("stored image");
        assert!(s.store.blob_exists(&image.config_digest));
        for layer in &image.layers {
            assert!(
                s.store.blob_exists(&layer.digest),
                "{}: layer {}",
                recipe.name(),
                layer.digest
            );
        }
    }
    assert_eq!(
        hub_digest(&s.store, "debian:latest"),
        hub_digest(&s.store, "debian:bookworm")
    );
    // Short names resolve the way `docker pull busybox` spells them.
    assert_eq!(
        hub_digest(&s.store, "busybox"),
        s.image("busybox:latest").manifest_digest
    );

    let listed = images::list(&s.store).expect("list");
    let by_name: HashMap<&str, &images::ImageSummary> =
        listed.iter().map(|i| (i.name.as_str(), i)).collect();
    for name in [
        "busybox:latest",
        "debian:bookworm",
        "debian:latest",
        "nginx:latest",
        "hello-world:latest",
        "workstation:latest",
    ] {
        let summary = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from images::list: {listed:?}"));
        assert_eq!(summary.internal, name == "workstation:latest", "{name}");
        assert!(
            summary.size > 0 && summary.layers > 0,
            "{name}: {summary:?}"
        );
    }
}

#[test]
fn images_built_on_debian_share_its_layer() {
    let s = shared();
    let debian = s.image("debian:bookworm");
    let nginx = s.image("nginx:latest");
    let workstation = s.image("workstation:latest");
    assert_eq!(debian.layers.len(), 2, "debootstrap, then apt's sources");
    assert_eq!(
        nginx.layers.len(),
        3,
        "nginx is debian's layers plus one apt-get layer"
    );
    assert_eq!(nginx.layers[..2], debian.layers[..]);
    assert_eq!(workstation.layers[..2], debian.layers[..]);
    assert_eq!(
        workstation.layers.len(),
        5,
        "debian, tools, docker CLI, layerlab"
    );
    let registry = s.image("registry:2");
    assert_eq!(registry.layers.len(), 3, "debian plus layerlab");
    assert_eq!(registry.layers[..2], debian.layers[..]);
    assert_eq!(
        registry.layers[2], workstation.layers[4],
        "registry and workstation store one layerlab layer, byte for byte"
    );
}

#[test]
fn debian_trusts_only_the_installations_signed_repository() {
    let s = shared();
    let unpacked = s
        .store
        .unpack(&s.image("debian:bookworm").manifest_digest)
        .expect("unpack");
    // Top-most layer first: the first hit is what the image shows.
    let read = |rel: &str| {
        unpacked
            .lowerdirs
            .iter()
            .find_map(|dir| std::fs::read(dir.join(rel)).ok())
            .unwrap_or_else(|| panic!("{rel} is not in debian"))
    };
    let sources = String::from_utf8(read("etc/apt/sources.list")).expect("text");
    let sources: Vec<&str> = sources.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        sources,
        [
            "deb [signed-by=/etc/apt/keyrings/layerlab.gpg] http://packages.layerlab.internal:3142/debian bookworm main"
        ]
    );
    assert!(!in_layers(
        &unpacked.lowerdirs,
        "etc/apt/sources.list.d/debian.sources"
    ));
    let key = std::fs::read(mirror().public_key()).expect("the installation's key");
    assert_eq!(read("etc/apt/keyrings/layerlab.gpg"), key);
    // Set up for containers as Docker's Debian images are: no per-file
    // sync in dpkg, no apt caches or translations left in a layer.
    assert_eq!(
        read("etc/dpkg/dpkg.cfg.d/docker-apt-speedup"),
        b"force-unsafe-io\n"
    );
    let clean = String::from_utf8(read("etc/apt/apt.conf.d/docker-clean")).expect("text");
    assert!(clean.contains("Dir::Cache::pkgcache \"\";"), "{clean}");
    assert_eq!(
        read("etc/apt/apt.conf.d/docker-no-languages"),
        b"Acquire::Languages \"none\";\n"
    );

    // The repository is signed with that key, and lists what it holds.
    let dists = mirror().repository().join("dists/bookworm");
    let verified = Command::new("gpgv")
        .arg("--keyring")
        .arg(mirror().public_key())
        .arg(dists.join("InRelease"))
        .output()
        .expect("gpgv");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let index = std::fs::read_to_string(dists.join("main/binary-amd64/Packages"))
        .expect("the repository's index");
    for package in [
        "figlet",
        "nmap",
        "python3",
        "iputils-ping",
        "netcat-openbsd",
    ] {
        assert!(
            index.contains(&format!("Package: {package}\n")),
            "{package} is not in the repository"
        );
    }
    let pool = mirror().repository().join("pool/main");
    for line in index.lines().filter_map(|l| l.strip_prefix("Filename: ")) {
        assert!(
            mirror().repository().join(line).is_file(),
            "{line} is listed but missing"
        );
        assert!(!line.contains('%'), "{line} would be encoded twice");
    }
    assert!(pool.is_dir());
}

#[test]
fn registry_runs_layerlab_registry_serve_on_port_5000() {
    let s = shared();
    let image = s
        .store
        .image(&s.image("registry:2").manifest_digest)
        .expect("stored registry image");
    assert_eq!(
        hub_digest(&s.store, "registry:latest"),
        image.manifest_digest
    );
    let config = image.config().expect("registry config");
    let run = config.config().as_ref().expect("run config");
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        run.entrypoint().as_deref(),
        Some(&strings(&["/usr/local/bin/layerlab", "registry", "serve"])[..])
    );
    assert_eq!(
        run.cmd().as_deref(),
        Some(&strings(&["--listen", "0.0.0.0:5000", "--root", "/var/lib/registry"])[..])
    );
    assert_eq!(
        run.exposed_ports().as_deref(),
        Some(&strings(&["5000/tcp"])[..])
    );
    assert_eq!(
        run.volumes().as_deref(),
        Some(&strings(&["/var/lib/registry"])[..])
    );
    // The binary is a stripped copy of the executable that built the catalog.
    let unpacked = s.store.unpack(&image.manifest_digest).expect("unpack");
    let binary = unpacked
        .lowerdirs
        .iter()
        .map(|d| d.join("usr/local/bin/layerlab"))
        .find(|p| p.exists())
        .expect("/usr/local/bin/layerlab in registry:2");
    let meta = std::fs::metadata(&binary).expect("binary metadata");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755
    );
    let original = std::fs::metadata(layerlab()).expect("own executable").len();
    assert!(
        meta.len() > 0 && meta.len() <= original,
        "{} > {original}",
        meta.len()
    );
}

#[test]
fn configs_carry_env_cmd_ports_labels_and_history() {
    let s = shared();
    let config = |name: &str| {
        s.store
            .image(&s.image(name).manifest_digest)
            .and_then(|i| i.config())
            .unwrap_or_else(|e| panic!("{name}: config: {e}"))
    };
    for recipe in images::catalog(&layerlab(), &mirror().public_key()) {
        let c = config(recipe.name());
        assert_eq!(c.architecture().to_string(), "amd64");
        assert_eq!(c.os().to_string(), "linux");
        let run = c.config().as_ref().expect("run config");
        let env = run.env().clone().unwrap_or_default();
        assert!(
            env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin:")),
            "{}: {env:?}",
            recipe.name()
        );
        let labels = run.labels().clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("org.opencontainers.image.vendor")
                .map(String::as_str),
            Some("layerlab")
        );
        let history = c.history().clone().unwrap_or_default();
        let layered = history
            .iter()
            .filter(|h| h.empty_layer() != Some(true))
            .count();
        assert_eq!(
            layered,
            c.rootfs().diff_ids().len(),
            "{}: history vs layers",
            recipe.name()
        );
        assert!(history.iter().any(|h| h.empty_layer() == Some(true)));
    }

    let nginx = config("nginx:latest");
    let run = nginx.config().as_ref().expect("run config");
    assert_eq!(
        run.cmd().as_deref(),
        Some(
            &[
                "nginx".to_owned(),
                "-g".to_owned(),
                "daemon off;".to_owned()
            ][..]
        )
    );
    assert_eq!(
        run.exposed_ports().as_deref(),
        Some(&["80/tcp".to_owned()][..])
    );
    assert_eq!(run.stop_signal().as_deref(), Some("SIGQUIT"));
    let history = nginx.history().clone().unwrap_or_default();
    assert!(
        history.iter().any(|h| h
            .created_by()
            .as_deref()
            .is_some_and(|c| c.starts_with("/bin/sh -c apt-get update")
                && c.contains("install -y --no-install-recommends nginx"))),
        "{history:?}"
    );

    let workstation = config("workstation:latest");
    let run = workstation.config().as_ref().expect("run config");
    assert_eq!(run.working_dir().as_deref(), Some("/root"));
    assert_eq!(
        run.cmd().as_deref(),
        Some(&["bash".to_owned(), "-l".to_owned()][..])
    );
    let hello = config("hello-world:latest");
    assert_eq!(
        hello.config().as_ref().and_then(|r| r.cmd().clone()),
        Some(vec!["/hello".to_owned()])
    );
}

#[test]
fn nginx_serves_our_page_and_logs_to_the_terminal() {
    let s = shared();
    let unpacked = s
        .store
        .unpack(&s.image("nginx:latest").manifest_digest)
        .expect("unpack nginx");
    let top = &unpacked.lowerdirs[0];
    let page =
        std::fs::read_to_string(top.join("usr/share/nginx/html/index.html")).expect("welcome page");
    assert!(page.contains("layerlab's nginx is running"));
    let site =
        std::fs::read_to_string(top.join("etc/nginx/sites-available/default")).expect("site");
    assert!(site.contains("root /usr/share/nginx/html;") && site.contains("listen 80"));
    for (log, target) in [("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")] {
        let link = std::fs::read_link(top.join("var/log/nginx").join(log)).expect("log link");
        assert_eq!(link, Path::new(target));
    }
    assert!(in_layers(&unpacked.lowerdirs, "usr/sbin/nginx"));
    // The apt lists and caches were removed in the same layer.
    let lists = top.join("var/lib/apt/lists");
    let leftovers: Vec<_> = std::fs::read_dir(&lists)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "apt lists left in nginx's layer: {leftovers:?}"
    );
}

#[test]
fn workstation_has_the_docker_cli_and_no_daemon() {
    let s = shared();
    let unpacked = s
        .store
        .unpack(&s.image("workstation:latest").manifest_digest)
        .expect("unpack workstation");
    for present in [
        "usr/bin/docker",
        "usr/share/bash-completion/completions/docker",
        "usr/bin/bash",
        "usr/bin/curl",
        "usr/bin/jq",
        "usr/bin/git",
        "usr/bin/vim",
        "usr/bin/ping",
        "usr/bin/ps",
        "usr/bin/ip",
    ] {
        assert!(
            in_layers(&unpacked.lowerdirs, present),
            "{present} missing from workstation"
        );
    }
    for absent in [
        "usr/bin/dockerd",
        "usr/sbin/dockerd",
        "usr/bin/containerd",
        "usr/sbin/containerd",
        "usr/bin/runc",
        "usr/sbin/runc",
    ] {
        assert!(
            !in_layers(&unpacked.lowerdirs, absent),
            "{absent} must not be in workstation"
        );
    }
}

#[test]
fn hello_world_runs_on_the_host_and_explains_itself() {
    let s = shared();
    let unpacked = s
        .store
        .unpack(&s.image("hello-world:latest").manifest_digest)
        .expect("unpack hello-world");
    assert_eq!(unpacked.lowerdirs.len(), 1, "hello-world is one layer");
    let rootfs = &unpacked.lowerdirs[0];
    let entries: Vec<_> = std::fs::read_dir(rootfs)
        .expect("rootfs")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("hello")],
        "a scratch image with one file"
    );
    let out = Command::new("chroot")
        .arg(rootfs)
        .arg("/hello")
        .output()
        .expect("chroot (needs root)");
    assert!(out.status.success(), "hello exited with {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hello from layerlab!"), "{text}");
    assert!(text.contains("pulled it from the hub"), "{text}");
}

#[test]
fn second_build_is_a_verified_cache_hit() {
    let s = shared();
    let mut statuses = Vec::new();
    let again = images::build_catalog(&s.store, &s.cache, &layerlab(), &mirror(), |event| {
        if let Progress::Step {
            image,
            step,
            status,
            ..
        } = event
        {
            statuses.push((image, step, status));
        }
    })
    .expect("second build");
    let rebuilt: Vec<_> = statuses
        .iter()
        .filter(|(_, _, st)| *st == StepStatus::Building)
        .collect();
    assert!(
        rebuilt.is_empty(),
        "steps rebuilt although nothing changed: {rebuilt:?}"
    );
    assert!(statuses.iter().any(|(_, _, st)| *st == StepStatus::Cached));
    for image in again {
        assert!(!image.rebuilt, "{}", image.name);
        let first = s.image(&image.name);
        assert_eq!(
            image.manifest_digest, first.manifest_digest,
            "{}",
            image.name
        );
        assert_eq!(image.config_digest, first.config_digest, "{}", image.name);
    }
}

/// Builds `recipes` into the shared store and returns the status of each
/// layer step in order.
fn build_statuses(recipes: &[Recipe]) -> (Vec<BuiltImage>, Vec<(String, StepStatus)>) {
    let s = shared();
    let mut statuses = Vec::new();
    let built = images::build(&s.store, &s.cache, recipes, |event| {
        if let Progress::Step { image, status, .. } = event
            && status != StepStatus::Config
        {
            statuses.push((image, status));
        }
    })
    .expect("build of the test recipes");
    (built, statuses)
}

#[test]
fn a_changed_recipe_rebuilds_from_the_changed_step() {
    let s = shared();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let scratch = tempfile::tempdir().expect("tempdir");
    let host_file = scratch.path().join("greeting");
    std::fs::write(&host_file, "first").expect("write host file");
    let recipes = |nonce: u128| {
        vec![
            Recipe::new("layerlab-test/changed:latest")
                .from("busybox:latest")
                .run(&format!("echo {nonce} > /etc/nonce"))
                .step(Step::Add {
                    files: vec![AddFile {
                        path: "/etc/greeting".into(),
                        mode: 0o644,
                        source: FileSource::Host(host_file.clone()),
                    }],
                })
                .cmd(&["cat", "/etc/nonce"]),
        ]
    };

    // New script: both layers are new (the second sits on a new parent).
    let (first, statuses) = build_statuses(&recipes(nonce));
    let building = |st: &[(String, StepStatus)]| st.iter().map(|(_, s)| *s).collect::<Vec<_>>();
    assert_eq!(
        building(&statuses),
        [StepStatus::Building, StepStatus::Building]
    );
    assert_eq!(
        first[0].layers[0],
        s.image("busybox:latest").layers[0],
        "built on busybox's layer"
    );
    let unpacked = s.store.unpack(&first[0].manifest_digest).expect("unpack");
    let nonce_file =
        std::fs::read_to_string(unpacked.lowerdirs[1].join("etc/nonce")).expect("run step output");
    assert_eq!(nonce_file.trim(), nonce.to_string());

    // Unchanged: all cached, same digest.
    let (again, statuses) = build_statuses(&recipes(nonce));
    assert_eq!(
        building(&statuses),
        [StepStatus::Cached, StepStatus::Cached]
    );
    assert_eq!(again[0].manifest_digest, first[0].manifest_digest);

    // The host file's contents changed, its path did not: only that step.
    std::fs::write(&host_file, "second").expect("rewrite host file");
    let (changed, statuses) = build_statuses(&recipes(nonce));
    assert_eq!(
        building(&statuses),
        [StepStatus::Cached, StepStatus::Building]
    );
    assert_ne!(changed[0].manifest_digest, first[0].manifest_digest);
    assert_eq!(changed[0].layers[1], first[0].layers[1]);
}

#[test]
fn a_failing_step_reports_its_output_and_leaves_no_snapshot() {
    // Its own store and cache, so no other test's build shows up among the
    // active snapshots checked below.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let recipe = Recipe::new("layerlab-test/failing:latest")
        .step(Step::Busybox)
        .run("echo about to fail; exit 3");
    let err = images::build(&store, &dir.path().join("cache"), &[recipe], |_| {})
        .expect_err("exit 3 must fail the build");
    let message = err.to_string();
    assert!(matches!(err, Error::Step { step: 2, .. }), "{message}");
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(chain.contains("about to fail"), "{chain}");
    let active = store
        .snapshots()
        .list_active()
        .expect("list active snapshots");
    assert!(active.is_empty(), "failed step left snapshots: {active:?}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache/work"))
        .expect("cache work dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "failed step left scratch dirs: {leftovers:?}"
    );
    assert!(matches!(
        store.resolve(&images::hub(), &Reference::parse("layerlab-test/failing").expect("name")),
        Err(e) if e.kind() == store::ErrorKind::NotFound
    ));
}

#[test]
fn a_cache_record_whose_blob_is_gone_is_rebuilt() {
    // Its own store and cache: the blob is deleted behind the cache's back.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let cache = dir.path().join("cache");
    let recipe = || {
        vec![
            Recipe::new("layerlab-test/tiny:latest")
                .step(Step::Busybox)
                .cmd(&["sh"]),
        ]
    };
    let statuses = |store: &Store| {
        let mut out = Vec::new();
        let built = images::build(store, &cache, &recipe(), |event| {
            if let Progress::Step { status, .. } = event
                && status != StepStatus::Config
            {
                out.push(status);
            }
        })
        .expect("build");
        (built, out)
    };
    let (first, st) = statuses(&store);
    assert_eq!(st, [StepStatus::Building]);
    let (_, st) = statuses(&store);
    assert_eq!(st, [StepStatus::Cached]);

    store
        .delete_blob(&first[0].layers[0].digest)
        .expect("delete the layer blob");
    let (again, st) = statuses(&store);
    assert_eq!(
        st,
        [StepStatus::Building],
        "a record without its blob must not be trusted"
    );
    assert!(store.blob_exists(&again[0].layers[0].digest));
    store
        .image(&again[0].manifest_digest)
        .expect("the rebuilt image is complete");
}

#[test]
fn skopeo_accepts_every_export() {
    let s = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    for recipe in images::catalog(&layerlab(), &mirror().public_key()) {
        let name = recipe.name();
        let path = dir
            .path()
            .join(format!("{}.tar", name.replace([':', '/'], "_")));
        let digest = images::export(&s.store, name, &path).expect("export");
        assert_eq!(digest, s.image(name).manifest_digest);
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", path.display()))
            .output()
            .expect("skopeo (apt-get install -y skopeo)");
        assert!(
            out.status.success(),
            "skopeo rejected {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo json");
        assert_eq!(info["Digest"], digest.to_string(), "{name}");
        assert_eq!(info["Architecture"], "amd64");
        assert_eq!(info["Os"], "linux");
        assert_eq!(
            info["Layers"].as_array().map(Vec::len),
            Some(s.image(name).layers.len()),
            "{name}"
        );
    }
}

#[test]
fn export_rejects_invalid_and_unknown_names() {
    // An empty store: no build needed to refuse names.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let out = dir.path().join("out.tar");
    for bad in [
        "",
        "NGINX",
        "busybox/UPPER",
        "../../etc/passwd",
        "name with spaces",
        "nginx:bad tag!",
        "nginx@sha256:xyz",
    ] {
        let err = images::export(&store, bad, &out).expect_err(bad);
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains("invalid image name"), "{err}");
    }
    let err = images::export(&store, "nosuchimage:1.0", &out).expect_err("unknown");
    assert!(matches!(err, Error::UnknownImage { .. }), "{err}");
    assert!(
        err.to_string().contains("images build"),
        "says what to do: {err}"
    );
    assert!(!out.exists(), "a failed export must not leave a file");
}

#[test]
fn export_to_a_missing_directory_is_a_clear_error() {
    let s = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/busybox.tar");
    let err = images::export(&s.store, "busybox", &path).expect_err("missing dir");
    assert!(matches!(err, Error::ExportDirMissing { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("no").exists());
}
