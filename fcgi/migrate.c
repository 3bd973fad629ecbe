/*
 * fcgi/migrate.c: numbered SQL migrations. Files NNN_name.sql in
 * DJAMMS_SQL_DIR are applied in order, each in its own transaction, and
 * recorded in schema_migrations with their SHA-256. A file that changed
 * after it was applied stops the run: migrations are append-only. An
 * advisory lock keeps two concurrent runs from racing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "djamms.h"

#define MIGRATE_LOCK_KEY	"727274001"	/* arbitrary, fixed */

static int
is_migration_name(const char *n)
{
	size_t	 len = strlen(n);

	return len > 8 && n[0] >= '0' && n[0] <= '9' && n[1] >= '0' &&
	    n[1] <= '9' && n[2] >= '0' && n[2] <= '9' && n[3] == '_' &&
	    strcmp(n + len - 4, ".sql") == 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*buf = NULL;
	long	 n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static int
exec_ok(PGconn *c, const char *sql, const char *what)
{
	PGresult	*res = PQexec(c, sql);
	ExecStatusType	 st = PQresultStatus(res);
	int		 ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "djamms migrate: %s: %s", what, PQerrorMessage(c));
	PQclear(res);
	return ok ? 0 : -1;
}

int
migrate_run(int status_only)
{
	PGconn		*c;
	PGresult	*applied = NULL;
	DIR		*d;
	struct dirent	*de;
	char		**names = NULL;
	size_t		 n = 0, cap = 0, i;
	int		 rc = 1, nnew = 0;

	if ((d = opendir(cfg.sql_dir)) == NULL) {
		fprintf(stderr, "djamms migrate: cannot open DJAMMS_SQL_DIR=%s\n",
		    cfg.sql_dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_migration_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((names = realloc(names, cap * sizeof(*names))) == NULL)
				abort();
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);

	c = PQconnectdb(cfg.database_url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "djamms migrate: %s", PQerrorMessage(c));
		goto out;
	}
	if (exec_ok(c, "SET client_min_messages = warning", "settings") != 0 ||
	    exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "lock") != 0 ||
	    exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version text PRIMARY KEY, checksum text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())", "bookkeeping") != 0)
		goto out;
	applied = PQexec(c, "SELECT version, checksum FROM schema_migrations "
	    "ORDER BY version");
	if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
		fprintf(stderr, "djamms migrate: %s", PQerrorMessage(c));
		goto out;
	}

	/* Every applied migration must still be on disk, unchanged. */
	for (i = 0; i < (size_t)PQntuples(applied); i++) {
		const char	*ver = PQgetvalue(applied, (int)i, 0);
		size_t		 j;

		for (j = 0; j < n; j++)
			if (strcmp(names[j], ver) == 0)
				break;
		if (j == n) {
			fprintf(stderr, "djamms migrate: %s was applied but is "
			    "missing from %s\n", ver, cfg.sql_dir);
			goto out;
		}
	}

	for (i = 0; i < n; i++) {
		char		 path[4096], sum[65];
		char		*sql;
		size_t		 len = 0;
		const char	*done = NULL;
		int		 j;

		snprintf(path, sizeof(path), "%s/%s", cfg.sql_dir, names[i]);
		if ((sql = read_file(path, &len)) == NULL) {
			fprintf(stderr, "djamms migrate: cannot read %s\n", path);
			goto out;
		}
		sha256_hex(sql, len, sum);
		for (j = 0; j < PQntuples(applied); j++)
			if (strcmp(PQgetvalue(applied, j, 0), names[i]) == 0)
				done = PQgetvalue(applied, j, 1);
		if (done != NULL) {
			if (strcmp(done, sum) != 0) {
				fprintf(stderr, "djamms migrate: %s changed after "
				    "it was applied (checksum %s, now %s); "
				    "migrations are append-only: add a new "
				    "file instead\n", names[i], done, sum);
				free(sql);
				goto out;
			}
			if (status_only)
				printf("applied  %s\n", names[i]);
			free(sql);
			continue;
		}
		if (status_only) {
			printf("pending  %s\n", names[i]);
			free(sql);
			continue;
		}
		{
			const char	*args[2] = { names[i], sum };
			PGresult	*res;
			int		 ok;

			if (exec_ok(c, "BEGIN", names[i]) != 0) {
				free(sql);
				goto out;
			}
			/* The whole file in one simple query, as psql -1 would. */
			ok = exec_ok(c, sql, names[i]) == 0;
			free(sql);
			if (ok) {
				res = PQexecParams(c, "INSERT INTO schema_migrations "
				    "(version, checksum) VALUES ($1, $2)", 2, NULL,
				    args, NULL, NULL, 0);
				ok = PQresultStatus(res) == PGRES_COMMAND_OK;
				PQclear(res);
			}
			if (!ok || exec_ok(c, "COMMIT", names[i]) != 0) {
				exec_ok(c, "ROLLBACK", "rollback");
				fprintf(stderr, "djamms migrate: %s failed; nothing "
				    "of it was applied\n", names[i]);
				goto out;
			}
			printf("applied  %s\n", names[i]);
			nnew++;
		}
	}
	if (!status_only)
		printf("migrations: %d applied now, %zu in all\n", nnew, n);
	rc = 0;
out:
	PQclear(applied);
	PQfinish(c);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
