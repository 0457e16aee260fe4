-- Accounts an admin disabled: set, nobody logs in and no session or API
-- token of the account is accepted; cleared, the account works again.
-- Portable SQL, like 0001.

ALTER TABLE users ADD COLUMN disabled_at BIGINT;
