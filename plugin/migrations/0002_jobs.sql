-- The worker's queue. Workers claim due rows with FOR UPDATE SKIP LOCKED and hold a lease;
-- a worker that dies loses its lease and the job is claimed again, so nothing is lost.
CREATE TABLE jobs (
    job_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    store_id     text REFERENCES stores (store_id) ON DELETE CASCADE,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Scheduled jobs are enqueued by every worker under one key per period; the first insert wins.
    dedupe_key   text UNIQUE,
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    locked_by    text,
    locked_until timestamptz,
    last_error   text,
    finished_at  timestamptz,
    failed_at    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE finished_at IS NULL AND failed_at IS NULL;
