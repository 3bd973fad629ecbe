/*
 * tests/http.c: see http.h.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "http.h"

int	 t_failed_now;

void
t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	t_failed_now = 1;
}

struct buf {
	char	*p;
	size_t	 len;
};

static size_t
on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct buf	*b = arg;
	size_t		 add = size * n;
	char		*np = realloc(b->p, b->len + add + 1);

	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, ptr, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static size_t
on_header(char *ptr, size_t size, size_t n, void *arg)
{
	size_t	 i, add = size * n;
	char	*line = malloc(add + 1);
	size_t	 r;

	/* Lower-case the name part so lookups are case-insensitive. */
	for (i = 0; i < add; i++)
		line[i] = ptr[i];
	for (i = 0; i < add && line[i] != ':'; i++)
		line[i] = (char)tolower((unsigned char)line[i]);
	r = on_data(line, 1, add, arg);
	free(line);
	return r == add ? add : 0;
}

/* One per thread, reused: keeps the TLS connection alive. */
static __thread CURL	*easy;

void
http_close(void)
{
	if (easy != NULL)
		curl_easy_cleanup(easy);
	easy = NULL;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

void
it_threads(pthread_t *th, int n, void *(*fn)(void *), void *arg)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, fn, arg) != 0)
			abort();
}

void
it_join(pthread_t *th, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

CURL *
it_curl_handle(const char *url, long timeout_s)
{
	CURL	*c = curl_easy_init();

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	if (timeout_s > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	return c;
}

struct http_res
http_do(const char *method, const char *path, const char *const *headers,
    const char *body, size_t len)
{
	struct http_res		 res;
	struct buf		 b = { NULL, 0 }, h = { NULL, 0 };
	struct curl_slist	*hl = NULL;
	char			 url[8192];
	const char		*base = getenv("BASE_URL");

	memset(&res, 0, sizeof(res));
	if (easy == NULL)
		easy = curl_easy_init();
	else
		curl_easy_reset(easy);
	snprintf(url, sizeof(url), "%s%s", base ? base : "https://127.0.0.1:8443", path);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);	/* send ../ and ./ as is */
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &h);
	for (; headers != NULL && *headers != NULL; headers++)
		hl = curl_slist_append(hl, *headers);
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hl);
	if (body != NULL) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	res.curl_error = (int)curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &res.seconds);
	curl_slist_free_all(hl);
	res.body = b.p ? b.p : strdup("");
	res.body_len = b.len;
	res.headers = h.p ? h.p : strdup("");
	if (res.body_len > 0)
		res.json = json_tokener_parse(res.body);
	return res;
}

struct http_res
http_get(const char *path)
{
	return http_do("GET", path, NULL, NULL, 0);
}

struct http_res
http_json(const char *method, const char *path, const char *json)
{
	static const char *const h[] = { "Content-Type: application/json", NULL };

	return http_do(method, path, h, json, strlen(json));
}

struct http_res
http_bearer(const char *method, const char *path, const char *token,
    const char *json)
{
	char		 auth[4200];
	const char	*h[3] = { "Content-Type: application/json", NULL, NULL };

	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h[1] = auth;
	}
	return http_do(method, path, h, json, json ? strlen(json) : 0);
}

void
http_free(struct http_res *r)
{
	free(r->body);
	free(r->headers);
	json_object_put(r->json);
	memset(r, 0, sizeof(*r));
}

const char *
http_header(const struct http_res *r, const char *name)
{
	static char	 val[1024];
	char		 key[128];
	const char	*p;
	size_t		 i, n;

	n = strlen(name);
	if (n + 2 > sizeof(key))
		return NULL;
	for (i = 0; i < n; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	key[n] = ':';
	key[n + 1] = '\0';
	for (p = r->headers; p != NULL && *p != '\0'; ) {
		if (strncmp(p, key, n + 1) == 0) {
			const char	*v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strpbrk(v, "\r\n");
			n = e ? (size_t)(e - v) : strlen(v);
			if (n >= sizeof(val))
				n = sizeof(val) - 1;
			memcpy(val, v, n);
			val[n] = '\0';
			return val;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static struct json_object *
json_lookup(const struct http_res *r, const char *path)
{
	struct json_object	*o = r->json;
	char			 part[128];
	const char		*p = path;

	while (o != NULL && *p != '\0') {
		const char	*dot = strchr(p, '.');
		size_t		 n = dot ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		if (json_object_is_type(o, json_type_array) && n > 0 &&
		    strspn(part, "0123456789") == n)	/* "tracks.0.id" */
			o = json_object_array_get_idx(o, (size_t)atol(part));
		else if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, part, &o))
			return NULL;
		p = dot ? dot + 1 : p + n;
	}
	return o;
}

int
json_lookup_bool(const struct http_res *r, const char *path)
{
	struct json_object	*o = json_lookup(r, path);

	if (o == NULL || !json_object_is_type(o, json_type_boolean))
		return -1;
	return json_object_get_boolean(o);
}

int
json_has(const struct http_res *r, const char *path)
{
	struct json_object	*o = r->json;
	char			 copy[256], *last;

	/* Present even when its value is JSON null. */
	snprintf(copy, sizeof(copy), "%s", path);
	last = strrchr(copy, '.');
	if (last != NULL) {
		*last++ = '\0';
		o = json_lookup(r, copy);
	} else
		last = copy;
	return o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, last, NULL);
}

const char *
json_str(const struct http_res *r, const char *path)
{
	struct json_object	*o = json_lookup(r, path);

	if (o == NULL || !json_object_is_type(o, json_type_string))
		return NULL;
	return json_object_get_string(o);
}

long long
json_int(const struct http_res *r, const char *path, long long def)
{
	struct json_object	*o = json_lookup(r, path);

	if (o == NULL || !json_object_is_type(o, json_type_int))
		return def;
	return json_object_get_int64(o);
}

double
json_num(const struct http_res *r, const char *path, double def)
{
	struct json_object	*o = json_lookup(r, path);

	if (o == NULL || (!json_object_is_type(o, json_type_int) &&
	    !json_object_is_type(o, json_type_double)))
		return def;
	return json_object_get_double(o);
}

int
sh(const char *fmt, ...)
{
	char	 cmd[4096];
	va_list	 ap;
	int	 st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(NULL);
	st = system(cmd);
	return st == -1 ? -1 : (st >> 8) & 0xff;
}

const char *
sh_out(const char *fmt, ...)
{
	static char	 out[65536];
	char		 cmd[4096];
	va_list		 ap;
	FILE		*p;
	size_t		 n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(NULL);
	out[0] = '\0';
	if ((p = popen(cmd, "r")) == NULL)
		return out;
	n = fread(out, 1, sizeof(out) - 1, p);
	pclose(p);
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		n--;
	out[n] = '\0';
	return out;
}

void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- accounts and the database, for the suites ---------------------- */

static unsigned	 it_seq;

int
it_take_session(struct http_res *res, struct it_session *s)
{
	const char	*a = json_str(res, "access_token");
	const char	*id = json_str(res, "user.id");

	if (a == NULL || id == NULL)
		return -1;
	snprintf(s->access, sizeof(s->access), "%s", a);
	snprintf(s->id, sizeof(s->id), "%s", id);
	return 0;
}

int
it_new_user(const char *prefix, struct it_session *s)
{
	char		 body[512];
	struct http_res	 res;
	int		 rc;

	snprintf(s->name, sizeof(s->name), "%s%ld%u", prefix,
	    (long)getpid() % 100000, __atomic_add_fetch(&it_seq, 1, __ATOMIC_RELAXED));
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"email\":\"%s@example.org\","
	    "\"password\":\"" IT_PASSWORD "\"}", s->name, s->name);
	res = http_bearer("POST", "/api/auth/register", NULL, body);
	rc = res.status == 201 ? it_take_session(&res, s) : -1;
	if (rc != 0)
		fprintf(stderr, "    register %s: %ld %s\n", s->name, res.status, res.body);
	http_free(&res);
	return rc;
}

int
it_new_guest(struct it_session *s)
{
	struct http_res	 res = http_bearer("POST", "/api/auth/anonymous", NULL, NULL);
	int		 rc = res.status == 201 ? it_take_session(&res, s) : -1;

	http_free(&res);
	snprintf(s->name, sizeof(s->name), "guest");
	return rc;
}

int
it_login(const char *name, struct it_session *s)
{
	char		 body[512];
	struct http_res	 res;
	int		 rc;

	snprintf(body, sizeof(body), "{\"login\":\"%s\",\"password\":\"" IT_PASSWORD
	    "\"}", name);
	res = http_bearer("POST", "/api/auth/login", NULL, body);
	rc = res.status == 200 ? it_take_session(&res, s) : -1;
	snprintf(s->name, sizeof(s->name), "%s", name);
	http_free(&res);
	return rc;
}

int
it_new_admin(const char *prefix, struct it_session *s)
{
	char	 name[64];

	snprintf(name, sizeof(name), "%s%ld%u", prefix, (long)getpid() % 100000,
	    __atomic_add_fetch(&it_seq, 1, __ATOMIC_RELAXED));
	if (sh("eval \"$(%s/tools/stack env %s)\"; DJAMMS_ADMIN_PASSWORD='" IT_PASSWORD
	    "' %s admin create %s >/dev/null", getenv("TOP"), getenv("STACK_DIR"),
	    getenv("DJAMMS_BIN"), name) != 0)
		return -1;
	return it_login(name, s);
}

const char *
it_psql(const char *fmt, ...)
{
	char	 sql[16384];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return sh_out(". %s/stack.env; psql -h $PG_SOCKET_DIR -p $PG_PORT -U djamms "
	    "-d djamms -v ON_ERROR_STOP=1 -Atqc \"%s\"", getenv("STACK_DIR"), sql);
}

int
it_new_playlist(const struct it_session *s, const char *name, int is_public,
    char id[37])
{
	char		 body[512];
	struct http_res	 res;
	const char	*v;
	int		 rc = -1;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"is_public\":%s}", name,
	    is_public ? "true" : "false");
	res = http_bearer("POST", "/api/playlists", s->access, body);
	if (res.status == 201 && (v = json_str(&res, "id")) != NULL) {
		snprintf(id, 37, "%s", v);
		rc = 0;
	}
	http_free(&res);
	return rc;
}

long long
it_pool_counter(const char *name)
{
	struct http_res	 res = http_get("/api/system/status");
	char		 path[128];
	long long	 v;

	snprintf(path, sizeof(path), "checks.pool.%s", name);
	v = json_int(&res, path, -1);
	http_free(&res);
	return v;
}

long
it_status(const char *method, const char *path, const char *token, const char *json)
{
	struct http_res	 res = http_bearer(method, path, token, json);
	long		 st = res.status;

	http_free(&res);
	return st;
}

struct json_object *
json_array(const struct http_res *res, const char *key)
{
	struct json_object	*a;

	if (res->json == NULL || !json_object_object_get_ex(res->json, key, &a) ||
	    !json_object_is_type(a, json_type_array))
		return NULL;
	return a;
}

/* The whole of a file, malloc'd; NULL if it cannot be read. OUT: *len. */
char *
it_slurp(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*buf;
	long	 n;

	*len = 0;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || (buf = malloc((size_t)n + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

void
it_secure_link_sig(const char *material, char out[32])
{
	unsigned char	 md[16];
	unsigned int	 n = 0;
	int		 len, i;

	EVP_Digest(material, strlen(material), md, &n, EVP_md5(), NULL);
	len = EVP_EncodeBlock((unsigned char *)out, md, 16);	/* 24 bytes */
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

int
it_upload_file(const char *token, const char *file, const char *query, char id[37])
{
	char		 auth[4200], *body;
	const char	*h[3] = { "Content-Type: application/octet-stream", auth, NULL };
	struct http_res	 res;
	size_t		 n;
	int		 rc = -1;

	if ((body = it_slurp(file, &n)) == NULL)
		return -1;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	res = http_do("POST", query, h, body, n);
	free(body);
	if (res.status == 201 && json_str(&res, "id") != NULL) {
		snprintf(id, 37, "%s", json_str(&res, "id"));
		rc = 0;
	} else
		fprintf(stderr, "    upload %s: %ld %.300s\n", file, res.status, res.body);
	http_free(&res);
	return rc;
}

int
it_save_body(const struct http_res *res, const char *path)
{
	FILE	*f = fopen(path, "w");
	int	 ok;

	if (f == NULL)
		return -1;
	ok = fwrite(res->body, 1, res->body_len, f) == res->body_len;
	return fclose(f) == 0 && ok ? 0 : -1;
}
