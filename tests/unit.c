/*
 * tests/unit.c: unit tests for the pure logic of the core, in-process.
 * Linked against every core object except fcgi/main.c. Requests go
 * through dispatch() with a fake environment and no FastCGI stream
 * (fr == NULL), so status, headers and body are read straight from the
 * struct req; nothing here touches Postgres, Redis or the network.
 *
 * One behaviour per test; a test's name says the behaviour. Run from the
 * top of the repository (the OpenAPI sync test reads docs/openapi.yaml,
 * or $DJAMMS_OPENAPI).
 */
#include <limits.h>
#include <regex.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "../fcgi/djamms.h"

/* ---- fixtures ------------------------------------------------------- */

/* The process-wide configuration the code under test reads. */
static int
group_setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.body_max = 1048576;
	cfg.json_max_depth = 32;
	cfg.log_level = LOG_ERROR;	/* request lines are INFO: keep quiet */
	cfg.test_routes = 0;
	cfg.storage_dir = "/nonexistent";
	cfg.redis_url = "redis://127.0.0.1:6379";
	return 0;
}

/* A fresh request pool per test; a small chunk so chaining is exercised. */
static int
pool_setup(void **state)
{
	cfg.test_routes = 0;
	*state = pool_new(1024);
	return 0;
}

static int
pool_setup_test_routes(void **state)
{
	pool_setup(state);
	cfg.test_routes = 1;
	return 0;
}

static int
pool_teardown(void **state)
{
	pool_free(*state);
	cfg.test_routes = 0;
	return 0;
}

/* ---- helpers -------------------------------------------------------- */

/*
 * Run one request end to end in-process. env is a NULL-terminated list
 * of FastCGI params; body/len stand in for the request body. OUT: *r.
 */
static void
run_request(struct req *r, struct mpool *pool, char **env, const char *body,
    size_t len)
{
	req_init(r, pool, NULL, env);
	r->test_body = body;
	r->test_body_len = len;
	dispatch(r);
}

/* The value of the response header name, or NULL. */
static const char *
resp_header_value(const struct req *r, const char *name)
{
	const struct hdr	*h;

	for (h = r->headers; h != NULL; h = h->next)
		if (strcasecmp(h->name, name) == 0)
			return h->val;
	return NULL;
}

/* Parse the response body; the caller puts the result. */
static struct json_object *
body_json(const struct req *r)
{
	struct json_object	*o;

	assert_non_null(r->body);
	assert_string_equal(r->content_type, "application/json");
	o = json_tokener_parse(r->body);
	if (o == NULL)
		fail_msg("response body is not JSON: %s", r->body);
	return o;
}

/*
 * The one error shape, checked member by member:
 * {"error":{"code":code,"message":"...","details":null}} and nothing else.
 */
static void
expect_error(const struct req *r, int status, const char *code)
{
	struct json_object	*root, *err, *v;

	assert_int_equal(r->status, status);
	root = body_json(r);
	assert_true(json_object_is_type(root, json_type_object));
	assert_int_equal(json_object_object_length(root), 1);
	assert_true(json_object_object_get_ex(root, "error", &err));
	assert_true(json_object_is_type(err, json_type_object));
	assert_int_equal(json_object_object_length(err), 3);

	assert_true(json_object_object_get_ex(err, "code", &v));
	assert_true(json_object_is_type(v, json_type_string));
	assert_string_equal(json_object_get_string(v), code);

	assert_true(json_object_object_get_ex(err, "message", &v));
	assert_true(json_object_is_type(v, json_type_string));
	assert_true(json_object_get_string_len(v) > 0);

	assert_true(json_object_object_get_ex(err, "details", &v));
	assert_null(v);			/* present, and JSON null */
	json_object_put(root);
}

static enum app_err
parse(const char *s, size_t len, struct json_object **out, const char **why)
{
	*why = NULL;
	return json_parse_strict(s, len, cfg.json_max_depth, out, why);
}

/* s must be rejected as a bad request, with a reason and no object. */
static void
expect_json_rejected(const char *s, size_t len)
{
	struct json_object	*o = (struct json_object *)1;
	const char		*why;

	if (parse(s, len, &o, &why) != E_BAD_REQUEST)
		fail_msg("accepted: \"%.*s\"", (int)len, s);
	assert_null(o);
	assert_non_null(why);
}

/* "[[[...]]]": depth nested arrays, from the pool. */
static char *
nested_arrays(struct mpool *pool, int depth)
{
	char	*s = pool_alloc(pool, (size_t)depth * 2 + 1);

	memset(s, '[', (size_t)depth);
	memset(s + depth, ']', (size_t)depth);
	s[depth * 2] = '\0';
	return s;
}

/* ---- url_decode ----------------------------------------------------- */

static void
test_url_decode_decodes_percent_escapes(void **state)
{
	assert_string_equal(url_decode(*state, "%41%42c", 7, 0), "ABc");
	assert_string_equal(url_decode(*state, "%6a%6A", 6, 0), "jj");
	assert_string_equal(url_decode(*state, "%C3%A9", 6, 0), "\xc3\xa9");
	assert_string_equal(url_decode(*state, "%2F%25", 6, 0), "/%");
}

static void
test_url_decode_plus_is_space_only_when_asked(void **state)
{
	assert_string_equal(url_decode(*state, "a+b", 3, 1), "a b");
	assert_string_equal(url_decode(*state, "a+b", 3, 0), "a+b");
}

static void
test_url_decode_encoded_plus_stays_plus(void **state)
{
	assert_string_equal(url_decode(*state, "%2B", 3, 1), "+");
	assert_string_equal(url_decode(*state, "%2b", 3, 0), "+");
}

static void
test_url_decode_reads_only_len_bytes(void **state)
{
	assert_string_equal(url_decode(*state, "abcdef", 3, 0), "abc");
	assert_string_equal(url_decode(*state, "%41%42", 3, 0), "A");
	assert_string_equal(url_decode(*state, "", 0, 0), "");
}

static void
test_url_decode_rejects_non_hex_escape(void **state)
{
	assert_null(url_decode(*state, "%G1", 3, 0));
	assert_null(url_decode(*state, "%1G", 3, 0));
	assert_null(url_decode(*state, "a%zzb", 5, 1));
}

static void
test_url_decode_rejects_truncated_escape(void **state)
{
	assert_null(url_decode(*state, "%", 1, 0));
	assert_null(url_decode(*state, "abc%", 4, 0));
	assert_null(url_decode(*state, "%4", 2, 0));
	assert_null(url_decode(*state, "abc%4", 5, 1));
	/* The escape must end inside len, not in the bytes after it. */
	assert_null(url_decode(*state, "%41", 2, 0));
}

static void
test_url_decode_rejects_encoded_nul(void **state)
{
	assert_null(url_decode(*state, "%00", 3, 0));
	assert_null(url_decode(*state, "a%00b", 5, 1));
}

static void
test_url_decode_rejects_raw_nul_inside_len(void **state)
{
	assert_null(url_decode(*state, "a\0b", 3, 0));
}

/* ---- query_parse / req_query ----------------------------------------- */

static void
test_query_parse_splits_pairs_in_order(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "a=1&b=two&c=3", &kv, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(kv[0].key, "a");
	assert_string_equal(kv[0].val, "1");
	assert_string_equal(kv[1].key, "b");
	assert_string_equal(kv[1].val, "two");
	assert_string_equal(kv[2].key, "c");
	assert_string_equal(kv[2].val, "3");
}

static void
test_query_string_decodes_plus_and_percent(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "q=rock+%26+roll&my+key=%2B1",
	    &kv, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "q");
	assert_string_equal(kv[0].val, "rock & roll");
	assert_string_equal(kv[1].key, "my key");
	assert_string_equal(kv[1].val, "+1");
}

static void
test_query_parse_keeps_empty_values(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "a=&b=", &kv, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "a");
	assert_string_equal(kv[0].val, "");
	assert_string_equal(kv[1].key, "b");
	assert_string_equal(kv[1].val, "");
}

static void
test_query_parse_key_without_equals_has_empty_value(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "flag&x=1", &kv, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "flag");
	assert_string_equal(kv[0].val, "");
	assert_string_equal(kv[1].key, "x");
	assert_string_equal(kv[1].val, "1");
}

static void
test_query_parse_splits_value_at_first_equals_only(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "a=b=c", &kv, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(kv[0].key, "a");
	assert_string_equal(kv[0].val, "b=c");
}

static void
test_query_parse_skips_empty_segments(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "a=1&&b=2", &kv, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "a");
	assert_string_equal(kv[1].key, "b");
	assert_string_equal(kv[1].val, "2");

	assert_int_equal(query_parse(*state, "&a=1&", &kv, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(query_parse(*state, "&&&", &kv, &n), 0);
	assert_int_equal(n, 0);
}

static void
test_query_parse_empty_string_has_no_pairs(void **state)
{
	struct kv	*kv = (struct kv *)1;
	int		 n = -1;

	assert_int_equal(query_parse(*state, "", &kv, &n), 0);
	assert_int_equal(n, 0);
	assert_null(kv);
	assert_int_equal(query_parse(*state, NULL, &kv, &n), 0);
	assert_int_equal(n, 0);
}

static void
test_query_parse_rejects_malformed_escapes(void **state)
{
	struct kv	*kv;
	int		 n;

	assert_int_equal(query_parse(*state, "a=%zz", &kv, &n), -1);
	assert_int_equal(query_parse(*state, "ok=1&%G1=x", &kv, &n), -1);
	assert_int_equal(query_parse(*state, "a=1%", &kv, &n), -1);
	assert_int_equal(query_parse(*state, "a=%00", &kv, &n), -1);
}

static void
test_query_parse_caps_the_number_of_pairs(void **state)
{
	char		 qs[257 * 4 + 1];
	struct kv	*kv;
	int		 i, n;

	/* 256 pairs is the most it takes; one more is refused. */
	for (i = 0; i < 256; i++)
		memcpy(qs + i * 4, "a=1&", 4);
	qs[256 * 4 - 1] = '\0';
	assert_int_equal(query_parse(*state, qs, &kv, &n), 0);
	assert_int_equal(n, 256);
	memcpy(qs + 255 * 4, "a=1&a=1", 8);
	assert_int_equal(query_parse(*state, qs, &kv, &n), -1);
}

static void
test_req_query_last_one_wins(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health?a=1&b=2&a=3", NULL };
	struct req	 r;

	req_init(&r, *state, NULL, env);
	assert_int_equal(r.nquery, 3);
	assert_string_equal(req_query(&r, "a"), "3");
	assert_string_equal(req_query(&r, "b"), "2");
	assert_null(req_query(&r, "c"));
}

static void
test_req_init_splits_path_from_query(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health?x=%41", NULL };
	struct req	 r;

	req_init(&r, *state, NULL, env);
	assert_string_equal(r.path, "/api/health");
	assert_int_equal(r.query_bad, 0);
	assert_string_equal(req_query(&r, "x"), "A");
}

static void
test_req_init_flags_a_bad_query(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health?x=%G1", NULL };
	struct req	 r;

	req_init(&r, *state, NULL, env);
	assert_string_equal(r.path, "/api/health");
	assert_int_equal(r.query_bad, 1);
}

static void
test_req_header_maps_http_names_to_params(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/",
			    "HTTP_X_API_KEY=k1", "CONTENT_TYPE=application/json",
			    NULL };
	struct req	 r;

	req_init(&r, *state, NULL, env);
	assert_string_equal(req_header(&r, "X-Api-Key"), "k1");
	assert_string_equal(req_header(&r, "x-api-key"), "k1");
	assert_string_equal(req_header(&r, "Content-Type"), "application/json");
	assert_null(req_header(&r, "Authorization"));
}

/* ---- json_parse_strict ---------------------------------------------- */

static void
test_json_parses_a_valid_object(void **state)
{
	static const char	 doc[] = "{\"a\":1,\"b\":[true,null,\"x\"]}";
	struct json_object	*o, *v;
	const char		*why;

	assert_int_equal(parse(doc, sizeof(doc) - 1, &o, &why), E_OK);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	assert_true(json_object_object_get_ex(o, "a", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int64(v), 1);
	assert_true(json_object_object_get_ex(o, "b", &v));
	assert_int_equal(json_object_array_length(v), 3);
	json_object_put(o);
}

static void
test_json_rejects_an_empty_body(void **state)
{
	expect_json_rejected("", 0);
}

static void
test_json_rejects_trailing_garbage(void **state)
{
	expect_json_rejected("{} x", 4);
	expect_json_rejected("{}{}", 4);
	expect_json_rejected("[1] [2]", 7);
}

static void
test_json_allows_trailing_whitespace(void **state)
{
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse("{}  \n", 5, &o, &why), E_OK);
	json_object_put(o);
	assert_int_equal(parse("{} \t\r\n", 6, &o, &why), E_OK);
	json_object_put(o);
}

static void
test_json_accepts_nesting_up_to_max_depth(void **state)
{
	struct json_object	*o;
	const char		*why;
	char			*s = nested_arrays(*state, 32);

	assert_int_equal(parse(s, strlen(s), &o, &why), E_OK);
	json_object_put(o);
}

static void
test_json_rejects_nesting_beyond_max_depth(void **state)
{
	struct json_object	*o;
	const char		*why;
	char			*s = nested_arrays(*state, 33);

	assert_int_equal(parse(s, strlen(s), &o, &why), E_BAD_REQUEST);
	assert_null(o);
	assert_non_null(strstr(why, "deep"));
	s = nested_arrays(*state, 5000);
	assert_int_equal(parse(s, strlen(s), &o, &why), E_BAD_REQUEST);
	assert_null(o);
}

static void
test_json_rejects_invalid_utf8(void **state)
{
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse("\"\xff\"", 3, &o, &why), E_BAD_REQUEST);
	assert_null(o);
	assert_non_null(strstr(why, "UTF-8"));
	expect_json_rejected("{\"a\":\"\xe2\x82\"}", 10);	/* cut short */
	expect_json_rejected("{\"a\":\"\x80\"}", 9);	/* lone continuation */
	expect_json_rejected("{\"a\":1}\xff", 8);		/* outside a string */
}

static void
test_json_accepts_valid_utf8(void **state)
{
	static const char	 doc[] = "{\"t\":\"caf\xc3\xa9 \xf0\x9f\x8e\xb5\"}";
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse(doc, sizeof(doc) - 1, &o, &why), E_OK);
	json_object_put(o);
}

static void
test_json_rejects_a_nul_byte(void **state)
{
	static const char	 doc[] = "{\"a\":\"b\0\"}";
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse(doc, sizeof(doc) - 1, &o, &why), E_BAD_REQUEST);
	assert_null(o);
	assert_non_null(strstr(why, "NUL"));
	expect_json_rejected("{}\0", 3);
}

static void
test_json_rejects_a_truncated_document(void **state)
{
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse("{\"a\":", 5, &o, &why), E_BAD_REQUEST);
	assert_null(o);
	assert_non_null(strstr(why, "early"));
	expect_json_rejected("[1,2", 4);
	expect_json_rejected("{\"a\":\"unterminated", 18);
	/* len is a hard bound: the closing brace past it does not count. */
	expect_json_rejected("{\"a\":1}", 6);
}

static void
test_json_rejects_single_quoted_string_value(void **state)
{
	expect_json_rejected("{\"a\":'x'}", 9);
	expect_json_rejected("['x']", 5);
}

static void
test_json_rejects_trailing_comma(void **state)
{
	expect_json_rejected("[1,]", 4);
	expect_json_rejected("{\"a\":1,}", 8);
}

static void
test_json_rejects_non_json_syntax(void **state)
{
	expect_json_rejected("/*c*/{}", 7);
	expect_json_rejected("{\"a\":TRUE}", 10);
	expect_json_rejected("{\"a\":01}", 8);
	expect_json_rejected("{\"a\":.5}", 8);
	expect_json_rejected("{\"a\":+1}", 8);
	expect_json_rejected("{\"a\":0x10}", 10);
	expect_json_rejected("{\"a\":\"\\x41\"}", 12);
}

static void
test_json_rejects_what_json_c_strict_mode_lets_through(void **state)
{
	expect_json_rejected("{'a':1}", 7);
	expect_json_rejected("{\"a\":NaN}", 10);
	expect_json_rejected("{\"a\":Infinity}", 15);
	expect_json_rejected("{\"a\":-Infinity}", 16);
	expect_json_rejected("NaN ", 4);
	expect_json_rejected("\"a\x01b\"", 5);
	expect_json_rejected("\"a\tb\"", 5);
}

static void
test_json_rejects_overlong_and_surrogate_utf8(void **state)
{
	expect_json_rejected("\"\xc0\xaf\"", 4);
	expect_json_rejected("\"\xe0\x80\xaf\"", 5);
	expect_json_rejected("\"\xed\xa0\x80\"", 5);
	expect_json_rejected("\"\xf4\x90\x80\x80\"", 6);
	expect_json_rejected("\"\xf5\x80\x80\x80\"", 6);
	expect_json_rejected("{\"\xc0\xaf\":1}", 8);
}

static void
test_json_accepts_real_utf8_and_bare_scalars(void **state)
{
	struct json_object	*o;
	const char		*why;

	assert_int_equal(parse("\"\xe2\x82\xac \xf0\x9f\x8e\xb5 \xed\x9f\xbf\"", 14,
	    &o, &why), E_OK);
	json_object_put(o);
	assert_int_equal(parse("42", 2, &o, &why), E_OK);
	assert_int_equal(json_object_get_int(o), 42);
	json_object_put(o);
	assert_int_equal(parse("true", 4, &o, &why), E_OK);
	json_object_put(o);
	assert_int_equal(parse("null", 4, &o, &why), E_OK);
	assert_null(o);
}

/* ---- router_match --------------------------------------------------- */

static void
test_router_finds_a_literal_route(void **state)
{
	struct req	 r;
	unsigned	 allow;

	req_init(&r, *state, NULL, NULL);
	assert_int_equal(router_match(&r, M_GET, "/api/system/status", &allow),
	    ROUTE_FOUND);
	assert_non_null(r.route);
	assert_string_equal(r.route->pattern, "/api/system/status");
	assert_int_equal(r.nparams, 0);
}

static void
test_router_tells_wrong_method_from_no_path(void **state)
{
	struct req	 r;
	unsigned	 allow;

	req_init(&r, *state, NULL, NULL);
	assert_int_equal(router_match(&r, M_DELETE, "/api/system/info", &allow),
	    ROUTE_NO_METHOD);
	assert_int_equal(allow, M_GET | M_HEAD);
	assert_int_equal(router_match(&r, M_GET, "/api/nothing", &allow),
	    ROUTE_NO_PATH);
	assert_int_equal(allow, 0);
}

static void
test_router_get_route_answers_head(void **state)
{
	struct req	 r;
	unsigned	 allow;

	req_init(&r, *state, NULL, NULL);
	assert_int_equal(router_match(&r, M_HEAD, "/api/system/info", &allow),
	    ROUTE_FOUND);
}

static void
test_router_hides_test_routes_unless_enabled(void **state)
{
	struct req	 r;
	unsigned	 allow;

	req_init(&r, *state, NULL, NULL);
	cfg.test_routes = 0;
	assert_int_equal(router_match(&r, M_POST, "/api/_test/echo", &allow),
	    ROUTE_NO_PATH);
	cfg.test_routes = 1;
	assert_int_equal(router_match(&r, M_POST, "/api/_test/echo", &allow),
	    ROUTE_FOUND);
	assert_int_equal(router_match(&r, M_GET, "/api/_test/echo", &allow),
	    ROUTE_NO_METHOD);
	assert_int_equal(allow, M_POST | M_PUT);
	cfg.test_routes = 0;
}

/* ---- dispatch, in-process ------------------------------------------- */

static void
test_health_answers_200_ok(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	assert_int_equal(r.body_len, strlen("{\"status\":\"ok\"}"));
}

static void
test_health_ignores_a_well_formed_query(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health?x=1&y=%20", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	assert_int_equal(r.status, 200);
}

static void
test_head_on_health_answers_200(void **state)
{
	char		*env[] = { "REQUEST_METHOD=HEAD",
			    "REQUEST_URI=/api/health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	assert_int_equal(r.method, M_HEAD);
	assert_int_equal(r.status, 200);
}

static void
test_unknown_path_is_404_with_the_error_shape(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/no/such/thing", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 404, "not_found");
}

static void
test_post_on_health_is_405_with_allow_header(void **state)
{
	char		*env[] = { "REQUEST_METHOD=POST",
			    "REQUEST_URI=/api/health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 405, "method_not_allowed");
	assert_non_null(resp_header_value(&r, "Allow"));
	assert_string_equal(resp_header_value(&r, "Allow"), "GET, HEAD");
}

static void
test_unknown_method_is_405(void **state)
{
	char		*env[] = { "REQUEST_METHOD=BREW",
			    "REQUEST_URI=/api/health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 405, "method_not_allowed");
}

static void
test_lowercase_method_is_unknown(void **state)
{
	char		*env[] = { "REQUEST_METHOD=get",
			    "REQUEST_URI=/api/health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 405, "method_not_allowed");
}

static void
test_bad_query_escape_on_known_route_is_400(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health?x=%G1", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 400, "bad_request");
}

static void
test_trailing_slash_is_404(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/health/", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 404, "not_found");
}

static void
test_double_slash_is_404(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api//health", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 404, "not_found");
}

static void
test_percent_encoded_literal_segment_does_not_match(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/%68ealth", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 404, "not_found");
}

static void
test_missing_request_uri_is_404(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	assert_string_equal(r.path, "/");
	expect_error(&r, 404, "not_found");
}

static void
test_echo_route_is_404_when_test_routes_are_off(void **state)
{
	static const char	 body[] = "{\"a\":1}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json", NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	expect_error(&r, 404, "not_found");
}

static void
test_echo_route_echoes_the_json_body(void **state)
{
	static const char	 body[] = "{\"a\":[1,\"x\",null],\"b\":{\"c\":true}}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json", NULL };
	struct req		 r;
	struct json_object	*got, *echo, *want;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	assert_int_equal(r.status, 200);
	got = body_json(&r);
	want = json_tokener_parse(body);
	assert_true(json_object_object_get_ex(got, "echo", &echo));
	assert_int_equal(json_object_object_length(got), 1);
	assert_true(json_object_equal(echo, want));
	json_object_put(want);
	json_object_put(got);
}

static void
test_echo_route_takes_put_too(void **state)
{
	static const char	 body[] = "[]";
	char			*env[] = { "REQUEST_METHOD=PUT",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json", NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"echo\":[]}");
}

static void
test_echo_route_get_is_405_allowing_post_and_put(void **state)
{
	char		*env[] = { "REQUEST_METHOD=GET",
			    "REQUEST_URI=/api/_test/echo", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 405, "method_not_allowed");
	assert_string_equal(resp_header_value(&r, "Allow"), "POST, PUT");
}

static void
test_wrong_content_type_is_415(void **state)
{
	static const char	 body[] = "{\"a\":1}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=text/plain", NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	expect_error(&r, 415, "unsupported_media_type");
}

static void
test_missing_content_type_is_415(void **state)
{
	static const char	 body[] = "{\"a\":1}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo", NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	expect_error(&r, 415, "unsupported_media_type");
}

static void
test_json_lookalike_content_types_are_415(void **state)
{
	static const char *const types[] = {
		"CONTENT_TYPE=application/jsonp",
		"CONTENT_TYPE=application/json-patch+json",
		"CONTENT_TYPE=application/x-www-form-urlencoded",
	};
	static const char	 body[] = "{}";
	size_t			 i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char		*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    (char *)types[i], NULL };
		struct req	 r;

		run_request(&r, *state, env, body, sizeof(body) - 1);
		expect_error(&r, 415, "unsupported_media_type");
		pool_reset(*state);
	}
}

static void
test_json_content_type_with_utf8_charset_is_accepted(void **state)
{
	static const char	 body[] = "{\"a\":1}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json; charset=utf-8",
				    NULL };
	char			*env2[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=Application/JSON;charset=\"UTF-8\"",
				    NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	assert_int_equal(r.status, 200);
	run_request(&r, *state, env2, body, sizeof(body) - 1);
	assert_int_equal(r.status, 200);
}

static void
test_json_content_type_with_other_charset_is_415(void **state)
{
	static const char	 body[] = "{\"a\":1}";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json; charset=latin1",
				    NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	expect_error(&r, 415, "unsupported_media_type");
}

static void
test_body_larger_than_body_max_is_413(void **state)
{
	char		*env[] = { "REQUEST_METHOD=POST",
			    "REQUEST_URI=/api/_test/echo",
			    "CONTENT_TYPE=application/json", NULL };
	size_t		 len = (size_t)cfg.body_max + 1;
	char		*body = pool_alloc(*state, len);
	struct req	 r;

	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	run_request(&r, *state, env, body, len);
	expect_error(&r, 413, "payload_too_large");
}

static void
test_body_of_exactly_body_max_is_accepted(void **state)
{
	char		*env[] = { "REQUEST_METHOD=POST",
			    "REQUEST_URI=/api/_test/echo",
			    "CONTENT_TYPE=application/json", NULL };
	size_t		 len = (size_t)cfg.body_max;
	char		*body = pool_alloc(*state, len);
	struct req	 r;

	/* {"a":"xxx...x"} padded to exactly body_max bytes */
	memset(body, 'x', len);
	memcpy(body, "{\"a\":\"", 6);
	memcpy(body + len - 2, "\"}", 2);
	run_request(&r, *state, env, body, len);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, len + strlen("{\"echo\":}"));
}

static void
test_malformed_json_body_is_400(void **state)
{
	static const char	 body[] = "{\"a\":";
	char			*env[] = { "REQUEST_METHOD=POST",
				    "REQUEST_URI=/api/_test/echo",
				    "CONTENT_TYPE=application/json", NULL };
	struct req		 r;

	run_request(&r, *state, env, body, sizeof(body) - 1);
	expect_error(&r, 400, "bad_request");
}

static void
test_empty_json_body_is_400(void **state)
{
	char		*env[] = { "REQUEST_METHOD=POST",
			    "REQUEST_URI=/api/_test/echo",
			    "CONTENT_TYPE=application/json", NULL };
	struct req	 r;

	run_request(&r, *state, env, NULL, 0);
	expect_error(&r, 400, "bad_request");
}

/* ---- method_parse / method_list ------------------------------------- */

static void
test_method_parse_knows_every_method(void **state)
{
	assert_int_equal(method_parse("GET"), M_GET);
	assert_int_equal(method_parse("HEAD"), M_HEAD);
	assert_int_equal(method_parse("POST"), M_POST);
	assert_int_equal(method_parse("PUT"), M_PUT);
	assert_int_equal(method_parse("PATCH"), M_PATCH);
	assert_int_equal(method_parse("DELETE"), M_DELETE);
	assert_int_equal(method_parse("OPTIONS"), M_OPTIONS);
}

static void
test_method_parse_is_exact_and_case_sensitive(void **state)
{
	assert_int_equal(method_parse("get"), 0);
	assert_int_equal(method_parse("GETX"), 0);
	assert_int_equal(method_parse("GE"), 0);
	assert_int_equal(method_parse(""), 0);
	assert_int_equal(method_parse("BREW"), 0);
}

static void
test_method_list_names_methods_in_table_order(void **state)
{
	char	 buf[96];

	method_list(M_GET | M_HEAD, buf, sizeof(buf));
	assert_string_equal(buf, "GET, HEAD");
	method_list(M_PUT | M_POST, buf, sizeof(buf));
	assert_string_equal(buf, "POST, PUT");
	method_list(M_OPTIONS | M_DELETE | M_PATCH | M_PUT | M_POST | M_HEAD |
	    M_GET, buf, sizeof(buf));
	assert_string_equal(buf, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	method_list(M_DELETE, buf, sizeof(buf));
	assert_string_equal(buf, "DELETE");
}

static void
test_method_list_of_nothing_is_empty(void **state)
{
	char	 buf[8] = "junk";

	method_list(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void
test_method_list_truncates_within_cap(void **state)
{
	char	 buf[16];
	size_t	 cap;

	for (cap = 1; cap < 12; cap++) {
		memset(buf, '#', sizeof(buf));
		method_list(0x7f, buf, cap);
		assert_true(memchr(buf, '\0', cap) != NULL);
		assert_int_equal(buf[cap], '#');
	}
}

/* ---- config_parse_long ---------------------------------------------- */

static void
test_config_parse_long_accepts_in_range(void **state)
{
	long	 v = 0;

	assert_int_equal(config_parse_long("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(config_parse_long("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
}

static void
test_config_parse_long_bounds_are_inclusive(void **state)
{
	long	 v = 0;

	assert_int_equal(config_parse_long("1", 1, 512, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(config_parse_long("512", 1, 512, &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(config_parse_long("0", 1, 512, &v), -1);
	assert_int_equal(config_parse_long("513", 1, 512, &v), -1);
}

static void
test_config_parse_long_rejects_junk(void **state)
{
	long	 v = 7;

	assert_int_equal(config_parse_long("abc", 0, 100, &v), -1);
	assert_int_equal(config_parse_long("12abc", 0, 100, &v), -1);
	assert_int_equal(config_parse_long("1.5", 0, 100, &v), -1);
	assert_int_equal(config_parse_long("10 ", 0, 100, &v), -1);
	assert_int_equal(config_parse_long("0x10", 0, 100, &v), -1);
	assert_int_equal(v, 7);		/* untouched on failure */
}

static void
test_config_parse_long_rejects_empty(void **state)
{
	long	 v = 7;

	assert_int_equal(config_parse_long("", 0, 100, &v), -1);
	assert_int_equal(config_parse_long(NULL, 0, 100, &v), -1);
	assert_int_equal(v, 7);
}

static void
test_config_parse_long_rejects_overflow(void **state)
{
	long	 v = 7;

	assert_int_equal(config_parse_long("99999999999999999999", 0, LONG_MAX,
	    &v), -1);
	assert_int_equal(config_parse_long("-99999999999999999999", LONG_MIN, 0,
	    &v), -1);
	assert_int_equal(v, 7);
	assert_int_equal(config_parse_long("9223372036854775807", 0, LONG_MAX,
	    &v), 0);
	assert_true(v == LONG_MAX);
}

/* ---- rds_parse_url -------------------------------------------------- */

struct rds_url {
	char	 host[64];
	int	 port, db, is_unix;
};

static int
rds_parse(const char *url, struct rds_url *u)
{
	memset(u, 0, sizeof(*u));
	return rds_parse_url(url, u->host, sizeof(u->host), &u->port, &u->db,
	    &u->is_unix);
}

static void
test_rds_parse_url_reads_host_and_port(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://127.0.0.1:6380", &u), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 0);
	assert_int_equal(u.is_unix, 0);
}

static void
test_rds_parse_url_defaults_port_6379(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://cache.local", &u), 0);
	assert_string_equal(u.host, "cache.local");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	assert_int_equal(rds_parse("redis://cache.local/2", &u), 0);
	assert_string_equal(u.host, "cache.local");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 2);
}

static void
test_rds_parse_url_reads_the_database_number(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://h:6379/3", &u), 0);
	assert_string_equal(u.host, "h");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 3);
	assert_int_equal(rds_parse("redis://h:6379/15", &u), 0);
	assert_int_equal(u.db, 15);
	assert_int_equal(rds_parse("redis://h:6379/", &u), 0);
	assert_int_equal(u.db, 0);
}

static void
test_rds_parse_url_reads_a_unix_socket(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("unix:/run/redis/redis.sock", &u), 0);
	assert_string_equal(u.host, "/run/redis/redis.sock");
	assert_int_equal(u.is_unix, 1);
	assert_int_equal(rds_parse("unix:relative.sock", &u), -1);
	assert_int_equal(rds_parse("unix:", &u), -1);
}

static void
test_rds_parse_url_rejects_other_schemes(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("http://h:6379", &u), -1);
	assert_int_equal(rds_parse("rediss://h:6379", &u), -1);
	assert_int_equal(rds_parse("h:6379", &u), -1);
	assert_int_equal(rds_parse("", &u), -1);
}

static void
test_rds_parse_url_rejects_bad_ports(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://h:0", &u), -1);
	assert_int_equal(rds_parse("redis://h:70000", &u), -1);
	assert_int_equal(rds_parse("redis://h:x", &u), -1);
	assert_int_equal(rds_parse("redis://h:", &u), -1);
	assert_int_equal(rds_parse("redis://h:/3", &u), -1);
	assert_int_equal(rds_parse("redis://h:65535", &u), 0);
	assert_int_equal(u.port, 65535);
}

static void
test_rds_parse_url_rejects_db_above_15(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://h:6379/16", &u), -1);
	assert_int_equal(rds_parse("redis://h:6379/-1", &u), -1);
	assert_int_equal(rds_parse("redis://h:6379/x", &u), -1);
	assert_int_equal(rds_parse("redis://h:6379/1/2", &u), -1);
}

static void
test_rds_parse_url_rejects_credentials(void **state)
{
	struct rds_url	 u;

	assert_int_equal(rds_parse("redis://user:secret@h:6379", &u), -1);
	assert_int_equal(rds_parse("redis://:secret@h:6379", &u), -1);
	assert_int_equal(rds_parse("redis://user@h:6379", &u), -1);
	assert_int_equal(rds_parse("redis://user@h", &u), -1);
}

static void
test_rds_parse_url_rejects_empty_or_long_host(void **state)
{
	char	 host[8];
	int	 port, db, is_unix;

	assert_int_equal(rds_parse_url("redis://:6379", host, sizeof(host),
	    &port, &db, &is_unix), -1);
	assert_int_equal(rds_parse_url("redis://", host, sizeof(host),
	    &port, &db, &is_unix), -1);
	assert_int_equal(rds_parse_url("redis://abcdefgh:1", host, sizeof(host),
	    &port, &db, &is_unix), -1);
	assert_int_equal(rds_parse_url("unix:/abcdefgh", host, sizeof(host),
	    &port, &db, &is_unix), -1);
	assert_int_equal(rds_parse_url("redis://abcdefg:1", host, sizeof(host),
	    &port, &db, &is_unix), 0);
	assert_string_equal(host, "abcdefg");
}

/* ---- db_sqlstate_err ------------------------------------------------ */

static void
test_sqlstate_unique_violation_is_conflict(void **state)
{
	assert_int_equal(db_sqlstate_err("23505"), E_CONFLICT);
}

static void
test_sqlstate_integrity_and_data_errors_are_invalid(void **state)
{
	assert_int_equal(db_sqlstate_err("23503"), E_INVALID);
	assert_int_equal(db_sqlstate_err("23514"), E_INVALID);
	assert_int_equal(db_sqlstate_err("23502"), E_INVALID);
	assert_int_equal(db_sqlstate_err("22001"), E_INVALID);
	assert_int_equal(db_sqlstate_err("22003"), E_INVALID);
}

static void
test_sqlstate_invalid_text_representation_is_bad_request(void **state)
{
	assert_int_equal(db_sqlstate_err("22P02"), E_BAD_REQUEST);
}

static void
test_sqlstate_serialization_failure_and_deadlock_are_conflict(void **state)
{
	assert_int_equal(db_sqlstate_err("40001"), E_CONFLICT);
	assert_int_equal(db_sqlstate_err("40P01"), E_CONFLICT);
}

static void
test_sqlstate_timeouts_and_lost_connections_are_unavailable(void **state)
{
	assert_int_equal(db_sqlstate_err("57014"), E_UNAVAILABLE);
	assert_int_equal(db_sqlstate_err("08006"), E_UNAVAILABLE);
	assert_int_equal(db_sqlstate_err("08001"), E_UNAVAILABLE);
	assert_int_equal(db_sqlstate_err("55P03"), E_UNAVAILABLE);
	assert_int_equal(db_sqlstate_err("53300"), E_UNAVAILABLE);
	assert_int_equal(db_sqlstate_err("57P01"), E_UNAVAILABLE);
}

static void
test_sqlstate_garbage_or_null_is_internal(void **state)
{
	assert_int_equal(db_sqlstate_err(NULL), E_INTERNAL);
	assert_int_equal(db_sqlstate_err(""), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("garbage"), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("2350"), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("235050"), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("08"), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("XX000"), E_INTERNAL);
	assert_int_equal(db_sqlstate_err("42601"), E_INTERNAL);
}

/* ---- app_err_status / app_err_code ---------------------------------- */

static void
test_every_error_has_a_distinct_code_and_a_valid_status(void **state)
{
	int	 e, f;

	for (e = E_OK; e <= E_UNAVAILABLE; e++) {
		const char	*code = app_err_code((enum app_err)e);

		assert_non_null(code);
		assert_true(*code != '\0');
		assert_in_range(app_err_status((enum app_err)e), 200, 599);
		assert_true(*app_err_default_message((enum app_err)e) != '\0');
		for (f = E_OK; f < e; f++)
			if (strcmp(code, app_err_code((enum app_err)f)) == 0)
				fail_msg("%d and %d share the code %s", f, e, code);
	}
	assert_int_equal(E_UNAVAILABLE + 1, E__COUNT);
}

static void
test_error_codes_map_to_their_statuses(void **state)
{
	static const struct {
		enum app_err	 e;
		int		 status;
		const char	*code;
	} want[] = {
		{ E_OK,			200, "ok" },
		{ E_BAD_REQUEST,	400, "bad_request" },
		{ E_UNAUTHORIZED,	401, "unauthorized" },
		{ E_FORBIDDEN,		403, "forbidden" },
		{ E_NOT_FOUND,		404, "not_found" },
		{ E_METHOD,		405, "method_not_allowed" },
		{ E_CONFLICT,		409, "conflict" },
		{ E_GONE,		410, "gone" },
		{ E_TOO_LARGE,		413, "payload_too_large" },
		{ E_UNSUPPORTED,	415, "unsupported_media_type" },
		{ E_INVALID,		422, "validation_failed" },
		{ E_RATE_LIMITED,	429, "rate_limited" },
		{ E_INTERNAL,		500, "internal" },
		{ E_UNAVAILABLE,	503, "unavailable" },
	};
	size_t	 i;

	assert_int_equal(sizeof(want) / sizeof(want[0]), E__COUNT);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(app_err_status(want[i].e), want[i].status);
		assert_string_equal(app_err_code(want[i].e), want[i].code);
	}
}

static void
test_out_of_range_error_is_internal_500(void **state)
{
	assert_int_equal(app_err_status(E__COUNT), 500);
	assert_string_equal(app_err_code(E__COUNT), "internal");
	assert_int_equal(app_err_status((enum app_err)-1), 500);
	assert_string_equal(app_err_code((enum app_err)-1), "internal");
}

/* ---- mpool ---------------------------------------------------------- */

static void
test_pool_alloc_aligns_every_pointer(void **state)
{
	size_t	 n;

	for (n = 0; n < 300; n++) {
		char	*p = pool_alloc(*state, n);

		assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
		memset(p, 0xa5, n);
	}
}

static void
test_pool_small_allocs_span_chunks_without_overlap(void **state)
{
	enum { N = 2000, SZ = 24 };
	static unsigned char	*ptrs[N];
	size_t			 i;

	for (i = 0; i < N; i++) {
		ptrs[i] = pool_alloc(*state, SZ);
		memset(ptrs[i], (int)(i & 0xff), SZ);
	}
	for (i = 0; i < N; i++) {
		size_t	 j;

		for (j = 0; j < SZ; j++)
			if (ptrs[i][j] != (unsigned char)(i & 0xff))
				fail_msg("allocation %zu was overwritten", i);
	}
	assert_true(pool_bytes_used(*state) >= (size_t)N * SZ);
}

static void
test_pool_big_alloc_gets_its_own_chunk(void **state)
{
	char	*small1 = pool_alloc(*state, 16);
	char	*big = pool_alloc(*state, 100000);
	char	*small2 = pool_alloc(*state, 16);

	memset(small1, 1, 16);
	memset(big, 2, 100000);
	memset(small2, 3, 16);
	assert_int_equal((uintptr_t)big % alignof(max_align_t), 0);
	assert_true(small2 < big || small2 >= big + 100000);
	assert_int_equal(small1[15], 1);
	assert_int_equal(big[0], 2);
	assert_int_equal(big[99999], 2);
	/* The small one after the big one stays in the current chunk. */
	assert_true(small2 > small1 && small2 < small1 + 1024);
	pool_reset(*state);
	assert_int_equal(pool_bytes_used(*state), 0);
	memset(pool_alloc(*state, 2000), 4, 2000);
}

static void
test_pool_reset_rewinds_to_the_first_chunk(void **state)
{
	char	*first = pool_alloc(*state, 8);
	int	 i;

	for (i = 0; i < 100; i++)
		pool_alloc(*state, 500);
	pool_reset(*state);
	assert_int_equal(pool_bytes_used(*state), 0);
	assert_ptr_equal(pool_alloc(*state, 8), first);
}

static void
test_pool_calloc_zeroes_reused_memory(void **state)
{
	unsigned char	*p = pool_alloc(*state, 512), *q;
	size_t		 i;

	memset(p, 0xff, 512);
	pool_reset(*state);
	q = pool_calloc(*state, 64, 8);
	for (i = 0; i < 512; i++)
		assert_int_equal(q[i], 0);
}

static void
test_pool_strdup_and_strndup_copy(void **state)
{
	static const char	 s[] = "hello";
	char			*d = pool_strdup(*state, s);

	assert_string_equal(d, "hello");
	assert_ptr_not_equal(d, s);
	assert_null(pool_strdup(*state, NULL));
	assert_string_equal(pool_strndup(*state, "abcdef", 3), "abc");
	assert_string_equal(pool_strndup(*state, "", 0), "");
}

static void
test_pool_printf_formats_short_and_long(void **state)
{
	char	*s;

	assert_string_equal(pool_printf(*state, "%s-%d", "a", 42), "a-42");
	s = pool_printf(*state, "%5000d", 7);	/* larger than a chunk */
	assert_int_equal(strlen(s), 5000);
	assert_int_equal(s[4999], '7');
	assert_int_equal(s[0], ' ');
}

/* Cleanup bookkeeping: each call appends its id. */
struct cleanup_log {
	char	 order[32];
	int	 n;
};

static struct cleanup_log	 cleanup_calls;

static void
log_cleanup(void *id)
{
	if (cleanup_calls.n < (int)sizeof(cleanup_calls.order) - 1)
		cleanup_calls.order[cleanup_calls.n++] = *(const char *)id;
	cleanup_calls.order[cleanup_calls.n] = '\0';
}

static void
test_pool_cleanups_run_newest_first_exactly_once(void **state)
{
	static const char	 ids[] = "123";

	memset(&cleanup_calls, 0, sizeof(cleanup_calls));
	pool_cleanup(*state, log_cleanup, (void *)&ids[0]);
	pool_cleanup(*state, log_cleanup, (void *)&ids[1]);
	pool_cleanup(*state, log_cleanup, (void *)&ids[2]);
	assert_int_equal(cleanup_calls.n, 0);
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "321");
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "321");
}

static void
test_pool_cleanups_registered_after_reset_run_at_next_reset(void **state)
{
	static const char	 ids[] = "abc";

	memset(&cleanup_calls, 0, sizeof(cleanup_calls));
	pool_cleanup(*state, log_cleanup, (void *)&ids[0]);
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "a");
	pool_cleanup(*state, log_cleanup, (void *)&ids[1]);
	pool_cleanup(*state, log_cleanup, (void *)&ids[2]);
	assert_string_equal(cleanup_calls.order, "a");
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "acb");
}

static void
chain_cleanup(void *pool)
{
	static const char	 id = 'z';

	log_cleanup((void *)"y");
	pool_cleanup(pool, log_cleanup, (void *)&id);
}

static void
test_pool_cleanup_registered_by_a_cleanup_runs_in_same_reset(void **state)
{
	memset(&cleanup_calls, 0, sizeof(cleanup_calls));
	pool_cleanup(*state, chain_cleanup, *state);
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "yz");
	pool_reset(*state);
	assert_string_equal(cleanup_calls.order, "yz");
}

static void
test_pool_free_runs_pending_cleanups(void **state)
{
	static const char	 ids[] = "pq";
	struct mpool		*p = pool_new(64);

	memset(&cleanup_calls, 0, sizeof(cleanup_calls));
	pool_cleanup(p, log_cleanup, (void *)&ids[0]);
	pool_cleanup(p, log_cleanup, (void *)&ids[1]);
	pool_free(p);
	assert_string_equal(cleanup_calls.order, "qp");
	pool_free(NULL);	/* a no-op, like free(NULL) */
}

static void
test_pool_json_drops_its_reference_on_reset(void **state)
{
	struct json_object	*o = json_object_new_object();

	assert_ptr_equal(pool_json(*state, o), o);
	json_object_get(o);			/* our own reference */
	pool_reset(*state);
	assert_int_equal(json_object_put(o), 1);	/* ours was the last */
	assert_null(pool_json(*state, NULL));
}

/* ---- json_escape_into ----------------------------------------------- */

static void
test_json_escape_copies_plain_text(void **state)
{
	char	 buf[32];

	assert_int_equal(json_escape_into(buf, 0, sizeof(buf), "plain text"), 10);
	assert_string_equal(buf, "plain text");
}

static void
test_json_escape_escapes_quotes_and_backslash(void **state)
{
	char	 buf[32];
	size_t	 n = json_escape_into(buf, 0, sizeof(buf), "a\"b\\c");

	assert_string_equal(buf, "a\\\"b\\\\c");
	assert_int_equal(n, strlen("a\\\"b\\\\c"));
}

static void
test_json_escape_escapes_control_characters(void **state)
{
	char	 buf[64];

	json_escape_into(buf, 0, sizeof(buf), "\x01|\n|\r|\t|\x1f|\x7f");
	assert_string_equal(buf, "\\u0001|\\n|\\r|\\t|\\u001f|\\u007f");
}

static void
test_json_escape_appends_at_len(void **state)
{
	char	 buf[16] = "ab";

	assert_int_equal(json_escape_into(buf, 2, sizeof(buf), "c\""), 5);
	assert_string_equal(buf, "abc\\\"");
	assert_int_equal(json_escape_into(buf, 5, sizeof(buf), NULL), 5);
}

static void
test_json_escape_truncates_without_splitting_an_escape(void **state)
{
	char	 buf[16];

	assert_int_equal(json_escape_into(buf, 0, 4, "ab\"c"), 2);
	assert_string_equal(buf, "ab");
	assert_int_equal(json_escape_into(buf, 0, 7, "a\x01"), 1);
	assert_string_equal(buf, "a");
	assert_int_equal(json_escape_into(buf, 0, 8, "a\x01"), 7);
	assert_string_equal(buf, "a\\u0001");
}

static void
test_json_escape_never_writes_past_cap(void **state)
{
	static const char	 s[] = "ab\"c\\d\x01\x02" "e\nfghij\x7fklmnop";
	char			 buf[64];
	size_t			 cap, n;

	/* Every cap from 1 up: NUL-terminated inside cap, canary intact. */
	for (cap = 1; cap < 48; cap++) {
		memset(buf, '#', sizeof(buf));
		n = json_escape_into(buf, 0, cap, s);
		assert_true(n < cap);
		assert_int_equal(buf[n], '\0');
		assert_int_equal(strlen(buf), n);
		assert_int_equal(buf[cap], '#');
	}
}

/* ---- the OpenAPI document and the route tables ---------------------- */

#define MAX_OPS	512

struct api_op {
	char	 method[8];	/* lower case, as OpenAPI spells it */
	char	 path[256];	/* OpenAPI template: {id} */
};

struct api_ops {
	struct api_op	 op[MAX_OPS];
	int		 n;
};

static void
ops_add(struct api_ops *ops, const char *method, const char *path)
{
	if (ops->n == MAX_OPS)
		fail_msg("more than %d operations", MAX_OPS);
	snprintf(ops->op[ops->n].method, sizeof(ops->op[0].method), "%s", method);
	snprintf(ops->op[ops->n].path, sizeof(ops->op[0].path), "%s", path);
	ops->n++;
}

static int
ops_has(const struct api_ops *ops, const char *method, const char *path)
{
	int	 i;

	for (i = 0; i < ops->n; i++)
		if (strcmp(ops->op[i].method, method) == 0 &&
		    strcmp(ops->op[i].path, path) == 0)
			return 1;
	return 0;
}

/* "/api/playlists/:id/tracks" -> "/api/playlists/{id}/tracks". OUT: out. */
static void
pattern_to_template(const char *pattern, char *out, size_t cap)
{
	size_t	 o = 0;
	int	 in_param = 0;

	for (; *pattern != '\0' && o + 2 < cap; pattern++) {
		if (*pattern == ':' && o > 0 && out[o - 1] == '/') {
			out[o++] = '{';
			in_param = 1;
			continue;
		}
		if (*pattern == '/' && in_param) {
			out[o++] = '}';
			in_param = 0;
		}
		out[o++] = *pattern;
	}
	if (in_param)
		out[o++] = '}';
	out[o] = '\0';
}

/* Every operation the route tables serve, HEAD left out (GET implies it). */
static void
ops_from_routes(struct api_ops *ops)
{
	static const char *const names[] = {
		"get", "head", "post", "put", "patch", "delete", "options",
	};
	const struct route_table	*tabs;
	size_t				 ntabs, t, i, m;

	tabs = router_tables(&ntabs);
	for (t = 0; t < ntabs; t++) {
		for (i = 0; i < tabs[t].n; i++) {
			const struct route	*rt = &tabs[t].routes[i];
			char			 path[256];

			if (rt->flags & ROUTE_TEST_ONLY)
				continue;
			pattern_to_template(rt->pattern, path, sizeof(path));
			for (m = 0; m < sizeof(names) / sizeof(names[0]); m++)
				if ((rt->methods & (1u << m)) && (1u << m) != M_HEAD)
					ops_add(ops, names[m], path);
		}
	}
}

/*
 * The operations docs/openapi.yaml documents, read the minimal way: under
 * the top-level "paths:", a path is "  /...:" (2 spaces) and its operations
 * are "    get:" etc. (4 spaces). Returns -1 if the file cannot be read.
 */
static int
ops_from_openapi(const char *file, struct api_ops *ops)
{
	regex_t		 path_re, op_re;
	regmatch_t	 m[2];
	FILE		*f;
	char		 line[1024], path[256] = "";
	int		 in_paths = 0;

	if ((f = fopen(file, "r")) == NULL)
		return -1;
	if (regcomp(&path_re, "^  (/[^:]*):[[:space:]]*$", REG_EXTENDED) != 0 ||
	    regcomp(&op_re, "^    (get|put|post|delete|patch|head|options):",
	    REG_EXTENDED) != 0)
		abort();
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] != ' ' && line[0] != '#' && line[0] != '\n' &&
		    line[0] != '\r') {
			/* A top-level key opens or closes the paths block. */
			in_paths = strncmp(line, "paths:", 6) == 0;
			path[0] = '\0';
			continue;
		}
		if (!in_paths)
			continue;
		if (regexec(&path_re, line, 2, m, 0) == 0) {
			snprintf(path, sizeof(path), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			continue;
		}
		if (strncmp(line, "  ", 2) == 0 && line[2] != ' ' &&
		    line[2] != '\n' && line[2] != '#') {
			path[0] = '\0';		/* some other 2-space key */
			continue;
		}
		if (path[0] != '\0' && regexec(&op_re, line, 2, m, 0) == 0) {
			char	 method[8];

			snprintf(method, sizeof(method), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			if (strcmp(method, "head") != 0)
				ops_add(ops, method, path);
		}
	}
	fclose(f);
	regfree(&path_re);
	regfree(&op_re);
	return 0;
}

static void
test_openapi_documents_every_route_and_nothing_else(void **state)
{
	static struct api_ops	 served, documented;
	const char		*file = getenv("DJAMMS_OPENAPI");
	int			 i, missing = 0, extra = 0;

	if (file == NULL || *file == '\0')
		file = "docs/openapi.yaml";
	served.n = documented.n = 0;
	ops_from_routes(&served);
	if (ops_from_openapi(file, &documented) != 0)
		fail_msg("cannot read %s (run from the top of the repository "
		    "or set DJAMMS_OPENAPI)", file);
	assert_true(served.n > 0);

	for (i = 0; i < served.n; i++) {
		if (!ops_has(&documented, served.op[i].method, served.op[i].path)) {
			print_error("route not in %s: %s %s\n", file,
			    served.op[i].method, served.op[i].path);
			missing++;
		}
	}
	for (i = 0; i < documented.n; i++) {
		if (!ops_has(&served, documented.op[i].method,
		    documented.op[i].path)) {
			print_error("documented but not routed: %s %s\n",
			    documented.op[i].method, documented.op[i].path);
			extra++;
		}
	}
	if (missing || extra)
		fail_msg("%d route(s) undocumented, %d documented operation(s) "
		    "not routed", missing, extra);
}

static void
test_pattern_to_template_converts_params(void **state)
{
	char	 out[64];

	pattern_to_template("/api/playlists/:id/tracks/:track_id", out,
	    sizeof(out));
	assert_string_equal(out, "/api/playlists/{id}/tracks/{track_id}");
	pattern_to_template("/api/health", out, sizeof(out));
	assert_string_equal(out, "/api/health");
}

/* ---- main ----------------------------------------------------------- */

#define T(f)	cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
#define TT(f)	cmocka_unit_test_setup_teardown(f, pool_setup_test_routes, \
		    pool_teardown)

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		/* url_decode */
		T(test_url_decode_decodes_percent_escapes),
		T(test_url_decode_plus_is_space_only_when_asked),
		T(test_url_decode_encoded_plus_stays_plus),
		T(test_url_decode_reads_only_len_bytes),
		T(test_url_decode_rejects_non_hex_escape),
		T(test_url_decode_rejects_truncated_escape),
		T(test_url_decode_rejects_encoded_nul),
		T(test_url_decode_rejects_raw_nul_inside_len),
		/* query_parse, req_query, req_init, req_header */
		T(test_query_parse_splits_pairs_in_order),
		T(test_query_string_decodes_plus_and_percent),
		T(test_query_parse_keeps_empty_values),
		T(test_query_parse_key_without_equals_has_empty_value),
		T(test_query_parse_splits_value_at_first_equals_only),
		T(test_query_parse_skips_empty_segments),
		T(test_query_parse_empty_string_has_no_pairs),
		T(test_query_parse_rejects_malformed_escapes),
		T(test_query_parse_caps_the_number_of_pairs),
		T(test_req_query_last_one_wins),
		T(test_req_init_splits_path_from_query),
		T(test_req_init_flags_a_bad_query),
		T(test_req_header_maps_http_names_to_params),
		/* json_parse_strict */
		T(test_json_parses_a_valid_object),
		T(test_json_rejects_an_empty_body),
		T(test_json_rejects_trailing_garbage),
		T(test_json_allows_trailing_whitespace),
		T(test_json_accepts_nesting_up_to_max_depth),
		T(test_json_rejects_nesting_beyond_max_depth),
		T(test_json_rejects_invalid_utf8),
		T(test_json_accepts_valid_utf8),
		T(test_json_rejects_a_nul_byte),
		T(test_json_rejects_a_truncated_document),
		T(test_json_rejects_single_quoted_string_value),
		T(test_json_rejects_trailing_comma),
		T(test_json_rejects_non_json_syntax),
		T(test_json_rejects_what_json_c_strict_mode_lets_through),
		T(test_json_rejects_overlong_and_surrogate_utf8),
		T(test_json_accepts_real_utf8_and_bare_scalars),
		/* router_match */
		T(test_router_finds_a_literal_route),
		T(test_router_tells_wrong_method_from_no_path),
		T(test_router_get_route_answers_head),
		T(test_router_hides_test_routes_unless_enabled),
		/* dispatch */
		T(test_health_answers_200_ok),
		T(test_health_ignores_a_well_formed_query),
		T(test_head_on_health_answers_200),
		T(test_unknown_path_is_404_with_the_error_shape),
		T(test_post_on_health_is_405_with_allow_header),
		T(test_unknown_method_is_405),
		T(test_lowercase_method_is_unknown),
		T(test_bad_query_escape_on_known_route_is_400),
		T(test_trailing_slash_is_404),
		T(test_double_slash_is_404),
		T(test_percent_encoded_literal_segment_does_not_match),
		T(test_missing_request_uri_is_404),
		T(test_echo_route_is_404_when_test_routes_are_off),
		TT(test_echo_route_echoes_the_json_body),
		TT(test_echo_route_takes_put_too),
		TT(test_echo_route_get_is_405_allowing_post_and_put),
		TT(test_wrong_content_type_is_415),
		TT(test_missing_content_type_is_415),
		TT(test_json_lookalike_content_types_are_415),
		TT(test_json_content_type_with_utf8_charset_is_accepted),
		TT(test_json_content_type_with_other_charset_is_415),
		TT(test_body_larger_than_body_max_is_413),
		TT(test_body_of_exactly_body_max_is_accepted),
		TT(test_malformed_json_body_is_400),
		TT(test_empty_json_body_is_400),
		/* method_parse / method_list */
		T(test_method_parse_knows_every_method),
		T(test_method_parse_is_exact_and_case_sensitive),
		T(test_method_list_names_methods_in_table_order),
		T(test_method_list_of_nothing_is_empty),
		T(test_method_list_truncates_within_cap),
		/* config_parse_long */
		T(test_config_parse_long_accepts_in_range),
		T(test_config_parse_long_bounds_are_inclusive),
		T(test_config_parse_long_rejects_junk),
		T(test_config_parse_long_rejects_empty),
		T(test_config_parse_long_rejects_overflow),
		/* rds_parse_url */
		T(test_rds_parse_url_reads_host_and_port),
		T(test_rds_parse_url_defaults_port_6379),
		T(test_rds_parse_url_reads_the_database_number),
		T(test_rds_parse_url_reads_a_unix_socket),
		T(test_rds_parse_url_rejects_other_schemes),
		T(test_rds_parse_url_rejects_bad_ports),
		T(test_rds_parse_url_rejects_db_above_15),
		T(test_rds_parse_url_rejects_credentials),
		T(test_rds_parse_url_rejects_empty_or_long_host),
		/* db_sqlstate_err */
		T(test_sqlstate_unique_violation_is_conflict),
		T(test_sqlstate_integrity_and_data_errors_are_invalid),
		T(test_sqlstate_invalid_text_representation_is_bad_request),
		T(test_sqlstate_serialization_failure_and_deadlock_are_conflict),
		T(test_sqlstate_timeouts_and_lost_connections_are_unavailable),
		T(test_sqlstate_garbage_or_null_is_internal),
		/* app_err */
		T(test_every_error_has_a_distinct_code_and_a_valid_status),
		T(test_error_codes_map_to_their_statuses),
		T(test_out_of_range_error_is_internal_500),
		/* mpool */
		T(test_pool_alloc_aligns_every_pointer),
		T(test_pool_small_allocs_span_chunks_without_overlap),
		T(test_pool_big_alloc_gets_its_own_chunk),
		T(test_pool_reset_rewinds_to_the_first_chunk),
		T(test_pool_calloc_zeroes_reused_memory),
		T(test_pool_strdup_and_strndup_copy),
		T(test_pool_printf_formats_short_and_long),
		T(test_pool_cleanups_run_newest_first_exactly_once),
		T(test_pool_cleanups_registered_after_reset_run_at_next_reset),
		T(test_pool_cleanup_registered_by_a_cleanup_runs_in_same_reset),
		T(test_pool_free_runs_pending_cleanups),
		T(test_pool_json_drops_its_reference_on_reset),
		/* json_escape_into */
		T(test_json_escape_copies_plain_text),
		T(test_json_escape_escapes_quotes_and_backslash),
		T(test_json_escape_escapes_control_characters),
		T(test_json_escape_appends_at_len),
		T(test_json_escape_truncates_without_splitting_an_escape),
		T(test_json_escape_never_writes_past_cap),
		/* OpenAPI */
		T(test_pattern_to_template_converts_params),
		T(test_openapi_documents_every_route_and_nothing_else),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
