//! The database behind the servers and commands the tests start.
//!
//! By default each data directory keeps its own SQLite file, as in a
//! default installation. With `LAYERLAB_TEST_DATABASE=postgres` every data
//! directory gets a database of its own on a PostgreSQL cluster this test
//! process starts from Debian's `postgresql` package: initdb in a temporary
//! directory, its own port, gone when the process exits. The `db copy`
//! tests use that cluster in either mode.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The database URL the server and CLI for `data_dir` are given, or `None`
/// for the default SQLite file in it.
pub fn url_for(data_dir: &Path) -> Option<String> {
    match std::env::var("LAYERLAB_TEST_DATABASE").as_deref() {
        Err(_) | Ok("" | "sqlite") => None,
        Ok("postgres") => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
            Some(postgres().database(&format!("it_{}", &hex::encode(digest)[..16])))
        }
        Ok(other) => panic!("LAYERLAB_TEST_DATABASE={other:?}: use sqlite or postgres"),
    }
}

/// The PostgreSQL cluster of this test process, started on first use.
pub fn postgres() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

pub struct Cluster {
    port: u16,
    created: Mutex<HashSet<String>>,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres_bin();
        let (uid, gid) = postgres_user();
        remove_leftovers();
        let dir = std::env::temp_dir().join(format!("{CLUSTER_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        let data = dir.join("data");
        let init = Command::new(bin.join("initdb"))
            .args([
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
            ])
            .args(["--no-sync", "--no-instructions", "--pgdata"])
            .arg(&data)
            .current_dir(&dir)
            .uid(uid)
            .gid(gid)
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = crate::harness::free_port();
        // Spawned from a thread that never ends, so the parent-death signal
        // (tied to the spawning thread) fires only when this process exits:
        // SIGQUIT is PostgreSQL's immediate shutdown.
        let (tx, rx) = std::sync::mpsc::channel();
        let socket_dir = dir.clone();
        std::thread::spawn(move || {
            let mut command = Command::new(bin.join("postgres"));
            command
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(&socket_dir)
                .args(["-c", "listen_addresses=127.0.0.1"])
                // Throwaway data: durability is the server's tests' concern
                // on SQLite; here only behaviour is.
                .args(["-c", "fsync=off", "-c", "max_connections=400"])
                .current_dir(&socket_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .uid(uid)
                .gid(gid);
            // SAFETY: prctl is async-signal-safe and touches only this child.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let _ = tx.send(command.spawn().map(|_child| ()));
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .expect("the PostgreSQL spawning thread answers")
            .expect("start postgres");
        let cluster = Cluster {
            port,
            created: Mutex::new(HashSet::new()),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.psql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within a minute (data in {})",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The URL of the database `name`, created on first use.
    pub fn database(&self, name: &str) -> String {
        let mut created = self.created.lock().unwrap();
        if created.insert(name.to_string()) {
            self.psql(&format!("CREATE DATABASE \"{name}\""))
                .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        }
        self.url(name)
    }

    /// The superuser's URL of the database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs one SQL command as the superuser; its output or its error.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-XAtq", "-c", sql])
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

const CLUSTER_PREFIX: &str = "layerlab-it-pg-";

/// The newest PostgreSQL server Debian installed.
fn postgres_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").unwrap_or_else(|_| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql): `make test` installs \
             Debian's postgresql package, or run apt-get install postgresql"
        )
    });
    versions
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
        .expect("a PostgreSQL version under /usr/lib/postgresql")
}

/// PostgreSQL refuses to run as root: the package's `postgres` account.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .expect("a postgres account (Debian's postgresql package creates it)")
}

/// Clusters of test processes that are gone (the server died with them).
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(CLUSTER_PREFIX)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod opening_and_copying {
    use serde_json::Value;

    use crate::harness::*;
    use crate::labs::{
        connect, create_token, lab_server, lab_server_with, read_until, start_lesson_lab,
        type_line, user_token,
    };

    const LESSON: &str = "01-what-is-a-container";

    async fn api(server: &Server, token: &str, method: reqwest::Method, path: &str) -> Value {
        send_as(token, method, &server.at(path))
            .await
            .json()
            .await
            .unwrap()
    }

    fn copy(data: &tempfile::TempDir, to: &str) -> std::process::Output {
        cli(
            &[
                "db",
                "copy",
                "--to",
                to,
                "--data-dir",
                data.path().to_str().unwrap(),
            ],
            "",
        )
    }

    /// Accounts, tokens, labs, attempts and hints made on one database are
    /// all on the other after `db copy`, and a server started on the copy
    /// shows the same gradebook, accepts the same passwords and tokens.
    #[tokio::test(flavor = "multi_thread")]
    async fn db_copy_moves_an_installation_without_losing_a_row() {
        let data = temp_dir();
        let ada = user_token(&data, "ada");
        add_user(data.path(), "iris", "instructor", "correct horse battery");
        let iris = create_token(&data, "iris");
        let server = lab_server(&data);
        let (lab, guard) = start_lesson_lab(&server, &ada, LESSON).await;
        let mut term = connect(&server, &ada, &lab, "node1", None).await.unwrap();
        type_line(
            &mut term,
            "hostname > /root/hostname.txt; echo done-$((40+2))",
        )
        .await;
        read_until(&mut term, "done-42").await;
        let check = format!("/api/labs/{lab}/tasks/save-hostname/check");
        assert_eq!(
            api(&server, &ada, reqwest::Method::POST, &check).await["passed"],
            true
        );
        let hint = format!("/api/lessons/{LESSON}/tasks/add-user/hints");
        api(&server, &ada, reqwest::Method::POST, &hint).await;
        drop(term);
        drop(guard);
        let grades = format!("/api/lessons/{LESSON}/grades");
        let book_before = api(&server, &iris, reqwest::Method::GET, &grades).await;
        let history = format!("/api/lessons/{LESSON}/grades/ada");
        let history_before = api(&server, &iris, reqwest::Method::GET, &history).await;
        server.stop();

        let target = super::postgres().database(&format!("copy_{}", std::process::id()));
        let out = copy(&data, &target);
        assert!(out.status.success(), "db copy: {}", text(&out.stderr));
        let report = text(&out.stdout);
        for (table, rows) in [
            ("users", 2),
            ("api_tokens", 2),
            ("attempts", 1),
            ("hint_reveals", 1),
            ("task_passes", 1),
            ("labs", 1),
        ] {
            let line = report
                .lines()
                .find(|l| l.split_whitespace().next() == Some(table))
                .unwrap_or_else(|| panic!("no {table} line in {report}"));
            assert_eq!(
                line.split_whitespace().nth(1),
                Some(rows.to_string().as_str()),
                "{report}"
            );
        }

        let again = copy(&data, &target);
        assert!(
            !again.status.success(),
            "a second copy into a used database is refused"
        );
        assert!(
            text(&again.stderr).contains("copy into a new, empty database"),
            "{}",
            text(&again.stderr)
        );

        let server = lab_server_with(&data, &["--database-url", &target]);
        let book_after = api(&server, &iris, reqwest::Method::GET, &grades).await;
        assert_eq!(
            book_after, book_before,
            "the gradebook is the same on the copy"
        );
        let history_after = api(&server, &iris, reqwest::Method::GET, &history).await;
        assert_eq!(
            history_after, history_before,
            "every attempt and hint reveal is there"
        );
        let client = browser();
        let login = login(&client, &server, "ada", "correct horse battery").await;
        assert_eq!(login.status(), 303, "the password hash came along");
        server.stop();
    }

    /// Commands started at once on a new data directory take turns
    /// creating the database's tables instead of failing.
    #[test]
    fn commands_at_once_on_a_new_data_directory_all_succeed() {
        let data = temp_dir();
        let dir = data.path().to_str().unwrap().to_string();
        let runs: Vec<_> = (0..4)
            .map(|n| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let name = format!("student{n}");
                    cli(
                        &["user", "add", &name, "--password-stdin", "--data-dir", &dir],
                        "correct horse battery\n",
                    )
                })
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let list = text(&cli(&["user", "list", "--data-dir", &dir], "").stdout);
        let students = list.lines().filter(|l| l.starts_with("student")).count();
        assert_eq!(students, 4, "{list}");
    }

    #[test]
    fn db_copy_refuses_bad_urls_with_a_clear_message() {
        let data = temp_dir();
        // A role the cluster does not have: refused at once, not waited for.
        let stranger = super::postgres()
            .url("postgres")
            .replace("postgres@", "nobody:secret@");
        for (url, expected) in [
            (
                "mysql://somewhere/db".to_string(),
                "give sqlite://PATH or postgres://",
            ),
            ("postgres://[::1".to_string(), "is not usable"),
            (stranger, "cannot open the database"),
        ] {
            let out = copy(&data, &url);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{url}");
            assert!(stderr.contains(expected), "{url}: {stderr}");
            assert!(
                !stderr.contains("secret"),
                "passwords stay out of messages: {stderr}"
            );
        }
    }
}
