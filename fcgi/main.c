/*
 * fcgi/main.c: the djamms command. One binary: `serve` runs the pool,
 * `migrate` applies sql/, `admin`, `import` and `catalog` are operator
 * commands, `check-config` validates the environment.
 */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "djamms.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: djamms serve            run the FastCGI worker pool\n"
	    "       djamms migrate [--status]  apply (or list) SQL migrations\n"
	    "       djamms admin create|reset USERNAME [--email EMAIL]\n"
	    "                               create an admin, or reset one's password;\n"
	    "                               the password comes from DJAMMS_ADMIN_PASSWORD\n"
	    "                               or is generated and printed once\n"
	    "       djamms admin ensure     create the first admin if there is none\n"
	    "                               (DJAMMS_ADMIN_USER, DJAMMS_ADMIN_PASSWORD)\n"
	    "       djamms import DIR [--copy] [--user USERNAME] [--dry-run]\n"
	    "                               add a directory tree of audio files to the\n"
	    "                               library, in place (symlinks) or copied;\n"
	    "                               run it again to pick up changes\n"
	    "       djamms catalog FILE.csv [--user USERNAME]\n"
	    "                               load a metadata-only catalogue (tracks\n"
	    "                               without audio); loading it again adds nothing\n"
	    "       djamms jobs run [--workers N] [--schedule]\n"
	    "                               the background job runner (also as djamms-jobs);\n"
	    "                               --schedule enqueues the periodic jobs itself\n"
	    "       djamms jobs enqueue TYPE... queue cleanup, popularity or mail now\n"
	    "       djamms backup create [--no-media] | list | restore NAME\n"
	    "                               back up the database (and media) to\n"
	    "                               DJAMMS_BACKUP_DIR, or restore one\n"
	    "       djamms check-config     validate the DJAMMS_* environment\n"
	    "       djamms version\n");
	return 2;
}

int
main(int argc, char **argv)
{
	/* the job runner under its own name: djamms-jobs run ... */
	if (argc >= 1 && strcmp(basename(argv[0]), "djamms-jobs") == 0) {
		if (config_load(CONFIG_ADMIN) != 0)
			return 78;
		return jobs_cli(argc - 1, argv + 1);
	}
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "backup") == 0) {
		if (config_load(CONFIG_ADMIN) != 0)
			return 78;
		return backup_cli(argc - 2, argv + 2);
	}
	if (strcmp(argv[1], "jobs") == 0) {
		if (config_load(CONFIG_ADMIN) != 0)
			return 78;
		return jobs_cli(argc - 2, argv + 2);
	}
	if (strcmp(argv[1], "serve") == 0) {
		if (config_load(CONFIG_SERVE) != 0 || auth_init() != 0)
			return 78;	/* EX_CONFIG: systemd shows it plainly */
		return master_run();
	}
	if (strcmp(argv[1], "migrate") == 0) {
		int	 status_only = argc > 2 && strcmp(argv[2], "--status") == 0;

		if (config_load(CONFIG_MIGRATE) != 0)
			return 78;
		return migrate_run(status_only);
	}
	if (strcmp(argv[1], "admin") == 0) {
		if (config_load(CONFIG_ADMIN) != 0)
			return 78;
		return admin_cli(argc - 2, argv + 2);
	}
	if (strcmp(argv[1], "import") == 0 || strcmp(argv[1], "catalog") == 0) {
		if (config_load(CONFIG_ADMIN) != 0)
			return 78;
		return argv[1][0] == 'i' ? import_cli(argc - 2, argv + 2) :
		    catalog_cli(argc - 2, argv + 2);
	}
	if (strcmp(argv[1], "check-config") == 0) {
		if (config_load(CONFIG_SERVE) != 0 || auth_init() != 0)
			return 78;
		puts("configuration ok");
		return 0;
	}
	if (strcmp(argv[1], "version") == 0) {
		puts("djamms " DJAMMS_VERSION);
		return 0;
	}
	return usage();
}
