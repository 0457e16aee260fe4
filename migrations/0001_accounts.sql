-- Accounts, browser sessions and API tokens.
-- Portable SQL: runs on SQLite and PostgreSQL alike (text keys, BIGINT
-- unix-second timestamps, no engine-specific types).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('student', 'instructor', 'admin')),
    created_at    BIGINT NOT NULL
);

-- A browser session. The cookie carries a random secret; only its sha256
-- is stored, so a leaked database does not hand out live sessions.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- First time a user opened a lesson: the course page shows it as started.
CREATE TABLE lesson_visits (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson     TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    PRIMARY KEY (user_id, lesson)
);
