/*
 * handlers/m3u.c: playlists as Extended M3U files, out and in.
 * GET /api/playlists/:id/export.m3u8 writes one for a playlist the
 * caller can see; POST /api/playlists/import reads one, matches its
 * entries to the library and creates a playlist of what matched, in one
 * transaction. The parser is pure (m3u_parse), tested in tests/unit.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define DEFAULT_NAME		"Imported playlist"
#define UNMATCHED_LIST_MAX	1000

/* ---- the text --------------------------------------------------------- */

/* A growing buffer on the request pool; outgrown copies stay in the pool. */
struct m3u_buf {
	struct mpool	*pool;
	char		*data;
	size_t		 len, cap;
};

static void
buf_put(struct m3u_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t	 cap = b->cap ? b->cap : 4096;
		char	*d;

		while (b->len + n + 1 > cap)
			cap *= 2;
		d = pool_alloc(b->pool, cap);
		if (b->len > 0)
			memcpy(d, b->data, b->len);
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_str(struct m3u_buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* s on one line: a CR or LF in a name would start a line of its own. */
static void
buf_line_text(struct m3u_buf *b, const char *s)
{
	size_t	 n;

	while (*s != '\0') {
		n = strcspn(s, "\r\n");
		buf_put(b, s, n);
		s += n;
		if (*s != '\0') {
			buf_put(b, " ", 1);
			s++;
		}
	}
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* [s, s+n) without the blanks around it, copied into the pool. */
static char *
trimmed(struct mpool *pool, const char *s, size_t n)
{
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	return pool_strndup(pool, s, n);
}

/*
 * A #PLAYLIST: name as a playlist name: control characters become
 * spaces, blanks around go, cut to 255 bytes between characters. NULL if
 * nothing is left.
 */
static const char *
clean_name(struct mpool *pool, const char *s)
{
	char	*n = trimmed(pool, s, strlen(s)), *p;
	size_t	 len;

	for (p = n; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	len = strlen(n);
	if (len > 255) {
		len = 255;
		while (len > 0 && ((unsigned char)n[len] & 0xc0) == 0x80)
			len--;		/* n[len] would continue a character */
	}
	n = trimmed(pool, n, len);
	return *n != '\0' ? n : NULL;
}

/* The #EXTINF text after the first comma outside double quotes. */
static void
parse_extinf(struct mpool *pool, const char *s, struct m3u_entry *e)
{
	const char	*p, *sep;
	int		 quoted = 0;

	for (p = s; *p != '\0' && (quoted || *p != ','); p++)
		if (*p == '"')
			quoted = !quoted;
	e->extinf = *p == ',' ? trimmed(pool, p + 1, strlen(p + 1)) : NULL;
	e->artist = e->title = NULL;
	if (e->extinf == NULL || (sep = strstr(e->extinf, " - ")) == NULL)
		return;
	e->artist = trimmed(pool, e->extinf, (size_t)(sep - e->extinf));
	e->title = trimmed(pool, sep + 3, strlen(sep + 3));
	if (*e->artist == '\0' || *e->title == '\0')
		e->artist = e->title = NULL;
}

/*
 * What a location can be matched by: a file:// or http(s):// URL's path
 * (percent-decoded), else the location with '\' read as '/'; the last
 * two components of that path; the track id of an API stream path.
 */
static void
location_keys(struct mpool *pool, struct m3u_entry *e)
{
	static const char	 api[] = "/api/music/tracks/";
	const char		*s = e->location, *end;
	char			*path, *p, *last, *prev;
	size_t			 n;
	int			 url = 0;

	if (strncasecmp(s, "file://", 7) == 0) {
		s += 7;
		url = 1;
	} else if (strncasecmp(s, "http://", 7) == 0 ||
	    strncasecmp(s, "https://", 8) == 0) {
		s = strstr(s, "://") + 3;
		url = 2;
	}
	if (url) {
		if ((s = strchr(s, '/')) == NULL)	/* after the host */
			s = "/";
		end = url == 2 ? s + strcspn(s, "?#") : s + strlen(s);
		path = url_decode(pool, s, (size_t)(end - s), 0);
		if (path == NULL || !utf8_text_valid(path, strlen(path)))
			path = pool_strndup(pool, s, (size_t)(end - s));
	} else {
		path = pool_strdup(pool, s);
		for (p = path; *p != '\0'; p++)
			if (*p == '\\')
				*p = '/';
	}
	e->path = path;

	e->stream_id[0] = '\0';
	n = strlen(path);
	if (n == sizeof(api) - 1 + 36 + 7 && strncmp(path, api, sizeof(api) - 1) == 0 &&
	    strcmp(path + n - 7, "/stream") == 0) {
		memcpy(e->stream_id, path + sizeof(api) - 1, 36);
		e->stream_id[36] = '\0';
		if (!uuid_valid(e->stream_id))
			e->stream_id[0] = '\0';
	}

	/* "a/b/Artist/Song.mp3" -> "Artist/Song.mp3"; "." and ".." are no names. */
	e->tail = NULL;
	if ((last = strrchr(path, '/')) == NULL || last == path)
		return;
	for (prev = last - 1; prev > path && *prev != '/'; prev--)
		;
	if (*prev == '/')
		prev++;
	if (last - prev == 0 || last[1] == '\0' ||
	    (last - prev == 1 && prev[0] == '.') ||
	    (last - prev == 2 && prev[0] == '.' && prev[1] == '.') ||
	    strcmp(last + 1, ".") == 0 || strcmp(last + 1, "..") == 0)
		return;
	e->tail = prev;
}

void
m3u_parse(struct mpool *pool, const char *buf, size_t len, struct m3u_file *out)
{
	const char		*p = buf, *end = buf + len, *eol;
	struct m3u_entry	 pending;
	size_t			 lines = 1, i;
	int			 line = 0, have_extinf = 0;

	memset(out, 0, sizeof(*out));
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	for (i = 0; i < len; i++)
		if (buf[i] == '\n')
			lines++;
	out->entries = pool_calloc(pool, lines, sizeof(struct m3u_entry));
	memset(&pending, 0, sizeof(pending));
	for (; p < end; p = eol + 1) {
		char	*l;
		size_t	 n;

		line++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		n = (size_t)(eol - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		l = trimmed(pool, p, n);
		if (*l == '\0')
			continue;
		if (*l == '#') {
			if (strncasecmp(l, "#EXTINF:", 8) == 0) {
				parse_extinf(pool, l + 8, &pending);
				have_extinf = 1;
			} else if (strncasecmp(l, "#PLAYLIST:", 10) == 0 &&
			    out->name == NULL)
				out->name = clean_name(pool, l + 10);
			continue;	/* #EXTM3U, comments, other directives */
		}
		{
			struct m3u_entry	*e = &out->entries[out->n++];

			if (have_extinf)
				*e = pending;
			else
				memset(e, 0, sizeof(*e));
			e->line = line;
			e->location = l;
			location_keys(pool, e);
			have_extinf = 0;
		}
	}
}

/* ---- GET /api/playlists/:id/export.m3u8 ---------------------------------- */

/* The playlist's name and the caller's role, then one row per entry. */
static const struct db_stmt st_export = {
	"m3u_export",
	"WITH p AS (SELECT p.id, p.name, playlist_role(p, $2) AS role"
	"  FROM playlists p WHERE p.id = $1)"
	" SELECT p.name, p.role, t.id, t.title, t.artist, t.duration,"
	"  t.source_path, t.file_path"
	" FROM p LEFT JOIN (playlist_tracks pt JOIN tracks t"
	"   ON t.id = pt.track_id AND t.is_active)"
	"  ON pt.playlist_id = p.id AND p.role IS NOT NULL"
	" ORDER BY pt.position",
	2
};
enum { X_NAME, X_ROLE, X_ID, X_TITLE, X_ARTIST, X_DURATION, X_SOURCE_PATH,
    X_FILE_PATH };

/*
 * Each track is located the way this server can find it again: the
 * operator's own file for imported tracks, the path in storage for
 * uploads, the API's stream path for catalogue tracks without audio.
 * A playlist the caller cannot see is 404, as if it did not exist.
 */
static enum app_err
m3u_export(struct req *r)
{
	const char	*id = req_param(r, "id");
	struct m3u_buf	 b = { r->pool, NULL, 0, 0 };
	PGresult	*res;
	enum app_err	 err;
	const char	*name, *artist;
	int		 i;

	if ((err = query_only(r, (const char *const[]){ NULL })) != E_OK)
		return err;
	if (!uuid_valid(id))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = db_exec(r, &res, &st_export,
	    (const char *const[]){ id, r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, X_ROLE))
		return req_fail(r, E_NOT_FOUND, "no such playlist", NULL);
	name = PQgetvalue(res, 0, X_NAME);
	buf_str(&b, "#EXTM3U\n#PLAYLIST:");
	buf_line_text(&b, name);
	buf_str(&b, "\n");
	for (i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, X_ID))
			continue;	/* an empty playlist's one row */
		buf_str(&b, "#EXTINF:");
		buf_str(&b, PQgetvalue(res, i, X_DURATION));
		buf_str(&b, ",");
		artist = PQgetvalue(res, i, X_ARTIST);
		if (*artist != '\0') {
			buf_line_text(&b, artist);
			buf_str(&b, " - ");
		}
		buf_line_text(&b, PQgetvalue(res, i, X_TITLE));
		buf_str(&b, "\n");
		if (!PQgetisnull(res, i, X_SOURCE_PATH))
			buf_line_text(&b, PQgetvalue(res, i, X_SOURCE_PATH));
		else if (!PQgetisnull(res, i, X_FILE_PATH))
			buf_line_text(&b, PQgetvalue(res, i, X_FILE_PATH));
		else {
			buf_str(&b, "/api/music/tracks/");
			buf_str(&b, PQgetvalue(res, i, X_ID));
			buf_str(&b, "/stream");
		}
		buf_str(&b, "\n");
	}
	{
		struct m3u_buf	 fname = { r->pool, NULL, 0, 0 };

		buf_line_text(&fname, name);
		resp_attachment(r, fname.data, ".m3u8");
	}
	r->status = 200;
	r->content_type = "audio/x-mpegurl; charset=utf-8";
	r->body = b.data;
	r->body_len = b.len;
	return E_OK;
}

/* ---- POST /api/playlists/import ------------------------------------------ */

/* A setting that is not a plain number counts as unset. */
#define SETTING_INT(key, def)						\
	"coalesce((SELECT (value #>> '{}')::int FROM system_settings"	\
	" WHERE key = '" key "' AND value #>> '{}' ~ '^[0-9]{1,9}$'), " def ")"

static const struct db_stmt st_import_limits = {
	"m3u_import_limits",
	"SELECT " SETTING_INT("max_playlist_entries", "10000") ","
	" " SETTING_INT("max_playlists_per_user", "500") ","
	" (SELECT count(*) FROM playlists WHERE owner_id = $1 AND is_active)",
	1
};

/*
 * Every entry against the active library in one round trip. $1 is a JSON
 * array of {n, loc, tail, sid, artist, title}. First what names one
 * track (the id of a stream path, a stored path equal to the location),
 * then, for the entries left, the same last two path components, then
 * artist and title; the most popular track wins a tie. Joined by hash on
 * the entries, so each step reads the tracks once, not once per entry,
 * and not at all when no entry is left for it (an empty hash side).
 * split_part() rather than a regular expression: 8 times cheaper a row.
 */
static const struct db_stmt st_import_match = {
	"m3u_import_match",
	"WITH e AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json)"
	"  AS x(n int, loc text, tail text, sid uuid, artist text, title text)),"
	" exact AS MATERIALIZED (SELECT DISTINCT ON (n) n, id FROM ("
	"  SELECT e.n, 1 AS how, t.id, t.popularity, t.play_count"
	"   FROM e JOIN tracks t ON t.id = e.sid WHERE t.is_active"
	"  UNION ALL SELECT e.n, 2, t.id, t.popularity, t.play_count"
	"   FROM e JOIN tracks t ON t.source_path = e.loc WHERE t.is_active"
	"  UNION ALL SELECT e.n, 2, t.id, t.popularity, t.play_count"
	"   FROM e JOIN tracks t ON t.file_path = e.loc WHERE t.is_active"
	"  ) c ORDER BY n, how, popularity DESC, play_count DESC, id),"
	" rest AS MATERIALIZED (SELECT * FROM e"
	"  WHERE NOT EXISTS (SELECT 1 FROM exact x WHERE x.n = e.n)),"
	" near AS (SELECT DISTINCT ON (n) n, id FROM ("
	"  SELECT r.n, 1 AS how, t.id, t.popularity, t.play_count FROM rest r"
	"   JOIN tracks t ON split_part(t.source_path, '/', -2) || '/' ||"
	"    split_part(t.source_path, '/', -1) = r.tail"
	"   WHERE t.is_active AND r.tail IS NOT NULL"
	"  UNION ALL SELECT r.n, 1, t.id, t.popularity, t.play_count FROM rest r"
	"   JOIN tracks t ON split_part(t.file_path, '/', -2) || '/' ||"
	"    split_part(t.file_path, '/', -1) = r.tail"
	"   WHERE t.is_active AND r.tail IS NOT NULL"
	"  UNION ALL SELECT r.n, 2, t.id, t.popularity, t.play_count FROM rest r"
	"   JOIN tracks t ON lower(t.artist) = lower(r.artist)"
	"    AND lower(t.title) = lower(r.title)"
	"   WHERE t.is_active AND r.artist IS NOT NULL AND r.title IS NOT NULL"
	"  ) c ORDER BY n, how, popularity DESC, play_count DESC, id)"
	" SELECT n, id FROM exact UNION ALL SELECT n, id FROM near",
	1
};

/*
 * Importers of one owner take turns on the owner's row, so the count
 * they check cannot go stale before their playlist is in.
 */
static const struct db_stmt st_import_lock = {
	"m3u_import_lock",
	"SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
	1
};

static const struct db_stmt st_import_playlist = {
	"m3u_import_playlist",
	"INSERT INTO playlists (name, owner_id, is_public, source)"
	" SELECT $2, $1, $3::bool, 'import'"
	" WHERE (SELECT count(*) FROM playlists WHERE owner_id = $1 AND is_active)"
	"  < $4::int"
	" RETURNING id",
	4
};

/* A track deactivated since it matched is left out, positions kept dense. */
static const struct db_stmt st_import_entries = {
	"m3u_import_entries",
	"INSERT INTO playlist_tracks (playlist_id, track_id, position, added_by)"
	" SELECT $1, t.id, row_number() OVER (ORDER BY u.n) - 1, $2"
	" FROM unnest($3::uuid[]) WITH ORDINALITY AS u(id, n)"
	" JOIN tracks t ON t.id = u.id AND t.is_active",
	3
};

static const struct db_stmt st_import_doc = {
	"m3u_import_doc",
	"SELECT playlist_json(p, $2) FROM playlists p WHERE p.id = $1",
	2
};

static const char *const m3u_types[] = {
	"audio/x-mpegurl", "application/vnd.apple.mpegurl", "audio/mpegurl",
	"text/plain", NULL,
};

struct import_tx {
	const char	*name;
	const char	*is_public;	/* "true" / "false" */
	const char	*max_playlists;
	const char	*track_ids;	/* a uuid[] literal, NULL if none */
	char		 id[37];	/* OUT: the new playlist */
	long		 inserted;	/* OUT */
	PGresult	*doc;		/* OUT: playlist_json */
};

/* All or nothing: an error anywhere rolls the playlist back with its entries. */
static enum app_err
import_body(struct req *r, void *arg)
{
	struct import_tx	*t = arg;
	PGresult		*res;
	enum app_err		 err;

	if ((err = db_exec(r, &res, &st_import_lock,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_UNAUTHORIZED, "your account no longer exists",
		    NULL);
	if ((err = db_exec(r, &res, &st_import_playlist, (const char *const[]){
	    r->user_id, t->name, t->is_public, t->max_playlists })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "an account may "
		    "have at most %s playlists; delete one first", t->max_playlists),
		    NULL);
	snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, 0, 0));
	t->inserted = 0;
	if (t->track_ids != NULL) {
		if ((err = db_exec(r, &res, &st_import_entries, (const char *const[]){
		    t->id, r->user_id, t->track_ids })) != E_OK)
			return err;
		t->inserted = atol(PQcmdTuples(res));
	}
	return db_exec(r, &t->doc, &st_import_doc,
	    (const char *const[]){ t->id, r->user_id });
}

/* The query's name, else the file's #PLAYLIST:, else a default. */
static enum app_err
import_name(struct req *r, const struct m3u_file *f, const char **out)
{
	const char	*name = req_query(r, "name");
	const char	*p;

	*out = f->name != NULL ? f->name : DEFAULT_NAME;
	if (name == NULL)
		return E_OK;
	for (p = name; *p != '\0' && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
		;
	if (*p != '\0' || strlen(name) < 1 || strlen(name) > 255 ||
	    !utf8_text_valid(name, strlen(name)))
		return req_fail(r, E_INVALID, "name must be 1 to 255 bytes of UTF-8 "
		    "text without control characters", NULL);
	*out = name;
	return E_OK;
}

/*
 * The entries' keys as the match statement's JSON parameter; only the
 * keys an entry has.
 */
static const char *
match_param(struct req *r, const struct m3u_file *f)
{
	struct json_object	*a = pool_json(r->pool, json_object_new_array());
	size_t			 i;

	for (i = 0; i < f->n; i++) {
		const struct m3u_entry	*e = &f->entries[i];
		struct json_object	*o = json_object_new_object();

		json_object_object_add(o, "n", json_object_new_int64((int64_t)i));
		json_object_object_add(o, "loc", json_object_new_string(e->path));
		if (e->tail != NULL)
			json_object_object_add(o, "tail", json_object_new_string(e->tail));
		if (e->stream_id[0] != '\0')
			json_object_object_add(o, "sid",
			    json_object_new_string(e->stream_id));
		if (e->artist != NULL) {
			json_object_object_add(o, "artist",
			    json_object_new_string(e->artist));
			json_object_object_add(o, "title",
			    json_object_new_string(e->title));
		}
		json_object_array_add(a, o);
	}
	return json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
}

/*
 * POST /api/playlists/import?name=&public=0|1: the body is the M3U text.
 * Entries that match nothing are reported, not refused. The owner's
 * playlist count is checked before the work and again under the lock.
 */
static enum app_err
m3u_import(struct req *r)
{
	static const char *const known[] = { "name", "public", NULL };
	const char		*ct = req_env(r, "CONTENT_TYPE");
	const char		*pub = req_query(r, "public");
	const char *const	*type;
	struct import_tx	 t;
	struct m3u_file		 f;
	struct json_object	*o, *unmatched;
	const char		**matched;
	PGresult		*res;
	enum app_err		 err;
	char			*buf, *ids;
	size_t			 len, i, o_len, nunmatched = 0;
	long			 max_entries, max_playlists, have;

	memset(&t, 0, sizeof(t));
	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (pub == NULL || strcmp(pub, "0") == 0 || strcmp(pub, "false") == 0)
		t.is_public = "false";
	else if (strcmp(pub, "1") == 0 || strcmp(pub, "true") == 0)
		t.is_public = "true";
	else
		return req_fail(r, E_BAD_REQUEST, "public must be 0 or 1", NULL);
	for (type = m3u_types; *type != NULL && !content_type_is(ct, *type); type++)
		;
	if (*type == NULL)
		return req_fail(r, E_UNSUPPORTED, "send the playlist as Content-Type "
		    "audio/x-mpegurl, application/vnd.apple.mpegurl, audio/mpegurl "
		    "or text/plain, in UTF-8", NULL);
	if ((err = req_read_body_raw(r, &buf, &len)) != E_OK)
		return req_fail(r, err, err == E_TOO_LARGE ? pool_printf(r->pool,
		    "the body is larger than %ld bytes", cfg.body_max) :
		    "bad Content-Length", NULL);
	if (!utf8_text_valid(buf, len))
		return req_fail(r, E_BAD_REQUEST, "the playlist is not UTF-8 text "
		    "(an .m3u8 file is; save an .m3u as UTF-8 first)", NULL);
	m3u_parse(r->pool, buf, len, &f);
	if ((err = import_name(r, &f, &t.name)) != E_OK)
		return err;

	if ((err = db_exec(r, &res, &st_import_limits,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	max_entries = atol(PQgetvalue(res, 0, 0));
	max_playlists = atol(PQgetvalue(res, 0, 1));
	have = atol(PQgetvalue(res, 0, 2));
	t.max_playlists = pool_strdup(r->pool, PQgetvalue(res, 0, 1));
	if ((long)f.n > max_entries)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "the playlist has "
		    "%zu entries; a playlist may have at most %ld", f.n, max_entries),
		    NULL);
	if (have >= max_playlists)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "an account may "
		    "have at most %ld playlists; delete one first", max_playlists),
		    NULL);

	matched = pool_calloc(r->pool, f.n + 1, sizeof(*matched));
	if (f.n > 0) {
		if ((err = db_exec(r, &res, &st_import_match,
		    (const char *const[]){ match_param(r, &f) })) != E_OK)
			return err;
		for (i = 0; i < (size_t)PQntuples(res); i++) {
			long	 n = atol(PQgetvalue(res, (int)i, 0));

			if (n >= 0 && (size_t)n < f.n)
				matched[n] = PQgetvalue(res, (int)i, 1);
		}
	}
	/* {id,id,...}: uuids need no quoting. */
	ids = pool_alloc(r->pool, f.n * 37 + 3);
	o_len = 0;
	ids[o_len++] = '{';
	for (i = 0; i < f.n; i++) {
		if (matched[i] == NULL)
			continue;
		if (o_len > 1)
			ids[o_len++] = ',';
		memcpy(ids + o_len, matched[i], 36);
		o_len += 36;
	}
	ids[o_len++] = '}';
	ids[o_len] = '\0';
	t.track_ids = o_len > 2 ? ids : NULL;

	if ((err = db_tx(r, "READ COMMITTED", import_body, &t)) != E_OK)
		return err;
	if (t.doc == NULL || PQntuples(t.doc) != 1)
		return E_INTERNAL;

	unmatched = json_object_new_array();
	for (i = 0; i < f.n; i++) {
		const struct m3u_entry	*e = &f.entries[i];
		struct json_object	*u;

		if (matched[i] != NULL)
			continue;
		if (nunmatched++ >= UNMATCHED_LIST_MAX)
			continue;
		u = json_object_new_object();
		json_object_object_add(u, "line", json_object_new_int(e->line));
		json_object_object_add(u, "location", json_object_new_string(e->location));
		json_object_object_add(u, "title", e->extinf != NULL ?
		    json_object_new_string(e->extinf) : NULL);
		json_object_array_add(unmatched, u);
	}
	o = json_object_new_object();
	json_object_object_add(o, "playlist",
	    json_tokener_parse(PQgetvalue(t.doc, 0, 0)));
	json_object_object_add(o, "matched", json_object_new_int64(t.inserted));
	json_object_object_add(o, "unmatched", unmatched);
	json_object_object_add(o, "unmatched_count",
	    json_object_new_int64((int64_t)nunmatched));
	resp_header(r, "Location", pool_printf(r->pool, "/api/playlists/%s", t.id));
	return resp_json(r, 201, o);
}

static const struct route m3u_routes[] = {
	/* methods	pattern				handler		needs			flags */
	{ M_GET,	"/api/playlists/:id/export.m3u8", m3u_export,	P_READ_PLAYLISTS,	0 },
	{ M_POST,	"/api/playlists/import",	m3u_import,	P_WRITE_PLAYLISTS,	0 },
};

const struct route_table m3u_route_table = {
	m3u_routes, sizeof(m3u_routes) / sizeof(m3u_routes[0])
};
