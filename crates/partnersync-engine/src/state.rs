//! What the tool believes, kept between runs: cookies, the anchor → target-object map,
//! the last exported value of each managed attribute, a journal of in-flight writes, and
//! run history. [`SqliteStateStore`] keeps it in one SQLite file that `sqlite3` shows
//! plainly (anchors as ImmutableIds, attributes as JSON).

use std::path::{Path, PathBuf};

use partnersync_core::Anchor;
use partnersync_target::Attributes;
use rusqlite::{params, Connection, OptionalExtension};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be opened or is not a partnersync state database.
    #[error("state file {path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// The database was written by a newer partnersync.
    #[error("state file {path} has schema version {found}, newer than this partnersync understands ({supported}); upgrade partnersync or restore the file from a backup")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A query failed.
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data did not decode.
    #[error("state store: corrupt {what}: {message}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

/// One managed object as last seen and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    /// The source anchor.
    pub anchor: Anchor,
    /// The target object id.
    pub target_id: String,
    /// The source DN at the last sync.
    pub dn: String,
    /// The attribute values last exported.
    pub exported: Attributes,
    /// When the object was disabled because its source went away (Unix seconds).
    pub disabled_at: Option<i64>,
    /// When the object was soft-deleted because its source went away (Unix seconds).
    pub deleted_at: Option<i64>,
}

/// A managed object as the store holds it, borrowed while the store is scanned
/// ([`StateStore::scan_objects`]): the exported attributes stay in their stored form, so a
/// full cycle over a million objects decodes only the few it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredObject<'a> {
    /// The anchor in ImmutableId form.
    pub anchor: &'a str,
    /// The target object id.
    pub target_id: &'a str,
    /// The source DN at the last sync.
    pub dn: &'a str,
    /// [`ObjectState::exported`] as `serde_json` writes it (keys in order, no spaces).
    pub exported_json: &'a str,
    /// As [`ObjectState::disabled_at`].
    pub disabled_at: Option<i64>,
    /// As [`ObjectState::deleted_at`].
    pub deleted_at: Option<i64>,
}

/// Receives the rows of a scan ([`StateStore::scan_objects`], [`DetachedScan`]); an error
/// stops the scan and is returned.
pub type ObjectVisitor<'a> = dyn FnMut(StoredObject<'_>) -> Result<(), StateError> + 'a;

/// A scan of every managed object that owns what it needs
/// ([`StateStore::detached_scan`]), so it can run on another thread.
pub type DetachedScan = Box<dyn FnOnce(&mut ObjectVisitor<'_>) -> Result<(), StateError> + Send>;

/// An object whose last write failed (or that a rule could not evaluate), kept so the next
/// cycle retries it even when the source reports no change for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingObject {
    /// The anchor (ImmutableId form).
    pub anchor: String,
    /// The source DN.
    pub dn: String,
    /// What went wrong last time.
    pub error: String,
    /// How many cycles have failed on it in a row.
    pub attempts: i64,
    /// When it last failed (Unix seconds).
    pub last_at: i64,
    /// The desired object as JSON (attributes, apply-once list, scope), so a delta cycle can
    /// retry it without re-reading the source.
    #[serde(skip)]
    pub desired: String,
}

/// One write recorded before it is sent, so a crash leaves a trace to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Row id.
    pub id: i64,
    /// The anchor the write concerns (ImmutableId form).
    pub anchor: String,
    /// The action (`create`, `update`, ...).
    pub action: String,
    /// When it was recorded (Unix seconds).
    pub started_at: i64,
}

/// The summary of one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    /// Row id (0 before it is recorded).
    pub id: i64,
    /// Start (Unix seconds).
    pub started_at: i64,
    /// End (Unix seconds).
    pub finished_at: i64,
    /// `applied`, `staged`, `guard-tripped`, `failed`, ...
    pub outcome: String,
    /// Counts and figures as JSON.
    pub summary: serde_json::Value,
    /// Per-object errors: (anchor, message).
    pub errors: Vec<(String, String)>,
}

/// The newest schema version.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value BLOB);
     CREATE TABLE objects (
        anchor TEXT PRIMARY KEY,          -- the anchor's ImmutableId (base64, or entryUUID/nsUniqueId text)
        target_id TEXT NOT NULL UNIQUE,   -- the target's object id
        dn TEXT NOT NULL,
        exported TEXT NOT NULL,           -- JSON: attribute -> [values] last written
        disabled_at INTEGER               -- unix seconds, when disabled because the source went away
     );
     CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        anchor TEXT NOT NULL,
        action TEXT NOT NULL,
        started_at INTEGER NOT NULL
     );
     CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        summary TEXT NOT NULL             -- JSON
     );
     CREATE TABLE run_errors (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        anchor TEXT NOT NULL,
        message TEXT NOT NULL
     );",
    // 2: soft-deleted objects stay managed (restorable); failed objects are retried;
    //    lookups by target id and by disable time are indexed.
    "ALTER TABLE objects ADD COLUMN deleted_at INTEGER;  -- unix seconds, when soft-deleted because the source went away
     CREATE INDEX objects_disabled_at ON objects(disabled_at) WHERE disabled_at IS NOT NULL;
     CREATE TABLE pending (
        anchor TEXT PRIMARY KEY,          -- ImmutableId
        dn TEXT NOT NULL,
        error TEXT NOT NULL,              -- the last error, in words
        attempts INTEGER NOT NULL,
        last_at INTEGER NOT NULL,         -- unix seconds
        desired TEXT NOT NULL             -- JSON: what the rules wanted
     );",
];

/// What the engine keeps between runs. [`SqliteStateStore`] is the embedded default;
/// implement this to keep state elsewhere.
pub trait StateStore: Send {
    /// A setting (e.g. `source_cookie`, `target_cookie`).
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets or (with `None`) removes a setting.
    fn set_setting(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), StateError>;
    /// Every managed object.
    fn objects(&self) -> Result<Vec<ObjectState>, StateError>;
    /// Calls `visit` for every managed object, in no particular order, without decoding it;
    /// stops at the first error. Nothing is checked: the caller decodes what it uses (or
    /// reads it again with [`object`](Self::object)). The default implementation encodes
    /// [`objects`](Self::objects).
    fn scan_objects(
        &self,
        visit: &mut dyn FnMut(StoredObject<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        for o in self.objects()? {
            let exported_json = encode_exported(&o.exported)?;
            visit(StoredObject {
                anchor: &o.anchor.to_immutable_id(),
                target_id: &o.target_id,
                dn: &o.dn,
                exported_json: &exported_json,
                disabled_at: o.disabled_at,
                deleted_at: o.deleted_at,
            })?;
        }
        Ok(())
    }
    /// The managed object bound to `anchor`.
    fn object(&self, anchor: &Anchor) -> Result<Option<ObjectState>, StateError>;
    /// The managed object with this target id.
    fn object_by_target_id(&self, id: &str) -> Result<Option<ObjectState>, StateError>;
    /// The managed objects with these target ids (those the store knows), in any order. A
    /// delta cycle looks up every user the change feed reports, which after a large apply
    /// is every user written; stores that can should answer many ids at once. The default
    /// asks [`object_by_target_id`](Self::object_by_target_id) for each.
    fn objects_by_target_ids(&self, ids: &[&str]) -> Result<Vec<ObjectState>, StateError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.object_by_target_id(id)?);
        }
        Ok(out)
    }
    /// How many objects are managed (soft-deleted ones excluded).
    fn object_count(&self) -> Result<usize, StateError>;
    /// About how many rows [`scan_objects`](Self::scan_objects) visits, to size memory
    /// before a scan; cheap where [`object_count`](Self::object_count) is not. `0` when
    /// unknown (the default).
    fn object_count_hint(&self) -> usize {
        0
    }
    /// [`scan_objects`](Self::scan_objects) as a task that owns what it needs, so a full
    /// cycle can scan on another thread while it lists the target. It must see what
    /// `scan_objects` would see now. `None` (the default) when the store cannot; the
    /// engine then scans in place.
    fn detached_scan(&self) -> Option<DetachedScan> {
        None
    }
    /// Objects disabled at or before `before` (Unix seconds) and not deleted.
    fn disabled_before(&self, before: i64) -> Result<Vec<ObjectState>, StateError>;
    /// Records objects and forgets others, in one transaction, and finishes the journal
    /// entries `journal_done`.
    fn commit(
        &mut self,
        put: &[ObjectState],
        forget: &[Anchor],
        journal_done: &[i64],
    ) -> Result<(), StateError>;
    /// Records writes about to be sent (anchor, action); returns their journal ids.
    fn journal_begin(&mut self, entries: &[(&str, &str)], now: i64)
        -> Result<Vec<i64>, StateError>;
    /// Writes that were started but never finished: a crash happened in between.
    fn unfinished(&self) -> Result<Vec<JournalEntry>, StateError>;
    /// Finishes journal entries without other changes.
    fn journal_clear(&mut self, ids: &[i64]) -> Result<(), StateError>;
    /// Objects to retry.
    fn pending(&self) -> Result<Vec<PendingObject>, StateError>;
    /// Replaces the entries of `anchors` in the retry list with `set` (an anchor in
    /// `anchors` but not in `set` succeeded and leaves the list).
    fn set_pending(&mut self, anchors: &[String], set: &[PendingObject]) -> Result<(), StateError>;
    /// Records a run; returns its id.
    fn record_run(&mut self, run: &RunRecord) -> Result<i64, StateError>;
    /// The last `limit` runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError>;
}

/// The state store in one SQLite file (WAL mode).
pub struct SqliteStateStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStateStore {
    /// Opens (creating if needed) the state file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let open_err = |message: String| StateError::Open {
            path: path.to_path_buf(),
            message,
        };
        let conn = Connection::open(path).map_err(|e| open_err(format!("cannot open: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_err(format!("not a SQLite database ({e}); point state_file at a new path or at a partnersync state file")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!(
                "could not switch to WAL mode (got {mode})"
            )));
        }
        conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let mut store = SqliteStateStore {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate(version)?;
        Ok(store)
    }

    fn migrate(&mut self, from: i64) -> Result<(), StateError> {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

const OBJECT_COLUMNS: &str = "anchor, target_id, dn, exported, disabled_at, deleted_at";

/// Every row of `objects`, borrowed from SQLite's buffers, to `visit`.
fn scan_rows(conn: &Connection, visit: &mut ObjectVisitor<'_>) -> Result<(), StateError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {OBJECT_COLUMNS} FROM objects"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        // Borrowed text; a value that is not text fails as `objects` fails on it.
        let text = |i: usize| -> Result<&str, StateError> {
            match r.get_ref(i)?.as_str() {
                Ok(s) => Ok(s),
                Err(e) => Err(match r.get::<_, String>(i) {
                    Err(e) => e.into(),
                    Ok(_) => StateError::Corrupt {
                        what: "object row",
                        message: e.to_string(),
                    },
                }),
            }
        };
        visit(StoredObject {
            anchor: text(0)?,
            target_id: text(1)?,
            dn: text(2)?,
            exported_json: text(3)?,
            disabled_at: r.get(4)?,
            deleted_at: r.get(5)?,
        })?;
    }
    Ok(())
}

fn object_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawObject> {
    Ok(RawObject {
        anchor: r.get(0)?,
        target_id: r.get(1)?,
        dn: r.get(2)?,
        exported: r.get(3)?,
        disabled_at: r.get(4)?,
        deleted_at: r.get(5)?,
    })
}

struct RawObject {
    anchor: String,
    target_id: String,
    dn: String,
    exported: String,
    disabled_at: Option<i64>,
    deleted_at: Option<i64>,
}

impl RawObject {
    fn decode(self) -> Result<ObjectState, StateError> {
        let anchor = Anchor::from_immutable_id(&self.anchor).map_err(|e| StateError::Corrupt {
            what: "anchor",
            message: format!("{}: {e}", self.anchor),
        })?;
        let exported: Attributes =
            serde_json::from_str(&self.exported).map_err(|e| StateError::Corrupt {
                what: "exported attributes",
                message: format!("object {}: {e}", self.anchor),
            })?;
        Ok(ObjectState {
            anchor,
            target_id: self.target_id,
            dn: self.dn,
            exported,
            disabled_at: self.disabled_at,
            deleted_at: self.deleted_at,
        })
    }
}

impl SqliteStateStore {
    fn query_objects(
        &self,
        where_clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<ObjectState>, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects {where_clause}"
        ))?;
        let rows = stmt.query_map(params, object_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.decode()?);
        }
        Ok(out)
    }

    /// Records one object (insert or replace by anchor).
    pub fn put_object(&mut self, o: &ObjectState) -> Result<(), StateError> {
        self.commit(std::slice::from_ref(o), &[], &[])
    }

    /// Replaces an object's stored exported attributes with `json` as given (tests: rows
    /// spelled differently from how this build writes them).
    #[cfg(test)]
    pub(crate) fn set_exported_json(&self, anchor: &Anchor, json: &str) {
        self.conn
            .execute(
                "UPDATE objects SET exported = ?1 WHERE anchor = ?2",
                params![json, anchor.to_immutable_id()],
            )
            .expect("update exported");
    }
}

/// The stored form of exported attributes (see [`StoredObject::exported_json`]).
pub(crate) fn encode_exported(exported: &Attributes) -> Result<String, StateError> {
    serde_json::to_string(exported).map_err(|e| StateError::Corrupt {
        what: "exported attributes",
        message: e.to_string(),
    })
}

fn put(tx: &rusqlite::Transaction<'_>, o: &ObjectState) -> Result<(), StateError> {
    let exported = encode_exported(&o.exported)?;
    let anchor = o.anchor.to_immutable_id();
    // A target id belongs to one anchor: a stale row claiming it (an object re-created
    // under a new anchor) goes.
    tx.prepare_cached("DELETE FROM objects WHERE target_id = ?1 AND anchor <> ?2")?
        .execute(params![o.target_id, anchor])?;
    tx.prepare_cached(
        "INSERT INTO objects(anchor, target_id, dn, exported, disabled_at, deleted_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(anchor) DO UPDATE SET target_id = excluded.target_id, dn = excluded.dn, exported = excluded.exported,
             disabled_at = excluded.disabled_at, deleted_at = excluded.deleted_at",
    )?
    .execute(params![anchor, o.target_id, o.dn, exported, o.disabled_at, o.deleted_at])?;
    Ok(())
}

impl StateStore for SqliteStateStore {
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        match value {
            Some(v) => self.conn.execute("INSERT INTO settings(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params![key, v])?,
            None => self.conn.execute("DELETE FROM settings WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    fn objects(&self) -> Result<Vec<ObjectState>, StateError> {
        self.query_objects("ORDER BY anchor", [])
    }

    fn scan_objects(
        &self,
        visit: &mut dyn FnMut(StoredObject<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        scan_rows(&self.conn, visit)
    }

    fn detached_scan(&self) -> Option<DetachedScan> {
        // Its own read-only connection on the same file: in WAL mode it reads the last
        // committed state alongside this one. Not for an in-memory database (a second
        // connection would see another, empty one).
        let path = self.path.clone();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return None;
        }
        Some(Box::new(move |visit| {
            let conn = Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| StateError::Open {
                path: path.clone(),
                message: format!("cannot open for reading: {e}"),
            })?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            scan_rows(&conn, visit)
        }))
    }

    fn object(&self, anchor: &Anchor) -> Result<Option<ObjectState>, StateError> {
        Ok(self
            .query_objects("WHERE anchor = ?1", [anchor.to_immutable_id()])?
            .pop())
    }

    fn object_by_target_id(&self, id: &str) -> Result<Option<ObjectState>, StateError> {
        Ok(self.query_objects("WHERE target_id = ?1", [id])?.pop())
    }

    fn objects_by_target_ids(&self, ids: &[&str]) -> Result<Vec<ObjectState>, StateError> {
        // One statement per 500 ids (well under SQLite's variable limit), each id a probe of
        // the target_id index.
        const CHUNK: usize = 500;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            out.extend(self.query_objects(
                &format!("WHERE target_id IN ({marks})"),
                rusqlite::params_from_iter(chunk.iter()),
            )?);
        }
        Ok(out)
    }

    fn object_count_hint(&self) -> usize {
        // The largest rowid: no scan (the b-tree's last leaf), and at least the row count
        // unless rows were forgotten since.
        self.conn
            .query_row("SELECT coalesce(max(rowid), 0) FROM objects", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    fn object_count(&self) -> Result<usize, StateError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM objects WHERE deleted_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    fn disabled_before(&self, before: i64) -> Result<Vec<ObjectState>, StateError> {
        self.query_objects(
            "WHERE disabled_at IS NOT NULL AND disabled_at <= ?1 AND deleted_at IS NULL ORDER BY anchor",
            [before],
        )
    }

    fn commit(
        &mut self,
        put_objects: &[ObjectState],
        forget: &[Anchor],
        journal_done: &[i64],
    ) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        for o in put_objects {
            put(&tx, o)?;
        }
        for a in forget {
            tx.prepare_cached("DELETE FROM objects WHERE anchor = ?1")?
                .execute([a.to_immutable_id()])?;
        }
        for id in journal_done {
            tx.prepare_cached("DELETE FROM journal WHERE id = ?1")?
                .execute([id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn journal_begin(
        &mut self,
        entries: &[(&str, &str)],
        now: i64,
    ) -> Result<Vec<i64>, StateError> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(entries.len());
        for (anchor, action) in entries {
            tx.prepare_cached(
                "INSERT INTO journal(anchor, action, started_at) VALUES(?1, ?2, ?3)",
            )?
            .execute(params![anchor, action, now])?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    fn unfinished(&self) -> Result<Vec<JournalEntry>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, anchor, action, started_at FROM journal ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(JournalEntry {
                id: r.get(0)?,
                anchor: r.get(1)?,
                action: r.get(2)?,
                started_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn journal_clear(&mut self, ids: &[i64]) -> Result<(), StateError> {
        self.commit(&[], &[], ids)
    }

    fn pending(&self) -> Result<Vec<PendingObject>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT anchor, dn, error, attempts, last_at, desired FROM pending ORDER BY anchor",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingObject {
                anchor: r.get(0)?,
                dn: r.get(1)?,
                error: r.get(2)?,
                attempts: r.get(3)?,
                last_at: r.get(4)?,
                desired: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_pending(&mut self, anchors: &[String], set: &[PendingObject]) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        for a in anchors {
            tx.prepare_cached("DELETE FROM pending WHERE anchor = ?1")?
                .execute([a])?;
        }
        for p in set {
            tx.prepare_cached(
                "INSERT INTO pending(anchor, dn, error, attempts, last_at, desired) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(anchor) DO UPDATE SET dn = excluded.dn, error = excluded.error,
                     attempts = excluded.attempts, last_at = excluded.last_at, desired = excluded.desired",
            )?
            .execute(params![p.anchor, p.dn, p.error, p.attempts, p.last_at, p.desired])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn record_run(&mut self, run: &RunRecord) -> Result<i64, StateError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs(started_at, finished_at, outcome, summary) VALUES(?1, ?2, ?3, ?4)",
            params![
                run.started_at,
                run.finished_at,
                run.outcome,
                run.summary.to_string()
            ],
        )?;
        let id = tx.last_insert_rowid();
        for (anchor, message) in &run.errors {
            tx.prepare_cached(
                "INSERT INTO run_errors(run_id, anchor, message) VALUES(?1, ?2, ?3)",
            )?
            .execute(params![id, anchor, message])?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut stmt = self.conn.prepare("SELECT id, started_at, finished_at, outcome, summary FROM runs ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, started_at, finished_at, outcome, summary) = row?;
            let summary = serde_json::from_str(&summary).map_err(|e| StateError::Corrupt {
                what: "run summary",
                message: e.to_string(),
            })?;
            let mut es = self.conn.prepare_cached(
                "SELECT anchor, message FROM run_errors WHERE run_id = ?1 ORDER BY rowid",
            )?;
            let errors = es
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            out.push(RunRecord {
                id,
                started_at,
                finished_at,
                outcome,
                summary,
                errors,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("partnersync-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    #[test]
    fn a_detached_scan_sees_what_scan_objects_sees() {
        let path = temp("detached");
        let mut s = SqliteStateStore::open(&path).unwrap();
        for n in 0..50u8 {
            let mut exported = Attributes::new();
            exported.insert("displayName".into(), vec![format!("User \"{n}\"")]);
            s.put_object(&ObjectState {
                anchor: Anchor::from_bytes(vec![n + 1; 16]).unwrap(),
                target_id: format!("id-{n}"),
                dn: format!("CN=User {n}"),
                exported,
                disabled_at: (n % 5 == 0).then_some(i64::from(n)),
                deleted_at: (n % 7 == 0).then_some(1),
            })
            .unwrap();
        }
        let rows = |scan: &mut dyn FnMut(&mut ObjectVisitor<'_>) -> Result<(), StateError>| {
            let mut out = Vec::new();
            scan(&mut |o| {
                out.push(format!("{o:?}"));
                Ok(())
            })
            .unwrap();
            out
        };
        let in_place = rows(&mut |visit| s.scan_objects(visit));
        assert_eq!(in_place.len(), 50);
        let detached = s.detached_scan().expect("a file can be scanned detached");
        // On another thread, as the engine runs it.
        let on_thread = std::thread::spawn(move || {
            let mut scan = Some(detached);
            rows(&mut |visit| scan.take().expect("once")(visit))
        })
        .join()
        .unwrap();
        assert_eq!(on_thread, in_place);
        // An error from the visitor stops the scan and is returned.
        let mut seen = 0;
        let e = s.detached_scan().unwrap()(&mut |_| {
            seen += 1;
            Err(StateError::Corrupt {
                what: "test",
                message: "stop".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(e, StateError::Corrupt { what: "test", .. }) && seen == 1);
    }

    #[test]
    fn state_survives_reopening() {
        let path = temp("reopen");
        let anchor = Anchor::from_guid_str("6f1c2b3a-0d4e-4f51-9a62-7b8c9d0e1f21").unwrap();
        {
            let mut s = SqliteStateStore::open(&path).unwrap();
            s.set_setting("source_cookie", Some(b"cookie-1")).unwrap();
            let mut exported = Attributes::new();
            exported.insert("userType".into(), vec!["Guest".into()]);
            s.put_object(&ObjectState {
                anchor: anchor.clone(),
                target_id: "id-1".into(),
                dn: "CN=Ana".into(),
                exported,
                disabled_at: None,
                deleted_at: None,
            })
            .unwrap();
            let a = anchor.to_immutable_id();
            let j = s.journal_begin(&[(&a, "create")], 100).unwrap();
            s.journal_begin(&[("other", "update")], 101).unwrap();
            s.journal_clear(&j).unwrap();
            s.record_run(&RunRecord {
                id: 0,
                started_at: 1,
                finished_at: 2,
                outcome: "applied".into(),
                summary: serde_json::json!({"creates": 1}),
                errors: vec![("x".into(), "boom".into())],
            })
            .unwrap();
        }
        let s = SqliteStateStore::open(&path).unwrap();
        assert_eq!(
            s.setting("source_cookie").unwrap().as_deref(),
            Some(&b"cookie-1"[..])
        );
        let objects = s.objects().unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].anchor, anchor);
        assert_eq!(objects[0].exported["userType"], vec!["Guest".to_string()]);
        let unfinished = s.unfinished().unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].action, "update");
        let runs = s.runs(10).unwrap();
        assert_eq!(runs[0].summary["creates"], 1);
        assert_eq!(runs[0].errors, vec![("x".to_string(), "boom".to_string())]);
        // What sqlite3 shows is plain: the anchor as its ImmutableId, attributes as JSON.
        let plain: (String, String) = s
            .conn
            .query_row("SELECT anchor, exported FROM objects", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            plain,
            (
                anchor.to_immutable_id(),
                r#"{"userType":["Guest"]}"#.to_string()
            )
        );
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn a_file_that_is_not_a_state_database_is_refused_clearly() {
        let path = temp("garbage");
        std::fs::write(
            &path,
            b"this is not sqlite, it is a text file that someone pointed us at by mistake",
        )
        .unwrap();
        let err = SqliteStateStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("not a SQLite database"), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let path = temp("newer");
        {
            let s = SqliteStateStore::open(&path).unwrap();
            s.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = SqliteStateStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StateError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }
}
