-- The ledger: requests, one task per (request, processor), and the append-only audit log.
-- Timestamps are RFC 3339 UTC text with fixed width, so they compare as strings.
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    identities TEXT NOT NULL,
    changes TEXT NOT NULL,
    lang TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    extended_months INTEGER NOT NULL DEFAULT 0,
    extension_reason TEXT,
    bundle TEXT,
    confirmation TEXT,
    fanned_out INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    warned_at TEXT
);
CREATE INDEX requests_status ON requests(status);

CREATE TABLE tasks (
    request_id TEXT NOT NULL REFERENCES requests(id),
    processor TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- attempts made before the last `dsr retry`: the retry budget counts from here
    attempt_base INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    found INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    error TEXT,
    evidence TEXT NOT NULL DEFAULT 'null',
    spool TEXT,
    next_retry_at TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (request_id, processor)
);
CREATE INDEX tasks_status ON tasks(status);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    request_id TEXT,
    processor TEXT,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    dedup_key TEXT UNIQUE
);
CREATE INDEX audit_request ON audit_log(request_id);

-- One row per scheduled tick that ran, so a tick fires once across every process.
CREATE TABLE ticks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    at TEXT NOT NULL
);
