/*
 * tests/it_playlists.c: playlists end to end through nginx. Who sees and
 * changes what (a matrix of routes by caller), entries added, moved and
 * removed with positions kept dense, eight clients editing one playlist
 * at once, the library taking a track away, limits and bad input.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"

static long		 run_id;

/* n catalogue tracks named prefix-0.. with 100+i seconds. OUT: ids. */
static int
make_tracks(const char *prefix, int n, char ids[][37])
{
	const char	*out;
	int		 i;

	out = it_psql("INSERT INTO tracks (title, artist, duration, source)"
	    " SELECT '%s-' || i, 'Playlist Tester', 100 + i, 'catalog'"
	    " FROM generate_series(0, %d) i RETURNING id", prefix, n - 1);
	for (i = 0; i < n; i++) {
		if (strlen(out) < 36)
			return -1;
		memcpy(ids[i], out, 36);
		ids[i][36] = '\0';
		out += 36;
		while (*out == '\n')
			out++;
	}
	return 0;
}

static long
add_tracks(const struct it_session *s, const char *pl, char ids[][37], int n,
    const char *extra)
{
	char	 body[8192], path[128];
	size_t	 o;
	int	 i;

	o = (size_t)snprintf(body, sizeof(body), "{\"track_ids\":[");
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"%s\"",
		    i ? "," : "", ids[i]);
	snprintf(body + o, sizeof(body) - o, "]%s%s}", extra ? "," : "",
	    extra ? extra : "");
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks", pl);
	return it_status("POST", path, s->access, body);
}

/*
 * The playlist's entries as the database has them: "i:title,..." and
 * whether positions are exactly 0..n-1 and the stored count matches.
 */
static const char *
entries_of(const char *pl)
{
	return it_psql("SELECT string_agg(split_part(t.title, '-', 2), ',' ORDER BY"
	    " pt.position) FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id"
	    " WHERE pt.playlist_id = '%s'", pl);
}

static int
consistent(const char *pl)
{
	return strcmp(it_psql("SELECT (SELECT count(*) = coalesce(max(position) + 1, 0)"
	    " AND count(DISTINCT position) = count(*) FROM playlist_tracks"
	    " WHERE playlist_id = '%s') AND (SELECT track_count FROM playlists"
	    " WHERE id = '%s') = (SELECT count(*) FROM playlist_tracks"
	    " WHERE playlist_id = '%s') AND (SELECT total_duration FROM playlists"
	    " WHERE id = '%s') = (SELECT coalesce(sum(t.duration), 0) FROM"
	    " playlist_tracks pt JOIN tracks t ON t.id = pt.track_id"
	    " WHERE pt.playlist_id = '%s')", pl, pl, pl, pl, pl), "t") == 0;
}

#define expect_entries(pl, want) do { const char *g_ = entries_of(pl); \
	if (strcmp(g_, (want)) != 0) { t_fail(__FILE__, __LINE__, \
	    "expected entries %s, got %s", (want), g_); return; } \
	if (!consistent(pl)) { t_fail(__FILE__, __LINE__, \
	    "positions or counts are off"); return; } } while (0)

/* ---- create, read, change, delete --------------------------------------- */

static void
test_playlist_create_read_change_delete(void)
{
	struct it_session	 a;
	struct http_res	 res;
	char		 id[37], path[128];

	expect(it_new_user("plcrud", &a) == 0);
	expect(it_new_playlist(&a, "Morning", 0, id) == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s", id);
	res = http_bearer("GET", path, a.access, NULL);
	expect_status(&res, 200);
	expect_json_str(&res, "name", "Morning");
	expect_json_str(&res, "role", "owner");
	expect_json_str(&res, "owner.username", a.name);
	expect(json_int(&res, "track_count", -1) == 0);
	http_free(&res);
	res = http_bearer("PUT", path, a.access,
	    "{\"name\":\"Morning Coffee\",\"description\":\"7 to 11\"}");
	expect_status(&res, 200);
	expect_json_str(&res, "name", "Morning Coffee");
	expect_json_str(&res, "description", "7 to 11");
	http_free(&res);
	res = http_bearer("GET", "/api/playlists?sort=name", a.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "total", 0) == 1);
	expect_json_str(&res, "playlists.0.name", "Morning Coffee");
	http_free(&res);
	expect(it_status("DELETE", path, a.access, NULL) == 204);
	expect(it_status("GET", path, a.access, NULL) == 404);
}

static void
test_playlist_fields_outside_the_allow_list_are_refused(void)
{
	struct it_session	 a;
	char		 id[37], path[128];

	expect(it_new_user("plmass", &a) == 0);
	expect(it_status("POST", "/api/playlists", a.access,
	    "{\"name\":\"x\",\"owner_id\":\"00000000-0000-0000-0000-000000000000\"}") == 400);
	expect(it_status("POST", "/api/playlists", a.access, "{\"name\":\"\"}") == 422);
	expect(it_status("POST", "/api/playlists", a.access, "{}") == 422);
	expect(it_status("POST", "/api/playlists", a.access, "{\"name\":7}") == 422);
	expect(it_status("POST", "/api/playlists", a.access, "[1,2]") == 400);
	expect(it_new_playlist(&a, "Mine", 0, id) == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s", id);
	expect(it_status("PUT", path, a.access, "{\"track_count\":99}") == 400);
	expect(it_status("PUT", path, a.access, "{\"star_count\":5}") == 400);
	expect(it_status("PUT", path, a.access, "{\"name\":null}") == 422);
	expect(strcmp(it_psql("SELECT track_count || ' ' || star_count FROM playlists"
	    " WHERE id = '%s'", id), "0 0") == 0);
}

static void
test_playlist_malformed_ids_are_400_not_500(void)
{
	struct it_session	 a;
	char		 id[37], path[256];
	struct http_res	 res;

	expect(it_new_user("plbad", &a) == 0);
	res = http_bearer("GET", "/api/playlists/not-a-uuid", a.access, NULL);
	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	http_free(&res);
	expect(it_status("GET", "/api/playlists/1%27%20OR%201=1/tracks", a.access,
	    NULL) == 400);
	expect(it_new_playlist(&a, "P", 0, id) == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks/zzz", id);
	expect(it_status("DELETE", path, a.access, NULL) == 400);
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks", id);
	expect(it_status("POST", path, a.access, "{\"track_ids\":[\"nope\"]}") == 400);
	expect(it_status("POST", path, a.access, "{\"track_ids\":\"nope\"}") == 422);
	expect(it_status("POST", path, a.access, "{\"track_ids\":[]}") == 422);
	expect(it_status("GET", "/api/playlists?sort=owner_id", a.access, NULL) == 400);
	expect(it_status("GET", "/api/playlists/public?x=1", a.access, NULL) == 400);
}

/* The cover is the first entries' art unless one is chosen. */
static void
test_playlist_cover_is_the_entries_art_unless_chosen(void)
{
	struct it_session	 a;
	char			 t[3][37], id[37], path[128], body[128], want[128];
	struct http_res		 res;

	expect(it_new_user("plcover", &a) == 0);
	expect(make_tracks("cover", 3, t) == 0);
	it_psql("UPDATE tracks SET has_cover = true WHERE id IN ('%s', '%s')", t[1], t[2]);
	expect(it_new_playlist(&a, "Covered", 0, id) == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s", id);
	res = http_bearer("GET", path, a.access, NULL);
	expect(json_has(&res, "cover_url") && json_str(&res, "cover_url") == NULL);
	http_free(&res);
	expect(add_tracks(&a, id, t, 3, NULL) == 201);
	res = http_bearer("GET", path, a.access, NULL);
	snprintf(want, sizeof(want), "/api/music/tracks/%s/cover", t[1]);
	expect_json_str(&res, "cover_url", want);
	http_free(&res);
	snprintf(body, sizeof(body), "{\"cover_track_id\":\"%s\"}", t[2]);
	res = http_bearer("PUT", path, a.access, body);
	snprintf(want, sizeof(want), "/api/music/tracks/%s/cover", t[2]);
	expect_json_str(&res, "cover_url", want);
	http_free(&res);
	snprintf(body, sizeof(body), "{\"cover_track_id\":\"%s\"}", t[0]);	/* no art */
	expect(it_status("PUT", path, a.access, body) == 422);
	expect(it_status("PUT", path, a.access, "{\"cover_url\":\"http://evil/x.jpg\"}") == 400);
	res = http_bearer("PUT", path, a.access, "{\"cover_track_id\":null}");
	snprintf(want, sizeof(want), "/api/music/tracks/%s/cover", t[1]);
	expect_json_str(&res, "cover_url", want);
	http_free(&res);
}

/* ---- entries ------------------------------------------------------------- */

static void
test_playlist_entries_add_move_remove_stay_dense(void)
{
	struct it_session	 a;
	char		 t[6][37], id[37], path[256], first[2][37];
	struct http_res	 res;

	expect(it_new_user("plent", &a) == 0);
	expect(make_tracks("ent", 6, t) == 0);
	expect(it_new_playlist(&a, "Entries", 0, id) == 0);
	expect(add_tracks(&a, id, t, 3, NULL) == 201);		/* 0 1 2 */
	expect_entries(id, "0,1,2");
	memcpy(first[0], t[3], 37);
	memcpy(first[1], t[4], 37);
	expect(add_tracks(&a, id, first, 2, "\"position\":1") == 201);
	expect_entries(id, "0,3,4,1,2");
	snprintf(path, sizeof(path), "/api/playlists/%s/reorder", id);
	res = http_bearer("PUT", path, a.access, "{\"from\":1,\"count\":2,\"to\":3}");
	expect_status(&res, 200);
	expect(json_int(&res, "track_count", 0) == 5);
	http_free(&res);
	expect_entries(id, "0,1,2,3,4");
	expect(it_status("PUT", path, a.access, "{\"from\":4,\"to\":0}") == 200);
	expect_entries(id, "4,0,1,2,3");
	expect(it_status("PUT", path, a.access, "{\"from\":4,\"to\":5}") == 422);
	expect(it_status("PUT", path, a.access, "{\"from\":3,\"count\":3,\"to\":0}") == 422);
	expect(it_status("PUT", path, a.access, "{\"from\":-1,\"to\":0}") == 422);
	expect(it_status("PUT", path, a.access, "{\"to\":0}") == 422);
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks/%s", id, t[1]);
	res = http_bearer("DELETE", path, a.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "track_count", 0) == 4);
	expect(json_int(&res, "total_duration", 0) == 100 + 100 + 104 + 102 + 103 - 100);
	http_free(&res);
	expect_entries(id, "4,0,2,3");
	expect(it_status("DELETE", path, a.access, NULL) == 404);
	/* positions out of range */
	expect(add_tracks(&a, id, &t[5], 1, "\"position\":5") == 422);
	expect(add_tracks(&a, id, &t[5], 1, "\"position\":4") == 201);
	expect_entries(id, "4,0,2,3,5");
	/* the entries as the API lists them */
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks?offset=1&limit=2", id);
	res = http_bearer("GET", path, a.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "total", 0) == 5);
	expect(json_int(&res, "tracks.0.position", -1) == 1);
	expect_json_str(&res, "tracks.0.track.id", t[0]);
	expect(json_int(&res, "next_offset", 0) == 3);
	expect(json_has(&res, "tracks.0.track.liked"));
	http_free(&res);
}

static void
test_playlist_duplicates_only_when_asked(void)
{
	struct it_session	 a;
	char		 t[2][37], twice[2][37], id[37], path[256];

	expect(it_new_user("pldup", &a) == 0);
	expect(make_tracks("dup", 2, t) == 0);
	expect(it_new_playlist(&a, "Dups", 0, id) == 0);
	expect(add_tracks(&a, id, t, 1, NULL) == 201);
	expect(add_tracks(&a, id, t, 1, NULL) == 409);
	memcpy(twice[0], t[1], 37);
	memcpy(twice[1], t[1], 37);
	expect(add_tracks(&a, id, twice, 2, NULL) == 409);
	expect_entries(id, "0");
	expect(add_tracks(&a, id, t, 1, "\"allow_duplicates\":true") == 201);
	expect(add_tracks(&a, id, twice, 2, "\"allow_duplicates\":true") == 201);
	expect_entries(id, "0,0,1,1");
	/* remove one occurrence by position, then all of the rest */
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks/%s?position=1", id, t[0]);
	expect(it_status("DELETE", path, a.access, NULL) == 200);
	expect_entries(id, "0,1,1");
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks/%s", id, t[1]);
	expect(it_status("DELETE", path, a.access, NULL) == 200);
	expect_entries(id, "0");
}

static void
test_playlist_unknown_tracks_are_422_naming_them(void)
{
	struct it_session	 a;
	char		 t[1][37], id[37];
	char		 mixed[2][37] = { "", "00000000-0000-4000-8000-00000000beef" };
	struct http_res	 res;
	char		 body[256], path[128];

	expect(it_new_user("plunk", &a) == 0);
	expect(make_tracks("unk", 1, t) == 0);
	memcpy(mixed[0], t[0], 37);
	expect(it_new_playlist(&a, "Unknown", 0, id) == 0);
	snprintf(body, sizeof(body), "{\"track_ids\":[\"%s\",\"%s\"]}", mixed[0], mixed[1]);
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks", id);
	res = http_bearer("POST", path, a.access, body);
	expect_status(&res, 422);
	expect_json_str(&res, "error.details.unknown_track_ids.0", mixed[1]);
	http_free(&res);
	/* an inactive track is not in the library either */
	it_psql("UPDATE tracks SET is_active = false WHERE id = '%s'", t[0]);
	expect(add_tracks(&a, id, t, 1, NULL) == 422);
	expect_entries(id, "");
}

static void
test_playlist_limits_are_422(void)
{
	struct it_session	 a;
	char		 t[3][37], id[37], body[64];
	int		 i;

	expect(it_new_user("pllim", &a) == 0);
	expect(make_tracks("lim", 3, t) == 0);
	expect(it_new_playlist(&a, "Limits", 0, id) == 0);
	it_psql("UPDATE system_settings SET value = '2' WHERE key = 'max_playlist_entries'");
	i = (int)add_tracks(&a, id, t, 3, NULL);
	it_psql("UPDATE system_settings SET value = '10000' WHERE key = 'max_playlist_entries'");
	expect(i == 422);
	expect_entries(id, "");
	it_psql("UPDATE system_settings SET value = '1' WHERE key = 'max_playlists_per_user'");
	snprintf(body, sizeof(body), "{\"name\":\"one too many\"}");
	i = (int)it_status("POST", "/api/playlists", a.access, body);
	it_psql("UPDATE system_settings SET value = '500' WHERE key = 'max_playlists_per_user'");
	expect(i == 422);
	/* more than 1,000 ids in one request */
	{
		static char	 big[1001 * 40 + 64];
		size_t		 o = (size_t)snprintf(big, sizeof(big), "{\"track_ids\":[");
		char		 path[128];

		for (i = 0; i < 1001; i++)
			o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"%s\"",
			    i ? "," : "", t[0]);
		snprintf(big + o, sizeof(big) - o, "]}");
		snprintf(path, sizeof(path), "/api/playlists/%s/tracks", id);
		expect(it_status("POST", path, a.access, big) == 422);
	}
}

/* A track leaving the library leaves every playlist, counts and all. */
static void
test_playlist_library_delete_removes_entries_and_fixes_counts(void)
{
	struct it_session	 a;
	char		 t[3][37], id[37];

	expect(it_new_user("pllib", &a) == 0);
	expect(make_tracks("lib", 3, t) == 0);
	expect(it_new_playlist(&a, "Library", 0, id) == 0);
	expect(add_tracks(&a, id, t, 3, NULL) == 201);
	it_psql("DELETE FROM tracks WHERE id = '%s'", t[1]);
	expect_entries(id, "0,2");
	expect(strcmp(it_psql("SELECT track_count || ' ' || total_duration FROM playlists"
	    " WHERE id = '%s'", id), "2 202") == 0);
}

/*
 * Pages of entries and the liked ids are cached per reader; a change to
 * the playlist, the library or the reader's likes is seen at once.
 */
static void
test_playlist_cached_pages_never_outlive_a_change(void)
{
	struct it_session	 a;
	char		 t[3][37], id[37], path[256], like[128];
	struct http_res	 r1, r2;

	expect(it_new_user("plcache", &a) == 0);
	expect(make_tracks("cache", 3, t) == 0);
	expect(it_new_playlist(&a, "Cached", 0, id) == 0);
	expect(add_tracks(&a, id, t, 2, NULL) == 201);
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks", id);
	r1 = http_bearer("GET", path, a.access, NULL);
	r2 = http_bearer("GET", path, a.access, NULL);
	expect_status(&r2, 200);
	expect(http_header(&r1, "X-Cache") == NULL);
	expect(http_header(&r2, "X-Cache") != NULL);
	expect(r1.body_len == r2.body_len && memcmp(r1.body, r2.body, r1.body_len) == 0);
	http_free(&r1);
	http_free(&r2);
	/* an entry added */
	expect(add_tracks(&a, id, &t[2], 1, NULL) == 201);
	r1 = http_bearer("GET", path, a.access, NULL);
	expect(json_int(&r1, "total", 0) == 3);
	expect_json_str(&r1, "tracks.2.track.id", t[2]);
	http_free(&r1);
	/* moved */
	snprintf(like, sizeof(like), "/api/playlists/%s/reorder", id);
	expect(it_status("PUT", like, a.access, "{\"from\":2,\"to\":0}") == 200);
	r1 = http_bearer("GET", path, a.access, NULL);
	expect_json_str(&r1, "tracks.0.track.id", t[2]);
	expect(r1.body != NULL && strstr(r1.body, "\"liked\":true") == NULL);
	http_free(&r1);
	/* the reader likes one */
	snprintf(like, sizeof(like), "/api/user/favorites/%s", t[2]);
	expect(it_status("POST", like, a.access, NULL) == 200);
	r1 = http_bearer("GET", path, a.access, NULL);
	expect(r1.body != NULL && strstr(r1.body, "\"liked\":true") != NULL);
	http_free(&r1);
	r1 = http_bearer("GET", "/api/user/favorites/ids", a.access, NULL);
	r2 = http_bearer("GET", "/api/user/favorites/ids", a.access, NULL);
	expect(json_int(&r1, "count", 0) == 1);
	expect(http_header(&r2, "X-Cache") != NULL);
	http_free(&r1);
	http_free(&r2);
	expect(it_status("DELETE", like, a.access, NULL) == 200);
	r1 = http_bearer("GET", "/api/user/favorites/ids", a.access, NULL);
	expect(json_int(&r1, "count", -1) == 0);
	http_free(&r1);
	/* the library changes a title */
	it_psql("UPDATE tracks SET title = 'cache-renamed' WHERE id = '%s'", t[0]);
	sleep_ms(300);
	r1 = http_bearer("GET", path, a.access, NULL);
	expect(r1.body != NULL && strstr(r1.body, "cache-renamed") != NULL);
	http_free(&r1);
}

/* ---- who sees and changes what -------------------------------------------- */

/*
 * Every route against a private playlist, by caller. The owner does all;
 * an editor changes entries but not visibility, collaborators or the
 * playlist's existence; a viewer reads; another user, an admin and a
 * guest get 404 (it does not exist for them); no token, 401.
 */
static void
test_playlist_private_bola_matrix(void)
{
	enum { OWNER, EDITOR, VIEWER, OTHER, GUEST, ADMIN, NOTOKEN, NCALLERS };
	static const char *const who[NCALLERS] = { "owner", "editor", "viewer",
	    "other", "guest", "admin", "no token" };
	struct it_session	 s[NCALLERS];
	char		 t[2][37], id[37], path[256], body[256];
	int		 c, bad = 0;
	struct {
		const char	*method;
		const char	*fmt;		/* %s: the playlist id */
		const char	*body;
		long		 want[NCALLERS];
	} cases[] = {
		{ "GET", "/api/playlists/%s", NULL,
		    { 200, 200, 200, 404, 404, 404, 401 } },
		{ "GET", "/api/playlists/%s/tracks", NULL,
		    { 200, 200, 200, 404, 404, 404, 401 } },
		{ "GET", "/api/playlists/%s/collaborators", NULL,
		    { 200, 200, 200, 404, 404, 404, 401 } },
		{ "PUT", "/api/playlists/%s", "{\"description\":\"x\"}",
		    { 200, 200, 403, 404, 403, 404, 401 } },
		{ "PUT", "/api/playlists/%s", "{\"is_public\":true}",
		    { 200, 403, 403, 404, 403, 404, 401 } },
		{ "PUT", "/api/playlists/%s/reorder", "{\"from\":0,\"to\":1}",
		    { 200, 200, 403, 404, 403, 404, 401 } },
		{ "POST", "/api/playlists/%s/tracks", "@ADD",
		    { 201, 201, 403, 404, 403, 404, 401 } },
		{ "DELETE", "/api/playlists/%s/tracks/@TRACK", NULL,
		    { 200, 200, 403, 404, 403, 404, 401 } },
		{ "POST", "/api/playlists/%s/collaborators", "{\"username\":\"@OTHER\"}",
		    { 200, 403, 403, 404, 403, 404, 401 } },
		/* removing the viewer: the owner may, and the viewer may leave */
		{ "DELETE", "/api/playlists/%s/collaborators/@OTHERID", NULL,
		    { 204, 403, 204, 404, 403, 404, 401 } },
		{ "DELETE", "/api/playlists/%s", NULL,
		    { 204, 403, 403, 404, 403, 404, 401 } },
	};
	size_t		 k;

	for (c = 0; c < NCALLERS; c++)
		memset(&s[c], 0, sizeof(s[c]));
	expect(it_new_user("bolaown", &s[OWNER]) == 0);
	expect(it_new_user("bolaed", &s[EDITOR]) == 0);
	expect(it_new_user("bolavw", &s[VIEWER]) == 0);
	expect(it_new_user("bolaoth", &s[OTHER]) == 0);
	expect(it_new_guest(&s[GUEST]) == 0);
	expect(it_new_admin("plroot", &s[ADMIN]) == 0);
	expect(make_tracks("bola", 2, t) == 0);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		for (c = NCALLERS - 1; c >= 0; c--) {	/* the owner last: it deletes */
			long	 got;

			/* a fresh private playlist per case and caller */
			if (it_new_playlist(&s[OWNER], "Private", 0, id) != 0 ||
			    add_tracks(&s[OWNER], id, t, 2, NULL) != 201) {
				t_fail(__FILE__, __LINE__, "setup failed");
				return;
			}
			snprintf(path, sizeof(path), "/api/playlists/%s/collaborators", id);
			snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"role\":\"editor\"}",
			    s[EDITOR].id);
			if (it_status("POST", path, s[OWNER].access, body) != 200)
				bad++;
			snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"role\":\"viewer\"}",
			    s[VIEWER].id);
			if (it_status("POST", path, s[OWNER].access, body) != 200)
				bad++;
			snprintf(path, sizeof(path), cases[k].fmt, id);
			if (strstr(path, "@TRACK") != NULL) {
				*strstr(path, "@TRACK") = '\0';
				strncat(path, t[0], sizeof(path) - strlen(path) - 1);
			}
			if (strstr(path, "@OTHERID") != NULL) {
				/* the viewer is the one removed */
				*strstr(path, "@OTHERID") = '\0';
				strncat(path, s[VIEWER].id, sizeof(path) - strlen(path) - 1);
			}
			if (cases[k].body != NULL && strcmp(cases[k].body, "@ADD") == 0)
				snprintf(body, sizeof(body), "{\"track_ids\":[\"%s\"],"
				    "\"allow_duplicates\":true}", t[1]);
			else if (cases[k].body != NULL && strstr(cases[k].body, "@OTHER") != NULL)
				snprintf(body, sizeof(body), "{\"username\":\"%s\"}",
				    s[OTHER].name);
			else if (cases[k].body != NULL)
				snprintf(body, sizeof(body), "%s", cases[k].body);
			got = it_status(cases[k].method, path, c == NOTOKEN ? NULL :
			    s[c].access, cases[k].body ? body : NULL);
			if (got != cases[k].want[c]) {
				t_fail(__FILE__, __LINE__, "%s %s as %s: %ld, want %ld",
				    cases[k].method, cases[k].fmt, who[c], got,
				    cases[k].want[c]);
				bad++;
			}
		}
	}
	expect(bad == 0);
}

/* A public playlist: anyone signed in reads it; only its people write. */
static void
test_playlist_public_is_readable_not_writable(void)
{
	struct it_session	 own, other, guest, admin;
	char		 id[37], path[256], t[1][37];
	struct http_res	 res;

	expect(it_new_user("pubown", &own) == 0);
	expect(it_new_user("puboth", &other) == 0);
	expect(it_new_guest(&guest) == 0);
	expect(it_new_admin("plroot", &admin) == 0);
	expect(make_tracks("pub", 1, t) == 0);
	expect(it_new_playlist(&own, "Shared With All", 1, id) == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s", id);
	res = http_bearer("GET", path, other.access, NULL);
	expect_status(&res, 200);
	expect_json_str(&res, "role", "public");
	http_free(&res);
	expect(it_status("GET", path, guest.access, NULL) == 200);
	expect(it_status("GET", path, NULL, NULL) == 401);
	expect(it_status("PUT", path, other.access, "{\"name\":\"mine now\"}") == 403);
	expect(add_tracks(&other, id, t, 1, NULL) == 403);
	expect(add_tracks(&guest, id, t, 1, NULL) == 403);
	expect(it_status("DELETE", path, other.access, NULL) == 403);
	res = http_bearer("GET", "/api/playlists/public?sort=recent&limit=200",
	    other.access, NULL);
	expect_status(&res, 200);
	expect(res.body != NULL && strstr(res.body, id) != NULL);
	http_free(&res);
	/* moderation: an admin may take a public playlist down */
	expect(it_status("DELETE", path, admin.access, NULL) == 204);
	expect(it_status("GET", path, own.access, NULL) == 404);
}

/* A scheduled playlist is not deleted from under the scheduler. */
static void
test_playlist_scheduled_delete_is_409_unless_asked(void)
{
	struct it_session	 a;
	char		 id[37], path[256];
	struct http_res	 res;

	expect(it_new_user("plsched", &a) == 0);
	expect(it_new_playlist(&a, "Scheduled", 0, id) == 0);
	it_psql("INSERT INTO schedule_entries (title, playlist_id, days_of_week, start_time,"
	    " end_time) VALUES ('Breakfast', '%s', ARRAY['monday'], '07:00', '11:00')", id);
	snprintf(path, sizeof(path), "/api/playlists/%s", id);
	res = http_bearer("DELETE", path, a.access, NULL);
	expect_status(&res, 409);
	expect_json_str(&res, "error.details.schedule_entries.0.title", "Breakfast");
	http_free(&res);
	snprintf(path, sizeof(path), "/api/playlists/%s?deactivate_schedules=1", id);
	expect(it_status("DELETE", path, a.access, NULL) == 204);
	expect(strcmp(it_psql("SELECT count(*) FROM schedule_entries WHERE title = 'Breakfast'"
	    " AND NOT is_active AND playlist_id IS NULL"), "1") == 0);
}

/* ---- concurrency ---------------------------------------------------------- */

struct hammer {
	const struct it_session	*s;
	const char		*id;
	char			 (*tracks)[37];
	int			 ntracks;
	unsigned		 seed;
	int			 errors;	/* 5xx or transport errors */
};

static void *
hammer_run(void *arg)
{
	struct hammer	*h = arg;
	char		 path[256], body[256];
	int		 i;

	for (i = 0; i < 20; i++) {
		int	 op = (int)(rand_r(&h->seed) % 3);
		long	 st;

		if (op == 0) {
			snprintf(path, sizeof(path), "/api/playlists/%s/tracks", h->id);
			snprintf(body, sizeof(body), "{\"track_ids\":[\"%s\"],\"position\":%u,"
			    "\"allow_duplicates\":true}",
			    h->tracks[rand_r(&h->seed) % (unsigned)h->ntracks],
			    rand_r(&h->seed) % 3);
			st = it_status("POST", path, h->s->access, body);
		} else if (op == 1) {
			snprintf(path, sizeof(path), "/api/playlists/%s/reorder", h->id);
			snprintf(body, sizeof(body), "{\"from\":%u,\"to\":%u}",
			    rand_r(&h->seed) % 4, rand_r(&h->seed) % 4);
			st = it_status("PUT", path, h->s->access, body);
		} else {
			snprintf(path, sizeof(path), "/api/playlists/%s/tracks/%s?position=%u",
			    h->id, h->tracks[rand_r(&h->seed) % (unsigned)h->ntracks],
			    rand_r(&h->seed) % 4);
			st = it_status("DELETE", path, h->s->access, NULL);
		}
		/* 404 (not at that position) and 422 (moved meanwhile) are fine */
		if (st != 200 && st != 201 && st != 404 && st != 422)
			h->errors++;
	}
	http_close();
	return NULL;
}

static void
test_playlist_eight_clients_editing_at_once_leave_it_dense(void)
{
	struct it_session	 a;
	char		 t[4][37], id[37];
	struct hammer	 h[8];
	pthread_t	 th[8];
	int		 i, errors = 0;

	expect(it_new_user("plham", &a) == 0);
	expect(make_tracks("ham", 4, t) == 0);
	expect(it_new_playlist(&a, "Hammered", 0, id) == 0);
	expect(add_tracks(&a, id, t, 4, NULL) == 201);
	for (i = 0; i < 8; i++) {
		h[i] = (struct hammer){ &a, id, t, 4, (unsigned)(i * 7919 + 1), 0 };
		expect(pthread_create(&th[i], NULL, hammer_run, &h[i]) == 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		errors += h[i].errors;
	}
	expect(errors == 0);
	expect(consistent(id));
}

const struct it_test playlist_tests[] = {
#define T(f) { #f, f }
	T(test_playlist_create_read_change_delete),
	T(test_playlist_fields_outside_the_allow_list_are_refused),
	T(test_playlist_malformed_ids_are_400_not_500),
	T(test_playlist_cover_is_the_entries_art_unless_chosen),
	T(test_playlist_entries_add_move_remove_stay_dense),
	T(test_playlist_duplicates_only_when_asked),
	T(test_playlist_unknown_tracks_are_422_naming_them),
	T(test_playlist_limits_are_422),
	T(test_playlist_library_delete_removes_entries_and_fixes_counts),
	T(test_playlist_cached_pages_never_outlive_a_change),
	T(test_playlist_private_bola_matrix),
	T(test_playlist_public_is_readable_not_writable),
	T(test_playlist_scheduled_delete_is_409_unless_asked),
	T(test_playlist_eight_clients_editing_at_once_leave_it_dense),
#undef T
};
const size_t playlist_ntests = sizeof(playlist_tests) / sizeof(playlist_tests[0]);

void
playlist_tests_init(const char *dir, const char *repo)
{
	(void)dir;
	(void)repo;
	run_id = (long)getpid() % 100000;
}
