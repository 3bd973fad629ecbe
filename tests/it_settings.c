/*
 * tests/it_settings.c: preferences and the server's settings through
 * nginx: defaults, typed checks naming the key, null back to the default,
 * one listener's preferences invisible to another, who may read and change
 * the server's settings, all-or-nothing writes, and settings that take
 * effect at once (registration, the playlist limit, the scheduler's
 * fallback).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

static long		 run_id;

static void
test_settings_preferences_defaults_changes_and_resets(void)
{
	struct it_session	 a, b;
	struct http_res		 res;

	expect(it_new_user("prefa", &a) == 0);
	expect(it_new_user("prefb", &b) == 0);
	res = http_bearer("GET", "/api/settings/user", a.access, NULL);
	expect_status(&res, 200);
	expect_json_str(&res, "preferences.theme", "system");
	expect(json_int(&res, "preferences.volume", -1) == 80);
	expect(json_lookup_bool(&res, "preferences.autoplay") == 1);
	http_free(&res);

	res = http_bearer("PUT", "/api/settings/user", a.access,
	    "{\"theme\":\"dark\",\"volume\":35,\"timezone\":\"Asia/Tokyo\","
	    "\"language\":\"pt-BR\",\"autoplay\":false}");
	expect_status(&res, 200);
	expect_json_str(&res, "preferences.theme", "dark");
	expect(json_int(&res, "preferences.volume", -1) == 35);
	expect_json_str(&res, "preferences.timezone", "Asia/Tokyo");
	expect(json_lookup_bool(&res, "preferences.autoplay") == 0);
	expect_json_str(&res, "defaults.theme", "system");
	http_free(&res);
	/* the other keys stay as they were */
	res = http_bearer("PUT", "/api/settings/user", a.access, "{\"crossfade_seconds\":6}");
	expect_status(&res, 200);
	expect_json_str(&res, "preferences.theme", "dark");
	expect(json_int(&res, "preferences.crossfade_seconds", -1) == 6);
	http_free(&res);
	/* null: back to the default */
	res = http_bearer("PUT", "/api/settings/user", a.access, "{\"theme\":null}");
	expect_json_str(&res, "preferences.theme", "system");
	expect(json_int(&res, "preferences.volume", -1) == 35);
	http_free(&res);
	/* someone else's are their own */
	res = http_bearer("GET", "/api/settings/user", b.access, NULL);
	expect(json_int(&res, "preferences.volume", -1) == 80);
	http_free(&res);
	expect(it_status("GET", "/api/settings/user", NULL, NULL) == 401);
}

static void
test_settings_preferences_bad_values_name_the_key_and_change_nothing(void)
{
	static const struct { const char *json; long status; const char *field; } cases[] = {
		{ "{\"volume\":101}", 422, "volume" },
		{ "{\"volume\":\"80\"}", 422, "volume" },
		{ "{\"volume\":50.5}", 422, "volume" },
		{ "{\"theme\":\"neon\"}", 422, "theme" },
		{ "{\"timezone\":\"Mars/Olympus_Mons\"}", 422, "timezone" },
		{ "{\"language\":\"english\"}", 422, "language" },
		{ "{\"autoplay\":\"yes\"}", 422, "autoplay" },
		{ "{\"crossfade_seconds\":-1}", 422, "crossfade_seconds" },
		{ "{\"volume\":10,\"theme\":\"neon\"}", 422, "theme" },
		{ "{\"favourite_colour\":\"red\"}", 400, "favourite_colour" },
		{ "[]", 400, NULL },
	};
	struct it_session	 a;
	struct http_res		 res;
	size_t			 i;

	expect(it_new_user("prefbad", &a) == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		res = http_bearer("PUT", "/api/settings/user", a.access, cases[i].json);
		if (res.status != cases[i].status)
			t_fail(__FILE__, __LINE__, "%s: %ld %s", cases[i].json, res.status,
			    res.body ? res.body : "");
		expect(res.status == cases[i].status);
		if (cases[i].field != NULL)
			expect_json_str(&res, "error.details.field", cases[i].field);
		http_free(&res);
	}
	/* the volume of the mixed case was not written */
	res = http_bearer("GET", "/api/settings/user", a.access, NULL);
	expect(json_int(&res, "preferences.volume", -1) == 80);
	http_free(&res);
	expect(strcmp(it_psql("SELECT preferences::text FROM users WHERE id = '%s'", a.id),
	    "{}") == 0);
}

static void
test_settings_system_read_by_staff_changed_by_admins(void)
{
	struct it_session	 admin, mod, u, g;
	struct http_res		 res;
	char			 name[64];

	expect(it_new_admin("setadm", &admin) == 0);
	expect(it_new_user("setmod", &mod) == 0);
	expect(it_new_user("setusr", &u) == 0);
	expect(it_new_guest(&g) == 0);
	it_psql("UPDATE users SET role = 'moderator' WHERE id = '%s'", mod.id);
	expect(it_login(mod.name, &mod) == 0);

	expect(it_status("GET", "/api/settings/system", NULL, NULL) == 401);
	expect(it_status("GET", "/api/settings/system", g.access, NULL) == 403);
	expect(it_status("GET", "/api/settings/system", u.access, NULL) == 403);
	expect(it_status("GET", "/api/settings/system", mod.access, NULL) == 200);
	expect(it_status("PUT", "/api/settings/system", mod.access,
	    "{\"registration_open\":false}") == 403);
	res = http_bearer("GET", "/api/settings/system", admin.access, NULL);
	expect_status(&res, 200);
	expect(json_lookup_bool(&res, "values.registration_open") == 1);
	expect(json_int(&res, "values.max_playlist_entries", 0) == 10000);
	expect_json_str(&res, "settings.0.key", "registration_open");
	expect_json_str(&res, "settings.0.type", "boolean");
	http_free(&res);

	/* registration closes at once */
	res = http_bearer("PUT", "/api/settings/system", admin.access,
	    "{\"registration_open\":false}");
	expect_status(&res, 200);
	expect(json_lookup_bool(&res, "values.registration_open") == 0);
	http_free(&res);
	snprintf(name, sizeof(name), "closed%ld", run_id);
	{
		char	 body[256];

		snprintf(body, sizeof(body), "{\"username\":\"%s\",\"email\":\"%s@example.org\","
		    "\"password\":\"" IT_PASSWORD "\"}", name, name);
		expect(it_status("POST", "/api/auth/register", NULL, body) == 403);
		expect(it_status("PUT", "/api/settings/system", admin.access,
		    "{\"registration_open\":true}") == 200);
		expect(it_status("POST", "/api/auth/register", NULL, body) == 201);
	}
	expect(strcmp(it_psql("SELECT updated_by FROM system_settings"
	    " WHERE key = 'registration_open'"), admin.id) == 0);
}

static void
test_settings_system_values_are_checked_all_or_nothing(void)
{
	static const struct { const char *json; long status; const char *field; } cases[] = {
		{ "{\"max_playlist_entries\":20000}", 422, "max_playlist_entries" },
		{ "{\"max_playlists_per_user\":0}", 422, "max_playlists_per_user" },
		{ "{\"storage_quota_bytes\":-5}", 422, "storage_quota_bytes" },
		{ "{\"registration_open\":\"no\"}", 422, "registration_open" },
		{ "{\"registration_open\":null}", 422, "registration_open" },
		{ "{\"default_timezone\":\"Nowhere/Land\"}", 422, "default_timezone" },
		{ "{\"fallback_playlist_id\":\"00000000-0000-4000-8000-000000000000\"}", 422,
		  "fallback_playlist_id" },
		{ "{\"fallback_playlist_id\":42}", 422, "fallback_playlist_id" },
		{ "{\"max_playlists_per_user\":7,\"default_timezone\":\"Nowhere/Land\"}", 422,
		  "default_timezone" },
		{ "{\"secret_key\":\"x\"}", 400, "secret_key" },
	};
	struct it_session	 admin;
	struct http_res		 res;
	char			 pl[37], body[256];
	size_t			 i;

	expect(it_new_admin("setchk", &admin) == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		res = http_bearer("PUT", "/api/settings/system", admin.access, cases[i].json);
		if (res.status != cases[i].status)
			t_fail(__FILE__, __LINE__, "%s: %ld %s", cases[i].json, res.status,
			    res.body ? res.body : "");
		expect(res.status == cases[i].status);
		expect_json_str(&res, "error.details.field", cases[i].field);
		http_free(&res);
	}
	/* the mixed case changed nothing */
	expect(strcmp(it_psql("SELECT value::text FROM system_settings"
	    " WHERE key = 'max_playlists_per_user'"), "500") == 0);

	/* a real playlist becomes the scheduler's fallback, then none again */
	expect(it_new_playlist(&admin, "Fallback", 1, pl) == 0);
	snprintf(body, sizeof(body), "{\"fallback_playlist_id\":\"%s\","
	    "\"default_timezone\":\"Europe/Berlin\"}", pl);
	res = http_bearer("PUT", "/api/settings/system", admin.access, body);
	expect_status(&res, 200);
	expect_json_str(&res, "values.fallback_playlist_id", pl);
	expect_json_str(&res, "values.default_timezone", "Europe/Berlin");
	http_free(&res);
	it_psql("DELETE FROM schedule_entries");
	res = http_bearer("GET", "/api/scheduler/current?at=2025-01-01T00:00:00Z",
	    admin.access, NULL);
	expect_json_str(&res, "playlist.id", pl);
	expect_json_str(&res, "slot.timezone", "Europe/Berlin");
	http_free(&res);
	res = http_bearer("PUT", "/api/settings/system", admin.access,
	    "{\"fallback_playlist_id\":null,\"default_timezone\":\"UTC\"}");
	expect_status(&res, 200);
	expect(!json_has(&res, "values.fallback_playlist_id") ||
	    json_str(&res, "values.fallback_playlist_id") == NULL);
	http_free(&res);
}

static void
test_settings_themes_are_public_and_match_the_preference(void)
{
	struct http_res	 res = http_get("/api/settings/themes");
	struct it_session	 a;
	char			 body[128];
	const char		*id;

	expect_status(&res, 200);
	expect_json_str(&res, "default", "system");
	expect((id = json_str(&res, "themes.2.id")) != NULL);
	snprintf(body, sizeof(body), "{\"theme\":\"%s\"}", id);
	http_free(&res);
	expect(it_new_user("theme", &a) == 0);
	expect(it_status("PUT", "/api/settings/user", a.access, body) == 200);
}

const struct it_test settings_tests[] = {
#define T(f) { #f, f }
	T(test_settings_preferences_defaults_changes_and_resets),
	T(test_settings_preferences_bad_values_name_the_key_and_change_nothing),
	T(test_settings_system_read_by_staff_changed_by_admins),
	T(test_settings_system_values_are_checked_all_or_nothing),
	T(test_settings_themes_are_public_and_match_the_preference),
#undef T
};
const size_t settings_ntests = sizeof(settings_tests) / sizeof(settings_tests[0]);

void
settings_tests_init(const char *dir, const char *top)
{
	(void)dir;
	(void)top;
	run_id = (long)getpid() % 100000;
}
