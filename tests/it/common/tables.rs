//! Every stored row, read in a canonical order: a test compares two
//! snapshots to show that a request changed nothing, not only that no row
//! was added (an updated row or a spent nonce counts as a change too).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tessera::storage::Db;

/// Written by the server's timers whatever requests arrive (each job run
/// renews its lease), so never part of what a request may change.
const WRITTEN_BY_TIMERS: &[&str] = &["job_leases"];

/// The rows of every table, each row as text, sorted.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    tables: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    /// Reads every table of the database (PostgreSQL's `row::text`,
    /// SQLite's `quote()` of each column).
    pub async fn read(db: &Db) -> Self {
        let mut tables = BTreeMap::new();
        match db {
            Db::Postgres(pool) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::TEXT FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for name in names.into_iter().filter(|n| !WRITTEN_BY_TIMERS.contains(&n.as_str())) {
                    let select = format!(r#"SELECT t::TEXT FROM "{name}" t ORDER BY 1"#);
                    let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_all(pool).await.unwrap();
                    tables.insert(name, rows);
                }
            }
            Db::Sqlite(pool) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for name in names.into_iter().filter(|n| !WRITTEN_BY_TIMERS.contains(&n.as_str())) {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                            .bind(&name)
                            .fetch_all(pool)
                            .await
                            .unwrap();
                    let row =
                        columns.iter().map(|c| format!(r#"quote("{c}")"#)).collect::<Vec<_>>().join(" || ',' || ");
                    let select = format!(r#"SELECT {row} FROM "{name}" ORDER BY 1"#);
                    let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_all(pool).await.unwrap();
                    tables.insert(name, rows);
                }
            }
        }
        assert!(tables.len() > 10, "found only the tables {:?}", tables.keys().collect::<Vec<_>>());
        Self { tables }
    }

    /// Reads the tables once they have stopped changing: after a request
    /// that sets off background writes (a revocation wakes the CRL job,
    /// which may run more than once), before the next comparison.
    pub async fn settled(db: &Db) -> Self {
        // Longer than the CRL job's two-second check.
        const QUIET: Duration = Duration::from_secs(3);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Self::read(db).await;
        let mut unchanged_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = Self::read(db).await;
            if now != last {
                last = now;
                unchanged_since = Instant::now();
            } else if unchanged_since.elapsed() >= QUIET {
                return last;
            }
            assert!(Instant::now() < deadline, "the stored rows kept changing for a minute");
        }
    }

    /// What changed from `self` to `after`: per table, the rows that went
    /// away (`-`) and those that came (`+`). Empty when nothing did.
    pub fn changes(&self, after: &Self) -> BTreeMap<String, Vec<String>> {
        let mut changes = BTreeMap::new();
        let names: std::collections::BTreeSet<&String> = self.tables.keys().chain(after.tables.keys()).collect();
        for name in names {
            let (old, new) = (self.rows(name), after.rows(name));
            let mut lines: Vec<String> = old.iter().filter(|r| !new.contains(r)).map(|r| format!("- {r}")).collect();
            lines.extend(new.iter().filter(|r| !old.contains(r)).map(|r| format!("+ {r}")));
            if !lines.is_empty() {
                changes.insert(name.clone(), lines);
            }
        }
        changes
    }

    /// Panics, naming every changed row, unless `after` holds what `self`
    /// does, but for at most one new row in each table of `may_add_a_row`
    /// (an ACME request spends its nonce even when it is refused).
    /// Whether any row of any table holds `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.tables.values().flatten().any(|row| row.contains(text))
    }

    pub fn assert_unchanged(&self, after: &Self, may_add_a_row: &[&str], what: &str) {
        let mut changes = self.changes(after);
        for table in may_add_a_row {
            if changes.get(*table).is_some_and(|lines| lines.len() == 1 && lines[0].starts_with('+')) {
                changes.remove(*table);
            }
        }
        assert!(changes.is_empty(), "{what} changed what is stored:\n{changes:#?}");
    }

    fn rows(&self, table: &str) -> &[String] {
        self.tables.get(table).map_or(&[], Vec::as_slice)
    }
}

/// Each table's row count and a digest of its rows: enough to see which
/// tables differ when two snapshots are compared with `assert_eq!`.
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, rows) in &self.tables {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rows.join("\n").as_bytes());
            map.entry(name, &format!("{} rows, sha256 {}", rows.len(), hex::encode(&digest.as_ref()[..8])));
        }
        map.finish()
    }
}
