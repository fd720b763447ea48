//! The two backends' migrations build the same schema: after migrating a
//! fresh PostgreSQL database and a fresh SQLite file, both have the same
//! tables, each with the same columns of the same kind and nullability,
//! and the same named indexes. Both backends run one SQL text, so a column
//! or index one backend lacks is a statement that fails, or a plan that
//! scans, on that backend alone.

use std::collections::BTreeMap;

use tessera::storage::{Db, DbOptions};

/// A column as both backends can state it: its kind of value (each
/// backend's type names folded onto one vocabulary) and whether it may be
/// NULL.
type Columns = BTreeMap<String, BTreeMap<String, (String, bool)>>;

/// Tables and their columns, and the names of indexes made by migrations
/// (per table), of one migrated database.
#[derive(Debug, PartialEq, Eq)]
struct Schema {
    columns: Columns,
    indexes: BTreeMap<String, Vec<String>>,
}

/// Folds a declared or reported type onto the kind of value it holds.
fn kind_of(type_name: &str) -> String {
    let upper = type_name.to_ascii_uppercase();
    let kind = match upper.as_str() {
        "BIGINT" | "INTEGER" | "SMALLINT" | "INT" | "INT8" | "INT4" | "INT2" | "BIGSERIAL" | "SERIAL" => "integer",
        "TEXT" | "CHARACTER VARYING" | "VARCHAR" => "text",
        "BYTEA" | "BLOB" => "bytes",
        "BOOLEAN" | "BOOL" => "boolean",
        "DOUBLE PRECISION" | "REAL" | "FLOAT8" => "real",
        other => other,
    };
    kind.to_owned()
}

async fn postgres_schema(db: &Db) -> Schema {
    let Db::Postgres(pool) = db else { unreachable!("a PostgreSQL database") };
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT, is_nullable::TEXT \
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for (table, column, data_type, nullable) in rows {
        columns.entry(table).or_default().insert(column, (kind_of(&data_type), nullable == "YES"));
    }
    // Indexes a migration named, not those PostgreSQL makes for a primary
    // key or a UNIQUE constraint (SQLite's are unnamed autoindexes).
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::TEXT, i.relname::TEXT FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname NOT LIKE '\\_sqlx%' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    Schema { columns, indexes: group(rows) }
}

async fn sqlite_schema(db: &Db) -> Schema {
    let Db::Sqlite(pool) = db else { unreachable!("a SQLite database") };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for table in tables {
        let rows: Vec<(String, String, bool, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
        for (column, declared, not_null, primary_key) in rows {
            // A primary key column is never NULL, declared so or not.
            let nullable = !not_null && primary_key == 0;
            columns.entry(table.clone()).or_default().insert(column, (kind_of(&declared), nullable));
        }
    }
    // Indexes with SQL text are the ones a migration created.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .fetch_all(pool)
            .await
            .unwrap();
    Schema { columns, indexes: group(rows) }
}

fn group(rows: Vec<(String, String)>) -> BTreeMap<String, Vec<String>> {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, index) in rows {
        grouped.entry(table).or_default().push(index);
    }
    grouped.values_mut().for_each(|names| names.sort());
    grouped
}

/// Each difference between the two schemas, one line each, so a failure
/// names what to fix rather than printing two whole schemas.
fn differences(postgres: &Schema, sqlite: &Schema) -> Vec<String> {
    let mut found = Vec::new();
    let tables: std::collections::BTreeSet<&String> = postgres.columns.keys().chain(sqlite.columns.keys()).collect();
    for table in tables {
        let (pg, lite) = (postgres.columns.get(table), sqlite.columns.get(table));
        let (Some(pg), Some(lite)) = (pg, lite) else {
            found.push(format!("table {table}: only on {}", if pg.is_some() { "PostgreSQL" } else { "SQLite" }));
            continue;
        };
        let names: std::collections::BTreeSet<&String> = pg.keys().chain(lite.keys()).collect();
        for column in names {
            match (pg.get(column), lite.get(column)) {
                (Some(a), Some(b)) if a == b => {}
                // SQLite has no boolean type: 0 and 1 are stored alike
                // whether a column is declared BOOLEAN or INTEGER.
                (Some((a, a_null)), Some((b, b_null))) if a == "boolean" && b == "integer" && a_null == b_null => {}
                (a, b) => found.push(format!("{table}.{column}: PostgreSQL {a:?}, SQLite {b:?}")),
            }
        }
        let (a, b) = (postgres.indexes.get(table), sqlite.indexes.get(table));
        if a != b {
            found.push(format!("indexes on {table}: PostgreSQL {a:?}, SQLite {b:?}"));
        }
    }
    found
}

#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let Some(url) = crate::common::fresh_postgres_url().await else { return };
    let postgres = Db::connect(&DbOptions::new(url)).await.unwrap();
    postgres.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("parity.db").display());
    let sqlite = Db::connect(&DbOptions::new(sqlite_url)).await.unwrap();
    sqlite.migrate().await.unwrap();

    let (pg, lite) = (postgres_schema(&postgres).await, sqlite_schema(&sqlite).await);
    assert!(pg.columns.len() > 10 && pg.indexes.len() > 3, "read too little of the schema: {pg:?}");
    let found = differences(&pg, &lite);
    assert!(found.is_empty(), "the backends' schemas differ:\n{}", found.join("\n"));
}
