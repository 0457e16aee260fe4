//! API tokens for `Authorization: Bearer`. Shown once at creation; only
//! their hash is stored.

use super::{Db, DbError, User, now, random_secret, secret_hash, users};

/// Prefix that makes a layerlab token recognisable in logs and secret scanners.
const TOKEN_PREFIX: &str = "llt_";

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
            "SELECT u.id, u.name, u.role, u.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1",
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
}
