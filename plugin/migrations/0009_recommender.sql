-- Trained recommender models, per store. `arrays` is an .npz of plain numpy arrays (embeddings,
-- vocabularies, ranker weights; no pickled objects), so any replica or worker can load it.
CREATE TABLE recommender_models (
    store_id      text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version > 0),
    trained_at    timestamptz NOT NULL DEFAULT now(),
    -- The purchases it learned from: placed_at in [window_start, window_end).
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    hyper         jsonb NOT NULL,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    members       integer NOT NULL,
    products      integer NOT NULL,
    interactions  bigint NOT NULL,
    arrays        bytea NOT NULL,
    PRIMARY KEY (store_id, version)
);

-- The version each store serves. Switching is this one row's update, so a reader sees the old
-- version or the new one, never a mixture; the new version's top-K is in Redis before the switch.
CREATE TABLE recommender_live (
    store_id     text PRIMARY KEY REFERENCES stores (store_id) ON DELETE CASCADE,
    version      integer NOT NULL,
    switched_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, version) REFERENCES recommender_models (store_id, version)
);
