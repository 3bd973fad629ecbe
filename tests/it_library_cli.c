/*
 * tests/it_library_cli.c: the operator's library commands against the
 * running stack: `djamms import` (in place and --copy, idempotent
 * re-runs, changed and non-audio files) and `djamms catalog` (a small
 * CSV with RFC 4180 quoting, loaded twice), and what the API then says
 * about the tracks they made. Each test works in its own temp directory
 * of ffmpeg-made files and looks only at rows whose source is there.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"

#define PASSWORD	"correct horse battery staple"

static const char	*stack_dir, *top;
static unsigned		 seq;

/* ---- helpers -------------------------------------------------------- */

/* Run `djamms ARGS` with the pool's environment: output, then "rc=N". */
static const char *
djamms(const char *fmt, ...)
{
	char	 args[2048];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return sh_out("eval \"$(%s/tools/stack env %s)\"; %s %s 2>&1; echo rc=$?",
	    top, stack_dir, getenv("DJAMMS_BIN"), args);
}

static const char *
psql(const char *fmt, ...)
{
	char	 sql[2048];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return sh_out(". %s/stack.env; psql -h $PG_SOCKET_DIR -p $PG_PORT -U djamms "
	    "-d djamms -Atqc \"%s\"", stack_dir, sql);
}

/* One tagged tone; freq keeps every file's bytes distinct. 0 if made. */
static int
tone(const char *path, int freq, const char *title)
{
	return sh("ffmpeg -nostdin -loglevel error -y -f lavfi -i "
	    "sine=frequency=%d:duration=1 -metadata title='%s' -metadata "
	    "artist='Import Tester' -metadata album='Fixtures' '%s'",
	    freq, title, path);
}

/*
 * A fresh collection: three audio files in nested folders (MP3, FLAC,
 * Ogg Vorbis), a text file and a dot-file that must be left alone.
 * OUT: dir (its real path). 0 on success.
 */
static int
make_collection(char dir[PATH_MAX])
{
	char	 tmpl[] = "/tmp/djlib.XXXXXX", p[PATH_MAX + 64], *real;
	int	 f = 300 + (int)(getpid() % 200) * 7 + (int)(++seq) * 1500;

	if (mkdtemp(tmpl) == NULL || (real = realpath(tmpl, NULL)) == NULL)
		return -1;
	snprintf(dir, PATH_MAX, "%s", real);
	free(real);
	if (sh("mkdir -p %s/a/b %s/c", dir, dir) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/a/one.mp3", dir);
	if (tone(p, f, "One") != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/a/b/two.flac", dir);
	if (tone(p, f + 100, "Two") != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/c/three.ogg", dir);
	if (tone(p, f + 200, "Three") != 0)
		return -1;
	return sh("echo 'not audio' > %s/a/notes.txt && cp %s/a/one.mp3 "
	    "%s/.hidden.mp3", dir, dir, dir);
}

static long
rows_under(const char *dir)
{
	return atol(psql("SELECT count(*) FROM tracks WHERE source_path LIKE '%s/%%'",
	    dir));
}

/* Symlinks in storage/audio pointing into dir. */
static long
links_into(const char *dir)
{
	return atol(sh_out("find %s/storage/audio -type l -lname '%s/*' | wc -l",
	    stack_dir, dir));
}

/* Every row under dir with its id and last change: equal means untouched. */
static const char *
snapshot(const char *dir, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", psql("SELECT string_agg(id || ':' || updated_at || "
	    "':' || file_path, ',' ORDER BY id) FROM tracks WHERE source_path "
	    "LIKE '%s/%%'", dir));
	return buf;
}

/* A new account's access token. OUT: token. 0 on success. */
static int
register_user(char *token, size_t cap)
{
	char		 body[512], name[64];
	const char	*h[2] = { "Content-Type: application/json", NULL };
	struct http_res	 res;
	const char	*a;
	int		 rc = -1;

	snprintf(name, sizeof(name), "libcli%ld%u", (long)getpid() % 100000, ++seq);
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"email\":"
	    "\"%s@example.org\",\"password\":\"" PASSWORD "\"}", name, name);
	res = http_do("POST", "/api/auth/register", h, body, strlen(body));
	if (res.status == 201 && (a = json_str(&res, "access_token")) != NULL) {
		snprintf(token, cap, "%s", a);
		rc = 0;
	} else
		fprintf(stderr, "    register %s: %ld %s\n", name, res.status, res.body);
	http_free(&res);
	return rc;
}

static struct http_res
get_as(const char *token, const char *path)
{
	char		 auth[4200];
	const char	*h[2] = { auth, NULL };

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	return http_do("GET", path, h, NULL, 0);
}

/* Write text to a new file in a temp dir. OUT: path. 0 on success. */
static int
write_csv(char path[PATH_MAX], const char *text)
{
	char	 tmpl[] = "/tmp/djcsv.XXXXXX";
	FILE	*f;

	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(path, PATH_MAX, "%s/catalog.csv", tmpl);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* ---- import --------------------------------------------------------- */

static void
test_import_twice_changes_nothing_the_second_time(void)
{
	char		 dir[PATH_MAX], before[8192], after[8192];
	const char	*out;

	expect(make_collection(dir) == 0);
	out = djamms("import %s", dir);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "import: 4 files in") != NULL);
	expect(strstr(out, "3 added, 0 updated, 0 unchanged, 1 failed") != NULL);
	expect(rows_under(dir) == 3);
	expect(links_into(dir) == 3);
	/* In place: every link resolves to the collection's own file. */
	expect(atol(sh_out("find %s/storage/audio -xtype l -lname '%s/*' | wc -l",
	    stack_dir, dir)) == 0);
	expect(strcmp(psql("SELECT count(*) FROM tracks WHERE source_path LIKE "
	    "'%s/%%' AND source = 'import' AND uploaded_by IS NULL AND "
	    "source_size > 0 AND source_mtime > 0", dir), "3") == 0);
	/* The dot-file is not part of the collection. */
	expect(strcmp(psql("SELECT count(*) FROM tracks WHERE source_path = "
	    "'%s/.hidden.mp3'", dir), "0") == 0);
	snapshot(dir, before, sizeof(before));

	out = djamms("import %s", dir);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "0 added, 0 updated, 3 unchanged, 1 failed") != NULL);
	expect(strcmp(snapshot(dir, after, sizeof(after)), before) == 0);
	expect(rows_under(dir) == 3);
	expect(links_into(dir) == 3);
	sh("rm -rf %s", dir);
}

static void
test_a_changed_file_is_updated(void)
{
	char		 dir[PATH_MAX], path[PATH_MAX + 32], old_id[64], one_id[64];
	char		 old_path[1024];
	const char	*out;

	expect(make_collection(dir) == 0);
	expect(strstr(djamms("import %s", dir), "rc=0") != NULL);
	snprintf(path, sizeof(path), "%s/a/b/two.flac", dir);
	snprintf(old_id, sizeof(old_id), "%s",
	    psql("SELECT id FROM tracks WHERE source_path = '%s'", path));
	expect(strlen(old_id) == 36);

	/* what the track has gathered, which a new version must keep */
	psql("UPDATE tracks SET play_count = 7, analyzed_at = now(), bpm = 99"
	    " WHERE id = '%s'", old_id);
	snprintf(old_path, sizeof(old_path), "%s",
	    psql("SELECT file_path FROM tracks WHERE id = '%s'", old_id));

	/* New tags, new bytes, and an mtime that cannot match the old one. */
	expect(tone(path, 5000 + (int)seq, "Two (remastered)") == 0);
	expect(sh("touch -d '2001-02-03 04:05:06' %s", path) == 0);
	out = djamms("import %s", dir);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "0 added, 1 updated, 2 unchanged, 1 failed") != NULL);
	/* the same track, id and plays, with the new version's tags */
	expect(strcmp(psql("SELECT id FROM tracks WHERE source_path = '%s'", path),
	    old_id) == 0);
	expect(strcmp(psql("SELECT title || '|' || play_count || '|' ||"
	    " (analyzed_at IS NULL) || '|' || (bpm IS NULL) FROM tracks WHERE id = '%s'",
	    old_id), "Two (remastered)|7|true|true") == 0);
	/* the new version has its own link; the old version's went */
	expect(rows_under(dir) == 3);
	expect(links_into(dir) == 3);
	snprintf(old_path, sizeof(old_path), "%s",
	    psql("SELECT file_path FROM tracks WHERE id = '%s'", old_id));
	expect(sh("test -L %s/storage/%s", stack_dir, old_path) == 0);
	expect(strcmp(sh_out("find %s/storage -name '*.old-*' -o -name '.new-*' | wc -l",
	    stack_dir), "0") == 0);

	/* Only the mtime moved: updated, and the track keeps its id. */
	snprintf(path, sizeof(path), "%s/a/one.mp3", dir);
	snprintf(one_id, sizeof(one_id), "%s",
	    psql("SELECT id FROM tracks WHERE source_path = '%s'", path));
	expect(sh("touch -d '2002-03-04 05:06:07' %s", path) == 0);
	out = djamms("import %s", dir);
	expect(strstr(out, "0 added, 1 updated, 2 unchanged, 1 failed") != NULL);
	expect(strcmp(psql("SELECT id FROM tracks WHERE source_path = '%s'", path),
	    one_id) == 0);
	out = djamms("import %s", dir);
	expect(strstr(out, "0 added, 0 updated, 3 unchanged, 1 failed") != NULL);
	sh("rm -rf %s", dir);
}

static void
test_a_non_audio_file_is_reported_and_skipped(void)
{
	char		 dir[PATH_MAX], want[PATH_MAX + 64];
	const char	*out;

	expect(make_collection(dir) == 0);
	out = djamms("import %s", dir);
	expect(strstr(out, "rc=0") != NULL);	/* skipped files are not fatal */
	snprintf(want, sizeof(want), "skipped: %s/a/notes.txt: ", dir);
	expect(strstr(out, want) != NULL);
	expect(strstr(out, "1 failed") != NULL);
	expect(strcmp(psql("SELECT count(*) FROM tracks WHERE source_path = "
	    "'%s/a/notes.txt'", dir), "0") == 0);
	/* A directory that is not there is fatal. */
	out = djamms("import %s/no-such-dir", dir);
	expect(strstr(out, "rc=1") != NULL);
	sh("rm -rf %s", dir);
}

static void
test_copy_puts_a_real_file_in_storage(void)
{
	char		 dir[PATH_MAX], stored[PATH_MAX + 1200];
	const char	*out, *rel;

	expect(make_collection(dir) == 0);
	out = djamms("import %s --copy", dir);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "3 added") != NULL);
	expect(links_into(dir) == 0);
	rel = psql("SELECT file_path FROM tracks WHERE source_path = '%s/a/one.mp3'",
	    dir);
	expect(strncmp(rel, "audio/", 6) == 0);
	snprintf(stored, sizeof(stored), "%s/storage/%s", stack_dir, rel);
	expect(sh("test -f '%s' && test ! -L '%s' && cmp -s '%s' %s/a/one.mp3",
	    stored, stored, stored, dir) == 0);
	/* The copy does not need the original any more. */
	sh("rm -rf %s", dir);
	expect(sh("test -s '%s'", stored) == 0);
}

static void
test_an_imported_track_streams_through_nginx(void)
{
	char		 dir[PATH_MAX], token[2048], path[256];
	const char	*id;
	struct http_res	 res;
	long		 size;

	expect(make_collection(dir) == 0);
	expect(strstr(djamms("import %s", dir), "rc=0") != NULL);
	size = atol(sh_out("stat -c %%s %s/c/three.ogg", dir));
	id = psql("SELECT id FROM tracks WHERE source_path = '%s/c/three.ogg'", dir);
	expect(strlen(id) == 36);
	snprintf(path, sizeof(path), "/api/music/tracks/%s/stream", id);
	expect(register_user(token, sizeof(token)) == 0);
	res = get_as(token, path);
	expect_status(&res, 200);
	expect((long)res.body_len == size);	/* nginx followed the symlink */
	http_free(&res);
	sh("rm -rf %s", dir);
}

/* ---- catalog -------------------------------------------------------- */

static void
test_catalog_loads_a_csv_once(void)
{
	char		 csv[PATH_MAX], text[2048], want[128];
	const char	*out;
	long		 tag = (long)getpid() * 100 + ++seq;

	/* Columns in another order; CRLF; quoting; an empty year; no title. */
	snprintf(text, sizeof(text),
	    "artist,title,album,genre,duration_ms,year,popularity,explicit,tempo,"
	    "energy,valence,danceability\r\n"
	    "Band %ld,\"Hello, World %ld\",Album,rock,180000,1999,50,false,120.5,"
	    "0.5,0.4,0.3\r\n"
	    "\"Quote \"\"The\"\" Band %ld\",\"Say \"\"hi\"\" %ld\",,pop,200500,,101,"
	    "true,99,1.01e-06,0.2,0.1\r\n"
	    "Band %ld,Plain %ld,Album,jazz,1000,1875,3,false,80,0.1,0.2,0.3\r\n"
	    "Nobody %ld,,Album,rock,1000,2000,1,false,1,1,1,1\r\n"
	    "\xc3\x89mile %ld,Caf\xc3\xa9 %ld,D\xc3\xa9j\xc3\xa0 Vu,chanson,210000,"
	    "1975,30,false,100,0.2,0.3,0.4\r\n",
	    tag, tag, tag, tag, tag, tag, tag, tag, tag);
	expect(write_csv(csv, text) == 0);

	out = djamms("catalog %s", csv);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "catalog: 5 rows read, 4 inserted, 0 already present, "
	    "1 skipped in") != NULL);
	expect(strcmp(psql("SELECT count(*) FROM tracks WHERE source = 'catalog' "
	    "AND artist LIKE '%%%ld' AND file_path IS NULL AND mime_type IS NULL "
	    "AND length(catalog_key) = 64", tag), "4") == 0);
	expect(strcmp(psql("SELECT coalesce(year::text, 'null') || '|' || "
	    "coalesce(album, 'null') || '|' || popularity || '|' || duration || '|' || "
	    "(metadata->>'explicit') || '|' || (metadata->>'energy')::float8 "
	    "FROM tracks WHERE title = 'Say \\\"hi\\\" %ld'", tag),
	    "null|null|100|200|true|1.01e-06") == 0);
	snprintf(want, sizeof(want), "Quote \"The\" Band %ld", tag);
	expect(strcmp(psql("SELECT artist FROM tracks WHERE title = 'Say \\\"hi\\\" "
	    "%ld'", tag), want) == 0);
	expect(strcmp(psql("SELECT year || '|' || duration_ms FROM tracks WHERE "
	    "title = 'Hello, World %ld'", tag), "1999|180000") == 0);

	out = djamms("catalog %s", csv);
	expect(strstr(out, "rc=0") != NULL);
	expect(strstr(out, "catalog: 5 rows read, 0 inserted, 4 already present, "
	    "1 skipped in") != NULL);
	expect(strcmp(psql("SELECT count(*) FROM tracks WHERE artist LIKE '%%%ld'",
	    tag), "4") == 0);
	sh("rm -rf $(dirname %s)", csv);
}

static void
test_catalog_refuses_a_header_without_required_columns(void)
{
	char		 csv[PATH_MAX];
	const char	*out;

	expect(write_csv(csv, "title,album\nSome title,Some album\n") == 0);
	out = djamms("catalog %s", csv);
	expect(strstr(out, "rc=1") != NULL);
	expect(strstr(out, "no \"artist\" column") != NULL);
	expect(strstr(out, "no \"duration_ms\" column") != NULL);
	sh("rm -rf $(dirname %s)", csv);
}

static void
test_a_catalogue_track_has_no_audio_to_stream(void)
{
	char		 csv[PATH_MAX], text[512], token[2048], path[256];
	const char	*id;
	long		 tag = (long)getpid() * 100 + ++seq;
	struct http_res	 res;

	snprintf(text, sizeof(text), "title,artist,duration_ms\n"
	    "Silent %ld,Nobody,1000\n", tag);
	expect(write_csv(csv, text) == 0);
	expect(strstr(djamms("catalog %s", csv), "1 inserted") != NULL);
	id = psql("SELECT id FROM tracks WHERE title = 'Silent %ld'", tag);
	expect(strlen(id) == 36);
	snprintf(path, sizeof(path), "/api/music/tracks/%s/stream", id);
	expect(register_user(token, sizeof(token)) == 0);
	res = get_as(token, path);
	expect_status(&res, 404);
	expect_json_str(&res, "error.code", "no_audio");
	http_free(&res);
	sh("rm -rf $(dirname %s)", csv);
}

#define T(fn)	{ #fn, fn }
const struct it_test library_cli_tests[] = {
	T(test_import_twice_changes_nothing_the_second_time),
	T(test_a_changed_file_is_updated),
	T(test_a_non_audio_file_is_reported_and_skipped),
	T(test_copy_puts_a_real_file_in_storage),
	T(test_an_imported_track_streams_through_nginx),
	T(test_catalog_loads_a_csv_once),
	T(test_catalog_refuses_a_header_without_required_columns),
	T(test_a_catalogue_track_has_no_audio_to_stream),
};
const size_t library_cli_ntests = sizeof(library_cli_tests) /
    sizeof(library_cli_tests[0]);

void
library_cli_tests_init(const char *dir, const char *repo)
{
	stack_dir = dir;
	top = repo;
}
