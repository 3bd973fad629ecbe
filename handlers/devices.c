/*
 * handlers/devices.c: player devices. A player (a jukebox, a browser tab,
 * a phone) signs in as some account and reports every half minute or so
 * with POST /api/system/devices/heartbeat: its own stable id, a name, what
 * it plays and where. Staff see them all with GET /api/system/devices,
 * online when heard from within DEVICE_ONLINE_S seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define DEVICE_INTERVAL_S	30	/* what the answer asks the player for */
#define DEVICE_ONLINE_S		90	/* three intervals */

/* One device as JSON, written by the database (d: player_devices). */
#define DEVICE_JSON \
	"json_build_object('id', d.id, 'client_id', d.client_id, 'name', d.name," \
	" 'kind', d.kind, 'state', d.state, 'online', d.last_seen_at > now()" \
	" - interval '" STR(DEVICE_ONLINE_S) " seconds'," \
	" 'user', json_build_object('id', u.id, 'username', u.username)," \
	" 'track', (SELECT json_build_object('id', t.id, 'title', t.title," \
	"  'artist', t.artist, 'duration', t.duration) FROM tracks t" \
	"  WHERE t.id = d.track_id)," \
	" 'position_ms', d.position_ms, 'volume', d.volume," \
	" 'schedule_entry_id', d.schedule_entry_id, 'user_agent', d.user_agent," \
	" 'remote_addr', d.remote_addr, 'heartbeats', d.heartbeats," \
	" 'first_seen_at', utc_text(d.first_seen_at)," \
	" 'last_seen_at', utc_text(d.last_seen_at))::text"

static const char *const kinds[] = {
	"jukebox", "browser", "mobile", "desktop", "speaker", "other", NULL
};
static const char *const states[] = {
	"playing", "paused", "stopped", "idle", NULL
};

static int
one_of(const char *s, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strcmp(s, *set) == 0)
			return 1;
	return 0;
}

/* 8..64 of A-Z a-z 0-9 . _ : - (the table's check). Pure. */
static int
client_id_valid(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n < 8 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr("._:-", s[i]) != NULL))
			return 0;
	return 1;
}

/* POST /api/system/devices/heartbeat */
static enum app_err
devices_heartbeat(struct req *r)
{
	static const char *const allowed[] = { "device_id", "name", "kind",
	    "state", "track_id", "position_ms", "volume", "schedule_entry_id",
	    NULL };
	static const struct db_stmt st = {
		"dev_heartbeat",
		"WITH d AS (INSERT INTO player_devices AS p (user_id, client_id, name,"
		"  kind, state, track_id, position_ms, volume, schedule_entry_id,"
		"  user_agent, remote_addr)"
		" VALUES ($1, $2, $3, coalesce($4, 'other'), coalesce($5, 'idle'),"
		"  $6::uuid, $7::int, $8::smallint, $9::uuid, $10, $11)"
		" ON CONFLICT (user_id, client_id) DO UPDATE SET"
		"  name = EXCLUDED.name,"
		"  kind = coalesce($4, p.kind),"
		"  state = EXCLUDED.state, track_id = EXCLUDED.track_id,"
		"  position_ms = EXCLUDED.position_ms,"
		"  volume = coalesce(EXCLUDED.volume, p.volume),"
		"  schedule_entry_id = EXCLUDED.schedule_entry_id,"
		"  user_agent = EXCLUDED.user_agent, remote_addr = EXCLUDED.remote_addr,"
		"  heartbeats = p.heartbeats + 1, last_seen_at = now()"
		" RETURNING *)"
		" SELECT " DEVICE_JSON " FROM d JOIN users u ON u.id = d.user_id",
		11
	};
	static const struct db_stmt st_track = {
		"dev_track", "SELECT 1 FROM tracks WHERE id = $1 AND is_active", 1
	};
	static const struct db_stmt st_entry = {
		"dev_entry", "SELECT 1 FROM schedule_entries WHERE id = $1", 1
	};
	struct json_object	*body, *o;
	const char		*dev, *name, *kind, *state, *track, *entry, *ua;
	char			 pos[24] = "", vol[24] = "", uab[301];
	size_t			 len;
	long			 v;
	int			 present;
	PGresult		*res;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "device_id", 1, 8, 64, &dev, &len)) != E_OK ||
	    (err = body_string(r, body, "name", 1, 1, 100, &name, &len)) != E_OK ||
	    (err = body_string(r, body, "kind", 0, 1, 20, &kind, &len)) != E_OK ||
	    (err = body_string(r, body, "state", 0, 1, 20, &state, &len)) != E_OK ||
	    (err = body_string(r, body, "track_id", 0, 36, 36, &track, &len)) != E_OK ||
	    (err = body_string(r, body, "schedule_entry_id", 0, 36, 36, &entry,
	    &len)) != E_OK)
		return err;
	if (!client_id_valid(dev))
		return body_fail(r, "device_id", "8 to 64 of letters, digits and . _ : -");
	if (kind != NULL && !one_of(kind, kinds))
		return body_fail(r, "kind", "jukebox, browser, mobile, desktop, speaker "
		    "or other");
	if (state != NULL && !one_of(state, states))
		return body_fail(r, "state", "playing, paused, stopped or idle");
	if (track != NULL && !uuid_valid(track))
		return body_fail(r, "track_id", "must be a UUID");
	if (entry != NULL && !uuid_valid(entry))
		return body_fail(r, "schedule_entry_id", "must be a UUID");
	if ((err = body_int(r, body, "position_ms", &present, 0, 86400000L, &v)) != E_OK)
		return err;
	if (present)
		snprintf(pos, sizeof(pos), "%ld", v);
	if ((err = body_int(r, body, "volume", &present, 0, 100, &v)) != E_OK)
		return err;
	if (present)
		snprintf(vol, sizeof(vol), "%ld", v);
	if (track != NULL) {
		if ((err = db_exec(r, &res, &st_track, (const char *const[]){ track })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return body_fail(r, "track_id", "no such track");
	}
	if (entry != NULL) {
		if ((err = db_exec(r, &res, &st_entry, (const char *const[]){ entry })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return body_fail(r, "schedule_entry_id", "no such schedule entry");
	}
	/* the header as sent, cut between characters to fit the column */
	ua = req_header(r, "User-Agent");
	if (ua != NULL) {
		size_t	 n = strlen(ua);

		if (n > 300) {
			n = 300;
			while (n > 0 && ((unsigned char)ua[n] & 0xc0) == 0x80)
				n--;
		}
		memcpy(uab, ua, n);
		uab[n] = '\0';
		ua = utf8_text_valid(uab, n) ? uab : NULL;
	}
	if ((err = db_exec(r, &res, &st, (const char *const[]){ r->user_id, dev,
	    name, kind, state, track, pos[0] ? pos : NULL, vol[0] ? vol : NULL,
	    entry, ua, req_env(r, "REMOTE_ADDR") })) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "device", json_tokener_parse(PQgetvalue(res, 0, 0)));
	json_object_object_add(o, "interval_s", json_object_new_int(DEVICE_INTERVAL_S));
	return resp_json(r, 200, o);
}

/* GET /api/system/devices?online=1|0&page=&limit= */
static enum app_err
devices_list(struct req *r)
{
	static const char *const known[] = { "online", "page", "limit", NULL };
	static const struct db_stmt st = {
		"dev_list",
		"SELECT " DEVICE_JSON ", count(*) OVER ()"
		" FROM player_devices d JOIN users u ON u.id = d.user_id"
		" WHERE ($1::boolean IS NULL OR (d.last_seen_at > now() - interval '"
		STR(DEVICE_ONLINE_S) " seconds') = $1::boolean)"
		" ORDER BY d.last_seen_at DESC, d.id LIMIT $2::int OFFSET $3::int",
		3
	};
	const char		*on;
	long			 page, limit;
	char			 lim[24], off[24];
	PGresult		*res;
	struct json_object	*rest;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 50, 200, &page, &limit)) != E_OK ||
	    (err = query_flag(r, "online", &on)) != E_OK)
		return err;
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ on, lim, off })) != E_OK)
		return err;
	rest = json_object_new_object();
	json_object_object_add(rest, "page", json_object_new_int64(page));
	json_object_object_add(rest, "limit", json_object_new_int64(limit));
	json_object_object_add(rest, "total", json_object_new_int64(
	    PQntuples(res) > 0 ? atoll(PQgetvalue(res, 0, 1)) : 0));
	json_object_object_add(rest, "online_within_s", json_object_new_int(DEVICE_ONLINE_S));
	return resp_json_list(r, 200, "devices", res, 0, PQntuples(res), rest);
}

static const struct route device_routes[] = {
	/* method	pattern				handler			needs */
	{ M_GET,	"/api/system/devices",		devices_list,		P_READ_SYSTEM, 0 },
	{ M_POST,	"/api/system/devices/heartbeat", devices_heartbeat,	P_AUTHENTICATED, 0 },
};

const struct route_table device_route_table = {
	device_routes, sizeof(device_routes) / sizeof(device_routes[0])
};
