-- 001_extensions.sql
-- Extensions used by the core schema. All three ship with Debian's
-- postgresql-15 package and are "trusted", so a database owner can install
-- them without superuser. gen_random_uuid() is built into PostgreSQL 13+ and
-- needs no extension.
--   pg_trgm  - trigram indexes for fuzzy / substring track search
--   unaccent - accent-insensitive search ("Beyonce" finds "Beyoncé")
--   citext   - case-insensitive usernames and e-mail addresses
--
-- Installed into schema public explicitly: 002 refers to public.unaccent.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;
