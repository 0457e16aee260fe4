//! Which lessons a user has opened, for the progress shown on the course page.

use std::collections::HashSet;

use super::{Db, DbError, now};

impl Db {
    pub async fn record_visit(&self, user_id: &str, lesson: &str) -> Result<(), DbError> {
        let t = now();
        sqlx::query(
            "INSERT INTO lesson_visits (user_id, lesson, first_seen, last_seen) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (user_id, lesson) DO UPDATE SET last_seen = excluded.last_seen",
        )
        .bind(user_id)
        .bind(lesson)
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn visited_lessons(&self, user_id: &str) -> Result<HashSet<String>, DbError> {
        let slugs: Vec<String> =
            sqlx::query_scalar("SELECT lesson FROM lesson_visits WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(slugs.into_iter().collect())
    }
}
