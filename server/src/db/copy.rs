//! Moving an installation from one database to another (`layerlab db
//! copy`), e.g. from the default SQLite file to PostgreSQL.
//!
//! The copy reads the tables and their columns from the databases' own
//! catalogs instead of a list kept here, so a table or column added by a
//! later migration is copied without touching this file; a schema that
//! differs between the two ends stops the copy before it writes anything.

use futures_util::TryStreamExt;
use sqlx::Row;

use super::{Backend, Db, DbError};

/// Tables that others reference: copied first so foreign keys hold.
const PARENTS: &[&str] = &["users"];

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// How a column's values travel: every column of the schema is one of the
/// two (see the migrations' "portable SQL" rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: Kind,
}

impl Db {
    /// Copies every row of this database into `target`, which must be
    /// migrated to the same schema (opening it does that) and hold no rows.
    /// The target is written in one transaction: a copy that fails leaves
    /// it empty. The source is read in one transaction too, so a server
    /// still writing to it cannot tear the copy (stop it anyway: what it
    /// writes afterwards is not copied).
    pub async fn copy_into(&self, target: &Db) -> Result<Vec<TableCount>, DbError> {
        let tables = self.tables().await?;
        let target_tables = target.tables().await?;
        if tables != target_tables {
            return Err(DbError::Copy(format!(
                "the two databases hold different tables ({} and {}); open both with this version of layerlab first",
                tables.join(", "),
                target_tables.join(", ")
            )));
        }
        let mut plan = Vec::with_capacity(tables.len());
        for table in ordered(tables) {
            let columns = self.columns(&table).await?;
            let target_columns = target.columns(&table).await?;
            if columns != target_columns {
                return Err(DbError::Copy(format!(
                    "table {table} has other columns in the target database; open both with this version of layerlab first"
                )));
            }
            let held = target.count(&table).await?;
            if held > 0 {
                return Err(DbError::Copy(format!(
                    "the target database already holds {held} rows in table {table}; copy into a new, empty database"
                )));
            }
            plan.push((table, columns));
        }

        let mut source = self.pool.begin().await?;
        let mut sink = target.pool.begin().await?;
        let mut counts = Vec::with_capacity(plan.len());
        for (table, columns) in &plan {
            let names = columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let placeholders = (1..=columns.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let insert = format!("INSERT INTO {table} ({names}) VALUES ({placeholders})");
            let select = format!("SELECT {names} FROM {table}");
            let mut rows = sqlx::query(&select).fetch(&mut *source);
            let mut copied = 0;
            while let Some(row) = rows.try_next().await? {
                let mut query = sqlx::query(&insert);
                for (i, column) in columns.iter().enumerate() {
                    query = match column.kind {
                        Kind::Integer => query.bind(row.try_get::<Option<i64>, _>(i)?),
                        Kind::Text => query.bind(row.try_get::<Option<String>, _>(i)?),
                    };
                }
                query.execute(&mut *sink).await?;
                copied += 1;
            }
            counts.push(TableCount {
                table: table.clone(),
                rows: copied,
            });
        }
        sink.commit().await?;
        source.rollback().await?;

        for count in &counts {
            let held = target.count(&count.table).await?;
            if held != count.rows {
                return Err(DbError::Copy(format!(
                    "the copy was written, but table {} holds {held} rows after copying {}: something else wrote to the target during the copy",
                    count.table, count.rows
                )));
            }
        }
        Ok(counts)
    }

    /// The application's tables, sorted by name (sqlx's own bookkeeping
    /// table is left out: each database keeps its own).
    async fn tables(&self) -> Result<Vec<String>, DbError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name"
            }
            // Catalog columns are of SQL identifier types the `Any` driver
            // does not decode: read them as text.
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name <> '_sqlx_migrations' ORDER BY 1"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }

    /// A table's columns in declaration order.
    async fn columns(&self, table: &str) -> Result<Vec<Column>, DbError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            Backend::Postgres => {
                "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position"
            }
        };
        let rows = sqlx::query(sql).bind(table).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                let declared: String = row.try_get(1)?;
                let kind = match declared.to_ascii_lowercase().as_str() {
                    "text" => Kind::Text,
                    "integer" | "bigint" => Kind::Integer,
                    other => {
                        return Err(DbError::Copy(format!(
                            "column {table}.{name} has type {other}, which the copy does not know"
                        )));
                    }
                };
                Ok(Column { name, kind })
            })
            .collect()
    }

    async fn count(&self, table: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?)
    }
}

/// Parents first, then the rest by name.
fn ordered(tables: Vec<String>) -> Vec<String> {
    let (mut first, rest): (Vec<_>, Vec<_>) = tables
        .into_iter()
        .partition(|t| PARENTS.contains(&t.as_str()));
    first.sort_by_key(|t| PARENTS.iter().position(|p| p == t));
    first.extend(rest);
    first
}
