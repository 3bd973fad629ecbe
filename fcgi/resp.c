/*
 * fcgi/resp.c: the response. Handlers only fill r->status, headers and
 * body; resp_send() writes them in one go, so a handler that fails after
 * starting a response can still be answered with a clean error.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcgiapp.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "djamms.h"

static const struct {
	int		 status;
	const char	*code;
} app_errors[] = {
#define X(name, status, code)	{ status, code },
	APP_ERRORS(X)
#undef X
};

int
app_err_status(enum app_err e)
{
	return (unsigned)e < E__COUNT ? app_errors[e].status : 500;
}

const char *
app_err_code(enum app_err e)
{
	return (unsigned)e < E__COUNT ? app_errors[e].code : "internal";
}

const char *
app_err_default_message(enum app_err e)
{
	switch (e) {
	case E_BAD_REQUEST:	return "the request is malformed";
	case E_UNAUTHORIZED:	return "authentication is required";
	case E_FORBIDDEN:	return "you do not have permission for this";
	case E_NOT_FOUND:	return "no such resource";
	case E_NO_AUDIO:	return "this track has no audio file yet";
	case E_QUOTA:		return "this would exceed your storage quota";
	case E_METHOD:		return "this resource does not take that method";
	case E_CONFLICT:	return "the request conflicts with the current state";
	case E_GONE:		return "the resource is gone";
	case E_TOO_LARGE:	return "the request body is too large";
	case E_UNSUPPORTED:	return "unsupported media type";
	case E_INVALID:		return "the request failed validation";
	case E_TRANSCODE:	return "the audio could not be transcoded";
	case E_RATE_LIMITED:	return "too many requests";
	case E_UNAVAILABLE:	return "a service this request needs is unavailable";
	case E_OK:		return "ok";
	default:		return "internal error";
	}
}

static const char *
status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default:  return "Status";
	}
}

void
resp_header(struct req *r, const char *name, const char *val)
{
	struct hdr	*h = pool_alloc(r->pool, sizeof(*h)), **tail;

	h->name = name;
	h->val = val;
	h->next = NULL;
	for (tail = &r->headers; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = h;
}

/* RFC 5987 value-chars: attr-char stays, everything else is %XX. */
static char *
rfc5987(struct req *r, const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 n = strlen(s), i, o = 0;
	char			*out = pool_alloc(r->pool, 3 * n + 1);

	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (isalnum(c) || strchr("!#$&+-.^_`|~", c) != NULL)
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

void
resp_attachment(struct req *r, const char *name, const char *ext)
{
	char	 ascii[128];
	size_t	 i, o = 0;

	/* An ASCII fallback name, and the real one in RFC 5987 form. */
	for (i = 0; name[i] != '\0' && o + 1 < sizeof(ascii) - 8; i++) {
		unsigned char	 c = (unsigned char)name[i];

		ascii[o++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' &&
		    c != '/' && c != ';' ? (char)c : '_';
	}
	ascii[o] = '\0';
	resp_header(r, "Content-Disposition", pool_printf(r->pool,
	    "attachment; filename=\"%s%s\"; filename*=UTF-8''%s%s", ascii, ext,
	    rfc5987(r, name), ext));
}

enum app_err
resp_json(struct req *r, int status, struct json_object *obj)
{
	size_t	 len;

	pool_json(r->pool, obj);
	r->status = status;
	r->content_type = "application/json";
	r->body = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	r->body_len = len;
	return E_OK;
}

enum app_err
resp_json_text(struct req *r, int status, const char *json, size_t len)
{
	r->status = status;
	r->content_type = "application/json";
	r->body = json;
	r->body_len = len;
	return E_OK;
}

enum app_err
resp_json_list(struct req *r, int status, const char *key, struct pg_result *res,
    int col, int nrows, struct json_object *rest)
{
	size_t		 restlen, keylen = strlen(key), len, o;
	const char	*rs;
	char		*body;
	int		 i;

	pool_json(r->pool, rest);
	rs = json_object_to_json_string_length(rest,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &restlen);
	/* {"key":[doc,doc],<rest without its braces>} */
	len = keylen + 7 + restlen;
	for (i = 0; i < nrows; i++)
		len += (size_t)PQgetlength(res, i, col) + 1;
	body = pool_alloc(r->pool, len + 1);
	o = (size_t)sprintf(body, "{\"%s\":[", key);
	for (i = 0; i < nrows; i++) {
		size_t	 n = (size_t)PQgetlength(res, i, col);

		if (i > 0)
			body[o++] = ',';
		memcpy(body + o, PQgetvalue(res, i, col), n);
		o += n;
	}
	body[o++] = ']';
	if (restlen > 2) {		/* rest is "{...}": its members follow */
		body[o++] = ',';
		memcpy(body + o, rs + 1, restlen - 1);
		o += restlen - 1;
	} else
		body[o++] = '}';
	body[o] = '\0';
	return resp_json_text(r, status, body, o);
}

void
resp_error(struct req *r, enum app_err err)
{
	struct json_object	*e = json_object_new_object();
	struct json_object	*wrap = json_object_new_object();
	const char		*msg = r->err_message;

	if (msg == NULL)
		msg = app_err_default_message(err);
	json_object_object_add(e, "code", json_object_new_string(app_err_code(err)));
	json_object_object_add(e, "message", json_object_new_string(msg));
	/* details is owned by the pool; the error object takes a reference. */
	json_object_object_add(e, "details", r->err_details != NULL ?
	    json_object_get(r->err_details) : NULL);
	json_object_object_add(wrap, "error", e);
	/* Headers a handler set (Retry-After, Allow...) go with the error. */
	resp_json(r, app_err_status(err), wrap);
}

static int
header_set(struct req *r, const char *name)
{
	struct hdr	*h;

	for (h = r->headers; h != NULL; h = h->next)
		if (strcasecmp(h->name, name) == 0)
			return 1;
	return 0;
}

void
resp_send(struct req *r)
{
	char		 head[2048];
	size_t		 len = 0;
	struct hdr	*h;
	int		 n;

	if (r->fr == NULL)
		return;		/* in-process tests read r directly */
	n = snprintf(head, sizeof(head), "Status: %d %s\r\n", r->status,
	    status_reason(r->status));
	len = (size_t)n;
	if (r->content_type != NULL)
		len += (size_t)snprintf(head + len, sizeof(head) - len,
		    "Content-Type: %s\r\n", r->content_type);
	if (r->request_id != NULL)
		len += (size_t)snprintf(head + len, sizeof(head) - len,
		    "X-Request-Id: %s\r\n", r->request_id);
	if (!header_set(r, "Cache-Control"))
		len += (size_t)snprintf(head + len, sizeof(head) - len,
		    "Cache-Control: no-store\r\n");
	if (r->status != 204 && r->status != 304)
		len += (size_t)snprintf(head + len, sizeof(head) - len,
		    "Content-Length: %zu\r\n", r->method == M_HEAD ? 0 : r->body_len);
	FCGX_PutStr(head, (int)len, r->fr->out);
	for (h = r->headers; h != NULL; h = h->next) {
		FCGX_PutS(h->name, r->fr->out);
		FCGX_PutStr(": ", 2, r->fr->out);
		FCGX_PutS(h->val, r->fr->out);
		FCGX_PutStr("\r\n", 2, r->fr->out);
	}
	FCGX_PutStr("\r\n", 2, r->fr->out);
	if (r->method != M_HEAD && r->body_len > 0)
		FCGX_PutStr(r->body, (int)r->body_len, r->fr->out);
}

struct json_object *
pg_json_str(struct pg_result *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL :
	    json_object_new_string(PQgetvalue(res, row, col));
}

struct json_object *
pg_json_int(struct pg_result *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL :
	    json_object_new_int64(atoll(PQgetvalue(res, row, col)));
}
