/*
 * fcgi/history.c: the search history, written in batches under load.
 *
 * Recording a search in the statement that answered it made every search
 * a write transaction (a transaction id, a commit, the foreign key's lock
 * on the caller's row): at a million tracks that cost a sixth of the
 * searches a second. A worker now keeps the rows of the searches it
 * answered and writes them in one statement:
 * - before the answer goes out, when no request is waiting for a worker
 *   (a client that reads its history next finds the search there);
 * - under load, when the oldest row is HISTORY_MAX_AGE_MS old or
 *   HISTORY_MAX rows wait, when the worker runs out of requests, before
 *   this worker serves a request that reads the history, and before it
 *   exits.
 * So under load a search reaches the table up to HISTORY_MAX_AGE_MS after
 * its answer, and a worker killed (not stopped) loses the rows it held.
 * A row older than its user's last clear of the history (sql/019) is not
 * written: a search answered before the clear does not come back after
 * (the user's row is share-locked while it is checked; the clear's side
 * is in handlers/user.c).
 * The caller's cached recent searches are dropped after the write, as
 * before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "djamms.h"

#define HISTORY_MAX		64
#define HISTORY_MAX_AGE_MS	50

struct hrow {
	char	 user[37];	/* "" for none */
	char	*query;
	char	*filters;	/* a JSON object */
	long	 count;
	char	 at[40];	/* RFC 3339, the answer's time */
};

static struct hrow	 rows[HISTORY_MAX];
static int		 nrows;
static uint64_t		 oldest_us;

/* Room for s as a quoted element of an array literal. */
static size_t
elem_size(const char *s)
{
	size_t	 n = 3;		/* quotes, comma */

	for (; *s != '\0'; s++)
		n += *s == '"' || *s == '\\' ? 2 : 1;
	return n;
}

/* Append s (NULL: NULL) to the array literal at out[*o]. */
static void
elem_put(char *out, size_t *o, const char *s)
{
	if (*o > 1)
		out[(*o)++] = ',';
	if (s == NULL) {
		memcpy(out + *o, "NULL", 4);
		*o += 4;
		return;
	}
	out[(*o)++] = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			out[(*o)++] = '\\';
		out[(*o)++] = *s;
	}
	out[(*o)++] = '"';
}

/*
 * n strings (NULL: SQL NULL) as a PostgreSQL array literal, every element
 * quoted with its quotes and backslashes escaped. Pure; the caller frees
 * it.
 */
char *
history_array(int n, const char *const *elems)
{
	size_t	 cap = 3, o = 0;
	char	*out;
	int	 i;

	for (i = 0; i < n; i++)
		cap += elems[i] != NULL ? elem_size(elems[i]) : 5;
	if ((out = malloc(cap)) == NULL)
		abort();
	out[o++] = '{';
	for (i = 0; i < n; i++)
		elem_put(out, &o, elems[i]);
	out[o++] = '}';
	out[o] = '\0';
	return out;
}

void
history_write(void)
{
	static const struct db_stmt st = {
		"search_history_write",
		"INSERT INTO search_history (user_id, query, filters, result_count,"
		" searched_at)"
		" SELECT x.u, x.q, x.f, x.n, x.t FROM unnest($1::uuid[], $2::text[],"
		" $3::jsonb[], $4::int[], $5::timestamptz[]) AS x (u, q, f, n, t)"
		" WHERE x.u IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = x.u"
		"  AND (u.search_history_cleared_at IS NULL"
		"   OR u.search_history_cleared_at < x.t) FOR SHARE)",
		5
	};
	const char	*col[5][HISTORY_MAX];
	char		 counts[HISTORY_MAX][24], *args[5];
	PGresult	*res;
	int		 i, j, k;

	if (nrows == 0)
		return;
	for (i = 0; i < nrows; i++) {
		snprintf(counts[i], sizeof(counts[i]), "%ld", rows[i].count);
		col[0][i] = rows[i].user[0] != '\0' ? rows[i].user : NULL;
		col[1][i] = rows[i].query;
		col[2][i] = rows[i].filters;
		col[3][i] = counts[i];
		col[4][i] = rows[i].at;
	}
	for (k = 0; k < 5; k++)
		args[k] = history_array(nrows, col[k]);
	if (db_exec_plan(NULL, &res, &st, (const char *const *)args, DB_PLAN_ANY) ==
	    E_OK) {
		PQclear(res);
		for (i = 0; i < nrows; i++) {
			if (rows[i].user[0] == '\0')
				continue;
			for (j = 0; j < i && strcmp(rows[j].user, rows[i].user) != 0; j++)
				;
			if (j == i)	/* each caller once */
				history_changed(rows[i].user);
		}
	} else
		log_warn("search history not written", "\"rows\":%d", nrows);
	for (k = 0; k < 5; k++)
		free(args[k]);
	for (i = 0; i < nrows; i++) {
		free(rows[i].query);
		free(rows[i].filters);
	}
	nrows = 0;
}

/*
 * A user's recent searches are cached by each worker under the history
 * generation (revoke.c), moved on here at once and on every machine by
 * sql/020's announcement; and in Redis under shver:<user>, which suggest
 * uses while the generations are not live.
 */
void
history_changed(const char *user_id)
{
	redisReply	*rep;

	if (user_id == NULL)
		return;
	revoke_note_history(user_id);
	if ((rep = rds_command(NULL, "INCR shver:%s", user_id)) != NULL)
		freeReplyObject(rep);
}

void
history_add(struct req *r, const char *query, const char *filters, long count)
{
	struct hrow	*h;

	if (nrows == HISTORY_MAX)
		history_write();
	h = &rows[nrows];
	snprintf(h->user, sizeof(h->user), "%s", r->user_id ? r->user_id : "");
	if ((h->query = strdup(query)) == NULL || (h->filters = strdup(filters)) == NULL)
		abort();
	h->count = count;
	log_time_rfc3339(h->at);
	if (nrows++ == 0)
		oldest_us = now_us();
	if (!worker_busy())
		history_write();
}

int
history_wait_ms(void)
{
	uint64_t	 age;

	if (nrows == 0)
		return -1;
	age = (now_us() - oldest_us) / 1000;
	return age >= HISTORY_MAX_AGE_MS ? 0 : (int)(HISTORY_MAX_AGE_MS - age);
}
