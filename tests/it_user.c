/*
 * tests/it_user.c: the caller's own data through nginx. Likes and stars
 * (idempotent, parallel, only what the caller may see), the lists and id
 * lists, playback history with time ranges, recently played tracks,
 * search history, and that nobody ever sees anybody else's. Each test
 * makes its own users; tracks, playlists and history rows it needs but
 * does not test the making of are written with psql, the cheapest way.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http.h"

#define NO_SUCH_ID	"00000000-0000-4000-8000-000000000000"

static const char	*stack_dir, *top;
static long		 run_id;	/* makes names unique to this run */

/* ---- helpers ------------------------------------------------------------ */

static long
psql_long(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static long
psql_long(const char *fmt, ...)
{
	char	 sql[4096];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return atol(it_psql("%s", sql));
}

/* The status of a request, the response dropped. path is a format. */
static long
status_of(const char *method, const char *token, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static long
status_of(const char *method, const char *token, const char *fmt, ...)
{
	char		 path[1024];
	struct http_res	 res;
	va_list		 ap;
	long		 st;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	res = http_bearer(method, path, token, NULL);
	st = res.status;
	http_free(&res);
	return st;
}

/* A request whose path is a format. */
static struct http_res
call(const char *method, const char *token, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct http_res
call(const char *method, const char *token, const char *fmt, ...)
{
	char	 path[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return http_bearer(method, path, token, NULL);
}

/*
 * The member of o at a dotted path ("track.title") as text: a string's
 * value, a number or boolean as JSON writes it, "null" for JSON null and
 * "?" when there is no such member; "" is o itself. Points into o.
 */
static const char *
member(struct json_object *o, const char *path)
{
	char		 part[64];
	const char	*p = path;

	while (*p != '\0') {
		const char	*dot = strchr(p, '.');
		size_t		 n = dot ? (size_t)(dot - p) : strlen(p);

		snprintf(part, sizeof(part), "%.*s", (int)n, p);
		if (o == NULL || !json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, part, &o))
			return "?";
		p = dot ? dot + 1 : p + n;
	}
	return o == NULL ? "null" : json_object_get_string(o);
}

/* member() of the response body. */
static const char *
body_member(const struct http_res *res, const char *path)
{
	return res->json == NULL ? "?" : member(res->json, path);
}

/*
 * member() at path of every element of the array key, joined by ','.
 * Static buffer.
 */
static const char *
column(const struct http_res *res, const char *key, const char *path)
{
	static char		 out[8192];
	struct json_object	*a = json_array(res, key);
	size_t			 i;

	snprintf(out, sizeof(out), "%s", a == NULL ? "(no array)" : "");
	for (i = 0; a != NULL && i < json_object_array_length(a); i++) {
		if (i > 0)
			strncat(out, ",", sizeof(out) - strlen(out) - 1);
		strncat(out, member(json_object_array_get_idx(a, i), path),
		    sizeof(out) - strlen(out) - 1);
	}
	return out;
}

/* GET path as token; column() of the answer, or "status NNN". Static. */
static const char *
list_of(const char *token, const char *key, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static const char *
list_of(const char *token, const char *key, const char *path, const char *fmt, ...)
{
	static char	 out[8192];
	char		 url[1024];
	struct http_res	 res;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(url, sizeof(url), fmt, ap);
	va_end(ap);
	res = http_bearer("GET", url, token, NULL);
	if (res.status != 200)
		snprintf(out, sizeof(out), "status %ld: %.200s", res.status, res.body);
	else
		snprintf(out, sizeof(out), "%s", column(&res, key, path));
	http_free(&res);
	return out;
}

/* ---- accounts, tracks, playlists ---------------------------------------- */

static unsigned	 seq;

/* A catalogue track (no audio) titled title. OUT: id; 0 if made. */
static int
new_track(const char *title, char id[37])
{
	snprintf(id, 37, "%s", it_psql("INSERT INTO tracks (title, artist, duration, "
	    "source) VALUES ('%s', 'User Tests', 180, 'catalog') RETURNING id", title));
	return strlen(id) == 36 ? 0 : -1;
}

/* A playlist of owner's. OUT: id; 0 if made. */
static int
new_playlist(const struct it_session *owner, int is_public, char id[37])
{
	snprintf(id, 37, "%s", it_psql("INSERT INTO playlists (name, owner_id, is_public) "
	    "VALUES ('list %ld %u', '%s', %s) RETURNING id", run_id, ++seq, owner->id,
	    is_public ? "true" : "false"));
	return strlen(id) == 36 ? 0 : -1;
}

/* A play of track by s at an SQL time expression (e.g. now()). */
static int
add_play(const struct it_session *s, const char *track, const char *at)
{
	return strlen(it_psql("INSERT INTO playback_history (user_id, track_id, played_at, "
	    "duration_played, source) VALUES ('%s', '%s', %s, 42, 'queue') RETURNING id",
	    s->id, track, at)) == 36 ? 0 : -1;
}

static long
likes_of(const struct it_session *s, const char *track)
{
	return psql_long("SELECT count(*) FROM user_favorites WHERE user_id = '%s' "
	    "AND track_id = '%s'", s->id, track);
}

static long
star_count(const char *playlist)
{
	return psql_long("SELECT star_count FROM playlists WHERE id = '%s'", playlist);
}

/* A play through the API: POST /api/music/tracks/:id/play with body. */
static long
play(const struct it_session *s, const char *track, const char *body)
{
	char		 path[128];
	struct http_res	 res;
	long		 st;

	snprintf(path, sizeof(path), "/api/music/tracks/%s/play", track);
	res = http_bearer("POST", path, s->access, body);
	st = res.status;
	http_free(&res);
	return st;
}

/* ---- likes -------------------------------------------------------------- */

static void
test_user_like_lists_the_track_as_liked_then_unlike_removes_it(void)
{
	struct it_session	 alice;
	struct http_res	 res;
	char		 track[37], title[64];

	snprintf(title, sizeof(title), "Liked %ld", run_id);
	expect(it_new_user("ualice", &alice) == 0 && new_track(title, track) == 0);
	res = call("POST", alice.access, "/api/user/favorites/%s", track);
	expect_status(&res, 200);
	expect_str(body_member(&res, "track_id"), track);
	expect_str(body_member(&res, "liked"), "true");
	http_free(&res);

	res = call("GET", alice.access, "/api/user/favorites");
	expect_status(&res, 200);
	expect_str(column(&res, "tracks", "id"), track);
	expect_str(column(&res, "tracks", "title"), title);
	expect_str(column(&res, "tracks", "liked"), "true");
	expect(strlen(column(&res, "tracks", "liked_at")) == 20);	/* ...T..:..:..Z */
	expect_str(body_member(&res, "next_cursor"), "null");
	expect_str(body_member(&res, "limit"), "50");
	expect_str(body_member(&res, "page"), "1");
	http_free(&res);

	res = call("GET", alice.access, "/api/user/favorites/ids");
	expect_status(&res, 200);
	expect_str(column(&res, "ids", ""), track);
	expect(json_int(&res, "count", -1) == 1);
	http_free(&res);

	res = call("DELETE", alice.access, "/api/user/favorites/%s", track);
	expect_status(&res, 200);
	expect_str(body_member(&res, "track_id"), track);
	expect_str(body_member(&res, "liked"), "false");
	http_free(&res);
	expect_str(list_of(alice.access, "tracks", "id", "/api/user/favorites"), "");
	res = call("GET", alice.access, "/api/user/favorites/ids");
	expect_str(res.body, "{\"ids\":[],\"count\":0}");
	http_free(&res);
}

static void
test_user_liking_twice_is_one_like_and_unliking_twice_is_200(void)
{
	struct it_session	 alice;
	char		 track[37];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Twice", track) == 0);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", track) == 200);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", track) == 200);
	expect(likes_of(&alice, track) == 1);
	expect_str(list_of(alice.access, "ids", "", "/api/user/favorites/ids"), track);
	expect(status_of("DELETE", alice.access, "/api/user/favorites/%s", track) == 200);
	expect(status_of("DELETE", alice.access, "/api/user/favorites/%s", track) == 200);
	expect(likes_of(&alice, track) == 0);
}

struct racer {
	const char		*url;
	const char		*auth;
	pthread_barrier_t	*start;
	long			 status;
};

/* One POST on its own connection, sent when every racer is ready. */
static void *
race_like(void *arg)
{
	struct racer		*rc = arg;
	CURL			*c = it_curl_handle(rc->url, 30);
	struct curl_slist	*h = curl_slist_append(NULL, rc->auth);

	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	pthread_barrier_wait(rc->start);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rc->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void
test_user_parallel_likes_of_one_track_end_as_one_row(void)
{
	enum { N = 8 };
	struct it_session		 alice;
	struct racer		 rc[N];
	pthread_t		 th[N];
	pthread_barrier_t	 start;
	char			 track[37], url[512], auth[2200];
	int			 i, ok = 0;

	expect(it_new_user("ualice", &alice) == 0 && new_track("Raced", track) == 0);
	snprintf(url, sizeof(url), "%s/api/user/favorites/%s", getenv("BASE_URL"), track);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", alice.access);
	pthread_barrier_init(&start, NULL, N);
	for (i = 0; i < N; i++) {
		rc[i] = (struct racer){ url, auth, &start, 0 };
		pthread_create(&th[i], NULL, race_like, &rc[i]);
	}
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		if (rc[i].status == 200)
			ok++;
		else
			fprintf(stderr, "    racer %d: %ld\n", i, rc[i].status);
	}
	pthread_barrier_destroy(&start);
	expect(ok == N);
	expect(likes_of(&alice, track) == 1);
	expect_str(list_of(alice.access, "ids", "", "/api/user/favorites/ids"), track);
}

static void
test_user_favorites_are_newest_first_and_a_cursor_walks_each_once(void)
{
	struct it_session	 alice;
	struct http_res	 res;
	char		 t[5][37], title[32], walked[512] = "", cursor[256] = "";
	const char	*want;
	int		 i, pages = 0;

	expect(it_new_user("ualice", &alice) == 0);
	for (i = 0; i < 5; i++) {
		snprintf(title, sizeof(title), "F%d", i);
		expect(new_track(title, t[i]) == 0);
	}
	/* F1 and F2 liked at the same instant: the like's id breaks the tie. */
	it_psql("INSERT INTO user_favorites (user_id, track_id, created_at) VALUES "
	    "('%s', '%s', '2024-01-01T10:00:00Z'), ('%s', '%s', '2024-01-02T10:00:00Z'), "
	    "('%s', '%s', '2024-01-02T10:00:00Z'), ('%s', '%s', '2024-01-03T10:00:00.5Z'), "
	    "('%s', '%s', '2024-01-03T10:00:00.25Z')", alice.id, t[0], alice.id, t[1],
	    alice.id, t[2], alice.id, t[3], alice.id, t[4]);
	want = psql_long("SELECT count(*) FROM user_favorites a, user_favorites b "
	    "WHERE a.track_id = '%s' AND b.track_id = '%s' AND a.id > b.id", t[1], t[2]) ?
	    "F3,F4,F1,F2,F0" : "F3,F4,F2,F1,F0";
	expect_str(list_of(alice.access, "tracks", "title", "/api/user/favorites"), want);
	expect_str(list_of(alice.access, "tracks", "liked_at", "/api/user/favorites?limit=1"),
	    "2024-01-03T10:00:00Z");
	do {
		res = call("GET", alice.access, "/api/user/favorites?limit=2%s%s",
		    cursor[0] ? "&cursor=" : "", cursor);
		expect_status(&res, 200);
		expect(json_array(&res, "tracks") != NULL);
		/* A page after a cursor has no page number. */
		expect(cursor[0] == '\0' || !json_has(&res, "page"));
		if (walked[0] != '\0')
			strncat(walked, ",", sizeof(walked) - strlen(walked) - 1);
		strncat(walked, column(&res, "tracks", "title"),
		    sizeof(walked) - strlen(walked) - 1);
		snprintf(cursor, sizeof(cursor), "%s", json_str(&res, "next_cursor") ?
		    json_str(&res, "next_cursor") : "");
		http_free(&res);
	} while (cursor[0] != '\0' && ++pages < 10);
	expect_str(walked, want);
	expect_str(list_of(alice.access, "tracks", "title",
	    "/api/user/favorites?limit=2&page=3"), "F0");
	expect_str(list_of(alice.access, "tracks", "title",
	    "/api/user/favorites?limit=2&page=4"), "");
}

static void
test_user_deactivated_track_is_not_listed_and_cannot_be_liked(void)
{
	struct it_session	 alice;
	char		 shown[37], hidden[37];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Shown", shown) == 0 &&
	    new_track("Hidden", hidden) == 0);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", shown) == 200);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", hidden) == 200);
	it_psql("UPDATE tracks SET is_active = false WHERE id = '%s'", hidden);
	expect_str(list_of(alice.access, "tracks", "title", "/api/user/favorites"), "Shown");
	expect_str(list_of(alice.access, "ids", "", "/api/user/favorites/ids"), shown);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", hidden) == 404);
	/* The like it had can be taken back; after that the track is unknown. */
	expect(status_of("DELETE", alice.access, "/api/user/favorites/%s", hidden) == 200);
	expect(likes_of(&alice, hidden) == 0);
	expect(status_of("DELETE", alice.access, "/api/user/favorites/%s", hidden) == 404);
}

static void
test_user_malformed_id_is_400_and_unknown_track_is_404(void)
{
	struct it_session	 alice;
	struct http_res	 res;

	expect(it_new_user("ualice", &alice) == 0);
	res = call("POST", alice.access, "/api/user/favorites/not-a-uuid");
	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	http_free(&res);
	expect(status_of("DELETE", alice.access, "/api/user/favorites/12345") == 400);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/0000-0000") == 400);
	expect(status_of("DELETE", alice.access, "/api/user/starred-playlists/x") == 400);
	res = call("POST", alice.access, "/api/user/favorites/" NO_SUCH_ID);
	expect_status(&res, 404);
	expect_json_str(&res, "error.code", "not_found");
	http_free(&res);
	expect(status_of("DELETE", alice.access, "/api/user/favorites/" NO_SUCH_ID) == 404);
	/* A body other than {} is refused; {} is fine. */
	res = http_bearer("POST", "/api/user/favorites/" NO_SUCH_ID, alice.access,
	    "{\"liked\":true}");
	expect_status(&res, 400);
	expect_json_str(&res, "error.details.field", "liked");
	http_free(&res);
	res = http_bearer("POST", "/api/user/favorites/" NO_SUCH_ID, alice.access, "{}");
	expect_status(&res, 404);
	http_free(&res);
	/* The id list is not an id; GET of one like is not a route. */
	expect(status_of("POST", alice.access, "/api/user/favorites/ids") == 400);
	expect(status_of("GET", alice.access, "/api/user/favorites/" NO_SUCH_ID) == 405);
}

/* ---- stars -------------------------------------------------------------- */

static void
test_user_private_playlist_of_someone_else_is_404_for_star(void)
{
	struct it_session	 alice, bob;
	struct http_res	 res;
	char		 secret[37], shared[37];

	expect(it_new_user("ualice", &alice) == 0 && it_new_user("ubob", &bob) == 0);
	expect(new_playlist(&bob, 0, secret) == 0 && new_playlist(&bob, 0, shared) == 0);
	res = call("POST", alice.access, "/api/user/starred-playlists/%s", secret);
	expect_status(&res, 404);
	expect_json_str(&res, "error.code", "not_found");
	http_free(&res);
	expect(status_of("DELETE", alice.access, "/api/user/starred-playlists/%s",
	    secret) == 404);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/"
	    NO_SUCH_ID) == 404);
	expect(star_count(secret) == 0);
	/* A collaborator sees it, so may star it; so may its owner. */
	it_psql("INSERT INTO playlist_collaborators (playlist_id, user_id, role) "
	    "VALUES ('%s', '%s', 'viewer')", shared, alice.id);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/%s",
	    shared) == 200);
	expect(status_of("POST", bob.access, "/api/user/starred-playlists/%s",
	    secret) == 200);
	expect(star_count(shared) == 1 && star_count(secret) == 1);
	expect_str(list_of(alice.access, "playlists", "role",
	    "/api/user/starred-playlists"), "viewer");
	expect_str(list_of(bob.access, "playlists", "role",
	    "/api/user/starred-playlists"), "owner");
}

static void
test_user_public_playlist_can_be_starred_and_star_count_follows(void)
{
	struct it_session	 alice, bob, carol;
	struct http_res	 res;
	char		 pl[37];

	expect(it_new_user("ualice", &alice) == 0 && it_new_user("ubob", &bob) == 0 &&
	    it_new_user("ucarol", &carol) == 0 && new_playlist(&bob, 1, pl) == 0);
	res = call("POST", alice.access, "/api/user/starred-playlists/%s", pl);
	expect_status(&res, 200);
	expect_str(body_member(&res, "playlist_id"), pl);
	expect_str(body_member(&res, "starred"), "true");
	http_free(&res);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(star_count(pl) == 1);
	expect(status_of("POST", carol.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(star_count(pl) == 2);

	res = call("GET", alice.access, "/api/user/starred-playlists");
	expect_status(&res, 200);
	expect_str(column(&res, "playlists", "id"), pl);
	expect_str(column(&res, "playlists", "starred"), "true");
	expect_str(column(&res, "playlists", "star_count"), "2");
	expect_str(column(&res, "playlists", "role"), "public");
	expect_str(column(&res, "playlists", "owner.username"), bob.name);
	expect(strlen(column(&res, "playlists", "starred_at")) == 20);
	http_free(&res);
	expect_str(list_of(alice.access, "ids", "", "/api/user/starred-playlists/ids"), pl);

	res = call("DELETE", alice.access, "/api/user/starred-playlists/%s", pl);
	expect_status(&res, 200);
	expect_str(body_member(&res, "starred"), "false");
	http_free(&res);
	expect(status_of("DELETE", alice.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(star_count(pl) == 1);
	expect_str(list_of(alice.access, "playlists", "id", "/api/user/starred-playlists"), "");
}

static void
test_user_starred_playlist_made_private_drops_out_of_the_list(void)
{
	struct it_session	 alice, bob;
	char		 pl[37];

	expect(it_new_user("ualice", &alice) == 0 && it_new_user("ubob", &bob) == 0 &&
	    new_playlist(&bob, 1, pl) == 0);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/%s", pl) == 200);
	it_psql("UPDATE playlists SET is_public = false WHERE id = '%s'", pl);
	expect_str(list_of(alice.access, "playlists", "id", "/api/user/starred-playlists"), "");
	expect_str(list_of(alice.access, "ids", "", "/api/user/starred-playlists/ids"), "");
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/%s", pl) == 404);
	/* The star it had can be taken back. */
	expect(status_of("DELETE", alice.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(star_count(pl) == 0);
}

/* ---- history ------------------------------------------------------------ */

static void
test_user_history_is_newest_first_with_the_track_and_liked(void)
{
	struct it_session	 alice;
	struct http_res	 res;
	char		 a[37], b[37], cursor[256];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Hist A", a) == 0 &&
	    new_track("Hist B", b) == 0);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", b) == 200);
	expect(play(&alice, a, "{\"duration_played\":12,\"source\":\"search\"}") == 201);
	expect(play(&alice, b, "{\"duration_played\":3}") == 201);
	res = call("GET", alice.access, "/api/user/history");
	expect_status(&res, 200);
	expect_str(column(&res, "history", "track.title"), "Hist B,Hist A");
	expect_str(column(&res, "history", "track.liked"), "true,false");
	expect_str(column(&res, "history", "duration_played"), "3,12");
	expect_str(column(&res, "history", "source"), "null,search");
	expect(strlen(column(&res, "history", "played_at")) == 41);
	http_free(&res);

	res = call("GET", alice.access, "/api/user/history?limit=1");
	expect_status(&res, 200);
	expect_str(column(&res, "history", "track.title"), "Hist B");
	expect(json_str(&res, "next_cursor") != NULL);
	snprintf(cursor, sizeof(cursor), "%s", json_str(&res, "next_cursor"));
	http_free(&res);
	res = call("GET", alice.access, "/api/user/history?limit=1&cursor=%s", cursor);
	expect_status(&res, 200);
	expect_str(column(&res, "history", "track.title"), "Hist A");
	expect_str(body_member(&res, "next_cursor"), "null");
	http_free(&res);
}

static void
test_user_history_from_and_to_filter_by_time(void)
{
	struct it_session	 alice;
	char		 t[37];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Dated", t) == 0);
	expect(add_play(&alice, t, "'2021-03-01T10:00:00Z'") == 0 &&
	    add_play(&alice, t, "'2021-03-02T10:00:00Z'") == 0 &&
	    add_play(&alice, t, "'2021-03-03T10:00:00Z'") == 0 &&
	    add_play(&alice, t, "now()") == 0);
	expect_str(list_of(alice.access, "history", "played_at", "/api/user/history"
	    "?from=2021-03-02&to=2021-03-31"), "2021-03-03T10:00:00Z,2021-03-02T10:00:00Z");
	/* A date alone as to covers its whole day. */
	expect_str(list_of(alice.access, "history", "played_at", "/api/user/history"
	    "?from=2021-03-02&to=2021-03-02"), "2021-03-02T10:00:00Z");
	/* Both bounds are inclusive, and zones are honoured. */
	expect_str(list_of(alice.access, "history", "played_at", "/api/user/history"
	    "?from=2021-03-01T10:00:00Z&to=2021-03-02T12:00:00%%2B02:00"),
	    "2021-03-02T10:00:00Z,2021-03-01T10:00:00Z");
	expect_str(list_of(alice.access, "history", "played_at", "/api/user/history"
	    "?to=2021-03-01T09:59:59.999999Z"), "");
	expect(strlen(list_of(alice.access, "history", "played_at",
	    "/api/user/history?from=2022-01-01")) == 20);
	/* A range, paged. */
	expect_str(list_of(alice.access, "history", "played_at", "/api/user/history"
	    "?from=2021-03-01&to=2021-03-03&page=2&limit=2"), "2021-03-01T10:00:00Z");
}

static void
test_user_history_bad_dates_are_400(void)
{
	struct it_session	 alice;
	struct http_res	 res;

	expect(it_new_user("ualice", &alice) == 0);
	res = call("GET", alice.access, "/api/user/history?from=yesterday");
	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	expect_json_str(&res, "error.details.field", "from");
	http_free(&res);
	expect(status_of("GET", alice.access, "/api/user/history?to=2021-02-30") == 400);
	expect(status_of("GET", alice.access, "/api/user/history?to=2021-03-01T25:00Z") == 400);
	expect(status_of("GET", alice.access, "/api/user/history?from=1614556800") == 400);
	expect(status_of("GET", alice.access, "/api/user/history?from=") == 400);
	res = call("GET", alice.access, "/api/user/history?from=2021-03-02&to=2021-03-01");
	expect_status(&res, 400);
	expect_json_str(&res, "error.message", "from is after to");
	http_free(&res);
}

static void
test_user_history_of_a_deleted_track_has_track_null(void)
{
	struct it_session	 alice;
	char		 t[37];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Doomed", t) == 0);
	expect(add_play(&alice, t, "now()") == 0);
	expect_str(list_of(alice.access, "history", "track.title", "/api/user/history"),
	    "Doomed");
	it_psql("DELETE FROM tracks WHERE id = '%s'", t);
	expect_str(list_of(alice.access, "history", "track", "/api/user/history"), "null");
	expect_str(list_of(alice.access, "history", "duration_played",
	    "/api/user/history"), "42");
	expect_str(list_of(alice.access, "recently_played", "plays",
	    "/api/user/recently-played"), "");
}

static void
test_user_recently_played_lists_each_track_once_with_its_plays(void)
{
	struct it_session	 alice;
	struct http_res	 res;
	char		 a[37], b[37], c[37];

	expect(it_new_user("ualice", &alice) == 0 && new_track("Again", a) == 0 &&
	    new_track("Once", b) == 0 && new_track("Hidden later", c) == 0);
	expect(add_play(&alice, a, "now() - interval '3 hours'") == 0 &&
	    add_play(&alice, b, "now() - interval '2 hours'") == 0 &&
	    add_play(&alice, a, "now() - interval '1 hour'") == 0 &&
	    add_play(&alice, c, "now()") == 0);
	it_psql("UPDATE tracks SET is_active = false WHERE id = '%s'", c);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", b) == 200);
	res = call("GET", alice.access, "/api/user/recently-played");
	expect_status(&res, 200);
	expect_str(column(&res, "recently_played", "track.title"), "Again,Once");
	expect_str(column(&res, "recently_played", "plays"), "2,1");
	expect_str(column(&res, "recently_played", "track.liked"), "false,true");
	expect(strlen(column(&res, "recently_played", "last_played_at")) == 41);
	expect(json_int(&res, "limit", 0) == 20);
	http_free(&res);
	expect_str(list_of(alice.access, "recently_played", "track.title",
	    "/api/user/recently-played?limit=1"), "Again");
	res = call("GET", alice.access, "/api/user/recently-played?limit=1000");
	expect_status(&res, 200);
	expect(json_int(&res, "limit", 0) == 100);
	http_free(&res);
	expect(status_of("GET", alice.access, "/api/user/recently-played?page=2") == 400);
}

/* ---- search history ----------------------------------------------------- */

static void
test_user_search_history_lists_newest_first_and_delete_clears_only_the_callers(void)
{
	struct it_session	 alice, bob;
	struct http_res	 res;
	char		 t[37], want[64];

	expect(it_new_user("ualice", &alice) == 0 && it_new_user("ubob", &bob) == 0 &&
	    new_track("Clicked", t) == 0);
	it_psql("INSERT INTO search_history (user_id, query, filters, result_count, "
	    "clicked_track_id, searched_at) VALUES "
	    "('%s', 'coltrane', '{}', 12, '%s', now() - interval '1 day'), "
	    "('%s', 'blue ''train''', jsonb_build_object('genre', 'Jazz'), 0, NULL, now()), "
	    "('%s', 'bobs search', '{}', 1, NULL, now())", alice.id, t, alice.id, bob.id);
	res = call("GET", alice.access, "/api/user/search-history");
	expect_status(&res, 200);
	expect_str(column(&res, "searches", "query"), "blue 'train',coltrane");
	expect_str(column(&res, "searches", "filters.genre"), "Jazz,?");
	expect_str(column(&res, "searches", "result_count"), "0,12");
	snprintf(want, sizeof(want), "null,%s", t);
	expect_str(column(&res, "searches", "clicked_track_id"), want);
	expect(strlen(column(&res, "searches", "searched_at")) == 41);
	http_free(&res);
	expect_str(list_of(alice.access, "searches", "query",
	    "/api/user/search-history?limit=1&page=2"), "coltrane");

	res = call("DELETE", alice.access, "/api/user/search-history");
	expect_status(&res, 204);
	expect(res.body_len == 0);
	http_free(&res);
	expect_str(list_of(alice.access, "searches", "query", "/api/user/search-history"), "");
	expect(status_of("DELETE", alice.access, "/api/user/search-history") == 204);
	expect_str(list_of(bob.access, "searches", "query", "/api/user/search-history"),
	    "bobs search");
}

/* ---- isolation, arguments, credentials ----------------------------------- */

static void
test_user_other_users_never_see_the_callers_data(void)
{
	struct it_session	 alice, bob;
	char		 t[37], pl[37];

	expect(it_new_user("ualice", &alice) == 0 && it_new_user("ubob", &bob) == 0 &&
	    new_track("Alices", t) == 0 && new_playlist(&alice, 1, pl) == 0);
	expect(status_of("POST", alice.access, "/api/user/favorites/%s", t) == 200);
	expect(status_of("POST", alice.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(add_play(&alice, t, "now()") == 0);
	it_psql("INSERT INTO search_history (user_id, query) VALUES ('%s', 'alices')", alice.id);

	expect_str(list_of(bob.access, "tracks", "id", "/api/user/favorites"), "");
	expect_str(list_of(bob.access, "ids", "", "/api/user/favorites/ids"), "");
	expect_str(list_of(bob.access, "playlists", "id", "/api/user/starred-playlists"), "");
	expect_str(list_of(bob.access, "ids", "", "/api/user/starred-playlists/ids"), "");
	expect_str(list_of(bob.access, "history", "played_at", "/api/user/history"), "");
	expect_str(list_of(bob.access, "recently_played", "plays",
	    "/api/user/recently-played"), "");
	expect_str(list_of(bob.access, "searches", "query", "/api/user/search-history"), "");
	/* Bob's unlike, unstar and clear touch only Bob's rows. */
	expect(status_of("DELETE", bob.access, "/api/user/favorites/%s", t) == 200);
	expect(status_of("DELETE", bob.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(status_of("DELETE", bob.access, "/api/user/search-history") == 204);
	expect(likes_of(&alice, t) == 1 && star_count(pl) == 1);
	expect_str(list_of(alice.access, "searches", "query", "/api/user/search-history"),
	    "alices");
	/* Bob's own play of the track Alice likes is not liked for Bob. */
	expect(add_play(&bob, t, "now()") == 0);
	expect_str(list_of(bob.access, "history", "track.liked", "/api/user/history"),
	    "false");
	expect_str(list_of(alice.access, "history", "track.liked", "/api/user/history"),
	    "true");
}

static void
test_user_unknown_query_arguments_and_bad_paging_are_400(void)
{
	static const char *const bad[] = {
		"/api/user/favorites?user_id=1",
		"/api/user/favorites?limit=0",
		"/api/user/favorites?limit=ten",
		"/api/user/favorites?page=0",
		"/api/user/favorites?cursor=bm9wZQ",
		"/api/user/favorites?cursor=%zz",
		"/api/user/favorites/ids?limit=5",
		"/api/user/starred-playlists?sort=name",
		"/api/user/starred-playlists/ids?page=1",
		"/api/user/history?limit=-1",
		"/api/user/history?cursor=MTIzLm5vdC1hLXV1aWQ",
		"/api/user/recently-played?limit=0",
		"/api/user/search-history?q=x",
		NULL
	};
	struct it_session	 alice;
	struct http_res	 res;
	int		 i;

	expect(it_new_user("ualice", &alice) == 0);
	for (i = 0; bad[i] != NULL; i++) {
		res = http_bearer("GET", bad[i], alice.access, NULL);
		if (res.status != 400 || json_str(&res, "error.code") == NULL ||
		    strcmp(json_str(&res, "error.code"), "bad_request") != 0)
			t_fail(__FILE__, __LINE__, "%s: %ld %.200s", bad[i], res.status,
			    res.body);
		http_free(&res);
	}
	expect(status_of("DELETE", alice.access, "/api/user/search-history?all=1") == 400);
	expect(status_of("POST", alice.access, "/api/user/favorites/" NO_SUCH_ID "?x=1")
	    == 400);
	res = call("GET", alice.access, "/api/user/favorites?limit=5000");
	expect_status(&res, 200);
	expect(json_int(&res, "limit", 0) == 200);
	http_free(&res);
}

static void
test_user_every_route_without_a_token_is_401(void)
{
	static const struct { const char *method, *path; } routes[] = {
		{ "GET", "/api/user/favorites" },
		{ "GET", "/api/user/favorites/ids" },
		{ "POST", "/api/user/favorites/" NO_SUCH_ID },
		{ "DELETE", "/api/user/favorites/" NO_SUCH_ID },
		{ "GET", "/api/user/starred-playlists" },
		{ "GET", "/api/user/starred-playlists/ids" },
		{ "POST", "/api/user/starred-playlists/" NO_SUCH_ID },
		{ "DELETE", "/api/user/starred-playlists/" NO_SUCH_ID },
		{ "GET", "/api/user/history" },
		{ "GET", "/api/user/recently-played" },
		{ "GET", "/api/user/search-history" },
		{ "DELETE", "/api/user/search-history" },
	};
	struct http_res	 res;
	size_t		 i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		res = http_bearer(routes[i].method, routes[i].path, NULL, NULL);
		if (res.status != 401 || http_header(&res, "WWW-Authenticate") == NULL)
			t_fail(__FILE__, __LINE__, "%s %s: %ld", routes[i].method,
			    routes[i].path, res.status);
		http_free(&res);
		res = http_bearer(routes[i].method, routes[i].path, "not.a.token", NULL);
		if (res.status != 401)
			t_fail(__FILE__, __LINE__, "%s %s with a bad token: %ld",
			    routes[i].method, routes[i].path, res.status);
		http_free(&res);
	}
}

static void
test_user_guest_may_like_star_and_see_history(void)
{
	struct it_session	 guest, bob;
	char		 t[37], pl[37];

	expect(it_new_guest(&guest) == 0 && it_new_user("ubob", &bob) == 0 &&
	    new_track("For guests", t) == 0 && new_playlist(&bob, 1, pl) == 0);
	expect(status_of("POST", guest.access, "/api/user/favorites/%s", t) == 200);
	expect_str(list_of(guest.access, "tracks", "title", "/api/user/favorites"),
	    "For guests");
	expect(status_of("POST", guest.access, "/api/user/starred-playlists/%s", pl) == 200);
	expect(play(&guest, t, "{\"duration_played\":7}") == 201);
	expect_str(list_of(guest.access, "history", "track.title", "/api/user/history"),
	    "For guests");
	expect_str(list_of(guest.access, "recently_played", "track.liked",
	    "/api/user/recently-played"), "true");
	expect_str(list_of(guest.access, "searches", "query", "/api/user/search-history"),
	    "");
}

static void
test_user_ids_of_5000_likes_come_in_one_answer(void)
{
	struct it_session		 heavy;
	struct http_res		 res;
	struct json_object	*ids;
	char			 newest[37];

	expect(it_new_user("uheavy", &heavy) == 0);
	/* 5,000 tracks liked a second apart, "Heavy 5000" last. */
	it_psql("WITH t AS (INSERT INTO tracks (title, artist, duration, source) "
	    "SELECT 'Heavy ' || g, 'User Tests %ld', 60, 'catalog' "
	    "FROM generate_series(1, 5000) g RETURNING id, title) "
	    "INSERT INTO user_favorites (user_id, track_id, created_at) "
	    "SELECT '%s', id, timestamptz '2024-01-01' + substr(title, 7)::int * "
	    "interval '1 second' FROM t", run_id, heavy.id);
	snprintf(newest, sizeof(newest), "%s", it_psql("SELECT id FROM tracks WHERE "
	    "artist = 'User Tests %ld' AND title = 'Heavy 5000'", run_id));
	res = call("GET", heavy.access, "/api/user/favorites/ids");
	it_psql("DELETE FROM tracks WHERE artist = 'User Tests %ld'", run_id);
	expect_status(&res, 200);
	expect(json_int(&res, "count", 0) == 5000);
	expect((ids = json_array(&res, "ids")) != NULL &&
	    json_object_array_length(ids) == 5000);
	expect_str(json_object_get_string(json_object_array_get_idx(ids, 0)), newest);
	fprintf(stderr, "    5000 ids: %zu bytes in %.1f ms\n", res.body_len,
	    res.seconds * 1000);
	expect(res.seconds < 2.0);
	http_free(&res);
}

#define T(fn)	{ #fn, fn }
/*
 * Library pages are shared by every caller through the caches; each
 * caller still sees their own "liked" on every track, at once.
 */
static void
test_user_library_pages_say_what_the_caller_likes(void)
{
	struct it_session	 a, b;
	char			 t1[37], t2[37], path[256], genre[64], like[128];
	struct http_res		 res;

	expect(it_new_user("pagelk", &a) == 0);
	expect(it_new_user("pagelk", &b) == 0);
	snprintf(genre, sizeof(genre), "likes-%ld", (long)getpid());
	expect(new_track("Liked One", t1) == 0);
	expect(new_track("Liked Two", t2) == 0);
	it_psql("UPDATE tracks SET genre = '%s' WHERE id IN ('%s', '%s')", genre, t1, t2);
	snprintf(path, sizeof(path), "/api/music/tracks?genre=%s&sort=title", genre);
	snprintf(like, sizeof(like), "/api/user/favorites/%s", t2);
	expect(it_status("POST", like, a.access, NULL) == 200);
	res = http_bearer("GET", path, a.access, NULL);
	expect_status(&res, 200);
	expect_json_str(&res, "tracks.1.id", t2);
	expect(json_lookup_bool(&res, "tracks.0.liked") == 0);
	expect(json_lookup_bool(&res, "tracks.1.liked") == 1);
	http_free(&res);
	res = http_bearer("GET", path, b.access, NULL);		/* the same page, cached */
	expect_status(&res, 200);
	expect(json_lookup_bool(&res, "tracks.1.liked") == 0);
	http_free(&res);
	expect(it_status("DELETE", like, a.access, NULL) == 200);
	res = http_bearer("GET", path, a.access, NULL);
	expect(json_lookup_bool(&res, "tracks.1.liked") == 0);
	http_free(&res);
	/* a like made behind the API's back is seen within a second */
	it_psql("INSERT INTO user_favorites (user_id, track_id) VALUES ('%s', '%s')", a.id, t1);
	sleep_ms(300);
	res = http_bearer("GET", path, a.access, NULL);
	expect(json_lookup_bool(&res, "tracks.0.liked") == 1);
	http_free(&res);
}

const struct it_test user_tests[] = {
	T(test_user_library_pages_say_what_the_caller_likes),
	T(test_user_like_lists_the_track_as_liked_then_unlike_removes_it),
	T(test_user_liking_twice_is_one_like_and_unliking_twice_is_200),
	T(test_user_parallel_likes_of_one_track_end_as_one_row),
	T(test_user_favorites_are_newest_first_and_a_cursor_walks_each_once),
	T(test_user_deactivated_track_is_not_listed_and_cannot_be_liked),
	T(test_user_malformed_id_is_400_and_unknown_track_is_404),
	T(test_user_private_playlist_of_someone_else_is_404_for_star),
	T(test_user_public_playlist_can_be_starred_and_star_count_follows),
	T(test_user_starred_playlist_made_private_drops_out_of_the_list),
	T(test_user_history_is_newest_first_with_the_track_and_liked),
	T(test_user_history_from_and_to_filter_by_time),
	T(test_user_history_bad_dates_are_400),
	T(test_user_history_of_a_deleted_track_has_track_null),
	T(test_user_recently_played_lists_each_track_once_with_its_plays),
	T(test_user_search_history_lists_newest_first_and_delete_clears_only_the_callers),
	T(test_user_other_users_never_see_the_callers_data),
	T(test_user_unknown_query_arguments_and_bad_paging_are_400),
	T(test_user_every_route_without_a_token_is_401),
	T(test_user_guest_may_like_star_and_see_history),
	T(test_user_ids_of_5000_likes_come_in_one_answer),
};
const size_t user_ntests = sizeof(user_tests) / sizeof(user_tests[0]);

void
user_tests_init(const char *dir, const char *repo)
{
	stack_dir = dir;
	top = repo;
	run_id = (long)getpid() % 100000;
}
