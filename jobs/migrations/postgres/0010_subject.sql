-- The subject's side (issue 26).
-- How the subject's identity was checked, as the operator, the API client or the form said it;
-- the audit event `request.received` carries its SHA-256, so the text cannot change unseen.
ALTER TABLE requests ADD COLUMN verified_by TEXT;
-- When the subject proved they own the address (requests from the form).
ALTER TABLE requests ADD COLUMN verified_at TEXT;
-- The request's plans wait for an operator's approval whatever [erasure] approval says: it
-- searches for something nobody proved (a phone number typed on the form).
ALTER TABLE requests ADD COLUMN approval_required INTEGER NOT NULL DEFAULT 0;

-- Requests typed into the form, before the subject follows the link or enters the code. They
-- hold nothing but what was typed; unverified ones are deleted after a day, and a verified one
-- keeps only the id of the request it became.
CREATE TABLE subject_submissions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    -- JSON: {email, phone, changes, lang}; NULL once verified or expired
    typed TEXT,
    -- SHA-256 of the link's token, and of the code with the submission's id
    link_sha256 TEXT NOT NULL UNIQUE,
    code_sha256 TEXT NOT NULL,
    -- SHA-256 of the address with the log key: the per-address rate limit counts by it
    address_tag TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    submitted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    verified_at TEXT,
    locked_at TEXT,
    request_id TEXT
);
CREATE INDEX subject_submissions_address ON subject_submissions (address_tag, submitted_at);

-- One e-mailed link per row: only the SHA-256 of its token is kept.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    max_downloads INTEGER NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    -- a newer link was sent (`dsr resend`), or the request's export was deleted
    revoked_at TEXT,
    -- the one-time code sent when the link is opened
    code_sha256 TEXT,
    code_expires_at TEXT,
    code_tries INTEGER NOT NULL DEFAULT 0,
    -- codes sent for this link, and when the last one was (a link cannot flood the inbox)
    codes_sent INTEGER NOT NULL DEFAULT 0,
    code_sent_at TEXT,
    locked_at TEXT,
    -- a code entered right: downloads go with this grant (a cookie), until it expires
    grant_sha256 TEXT,
    grant_expires_at TEXT,
    -- the grant started its one download (later ranges may resume it; a new one needs a new code)
    grant_used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_request ON deliveries (request_id);

-- Finished requests waiting for their e-mail (an outbox: the worker sends, retrying).
CREATE TABLE delivery_outbox (
    request_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    sent_at TEXT,
    given_up_at TEXT,
    last_error TEXT
);
