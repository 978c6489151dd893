"""agentrt's own tables in PostgreSQL, versioned. Each migration moves the schema up by one.

The list is Postgres's own (its version 1 is what SQLite reached in eight): the same
numbering idea, a version recorded in agentrt_meta, a newer schema refused.

Choices: ids sort byte-wise (COLLATE "C"), as SQLite and the in-memory store sort them, so
a queue page and its cursor agree on every backend. Documents are ``json``, not ``jsonb``:
json keeps the text as written (key order, 1e20 as a float, ``\\u0000``), which jsonb
would normalise. Times are epoch seconds (double precision), as the records hold them.
"""

from __future__ import annotations

__all__ = ["CHANNEL", "MIGRATIONS", "SCHEMA_VERSION"]

SCHEMA_VERSION = 12

CHANNEL = "agentrt_runs"
"""Where the database says a run may need a driver (LISTEN/NOTIFY); the payload is its id."""

# MIGRATIONS[i] takes a database at version i to version i + 1. Never edit a released
# entry: append a new one, so every existing database walks the same path.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        thread_id            TEXT COLLATE "C" PRIMARY KEY,
        status               TEXT NOT NULL,
        goal                 TEXT NOT NULL,
        principal            JSON NOT NULL,
        tenant               TEXT,
        budget               JSON NOT NULL,
        usage                JSON NOT NULL,
        output               TEXT,
        error                TEXT,
        trace_id             TEXT,
        trace_span_id        TEXT,
        created_at           DOUBLE PRECISION NOT NULL,
        updated_at           DOUBLE PRECISION NOT NULL,
        lease_owner          TEXT,
        lease_host           TEXT,
        lease_pid            INTEGER,
        lease_expires_at     DOUBLE PRECISION,
        budget_report        JSON,
        waited_seconds       DOUBLE PRECISION NOT NULL DEFAULT 0,
        cancel_requested     TEXT,
        retry_at             DOUBLE PRECISION,
        transient_failures   INTEGER NOT NULL DEFAULT 0,
        retry_waited_seconds DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_newest ON runs (created_at DESC, thread_id);
    CREATE INDEX runs_by_status ON runs (status, created_at DESC, thread_id);
    CREATE INDEX runs_by_tenant ON runs (tenant, status, created_at DESC, thread_id);
    CREATE INDEX runs_due_retries ON runs (status, retry_at);

    -- roles: every role an approver must hold (required_roles, else required_role), for
    -- the queue's role filter; its GIN index finds the requests that need a role.
    CREATE TABLE approvals (
        id             TEXT COLLATE "C" PRIMARY KEY,
        thread_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        step_id        TEXT NOT NULL,
        kind           TEXT NOT NULL,
        tool           TEXT NOT NULL,
        args           JSON NOT NULL,
        args_digest    TEXT NOT NULL,
        edited_args    JSON,
        result         JSON,
        rule_id        TEXT,
        reason         TEXT NOT NULL,
        required_role  TEXT,
        required_roles TEXT[] NOT NULL DEFAULT '{}',
        roles          TEXT[] GENERATED ALWAYS AS (
            CASE
                WHEN cardinality(required_roles) > 0 THEN required_roles
                WHEN required_role IS NOT NULL THEN ARRAY[required_role]
                ELSE '{}'::TEXT[]
            END
        ) STORED,
        four_eyes      BOOLEAN NOT NULL DEFAULT FALSE,
        requested_by   TEXT NOT NULL,
        edited_by      TEXT,
        edited_from    TEXT,
        tenant         TEXT,
        requested_at   DOUBLE PRECISION NOT NULL,
        expires_at     DOUBLE PRECISION,
        status         TEXT NOT NULL,
        decided_by     TEXT,
        decided_at     DOUBLE PRECISION,
        comment        TEXT,
        on_expiry      TEXT NOT NULL DEFAULT 'reject',
        escalate_to    TEXT,
        escalated_from TEXT,
        escalated_to   TEXT
    );
    CREATE INDEX approvals_queue ON approvals (status, requested_at, id);
    CREATE INDEX approvals_queue_by_tenant ON approvals (status, tenant, requested_at, id);
    CREATE INDEX approvals_by_role ON approvals USING GIN (roles);
    CREATE INDEX approvals_due ON approvals (status, expires_at, id);
    CREATE INDEX approvals_by_run ON approvals (thread_id, requested_at, id);

    -- seq: the order keys were first reserved (a re-reservation keeps its place).
    CREATE TABLE effects (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY,
        key          TEXT COLLATE "C" PRIMARY KEY,
        thread_id    TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        step_id      TEXT NOT NULL,
        tool         TEXT NOT NULL,
        args_digest  TEXT NOT NULL,
        status       TEXT NOT NULL,
        result       JSON,
        error        TEXT,
        error_kind   TEXT,
        attempts     INTEGER NOT NULL DEFAULT 1,
        retries      INTEGER NOT NULL DEFAULT 0,
        started_at   DOUBLE PRECISION NOT NULL,
        finished_at  DOUBLE PRECISION
    );
    CREATE INDEX effects_by_run ON effects (thread_id, seq);

    CREATE TABLE model_calls (
        thread_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        revision       INTEGER NOT NULL,
        model          TEXT,
        request_digest TEXT NOT NULL,
        response       JSON NOT NULL,
        prompt_tokens  BIGINT,
        cap            BIGINT,
        created_at     DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, revision)
    );

    -- Only a key's sha256 is kept; a revoked key stays, so its id is never handed out again.
    CREATE TABLE api_keys (
        key_id      TEXT COLLATE "C" PRIMARY KEY,
        key_hash    TEXT NOT NULL UNIQUE,
        principal   JSON NOT NULL,
        label       TEXT,
        created_at  DOUBLE PRECISION NOT NULL,
        revoked_at  DOUBLE PRECISION
    );
    CREATE INDEX api_keys_oldest ON api_keys (created_at, key_id);

    -- seq breaks ties of start_ns in the order spans were first written.
    CREATE TABLE spans (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY,
        span_id     TEXT COLLATE "C" PRIMARY KEY,
        trace_id    TEXT COLLATE "C" NOT NULL,
        parent_id   TEXT,
        thread_id   TEXT COLLATE "C",
        name        TEXT NOT NULL,
        start_ns    BIGINT NOT NULL,
        end_ns      BIGINT,
        status      TEXT NOT NULL,
        attributes  JSON NOT NULL,
        events      JSON NOT NULL,
        links       JSON NOT NULL
    );
    CREATE INDEX spans_by_trace ON spans (trace_id, start_ns, seq);
    CREATE INDEX spans_by_run ON spans (thread_id);
    """,
    # 2: workers. They claim the runs that need a driver, oldest first, from the live ones
    # only (runs_to_drive), and find the soonest lease to expire (runs_leased). The
    # database tells them when a run may need a driver, on the channel agentrt_runs (the
    # run's id as payload), from triggers, so every writer tells: a run created without a
    # lease, released with work left, set to wait to retry, or asked to cancel; a request
    # decided or expired. A notification is sent when its transaction commits.
    f"""
    CREATE INDEX runs_to_drive ON runs (created_at, thread_id)
        WHERE status IN ('pending', 'running', 'awaiting_approval', 'waiting_retry');
    CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL;

    CREATE FUNCTION agentrt_run_wakes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.lease_owner IS NULL THEN
                PERFORM pg_notify('{CHANNEL}', NEW.thread_id);
            END IF;
        ELSIF (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL
               AND (NEW.status IN ('pending', 'running')
                    OR (NEW.status = 'awaiting_approval' AND NOT EXISTS (
                        SELECT 1 FROM approvals a
                        WHERE a.thread_id = NEW.thread_id AND a.status = 'pending'))))
           OR (NEW.status = 'waiting_retry' AND OLD.status IS DISTINCT FROM 'waiting_retry')
           OR (NEW.cancel_requested IS NOT NULL AND OLD.cancel_requested IS NULL) THEN
            PERFORM pg_notify('{CHANNEL}', NEW.thread_id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_wake AFTER INSERT OR UPDATE ON runs
        FOR EACH ROW EXECUTE FUNCTION agentrt_run_wakes();

    CREATE FUNCTION agentrt_approval_wakes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', NEW.thread_id);
        RETURN NULL;
    END $$;
    CREATE TRIGGER approvals_wake AFTER UPDATE OF status ON approvals
        FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
        EXECUTE FUNCTION agentrt_approval_wakes();
    """,
    # 3: run analytics. denials counts the run's policy denials by rule id (JSON object;
    # "" for the policy's default); one tenant's window of runs is read by creation time
    # (every tenant's by runs_newest).
    """
    ALTER TABLE runs ADD COLUMN denials JSON;
    CREATE INDEX runs_by_tenant_time ON runs (tenant, created_at);
    """,
    # 4: the outbox (as SQLite's 11). seq is an identity: a writer takes the outbox's
    # advisory lock before it inserts, held until it commits, so seq order is commit order
    # and a cursor never passes an event that commits later.
    """
    CREATE TABLE outbox (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          TEXT COLLATE "C" NOT NULL UNIQUE,
        type        TEXT NOT NULL,
        thread_id   TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        tenant      TEXT,
        data        JSON NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX outbox_by_run ON outbox (thread_id, seq);

    CREATE TABLE webhook_cursors (
        endpoint    TEXT COLLATE "C" PRIMARY KEY,
        seq         BIGINT NOT NULL
    );

    CREATE TABLE webhook_deliveries (
        endpoint      TEXT COLLATE "C" NOT NULL,
        event_id      TEXT COLLATE "C" NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        seq           BIGINT NOT NULL,
        thread_id     TEXT COLLATE "C" NOT NULL,
        status        TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_at       DOUBLE PRECISION NOT NULL,
        claimed_by    TEXT,
        claimed_until DOUBLE PRECISION,
        last_error    TEXT,
        last_status   INTEGER,
        delivered_at  DOUBLE PRECISION,
        updated_at    DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (endpoint, event_id)
    );
    CREATE INDEX deliveries_due ON webhook_deliveries (endpoint, status, next_at, seq);
    CREATE INDEX deliveries_by_run ON webhook_deliveries (endpoint, thread_id, status, seq);
    CREATE INDEX deliveries_by_status ON webhook_deliveries (status, seq);
    """,
    # 5: artifacts (as SQLite's 12). Content once by its sha256, however many runs refer to
    # it; each run's references by name, gone with the run; content no reference names is
    # dropped by prune.
    """
    CREATE TABLE artifact_blobs (
        digest      TEXT COLLATE "C" PRIMARY KEY,
        size        BIGINT NOT NULL,
        content     BYTEA NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE artifacts (
        thread_id   TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        digest      TEXT COLLATE "C" NOT NULL REFERENCES artifact_blobs (digest),
        media_type  TEXT NOT NULL,
        size        BIGINT NOT NULL,
        preview     TEXT NOT NULL,
        tenant      TEXT,
        step_id     TEXT,
        created_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, name)
    );
    CREATE INDEX artifacts_by_digest ON artifacts (digest);
    """,
    # 6: threads that go on (as SQLite's 13).
    """
    ALTER TABLE runs ADD COLUMN message INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE messages (
        thread_id    TEXT COLLATE "C" NOT NULL REFERENCES runs (thread_id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        text         TEXT NOT NULL,
        principal    JSON NOT NULL,
        status       TEXT NOT NULL,
        budget       JSON,
        interrupt    BOOLEAN NOT NULL DEFAULT FALSE,
        usage_before JSON,
        usage        JSON,
        output       TEXT,
        error        TEXT,
        created_at   DOUBLE PRECISION NOT NULL,
        started_at   DOUBLE PRECISION,
        ended_at     DOUBLE PRECISION,
        PRIMARY KEY (thread_id, idx)
    );
    CREATE INDEX messages_queued ON messages (status, thread_id);
    """,
    # 7: nothing to change in a table; checkpoints from here on carry agentrt's short
    # channel versions (agentrt.store.versions), which an agentrt from before cannot go on
    # from (it reads a version as a number). The new version has it refuse the database
    # when it opens it, rather than fail runs part way.
    "SELECT 1",
    # 8: what a thread's messages leave behind (as SQLite's 14): a request superseded
    # after a person decided it keeps their decision, superseded says why it never ran; a
    # message a budget stopped keeps the run's budget report; spend is read by when each
    # message started.
    """
    ALTER TABLE approvals ADD COLUMN superseded TEXT;
    UPDATE approvals SET superseded = comment
        WHERE status = 'cancelled' AND comment LIKE 'superseded by message #%';
    ALTER TABLE messages ADD COLUMN budget_report JSON;
    CREATE INDEX messages_by_start ON messages (started_at);
    """,
    # 9: a message kept for a thread tells the workers too (as migration 2's triggers do
    # for runs and decisions): queued on a finished thread, or sent to interrupt a live one
    # no process drives, its thread needs a driver now, not at a worker's next own look.
    f"""
    CREATE FUNCTION agentrt_message_wakes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', NEW.thread_id);
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_wake AFTER INSERT ON messages
        FOR EACH ROW WHEN (NEW.status = 'queued')
        EXECUTE FUNCTION agentrt_message_wakes();
    """,
    # 10: the app that made each run (as SQLite's 15, agentrt.runs.apps), whose workers
    # alone claim it; NULL for the runs made before, which any worker claims. A claim
    # reads the live runs of its app, and those with none, past any other app's.
    """
    ALTER TABLE runs ADD COLUMN app TEXT;
    CREATE INDEX runs_to_drive_by_app ON runs (app, created_at, thread_id)
        WHERE status IN ('pending', 'running', 'awaiting_approval', 'waiting_retry');
    """,
    # 11: what an unnamed app's run records is its tools (as SQLite's 16), not a digest of
    # them: a worker whose app has them all (tools <@ its own) claims it. An array, kept
    # out of every index (a long list would pass the size a B-tree entry may have); such
    # runs have app NULL, so a claim still reads runs_to_drive_by_app, and sifts the
    # unnamed ones by their tools. The identities 10 derived ('tools:' and 16 hex digits)
    # cannot be read back into names: their runs record nothing now, any worker's.
    """
    ALTER TABLE runs ADD COLUMN tools TEXT[];
    UPDATE runs SET app = NULL WHERE app ~ '^tools:[0-9a-f]{16}$';
    """,
    # 12: the run's active time as its driver counts it, a node in flight included (as
    # SQLite's 17), written with each renewal of its lease: a segment killed inside a node
    # leaves what it spent there, which the next segment counts from. NULL until a renewal
    # wrote one; a column of its own, so a renewal never rewrites the usage document.
    """
    ALTER TABLE runs ADD COLUMN live_active_seconds DOUBLE PRECISION;
    """,
)

assert len(MIGRATIONS) == SCHEMA_VERSION
