//! What a student feels in the terminal: keystroke-to-echo round trips and
//! the throughput of a big `cat`, through layerlab's terminal websocket
//! into a real lab, side by side with Jupyter's terminal server (terminado
//! behind tornado, Debian's python3-terminado) and a bare local PTY, all
//! measured in this run on loopback. Also the server's memory while the
//! flood goes through.
//!
//! `cargo bench -p server --bench terminal` (root). Labs come from the
//! catalog in `LAYERLAB_BENCH_DATA` (default `/var/tmp/layerlab/data`, the
//! one `make run` builds), built here if missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::{BIN, cli, rss};

mod common;

const KEYS: usize = 2000;
const FLOOD_BYTES: u64 = 100_000_000;
const FLOOD_LINE: &str = "layerlab terminal benchmark: the quick brown fox jumps over the lazy dog";
/// Printed after the flood; the typed command holds it unexpanded.
const DONE: &str = "flood-42-done";
const FLOOD_COMMAND: &str = "cat flood.txt; echo flood-$((40+2))-done\r";
const RAW_CAT: &str = "stty raw -echo; cat\r";
const LESSON: &str = "01-what-is-a-container";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Figures {
    p50: Duration,
    p99: Duration,
    mb_per_s: f64,
    rss_idle: u64,
    rss_peak: u64,
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let flood = work.path().join("flood.txt");
    write_flood(&flood)?;

    println!(
        "terminal: {KEYS} keystrokes (`{}`), then `cat` of {} MB of text",
        RAW_CAT.trim(),
        FLOOD_BYTES / 1_000_000
    );
    let ours = runtime.block_on(layerlab(work.path()))?;
    let terminado = runtime.block_on(terminado(work.path()))?;
    let bare = bare_pty(work.path())?;

    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>22}",
        "", "echo p50", "echo p99", "cat MB/s", "server RSS idle→peak"
    );
    for (name, f) in [
        ("layerlab (websocket, lab)", &ours),
        ("terminado (websocket)", &terminado),
        ("bare PTY (no web layer)", &bare),
    ] {
        let rss = if f.rss_peak == 0 {
            "—".to_owned()
        } else {
            format!("{} → {} MiB", f.rss_idle >> 20, f.rss_peak >> 20)
        };
        println!(
            "{name:<28} {:>7.3} ms {:>7.3} ms {:>12.1} {rss:>22}",
            ms(f.p50),
            ms(f.p99),
            f.mb_per_s
        );
    }
    println!();
    let ratio = ours.mb_per_s / terminado.mb_per_s;
    println!(
        "echo p99 below terminado's: {} ({:.3} ms vs {:.3} ms)",
        yes(ours.p99 < terminado.p99),
        ms(ours.p99),
        ms(terminado.p99)
    );
    println!(
        "throughput ≥ 10× terminado's: {} ({ratio:.1}×)",
        yes(ratio >= 10.0)
    );
    println!(
        "server memory while flooding: +{} MiB",
        ours.rss_peak.saturating_sub(ours.rss_idle) >> 20
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn write_flood(path: &Path) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let line = format!("{FLOOD_LINE}\n");
    let mut written = 0;
    while written < FLOOD_BYTES {
        file.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    file.flush()?;
    Ok(())
}

/// Watches a byte stream for a marker that may straddle chunks, counting
/// the bytes on the way.
#[derive(Default)]
struct Marker {
    tail: Vec<u8>,
    total: u64,
}

impl Marker {
    /// True once `marker` has appeared in everything pushed so far.
    fn push(&mut self, chunk: &[u8], marker: &str) -> bool {
        self.total += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        let marker = marker.as_bytes();
        if self.tail.windows(marker.len()).any(|w| w == marker) {
            return true;
        }
        let keep = self.tail.len().saturating_sub(marker.len());
        self.tail.drain(..keep);
        false
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Peak resident memory of `pid` while `busy` is set, sampled every 20 ms.
fn watch_rss(pid: u32, busy: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while busy.load(Ordering::Relaxed) {
            peak = peak.max(rss(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// Kills and reaps a child process when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line containing `marker` on the child's stderr or stdout
/// and returns what follows it.
fn wait_for_line(reader: impl Read + Send + 'static, marker: &'static str) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker).nth(1) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("no {marker:?} line within a minute"))
}

async fn layerlab(work: &Path) -> Result<Figures> {
    let catalog = PathBuf::from(
        std::env::var("LAYERLAB_BENCH_DATA").unwrap_or_else(|_| "/var/tmp/layerlab/data".into()),
    );
    let catalog = catalog.to_str().context("catalog path")?;
    cli(&["images", "build", "--data-dir", catalog], "")?;
    let data = work.join("server");
    let data = data.to_str().context("data path")?;
    cli(
        &[
            "user",
            "add",
            "bench",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        "bench password\n",
    )?;
    let token = cli(&["token", "create", "bench", "--data-dir", data], "")?;
    let cgroup = format!("layerlab-bench-{}", std::process::id());
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
        .args(["--store-dir", &format!("{catalog}/store")])
        .args(["--cgroup-parent", &cgroup])
        .env("LAYERLAB_LOG", "warn,layerlab=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = server.stderr.take().context("stderr")?;
    let server = Reaped(server);
    let url = wait_for_line(stderr, "listening on ")?;
    let pid = server.0.id();

    let client = reqwest::Client::new();
    let lab: serde_json::Value = client
        .post(format!("{url}/api/labs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "lesson": LESSON }))
        .send()
        .await?
        .json()
        .await?;
    let id = lab["id"].as_str().context("lab id")?.to_owned();
    let started = Instant::now();
    loop {
        let lab: serde_json::Value = client
            .get(format!("{url}/api/labs/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        match lab["state"].as_str() {
            Some("ready") => break,
            Some("starting") if started.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => bail!("the lab did not start: {lab}"),
        }
    }
    let connect = |name: &'static str| {
        let ws = format!("{url}/api/labs/{id}/terminals/{name}").replacen("http", "ws", 1);
        let token = token.clone();
        async move {
            let mut request = ws.into_client_request()?;
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            let (socket, _) =
                tokio_tungstenite::connect_async_with_config(request, None, true).await?;
            anyhow::Ok(socket)
        }
    };

    // The flood file goes into the node through the terminal itself.
    let mut shell = connect("flood").await?;
    send_bytes(
        &mut shell,
        format!("cd /root && yes '{FLOOD_LINE}' | head -c {FLOOD_BYTES} > flood.txt; echo made-$((1+1))\r").as_bytes(),
    )
    .await?;
    read_binary_until(&mut shell, "made-2").await?;

    let mut keys = connect("keys").await?;
    send_bytes(&mut keys, RAW_CAT.as_bytes()).await?;
    settle_binary(&mut keys).await?;
    let mut samples = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        let t = Instant::now();
        send_bytes(&mut keys, b"x").await?;
        read_binary_until(&mut keys, "x").await?;
        samples.push(t.elapsed());
    }
    let (p50, p99) = percentiles(samples);

    let rss_idle = rss(pid);
    let busy = Arc::new(AtomicBool::new(true));
    let watcher = watch_rss(pid, busy.clone());
    let t = Instant::now();
    send_bytes(&mut shell, FLOOD_COMMAND.as_bytes()).await?;
    let bytes = read_binary_until(&mut shell, DONE).await?;
    let elapsed = t.elapsed();
    busy.store(false, Ordering::Relaxed);
    let rss_peak = watcher.join().map_err(|_| anyhow!("rss watcher"))?;

    client
        .delete(format!("{url}/api/labs/{id}"))
        .bearer_auth(&token)
        .send()
        .await?;
    drop(server);
    for controller in ["memory", "pids", "cpu", "cpuacct", ""] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(controller).join(&cgroup));
    }
    Ok(Figures {
        p50,
        p99,
        mb_per_s: bytes as f64 / elapsed.as_secs_f64() / 1e6,
        rss_idle,
        rss_peak,
    })
}

async fn send_bytes(socket: &mut Socket, bytes: &[u8]) -> Result<()> {
    socket.send(Message::Binary(bytes.to_vec().into())).await?;
    Ok(())
}

/// Reads terminal output until `marker` appears; returns the bytes read.
async fn read_binary_until(socket: &mut Socket, marker: &str) -> Result<u64> {
    let mut seen = Marker::default();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(120), socket.next())
            .await
            .map_err(|_| anyhow!("no {marker:?} within 2 minutes"))?
            .ok_or_else(|| anyhow!("socket closed waiting for {marker:?}"))??;
        if let Message::Binary(bytes) = message
            && seen.push(&bytes, marker)
        {
            return Ok(seen.total);
        }
    }
}

/// Reads until the terminal has been quiet for 300 ms.
async fn settle_binary(socket: &mut Socket) -> Result<()> {
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
        message.ok_or_else(|| anyhow!("socket closed"))??;
    }
    Ok(())
}

async fn terminado(work: &Path) -> Result<Figures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/terminado_server.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(port.to_string())
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start terminado (apt-get install python3-terminado)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let server = Reaped(child);
    wait_for_line(stdout, "listening")?;
    let pid = server.0.id();
    let url = format!("ws://127.0.0.1:{port}/websocket");
    let connect = || async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
        anyhow::Ok(socket)
    };

    let mut keys = connect().await?;
    send_stdin(&mut keys, RAW_CAT).await?;
    settle_text(&mut keys).await?;
    let mut samples = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        let t = Instant::now();
        send_stdin(&mut keys, "x").await?;
        read_stdout_until(&mut keys, "x").await?;
        samples.push(t.elapsed());
    }
    let (p50, p99) = percentiles(samples);

    let mut shell = connect().await?;
    settle_text(&mut shell).await?;
    let rss_idle = rss(pid);
    let busy = Arc::new(AtomicBool::new(true));
    let watcher = watch_rss(pid, busy.clone());
    let t = Instant::now();
    send_stdin(&mut shell, FLOOD_COMMAND).await?;
    let bytes = read_stdout_until(&mut shell, DONE).await?;
    let elapsed = t.elapsed();
    busy.store(false, Ordering::Relaxed);
    let rss_peak = watcher.join().map_err(|_| anyhow!("rss watcher"))?;
    drop(server);
    Ok(Figures {
        p50,
        p99,
        mb_per_s: bytes as f64 / elapsed.as_secs_f64() / 1e6,
        rss_idle,
        rss_peak,
    })
}

/// terminado's protocol: JSON arrays, `["stdin", text]` in and
/// `["stdout", text]` out.
async fn send_stdin(socket: &mut Socket, text: &str) -> Result<()> {
    let message = serde_json::json!(["stdin", text]).to_string();
    socket.send(Message::Text(message.into())).await?;
    Ok(())
}

async fn read_stdout_until(socket: &mut Socket, marker: &str) -> Result<u64> {
    let mut seen = Marker::default();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(300), socket.next())
            .await
            .map_err(|_| anyhow!("no {marker:?} from terminado within 5 minutes"))?
            .ok_or_else(|| anyhow!("terminado closed the socket"))??;
        let Message::Text(text) = message else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&text)?;
        if value[0] == "stdout" && seen.push(value[1].as_str().unwrap_or("").as_bytes(), marker) {
            return Ok(seen.total);
        }
    }
}

async fn settle_text(socket: &mut Socket) -> Result<()> {
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
        message.ok_or_else(|| anyhow!("terminado closed the socket"))??;
    }
    Ok(())
}

/// The floor: a local bash on a PTY, read and written directly.
fn bare_pty(work: &Path) -> Result<Figures> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let open = || -> Result<_> {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: valid out-pointers and winsize; no name buffer.
        if unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        } < 0
        {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: fresh descriptors we own; the shell must not inherit the master.
        let (master, slave) = unsafe {
            libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC);
            (
                std::fs::File::from_raw_fd(master),
                OwnedFd::from_raw_fd(slave),
            )
        };
        let mut command = Command::new("bash");
        command
            .args(["--norc", "--noprofile"])
            .current_dir(work)
            .stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave);
        // SAFETY: setsid and ioctl only, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        // Our copies of the slave would keep the PTY open after bash ends.
        drop(command);
        let reader: Box<dyn Read + Send> = Box::new(master.try_clone()?);
        let writer = master.try_clone()?;
        Ok((master, child, reader, writer))
    };
    // A reader thread turns the PTY into a channel, like a web layer would
    // without any of its work.
    let pump = |mut reader: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let settle = |rx: &std::sync::mpsc::Receiver<Vec<u8>>| {
        while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    };
    let until = |rx: &std::sync::mpsc::Receiver<Vec<u8>>, marker: &str| -> Result<u64> {
        let mut seen = Marker::default();
        loop {
            let chunk = rx
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| anyhow!("no {marker:?} from the PTY"))?;
            if seen.push(&chunk, marker) {
                return Ok(seen.total);
            }
        }
    };

    let (_master, mut child, reader, mut writer) = open()?;
    let rx = pump(reader);
    writer.write_all(RAW_CAT.as_bytes())?;
    settle(&rx);
    let mut samples = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        let t = Instant::now();
        writer.write_all(b"x")?;
        until(&rx, "x")?;
        samples.push(t.elapsed());
    }
    let (p50, p99) = percentiles(samples);
    child.kill()?;

    let (_master, mut child, reader, mut writer) = open()?;
    let rx = pump(reader);
    settle(&rx);
    let t = Instant::now();
    writer.write_all(FLOOD_COMMAND.as_bytes())?;
    let bytes = until(&rx, DONE)?;
    let elapsed = t.elapsed();
    child.kill()?;
    Ok(Figures {
        p50,
        p99,
        mb_per_s: bytes as f64 / elapsed.as_secs_f64() / 1e6,
        rss_idle: 0,
        rss_peak: 0,
    })
}
