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

#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* ---- str_hash ------------------------------------------------------- */

static void
test_str_hash_is_fnv1a_64(void **state)
{
	(void)state;
	/* the published FNV-1a 64 values */
	assert_true(str_hash("") == 0xcbf29ce484222325ULL);
	assert_true(str_hash("a") == 0xaf63dc4c8601ec8cULL);
	assert_true(str_hash("foobar") == 0x85944171f73967e8ULL);
	assert_true(str_hash("ab") != str_hash("ba"));
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
		{ E_NO_AUDIO,		404, "no_audio" },
		{ E_METHOD,		405, "method_not_allowed" },
		{ E_CONFLICT,		409, "conflict" },
		{ E_GONE,		410, "gone" },
		{ E_TOO_LARGE,		413, "payload_too_large" },
		{ E_QUOTA,		413, "quota_exceeded" },
		{ E_UNSUPPORTED,	415, "unsupported_media_type" },
		{ E_INVALID,		422, "validation_failed" },
		{ E_TRANSCODE,		422, "transcode_failed" },
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
	char	 perm[32];	/* x-permission: public, authenticated, a name */
	int	 nperm;		/* x-permission lines seen (the document) */
};

struct api_ops {
	struct api_op	 op[MAX_OPS];
	int		 n;
};

/* Add an operation; returns its index. perm may be NULL (not known yet). */
static int
ops_add(struct api_ops *ops, const char *method, const char *path,
    const char *perm)
{
	struct api_op	*op;

	if (ops->n == MAX_OPS)
		fail_msg("more than %d operations", MAX_OPS);
	op = &ops->op[ops->n];
	snprintf(op->method, sizeof(op->method), "%s", method);
	snprintf(op->path, sizeof(op->path), "%s", path);
	snprintf(op->perm, sizeof(op->perm), "%s", perm != NULL ? perm : "");
	op->nperm = perm != NULL;
	return ops->n++;
}

/* The operation method + path, or NULL. */
static const struct api_op *
ops_find(const struct api_ops *ops, const char *method, const char *path)
{
	int	 i;

	for (i = 0; i < ops->n; i++)
		if (strcmp(ops->op[i].method, method) == 0 &&
		    strcmp(ops->op[i].path, path) == 0)
			return &ops->op[i];
	return NULL;
}

static int
ops_has(const struct api_ops *ops, const char *method, const char *path)
{
	return ops_find(ops, method, path) != NULL;
}

/*
 * What the document must say in x-permission for a route that needs
 * needs: "public" for P_NONE, "authenticated" for P_AUTHENTICATED alone,
 * else the name of the one named permission ("?" if there is none or
 * more than one: no single word can document that).
 */
static const char *
perm_word(unsigned needs)
{
	const char	*name;

	if (needs == P_NONE)
		return "public";
	if (needs == P_AUTHENTICATED)
		return "authenticated";
	name = perm_name(needs & P_ALL_NAMED);
	return name != NULL ? name : "?";
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
					ops_add(ops, names[m], path,
					    perm_word(rt->needs));
		}
	}
}

/* The OpenAPI file the sync tests read: $DJAMMS_OPENAPI or the default. */
static const char *
openapi_file(void)
{
	const char	*file = getenv("DJAMMS_OPENAPI");

	return file != NULL && *file != '\0' ? file : "docs/openapi.yaml";
}

/*
 * The operations docs/openapi.yaml documents, read the minimal way: under
 * the top-level "paths:", a path is "  /...:" (2 spaces) and its operations
 * are "    get:" etc. (4 spaces). An operation's "      x-permission: word"
 * line (6 spaces) is recorded in its perm (nperm counts such lines, so a
 * repeated one shows). Returns -1 if the file cannot be read.
 */
static int
ops_from_openapi(const char *file, struct api_ops *ops)
{
	regex_t		 path_re, op_re, perm_re;
	regmatch_t	 m[2];
	FILE		*f;
	char		 line[1024], path[256] = "";
	int		 in_paths = 0, cur = -1;

	if ((f = fopen(file, "r")) == NULL)
		return -1;
	if (regcomp(&path_re, "^  (/[^:]*):[[:space:]]*$", REG_EXTENDED) != 0 ||
	    regcomp(&op_re, "^    (get|put|post|delete|patch|head|options):",
	    REG_EXTENDED) != 0 ||
	    regcomp(&perm_re, "^      x-permission: ([^[:space:]]+)[[:space:]]*$",
	    REG_EXTENDED) != 0)
		abort();
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] != ' ' && line[0] != '#' && line[0] != '\n' &&
		    line[0] != '\r') {
			/* A top-level key opens or closes the paths block. */
			in_paths = strncmp(line, "paths:", 6) == 0;
			path[0] = '\0';
			cur = -1;
			continue;
		}
		if (!in_paths)
			continue;
		if (regexec(&path_re, line, 2, m, 0) == 0) {
			snprintf(path, sizeof(path), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			cur = -1;
			continue;
		}
		if (strncmp(line, "  ", 2) == 0 && line[2] != ' ' &&
		    line[2] != '\n' && line[2] != '#') {
			path[0] = '\0';		/* some other 2-space key */
			cur = -1;
			continue;
		}
		if (path[0] != '\0' && regexec(&op_re, line, 2, m, 0) == 0) {
			char	 method[8];

			snprintf(method, sizeof(method), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			cur = strcmp(method, "head") != 0 ?
			    ops_add(ops, method, path, NULL) : -1;
			continue;
		}
		if (strncmp(line, "    ", 4) == 0 && line[4] != ' ' &&
		    line[4] != '\n' && line[4] != '#') {
			cur = -1;		/* a path-level key: parameters... */
			continue;
		}
		if (cur >= 0 && regexec(&perm_re, line, 2, m, 0) == 0) {
			struct api_op	*op = &ops->op[cur];

			snprintf(op->perm, sizeof(op->perm), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			op->nperm++;
		}
	}
	fclose(f);
	regfree(&path_re);
	regfree(&op_re);
	regfree(&perm_re);
	return 0;
}

static void
test_openapi_documents_every_route_and_nothing_else(void **state)
{
	static struct api_ops	 served, documented;
	const char		*file = openapi_file();
	int			 i, missing = 0, extra = 0;

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

/*
 * Every operation says in x-permission what its route-table entry needs:
 * the document is what clients read to know which credentials to send.
 */
static void
test_openapi_permissions_match_the_route_table(void **state)
{
	static struct api_ops	 served, documented;
	const char		*file = openapi_file();
	int			 i, bad = 0;

	served.n = documented.n = 0;
	ops_from_routes(&served);
	if (ops_from_openapi(file, &documented) != 0)
		fail_msg("cannot read %s (run from the top of the repository "
		    "or set DJAMMS_OPENAPI)", file);
	assert_true(served.n > 0);

	for (i = 0; i < served.n; i++) {
		const struct api_op	*want = &served.op[i];
		const struct api_op	*doc = ops_find(&documented, want->method,
					    want->path);

		if (doc == NULL)
			continue;	/* the sibling test reports it */
		if (doc->nperm == 0) {
			print_error("%s %s: no x-permission (the route needs %s)\n",
			    want->method, want->path, want->perm);
			bad++;
		} else if (doc->nperm > 1) {
			print_error("%s %s: %d x-permission lines\n",
			    want->method, want->path, doc->nperm);
			bad++;
		} else if (strcmp(doc->perm, want->perm) != 0) {
			print_error("%s %s: x-permission is %s, the route needs %s\n",
			    want->method, want->path, doc->perm, want->perm);
			bad++;
		}
	}
	for (i = 0; i < documented.n; i++) {
		const struct api_op	*doc = &documented.op[i];

		if (!ops_has(&served, doc->method, doc->path) && doc->nperm == 0) {
			print_error("%s %s: no x-permission\n", doc->method,
			    doc->path);
			bad++;
		}
	}
	if (bad)
		fail_msg("%d operation(s) whose x-permission does not match the "
		    "route table", bad);
}

static void
test_perm_word_names_what_a_route_needs(void **state)
{
	assert_string_equal(perm_word(P_NONE), "public");
	assert_string_equal(perm_word(P_AUTHENTICATED), "authenticated");
	assert_string_equal(perm_word(P_ADMIN_SYSTEM), "admin:system");
	assert_string_equal(perm_word(P_READ_TRACKS), "read:tracks");
	assert_string_equal(perm_word(P_AUTHENTICATED | P_WRITE_SYSTEM),
	    "write:system");
	/* Two permissions at once cannot be one word: never matches a doc. */
	assert_string_equal(perm_word(P_READ_TRACKS | P_WRITE_TRACKS), "?");
}

#define NROLES	4
static const char *const role_names[NROLES] = {
	"guest", "user", "moderator", "admin",
};

/*
 * The top-level x-roles block: "x-roles:", then a role per "  name:" line
 * and its permissions as "    - perm" lines. OUT: perms[i] for
 * role_names[i]; *unknown counts roles and permissions that are not ours
 * (each printed). Returns -1 if the file cannot be read, -2 if it has no
 * x-roles block.
 */
static int
roles_from_openapi(const char *file, unsigned perms[NROLES], int *unknown)
{
	regex_t		 role_re, perm_re;
	regmatch_t	 m[2];
	FILE		*f;
	char		 line[1024], word[64];
	int		 in_roles = 0, seen = 0, cur = -1;

	memset(perms, 0, NROLES * sizeof(perms[0]));
	*unknown = 0;
	if ((f = fopen(file, "r")) == NULL)
		return -1;
	if (regcomp(&role_re, "^  ([A-Za-z0-9_-]+):[[:space:]]*$",
	    REG_EXTENDED) != 0 ||
	    regcomp(&perm_re, "^    - ([^[:space:]]+)[[:space:]]*$",
	    REG_EXTENDED) != 0)
		abort();
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] != ' ' && line[0] != '#' && line[0] != '\n' &&
		    line[0] != '\r') {
			in_roles = strncmp(line, "x-roles:", 8) == 0;
			seen |= in_roles;
			cur = -1;
			continue;
		}
		if (!in_roles)
			continue;
		if (regexec(&role_re, line, 2, m, 0) == 0) {
			snprintf(word, sizeof(word), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			for (cur = 0; cur < NROLES; cur++)
				if (strcmp(word, role_names[cur]) == 0)
					break;
			if (cur == NROLES) {
				print_error("x-roles: %s is not a role\n", word);
				(*unknown)++;
				cur = -1;
			}
			continue;
		}
		if (regexec(&perm_re, line, 2, m, 0) == 0) {
			unsigned	 bit;

			snprintf(word, sizeof(word), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			if ((bit = perm_parse(word)) == 0) {
				print_error("x-roles: %s is not a permission\n", word);
				(*unknown)++;
			} else if (cur >= 0) {
				perms[cur] |= bit;
			}
		}
	}
	fclose(f);
	regfree(&role_re);
	regfree(&perm_re);
	return seen ? 0 : -2;
}

/* The matrix in the document is the one the server enforces. */
static void
test_openapi_roles_match_role_perms(void **state)
{
	const char	*file = openapi_file();
	unsigned	 doc[NROLES];
	int		 i, b, unknown, bad = 0, rc;

	if ((rc = roles_from_openapi(file, doc, &unknown)) == -1)
		fail_msg("cannot read %s (run from the top of the repository "
		    "or set DJAMMS_OPENAPI)", file);
	if (rc == -2)
		fail_msg("%s has no top-level x-roles block", file);
	for (i = 0; i < NROLES; i++) {
		unsigned	 want = role_perms(role_names[i]);

		assert_int_not_equal(want, 0);
		for (b = 0; b < 12; b++) {
			unsigned	 bit = 1u << b;

			if ((want & bit) && !(doc[i] & bit)) {
				print_error("x-roles: %s lacks %s\n", role_names[i],
				    perm_name(bit));
				bad++;
			} else if (!(want & bit) && (doc[i] & bit)) {
				print_error("x-roles: %s lists %s, which it does "
				    "not have\n", role_names[i], perm_name(bit));
				bad++;
			}
		}
	}
	if (bad || unknown)
		fail_msg("x-roles differs from role_perms(): %d difference(s), "
		    "%d unknown name(s)", bad, unknown);
}

/* ---- fcgi/auth.c: the permission matrix ----------------------------- */

#define WRITES_AND_DELETES	(P_WRITE_TRACKS | P_DELETE_TRACKS | \
				 P_WRITE_PLAYLISTS | P_DELETE_PLAYLISTS | \
				 P_WRITE_SCHEDULES | P_DELETE_SCHEDULES)
#define SYSTEM_PERMS		(P_READ_SYSTEM | P_WRITE_SYSTEM | P_ADMIN_SYSTEM)

static void
test_role_perms_guest_is_read_only(void **state)
{
	unsigned	 g = role_perms("guest");

	assert_int_equal(g, P_READ_TRACKS | P_READ_PLAYLISTS | P_READ_SCHEDULES);
	assert_int_equal(g & WRITES_AND_DELETES, 0);
	assert_int_equal(g & SYSTEM_PERMS, 0);
}

static void
test_role_perms_user_cannot_write_schedules_nor_administer(void **state)
{
	unsigned	 u = role_perms("user");

	assert_int_equal(u, P_READ_TRACKS | P_WRITE_TRACKS | P_DELETE_TRACKS |
	    P_READ_PLAYLISTS | P_WRITE_PLAYLISTS | P_DELETE_PLAYLISTS |
	    P_READ_SCHEDULES);
	assert_int_equal(u & (P_WRITE_SCHEDULES | P_DELETE_SCHEDULES), 0);
	assert_int_equal(u & SYSTEM_PERMS, 0);
}

static void
test_role_perms_moderator_can_write_schedules(void **state)
{
	unsigned	 m = role_perms("moderator");

	assert_int_equal(m & (P_WRITE_SCHEDULES | P_DELETE_SCHEDULES),
	    P_WRITE_SCHEDULES | P_DELETE_SCHEDULES);
	assert_true(m & P_READ_SYSTEM);
	assert_int_equal(m & (P_WRITE_SYSTEM | P_ADMIN_SYSTEM), 0);
	assert_int_equal(m, role_perms("user") | P_WRITE_SCHEDULES |
	    P_DELETE_SCHEDULES | P_READ_SYSTEM);
}

static void
test_role_perms_admin_has_every_permission(void **state)
{
	assert_int_equal(role_perms("admin"), P_ALL_NAMED);
}

static void
test_roles_are_nested_and_never_grant_authenticated(void **state)
{
	unsigned	 g = role_perms("guest"), u = role_perms("user");
	unsigned	 m = role_perms("moderator"), a = role_perms("admin");

	assert_int_equal(g & ~u, 0);
	assert_int_equal(u & ~m, 0);
	assert_int_equal(m & ~a, 0);
	assert_int_not_equal(g, u);
	assert_int_not_equal(u, m);
	assert_int_not_equal(m, a);
	/* Only the identification step adds that bit, never a role. */
	assert_int_equal((g | u | m | a) & ~P_ALL_NAMED, 0);
}

static void
test_role_perms_of_an_unknown_role_is_nothing(void **state)
{
	static const char *const bad[] = {
		"", "Admin", "ADMIN", "admin ", " admin", "admin\n", "root",
		"administrator", "adm", "guests", "moderator\t",
	};
	size_t	 i;

	assert_int_equal(role_perms(NULL), 0);
	assert_false(role_valid(NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (role_perms(bad[i]) != 0)
			fail_msg("role \"%s\" has permissions", bad[i]);
		assert_false(role_valid(bad[i]));
	}
	assert_true(role_valid("guest"));
	assert_true(role_valid("user"));
	assert_true(role_valid("moderator"));
	assert_true(role_valid("admin"));
}

static void
test_perm_parse_and_perm_name_round_trip(void **state)
{
	unsigned	 b, c;

	for (b = 0; b < 12; b++) {
		const char	*name = perm_name(1u << b);

		assert_non_null(name);
		assert_non_null(strchr(name, ':'));
		assert_int_equal(perm_parse(name), 1u << b);
		for (c = 0; c < b; c++)
			assert_string_not_equal(name, perm_name(1u << c));
	}
	assert_string_equal(perm_name(P_READ_TRACKS), "read:tracks");
	assert_string_equal(perm_name(P_WRITE_SCHEDULES), "write:schedules");
	assert_string_equal(perm_name(P_ADMIN_SYSTEM), "admin:system");
}

static void
test_perm_name_and_parse_refuse_what_is_not_one_permission(void **state)
{
	static const char *const bad[] = {
		"", "READ:tracks", "read:Tracks", "read:tracks ", " read:tracks",
		"read", "tracks", "read:track", "authenticated", "public",
		"admin", "*", "read:*",
	};
	size_t	 i;

	assert_null(perm_name(0));
	assert_null(perm_name(P_AUTHENTICATED));
	assert_null(perm_name(P_READ_TRACKS | P_WRITE_TRACKS));
	assert_null(perm_name(P_ALL_NAMED));
	assert_null(perm_name(1u << 31));
	assert_int_equal(perm_parse(NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (perm_parse(bad[i]) != 0)
			fail_msg("\"%s\" parsed as a permission", bad[i]);
}

static void
test_perms_json_lists_names_in_bit_order(void **state)
{
	struct json_object	*a = perms_json(role_perms("guest"));
	struct json_object	*none = perms_json(0);
	struct json_object	*all = perms_json(P_ALL_NAMED | P_AUTHENTICATED);

	assert_string_equal(json_object_to_json_string_ext(a,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
	    "[\"read:tracks\",\"read:playlists\",\"read:schedules\"]");
	assert_string_equal(json_object_to_json_string_ext(none,
	    JSON_C_TO_STRING_PLAIN), "[]");
	assert_int_equal(json_object_array_length(all), 12);
	json_object_put(a);
	json_object_put(none);
	json_object_put(all);
}

/* ---- fcgi/auth.c: encodings ----------------------------------------- */

static void
test_b64url_round_trips_every_length(void **state)
{
	unsigned char	 in[100], out[128];
	char		 enc[140];
	size_t		 n, i, outlen;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 97 + 0xfb);	/* hits '-' and '_' */
	for (n = 0; n <= sizeof(in); n++) {
		memset(enc, '#', sizeof(enc));
		b64url_encode(in, n, enc);
		assert_int_equal(strlen(enc), (4 * n + 2) / 3);
		assert_null(strpbrk(enc, "+/=#"));
		outlen = 9999;
		if (b64url_decode(enc, strlen(enc), out, sizeof(out), &outlen) != 0)
			fail_msg("cannot decode its own encoding of %zu bytes: %s",
			    n, enc);
		assert_int_equal(outlen, n);
		assert_memory_equal(out, in, n);
	}
}

static void
test_b64url_known_vectors(void **state)
{
	static const struct { const char *raw; size_t n; const char *enc; } v[] = {
		{ "", 0, "" },
		{ "f", 1, "Zg" },
		{ "fo", 2, "Zm8" },
		{ "foo", 3, "Zm9v" },
		{ "foobar", 6, "Zm9vYmFy" },
		{ "\xfb\xff", 2, "-_8" },
		{ "\xff\xff\xfe", 3, "___-" },
	};
	unsigned char	 out[16];
	char		 enc[16];
	size_t		 i, outlen;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		b64url_encode((const unsigned char *)v[i].raw, v[i].n, enc);
		assert_string_equal(enc, v[i].enc);
		assert_int_equal(b64url_decode(v[i].enc, strlen(v[i].enc), out,
		    sizeof(out), &outlen), 0);
		assert_int_equal(outlen, v[i].n);
		assert_memory_equal(out, v[i].raw, v[i].n);
	}
}

static void
test_b64url_decode_rejects_bad_characters(void **state)
{
	static const char *const bad[] = {
		"ab+c", "ab/c", "ab=c", "abc=", "Zg==", "Zm8=", "ab c", "ab\nc",
		"ab.c", "ab\x80" "c", "ab%2", "\xc3\xa9" "ab", "ab\\c", "ab*c",
	};
	unsigned char	 out[64];
	size_t		 i, outlen;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out),
		    &outlen) == 0)
			fail_msg("decoded \"%s\"", bad[i]);
	/* A NUL inside the length is a bad character too. */
	assert_int_equal(b64url_decode("ab\0c", 4, out, sizeof(out), &outlen), -1);
}

static void
test_b64url_decode_rejects_impossible_lengths_and_small_buffers(void **state)
{
	unsigned char	 out[8];
	size_t		 outlen;

	/* 4n + 1 characters cannot come from any byte string. */
	assert_int_equal(b64url_decode("A", 1, out, sizeof(out), &outlen), -1);
	assert_int_equal(b64url_decode("abcde", 5, out, sizeof(out), &outlen), -1);
	/* "Zm9vYmFy" is 6 bytes: never written past cap. */
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 5, &outlen), -1);
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 6, &outlen), 0);
	assert_int_equal(outlen, 6);
}

static void
test_uuid_valid_accepts_the_canonical_form_only(void **state)
{
	static const char *const good[] = {
		"123e4567-e89b-12d3-a456-426614174000",
		"00000000-0000-0000-0000-000000000000",
		"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
		"0b6f3c9e-4A57-4c8e-9a3d-2f1e5b7c9d10",
	};
	static const char *const bad[] = {
		"",
		"123e4567e89b12d3a456426614174000",
		"123e4567-e89b-12d3-a456-42661417400",
		"123e4567-e89b-12d3-a456-4266141740000",
		"123e4567-e89b-12d3-a456-426614174000\n",
		" 123e4567-e89b-12d3-a456-426614174000",
		"{123e4567-e89b-12d3-a456-426614174000}",
		"123e4567-e89b-12d3-a456_426614174000",
		"123e4567-e89b-12d3-a456-42661417400g",
		"123e456-7e89b-12d3-a456-426614174000",
		"123e4567-e89b-12d3-a4564-26614174000",
		"123e4567-e89b-12d3-a456--26614174000",
		"------------------------------------",
		"123e4567-e89b-12d3-a456-4266141740'0",
		"../../../../../../../../etc/passwd..",
	};
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!uuid_valid(good[i]))
			fail_msg("refused %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (uuid_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	assert_false(uuid_valid(NULL));
}

/* ---- fcgi/auth.c: access tokens -------------------------------------- */

/* Three secrets of 40 bytes each. */
static char	 secret_a[] = "a-secret-of-forty-bytes-for-unit-tests-1";
static char	 secret_b[] = "b-secret-of-forty-bytes-for-unit-tests-2";
static char	 secret_c[] = "c-secret-of-forty-bytes-for-unit-tests-3";

#define T0	((time_t)1714566896)	/* a fixed "now" */
#define ALICE_ID	"0b6f3c9e-4a57-4c8e-9a3d-2f1e5b7c9d10"

static const struct token_user	 alice = {
	.id = ALICE_ID, .username = "alice", .email = "alice@example.com",
	.role = "user", .ver = 3, .is_anonymous = 0,
};

static struct config	 saved_cfg;

/* cfg as the server has it, with secret_a; the caller's cfg comes back after. */

/* ---- revoke.c: the shared token tables -------------------------------- */

static int
revoke_setup(void **state)
{
	pool_setup(state);
	cfg.access_ttl_s = 900;
	assert_int_equal(revoke_shm_create(), 0);
	return 0;
}

static int
revoke_teardown(void **state)
{
	revoke_shm_destroy();
	return pool_teardown(state);
}

#define UID_A	"11111111-1111-1111-1111-111111111111"
#define UID_B	"22222222-2222-2222-2222-222222222222"
#define JTI_A	"AAAAAAAAAAAAAAAAAAAAAAAA"

static void
test_revoke_is_unknown_until_a_watcher_is_live(void **state)
{
	uint32_t	 gen;
	time_t		 now = time(NULL);

	(void)state;
	revoke_note_jti(JTI_A, (long)now + 600);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 0, now), -1);
	assert_int_equal(revoke_profile_gen(UID_A, &gen), -1);
	assert_false(revoke_is_live());
	revoke_set_live(1);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 0, now), 1);
	revoke_set_live(0);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 0, now), -1);
}

static void
test_revoke_version_ends_older_tokens_of_that_user_only(void **state)
{
	time_t	 now = time(NULL);

	(void)state;
	revoke_set_live(1);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 3, now), 0);
	revoke_note_version(UID_A, 4, now);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 3, now), 1);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 4, now), 0);
	assert_int_equal(revoke_token_state(UID_B, JTI_A, 0, now), 0);
	/* An older announcement arriving late never lowers the version. */
	assert_int_equal(revoke_apply("v " UID_A " 2 1"), 0);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 3, now), 1);
	/* Past a token's lifetime the entry no longer matters. */
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 3, now + 900 + 121), 0);
}

static void
test_revoke_jti_ends_one_token_until_it_expires(void **state)
{
	time_t	 now = time(NULL);
	char	 note[128];

	(void)state;
	revoke_set_live(1);
	snprintf(note, sizeof(note), "d %s %ld", JTI_A, (long)now + 60);
	assert_int_equal(revoke_apply(note), 0);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 0, now), 1);
	assert_int_equal(revoke_token_state(UID_A, "BBBBBBBBBBBBBBBBBBBBBBBB", 0, now), 0);
	assert_int_equal(revoke_token_state(UID_A, JTI_A, 0, now + 60 + 121), 0);
	/* An already expired token is not worth an entry. */
	snprintf(note, sizeof(note), "d CCCCCCCCCCCCCCCCCCCCCCCC %ld", (long)now - 1000);
	assert_int_equal(revoke_apply(note), 0);
	assert_int_equal(revoke_token_state(UID_A, "CCCCCCCCCCCCCCCCCCCCCCCC", 0, now), 0);
}

static void
test_revoke_profile_generation_moves_on_each_change(void **state)
{
	uint32_t	 g1, g2, g3, other1, other2;

	(void)state;
	revoke_set_live(1);
	assert_int_equal(revoke_profile_gen(UID_A, &g1), 0);
	assert_int_equal(revoke_profile_gen(UID_B, &other1), 0);
	assert_int_equal(revoke_apply("p " UID_A), 0);
	assert_int_equal(revoke_profile_gen(UID_A, &g2), 0);
	assert_int_not_equal(g1, g2);
	revoke_note_version(UID_A, 1, time(NULL));	/* a version bump is a change too */
	assert_int_equal(revoke_profile_gen(UID_A, &g3), 0);
	assert_int_not_equal(g2, g3);
	assert_int_equal(revoke_profile_gen(UID_B, &other2), 0);
	assert_int_equal(other1, other2);
}

/* Likes and search history each have their own generation per user. */
static void
test_revoke_likes_and_history_generations_move_apart(void **state)
{
	uint32_t	 f1, f2, h1, h2, h3, other1, other2;

	(void)state;
	revoke_set_live(1);
	assert_int_equal(revoke_likes_gen(UID_A, &f1), 0);
	assert_int_equal(revoke_history_gen(UID_A, &h1), 0);
	assert_int_equal(revoke_history_gen(UID_B, &other1), 0);
	assert_int_equal(revoke_apply("h " UID_A), 0);
	assert_int_equal(revoke_history_gen(UID_A, &h2), 0);
	assert_int_not_equal(h1, h2);
	assert_int_equal(revoke_likes_gen(UID_A, &f2), 0);
	assert_int_equal(f1, f2);
	revoke_note_history(UID_A);	/* a change made here, after its commit */
	assert_int_equal(revoke_history_gen(UID_A, &h3), 0);
	assert_int_not_equal(h2, h3);
	assert_int_equal(revoke_apply("f " UID_A), 0);
	assert_int_equal(revoke_likes_gen(UID_A, &f2), 0);
	assert_int_not_equal(f1, f2);
	assert_int_equal(revoke_history_gen(UID_B, &other2), 0);
	assert_int_equal(other1, other2);
	/* not live: unknown, so suggest asks Redis */
	revoke_set_live(0);
	assert_int_equal(revoke_history_gen(UID_A, &h1), -1);
}

static void
test_revoke_apply_refuses_what_it_does_not_understand(void **state)
{
	(void)state;
	assert_int_equal(revoke_apply(""), -1);
	assert_int_equal(revoke_apply("x " UID_A), -1);
	assert_int_equal(revoke_apply("v " UID_A), -1);
	assert_int_equal(revoke_apply("v " UID_A " 3"), -1);
	assert_int_equal(revoke_apply("d " JTI_A), -1);
	assert_int_equal(revoke_apply("p 0123456789012345678901234567890123456789"
	    "0123456789"), -1);
}

/*
 * A table that fills with live entries cannot hold everything: it says
 * so (unknown, so callers ask Redis) instead of forgetting a revocation.
 */
static void
test_revoke_full_table_is_not_trusted(void **state)
{
	time_t	 now = time(NULL);
	char	 jti[32];
	int	 i, state_seen = 0;

	(void)state;
	revoke_set_live(1);
	for (i = 0; i < 16384; i++) {
		snprintf(jti, sizeof(jti), "J%023d", i);
		revoke_note_jti(jti, (long)now + 600);
	}
	state_seen = revoke_token_state(UID_A, "J00000000000000000000000", 0, now);
	assert_int_equal(state_seen, -1);
	assert_false(revoke_is_live());
}

/*
 * Expired entries make room: a long-running pool never fills up. The
 * first batch lives one second, then the second batch needs its room.
 */
static void
test_revoke_expired_entries_are_purged(void **state)
{
	time_t	 now = time(NULL);
	char	 jti[32];
	int	 i;

	(void)state;
	revoke_set_live(1);
	for (i = 0; i < 12000; i++) {
		snprintf(jti, sizeof(jti), "J%023d", i);
		revoke_note_jti(jti, (long)now + 1 - 120);	/* the margin is 120 s */
	}
	assert_int_equal(revoke_token_state(UID_A, "J00000000000000000000007", 0, now), 1);
	sleep(2);
	now = time(NULL);
	for (i = 0; i < 12000; i++) {
		snprintf(jti, sizeof(jti), "K%023d", i);
		revoke_note_jti(jti, (long)now + 600);
	}
	assert_true(revoke_is_live());
	assert_int_equal(revoke_token_state(UID_A, "K00000000000000000011995", 0, now), 1);
	assert_int_equal(revoke_token_state(UID_A, "J00000000000000000000007", 0, now), 0);
}

/* The library version is only trusted while the watcher is live. */
static void
test_revoke_library_version_moves_on_and_needs_a_live_watcher(void **state)
{
	uint64_t	 v1, v2;

	(void)state;
	assert_int_equal(revoke_library_version(&v1), -1);
	revoke_set_live(1);
	assert_int_equal(revoke_library_version(&v1), 0);
	revoke_library_bump();
	assert_int_equal(revoke_library_version(&v2), 0);
	assert_true(v2 == v1 + 1);
	revoke_set_live(0);
	assert_int_equal(revoke_library_version(&v2), -1);
}

static int
pagecache_teardown(void **state)
{
	(void)state;
	pagecache_free();
	return 0;
}

static void
test_pagecache_hit_needs_the_same_key_and_version(void **state)
{
	const char	*k1 = "a1b2c3", *k2 = "d4e5f6";
	time_t		 now = 1000;
	size_t		 len = 0;
	const char	*got;

	(void)state;
	assert_null(pagecache_get(k1, 7, now, &len));
	pagecache_put(k1, 7, now + 60, "{\"a\":1}", 7);
	got = pagecache_get(k1, 7, now, &len);
	assert_non_null(got);
	assert_int_equal(len, 7);
	assert_memory_equal(got, "{\"a\":1}", 7);
	assert_null(pagecache_get(k1, 8, now, &len));	/* the library moved on */
	assert_null(pagecache_get(k2, 7, now, &len));
}

static void
test_pagecache_page_expires(void **state)
{
	size_t	 len;

	(void)state;
	pagecache_put("exp", 1, 2000, "[]", 2);
	assert_non_null(pagecache_get("exp", 1, 1999, &len));
	assert_null(pagecache_get("exp", 1, 2000, &len));
}

/* Many keys share 256 slots: each lookup returns its own page or none. */
static void
test_pagecache_keys_sharing_a_slot_never_mix(void **state)
{
	char	 key[16], body[32];
	size_t	 len;
	int	 i, hits = 0;

	(void)state;
	for (i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(body, sizeof(body), "page %d", i);
		pagecache_put(key, 1, 100, body, strlen(body));
	}
	for (i = 0; i < 2000; i++) {
		const char	*got;

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(body, sizeof(body), "page %d", i);
		if ((got = pagecache_get(key, 1, 50, &len)) == NULL)
			continue;
		hits++;
		assert_int_equal(len, strlen(body));
		assert_memory_equal(got, body, len);
	}
	assert_true(hits > 0 && hits <= 256);
}

static void
test_pagecache_does_not_keep_huge_pages(void **state)
{
	size_t	 n = 1100 * 1024, len;
	char	*big = malloc(n);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', n);
	pagecache_put("big", 1, 100, big, n);
	assert_null(pagecache_get("big", 1, 50, &len));
	free(big);
}

/* The track objects of a page, found without a JSON parser. */
static void
test_likes_find_tracks_finds_each_flat_track_object(void **state)
{
	static const char page[] =
	    "{\"tracks\":[{\"id\":\"11111111-1111-1111-1111-111111111111\","
	    "\"title\":\"a } \\\" {\\\\\"},"
	    "{\"id\":\"22222222-2222-2222-2222-222222222222\",\"n\":1}],"
	    "\"limit\":2}";
	size_t	 id_at[4], end_at[4];
	int	 n;

	(void)state;
	n = likes_find_tracks(page, sizeof(page) - 1, id_at, end_at, 4);
	assert_int_equal(n, 2);
	assert_memory_equal(page + id_at[0], "11111111-1111-1111-1111-111111111111", 36);
	assert_memory_equal(page + id_at[1], "22222222-2222-2222-2222-222222222222", 36);
	assert_int_equal(page[end_at[0]], '}');
	assert_int_equal(page[end_at[0] + 1], ',');		/* the braces in the title were text */
	assert_int_equal(page[end_at[1] + 1], ']');
	assert_int_equal(likes_find_tracks("{\"tracks\":[]}", 13, id_at, end_at, 4), 0);
	{
		/* an escaped backslash, then an escaped quote, then a brace: all text */
		static const char	 odd[] =
		    "[{\"id\":\"33333333-3333-3333-3333-333333333333\","
		    "\"t\":\"\\\\\\\"}\"}]";
		/* a string that never closes: no object */
		static const char	 open_[] =
		    "[{\"id\":\"44444444-4444-4444-4444-444444444444\",\"t\":\"}\\\"}]";

		assert_int_equal(likes_find_tracks(odd, sizeof(odd) - 1, id_at, end_at, 4), 1);
		assert_int_equal(end_at[0], sizeof(odd) - 3);
		assert_int_equal(likes_find_tracks(open_, sizeof(open_) - 1, id_at, end_at,
		    4), 0);
	}
}

/* ---- history.c --------------------------------------------------------- */

/* The batch's columns as array literals: quoted, escaped, NULL bare. */
static void
test_history_array_quotes_every_element(void **state)
{
	const char	*el[] = { "plain", "a \"quoted\" {word}, here", "back\\slash",
	    NULL, "" };
	char		*got;

	(void)state;
	got = history_array(5, el);
	assert_string_equal(got, "{\"plain\",\"a \\\"quoted\\\" {word}, here\","
	    "\"back\\\\slash\",NULL,\"\"}");
	free(got);
	got = history_array(0, el);
	assert_string_equal(got, "{}");
	free(got);
}

/* ---- spell.c ----------------------------------------------------------- */

/* The bit-parallel distance agrees with the table on random words. */
static void
test_spell_distance_bits_matches_the_table(void **state)
{
	static const char	 alpha[] = "abcde\xc3\xa9";	/* few letters: many near pairs */
	char			 a[33], b[33];
	uint64_t		 seed = 0x9e3779b97f4a7c15ull;
	int			 i, la, lb, k, want;

	for (i = 0; i < 200000; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		la = (int)(seed % 33);
		lb = (int)((seed >> 8) % 33);
		if (i % 2)	/* near lengths, as lookups ask */
			lb = la + (int)((seed >> 16) % 7) - 3 < 0 ? 0 :
			    la + (int)((seed >> 16) % 7) - 3 > 32 ? 32 :
			    la + (int)((seed >> 16) % 7) - 3;
		for (k = 0; k < la; k++)
			a[k] = alpha[(seed >> (k % 56)) % 7];
		for (k = 0; k < lb; k++)
			b[k] = i % 3 == 0 && k < la ? a[k] : alpha[((seed >> 3) >> (k % 50)) % 7];
		if (i % 5 == 0 && lb > 1) {	/* a swap */
			char	 t = b[0];

			b[0] = b[1];
			b[1] = t;
		}
		a[la] = b[lb] = '\0';
		want = spell_distance(a, la, b, lb, 64);
		if (spell_distance_bits(a, la, b, lb) != want)
			fail_msg("\"%s\" \"%s\": %d, the table says %d", a, b,
			    spell_distance_bits(a, la, b, lb), want);
	}
	assert_int_equal(spell_distance_bits("hotle", 5, "hotel", 5), 1);
	assert_int_equal(spell_distance_bits("califronia", 10, "california", 10), 1);
	assert_int_equal(spell_distance_bits("ca", 2, "abc", 3), 3);	/* OSA, not Damerau */
	assert_int_equal(spell_distance_bits("", 0, "ab", 2), 2);
	assert_int_equal(spell_distance_bits("ab", 2, "", 0), 2);
}

/* An ASCII query is split as the database's search_split does it. */
static void
test_spell_split_ascii_cuts_as_the_database(void **state)
{
	char	 w[8][SPELL_MAXLEN + 1], long33[64];

	(void)state;
	assert_int_equal(spell_split_ascii("  Hotel---CALIFORNIA!! ", w, 8), 2);
	assert_string_equal(w[0], "hotel");
	assert_string_equal(w[1], "california");
	assert_int_equal(spell_split_ascii("AC/DC\tdon't 2024", w, 8), 5);
	assert_string_equal(w[1], "dc");
	assert_string_equal(w[2], "don");
	assert_string_equal(w[3], "t");
	assert_string_equal(w[4], "2024");
	assert_int_equal(spell_split_ascii("a b c d e f g h i j", w, 8), 8);
	assert_string_equal(w[7], "h");
	assert_int_equal(spell_split_ascii("", w, 8), 0);
	assert_int_equal(spell_split_ascii(" ?! _-", w, 8), 0);	/* "_" is no letter */
	/* a word over 32 letters is left out, as the database leaves it */
	memset(long33, 'x', 33);
	snprintf(long33 + 33, sizeof(long33) - 33, " Ok");
	assert_int_equal(spell_split_ascii(long33, w, 8), 1);
	assert_string_equal(w[0], "ok");
	long33[32] = '\0';
	assert_int_equal(spell_split_ascii(long33, w, 8), 1);
	assert_int_equal((int)strlen(w[0]), 32);
	/* anything beyond ASCII is the database's (unaccent, lower case) */
	assert_int_equal(spell_split_ascii("beyonc\xc3\xa9", w, 8), -1);
}

static void
test_spell_distance_counts_a_swap_as_one_edit(void **state)
{
	(void)state;
	assert_int_equal(spell_distance("hotel", 5, "hotel", 5, 2), 0);
	assert_int_equal(spell_distance("hotle", 5, "hotel", 5, 2), 1);	/* swap */
	assert_int_equal(spell_distance("califronia", 10, "california", 10, 2), 1);
	assert_int_equal(spell_distance("bony", 4, "bunny", 5, 2), 2);
	assert_int_equal(spell_distance("elish", 5, "eilish", 6, 2), 1);
	assert_int_equal(spell_distance("abc", 3, "xyz", 3, 2), 3);		/* over: max + 1 */
	assert_int_equal(spell_distance("a", 1, "abcd", 4, 2), 3);
	assert_int_equal(spell_distance("", 0, "ab", 2, 2), 2);
}

static int
spell_teardown(void **state)
{
	(void)state;
	spell_free();
	return 0;
}

static void
test_spell_lookup_finds_the_closest_then_the_most_used(void **state)
{
	static const char *const words[] = { "bunny", "bony", "boy", "body",
	    "bad", "band", "california", "hotel", "motel", "eilish" };
	static const int tracks[] = { 120, 3, 800, 300, 50, 900, 111, 159, 20, 40 };
	struct spell_cand	 c[8];
	int			 n, i, found = 0;

	(void)state;
	assert_int_equal(spell_set_words(words, tracks, 10), 0);
	n = spell_lookup("bony", 2, c, 8);
	assert_true(n >= 4);
	assert_string_equal(c[0].word, "bony");			/* itself first */
	assert_int_equal(c[0].distance, 0);
	assert_string_equal(c[1].word, "boy");			/* one edit, most used */
	for (i = 0; i < n; i++)
		found |= strcmp(c[i].word, "bunny") == 0 && c[i].distance == 2;
	assert_true(found);
	n = spell_lookup("hotle", 1, c, 8);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].word, "hotel");
	assert_int_equal(spell_lookup("zzzzzz", 2, c, 8), 0);
}

/*
 * The lookup against every word measured one by one: the words one edit
 * away, and those within reach that begin as the typed word does, each
 * with its distance; nothing else.
 */
static void
test_spell_lookup_matches_a_full_scan(void **state)
{
	enum { NW = 3000, NQ = 400 };
	static char		 buf[NW][12];
	const char		*words[NW];
	int			 tracks[NW], nw = 0, q, i, k;
	static struct spell_cand c[NW];
	unsigned int		 seed = 12345;

	(void)state;
	/* a small alphabet, so that near words are many */
	for (i = 0; i < NW; i++) {
		int	 len = 1 + (int)(rand_r(&seed) % 9), dup = 0;

		for (k = 0; k < len; k++)
			buf[nw][k] = "abcdeo"[rand_r(&seed) % 6];
		buf[nw][len] = '\0';
		for (k = 0; k < nw && !dup; k++)
			dup = strcmp(buf[k], buf[nw]) == 0;
		if (dup)
			continue;
		words[nw] = buf[nw];
		tracks[nw] = (int)(rand_r(&seed) % 500);
		nw++;
	}
	assert_int_equal(spell_set_words(words, tracks, (size_t)nw), 0);
	for (q = 0; q < NQ; q++) {
		char	 typed[12];
		int	 len = 1 + (int)(rand_r(&seed) % 9), reach = 1 + q % 3, n, want = 0;

		for (k = 0; k < len; k++)
			typed[k] = "abcdeo"[rand_r(&seed) % 6];
		typed[len] = '\0';
		n = spell_lookup(typed, reach, c, NW);
		for (i = 0; i < nw; i++) {
			int	 d = spell_distance(typed, len, words[i], (int)strlen(words[i]),
			    reach);

			if (d <= 1 || (d <= reach && words[i][0] == typed[0]))
				want++;
		}
		assert_int_equal(n, want);
		for (i = 0; i < n; i++) {
			int	 d = spell_distance(typed, len, c[i].word, (int)strlen(c[i].word),
			    reach);

			assert_int_equal(c[i].distance, d);
			assert_true(d <= 1 || c[i].word[0] == typed[0]);
			if (i > 0)
				assert_true(c[i - 1].distance < d || (c[i - 1].distance == d &&
				    c[i - 1].tracks >= c[i].tracks));
			for (k = 0; k < i; k++)
				assert_ptr_not_equal(c[k].word, c[i].word);
		}
		assert_int_equal(spell_count(typed), n > 0 && c[0].distance == 0 ?
		    c[0].tracks : 0);
	}
}

static int
auth_setup(void **state)
{
	pool_setup(state);
	saved_cfg = cfg;
	cfg.jwt_secret = secret_a;
	cfg.jwt_secret_len = strlen(secret_a);
	cfg.jwt_previous_secret = NULL;
	cfg.jwt_previous_secret_len = 0;
	cfg.jwt_issuer = "djamms";
	cfg.jwt_audience = "djamms-api";
	cfg.access_ttl_s = 900;
	assert_int_equal(strlen(secret_a), 40);
	return auth_init() == 0 ? 0 : -1;
}

static int
auth_teardown(void **state)
{
	cfg = saved_cfg;
	return pool_teardown(state);
}

/* Make secret (previous: prev, may be NULL) the signing key. */
static void
use_secrets(char *secret, char *prev)
{
	cfg.jwt_secret = secret;
	cfg.jwt_secret_len = strlen(secret);
	cfg.jwt_previous_secret = prev;
	cfg.jwt_previous_secret_len = prev != NULL ? strlen(prev) : 0;
	assert_int_equal(auth_init(), 0);
}

static char *
sign_at(struct mpool *pool, const struct token_user *u, time_t now)
{
	long	 exp = 0;
	char	*tok = auth_sign_access(pool, u, now, &exp);

	assert_non_null(tok);
	assert_int_equal(exp, (long)now + cfg.access_ttl_s);
	return tok;
}

/* Segment i (0 header, 1 payload, 2 signature) of tok. */
static char *
tok_seg(struct mpool *pool, const char *tok, int i)
{
	const char	*s = tok, *e;

	for (; i > 0; i--) {
		s = strchr(s, '.');
		assert_non_null(s);
		s++;
	}
	e = strchrnul(s, '.');
	return pool_strndup(pool, s, (size_t)(e - s));
}

/* The JSON text a segment encodes. */
static char *
seg_text(struct mpool *pool, const char *seg)
{
	unsigned char	*raw = pool_alloc(pool, strlen(seg) + 4);
	size_t		 n;

	if (b64url_decode(seg, strlen(seg), raw, strlen(seg) + 3, &n) != 0)
		fail_msg("not base64url: %s", seg);
	raw[n] = '\0';
	return (char *)raw;
}

static char *
b64s(struct mpool *pool, const char *s)
{
	size_t	 n = strlen(s);
	char	*out = pool_alloc(pool, (n + 2) / 3 * 4 + 1);

	b64url_encode((const unsigned char *)s, n, out);
	return out;
}

/* The kid in a token's header. */
static char *
tok_kid(struct mpool *pool, const char *tok)
{
	struct json_object	*h = json_tokener_parse(seg_text(pool,
				    tok_seg(pool, tok, 0)));
	struct json_object	*kid;
	char			*out;

	assert_non_null(h);
	assert_true(json_object_object_get_ex(h, "kid", &kid));
	out = pool_strdup(pool, json_object_get_string(kid));
	json_object_put(h);
	assert_int_equal(strlen(out), 16);
	return out;
}

/*
 * A token by hand: header JSON and a payload segment, signed with
 * HMAC-SHA256 under key (NULL: an empty signature).
 */
static char *
forge(struct mpool *pool, const char *header, const char *payload_seg,
    const char *key)
{
	char		*input = pool_printf(pool, "%s.%s", b64s(pool, header),
			    payload_seg);
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		 sig[64];

	if (key == NULL)
		return pool_printf(pool, "%s.", input);
	if (HMAC(EVP_sha256(), key, (int)strlen(key),
	    (const unsigned char *)input, strlen(input), md, &mdlen) == NULL)
		abort();
	b64url_encode(md, mdlen, sig);
	return pool_printf(pool, "%s.%s", input, sig);
}

/*
 * Claims like a real access token's, with typ (NULL: none), iss, aud,
 * iat and exp as given and extra members (may be "") added at the end.
 */
static char *
claims_json(struct mpool *pool, const char *typ, const char *iss,
    const char *aud, long iat, long exp, const char *extra)
{
	return pool_printf(pool, "{\"sub\":\"" ALICE_ID "\",\"username\":\"alice\","
	    "\"email\":\"alice@example.com\",\"role\":\"user\","
	    "\"permissions\":[\"read:tracks\"],\"iat\":%ld,\"exp\":%ld,"
	    "\"iss\":\"%s\",\"aud\":\"%s\",\"jti\":\"QUJDREVGR0hJSktMTU5PUFFS\","
	    "\"ver\":3,\"anon\":false%s%s%s%s%s}", iat, exp, iss, aud,
	    typ != NULL ? ",\"typ\":\"" : "", typ != NULL ? typ : "",
	    typ != NULL ? "\"" : "", *extra ? "," : "", extra);
}

/* A token made by libjwt directly: any algorithm, any kid (NULL: none). */
static char *
jwt_build(struct mpool *pool, jwt_alg_t alg, const char *key, const char *kid,
    const char *claims)
{
	jwt_t	*j = NULL;
	char	*s, *copy;

	if (jwt_new(&j) != 0 ||
	    jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)) != 0 ||
	    (kid != NULL && jwt_add_header(j, "kid", kid) != 0) ||
	    jwt_add_grants_json(j, pool_strdup(pool, claims)) != 0 ||
	    (s = jwt_encode_str(j)) == NULL)
		fail_msg("libjwt could not build a token from %s", claims);
	copy = pool_strdup(pool, s);
	free(s);
	jwt_free(j);
	return copy;
}

static void
expect_token_ok(const char *tok, time_t now, struct access_claims *c)
{
	struct access_claims	 mine;
	const char		*why = NULL;

	if (c == NULL)
		c = &mine;
	if (auth_verify_access(tok, now, c, &why) != E_OK)
		fail_msg("refused (%s): %s", why ? why : "?", tok);
}

/* Refused with E_UNAUTHORIZED, for a reason that contains reason. */
static void
expect_token_refused(const char *tok, time_t now, const char *reason)
{
	struct access_claims	 c;
	const char		*why = NULL;
	enum app_err		 err = auth_verify_access(tok, now, &c, &why);

	if (err != E_UNAUTHORIZED)
		fail_msg("%s (error %d), wanted refused for \"%s\": %.200s",
		    err == E_OK ? "accepted" : "wrong error", (int)err, reason, tok);
	assert_non_null(why);
	if (reason != NULL && strstr(why, reason) == NULL)
		fail_msg("refused for \"%s\", wanted \"%s\"", why, reason);
}

static void
test_access_token_signed_here_verifies_with_its_claims(void **state)
{
	struct mpool		*pool = *state;
	struct token_user	 guest = {
		.id = "123e4567-e89b-12d3-a456-426614174000",
		.username = "guest-abc", .email = NULL, .role = "guest",
		.ver = 0, .is_anonymous = 1,
	};
	struct access_claims	 c;
	char			*tok = sign_at(pool, &alice, T0), *tok2;

	expect_token_ok(tok, T0, &c);
	assert_string_equal(c.sub, ALICE_ID);
	assert_string_equal(c.username, "alice");
	assert_string_equal(c.role, "user");
	assert_int_equal(c.iat, (long)T0);
	assert_int_equal(c.exp, (long)T0 + 900);
	assert_int_equal(c.anon, 0);
	assert_int_equal(c.ver, 3);
	assert_true(strlen(c.jti) >= 16);
	expect_token_ok(tok, T0 + 899, NULL);
	/* Each token has its own id (logout ends one, not its siblings). */
	tok2 = sign_at(pool, &alice, T0);
	{
		struct access_claims	 c2;

		expect_token_ok(tok2, T0, &c2);
		assert_string_not_equal(c.jti, c2.jti);
	}
	expect_token_ok(sign_at(pool, &guest, T0), T0, &c);
	assert_int_equal(c.anon, 1);
	assert_string_equal(c.role, "guest");
	/* The header names the algorithm and the key by id. */
	assert_non_null(strstr(seg_text(pool, tok_seg(pool, tok, 0)),
	    "\"alg\":\"HS256\""));
}

static void
test_access_token_with_alg_none_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok = sign_at(pool, &alice, T0);
	char		*kid = tok_kid(pool, tok), *payload = tok_seg(pool, tok, 1);
	char		*sig = tok_seg(pool, tok, 2);
	static const char *const algs[] = { "none", "None", "NONE", "nOnE", "" };
	size_t		 i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		char	*h = pool_printf(pool,
			    "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
			    algs[i], kid);

		/* Unsigned, as the none algorithm has it... */
		expect_token_refused(forge(pool, h, payload, NULL), T0, "algorithm");
		/* ...or with the real token's signature left on. */
		expect_token_refused(pool_printf(pool, "%s.%s.%s", b64s(pool, h),
		    payload, sig), T0, "algorithm");
	}
	/* No alg at all, or not a string. */
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"typ\":\"JWT\",\"kid\":\"%s\"}", kid), payload, secret_a), T0,
	    "algorithm");
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"alg\":null,\"kid\":\"%s\"}", kid), payload, secret_a), T0,
	    "algorithm");
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"alg\":[\"HS256\"],\"kid\":\"%s\"}", kid), payload, secret_a), T0,
	    "algorithm");
}

static void
test_access_token_signed_with_another_secret_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*good = sign_at(pool, &alice, T0), *evil;

	use_secrets(secret_b, NULL);
	evil = sign_at(pool, &alice, T0);
	use_secrets(secret_a, NULL);
	expect_token_refused(evil, T0, "unknown key");
	/* The same, claiming our key id: the signature gives it away. */
	expect_token_refused(forge(pool, seg_text(pool, tok_seg(pool, good, 0)),
	    tok_seg(pool, evil, 1), secret_b), T0, "signature");
	/* Sanity: forge() with our secret makes a token we accept. */
	expect_token_ok(forge(pool, seg_text(pool, tok_seg(pool, good, 0)),
	    tok_seg(pool, evil, 1), secret_a), T0, NULL);
}

static void
test_access_token_with_tampered_payload_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok = sign_at(pool, &alice, T0);
	char		*bad = pool_strdup(pool, tok), *p, *claims;
	size_t		 plen;

	/* One character in the middle of the payload. */
	p = strchr(bad, '.') + 1;
	plen = (size_t)(strchr(p, '.') - p);
	p[plen / 2] = p[plen / 2] == 'A' ? 'B' : 'A';
	expect_token_refused(bad, T0, NULL);
	/* One character of the signature. */
	bad = pool_strdup(pool, tok);
	p = strrchr(bad, '.') + 1;
	p[3] = p[3] == 'A' ? 'B' : 'A';
	expect_token_refused(bad, T0, "signature");
	/* Promoted to admin, old signature kept. */
	claims = seg_text(pool, tok_seg(pool, tok, 1));
	p = strstr(claims, "\"role\":\"user\"");
	assert_non_null(p);
	claims = pool_printf(pool, "%.*s\"role\":\"admin\"%s", (int)(p - claims),
	    claims, p + strlen("\"role\":\"user\""));
	expect_token_refused(pool_printf(pool, "%s.%s.%s", tok_seg(pool, tok, 0),
	    b64s(pool, claims), tok_seg(pool, tok, 2)), T0, "signature");
	/* Signature dropped. */
	expect_token_refused(pool_printf(pool, "%s.%s.", tok_seg(pool, tok, 0),
	    tok_seg(pool, tok, 1)), T0, "signature");
	expect_token_refused(pool_printf(pool, "%s.%s", tok_seg(pool, tok, 0),
	    tok_seg(pool, tok, 1)), T0, NULL);
}

static void
test_access_token_expired_is_refused(void **state)
{
	char	*tok = sign_at(*state, &alice, T0);

	expect_token_ok(tok, T0 + 899, NULL);
	expect_token_refused(tok, T0 + 900, "expired");
	expect_token_refused(tok, T0 + 901, "expired");
	expect_token_refused(tok, T0 + 86400 * 365, "expired");
}

static void
test_access_token_not_yet_valid_is_refused(void **state)
{
	struct mpool	*pool = *state;

	expect_token_refused(sign_at(pool, &alice, T0 + 3600), T0, "not valid yet");
	expect_token_refused(sign_at(pool, &alice, T0 + 61), T0, "not valid yet");
	/* A minute of clock skew between workers is tolerated. */
	expect_token_ok(sign_at(pool, &alice, T0 + 60), T0, NULL);
	/* nbf in the future, and lifetimes over a day, count as not valid. */
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a,
	    tok_kid(pool, sign_at(pool, &alice, T0)), claims_json(pool, "access",
	    "djamms", "djamms-api", (long)T0, (long)T0 + 900,
	    pool_printf(pool, "\"nbf\":%ld", (long)T0 + 3600))), T0, "not valid yet");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a,
	    tok_kid(pool, sign_at(pool, &alice, T0)), claims_json(pool, "access",
	    "djamms", "djamms-api", (long)T0, (long)T0 + 86401, "")), T0,
	    "not valid yet");
}

static void
test_access_token_with_wrong_issuer_or_audience_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok;

	cfg.jwt_issuer = "evil";
	tok = sign_at(pool, &alice, T0);
	cfg.jwt_issuer = "djamms";
	expect_token_refused(tok, T0, "issuer");

	cfg.jwt_audience = "some-other-api";
	tok = sign_at(pool, &alice, T0);
	cfg.jwt_audience = "djamms-api";
	expect_token_refused(tok, T0, "audience");

	/* Near misses: case, prefixes, an array audience. */
	cfg.jwt_issuer = "Djamms";
	tok = sign_at(pool, &alice, T0);
	cfg.jwt_issuer = "djamms";
	expect_token_refused(tok, T0, "issuer");
	cfg.jwt_audience = "djamms-api-v2";
	tok = sign_at(pool, &alice, T0);
	cfg.jwt_audience = "djamms-api";
	expect_token_refused(tok, T0, "audience");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a,
	    tok_kid(pool, tok), pool_printf(pool, "{\"sub\":\"" ALICE_ID "\","
	    "\"username\":\"alice\",\"role\":\"user\",\"iat\":%ld,\"exp\":%ld,"
	    "\"iss\":\"djamms\",\"aud\":[\"djamms-api\"],"
	    "\"jti\":\"QUJDREVGR0hJSktMTU5PUFFS\",\"typ\":\"access\"}",
	    (long)T0, (long)T0 + 900)), T0, "audience");
}

static void
test_access_token_with_another_algorithm_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok = sign_at(pool, &alice, T0);
	char		*kid = tok_kid(pool, tok);
	char		*claims = claims_json(pool, "access", "djamms", "djamms-api",
			    (long)T0, (long)T0 + 900, "");

	/* Sanity: the same claims, HS256, our key: accepted. */
	expect_token_ok(jwt_build(pool, JWT_ALG_HS256, secret_a, kid, claims),
	    T0, NULL);
	expect_token_refused(jwt_build(pool, JWT_ALG_HS512, secret_a, kid, claims),
	    T0, "algorithm");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS384, secret_a, kid, claims),
	    T0, "algorithm");
	/* RS256 with an HMAC made from the secret (algorithm confusion). */
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid),
	    tok_seg(pool, tok, 1), secret_a), T0, "algorithm");
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"alg\":\"hs256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid),
	    tok_seg(pool, tok, 1), secret_a), T0, "algorithm");
	expect_token_refused(forge(pool, pool_printf(pool,
	    "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid),
	    tok_seg(pool, tok, 1), secret_a), T0, "algorithm");
}

static void
test_access_token_without_a_known_kid_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok = sign_at(pool, &alice, T0);
	char		*claims = claims_json(pool, "access", "djamms", "djamms-api",
			    (long)T0, (long)T0 + 900, "");

	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, NULL,
	    claims), T0, "no key id");
	expect_token_refused(forge(pool, "{\"alg\":\"HS256\",\"typ\":\"JWT\","
	    "\"kid\":12345}", tok_seg(pool, tok, 1), secret_a), T0, "no key id");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a,
	    "0000000000000000", claims), T0, "unknown key");
	/* No previous key is configured: an empty kid must not match it. */
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, "", claims),
	    T0, "unknown key");
	/* A prefix of the real kid is not the kid. */
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a,
	    pool_strndup(pool, tok_kid(pool, tok), 15), claims), T0,
	    "unknown key");
}

static void
test_access_token_longer_than_4096_bytes_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*kid = tok_kid(pool, sign_at(pool, &alice, T0));
	char		*pad = pool_alloc(pool, 3601), *tok, *junk;

	memset(pad, 'x', 3600);
	pad[3600] = '\0';
	/* Properly signed, good claims, only too long. */
	tok = jwt_build(pool, JWT_ALG_HS256, secret_a, kid, claims_json(pool,
	    "access", "djamms", "djamms-api", (long)T0, (long)T0 + 900,
	    pool_printf(pool, "\"pad\":\"%s\"", pad)));
	assert_true(strlen(tok) > 4096);
	expect_token_refused(tok, T0, "too long");
	/* Sanity: with a shorter pad the same token is accepted. */
	pad[2000] = '\0';
	expect_token_ok(jwt_build(pool, JWT_ALG_HS256, secret_a, kid,
	    claims_json(pool, "access", "djamms", "djamms-api", (long)T0,
	    (long)T0 + 900, pool_printf(pool, "\"pad\":\"%s\"", pad))), T0, NULL);
	/* 5000 bytes of junk. */
	junk = pool_alloc(pool, 5001);
	memset(junk, 'a', 5000);
	junk[5000] = '\0';
	junk[100] = junk[200] = '.';
	expect_token_refused(junk, T0, "too long");
}

static void
test_access_token_of_another_type_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*kid = tok_kid(pool, sign_at(pool, &alice, T0));

	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, kid,
	    claims_json(pool, "refresh", "djamms", "djamms-api", (long)T0,
	    (long)T0 + 900, "")), T0, "not an access token");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, kid,
	    claims_json(pool, NULL, "djamms", "djamms-api", (long)T0,
	    (long)T0 + 900, "")), T0, "not an access token");
	expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, kid,
	    claims_json(pool, "Access", "djamms", "djamms-api", (long)T0,
	    (long)T0 + 900, "")), T0, "not an access token");
}

static void
test_access_token_with_bad_claims_is_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*kid = tok_kid(pool, sign_at(pool, &alice, T0));
	static const struct { const char *from, *to; } subst[] = {
		{ "\"sub\":\"" ALICE_ID "\"", "\"sub\":\"alice\"" },
		{ "\"sub\":\"" ALICE_ID "\"", "\"sub\":\"\"" },
		{ "\"role\":\"user\"", "\"role\":\"root\"" },
		{ "\"role\":\"user\"", "\"role\":\"\"" },
		{ "\"username\":\"alice\"", "\"username\":\"\"" },
		{ "\"jti\":\"QUJDREVGR0hJSktMTU5PUFFS\"", "\"jti\":\"short\"" },
		{ "\"iat\":", "\"iat_\":" },
		{ "\"exp\":", "\"exp_\":" },
		{ "\"ver\":3", "\"ver_\":3" },
		{ "\"ver\":3", "\"ver\":-1" },
	};
	char		*base = claims_json(pool, "access", "djamms", "djamms-api",
			    (long)T0, (long)T0 + 900, "");
	size_t		 i;

	expect_token_ok(jwt_build(pool, JWT_ALG_HS256, secret_a, kid, base),
	    T0, NULL);
	for (i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
		char	*p = strstr(base, subst[i].from), *c;

		assert_non_null(p);
		c = pool_printf(pool, "%.*s%s%s", (int)(p - base), base,
		    subst[i].to, p + strlen(subst[i].from));
		expect_token_refused(jwt_build(pool, JWT_ALG_HS256, secret_a, kid,
		    c), T0, NULL);
	}
	/* exp as a string (and, for contrast, as a number: accepted). */
	for (i = 0; i < 2; i++) {
		char	*c = pool_printf(pool, "{\"sub\":\"" ALICE_ID "\","
			    "\"username\":\"alice\",\"role\":\"user\",\"iat\":%ld,"
			    "\"exp\":%s%ld%s,\"iss\":\"djamms\",\"aud\":\"djamms-api\","
			    "\"jti\":\"QUJDREVGR0hJSktMTU5PUFFS\",\"typ\":\"access\","
			    "\"ver\":0}", (long)T0, i ? "" : "\"", (long)T0 + 900,
			    i ? "" : "\"");
		char	*tok = jwt_build(pool, JWT_ALG_HS256, secret_a, kid, c);

		if (i)
			expect_token_ok(tok, T0, NULL);
		else
			expect_token_refused(tok, T0, NULL);
	}
}

static void
test_malformed_tokens_are_refused(void **state)
{
	struct mpool	*pool = *state;
	char		*tok = sign_at(pool, &alice, T0);
	static const char *const bad[] = {
		"", ".", "..", "...", "abc", "a.b", "a.b.c", "eyJ.eyJ.sig",
		"Bearer x.y.z", " ", "\xff\xfe.\xff.\xff",
	};
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_token_refused(bad[i], T0, NULL);
	/* A header that is JSON but not an object, or not JSON. */
	expect_token_refused(pool_printf(pool, "%s.%s.%s", b64s(pool, "[1,2]"),
	    tok_seg(pool, tok, 1), tok_seg(pool, tok, 2)), T0, NULL);
	expect_token_refused(pool_printf(pool, "%s.%s.%s", b64s(pool, "{\"alg\""),
	    tok_seg(pool, tok, 1), tok_seg(pool, tok, 2)), T0, NULL);
	/* Extra segments, whitespace around. */
	expect_token_refused(pool_printf(pool, "%s.x", tok), T0, NULL);
	expect_token_refused(pool_printf(pool, " %s", tok), T0, NULL);
	expect_token_refused(pool_printf(pool, "%s\n", tok), T0, NULL);
}

static void
test_access_token_survives_key_rotation_only_by_the_previous_key(void **state)
{
	struct mpool	*pool = *state;
	char		*old = sign_at(pool, &alice, T0), *new, *stranger;

	/* Rotate: a is now the previous key, b the current one. */
	use_secrets(secret_b, secret_a);
	expect_token_ok(old, T0, NULL);
	new = sign_at(pool, &alice, T0);
	expect_token_ok(new, T0, NULL);
	assert_string_not_equal(tok_kid(pool, old), tok_kid(pool, new));
	/* A token by a key that is neither. */
	use_secrets(secret_c, NULL);
	stranger = sign_at(pool, &alice, T0);
	use_secrets(secret_b, secret_a);
	expect_token_refused(stranger, T0, "unknown key");
	/* The previous key's id with the current key's signature. */
	expect_token_refused(forge(pool, seg_text(pool, tok_seg(pool, old, 0)),
	    tok_seg(pool, old, 1), secret_b), T0, "signature");
	/* Old tokens still expire on time. */
	expect_token_refused(old, T0 + 900, "expired");
	/* Once the previous key is retired, its tokens end. */
	use_secrets(secret_b, NULL);
	expect_token_refused(old, T0, "unknown key");
	expect_token_ok(new, T0, NULL);
}

/*
 * The per-worker memo of verified tokens (auth_verify_cached) answers
 * for a token only as auth_verify_access would: never past exp, never
 * before iat, never for a token that differs from the one remembered.
 */
static void
test_verify_cache_never_outlives_the_checks(void **state)
{
	struct mpool		*pool = *state;
	struct access_claims	 c1, c2;
	const char		*why;
	char			*tok = sign_at(pool, &alice, T0), *bad, *early;

	assert_int_equal(auth_verify_cached(tok, T0, &c1, &why), E_OK);
	assert_int_equal(auth_verify_cached(tok, T0 + 10, &c2, &why), E_OK);
	assert_memory_equal(&c1, &c2, sizeof(c1));
	/* Remembered, yet expired on time. */
	why = NULL;
	assert_int_equal(auth_verify_cached(tok, T0 + 900, &c2, &why),
	    E_UNAUTHORIZED);
	assert_non_null(why);
	/* A one-character change is another token, verified afresh. */
	bad = pool_strdup(pool, tok);
	bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_verify_cached(bad, T0, &c2, &why), E_UNAUTHORIZED);
	/* Good in an hour (and remembered then) is still not good now. */
	early = sign_at(pool, &alice, T0 + 3600);
	assert_int_equal(auth_verify_cached(early, T0 + 3600, &c2, &why), E_OK);
	assert_int_equal(auth_verify_cached(early, T0, &c2, &why), E_UNAUTHORIZED);
	auth_cache_free();
}

static void
test_auth_init_refuses_short_or_missing_secrets(void **state)
{
	char	 short_secret[] = "thirty-one bytes of secret.....";
	int	 devnull = open("/dev/null", O_WRONLY), err = dup(2);
	int	 none, short_current, short_previous;

	assert_int_equal(strlen(short_secret), 31);
	assert_true(devnull >= 0 && err >= 0);
	fflush(stderr);
	dup2(devnull, 2);		/* the refusals are printed: hide them */
	cfg.jwt_secret = NULL;
	cfg.jwt_secret_len = 0;
	none = auth_init();
	cfg.jwt_secret = short_secret;
	cfg.jwt_secret_len = 31;
	short_current = auth_init();
	cfg.jwt_secret = secret_a;
	cfg.jwt_secret_len = strlen(secret_a);
	cfg.jwt_previous_secret = short_secret;
	cfg.jwt_previous_secret_len = 31;
	short_previous = auth_init();
	fflush(stderr);
	dup2(err, 2);
	close(err);
	close(devnull);
	assert_int_equal(none, -1);
	assert_int_equal(short_current, -1);
	assert_int_equal(short_previous, -1);
	use_secrets(secret_a, NULL);
	/* Exactly 32 bytes is enough. */
	cfg.jwt_secret_len = 32;
	assert_int_equal(auth_init(), 0);
	use_secrets(secret_a, NULL);
}

/* ---- handlers/user.c: ISO 8601 times ------------------------------- */

static void
test_iso8601_dates_are_utc_midnight_or_the_last_microsecond(void **state)
{
	long long	 us = 0;

	assert_int_equal(iso8601_to_us("1970-01-01", 0, &us), 0);
	assert_true(us == 0);
	assert_int_equal(iso8601_to_us("1970-01-01", 1, &us), 0);
	assert_true(us == 86400000000LL - 1);
	assert_int_equal(iso8601_to_us("2024-02-29", 0, &us), 0);
	assert_true(us == 1709164800LL * 1000000);
	assert_int_equal(iso8601_to_us("1969-12-31", 0, &us), 0);
	assert_true(us == -86400LL * 1000000);
	assert_int_equal(iso8601_to_us("2000-02-29", 0, &us), 0);
}

static void
test_iso8601_date_times_take_zones_and_fractions(void **state)
{
	long long	 us = 0;

	assert_int_equal(iso8601_to_us("2024-05-01T18:30:00Z", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	/* end_of_day only stretches a date alone. */
	assert_int_equal(iso8601_to_us("2024-05-01T18:30:00Z", 1, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	assert_int_equal(iso8601_to_us("2024-05-01T18:30", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	assert_int_equal(iso8601_to_us("2024-05-01 20:30:00+02:00", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	assert_int_equal(iso8601_to_us("2024-05-01t16:00:00-0230", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	assert_int_equal(iso8601_to_us("2024-05-01T19:30:00+01", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000);
	assert_int_equal(iso8601_to_us("2024-05-01T18:30:00.25Z", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000 + 250000);
	/* Past microseconds the digits are cut, not rounded. */
	assert_int_equal(iso8601_to_us("2024-05-01T18:30:00.123456789Z", 0, &us), 0);
	assert_true(us == 1714588200LL * 1000000 + 123456);
}

static void
test_iso8601_refuses_what_is_not_a_real_time(void **state)
{
	static const char *const bad[] = { "", "2024", "2024-5-1", "2024-05-1",
	    "2024/05/01", "2024-13-01", "2024-00-10", "2024-04-31", "2023-02-29",
	    "1900-02-29", "0000-01-01", "2024-05-01T", "2024-05-01T24:00",
	    "2024-05-01T18:60", "2024-05-01T18:30:60", "2024-05-01T18:30:00.",
	    "2024-05-01T18:30:00.1234567890Z", "2024-05-01T18:30:00+24:00",
	    "2024-05-01T18:30:00+02:", "2024-05-01T18:30:00+02:60",
	    "2024-05-01T18:30:00ZZ", "2024-05-01Z", "2024-05-01x",
	    "2024-05-01T18:30:00 ", " 2024-05-01", "2024-05-01T1:30", "yesterday",
	    "1714588200", NULL };
	long long	 us = 42;
	int		 i;

	for (i = 0; bad[i] != NULL; i++)
		if (iso8601_to_us(bad[i], 0, &us) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(iso8601_to_us(NULL, 0, &us), -1);
	assert_true(us == 42);
}

/* ---- M3U text, content types, UTF-8 ----------------------------------- */

static void
test_m3u_parse_reads_entries_with_their_extinf(void **state)
{
	static const char	 text[] = "\xef\xbb\xbf#EXTM3U\r\n"
				    "#PLAYLIST: Road trip \r\n"
				    "#EXTINF:241,Nina Simone - Sinnerman\r\n"
				    "/srv/music/Nina Simone/Sinnerman.flac\r\n"
				    "\r\n"
				    "# a comment\r\n"
				    "audio/2026/12/a/b/x.mp3\r\n"
				    "#EXTINF:-1 tvg-name=\"a,b\",Solo title\n"
				    "  http://example.org/x.mp3  ";
	struct m3u_file		 f;

	m3u_parse(*state, text, sizeof(text) - 1, &f);
	assert_string_equal(f.name, "Road trip");
	assert_int_equal(f.n, 3);
	assert_int_equal(f.entries[0].line, 4);
	assert_string_equal(f.entries[0].location, "/srv/music/Nina Simone/Sinnerman.flac");
	assert_string_equal(f.entries[0].extinf, "Nina Simone - Sinnerman");
	assert_string_equal(f.entries[0].artist, "Nina Simone");
	assert_string_equal(f.entries[0].title, "Sinnerman");
	/* An #EXTINF describes the next entry only. */
	assert_int_equal(f.entries[1].line, 7);
	assert_null(f.entries[1].extinf);
	assert_null(f.entries[1].artist);
	/* A comma inside a quoted attribute is not the separator. */
	assert_int_equal(f.entries[2].line, 9);
	assert_string_equal(f.entries[2].location, "http://example.org/x.mp3");
	assert_string_equal(f.entries[2].extinf, "Solo title");
	assert_null(f.entries[2].artist);
	assert_null(f.entries[2].title);
}

static void
test_m3u_parse_of_nothing_has_no_entries(void **state)
{
	struct m3u_file	 f;

	m3u_parse(*state, "", 0, &f);
	assert_int_equal(f.n, 0);
	assert_null(f.name);
	m3u_parse(*state, "#EXTM3U\n\n", 9, &f);
	assert_int_equal(f.n, 0);
}

/* The keys a location is matched by: path, last two components, stream id. */
static void
test_m3u_location_keys(void **state)
{
	static const struct {
		const char	*location, *path, *tail, *stream_id;
	} cases[] = {
		{ "/srv/music/Artist/Song.mp3", "/srv/music/Artist/Song.mp3",
		    "Artist/Song.mp3", "" },
		{ "../Music/Artist/Song.mp3", "../Music/Artist/Song.mp3",
		    "Artist/Song.mp3", "" },
		{ "C:\\Music\\Artist\\Song.mp3", "C:/Music/Artist/Song.mp3",
		    "Artist/Song.mp3", "" },
		{ "file:///home/u/My%20Music/A/B%C3%A9.flac",
		    "/home/u/My Music/A/B\xc3\xa9.flac", "A/B\xc3\xa9.flac", "" },
		{ "file://host/share/A/B.mp3", "/share/A/B.mp3", "A/B.mp3", "" },
		{ "/api/music/tracks/6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    "/api/music/tracks/6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    "6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    "6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f" },
		{ "https://dj.example.org/api/music/tracks/"
		    "6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream?download=1",
		    "/api/music/tracks/6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    "6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    "6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f" },
		/* not a UUID, and not the whole path */
		{ "/api/music/tracks/6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4eZZ/stream",
		    NULL, NULL, "" },
		{ "/x/api/music/tracks/6c2f3a4e-1d2b-4c5d-8e9f-0a1b2c3d4e5f/stream",
		    NULL, NULL, "" },
		/* only one component, or dots: no tail */
		{ "Song.mp3", "Song.mp3", NULL, "" },
		{ "/Song.mp3", "/Song.mp3", NULL, "" },
		{ "../Song.mp3", "../Song.mp3", NULL, "" },
		{ "Music/..", "Music/..", NULL, "" },
		{ "Music//Song.mp3", "Music//Song.mp3", NULL, "" },
		{ "../../etc/passwd", "../../etc/passwd", "etc/passwd", "" },
		/* an encoded NUL or bad UTF-8 leaves the path as written */
		{ "file:///a/b%00c", "/a/b%00c", "a/b%00c", "" },
		{ "file:///a/b%ffc", "/a/b%ffc", "a/b%ffc", "" },
	};
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct m3u_file	 f;

		m3u_parse(*state, cases[i].location, strlen(cases[i].location), &f);
		assert_int_equal(f.n, 1);
		if (cases[i].path != NULL)
			assert_string_equal(f.entries[0].path, cases[i].path);
		if (cases[i].tail != NULL)
			assert_string_equal(f.entries[0].tail, cases[i].tail);
		else if (cases[i].path != NULL)
			assert_null(f.entries[0].tail);
		assert_string_equal(f.entries[0].stream_id, cases[i].stream_id);
	}
}

static void
test_m3u_playlist_name_is_cut_between_characters(void **state)
{
	char		 text[512];
	struct m3u_file	 f;
	size_t		 o = 0;
	int		 i;

	o += (size_t)sprintf(text, "#PLAYLIST:a");
	for (i = 0; i < 200; i++)		/* 1 + 400 bytes of "é" */
		o += (size_t)sprintf(text + o, "\xc3\xa9");
	m3u_parse(*state, text, o, &f);
	assert_int_equal(strlen(f.name), 255);	/* 'a' and 127 whole "é" */
	assert_true(utf8_text_valid(f.name, strlen(f.name)));
	/* A blank name is no name: the next #PLAYLIST: counts. */
	m3u_parse(*state, "#PLAYLIST: \t \n#PLAYLIST:second\n#PLAYLIST:third",
	    strlen("#PLAYLIST: \t \n#PLAYLIST:second\n#PLAYLIST:third"), &f);
	assert_string_equal(f.name, "second");
}

static void
test_content_type_is_matches_type_and_charset(void **state)
{
	assert_true(content_type_is("audio/x-mpegurl", "audio/x-mpegurl"));
	assert_true(content_type_is("Audio/X-MpegURL; charset=UTF-8", "audio/x-mpegurl"));
	assert_true(content_type_is("text/plain;charset=\"utf8\"", "text/plain"));
	assert_false(content_type_is("text/plain; charset=iso-8859-1", "text/plain"));
	assert_false(content_type_is("text/plainer", "text/plain"));
	assert_false(content_type_is(NULL, "text/plain"));
	assert_false(content_type_is("application/json", "text/plain"));
}

static void
test_utf8_text_valid_refuses_nul_and_bad_sequences(void **state)
{
	assert_true(utf8_text_valid("Beyonc\xc3\xa9", 8));
	assert_true(utf8_text_valid("", 0));
	assert_false(utf8_text_valid("a\0b", 3));
	assert_false(utf8_text_valid("\xc3", 1));		/* cut short */
	assert_false(utf8_text_valid("\xc0\xaf", 2));		/* overlong */
	assert_false(utf8_text_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(utf8_text_valid("caf\xe9", 4));		/* Latin-1 */
}

/* ---- main ----------------------------------------------------------- */

#define T(f)	cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
#define TT(f)	cmocka_unit_test_setup_teardown(f, pool_setup_test_routes, \
		    pool_teardown)
#define TA(f)	cmocka_unit_test_setup_teardown(f, auth_setup, auth_teardown)
#define TR(f)	cmocka_unit_test_setup_teardown(f, revoke_setup, revoke_teardown)

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		/* url_decode */
		T(test_str_hash_is_fnv1a_64),
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
		T(test_perm_word_names_what_a_route_needs),
		T(test_openapi_permissions_match_the_route_table),
		T(test_openapi_roles_match_role_perms),
		/* auth.c: the permission matrix */
		T(test_role_perms_guest_is_read_only),
		T(test_role_perms_user_cannot_write_schedules_nor_administer),
		T(test_role_perms_moderator_can_write_schedules),
		T(test_role_perms_admin_has_every_permission),
		T(test_roles_are_nested_and_never_grant_authenticated),
		T(test_role_perms_of_an_unknown_role_is_nothing),
		T(test_perm_parse_and_perm_name_round_trip),
		T(test_perm_name_and_parse_refuse_what_is_not_one_permission),
		T(test_perms_json_lists_names_in_bit_order),
		/* auth.c: encodings */
		T(test_b64url_round_trips_every_length),
		T(test_b64url_known_vectors),
		T(test_b64url_decode_rejects_bad_characters),
		T(test_b64url_decode_rejects_impossible_lengths_and_small_buffers),
		T(test_uuid_valid_accepts_the_canonical_form_only),
		/* auth.c: access tokens */
		TA(test_access_token_signed_here_verifies_with_its_claims),
		TA(test_access_token_with_alg_none_is_refused),
		TA(test_access_token_signed_with_another_secret_is_refused),
		TA(test_access_token_with_tampered_payload_is_refused),
		TA(test_access_token_expired_is_refused),
		TA(test_access_token_not_yet_valid_is_refused),
		TA(test_access_token_with_wrong_issuer_or_audience_is_refused),
		TA(test_access_token_with_another_algorithm_is_refused),
		TA(test_access_token_without_a_known_kid_is_refused),
		TA(test_access_token_longer_than_4096_bytes_is_refused),
		TA(test_access_token_of_another_type_is_refused),
		TA(test_access_token_with_bad_claims_is_refused),
		TA(test_malformed_tokens_are_refused),
		TA(test_access_token_survives_key_rotation_only_by_the_previous_key),
		TA(test_verify_cache_never_outlives_the_checks),
		TA(test_auth_init_refuses_short_or_missing_secrets),
		/* revoke.c */
		TR(test_revoke_is_unknown_until_a_watcher_is_live),
		TR(test_revoke_version_ends_older_tokens_of_that_user_only),
		TR(test_revoke_jti_ends_one_token_until_it_expires),
		TR(test_revoke_profile_generation_moves_on_each_change),
		TR(test_revoke_likes_and_history_generations_move_apart),
		TR(test_revoke_apply_refuses_what_it_does_not_understand),
		TR(test_revoke_full_table_is_not_trusted),
		TR(test_revoke_expired_entries_are_purged),
		TR(test_revoke_library_version_moves_on_and_needs_a_live_watcher),
		T(test_likes_find_tracks_finds_each_flat_track_object),
		T(test_history_array_quotes_every_element),
		T(test_spell_distance_counts_a_swap_as_one_edit),
		T(test_spell_distance_bits_matches_the_table),
		T(test_spell_split_ascii_cuts_as_the_database),
		cmocka_unit_test_teardown(test_spell_lookup_matches_a_full_scan, spell_teardown),
		cmocka_unit_test_teardown(test_spell_lookup_finds_the_closest_then_the_most_used,
		    spell_teardown),
		cmocka_unit_test_teardown(test_pagecache_hit_needs_the_same_key_and_version,
		    pagecache_teardown),
		cmocka_unit_test_teardown(test_pagecache_page_expires, pagecache_teardown),
		cmocka_unit_test_teardown(test_pagecache_keys_sharing_a_slot_never_mix,
		    pagecache_teardown),
		cmocka_unit_test_teardown(test_pagecache_does_not_keep_huge_pages,
		    pagecache_teardown),
		/* handlers/user.c */
		T(test_iso8601_dates_are_utc_midnight_or_the_last_microsecond),
		T(test_iso8601_date_times_take_zones_and_fractions),
		T(test_iso8601_refuses_what_is_not_a_real_time),
		/* M3U text, content types, UTF-8 */
		T(test_m3u_parse_reads_entries_with_their_extinf),
		T(test_m3u_parse_of_nothing_has_no_entries),
		T(test_m3u_location_keys),
		T(test_m3u_playlist_name_is_cut_between_characters),
		T(test_content_type_is_matches_type_and_charset),
		T(test_utf8_text_valid_refuses_nul_and_bad_sequences),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
