-- 017_normalize_plpgsql.sql: search_normalize() as PL/pgSQL, same result.
--
-- As an SQL function it is never inlined (IMMUTABLE around the STABLE
-- unaccent(), which Postgres refuses to inline), so every statement that
-- called it parsed and planned its body again: the split of every search,
-- and the search_history index on every recorded search. PL/pgSQL keeps the
-- compiled function for the session and evaluates the expression on a
-- cached plan. The text it returns is the same for every input, so the
-- indexes built on it stay valid as they are.

CREATE OR REPLACE FUNCTION search_normalize(text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, $1));
END
$$;
