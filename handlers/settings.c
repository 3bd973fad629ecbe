/*
 * handlers/settings.c: /api/settings/... A listener's preferences, the
 * server's settings and the themes clients may offer.
 *
 * Both kinds of settings are a schema of known keys, each with a type, a
 * range or a set of choices and a default (the tables below). A write
 * names only known keys (400 otherwise), every value is checked before
 * anything is written (422 naming the key), and all of it lands in one
 * statement or one transaction: a bad value leaves nothing changed. null
 * puts a preference back to its default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

enum set_type {
	ST_BOOL,
	ST_INT,		/* min..max */
	ST_CHOICE,	/* one of choices */
	ST_ZONE,	/* an IANA zone the database knows */
	ST_LANG,	/* "en", "pt-BR" */
	ST_PLAYLIST,	/* an active playlist's id, or null */
};

struct setting_def {
	const char		*key;
	enum set_type		 type;
	long long		 min, max;
	const char *const	*choices;
	const char		*def;	/* default, as JSON */
	const char		*about;
};

static const char *const theme_ids[] = {
	"system", "light", "dark", "midnight", "high-contrast", NULL
};
static const char *const qualities[] = {
	"low", "normal", "high", "original", NULL
};

static const struct setting_def pref_defs[] = {
	{ "theme", ST_CHOICE, 0, 0, theme_ids, "\"system\"",
	  "one of GET /api/settings/themes" },
	{ "language", ST_LANG, 0, 0, NULL, "\"en\"",
	  "BCP 47 language, e.g. \"en\" or \"pt-BR\"" },
	{ "timezone", ST_ZONE, 0, 0, NULL, "null",
	  "IANA zone for times shown to the listener; null: the server's default" },
	{ "autoplay", ST_BOOL, 0, 0, NULL, "true",
	  "keep playing similar music when the queue ends" },
	{ "gapless", ST_BOOL, 0, 0, NULL, "true", "gapless playback" },
	{ "crossfade_seconds", ST_INT, 0, 12, NULL, "0", "crossfade, 0 to 12 s" },
	{ "volume", ST_INT, 0, 100, NULL, "80", "player volume, 0 to 100" },
	{ "audio_quality", ST_CHOICE, 0, 0, qualities, "\"original\"",
	  "streaming quality: low, normal, high, original" },
	{ "explicit_content", ST_BOOL, 0, 0, NULL, "true",
	  "show tracks marked explicit" },
	{ "email_notifications", ST_BOOL, 0, 0, NULL, "true",
	  "mail about the account (sign-ins, resets)" },
};

/* The defaults are sql/003's rows; these say what each may hold. */
static const struct setting_def system_defs[] = {
	{ "registration_open", ST_BOOL, 0, 0, NULL, "true",
	  "whether new (non-anonymous) accounts may register" },
	{ "storage_quota_bytes", ST_INT, 0, 1LL << 50, NULL, "1073741824",
	  "per-user upload quota in bytes" },
	{ "max_playlists_per_user", ST_INT, 1, 100000, NULL, "500",
	  "playlists one user may own" },
	{ "max_playlist_entries", ST_INT, 1, 10000, NULL, "10000",
	  "entries one playlist may hold" },
	{ "fallback_playlist_id", ST_PLAYLIST, 0, 0, NULL, "null",
	  "what the scheduler plays when no entry is in force; null for silence" },
	{ "default_timezone", ST_ZONE, 0, 0, NULL, "\"UTC\"",
	  "IANA zone for new schedule entries and listeners without one" },
	{ "anonymous_account_inactive_days", ST_INT, 1, 3650, NULL, "90",
	  "days after which an unused guest account may be purged" },
	{ "hls_enabled", ST_BOOL, 0, 0, NULL, "true",
	  "make HLS renditions (AAC 64k/128k/256k) of every track with audio" },
};

#define NDEFS(a)	(sizeof(a) / sizeof((a)[0]))

static const struct setting_def *
def_of(const struct setting_def *defs, size_t n, const char *key)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(defs[i].key, key) == 0)
			return &defs[i];
	return NULL;
}

static const char *
type_name(enum set_type t)
{
	switch (t) {
	case ST_BOOL:		return "boolean";
	case ST_INT:		return "integer";
	case ST_CHOICE:		return "choice";
	case ST_ZONE:		return "timezone";
	case ST_LANG:		return "language";
	case ST_PLAYLIST:	return "playlist";
	}
	return "unknown";
}

/* "en", "pt-BR", "zh-Hant": a language, optionally a region or script. Pure. */
static int
lang_valid(const char *s)
{
	size_t	 i, n = strlen(s), sub;

	for (i = 0; i < n && s[i] >= 'a' && s[i] <= 'z'; i++)
		;
	if (i < 2 || i > 3)
		return 0;
	if (i == n)
		return 1;
	if (s[i] != '-')
		return 0;
	sub = n - i - 1;
	if (sub == 2)
		return s[i + 1] >= 'A' && s[i + 1] <= 'Z' && s[i + 2] >= 'A' &&
		    s[i + 2] <= 'Z';
	if (sub == 4) {
		if (!(s[i + 1] >= 'A' && s[i + 1] <= 'Z'))
			return 0;
		for (i += 2; i < n; i++)
			if (!(s[i] >= 'a' && s[i] <= 'z'))
				return 0;
		return 1;
	}
	return 0;
}

/*
 * Check v against d; the database-backed checks (zones, playlists) run
 * here too, so call inside the write's transaction. null is for the
 * caller to handle. 422 naming the key otherwise.
 */
static enum app_err
check_value(struct req *r, const struct setting_def *d, struct json_object *v)
{
	static const struct db_stmt st_zone = {
		"set_zone", "SELECT time_zone_known($1)", 1
	};
	static const struct db_stmt st_playlist = {
		"set_playlist",
		"SELECT 1 FROM playlists WHERE id = $1 AND is_active", 1
	};
	const char *const	*c;
	const char		*s;
	long long		 n;
	PGresult		*res;
	enum app_err		 err;

	switch (d->type) {
	case ST_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return body_fail(r, d->key, "must be true or false");
		return E_OK;
	case ST_INT:
		if (!json_object_is_type(v, json_type_int) ||
		    (n = json_object_get_int64(v)) < d->min || n > d->max)
			return body_fail(r, d->key, pool_printf(r->pool,
			    "must be a whole number from %lld to %lld", d->min, d->max));
		return E_OK;
	case ST_CHOICE:
		if (json_object_is_type(v, json_type_string))
			for (c = d->choices, s = json_object_get_string(v); *c; c++)
				if (strcmp(*c, s) == 0)
					return E_OK;
		return body_fail(r, d->key, "is not one of the choices");
	case ST_LANG:
		if (!json_object_is_type(v, json_type_string) ||
		    !lang_valid(json_object_get_string(v)))
			return body_fail(r, d->key, "must be a language such as "
			    "\"en\" or \"pt-BR\"");
		return E_OK;
	case ST_ZONE:
		if (!json_object_is_type(v, json_type_string) ||
		    json_object_get_string_len(v) > 64)
			return body_fail(r, d->key, "must be an IANA time zone name");
		if ((err = db_exec(r, &res, &st_zone, (const char *const[]){
		    json_object_get_string(v) })) != E_OK)
			return err;
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			return body_fail(r, d->key, "is not a time zone the database "
			    "knows (e.g. Europe/Berlin)");
		return E_OK;
	case ST_PLAYLIST:
		if (!json_object_is_type(v, json_type_string) ||
		    !uuid_valid(json_object_get_string(v)))
			return body_fail(r, d->key, "must be a playlist id or null");
		if ((err = db_exec(r, &res, &st_playlist, (const char *const[]){
		    json_object_get_string(v) })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return body_fail(r, d->key, "no such playlist");
		return E_OK;
	}
	return E_INTERNAL;
}

/* The keys of defs, NULL-ended, for body_only(). Static per table. */
static const char *const *
keys_of(const struct setting_def *defs, size_t n, const char **out)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		out[i] = defs[i].key;
	out[n] = NULL;
	return out;
}

/* ---- a listener's preferences -------------------------------------- */

/* {"preferences":{every key: its value or default},"defaults":{...}} */
static enum app_err
answer_prefs(struct req *r, const char *stored)
{
	struct json_object	*have = json_tokener_parse(stored);
	struct json_object	*out = json_object_new_object();
	struct json_object	*prefs = json_object_new_object();
	struct json_object	*defs = json_object_new_object();
	struct json_object	*custom = json_object_new_array();
	size_t			 i;

	for (i = 0; i < NDEFS(pref_defs); i++) {
		const struct setting_def	*d = &pref_defs[i];
		struct json_object		*v;

		json_object_object_add(defs, d->key, json_tokener_parse(d->def));
		if (have != NULL && json_object_object_get_ex(have, d->key, &v)) {
			json_object_object_add(prefs, d->key, json_object_get(v));
			json_object_array_add(custom, json_object_new_string(d->key));
		} else
			json_object_object_add(prefs, d->key, json_tokener_parse(d->def));
	}
	json_object_put(have);
	json_object_object_add(out, "preferences", prefs);
	json_object_object_add(out, "changed", custom);
	json_object_object_add(out, "defaults", defs);
	return resp_json(r, 200, out);
}

/* GET /api/settings/user */
static enum app_err
settings_user_get(struct req *r)
{
	static const char *const known[] = { NULL };
	static const struct db_stmt st = {
		"set_prefs", "SELECT preferences::text FROM users WHERE id = $1", 1
	};
	PGresult	*res;
	enum app_err	 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = db_exec(r, &res, &st, (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_NOT_FOUND, "no such user", NULL);
	return answer_prefs(r, PQgetvalue(res, 0, 0));
}

struct prefs_tx {
	struct json_object	*body;
	const char		*stored;	/* OUT */
};

static enum app_err
prefs_put_body(struct req *r, void *arg)
{
	static const struct db_stmt st = {
		"set_prefs_put",
		"UPDATE users SET preferences = (preferences - $2::text[]) || $3::jsonb"
		" WHERE id = $1 RETURNING preferences::text",
		3
	};
	struct prefs_tx		*t = arg;
	struct json_object	*set = json_object_new_object();
	char			*drop;
	size_t			 o = 0, cap = 2;
	PGresult		*res;
	enum app_err		 err = E_OK;

	json_object_object_foreach(t->body, k1, v1) {
		(void)v1;
		cap += strlen(k1) + 3;
	}
	drop = pool_alloc(r->pool, cap + 1);
	drop[o++] = '{';
	json_object_object_foreach(t->body, key, val) {
		const struct setting_def	*d = def_of(pref_defs, NDEFS(pref_defs), key);

		if (val == NULL) {
			o += (size_t)snprintf(drop + o, cap + 1 - o, "%s\"%s\"",
			    o > 1 ? "," : "", key);
			continue;
		}
		if ((err = check_value(r, d, val)) != E_OK)
			break;
		json_object_object_add(set, key, json_object_get(val));
	}
	drop[o++] = '}';
	drop[o] = '\0';
	if (err == E_OK)
		err = db_exec(r, &res, &st, (const char *const[]){ r->user_id, drop,
		    json_object_to_json_string_ext(set, JSON_C_TO_STRING_PLAIN) });
	json_object_put(set);
	if (err != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_NOT_FOUND, "no such user", NULL);
	t->stored = PQgetvalue(res, 0, 0);
	return E_OK;
}

/* PUT /api/settings/user: the keys given change; null is the default. */
static enum app_err
settings_user_put(struct req *r)
{
	const char		*keys[NDEFS(pref_defs) + 1];
	struct prefs_tx		 t;
	enum app_err		 err;

	memset(&t, 0, sizeof(t));
	if ((err = req_json_body(r, &t.body)) != E_OK ||
	    (err = body_only(r, t.body, keys_of(pref_defs, NDEFS(pref_defs), keys),
	    NULL)) != E_OK)
		return err;
	/* keys are quoted into a text[] literal: known keys only, safe */
	if ((err = db_tx(r, "READ COMMITTED", prefs_put_body, &t)) != E_OK)
		return err;
	return answer_prefs(r, t.stored);
}

/* ---- the server's settings ------------------------------------------ */

static enum app_err
answer_system(struct req *r)
{
	static const struct db_stmt st = {
		"set_system",
		"SELECT key, value::text, description, to_char(updated_at AT TIME ZONE"
		" 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), updated_by FROM system_settings"
		" ORDER BY key",
		0
	};
	struct json_object	*out, *values, *list;
	PGresult		*res;
	enum app_err		 err;
	size_t			 i;
	int			 k;

	if ((err = db_exec(r, &res, &st, NULL)) != E_OK)
		return err;
	out = json_object_new_object();
	values = json_object_new_object();
	list = json_object_new_array();
	for (i = 0; i < NDEFS(system_defs); i++) {
		const struct setting_def	*d = &system_defs[i];
		struct json_object		*e = json_object_new_object();
		struct json_object		*v = NULL;

		for (k = 0; k < PQntuples(res); k++)
			if (strcmp(PQgetvalue(res, k, 0), d->key) == 0)
				break;
		v = json_tokener_parse(k < PQntuples(res) ? PQgetvalue(res, k, 1) : d->def);
		json_object_object_add(values, d->key, json_object_get(v));
		json_object_object_add(e, "key", json_object_new_string(d->key));
		json_object_object_add(e, "value", v);
		json_object_object_add(e, "type", json_object_new_string(type_name(d->type)));
		if (d->type == ST_INT) {
			json_object_object_add(e, "min", json_object_new_int64(d->min));
			json_object_object_add(e, "max", json_object_new_int64(d->max));
		}
		json_object_object_add(e, "description", json_object_new_string(d->about));
		json_object_object_add(e, "updated_at", k < PQntuples(res) ?
		    pg_json_str(res, k, 3) : NULL);
		json_object_object_add(e, "updated_by", k < PQntuples(res) ?
		    pg_json_str(res, k, 4) : NULL);
		json_object_array_add(list, e);
	}
	json_object_object_add(out, "values", values);
	json_object_object_add(out, "settings", list);
	return resp_json(r, 200, out);
}

/* GET /api/settings/system */
static enum app_err
settings_system_get(struct req *r)
{
	static const char *const known[] = { NULL };
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	return answer_system(r);
}

static enum app_err
system_put_body(struct req *r, void *arg)
{
	static const struct db_stmt st = {
		"set_system_put",
		"INSERT INTO system_settings (key, value, description, updated_by)"
		" VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT (key) DO UPDATE"
		" SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by",
		4
	};
	struct json_object	*body = arg;
	PGresult		*res;
	enum app_err		 err;

	json_object_object_foreach(body, key, val) {
		const struct setting_def	*d = def_of(system_defs,
						    NDEFS(system_defs), key);

		if (val == NULL && d->type != ST_PLAYLIST)
			return body_fail(r, key, "cannot be null");
		if (val != NULL && (err = check_value(r, d, val)) != E_OK)
			return err;
		if ((err = db_exec(r, &res, &st, (const char *const[]){ key,
		    val == NULL ? "null" : json_object_to_json_string_ext(val,
		    JSON_C_TO_STRING_PLAIN), d->about, r->user_id })) != E_OK)
			return err;
	}
	return E_OK;
}

/* PUT /api/settings/system: the keys given change, all or none. */
static enum app_err
settings_system_put(struct req *r)
{
	const char		*keys[NDEFS(system_defs) + 1];
	struct json_object	*body;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, keys_of(system_defs, NDEFS(system_defs), keys),
	    NULL)) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", system_put_body, body)) != E_OK)
		return err;
	log_info("system settings changed", "\"by\":\"%s\"", r->user_id);
	return answer_system(r);
}

/* ---- themes ----------------------------------------------------------- */

/* GET /api/settings/themes: what the theme preference may name. */
static enum app_err
settings_themes(struct req *r)
{
	static const char	 themes[] =
	    "{\"themes\":["
	    "{\"id\":\"system\",\"name\":\"Follow the system\",\"mode\":\"auto\","
	    "\"colors\":null},"
	    "{\"id\":\"light\",\"name\":\"Light\",\"mode\":\"light\",\"colors\":"
	    "{\"background\":\"#ffffff\",\"surface\":\"#f4f4f5\",\"text\":\"#18181b\","
	    "\"muted\":\"#71717a\",\"primary\":\"#7c3aed\",\"accent\":\"#f59e0b\"}},"
	    "{\"id\":\"dark\",\"name\":\"Dark\",\"mode\":\"dark\",\"colors\":"
	    "{\"background\":\"#18181b\",\"surface\":\"#27272a\",\"text\":\"#fafafa\","
	    "\"muted\":\"#a1a1aa\",\"primary\":\"#a78bfa\",\"accent\":\"#fbbf24\"}},"
	    "{\"id\":\"midnight\",\"name\":\"Midnight\",\"mode\":\"dark\",\"colors\":"
	    "{\"background\":\"#020617\",\"surface\":\"#0f172a\",\"text\":\"#e2e8f0\","
	    "\"muted\":\"#94a3b8\",\"primary\":\"#38bdf8\",\"accent\":\"#f472b6\"}},"
	    "{\"id\":\"high-contrast\",\"name\":\"High contrast\",\"mode\":\"dark\","
	    "\"colors\":{\"background\":\"#000000\",\"surface\":\"#000000\","
	    "\"text\":\"#ffffff\",\"muted\":\"#ffff00\",\"primary\":\"#00ffff\","
	    "\"accent\":\"#ffff00\"}}"
	    "],\"default\":\"system\"}";
	static const char *const known[] = { NULL };
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	resp_header(r, "Cache-Control", "public, max-age=3600");
	return resp_json_text(r, 200, themes, sizeof(themes) - 1);
}

/* ---- backups ------------------------------------------------------------ */

/* POST /api/settings/backup {"media": true}: a backup, by the job runner. */
static enum app_err
settings_backup(struct req *r)
{
	static const char *const allowed[] = { "media", NULL };
	struct json_object	*body = NULL, *o;
	const char		*cl = req_env(r, "CONTENT_LENGTH");
	int			 present = 0, media = 1;
	char			 id[37];
	enum app_err		 err;

	if (cl != NULL && cl[0] != '\0' && strcmp(cl, "0") != 0) {
		if ((err = req_json_body(r, &body)) != E_OK ||
		    (err = body_only(r, body, allowed, NULL)) != E_OK ||
		    (err = body_bool(r, body, "media", &present, &media)) != E_OK)
			return err;
		if (!present)
			media = 1;
	}
	if (jobs_enqueue("backup", media ? "{\"media\":true}" : "{\"media\":false}",
	    1, id) != 0)
		return req_fail(r, E_UNAVAILABLE, "Redis, which holds the job queue, is "
		    "not reachable", NULL);
	o = json_object_new_object();
	json_object_object_add(o, "job_id", json_object_new_string(id));
	json_object_object_add(o, "media", json_object_new_boolean(media));
	json_object_object_add(o, "status", json_object_new_string("queued"));
	return resp_json(r, 202, o);
}

/* GET /api/settings/backups: the complete backups, newest first. */
static enum app_err
settings_backups(struct req *r)
{
	static const char *const known[] = { NULL };
	struct json_object	*o, *list;
	char			**names;
	int			 n, i;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	n = backup_names(&names);
	list = json_object_new_array();
	for (i = n - 1; i >= 0; i--) {
		char			 path[4200];
		struct json_object	*m;

		snprintf(path, sizeof(path), "%s/%s/manifest.json", cfg.backup_dir,
		    names[i]);
		if ((m = json_object_from_file(path)) != NULL)
			json_object_array_add(list, m);
	}
	backup_names_free(names, n);
	o = json_object_new_object();
	json_object_object_add(o, "backups", list);
	json_object_object_add(o, "keep", json_object_new_int64(cfg.backup_keep));
	return resp_json(r, 200, o);
}

/* POST /api/settings/restore {"name"}: a restore, by the job runner. */
static enum app_err
settings_restore(struct req *r)
{
	static const char *const allowed[] = { "name", NULL };
	struct json_object	*body, *o;
	const char		*name;
	char			 path[4200], args[128], id[37];
	size_t			 len;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "name", 1, 1, 64, &name, &len)) != E_OK)
		return err;
	snprintf(path, sizeof(path), "%s/%s/manifest.json", cfg.backup_dir, name);
	if (!backup_name_valid(name) || access(path, R_OK) != 0)
		return body_fail(r, "name", "no such backup (GET /api/settings/backups)");
	snprintf(args, sizeof(args), "{\"name\":\"%s\"}", name);
	if (jobs_enqueue("restore", args, 1, id) != 0)
		return req_fail(r, E_UNAVAILABLE, "Redis, which holds the job queue, is "
		    "not reachable", NULL);
	o = json_object_new_object();
	json_object_object_add(o, "job_id", json_object_new_string(id));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "status", json_object_new_string("queued"));
	return resp_json(r, 202, o);
}

static const struct route settings_routes[] = {
	/* method	pattern				handler			needs */
	{ M_GET,	"/api/settings/user",		settings_user_get,	P_AUTHENTICATED, 0 },
	{ M_PUT,	"/api/settings/user",		settings_user_put,	P_AUTHENTICATED, 0 },
	{ M_GET,	"/api/settings/system",		settings_system_get,	P_READ_SYSTEM, 0 },
	{ M_PUT,	"/api/settings/system",		settings_system_put,	P_WRITE_SYSTEM, 0 },
	{ M_GET,	"/api/settings/themes",		settings_themes,	P_NONE, 0 },
	{ M_POST,	"/api/settings/backup",		settings_backup,	P_ADMIN_SYSTEM, 0 },
	{ M_GET,	"/api/settings/backups",	settings_backups,	P_ADMIN_SYSTEM, 0 },
	{ M_POST,	"/api/settings/restore",	settings_restore,	P_ADMIN_SYSTEM, 0 },
};

const struct route_table settings_route_table = {
	settings_routes, sizeof(settings_routes) / sizeof(settings_routes[0])
};
