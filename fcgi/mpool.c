/*
 * fcgi/mpool.c: the per-request memory pool. Chunks are chained; a reset
 * keeps the first chunk so a steady-state request allocates nothing from
 * malloc. Cleanups run newest first, so a PGresult registered after the
 * connection state it depends on is released before it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "djamms.h"

struct chunk {
	struct chunk	*next;
	size_t		 size;
	size_t		 used;
	/* then the data, aligned */
	max_align_t	 data[];
};

struct cleanup {
	cleanup_fn	 fn;
	void		*data;
	struct cleanup	*next;
};

struct mpool {
	struct chunk	*first;
	struct chunk	*current;
	struct cleanup	*cleanups;
	size_t		 chunk_size;
	size_t		 big_bytes;
};

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n);

	if (p == NULL) {
		/* Out of memory aborts the worker; the master respawns it. */
		fputs("{\"level\":\"error\",\"msg\":\"out of memory\"}\n", stderr);
		abort();
	}
	return p;
}

static struct chunk *
chunk_new(size_t size)
{
	struct chunk	*c;

	if (size > (size_t)-1 - sizeof(*c))
		abort();
	c = xmalloc(sizeof(*c) + size);

	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct mpool *
pool_new(size_t chunk_size)
{
	struct mpool	*p = xmalloc(sizeof(*p));

	if (chunk_size < 1024)
		chunk_size = 1024;
	p->chunk_size = chunk_size;
	p->first = p->current = chunk_new(chunk_size);
	p->cleanups = NULL;
	p->big_bytes = 0;
	return p;
}

static void
run_cleanups(struct mpool *p)
{
	struct cleanup	*c;

	/* A cleanup may register another; pop one at a time. */
	while ((c = p->cleanups) != NULL) {
		p->cleanups = c->next;
		c->fn(c->data);
	}
}

void
pool_reset(struct mpool *p)
{
	struct chunk	*c, *next;

	run_cleanups(p);
	for (c = p->first->next; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	p->first->next = NULL;
	p->first->used = 0;
	p->current = p->first;
	p->big_bytes = 0;
}

void
pool_free(struct mpool *p)
{
	if (p == NULL)
		return;
	pool_reset(p);
	free(p->first);
	free(p);
}

void *
pool_alloc(struct mpool *p, size_t n)
{
	struct chunk	*c;
	size_t		 align = sizeof(max_align_t);
	size_t		 need = (n + align - 1) & ~(align - 1);

	assert(p != NULL);
	if (need < n)
		abort();	/* overflow */
	c = p->current;
	if (c->size - c->used < need) {
		/* Big allocations get a chunk of their own after current. */
		size_t	 size = need > p->chunk_size ? need : p->chunk_size;

		c = chunk_new(size);
		c->next = p->current->next;
		p->current->next = c;
		if (size == p->chunk_size)
			p->current = c;
		else
			p->big_bytes += size;
	}
	{
		void	*ptr = (char *)c->data + c->used;

		c->used += need;
		return ptr;
	}
}

void *
pool_calloc(struct mpool *p, size_t n, size_t size)
{
	void	*ptr;

	if (size != 0 && n > (size_t)-1 / size)
		abort();
	ptr = pool_alloc(p, n * size);
	memset(ptr, 0, n * size);
	return ptr;
}

char *
pool_strndup(struct mpool *p, const char *s, size_t n)
{
	char	*d = pool_alloc(p, n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *
pool_strdup(struct mpool *p, const char *s)
{
	return s == NULL ? NULL : pool_strndup(p, s, strlen(s));
}

char *
pool_printf(struct mpool *p, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	s = pool_alloc(p, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void
pool_cleanup(struct mpool *p, cleanup_fn fn, void *data)
{
	struct cleanup	*c = pool_alloc(p, sizeof(*c));

	c->fn = fn;
	c->data = data;
	c->next = p->cleanups;
	p->cleanups = c;
}

static void
json_put_cleanup(void *o)
{
	json_object_put(o);
}

struct json_object *
pool_json(struct mpool *p, struct json_object *o)
{
	if (o != NULL)
		pool_cleanup(p, json_put_cleanup, o);
	return o;
}

size_t
pool_bytes_used(const struct mpool *p)
{
	const struct chunk	*c;
	size_t			 n = 0;

	for (c = p->first; c != NULL; c = c->next)
		n += c->used;
	return n;
}
