//! `cargo bench -p registry --bench push_pull`: layerlab's registry beside
//! Debian's `docker-registry` (distribution 2.8), measured in the same run.
//!
//! For each of nginx and debian from the test catalog (exported to OCI
//! layout directories first), both servers get the same images, the same
//! clients and fresh storage for every run. Two parts:
//!
//! - **One skopeo client**: `skopeo copy` pushes the image from the layout
//!   and pulls it back into a directory on tmpfs (so the client's own disk
//!   writes do not hide the server). MB of blobs per second, median of
//!   [`RUNS`], and the server's peak RSS (VmHWM). Beside them, *skopeo
//!   alone*: the same copy from the layout to tmpfs with no registry at
//!   all, the most any registry can give this client on this machine.
//! - **A classroom**: [`CLASS`] clients at once, each uploading every blob
//!   (POST, then PUT with the body) into a repository of its own, then each
//!   downloading every blob. Aggregate MB/s and the server's CPU time per
//!   GB moved: what a registry serving a whole class costs.
//!
//! layerlab's registry runs as a child process (this executable again,
//! with `REGISTRY_BENCH_SERVE` set), so its memory and CPU are measured
//! apart from the bench's own. Needs `skopeo`, `docker-registry` and the
//! catalog in /var/tmp/layerlab/test-data (built by `cargo test -p images`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::{Namespace, Reference, Store};

const CATALOG_STORE: &str = "/var/tmp/layerlab/test-data/store";
const SERVE_ENV: &str = "REGISTRY_BENCH_SERVE";
const RUNS: usize = 5;
const CLASS: usize = 8;

fn main() {
    if let Ok(root) = std::env::var(SERVE_ENV) {
        serve_child(Path::new(&root));
        return;
    }
    let catalog = Store::open(Path::new(CATALOG_STORE)).expect("open the test catalog");
    let hub = Namespace::new("hub").expect("hub");
    let scratch = tempfile::tempdir_in("/var/tmp").expect("scratch dir");
    let tmpfs = tempfile::tempdir_in(tmpfs_parent()).expect("tmpfs scratch dir");
    let mut layouts = Vec::new();
    for image in ["nginx", "debian"] {
        let layout = scratch.path().join(format!("{image}-layout"));
        catalog
            .export_oci_layout(&hub, &[Reference::parse(image).expect("name")], &layout)
            .unwrap_or_else(|e| {
                panic!("{image} is not in the test catalog ({e}); run `cargo test -p images`")
            });
        layouts.push((image, layout));
    }

    println!("one skopeo client, median of {RUNS} runs, fresh storage each run");
    println!(
        "{:<8} {:<14} {:>8} {:>10} {:>10} {:>12}",
        "image", "server", "size MB", "push MB/s", "pull MB/s", "peak RSS MB"
    );
    for (image, layout) in &layouts {
        let bytes = blob_bytes(layout);
        let ours = one_client(Kind::Layerlab, layout, bytes, scratch.path(), tmpfs.path());
        let theirs = one_client(
            Kind::Distribution,
            layout,
            bytes,
            scratch.path(),
            tmpfs.path(),
        );
        let alone = mbps(bytes, skopeo_alone(layout, tmpfs.path()));
        for (name, m) in [("layerlab", &ours), ("distribution", &theirs)] {
            println!(
                "{image:<8} {name:<14} {:>8.1} {:>10.1} {:>10.1} {:>12.1}",
                bytes as f64 / 1e6,
                m.push_mbps,
                m.pull_mbps,
                m.peak_rss_kib as f64 / 1024.0
            );
        }
        println!(
            "{image:<8} {:<14} {:>8} {:>9.2}x {:>9.2}x {:>11.2}x",
            "ratio",
            "",
            ours.push_mbps / theirs.push_mbps,
            ours.pull_mbps / theirs.pull_mbps,
            ours.peak_rss_kib as f64 / theirs.peak_rss_kib.max(1) as f64
        );
        println!(
            "{image:<8} {:<14} {:>8} {:>21.1}   (no registry: the client's ceiling, {:.2}x distribution's pull)",
            "skopeo alone",
            "",
            alone,
            alone / theirs.pull_mbps
        );
    }

    println!();
    println!("a classroom: {CLASS} clients at once, each uploading then downloading every blob");
    println!(
        "{:<8} {:<14} {:>12} {:>14} {:>12} {:>14} {:>12}",
        "image",
        "server",
        "upload MB/s",
        "upload CPU s/GB",
        "GET MB/s",
        "GET CPU s/GB",
        "peak RSS MB"
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    for (image, layout) in &layouts {
        let blobs = read_blobs(layout);
        let ours = runtime.block_on(classroom(Kind::Layerlab, &blobs, scratch.path()));
        let theirs = runtime.block_on(classroom(Kind::Distribution, &blobs, scratch.path()));
        for (name, m) in [("layerlab", &ours), ("distribution", &theirs)] {
            println!(
                "{image:<8} {name:<14} {:>12.1} {:>14.2} {:>12.1} {:>14.2} {:>12.1}",
                m.upload_mbps,
                m.upload_cpu_per_gb,
                m.get_mbps,
                m.get_cpu_per_gb,
                m.peak_rss_kib as f64 / 1024.0
            );
        }
        println!(
            "{image:<8} {:<14} {:>11.2}x {:>13.2}x {:>11.2}x {:>13.2}x {:>11.2}x",
            "ratio",
            ours.upload_mbps / theirs.upload_mbps,
            ours.upload_cpu_per_gb / theirs.upload_cpu_per_gb,
            ours.get_mbps / theirs.get_mbps,
            ours.get_cpu_per_gb / theirs.get_cpu_per_gb,
            ours.peak_rss_kib as f64 / theirs.peak_rss_kib.max(1) as f64
        );
    }
}

/// Where the pulled copies go: tmpfs when the machine has one.
fn tmpfs_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Layerlab,
    Distribution,
}

struct OneClient {
    push_mbps: f64,
    pull_mbps: f64,
    peak_rss_kib: u64,
}

fn one_client(kind: Kind, layout: &Path, bytes: u64, scratch: &Path, tmpfs: &Path) -> OneClient {
    let mut pushes = Vec::new();
    let mut pulls = Vec::new();
    let mut peak = 0;
    for run in 0..RUNS {
        let root = tempfile::tempdir_in(scratch).expect("registry root");
        let server = Server::start(kind, root.path());
        let dest = format!("docker://{}/bench/image:{run}", server.addr);
        let started = Instant::now();
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}", layout.display()),
            &dest,
        ]);
        pushes.push(started.elapsed());
        let out = tmpfs.join(format!("pulled-{run}"));
        let started = Instant::now();
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &dest,
            &format!("dir:{}", out.display()),
        ]);
        pulls.push(started.elapsed());
        std::fs::remove_dir_all(&out).expect("remove the pulled copy");
        peak = peak.max(server.peak_rss_kib());
    }
    OneClient {
        push_mbps: mbps(bytes, median(pushes)),
        pull_mbps: mbps(bytes, median(pulls)),
        peak_rss_kib: peak,
    }
}

/// skopeo copying the layout to tmpfs, no registry involved: reading,
/// verifying and writing the same blobs a pull moves.
fn skopeo_alone(layout: &Path, tmpfs: &Path) -> Duration {
    let samples = (0..RUNS)
        .map(|run| {
            let out = tmpfs.join(format!("alone-{run}"));
            let started = Instant::now();
            skopeo(&[
                "copy",
                &format!("oci:{}", layout.display()),
                &format!("dir:{}", out.display()),
            ]);
            let took = started.elapsed();
            std::fs::remove_dir_all(&out).expect("remove the copy");
            took
        })
        .collect();
    median(samples)
}

struct Classroom {
    upload_mbps: f64,
    upload_cpu_per_gb: f64,
    get_mbps: f64,
    get_cpu_per_gb: f64,
    peak_rss_kib: u64,
}

/// [`CLASS`] clients upload every blob at once, each into its own
/// repository, then download every blob at once.
async fn classroom(kind: Kind, blobs: &[(String, Bytes)], scratch: &Path) -> Classroom {
    let root = tempfile::tempdir_in(scratch).expect("registry root");
    let server = Server::start(kind, root.path());
    let moved = (CLASS * blobs.iter().map(|(_, b)| b.len()).sum::<usize>()) as u64;
    let (upload_took, upload_cpu) = whole_class(&server, |client, base| async move {
        for (digest, bytes) in blobs {
            upload(&client, &base, digest, bytes.clone()).await;
        }
    })
    .await;
    let (get_took, get_cpu) = whole_class(&server, |client, base| async move {
        for (digest, bytes) in blobs {
            let got = download(&client, &format!("{base}/blobs/{digest}")).await;
            assert_eq!(got, bytes.len() as u64, "size of {digest}");
        }
    })
    .await;
    let per_gb = |cpu: Duration| cpu.as_secs_f64() / (moved as f64 / 1e9);
    Classroom {
        upload_mbps: mbps(moved, upload_took),
        upload_cpu_per_gb: per_gb(upload_cpu),
        get_mbps: mbps(moved, get_took),
        get_cpu_per_gb: per_gb(get_cpu),
        peak_rss_kib: server.peak_rss_kib(),
    }
}

/// Runs `each` for every student at once, with the student's repository
/// URL; returns the wall time and the server's CPU time it took.
async fn whole_class<F, Fut>(server: &Server, each: F) -> (Duration, Duration)
where
    F: Fn(reqwest::Client, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = reqwest::Client::new();
    let cpu = server.cpu_time();
    let started = Instant::now();
    futures_util::future::join_all((0..CLASS).map(|student| {
        each(
            client.clone(),
            format!("http://{}/v2/class/student{student}", server.addr),
        )
    }))
    .await;
    (started.elapsed(), server.cpu_time() - cpu)
}

/// A monolithic upload: `POST` for a session, `PUT ?digest=` with the body.
async fn upload(client: &reqwest::Client, base: &str, digest: &str, body: Bytes) {
    let started = client
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .expect("POST upload");
    assert_eq!(
        started.status(),
        reqwest::StatusCode::ACCEPTED,
        "POST upload"
    );
    let location = started
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("upload Location")
        .to_owned();
    let mut url = reqwest::Url::parse(base)
        .and_then(|b| b.join(&location))
        .expect("upload URL");
    url.query_pairs_mut().append_pair("digest", digest);
    let done = client
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("PUT upload");
    assert_eq!(done.status(), reqwest::StatusCode::CREATED, "PUT {digest}");
}

/// Downloads `url`, counting the bytes and keeping none.
async fn download(client: &reqwest::Client, url: &str) -> u64 {
    let mut response = client.get(url).send().await.expect("GET blob");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let mut got = 0;
    while let Some(chunk) = response.chunk().await.expect("blob body") {
        got += chunk.len() as u64;
    }
    got
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Total size of the blobs of an OCI layout: what a push or pull moves.
fn blob_bytes(layout: &Path) -> u64 {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("layout blobs")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// `sha256:<hex>` and bytes of every blob in an OCI layout.
fn read_blobs(layout: &Path) -> Vec<(String, Bytes)> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("layout blobs")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("read blob");
            (
                format!("sha256:{}", e.file_name().to_string_lossy()),
                Bytes::from(bytes),
            )
        })
        .collect()
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry process; stopped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(kind: Kind, root: &Path) -> Server {
        match kind {
            Kind::Layerlab => {
                let mut child = Command::new(std::env::current_exe().expect("own executable"))
                    .env(SERVE_ENV, root)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("start layerlab's registry");
                let mut line = String::new();
                BufReader::new(child.stdout.take().expect("stdout"))
                    .read_line(&mut line)
                    .expect("registry address");
                Server {
                    child,
                    addr: line.trim().to_owned(),
                }
            }
            Kind::Distribution => {
                let (child, addr) = testkit::start_distribution(root);
                Server { child, addr }
            }
        }
    }

    /// User plus system time the server process used so far.
    fn cpu_time(&self) -> Duration {
        let ticks = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which is in parentheses.
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .expect("the server's /proc/<pid>/stat");
        // Linux reports these in USER_HZ, 100 per second on every
        // architecture this runs on.
        Duration::from_millis(ticks * 10)
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child mode: serve a registry over `root`, print its address, stop when
/// standard input closes (the parent dropped or died).
fn serve_child(root: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(root).expect("store");
        let registry = registry::Registry::open(registry::Config::new(
            store,
            Namespace::new("registry").expect("namespace"),
        ))
        .expect("registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        registry::serve(listener, registry.router(), stdin_closed)
            .await
            .expect("serve");
    });
}
