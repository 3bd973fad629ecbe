/*
 * fcgi/backup.c: backups and restores.
 *
 * A backup is a directory DJAMMS_BACKUP_DIR/<UTC time>/ holding db.dump
 * (pg_dump's custom format: one snapshot, so consistent), media.tar (the
 * storage's audio and images, unless asked without) and manifest.json
 * (what, when, schema version, each file's size and SHA-256). It is
 * written under a ".partial-" name and renamed when complete, so a
 * half-written backup is never listed; the oldest beyond DJAMMS_BACKUP_KEEP
 * are removed.
 *
 * A restore checks every checksum, restores the dump into a fresh
 * database, and only when that succeeded switches: the live database is
 * renamed aside (kept, "<name>_before_<time>"), the fresh one takes its
 * name, the media directories likewise; then every cache is moved on. The
 * workers and the watcher reconnect by themselves.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "djamms.h"

static const char *
backup_dir(void)
{
	return cfg.backup_dir;
}

/* Name a backup may have: 20250101T120000Z or with a -N suffix. Pure. */
int
backup_name_valid(const char *s)
{
	size_t	 i, n = strlen(s);

	if (n < 16 || n > 40 || s[8] != 'T' || s[15] != 'Z')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == 'T' || s[i] == 'Z' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

/* "name.sha256"-like entry for the manifest. */
static int
file_entry(struct json_object *files, const char *dir, const char *name)
{
	char			 path[4200], hex[65];
	long long		 size;
	struct json_object	*e;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (library_sha256_file(path, hex, &size) != 0)
		return -1;
	e = json_object_new_object();
	json_object_object_add(e, "name", json_object_new_string(name));
	json_object_object_add(e, "size", json_object_new_int64(size));
	json_object_object_add(e, "sha256", json_object_new_string(hex));
	json_object_array_add(files, e);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The complete backups, oldest first. OUT: *names (malloc'd). */
int
backup_names(char ***names)
{
	DIR		*d = opendir(backup_dir());
	struct dirent	*de;
	char		**v = NULL;
	int		 n = 0;

	*names = NULL;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!backup_name_valid(de->d_name))
			continue;
		if ((v = realloc(v, sizeof(*v) * (size_t)(n + 1))) == NULL ||
		    (v[n] = strdup(de->d_name)) == NULL)
			abort();
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, (size_t)n, sizeof(*v), name_cmp);
	*names = v;
	return n;
}

void
backup_names_free(char **names, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int
db_scalar(const char *sql, char *out, size_t cap)
{
	PGresult	*res;
	int		 ok;

	if (!db_ok())
		return -1;
	res = PQexec(db_conn(), sql);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	if (ok)
		snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok ? 0 : -1;
}

int
backup_create(int with_media, char name_out[64], char *err, size_t errlen)
{
	char			 name[64], dir[4200], part[4200], path[4300];
	char			 schema[128] = "", tracks[32] = "0";
	struct json_object	*m, *files;
	time_t			 now = time(NULL);
	struct tm		 tm;
	char			**names;
	int			 n, i;
	FILE			*f;

	gmtime_r(&now, &tm);
	strftime(name, sizeof(name), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(dir, sizeof(dir), "%s/%s", backup_dir(), name);
	for (i = 2; access(dir, F_OK) == 0 && i < 100; i++) {
		strftime(name, sizeof(name), "%Y%m%dT%H%M%SZ", &tm);
		snprintf(name + strlen(name), sizeof(name) - strlen(name), "-%d", i);
		snprintf(dir, sizeof(dir), "%s/%s", backup_dir(), name);
	}
	snprintf(part, sizeof(part), "%s/.partial-%s", backup_dir(), name);
	if (mkdir(backup_dir(), 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", backup_dir(), strerror(errno));
		return -1;
	}
	rm_tree(part);
	if (mkdir(part, 0750) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", part, strerror(errno));
		return -1;
	}
	db_scalar("SELECT max(version) FROM schema_migrations", schema, sizeof(schema));
	db_scalar("SELECT count(*) FROM tracks", tracks, sizeof(tracks));
	/* the database: one snapshot */
	snprintf(path, sizeof(path), "%s/db.dump", part);
	{
		char	*argv[] = { "pg_dump", "--format=custom", "--no-owner",
			    "--file", path, "--dbname", (char *)cfg.database_url, NULL };

		if (proc_run(argv, NULL, NULL, 0, err, errlen) != 0)
			goto fail;
	}
	/* the media: what the library stores (not temp files) */
	if (with_media) {
		char	 tar[4300];
		char	*argv[] = { "tar", "--create", "--file", tar, "--directory",
			    (char *)cfg.storage_dir, "--ignore-failed-read", "audio",
			    "images", NULL };

		snprintf(tar, sizeof(tar), "%s/media.tar", part);
		if (proc_run(argv, NULL, NULL, 0, err, errlen) != 0)
			goto fail;
	}
	m = json_object_new_object();
	files = json_object_new_array();
	if (file_entry(files, part, "db.dump") != 0 ||
	    (with_media && file_entry(files, part, "media.tar") != 0)) {
		json_object_put(m);
		json_object_put(files);
		snprintf(err, errlen, "cannot checksum the backup's files");
		goto fail;
	}
	json_object_object_add(m, "name", json_object_new_string(name));
	json_object_object_add(m, "created_at", json_object_new_int64((int64_t)now));
	json_object_object_add(m, "djamms_version", json_object_new_string(DJAMMS_VERSION));
	json_object_object_add(m, "schema_version", json_object_new_string(schema));
	json_object_object_add(m, "tracks", json_object_new_int64(atoll(tracks)));
	json_object_object_add(m, "media", json_object_new_boolean(with_media));
	json_object_object_add(m, "files", files);
	snprintf(path, sizeof(path), "%s/manifest.json", part);
	if ((f = fopen(path, "w")) == NULL ||
	    fputs(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY), f) < 0 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		if (f != NULL)
			fclose(f);
		json_object_put(m);
		snprintf(err, errlen, "cannot write the manifest");
		goto fail;
	}
	fclose(f);
	json_object_put(m);
	if (rename(part, dir) != 0) {
		snprintf(err, errlen, "cannot rename %s: %s", part, strerror(errno));
		goto fail;
	}
	/* retention: the newest DJAMMS_BACKUP_KEEP stay */
	n = backup_names(&names);
	for (i = 0; i < n - (int)cfg.backup_keep; i++) {
		char	 old[4200];

		snprintf(old, sizeof(old), "%s/%s", backup_dir(), names[i]);
		rm_tree(old);
	}
	backup_names_free(names, n);
	snprintf(name_out, 64, "%s", name);
	log_info("backup written", "\"name\":\"%s\",\"media\":%s", name,
	    with_media ? "true" : "false");
	return 0;
fail:
	rm_tree(part);
	return -1;
}

/* The manifest of backup name, its files' checksums verified. */
static struct json_object *
manifest_verified(const char *name, char *err, size_t errlen)
{
	char			 path[4300];
	struct json_object	*m, *files;
	size_t			 i;

	snprintf(path, sizeof(path), "%s/%s/manifest.json", backup_dir(), name);
	if ((m = json_object_from_file(path)) == NULL ||
	    !json_object_object_get_ex(m, "files", &files)) {
		json_object_put(m);
		snprintf(err, errlen, "backup %s has no readable manifest", name);
		return NULL;
	}
	for (i = 0; i < json_object_array_length(files); i++) {
		struct json_object	*e = json_object_array_get_idx(files, i), *v;
		const char		*fname, *want;
		char			 hex[65], fp[4400];
		long long		 size;

		if (!json_object_object_get_ex(e, "name", &v) ||
		    strchr(fname = json_object_get_string(v), '/') != NULL ||
		    !json_object_object_get_ex(e, "sha256", &v)) {
			json_object_put(m);
			snprintf(err, errlen, "backup %s: a malformed manifest", name);
			return NULL;
		}
		want = json_object_get_string(v);
		snprintf(fp, sizeof(fp), "%s/%s/%s", backup_dir(), name, fname);
		if (library_sha256_file(fp, hex, &size) != 0 || strcmp(hex, want) != 0) {
			/* fname lives in m: the message first */
			snprintf(err, errlen, "backup %s: %s does not match its checksum",
			    name, fname);
			json_object_put(m);
			return NULL;
		}
	}
	return m;
}

/* Run sql on the maintenance database. */
static int
admin_sql(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult	*res = PQexec(c, sql);
	int		 ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
			    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

int
backup_restore(const char *name, char *err, size_t errlen)
{
	struct json_object	*m, *v;
	char			 dbname[128], fresh[160], aside[160], stamp[32];
	char			 sql[1024], path[4300], conn[4400];
	PGconn			*c;
	int			 media;
	time_t			 now = time(NULL);
	struct tm		 tm;
	char			*e;

	if (!backup_name_valid(name)) {
		snprintf(err, errlen, "not a backup name");
		return -1;
	}
	if ((m = manifest_verified(name, err, errlen)) == NULL)
		return -1;
	media = json_object_object_get_ex(m, "media", &v) && json_object_get_boolean(v);
	json_object_put(m);
	if (db_scalar("SELECT current_database()", dbname, sizeof(dbname)) != 0) {
		snprintf(err, errlen, "the database is not reachable");
		return -1;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	snprintf(fresh, sizeof(fresh), "%.60s_restore_%s", dbname, stamp);
	snprintf(aside, sizeof(aside), "%.60s_before_%s", dbname, stamp);
	/* the maintenance database, with the same credentials */
	{
		const char	*k2[3] = { "dbname", "dbname", NULL };
		const char	*v2[3] = { cfg.database_url, "postgres", NULL };

		c = PQconnectdbParams(k2, v2, 1);
	}
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot reach the maintenance database: %s",
		    PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	e = PQescapeIdentifier(c, fresh, strlen(fresh));
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", e);
	PQfreemem(e);
	if (admin_sql(c, sql, err, errlen) != 0) {
		PQfinish(c);
		return -1;
	}
	/* the dump into the fresh database */
	{
		const char	*k2[3] = { "dbname", "dbname", NULL };
		const char	*v2[3] = { cfg.database_url, fresh, NULL };
		PGconn		*fc = PQconnectdbParams(k2, v2, 1);

		snprintf(conn, sizeof(conn), "%s", PQstatus(fc) == CONNECTION_OK ?
		    "" : PQerrorMessage(fc));
		/* pg_restore gets the same connection, as a conninfo string */
		if (PQstatus(fc) == CONNECTION_OK) {
			PQconninfoOption	*o = PQconninfo(fc), *p;
			size_t			 len = 0;

			for (p = o; p != NULL && p->keyword != NULL; p++) {
				const char	*q;

				if (p->val == NULL || p->val[0] == '\0' ||
				    strcmp(p->keyword, "password") == 0 ||
				    len + strlen(p->keyword) + 2 * strlen(p->val) + 8 >
				    sizeof(conn))
					continue;
				len += (size_t)snprintf(conn + len, sizeof(conn) - len,
				    "%s='", p->keyword);
				for (q = p->val; *q != '\0'; q++) {
					if (*q == '\'' || *q == '\\')
						conn[len++] = '\\';
					conn[len++] = *q;
				}
				len += (size_t)snprintf(conn + len, sizeof(conn) - len, "' ");
			}
			PQconninfoFree(o);
		}
		PQfinish(fc);
	}
	snprintf(path, sizeof(path), "%s/%s/db.dump", backup_dir(), name);
	{
		char	*argv[] = { "pg_restore", "--no-owner", "--exit-on-error",
			    "--dbname", conn, path, NULL };

		if (proc_run(argv, NULL, NULL, 0, err, errlen) != 0) {
			e = PQescapeIdentifier(c, fresh, strlen(fresh));
			snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", e);
			PQfreemem(e);
			admin_sql(c, sql, err + strlen(err), errlen - strlen(err));
			PQfinish(c);
			return -1;
		}
	}
	/* the media, next to the live directories first */
	if (media) {
		char	 stage[4300], tar[4300];
		char	*argv[] = { "tar", "--extract", "--file", tar, "--directory",
			    stage, NULL };

		snprintf(stage, sizeof(stage), "%s/.restore-%s", cfg.storage_dir, stamp);
		snprintf(tar, sizeof(tar), "%s/%s/media.tar", backup_dir(), name);
		if (mkdir(stage, 0750) != 0 || proc_run(argv, NULL, NULL, 0, err, errlen) != 0) {
			rm_tree(stage);
			e = PQescapeIdentifier(c, fresh, strlen(fresh));
			snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", e);
			PQfreemem(e);
			admin_sql(c, sql, err + strlen(err), errlen - strlen(err));
			PQfinish(c);
			if (err[0] == '\0')
				snprintf(err, errlen, "cannot unpack the media");
			return -1;
		}
	}
	/* the switch: nobody may be connected to either database */
	{
		char	*ed = PQescapeLiteral(c, dbname, strlen(dbname));
		char	*id1 = PQescapeIdentifier(c, dbname, strlen(dbname));
		char	*id2 = PQescapeIdentifier(c, aside, strlen(aside));
		char	*id3 = PQescapeIdentifier(c, fresh, strlen(fresh));
		int	 i, ok = 0;

		db_disconnect();
		for (i = 0; i < 20 && !ok; i++) {
			snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM"
			    " pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
			    ed);
			admin_sql(c, sql, err, errlen);
			snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s", id1, id2);
			ok = admin_sql(c, sql, err, errlen) == 0;
			if (!ok)
				usleep(50000);	/* a worker reconnected in between */
		}
		if (ok) {
			snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s", id3, id1);
			if (admin_sql(c, sql, err, errlen) != 0) {
				/* put the live one back */
				snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s",
				    id2, id1);
				admin_sql(c, sql, err + strlen(err), errlen - strlen(err));
				ok = 0;
			}
		}
		PQfreemem(ed);
		PQfreemem(id1);
		PQfreemem(id2);
		PQfreemem(id3);
		PQfinish(c);
		if (!ok)
			return -1;
	}
	if (media) {
		const char	*dirs[] = { "audio", "images" };
		size_t		 i;

		for (i = 0; i < 2; i++) {
			char	 live[4300], old[4300], staged[4300];

			snprintf(live, sizeof(live), "%s/%s", cfg.storage_dir, dirs[i]);
			snprintf(old, sizeof(old), "%s/.before-%s-%s", cfg.storage_dir,
			    stamp, dirs[i]);
			snprintf(staged, sizeof(staged), "%s/.restore-%s/%s", cfg.storage_dir,
			    stamp, dirs[i]);
			if (access(staged, F_OK) != 0)
				mkdir(staged, 0750);
			if (rename(live, old) != 0 && errno != ENOENT) {
				log_error("restore: media left as they were", "\"dir\":\"%s\"",
				    dirs[i]);
				continue;
			}
			/* never leave the live directory missing */
			if (rename(staged, live) != 0) {
				rename(old, live);
				log_error("restore: media left as they were", "\"dir\":\"%s\"",
				    dirs[i]);
			}
		}
		snprintf(path, sizeof(path), "%s/.restore-%s", cfg.storage_dir, stamp);
		rmdir(path);
	}
	/* no cached answer survives: every version moves on */
	{
		struct redisReply	*rep;

		rep = rds_command(NULL, "INCR lib:ver");
		if (rep != NULL)
			freeReplyObject(rep);
		rep = rds_command(NULL, "INCR sched:ver");
		if (rep != NULL)
			freeReplyObject(rep);
	}
	log_info("backup restored", "\"name\":\"%s\",\"previous_database\":\"%s\"",
	    name, aside);
	return 0;
}

/* djamms backup create [--no-media] | list | restore NAME */
int
backup_cli(int argc, char **argv)
{
	char	 err[1024] = "", name[64];

	if (argc >= 1 && strcmp(argv[0], "create") == 0) {
		int	 media = !(argc >= 2 && strcmp(argv[1], "--no-media") == 0);

		rds_connect();
		if (backup_create(media, name, err, sizeof(err)) != 0) {
			fprintf(stderr, "djamms backup: %s\n", err);
			return 1;
		}
		printf("%s/%s\n", backup_dir(), name);
		return 0;
	}
	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		char	**names;
		int	 n = backup_names(&names), i;

		for (i = 0; i < n; i++)
			printf("%s\n", names[i]);
		backup_names_free(names, n);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[0], "restore") == 0) {
		rds_connect();
		if (backup_restore(argv[1], err, sizeof(err)) != 0) {
			fprintf(stderr, "djamms backup: restore failed, nothing switched: %s\n",
			    err);
			return 1;
		}
		printf("restored %s\n", argv[1]);
		return 0;
	}
	fprintf(stderr, "usage: djamms backup create [--no-media] | list | restore NAME\n");
	return 2;
}
