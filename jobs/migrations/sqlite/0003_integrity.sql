-- Every audit event carries the hash of the one before it (a chain `dsr audit verify`
-- walks); the head row is locked by each append so events chain in one order across
-- processes. Events written before this migration are chained when the ledger next opens.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'genesis');
-- The confirmation's hash, as the bundle's manifest hash; when a finished request's exports
-- expired and when its identities were replaced by keyed hashes.
ALTER TABLE requests ADD COLUMN confirmation_sha256 TEXT;
ALTER TABLE requests ADD COLUMN exports_expired_at TEXT;
ALTER TABLE requests ADD COLUMN pseudonymised_at TEXT;
