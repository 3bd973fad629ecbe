/*
 * tests/it_user.c: (being written)
 */
#include <stddef.h>

#include "http.h"

const struct it_test user_tests[1];
const size_t user_ntests = 0;

void
user_tests_init(const char *dir, const char *repo)
{
	(void)dir;
	(void)repo;
}
