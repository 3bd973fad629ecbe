/*
 * fcgi/input.c: reading fields out of a parsed JSON body, with the one
 * error shape when they are missing, of the wrong type or out of range.
 * json-c coerces silently, so every getter here checks the type first.
 */
#include <string.h>

#include <json-c/json.h>

#include "djamms.h"

static enum app_err
field_fail(struct req *r, enum app_err err, const char *field, const char *why)
{
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, "field", json_object_new_string(field));
	json_object_object_add(d, "reason", json_object_new_string(why));
	return req_fail(r, err, pool_printf(r->pool, "%s: %s", field, why), d);
}

enum app_err
body_fail(struct req *r, const char *field, const char *why)
{
	return field_fail(r, E_INVALID, field, why);
}

enum app_err
body_only(struct req *r, struct json_object *body, const char *const *allowed,
    const char *const *forbidden)
{
	if (!json_object_is_type(body, json_type_object))
		return req_fail(r, E_BAD_REQUEST, "the body must be a JSON object",
		    NULL);
	json_object_object_foreach(body, key, val) {
		const char *const	*a;

		(void)val;
		for (a = forbidden; a != NULL && *a != NULL; a++)
			if (strcmp(key, *a) == 0)
				return field_fail(r, E_BAD_REQUEST, key,
				    "this field cannot be set here");
		for (a = allowed; *a != NULL; a++)
			if (strcmp(key, *a) == 0)
				break;
		if (*a == NULL)
			return field_fail(r, E_BAD_REQUEST, key, "unknown field");
	}
	return E_OK;
}

enum app_err
body_string(struct req *r, struct json_object *body, const char *field,
    int required, size_t min, size_t max, const char **out, size_t *len)
{
	struct json_object	*v;
	const char		*s;
	size_t			 n;

	*out = NULL;
	if (len != NULL)
		*len = 0;
	if (!json_object_object_get_ex(body, field, &v) || v == NULL)
		return required ? field_fail(r, E_INVALID, field, "is required") : E_OK;
	if (!json_object_is_type(v, json_type_string))
		return field_fail(r, E_INVALID, field, "must be a string");
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (memchr(s, '\0', n) != NULL)
		return field_fail(r, E_INVALID, field, "must not contain NUL");
	if (n < min || n > max)
		return field_fail(r, E_INVALID, field, pool_printf(r->pool,
		    "must be %zu to %zu bytes long", min, max));
	*out = s;
	if (len != NULL)
		*len = n;
	return E_OK;
}

enum app_err
body_int(struct req *r, struct json_object *body, const char *field,
    int *present, long min, long max, long *out)
{
	struct json_object	*v;
	int64_t			 n;

	*present = 0;
	if (!json_object_object_get_ex(body, field, &v) || v == NULL)
		return E_OK;
	if (!json_object_is_type(v, json_type_int))
		return field_fail(r, E_INVALID, field, "must be a whole number");
	n = json_object_get_int64(v);
	if (n < min || n > max)
		return field_fail(r, E_INVALID, field, pool_printf(r->pool,
		    "must be from %ld to %ld", min, max));
	*present = 1;
	*out = (long)n;
	return E_OK;
}

enum app_err
body_bool(struct req *r, struct json_object *body, const char *field,
    int *present, int *out)
{
	struct json_object	*v;

	*present = 0;
	if (!json_object_object_get_ex(body, field, &v))
		return E_OK;
	if (!json_object_is_type(v, json_type_boolean))
		return field_fail(r, E_INVALID, field, "must be true or false");
	*present = 1;
	*out = json_object_get_boolean(v);
	return E_OK;
}

/* Page and limit from the query: limit clamped to 1..max, page >= 1. */
enum app_err
query_page(struct req *r, long def_limit, long max_limit, long *page, long *limit)
{
	const char	*p = req_query(r, "page"), *l = req_query(r, "limit");

	*page = 1;
	*limit = def_limit;
	if (p != NULL && config_parse_long(p, 1, 1000000, page) != 0)
		return field_fail(r, E_BAD_REQUEST, "page", "must be a whole number >= 1");
	if (l != NULL) {
		if (config_parse_long(l, 1, 1000000, limit) != 0)
			return field_fail(r, E_BAD_REQUEST, "limit",
			    "must be a whole number >= 1");
		if (*limit > max_limit)
			*limit = max_limit;
	}
	return E_OK;
}

enum app_err
query_only(struct req *r, const char *const *known)
{
	int	 i;

	for (i = 0; i < r->nquery; i++) {
		const char *const	*k;

		for (k = known; *k != NULL && strcmp(*k, r->query[i].key) != 0; k++)
			;
		if (*k == NULL)
			return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
			    "unknown query parameter %s", r->query[i].key), NULL);
	}
	return E_OK;
}

enum app_err
query_int(struct req *r, const char *name, long min, long max, const char **out)
{
	const char	*v = req_query(r, name);
	long		 n;

	*out = NULL;
	if (v == NULL || *v == '\0')
		return E_OK;
	if (config_parse_long(v, min, max, &n) != 0)
		return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
		    "%s must be a whole number from %ld to %ld", name, min, max), NULL);
	*out = v;
	return E_OK;
}

enum app_err
query_flag(struct req *r, const char *name, const char **sql_bool)
{
	const char	*v = req_query(r, name);

	*sql_bool = NULL;
	if (v == NULL)
		return E_OK;
	if (strcmp(v, "1") == 0)
		*sql_bool = "true";
	else if (strcmp(v, "0") == 0)
		*sql_bool = "false";
	else
		return req_fail(r, E_BAD_REQUEST, pool_printf(r->pool,
		    "%s must be 1 or 0", name), NULL);
	return E_OK;
}
