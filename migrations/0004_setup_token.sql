-- The one-time link that creates the first admin (`/setup/{token}`): only
-- its sha256 is kept. Creating the admin deletes the row in the same
-- transaction, so a link is used once however many requests race for it.
-- Portable SQL, like 0001.

CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
