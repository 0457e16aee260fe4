//! Everything the server keeps in its database: accounts, browser sessions,
//! API tokens, lab sessions, lesson progress and grading records. Migrations live in `/migrations` and are
//! applied whenever the database is opened.
//!
//! The SQL is written to run on both SQLite (the default) and PostgreSQL:
//! `$n` placeholders, text keys, unix-second `BIGINT` times, no
//! engine-specific functions. `copy` moves an installation between them.

mod grades;
mod labs;
mod sessions;
mod tokens;
mod users;
mod visits;

mod copy;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::ConnectOptions;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;

pub use grades::{Attempt, NewAttempt, UserRow};
pub use labs::{Lab, LabState};
pub use sessions::SESSION_TTL_SECS;
pub use tokens::TokenInfo;
pub use users::{Role, User};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "database url {url} is not usable ({reason}); give sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    BadUrl { url: String, reason: String },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot take the database's migration lock (next to its file): {0}")]
    MigrationLock(#[source] std::io::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    #[error("user name {0:?} is taken")]
    NameTaken(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error(
        "this setup link was used, or an admin exists already; log in, or use `layerlab user add NAME --role admin`"
    )]
    SetupUsed,
    #[error("{0}")]
    Copy(String),
}

/// Which database engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How long opening a PostgreSQL database keeps retrying while the server
/// is not accepting connections yet (a container starting beside us).
const POSTGRES_WAIT: Duration = Duration::from_secs(60);

/// Handle to the database; cheap to clone.
///
/// One pool of sqlx's `Any` driver serves both engines, so every query is
/// written once; the SQL sticks to what both accept.
#[derive(Clone, Debug)]
pub struct Db {
    pool: sqlx::AnyPool,
    backend: Backend,
}

impl Db {
    /// Opens (creating if needed) the database and applies migrations: the
    /// SQLite file `layerlab.db` in `data_dir` unless `url` names another.
    pub async fn open(data_dir: &Path, url: Option<&str>) -> Result<Db, DbError> {
        match url {
            Some(url) => Db::connect(url).await,
            None => {
                std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let file = SqliteConnectOptions::new().filename(data_dir.join("layerlab.db"));
                Db::connect(file.to_url_lossy().as_str()).await
            }
        }
    }

    /// Opens the database at `url` (`sqlite://…` or `postgres://…`) and
    /// applies migrations.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let shown = redacted(url);
        let bad = |reason: String| DbError::BadUrl {
            url: shown.clone(),
            reason,
        };
        let mut migration_lock = None;
        let (backend, options) = match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => {
                let file = SqliteConnectOptions::from_str(url)
                    .map_err(|e| bad(e.to_string()))?
                    .create_if_missing(true);
                let mut lock = file.get_filename().as_os_str().to_owned();
                lock.push(".migrate-lock");
                migration_lock = Some(PathBuf::from(lock));
                (Backend::Sqlite, file.to_url_lossy())
            }
            Some("postgres" | "postgresql") => (
                Backend::Postgres,
                url.parse()
                    .map_err(|e: url::ParseError| bad(e.to_string()))?,
            ),
            _ => return Err(bad("unknown scheme".to_string())),
        };
        let options = AnyConnectOptions::from_url(&options).map_err(|e| bad(e.to_string()))?;
        let pool_options = match backend {
            // One writer at a time anyway; a few readers beside it.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Set on every connection: sqlx's `Any` driver only
                        // passes the URL through. WAL with a busy timeout lets
                        // the command line add users while a server runs;
                        // synchronous FULL keeps every committed account,
                        // attempt and grade across a power loss, not only a
                        // process crash.
                        let pragmas = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";
                        sqlx::Executor::execute(&mut *conn, pragmas).await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let started = Instant::now();
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(err)
                    if backend == Backend::Postgres
                        && is_unreachable(&err)
                        && started.elapsed() < POSTGRES_WAIT =>
                {
                    tracing::info!(url = %shown, error = %err, "waiting for the database to accept connections");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(source) => return Err(DbError::Open { url: shown, source }),
            }
        };
        // sqlx makes concurrent migrations take turns on PostgreSQL only;
        // two commands opening a new SQLite database at once would both
        // create its tables, and one would fail.
        let _turn = match migration_lock {
            Some(path) => Some(
                tokio::task::spawn_blocking(move || take_turn(&path))
                    .await
                    .map_err(|e| DbError::MigrationLock(std::io::Error::other(e)))??,
            ),
            None => None,
        };
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Db { pool, backend })
    }

    /// Whether the database answers at all (`/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Waits for, then holds (until the file is dropped), the lock on `path`.
fn take_turn(path: &Path) -> Result<std::fs::File, DbError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(DbError::MigrationLock)?;
    file.lock().map_err(DbError::MigrationLock)?;
    Ok(file)
}

/// A server that is starting up refuses connections or is not resolvable
/// yet; anything else (a wrong password, a missing database) will not fix
/// itself by waiting.
fn is_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // "the database system is starting up"
        sqlx::Error::Database(e) => e.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// `url` with any password replaced, for messages and logs.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "(unparsable)".to_string(),
    }
}

/// Current time in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Lowercase hex sha256, used to store secrets we only need to recognise.
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret, 32 bytes, URL-safe base64.
pub fn random_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
