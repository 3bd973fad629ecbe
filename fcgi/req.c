/*
 * fcgi/req.c: what a request brings in: FastCGI params, the path and its
 * :params, the query string, headers and the JSON body. Everything is
 * copied into or borrowed for the lifetime of the request pool only.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>
#include <json-c/json.h>

#include "djamms.h"

void
req_init(struct req *r, struct mpool *pool, struct FCGX_Request *fr, char **env)
{
	const char	*uri, *q;

	memset(r, 0, sizeof(*r));
	r->pool = pool;
	r->fr = fr;
	r->env = env;
	r->started_us = now_us();
	r->method_str = req_env(r, "REQUEST_METHOD");
	if (r->method_str == NULL)
		r->method_str = "GET";
	r->method = method_parse(r->method_str);
	r->request_id = req_env(r, "REQUEST_ID");
	uri = req_env(r, "REQUEST_URI");
	if (uri == NULL || *uri == '\0')
		uri = "/";
	if ((q = strchr(uri, '?')) != NULL) {
		r->path = pool_strndup(pool, uri, (size_t)(q - uri));
		if (query_parse(pool, q + 1, &r->query, &r->nquery) != 0)
			r->query_bad = 1;
	} else
		r->path = uri;
}

const char *
req_env(struct req *r, const char *name)
{
	size_t	 n = strlen(name);
	char	**e;

	if (r->env == NULL)
		return NULL;
	for (e = r->env; *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

const char *
req_param(struct req *r, const char *name)
{
	int	 i;

	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->params[i].key, name) == 0)
			return r->params[i].val;
	return NULL;
}

const char *
req_query(struct req *r, const char *name)
{
	int	 i;

	for (i = r->nquery - 1; i >= 0; i--)
		if (strcmp(r->query[i].key, name) == 0)
			return r->query[i].val;
	return NULL;
}

const char *
req_header(struct req *r, const char *name)
{
	char	 key[128];
	size_t	 i, n = strlen(name);

	if (strcasecmp(name, "Content-Type") == 0)
		return req_env(r, "CONTENT_TYPE");
	if (strcasecmp(name, "Content-Length") == 0)
		return req_env(r, "CONTENT_LENGTH");
	if (n + 6 > sizeof(key))
		return NULL;
	memcpy(key, "HTTP_", 5);
	for (i = 0; i < n; i++)
		key[5 + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	key[5 + n] = '\0';
	return req_env(r, key);
}

enum app_err
req_fail(struct req *r, enum app_err err, const char *message,
    struct json_object *details)
{
	r->err_message = message;
	r->err_details = details != NULL ? pool_json(r->pool, details) : NULL;
	return err;
}

int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint64_t
str_hash(const char *s)
{
	uint64_t	 h = 14695981039346656037ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

char *
url_decode(struct mpool *pool, const char *s, size_t len, int plus_is_space)
{
	char	*out = pool_alloc(pool, len + 1), *o = out;
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int	 hi, lo;

			if (i + 2 >= len)
				return NULL;
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return NULL;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '+' && plus_is_space)
			*o++ = ' ';
		else if (s[i] == '\0')
			return NULL;
		else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

int
query_parse(struct mpool *pool, const char *qs, struct kv **out, int *n)
{
	const char	*p, *amp, *eq;
	int		 count = 1, i = 0;

	*out = NULL;
	*n = 0;
	if (qs == NULL || *qs == '\0')
		return 0;
	for (p = qs; *p != '\0'; p++)
		if (*p == '&')
			count++;
	if (count > 256)
		return -1;	/* a cap on work, not on a real client */
	*out = pool_calloc(pool, (size_t)count, sizeof(struct kv));
	for (p = qs; ; p = amp + 1) {
		size_t	 seglen;

		amp = strchr(p, '&');
		seglen = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (seglen > 0) {
			eq = memchr(p, '=', seglen);
			if (eq == NULL) {
				(*out)[i].key = url_decode(pool, p, seglen, 1);
				(*out)[i].val = "";
			} else {
				(*out)[i].key = url_decode(pool, p,
				    (size_t)(eq - p), 1);
				(*out)[i].val = url_decode(pool, eq + 1,
				    seglen - (size_t)(eq - p) - 1, 1);
			}
			if ((*out)[i].key == NULL || (*out)[i].val == NULL)
				return -1;
			i++;
		}
		if (amp == NULL)
			break;
	}
	*n = i;
	return 0;
}

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no UTF-16 surrogates,
 * nothing above U+10FFFF. Returns the length of the sequence at p, or 0.
 */
static size_t
utf8_seq_len(const unsigned char *p, size_t left)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return left >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if (left < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xe0 && p[1] < 0xa0)
			return 0;	/* overlong */
		if (p[0] == 0xed && p[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (left < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xf0 && p[1] < 0x90)
			return 0;	/* overlong */
		if (p[0] == 0xf4 && p[1] >= 0x90)
			return 0;	/* above U+10FFFF */
		return 4;
	}
	return 0;
}

int
json_prescan(const char *buf, size_t len, const char **why)
{
	const unsigned char	*p = (const unsigned char *)buf;
	size_t			 i = 0;
	int			 in_string = 0;

	/*
	 * json-c's strict mode still takes single-quoted keys, NaN and
	 * Infinity, raw control characters in strings and structurally
	 * valid but overlong UTF-8. Outside strings JSON needs only a few
	 * characters; inside them, only escaped controls and real UTF-8.
	 */
	while (i < len) {
		unsigned char	 c = p[i];

		if (in_string) {
			if (c == '"')
				in_string = 0;
			else if (c == '\\') {
				if (i + 1 >= len)
					break;
				i++;
			} else if (c < 0x20) {
				*why = "a string contains a raw control character";
				return -1;
			} else if (c >= 0x80) {
				size_t	 n = utf8_seq_len(p + i, len - i);

				if (n == 0) {
					*why = "the body is not valid UTF-8";
					return -1;
				}
				i += n;
				continue;
			}
			i++;
			continue;
		}
		if (c == '"')
			in_string = 1;
		else if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		    c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
		    c == ':' || c == '-' || c == '+' || c == '.' ||
		    (c >= '0' && c <= '9') || c == 'e' || c == 'E' ||
		    strchr("truefalsn", c) != NULL) || c == '\0') {
			*why = c >= 0x80 ? "the body is not valid UTF-8" :
			    "the body is not a JSON document";
			return -1;
		}
		i++;
	}
	return 0;
}

enum app_err
json_parse_strict(const char *buf, size_t len, int max_depth,
    struct json_object **out, const char **why)
{
	struct json_tokener	*tok;
	struct json_object	*obj;
	enum json_tokener_error	 jerr;
	size_t			 end;

	*out = NULL;
	if (len > (size_t)0x7ffffffe) {
		*why = "body too large";
		return E_TOO_LARGE;
	}
	if (len == 0) {
		*why = "the body is empty; a JSON document was expected";
		return E_BAD_REQUEST;
	}
	if (memchr(buf, '\0', len) != NULL) {
		*why = "the body contains a NUL byte";
		return E_BAD_REQUEST;
	}
	if (json_prescan(buf, len, why) != 0)
		return E_BAD_REQUEST;
	/* json-c crashes with depth 0; config keeps it >= 2. */
	tok = json_tokener_new_ex(max_depth > 0 ? max_depth : 32);
	if (tok == NULL)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/*
		 * A bare number or literal only ends at a delimiter: feed
		 * one space, which ends it and adds nothing.
		 */
		obj = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		if (jerr != json_tokener_success)
			jerr = json_tokener_continue;	/* it was cut short */
		end = len;
	} else
		end = json_tokener_get_parse_end(tok);
	if (jerr != json_tokener_success) {	/* JSON null is a NULL obj */
		if (jerr == json_tokener_continue)
			*why = "the JSON document ends too early";
		else if (jerr == json_tokener_error_depth)
			*why = "the JSON document is nested too deeply";
		else if (jerr == json_tokener_error_parse_utf8_string)
			*why = "the body is not valid UTF-8";
		else
			*why = json_tokener_error_desc(jerr);
		json_object_put(obj);
		json_tokener_free(tok);
		return E_BAD_REQUEST;
	}
	json_tokener_free(tok);
	for (; end < len; end++) {
		if (!(buf[end] == ' ' || buf[end] == '\t' || buf[end] == '\n' ||
		    buf[end] == '\r')) {
			*why = "unexpected data after the JSON document";
			json_object_put(obj);
			return E_BAD_REQUEST;
		}
	}
	*out = obj;
	return E_OK;
}

/*
 * JSON's only encoding is UTF-8 (RFC 8259), and every text body we take
 * is UTF-8 too: a declared charset must say so.
 */
int
content_type_is(const char *ct, const char *type)
{
	size_t		 tlen = strlen(type);
	const char	*p;

	if (ct == NULL || strncasecmp(ct, type, tlen) != 0)
		return 0;
	p = ct + tlen;
	for (;;) {
		const char	*name, *val;
		size_t		 nlen, vlen;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 1;
		if (*p++ != ';')
			return 0;
		while (*p == ' ' || *p == '\t')
			p++;
		name = p;
		while (*p != '\0' && *p != '=' && *p != ';')
			p++;
		nlen = (size_t)(p - name);
		if (*p != '=')
			return 0;
		p++;
		if (*p == '"') {
			val = ++p;
			while (*p != '\0' && *p != '"')
				p++;
			if (*p != '"')
				return 0;
			vlen = (size_t)(p - val);
			p++;
		} else {
			val = p;
			while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t')
				p++;
			vlen = (size_t)(p - val);
		}
		if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
		    !((vlen == 5 && strncasecmp(val, "utf-8", 5) == 0) ||
		    (vlen == 4 && strncasecmp(val, "utf8", 4) == 0)))
			return 0;
	}
}

int
utf8_text_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	while (i < len) {
		if (p[i] == '\0' || (n = utf8_seq_len(p + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* Counts bytes itself: CONTENT_LENGTH is advice, never a bound. */
enum app_err
req_read_body_raw(struct req *r, char **buf, size_t *len)
{
	size_t		 cap = (size_t)cfg.body_max, used = 0, alloc;
	const char	*cl = req_env(r, "CONTENT_LENGTH");
	long		 declared = 0;
	char		*b;

	if (r->fr == NULL) {
		if (r->test_body_len > cap)
			return E_TOO_LARGE;
		*buf = pool_strndup(r->pool, r->test_body ? r->test_body : "",
		    r->test_body_len);
		*len = r->test_body_len;
		return E_OK;
	}
	if (cl != NULL && *cl != '\0' &&
	    config_parse_long(cl, 0, 0x7fffffffffffffffL, &declared) != 0)
		return E_BAD_REQUEST;
	if (declared > (long)cap)
		return E_TOO_LARGE;
	alloc = declared > 0 ? (size_t)declared + 1 : 4096;
	b = pool_alloc(r->pool, alloc + 1);
	for (;;) {
		int	 n;

		if (used == alloc) {
			char	*nb;

			if (alloc > cap)
				return E_TOO_LARGE;
			nb = pool_alloc(r->pool, alloc * 2 + 1);
			memcpy(nb, b, used);
			b = nb;
			alloc *= 2;
		}
		n = FCGX_GetStr(b + used, (int)(alloc - used), r->fr->in);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used > cap)
			return E_TOO_LARGE;
	}
	b[used] = '\0';
	*buf = b;
	*len = used;
	return E_OK;
}

enum app_err
req_json_body(struct req *r, struct json_object **out)
{
	char		*buf;
	size_t		 len;
	const char	*why = NULL;
	enum app_err	 err;

	*out = NULL;
	if (!content_type_is(req_env(r, "CONTENT_TYPE"), "application/json"))
		return req_fail(r, E_UNSUPPORTED,
		    "the body must be sent as Content-Type: application/json",
		    NULL);
	if ((err = req_read_body_raw(r, &buf, &len)) != E_OK) {
		if (err == E_TOO_LARGE)
			return req_fail(r, err, pool_printf(r->pool,
			    "the body is larger than %ld bytes", cfg.body_max),
			    NULL);
		return req_fail(r, err, "bad Content-Length", NULL);
	}
	err = json_parse_strict(buf, len, cfg.json_max_depth, out, &why);
	if (err != E_OK)
		return req_fail(r, err, why, NULL);
	pool_json(r->pool, *out);
	return E_OK;
}
