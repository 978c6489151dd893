"""agentrt's own tables, versioned. Each migration moves the schema up by one version."""

from __future__ import annotations

SCHEMA_VERSION = 17

# MIGRATIONS[i] takes a database at version i to version i + 1. Never edit a released
# entry: append a new one, so every existing file walks the same path.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        thread_id        TEXT PRIMARY KEY,
        status           TEXT NOT NULL,
        goal             TEXT NOT NULL,
        principal        TEXT NOT NULL,
        tenant           TEXT,
        budget           TEXT NOT NULL,
        usage            TEXT NOT NULL,
        output           TEXT,
        error            TEXT,
        trace_id         TEXT,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        lease_owner      TEXT,
        lease_host       TEXT,
        lease_pid        INTEGER,
        lease_expires_at REAL
    );
    CREATE INDEX runs_by_status ON runs (status, tenant, created_at);

    CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        thread_id     TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        step_id       TEXT NOT NULL,
        kind          TEXT NOT NULL,
        tool          TEXT NOT NULL,
        args          TEXT NOT NULL,
        args_digest   TEXT NOT NULL,
        edited_args   TEXT,
        rule_id       TEXT,
        reason        TEXT NOT NULL,
        required_role TEXT,
        four_eyes     INTEGER NOT NULL DEFAULT 0,
        requested_by  TEXT NOT NULL,
        tenant        TEXT,
        requested_at  REAL NOT NULL,
        expires_at    REAL,
        status        TEXT NOT NULL,
        decided_by    TEXT,
        decided_at    REAL,
        comment       TEXT
    );
    CREATE INDEX approvals_queue ON approvals (status, tenant, requested_at);
    CREATE INDEX approvals_by_run ON approvals (thread_id);

    CREATE TABLE effects (
        key          TEXT PRIMARY KEY,
        thread_id    TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        step_id      TEXT NOT NULL,
        tool         TEXT NOT NULL,
        args_digest  TEXT NOT NULL,
        status       TEXT NOT NULL,
        result       TEXT,
        error        TEXT,
        started_at   REAL NOT NULL,
        finished_at  REAL
    );
    CREATE INDEX effects_by_run ON effects (thread_id);
    """,
    # 2: why a budget stopped the run (limit, usage, the action it stopped before), as JSON.
    """
    ALTER TABLE runs ADD COLUMN budget_report TEXT;
    """,
    # 3: human gates as whole records: what expiry does, escalation links, and one index
    # per way the review queue is read (keyset order requested_at, id), plus the sweep's;
    # and the time each run has spent waiting for a person.
    """
    ALTER TABLE runs ADD COLUMN waited_seconds REAL NOT NULL DEFAULT 0;
    ALTER TABLE approvals ADD COLUMN on_expiry TEXT NOT NULL DEFAULT 'reject';
    ALTER TABLE approvals ADD COLUMN escalate_to TEXT;
    ALTER TABLE approvals ADD COLUMN escalated_from TEXT;
    ALTER TABLE approvals ADD COLUMN escalated_to TEXT;
    DROP INDEX approvals_queue;
    CREATE INDEX approvals_queue ON approvals (status, requested_at, id);
    CREATE INDEX approvals_queue_by_tenant ON approvals (status, tenant, requested_at, id);
    CREATE INDEX approvals_queue_by_role ON approvals (status, required_role, requested_at, id);
    CREATE INDEX approvals_due ON approvals (status, expires_at);
    """,
    # 4: the ledger counts attempts (each one a reservation) and transient retries, keeps
    # the error's contract kind, and a reconcile decision carries the result a person saw.
    """
    ALTER TABLE effects ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE effects ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE effects ADD COLUMN error_kind TEXT;
    ALTER TABLE approvals ADD COLUMN result TEXT;
    """,
    # 5: traces and recordings. runs.trace_span_id is the last segment's agent.run span,
    # which the next segment links to; spans is the SQLite span store; model_calls keeps
    # every model response, for replay.
    """
    ALTER TABLE runs ADD COLUMN trace_span_id TEXT;

    CREATE TABLE spans (
        span_id     TEXT PRIMARY KEY,
        trace_id    TEXT NOT NULL,
        parent_id   TEXT,
        thread_id   TEXT,
        name        TEXT NOT NULL,
        start_ns    INTEGER NOT NULL,
        end_ns      INTEGER,
        status      TEXT NOT NULL,
        attributes  TEXT NOT NULL,
        events      TEXT NOT NULL,
        links       TEXT NOT NULL
    );
    CREATE INDEX spans_by_trace ON spans (trace_id, start_ns);
    CREATE INDEX spans_by_run ON spans (thread_id);

    CREATE TABLE model_calls (
        thread_id      TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        revision       INTEGER NOT NULL,
        model          TEXT,
        request_digest TEXT NOT NULL,
        response       TEXT NOT NULL,
        created_at     REAL NOT NULL,
        PRIMARY KEY (thread_id, revision)
    );
    """,
    # 6: the service's API keys. Only a key's sha256 is kept: the key itself is shown once,
    # when it is made. A revoked key stays, so its id is never handed out again.
    """
    CREATE TABLE api_keys (
        key_id      TEXT PRIMARY KEY,
        key_hash    TEXT NOT NULL UNIQUE,
        principal   TEXT NOT NULL,
        label       TEXT,
        created_at  REAL NOT NULL,
        revoked_at  REAL
    );
    """,
    # 7: human gates under attack. required_roles holds every role a combined requirement
    # names (JSON list; required_role stays the first, for the queue's role index);
    # edited_by and edited_from say who edited an action into this request and which
    # request it came from (four-eyes binds the editor too). cancel_requested is a cancel
    # asked of a run that another process drives, honoured at its next step. A run
    # stopped by a failure that may pass waits in status waiting_retry until retry_at;
    # transient_failures counts them in a row (the backoff grows with it) and
    # retry_waited_seconds sums the time spent waiting so.
    """
    ALTER TABLE approvals ADD COLUMN required_roles TEXT;
    ALTER TABLE approvals ADD COLUMN edited_by TEXT;
    ALTER TABLE approvals ADD COLUMN edited_from TEXT;
    ALTER TABLE runs ADD COLUMN cancel_requested TEXT;
    ALTER TABLE runs ADD COLUMN retry_at REAL;
    ALTER TABLE runs ADD COLUMN transient_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN retry_waited_seconds REAL NOT NULL DEFAULT 0;
    """,
    # 8: a recorded model call keeps what the pre-flight counted and the cap it set, so a
    # replay checks the budget against the same numbers the run did.
    """
    ALTER TABLE model_calls ADD COLUMN prompt_tokens INTEGER;
    ALTER TABLE model_calls ADD COLUMN cap INTEGER;
    """,
    # 9: workers claiming runs find the soonest lease to expire among those held.
    """
    CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL;
    """,
    # 10: run analytics. denials counts the run's policy denials by rule id (JSON object;
    # "" for the policy's default); the window of runs a figure covers is read by creation
    # time, of every tenant or of one.
    """
    ALTER TABLE runs ADD COLUMN denials TEXT;
    CREATE INDEX runs_by_time ON runs (created_at);
    CREATE INDEX runs_by_tenant_time ON runs (tenant, created_at);
    """,
    # 11: the outbox. Events are written in the transaction of the change they describe;
    # seq is the order they were written in (AUTOINCREMENT: never reused, so a cursor past
    # a deleted run's events stays right). webhook_cursors says how far each endpoint's
    # deliveries were made from it; webhook_deliveries is one event for one endpoint, with
    # its tries, its claim and the dead letter.
    """
    CREATE TABLE outbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL UNIQUE,
        type        TEXT NOT NULL,
        thread_id   TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        tenant      TEXT,
        data        TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX outbox_by_run ON outbox (thread_id, seq);

    CREATE TABLE webhook_cursors (
        endpoint    TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL
    );

    CREATE TABLE webhook_deliveries (
        endpoint      TEXT NOT NULL,
        event_id      TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        seq           INTEGER NOT NULL,
        thread_id     TEXT NOT NULL,
        status        TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_at       REAL NOT NULL,
        claimed_by    TEXT,
        claimed_until REAL,
        last_error    TEXT,
        last_status   INTEGER,
        delivered_at  REAL,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (endpoint, event_id)
    );
    CREATE INDEX deliveries_due ON webhook_deliveries (endpoint, status, next_at, seq);
    CREATE INDEX deliveries_by_run ON webhook_deliveries (endpoint, thread_id, status, seq);
    CREATE INDEX deliveries_by_status ON webhook_deliveries (status, seq);
    """,
    # 12: artifacts. Content is kept once, by its sha256 (artifact_blobs), however many
    # runs refer to it; artifacts is each run's references by name, gone with the run.
    # Content no reference names is dropped by prune (drop_unreferenced_artifacts).
    """
    CREATE TABLE artifact_blobs (
        digest      TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        content     BLOB NOT NULL,
        created_at  REAL NOT NULL
    );

    CREATE TABLE artifacts (
        thread_id   TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        digest      TEXT NOT NULL REFERENCES artifact_blobs (digest),
        media_type  TEXT NOT NULL,
        size        INTEGER NOT NULL,
        preview     TEXT NOT NULL,
        tenant      TEXT,
        step_id     TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (thread_id, name)
    );
    CREATE INDEX artifacts_by_digest ON artifacts (digest);
    """,
    # 13: threads that go on. messages keeps a thread's follow-ups (and its goal as
    # message 0, from the first time it goes on), queued or taken, each with its own
    # limits and what it spent; runs.message is the thread's current one.
    """
    ALTER TABLE runs ADD COLUMN message INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE messages (
        thread_id    TEXT NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        text         TEXT NOT NULL,
        principal    TEXT NOT NULL,
        status       TEXT NOT NULL,
        budget       TEXT,
        interrupt    INTEGER NOT NULL DEFAULT 0,
        usage_before TEXT,
        usage        TEXT,
        output       TEXT,
        error        TEXT,
        created_at   REAL NOT NULL,
        started_at   REAL,
        ended_at     REAL,
        PRIMARY KEY (thread_id, idx)
    );
    CREATE INDEX messages_queued ON messages (status, thread_id);
    """,
    # 14: what a thread's messages leave behind. A request a later message supersedes
    # after a person decided it keeps their decision's time and comment: superseded says
    # why it was never carried out (a pending one's comment says so too, as before; the
    # requests superseded before this version are found by that comment). A message a
    # budget stopped keeps the run's budget report, which the run's row gives up when the
    # thread goes on. Run analytics read spend by when each message started.
    """
    ALTER TABLE approvals ADD COLUMN superseded TEXT;
    UPDATE approvals SET superseded = comment
        WHERE status = 'cancelled' AND comment LIKE 'superseded by message #%';
    ALTER TABLE messages ADD COLUMN budget_report TEXT;
    CREATE INDEX messages_by_start ON messages (started_at);
    """,
    # 15: the app that made each run (agentrt.runs.apps), whose workers alone claim it;
    # NULL for the runs made before, which any worker claims. (No index: SQLite's claim
    # reads the runs in creation order, and tells the apps' runs apart as it goes.)
    """
    ALTER TABLE runs ADD COLUMN app TEXT;
    """,
    # 16: what an unnamed app's run records is its tools (a JSON array of their names,
    # sorted), not a digest of them: a worker whose app has them all claims it, so a
    # version that adds a tool goes on with the runs of the one before. The identities 15
    # derived from the tools ('tools:' and 16 hex digits) cannot be read back into names:
    # their runs record nothing now, as those made before 15, and any worker claims them.
    """
    ALTER TABLE runs ADD COLUMN tools TEXT;
    UPDATE runs SET app = NULL
        WHERE length(app) = 22 AND app GLOB 'tools:*' AND substr(app, 7) NOT GLOB '*[^0-9a-f]*';
    """,
    # 17: the run's active time as its driver counts it, a node in flight included, written
    # with each renewal of its lease: a segment killed inside a node leaves what it spent
    # there, which the next segment counts from. NULL until a renewal wrote one.
    """
    ALTER TABLE runs ADD COLUMN live_active_seconds REAL;
    """,
)

assert len(MIGRATIONS) == SCHEMA_VERSION
