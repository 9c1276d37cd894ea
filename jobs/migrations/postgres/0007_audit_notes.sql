-- Free text beside the audit chain (issue 21). An audit event holds codes, actors and hashes;
-- its free text (an error's words, a vendor's message, an operator's reason) is kept here and
-- only the note's hash is chained. The hash covers a random salt and the text, so a scrubbed
-- note cannot be guessed back from its hash, and scrubbing (pseudonymisation) removes the
-- salt and the text without breaking the chain.
CREATE TABLE audit_notes (
    hash TEXT PRIMARY KEY,
    request_id TEXT,
    salt TEXT,
    text TEXT,
    created_at TEXT NOT NULL,
    -- set when the text was removed; the hash stays, so the chain still verifies
    scrubbed_at TEXT
);
CREATE INDEX audit_notes_request ON audit_notes(request_id);
