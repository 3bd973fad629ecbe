/*
 * fcgi/pagecache.c: each worker's own copy of the list pages it served
 * lately, in front of Redis's shared copy. A hit costs no round trip at
 * all: it is the cached bytes written back to nginx.
 *
 * A page is filed under its key and the library version that was current
 * before its contents were read (revoke_library_version()); a lookup
 * under any other version misses. The version moves on after every
 * library change, so a page never outlives one. Pages also expire after
 * the list cache's time to live, as Redis's do, which bounds how long a
 * play count shown in a list may lag.
 *
 * The table is direct-mapped: a key has one slot, and a new page for it
 * or for a key sharing the slot replaces the old one. No list is walked
 * and nothing needs evicting.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djamms.h"

#define PC_SLOTS	256		/* a power of two */
#define PC_MAX_BODY	(1024 * 1024)	/* bigger pages are not kept here */
#define PC_MAX_TOTAL	(48 * 1024 * 1024)	/* all pages of one worker */

struct pc_slot {
	char		 key[65];	/* hex SHA-256 of the canonical request */
	uint64_t	 version;
	time_t		 expires;
	char		*body;
	size_t		 len;
};

static struct pc_slot	 slots[PC_SLOTS];
static size_t		 total;		/* bytes of all pages kept */

static struct pc_slot *
slot_of(const char *key)
{
	uint32_t	 h = 2166136261u;	/* FNV-1a over the hex key */

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return &slots[h & (PC_SLOTS - 1)];
}

const char *
pagecache_get(const char *key, uint64_t version, time_t now, size_t *len)
{
	struct pc_slot	*s = slot_of(key);

	if (s->body == NULL || s->version != version || s->expires <= now ||
	    strcmp(s->key, key) != 0)
		return NULL;
	*len = s->len;
	return s->body;
}

void
pagecache_put(const char *key, uint64_t version, time_t expires,
    const char *body, size_t len)
{
	struct pc_slot	*s = slot_of(key);

	if (strlen(key) >= sizeof(s->key) || len > PC_MAX_BODY)
		return;
	if (total - (s->body ? s->len : 0) + len > PC_MAX_TOTAL)
		return;		/* full of big pages: the next put in that slot frees */
	if (s->body != NULL)
		total -= s->len;
	free(s->body);
	total += len;
	if ((s->body = malloc(len + 1)) == NULL)
		abort();	/* out of memory ends the worker */
	memcpy(s->body, body, len);
	s->body[len] = '\0';
	s->len = len;
	s->version = version;
	s->expires = expires;
	memcpy(s->key, key, strlen(key) + 1);
}

void
pagecache_free(void)
{
	size_t	 i;

	for (i = 0; i < PC_SLOTS; i++) {
		free(slots[i].body);
		slots[i].body = NULL;
	}
	total = 0;
}
