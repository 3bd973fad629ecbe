/*
 * handlers/music.c: the library, /api/music/... Listing with keyset
 * cursors (or pages), filters and allow-listed sorts, cached in Redis
 * under a version that every library write bumps; one track's details,
 * edits and deletion; uploads (nginx hands over a file on disk); streams
 * and covers by X-Accel-Redirect, signed URLs nginx checks itself; plays;
 * genres, artists and albums.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "../fcgi/djamms.h"

/*
 * The document the database keeps with each row (api_doc, sql/007); the
 * other columns are what the handlers decide with.
 */
#define TRACK_COLS_REST \
	" t.id, t.title, t.mime_type, t.file_path, t.has_cover, t.uploaded_by"
#define TRACK_COLS	"t.api_doc," TRACK_COLS_REST
enum { T_DOC, T_ID, T_TITLE, T_MIME, T_PATH, T_HAS_COVER, T_UPLOADER };

/*
 * One track for one caller ($2): with "liked". (List pages are shared by
 * every caller through the caches and marked per caller: likes.c.)
 */
static const struct db_stmt st_track = {
	"music_track",
	"SELECT track_json_for(t.api_doc, EXISTS (SELECT 1 FROM user_favorites f"
	" WHERE f.track_id = t.id AND f.user_id = $2::uuid)), " TRACK_COLS_REST
	" FROM tracks t WHERE t.id = $1 AND t.is_active",
	2
};

/* One statement: the row goes and an uploader gets the storage back. */
static const struct db_stmt st_track_delete = {
	"music_track_delete",
	"WITH gone AS (DELETE FROM tracks WHERE id = $1"
	"  RETURNING file_path, coalesce(file_size, 0) AS size, uploaded_by, source),"
	" credit AS (UPDATE users u"
	"  SET storage_used_bytes = greatest(u.storage_used_bytes - g.size, 0)"
	"  FROM gone g WHERE u.id = g.uploaded_by AND g.source = 'upload')"
	" SELECT file_path FROM gone",
	1
};

static const struct db_stmt st_play = {
	"music_play",
	"WITH t AS (SELECT id, duration FROM tracks WHERE id = $1 AND is_active),"
	" h AS (INSERT INTO playback_history (user_id, track_id, duration_played,"
	"   source, counted)"
	"   SELECT $2, t.id, $3::int, $4, $3::int >= 30 AND"
	"     ($3::int * 2 >= t.duration OR $3::int >= 240) FROM t"
	"   RETURNING counted)"
	" UPDATE tracks SET play_count = play_count + 1"
	" FROM h WHERE tracks.id = $1 AND h.counted"
	" RETURNING tracks.play_count",
	4
};

static const struct db_stmt st_play_exists = {
	"music_play_exists",
	"SELECT play_count FROM tracks WHERE id = $1 AND is_active",
	1
};

/* ---- JSON ------------------------------------------------------------- */

/* The track document as an object, to put inside another one. */
static struct json_object *
track_obj(PGresult *res, int row)
{
	return json_tokener_parse(PQgetvalue(res, row, T_DOC));
}

/* The track document as the whole body. */
static enum app_err
answer_track(struct req *r, int status, PGresult *res)
{
	return resp_json_text(r, status, PQgetvalue(res, 0, T_DOC),
	    (size_t)PQgetlength(res, 0, T_DOC));
}

/* ---- GET /api/music/tracks -------------------------------------------- */

/* The sorts the API offers: the key is SQL we wrote, never request text. */
static const struct sort_spec {
	const char	*name;
	const char	*expr;		/* the indexed key expression */
	const char	*cast;		/* for the cursor value parameter */
} sorts[] = {
	{ "title",	"t.title",			"text" },
	{ "artist",	"t.artist",			"text" },
	{ "album",	"coalesce(t.album, '')",	"text" },
	{ "year",	"coalesce(t.year, 0)",		"int" },
	{ "popularity",	"t.popularity",			"int" },
	{ "play_count",	"t.play_count",			"bigint" },
	{ "created_at",	"t.created_at",			"timestamptz" },
	{ "duration",	"t.duration",			"int" },
};

/* A cursor: base64url of "<sort value>\x1f<id>". */
static int
cursor_decode(struct req *r, const char *cur, char **val, char **id)
{
	unsigned char	 raw[512];
	size_t		 n;
	char		*s, *sep;

	if (b64url_decode(cur, strlen(cur), raw, sizeof(raw) - 1, &n) != 0)
		return -1;
	raw[n] = '\0';
	s = pool_strndup(r->pool, (char *)raw, n);
	if ((sep = strchr(s, '\x1f')) == NULL || strlen(s) != n)
		return -1;
	*sep = '\0';
	*val = s;
	*id = sep + 1;
	return uuid_valid(*id) ? 0 : -1;
}

static char *
cursor_encode(struct req *r, const char *val, const char *id)
{
	char	*raw = pool_printf(r->pool, "%s\x1f%s", val, id);
	char	*out = pool_alloc(r->pool, (strlen(raw) + 2) / 3 * 4 + 1);

	b64url_encode((unsigned char *)raw, strlen(raw), out);
	return out;
}

struct list_query {
	char		 sql[2048];
	const char	*args[16];
	int		 n;
};

static void
arg_add(struct list_query *q, const char *fmt_sql, const char *val)
{
	char	 frag[256];

	q->args[q->n] = val;
	q->n++;
	snprintf(frag, sizeof(frag), fmt_sql, q->n);
	strncat(q->sql, frag, sizeof(q->sql) - strlen(q->sql) - 1);
}

/* A list page's columns: the document, and what the cursor and total need. */
enum { L_DOC, L_ID, L_SORT, L_TOTAL };

static enum app_err
music_tracks_list(struct req *r)
{
	static const char *const known[] = { "cursor", "page", "limit", "sort",
	    "order", "genre", "artist", "album", "year_from", "year_to",
	    "duration_min", "duration_max", "mine", "total", NULL };
	const struct sort_spec	*sort = &sorts[6];	/* created_at */
	const char		*sortname = req_query(r, "sort");
	const char		*order = req_query(r, "order");
	const char		*cur = req_query(r, "cursor");
	const char		*genre = req_query(r, "genre"), *artist = req_query(r, "artist");
	const char		*album = req_query(r, "album"), *mine = req_query(r, "mine");
	const char		*yfrom, *yto, *dmin, *dmax, *v;
	int			 want_total = 0;
	char			*cval = NULL, *cid = NULL, off[24];
	struct listcache	 lc;
	int			 desc = 1, i, nrows, more;
	long			 page, limit;
	struct list_query	 q;
	struct db_stmt		 st = { NULL, NULL, 0 };
	PGresult		*res;
	struct json_object	*o;
	enum app_err		 err;
	char			*canon;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 20, 100, &page, &limit)) != E_OK ||
	    (err = query_int(r, "year_from", 0, 9999, &yfrom)) != E_OK ||
	    (err = query_int(r, "year_to", 0, 9999, &yto)) != E_OK ||
	    (err = query_int(r, "duration_min", 0, 1000000, &dmin)) != E_OK ||
	    (err = query_int(r, "duration_max", 0, 1000000, &dmax)) != E_OK)
		return err;
	if (sortname != NULL) {
		for (i = 0; i < (int)(sizeof(sorts) / sizeof(sorts[0])); i++)
			if (strcmp(sortname, sorts[i].name) == 0)
				break;
		if (i == (int)(sizeof(sorts) / sizeof(sorts[0])))
			return req_fail(r, E_BAD_REQUEST, "sort must be one of title, "
			    "artist, album, year, popularity, play_count, created_at, "
			    "duration", NULL);
		sort = &sorts[i];
		/* Rankings and recency read best first; names A to Z. */
		desc = strcmp(sort->name, "popularity") == 0 ||
		    strcmp(sort->name, "play_count") == 0 ||
		    strcmp(sort->name, "created_at") == 0;
	}
	if (order != NULL) {
		if (strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
			return req_fail(r, E_BAD_REQUEST, "order must be asc or desc", NULL);
		desc = strcmp(order, "desc") == 0;
	}
	if (cur != NULL && cursor_decode(r, cur, &cval, &cid) != 0)
		return req_fail(r, E_BAD_REQUEST, "cursor is not one this API made", NULL);
	if (mine != NULL && strcmp(mine, "1") != 0 && strcmp(mine, "true") != 0)
		return req_fail(r, E_BAD_REQUEST, "mine must be 1 or true", NULL);
	if ((v = req_query(r, "total")) != NULL) {
		if (strcmp(v, "1") != 0 && strcmp(v, "true") != 0 && strcmp(v, "0") != 0)
			return req_fail(r, E_BAD_REQUEST, "total must be 1 or 0", NULL);
		want_total = strcmp(v, "0") != 0;
	}
	if (want_total && cur != NULL)
		return req_fail(r, E_BAD_REQUEST, "total is counted on the first "
		    "request of a walk, not with a cursor", NULL);
	for (i = 0; i < 3; i++) {
		const char	*f = i == 0 ? genre : i == 1 ? artist : album;

		if (f != NULL && strlen(f) > 255)
			return req_fail(r, E_BAD_REQUEST, "filters are at most 255 bytes",
			    NULL);
	}

	/* The cache key is the validated request, not its spelling. */
	canon = pool_printf(r->pool, "tracks|%s|%d|%d|%ld|%ld|%s|%s|%s|%s|%s|%s|%s|%s|%s",
	    sort->name, desc, want_total, page, limit, cur ? cur : "", genre ? genre : "",
	    artist ? artist : "", album ? album : "", yfrom ? yfrom : "",
	    yto ? yto : "", dmin ? dmin : "", dmax ? dmax : "",
	    mine ? r->user_id : "");
	if (listcache_get(r, canon, cfg.list_cache_ttl_s, &lc))
		return likes_mark_page(r);

	memset(&q, 0, sizeof(q));
	/*
	 * Counting the whole filtered set reads every matching row, so it is
	 * asked for (total=1), not assumed; a cached page keeps its count.
	 * It is part of the text, not a parameter: the statement is prepared
	 * and a generic plan must not carry a window over the whole table.
	 */
	snprintf(q.sql, sizeof(q.sql), "SELECT t.api_doc, t.id, %s::text, %s"
	    " FROM tracks t WHERE t.is_active", sort->expr,
	    want_total ? "count(*) OVER ()" : "NULL::bigint");
	if (genre != NULL)
		arg_add(&q, " AND t.genre = $%d", genre);
	if (artist != NULL)
		arg_add(&q, " AND t.artist = $%d", artist);
	if (album != NULL)
		arg_add(&q, " AND t.album = $%d", album);
	if (yfrom != NULL)
		arg_add(&q, " AND t.year >= $%d::int", yfrom);
	if (yto != NULL)
		arg_add(&q, " AND t.year <= $%d::int", yto);
	if (dmin != NULL)
		arg_add(&q, " AND t.duration >= $%d::int", dmin);
	if (dmax != NULL)
		arg_add(&q, " AND t.duration <= $%d::int", dmax);
	if (mine != NULL)
		arg_add(&q, " AND t.uploaded_by = $%d", r->user_id);
	if (cval != NULL) {
		char	 frag[256];

		q.args[q.n++] = cval;
		q.args[q.n++] = cid;
		snprintf(frag, sizeof(frag), " AND (%s, t.id) %s ($%d::%s, $%d::uuid)",
		    sort->expr, desc ? "<" : ">", q.n - 1, sort->cast, q.n);
		strncat(q.sql, frag, sizeof(q.sql) - strlen(q.sql) - 1);
	}
	/*
	 * The limit (one more than asked: is there a next page?) is a number
	 * we clamped, written into the text so the prepared plan knows it; an
	 * offset only appears for numbered pages past the first.
	 */
	{
		char	 frag[256];
		int	 len;

		len = snprintf(frag, sizeof(frag), " ORDER BY %s %s, t.id %s LIMIT %ld",
		    sort->expr, desc ? "DESC" : "ASC", desc ? "DESC" : "ASC", limit + 1);
		if (cur == NULL && page > 1) {
			snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
			q.args[q.n++] = off;
			snprintf(frag + len, sizeof(frag) - len, " OFFSET $%d::int", q.n);
		}
		strncat(q.sql, frag, sizeof(q.sql) - strlen(q.sql) - 1);
	}
	st.sql = q.sql;
	st.nparams = q.n;
	if ((err = db_exec(r, &res, &st, q.args)) != E_OK)
		return err;

	nrows = PQntuples(res);
	more = nrows > limit;
	if (more)
		nrows = (int)limit;
	o = json_object_new_object();
	json_object_object_add(o, "limit", json_object_new_int64(limit));
	json_object_object_add(o, "sort", json_object_new_string(sort->name));
	json_object_object_add(o, "order", json_object_new_string(desc ? "desc" : "asc"));
	if (cur == NULL)
		json_object_object_add(o, "page", json_object_new_int64(page));
	if (want_total)
		json_object_object_add(o, "total", json_object_new_int64(
		    PQntuples(res) > 0 ? atoll(PQgetvalue(res, 0, L_TOTAL)) : 0));
	json_object_object_add(o, "next_cursor", more ? json_object_new_string(
	    cursor_encode(r, PQgetvalue(res, nrows - 1, L_SORT),
	    PQgetvalue(res, nrows - 1, L_ID))) : NULL);
	err = resp_json_list(r, 200, "tracks", res, L_DOC, nrows, o);
	listcache_put(r, &lc);	/* the page as everyone sees it, then the caller's */
	return err == E_OK ? likes_mark_page(r) : err;
}

/* ---- one track ---------------------------------------------------------- */

static enum app_err
load_track(struct req *r, PGresult **res)
{
	const char	*id = req_param(r, "id");
	enum app_err	 err;

	if (!uuid_valid(id))
		return E_NOT_FOUND;
	if ((err = db_exec(r, res, &st_track, (const char *const[]){ id, r->user_id })) != E_OK)
		return err;
	return PQntuples(*res) == 1 ? E_OK : E_NOT_FOUND;
}

/* The uploader, a moderator or an admin may change or delete a track. */
static enum app_err
may_change(struct req *r, PGresult *res)
{
	if (r->role != NULL && (strcmp(r->role, "moderator") == 0 ||
	    strcmp(r->role, "admin") == 0))
		return E_OK;
	if (!PQgetisnull(res, 0, T_UPLOADER) && r->user_id != NULL &&
	    strcmp(PQgetvalue(res, 0, T_UPLOADER), r->user_id) == 0)
		return E_OK;
	return req_fail(r, E_FORBIDDEN,
	    "only the uploader, a moderator or an admin may change this track", NULL);
}

static enum app_err
music_track_get(struct req *r)
{
	PGresult	*res;
	enum app_err	 err;

	if ((err = load_track(r, &res)) != E_OK)
		return err;
	return answer_track(r, 200, res);
}

/* PUT /api/music/tracks/:id: metadata fields only, from an allow-list. */
static enum app_err
music_track_put(struct req *r)
{
	static const char *const allowed[] = { "title", "artist", "album", "genre",
	    "year", "track_number", NULL };
	static const char *const forbidden[] = { "id", "file_path", "file_size",
	    "mime_type", "uploaded_by", "play_count", "popularity", "duration",
	    "content_sha256", "created_at", "source", "has_cover", NULL };
	static const struct db_stmt st_update = {
		"music_track_update",
		"UPDATE tracks SET"
		" title = CASE WHEN $2::bool THEN $3 ELSE title END,"
		" artist = CASE WHEN $4::bool THEN $5 ELSE artist END,"
		" album = CASE WHEN $6::bool THEN $7 ELSE album END,"
		" genre = CASE WHEN $8::bool THEN $9 ELSE genre END,"
		" year = CASE WHEN $10::bool THEN $11::int ELSE year END,"
		" track_number = CASE WHEN $12::bool THEN $13::int ELSE track_number END"
		" WHERE id = $1 AND is_active",
		13
	};
	struct json_object	*body, *v;
	PGresult		*res;
	enum app_err		 err;
	const char		*args[13], *s;
	char			 nums[2][16];
	int			 i;

	if ((err = load_track(r, &res)) != E_OK || (err = may_change(r, res)) != E_OK)
		return err;
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, forbidden)) != E_OK)
		return err;
	args[0] = req_param(r, "id");
	for (i = 0; i < 4; i++) {
		static const size_t	 max[4] = { 255, 255, 255, 100 };
		int			 present = json_object_object_get_ex(body,
					    allowed[i], &v);

		args[1 + 2 * i] = present ? "t" : "f";
		args[2 + 2 * i] = NULL;
		if (!present || v == NULL) {
			if (present && i < 2)
				return body_fail(r, allowed[i], "cannot be null");
			continue;
		}
		if ((err = body_string(r, body, allowed[i], 1, i == 0 ? 1 : 0, max[i],
		    &s, NULL)) != E_OK)
			return err;
		args[2 + 2 * i] = s;
	}
	for (i = 0; i < 2; i++) {
		const char	*name = i == 0 ? "year" : "track_number";
		int		 present = json_object_object_get_ex(body, name, &v);

		args[9 + 2 * i] = present ? "t" : "f";
		args[10 + 2 * i] = NULL;
		if (!present || v == NULL)
			continue;
		if (!json_object_is_type(v, json_type_int) ||
		    (i == 0 && (json_object_get_int64(v) < 1000 ||
		    json_object_get_int64(v) > 9999)) ||
		    (i == 1 && (json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > 9999)))
			return body_fail(r, name, i == 0 ? "must be 1000 to 9999" :
			    "must be 0 to 9999");
		snprintf(nums[i], sizeof(nums[i]), "%lld",
		    (long long)json_object_get_int64(v));
		args[10 + 2 * i] = nums[i];
	}
	if ((err = db_exec(r, &res, &st_update, args)) != E_OK)
		return err;
	library_changed(r);
	if ((err = load_track(r, &res)) != E_OK)
		return err;
	return answer_track(r, 200, res);
}

/*
 * DELETE /api/music/tracks/:id: the row first (with the owner's storage
 * credited back), the file and covers after it commits, never before, so
 * a failure cannot leave a row pointing at nothing.
 */
static enum app_err
music_track_delete(struct req *r)
{
	PGresult	*res;
	enum app_err	 err;
	const char	*id = req_param(r, "id");
	char		*path = NULL;

	if ((err = load_track(r, &res)) != E_OK || (err = may_change(r, res)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st_track_delete,
	    (const char *const[]){ id })) != E_OK)
		return err;
	if (PQntuples(res) == 0)
		return E_NOT_FOUND;	/* deleted meanwhile */
	if (!PQgetisnull(res, 0, 0))
		path = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
	library_changed(r);
	{
		char	 abs[4200];

		if (library_audio_path(path, abs, sizeof(abs)) != NULL)
			unlink(abs);
	}
	library_remove_covers(id);
	hls_remove(id);
	r->status = 204;
	return E_OK;
}

/* ---- upload ------------------------------------------------------------- */

/*
 * Queue the HLS job of track id, unless one was queued for it in the last
 * 10 minutes (the upload's, or an earlier GET .../hls while pending): two
 * would render the same renditions twice, the second after the first.
 */
static void
hls_queue(struct req *r, const char *id)
{
	struct redisReply	*q = rds_command(r, "SET hls:queued:%s 1 NX EX 600", id);

	if (q != NULL && q->type == REDIS_REPLY_STATUS)
		jobs_enqueue("hls", pool_printf(r->pool, "{\"track_id\":\"%s\"}", id), 3,
		    NULL);
}

/*
 * POST /api/music/tracks: the body is the audio file itself. nginx has
 * written it to disk (REQUEST_BODY_FILE); metadata the client wants to
 * set rides in the query string (title, artist, album, genre, year,
 * track_number, filename).
 */
static enum app_err
music_track_upload(struct req *r)
{
	static const char *const known[] = { "title", "artist", "album", "genre",
	    "year", "track_number", "filename", NULL };
	const char		*file = req_env(r, "REQUEST_BODY_FILE");
	struct library_add	 a;
	struct library_result	 out;
	PGresult		*res;
	enum app_err		 err;
	const char		*v;
	size_t			 dirlen = strlen(cfg.upload_dir);
	long			 n;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	/* Only nginx sets this, but a path is checked before it is opened. */
	if (file == NULL || *file == '\0')
		return req_fail(r, E_BAD_REQUEST, "send the audio file as the request "
		    "body", NULL);
	if (strncmp(file, cfg.upload_dir, dirlen) != 0 || file[dirlen] != '/' ||
	    strstr(file, "/..") != NULL)
		return req_fail(r, E_BAD_REQUEST, "the upload did not come through nginx",
		    NULL);
	memset(&a, 0, sizeof(a));
	a.src_path = file;
	a.mode = LIB_LINK;
	a.user_id = r->user_id;
	a.check_quota = 1;
	a.source = "upload";
	a.title = req_query(r, "title");
	a.artist = req_query(r, "artist");
	a.album = req_query(r, "album");
	a.genre = req_query(r, "genre");
	a.original_filename = req_query(r, "filename");
	if ((a.title && (strlen(a.title) < 1 || strlen(a.title) > 255)) ||
	    (a.artist && strlen(a.artist) > 255) || (a.album && strlen(a.album) > 255) ||
	    (a.genre && strlen(a.genre) > 100) ||
	    (a.original_filename && strlen(a.original_filename) > 255))
		return req_fail(r, E_INVALID, "title, artist and album are at most 255 "
		    "bytes, genre 100", NULL);
	if ((v = req_query(r, "year")) != NULL) {
		if (config_parse_long(v, 1000, 9999, &n) != 0)
			return req_fail(r, E_INVALID, "year must be 1000 to 9999", NULL);
		a.year = (int)n;
	}
	if ((v = req_query(r, "track_number")) != NULL) {
		if (config_parse_long(v, 0, 9999, &n) != 0)
			return req_fail(r, E_INVALID, "track_number must be 0 to 9999", NULL);
		a.track_no = (int)n;
	}
	a.fault_after_file = cfg.test_routes && req_header(r, "X-Test-Fault") != NULL &&
	    strcmp(req_header(r, "X-Test-Fault"), "after-file") == 0;
	{
		const char	*cl = req_env(r, "CONTENT_LENGTH");

		if (cl != NULL && config_parse_long(cl, 0, 0x7fffffffffffL, &n) == 0 &&
		    n > cfg.upload_max)
			return req_fail(r, E_TOO_LARGE, "the file is over the upload limit",
			    NULL);
	}
	err = library_add_file(r, &a, &out);
	if (err == E_CONFLICT && out.duplicate) {
		/* The same bytes again: 409 with the track the user already has. */
		struct json_object	*d = json_object_new_object();

		if (db_exec(r, &res, &st_track, (const char *const[]){ out.id, r->user_id }) == E_OK &&
		    PQntuples(res) == 1)
			json_object_object_add(d, "track", track_obj(res, 0));
		return req_fail(r, E_CONFLICT, "you uploaded this file already", d);
	}
	if (err != E_OK)
		return err;
	library_changed(r);
	/* tempo, loudness and HLS in the background (the sweeps catch up if Redis is away) */
	jobs_enqueue("analysis", pool_printf(r->pool, "{\"track_id\":\"%s\"}", out.id), 3,
	    NULL);
	hls_queue(r, out.id);
	if ((err = db_exec(r, &res, &st_track, (const char *const[]){ out.id, r->user_id })) != E_OK)
		return err;
	resp_header(r, "Location", pool_printf(r->pool, "/api/music/tracks/%s", out.id));
	return answer_track(r, 201, res);
}

/* ---- streams, signed URLs, covers ---------------------------------------- */

/* path: from the database, inside storage/audio; encoded for nginx. */
static char *
accel_path(struct req *r, const char *prefix, const char *path)
{
	size_t		 n = strlen(path), i, o = 0;
	char		*out = pool_alloc(r->pool, strlen(prefix) + 3 * n + 1);
	static const char hex[] = "0123456789ABCDEF";

	o = (size_t)sprintf(out, "%s", prefix);
	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)path[i];

		if (isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_')
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static enum app_err
track_with_audio(struct req *r, PGresult **res)
{
	enum app_err	 err;

	if ((err = load_track(r, res)) != E_OK)
		return err;
	if (PQgetisnull(*res, 0, T_PATH))
		return req_fail(r, E_NO_AUDIO, "this track has no audio file yet", NULL);
	return E_OK;
}

/*
 * GET /api/music/tracks/:id/stream: the permission check is ours, the
 * bytes are nginx's (Range, 206/416, ETag, Last-Modified, sendfile).
 */
static enum app_err
music_track_stream(struct req *r)
{
	PGresult	*res;
	enum app_err	 err;
	const char	*dl = req_query(r, "download");

	if ((err = track_with_audio(r, &res)) != E_OK)
		return err;
	r->status = 200;
	r->content_type = pool_strdup(r->pool, PQgetvalue(res, 0, T_MIME));
	resp_header(r, "X-Accel-Redirect", accel_path(r, "/", PQgetvalue(res, 0, T_PATH)));
	resp_header(r, "Cache-Control", "private, max-age=3600");
	if (dl != NULL && strcmp(dl, "0") != 0) {
		const char	*ext = strrchr(PQgetvalue(res, 0, T_PATH), '.');

		resp_attachment(r, PQgetvalue(res, 0, T_TITLE), ext ? ext : "");
	}
	return E_OK;
}

/*
 * GET /api/music/tracks/:id/stream-url: a URL nginx checks with
 * secure_link (MD5 of expiry, URI and the shared secret) and serves with
 * no worker involved, the kind of URL a CDN can cache.
 */
static enum app_err
music_track_stream_url(struct req *r)
{
	PGresult		*res;
	enum app_err		 err;
	char			*uri, *material, sig[32];
	unsigned char		 md[16];
	unsigned int		 mdlen;
	long			 expires = (long)time(NULL) + cfg.stream_url_ttl_s;
	struct json_object	*o;

	if ((err = track_with_audio(r, &res)) != E_OK)
		return err;
	uri = accel_path(r, "/media/", PQgetvalue(res, 0, T_PATH));
	/* nginx hashes the decoded $uri: the path only has safe characters. */
	material = pool_printf(r->pool, "%ld/media/%s %.*s", expires,
	    PQgetvalue(res, 0, T_PATH), (int)cfg.media_secret_len, cfg.media_secret);
	EVP_Digest(material, strlen(material), md, &mdlen, EVP_md5(), NULL);
	b64url_encode(md, 16, sig);
	o = json_object_new_object();
	json_object_object_add(o, "url", json_object_new_string(pool_printf(r->pool,
	    "%s?md5=%s&expires=%ld", uri, sig, expires)));
	json_object_object_add(o, "expires", json_object_new_int64(expires));
	json_object_object_add(o, "mime_type", pg_json_str(res, 0, T_MIME));
	return resp_json(r, 200, o);
}

static const struct db_stmt st_hls = {
	"music_track_hls",
	"SELECT t.hls_ready_at IS NOT NULL, t.hls_error, t.duration,"
	" coalesce((SELECT s.value = 'false'::jsonb FROM system_settings s"
	"  WHERE s.key = 'hls_enabled'), false)"
	" FROM tracks t WHERE t.id = $1",
	1
};

/*
 * GET /api/music/tracks/:id/hls: the signed master playlist URL once the
 * renditions are ready (nginx serves them, secure_link); until then 202
 * with Retry-After, and the track's HLS job queued (once in 10 minutes).
 */
static enum app_err
music_track_hls(struct req *r)
{
	PGresult		*res, *h;
	enum app_err		 err;
	const char		*id = req_param(r, "id");
	struct json_object	*o, *arr, *x;
	char			 url[256];
	long			 expires;
	size_t			 i;

	if ((err = track_with_audio(r, &res)) != E_OK ||
	    (err = db_exec(r, &h, &st_hls, (const char *const[]){ id })) != E_OK)
		return err;
	if (PQntuples(h) != 1)
		return E_NOT_FOUND;
	if (strcmp(PQgetvalue(h, 0, 3), "t") == 0)
		return req_fail(r, E_NOT_FOUND, "HLS is turned off on this server", NULL);
	if (!PQgetisnull(h, 0, 1)) {
		o = json_object_new_object();
		json_object_object_add(o, "reason", json_object_new_string(PQgetvalue(h, 0, 1)));
		return req_fail(r, E_TRANSCODE, "this track's audio could not be made into HLS", o);
	}
	o = json_object_new_object();
	if (strcmp(PQgetvalue(h, 0, 0), "t") != 0) {
		hls_queue(r, id);
		json_object_object_add(o, "status", json_object_new_string("pending"));
		json_object_object_add(o, "retry_after", json_object_new_int(10));
		resp_header(r, "Retry-After", "10");
		resp_header(r, "Cache-Control", "no-store");
		return resp_json(r, 202, o);
	}
	expires = (long)time(NULL) + cfg.stream_url_ttl_s + atol(PQgetvalue(h, 0, 2));
	hls_master_url(id, expires, url, sizeof(url));
	json_object_object_add(o, "status", json_object_new_string("ready"));
	json_object_object_add(o, "master_url", json_object_new_string(url));
	json_object_object_add(o, "expires", json_object_new_int64(expires));
	json_object_object_add(o, "mime_type",
	    json_object_new_string("application/vnd.apple.mpegurl"));
	arr = json_object_new_array();
	for (i = 0; i < hls_nrenditions; i++) {
		x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(hls_renditions[i].name));
		json_object_object_add(x, "bitrate", json_object_new_int(hls_renditions[i].bps));
		json_object_object_add(x, "codecs", json_object_new_string("mp4a.40.2"));
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "renditions", arr);
	resp_header(r, "Cache-Control", "private, no-store");
	return resp_json(r, 200, o);
}

/* GET /api/music/tracks/:id/cover?size=150|300|600 (WebP when accepted). */
static enum app_err
music_track_cover(struct req *r)
{
	PGresult	*res;
	enum app_err	 err;
	const char	*size = req_query(r, "size"), *accept = req_header(r, "Accept");
	int		 webp = accept != NULL && strstr(accept, "image/webp") != NULL;

	if (size == NULL)
		size = "300";
	if (strcmp(size, "150") != 0 && strcmp(size, "300") != 0 &&
	    strcmp(size, "600") != 0)
		return req_fail(r, E_BAD_REQUEST, "size must be 150, 300 or 600", NULL);
	if ((err = load_track(r, &res)) != E_OK)
		return err;
	if (strcmp(PQgetvalue(res, 0, T_HAS_COVER), "t") != 0)
		return req_fail(r, E_NOT_FOUND, "this track has no cover art", NULL);
	r->status = 200;
	r->content_type = webp ? "image/webp" : "image/jpeg";
	resp_header(r, "X-Accel-Redirect", pool_printf(r->pool,
	    "/images/tracks/%s/%s.%s", PQgetvalue(res, 0, T_ID), size,
	    webp ? "webp" : "jpg"));
	resp_header(r, "Cache-Control", "private, max-age=86400");
	resp_header(r, "Vary", "Accept");
	return E_OK;
}

/* ---- plays -------------------------------------------------------------- */

/*
 * POST /api/music/tracks/:id/play {"duration_played": s, "source"}: always
 * history; a count only for 30 s and half the track (or 4 minutes), the
 * rule scrobblers use.
 */
static enum app_err
music_track_play(struct req *r)
{
	static const char *const allowed[] = { "duration_played", "source", NULL };
	static const char *const sources[] = { "queue", "playlist", "search",
	    "shuffle", "schedule", "radio", "other", NULL };
	struct json_object	*body, *v, *o;
	const char		*id = req_param(r, "id"), *source = NULL;
	char			 played[16];
	PGresult		*res;
	enum app_err		 err;
	const char *const	*s;

	if (!uuid_valid(id))
		return E_NOT_FOUND;
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK)
		return err;
	if (!json_object_object_get_ex(body, "duration_played", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    json_object_get_int64(v) > 86400)
		return body_fail(r, "duration_played", "seconds, 0 to 86400");
	snprintf(played, sizeof(played), "%lld", (long long)json_object_get_int64(v));
	if ((err = body_string(r, body, "source", 0, 1, 20, &source, NULL)) != E_OK)
		return err;
	if (source != NULL) {
		for (s = sources; *s != NULL && strcmp(*s, source) != 0; s++)
			;
		if (*s == NULL)
			return body_fail(r, "source", "queue, playlist, search, shuffle, "
			    "schedule, radio or other");
	}
	if ((err = db_exec(r, &res, &st_play, (const char *const[]){ id, r->user_id,
	    played, source })) != E_OK)
		return err;
	o = json_object_new_object();
	if (PQntuples(res) == 1) {
		json_object_object_add(o, "counted", json_object_new_boolean(1));
		json_object_object_add(o, "play_count", pg_json_int(res, 0, 0));
	} else {
		if ((err = db_exec(r, &res, &st_play_exists,
		    (const char *const[]){ id })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return E_NOT_FOUND;
		json_object_object_add(o, "counted", json_object_new_boolean(0));
		json_object_object_add(o, "play_count", pg_json_int(res, 0, 0));
	}
	return resp_json(r, 201, o);
}

/* ---- genres, artists, albums ------------------------------------------- */

static enum app_err
grouped_list(struct req *r, const char *what, const struct db_stmt *st,
    int paged, void (*row_json)(PGresult *, int, struct json_object *))
{
	const char		*q = req_query(r, "q");
	char			 lim[16], off[24], *canon;
	struct listcache	 lc;
	long			 page = 1, limit = 1000;
	PGresult		*res;
	struct json_object	*o, *a;
	enum app_err		 err;
	int			 i;

	if (paged && (err = query_page(r, 50, 200, &page, &limit)) != E_OK)
		return err;
	if (q != NULL && strlen(q) > 100)
		return req_fail(r, E_BAD_REQUEST, "q is at most 100 bytes", NULL);
	canon = pool_printf(r->pool, "%s|%ld|%ld|%s", what, page, limit,
	    q ? q : "");
	if (listcache_get(r, canon, cfg.list_cache_ttl_s, &lc))
		return E_OK;
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
	if ((err = db_exec(r, &res, st, (const char *const[]){ q ? q : "", lim,
	    off })) != E_OK)
		return err;
	a = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++) {
		struct json_object	*e = json_object_new_object();

		row_json(res, i, e);
		json_object_array_add(a, e);
	}
	o = json_object_new_object();
	json_object_object_add(o, what, a);
	if (paged) {
		json_object_object_add(o, "page", json_object_new_int64(page));
		json_object_object_add(o, "limit", json_object_new_int64(limit));
		json_object_object_add(o, "total", PQntuples(res) > 0 ?
		    pg_json_int(res, 0, PQnfields(res) - 1) : NULL);
	}
	err = resp_json(r, 200, o);
	listcache_put(r, &lc);
	return err;
}

static void
genre_row(PGresult *res, int i, struct json_object *e)
{
	json_object_object_add(e, "name", pg_json_str(res, i, 0));
	json_object_object_add(e, "track_count", pg_json_int(res, i, 1));
}

static void
artist_row(PGresult *res, int i, struct json_object *e)
{
	json_object_object_add(e, "name", pg_json_str(res, i, 0));
	json_object_object_add(e, "track_count", pg_json_int(res, i, 1));
	json_object_object_add(e, "album_count", pg_json_int(res, i, 2));
}

static void
album_row(PGresult *res, int i, struct json_object *e)
{
	char	 url[128];

	json_object_object_add(e, "name", pg_json_str(res, i, 0));
	json_object_object_add(e, "artist", pg_json_str(res, i, 1));
	json_object_object_add(e, "year", pg_json_int(res, i, 2));
	json_object_object_add(e, "track_count", pg_json_int(res, i, 3));
	if (!PQgetisnull(res, i, 4)) {
		snprintf(url, sizeof(url), "/api/music/tracks/%s/cover",
		    PQgetvalue(res, i, 4));
		json_object_object_add(e, "cover_url", json_object_new_string(url));
	} else
		json_object_object_add(e, "cover_url", NULL);
}

static enum app_err
music_genres(struct req *r)
{
	static const struct db_stmt st = {
		"music_genres",
		"SELECT genre, count(*) FROM tracks WHERE is_active AND genre IS NOT NULL"
		" AND ($1 = '' OR strpos(lower(genre), lower($1)) > 0)"
		" GROUP BY genre ORDER BY count(*) DESC, genre LIMIT $2::int OFFSET $3::int",
		3
	};

	return grouped_list(r, "genres", &st, 0, genre_row);
}

static enum app_err
music_artists(struct req *r)
{
	static const struct db_stmt st = {
		"music_artists",
		"SELECT artist, count(*), count(DISTINCT album), count(*) OVER () FROM tracks"
		" WHERE is_active AND ($1 = '' OR strpos(lower(artist), lower($1)) > 0)"
		" GROUP BY artist ORDER BY artist LIMIT $2::int OFFSET $3::int",
		3
	};

	return grouped_list(r, "artists", &st, 1, artist_row);
}

static enum app_err
music_albums(struct req *r)
{
	static const struct db_stmt st = {
		"music_albums",
		"SELECT album, artist, max(year), count(*),"
		" (array_agg(id ORDER BY track_number NULLS LAST, id)"
		"   FILTER (WHERE has_cover))[1], count(*) OVER ()"
		" FROM tracks WHERE is_active AND album IS NOT NULL"
		" AND ($1 = '' OR strpos(lower(album), lower($1)) > 0"
		"      OR strpos(lower(artist), lower($1)) > 0)"
		" GROUP BY album, artist ORDER BY album, artist"
		" LIMIT $2::int OFFSET $3::int",
		3
	};

	return grouped_list(r, "albums", &st, 1, album_row);
}

static const struct route music_routes[] = {
	/* methods	pattern				handler			needs		flags */
	{ M_GET,	"/api/music/tracks",		music_tracks_list,	P_READ_TRACKS,	0 },
	{ M_POST,	"/api/music/tracks",		music_track_upload,	P_WRITE_TRACKS,	0 },
	{ M_GET,	"/api/music/tracks/:id",	music_track_get,	P_READ_TRACKS,	0 },
	{ M_PUT,	"/api/music/tracks/:id",	music_track_put,	P_WRITE_TRACKS,	0 },
	{ M_DELETE,	"/api/music/tracks/:id",	music_track_delete,	P_DELETE_TRACKS, 0 },
	{ M_GET,	"/api/music/tracks/:id/stream",	music_track_stream,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/music/tracks/:id/stream-url", music_track_stream_url, P_READ_TRACKS, 0 },
	{ M_GET,	"/api/music/tracks/:id/cover",	music_track_cover,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/music/tracks/:id/hls",	music_track_hls,	P_READ_TRACKS,	0 },
	{ M_POST,	"/api/music/tracks/:id/play",	music_track_play,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/music/genres",		music_genres,		P_READ_TRACKS,	0 },
	{ M_GET,	"/api/music/artists",		music_artists,		P_READ_TRACKS,	0 },
	{ M_GET,	"/api/music/albums",		music_albums,		P_READ_TRACKS,	0 },
};

const struct route_table music_route_table = {
	music_routes, sizeof(music_routes) / sizeof(music_routes[0])
};
