use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, now};

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
}

/// An account together with its password hash, for login only.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

pub(super) fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, DbError> {
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            role,
            created_at: now(),
        };
        let result = sqlx::query(
            "INSERT INTO users (id, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(user),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::NameTaken(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn credentials(&self, name: &str) -> Result<Option<Credentials>, DbError> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at, password_hash FROM users WHERE name = $1",
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
        let row = sqlx::query("SELECT id, name, role, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(from_row(&row)?),
            None => Err(DbError::NoSuchUser(name.to_string())),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query("SELECT id, name, role, created_at FROM users ORDER BY name")
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

    /// Replaces the password and ends every browser session of the account,
    /// so a stolen session does not outlive a password change.
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
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
