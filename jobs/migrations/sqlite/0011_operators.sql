-- The dashboard's operator accounts (issue 27): a name, a role, an Argon2id password hash.
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    -- viewer | operator | approver
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    -- wrong passwords in a row; at five the account waits until locked_until
    failed_signins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);

-- Signed-in browsers: the SHA-256 of the cookie's random token, and the CSRF token every
-- form of the session carries. Idle and absolute expiry are checked on every request.
CREATE TABLE operator_sessions (
    token_sha256 TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);
