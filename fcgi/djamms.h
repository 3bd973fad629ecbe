/*
 * fcgi/djamms.h: the internal header. One section per source file, in the
 * order a request meets them: configuration, memory pool, logging, the
 * shared pool counters, database, Redis, request/response, router.
 */
#ifndef DJAMMS_H
#define DJAMMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <time.h>
#include <sys/types.h>
#include <semaphore.h>

#include "errors.h"

#define DJAMMS_VERSION	"0.1.0"

struct json_object;
struct pg_result;
struct pg_conn;
struct redisReply;
struct redisContext;
struct FCGX_Request;

/* ---- config.c ------------------------------------------------------- */

struct config {
	const char	*listen_path;		/* DJAMMS_LISTEN */
	const char	*search_listen_path;	/* DJAMMS_SEARCH_LISTEN */
	const char	*socket_group;		/* DJAMMS_SOCKET_GROUP, may be NULL */
	int		 workers;		/* DJAMMS_WORKERS */
	int		 core_workers;		/* DJAMMS_CORE_WORKERS */
	int		 search_workers;	/* DJAMMS_SEARCH_WORKERS */
	long		 spare_after_ms;	/* DJAMMS_SPARE_AFTER_MS */
	long		 max_requests;		/* DJAMMS_MAX_REQUESTS */
	long		 request_timeout_ms;	/* DJAMMS_REQUEST_TIMEOUT_MS */
	long		 drain_timeout_ms;	/* DJAMMS_DRAIN_TIMEOUT_MS */
	const char	*database_url;		/* DJAMMS_DATABASE_URL */
	long		 db_statement_timeout_ms;
	const char	*redis_url;		/* DJAMMS_REDIS_URL */
	long		 redis_timeout_ms;
	const char	*storage_dir;		/* DJAMMS_STORAGE_DIR */
	long		 storage_min_free_mb;	/* DJAMMS_STORAGE_MIN_FREE_MB */
	long		 memory_min_free_mb;	/* DJAMMS_MEMORY_MIN_FREE_MB */
	long		 body_max;		/* DJAMMS_BODY_MAX */
	int		 json_max_depth;	/* DJAMMS_JSON_MAX_DEPTH */
	int		 log_level;		/* DJAMMS_LOG_LEVEL */
	const char	*log_file;		/* DJAMMS_LOG_FILE, NULL: stderr */
	long long	 log_max_bytes;		/* DJAMMS_LOG_MAX_MB */
	long		 log_keep;		/* DJAMMS_LOG_KEEP */
	const char	*sql_dir;		/* DJAMMS_SQL_DIR */
	int		 test_routes;		/* DJAMMS_TEST_ROUTES */
	/* accounts and tokens */
	char		*jwt_secret;		/* DJAMMS_JWT_SECRET(_FILE) */
	size_t		 jwt_secret_len;
	char		*jwt_previous_secret;	/* DJAMMS_JWT_PREVIOUS_SECRET(_FILE) */
	size_t		 jwt_previous_secret_len;
	const char	*jwt_issuer;		/* DJAMMS_JWT_ISSUER */
	const char	*jwt_audience;		/* DJAMMS_JWT_AUDIENCE */
	long		 access_ttl_s;		/* DJAMMS_ACCESS_TTL_S */
	long		 refresh_ttl_days;	/* DJAMMS_REFRESH_TTL_DAYS */
	int		 hash_concurrency;	/* DJAMMS_HASH_CONCURRENCY */
	long		 password_memory_kib;	/* DJAMMS_PASSWORD_MEMORY_KIB */
	long		 password_iterations;	/* DJAMMS_PASSWORD_ITERATIONS */
	long		 login_max_failures;	/* DJAMMS_LOGIN_MAX_FAILURES */
	long		 login_window_s;	/* DJAMMS_LOGIN_WINDOW_S */
	const char	*public_url;		/* DJAMMS_PUBLIC_URL, for mailed links */
	/* the library */
	char		*media_secret;		/* DJAMMS_MEDIA_SECRET(_FILE), nginx's secure_link */
	size_t		 media_secret_len;
	const char	*upload_dir;		/* DJAMMS_UPLOAD_DIR, nginx's body temp dir */
	long long	 upload_max;		/* DJAMMS_UPLOAD_MAX */
	long		 stream_url_ttl_s;	/* DJAMMS_STREAM_URL_TTL_S */
	long		 list_cache_ttl_s;	/* DJAMMS_LIST_CACHE_TTL_S */
	const char	*smtp_url;		/* DJAMMS_SMTP_URL, NULL: no mail */
	const char	*smtp_from;		/* DJAMMS_SMTP_FROM */
	const char	*smtp_user, *smtp_password; /* DJAMMS_SMTP_USER, _PASSWORD */
	int		 smtp_starttls;		/* DJAMMS_SMTP_STARTTLS */
	int		 jobs_workers;		/* DJAMMS_JOBS_WORKERS */
	long		 jobs_backoff_ms;	/* DJAMMS_JOBS_BACKOFF_MS */
	long		 jobs_poll_ms;		/* DJAMMS_JOBS_POLL_MS */
	long		 jobs_nice;		/* DJAMMS_JOBS_NICE */
	int		 jobs_idle;		/* DJAMMS_JOBS_IDLE: SCHED_IDLE */
	long		 jobs_heartbeat_s;	/* DJAMMS_JOBS_HEARTBEAT_S */
	long		 mail_max_attempts;	/* DJAMMS_MAIL_MAX_ATTEMPTS */
	const char	*backup_dir;		/* DJAMMS_BACKUP_DIR */
	long		 backup_keep;		/* DJAMMS_BACKUP_KEEP */
	const char	*ffmpeg;		/* DJAMMS_FFMPEG, the HLS encoder */
	long		 hls_timeout_s;		/* DJAMMS_HLS_TIMEOUT_S, per track */
	long		 orphan_grace_h;	/* DJAMMS_ORPHAN_GRACE_H */
	long		 log_keep_days;		/* DJAMMS_LOG_KEEP_DAYS */
	const char	*jobs_name;		/* this host's name, for runner ids */
};

enum config_need {
	CONFIG_SERVE,		/* everything the pool needs */
	CONFIG_MIGRATE,		/* only the database and the SQL directory */
	CONFIG_ADMIN,		/* the database and password hashing */
};

extern struct config	 cfg;

/*
 * Fill cfg from the environment. Prints one line per bad or missing
 * variable to stderr and returns -1 if any; 0 when cfg is usable.
 */
int		 config_load(enum config_need);
/* Parse an integer in [min, max]; OUT: *val. 0 on success. Pure; tested. */
int		 config_parse_long(const char *s, long min, long max, long *val);

/* ---- mpool.c -------------------------------------------------------- */

/*
 * A per-request arena with cleanup hooks, after nginx's ngx_pool_t.
 * Nothing allocated from it is freed one by one: pool_reset() runs the
 * cleanups (newest first) and rewinds. Allocation failure aborts.
 */
struct mpool;
typedef void	(*cleanup_fn)(void *);

struct mpool	*pool_new(size_t chunk_size);
void		 pool_free(struct mpool *);
void		 pool_reset(struct mpool *);
void		*pool_alloc(struct mpool *, size_t);
void		*pool_calloc(struct mpool *, size_t n, size_t size);
char		*pool_strdup(struct mpool *, const char *);
char		*pool_strndup(struct mpool *, const char *, size_t);
char		*pool_printf(struct mpool *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Run fn(data) when the pool is reset or freed. */
void		 pool_cleanup(struct mpool *, cleanup_fn fn, void *data);
/* Register the right destructor for common library objects. */
struct json_object *pool_json(struct mpool *, struct json_object *);
size_t		 pool_bytes_used(const struct mpool *);

/* ---- log.c ---------------------------------------------------------- */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* One JSON object per line on stderr: {"time","level","pid","msg",...}. */
void		 log_msg(enum log_level, const char *msg, const char *fmt_kv, ...)
		    __attribute__((format(printf, 3, 4)));
#define log_debug(msg, ...)	log_msg(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)	log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)	log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...)	log_msg(LOG_ERROR, msg, __VA_ARGS__)
/*
 * Append s to buf as a JSON string body (no quotes), escaping as needed;
 * never writes past cap. Returns the new length. Pure; tested.
 */
size_t		 json_escape_into(char *buf, size_t len, size_t cap, const char *s);
/* Wall clock in RFC 3339 UTC with microseconds. OUT: buf[32]. */
void		 log_time_rfc3339(char buf[40]);
uint64_t	 now_us(void);		/* CLOCK_MONOTONIC */
/* A numeric macro as a string literal, for SQL built at compile time. */
#define XSTR(x)		#x
#define STR(x)		XSTR(x)
/* The master, every tick: rotate DJAMMS_LOG_FILE once it is too big. */
void		 log_rotate_check(void);

/* ---- master.c / worker.c: the pool and its shared counters --------- */

enum slot_state { SLOT_EMPTY, SLOT_STARTING, SLOT_IDLE, SLOT_BUSY };

struct pool_slot {
	pid_t		 pid;
	uint32_t	 state;		/* enum slot_state */
	uint64_t	 started_us;
	uint64_t	 busy_since_us;
	uint64_t	 requests;
	uint32_t	 hashing;	/* holds a password-hashing permit */
	char		 route[96];	/* the route in progress, for deadline logs */
};

struct pool_shared {
	uint32_t	 nslots;	/* the API's workers, then search's */
	uint32_t	 nsearch;	/* the last nsearch of them */
	uint64_t	 master_started_us;
	uint64_t	 restarts;
	uint64_t	 crashes;
	uint64_t	 deadline_kills;
	uint64_t	 requests_total;
	uint64_t	 search_requests_total;	/* of them, by search's workers */
	uint32_t	 draining;
	sem_t		 hash_sem;	/* password hashes at once, pool-wide */
	struct pool_slot slots[];
};

extern struct pool_shared	*pool_shm;	/* NULL when not under the master */
extern int			 worker_slot;	/* this worker's index, or -1 */

int		 master_run(void);
void		 worker_run(int slot, int listen_fd) __attribute__((noreturn));
/* Whether a request waits for a worker of this pool (0 outside one). */
int		 worker_busy(void);
/*
 * How long slot s has been on its current request at now (microseconds);
 * 0 when it is on none, or began it after now was read.
 */
uint64_t	 slot_busy_us(const struct pool_slot *s, uint64_t now);
/* Snapshot of the counters. OUT: *alive, *busy. */
void		 pool_counts(int *alive, int *busy);
/* Whether slot is one of search's workers (they come after the API's). */
int		 pool_slot_is_search(int slot);

/* ---- db.c ----------------------------------------------------------- */

/*
 * A named statement. Handlers declare these static const next to their
 * code; db_exec() prepares each one lazily on the worker's connection
 * (and again after a reconnect), keyed by the struct's address. A NULL
 * name runs sql unprepared: for SQL assembled from allow-listed fragments
 * (sort columns, optional filters), never from request text.
 */
struct db_stmt {
	const char	*name;
	const char	*sql;
	int		 nparams;
};

struct req;

int		 db_connect(void);	/* after fork; 0 if connected */
void		 db_disconnect(void);
int		 db_ok(void);		/* connected right now */
/*
 * Execute st with args (text format; NULL means SQL NULL). OUT: *res,
 * owned by r's pool. Reconnects once if the connection was lost and no
 * transaction is open. Returns E_OK or the mapped error.
 */
enum app_err	 db_exec(struct req *r, struct pg_result **res,
		    const struct db_stmt *st, const char *const *args);
/*
 * How a statement wants to be planned. db_exec() is DB_PLAN_AUTO:
 * Postgres' own choice between a plan for each set of arguments and one
 * plan for all. DB_PLAN_GENERIC: one plan for all, for a statement whose
 * plan does not depend on its arguments and costs much to make.
 * DB_PLAN_ANY: either, for a statement that plans in no time.
 */
enum db_plan { DB_PLAN_AUTO, DB_PLAN_GENERIC, DB_PLAN_ANY };
/* db_exec() planned as plan says (outside a transaction; AUTO inside). */
enum app_err	 db_exec_plan(struct req *r, struct pg_result **res,
		    const struct db_stmt *st, const char *const *args, enum db_plan plan);
typedef enum app_err (*db_tx_fn)(struct req *, void *arg);
/*
 * Run fn inside BEGIN ... COMMIT with the given isolation level ("READ
 * COMMITTED", "REPEATABLE READ", "SERIALIZABLE"). Retries the whole
 * transaction on serialization failure or deadlock up to 3 times.
 */
enum app_err	 db_tx(struct req *r, const char *isolation, db_tx_fn fn, void *arg);
/*
 * Run fn(arg) once the current transaction commits, or now outside one;
 * dropped if it rolls back. For effects outside the database (caches,
 * shared memory) that must never run ahead of the data. arg must live
 * until then (the request pool).
 */
void		 db_after_commit(void (*fn)(void *), void *arg);
/* Map a SQLSTATE to an API error. Pure; tested. */
enum app_err	 db_sqlstate_err(const char *sqlstate);
const char	*db_last_sqlstate(void);
struct pg_conn	*db_conn(void);

/* ---- redis.c -------------------------------------------------------- */

int		 rds_connect(void);	/* after fork; 0 if connected */
void		 rds_disconnect(void);
/*
 * Run a command; NULL when Redis is unavailable (the context is dropped
 * and reconnected later, at most once a second). The reply is owned by
 * r's pool when r is given.
 */
struct redisReply *rds_command(struct req *r, const char *fmt, ...);
/*
 * The caller's cached answer under key, if its stamp (own version, the
 * library's, the caller's user_ver version: "favver" for their likes,
 * "shver" for their searches) still holds; NULL if not. OUT: stamp (cap
 * bytes; "" when Redis did not answer), len. The answer lives as long as
 * the request.
 */
const char	*rds_stamped_get(struct req *r, const char *key, const char *user_ver,
		    const char *own, char *stamp, size_t cap, size_t *len);
/* Cache body under key with the stamp rds_stamped_get() gave (if any). */
void		 rds_stamped_put(struct req *r, const char *key, const char *stamp,
		    const char *body, size_t len, int ttl_s);
int		 rds_ping(void);	/* 0 if PONG */
/* Parse redis://host:port[/db] or unix:/path. Pure; tested. */
int		 rds_parse_url(const char *url, char *host, size_t hostlen,
		    int *port, int *db, int *is_unix);

/* ---- req.c: the request ------------------------------------------- */

enum http_method {
	M_GET = 1 << 0, M_HEAD = 1 << 1, M_POST = 1 << 2, M_PUT = 1 << 3,
	M_PATCH = 1 << 4, M_DELETE = 1 << 5, M_OPTIONS = 1 << 6,
};

/* Permissions, a bit each; P_NONE means the route is public. */
enum perm {
	P_NONE			= 0,
	P_READ_TRACKS		= 1 << 0,
	P_WRITE_TRACKS		= 1 << 1,
	P_DELETE_TRACKS		= 1 << 2,
	P_READ_PLAYLISTS	= 1 << 3,
	P_WRITE_PLAYLISTS	= 1 << 4,
	P_DELETE_PLAYLISTS	= 1 << 5,
	P_READ_SCHEDULES	= 1 << 6,
	P_WRITE_SCHEDULES	= 1 << 7,
	P_DELETE_SCHEDULES	= 1 << 8,
	P_READ_SYSTEM		= 1 << 9,
	P_WRITE_SYSTEM		= 1 << 10,
	P_ADMIN_SYSTEM		= 1 << 11,
	P_AUTHENTICATED		= 1 << 12,	/* any identity, even a guest */
};
#define P_ALL_NAMED	0xfffu		/* the twelve permissions with names */

struct kv {
	const char	*key;
	const char	*val;
};

struct hdr {
	const char	*name;
	const char	*val;
	struct hdr	*next;
};

struct route;

struct req {
	struct mpool		*pool;
	struct FCGX_Request	*fr;		/* NULL in in-process tests */
	char			**env;		/* FastCGI params (or a test's) */

	enum http_method	 method;
	const char		*method_str;
	const char		*path;		/* raw path, without the query */
	const char		*request_id;
	const struct route	*route;
	struct kv		 params[8];	/* :name captures, decoded */
	int			 nparams;
	struct kv		*query;		/* decoded query arguments */
	int			 nquery;
	int			 query_bad;	/* malformed percent-encoding */

	/* body: from the FastCGI stream, or test_body in tests */
	const char		*test_body;
	size_t			 test_body_len;

	/* the caller, filled by auth_identify() */
	const char		*user_id;
	const char		*username;
	const char		*role;
	unsigned		 perms;
	int			 is_anonymous;
	const char		*jti;		/* access token id, for logout */
	long			 token_exp;
	const char		*api_key_id;	/* when signed in with an API key */
	const char		*self_cache;	/* the caller's profile JSON, from Redis */

	/* the error a handler sets before returning a code */
	const char		*err_message;
	struct json_object	*err_details;

	/* the response, buffered until the dispatcher writes it once */
	int			 status;
	struct hdr		*headers;
	const char		*content_type;
	const char		*body;
	size_t			 body_len;

	uint64_t		 started_us;
};

/* Set up r for one request from FastCGI params. */
void		 req_init(struct req *r, struct mpool *pool, struct FCGX_Request *fr,
		    char **env);
const char	*req_env(struct req *r, const char *name);
/* A route parameter, e.g. req_param(r, "id"). NULL if absent. */
const char	*req_param(struct req *r, const char *name);
/* A query argument, NULL if absent; the last one wins. */
const char	*req_query(struct req *r, const char *name);
/* A request header by its HTTP name ("X-Api-Key"), NULL if absent. */
const char	*req_header(struct req *r, const char *name);
/*
 * Read the whole body as it came, whatever its Content-Type (the caller
 * checks that), at most cfg.body_max bytes: E_TOO_LARGE beyond, or when
 * CONTENT_LENGTH says so before a byte is read; E_BAD_REQUEST for a
 * CONTENT_LENGTH that is not a number. Sets no error message. OUT: *buf
 * (pool, NUL-terminated after *len bytes; the body itself may hold NULs),
 * *len. The body can be read once.
 */
enum app_err	 req_read_body_raw(struct req *r, char **buf, size_t *len);
/*
 * Read and parse the JSON body. Checks Content-Type (415), size (413),
 * UTF-8, depth and trailing bytes (400). OUT: *out, owned by the pool.
 */
enum app_err	 req_json_body(struct req *r, struct json_object **out);
/* Record the message and details of the error about to be returned. */
enum app_err	 req_fail(struct req *r, enum app_err, const char *message,
		    struct json_object *details);

/*
 * Percent-decode [s, s+len) into a new pool string. '+' becomes ' ' when
 * plus_is_space. Returns NULL on a bad escape or an encoded NUL. Pure.
 */
char		*url_decode(struct mpool *, const char *s, size_t len, int plus_is_space);
/* The value of a hex digit, -1 for anything else. Pure. */
int		 hex_value(int c);
/* FNV-1a (64 bits) of a string: for hash tables, not for secrets. Pure. */
uint64_t	 str_hash(const char *s);
/* Split a query string into decoded pairs. OUT: *out, *n. -1 if malformed. */
int		 query_parse(struct mpool *, const char *qs, struct kv **out, int *n);
/*
 * 1 if the Content-Type value ct is the media type type ("text/plain"),
 * case-insensitive, with parameters, of which a charset must be UTF-8.
 * Pure.
 */
int		 content_type_is(const char *ct, const char *type);
/* 1 if [s, s+len) is strict UTF-8 (RFC 3629) without NUL bytes. Pure. */
int		 utf8_text_valid(const char *s, size_t len);
/* Lexical checks json-c misses (see req.c). 0 if fine, else OUT: *why. */
int		 json_prescan(const char *buf, size_t len, const char **why);
/*
 * Parse a JSON document with the given caps. OUT: *out (caller owns).
 * Returns E_OK, E_TOO_LARGE or E_BAD_REQUEST; OUT: *why on error. Pure.
 */
enum app_err	 json_parse_strict(const char *buf, size_t len, int max_depth,
		    struct json_object **out, const char **why);

/* ---- input.c: fields of a JSON body ------------------------------- */

/*
 * The body must be an object whose keys are all in allowed (NULL-ended);
 * a key in forbidden gets "cannot be set here". 400 otherwise.
 */
enum app_err	 body_only(struct req *, struct json_object *body,
		    const char *const *allowed, const char *const *forbidden);
/* A string field of min..max bytes. OUT: *out (NULL if absent), *len. */
enum app_err	 body_string(struct req *, struct json_object *body,
		    const char *field, int required, size_t min, size_t max,
		    const char **out, size_t *len);
enum app_err	 body_bool(struct req *, struct json_object *body,
		    const char *field, int *present, int *out);
/* An integer field in min..max (absent or null: *present = 0). OUT: *out. */
enum app_err	 body_int(struct req *, struct json_object *body,
		    const char *field, int *present, long min, long max, long *out);
/* 422 naming field, with details {"field","reason"}. */
enum app_err	 body_fail(struct req *, const char *field, const char *why);
enum app_err	 query_page(struct req *, long def_limit, long max_limit,
		    long *page, long *limit);
/*
 * An optional 1|0 query argument as SQL boolean text: OUT: *sql_bool
 * "true", "false", or NULL when absent. 400 for anything else.
 */
enum app_err	 query_flag(struct req *, const char *name, const char **sql_bool);
/* 400 naming the first query argument not in known (NULL-ended). */
enum app_err	 query_only(struct req *, const char *const *known);
/*
 * An optional whole-number query argument in min..max (400 otherwise).
 * OUT: *out, its text, or NULL when absent or empty.
 */
enum app_err	 query_int(struct req *, const char *name, long min, long max,
		    const char **out);

/* ---- resp.c --------------------------------------------------------- */

void		 resp_header(struct req *r, const char *name, const char *val);
/*
 * Content-Disposition: attachment, naming the file name + ext (ext with
 * its dot, ASCII): an ASCII fallback in filename (other bytes, '"', '\\',
 * '/' and ';' become '_'; cut near 120 bytes) and the exact UTF-8 name in
 * filename* (RFC 5987).
 */
void		 resp_attachment(struct req *r, const char *name, const char *ext);
/* Serialise obj as the body. Takes ownership of obj (pool cleanup). */
enum app_err	 resp_json(struct req *r, int status, struct json_object *obj);
/*
 * A body that is JSON already (a document the database wrote). json is not
 * copied: it must live as long as the request (pool memory, a PGresult).
 */
enum app_err	 resp_json_text(struct req *r, int status, const char *json,
		    size_t len);
/*
 * {"key":[...],...rest}: the array holds column col of the first nrows rows
 * of res, each a JSON document the database wrote; rest (owned: freed with
 * the request) holds the other members.
 */
enum app_err	 resp_json_list(struct req *r, int status, const char *key,
		    struct pg_result *res, int col, int nrows,
		    struct json_object *rest);
/* A column as a JSON string or integer; SQL NULL is JSON null. */
struct json_object *pg_json_str(struct pg_result *, int row, int col);
struct json_object *pg_json_int(struct pg_result *, int row, int col);
/* Build the body for err from r->err_message / r->err_details. */
void		 resp_error(struct req *r, enum app_err err);
/* Write status, headers and body to the FastCGI stream. */
void		 resp_send(struct req *r);

/* ---- router.c ------------------------------------------------------- */

typedef enum app_err (*handler_fn)(struct req *);

struct route {
	unsigned	 methods;	/* enum http_method bits */
	const char	*pattern;	/* "/api/playlists/:id/tracks" */
	handler_fn	 handler;
	unsigned	 needs;		/* enum perm bits; P_NONE: public */
	int		 flags;		/* ROUTE_* */
};
#define ROUTE_TEST_ONLY	0x1	/* only when DJAMMS_TEST_ROUTES=1 */
/* reads the search history: this worker's held searches are written first */
#define ROUTE_READS_HISTORY	0x2

struct route_table {
	const struct route	*routes;
	size_t			 n;
};

enum route_match { ROUTE_FOUND, ROUTE_NO_PATH, ROUTE_NO_METHOD };

/*
 * Find the route for method + path. ROUTE_FOUND fills r->route and
 * r->params; ROUTE_NO_METHOD fills OUT: *allow with the methods the path
 * does take. Pure apart from r.
 */
enum route_match router_match(struct req *r, enum http_method, const char *path,
		    unsigned *allow);
/* Run one request end to end: route, check, handle, respond, log. */
void		 dispatch(struct req *r);
enum http_method method_parse(const char *);
/* "GET, HEAD" for a bit set. OUT: buf. */
void		 method_list(unsigned methods, char *buf, size_t cap);
const struct route_table *router_tables(size_t *n);

/* ---- auth.c: identities, tokens, passwords ---------------------------- */

/* The permission matrix: the permissions a role has, 0 for no role. */
unsigned	 role_perms(const char *role);
int		 role_valid(const char *role);
const char	*perm_name(unsigned bit);
unsigned	 perm_parse(const char *name);		/* 0 if unknown */
/* A JSON array of the names of the bits in perms. */
struct json_object *perms_json(unsigned perms);

struct access_claims {
	char		 sub[37];
	char		 username[64];
	char		 role[16];
	char		 jti[40];
	long		 iat, exp;
	long		 ver;		/* the user's token version at issue */
	int		 anon;
};

struct token_user {
	const char	*id;
	const char	*username;
	const char	*email;		/* NULL for anonymous accounts */
	const char	*role;
	long		 ver;
	int		 is_anonymous;
};

/* Keys from cfg; -1 with a message when a secret is missing or short. */
int		 auth_init(void);
/*
 * Sign an access token for u, valid cfg.access_ttl_s from now. OUT:
 * *exp. The token is allocated from pool.
 */
char		*auth_sign_access(struct mpool *, const struct token_user *u,
		    time_t now, long *exp);
/*
 * Verify signature, algorithm, key id and every claim. Pure apart from
 * cfg. OUT: *c; on failure *why says which check failed.
 */
enum app_err	 auth_verify_access(const char *token, time_t now,
		    struct access_claims *c, const char **why);
/* auth_verify_access() with a per-worker memo of tokens already verified. */
enum app_err	 auth_verify_cached(const char *token, time_t now,
		    struct access_claims *c, const char **why);
void		 auth_cache_free(void);
/*
 * This worker's copy of user_id's profile JSON if it was read under
 * generation gen, else NULL. OUT: *len. Valid until the next store.
 */
const char	*auth_self_cached(const char *user_id, uint32_t gen, size_t *len);
void		 auth_self_store(const char *user_id, uint32_t gen, const char *json,
		    size_t len);
/*
 * Who is calling: a Bearer token or an API key (Authorization: ApiKey or
 * X-API-Key). No credentials is E_OK with r->user_id NULL.
 */
enum app_err	 auth_identify(struct req *r);
/* End every access token of user_id issued so far (Redis + DB). */
void		 auth_revoke_user_tokens(struct req *r, const char *user_id);
/* Drop the cached profile of user_id; call after any change to the row. */
void		 auth_forget_user(struct req *r, const char *user_id);
/* Put the caller's access token on the deny-list until it expires. */
void		 auth_deny_jti(struct req *r, const char *jti, const char *user_id,
		    long exp);
/* Copy unexpired deny-list entries from the database back into Redis. */
void		 auth_resync_denylist(void);

/* ---- revoke.c ------------------------------------------------------- */

/* The shared tables; the master makes them before forking. 0 if made. */
int		 revoke_shm_create(void);
void		 revoke_shm_destroy(void);
/*
 * Is the token of user_id with jti and version ver ended? 0 no, 1 yes,
 * -1 unknown here (no watcher live): ask Redis or the database.
 */
int		 revoke_token_state(const char *user_id, const char *jti, long ver,
		    time_t now);
/* The profile generation of user_id; -1 when not live. OUT: *gen. */
int		 revoke_profile_gen(const char *user_id, uint32_t *gen);
int		 revoke_is_live(void);
/* This process's own changes, written right after their commit. */
void		 revoke_note_version(const char *user_id, long ver, time_t at);
void		 revoke_note_jti(const char *jti, long exp);
void		 revoke_note_profile(const char *user_id);
/* Apply one djamms_auth announcement (sql/006). 0 if understood. */
int		 revoke_apply(const char *payload);
/*
 * The library's version on this machine, moved on by every library change
 * (announced by sql/008, or made here: revoke_library_bump() after the
 * commit). OUT: version. -1 while the watcher is not live: then nothing
 * may be cached by it.
 */
int		 revoke_library_version(uint64_t *version);
/*
 * A number that moves on whenever user_id's likes change (announced by
 * sql/011, or noted here after a commit). OUT: gen. -1 while not live.
 */
int		 revoke_likes_gen(const char *user_id, uint32_t *gen);
void		 revoke_note_likes(const char *user_id);
/* The same for user_id's search history (sql/020). */
int		 revoke_history_gen(const char *user_id, uint32_t *gen);
void		 revoke_note_history(const char *user_id);
void		 revoke_library_bump(void);
/*
 * A number that moves on with every change to the library or to what the
 * scheduler plays (sql/013). OUT: version. -1 while not live.
 */
int		 revoke_schedule_version(uint64_t *version);
void		 revoke_schedule_bump(void);

/* ---- jobs.c: background jobs ---------------------------------------- */

/* 1 if type is a job the runner knows ("fail" only in test mode). */
int		 jobs_type_known(const char *type);
/* thumbnails, analysis, hls: on jobs:queue:bulk; they take args.track_id */
int		 jobs_media_type(const char *type);
/* Queue a job (args: a JSON object text or NULL). 0 if queued. OUT: id. */
int		 jobs_enqueue(const char *type, const char *args_json,
		    int max_attempts, char id_out[37]);
long long	 jobs_backoff_ms(int attempts);
long long	 jobs_now_ms(void);		/* wall clock, ms since 1970 */
/*
 * For the status: runners whose heartbeat is current, jobs waiting, and
 * the age in seconds of the oldest waiting (-1 if none). -1 if Redis is
 * away.
 */
int		 jobs_health(long long *runners, long long *queued, long long *oldest_s);
/* What the queues hold now; -1 when Redis does not answer. */
struct jobs_figures {
	long long	 queued;	/* on the default queue */
	long long	 bulk;		/* on the bulk queue (media jobs) */
	long long	 delayed;	/* failed, waiting for their retry */
	long long	 dead;		/* kept for an admin */
	long long	 runners;	/* runner processes with a current heartbeat */
};
int		 jobs_figures(struct jobs_figures *f);
/* djamms jobs run|enqueue ...; the exit status. */
int		 jobs_cli(int argc, char **argv);

/* ---- backup.c: backups and restores ------------------------------- */

/* Write a backup (with the media or not). OUT: name_out, err. 0 if done. */
int		 backup_create(int with_media, char name_out[64], char *err,
		    size_t errlen);
/* Restore backup name, switching only when it succeeded. OUT: err. */
int		 backup_restore(const char *name, char *err, size_t errlen);
/* The complete backups, oldest first. OUT: *names (free with the next). */
int		 backup_names(char ***names);
void		 backup_names_free(char **names, int n);
/* A name backup_create() gives ("20250101T120000Z", "...Z-2"). Pure. */
int		 backup_name_valid(const char *s);
/* djamms backup create [--no-media] | list | restore NAME */
int		 backup_cli(int argc, char **argv);

/* ---- metrics.c: counters for GET /metrics --------------------------- */

/* Map the counters (the master, before forking). 0 if done. */
int		 metrics_shm_create(void);
void		 metrics_shm_destroy(void);
/* One request answered: its route (NULL: none matched), method, status. */
void		 metrics_request(const struct route *rt, enum http_method m,
		    int status, uint64_t us);
void		 metrics_db_error(int connection);
void		 metrics_redis_error(void);
struct metrics_summary {
	uint64_t	 requests, errors_4xx, errors_5xx, sum_us;
	uint64_t	 quantile_us[3];	/* p50, p95, p99: a bucket's bound */
	uint64_t	 db_errors, redis_errors;
};
/* Totals over every route since the pool started. OUT: out. */
void		 metrics_summary(struct metrics_summary *out);
/* The Prometheus text exposition of the pool. OUT: len. Pool memory. */
char		*metrics_render(struct mpool *pool, size_t *len);

/* ---- pagecache.c ---------------------------------------------------- */

/*
 * The page filed under key for this library version, if it has not
 * expired by now. OUT: len. The bytes stay valid until the next put.
 */
const char	*pagecache_get(const char *key, uint64_t version, time_t now,
		    size_t *len);
/* File a copy of body (len bytes) under key and version until expires. */
void		 pagecache_put(const char *key, uint64_t version, time_t expires,
		    const char *body, size_t len);
void		 pagecache_free(void);

/* ---- spell.c: correcting what users type ---------------------------- */

#define SPELL_MAXLEN	32		/* longer words are taken as typed */

struct spell_cand {
	const char	*word;		/* the library's word (worker memory) */
	int		 distance;	/* edits from what was typed */
	int		 tracks;	/* how many tracks use it */
};

/*
 * Edit distance of a and b (swaps of neighbours count once), or max + 1
 * when it is more than max. Pure.
 */
int		 spell_distance(const char *a, int la, const char *b, int lb, int max);
/* The same, exact, bit-parallel; -1 when a word is over 32 bytes. Pure. */
int		 spell_distance_bits(const char *a, int la, const char *b, int lb);
/* Replace the dictionary (the tests; the worker loads search_words). */
int		 spell_set_words(const char *const *words, const int *tracks, size_t n);
/*
 * The library's words one edit from word, and those within reach edits
 * that begin with its first byte (two slips do not change a word's first
 * letter too), closest first, then most used. OUT: out (at most max).
 * Returns how many.
 */
int		 spell_lookup(const char *word, int reach, struct spell_cand *out,
		    int max);
/*
 * The words of q as search_split makes them in the database, when q is
 * ASCII: lower case, cut at every byte that is not a letter or digit,
 * words over SPELL_MAXLEN letters left out, the first max kept. OUT:
 * out. Returns how many; -1 when q has a byte over 0x7f. Pure.
 */
int		 spell_split_ascii(const char *q, char (*out)[SPELL_MAXLEN + 1],
		    int max);
/* How many tracks use word, 0 when the library does not have it. */
int		 spell_count(const char *word);
/* The same two on a dictionary kept current with the library. */
int		 spell_candidates(struct req *r, const char *word, int reach,
		    struct spell_cand *out, int max);
int		 spell_known(struct req *r, const char *word);
/*
 * Load the dictionary now (a worker starting, before its first request):
 * a search then never waits for it, though a worker recycled after its
 * DJAMMS_MAX_REQUESTS starts anew while the others answer.
 */
void		 spell_preload(void);
void		 spell_free(void);

/* ---- listcache.c ---------------------------------------------------- */

struct listcache {
	char		 key[65];	/* hex SHA-256 of the canonical request */
	char		 version[24];	/* lib:ver, "" when Redis did not answer */
	uint64_t	 local;		/* this machine's library version */
	int		 local_ok;	/* local is known (the watcher is live) */
	long		 ttl_s;		/* how long listcache_put() keeps it */
};

/*
 * Answer r from a cache if a page for canon (the validated request, any
 * text) is there: 1 when it did, 0 when the caller must build the page and
 * then file it with listcache_put(), kept ttl_s seconds (nothing is
 * cached while DJAMMS_LIST_CACHE_TTL_S is 0). OUT: c.
 */
int		 listcache_get(struct req *r, const char *canon, long ttl_s,
		    struct listcache *c);
void		 listcache_put(struct req *r, const struct listcache *c);
/*
 * The same for a part of an answer: the cached text for canon (it lives as
 * long as the request), or NULL; then listcache_store() files it.
 */
const char	*listcache_lookup(struct req *r, const char *canon, long ttl_s,
		    struct listcache *c, size_t *len);
void		 listcache_store(struct req *r, const struct listcache *c,
		    const char *body, size_t len);
/* After any write to the library, once it committed. */
void		 library_changed(struct req *r);

/* ---- likes.c -------------------------------------------------------- */

/*
 * Add "liked" for r's caller to every track object of the JSON page in
 * r->body (a new body from the pool). Liked sets are kept per worker
 * under the likes generation (revoke_likes_gen()).
 */
enum app_err	 likes_mark_page(struct req *r);
/*
 * Where the flat {"id":"<uuid>",...} objects of body are: OUT: id_at (the
 * uuid's offset), end_at (the closing brace's). How many, at most max.
 */
int		 likes_find_tracks(const char *body, size_t len, size_t *id_at,
		    size_t *end_at, int max);
void		 likes_free(void);
/* The recent searches suggest keeps (handlers/search.c), at a worker's exit. */
void		 suggest_free(void);
/*
 * This worker's page cache key for an answer (what: the request, any text)
 * about r's caller that depends on the library and on the caller's likes,
 * under the versions of both as this machine knows them: no round trip.
 * OUT: key (hex, "" when unknown). 0 if known; -1 while the watcher is
 * not live (then nothing may be cached here).
 */
int		 likes_page_key(struct req *r, const char *what, char key[65]);
void		 revoke_set_live(int live);
/* OUT: the figures for /api/system/status. */
void		 revoke_stats(int *live, unsigned *versions, unsigned *denied,
		    unsigned long *applied);
/* The watcher process: LISTEN, load, apply; never returns. */
void		 revoke_watch_run(pid_t parent) __attribute__((noreturn));

/* Argon2id with cfg parameters; waits for a pool-wide permit. OUT: out. */
enum app_err	 password_hash(const char *pw, size_t len, char *out, size_t cap);
/* 0 if pw matches; a dummy verification when encoded is NULL. */
enum app_err	 password_verify(const char *encoded, const char *pw, size_t len,
		    int *match);
/* n random bytes as base64url (no padding). OUT: out[2 * n]. */
void		 random_token(char *out, size_t nbytes);
/* Lower-case hex SHA-256 of s. OUT: out[65]. */
void		 sha256_hex(const char *s, size_t len, char out[65]);
/* SHA-256 of s as a bytea text literal "\\x...". OUT: out[67]. */
void		 sha256_bytea(const char *s, size_t len, char out[67]);
/* base64url without padding. OUT: out[(n + 2) / 3 * 4 + 1]. */
void		 b64url_encode(const unsigned char *in, size_t n, char *out);
/* -1 on bad input. OUT: out (cap bytes), *outlen. */
int		 b64url_decode(const char *in, size_t n, unsigned char *out,
		    size_t cap, size_t *outlen);
int		 uuid_valid(const char *s);

/* ---- library.c: files into the library ------------------------------ */

enum library_mode {
	LIB_LINK,	/* hard-link (an upload's temp file; copies if it must) */
	LIB_COPY,	/* copy into storage (import --copy) */
	LIB_SYMLINK,	/* reference in place (import, the default) */
};

struct library_add {
	const char	*src_path;		/* the file to add */
	enum library_mode mode;
	const char	*user_id;		/* owner; NULL for imports */
	int		 check_quota;		/* charge user_id's quota */
	const char	*source;		/* "upload" or "import" */
	const char	*source_path;		/* import: the file's own path */
	long long	 source_size, source_mtime;
	const char	*original_filename;	/* for the title fallback */
	/* the client's values; NULL or 0: from tags, else the file name */
	const char	*title, *artist, *album, *genre;
	int		 year, track_no;
	int		 fault_after_file;	/* tests: abort() before the row */
	/*
	 * A new version of this track's file (an import whose file changed):
	 * the row is updated in place, keeping its id, playlists, likes and
	 * plays; the old file and covers go once the update committed, and
	 * stay if anything fails.
	 */
	const char	*replace_id;
};

struct library_result {
	char		 id[37];	/* the new track, or the duplicate's */
	char		 path[1024];	/* relative to the storage dir */
	long long	 size;
	int		 duplicate;
};

/*
 * Sniff, probe, hash, check duplicates and quota, place the file, write
 * covers and insert the row; a failure at any step leaves neither a row
 * nor a file. E_CONFLICT with out->duplicate for a file the owner already
 * has. r must have a pool (the CLI makes one).
 */
enum app_err	 library_add_file(struct req *r, const struct library_add *a,
		    struct library_result *out);
/*
 * The absolute path of a track's file_path, which must name a file under
 * storage/audio (no "..", nothing elsewhere): what may be read or removed
 * for it. NULL otherwise. OUT: buf (cap bytes).
 */
const char	*library_audio_path(const char *rel, char *buf, size_t cap);
/* Clean up after writers that died mid-way (see library.c). */
void		 library_recover(void);
void		 library_remove_covers(const char *track_id);
int		 library_sha256_file(const char *path, char hex[65], long long *size);

/* ---- media.c: what an audio file is ---------------------------- */

enum media_format { MF_UNKNOWN = 0, MF_MP3, MF_FLAC, MF_WAV, MF_AAC, MF_M4A, MF_OGG, MF_OPUS };

struct media_info {
	enum media_format format;
	const char	*mime;		/* "audio/mpeg", "audio/flac", "audio/wav", "audio/aac", "audio/mp4", "audio/ogg", "audio/opus" (static) */
	const char	*ext;		/* "mp3", "flac", "wav", "aac", "m4a", "ogg", "opus" (static) */
	char		 title[256], artist[256], album[256], genre[100];
	int		 year;		/* 0 if unknown */
	int		 track_no;	/* 0 if unknown */
	int		 duration_ms;	/* > 0 for a real file */
	int		 bitrate_kbps, sample_rate, channels;
	int		 has_cover;	/* an embedded picture exists */
};

/*
 * Decide the format from the bytes (libmagic, then our own checks: ftyp
 * brand "M4A "/"M4B ", the first Ogg packet, what follows an ID3v2 tag,
 * two MPEG frames in a row when libmagic only says octet-stream), never
 * from a name or a client header. MF_UNKNOWN for anything else (text,
 * executables, images, video, Ogg FLAC/Speex...). OUT: *mime (may be
 * NULL): the format's static MIME type; for MF_UNKNOWN libmagic's answer,
 * valid until the next call, or NULL if the file could not be read.
 */
enum media_format media_sniff(const char *path, const char **mime);
/*
 * Tags and audio properties: TagLib's C API for MP3, FLAC, M4A and Ogg
 * Vorbis; libavformat for WAV, Opus and ADTS AAC, which TagLib 1.13's C
 * API cannot open by type. duration_ms is libavformat's exact figure when
 * it agrees with TagLib's whole seconds. Strings trimmed, ill-formed
 * UTF-8 replaced by U+FFFD, cut between characters; missing tags are "".
 * Sets has_cover (as media_cover_extract would find one). Returns 0, or
 * -1 (OUT: *out zeroed) when the file does not read as audio of fmt or
 * its duration is 0.
 */
int		 media_probe(const char *path, enum media_format fmt,
		    struct media_info *out);
/*
 * The embedded cover (the front cover if marked, else the first picture)
 * via libavformat, with the demuxer media_sniff() picks. OUT: *data
 * (malloc'd, caller frees), *len. 0 found, 1 none, -1 not audio or error.
 */
int		 media_cover_extract(const char *path, unsigned char **data,
		    size_t *len);
/*
 * From JPEG/PNG/WebP/GIF bytes (at most 40 MB and 10000x10000; 4096x4096
 * worth of pixels for progressive JPEG, interlaced PNG and GIF, which are
 * decoded whole), write square-cropped 150, 300 and 600 px thumbnails as
 * "150.jpg" (quality 85) and "150.webp" (quality 80)... into dir,
 * creating it (0755; parents must exist). Everything is encoded in memory
 * first, then each file goes through a temp file, fsync and rename.
 * Returns 0, or -1 with nothing left from this call (a directory it
 * created is removed).
 */
int		 media_covers_write(const unsigned char *data, size_t len,
		    const char *dir);
/*
 * A path segment made safe: ASCII letters, digits, '.', '-', '_' kept;
 * Latin letters transliterated (é→e, ß→ss, æ→ae, ł→l...), combining
 * marks dropped, anything else '_'; runs of '_' collapse; no leading '.',
 * '-' or '_', no trailing '_'; at most 64 bytes; "unknown" if nothing is
 * left. Pure. OUT: out (cap bytes).
 */
void		 media_path_segment(const char *in, char *out, size_t cap);
/*
 * "dir/Artist - Title.mp3": title and artist guesses for when tags are
 * missing. Strips the directory and an extension, underscores become
 * spaces, splits at the first " - " (artist first), trims. "" when there
 * is nothing to guess. Pure. OUT: title (tcap bytes), artist (acap bytes).
 */
void		 media_guess_from_filename(const char *path, char *title,
		    size_t tcap, char *artist, size_t acap);
const char	*media_format_name(enum media_format);	/* "mp3"... or "unknown" */
/* libavformat's demuxer for fmt ("mp3", "mov"...); NULL for MF_UNKNOWN. */
const char	*media_demuxer(enum media_format);
/*
 * Open an audio file with the demuxer its sniffed format calls for, the
 * file protocol only. OUT: *ctx (avformat_close_input() it). 0 or -1.
 */
struct AVFormatContext;
int		 media_open_audio(const char *path, struct AVFormatContext **ctx);

/* ---- proc.c: helper programs, directory trees ------------------------- */

/*
 * Run argv (no shell; stdin /dev/null), stdout to out_path and stderr to
 * err_path when given. With timeout_s > 0 it runs in its own process
 * group, killed whole when it takes longer. 0 if it exited 0; its exit
 * status if it exited otherwise (126, 127: it could not be started); -1
 * if it was not run, was killed or timed out. OUT: err unless 0.
 */
int		 proc_run(char *const argv[], const char *out_path,
		    const char *err_path, int timeout_s, char *err, size_t errlen);
/* Remove path and, for a directory, everything under it (never following links). */
void		 rm_tree(const char *path);

/* ---- hls.c: HLS renditions ------------------------------------------ */

/* The renditions, lowest first (nginx's /hls/ location names them too). */
struct hls_rendition {
	const char	*name;		/* "64k": its directory, and ffmpeg's bitrate */
	int		 bps;
};
extern const struct hls_rendition hls_renditions[];
extern const size_t		 hls_nrenditions;
/*
 * <storage>/hls/<track_id>/: master.m3u8 and, per rendition (AAC at 64,
 * 128 and 256 kbit/s), <name>/index.m3u8 and <name>/segNNN.ts, made by
 * ffmpeg from src (an absolute path) in a temp directory, which takes the
 * place of the old one only once complete. 0 done; 1 ffmpeg refused the
 * file (err says why: the file is at fault); -1 a failure worth a retry.
 */
int		 hls_build(const char *track_id, const char *src, char *err,
		    size_t errlen);
void		 hls_remove(const char *track_id);
/*
 * The signed master URL for a track, valid until expires:
 * /hls/<id>/<expires>/<md5 base64url>/master.m3u8, checked by nginx's
 * secure_link over "<expires>/hls/<id> <secret>", which every file under
 * the prefix shares (the playlists name their files relatively). OUT:
 * out (cap bytes).
 */
void		 hls_master_url(const char *track_id, long expires, char *out,
		    size_t cap);

/* ---- orphans.c: what the cleanup job removes from disk ------------------ */

struct orphan_counts {
	long long	 audio_files;	/* in storage/audio, named by no track */
	long long	 cover_dirs;	/* images/tracks/<id> of tracks gone */
	long long	 hls_dirs;	/* hls/<id> of tracks gone, jobs' leftovers */
	long long	 upload_files;	/* stale bodies in tmp/upload */
};
/*
 * Remove, among what was last modified more than grace_s ago, the files
 * and directories of storage that belong to no track (see the counts).
 * 0, or -1 when the database could not say (nothing is removed then).
 */
int		 orphans_sweep(long grace_s, struct orphan_counts *out);
/* Rotated logs (DJAMMS_LOG_FILE.N, .N.gz) older than keep_days, removed. */
int		 logs_prune(long keep_days, long long *removed);

/* ---- analysis.c: tempo and loudness ------------------------------------ */

struct media_analysis {
	double		 seconds;	/* of audio decoded */
	int		 has_bpm;	/* enough beats were found */
	double		 bpm;		/* median of the beat intervals */
	double		 bpm_confidence;	/* aubio's, 0 when unsure */
	int		 has_loudness;	/* not silent */
	double		 lufs;		/* EBU R128 integrated loudness */
	double		 lra;		/* loudness range, LU */
	double		 peak_dbfs;	/* sample peak, the loudest channel */
};
/*
 * Decode the whole file (libavcodec, resampled to 44.1 kHz float), beat
 * tracking with aubio, loudness with libebur128. 0, or -1 (OUT: err) when
 * the file does not decode as audio.
 */
int		 media_analyze(const char *path, struct media_analysis *out,
		    char *err, size_t errlen);
/*
 * BPM from beat times (seconds, ascending): 60 over the mean of the
 * intervals (those between 0.2 and 3 s) within 8% of their median. 0
 * when fewer than 4 such intervals. Pure.
 */
double		 media_bpm_from_beats(const double *beats, size_t n);
/* Release libmagic and libvips; at worker exit. Safe to call twice. */
void		 media_shutdown(void);

/* ---- handlers/m3u.c: M3U text ----------------------------------------- */

/* One location of an M3U file and what it can be matched by. */
struct m3u_entry {
	int		 line;		/* of the location, from 1 */
	const char	*location;	/* as written, blanks around removed */
	const char	*extinf;	/* the #EXTINF text after its comma, or NULL */
	const char	*artist, *title; /* extinf split at " - ", or both NULL */
	const char	*path;		/* a file:// or http(s):// URL's decoded
					   path, else location with '\' as '/' */
	const char	*tail;		/* path's last two components, or NULL */
	char		 stream_id[37];	/* of "/api/music/tracks/<id>/stream", or "" */
};

struct m3u_file {
	const char		*name;		/* the first #PLAYLIST:, or NULL */
	struct m3u_entry	*entries;
	size_t			 n;
};

/*
 * Read an M3U or Extended M3U text (UTF-8 checked by the caller; a BOM
 * is skipped; LF or CRLF lines). Every line that is not blank and not a
 * '#' line is an entry; an #EXTINF line applies to the next entry only.
 * Pure apart from pool. OUT: *out, in pool.
 */
void		 m3u_parse(struct mpool *, const char *buf, size_t len,
		    struct m3u_file *out);

/* ---- handlers ------------------------------------------------------- */

extern const struct route_table	system_route_table;
extern const struct route_table	auth_route_table;
extern const struct route_table	admin_route_table;
extern const struct route_table	music_route_table;
extern const struct route_table	search_route_table;
extern const struct route_table	m3u_route_table;
extern const struct route_table	playlist_route_table;
extern const struct route_table	user_route_table;
extern const struct route_table	scheduler_route_table;
extern const struct route_table	settings_route_table;
extern const struct route_table	monitoring_route_table;
extern const struct route_table	device_route_table;
extern const struct route_table	log_route_table;
extern const struct route_table	jobs_route_table;

/*
 * history.c: the search history, written at once when no request waits
 * and in batches under load. history_write() writes what waits (before a
 * request that reads the history); history_wait_ms() is -1 when nothing
 * waits, else the ms until it is due. history_array() is pure; tested.
 */
void		 history_add(struct req *r, const char *query, const char *filters,
		    long count);
void		 history_write(void);
/* After a user's history changed: their cached recent searches are stale. */
void		 history_changed(const char *user_id);
int		 history_wait_ms(void);
char		*history_array(int n, const char *const *elems);

/* handlers/monitoring.c: MemTotal and MemAvailable in bytes. 0 if read. */
int		 memory_read(long long *total, long long *available);

/*
 * handlers/user.c: an ISO 8601 date ("2024-05-01") or date-time
 * ("2024-05-01T18:30", seconds and a fraction optional, then "Z", "+02:00",
 * "+0200", "+02" or no zone, meaning UTC) as microseconds since 1970 UTC.
 * A date alone is its first microsecond, or its last when end_of_day.
 * OUT: *us. 0 if s is one; -1 otherwise. Pure; tested.
 */
int		 iso8601_to_us(const char *s, int end_of_day, long long *us);

/* ---- migrate.c ------------------------------------------------------ */

int		 migrate_run(int status_only);

/* ---- admin_cli.c ---------------------------------------------------- */

/* djamms admin create|reset|ensure ...; returns the exit status. */
int		 admin_cli(int argc, char **argv);

/* ---- import_cli.c --------------------------------------------------- */

/*
 * djamms import DIR [--copy] [--user USERNAME] [--dry-run] and
 * djamms catalog FILE.csv [--user USERNAME], after config_load(CONFIG_ADMIN)
 * (they read DJAMMS_STORAGE_DIR themselves). Return the exit status.
 */
int		 import_cli(int argc, char **argv);
int		 catalog_cli(int argc, char **argv);

#endif
