//! Grading records: attempts, passed tasks and revealed hints (migration
//! 0003). Scores are not stored; `grading` computes them from these rows
//! and the course.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, now};

/// One recorded check run of a task.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: String,
    pub task: String,
    pub lab_id: String,
    pub created_at: i64,
    pub mode: String,
    pub passed: bool,
    /// `[{name, passed, message}]` as the grader returned it.
    pub checks: serde_json::Value,
}

/// A passed task or a revealed hint of one user, for gradebooks.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub user_id: String,
    pub name: String,
    pub task: String,
    /// Hint index; 0 for passes.
    pub hint: i64,
    /// Hint cost; 0 for passes.
    pub cost: i64,
    pub at: i64,
}

/// Attempt counts of one user on one task.
#[derive(Debug, Clone)]
pub struct AttemptCount {
    pub user_id: String,
    pub name: String,
    pub task: String,
    pub count: i64,
    pub last: i64,
}

/// What a new attempt records.
pub struct NewAttempt<'a> {
    pub user_id: &'a str,
    pub lesson: &'a str,
    pub task: &'a str,
    pub lab_id: &'a str,
    pub mode: &'a str,
    pub passed: bool,
    pub checks: &'a serde_json::Value,
}

impl Db {
    /// Records an attempt, and the pass when it passed, in one transaction.
    /// Returns whether this attempt passed the task for the first time.
    pub async fn record_attempt(&self, a: &NewAttempt<'_>) -> Result<bool, DbError> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO attempts (id, user_id, lesson, task, lab_id, created_at, mode, passed, checks) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        // Time-ordered ids, so attempts within one second keep their order.
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(a.user_id)
        .bind(a.lesson)
        .bind(a.task)
        .bind(a.lab_id)
        .bind(t)
        .bind(a.mode)
        .bind(i64::from(a.passed))
        .bind(a.checks.to_string())
        .execute(&mut *tx)
        .await?;
        let mut first = false;
        if a.passed {
            let done = sqlx::query(
                "INSERT INTO task_passes (user_id, lesson, task, passed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, lesson, task) DO NOTHING",
            )
            .bind(a.user_id)
            .bind(a.lesson)
            .bind(a.task)
            .bind(t)
            .execute(&mut *tx)
            .await?;
            first = done.rows_affected() == 1;
        }
        tx.commit().await?;
        Ok(first)
    }

    /// Records a revealed hint; revealing it again costs nothing more.
    pub async fn reveal_hint(
        &self,
        user_id: &str,
        lesson: &str,
        task: &str,
        hint: i64,
        cost: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO hint_reveals (user_id, lesson, task, hint, cost, revealed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, lesson, task, hint) DO NOTHING",
        )
        .bind(user_id)
        .bind(lesson)
        .bind(task)
        .bind(hint)
        .bind(cost)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Passed tasks of a lesson, every user or one (`hint` and `cost` are
    /// 0).
    pub async fn task_passes(
        &self,
        lesson: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<UserRow>, DbError> {
        self.user_rows(
            "SELECT p.user_id, u.name, p.task, 0 AS hint, 0 AS cost, p.passed_at AS at \
             FROM task_passes p JOIN users u ON u.id = p.user_id \
             WHERE p.lesson = $1 AND ($2 = '' OR p.user_id = $2) ORDER BY p.passed_at",
            lesson,
            user_id,
        )
        .await
    }

    /// Revealed hints of a lesson, every user or one.
    pub async fn hint_reveals(
        &self,
        lesson: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<UserRow>, DbError> {
        self.user_rows(
            "SELECT h.user_id, u.name, h.task, h.hint, h.cost, h.revealed_at AS at \
             FROM hint_reveals h JOIN users u ON u.id = h.user_id \
             WHERE h.lesson = $1 AND ($2 = '' OR h.user_id = $2) ORDER BY h.revealed_at",
            lesson,
            user_id,
        )
        .await
    }

    /// Who started a lab for a lesson, every user or one, with the time of
    /// their first (`task` is empty, `hint` and `cost` are 0).
    pub async fn lab_starts(
        &self,
        lesson: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<UserRow>, DbError> {
        self.user_rows(
            "SELECT l.user_id, u.name, '' AS task, 0 AS hint, 0 AS cost, MIN(l.created_at) AS at \
             FROM labs l JOIN users u ON u.id = l.user_id \
             WHERE l.lesson = $1 AND ($2 = '' OR l.user_id = $2) GROUP BY l.user_id, u.name",
            lesson,
            user_id,
        )
        .await
    }

    /// Runs a query selecting `user_id, name, task, hint, cost, at` for a
    /// lesson and an optional user. (An empty id stands for "every user",
    /// so PostgreSQL can type the parameter.)
    async fn user_rows(
        &self,
        sql: &'static str,
        lesson: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<UserRow>, DbError> {
        let rows = sqlx::query(sql)
            .bind(lesson)
            .bind(user_id.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRow {
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    task: r.try_get("task")?,
                    hint: r.try_get("hint")?,
                    cost: r.try_get("cost")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Attempts per user and task of a lesson.
    pub async fn attempt_counts(&self, lesson: &str) -> Result<Vec<AttemptCount>, DbError> {
        let rows = sqlx::query(
            "SELECT a.user_id, u.name, a.task, COUNT(*) AS n, MAX(a.created_at) AS last \
             FROM attempts a JOIN users u ON u.id = a.user_id \
             WHERE a.lesson = $1 GROUP BY a.user_id, u.name, a.task",
        )
        .bind(lesson)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptCount {
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    task: r.try_get("task")?,
                    count: r.try_get("n")?,
                    last: r.try_get("last")?,
                })
            })
            .collect()
    }

    /// One user's attempts on a lesson, newest first, at most `limit`.
    pub async fn attempts(
        &self,
        lesson: &str,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<Attempt>, DbError> {
        let rows = sqlx::query(
            "SELECT id, task, lab_id, created_at, mode, passed, checks FROM attempts \
             WHERE lesson = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(lesson)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let checks: String = r.try_get("checks")?;
                Ok(Attempt {
                    id: r.try_get("id")?,
                    task: r.try_get("task")?,
                    lab_id: r.try_get("lab_id")?,
                    created_at: r.try_get("created_at")?,
                    mode: r.try_get("mode")?,
                    passed: r.try_get::<i64, _>("passed")? == 1,
                    checks: serde_json::from_str(&checks)
                        .map_err(|e| DbError::Query(sqlx::Error::Decode(Box::new(e))))?,
                })
            })
            .collect()
    }
}
