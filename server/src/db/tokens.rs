//! API tokens for `Authorization: Bearer`. Shown once at creation; only
//! their hash is stored.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, User, now, random_secret, secret_hash, users};

/// Prefix that makes a layerlab token recognisable in logs and secret scanners.
const TOKEN_PREFIX: &str = "llt_";
/// Hex digits of a token's hash that name it in listings and revocations.
const TOKEN_ID_LEN: usize = 12;

/// A token as listings show it: never the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The first hex digits of the token's hash.
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Db {
    pub async fn create_token(&self, user_id: &str, label: &str) -> Result<String, DbError> {
        let token = format!("{TOKEN_PREFIX}{}", random_secret());
        sqlx::query("INSERT INTO api_tokens (token_hash, user_id, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(secret_hash(&token))
            .bind(user_id)
            .bind(label)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    pub async fn token_user(&self, token: &str) -> Result<Option<User>, DbError> {
        let hash = secret_hash(token);
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.created_at, u.disabled_at FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND u.disabled_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let user = row.as_ref().map(users::from_row).transpose()?;
        if user.is_some() {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now())
                .bind(&hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(user)
    }

    /// Every API token, by user name and creation time.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT t.token_hash, u.name, t.label, t.created_at, t.last_used_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY u.name, t.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let hash: String = r.try_get("token_hash")?;
                Ok(TokenInfo {
                    id: hash[..TOKEN_ID_LEN.min(hash.len())].to_string(),
                    user: r.try_get("name")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes the token listed as `id`; false when there is none.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, DbError> {
        if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM api_tokens WHERE substr(token_hash, 1, $1) = $2")
            // PostgreSQL's substr takes an int4 length.
            .bind(TOKEN_ID_LEN as i32)
            .bind(id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
