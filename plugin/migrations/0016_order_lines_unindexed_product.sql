-- order_lines is the largest table and every order writes ~20 of its rows: each index costs about as
-- much to maintain per row as the table itself (a COPY of 1,000,000 lines: 0.9 s for the table,
-- +1.6 s for the primary key, +1.9 s for this index). No query looks lines up by product without
-- their order: every reader reaches them through the primary key (store_id, order_id, line_id) from
-- orders (recommender/repository.py, the privacy export, refunds, the backfill). A query that needs
-- lines by product should come with its own index and the measurement that justifies it.
DROP INDEX IF EXISTS order_lines_product;
