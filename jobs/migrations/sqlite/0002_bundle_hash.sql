-- The hash of each bundle's manifest, so `dsr verify` can tell a bundle from a forgery.
ALTER TABLE requests ADD COLUMN bundle_sha256 TEXT;
