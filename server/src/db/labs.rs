//! Lab sessions as the database records them. The node itself lives in the
//! sandbox host; a row in state `starting` or `ready` is a lab that holds a
//! slot.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LabState {
    Starting,
    Ready,
    Stopped,
}

impl LabState {
    pub fn as_str(self) -> &'static str {
        match self {
            LabState::Starting => "starting",
            LabState::Ready => "ready",
            LabState::Stopped => "stopped",
        }
    }

    fn parse(text: &str) -> Result<LabState, DbError> {
        match text {
            "starting" => Ok(LabState::Starting),
            "ready" => Ok(LabState::Ready),
            "stopped" => Ok(LabState::Stopped),
            other => Err(DbError::Query(sqlx::Error::Decode(
                format!("unknown lab state {other:?}").into(),
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    pub id: String,
    #[serde(skip)]
    pub user_id: String,
    pub lesson: String,
    pub state: LabState,
    pub created_at: i64,
    /// When the lab will be stopped: recorded as its lifetime limit, and
    /// moved earlier by [`crate::labs::Labs::live`] when being idle ends it
    /// sooner.
    pub expires_at: i64,
    /// What ends the lab at `expires_at` if nothing changes: `idle` or
    /// `lifetime` (only on a running lab's live view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_because: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

const COLUMNS: &str = "id, user_id, lesson, state, created_at, expires_at, ended_at, end_reason";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Lab, DbError> {
    Ok(Lab {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        lesson: row.try_get("lesson")?,
        state: LabState::parse(row.try_get::<&str, _>("state")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        expires_because: None,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
    })
}

impl Db {
    /// Records a lab in state `starting` that may live `lifetime_secs`.
    pub async fn insert_lab(
        &self,
        id: &str,
        user_id: &str,
        lesson: &str,
        lifetime_secs: i64,
    ) -> Result<Lab, DbError> {
        let created = now();
        sqlx::query(
            "INSERT INTO labs (id, user_id, lesson, state, created_at, expires_at) \
             VALUES ($1, $2, $3, 'starting', $4, $5)",
        )
        .bind(id)
        .bind(user_id)
        .bind(lesson)
        .bind(created)
        .bind(created.saturating_add(lifetime_secs))
        .execute(&self.pool)
        .await?;
        self.lab(id)
            .await?
            .ok_or_else(|| DbError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn lab(&self, id: &str) -> Result<Option<Lab>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM labs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The user's lab for a lesson that still holds a slot, if any.
    pub async fn active_lab(&self, user_id: &str, lesson: &str) -> Result<Option<Lab>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM labs WHERE user_id = $1 AND lesson = $2 \
             AND state <> 'stopped' ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(user_id)
        .bind(lesson)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The user's most recent lab for a lesson, in any state.
    pub async fn latest_lab(&self, user_id: &str, lesson: &str) -> Result<Option<Lab>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM labs WHERE user_id = $1 AND lesson = $2 \
             ORDER BY created_at DESC, state <> 'stopped' DESC LIMIT 1"
        ))
        .bind(user_id)
        .bind(lesson)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every lab that holds a slot.
    pub async fn active_labs(&self) -> Result<Vec<Lab>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM labs WHERE state <> 'stopped' ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves a starting lab to ready; false when it was stopped meanwhile.
    pub async fn lab_ready(&self, id: &str) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE labs SET state = 'ready' WHERE id = $1 AND state = 'starting'")
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stops a lab that was not stopped yet; false when it already was.
    pub async fn lab_stopped(&self, id: &str, reason: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE labs SET state = 'stopped', ended_at = $2, end_reason = $3 \
             WHERE id = $1 AND state <> 'stopped'",
        )
        .bind(id)
        .bind(now())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
