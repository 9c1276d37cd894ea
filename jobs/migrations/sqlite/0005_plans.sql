-- Change plans (issue 17): what an erasure, rectification or objection will do at one
-- processor, item by item, checked by the matching rule before anything is executed. A task
-- has at most one current plan; a plan made again (after `dsr retry`) supersedes the last one,
-- which stays as evidence of what it did. The audit chain holds each plan's hash only.
CREATE TABLE plans (
    hash TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(id),
    processor TEXT NOT NULL,
    made_at TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    is_current INTEGER NOT NULL DEFAULT 1,
    -- the plan without its items: retained categories, notes, operator notes
    body TEXT NOT NULL,
    -- what planning again after execution found
    verification TEXT,
    approved_at TEXT,
    approved_by TEXT
);
CREATE INDEX plans_task ON plans(request_id, processor, is_current);

CREATE TABLE plan_items (
    plan_hash TEXT NOT NULL REFERENCES plans(hash),
    seq INTEGER NOT NULL,
    item TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plan_hash, seq)
);
