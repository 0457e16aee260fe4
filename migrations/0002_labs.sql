-- Lab sessions: one student working on one lesson in a node of their own.
-- The row outlives the node: ended_at and end_reason say when and why it
-- stopped. Portable SQL, like 0001.

CREATE TABLE labs (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson     TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('starting', 'ready', 'stopped')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT,
    end_reason TEXT
);
CREATE INDEX labs_user_state ON labs (user_id, state);
CREATE INDEX labs_state ON labs (state);
