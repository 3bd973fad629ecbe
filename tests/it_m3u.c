/*
 * tests/it_m3u.c: playlists as M3U files, through nginx. Export of what
 * the database holds (rows made with psql), who may export what, the
 * round trip export -> import, each way an entry is matched (stream
 * path, stored path, last two components, EXTINF artist and title), and
 * the refusals: wrong type, too large, not UTF-8, guests, strangers,
 * limits, and a failure halfway through that must leave nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"

#define M3U_TYPE	"Content-Type: audio/x-mpegurl"

static const char	*stack_dir;
static char		 fixtures[64];	/* mkdtemp dir for the audio we make */
static long		 run_id;	/* makes names unique to this run */

/* ---- helpers ---------------------------------------------------------- */


/* psql into id[37]: the first line of the answer. 0 if it is a UUID. */
static int
psql_id(char id[37], const char *fmt, ...)
{
	char		 sql[8192];
	const char	*out;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	out = it_psql("%s", sql);
	snprintf(id, 37, "%s", out);
	if (strlen(id) != 36) {
		fprintf(stderr, "    psql: %s -> %s\n", sql, out);
		return -1;
	}
	return 0;
}

static struct http_res
export_m3u(const char *token, const char *playlist_id)
{
	char		 path[256], auth[4200];
	const char	*h[2] = { auth, NULL };

	snprintf(path, sizeof(path), "/api/playlists/%s/export.m3u8", playlist_id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	return http_do("GET", path, token ? h : NULL, NULL, 0);
}

/* POST body to /api/playlists/import?query (may be NULL) as ctype. */
static struct http_res
import_m3u(const char *token, const char *query, const char *ctype,
    const char *body, size_t len)
{
	char		 path[1024], auth[4200];
	const char	*h[3] = { ctype, NULL, NULL };

	snprintf(path, sizeof(path), "/api/playlists/import%s%s",
	    query ? "?" : "", query ? query : "");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h[1] = auth;
	}
	return http_do("POST", path, h, body, len);
}

/* The track ids of a playlist in position order, joined by ','. Static. */
static const char *
entries_of(const char *playlist_id)
{
	return it_psql("SELECT coalesce(string_agg(track_id::text, ',' ORDER BY position),"
	    " '') FROM playlist_tracks WHERE playlist_id = '%s'", playlist_id);
}

/* A track made in psql: no file, but every column the export reads. */
static int
make_track(char id[37], const char *title, const char *artist, int duration,
    const char *file_path, const char *source_path, int popularity)
{
	char	 fp[600], sp[600];

	snprintf(fp, sizeof(fp), file_path ? "'%s'" : "NULL", file_path);
	snprintf(sp, sizeof(sp), source_path ? "'%s'" : "NULL", source_path);
	return psql_id(id, "INSERT INTO tracks (title, artist, duration, file_path,"
	    " source, source_path, popularity) VALUES (%s, '%s', %d, %s, '%s', %s, %d)"
	    " RETURNING id", title, artist, duration, fp,
	    source_path ? "import" : file_path ? "upload" : "catalog", sp, popularity);
}

/* A playlist of owner holding the tracks in this order. */
static int
make_playlist(char id[37], const char *owner, const char *name_sql, int is_public,
    const char *const *tracks, int n)
{
	char	 values[4096];
	size_t	 o = 0;
	int	 i;

	if (psql_id(id, "INSERT INTO playlists (name, owner_id, is_public)"
	    " VALUES (%s, '%s', %s) RETURNING id", name_sql, owner,
	    is_public ? "true" : "false") != 0)
		return -1;
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(values + o, sizeof(values) - o, "%s('%s', '%s', %d)",
		    i ? ", " : "", id, tracks[i], i);
	it_psql("INSERT INTO playlist_tracks (playlist_id, track_id, position) VALUES %s",
	    values);
	return strcmp(it_psql("SELECT track_count FROM playlists WHERE id = '%s'", id),
	    "") != 0 ? 0 : -1;
}

static void
fixtures_remove(void)
{
	if (fixtures[0] != '\0')
		sh("rm -rf %s", fixtures);
}

/* Upload a sine WAV of freq Hz (unique bytes) as token. OUT: id. */
static int
upload_wav(const char *token, int freq, const char *title, char id[37])
{
	char	 file[600], path[256];

	if (fixtures[0] == '\0') {
		snprintf(fixtures, sizeof(fixtures), "/tmp/djamms-m3u.XXXXXX");
		if (mkdtemp(fixtures) == NULL) {
			fixtures[0] = '\0';
			return -1;
		}
		atexit(fixtures_remove);
	}
	snprintf(file, sizeof(file), "%s/%d.wav", fixtures, freq);
	if (sh("sox -n -r 8000 -c 1 -b 16 %s synth 2 sine %d 2>/dev/null", file, freq) != 0)
		return -1;
	snprintf(path, sizeof(path), "/api/music/tracks?title=%s&artist=M3U%ld", title,
	    run_id);
	return it_upload_file(token, file, path, id);
}

/* The object at index i of the array under key, or NULL. */
static struct json_object *
elem(const struct http_res *res, const char *key, size_t i)
{
	struct json_object	*a;

	if (res->json == NULL || !json_object_object_get_ex(res->json, key, &a) ||
	    !json_object_is_type(a, json_type_array))
		return NULL;
	return json_object_array_get_idx(a, i);
}

static const char *
field_str(struct json_object *o, const char *key)
{
	struct json_object	*v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static long long
field_int(struct json_object *o, const char *key)
{
	struct json_object	*v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

/* Accounts several tests share. */
static struct it_session	 owner, stranger;

static int
ensure_users(void)
{
	if (owner.access[0] == '\0' && it_new_user("m3uown", &owner) != 0)
		return -1;
	if (stranger.access[0] == '\0' && it_new_user("m3uoth", &stranger) != 0)
		return -1;
	return 0;
}

/* ---- export ----------------------------------------------------------- */

static void
test_m3u_export_lists_entries_in_position_order(void)
{
	char		 imp[37], upl[37], cat[37], pl[37], src[256], fp[256];
	char		 want[4096];
	const char	*ids[4];
	const char	*ct, *cd;
	struct http_res	 res;

	expect(ensure_users() == 0);
	snprintf(src, sizeof(src), "/srv/music/Nina Simone/%ld/Sinnerman.flac", run_id);
	snprintf(fp, sizeof(fp), "audio/2026/12/M3U/%ld/upload.mp3", run_id);
	expect(make_track(imp, "'Sinnerman'", "Nina Simone", 241, "audio/x/imp.flac",
	    src, 0) == 0);
	/* A title with a line break must not start a line of its own. */
	expect(make_track(upl, "E'Line\\nBreak'", "", 187, fp, NULL, 0) == 0);
	expect(make_track(cat, "'Almost Blue'", "Chet Baker", 215, NULL, NULL, 0) == 0);
	ids[0] = cat;
	ids[1] = imp;
	ids[2] = upl;
	ids[3] = imp;		/* a track may come twice */
	expect(make_playlist(pl, owner.id, "E'Road\\r\\ntrip \xc3\xa9'", 0, ids, 4) == 0);

	res = export_m3u(owner.access, pl);
	expect_status(&res, 200);
	snprintf(want, sizeof(want),
	    "#EXTM3U\n"
	    "#PLAYLIST:Road  trip \xc3\xa9\n"
	    "#EXTINF:215,Chet Baker - Almost Blue\n"
	    "/api/music/tracks/%s/stream\n"
	    "#EXTINF:241,Nina Simone - Sinnerman\n"
	    "%s\n"
	    "#EXTINF:187,Line Break\n"
	    "%s\n"
	    "#EXTINF:241,Nina Simone - Sinnerman\n"
	    "%s\n", cat, src, fp, src);
	if (strcmp(res.body, want) != 0) {
		t_fail(__FILE__, __LINE__, "export:\n%s\nwanted:\n%s", res.body, want);
		http_free(&res);
		return;
	}
	ct = http_header(&res, "Content-Type");
	expect(ct != NULL && strcmp(ct, "audio/x-mpegurl; charset=utf-8") == 0);
	cd = http_header(&res, "Content-Disposition");
	expect(cd != NULL && strcmp(cd, "attachment; filename=\"Road  trip __.m3u8\"; "
	    "filename*=UTF-8''Road%20%20trip%20%C3%A9.m3u8") == 0);
	http_free(&res);
}

static void
test_m3u_export_of_an_empty_playlist_is_the_header_alone(void)
{
	char		 pl[37];
	struct http_res	 res;

	expect(ensure_users() == 0);
	expect(make_playlist(pl, owner.id, "'Nothing yet'", 0, NULL, 0) == 0);
	res = export_m3u(owner.access, pl);
	expect_status(&res, 200);
	expect(strcmp(res.body, "#EXTM3U\n#PLAYLIST:Nothing yet\n") == 0);
	http_free(&res);
}

static void
test_m3u_export_of_another_users_private_playlist_is_404(void)
{
	char		 priv[37], pub[37];
	struct http_res	 res;

	expect(ensure_users() == 0);
	expect(make_playlist(priv, owner.id, "'Mine only'", 0, NULL, 0) == 0);
	expect(make_playlist(pub, owner.id, "'For all'", 1, NULL, 0) == 0);
	res = export_m3u(stranger.access, priv);
	expect_status(&res, 404);
	expect_json_str(&res, "error.code", "not_found");
	http_free(&res);
	/* The same answer as for a playlist that does not exist at all. */
	res = export_m3u(stranger.access, "00000000-0000-4000-8000-000000000000");
	expect_status(&res, 404);
	http_free(&res);
	res = export_m3u(stranger.access, pub);
	expect_status(&res, 200);
	http_free(&res);
	/* A collaborator sees it. */
	it_psql("INSERT INTO playlist_collaborators (playlist_id, user_id) VALUES ('%s', '%s')",
	    priv, stranger.id);
	res = export_m3u(stranger.access, priv);
	expect_status(&res, 200);
	http_free(&res);
}

static void
test_m3u_export_with_a_malformed_id_is_400(void)
{
	struct http_res	 res;

	expect(ensure_users() == 0);
	res = export_m3u(owner.access, "not-a-uuid");
	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	http_free(&res);
}

static void
test_m3u_export_without_a_token_is_401(void)
{
	struct http_res	 res = export_m3u(NULL, "00000000-0000-4000-8000-000000000000");

	expect_status(&res, 401);
	http_free(&res);
}

/* ---- import ----------------------------------------------------------- */

static void
test_m3u_round_trip_gives_the_same_tracks_in_the_same_order(void)
{
	char		 up1[37], up2[37], imp[37], cat[37], pl[37], src[256];
	char		 want[256], copy[37], *body;
	const char	*ids[5];
	struct http_res	 res;
	size_t		 len;

	expect(ensure_users() == 0);
	expect(upload_wav(owner.access, 610 + (int)(run_id % 97), "RoundOne", up1) == 0);
	expect(upload_wav(owner.access, 1610 + (int)(run_id % 97), "RoundTwo", up2) == 0);
	snprintf(src, sizeof(src), "/srv/music/%ld/Round Trip/Imported.flac", run_id);
	expect(make_track(imp, "'Imported'", "Someone", 100, "audio/x/i.flac", src, 0) == 0);
	expect(make_track(cat, "'Catalogued'", "Someone", 90, NULL, NULL, 0) == 0);
	ids[0] = up2;
	ids[1] = cat;
	ids[2] = up1;
	ids[3] = imp;
	ids[4] = up2;
	expect(make_playlist(pl, owner.id, "'Round trip'", 0, ids, 5) == 0);

	res = export_m3u(owner.access, pl);
	expect_status(&res, 200);
	body = res.body;
	len = res.body_len;
	res.body = NULL;
	http_free(&res);

	res = import_m3u(owner.access, NULL, M3U_TYPE, body, len);
	free(body);
	expect_status(&res, 201);
	expect(json_int(&res, "matched", -1) == 5);
	expect(json_int(&res, "unmatched_count", -1) == 0);
	expect(elem(&res, "unmatched", 0) == NULL);
	expect_json_str(&res, "playlist.name", "Round trip");
	expect_json_str(&res, "playlist.source", "import");
	expect_json_str(&res, "playlist.role", "owner");
	expect_json_str(&res, "playlist.owner.id", owner.id);
	expect(json_int(&res, "playlist.track_count", -1) == 5);
	snprintf(copy, sizeof(copy), "%s", json_str(&res, "playlist.id"));
	expect(strcmp(copy, pl) != 0);
	snprintf(want, sizeof(want), "/api/playlists/%s", copy);
	expect(http_header(&res, "Location") != NULL &&
	    strcmp(http_header(&res, "Location"), want) == 0);
	http_free(&res);
	snprintf(want, sizeof(want), "%s,%s,%s,%s,%s", up2, cat, up1, imp, up2);
	expect(strcmp(entries_of(copy), want) == 0);
	expect(strcmp(it_psql("SELECT string_agg(DISTINCT added_by::text, ',')"
	    " FROM playlist_tracks WHERE playlist_id = '%s'", copy), owner.id) == 0);
}

static void
test_m3u_import_matches_extinf_artist_and_title_and_reports_the_rest(void)
{
	char		 quiet[37], loud[37], other[37], artist[64], body[2048];
	char		 want[128], pl[37];
	struct http_res	 res;
	struct json_object	*u;

	expect(ensure_users() == 0);
	snprintf(artist, sizeof(artist), "Miles Davis %ld", run_id);
	/* Two tracks answer to the same name: the more popular one wins. */
	expect(make_track(quiet, "'So What'", artist, 545, NULL, NULL, 10) == 0);
	expect(make_track(loud, "'So What'", artist, 545, NULL, NULL, 90) == 0);
	expect(make_track(other, "'Blue in Green'", artist, 337, NULL, NULL, 0) == 0);
	/* A deactivated track is not in the library any more. */
	it_psql("UPDATE tracks SET is_active = false WHERE id = '%s'", other);
	snprintf(body, sizeof(body),
	    "#EXTM3U\r\n"
	    "#EXTINF:545,%s - so what\r\n"		/* case does not matter */
	    "D:\\Rips\\Kind of Blue\\01.mp3\r\n"
	    "#EXTINF:337,%s - Blue in Green\r\n"
	    "D:\\Rips\\Kind of Blue\\03.mp3\r\n"
	    "#EXTINF:100,Nobody %ld - Nothing\r\n"
	    "/nowhere/%ld/nothing.mp3\r\n"
	    "no-extinf-%ld.mp3\r\n", artist, artist, run_id, run_id, run_id);
	res = import_m3u(owner.access, "name=Kind%20of%20Blue&public=1",
	    "Content-Type: text/plain; charset=utf-8", body, strlen(body));
	expect_status(&res, 201);
	expect(json_int(&res, "matched", -1) == 1);
	expect(json_int(&res, "unmatched_count", -1) == 3);
	expect_json_str(&res, "playlist.name", "Kind of Blue");
	expect(json_has(&res, "playlist.is_public"));
	snprintf(pl, sizeof(pl), "%s", json_str(&res, "playlist.id"));
	u = elem(&res, "unmatched", 0);
	expect(field_int(u, "line") == 5);
	expect(field_str(u, "location") != NULL &&
	    strcmp(field_str(u, "location"), "D:\\Rips\\Kind of Blue\\03.mp3") == 0);
	snprintf(want, sizeof(want), "%s - Blue in Green", artist);
	expect(field_str(u, "title") != NULL && strcmp(field_str(u, "title"), want) == 0);
	u = elem(&res, "unmatched", 1);
	expect(field_int(u, "line") == 7);
	u = elem(&res, "unmatched", 2);
	expect(field_int(u, "line") == 8);
	expect(field_str(u, "title") == NULL);
	expect(elem(&res, "unmatched", 3) == NULL);
	http_free(&res);
	expect(strcmp(entries_of(pl), loud) == 0);
	expect(strcmp(it_psql("SELECT is_public FROM playlists WHERE id = '%s'", pl),
	    "t") == 0);
}

static void
test_m3u_import_matches_a_relative_path_by_its_last_two_components(void)
{
	char		 trk[37], src[256], body[1024], pl[37];
	struct http_res	 res;

	expect(ensure_users() == 0);
	snprintf(src, sizeof(src), "/srv/music/Coltrane%ld/Giant Steps.flac", run_id);
	expect(make_track(trk, "'Giant Steps'", "John Coltrane", 286, "audio/x/g.flac",
	    src, 0) == 0);
	/* Another machine's path, and a file:// URL, to the same two components. */
	snprintf(body, sizeof(body),
	    "../../Music/Coltrane%ld/Giant Steps.flac\n"
	    "file:///home/me/Coltrane%ld/Giant%%20Steps.flac\n", run_id, run_id);
	res = import_m3u(owner.access, NULL, "Content-Type: audio/mpegurl", body,
	    strlen(body));
	expect_status(&res, 201);
	expect(json_int(&res, "matched", -1) == 2);
	expect_json_str(&res, "playlist.name", "Imported playlist");
	snprintf(pl, sizeof(pl), "%s", json_str(&res, "playlist.id"));
	http_free(&res);
	snprintf(body, sizeof(body), "%s,%s", trk, trk);
	expect(strcmp(entries_of(pl), body) == 0);
}

static void
test_m3u_import_path_trick_matches_nothing(void)
{
	static const char	 body[] = "#EXTM3U\n#PLAYLIST:Tricks\n"
				    "../../etc/passwd\n"
				    "/etc/passwd\n"
				    "file:///etc/shadow\n"
				    "../../../../../../../../..\n"
				    "/api/music/tracks/../../../etc/passwd/stream\n";
	struct http_res		 res;

	expect(ensure_users() == 0);
	res = import_m3u(owner.access, NULL, "Content-Type: application/vnd.apple.mpegurl",
	    body, sizeof(body) - 1);
	expect_status(&res, 201);
	expect_json_str(&res, "playlist.name", "Tricks");
	expect(json_int(&res, "matched", -1) == 0);
	expect(json_int(&res, "unmatched_count", -1) == 5);
	expect(json_int(&res, "playlist.track_count", -1) == 0);
	http_free(&res);
}

static void
test_m3u_import_as_json_is_415(void)
{
	struct http_res	 res;

	expect(ensure_users() == 0);
	res = import_m3u(owner.access, NULL, "Content-Type: application/json",
	    "{}", 2);
	expect_status(&res, 415);
	expect_json_str(&res, "error.code", "unsupported_media_type");
	http_free(&res);
	/* A Latin-1 file declared as such is refused the same way. */
	res = import_m3u(owner.access, NULL,
	    "Content-Type: audio/x-mpegurl; charset=iso-8859-1", "caf\xe9.mp3\n", 9);
	expect_status(&res, 415);
	http_free(&res);
}

static void
test_m3u_import_of_a_body_that_is_not_utf8_is_400(void)
{
	struct http_res	 res;
	long		 before;

	expect(ensure_users() == 0);
	before = atol(it_psql("SELECT count(*) FROM playlists WHERE owner_id = '%s'",
	    owner.id));
	res = import_m3u(owner.access, NULL, M3U_TYPE, "#EXTINF:1,Caf\xe9 - X\nx.mp3\n",
	    strlen("#EXTINF:1,Caf\xe9 - X\nx.mp3\n"));
	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	http_free(&res);
	expect(atol(it_psql("SELECT count(*) FROM playlists WHERE owner_id = '%s'",
	    owner.id)) == before);
}

static void
test_m3u_import_over_the_body_limit_is_413(void)
{
	size_t		 n = 100 * 1024;	/* DJAMMS_BODY_MAX is 64 KiB here */
	char		*body = malloc(n);
	struct http_res	 res;
	size_t		 i;

	expect(ensure_users() == 0);
	expect(body != NULL);
	for (i = 0; i < n; i++)
		body[i] = i % 32 == 31 ? '\n' : 'a';
	res = import_m3u(owner.access, NULL, M3U_TYPE, body, n);
	free(body);
	expect_status(&res, 413);
	expect_json_str(&res, "error.code", "payload_too_large");
	http_free(&res);
}

static void
test_m3u_import_as_a_guest_is_403(void)
{
	struct it_session	 guest;
	struct http_res	 res = http_bearer("POST", "/api/auth/anonymous", NULL, NULL);

	expect(it_take_session(&res, &guest) == 0);
	http_free(&res);
	res = import_m3u(guest.access, NULL, M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 403);
	expect_json_str(&res, "error.code", "forbidden");
	http_free(&res);
}

static void
test_m3u_import_without_a_token_is_401(void)
{
	struct http_res	 res = import_m3u(NULL, NULL, M3U_TYPE, "a.mp3\n", 6);

	expect_status(&res, 401);
	expect_json_str(&res, "error.code", "unauthorized");
	http_free(&res);
}

static void
test_m3u_import_checks_name_and_public(void)
{
	char		 longname[300];
	struct http_res	 res;

	expect(ensure_users() == 0);
	res = import_m3u(owner.access, "name=", M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 422);
	expect_json_str(&res, "error.code", "validation_failed");
	http_free(&res);
	memcpy(longname, "name=", 5);
	memset(longname + 5, 'n', 256);		/* one byte too many */
	longname[5 + 256] = '\0';
	res = import_m3u(owner.access, longname, M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 422);
	http_free(&res);
	longname[5 + 255] = '\0';
	res = import_m3u(owner.access, longname, M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 201);
	expect(strlen(json_str(&res, "playlist.name")) == 255);
	http_free(&res);
	res = import_m3u(owner.access, "name=a%0Ab", M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 422);
	http_free(&res);
	res = import_m3u(owner.access, "public=yes", M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 400);
	http_free(&res);
	res = import_m3u(owner.access, "colour=blue", M3U_TYPE, "a.mp3\n", 6);
	expect_status(&res, 400);
	http_free(&res);
}

/* The system settings the limits come from, set for one test. */
static void
setting_set(const char *key, const char *value)
{
	it_psql("INSERT INTO system_settings (key, value) VALUES ('%s', '%s')"
	    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", key, value);
}

static void
test_m3u_import_past_the_entry_limit_is_422_and_creates_nothing(void)
{
	char		 saved[64];
	struct it_session	 u;
	struct http_res	 res;
	long		 st;

	expect(it_new_user("m3ulim", &u) == 0);
	snprintf(saved, sizeof(saved), "%s", it_psql("SELECT value::text FROM "
	    "system_settings WHERE key = 'max_playlist_entries'"));
	setting_set("max_playlist_entries", "2");
	res = import_m3u(u.access, NULL, M3U_TYPE, "a.mp3\nb.mp3\nc.mp3\n", 18);
	st = res.status;
	if (st != 422 || strstr(res.body, "at most 2") == NULL)
		t_fail(__FILE__, __LINE__, "3 entries over a limit of 2: %ld %s", st,
		    res.body);
	http_free(&res);
	res = import_m3u(u.access, NULL, M3U_TYPE, "a.mp3\nb.mp3\n", 12);
	if (res.status != 201)
		t_fail(__FILE__, __LINE__, "2 entries at a limit of 2: %ld", res.status);
	http_free(&res);
	setting_set("max_playlist_entries", saved[0] ? saved : "10000");
	expect(strcmp(it_psql("SELECT count(*) FROM playlists WHERE owner_id = '%s'", u.id),
	    "1") == 0);
}

static void
test_m3u_import_past_the_playlist_limit_is_422(void)
{
	char		 saved[64];
	struct it_session	 u;
	struct http_res	 res;

	expect(it_new_user("m3umax", &u) == 0);
	snprintf(saved, sizeof(saved), "%s", it_psql("SELECT value::text FROM "
	    "system_settings WHERE key = 'max_playlists_per_user'"));
	setting_set("max_playlists_per_user", "1");
	res = import_m3u(u.access, NULL, M3U_TYPE, "a.mp3\n", 6);
	if (res.status != 201)
		t_fail(__FILE__, __LINE__, "first playlist: %ld %s", res.status, res.body);
	http_free(&res);
	res = import_m3u(u.access, NULL, M3U_TYPE, "a.mp3\n", 6);
	if (res.status != 422 || json_str(&res, "error.code") == NULL ||
	    strcmp(json_str(&res, "error.code"), "validation_failed") != 0)
		t_fail(__FILE__, __LINE__, "second playlist: %ld %s", res.status, res.body);
	http_free(&res);
	setting_set("max_playlists_per_user", saved[0] ? saved : "500");
	expect(strcmp(it_psql("SELECT count(*) FROM playlists WHERE owner_id = '%s'", u.id),
	    "1") == 0);
}

/*
 * The database refuses the entries after the playlist row is in: the
 * transaction must take the playlist back with it.
 */
static void
test_m3u_import_failing_halfway_leaves_nothing(void)
{
	char		 trk[37], body[512], name[64];
	struct http_res	 res;

	expect(ensure_users() == 0);
	snprintf(name, sizeof(name), "fault%ld", run_id);
	expect(make_track(trk, "'Fault'", "Fault", 10, NULL, NULL, 0) == 0);
	it_psql("CREATE OR REPLACE FUNCTION m3u_test_fault() RETURNS trigger LANGUAGE plpgsql"
	    " AS \\$\\$ BEGIN IF EXISTS (SELECT 1 FROM playlists WHERE id = NEW.playlist_id"
	    " AND name = '%s') THEN RAISE EXCEPTION 'injected fault'; END IF;"
	    " RETURN NEW; END \\$\\$; SET client_min_messages = warning;"
	    " DROP TRIGGER IF EXISTS m3u_test_fault ON playlist_tracks;"
	    " CREATE TRIGGER m3u_test_fault BEFORE INSERT ON playlist_tracks"
	    " FOR EACH ROW EXECUTE FUNCTION m3u_test_fault()", name);
	snprintf(body, sizeof(body), "/api/music/tracks/%s/stream\n", trk);
	{
		char	 query[128];

		snprintf(query, sizeof(query), "name=%s", name);
		res = import_m3u(owner.access, query, M3U_TYPE, body, strlen(body));
	}
	it_psql("DROP TRIGGER m3u_test_fault ON playlist_tracks; DROP FUNCTION m3u_test_fault()");
	if (res.status < 500)
		t_fail(__FILE__, __LINE__, "injected fault answered %ld %s", res.status,
		    res.body);
	http_free(&res);
	expect(strcmp(it_psql("SELECT count(*) FROM playlists WHERE name = '%s'", name),
	    "0") == 0);
	/* And without the fault the same import goes through. */
	res = import_m3u(owner.access, "name=after", M3U_TYPE, body, strlen(body));
	expect_status(&res, 201);
	expect(json_int(&res, "matched", -1) == 1);
	http_free(&res);
}

/* ---- runner ----------------------------------------------------------- */

#define T(fn)	{ #fn, fn }
const struct it_test m3u_tests[] = {
	T(test_m3u_export_lists_entries_in_position_order),
	T(test_m3u_export_of_an_empty_playlist_is_the_header_alone),
	T(test_m3u_export_of_another_users_private_playlist_is_404),
	T(test_m3u_export_with_a_malformed_id_is_400),
	T(test_m3u_export_without_a_token_is_401),
	T(test_m3u_round_trip_gives_the_same_tracks_in_the_same_order),
	T(test_m3u_import_matches_extinf_artist_and_title_and_reports_the_rest),
	T(test_m3u_import_matches_a_relative_path_by_its_last_two_components),
	T(test_m3u_import_path_trick_matches_nothing),
	T(test_m3u_import_as_json_is_415),
	T(test_m3u_import_of_a_body_that_is_not_utf8_is_400),
	T(test_m3u_import_over_the_body_limit_is_413),
	T(test_m3u_import_as_a_guest_is_403),
	T(test_m3u_import_without_a_token_is_401),
	T(test_m3u_import_checks_name_and_public),
	T(test_m3u_import_past_the_entry_limit_is_422_and_creates_nothing),
	T(test_m3u_import_past_the_playlist_limit_is_422),
	T(test_m3u_import_failing_halfway_leaves_nothing),
};
const size_t m3u_ntests = sizeof(m3u_tests) / sizeof(m3u_tests[0]);

void
m3u_tests_init(const char *dir, const char *repo)
{
	(void)repo;
	stack_dir = dir;
	run_id = (long)getpid() % 100000;
}
