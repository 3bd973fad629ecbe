/*
 * handlers/playlists.c: (being written)
 */
#include "../fcgi/djamms.h"

static const struct route playlist_routes[1];

const struct route_table playlist_route_table = { playlist_routes, 0 };
