/*
 * fcgi/likes.c: "liked" for the caller on every track of a list page.
 *
 * List pages are shared by every caller through the caches (pagecache.c,
 * Redis), so they are stored without "liked" and marked per request, here.
 * Each worker keeps the liked sets of its recent callers, each under the
 * likes generation the pool's watcher keeps for that user (sql/011 and
 * revoke.c): a like or unlike anywhere moves the generation on and the
 * set is read again, once, on the next page. While the watcher is not
 * live, the page's own ids are looked up instead (one query).
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "djamms.h"

#define LK_SLOTS	64		/* callers remembered per worker */
#define LK_PAGE_MAX	256		/* tracks marked on one page */

struct lk_set {
	char		 uid[37];
	uint32_t	 gen;
	unsigned char	(*ids)[16];	/* sorted */
	size_t		 n;
};

static struct lk_set	 sets[LK_SLOTS];

/* A textual UUID as 16 bytes; -1 if it is not one. */
static int
uuid_bytes(const char *s, unsigned char out[16])
{
	int	 i, o = 0;

	for (i = 0; s[i] != '\0' && o < 32; i++) {
		int	 v;

		if (s[i] == '-')
			continue;
		if ((v = hex_value((unsigned char)s[i])) < 0)
			return -1;
		if (o % 2 == 0)
			out[o / 2] = (unsigned char)(v << 4);
		else
			out[o / 2] |= (unsigned char)v;
		o++;
	}
	return o == 32 ? 0 : -1;
}

static int
cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

void
likes_free(void)
{
	size_t	 i;

	for (i = 0; i < LK_SLOTS; i++) {
		free(sets[i].ids);
		memset(&sets[i], 0, sizeof(sets[i]));
	}
}

/* The caller's liked set, current; NULL when it cannot be known here. */
static const struct lk_set *
set_of(struct req *r, const char *uid)
{
	static const struct db_stmt st = {
		"likes_of",
		"SELECT track_id FROM user_favorites WHERE user_id = $1",
		1
	};
	struct lk_set	*s;
	uint32_t	 gen;
	PGresult	*res;
	int		 i, n;

	if (revoke_likes_gen(uid, &gen) != 0)
		return NULL;
	s = &sets[str_hash(uid) % LK_SLOTS];
	if (s->ids != NULL && s->gen == gen && strcmp(s->uid, uid) == 0)
		return s;
	/* the generation was read before the rows: a later change is seen */
	if (db_exec(r, &res, &st, (const char *const[]){ uid }) != E_OK)
		return NULL;
	n = PQntuples(res);
	free(s->ids);
	if ((s->ids = malloc(sizeof(*s->ids) * ((size_t)n + 1))) == NULL)
		abort();
	s->n = 0;
	for (i = 0; i < n; i++)
		if (uuid_bytes(PQgetvalue(res, i, 0), s->ids[s->n]) == 0)
			s->n++;
	qsort(s->ids, s->n, 16, cmp16);
	snprintf(s->uid, sizeof(s->uid), "%s", uid);
	s->gen = gen;
	return s;
}

/*
 * Where the JSON string that opens at body[at] closes: the next quote that
 * an even number of backslashes precedes (memchr from quote to quote; the
 * strings are most of a page). len when it does not close.
 */
static size_t
string_end(const char *body, size_t len, size_t at)
{
	size_t		 s = at + 1, e, b;
	const char	*q;

	while ((q = memchr(body + s, '"', len - s)) != NULL) {
		e = (size_t)(q - body);
		for (b = e; body[b - 1] == '\\'; b--)
			;
		if ((e - b) % 2 == 0)
			return e;
		s = e + 1;
	}
	return len;
}

/*
 * The track objects of a page: where each one's id is and where it ends.
 * A track document is a flat object that begins {"id":"<uuid>". Those
 * bytes cannot occur inside a JSON string (its quotes would be escaped),
 * so an object followed at once by the next one ("},{"id":"") ends just
 * before it; any other (the last) is scanned to its closing brace, strings
 * skipped with their escapes. Pure. Returns how many were found.
 */
int
likes_find_tracks(const char *body, size_t len, size_t *id_at, size_t *end_at,
    int max)
{
	static const char	 start[] = "{\"id\":\"";
	size_t			 k = sizeof(start) - 1;
	const char		*hit = memmem(body, len, start, k), *next;
	int			 n = 0;

	while (hit != NULL && n < max) {
		size_t	 h = (size_t)(hit - body), j;

		if (h + k + 36 >= len)
			break;
		id_at[n] = h + k;
		next = memmem(hit + k, len - h - k, start, k);
		if (next != NULL && next[-1] == ',' && next[-2] == '}')
			j = (size_t)(next - body) - 2;
		else {
			for (j = h + 1; j < len; j++) {
				char	 c = body[j];

				if (c == '"')
					j = string_end(body, len, j);
				else if (c == '}' || c == '{')
					break;
			}
			if (j >= len || body[j] != '}')
				break;		/* not a flat object: leave the rest */
		}
		end_at[n++] = j;
		hit = next;
	}
	return n;
}

enum app_err
likes_mark_page(struct req *r)
{
	static const struct db_stmt st_page = {
		"likes_page",
		"SELECT track_id FROM user_favorites WHERE user_id = $1"
		" AND track_id = ANY ($2::uuid[])",
		2
	};
	size_t			 id_at[LK_PAGE_MAX], end_at[LK_PAGE_MAX], o = 0, from = 0;
	char			 liked[LK_PAGE_MAX];
	const struct lk_set	*s;
	char			*out;
	int			 n, i;

	if (r->status != 200 || r->user_id == NULL || r->body == NULL)
		return E_OK;
	n = likes_find_tracks(r->body, r->body_len, id_at, end_at, LK_PAGE_MAX);
	if (n == 0)
		return E_OK;
	memset(liked, 0, sizeof(liked));
	if ((s = set_of(r, r->user_id)) != NULL) {
		for (i = 0; i < n && s->n > 0; i++) {
			unsigned char	 id[16];
			char		 txt[37];

			memcpy(txt, r->body + id_at[i], 36);
			txt[36] = '\0';
			liked[i] = uuid_bytes(txt, id) == 0 &&
			    bsearch(id, s->ids, s->n, 16, cmp16) != NULL;
		}
	} else {
		/* Not known here: ask about this page's tracks only. */
		char		*lit = pool_alloc(r->pool, (size_t)n * 37 + 3);
		size_t		 l = 0;
		PGresult	*res;
		int		 k;

		lit[l++] = '{';
		for (i = 0; i < n; i++) {
			if (i > 0)
				lit[l++] = ',';
			memcpy(lit + l, r->body + id_at[i], 36);
			l += 36;
		}
		lit[l++] = '}';
		lit[l] = '\0';
		if (db_exec(r, &res, &st_page, (const char *const[]){ r->user_id,
		    lit }) != E_OK)
			return E_UNAVAILABLE;
		for (k = 0; k < PQntuples(res); k++)
			for (i = 0; i < n; i++)
				if (strncmp(PQgetvalue(res, k, 0), r->body + id_at[i],
				    36) == 0)
					liked[i] = 1;
	}
	out = pool_alloc(r->pool, r->body_len + (size_t)n * 15 + 1);
	for (i = 0; i < n; i++) {
		static const char	 yes[] = ",\"liked\":true", no[] = ",\"liked\":false";

		memcpy(out + o, r->body + from, end_at[i] - from);
		o += end_at[i] - from;
		memcpy(out + o, liked[i] ? yes : no, liked[i] ? sizeof(yes) - 1 :
		    sizeof(no) - 1);
		o += liked[i] ? sizeof(yes) - 1 : sizeof(no) - 1;
		from = end_at[i];
	}
	memcpy(out + o, r->body + from, r->body_len - from);
	o += r->body_len - from;
	out[o] = '\0';
	r->body = out;
	r->body_len = o;
	return E_OK;
}

int
likes_page_key(struct req *r, const char *what, char key[65])
{
	uint64_t	 libv;
	uint32_t	 gen;
	char		*canon;

	key[0] = '\0';
	if (r->user_id == NULL || revoke_library_version(&libv) != 0 ||
	    revoke_likes_gen(r->user_id, &gen) != 0)
		return -1;
	canon = pool_printf(r->pool, "%s|%s|%llu|%u", what, r->user_id,
	    (unsigned long long)libv, gen);
	sha256_hex(canon, strlen(canon), key);
	return 0;
}
