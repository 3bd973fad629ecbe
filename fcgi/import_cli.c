/*
 * fcgi/import_cli.c: `djamms import` and `djamms catalog`, run by an
 * operator on the server, outside the worker pool.
 *
 * import walks a directory tree of audio files into the library, the way
 * Navidrome or gonic users bring an existing collection: each file is
 * referenced in place (a symlink under storage/audio) or copied. A file
 * is known by its real path; its size and mtime decide whether a later
 * run skips it, replaces it or adds it, so running it again is cheap and
 * changes nothing that did not change on disk.
 *
 * catalog loads a metadata-only catalogue (CSV, RFC 4180) as tracks
 * without audio: one COPY into a temp table and one INSERT ... ON
 * CONFLICT DO NOTHING, in one transaction, so a failure leaves nothing
 * and loading the same file twice adds nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "djamms.h"

#define PROGRESS_EVERY_US	500000
#define MAX_DEPTH		256	/* deeper trees are surely a mistake */
#define MAX_REASONS		10	/* catalog: skipped rows explained */

/* ---- shared ----------------------------------------------------------- */

static double
seconds_since(uint64_t t0)
{
	return (double)(now_us() - t0) / 1e6;
}

/*
 * Tell the workers their cached lists are stale, and queue the media jobs
 * for what came in. Best effort.
 */
static void
bump_library_version(void)
{
	struct redisReply	*rep;

	if (rds_connect() == 0 && (rep = rds_command(NULL, "INCR lib:ver")) != NULL) {
		freeReplyObject(rep);
		/* the new files' tempo, loudness and HLS renditions, by the runner */
		jobs_enqueue("analysis", NULL, 3, NULL);
		jobs_enqueue("hls", NULL, 3, NULL);
	}
	rds_disconnect();
}

static const struct db_stmt st_user_by_name = {
	"cli_user_by_name",
	"SELECT id FROM users WHERE username = $1::citext",
	1
};

/* The id of the user named name. OUT: id. 0, or -1 with a message. */
static int
user_lookup(struct req *r, const char *cmd, const char *name, char id[37])
{
	PGresult	*res;

	if (db_exec(r, &res, &st_user_by_name, (const char *const[]){ name }) != E_OK) {
		fprintf(stderr, "djamms %s: cannot look up user %s\n", cmd, name);
		return -1;
	}
	if (PQntuples(res) != 1) {
		fprintf(stderr, "djamms %s: no user named %s\n", cmd, name);
		return -1;
	}
	snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
	return 0;
}

/* ---- import ----------------------------------------------------------- */

static const struct db_stmt st_by_source = {
	"import_by_source",
	"SELECT id, source_size, source_mtime, file_path, content_sha256"
	" FROM tracks WHERE source_path = $1",
	1
};

static const struct db_stmt st_touch = {
	"import_touch",
	"UPDATE tracks SET source_size = $2, source_mtime = $3 WHERE id = $1",
	3
};

struct import_run {
	struct req	*r;
	const char	*user_id;	/* owner, or NULL */
	enum library_mode mode;
	int		 dry_run;
	dev_t		 storage_dev;	/* never import our own storage */
	ino_t		 storage_ino;
	long		 files, added, updated, unchanged, failed;
	uint64_t	 started_us, shown_us;
	int		 tty, shown;	/* a progress line is on screen */
};

static void
import_progress(struct import_run *ir)
{
	uint64_t	 now;

	if (!ir->tty)
		return;
	now = now_us();
	if (now - ir->shown_us < PROGRESS_EVERY_US)
		return;
	ir->shown_us = now;
	ir->shown = 1;
	fprintf(stderr, "\r\033[Kimport: %ld files, %ld added, %ld updated, "
	    "%ld unchanged, %ld failed", ir->files, ir->added, ir->updated,
	    ir->unchanged, ir->failed);
	fflush(stderr);
}

static void
import_skipped(struct import_run *ir, const char *path, const char *why)
{
	if (ir->shown)
		fputs("\r\033[K", stderr);	/* over the progress line */
	fprintf(stderr, "skipped: %s: %s\n", path, why);
	ir->shown = 0;
	ir->failed++;
}

/* Whether a dry run's new file would be accepted; NULL if so, else why. */
static const char *
import_dry_check(const char *path)
{
	struct media_info	 mi;
	enum media_format	 fmt;

	if ((fmt = media_sniff(path, NULL)) == MF_UNKNOWN)
		return "not an audio file djamms accepts";
	if (media_probe(path, fmt, &mi) != 0)
		return "the file is not readable audio";
	return NULL;
}

/*
 * One file of the walk, by path as found: skip it if its size and mtime
 * are what the library recorded, else (re)add it. Outcomes are counted
 * in ir; nothing here is fatal to the walk.
 */
static void
import_file(struct import_run *ir, const char *path)
{
	struct library_add	 a;
	struct library_result	 out;
	struct stat		 st;
	PGresult		*res, *touched;
	enum app_err		 err;
	char			*real, why[256], sha[65], nums[2][24];
	const char		*base, *msg;
	long long		 mtime, size;
	int			 replacing = 0;
	sigset_t		 critical, saved;
	char			 old_id[37];

	ir->files++;
	if ((real = realpath(path, NULL)) == NULL) {
		import_skipped(ir, path, strerror(errno));
		return;
	}
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		import_skipped(ir, path, "not a regular file");
		goto out;
	}
	mtime = (long long)st.st_mtim.tv_sec;

	if ((err = db_exec(ir->r, &res, &st_by_source,
	    (const char *const[]){ real })) != E_OK) {
		import_skipped(ir, path, "the database did not answer");
		goto out;
	}
	if (PQntuples(res) == 1) {
		if (atoll(PQgetvalue(res, 0, 1)) == (long long)st.st_size &&
		    !PQgetisnull(res, 0, 2) && atoll(PQgetvalue(res, 0, 2)) == mtime) {
			ir->unchanged++;
			goto out;
		}
		if (ir->dry_run) {
			ir->updated++;
			goto out;
		}
		/*
		 * Only the mtime moved (touched, or copied with the same bytes):
		 * the row stays, and with it its id, playlists and plays.
		 */
		if (!PQgetisnull(res, 0, 4) && library_sha256_file(real, sha, &size) == 0 &&
		    size == (long long)st.st_size && strcmp(sha, PQgetvalue(res, 0, 4)) == 0) {
			snprintf(nums[0], sizeof(nums[0]), "%lld", size);
			snprintf(nums[1], sizeof(nums[1]), "%lld", mtime);
			if (db_exec(ir->r, &touched, &st_touch, (const char *const[]){
			    PQgetvalue(res, 0, 0), nums[0], nums[1] }) != E_OK)
				import_skipped(ir, path, "the database did not answer");
			else
				ir->updated++;
			goto out;
		}
		/*
		 * New bytes: the row is updated in place with the new version
		 * (library.c), so the track keeps its id, playlists, likes and
		 * plays; a failure leaves the old version whole. Ctrl-C (or a
		 * closed pipe) waits until the swap is done.
		 */
		sigemptyset(&critical);
		sigaddset(&critical, SIGINT);
		sigaddset(&critical, SIGTERM);
		sigaddset(&critical, SIGHUP);
		sigaddset(&critical, SIGPIPE);
		sigprocmask(SIG_BLOCK, &critical, &saved);
		replacing = 1;
		snprintf(old_id, sizeof(old_id), "%s", PQgetvalue(res, 0, 0));
	}
	if (ir->dry_run) {
		if ((msg = import_dry_check(real)) != NULL)
			import_skipped(ir, path, msg);
		else
			ir->added++;
		goto out;
	}

	base = strrchr(real, '/');
	memset(&a, 0, sizeof(a));
	a.src_path = real;
	a.mode = ir->mode;
	a.user_id = ir->user_id;
	a.check_quota = 0;		/* an operator's import is not charged */
	a.source = "import";
	a.source_path = real;
	a.source_size = (long long)st.st_size;
	a.source_mtime = mtime;
	a.original_filename = base != NULL ? base + 1 : real;
	a.replace_id = replacing ? old_id : NULL;
	ir->r->err_message = NULL;
	err = library_add_file(ir->r, &a, &out);
	if (err == E_OK) {
		if (replacing)
			ir->updated++;
		else
			ir->added++;
		goto out;
	}
	if (err == E_CONFLICT && out.duplicate)
		snprintf(why, sizeof(why), "the same audio as track %s", out.id);
	else
		snprintf(why, sizeof(why), "%s", ir->r->err_message != NULL ?
		    ir->r->err_message : app_err_default_message(err));
	if (replacing)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
		    " (the library keeps its old version)");
	import_skipped(ir, path, why);
out:
	if (replacing)
		sigprocmask(SIG_SETMASK, &saved, NULL);
	free(real);
	pool_reset(ir->r->pool);
	import_progress(ir);
}

/*
 * Import the tree under path (a buffer of cap bytes holding len bytes).
 * Dot-files and dot-directories are skipped; symlinks to files are
 * followed, symlinks to directories are not (no loops). Entries go in
 * name order so runs are reproducible. -1 only if the top cannot be read.
 */
static int
import_walk(struct import_run *ir, char *path, size_t len, size_t cap, int depth)
{
	struct dirent	**ents;
	int		  n, i;

	if ((n = scandir(path, &ents, NULL, alphasort)) < 0) {
		if (depth == 0)
			return -1;
		import_skipped(ir, path, strerror(errno));
		return 0;
	}
	for (i = 0; i < n; i++) {
		const char	*name = ents[i]->d_name;
		struct stat	 st;
		size_t		 nlen = strlen(name);

		if (name[0] == '.')
			goto next;
		if (len + 1 + nlen >= cap) {
			import_skipped(ir, name, "path too long");
			goto next;
		}
		path[len] = '/';
		memcpy(path + len + 1, name, nlen + 1);
		if (lstat(path, &st) != 0)
			import_skipped(ir, path, strerror(errno));
		else if (S_ISDIR(st.st_mode)) {
			if (st.st_dev == ir->storage_dev && st.st_ino == ir->storage_ino)
				;	/* our own storage, not a collection */
			else if (depth + 1 >= MAX_DEPTH)
				import_skipped(ir, path, "directory nested too deep");
			else
				import_walk(ir, path, len + 1 + nlen, cap, depth + 1);
		} else if (S_ISREG(st.st_mode))
			import_file(ir, path);
		else if (S_ISLNK(st.st_mode) && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode))
			import_file(ir, path);
		path[len] = '\0';
next:
		free(ents[i]);
	}
	free(ents);
	return 0;
}

/*
 * The directories library_add_file writes to must exist and be ours to
 * write; otherwise every file would fail the same way. They are not made
 * here: made by root they would lock the service out of them.
 */
static int
storage_check(void)
{
	static const char *const dirs[] = { "audio", "tmp/intent" };
	char		 path[PATH_MAX];
	size_t		 i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", cfg.storage_dir, dirs[i]);
		if (access(path, W_OK | X_OK) != 0) {
			fprintf(stderr, "djamms import: %s: %s (run this as the "
			    "service's user, with DJAMMS_STORAGE_DIR set as it is)\n",
			    path, strerror(errno));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/images/tracks", cfg.storage_dir);
	if (access(path, W_OK | X_OK) != 0)
		fprintf(stderr, "djamms import: %s: %s; covers will not be "
		    "written\n", path, strerror(errno));
	return 0;
}

static int
import_usage(void)
{
	fprintf(stderr, "usage: djamms import DIR [--copy] [--user USERNAME] "
	    "[--dry-run]\n");
	return 2;
}

int
import_cli(int argc, char **argv)
{
	struct import_run	 ir;
	struct req		 r;
	struct stat		 st;
	const char		*dir = NULL, *user = NULL;
	char			 path[PATH_MAX + 1], user_id[37], *top;
	double			 secs;
	int			 i, rc = 1;

	memset(&ir, 0, sizeof(ir));
	ir.mode = LIB_SYMLINK;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--copy") == 0)
			ir.mode = LIB_COPY;
		else if (strcmp(argv[i], "--dry-run") == 0)
			ir.dry_run = 1;
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (argv[i][0] != '-' && dir == NULL)
			dir = argv[i];
		else
			return import_usage();
	}
	if (dir == NULL)
		return import_usage();
	cfg.test_routes = 0;		/* no fault injection from the CLI */
	if ((top = realpath(dir, NULL)) == NULL || stat(top, &st) != 0 ||
	    !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "djamms import: %s: %s\n", dir,
		    top == NULL ? strerror(errno) : "not a directory");
		free(top);
		return 1;
	}
	snprintf(path, sizeof(path), "%s", top);
	free(top);
	if (stat(cfg.storage_dir, &st) == 0) {
		ir.storage_dev = st.st_dev;
		ir.storage_ino = st.st_ino;
	}
	if (db_connect() != 0) {
		fprintf(stderr, "djamms import: cannot connect to the database\n");
		return 1;
	}

	memset(&r, 0, sizeof(r));
	r.pool = pool_new(16384);
	ir.r = &r;
	ir.tty = isatty(STDERR_FILENO);
	if (user != NULL) {
		if (user_lookup(&r, "import", user, user_id) != 0)
			goto out;
		ir.user_id = user_id;
		pool_reset(r.pool);
	}
	if (!ir.dry_run) {
		if (storage_check() != 0)
			goto out;
		library_recover();
	}

	ir.started_us = ir.shown_us = now_us();
	if (import_walk(&ir, path, strlen(path), sizeof(path), 0) != 0) {
		fprintf(stderr, "djamms import: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (ir.shown)
		fputs("\r\033[K", stderr);
	secs = seconds_since(ir.started_us);
	printf("import: %ld files in %.1f s (%.1f files/s): %ld added, %ld updated, "
	    "%ld unchanged, %ld failed%s\n", ir.files, secs,
	    secs > 0 ? (double)ir.files / secs : 0.0, ir.added, ir.updated,
	    ir.unchanged, ir.failed, ir.dry_run ? " (dry run: nothing changed)" : "");
	if (!ir.dry_run && ir.added + ir.updated > 0)
		bump_library_version();
	rc = 0;
out:
	pool_free(r.pool);
	db_disconnect();
	media_shutdown();
	return rc;
}

/* ---- catalog: the CSV reader ------------------------------------------ */

/*
 * One RFC 4180 record at a time: quoted fields, doubled quotes, commas
 * and line breaks inside quotes, LF or CRLF line ends. The fields are
 * NUL-terminated copies in buf, valid until the next record.
 */
struct csv {
	FILE	*f;
	char	*line;
	size_t	 linecap;
	char	*buf;
	size_t	 bufcap, buflen;
	size_t	*off;		/* each field's offset in buf */
	int	 nfields, maxfields;
	long	 lineno;	/* of the record's last line */
};

static void
csv_put(struct csv *c, char ch)
{
	if (c->buflen + 1 >= c->bufcap) {
		c->bufcap = c->bufcap ? c->bufcap * 2 : 4096;
		if ((c->buf = realloc(c->buf, c->bufcap)) == NULL)
			abort();
	}
	c->buf[c->buflen++] = ch;
}

static void
csv_field_start(struct csv *c)
{
	if (c->nfields == c->maxfields) {
		c->maxfields = c->maxfields ? c->maxfields * 2 : 16;
		if ((c->off = realloc(c->off, c->maxfields * sizeof(*c->off))) == NULL)
			abort();
	}
	c->off[c->nfields++] = c->buflen;
}

/* Read a physical line without its LF or CRLF. Its length, or -1 at EOF. */
static ssize_t
csv_line(struct csv *c)
{
	ssize_t	 n = getline(&c->line, &c->linecap, c->f);

	if (n < 0)
		return -1;
	c->lineno++;
	if (n > 0 && c->line[n - 1] == '\n')
		n--;
	if (n > 0 && c->line[n - 1] == '\r')
		n--;
	return n;
}

/*
 * The next record. 1 with its fields, 0 at the end of the file, -1 for
 * a malformed one (OUT: *why), which is consumed all the same.
 */
static int
csv_record(struct csv *c, const char **why)
{
	ssize_t	 n;
	size_t	 i;
	int	 inq = 0, closed = 0, bad = 0;

	c->nfields = 0;
	c->buflen = 0;
	if ((n = csv_line(c)) < 0)
		return 0;
	csv_field_start(c);
	for (i = 0;; i++) {
		char	 ch;

		if (i == (size_t)n) {
			if (!inq)
				break;
			/* A line break inside quotes is part of the field. */
			if ((n = csv_line(c)) < 0) {
				*why = "a quoted field is not closed";
				bad = 1;
				break;
			}
			csv_put(c, '\n');
			i = (size_t)-1;
			continue;
		}
		ch = c->line[i];
		if (ch == '\0') {
			*why = "a NUL byte";
			bad = 1;
		}
		if (inq) {
			if (ch != '"')
				csv_put(c, ch);
			else if (i + 1 < (size_t)n && c->line[i + 1] == '"') {
				csv_put(c, '"');
				i++;
			} else {
				inq = 0;
				closed = 1;
			}
		} else if (ch == ',') {
			csv_put(c, '\0');
			csv_field_start(c);
			closed = 0;
		} else if (closed) {
			*why = "text after a closing quote";
			bad = 1;
		} else if (ch == '"' && c->buflen == c->off[c->nfields - 1])
			inq = 1;
		else
			csv_put(c, ch);	/* a stray quote inside a bare field: text */
	}
	csv_put(c, '\0');
	return bad ? -1 : 1;
}

/* ---- catalog: the values ---------------------------------------------- */

enum catalog_col {
	COL_TITLE, COL_ARTIST, COL_ALBUM, COL_GENRE, COL_DURATION_MS, COL_YEAR,
	COL_POPULARITY, COL_EXPLICIT, COL_TEMPO, COL_ENERGY, COL_VALENCE,
	COL_DANCEABILITY, NCOLS
};

static const char *const col_names[NCOLS] = {
	"title", "artist", "album", "genre", "duration_ms", "year", "popularity",
	"explicit", "tempo", "energy", "valence", "danceability",
};

static const int col_required[NCOLS] = {
	[COL_TITLE] = 1, [COL_ARTIST] = 1, [COL_DURATION_MS] = 1,
};

/* Trim ASCII blanks in place. */
static char *
trim(char *s)
{
	size_t	 n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* Well-formed UTF-8: no overlong forms, surrogates or values past U+10FFFF. */
static int
utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned	 c = *s, n, i;
		uint32_t	 cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Cut s (valid UTF-8) after max characters, as the CHECKs count them. */
static void
utf8_cut(char *s, size_t max)
{
	size_t	 chars = 0;
	char	*p;

	for (p = s; *p != '\0'; p++)
		if ((*p & 0xc0) != 0x80 && chars++ == max) {
			*p = '\0';
			return;
		}
}

/* s is a JSON number as written (so it can go into the JSON verbatim). */
static int
json_number_ok(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return 0;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* A growing buffer of COPY text. */
struct copybuf {
	char	*p;
	size_t	 len, cap;
};

static void
cb_reserve(struct copybuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	while (b->len + n > b->cap)
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
	if ((b->p = realloc(b->p, b->cap)) == NULL)
		abort();
}

static void
cb_raw(struct copybuf *b, const char *s)
{
	size_t	 n = strlen(s);

	cb_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* A text column, escaped as COPY's text format wants; NULL is \N. */
static void
cb_text(struct copybuf *b, const char *s)
{
	if (s == NULL) {
		cb_raw(b, "\\N");
		return;
	}
	cb_reserve(b, 2 * strlen(s));
	for (; *s != '\0'; s++) {
		char	 esc = *s == '\\' ? '\\' : *s == '\t' ? 't' : *s == '\n' ? 'n' :
			    *s == '\r' ? 'r' : 0;

		if (esc) {
			b->p[b->len++] = '\\';
			b->p[b->len++] = esc;
		} else
			b->p[b->len++] = *s;
	}
}

static void
sha256_hex3(const char *a, const char *b, const char *c, char hex[65])
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 md[32];
	unsigned int		 n = 0;
	EVP_MD_CTX		*ctx;
	int			 i;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, a, strlen(a));
	EVP_DigestUpdate(ctx, "\x1f", 1);
	EVP_DigestUpdate(ctx, b, strlen(b));
	EVP_DigestUpdate(ctx, "\x1f", 1);
	EVP_DigestUpdate(ctx, c, strlen(c));
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

/*
 * Turn the current record into one line of COPY text for catalog_in.
 * NULL if the row is kept, else why it is skipped.
 */
static const char *
catalog_row(struct csv *c, const int *map, struct copybuf *b)
{
	static char	 absent[1] = "", unknown_artist[] = "Unknown Artist";
	char		*v[NCOLS], key[65], num[3][24], json[256];
	const char	*metrics[4] = { "tempo", "energy", "valence", "danceability" };
	long		 duration_ms, year = 0, popularity = 0;
	int		 i, has_year = 0;
	size_t		 jl;

	if (c->nfields != map[NCOLS])
		return c->nfields < map[NCOLS] ? "too few fields" : "too many fields";
	for (i = 0; i < NCOLS; i++) {
		v[i] = map[i] >= 0 ? trim(c->buf + c->off[map[i]]) : absent;
		if (!utf8_valid((const unsigned char *)v[i]))
			return "not UTF-8";
	}
	if (v[COL_TITLE][0] == '\0')
		return "empty title";
	if (config_parse_long(v[COL_DURATION_MS], 0, INT_MAX, &duration_ms) != 0)
		return "duration_ms is not a whole number of milliseconds";
	if (config_parse_long(v[COL_YEAR], LONG_MIN, LONG_MAX, &year) == 0 &&
	    year >= 1000 && year <= 9999)
		has_year = 1;
	if (config_parse_long(v[COL_POPULARITY], LONG_MIN, LONG_MAX, &popularity) == 0)
		popularity = popularity < 0 ? 0 : popularity > 100 ? 100 : popularity;
	else
		popularity = 0;
	if (v[COL_ARTIST][0] == '\0')
		v[COL_ARTIST] = unknown_artist;

	/* The key is of the values as given, before the cuts below. */
	sha256_hex3(v[COL_TITLE], v[COL_ARTIST], v[COL_ALBUM], key);
	utf8_cut(v[COL_TITLE], 255);
	utf8_cut(v[COL_ARTIST], 255);
	utf8_cut(v[COL_ALBUM], 255);
	utf8_cut(v[COL_GENRE], 100);

	/* metadata: only what parses, as JSON numbers and booleans. */
	jl = (size_t)snprintf(json, sizeof(json), "{");
	if (strcasecmp(v[COL_EXPLICIT], "true") == 0 || strcmp(v[COL_EXPLICIT], "1") == 0)
		jl += (size_t)snprintf(json + jl, sizeof(json) - jl, "\"explicit\":true");
	else if (strcasecmp(v[COL_EXPLICIT], "false") == 0 ||
	    strcmp(v[COL_EXPLICIT], "0") == 0)
		jl += (size_t)snprintf(json + jl, sizeof(json) - jl, "\"explicit\":false");
	for (i = 0; i < 4; i++) {
		const char	*s = v[COL_TEMPO + i];

		if (!json_number_ok(s) || strlen(s) > 32)
			continue;
		jl += (size_t)snprintf(json + jl, sizeof(json) - jl, "%s\"%s\":%s",
		    jl > 1 ? "," : "", metrics[i], s);
	}
	snprintf(json + jl, sizeof(json) - jl, "}");

	snprintf(num[0], sizeof(num[0]), "%ld", duration_ms);
	snprintf(num[1], sizeof(num[1]), "%ld", year);
	snprintf(num[2], sizeof(num[2]), "%ld", popularity);
	cb_text(b, v[COL_TITLE]);
	cb_raw(b, "\t");
	cb_text(b, v[COL_ARTIST]);
	cb_raw(b, "\t");
	cb_text(b, v[COL_ALBUM][0] ? v[COL_ALBUM] : NULL);
	cb_raw(b, "\t");
	cb_text(b, v[COL_GENRE][0] ? v[COL_GENRE] : NULL);
	cb_raw(b, "\t");
	cb_raw(b, num[0]);
	cb_raw(b, "\t");
	cb_raw(b, has_year ? num[1] : "\\N");
	cb_raw(b, "\t");
	cb_raw(b, num[2]);
	cb_raw(b, "\t");
	cb_text(b, json);
	cb_raw(b, "\t");
	cb_raw(b, key);
	cb_raw(b, "\n");
	return NULL;
}

/*
 * Map the header's names to columns. OUT: map[col] = field index or -1,
 * map[NCOLS] = the number of fields. 0, or -1 with a message.
 */
static int
catalog_header(struct csv *c, int *map)
{
	const char	*why = NULL;
	int		 i, j, bad = 0;

	for (i = 0; i < NCOLS; i++)
		map[i] = -1;
	if (csv_record(c, &why) != 1) {
		fprintf(stderr, "djamms catalog: no header line%s%s\n",
		    why ? ": " : "", why ? why : "");
		return -1;
	}
	map[NCOLS] = c->nfields;
	for (j = 0; j < c->nfields; j++) {
		char	*name = c->buf + c->off[j];

		if (j == 0 && strncmp(name, "\xef\xbb\xbf", 3) == 0)
			name += 3;	/* a byte-order mark */
		name = trim(name);
		for (i = 0; i < NCOLS; i++)
			if (strcmp(name, col_names[i]) == 0)
				break;
		if (i == NCOLS) {
			fprintf(stderr, "djamms catalog: unknown column \"%s\" "
			    "(known: title, artist, album, genre, duration_ms, year, "
			    "popularity, explicit, tempo, energy, valence, "
			    "danceability)\n", name);
			bad = 1;
		} else if (map[i] >= 0) {
			fprintf(stderr, "djamms catalog: column \"%s\" appears twice\n",
			    name);
			bad = 1;
		} else
			map[i] = j;
	}
	for (i = 0; i < NCOLS; i++)
		if (col_required[i] && map[i] < 0) {
			fprintf(stderr, "djamms catalog: the header has no \"%s\" "
			    "column (required: title, artist, duration_ms)\n",
			    col_names[i]);
			bad = 1;
		}
	return bad ? -1 : 0;
}

/* ---- catalog: the load ------------------------------------------------ */

static const struct db_stmt st_catalog_insert = {
	"catalog_insert",
	"INSERT INTO tracks (title, artist, album, genre, duration, duration_ms,"
	" year, popularity, metadata, catalog_key, source, uploaded_by,"
	" file_path, mime_type)"
	" SELECT title, artist, album, genre, duration_ms / 1000, duration_ms,"
	" year, popularity, metadata, catalog_key, 'catalog', $1::uuid,"
	" NULL, NULL FROM catalog_in"
	" ON CONFLICT (catalog_key) WHERE catalog_key IS NOT NULL DO NOTHING",
	1
};

struct catalog_run {
	struct csv	 csv;
	int		 map[NCOLS + 1];
	long		 data_start;	/* file offset after the header */
	long		 header_lines;
	const char	*user_id;
	long		 rows, skipped, inserted;
	int		 tty;
};

static int
pq_ok(PGresult *res, ExecStatusType want, const char *what)
{
	int	 ok = res != NULL && PQresultStatus(res) == want;

	if (!ok)
		fprintf(stderr, "djamms catalog: %s: %s", what,
		    res ? PQresultErrorMessage(res) : PQerrorMessage(db_conn()));
	PQclear(res);
	return ok;
}

/* The body of the load's transaction; run again from the top on a retry. */
static enum app_err
catalog_load(struct req *r, void *arg)
{
	struct catalog_run	*cr = arg;
	struct copybuf		 b = { NULL, 0, 0 };
	PGconn			*conn = db_conn();
	PGresult		*res;
	const char		*why, *uid = cr->user_id;
	uint64_t		 shown = now_us();
	enum app_err		 err = E_INTERNAL;
	int			 rc, reasons = 0;

	cr->rows = cr->skipped = cr->inserted = 0;
	if (fseek(cr->csv.f, cr->data_start, SEEK_SET) != 0)
		return E_INTERNAL;
	cr->csv.lineno = cr->header_lines;
	if (!pq_ok(PQexec(conn, "CREATE TEMP TABLE catalog_in (title text,"
	    " artist text, album text, genre text, duration_ms integer,"
	    " year integer, popularity integer, metadata jsonb, catalog_key text)"
	    " ON COMMIT DROP"), PGRES_COMMAND_OK, "cannot create the load table") ||
	    !pq_ok(PQexec(conn, "COPY catalog_in FROM STDIN"), PGRES_COPY_IN,
	    "cannot start COPY"))
		return E_INTERNAL;
	while ((rc = csv_record(&cr->csv, &why)) != 0) {
		if (rc == 1 && cr->csv.nfields == 1 && cr->csv.buf[0] == '\0')
			continue;	/* a blank line */
		cr->rows++;
		if (rc == 1)
			why = catalog_row(&cr->csv, cr->map, &b);
		if (why != NULL) {
			cr->skipped++;
			if (reasons++ < MAX_REASONS)
				fprintf(stderr, "skipped: line %ld: %s\n",
				    cr->csv.lineno, why);
		}
		if (b.len >= (1 << 20) - 4096) {
			if (PQputCopyData(conn, b.p, (int)b.len) != 1)
				goto copy_failed;
			b.len = 0;
		}
		if (cr->tty && now_us() - shown >= PROGRESS_EVERY_US) {
			shown = now_us();
			fprintf(stderr, "\r\033[Kcatalog: %ld rows read", cr->rows);
		}
	}
	if (cr->tty)
		fputs("\r\033[K", stderr);
	if (reasons > MAX_REASONS)
		fprintf(stderr, "skipped: %d more rows\n", reasons - MAX_REASONS);
	if (ferror(cr->csv.f)) {
		fprintf(stderr, "djamms catalog: read error: %s\n", strerror(errno));
		PQputCopyEnd(conn, "read error");
		goto drain;
	}
	if ((b.len > 0 && PQputCopyData(conn, b.p, (int)b.len) != 1) ||
	    PQputCopyEnd(conn, NULL) != 1)
		goto copy_failed;
	if (!pq_ok(PQgetResult(conn), PGRES_COMMAND_OK, "COPY failed"))
		goto drain;
	PQclear(PQgetResult(conn));	/* the NULL that ends it */
	if ((err = db_exec(r, &res, &st_catalog_insert,
	    (const char *const[]){ uid })) != E_OK) {
		fprintf(stderr, "djamms catalog: the insert failed (%s)\n",
		    db_last_sqlstate());
		goto out;
	}
	cr->inserted = atol(PQcmdTuples(res));
	err = E_OK;
	goto out;

copy_failed:
	fprintf(stderr, "djamms catalog: COPY failed: %s", PQerrorMessage(conn));
drain:
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	err = E_INTERNAL;
out:
	free(b.p);
	return err;
}

static int
catalog_usage(void)
{
	fprintf(stderr, "usage: djamms catalog FILE.csv [--user USERNAME]\n");
	return 2;
}

int
catalog_cli(int argc, char **argv)
{
	struct catalog_run	 cr;
	struct req		 r;
	const char		*file = NULL, *user = NULL;
	char			 user_id[37];
	uint64_t		 t0 = now_us();
	int			 i, rc = 1;

	memset(&cr, 0, sizeof(cr));
	memset(&r, 0, sizeof(r));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (argv[i][0] != '-' && file == NULL)
			file = argv[i];
		else
			return catalog_usage();
	}
	if (file == NULL)
		return catalog_usage();
	if ((cr.csv.f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "djamms catalog: %s: %s\n", file, strerror(errno));
		return 1;
	}
	if (catalog_header(&cr.csv, cr.map) != 0)
		goto out;
	if ((cr.data_start = ftell(cr.csv.f)) < 0) {
		fprintf(stderr, "djamms catalog: %s: not a regular file\n", file);
		goto out;
	}
	cr.header_lines = cr.csv.lineno;
	cr.tty = isatty(STDERR_FILENO);
	if (db_connect() != 0) {
		fprintf(stderr, "djamms catalog: cannot connect to the database\n");
		goto out;
	}
	/* One big statement: the pool's per-statement cap is for requests. */
	if (!pq_ok(PQexec(db_conn(), "SET statement_timeout = 0"), PGRES_COMMAND_OK,
	    "cannot lift the statement timeout"))
		goto out;
	r.pool = pool_new(16384);
	if (user != NULL) {
		if (user_lookup(&r, "catalog", user, user_id) != 0)
			goto out;
		cr.user_id = user_id;
	}
	if (db_tx(&r, "READ COMMITTED", catalog_load, &cr) != E_OK) {
		fprintf(stderr, "djamms catalog: the load failed; nothing was added\n");
		goto out;
	}
	/* Fresh statistics for the planner: the table may have grown tenfold. */
	pq_ok(PQexec(db_conn(), "ANALYZE tracks"), PGRES_COMMAND_OK,
	    "ANALYZE failed (the load itself is committed)");
	printf("catalog: %ld rows read, %ld inserted, %ld already present, "
	    "%ld skipped in %.1f s\n", cr.rows, cr.inserted,
	    cr.rows - cr.skipped - cr.inserted, cr.skipped, seconds_since(t0));
	if (cr.inserted > 0)
		bump_library_version();
	rc = 0;
out:
	if (r.pool != NULL)
		pool_free(r.pool);
	db_disconnect();
	fclose(cr.csv.f);
	free(cr.csv.line);
	free(cr.csv.buf);
	free(cr.csv.off);
	return rc;
}
