-- One writer at a time for a request's bundle or confirmation: `finalize` holds a lease
-- (renewed while it writes), so two workers never store different bundles under one name.
-- And why the last attempt to write it failed (a full disk, a store refusing writes), so
-- `dsr status` says why a request with every task done has not ended; cleared when it ends.
ALTER TABLE requests ADD COLUMN finalize_owner TEXT;
ALTER TABLE requests ADD COLUMN finalize_until TEXT;
ALTER TABLE requests ADD COLUMN finalize_error TEXT;
