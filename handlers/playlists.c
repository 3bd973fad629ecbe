/*
 * handlers/playlists.c: /api/playlists/... A listener's playlists, the
 * public ones, their entries and collaborators.
 *
 * Who may do what is the database's playlist_role() (sql/009): the owner
 * does everything; an editor changes the details and the entries; a
 * viewer and anyone looking at a public playlist read it; to everyone
 * else it does not exist (404, whatever the role or the id, so ids cannot
 * be probed). Admins and moderators may also delete a public playlist
 * (moderation); a private one stays private from them too.
 *
 * Every change of entries runs in one transaction that first locks the
 * playlist row, so two clients editing one playlist take turns and
 * positions stay 0..n-1 with no gap or duplicate; counts and positions
 * after deletes are the triggers' work (sql/009), in the same
 * transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define ADD_MAX		1000	/* track ids in one request */
#define ENTRIES_PAGE	100
#define ENTRIES_MAX	1000

/* ---- loading one playlist ------------------------------------------------ */

enum { PL_ROLE, PL_OWNER, PL_DOC, PL_COUNT, PL_PUBLIC, PL_VERSION, PL__N };

#define PL_COLS \
	"playlist_role(p, $2::uuid), p.owner_id, playlist_json(p, $2::uuid)," \
	" p.track_count, p.is_public, p.version"

static const struct db_stmt st_load = {
	"pl_load",
	"SELECT " PL_COLS " FROM playlists p WHERE p.id = $1 AND p.is_active",
	2
};

/* Without the document, for routes that answer something else. */
static const struct db_stmt st_load_light = {
	"pl_load_light",
	"SELECT playlist_role(p, $2::uuid), p.owner_id, NULL, p.track_count,"
	" p.is_public, p.version FROM playlists p WHERE p.id = $1 AND p.is_active",
	2
};

/* Locked until the transaction ends: writers take turns. */
static const struct db_stmt st_load_locked = {
	"pl_load_locked",
	"SELECT playlist_role(p, $2::uuid), p.owner_id, NULL, p.track_count,"
	" p.is_public, p.version FROM playlists p WHERE p.id = $1 AND p.is_active"
	" FOR UPDATE OF p",
	2
};

static const struct db_stmt st_doc = {
	"pl_doc",
	"SELECT playlist_json(p, $2::uuid) FROM playlists p WHERE p.id = $1",
	2
};

struct playlist {
	const char	*id;
	const char	*role;		/* owner, editor, viewer, public */
	const char	*owner_id;
	const char	*version;	/* moves on with every change (sql/010) */
	long		 count;
	int		 is_public;
	PGresult	*res;		/* row 0 holds the document (LOAD_DOC) */
};

enum { LOAD_DOC, LOAD_LOCKED, LOAD_LIGHT };

/*
 * The playlist in the path as the caller sees it: with its document
 * (LOAD_DOC), locked until the transaction ends (LOAD_LOCKED), or neither
 * (LOAD_LIGHT). 400 for an id that is not a UUID, 404 when the caller may
 * not see it. OUT: pl.
 */
static enum app_err
playlist_load(struct req *r, int how, struct playlist *pl)
{
	const char	*id = req_param(r, "id");
	PGresult	*res;
	enum app_err	 err;

	memset(pl, 0, sizeof(*pl));
	if (!uuid_valid(id))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = db_exec(r, &res, how == LOAD_LOCKED ? &st_load_locked :
	    how == LOAD_LIGHT ? &st_load_light : &st_load,
	    (const char *const[]){ id, r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, PL_ROLE))
		return req_fail(r, E_NOT_FOUND, "no such playlist", NULL);
	pl->id = id;
	pl->role = PQgetvalue(res, 0, PL_ROLE);
	pl->owner_id = PQgetvalue(res, 0, PL_OWNER);
	pl->version = PQgetvalue(res, 0, PL_VERSION);
	pl->count = atol(PQgetvalue(res, 0, PL_COUNT));
	pl->is_public = strcmp(PQgetvalue(res, 0, PL_PUBLIC), "t") == 0;
	pl->res = res;
	return E_OK;
}

static int
is_owner(const struct playlist *pl)
{
	return strcmp(pl->role, "owner") == 0;
}

static enum app_err
may_edit(struct req *r, const struct playlist *pl)
{
	if (is_owner(pl) || strcmp(pl->role, "editor") == 0)
		return E_OK;
	return req_fail(r, E_FORBIDDEN, "only the owner and editors may change "
	    "this playlist", NULL);
}

static enum app_err
must_own(struct req *r, const struct playlist *pl)
{
	if (is_owner(pl))
		return E_OK;
	return req_fail(r, E_FORBIDDEN, "only the owner may do this", NULL);
}

/* The playlist locked for a change by its owner or an editor. OUT: pl. */
static enum app_err
load_for_edit(struct req *r, struct playlist *pl)
{
	enum app_err	 err;

	if ((err = playlist_load(r, LOAD_LOCKED, pl)) != E_OK)
		return err;
	return may_edit(r, pl);
}

/* The playlist's document, fresh (after a change in this transaction). */
static enum app_err
answer_doc(struct req *r, int status, const char *id)
{
	PGresult	*res;
	enum app_err	 err;

	if ((err = db_exec(r, &res, &st_doc, (const char *const[]){ id,
	    r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_NOT_FOUND;
	return resp_json_text(r, status, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
}

/* A system setting that is a whole number, or def. */
static long
setting_long(struct req *r, const char *key, long def)
{
	static const struct db_stmt st = {
		"pl_setting",
		"SELECT (value #>> '{}')::bigint FROM system_settings WHERE key = $1"
		" AND jsonb_typeof(value) = 'number'",
		1
	};
	PGresult	*res;

	if (db_exec(r, &res, &st, (const char *const[]){ key }) != E_OK ||
	    PQntuples(res) != 1)
		return def;
	return atol(PQgetvalue(res, 0, 0));
}

/* ---- lists of playlists -------------------------------------------------- */

static const struct pl_sort {
	const char	*name;
	const char	*order;		/* SQL we wrote, never request text */
} mine_sorts[] = {
	{ "updated_at",	"p.updated_at DESC, p.id DESC" },
	{ "created_at",	"p.created_at DESC, p.id DESC" },
	{ "name",	"p.name, p.id" },
}, public_sorts[] = {
	{ "stars",	"p.star_count DESC, p.id DESC" },
	{ "recent",	"p.created_at DESC, p.id DESC" },
	{ "name",	"p.name, p.id" },
};

static enum app_err
pick_sort(struct req *r, const struct pl_sort *sorts, size_t n,
    const struct pl_sort **out)
{
	const char	*s = req_query(r, "sort");
	size_t		 i;

	*out = &sorts[0];
	if (s == NULL)
		return E_OK;
	for (i = 0; i < n; i++)
		if (strcmp(s, sorts[i].name) == 0) {
			*out = &sorts[i];
			return E_OK;
		}
	return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool, "sort must be one of "
	    "%s, %s, %s", sorts[0].name, sorts[1].name, sorts[2].name), NULL);
}

/* A page of playlists: the documents from column 0, the total from 1. */
static enum app_err
answer_page(struct req *r, const char *where, const struct pl_sort *sort,
    long page, long limit)
{
	char			 sql[1024], lim[24], off[24];
	struct db_stmt		 st = { NULL, sql, 3 };
	PGresult		*res;
	struct json_object	*rest;
	enum app_err		 err;

	snprintf(sql, sizeof(sql), "SELECT playlist_json(p, $1::uuid), count(*) OVER ()"
	    " FROM playlists p WHERE p.is_active AND %s ORDER BY %s"
	    " LIMIT $2::int OFFSET $3::int", where, sort->order);
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ r->user_id, lim,
	    off })) != E_OK)
		return err;
	rest = json_object_new_object();
	json_object_object_add(rest, "page", json_object_new_int64(page));
	json_object_object_add(rest, "limit", json_object_new_int64(limit));
	json_object_object_add(rest, "sort", json_object_new_string(sort->name));
	json_object_object_add(rest, "total", json_object_new_int64(
	    PQntuples(res) > 0 ? atoll(PQgetvalue(res, 0, 1)) : 0));
	return resp_json_list(r, 200, "playlists", res, 0, PQntuples(res), rest);
}

/* GET /api/playlists: the caller's own and those shared with them. */
static enum app_err
playlists_mine(struct req *r)
{
	static const char *const known[] = { "page", "limit", "sort", "owned", NULL };
	const struct pl_sort	*sort;
	const char		*owned = req_query(r, "owned");
	long			 page, limit;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 50, 200, &page, &limit)) != E_OK ||
	    (err = pick_sort(r, mine_sorts, 3, &sort)) != E_OK)
		return err;
	if (owned != NULL && strcmp(owned, "1") != 0 && strcmp(owned, "0") != 0)
		return req_fail(r, E_BAD_REQUEST, "owned must be 1 or 0", NULL);
	if (owned != NULL && strcmp(owned, "1") == 0)
		return answer_page(r, "p.owner_id = $1", sort, page, limit);
	return answer_page(r, "(p.owner_id = $1 OR EXISTS (SELECT 1 FROM"
	    " playlist_collaborators c WHERE c.playlist_id = p.id AND c.user_id = $1))",
	    sort, page, limit);
}

/* GET /api/playlists/public: everyone's public playlists. */
static enum app_err
playlists_public(struct req *r)
{
	static const char *const known[] = { "page", "limit", "sort", NULL };
	const struct pl_sort	*sort;
	long			 page, limit;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 50, 200, &page, &limit)) != E_OK ||
	    (err = pick_sort(r, public_sorts, 3, &sort)) != E_OK)
		return err;
	return answer_page(r, "p.is_public", sort, page, limit);
}

/* ---- one playlist: create, read, change, delete -------------------------- */

struct pl_fields {
	const char	*name, *description;
	const char	*cover_track_id;	/* the art to show; NULL: the entries' */
	int		 has_cover;
	int		 has_public, is_public;
	int		 has_description;
};

static enum app_err
read_fields(struct req *r, struct json_object *body, int creating,
    struct pl_fields *f)
{
	static const char *const allowed[] = { "name", "description", "is_public",
	    "cover_track_id", NULL };
	static const char *const forbidden[] = { "id", "owner_id", "owner",
	    "track_count", "total_duration", "star_count", "created_at",
	    "updated_at", "source", "is_active", "role", "starred", "cover_url",
	    "version", NULL };
	struct json_object	*v;
	enum app_err		 err;

	memset(f, 0, sizeof(*f));
	if ((err = body_only(r, body, allowed, forbidden)) != E_OK ||
	    (err = body_string(r, body, "name", creating, 1, 255, &f->name,
	    NULL)) != E_OK ||
	    (err = body_bool(r, body, "is_public", &f->has_public,
	    &f->is_public)) != E_OK)
		return err;
	if (!creating && json_object_object_get_ex(body, "name", &v) && v == NULL)
		return body_fail(r, "name", "cannot be null");
	f->has_description = json_object_object_get_ex(body, "description", &v);
	if (f->has_description && v != NULL &&
	    (err = body_string(r, body, "description", 0, 0, 2000,
	    &f->description, NULL)) != E_OK)
		return err;
	f->has_cover = json_object_object_get_ex(body, "cover_track_id", &v);
	if (f->has_cover && v != NULL) {
		if ((err = body_string(r, body, "cover_track_id", 0, 36, 36,
		    &f->cover_track_id, NULL)) != E_OK)
			return err;
		if (!uuid_valid(f->cover_track_id))
			return body_fail(r, "cover_track_id", "must be a track id");
	}
	return E_OK;
}

/*
 * The cover a request chose: a track of the library with art (its URL is
 * stored), or NULL to go back to the entries' art. OUT: url.
 */
static enum app_err
chosen_cover(struct req *r, const struct pl_fields *f, const char **url)
{
	static const struct db_stmt st = {
		"pl_cover_track",
		"SELECT '/api/music/tracks/' || id || '/cover' FROM tracks"
		" WHERE id = $1 AND is_active AND has_cover",
		1
	};
	PGresult	*res;
	enum app_err	 err;

	*url = NULL;
	if (f->cover_track_id == NULL)
		return E_OK;
	if ((err = db_exec(r, &res, &st, (const char *const[]){
	    f->cover_track_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return body_fail(r, "cover_track_id", "must be a track with cover art");
	*url = PQgetvalue(res, 0, 0);
	return E_OK;
}

struct create_tx {
	struct pl_fields	 f;
	char			 id[37];
};

static enum app_err
create_body(struct req *r, void *arg)
{
	static const struct db_stmt st_count = {
		"pl_owned_count",
		"SELECT count(*) FROM users u LEFT JOIN playlists p ON p.owner_id = u.id"
		" AND p.is_active WHERE u.id = $1 GROUP BY u.id",
		1
	};
	static const struct db_stmt st_lock_user = {
		"pl_lock_owner",
		"SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
		1
	};
	static const struct db_stmt st_insert = {
		"pl_insert",
		"INSERT INTO playlists (name, description, is_public, owner_id,"
		" thumbnail_url) VALUES ($1, $2, $3::bool, $4, $5) RETURNING id",
		5
	};
	struct create_tx	*t = arg;
	PGresult		*res;
	enum app_err		 err;
	const char		*cover;
	long			 max = setting_long(r, "max_playlists_per_user", 500);

	if ((err = chosen_cover(r, &t->f, &cover)) != E_OK)
		return err;

	/* One owner's creations take turns, so the limit holds under races. */
	if ((err = db_exec(r, &res, &st_lock_user,
	    (const char *const[]){ r->user_id })) != E_OK ||
	    (err = db_exec(r, &res, &st_count,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) == 1 && atol(PQgetvalue(res, 0, 0)) >= max)
		return req_fail(r, E_INVALID, pool_printf(r->pool,
		    "you have %ld playlists, the most one account may have", max), NULL);
	if ((err = db_exec(r, &res, &st_insert, (const char *const[]){ t->f.name,
	    t->f.description, t->f.is_public ? "t" : "f", r->user_id, cover })) != E_OK)
		return err;
	snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, 0, 0));
	return E_OK;
}

/* POST /api/playlists {"name", "description", "is_public"} */
static enum app_err
playlists_create(struct req *r)
{
	struct json_object	*body;
	struct create_tx	 t;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = read_fields(r, body, 1, &t.f)) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", create_body, &t)) != E_OK)
		return err;
	resp_header(r, "Location", pool_printf(r->pool, "/api/playlists/%s", t.id));
	return answer_doc(r, 201, t.id);
}

/* GET /api/playlists/:id */
static enum app_err
playlist_get(struct req *r)
{
	struct playlist	 pl;
	enum app_err	 err;

	if ((err = query_only(r, (const char *const[]){ NULL })) != E_OK ||
	    (err = playlist_load(r, LOAD_DOC, &pl)) != E_OK)
		return err;
	return resp_json_text(r, 200, PQgetvalue(pl.res, 0, PL_DOC),
	    (size_t)PQgetlength(pl.res, 0, PL_DOC));
}

struct put_tx {
	struct pl_fields	 f;
};

static enum app_err
put_body(struct req *r, void *arg)
{
	static const struct db_stmt st_update = {
		"pl_update",
		"UPDATE playlists SET"
		" name = coalesce($2, name),"
		" description = CASE WHEN $3::bool THEN $4 ELSE description END,"
		" is_public = coalesce($5::bool, is_public),"
		" thumbnail_url = CASE WHEN $6::bool THEN $7 ELSE thumbnail_url END,"
		" updated_at = now(), version = version + 1"
		" WHERE id = $1",
		7
	};
	struct put_tx	*t = arg;
	struct playlist	 pl;
	PGresult	*res;
	enum app_err	 err;
	const char	*cover;

	if ((err = load_for_edit(r, &pl)) != E_OK)
		return err;
	/* Who can see it is the owner's call alone. */
	if (t->f.has_public && (t->f.is_public != 0) != pl.is_public &&
	    (err = must_own(r, &pl)) != E_OK)
		return err;
	if ((err = chosen_cover(r, &t->f, &cover)) != E_OK)
		return err;
	return db_exec(r, &res, &st_update, (const char *const[]){ pl.id, t->f.name,
	    t->f.has_description ? "t" : "f", t->f.description,
	    t->f.has_public ? (t->f.is_public ? "t" : "f") : NULL,
	    t->f.has_cover ? "t" : "f", cover });
}

/* PUT /api/playlists/:id {"name", "description", "is_public"} */
static enum app_err
playlist_put(struct req *r)
{
	struct json_object	*body;
	struct put_tx		 t;
	enum app_err		 err;

	if (!uuid_valid(req_param(r, "id")))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = read_fields(r, body, 0, &t.f)) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", put_body, &t)) != E_OK)
		return err;
	return answer_doc(r, 200, req_param(r, "id"));
}

struct delete_tx {
	int	 deactivate;
};

static enum app_err
delete_body(struct req *r, void *arg)
{
	static const struct db_stmt st_scheduled = {
		"pl_scheduled",
		"SELECT id, title FROM schedule_entries WHERE playlist_id = $1"
		" AND is_active ORDER BY title, id",
		1
	};
	static const struct db_stmt st_unschedule = {
		"pl_unschedule",
		"UPDATE schedule_entries SET is_active = false, updated_at = now()"
		" WHERE playlist_id = $1 AND is_active",
		1
	};
	static const struct db_stmt st_delete = {
		"pl_delete",
		"DELETE FROM playlists WHERE id = $1",
		1
	};
	struct delete_tx	*t = arg;
	struct playlist		 pl;
	PGresult		*res;
	enum app_err		 err;
	int			 i;

	if ((err = playlist_load(r, LOAD_LOCKED, &pl)) != E_OK)
		return err;
	/* Moderation: admins and moderators may take down a public one. */
	if (!is_owner(&pl) && !(pl.is_public && r->role != NULL &&
	    (strcmp(r->role, "admin") == 0 || strcmp(r->role, "moderator") == 0)))
		return must_own(r, &pl);
	if ((err = db_exec(r, &res, &st_scheduled,
	    (const char *const[]){ pl.id })) != E_OK)
		return err;
	if (PQntuples(res) > 0 && !t->deactivate) {
		struct json_object	*d = json_object_new_object();
		struct json_object	*a = json_object_new_array();

		for (i = 0; i < PQntuples(res); i++) {
			struct json_object	*e = json_object_new_object();

			json_object_object_add(e, "id", pg_json_str(res, i, 0));
			json_object_object_add(e, "title", pg_json_str(res, i, 1));
			json_object_array_add(a, e);
		}
		json_object_object_add(d, "schedule_entries", a);
		return req_fail(r, E_CONFLICT, "the playlist is scheduled; delete with "
		    "?deactivate_schedules=1 to switch those entries off", d);
	}
	if (PQntuples(res) > 0 && (err = db_exec(r, &res, &st_unschedule,
	    (const char *const[]){ pl.id })) != E_OK)
		return err;
	return db_exec(r, &res, &st_delete, (const char *const[]){ pl.id });
}

/* DELETE /api/playlists/:id[?deactivate_schedules=1] */
static enum app_err
playlist_delete(struct req *r)
{
	static const char *const known[] = { "deactivate_schedules", NULL };
	const char		*d = req_query(r, "deactivate_schedules");
	struct delete_tx	 t;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (d != NULL && strcmp(d, "1") != 0 && strcmp(d, "0") != 0)
		return req_fail(r, E_BAD_REQUEST, "deactivate_schedules must be 1 or 0",
		    NULL);
	t.deactivate = d != NULL && strcmp(d, "1") == 0;
	if ((err = db_tx(r, "READ COMMITTED", delete_body, &t)) != E_OK)
		return err;
	r->status = 204;
	return E_OK;
}

/* ---- entries ------------------------------------------------------------- */

/*
 * One entry as JSON, written by the database: ids, numbers and timestamps
 * only are spliced, the track is its stored document with "liked" for
 * the caller ($2).
 */
#define ENTRY_JSON \
	"'{\"entry_id\":\"' || pt.id || '\",\"position\":' || pt.position" \
	" || ',\"added_at\":\"' || to_char(pt.added_at AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || '\",\"added_by\":'" \
	" || coalesce('\"' || pt.added_by || '\"', 'null')" \
	" || ',\"track\":' || track_json_for(t.api_doc, f.user_id IS NOT NULL) || '}'"

#define ENTRIES_TTL_S	600

/* GET /api/playlists/:id/tracks?offset=&limit= (positions offset..) */
static enum app_err
playlist_tracks_get(struct req *r)
{
	static const char *const known[] = { "offset", "limit", NULL };
	static const struct db_stmt st_entries = {
		"pl_entries",
		"SELECT " ENTRY_JSON " FROM playlist_tracks pt"
		" JOIN tracks t ON t.id = pt.track_id"
		" LEFT JOIN user_favorites f ON f.track_id = pt.track_id AND f.user_id = $2"
		" WHERE pt.playlist_id = $1 AND pt.position >= $3::int"
		" ORDER BY pt.position LIMIT $4::int",
		4
	};
	const char		*o = req_query(r, "offset"), *l = req_query(r, "limit");
	long			 offset = 0, limit = ENTRIES_PAGE;
	char			 so[24], sl[24];
	struct playlist		 pl;
	PGresult		*res;
	struct json_object	*rest;
	const char		*cached;
	char			 stamp[96], *key, l1key[65] = "";
	size_t			 clen;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (o != NULL && config_parse_long(o, 0, 1000000, &offset) != 0)
		return req_fail(r, E_BAD_REQUEST, "offset must be a whole number >= 0",
		    NULL);
	if (l != NULL && config_parse_long(l, 1, 1000000, &limit) != 0)
		return req_fail(r, E_BAD_REQUEST, "limit must be a whole number >= 1",
		    NULL);
	if (limit > ENTRIES_MAX)
		limit = ENTRIES_MAX;
	if ((err = playlist_load(r, LOAD_LIGHT, &pl)) != E_OK)
		return err;
	snprintf(so, sizeof(so), "%ld", offset);
	snprintf(sl, sizeof(sl), "%ld", limit);
	/*
	 * A page of entries is kept in Redis for its reader, stamped with the
	 * playlist's version, the library's and the reader's likes version:
	 * any change to one of them and the stamp no longer matches.
	 */
	/*
	 * First this worker's own copy, under every version it depends on
	 * (all known here while the watcher is live: no round trip), then
	 * Redis's.
	 */
	if (likes_page_key(r, pool_printf(r->pool, "plent|%s|%s|%s|%s", pl.id, so, sl,
	    pl.version), l1key) == 0 &&
	    (cached = pagecache_get(l1key, 0, time(NULL), &clen)) != NULL) {
		resp_header(r, "X-Cache", "hit");
		return resp_json_text(r, 200, cached, clen);
	}
	key = pool_printf(r->pool, "plent:%s:%s:%s:%s", pl.id, r->user_id, so, sl);
	if ((cached = rds_stamped_get(r, key, "favver", pl.version, stamp,
	    sizeof(stamp), &clen)) != NULL) {
		if (l1key[0] != '\0')
			pagecache_put(l1key, 0, time(NULL) + ENTRIES_TTL_S, cached, clen);
		resp_header(r, "X-Cache", "hit");
		return resp_json_text(r, 200, cached, clen);
	}
	if ((err = db_exec(r, &res, &st_entries, (const char *const[]){ pl.id,
	    r->user_id, so, sl })) != E_OK)
		return err;
	rest = json_object_new_object();
	json_object_object_add(rest, "offset", json_object_new_int64(offset));
	json_object_object_add(rest, "limit", json_object_new_int64(limit));
	json_object_object_add(rest, "total", json_object_new_int64(pl.count));
	json_object_object_add(rest, "next_offset", offset + PQntuples(res) < pl.count &&
	    PQntuples(res) == limit ? json_object_new_int64(offset + limit) : NULL);
	err = resp_json_list(r, 200, "tracks", res, 0, PQntuples(res), rest);
	if (err == E_OK) {
		rds_stamped_put(r, key, stamp, r->body, r->body_len, ENTRIES_TTL_S);
		if (l1key[0] != '\0')
			pagecache_put(l1key, 0, time(NULL) + ENTRIES_TTL_S, r->body,
			    r->body_len);
	}
	return err;
}

struct add_tx {
	const char	*ids;		/* a Postgres uuid[] literal */
	char		 n[16];
	long		 count;
	int		 has_position;
	long		 position;
	int		 allow_duplicates;
	int		 request_dups;	/* the request itself repeats an id */
};

static enum app_err
add_body(struct req *r, void *arg)
{
	static const struct db_stmt st_unknown = {
		"pl_add_unknown",
		"SELECT DISTINCT x.id FROM unnest($1::uuid[]) x(id)"
		" LEFT JOIN tracks t ON t.id = x.id AND t.is_active"
		" WHERE t.id IS NULL ORDER BY 1",
		1
	};
	static const struct db_stmt st_present = {
		"pl_add_present",
		"SELECT DISTINCT track_id FROM playlist_tracks"
		" WHERE playlist_id = $1 AND track_id = ANY ($2::uuid[]) ORDER BY 1",
		2
	};
	static const struct db_stmt st_shift = {
		"pl_add_shift",
		"UPDATE playlist_tracks SET position = position + $3::int"
		" WHERE playlist_id = $1 AND position >= $2::int",
		3
	};
	static const struct db_stmt st_insert = {
		"pl_add_insert",
		"INSERT INTO playlist_tracks (playlist_id, track_id, position, added_by)"
		" SELECT $1, x.id, $2::int + x.ord::int - 1, $4"
		" FROM unnest($3::uuid[]) WITH ORDINALITY x(id, ord)",
		4
	};
	struct add_tx		*t = arg;
	struct playlist		 pl;
	PGresult		*res;
	struct json_object	*d, *a;
	enum app_err		 err;
	char			 pos[24];
	long			 max;
	int			 i;

	if ((err = load_for_edit(r, &pl)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st_unknown, (const char *const[]){ t->ids })) != E_OK)
		return err;
	if (PQntuples(res) > 0) {
		d = json_object_new_object();
		a = json_object_new_array();
		for (i = 0; i < PQntuples(res); i++)
			json_object_array_add(a, pg_json_str(res, i, 0));
		json_object_object_add(d, "unknown_track_ids", a);
		return req_fail(r, E_INVALID, "some tracks are not in the library", d);
	}
	if (!t->allow_duplicates) {
		if ((err = db_exec(r, &res, &st_present,
		    (const char *const[]){ pl.id, t->ids })) != E_OK)
			return err;
		if (PQntuples(res) > 0 || t->request_dups) {
			d = json_object_new_object();
			a = json_object_new_array();
			for (i = 0; i < PQntuples(res); i++)
				json_object_array_add(a, pg_json_str(res, i, 0));
			json_object_object_add(d, "duplicate_track_ids", a);
			return req_fail(r, E_CONFLICT, PQntuples(res) > 0 ?
			    "some tracks are in the playlist already; send "
			    "\"allow_duplicates\": true to add them again" :
			    "the request names a track twice; send "
			    "\"allow_duplicates\": true to add it twice", d);
		}
	}
	max = setting_long(r, "max_playlist_entries", 10000);
	if (pl.count + t->count > max)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "a playlist holds at "
		    "most %ld entries; this one has %ld", max, pl.count), NULL);
	if (!t->has_position)
		t->position = pl.count;
	if (t->position > pl.count)
		return body_fail(r, "position", pool_printf(r->pool,
		    "must be from 0 to %ld (the end)", pl.count));
	snprintf(pos, sizeof(pos), "%ld", t->position);
	if (t->position < pl.count && (err = db_exec(r, &res, &st_shift,
	    (const char *const[]){ pl.id, pos, t->n })) != E_OK)
		return err;
	return db_exec(r, &res, &st_insert, (const char *const[]){ pl.id, pos, t->ids,
	    r->user_id });
}

/*
 * POST /api/playlists/:id/tracks {"track_ids": [...], "position": n,
 * "allow_duplicates": false}: at the end unless a position is given.
 */
static enum app_err
playlist_tracks_add(struct req *r)
{
	static const char *const allowed[] = { "track_ids", "position",
	    "allow_duplicates", NULL };
	struct json_object	*body, *ids;
	struct add_tx		 t;
	enum app_err		 err;
	size_t			 n, i, j, o = 0;
	char			*lit;
	int			 present;

	memset(&t, 0, sizeof(t));
	if (!uuid_valid(req_param(r, "id")))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_int(r, body, "position", &t.has_position, 0, 1000000,
	    &t.position)) != E_OK ||
	    (err = body_bool(r, body, "allow_duplicates", &present,
	    &t.allow_duplicates)) != E_OK)
		return err;
	if (!json_object_object_get_ex(body, "track_ids", &ids) ||
	    !json_object_is_type(ids, json_type_array))
		return body_fail(r, "track_ids", "must be a list of track ids");
	n = json_object_array_length(ids);
	if (n == 0 || n > ADD_MAX)
		return body_fail(r, "track_ids", pool_printf(r->pool,
		    "must hold 1 to %d ids", ADD_MAX));
	lit = pool_alloc(r->pool, n * 37 + 3);
	lit[o++] = '{';
	for (i = 0; i < n; i++) {
		struct json_object	*v = json_object_array_get_idx(ids, i);
		const char		*s;

		if (v == NULL || !json_object_is_type(v, json_type_string) ||
		    !uuid_valid(s = json_object_get_string(v)))
			return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
			    "track_ids[%zu] is not a UUID", i), NULL);
		for (j = 0; j < i && !t.request_dups; j++)
			if (strcasecmp(s, json_object_get_string(
			    json_object_array_get_idx(ids, j))) == 0)
				t.request_dups = 1;
		o += (size_t)sprintf(lit + o, "%s%s", i ? "," : "", s);
	}
	lit[o++] = '}';
	lit[o] = '\0';
	t.ids = lit;
	t.count = (long)n;
	snprintf(t.n, sizeof(t.n), "%zu", n);
	if ((err = db_tx(r, "READ COMMITTED", add_body, &t)) != E_OK)
		return err;
	return answer_doc(r, 201, req_param(r, "id"));
}

struct remove_tx {
	const char	*track_id;
	const char	*position;	/* NULL: every occurrence */
	long		 removed;
};

static enum app_err
remove_body(struct req *r, void *arg)
{
	static const struct db_stmt st_remove = {
		"pl_remove",
		"DELETE FROM playlist_tracks WHERE playlist_id = $1 AND track_id = $2"
		" AND ($3::int IS NULL OR position = $3::int)",
		3
	};
	struct remove_tx	*t = arg;
	struct playlist		 pl;
	PGresult		*res;
	enum app_err		 err;

	if ((err = load_for_edit(r, &pl)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st_remove, (const char *const[]){ pl.id,
	    t->track_id, t->position })) != E_OK)
		return err;
	t->removed = atol(PQcmdTuples(res));
	if (t->removed == 0)
		return req_fail(r, E_NOT_FOUND, t->position != NULL ?
		    "that track is not at that position" :
		    "that track is not in the playlist", NULL);
	return E_OK;
}

/* DELETE /api/playlists/:id/tracks/:trackId[?position=n] */
static enum app_err
playlist_track_remove(struct req *r)
{
	static const char *const known[] = { "position", NULL };
	struct remove_tx	 t;
	long			 n;
	enum app_err		 err;

	memset(&t, 0, sizeof(t));
	t.track_id = req_param(r, "trackId");
	t.position = req_query(r, "position");
	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (!uuid_valid(req_param(r, "id")) || !uuid_valid(t.track_id))
		return req_fail(r, E_BAD_REQUEST, "the ids in the path must be UUIDs",
		    NULL);
	if (t.position != NULL && config_parse_long(t.position, 0, 1000000, &n) != 0)
		return req_fail(r, E_BAD_REQUEST, "position must be a whole number >= 0",
		    NULL);
	if ((err = db_tx(r, "READ COMMITTED", remove_body, &t)) != E_OK)
		return err;
	return answer_doc(r, 200, req_param(r, "id"));
}

struct move_tx {
	long	 from, to, count;
};

static enum app_err
move_body(struct req *r, void *arg)
{
	/*
	 * The block [from, from+count) goes to start at `to` in the final
	 * order; the others keep their order around it.
	 */
	static const struct db_stmt st_move = {
		"pl_move",
		"UPDATE playlist_tracks pt SET position = s.np FROM ("
		"  SELECT id, CASE WHEN moved THEN $3::int + (position - $2::int)"
		"    WHEN r >= $3::int THEN r + $4::int ELSE r END AS np"
		"  FROM (SELECT id, position,"
		"    position >= $2::int AND position < $2::int + $4::int AS moved,"
		"    row_number() OVER (PARTITION BY position >= $2::int AND"
		"      position < $2::int + $4::int ORDER BY position) - 1 AS r"
		"    FROM playlist_tracks WHERE playlist_id = $1) q) s"
		" WHERE pt.id = s.id AND pt.position <> s.np",
		4
	};
	static const struct db_stmt st_touch = {
		"pl_touch",
		"UPDATE playlists SET updated_at = now(), version = version + 1"
		" WHERE id = $1",
		1
	};
	struct move_tx	*t = arg;
	struct playlist	 pl;
	PGresult	*res;
	enum app_err	 err;
	char		 a[3][24];

	if ((err = load_for_edit(r, &pl)) != E_OK)
		return err;
	if (t->from + t->count > pl.count)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "from + count must "
		    "be at most %ld, the number of entries", pl.count), NULL);
	if (t->to > pl.count - t->count)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "to must be from 0 "
		    "to %ld", pl.count - t->count), NULL);
	snprintf(a[0], sizeof(a[0]), "%ld", t->from);
	snprintf(a[1], sizeof(a[1]), "%ld", t->to);
	snprintf(a[2], sizeof(a[2]), "%ld", t->count);
	if ((err = db_exec(r, &res, &st_move, (const char *const[]){ pl.id, a[0],
	    a[1], a[2] })) != E_OK)
		return err;
	return db_exec(r, &res, &st_touch, (const char *const[]){ pl.id });
}

/*
 * PUT /api/playlists/:id/reorder {"from": i, "to": j, "count": k}: the k
 * entries at positions i.. move to start at position j of the result.
 */
static enum app_err
playlist_reorder(struct req *r)
{
	static const char *const allowed[] = { "from", "to", "count", NULL };
	struct json_object	*body;
	struct move_tx		 t = { 0, 0, 1 };
	int			 has_from, has_to, has_count;
	enum app_err		 err;

	if (!uuid_valid(req_param(r, "id")))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_int(r, body, "from", &has_from, 0, 1000000, &t.from)) != E_OK ||
	    (err = body_int(r, body, "to", &has_to, 0, 1000000, &t.to)) != E_OK ||
	    (err = body_int(r, body, "count", &has_count, 1, 1000000,
	    &t.count)) != E_OK)
		return err;
	if (!has_from)
		return body_fail(r, "from", "is required");
	if (!has_to)
		return body_fail(r, "to", "is required");
	if ((err = db_tx(r, "READ COMMITTED", move_body, &t)) != E_OK)
		return err;
	return answer_doc(r, 200, req_param(r, "id"));
}

/* ---- collaborators ------------------------------------------------------- */

/* GET /api/playlists/:id/collaborators: for the owner and collaborators. */
static enum app_err
collaborators_list(struct req *r)
{
	static const struct db_stmt st = {
		"pl_collaborators",
		"SELECT coalesce(json_agg(json_build_object('user_id', u.id,"
		" 'username', u.username, 'role', c.role, 'added_at',"
		" to_char(c.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
		" ORDER BY u.username), '[]')::text"
		" FROM playlist_collaborators c JOIN users u ON u.id = c.user_id"
		" WHERE c.playlist_id = $1",
		1
	};
	struct playlist		 pl;
	PGresult		*res;
	enum app_err		 err;
	struct json_object	*o;

	if ((err = playlist_load(r, LOAD_LIGHT, &pl)) != E_OK)
		return err;
	if (strcmp(pl.role, "public") == 0)
		return req_fail(r, E_FORBIDDEN, "only the owner and collaborators see "
		    "who collaborates", NULL);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ pl.id })) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "collaborators",
	    json_tokener_parse(PQgetvalue(res, 0, 0)));
	return resp_json(r, 200, o);
}

struct collab_tx {
	const char	*user_id, *username, *role;
};

static enum app_err
collab_add_body(struct req *r, void *arg)
{
	static const struct db_stmt st_user = {
		"pl_collab_user",
		"SELECT id FROM users WHERE is_active AND NOT is_anonymous AND"
		" (id = $1::uuid OR lower(username) = lower($2))",
		2
	};
	static const struct db_stmt st_upsert = {
		"pl_collab_upsert",
		"INSERT INTO playlist_collaborators (playlist_id, user_id, role)"
		" VALUES ($1, $2, $3) ON CONFLICT (playlist_id, user_id)"
		" DO UPDATE SET role = EXCLUDED.role",
		3
	};
	struct collab_tx	*t = arg;
	struct playlist		 pl;
	PGresult		*res;
	enum app_err		 err;

	if ((err = playlist_load(r, LOAD_LOCKED, &pl)) != E_OK ||
	    (err = must_own(r, &pl)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st_user, (const char *const[]){ t->user_id,
	    t->username })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_INVALID, "no such user", NULL);
	t->user_id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
	if (strcmp(t->user_id, pl.owner_id) == 0)
		return req_fail(r, E_INVALID, "the owner is not a collaborator", NULL);
	return db_exec(r, &res, &st_upsert, (const char *const[]){ pl.id, t->user_id,
	    t->role });
}

/* POST /api/playlists/:id/collaborators {"user_id"|"username", "role"} */
static enum app_err
collaborators_add(struct req *r)
{
	static const char *const allowed[] = { "user_id", "username", "role", NULL };
	struct json_object	*body;
	struct collab_tx	 t = { NULL, NULL, "editor" };
	const char		*role;
	enum app_err		 err;

	if (!uuid_valid(req_param(r, "id")))
		return req_fail(r, E_BAD_REQUEST, "the playlist id is not a UUID", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "user_id", 0, 36, 36, &t.user_id, NULL)) != E_OK ||
	    (err = body_string(r, body, "username", 0, 1, 64, &t.username, NULL)) != E_OK ||
	    (err = body_string(r, body, "role", 0, 1, 16, &role, NULL)) != E_OK)
		return err;
	if ((t.user_id == NULL) == (t.username == NULL))
		return body_fail(r, "user_id", "give user_id or username, one of them");
	if (t.user_id != NULL && !uuid_valid(t.user_id))
		return body_fail(r, "user_id", "must be a UUID");
	if (role != NULL) {
		if (strcmp(role, "editor") != 0 && strcmp(role, "viewer") != 0)
			return body_fail(r, "role", "must be editor or viewer");
		t.role = role;
	}
	if ((err = db_tx(r, "READ COMMITTED", collab_add_body, &t)) != E_OK)
		return err;
	return collaborators_list(r);
}

struct collab_rm_tx {
	const char	*user_id;
};

static enum app_err
collab_remove_body(struct req *r, void *arg)
{
	static const struct db_stmt st_remove = {
		"pl_collab_remove",
		"DELETE FROM playlist_collaborators WHERE playlist_id = $1 AND user_id = $2",
		2
	};
	struct collab_rm_tx	*t = arg;
	struct playlist		 pl;
	PGresult		*res;
	enum app_err		 err;

	if ((err = playlist_load(r, LOAD_LOCKED, &pl)) != E_OK)
		return err;
	/* The owner removes anyone; a collaborator may leave. */
	if (!is_owner(&pl) && strcmp(t->user_id, r->user_id) != 0)
		return must_own(r, &pl);
	if ((err = db_exec(r, &res, &st_remove, (const char *const[]){ pl.id,
	    t->user_id })) != E_OK)
		return err;
	if (atol(PQcmdTuples(res)) == 0)
		return req_fail(r, E_NOT_FOUND, "not a collaborator of this playlist",
		    NULL);
	return E_OK;
}

/* DELETE /api/playlists/:id/collaborators/:userId */
static enum app_err
collaborators_remove(struct req *r)
{
	struct collab_rm_tx	 t = { req_param(r, "userId") };
	enum app_err		 err;

	if (!uuid_valid(req_param(r, "id")) || !uuid_valid(t.user_id))
		return req_fail(r, E_BAD_REQUEST, "the ids in the path must be UUIDs",
		    NULL);
	if ((err = db_tx(r, "READ COMMITTED", collab_remove_body, &t)) != E_OK)
		return err;
	r->status = 204;
	return E_OK;
}

static const struct route playlist_routes[] = {
	/* method	pattern					handler			needs */
	{ M_GET,	"/api/playlists",			playlists_mine,		P_READ_PLAYLISTS, 0 },
	{ M_POST,	"/api/playlists",			playlists_create,	P_WRITE_PLAYLISTS, 0 },
	{ M_GET,	"/api/playlists/public",		playlists_public,	P_READ_PLAYLISTS, 0 },
	{ M_GET,	"/api/playlists/:id",			playlist_get,		P_READ_PLAYLISTS, 0 },
	{ M_PUT,	"/api/playlists/:id",			playlist_put,		P_WRITE_PLAYLISTS, 0 },
	{ M_DELETE,	"/api/playlists/:id",			playlist_delete,	P_DELETE_PLAYLISTS, 0 },
	{ M_GET,	"/api/playlists/:id/tracks",		playlist_tracks_get,	P_READ_PLAYLISTS, 0 },
	{ M_POST,	"/api/playlists/:id/tracks",		playlist_tracks_add,	P_WRITE_PLAYLISTS, 0 },
	{ M_DELETE,	"/api/playlists/:id/tracks/:trackId",	playlist_track_remove,	P_WRITE_PLAYLISTS, 0 },
	{ M_PUT,	"/api/playlists/:id/reorder",		playlist_reorder,	P_WRITE_PLAYLISTS, 0 },
	{ M_GET,	"/api/playlists/:id/collaborators",	collaborators_list,	P_READ_PLAYLISTS, 0 },
	{ M_POST,	"/api/playlists/:id/collaborators",	collaborators_add,	P_WRITE_PLAYLISTS, 0 },
	{ M_DELETE,	"/api/playlists/:id/collaborators/:userId", collaborators_remove, P_WRITE_PLAYLISTS, 0 },
};

const struct route_table playlist_route_table = {
	playlist_routes, sizeof(playlist_routes) / sizeof(playlist_routes[0])
};
