//! Browser sessions: the cookie holds a random secret, the table its hash.

use super::{Db, DbError, User, now, random_secret, secret_hash, users};

/// How long a browser stays logged in without logging in again.
pub const SESSION_TTL_SECS: i64 = 14 * 24 * 3600;

impl Db {
    /// Starts a session and returns the secret for the cookie.
    pub async fn create_session(&self, user_id: &str) -> Result<String, DbError> {
        let secret = random_secret();
        let created = now();
        sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(secret_hash(&secret))
            .bind(user_id)
            .bind(created)
            .bind(created + SESSION_TTL_SECS)
            .execute(&self.pool)
            .await?;
        Ok(secret)
    }

    pub async fn session_user(&self, secret: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.created_at, u.disabled_at FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(secret_hash(secret))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(users::from_row).transpose()?)
    }

    pub async fn delete_session(&self, secret: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(secret_hash(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self) -> Result<u64, DbError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
