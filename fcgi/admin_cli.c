/*
 * fcgi/admin_cli.c: `djamms admin ...`, run by an operator (or make run)
 * on the server itself: create an admin, reset an admin's password, or
 * create the first admin when there is none. A password not given in
 * DJAMMS_ADMIN_PASSWORD is generated and printed once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "djamms.h"

static int
fail(PGconn *c, const char *what)
{
	fprintf(stderr, "djamms admin: %s: %s", what, c ? PQerrorMessage(c) : "\n");
	PQfinish(c);
	return 1;
}

/* The password to set. OUT: buf when generated; *generated. */
static const char *
admin_password(char *buf, int *generated)
{
	const char	*p = getenv("DJAMMS_ADMIN_PASSWORD");

	*generated = 0;
	if (p != NULL && *p != '\0')
		return p;
	random_token(buf, 18);
	*generated = 1;
	return buf;
}

static int
set_admin(PGconn *c, const char *username, const char *email, int create)
{
	char		 pwbuf[32], hash[192];
	const char	*pw;
	int		 generated;
	PGresult	*res;
	size_t		 len;

	pw = admin_password(pwbuf, &generated);
	len = strlen(pw);
	if (len < 8 || len > 1024) {
		fprintf(stderr, "djamms admin: DJAMMS_ADMIN_PASSWORD must be 8 to "
		    "1024 bytes\n");
		PQfinish(c);
		return 1;
	}
	if (password_hash(pw, len, hash, sizeof(hash)) != E_OK)
		return fail(NULL, "hashing failed");
	if (create) {
		const char	*args[3] = { username, email, hash };

		res = PQexecParams(c, "INSERT INTO users (username, email, "
		    "password_hash, role) VALUES ($1, lower($2), $3, 'admin')", 3,
		    NULL, args, NULL, NULL, 0);
	} else {
		const char	*args[2] = { username, hash };

		res = PQexecParams(c, "UPDATE users SET password_hash = $2, "
		    "role = 'admin', is_active = true, is_anonymous = false, "
		    "token_version = token_version + 1, token_version_at = now() "
		    "WHERE username = $1::citext RETURNING id, token_version",
		    2, NULL, args, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			/*
			 * End the old sessions in Redis too; if it is away, the
			 * workers copy the version over when they reconnect.
			 */
			struct redisReply	*rep;

			if (rds_connect() == 0 && (rep = rds_command(NULL,
			    "SET tver:%s %s EX %ld", PQgetvalue(res, 0, 0),
			    PQgetvalue(res, 0, 1), cfg.access_ttl_s + 60)) != NULL)
				freeReplyObject(rep);
			rds_disconnect();
		}
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return fail(c, create ? "cannot create the admin" :
		    "cannot reset the admin");
	}
	if (!create && PQntuples(res) != 1) {
		PQclear(res);
		fprintf(stderr, "djamms admin: no user named %s\n", username);
		PQfinish(c);
		return 1;
	}
	PQclear(res);
	printf("admin %s: %s\n", create ? "created" : "reset", username);
	if (generated)
		printf("password: %s\n(shown once; keep it somewhere safe)\n", pw);
	PQfinish(c);
	return 0;
}

int
admin_cli(int argc, char **argv)
{
	PGconn		*c;
	const char	*email = NULL, *username;
	char		 defmail[128];
	int		 i;

	if (argc < 1) {
		fprintf(stderr, "usage: djamms admin create|reset USERNAME "
		    "[--email EMAIL] | ensure\n");
		return 2;
	}
	c = PQconnectdb(cfg.database_url);
	if (PQstatus(c) != CONNECTION_OK)
		return fail(c, "cannot connect to the database");

	if (strcmp(argv[0], "ensure") == 0) {
		PGresult	*res = PQexec(c, "SELECT count(*) FROM users "
				    "WHERE role = 'admin' AND is_active");

		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			PQclear(res);
			return fail(c, "cannot count admins");
		}
		if (atol(PQgetvalue(res, 0, 0)) > 0) {
			PQclear(res);
			PQfinish(c);
			printf("an admin exists already\n");
			return 0;
		}
		PQclear(res);
		username = getenv("DJAMMS_ADMIN_USER");
		if (username == NULL || *username == '\0')
			username = "admin";
		snprintf(defmail, sizeof(defmail), "%s@localhost.localdomain", username);
		email = getenv("DJAMMS_ADMIN_EMAIL");
		return set_admin(c, username, email && *email ? email : defmail, 1);
	}
	if (argc < 2 || (strcmp(argv[0], "create") != 0 &&
	    strcmp(argv[0], "reset") != 0)) {
		PQfinish(c);
		fprintf(stderr, "usage: djamms admin create|reset USERNAME "
		    "[--email EMAIL] | ensure\n");
		return 2;
	}
	username = argv[1];
	for (i = 2; i + 1 < argc; i += 2)
		if (strcmp(argv[i], "--email") == 0)
			email = argv[i + 1];
	if (strcmp(argv[0], "create") == 0) {
		if (email == NULL) {
			snprintf(defmail, sizeof(defmail), "%s@localhost.localdomain",
			    username);
			email = defmail;
		}
		return set_admin(c, username, email, 1);
	}
	return set_admin(c, username, NULL, 0);
}
