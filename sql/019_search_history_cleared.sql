-- 019_search_history_cleared.sql: when each user last cleared their
-- search history.
--
-- Under load the workers write the history in batches (fcgi/history.c). A
-- search answered before a clear but written after it must not come back,
-- so a batch skips the rows older than this.

ALTER TABLE users ADD COLUMN search_history_cleared_at timestamptz;
