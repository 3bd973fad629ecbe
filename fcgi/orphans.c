/*
 * fcgi/orphans.c: what the cleanup job removes from disk. A file in
 * storage that no track names any more (a crash between a file and its
 * row that library_recover() could not settle, a row deleted by hand),
 * covers and HLS renditions of tracks that are gone, a crashed job's work
 * directories, stale upload bodies; and rotated logs past their age.
 *
 * Only what has not been touched for the grace period is a candidate, so
 * a write in flight (its file is young) is never taken for an orphan.
 * Nothing outside <storage>/{audio,images/tracks,hls,tmp/upload} and the
 * log directory is looked at. Links are never followed: the links of
 * `djamms import` in audio/ are removed when orphaned, never their targets.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "djamms.h"

#define BATCH	500

/* nftw has no argument for its callback: the walk's state */
static struct {
	time_t		 cutoff;
	size_t		 skip;		/* strlen(storage) + 1 */
	char		*batch[BATCH];
	int		 n, failed;
	struct orphan_counts *counts;
} walk;

/* Text array literal for a batch: {"a","b"} with quotes and backslashes escaped. */
static char *
pg_text_array(char *const *items, int n)
{
	size_t	 cap = 3, o = 0;
	int	 i;
	char	*out, *p;

	for (i = 0; i < n; i++)
		cap += 2 * strlen(items[i]) + 3;
	if ((out = malloc(cap)) == NULL)
		abort();
	out[o++] = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			out[o++] = ',';
		out[o++] = '"';
		for (p = items[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				out[o++] = '\\';
			out[o++] = *p;
		}
		out[o++] = '"';
	}
	out[o++] = '}';
	out[o] = '\0';
	return out;
}

/* The batch's files that no track names, removed. */
static void
flush_audio(void)
{
	char		*arr, abs[8192];
	const char	*a[1];
	PGresult	*res;
	int		 i;

	if (walk.n == 0)
		return;
	arr = pg_text_array(walk.batch, walk.n);
	a[0] = arr;
	res = PQexecParams(db_conn(), "SELECT p FROM unnest($1::text[]) p"
	    " WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.file_path = p)",
	    1, NULL, a, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		walk.failed = 1;
	else
		for (i = 0; i < PQntuples(res); i++) {
			snprintf(abs, sizeof(abs), "%s/%s", cfg.storage_dir,
			    PQgetvalue(res, i, 0));
			if (unlink(abs) == 0) {
				char	 esc[8192];

				walk.counts->audio_files++;
				json_escape_into(esc, 0, sizeof(esc), PQgetvalue(res, i, 0));
				log_info("orphaned file removed", "\"path\":\"%s\"", esc);
			}
		}
	PQclear(res);
	for (i = 0; i < walk.n; i++)
		free(walk.batch[i]);
	walk.n = 0;
}

static int
audio_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	const char	*rel = path + walk.skip;

	(void)f;
	/* a file, or a link `djamms import` made (the link goes, never its target) */
	if (!((flag == FTW_F && S_ISREG(st->st_mode)) ||
	    ((flag == FTW_SL || flag == FTW_SLN) && S_ISLNK(st->st_mode))) ||
	    st->st_mtime > walk.cutoff)
		return 0;
	/*
	 * A name that is not UTF-8 is no track's file_path (a text column),
	 * and would make the database refuse the whole batch: left alone.
	 */
	if (!utf8_text_valid(rel, strlen(rel)))
		return 0;
	if ((walk.batch[walk.n++] = strdup(rel)) == NULL)
		abort();
	if (walk.n == BATCH)
		flush_audio();
	return walk.failed;
}

/* Empty directories left in audio/ (year/month/artist/album), deepest first. */
static int
empty_dir(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_DP && f->level > 0 && st->st_mtime <= walk.cutoff)
		rmdir(path);	/* fails, as it should, unless empty */
	return 0;
}

/*
 * Directories under root named by track id whose track is gone (covers,
 * HLS), and what a crashed job or import left: ".tmp-", ".old-" (HLS) and
 * ".new-" (a new version's covers) directories.
 */
static int
sweep_track_dirs(const char *sub, long long *count)
{
	char		 root[4200], path[4500];
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		*ids[BATCH];
	int		 n = 0, i, rc = 0;

	snprintf(root, sizeof(root), "%s/%s", cfg.storage_dir, sub);
	if ((d = opendir(root)) == NULL)
		return 0;
	for (;;) {
		de = readdir(d);
		if (de != NULL) {
			snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
			if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
			    st.st_mtime > walk.cutoff)
				continue;
			if (strncmp(de->d_name, ".tmp-", 5) == 0 ||
			    strncmp(de->d_name, ".old-", 5) == 0 ||
			    strncmp(de->d_name, ".new-", 5) == 0) {
				/* a job may still be writing it: past its timeout only */
				if (st.st_mtime > time(NULL) - cfg.hls_timeout_s - 60)
					continue;
				rm_tree(path);
				(*count)++;
				continue;
			}
			if (!uuid_valid(de->d_name))
				continue;
			if ((ids[n++] = strdup(de->d_name)) == NULL)
				abort();
			if (n < BATCH)
				continue;
		}
		if (n > 0) {
			char		*arr = pg_text_array(ids, n);
			const char	*a[1] = { arr };
			PGresult	*res = PQexecParams(db_conn(),
			    "SELECT i FROM unnest($1::text[]) i WHERE NOT EXISTS"
			    " (SELECT 1 FROM tracks t WHERE t.id = i::uuid)",
			    1, NULL, a, NULL, NULL, 0);

			free(arr);
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
				rc = -1;
			else
				for (i = 0; i < PQntuples(res); i++) {
					snprintf(path, sizeof(path), "%s/%s", root,
					    PQgetvalue(res, i, 0));
					rm_tree(path);
					(*count)++;
				}
			PQclear(res);
			for (i = 0; i < n; i++)
				free(ids[i]);
			n = 0;
		}
		if (de == NULL || rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

/* Plain files in dir older than the cutoff (stale upload bodies). */
static void
sweep_old_files(const char *dir, long long *count)
{
	char		 path[4500];
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtime <= walk.cutoff && unlink(path) == 0)
			(*count)++;
	}
	closedir(d);
}

int
orphans_sweep(long grace_s, struct orphan_counts *out)
{
	char	 dir[4200];
	int	 rc = 0;

	memset(out, 0, sizeof(*out));
	memset(&walk, 0, sizeof(walk));
	walk.cutoff = time(NULL) - grace_s;
	walk.skip = strlen(cfg.storage_dir) + 1;
	walk.counts = out;
	snprintf(dir, sizeof(dir), "%s/audio", cfg.storage_dir);
	if (nftw(dir, audio_entry, 16, FTW_PHYS) < 0 && errno != ENOENT)
		rc = -1;
	if (!walk.failed)
		flush_audio();
	for (; walk.n > 0; walk.n--)
		free(walk.batch[walk.n - 1]);
	if (walk.failed)
		rc = -1;
	nftw(dir, empty_dir, 16, FTW_PHYS | FTW_DEPTH);
	if (sweep_track_dirs("images/tracks", &out->cover_dirs) != 0 ||
	    sweep_track_dirs("hls", &out->hls_dirs) != 0)
		rc = -1;
	snprintf(dir, sizeof(dir), "%s/tmp/upload", cfg.storage_dir);
	sweep_old_files(dir, &out->upload_files);
	return rc;
}

int
logs_prune(long keep_days, long long *removed)
{
	char		 dir[4096], path[4500];
	const char	*slash, *base;
	size_t		 blen;
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	time_t		 cutoff = time(NULL) - keep_days * 86400;

	*removed = 0;
	if (cfg.log_file == NULL || (slash = strrchr(cfg.log_file, '/')) == NULL)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg.log_file), cfg.log_file);
	base = slash + 1;
	blen = strlen(base);
	if ((d = opendir(dir[0] ? dir : "/")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		const char	*suffix = de->d_name + blen;
		size_t		 i;

		/* base.N and base.N.gz (rotated by us or by logrotate) */
		if (strncmp(de->d_name, base, blen) != 0 || suffix[0] != '.' ||
		    suffix[1] < '0' || suffix[1] > '9')
			continue;
		for (i = 1; suffix[i] >= '0' && suffix[i] <= '9'; i++)
			;
		if (suffix[i] != '\0' && strcmp(suffix + i, ".gz") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtime <= cutoff && unlink(path) == 0)
			(*removed)++;
	}
	closedir(d);
	return 0;
}
