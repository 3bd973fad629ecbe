/*
 * fcgi/library.c: putting an audio file into the library, for uploads and
 * the import command alike. The order is what keeps a failure from
 * leaving anything behind: an intent record first, then the file (temp
 * name, fsync, rename), then the covers, then the row in one transaction,
 * and only then the intent is dropped. A crash anywhere before the commit
 * leaves an intent whose owner is dead; library_recover() (run by every
 * worker as it starts) removes the file and covers it names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "djamms.h"

static const struct db_stmt st_dup = {
	"library_dup",
	"SELECT id FROM tracks WHERE uploaded_by = $1 AND content_sha256 = $2",
	2
};

static const struct db_stmt st_quota = {
	"library_quota",
	"SELECT u.storage_used_bytes + $2::bigint >"
	" coalesce((SELECT (value #>> '{}')::bigint FROM system_settings"
	"           WHERE key = 'storage_quota_bytes'), 1073741824)"
	" FROM users u WHERE u.id = $1",
	2
};

static const struct db_stmt st_insert = {
	"library_insert",
	"INSERT INTO tracks (id, title, artist, album, genre, duration, duration_ms,"
	" year, track_number, bitrate, sample_rate, channels, file_size, file_path,"
	" mime_type, content_sha256, uploaded_by, has_cover, source, source_path,"
	" source_size, source_mtime, original_filename)"
	" VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6::int / 1000, $6,"
	" nullif($7, '0')::int, nullif($8, '0')::int, nullif($9, '0')::int,"
	" nullif($10, '0')::int, nullif($11, '0')::smallint, $12, $13, $14, $15,"
	" $16, $17::bool, $18, $19, $20, $21, $22)",
	22
};

/*
 * A new version of a track's file: the row keeps its id, plays and
 * likes; what the jobs learnt from the old audio is forgotten. $1 id;
 * then as st_insert without uploader and source. Returns the old path.
 */
static const struct db_stmt st_replace = {
	"library_replace",
	"WITH old AS (SELECT id, file_path FROM tracks WHERE id = $1 FOR UPDATE)"
	" UPDATE tracks t SET title = $2, artist = $3, album = nullif($4, ''),"
	" genre = nullif($5, ''), duration = $6::int / 1000, duration_ms = $6,"
	" year = nullif($7, '0')::int, track_number = nullif($8, '0')::int,"
	" bitrate = nullif($9, '0')::int, sample_rate = nullif($10, '0')::int,"
	" channels = nullif($11, '0')::smallint, file_size = $12, file_path = $13,"
	" mime_type = $14, content_sha256 = $15, has_cover = $16::bool,"
	" source_path = $17, source_size = $18, source_mtime = $19,"
	" original_filename = $20, bpm = NULL, bpm_confidence = NULL,"
	" loudness_lufs = NULL, loudness_range = NULL, peak_dbfs = NULL,"
	" analyzed_at = NULL, hls_ready_at = NULL, hls_error = NULL,"
	" metadata = t.metadata - 'cover_checked'"
	" FROM old WHERE t.id = old.id RETURNING old.file_path",
	20
};

static const struct db_stmt st_charge = {
	"library_charge",
	"UPDATE users SET storage_used_bytes = storage_used_bytes + $2::bigint"
	" WHERE id = $1",
	2
};

static const struct db_stmt st_exists = {
	"library_exists",
	"SELECT 1 FROM tracks WHERE id = $1",
	1
};

/* ---- files ------------------------------------------------------------ */

static int
mkdirs(const char *path, mode_t mode)
{
	char	 buf[4096], *p;

	if (strlen(path) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static int
fsync_dir_of(const char *path)
{
	char	 dir[4096], *slash;
	int	 fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		return 0;
	*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Write the whole of buf to path by temp name, fsync and rename. */
static int
write_file_atomic(const char *path, const char *buf, size_t len)
{
	char	 tmp[4200];
	int	 fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
		return -1;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return fsync_dir_of(path);
}

static int
copy_file(const char *from, const char *to)
{
	char	 buf[65536];
	int	 in, out;
	ssize_t	 n;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	if (n < 0 || fsync(out) != 0) {
		close(out);
		unlink(to);
		return -1;
	}
	return close(out);
}

/* Lower-case hex SHA-256 of a file, read in chunks. OUT: hex[65]. */
int
library_sha256_file(const char *path, char hex[65], long long *size)
{
	unsigned char	 buf[65536], md[32];
	unsigned int	 mdlen = 0;
	EVP_MD_CTX	*ctx;
	int		 fd, i;
	ssize_t		 n;

	*size = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		*size += n;
	}
	close(fd);
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (n < 0)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static void
new_uuid(char out[37])
{
	unsigned char	 b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		abort();
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);	/* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
	    b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

const char *
library_audio_path(const char *rel, char *buf, size_t cap)
{
	int	 n;

	if (rel == NULL || strncmp(rel, "audio/", 6) != 0 || strstr(rel, "..") != NULL ||
	    (n = snprintf(buf, cap, "%s/%s", cfg.storage_dir, rel)) < 0 || (size_t)n >= cap)
		return NULL;
	return buf;
}

/* Remove a track's cover directory and its files. */
void
library_remove_covers(const char *track_id)
{
	char		 dir[4096], path[4200];
	DIR		*d;
	struct dirent	*de;

	if (!uuid_valid(track_id))
		return;
	snprintf(dir, sizeof(dir), "%s/images/tracks/%s", cfg.storage_dir, track_id);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
		    (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- intents ---------------------------------------------------------- */

static void
intent_path(const char *id, pid_t pid, char *out, size_t cap)
{
	snprintf(out, cap, "%s/tmp/intent/%s.%ld", cfg.storage_dir, id, (long)pid);
}

/*
 * Finish what a dead worker left: for each intent whose writer is gone,
 * the file and covers stay only if the row they belong to committed.
 */
void
library_recover(void)
{
	char		 dir[4096], path[4200], body[4200];
	DIR		*d;
	struct dirent	*de;

	snprintf(dir, sizeof(dir), "%s/tmp/intent", cfg.storage_dir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char		 id[37];
		const char	*dot = strrchr(de->d_name, '.');
		long		 pid;
		PGresult	*res;
		FILE		*f;
		size_t		 n;

		if (dot == NULL || dot - de->d_name != 36)
			continue;
		memcpy(id, de->d_name, 36);
		id[36] = '\0';
		if (!uuid_valid(id) || config_parse_long(dot + 1, 1, 1 << 30, &pid) != 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;		/* its writer is alive: in flight */
		if (db_exec(NULL, &res, &st_exists, (const char *const[]){ id }) != E_OK)
			continue;		/* try again at the next start */
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path)) {
			PQclear(res);
			continue;
		}
		if (PQntuples(res) == 0 && (f = fopen(path, "r")) != NULL) {
			n = fread(body, 1, sizeof(body) - 1, f);
			fclose(f);
			body[n] = '\0';
			body[strcspn(body, "\n")] = '\0';
			/* The intent holds a path inside storage/audio, nothing else. */
			{
				char	 file[8300];

				if (library_audio_path(body, file, sizeof(file)) != NULL)
					unlink(file);
			}
			library_remove_covers(id);
			log_warn("removed the remains of an interrupted library write",
			    "\"track\":\"%s\"", id);
		}
		PQclear(res);
		unlink(path);
	}
	closedir(d);
}

/* ---- adding a file ---------------------------------------------------- */

static void
fill(char *dst, size_t cap, const char *override, const char *tag, const char *def)
{
	const char	*v = override != NULL && *override != '\0' ? override :
			    tag != NULL && *tag != '\0' ? tag : def;

	snprintf(dst, cap, "%s", v != NULL ? v : "");
}

struct insert_tx {
	const char *const	*args;
	const char		*user_id;
	const char		*size;
	const char *const	*replace;	/* st_replace's, or NULL */
	char			 old_path[1024];	/* OUT, replacing */
};

static enum app_err
insert_body(struct req *r, void *arg)
{
	struct insert_tx	*t = arg;
	PGresult		*res;
	enum app_err		 err;

	if (t->replace != NULL) {
		if ((err = db_exec(r, &res, &st_replace, t->replace)) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return E_NOT_FOUND;	/* deleted meanwhile */
		if (!PQgetisnull(res, 0, 0))
			snprintf(t->old_path, sizeof(t->old_path), "%s",
			    PQgetvalue(res, 0, 0));
		return E_OK;
	}
	if ((err = db_exec(r, &res, &st_insert, t->args)) != E_OK)
		return err;
	if (t->user_id == NULL)
		return E_OK;
	return db_exec(r, &res, &st_charge,
	    (const char *const[]){ t->user_id, t->size });
}

enum app_err
library_add_file(struct req *r, const struct library_add *a,
    struct library_result *out)
{
	struct media_info	 mi;
	enum media_format	 fmt;
	const char		*mime = NULL;
	char			 sha[65], rel[1024], abs[4200], tmp[4300], intent[4200];
	char			 seg_artist[72], seg_album[72], title[256], artist[256];
	char			 album[256], genre[100], guess_t[256], guess_a[256];
	char			 nums[8][24], id[37];
	long long		 size;
	PGresult		*res;
	enum app_err		 err;
	time_t			 now = time(NULL);
	struct tm		 tm;
	unsigned char		*cover = NULL;
	size_t			 cover_len = 0;
	int			 has_cover = 0, placed = 0, set_aside = 0;
	char			 aside[4400];

	memset(out, 0, sizeof(*out));
	{
		struct stat	 sb;

		if (stat(a->src_path, &sb) != 0)
			return req_fail(r, E_INTERNAL, "cannot read the file", NULL);
		if (sb.st_size == 0)
			return req_fail(r, E_BAD_REQUEST, "the file is empty", NULL);
	}
	if ((fmt = media_sniff(a->src_path, &mime)) == MF_UNKNOWN)
		return req_fail(r, E_UNSUPPORTED, "not an audio file djamms accepts "
		    "(MP3, FLAC, WAV, AAC/M4A, OGG/Opus)", NULL);
	if (media_probe(a->src_path, fmt, &mi) != 0)
		return req_fail(r, E_UNSUPPORTED, "the file is not readable audio", NULL);
	if (library_sha256_file(a->src_path, sha, &size) != 0)
		return req_fail(r, E_INTERNAL, "cannot read the file", NULL);
	if (size <= 0)
		return req_fail(r, E_BAD_REQUEST, "the file is empty", NULL);
	snprintf(nums[0], sizeof(nums[0]), "%lld", size);

	if (a->user_id != NULL) {
		if ((err = db_exec(r, &res, &st_dup,
		    (const char *const[]){ a->user_id, sha })) != E_OK)
			return err;
		if (PQntuples(res) > 0) {
			snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, 0, 0));
			out->duplicate = 1;
			return req_fail(r, E_CONFLICT,
			    "you uploaded this file already", NULL);
		}
		if (a->check_quota) {
			if ((err = db_exec(r, &res, &st_quota,
			    (const char *const[]){ a->user_id, nums[0] })) != E_OK)
				return err;
			if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") == 0)
				return req_fail(r, E_QUOTA,
				    "this upload would exceed your storage quota", NULL);
		}
	}

	/* What the row will say: the client's fields, else tags, else the name. */
	media_guess_from_filename(a->original_filename ? a->original_filename :
	    a->src_path, guess_t, sizeof(guess_t), guess_a, sizeof(guess_a));
	fill(title, sizeof(title), a->title, mi.title, guess_t[0] ? guess_t : "Untitled");
	fill(artist, sizeof(artist), a->artist, mi.artist,
	    guess_a[0] ? guess_a : "Unknown Artist");
	fill(album, sizeof(album), a->album, mi.album, "");
	fill(genre, sizeof(genre), a->genre, mi.genre, "");
	if (a->replace_id != NULL) {
		if (!uuid_valid(a->replace_id))
			return req_fail(r, E_INTERNAL, "not a track id", NULL);
		snprintf(id, sizeof(id), "%s", a->replace_id);
	} else
		new_uuid(id);

	gmtime_r(&now, &tm);
	media_path_segment(artist, seg_artist, sizeof(seg_artist));
	media_path_segment(album[0] ? album : "Unknown Album", seg_album,
	    sizeof(seg_album));
	snprintf(rel, sizeof(rel), "audio/%04d/%02d/%s/%s/%s.%s", tm.tm_year + 1900,
	    tm.tm_mon + 1, seg_artist, seg_album, id, mi.ext);
	snprintf(abs, sizeof(abs), "%s/%s", cfg.storage_dir, rel);
	snprintf(tmp, sizeof(tmp), "%s.part-%ld", abs, (long)getpid());

	/* 1. The intent, so a crash from here on is cleaned up. */
	intent_path(id, getpid(), intent, sizeof(intent));
	if (write_file_atomic(intent, rel, strlen(rel)) != 0)
		return req_fail(r, E_INTERNAL, "cannot write to storage", NULL);

	/* 2. The file, under its final name only once it is complete. */
	{
		char	 dir[4200], *slash;

		snprintf(dir, sizeof(dir), "%s", abs);
		slash = strrchr(dir, '/');
		*slash = '\0';
		if (mkdirs(dir, 0755) != 0) {
			err = req_fail(r, E_INTERNAL, "cannot write to storage", NULL);
			goto fail;
		}
	}
	switch (a->mode) {
	case LIB_LINK:
		/* nginx's temp file is on the same filesystem: no copy. */
		if (link(a->src_path, tmp) == 0)
			break;
		/* another filesystem after all: copy */
		__attribute__((fallthrough));
	case LIB_COPY:
		if (copy_file(a->src_path, tmp) != 0) {
			err = req_fail(r, E_INTERNAL, "cannot write to storage", NULL);
			goto fail;
		}
		break;
	case LIB_SYMLINK:
		if (symlink(a->src_path, tmp) != 0) {
			err = req_fail(r, E_INTERNAL, "cannot write to storage", NULL);
			goto fail;
		}
		break;
	}
	/*
	 * A new version bound for the old one's very path: the old file steps
	 * aside (and comes back on failure) rather than being overwritten.
	 */
	snprintf(aside, sizeof(aside), "%s.old-%ld", abs, (long)getpid());
	if (a->replace_id != NULL && rename(abs, aside) == 0)
		set_aside = 1;
	if (rename(tmp, abs) != 0 || fsync_dir_of(abs) != 0) {
		unlink(tmp);
		err = req_fail(r, E_INTERNAL, "cannot write to storage", NULL);
		goto fail;
	}
	placed = 1;

	/* 3. Covers, generated once, here (a bad picture is not fatal). */
	if (mi.has_cover && media_cover_extract(a->src_path, &cover, &cover_len) == 0) {
		char	 dir[4200];

		snprintf(dir, sizeof(dir), "%s/images/tracks", cfg.storage_dir);
		if (mkdirs(dir, 0750) == 0) {
			/* a new version's covers wait beside the old ones */
			snprintf(dir, sizeof(dir), "%s/images/tracks/%s%s", cfg.storage_dir,
			    a->replace_id ? ".new-" : "", id);
			if (a->replace_id)
				rm_tree(dir);
			has_cover = media_covers_write(cover, cover_len, dir) == 0;
		}
		free(cover);
	}

	/* Fault injection for the tests: die between the file and the row. */
	if (cfg.test_routes && a->fault_after_file)
		abort();

	/* 4. The row, and the owner's storage, in one transaction. */
	snprintf(nums[1], sizeof(nums[1]), "%d", mi.duration_ms);
	snprintf(nums[2], sizeof(nums[2]), "%d", a->year > 0 ? a->year :
	    mi.year >= 1000 && mi.year <= 9999 ? mi.year : 0);
	snprintf(nums[3], sizeof(nums[3]), "%d", a->track_no > 0 ? a->track_no :
	    mi.track_no > 0 && mi.track_no <= 9999 ? mi.track_no : 0);
	snprintf(nums[4], sizeof(nums[4]), "%d", mi.bitrate_kbps);
	snprintf(nums[5], sizeof(nums[5]), "%d", mi.sample_rate);
	snprintf(nums[6], sizeof(nums[6]), "%d", mi.channels);
	snprintf(nums[7], sizeof(nums[7]), "%lld", a->source_mtime);
	{
		char		 ssize[24];
		const char	*args[22] = {
			id, title, artist, album, genre, nums[1], nums[2],
			nums[3], nums[4], nums[5], nums[6], nums[0], rel, mi.mime, sha,
			a->user_id, has_cover ? "t" : "f", a->source,
			a->source_path, a->source_path ? ssize : NULL,
			a->source_path ? nums[7] : NULL, a->original_filename,
		};
		const char	*rargs[20] = {
			id, title, artist, album, genre, nums[1], nums[2],
			nums[3], nums[4], nums[5], nums[6], nums[0], rel, mi.mime, sha,
			has_cover ? "t" : "f", a->source_path,
			a->source_path ? ssize : NULL, a->source_path ? nums[7] : NULL,
			a->original_filename,
		};
		struct insert_tx	 t = { args, a->check_quota ? a->user_id : NULL,
					    nums[0], a->replace_id ? rargs : NULL, "" };

		snprintf(ssize, sizeof(ssize), "%lld", a->source_size);
		err = db_tx(r, "READ COMMITTED", insert_body, &t);
		if (err == E_OK && a->replace_id != NULL) {
			char	 cur[4200], side[4200];

			/* the old version's file, covers and renditions go now */
			if (strcmp(t.old_path, rel) != 0 &&
			    library_audio_path(t.old_path, cur, sizeof(cur)) != NULL)
				unlink(cur);
			if (set_aside)
				unlink(aside);
			library_remove_covers(id);
			if (has_cover) {
				snprintf(cur, sizeof(cur), "%s/images/tracks/%s", cfg.storage_dir, id);
				snprintf(side, sizeof(side), "%s/images/tracks/.new-%s",
				    cfg.storage_dir, id);
				rename(side, cur);
			}
			hls_remove(id);
		}
	}
	if (err == E_CONFLICT && a->user_id != NULL) {
		/* A concurrent upload of the same bytes won the race. */
		if (db_exec(r, &res, &st_dup, (const char *const[]){ a->user_id,
		    sha }) == E_OK && PQntuples(res) > 0) {
			snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, 0, 0));
			out->duplicate = 1;
			err = req_fail(r, E_CONFLICT, "you uploaded this file already",
			    NULL);
		}
	}
	if (err != E_OK)
		goto fail;
	unlink(intent);
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->path, sizeof(out->path), "%s", rel);
	out->size = size;
	return E_OK;

fail:
	if (placed)
		unlink(abs);
	if (set_aside)
		rename(aside, abs);
	if (a->replace_id != NULL) {
		/* the old version stays whole: only the new covers go */
		char	 side[4200];

		snprintf(side, sizeof(side), "%s/images/tracks/.new-%s", cfg.storage_dir, id);
		rm_tree(side);
	} else
		library_remove_covers(id);
	unlink(intent);
	return err;
}
