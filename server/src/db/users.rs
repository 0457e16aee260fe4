use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, now, secret_hash};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Instructor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Instructor => "instructor",
            Role::Admin => "admin",
        }
    }

    /// Instructors and admins may read every student's results.
    pub fn can_teach(self) -> bool {
        self >= Role::Instructor
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "student" => Ok(Role::Student),
            "instructor" => Ok(Role::Instructor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    /// Disabled accounts cannot log in, and their sessions and tokens are
    /// refused.
    #[serde(skip)]
    pub disabled: bool,
}

/// An account together with its password hash, for login only.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

pub(super) fn from_row(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        created_at: row.try_get("created_at")?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, DbError> {
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        role,
        created_at: now(),
        disabled: false,
    };
    let result = sqlx::query(
        "INSERT INTO users (id, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(user.created_at)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(DbError::NameTaken(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

impl Db {
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, DbError> {
        let mut conn = self.pool.acquire().await?;
        insert_user(&mut conn, name, password_hash, role).await
    }

    /// Replaces any earlier setup link with one for `token`; the server
    /// calls this at start while no admin exists.
    pub async fn set_setup_token(&self, token: &str) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)")
            .bind(secret_hash(token))
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `token` is the setup link and no admin exists yet.
    pub async fn setup_token_valid(&self, token: &str) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM setup_tokens WHERE token_hash = $1 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin')",
        )
        .bind(secret_hash(token))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Creates the first admin with the setup link `token`, which is used
    /// up in the same transaction: of requests racing with one link, one
    /// wins; and none does once any admin exists.
    pub async fn create_first_admin(
        &self,
        token: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<User, DbError> {
        let mut tx = self.pool.begin().await?;
        // The write comes first, so the transaction holds the write lock
        // (SQLite) or the row (PostgreSQL) before it reads anything.
        let used = sqlx::query("DELETE FROM setup_tokens WHERE token_hash = $1")
            .bind(secret_hash(token))
            .execute(&mut *tx)
            .await?;
        let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
            .fetch_one(&mut *tx)
            .await?;
        if used.rows_affected() != 1 || admins > 0 {
            return Err(DbError::SetupUsed);
        }
        let user = insert_user(&mut tx, name, password_hash, Role::Admin).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn credentials(&self, name: &str) -> Result<Option<Credentials>, DbError> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at, disabled_at, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Credentials {
                user: from_row(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    pub async fn user_by_name(&self, name: &str) -> Result<User, DbError> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at, disabled_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(from_row(&row)?),
            None => Err(DbError::NoSuchUser(name.to_string())),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>, DbError> {
        let rows =
            sqlx::query("SELECT id, name, role, created_at, disabled_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn admin_exists(&self) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Disables or enables an account; disabling also ends its browser
    /// sessions (its API tokens are kept, and refused while it is disabled).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let user_id: Option<String> =
            sqlx::query_scalar("UPDATE users SET disabled_at = $1 WHERE name = $2 RETURNING id")
                .bind(disabled.then(now))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(user_id) = user_id else {
            return Err(DbError::NoSuchUser(name.to_string()));
        };
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the password and ends every browser session and API token
    /// of the account, so nothing stolen outlives a password change.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let user_id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user_id) = user_id else {
            return Err(DbError::NoSuchUser(name.to_string()));
        };
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        for table in ["sessions", "api_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
