-- Workers you can see (issue 20): each worker process writes a heartbeat every
-- [worker] heartbeat_secs, with when its queue poller last got an answer from the backend, so
-- `dsr workers`, `dsr status` and `dsr doctor` can tell a live worker from a dead one and a
-- worker that is alive but no longer takes work. What a worker holds is read from the tasks'
-- leases (tasks.lease_owner is the worker's name). Rows dead for a day are pruned.
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_heartbeat_at TEXT NOT NULL,
    last_poll_at TEXT,
    -- the interval this worker beats at: live while its last heartbeat is within three of them
    heartbeat_secs BIGINT NOT NULL,
    -- set when the worker was told to stop (it finishes its running tasks, then exits)
    stopped_at TEXT
);
CREATE INDEX workers_heartbeat ON workers(last_heartbeat_at);

-- The deadline drives escalation: a request whose task is still failing or retrying within
-- [worker] deadline_warning_days of its deadline needs an operator. A flag, not a status, so
-- the life cycle stays as it is: set by the sweep (with a request.needs_attention event),
-- cleared by it once the request ends, its tasks recover or its deadline is extended.
ALTER TABLE requests ADD COLUMN attention_since TEXT;
