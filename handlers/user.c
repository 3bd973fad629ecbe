/*
 * handlers/user.c: the caller's own data, /api/user/... Liked tracks and
 * starred playlists (lists, id lists, like/unlike, star/unstar), playback
 * history, recently played tracks and search history. Every route acts
 * on r->user_id only: no path carries a user id, so nobody else's data
 * can be named, let alone reached.
 *
 * Every item of a list is a JSON document the database writes (the
 * stored track document, playlist_json(), or one built by concatenation
 * here), so a page is those documents joined by resp_json_list().
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

/* ---- SQL fragments ------------------------------------------------------ */

/* A timestamptz as the API writes times: a JSON string, UTC, seconds. */
#define JSON_TIME(col) \
	"to_json(to_char(" col " AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))::text"
/* A timestamptz as whole microseconds since 1970, exact: the keyset key. */
#define EPOCH_US(col)	"(extract(epoch FROM " col ") * 1000000)::bigint"
/* Parameter n (microseconds since 1970, or NULL) back as a timestamptz. */
#define AT_US(n) \
	"('epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond')"

/* Whether the caller ($1) likes track t. */
#define LIKED_T \
	"EXISTS (SELECT 1 FROM user_favorites lf" \
	" WHERE lf.user_id = $1::uuid AND lf.track_id = t.id)"

/* ---- liked tracks ------------------------------------------------------- */

/*
 * A list statement answers rows of (item, key time in microseconds, id),
 * newest first; see user_page() for the parameters.
 */
#define FAV_SELECT \
	"SELECT left(track_json_for(t.api_doc, true), -1) || ',\"liked_at\":' ||" \
	" " JSON_TIME("f.created_at") " || '}', " EPOCH_US("f.created_at") ", f.id" \
	" FROM user_favorites f JOIN tracks t ON t.id = f.track_id" \
	" WHERE f.user_id = $1::uuid AND t.is_active"
#define FAV_ORDER	" ORDER BY f.created_at DESC, f.id DESC LIMIT $2::int"

static const struct db_stmt st_fav_first = {
	"user_fav_first", FAV_SELECT FAV_ORDER " OFFSET $3::int", 3
};

static const struct db_stmt st_fav_after = {
	"user_fav_after",
	FAV_SELECT " AND (f.created_at, f.id) < (" AT_US(3) ", $4::uuid)" FAV_ORDER,
	4
};

/* Every id in one row, one string: no JSON built or parsed in the worker. */
static const struct db_stmt st_fav_ids = {
	"user_fav_ids",
	"SELECT '{\"ids\":[' || coalesce(string_agg('\"' || f.track_id || '\"', ','"
	"   ORDER BY f.created_at DESC, f.id DESC), '') ||"
	" '],\"count\":' || count(*) || '}'"
	" FROM user_favorites f JOIN tracks t ON t.id = f.track_id"
	" WHERE f.user_id = $1::uuid AND t.is_active",
	1
};

/*
 * One statement: the row only goes in for an active track, and a like
 * that is there already (or that a parallel request is adding) is left
 * as it is. True when the track exists.
 */
static const struct db_stmt st_like = {
	"user_like",
	"WITH t AS (SELECT id FROM tracks WHERE id = $2::uuid AND is_active),"
	" ins AS (INSERT INTO user_favorites (user_id, track_id)"
	"   SELECT $1::uuid, id FROM t ON CONFLICT (user_id, track_id) DO NOTHING)"
	" SELECT EXISTS (SELECT 1 FROM t)",
	2
};

/*
 * True when there was a like to remove, or the track exists: a like of a
 * track deactivated since can still be taken back.
 */
static const struct db_stmt st_unlike = {
	"user_unlike",
	"WITH d AS (DELETE FROM user_favorites"
	"   WHERE user_id = $1::uuid AND track_id = $2::uuid RETURNING 1)"
	" SELECT EXISTS (SELECT 1 FROM d)"
	"   OR EXISTS (SELECT 1 FROM tracks WHERE id = $2::uuid AND is_active)",
	2
};

/* ---- starred playlists -------------------------------------------------- */

/* Only the playlists the caller may see now (see playlist_role()). */
#define STAR_SELECT \
	"SELECT left(playlist_json(p, $1::uuid), -1) || ',\"starred_at\":' ||" \
	" " JSON_TIME("s.created_at") " || '}', " EPOCH_US("s.created_at") ", s.id" \
	" FROM starred_playlists s JOIN playlists p ON p.id = s.playlist_id" \
	" WHERE s.user_id = $1::uuid AND playlist_role(p, $1::uuid) IS NOT NULL"
#define STAR_ORDER	" ORDER BY s.created_at DESC, s.id DESC LIMIT $2::int"

static const struct db_stmt st_star_first = {
	"user_star_first", STAR_SELECT STAR_ORDER " OFFSET $3::int", 3
};

static const struct db_stmt st_star_after = {
	"user_star_after",
	STAR_SELECT " AND (s.created_at, s.id) < (" AT_US(3) ", $4::uuid)" STAR_ORDER,
	4
};

static const struct db_stmt st_star_ids = {
	"user_star_ids",
	"SELECT '{\"ids\":[' || coalesce(string_agg('\"' || s.playlist_id || '\"', ','"
	"   ORDER BY s.created_at DESC, s.id DESC), '') ||"
	" '],\"count\":' || count(*) || '}'"
	" FROM starred_playlists s JOIN playlists p ON p.id = s.playlist_id"
	" WHERE s.user_id = $1::uuid AND playlist_role(p, $1::uuid) IS NOT NULL",
	1
};

/* As st_like; the star_count trigger (sql/009) counts inserted rows only. */
static const struct db_stmt st_star = {
	"user_star",
	"WITH p AS (SELECT p.id FROM playlists p"
	"   WHERE p.id = $2::uuid AND playlist_role(p, $1::uuid) IS NOT NULL),"
	" ins AS (INSERT INTO starred_playlists (user_id, playlist_id)"
	"   SELECT $1::uuid, id FROM p ON CONFLICT (user_id, playlist_id) DO NOTHING)"
	" SELECT EXISTS (SELECT 1 FROM p)",
	2
};

/* As st_unlike: a star on a playlist hidden since can be taken back. */
static const struct db_stmt st_unstar = {
	"user_unstar",
	"WITH d AS (DELETE FROM starred_playlists"
	"   WHERE user_id = $1::uuid AND playlist_id = $2::uuid RETURNING 1)"
	" SELECT EXISTS (SELECT 1 FROM d)"
	"   OR EXISTS (SELECT 1 FROM playlists p"
	"     WHERE p.id = $2::uuid AND playlist_role(p, $1::uuid) IS NOT NULL)",
	2
};

/* ---- history ------------------------------------------------------------ */

/*
 * The track is null once it is deleted (the history row keeps a NULL
 * track_id) or deactivated. The range bounds are the last two parameters,
 * NULL when not given.
 */
#define HIST_SELECT \
	"SELECT '{\"played_at\":' || " JSON_TIME("h.played_at") " ||" \
	" ',\"duration_played\":' || coalesce(h.duration_played::text, 'null') ||" \
	" ',\"source\":' || coalesce(to_json(h.source)::text, 'null') ||" \
	" ',\"track\":' || coalesce(track_json_for(t.api_doc, " LIKED_T "), 'null')" \
	" || '}', " EPOCH_US("h.played_at") ", h.id" \
	" FROM playback_history h" \
	" LEFT JOIN tracks t ON t.id = h.track_id AND t.is_active" \
	" WHERE h.user_id = $1::uuid"
#define HIST_RANGE(from, to) \
	" AND h.played_at >= coalesce(" AT_US(from) ", '-infinity')" \
	" AND h.played_at <= coalesce(" AT_US(to) ", 'infinity')"
#define HIST_ORDER	" ORDER BY h.played_at DESC, h.id DESC LIMIT $2::int"

static const struct db_stmt st_hist_first = {
	"user_hist_first",
	HIST_SELECT HIST_RANGE(4, 5) HIST_ORDER " OFFSET $3::int",
	5
};

/* The index is (user_id, played_at): the plain bound lets it stop early. */
static const struct db_stmt st_hist_after = {
	"user_hist_after",
	HIST_SELECT HIST_RANGE(5, 6) " AND h.played_at <= " AT_US(3)
	" AND (h.played_at, h.id) < (" AT_US(3) ", $4::uuid)" HIST_ORDER,
	6
};

/* Each track once, at its latest play, with the caller's count of plays. */
static const struct db_stmt st_recent = {
	"user_recent",
	"SELECT '{\"track\":' || track_json_for(t.api_doc, " LIKED_T ") ||"
	" ',\"last_played_at\":' || " JSON_TIME("r.last") " ||"
	" ',\"plays\":' || r.plays || '}'"
	" FROM (SELECT track_id, max(played_at) AS last, count(*) AS plays"
	"   FROM playback_history WHERE user_id = $1::uuid AND track_id IS NOT NULL"
	"   GROUP BY track_id) r"
	" JOIN tracks t ON t.id = r.track_id AND t.is_active"
	" ORDER BY r.last DESC, r.track_id DESC LIMIT $2::int",
	2
};

#define SEARCH_SELECT \
	"SELECT '{\"query\":' || to_json(s.query)::text ||" \
	" ',\"filters\":' || s.filters::text ||" \
	" ',\"result_count\":' || s.result_count ||" \
	" ',\"clicked_track_id\":' || coalesce(to_json(s.clicked_track_id)::text, 'null') ||" \
	" ',\"searched_at\":' || " JSON_TIME("s.searched_at") " || '}', " \
	EPOCH_US("s.searched_at") ", s.id" \
	" FROM search_history s WHERE s.user_id = $1::uuid"
#define SEARCH_ORDER	" ORDER BY s.searched_at DESC, s.id DESC LIMIT $2::int"

static const struct db_stmt st_search_first = {
	"user_search_first", SEARCH_SELECT SEARCH_ORDER " OFFSET $3::int", 3
};

static const struct db_stmt st_search_after = {
	"user_search_after",
	SEARCH_SELECT " AND s.searched_at <= " AT_US(3)
	" AND (s.searched_at, s.id) < (" AT_US(3) ", $4::uuid)" SEARCH_ORDER,
	4
};

/*
 * A clear, in one transaction: the time first, then the rows. A batch of
 * searches written meanwhile (fcgi/history.c) share-locks the user's row,
 * so it either commits before the time is set (and its rows are deleted:
 * the DELETE, a statement of its own, sees them) or waits for the clear
 * and then skips the rows older than it.
 */
static const struct db_stmt st_search_cleared_at = {
	"user_search_cleared_at",
	"UPDATE users SET search_history_cleared_at = $2::timestamptz WHERE id = $1::uuid",
	2
};
static const struct db_stmt st_search_clear = {
	"user_search_clear",
	"DELETE FROM search_history WHERE user_id = $1::uuid",
	1
};

/* arg: the time of the clear, RFC 3339 */
static enum app_err
search_clear_body(struct req *r, void *arg)
{
	PGresult	*res;
	enum app_err	 err;

	if ((err = db_exec(r, &res, &st_search_cleared_at,
	    (const char *const[]){ r->user_id, arg })) != E_OK)
		return err;
	return db_exec(r, &res, &st_search_clear, (const char *const[]){ r->user_id });
}

/* ---- times -------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
	long long	 era;
	unsigned	 yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* n digits at s as a number; -1 unless all n are digits. */
static int
digits(const char *s, int n)
{
	int	 v = 0, i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * See fcgi/djamms.h. Written out by hand rather than with strptime() and
 * timegm(): those follow the locale and TZ, accept spaces and one-digit
 * fields, and know nothing of fractions or "+02:00".
 */
int
iso8601_to_us(const char *s, int end_of_day, long long *us)
{
	static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31,
	    30, 31, 30, 31 };
	int		 y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0, n;
	const char	*p;

	if (s == NULL || strlen(s) < 10 || (y = digits(s, 4)) < 1 || s[4] != '-' ||
	    (mo = digits(s + 5, 2)) < 1 || mo > 12 || s[7] != '-' ||
	    (d = digits(s + 8, 2)) < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0))))
		return -1;
	p = s + 10;
	if (*p == '\0') {
		*us = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000000LL;
		if (end_of_day)
			*us += 86400000000LL - 1;
		return 0;
	}
	if ((*p != 'T' && *p != 't' && *p != ' ') ||
	    (h = digits(p + 1, 2)) < 0 || h > 23 || p[3] != ':' ||
	    (mi = digits(p + 4, 2)) < 0 || mi > 59)
		return -1;
	p += 6;
	if (*p == ':') {
		if ((sec = digits(p + 1, 2)) < 0 || sec > 59)
			return -1;
		p += 3;
		if (*p == '.' || *p == ',') {
			/* Microseconds are what the database keeps; more is cut. */
			for (p++, n = 0; isdigit((unsigned char)*p); p++, n++)
				if (n < 6)
					frac = frac * 10 + (*p - '0');
			if (n == 0 || n > 9)
				return -1;
			for (; n < 6; n++)
				frac *= 10;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int	 oh, om = 0, sign = *p == '-' ? -1 : 1;

		if ((oh = digits(p + 1, 2)) < 0 || oh > 23)
			return -1;
		p += 3;
		if (*p == ':' || isdigit((unsigned char)*p)) {
			p += *p == ':';
			if ((om = digits(p, 2)) < 0 || om > 59)
				return -1;
			p += 2;
		}
		off = sign * (oh * 60 + om);
	}
	if (*p != '\0')
		return -1;
	*us = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL +
	    h * 3600LL + mi * 60LL + sec - off * 60LL) * 1000000LL) + frac;
	return 0;
}

/* ---- cursors ------------------------------------------------------------ */

/*
 * A cursor is base64url of "<microseconds>.<id>": the sort key of the
 * last item shown, exact, and its row id to break ties.
 */
static char *
cursor_encode(struct req *r, const char *us, const char *id)
{
	char	*raw = pool_printf(r->pool, "%s.%s", us, id);
	char	*out = pool_alloc(r->pool, (strlen(raw) + 2) / 3 * 4 + 1);

	b64url_encode((unsigned char *)raw, strlen(raw), out);
	return out;
}

/* OUT: *us and *id, pool strings. 0 if cur is one cursor_encode() made. */
static int
cursor_decode(struct req *r, const char *cur, char **us, char **id)
{
	unsigned char	 raw[96];
	size_t		 n;
	char		*s, *dot;
	long		 v;

	if (b64url_decode(cur, strlen(cur), raw, sizeof(raw) - 1, &n) != 0)
		return -1;
	raw[n] = '\0';
	if (memchr(raw, '\0', n) != NULL)
		return -1;
	s = pool_strndup(r->pool, (char *)raw, n);
	if ((dot = strchr(s, '.')) == NULL)
		return -1;
	*dot = '\0';
	/* Years 0001 to 9999, as microseconds since 1970. */
	if (config_parse_long(s, -62135596800000000L, 253402300799999999L, &v) != 0 ||
	    !uuid_valid(dot + 1))
		return -1;
	*us = s;
	*id = dot + 1;
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/*
 * One page of a list of the caller's, newest first. first takes ($1 the
 * caller, $2 the limit + 1, $3 the offset, extra...), after takes ($1,
 * $2, $3 the cursor's time, $4 its id, extra...); both answer rows of
 * (item JSON, time in microseconds, id). The body is {"<key>":[items],
 * "limit", "page" (only without a cursor), "next_cursor"}.
 */
static enum app_err
user_page(struct req *r, const char *key, const struct db_stmt *first,
    const struct db_stmt *after, const char *const *extra, int nextra)
{
	const char		*cur = req_query(r, "cursor"), *args[8];
	char			 lim[24], off[24], *cus = NULL, *cid = NULL;
	long			 page, limit;
	int			 n, i, nrows, more;
	PGresult		*res;
	struct json_object	*o;
	enum app_err		 err;

	if ((err = query_page(r, 50, 200, &page, &limit)) != E_OK)
		return err;
	if (cur != NULL && cursor_decode(r, cur, &cus, &cid) != 0)
		return req_fail(r, E_BAD_REQUEST, "cursor is not one this API made",
		    NULL);
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	args[0] = r->user_id;
	args[1] = lim;
	if (cur == NULL) {
		snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
		args[2] = off;
		n = 3;
	} else {
		args[2] = cus;
		args[3] = cid;
		n = 4;
	}
	for (i = 0; i < nextra; i++)
		args[n++] = extra[i];
	assert(n == (cur == NULL ? first : after)->nparams);
	if ((err = db_exec(r, &res, cur == NULL ? first : after, args)) != E_OK)
		return err;
	nrows = PQntuples(res);
	more = nrows > limit;
	if (more)
		nrows = (int)limit;
	o = json_object_new_object();
	json_object_object_add(o, "limit", json_object_new_int64(limit));
	if (cur == NULL)
		json_object_object_add(o, "page", json_object_new_int64(page));
	json_object_object_add(o, "next_cursor", more ? json_object_new_string(
	    cursor_encode(r, PQgetvalue(res, nrows - 1, 1),
	    PQgetvalue(res, nrows - 1, 2))) : NULL);
	return resp_json_list(r, 200, key, res, 0, nrows, o);
}

/* A statement that answers one row, one column of JSON: that is the body. */
static enum app_err
user_json_row(struct req *r, const struct db_stmt *st)
{
	PGresult	*res;
	enum app_err	 err;

	if ((err = db_exec(r, &res, st, (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_INTERNAL;
	return resp_json_text(r, 200, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
}

/*
 * The :id of a like or star: a UUID (400 otherwise), lower-cased for the
 * answer. A body, if any, must be an empty JSON object.
 */
static enum app_err
target_id(struct req *r, const char *what, char **id)
{
	static const char *const none[] = { NULL };
	const char		*raw = req_param(r, "id");
	const char		*cl = req_env(r, "CONTENT_LENGTH");
	struct json_object	*body;
	enum app_err		 err;
	char			*p;

	if ((err = query_only(r, none)) != E_OK)
		return err;
	if (!uuid_valid(raw))
		return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
		    "the %s id must be a UUID", what), NULL);
	if (cl != NULL && *cl != '\0' && strcmp(cl, "0") != 0 &&
	    ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, none, NULL)) != E_OK))
		return err;
	*id = pool_strdup(r->pool, raw);
	for (p = *id; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return E_OK;
}

/*
 * Run st (a like, unlike, star or unstar: one boolean) for id. OUT:
 * *found, whether the target exists for the caller. A target deleted between the statement's look
 * and its insert fails the foreign key: that is "not found" too.
 */
static enum app_err
user_mark(struct req *r, const struct db_stmt *st, const char *id, int *found)
{
	PGresult	*res;
	enum app_err	 err;
	const char	*state;

	err = db_exec(r, &res, st, (const char *const[]){ r->user_id, id });
	if (err != E_OK) {
		state = db_last_sqlstate();
		if (state != NULL && strcmp(state, "23503") == 0)
			return E_NOT_FOUND;
		return err;
	}
	*found = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	return E_OK;
}

/* {"<idkey>": id, "<flag>": on}. */
static enum app_err
mark_answer(struct req *r, const char *idkey, const char *id, const char *flag,
    int on)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, idkey, json_object_new_string(id));
	json_object_object_add(o, flag, json_object_new_boolean(on));
	return resp_json(r, 200, o);
}

/* ---- routes ------------------------------------------------------------- */

static const char *const page_args[] = { "cursor", "page", "limit", NULL };
static const char *const no_args[] = { NULL };

/* GET /api/user/favorites: liked active tracks, newest like first. */
static enum app_err
user_favorites_list(struct req *r)
{
	enum app_err	 err;

	if ((err = query_only(r, page_args)) != E_OK)
		return err;
	return user_page(r, "tracks", &st_fav_first, &st_fav_after, NULL, 0);
}

/*
 * The liked ids are read far more often than they change (a client syncs
 * its liked set on every start), and a long list costs the database a few
 * milliseconds each time: the answer is kept in Redis, stamped with the
 * library's version (a track that goes inactive leaves the list) and the
 * user's own likes version (favver:<uid>, moved on after every like and
 * unlike commits). A stamp read before the list was built never matches a
 * later change, so a stale list is never served. One round trip reads the
 * versions and the cached answer together; each worker also keeps its
 * callers' lists under the same versions as this machine knows them
 * (likes_page_key()), and then makes no round trip at all.
 */
#define FAVIDS_TTL_S	600

static void
favorites_changed(struct req *r)
{
	rds_command(r, "INCR favver:%s", r->user_id);
	revoke_note_likes(r->user_id);	/* this machine at once; sql/011 the rest */
}

/* GET /api/user/favorites/ids: {"ids":[...],"count":n}, newest first. */
static enum app_err
user_favorites_ids(struct req *r)
{
	const char		*cached;
	char			 stamp[96], *key, l1key[65];
	size_t			 clen;
	PGresult		*res;
	enum app_err		 err;

	if ((err = query_only(r, no_args)) != E_OK)
		return err;
	if (likes_page_key(r, "favids", l1key) == 0 &&
	    (cached = pagecache_get(l1key, 0, time(NULL), &clen)) != NULL) {
		resp_header(r, "X-Cache", "hit");
		return resp_json_text(r, 200, cached, clen);
	}
	key = pool_printf(r->pool, "favids:%s", r->user_id);
	if ((cached = rds_stamped_get(r, key, "favver", "ids", stamp, sizeof(stamp),
	    &clen)) == NULL) {
		if ((err = db_exec(r, &res, &st_fav_ids,
		    (const char *const[]){ r->user_id })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return E_INTERNAL;
		cached = PQgetvalue(res, 0, 0);
		clen = (size_t)PQgetlength(res, 0, 0);
		rds_stamped_put(r, key, stamp, cached, clen, FAVIDS_TTL_S);
	} else
		resp_header(r, "X-Cache", "hit");
	if (l1key[0] != '\0')
		pagecache_put(l1key, 0, time(NULL) + FAVIDS_TTL_S, cached, clen);
	return resp_json_text(r, 200, cached, clen);
}

/* POST /api/user/favorites/:id: like an active track; liking twice is one like. */
static enum app_err
user_favorite_add(struct req *r)
{
	char		*id;
	int		 found = 0;
	enum app_err	 err;

	if ((err = target_id(r, "track", &id)) != E_OK ||
	    (err = user_mark(r, &st_like, id, &found)) != E_OK)
		return err;
	if (!found)
		return req_fail(r, E_NOT_FOUND, "no such track", NULL);
	favorites_changed(r);
	return mark_answer(r, "track_id", id, "liked", 1);
}

/* DELETE /api/user/favorites/:id: unlike; 200 whether or not it was liked. */
static enum app_err
user_favorite_remove(struct req *r)
{
	char		*id;
	int		 found = 0;
	enum app_err	 err;

	if ((err = target_id(r, "track", &id)) != E_OK ||
	    (err = user_mark(r, &st_unlike, id, &found)) != E_OK)
		return err;
	if (!found)
		return req_fail(r, E_NOT_FOUND, "no such track", NULL);
	favorites_changed(r);
	return mark_answer(r, "track_id", id, "liked", 0);
}

/* GET /api/user/starred-playlists: starred playlists the caller still sees. */
static enum app_err
user_starred_list(struct req *r)
{
	enum app_err	 err;

	if ((err = query_only(r, page_args)) != E_OK)
		return err;
	return user_page(r, "playlists", &st_star_first, &st_star_after, NULL, 0);
}

static enum app_err
user_starred_ids(struct req *r)
{
	enum app_err	 err;

	if ((err = query_only(r, no_args)) != E_OK)
		return err;
	return user_json_row(r, &st_star_ids);
}

/*
 * POST /api/user/starred-playlists/:id: only a playlist the caller can
 * see; any other id is 404, never 403, so ids cannot be probed.
 */
static enum app_err
user_star_add(struct req *r)
{
	char		*id;
	int		 found = 0;
	enum app_err	 err;

	if ((err = target_id(r, "playlist", &id)) != E_OK ||
	    (err = user_mark(r, &st_star, id, &found)) != E_OK)
		return err;
	if (!found)
		return req_fail(r, E_NOT_FOUND, "no such playlist", NULL);
	return mark_answer(r, "playlist_id", id, "starred", 1);
}

static enum app_err
user_star_remove(struct req *r)
{
	char		*id;
	int		 found = 0;
	enum app_err	 err;

	if ((err = target_id(r, "playlist", &id)) != E_OK ||
	    (err = user_mark(r, &st_unstar, id, &found)) != E_OK)
		return err;
	if (!found)
		return req_fail(r, E_NOT_FOUND, "no such playlist", NULL);
	return mark_answer(r, "playlist_id", id, "starred", 0);
}

/*
 * The time query argument name as microseconds (text) into out[24], or
 * NULL when absent. A date alone means its first microsecond, or its
 * last when end_of_day. OUT: *val, *us.
 */
static enum app_err
time_arg(struct req *r, const char *name, int end_of_day, char out[24],
    const char **val, long long *us)
{
	const char	*v = req_query(r, name);

	*val = NULL;
	if (v == NULL)
		return E_OK;
	if (iso8601_to_us(v, end_of_day, us) != 0) {
		struct json_object	*d = json_object_new_object();

		json_object_object_add(d, "field", json_object_new_string(name));
		json_object_object_add(d, "reason", json_object_new_string(
		    "an ISO 8601 date or date-time, e.g. 2024-05-01 or "
		    "2024-05-01T18:30:00Z"));
		return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
		    "%s is not an ISO 8601 date or date-time", name), d);
	}
	snprintf(out, 24, "%lld", *us);
	*val = out;
	return E_OK;
}

/*
 * GET /api/user/history[?from=&to=]: the caller's plays, newest first.
 * Both bounds are inclusive; a date alone covers its whole day (UTC).
 */
static enum app_err
user_history(struct req *r)
{
	static const char *const known[] = { "cursor", "page", "limit", "from", "to",
	    NULL };
	char			 from[24], to[24];
	const char		*range[2];
	long long		 from_us = 0, to_us = 0;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = time_arg(r, "from", 0, from, &range[0], &from_us)) != E_OK ||
	    (err = time_arg(r, "to", 1, to, &range[1], &to_us)) != E_OK)
		return err;
	if (range[0] != NULL && range[1] != NULL && from_us > to_us)
		return req_fail(r, E_BAD_REQUEST, "from is after to", NULL);
	return user_page(r, "history", &st_hist_first, &st_hist_after, range, 2);
}

/* GET /api/user/recently-played: each track once, latest play first. */
static enum app_err
user_recently_played(struct req *r)
{
	static const char *const known[] = { "limit", NULL };
	char			 lim[24];
	long			 page, limit;
	PGresult		*res;
	struct json_object	*o;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 20, 100, &page, &limit)) != E_OK)
		return err;
	snprintf(lim, sizeof(lim), "%ld", limit);
	if ((err = db_exec(r, &res, &st_recent,
	    (const char *const[]){ r->user_id, lim })) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "limit", json_object_new_int64(limit));
	return resp_json_list(r, 200, "recently_played", res, 0, PQntuples(res), o);
}

/* GET /api/user/search-history: the caller's searches, newest first. */
static enum app_err
user_search_history(struct req *r)
{
	enum app_err	 err;

	if ((err = query_only(r, page_args)) != E_OK)
		return err;
	return user_page(r, "searches", &st_search_first, &st_search_after, NULL, 0);
}

/* DELETE /api/user/search-history: all of it, in one statement. */
static enum app_err
user_search_history_clear(struct req *r)
{
	enum app_err	 err;
	char		 now[40];

	if ((err = query_only(r, no_args)) != E_OK)
		return err;
	log_time_rfc3339(now);
	if ((err = db_tx(r, "READ COMMITTED", search_clear_body, now)) != E_OK)
		return err;
	history_changed(r->user_id);
	r->status = 204;
	return E_OK;
}

static const struct route user_routes[] = {
	/* methods	pattern					handler			needs		flags */
	{ M_GET,	"/api/user/favorites",			user_favorites_list,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/user/favorites/ids",		user_favorites_ids,	P_READ_TRACKS,	0 },
	{ M_POST,	"/api/user/favorites/:id",		user_favorite_add,	P_READ_TRACKS,	0 },
	{ M_DELETE,	"/api/user/favorites/:id",		user_favorite_remove,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/user/starred-playlists",		user_starred_list,	P_READ_PLAYLISTS, 0 },
	{ M_GET,	"/api/user/starred-playlists/ids",	user_starred_ids,	P_READ_PLAYLISTS, 0 },
	{ M_POST,	"/api/user/starred-playlists/:id",	user_star_add,		P_READ_PLAYLISTS, 0 },
	{ M_DELETE,	"/api/user/starred-playlists/:id",	user_star_remove,	P_READ_PLAYLISTS, 0 },
	{ M_GET,	"/api/user/history",			user_history,		P_READ_TRACKS,	0 },
	{ M_GET,	"/api/user/recently-played",		user_recently_played,	P_READ_TRACKS,	0 },
	{ M_GET,	"/api/user/search-history",		user_search_history,	P_READ_TRACKS,
	    ROUTE_READS_HISTORY },
	{ M_DELETE,	"/api/user/search-history",		user_search_history_clear, P_READ_TRACKS, 0 },
};

const struct route_table user_route_table = {
	user_routes, sizeof(user_routes) / sizeof(user_routes[0])
};
