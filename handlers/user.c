/*
 * handlers/user.c: (being written)
 */
#include "../fcgi/djamms.h"

static const struct route user_routes[1];

const struct route_table user_route_table = { user_routes, 0 };
