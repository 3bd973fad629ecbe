/*
 * tests/it_playlists.c: (being written)
 */
#include <stddef.h>

#include "http.h"

const struct it_test playlist_tests[1];
const size_t playlist_ntests = 0;

void
playlist_tests_init(const char *dir, const char *repo)
{
	(void)dir;
	(void)repo;
}
