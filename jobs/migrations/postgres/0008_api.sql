-- The HTTP API (issue 24). API tokens: the ledger keeps each token's public id, its name, its
-- scopes and the SHA-256 of its secret, never the secret; a revoked token stays listed.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- space-separated: requests:read requests:write requests:approve audit:read metrics:read
    scopes TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);

-- A POST retried with the same Idempotency-Key by the same token returns the request the
-- first one made. Written in the transaction that stores the request.
CREATE TABLE api_idempotency (
    token_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    -- the SHA-256 of the first body: the same key with another body is refused
    body_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (token_id, idempotency_key)
);
