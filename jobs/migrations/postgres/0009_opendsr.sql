-- OpenDSR (issue 25). Requests that arrived in OpenDSR's format: the controller's own id for
-- each (subject_request_id, a UUID v4 it made), which API token sent it, and the OpenDSR status
-- its callback URLs were last told of. Written in the transaction that stores the request.
CREATE TABLE opendsr_requests (
    subject_request_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    token_id TEXT NOT NULL,
    -- the token's name: the controller_id OpenDSR documents carry
    controller_id TEXT NOT NULL,
    request_type TEXT NOT NULL,
    regulation TEXT NOT NULL,
    -- JSON array of https URLs, each on [opendsr] callback_allow when the request came
    callback_urls TEXT NOT NULL,
    -- the SHA-256 of the body: the same id sent again with another body is refused
    body_sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- pending | in_progress | completed | cancelled
    status_notified TEXT NOT NULL
);

-- One callback per status change per URL, sent until the URL answers 2xx or dsr gives up.
CREATE TABLE opendsr_callbacks (
    subject_request_id TEXT NOT NULL,
    url TEXT NOT NULL,
    request_status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at TEXT,
    -- given up: too many failures, or the URL's host is no longer on callback_allow
    given_up_at TEXT,
    last_error TEXT,
    PRIMARY KEY (subject_request_id, url, request_status)
);
CREATE INDEX opendsr_callbacks_due ON opendsr_callbacks (next_attempt_at) WHERE sent_at IS NULL AND given_up_at IS NULL;

-- How many times an operator sent a task back (`dsr retry`): an OpenDSR processor gets a new
-- request (a new subject_request_id) for each, since the earlier one ended there.
ALTER TABLE tasks ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
