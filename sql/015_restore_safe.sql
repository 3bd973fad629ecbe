-- 015_restore_safe.sql: a function that a generated column or an index
-- expression calls must name what it calls with its schema. pg_restore
-- (and pg_dump's scripts) run with an empty search_path, and tracks could
-- not be restored from a backup: search_text_of() called
-- search_normalize() unqualified. Same body, qualified; the planner still
-- inlines it.

CREATE OR REPLACE FUNCTION search_text_of(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT public.search_normalize($1) || ' ' ||
           regexp_replace(public.search_normalize($1), '[^[:alnum:][:space:]]+', '', 'g')
$$;
