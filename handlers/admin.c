/*
 * handlers/admin.c: /api/admin/users, for admins (admin:system). Listing
 * is paged and searchable by username or email; an update changes only a
 * role or the active flag, ends the user's tokens at once, and refuses to
 * leave the instance without an active admin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define ADMIN_USER_COLS \
	"id, username, email, display_name, role, is_anonymous, is_active," \
	" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
	" to_char(last_login AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct db_stmt st_users_list = {
	"admin_users_list",
	"SELECT " ADMIN_USER_COLS ", count(*) OVER () FROM users"
	" WHERE ($1 = '' OR strpos(lower(username::text), lower($1)) > 0"
	"        OR strpos(lower(coalesce(email::text, '')), lower($1)) > 0)"
	" AND ($2::text IS NULL OR role = $2)"
	" AND ($3::bool IS NULL OR is_active = $3::bool)"
	" ORDER BY created_at DESC, id LIMIT $4::int OFFSET $5::int",
	5
};

/* One admin change at a time: two admins demoting each other at once
 * would otherwise both see the other still in place. */
static const struct db_stmt st_admins_lock = {
	"admin_admins_lock",
	"SELECT pg_advisory_xact_lock(727274002)",
	0
};

static const struct db_stmt st_user_lock = {
	"admin_user_lock",
	"SELECT role, is_active FROM users WHERE id = $1 FOR UPDATE",
	1
};

static const struct db_stmt st_other_admins = {
	"admin_other_admins",
	"SELECT count(*) FROM users WHERE role = 'admin' AND is_active AND id <> $1",
	1
};

static const struct db_stmt st_users_count = {
	"admin_users_count",
	"SELECT count(*) FROM users"
	" WHERE ($1 = '' OR strpos(lower(username::text), lower($1)) > 0"
	"        OR strpos(lower(coalesce(email::text, '')), lower($1)) > 0)"
	" AND ($2::text IS NULL OR role = $2)"
	" AND ($3::bool IS NULL OR is_active = $3::bool)",
	3
};

static const struct db_stmt st_user_set = {
	"admin_user_set",
	"UPDATE users SET role = coalesce($2, role),"
	" is_active = coalesce($3::bool, is_active) WHERE id = $1"
	" RETURNING " ADMIN_USER_COLS,
	3
};

/*
 * Another user's email is never sent whole, not even to an admin: "a***@
 * example.org" is enough to recognise it, and search still matches the
 * full address.
 */
static struct json_object *
masked_email(PGresult *res, int row, int c)
{
	const char	*e, *at;
	char		 buf[300];

	if (PQgetisnull(res, row, c))
		return NULL;
	e = PQgetvalue(res, row, c);
	at = strchr(e, '@');
	snprintf(buf, sizeof(buf), "%.1s***%s", e, at != NULL ? at : "");
	return json_object_new_string(buf);
}

static struct json_object *
admin_user_json(PGresult *res, int row)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "id", pg_json_str(res, row, 0));
	json_object_object_add(o, "username", pg_json_str(res, row, 1));
	json_object_object_add(o, "email", masked_email(res, row, 2));
	json_object_object_add(o, "display_name", pg_json_str(res, row, 3));
	json_object_object_add(o, "role", pg_json_str(res, row, 4));
	json_object_object_add(o, "is_anonymous", json_object_new_boolean(
	    strcmp(PQgetvalue(res, row, 5), "t") == 0));
	json_object_object_add(o, "is_active", json_object_new_boolean(
	    strcmp(PQgetvalue(res, row, 6), "t") == 0));
	json_object_object_add(o, "created_at", pg_json_str(res, row, 7));
	json_object_object_add(o, "last_login", pg_json_str(res, row, 8));
	return o;
}

/* GET /api/admin/users?q=&role=&active=&page=&limit= */
static enum app_err
admin_users_list(struct req *r)
{
	const char		*q = req_query(r, "q"), *role = req_query(r, "role");
	const char		*active = req_query(r, "active");
	char			 lim[16], off[24];
	long			 page, limit;
	PGresult		*res;
	struct json_object	*o, *a;
	enum app_err		 err;
	int			 i;

	if ((err = query_page(r, 50, 100, &page, &limit)) != E_OK)
		return err;
	if (q == NULL)
		q = "";
	if (strlen(q) > 100)
		return req_fail(r, E_BAD_REQUEST, "q: at most 100 bytes", NULL);
	if (role != NULL && !role_valid(role))
		return req_fail(r, E_BAD_REQUEST,
		    "role: one of guest, user, moderator, admin", NULL);
	if (active != NULL && strcmp(active, "true") != 0 && strcmp(active, "false") != 0)
		return req_fail(r, E_BAD_REQUEST, "active: true or false", NULL);
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
	if ((err = db_exec(r, &res, &st_users_list,
	    (const char *const[]){ q, role, active, lim, off })) != E_OK)
		return err;
	a = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++)
		json_object_array_add(a, admin_user_json(res, i));
	o = json_object_new_object();
	json_object_object_add(o, "users", a);
	json_object_object_add(o, "page", json_object_new_int64(page));
	json_object_object_add(o, "limit", json_object_new_int64(limit));
	if (PQntuples(res) > 0)
		json_object_object_add(o, "total", json_object_new_int64(
		    atoll(PQgetvalue(res, 0, 9))));
	else {
		/* Past the last page the window count has no row to ride on. */
		if ((err = db_exec(r, &res, &st_users_count,
		    (const char *const[]){ q, role, active })) != E_OK)
			return err;
		json_object_object_add(o, "total", json_object_new_int64(
		    atoll(PQgetvalue(res, 0, 0))));
	}
	return resp_json(r, 200, o);
}

struct user_set {
	const char	*id;
	const char	*role;
	const char	*active;	/* "true", "false" or NULL */
	PGresult	*res;
	int		 changed;
	int		 last_admin;
	int		 missing;
};

static enum app_err
user_set_body(struct req *r, void *arg)
{
	struct user_set	*u = arg;
	PGresult	*res;
	enum app_err	 err;
	int		 was_admin, stays_admin;

	if ((err = db_exec(r, &res, &st_admins_lock, NULL)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st_user_lock,
	    (const char *const[]){ u->id })) != E_OK)
		return err;
	if (PQntuples(res) != 1) {
		u->missing = 1;
		return E_OK;
	}
	was_admin = strcmp(PQgetvalue(res, 0, 0), "admin") == 0 &&
	    strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	stays_admin = (u->role ? strcmp(u->role, "admin") == 0 :
	    strcmp(PQgetvalue(res, 0, 0), "admin") == 0) &&
	    (u->active ? strcmp(u->active, "true") == 0 :
	    strcmp(PQgetvalue(res, 0, 1), "t") == 0);
	u->changed = (u->role && strcmp(u->role, PQgetvalue(res, 0, 0)) != 0) ||
	    (u->active && (strcmp(u->active, "true") == 0) !=
	    (strcmp(PQgetvalue(res, 0, 1), "t") == 0));
	if (was_admin && !stays_admin) {
		if ((err = db_exec(r, &res, &st_other_admins,
		    (const char *const[]){ u->id })) != E_OK)
			return err;
		if (atol(PQgetvalue(res, 0, 0)) == 0) {
			u->last_admin = 1;
			return E_OK;
		}
	}
	return db_exec(r, &u->res, &st_user_set,
	    (const char *const[]){ u->id, u->role, u->active });
}

/* PUT /api/admin/users/:id {"role", "is_active"} */
static enum app_err
admin_users_update(struct req *r)
{
	static const char *const allowed[] = { "role", "is_active", NULL };
	static const char *const forbidden[] = { "id", "username", "email",
	    "password", "password_hash", "created_at", "updated_at", NULL };
	struct user_set		 u = { req_param(r, "id"), NULL, NULL, NULL, 0, 0, 0 };
	struct json_object	*body;
	enum app_err		 err;
	int			 present, active;

	if (!uuid_valid(u.id))
		return E_NOT_FOUND;
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, forbidden)) != E_OK ||
	    (err = body_string(r, body, "role", 0, 1, 20, &u.role, NULL)) != E_OK ||
	    (err = body_bool(r, body, "is_active", &present, &active)) != E_OK)
		return err;
	if (u.role != NULL && !role_valid(u.role))
		return body_fail(r, "role", "must be guest, user, moderator or admin");
	if (present)
		u.active = active ? "true" : "false";
	if (u.role == NULL && u.active == NULL)
		return body_fail(r, "role", "give role and/or is_active");
	if ((err = db_tx(r, "READ COMMITTED", user_set_body, &u)) != E_OK)
		return err;
	if (u.missing)
		return E_NOT_FOUND;
	if (u.last_admin)
		return req_fail(r, E_CONFLICT,
		    "this would leave no active admin", NULL);
	if (u.res == NULL || PQntuples(u.res) != 1)
		return E_NOT_FOUND;
	if (u.changed)
		/* Old tokens carry the old role: they end now. */
		auth_revoke_user_tokens(r, u.id);
	else
		auth_forget_user(r, u.id);
	return resp_json(r, 200, admin_user_json(u.res, 0));
}

static const struct route admin_routes[] = {
	/* methods	pattern			handler			needs		flags */
	{ M_GET,	"/api/admin/users",	admin_users_list,	P_ADMIN_SYSTEM,	0 },
	{ M_PUT,	"/api/admin/users/:id",	admin_users_update,	P_ADMIN_SYSTEM,	0 },
};

const struct route_table admin_route_table = {
	admin_routes, sizeof(admin_routes) / sizeof(admin_routes[0])
};
