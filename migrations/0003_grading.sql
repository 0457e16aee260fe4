-- Grading: every recorded check run of a task (attempts), the tasks a
-- student has passed (once passed, always passed), and the hints they
-- revealed with what each cost. Portable SQL, like 0001.

CREATE TABLE attempts (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson     TEXT NOT NULL,
    task       TEXT NOT NULL,
    lab_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 'manual' (the Check button or the API) or 'auto' (continuous mode,
    -- recorded only when it passes).
    mode       TEXT NOT NULL CHECK (mode IN ('manual', 'auto')),
    passed     INTEGER NOT NULL CHECK (passed IN (0, 1)),
    -- JSON list of {name, passed, message}, one per check.
    checks     TEXT NOT NULL
);
CREATE INDEX attempts_lesson_user ON attempts (lesson, user_id, created_at);

CREATE TABLE task_passes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson    TEXT NOT NULL,
    task      TEXT NOT NULL,
    passed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, lesson, task)
);

CREATE TABLE hint_reveals (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson      TEXT NOT NULL,
    task        TEXT NOT NULL,
    -- Position of the hint in the task's list, from 0.
    hint        INTEGER NOT NULL,
    cost        INTEGER NOT NULL,
    revealed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, lesson, task, hint)
);
