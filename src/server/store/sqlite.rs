//! The SQLite store: one file, WAL mode, cached prepared statements, one transaction per
//! operation. One writing connection (SQLite has one writer anyway) and a few reading ones:
//! in WAL mode readers never wait for a writer, so a write lock held by another process stalls
//! only writes, and those give up after `WRITE_BUSY_TIMEOUT` with `StoreError::Busy`.
//!
//! A stored document that cannot be read (written before documents were bounded, or by hand)
//! marks its own location or revision `damaged`; it never fails a read of the whole deployment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use super::{
    ApplyError, ApplyMode, BranchDeployment, DeploymentKind, DeploymentRecord, HistoryPage,
    LocationChange, MAX_DEPLOYMENT_BYTES, MAX_HISTORY_PAGE_BYTES, Revision, RevisionAction, Store,
    StoredLocation, now_ms,
};
use crate::server::document;
use crate::server::error::StoreError;
use crate::server::private_fs;
use crate::server::tokens::{Actor, TokenInfo, TokenScope};

/// Bumped with every schema change; later versions migrate from `PRAGMA user_version`.
/// 2: `tokens.last_used_at`.
const SCHEMA_VERSION: i64 = 2;
/// How long a write waits for another process's write lock before failing.
const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// Reading connections open at once (each holds a few file descriptors and a page cache).
const MAX_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    repo_name TEXT,
    branch_name TEXT,
    branch TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS deployments_by_branch
    ON deployments (repo_name, branch_name) WHERE repo_name IS NOT NULL;
CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    location_name TEXT NOT NULL,
    document TEXT,
    action TEXT NOT NULL,
    rollback_of INTEGER,
    actor TEXT NOT NULL,
    token_id INTEGER,
    commit_hash TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revisions_by_location ON revisions (deployment_id, location_name, id);
CREATE TABLE IF NOT EXISTS locations (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    revision_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE,
    deployment TEXT,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_used_at INTEGER
);
";

const DEPLOYMENT_COLUMNS: &str = "id, name, kind, settings, created_at, branch";
const REVISION_COLUMNS: &str = "r.id, d.name, r.location_name, r.document, r.action, \
     r.rollback_of, r.actor, r.token_id, r.commit_hash, r.created_at";

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    reader_returned: Condvar,
}

struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// A reading connection, back to the pool on drop.
struct Reader<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `drop` takes it out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.store.lock_readers().idle.push(conn);
            self.store.reader_returned.notify_one();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            // SQLite would create it 0644; its -wal and -shm files take the database's mode.
            private_fs::file_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| open_error(Box::new(e)))?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(Box::new(e)))?;
        conn.busy_timeout(WRITE_BUSY_TIMEOUT)?;
        // WAL: readers never block the writer; NORMAL sync is durable across process crashes.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(Box::new(e)))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "{} was written by a newer dagster-deploy (schema {version}, this one knows {SCHEMA_VERSION}); upgrade dagster-deploy",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            private_fs::restrict_file(Path::new(&file));
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Readers {
                idle: Vec::new(),
                open: 0,
            }),
            reader_returned: Condvar::new(),
        })
    }

    /// The writing connection.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (it rolls back on
        // drop), so a poisoned lock is still safe to use.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_readers(&self) -> MutexGuard<'_, Readers> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reading connection: an idle one, a new one while fewer than `MAX_READERS` are open,
    /// else the next one returned.
    fn read(&self) -> Result<Reader<'_>, StoreError> {
        let mut readers = self.lock_readers();
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(Reader {
                    store: self,
                    conn: Some(conn),
                });
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                drop(readers);
                return match self.open_reader() {
                    Ok(conn) => Ok(Reader {
                        store: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock_readers().open -= 1;
                        Err(e)
                    }
                };
            }
            readers = self
                .reader_returned
                .wait(readers)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(WRITE_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }
}

/// Brings a database of an earlier schema up to date (inside `open`).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_last_used: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('tokens') WHERE name = 'last_used_at'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_last_used {
        conn.execute("ALTER TABLE tokens ADD COLUMN last_used_at INTEGER", [])?;
    }
    Ok(())
}

fn deployment_from_row(row: &Row<'_>) -> rusqlite::Result<(DeploymentRecord, Option<String>)> {
    let kind: String = row.get(2)?;
    let settings: String = row.get(3)?;
    Ok((
        DeploymentRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            kind: if kind == "branch" {
                DeploymentKind::Branch
            } else {
                DeploymentKind::Production
            },
            settings: serde_json::from_str(&settings).unwrap_or(Value::Null),
            created_at_ms: row.get(4)?,
            branch: None,
        },
        row.get(5)?,
    ))
}

fn finish_deployment(
    (mut record, branch): (DeploymentRecord, Option<String>),
) -> Result<DeploymentRecord, StoreError> {
    if let Some(b) = branch {
        record.branch = Some(serde_json::from_str::<BranchDeployment>(&b)?);
    }
    Ok(record)
}

fn revision_from_row(row: &Row<'_>) -> rusqlite::Result<(Revision, Option<String>)> {
    let action: String = row.get(4)?;
    let rollback_of: Option<i64> = row.get(5)?;
    let action = match (action.as_str(), rollback_of) {
        ("delete", _) => RevisionAction::Deleted,
        ("rollback", Some(from_revision)) => RevisionAction::RolledBack { from_revision },
        _ => RevisionAction::Registered,
    };
    Ok((
        Revision {
            id: row.get(0)?,
            deployment: row.get(1)?,
            location: row.get(2)?,
            document: None,
            action,
            actor: row.get(6)?,
            token_id: row.get(7)?,
            commit_hash: row.get(8)?,
            created_at_ms: row.get(9)?,
            damaged: None,
        },
        row.get(3)?,
    ))
}

fn finish_revision((mut rev, doc): (Revision, Option<String>)) -> Revision {
    if let Some(d) = doc {
        match read_document(&d, &rev.location) {
            Ok(doc) => rev.document = Some(doc),
            Err(why) => rev.damaged = Some(why),
        }
    }
    rev
}

/// A stored document, or why it cannot be read (logged: the operator should know).
fn read_document(text: &str, location: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(location, "a stored document cannot be read: {e}");
        format!(
            "the stored document of location '{location}' cannot be read ({e}); register the \
             location again"
        )
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    let deployment: Option<String> = row.get(1)?;
    let revoked_at: Option<i64> = row.get(4)?;
    Ok(TokenInfo {
        id: row.get(0)?,
        scope: match deployment {
            Some(d) => TokenScope::Deployment(d),
            None => TokenScope::Organization,
        },
        label: row.get(2)?,
        created_at_ms: row.get(3)?,
        revoked: revoked_at.is_some(),
        last_used_at_ms: row.get(5)?,
    })
}

fn deployment_where(
    conn: &Connection,
    clause: &str,
    param: &dyn rusqlite::ToSql,
) -> Result<Option<DeploymentRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE {clause}"
    ))?;
    let row = stmt.query_row([param], deployment_from_row).optional()?;
    row.map(finish_deployment).transpose()
}

/// What every revision written by one `apply_locations` call shares.
struct Batch<'a> {
    deployment_id: i64,
    deployment: &'a str,
    actor: &'a Actor,
    now: i64,
}

/// Inserts a revision and returns it (the caller is inside a transaction).
fn insert_revision(
    conn: &Connection,
    batch: &Batch<'_>,
    location: &str,
    doc: Option<&Value>,
    action: RevisionAction,
) -> Result<Revision, StoreError> {
    let Batch {
        deployment_id,
        deployment,
        actor,
        now,
    } = *batch;
    let (action_name, rollback_of) = match action {
        RevisionAction::Registered => ("register", None),
        RevisionAction::Deleted => ("delete", None),
        RevisionAction::RolledBack { from_revision } => ("rollback", Some(from_revision)),
    };
    let commit_hash = doc.and_then(document::commit_hash).map(str::to_string);
    let mut stmt = conn.prepare_cached(
        "INSERT INTO revisions (deployment_id, location_name, document, action, rollback_of, \
         actor, token_id, commit_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(params![
        deployment_id,
        location,
        doc.map(Value::to_string),
        action_name,
        rollback_of,
        actor.label,
        actor.token_id,
        commit_hash,
        now
    ])?;
    Ok(Revision {
        id: conn.last_insert_rowid(),
        deployment: deployment.to_string(),
        location: location.to_string(),
        document: doc.cloned(),
        action,
        actor: actor.label.clone(),
        token_id: actor.token_id,
        commit_hash,
        created_at_ms: now,
        damaged: None,
    })
}

impl Store for SqliteStore {
    fn deployment(&self, name: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        deployment_where(&*self.read()?, "name = ?1", &name)
    }

    fn deployment_by_id(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError> {
        deployment_where(&*self.read()?, "id = ?1", &id)
    }

    fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY id"
        ))?;
        let rows = stmt.query_map([], deployment_from_row)?;
        rows.map(|r| finish_deployment(r?)).collect()
    }

    fn create_deployment(&self, name: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO deployments (name, kind, created_at) VALUES (?1, 'production', ?2) \
             ON CONFLICT (name) DO NOTHING",
            params![name, now_ms()],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        deployment_where(&conn, "name = ?1", &name)
    }

    fn delete_deployment(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(record) = deployment_where(&tx, "id = ?1", &id)? else {
            return Ok(None);
        };
        tx.execute("DELETE FROM locations WHERE deployment_id = ?1", [id])?;
        tx.execute("DELETE FROM revisions WHERE deployment_id = ?1", [id])?;
        tx.execute("DELETE FROM deployments WHERE id = ?1", [id])?;
        tx.execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE deployment = ?2 AND revoked_at IS NULL",
            params![now_ms(), record.name],
        )?;
        tx.commit()?;
        Ok(Some(record))
    }

    fn upsert_branch_deployment(
        &self,
        branch: &BranchDeployment,
        candidate_names: &[String],
    ) -> Result<DeploymentRecord, StoreError> {
        let json = serde_json::to_string(branch)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM deployments WHERE repo_name = ?1 AND branch_name = ?2",
                params![branch.repo_name, branch.branch_name],
                |r| r.get(0),
            )
            .optional()?;
        let id = match existing {
            Some(id) => {
                tx.execute(
                    "UPDATE deployments SET branch = ?1 WHERE id = ?2",
                    params![json, id],
                )?;
                id
            }
            None => {
                let mut created = None;
                for name in candidate_names {
                    let n = tx.execute(
                        "INSERT INTO deployments (name, kind, created_at, repo_name, branch_name, \
                         branch) VALUES (?1, 'branch', ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                        params![name, now_ms(), branch.repo_name, branch.branch_name, json],
                    )?;
                    if n == 1 {
                        created = Some(tx.last_insert_rowid());
                        break;
                    }
                }
                created.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "every candidate name for the branch deployment of {}/{} is taken",
                        branch.repo_name, branch.branch_name
                    ))
                })?
            }
        };
        let record = deployment_where(&tx, "id = ?1", &id)?
            .ok_or_else(|| StoreError::Corrupt("branch deployment vanished".into()))?;
        tx.commit()?;
        Ok(record)
    }

    fn branch_deployment_name(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM deployments WHERE repo_name = ?1 AND branch_name = ?2",
        )?;
        Ok(stmt
            .query_row(params![repo, branch], |r| r.get(0))
            .optional()?)
    }

    fn set_deployment_settings(&self, id: i64, settings: &Value) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET settings = ?1 WHERE id = ?2",
            params![settings.to_string(), id],
        )?;
        Ok(())
    }

    fn organization_settings(&self) -> Result<Value, StoreError> {
        let conn = self.read()?;
        let text: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'organization_settings'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match text {
            Some(t) => Ok(serde_json::from_str(&t)?),
            None => Ok(Value::Object(Default::default())),
        }
    }

    fn set_organization_settings(&self, settings: &Value) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES ('organization_settings', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [settings.to_string()],
        )?;
        Ok(())
    }

    fn locations(&self, deployment_id: i64) -> Result<Vec<StoredLocation>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(
            "SELECT l.name, r.document, r.id, r.created_at FROM locations l \
             JOIN revisions r ON r.id = l.revision_id \
             WHERE l.deployment_id = ?1 ORDER BY l.position",
        )?;
        let rows = stmt.query_map([deployment_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, doc, revision_id, updated_at_ms) = row?;
            let read = match doc {
                Some(text) => read_document(&text, &name),
                None => Err(format!("location '{name}' points at a deletion revision")),
            };
            let (document, damaged) = match read {
                Ok(doc) => (doc, None),
                Err(why) => (serde_json::json!({ "location_name": name }), Some(why)),
            };
            out.push(StoredLocation {
                name,
                document,
                revision_id,
                updated_at_ms,
                damaged,
            });
        }
        Ok(out)
    }

    fn apply_locations(
        &self,
        deployment_id: i64,
        changes: &[LocationChange],
        mode: ApplyMode,
        actor: &Actor,
    ) -> Result<Result<Vec<Revision>, ApplyError>, StoreError> {
        let mut conn = self.conn();
        // Dropping `tx` without commit rolls everything back.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let deployment: String = tx.query_row(
            "SELECT name FROM deployments WHERE id = ?1",
            [deployment_id],
            |r| r.get(0),
        )?;
        let batch = Batch {
            deployment_id,
            deployment: &deployment,
            actor,
            now: now_ms(),
        };
        let mut revisions = Vec::with_capacity(changes.len());
        let mut touched: HashSet<&str> = HashSet::new();
        for change in changes {
            match change {
                LocationChange::Put {
                    name,
                    document,
                    action,
                } => {
                    let rev = insert_revision(&tx, &batch, name, Some(document), *action)?;
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO locations (deployment_id, name, revision_id, position) \
                         VALUES (?1, ?2, ?3, ?3) ON CONFLICT (deployment_id, name) \
                         DO UPDATE SET revision_id = excluded.revision_id",
                    )?;
                    stmt.execute(params![deployment_id, name, rev.id])?;
                    revisions.push(rev);
                    touched.insert(name);
                }
                LocationChange::Delete { name } => {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM locations WHERE deployment_id = ?1 AND name = ?2",
                    )?;
                    if stmt.execute(params![deployment_id, name])? == 0 {
                        return Ok(Err(ApplyError::MissingLocation(name.clone())));
                    }
                    revisions.push(insert_revision(
                        &tx,
                        &batch,
                        name,
                        None,
                        RevisionAction::Deleted,
                    )?);
                    touched.insert(name);
                }
            }
        }
        if mode == ApplyMode::ReplaceAll {
            let stale: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT name FROM locations WHERE deployment_id = ?1 ORDER BY position",
                )?;
                let names = stmt.query_map([deployment_id], |r| r.get::<_, String>(0))?;
                names
                    .filter(|n| !matches!(n, Ok(n) if touched.contains(n.as_str())))
                    .collect::<rusqlite::Result<_>>()?
            };
            for name in stale {
                tx.execute(
                    "DELETE FROM locations WHERE deployment_id = ?1 AND name = ?2",
                    params![deployment_id, name],
                )?;
                revisions.push(insert_revision(
                    &tx,
                    &batch,
                    &name,
                    None,
                    RevisionAction::Deleted,
                )?);
            }
        }
        let bytes: i64 = tx.query_row(
            "SELECT COALESCE(SUM(LENGTH(CAST(r.document AS BLOB))), 0) FROM locations l \
             JOIN revisions r ON r.id = l.revision_id WHERE l.deployment_id = ?1",
            [deployment_id],
            |r| r.get(0),
        )?;
        if bytes > MAX_DEPLOYMENT_BYTES {
            return Ok(Err(ApplyError::TooLarge { bytes }));
        }
        tx.commit()?;
        Ok(Ok(revisions))
    }

    fn history(
        &self,
        deployment_id: i64,
        location: &str,
        page: HistoryPage,
    ) -> Result<Vec<Revision>, StoreError> {
        let conn = self.read()?;
        // Newest first to apply the limit (-1: none), then turned around.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REVISION_COLUMNS} FROM revisions r JOIN deployments d ON d.id = r.deployment_id \
             WHERE r.deployment_id = ?1 AND r.location_name = ?2 AND r.id < ?3 \
             ORDER BY r.id DESC LIMIT ?4"
        ))?;
        let before = page.before.unwrap_or(i64::MAX);
        let limit = page
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = stmt.query_map(
            params![deployment_id, location, before, limit],
            revision_from_row,
        )?;
        // A page stops at its byte budget (the newest revision always fits); all of history
        // (rollback) has none.
        let budget = page.limit.map_or(usize::MAX, |_| MAX_HISTORY_PAGE_BYTES);
        let mut revisions = Vec::new();
        let mut bytes = 0usize;
        for row in rows {
            let (rev, doc) = row?;
            bytes += doc.as_ref().map_or(0, String::len);
            if bytes > budget && !revisions.is_empty() {
                break;
            }
            revisions.push(finish_revision((rev, doc)));
        }
        revisions.reverse();
        Ok(revisions)
    }

    fn insert_token(
        &self,
        hash: &[u8; 32],
        scope: &TokenScope,
        label: Option<&str>,
    ) -> Result<TokenInfo, StoreError> {
        let deployment = match scope {
            TokenScope::Deployment(d) => Some(d.as_str()),
            TokenScope::Organization => None,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO tokens (hash, deployment, label, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![&hash[..], deployment, label.unwrap_or(""), now],
        )?;
        let id = tx.last_insert_rowid();
        let label = match label {
            Some(l) => l.to_string(),
            None => {
                let l = format!("token-{id}");
                tx.execute("UPDATE tokens SET label = ?1 WHERE id = ?2", params![l, id])?;
                l
            }
        };
        tx.commit()?;
        Ok(TokenInfo {
            id,
            label,
            scope: scope.clone(),
            created_at_ms: now,
            revoked: false,
            last_used_at_ms: None,
        })
    }

    fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, deployment, label, created_at, revoked_at, last_used_at FROM tokens \
             WHERE hash = ?1",
        )?;
        Ok(stmt.query_row([&hash[..]], token_from_row).optional()?)
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, deployment, label, created_at, revoked_at, last_used_at FROM tokens \
             ORDER BY id",
        )?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn touch_token(&self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2",
            params![at_ms, id],
        )?;
        Ok(())
    }

    fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![now_ms(), id],
        )?;
        Ok(n == 1)
    }
}
