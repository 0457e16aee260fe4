//! The real `layerlab serve` the class talks to: started, killed with
//! SIGKILL and restarted on the same data directory, address and cgroup
//! parent; accounts and tokens made with the CLI; what the labs leave
//! behind removed at the end.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::common::{BIN, cli};

/// How every server of a run is started.
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub store_dir: PathBuf,
    pub listen: SocketAddr,
    pub cgroup_parent: String,
    pub max_labs: usize,
    pub memory_overcommit: f64,
}

impl ServerConfig {
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// A running `layerlab serve`, killed when dropped; its log is kept.
pub struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server and waits until it listens.
    pub fn start(config: &ServerConfig) -> Result<Server> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", &config.listen.to_string()])
            .arg("--data-dir")
            .arg(&config.data_dir)
            .arg("--store-dir")
            .arg(&config.store_dir)
            .args(["--missing-images", "fail"])
            .args(["--cgroup-parent", &config.cgroup_parent])
            .args(["--max-labs", &config.max_labs.to_string()])
            .args(["--max-labs-per-user", "1"])
            .args([
                "--lab-memory-overcommit",
                &format!("{:.2}", config.memory_overcommit),
            ])
            .env("LAYERLAB_LOG", "warn,layerlab=info,runtime=info,host=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `layerlab serve`")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on ") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let mut server = Server { child, log };
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = server.child.kill();
            bail!(
                "the server did not listen on {} within 2 minutes; its log:\n{}",
                config.listen,
                server.log().join("\n")
            );
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// kill -9: the server gets no chance to tidy up.
    pub fn crash(mut self) -> Result<Vec<String>> {
        self.child.kill().context("kill -9 the server")?;
        self.child.wait().context("reap the server")?;
        Ok(self.log())
    }

    /// SIGTERM, then waits for its exit (labs already stopped).
    pub fn stop(mut self) -> Result<Vec<String>> {
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("the server ignored SIGTERM for a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes, once dropped, the labs a failed run left running (`layerlab
/// sandbox gc --only DATA_DIR`) and the cgroup parent; drop it after the
/// last server is gone.
pub struct Leftovers {
    pub data_dir: PathBuf,
    pub cgroup_parent: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let data = self.data_dir.to_string_lossy();
        match cli(&["sandbox", "gc", "--only", &data], "") {
            Ok(out) if out.contains("lab-") => {
                println!("labs left behind, removed by `layerlab sandbox gc`:\n{out}")
            }
            Ok(_) => {}
            Err(err) => println!("cannot remove what the labs left behind: {err:#}"),
        }
        for controller in ["memory", "pids", "cpu", "cpuacct", ""] {
            let _ = std::fs::remove_dir(
                Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(&self.cgroup_parent),
            );
        }
    }
}

/// An account and its API token.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub token: String,
}

/// Creates `names` with `role` (student, instructor) and a token each,
/// with the CLI, two at a time (it hashes passwords on a core each).
pub fn add_accounts(data_dir: &Path, names: &[String], role: &str) -> Result<Vec<Account>> {
    let data = data_dir.to_str().context("the data directory's path")?;
    let make = |name: &String| -> Result<Account> {
        let password = format!("{name} class password\n");
        cli(
            &[
                "user",
                "add",
                name,
                "--role",
                role,
                "--password-stdin",
                "--data-dir",
                data,
            ],
            &password,
        )?;
        let token = cli(&["token", "create", name, "--data-dir", data], "")?;
        Ok(Account {
            name: name.clone(),
            token,
        })
    };
    let halves = names.split_at(names.len() / 2);
    std::thread::scope(|s| {
        let first = s.spawn(|| halves.0.iter().map(make).collect::<Result<Vec<_>>>());
        let second = halves.1.iter().map(make).collect::<Result<Vec<_>>>();
        let mut accounts = first
            .join()
            .map_err(|_| anyhow!("creating accounts panicked"))??;
        accounts.extend(second?);
        Ok(accounts)
    })
}
