//! Everything the server keeps in its database: accounts, browser sessions,
//! API tokens, lab sessions, lesson progress and grading records. Migrations live in `/migrations` and are
//! applied whenever the database is opened.
//!
//! The SQL is written to run on both SQLite (the default) and PostgreSQL:
//! `$n` placeholders, text keys, unix-second `BIGINT` times.

mod grades;
mod labs;
mod sessions;
mod tokens;
mod users;
mod visits;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use grades::{Attempt, NewAttempt, UserRow};
pub use labs::{Lab, LabState};
pub use sessions::SESSION_TTL_SECS;
pub use tokens::TokenInfo;
pub use users::{Role, User};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database url {url:?} is not a usable SQLite url: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Open(#[source] sqlx::Error),
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
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: sqlx::SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the database and applies migrations.
    ///
    /// SQLite runs in WAL mode with a busy timeout so the command line can
    /// add users while a server is running on the same data directory.
    pub async fn open(data_dir: &Path, url: Option<&str>) -> Result<Db, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let options = match url {
            Some(url) => SqliteConnectOptions::from_str(url).map_err(|source| DbError::BadUrl {
                url: url.to_string(),
                source,
            })?,
            None => SqliteConnectOptions::new().filename(data_dir.join("layerlab.db")),
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL keeps every committed account, attempt and grade across a
        // power loss, not only across a process crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(DbError::Open)?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Db { pool })
    }

    /// Whether the database answers at all (`/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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
