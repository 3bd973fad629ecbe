/*
 * tests/http.h: the integration tests' small HTTP client (libcurl) and
 * test runner. Requests go to BASE_URL, through the real nginx.
 */
#ifndef DJAMMS_TEST_HTTP_H
#define DJAMMS_TEST_HTTP_H

#include <pthread.h>
#include <stddef.h>

#include <curl/curl.h>

struct json_object;

struct http_res {
	long			 status;
	char			*body;
	size_t			 body_len;
	char			*headers;	/* raw, lower-cased names */
	struct json_object	*json;		/* NULL if the body is not JSON */
	double			 seconds;
	int			 curl_error;	/* 0, or a CURLcode */
};

/*
 * method, path (appended to BASE_URL), extra headers ("Name: value",
 * NULL-terminated, may be NULL), body and its length (NULL for none).
 */
struct http_res	 http_do(const char *method, const char *path,
		    const char *const *headers, const char *body, size_t len);
struct http_res	 http_get(const char *path);
struct http_res	 http_json(const char *method, const char *path, const char *json);
/* A JSON request (json may be NULL) with "Authorization: Bearer token". */
struct http_res	 http_bearer(const char *method, const char *path,
		    const char *token, const char *json);
void		 http_free(struct http_res *);
/* End this thread's connection (threads call it before they return). */
void		 http_close(void);
/* A response header's value (case-insensitive name), static buffer. */
const char	*http_header(const struct http_res *, const char *name);
/* "error.code"-style lookup into the JSON body; NULL if absent. */
const char	*json_str(const struct http_res *, const char *path);
long long	 json_int(const struct http_res *, const char *path, long long def);
double		 json_num(const struct http_res *, const char *path, double def);
int		 json_has(const struct http_res *, const char *path);
/* The array under key at the top of the body, or NULL. */
struct json_object *json_array(const struct http_res *, const char *key);
/* 1 or 0 for a JSON true or false at path, -1 for anything else. */
int		 json_lookup_bool(const struct http_res *, const char *path);

/* ---- accounts and the database, for the suites ---- */

#define IT_PASSWORD	"correct horse battery staple"

struct it_session {
	char	 access[2048];
	char	 id[64];
	char	 name[64];
};

/* The access token and user id of a sign-in answer; 0 if both are there. */
int		 it_take_session(struct http_res *, struct it_session *);
/*
 * A curl handle of its own, for a request from another thread: url, the
 * stack's self-signed certificate accepted, timeout_s (0: none), the body
 * discarded. The caller cleans it up.
 */
CURL		*it_curl_handle(const char *url, long timeout_s);
/* n threads th[] each running fn(arg); it_join() waits for them all. */
void		 it_threads(pthread_t *th, int n, void *(*fn)(void *), void *arg);
void		 it_join(pthread_t *th, int n);
/* A fresh account named prefix + a unique suffix, IT_PASSWORD; 0 if made. */
int		 it_new_user(const char *prefix, struct it_session *);
/* A guest (POST /api/auth/anonymous); 0 if made. */
int		 it_new_guest(struct it_session *);
int		 it_login(const char *name, struct it_session *);
/* An admin made with `djamms admin create`, signed in; 0 if made. */
int		 it_new_admin(const char *prefix, struct it_session *);
/* psql's answer to printf-style SQL, trimmed (static buffer). */
const char	*it_psql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* POST /api/playlists as s (name is JSON-safe text); 0 if made. OUT: id. */
int		 it_new_playlist(const struct it_session *s, const char *name,
		    int is_public, char id[37]);
/* The status of a JSON request with an optional bearer token. */
/* A counter of the pool's status (checks.pool.NAME); -1 if it is not there. */
long long	 it_pool_counter(const char *name);
long		 it_status(const char *method, const char *path, const char *token,
		    const char *json);

/* ---- the runner ---- */
struct it_test {
	const char	*name;
	void		(*fn)(void);
};
extern const struct it_test	 auth_tests[];
extern const size_t		 auth_ntests;
void		 auth_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 library_cli_tests[];
extern const size_t		 library_cli_ntests;
void		 library_cli_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 music_tests[];
extern const size_t		 music_ntests;
void		 music_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 playlist_tests[];
extern const size_t		 playlist_ntests;
void		 playlist_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 search_tests[];
extern const size_t		 search_ntests;
void		 search_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 user_tests[];
extern const size_t		 user_ntests;
void		 user_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 m3u_tests[];
extern const size_t		 m3u_ntests;
void		 m3u_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 scheduler_tests[];
extern const size_t		 scheduler_ntests;
void		 scheduler_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 settings_tests[];
extern const size_t		 settings_ntests;
void		 settings_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 ops_tests[];
extern const size_t		 ops_ntests;
void		 ops_tests_init(const char *stack_dir, const char *top);
extern const struct it_test	 jobs_tests[];
extern const size_t		 jobs_ntests;
void		 jobs_tests_init(const char *stack_dir, const char *top);

extern int	 t_failed_now;
void		 t_fail(const char *file, int line, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

#define expect(cond) do { if (!(cond)) { \
	t_fail(__FILE__, __LINE__, "expected %s", #cond); return; } } while (0)
#define expect_status(res, want) do { if ((res)->status != (want)) { \
	t_fail(__FILE__, __LINE__, "expected status %d, got %ld: %.300s", \
	    (want), (res)->status, (res)->body ? (res)->body : ""); \
	return; } } while (0)
/* A string result (never NULL) is want. */
#define expect_str(got, want) do { const char *g_ = (got); \
	if (strcmp(g_, (want)) != 0) { \
		t_fail(__FILE__, __LINE__, "expected \"%s\", got \"%s\"", (want), g_); \
		return; } } while (0)

#define expect_json_str(res, path, want) do { \
	const char *got_ = json_str((res), (path)); \
	if (got_ == NULL || strcmp(got_, (want)) != 0) { \
		t_fail(__FILE__, __LINE__, "expected %s = \"%s\", got %s%s%s", \
		    (path), (want), got_ ? "\"" : "", got_ ? got_ : "nothing", \
		    got_ ? "\"" : ""); return; } } while (0)

/* Run a shell command; its exit status. */
/* The whole of a file, malloc'd; NULL if it cannot be read. OUT: *len. */
char		*it_slurp(const char *path, size_t *len);
/*
 * POST file (its bytes) to path (/api/music/tracks?...) as token; the new
 * track's id in id. 0 on a 201.
 */
int		 it_upload_file(const char *token, const char *file, const char *path,
		    char id[37]);
/* Write res's body to path (for a tool to read). 0 or -1. */
int		 it_save_body(const struct http_res *res, const char *path);
/* nginx's secure_link signature of material: MD5, base64url, unpadded. */
void		 it_secure_link_sig(const char *material, char out[32]);
int		 sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole small command output, trimmed. Static buffer. */
const char	*sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void		 sleep_ms(long ms);

#endif
