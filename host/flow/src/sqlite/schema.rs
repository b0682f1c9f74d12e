//! The flow store's tables, and bringing a file made by an older paddock up
//! to them.

/// The version of the layout below, kept in SQLite's `user_version`: 0 is
/// the first layout (records only), which [`MIGRATE_TO_1`] to [`MIGRATE_TO_6`]
/// bring up in turn.
pub(super) const SCHEMA_VERSION: i64 = 6;

/// The first layout: what a file made by an older paddock has.
pub(super) const SCHEMA_0: &str = "
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (run TEXT NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, path));
CREATE TABLE IF NOT EXISTS journals (run TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, path));
CREATE TABLE IF NOT EXISTS dead (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cancels (run TEXT PRIMARY KEY, by TEXT NOT NULL);
";

/// Columns to list and prune by without reading records, each record's
/// size, each run's bytes with its steps and journals, each tenant's bytes.
pub(super) const MIGRATE_TO_1: &str = "
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN flow TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN status TEXT NOT NULL DEFAULT 'running';
ALTER TABLE runs ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN error TEXT;
ALTER TABLE runs ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET tenant = json_extract(data, '$.tenant'), flow = json_extract(data, '$.flow'),
    status = json_extract(data, '$.status'), updated = json_extract(data, '$.updated_ms'),
    error = json_extract(data, '$.error'), size = length(CAST(data AS BLOB));
ALTER TABLE steps ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE steps SET size = length(CAST(data AS BLOB));
ALTER TABLE journals ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE journals SET size = length(CAST(data AS BLOB));
UPDATE runs SET bytes = size
    + COALESCE((SELECT SUM(size) FROM steps WHERE steps.run = runs.id), 0)
    + COALESCE((SELECT SUM(size) FROM journals WHERE journals.run = runs.id), 0);
ALTER TABLE dead ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE dead ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE dead SET tenant = json_extract(data, '$.tenant'), size = length(CAST(data AS BLOB));
ALTER TABLE approvals ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN answered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN settles INTEGER NOT NULL DEFAULT 0;
UPDATE approvals SET tenant = json_extract(data, '$.tenant'), size = length(CAST(data AS BLOB)),
    answered = json_extract(data, '$.answer') IS NOT NULL,
    settles = COALESCE(json_extract(data, '$.answered_ms'), json_extract(data, '$.deadline_ms'));
CREATE TABLE tenant_bytes (tenant TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO tenant_bytes (tenant, bytes)
    SELECT tenant, SUM(b) FROM (SELECT tenant, bytes AS b FROM runs UNION ALL SELECT tenant, size FROM dead
        UNION ALL SELECT tenant, size FROM approvals) GROUP BY tenant;
CREATE INDEX runs_by_tenant ON runs (tenant, created DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created);
CREATE INDEX runs_finished ON runs (updated) WHERE status != 'running';
CREATE INDEX dead_by_tenant ON dead (tenant, created, id);
CREATE INDEX dead_by_age ON dead (created, id);
CREATE INDEX approvals_by_tenant ON approvals (tenant, created, id);
CREATE INDEX approvals_by_age ON approvals (created, id);
CREATE INDEX approvals_settled ON approvals (settles);
";

/// Each run's holder and the last renewal of its lease as columns, so a
/// write can be fenced by its holder and a lease renewed without reading the
/// record (a pid from before holders had ids becomes its text).
pub(super) const MIGRATE_TO_2: &str = "
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN heartbeat INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET owner = CAST(json_extract(data, '$.owner') AS TEXT), heartbeat = json_extract(data, '$.heartbeat_ms');
";

/// Checkpoints and journals kept in their key's order (`WITHOUT ROWID`): a
/// step's write changes one tree of each, not a table and its key's index.
pub(super) const MIGRATE_TO_3: &str = "
CREATE TABLE steps_3 (run TEXT NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run, path)) WITHOUT ROWID;
INSERT INTO steps_3 (run, path, seq, data, size) SELECT run, path, seq, data, size FROM steps;
DROP TABLE steps;
ALTER TABLE steps_3 RENAME TO steps;
CREATE TABLE journals_3 (run TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL, data TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run, path)) WITHOUT ROWID;
INSERT INTO journals_3 (run, path, attempt, data, size) SELECT run, path, attempt, data, size FROM journals;
DROP TABLE journals;
ALTER TABLE journals_3 RENAME TO journals;
";

/// A tenant's runs of one status, newest first, read from an index alone
/// (the console's overview asks for the running and the failed): without
/// it a status no run has scanned every run of the tenant, 4.5 ms at 10,000.
pub(super) const MIGRATE_TO_4: &str = "
CREATE INDEX runs_by_tenant_status ON runs (tenant, status, created DESC, id DESC);
";

/// A step's journal kept in its checkpoint's row: a step's end writes one
/// row of one tree, where it wrote a row in each of two (one statement, one
/// page of the log fewer). A row may hold a journal alone (a failed
/// attempt's, before any checkpoint of its step) or a checkpoint alone.
pub(super) const MIGRATE_TO_5: &str = "
CREATE TABLE steps_5 (run TEXT NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL DEFAULT 0, data TEXT,
    size INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0, journal TEXT,
    journal_size INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run, path)) WITHOUT ROWID;
INSERT INTO steps_5 (run, path, seq, data, size, attempt, journal, journal_size)
    SELECT s.run, s.path, s.seq, s.data, s.size, COALESCE(j.attempt, 0), j.data, COALESCE(j.size, 0)
    FROM steps s LEFT JOIN journals j ON j.run = s.run AND j.path = s.path;
INSERT INTO steps_5 (run, path, attempt, journal, journal_size)
    SELECT j.run, j.path, j.attempt, j.data, j.size FROM journals j
    WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.run = j.run AND s.path = j.path);
DROP TABLE steps;
DROP TABLE journals;
ALTER TABLE steps_5 RENAME TO steps;
";

/// A running run's bytes kept beside its tenant's (`tenant_bytes`, keyed by
/// tenant and run: `''` for the tenant's sum), so that a step's commit
/// writes the page holding both, where it rewrote the run's row (with its
/// record, 5.6 KB for a flow of 100 steps, a page to itself) and the
/// tenant's page. The run's row takes its bytes back when it ends.
pub(super) const MIGRATE_TO_6: &str = "
CREATE TABLE tenant_bytes_6 (tenant TEXT NOT NULL, run TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (tenant, run)) WITHOUT ROWID;
INSERT INTO tenant_bytes_6 (tenant, run, bytes) SELECT tenant, '', bytes FROM tenant_bytes;
INSERT INTO tenant_bytes_6 (tenant, run, bytes) SELECT tenant, id, bytes FROM runs WHERE status = 'running';
DROP TABLE tenant_bytes;
ALTER TABLE tenant_bytes_6 RENAME TO tenant_bytes;
";
