/*
 * fcgi/db.c: one libpq connection per worker, opened after fork. Named
 * statements are prepared lazily and re-prepared after a reconnect. A
 * lost connection is reset once per statement, outside transactions; a
 * database that stays down is retried at most once a second so requests
 * that fail fast do not each wait for a connect timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "djamms.h"

#define MAX_PREPARED	512
#define MAX_DYNAMIC	64
#define TX_RETRIES	3

static PGconn			*conn;
static const struct db_stmt	*prepared[MAX_PREPARED];
static size_t			 nprepared;
/*
 * Statements built at run time from allow-listed parts (a list with its
 * filters and sort, a search's shape) are prepared too, keyed by their
 * exact text: the common shapes are planned once per connection, not on
 * every request. When the table is full the one used longest ago is
 * deallocated for the new one (a search's prepared statement holds about
 * 400 KB of the server's memory, so the table stays small).
 */
static struct {
	char		*sql;
	uint64_t	 hash;		/* of sql: most lookups compare no text */
	uint64_t	 used;		/* when last asked for (a count) */
	char		 name[32];
}				 dynamic[MAX_DYNAMIC];
static size_t			 ndynamic;
static uint64_t			 dynamic_tick;
static uint64_t			 dynamic_seq;	/* names: dyn_1, dyn_2, ... */
static uint64_t			 next_attempt_us;
static int			 in_tx;
/*
 * plan_cache_mode is force_generic_plan on the connection: set by the
 * first DB_PLAN_GENERIC statement, left so while the statements that
 * follow do not mind (a worker answering searches switches once), put
 * back before one that does and before a transaction.
 */
static int			 generic_on;
static char			 last_sqlstate[6];
static struct {
	void	(*fn)(void *);
	void	*arg;
}				 after_commit[16];
static size_t			 nafter_commit;

PGconn *
db_conn(void)
{
	return conn;
}

const char *
db_last_sqlstate(void)
{
	return last_sqlstate;
}

static void
notice_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;		/* NOTICEs from migrations are not errors */
}

static void
dynamic_forget(void)
{
	size_t	 i;

	for (i = 0; i < ndynamic; i++)
		free(dynamic[i].sql);
	ndynamic = 0;
}

static int	simple(const char *sql);

/*
 * The name under which this text is prepared on the connection, preparing
 * it now if need be, in the slot used longest ago when the table is full;
 * NULL when that failed (the caller then runs it unnamed).
 */
static const char *
dynamic_name(const struct db_stmt *st)
{
	PGresult	*pr;
	uint64_t	 h = str_hash(st->sql);
	size_t		 i, slot = ndynamic;
	char		 dealloc[40];

	for (i = 0; i < ndynamic; i++)
		if (dynamic[i].hash == h && strcmp(dynamic[i].sql, st->sql) == 0) {
			dynamic[i].used = ++dynamic_tick;
			return dynamic[i].name;
		}
	if (ndynamic == MAX_DYNAMIC) {
		for (slot = 0, i = 1; i < ndynamic; i++)
			if (dynamic[i].used < dynamic[slot].used)
				slot = i;
		snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", dynamic[slot].name);
		if (simple(dealloc) != 0)
			return NULL;
		free(dynamic[slot].sql);
		dynamic[slot] = dynamic[--ndynamic];	/* the last fills the gap */
		slot = ndynamic;
	}
	if ((dynamic[slot].sql = strdup(st->sql)) == NULL)
		return NULL;
	/* never a name in use: each preparation gets the next number */
	snprintf(dynamic[slot].name, sizeof(dynamic[slot].name), "dyn_%llu",
	    (unsigned long long)++dynamic_seq);
	pr = PQprepare(conn, dynamic[slot].name, st->sql, st->nparams, NULL);
	if (pr == NULL || PQresultStatus(pr) != PGRES_COMMAND_OK) {
		PQclear(pr);
		free(dynamic[slot].sql);
		return NULL;
	}
	PQclear(pr);
	dynamic[slot].hash = h;
	dynamic[slot].used = ++dynamic_tick;
	ndynamic++;
	return dynamic[slot].name;
}

int
db_connect(void)
{
	char		 options[256];
	const char	*keys[5] = { "dbname", "options", "application_name",
			    "connect_timeout", NULL };
	const char	*vals[5];

	db_disconnect();
	snprintf(options, sizeof(options), "-c statement_timeout=%ld "
	    "-c lock_timeout=%ld -c idle_in_transaction_session_timeout=%ld "
	    "-c TimeZone=UTC -c jit=off", cfg.db_statement_timeout_ms,
	    cfg.db_statement_timeout_ms, cfg.db_statement_timeout_ms * 4);
	vals[0] = cfg.database_url;	/* expanded: a URL or key=value string */
	vals[1] = options;
	vals[2] = "djamms";
	vals[3] = "3";
	vals[4] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		char	 esc[512];

		json_escape_into(esc, 0, sizeof(esc),
		    conn ? PQerrorMessage(conn) : "out of memory");
		log_warn("database connect failed", "\"error\":\"%s\"", esc);
		db_disconnect();
		next_attempt_us = now_us() + 1000000;
		return -1;
	}
	PQsetNoticeProcessor(conn, notice_quiet, NULL);
	nprepared = 0;
	dynamic_forget();
	in_tx = 0;
	generic_on = 0;
	return 0;
}

void
db_disconnect(void)
{
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
	nprepared = 0;
	dynamic_forget();
	in_tx = 0;
	generic_on = 0;
	nafter_commit = 0;
}

/* Connected, or reconnected now if the back-off allows. */
static int
db_ensure(void)
{
	if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
		return 0;
	if (in_tx)
		return -1;	/* a transaction died with its connection */
	if (now_us() < next_attempt_us)
		return -1;
	return db_connect();
}

int
db_ok(void)
{
	return db_ensure() == 0;
}

enum app_err
db_sqlstate_err(const char *s)
{
	if (s == NULL || strlen(s) != 5)
		return E_INTERNAL;
	if (strcmp(s, "23505") == 0)		/* unique_violation */
		return E_CONFLICT;
	if (strcmp(s, "23503") == 0 ||		/* foreign_key_violation */
	    strcmp(s, "23514") == 0 ||		/* check_violation */
	    strcmp(s, "23502") == 0 ||		/* not_null_violation */
	    strcmp(s, "22001") == 0 ||		/* string_data_right_truncation */
	    strcmp(s, "22003") == 0 ||		/* numeric_value_out_of_range */
	    strcmp(s, "22007") == 0 ||		/* invalid_datetime_format */
	    strcmp(s, "22008") == 0 ||		/* datetime_field_overflow */
	    strcmp(s, "22023") == 0)		/* invalid_parameter_value */
		return E_INVALID;
	if (strcmp(s, "22P02") == 0)		/* invalid_text_representation */
		return E_BAD_REQUEST;
	if (strcmp(s, "40001") == 0 ||		/* serialization_failure */
	    strcmp(s, "40P01") == 0)		/* deadlock_detected */
		return E_CONFLICT;
	if (strcmp(s, "57014") == 0 ||		/* query_canceled (timeout) */
	    strcmp(s, "55P03") == 0 ||		/* lock_not_available */
	    strncmp(s, "08", 2) == 0 ||		/* connection exceptions */
	    strncmp(s, "53", 2) == 0 ||		/* insufficient resources */
	    strncmp(s, "57P", 3) == 0)		/* admin shutdown, crash */
		return E_UNAVAILABLE;
	return E_INTERNAL;
}

static void
pqclear_cleanup(void *res)
{
	PQclear(res);
}

static int
is_prepared(const struct db_stmt *st)
{
	size_t	 i;

	for (i = 0; i < nprepared; i++)
		if (prepared[i] == st)
			return 1;
	return 0;
}

/* The result's error, logged in full here and never sent to a client. */
static enum app_err
result_err(const struct db_stmt *st, PGresult *res)
{
	const char	*state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char	*msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
			    PQerrorMessage(conn);
	char		 esc[512];

	snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state ? state : "08006");
	if (strncmp(last_sqlstate, "23", 2) != 0)	/* not a constraint: an error */
		metrics_db_error(strncmp(last_sqlstate, "08", 2) == 0);
	json_escape_into(esc, 0, sizeof(esc), msg ? msg : "");
	log_msg(state && (state[0] == '2' && state[1] == '3') ? LOG_INFO : LOG_WARN,
	    "database error", "\"statement\":\"%s\",\"sqlstate\":\"%s\","
	    "\"error\":\"%s\"", st ? st->name : "-", last_sqlstate, esc);
	return db_sqlstate_err(last_sqlstate);
}

static PGresult *
exec_once(const struct db_stmt *st, const char *const *args)
{
	if (st->name == NULL) {	/* built from allow-listed parts */
		const char	*name = in_tx ? NULL : dynamic_name(st);

		if (name != NULL)
			return PQexecPrepared(conn, name, st->nparams, args, NULL,
			    NULL, 0);
		return PQexecParams(conn, st->sql, st->nparams, NULL, args, NULL,
		    NULL, 0);
	}
	if (!is_prepared(st)) {
		PGresult	*pr = PQprepare(conn, st->name, st->sql,
				    st->nparams, NULL);

		if (pr == NULL || PQresultStatus(pr) != PGRES_COMMAND_OK)
			return pr;	/* the caller reports it */
		PQclear(pr);
		if (nprepared < MAX_PREPARED)
			prepared[nprepared++] = st;
	}
	return PQexecPrepared(conn, st->name, st->nparams, args, NULL, NULL, 0);
}

/* The connection's plan_cache_mode as plan wants it. */
static int
plan_as(enum db_plan plan)
{
	if (in_tx || plan == DB_PLAN_ANY || (plan == DB_PLAN_GENERIC) == generic_on)
		return 0;
	if (simple(plan == DB_PLAN_GENERIC ? "SET plan_cache_mode = force_generic_plan" :
	    "SET plan_cache_mode = auto") != 0)
		return -1;
	generic_on = plan == DB_PLAN_GENERIC;
	return 0;
}

enum app_err
db_exec(struct req *r, PGresult **out, const struct db_stmt *st,
    const char *const *args)
{
	return db_exec_plan(r, out, st, args, DB_PLAN_AUTO);
}

enum app_err
db_exec_plan(struct req *r, PGresult **out, const struct db_stmt *st,
    const char *const *args, enum db_plan plan)
{
	PGresult	*res;
	ExecStatusType	 status;

	*out = NULL;
	last_sqlstate[0] = '\0';
	if (db_ensure() != 0) {
		snprintf(last_sqlstate, sizeof(last_sqlstate), "08006");
		return E_UNAVAILABLE;
	}
	if (plan_as(plan) != 0) {
		if (PQstatus(conn) == CONNECTION_BAD)
			db_disconnect();
		return db_sqlstate_err(last_sqlstate);
	}
	res = exec_once(st, args);
	if (PQstatus(conn) == CONNECTION_BAD && !in_tx) {
		/* The server restarted or the socket broke: one fresh try. */
		PQclear(res);
		if (db_connect() != 0)
			return E_UNAVAILABLE;
		(void)plan_as(plan);	/* a failure shows in what follows */
		res = exec_once(st, args);
	}
	status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
		enum app_err	 err = result_err(st, res);

		PQclear(res);
		if (PQstatus(conn) == CONNECTION_BAD && !in_tx)
			db_disconnect();
		return err;
	}
	if (r != NULL)
		pool_cleanup(r->pool, pqclear_cleanup, res);
	*out = res;
	return E_OK;
}

static int
simple(const char *sql)
{
	PGresult	*res = PQexec(conn, sql);
	int		 ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		result_err(NULL, res);
	PQclear(res);
	return ok ? 0 : -1;
}

static int
retryable(void)
{
	return strcmp(last_sqlstate, "40001") == 0 ||
	    strcmp(last_sqlstate, "40P01") == 0;
}

void
db_after_commit(void (*fn)(void *), void *arg)
{
	if (!in_tx) {
		fn(arg);
		return;
	}
	if (nafter_commit == sizeof(after_commit) / sizeof(after_commit[0]))
		abort();	/* a handler queues a handful at most */
	after_commit[nafter_commit].fn = fn;
	after_commit[nafter_commit].arg = arg;
	nafter_commit++;
}

static void
after_commit_run(int committed)
{
	size_t	 i, n = nafter_commit;

	nafter_commit = 0;
	for (i = 0; committed && i < n; i++)
		after_commit[i].fn(after_commit[i].arg);
}

enum app_err
db_tx(struct req *r, const char *isolation, db_tx_fn fn, void *arg)
{
	char		 begin[64];
	enum app_err	 err = E_INTERNAL;
	int		 attempt, reconnected = 0;

	snprintf(begin, sizeof(begin), "BEGIN ISOLATION LEVEL %s", isolation);
	for (attempt = 0; attempt < TX_RETRIES; attempt++) {
		if (db_ensure() != 0)
			return E_UNAVAILABLE;
		if (plan_as(DB_PLAN_AUTO) != 0 || simple(begin) != 0) {
			/*
			 * A connection whose server went away (a restart) looks
			 * fine until it is used: nothing has run yet, so connect
			 * again, once, and begin there.
			 */
			if (PQstatus(conn) != CONNECTION_OK && !reconnected) {
				reconnected = 1;
				next_attempt_us = 0;
				attempt--;
				continue;
			}
			return db_sqlstate_err(last_sqlstate);
		}
		in_tx = 1;
		last_sqlstate[0] = '\0';
		err = fn(r, arg);
		if (err == E_OK) {
			err = simple("COMMIT") == 0 ? E_OK :
			    db_sqlstate_err(last_sqlstate);
			in_tx = 0;
			after_commit_run(err == E_OK);
			if (err == E_OK || !retryable())
				return err;
		} else {
			if (PQstatus(conn) == CONNECTION_OK)
				simple("ROLLBACK");
			in_tx = 0;
			after_commit_run(0);
			if (!retryable())
				return err;
		}
		if (PQstatus(conn) != CONNECTION_OK)
			return E_UNAVAILABLE;
		log_info("transaction retried", "\"sqlstate\":\"%s\",\"attempt\":%d",
		    last_sqlstate, attempt + 1);
	}
	return err;
}
