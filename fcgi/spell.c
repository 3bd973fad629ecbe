/*
 * fcgi/spell.c: the library's words in each worker's memory, to correct
 * what users type.
 *
 * The words come from search_words (sql/012, kept by triggers), loaded
 * when the worker starts (or at first use, if the database was away then)
 * and again once the library changed (the shared library version,
 * revoke.c). Not at every change: a load costs a worker some time (about
 * 150 ms at 145k tracks, 100,000 words), so the next one waits twenty
 * times what the last took (at least 50 ms), which keeps reloading under
 * 5% of a worker's time however busily the library is written. A word
 * added a moment ago is found as typed at once, and corrected a little
 * later (at 145k tracks, within 3 s).
 *
 * A lookup looks closely only at words that begin as the typed word
 * does: those of a near length, most skipped with a letter-set test
 * (letter_set()), the rest measured bit-parallel. A word that begins
 * otherwise is one edit away only when that edit is its first letter
 * (changed, added, dropped, or swapped with the second), and those are
 * found by name in an index of the words by their tails. Two adjacent
 * letters swapped count as one edit, as people swap letters more than any
 * other mistake (optimal string alignment distance).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "djamms.h"

#define SPELL_RELOAD_MIN_US	50000

struct spell_word {
	const char	*w;
	int		 len;
	int		 tracks;
};

/*
 * words: by first byte, then length, then most used first; bucket[] the
 * first index of each (byte, length), so that the words of byte b and
 * length l are [bucket[b][l], bucket[b][l + 1]). by_tail: indexes of
 * words in the byte order of what follows their first byte.
 */
static struct spell_word	*words;
static uint64_t			*masks;		/* letter_set() of words[i], densely, for the scan */
static uint32_t			*by_tail;
static size_t			 nwords;
static char			*arena;
static size_t			 bucket[256][SPELL_MAXLEN + 2];
static uint64_t			 loaded_version;
static uint64_t			 next_load_us;	/* now_us() from which a change reloads */
static int			 loaded;

/*
 * The letters a word has (a-z, digits as one, other bytes in four
 * groups): the low half, each one present; the high half, each one
 * present twice or more. One edit takes at most one bit away (a letter
 * lost) and adds at most one (a letter gained), so a word within d edits
 * lost and gained at most d bits each: most words are ruled out on that
 * before any distance is computed.
 */
static uint64_t
letter_set(const char *w, int len)
{
	uint32_t	 once = 0, twice = 0, bit;
	int		 i;

	for (i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)w[i];

		if (c >= 'a' && c <= 'z')
			bit = 1u << (c - 'a');
		else if (c >= '0' && c <= '9')
			bit = 1u << 26;
		else
			bit = 1u << (27 + (c & 3));
		twice |= once & bit;
		once |= bit;
	}
	return (uint64_t)twice << 32 | once;
}

int
spell_distance(const char *a, int la, const char *b, int lb, int max)
{
	int	 rows[3][SPELL_MAXLEN + 1];
	int	*prev2 = rows[0], *prev = rows[1], *cur = rows[2], *tmp;
	int	 i, j;

	if (la > SPELL_MAXLEN || lb > SPELL_MAXLEN || la - lb > max || lb - la > max)
		return max + 1;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		int	 best;

		cur[0] = best = i;
		for (j = 1; j <= lb; j++) {
			int	 v = prev[j] + 1;		/* deletion */

			if (cur[j - 1] + 1 < v)			/* insertion */
				v = cur[j - 1] + 1;
			if (prev[j - 1] + (a[i - 1] != b[j - 1]) < v)	/* substitution */
				v = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)	/* swap */
				v = prev2[j - 2] + 1;
			cur[j] = v;
			if (v < best)
				best = v;
		}
		if (best > max)
			return max + 1;
		tmp = prev2;
		prev2 = prev;
		prev = cur;
		cur = tmp;
	}
	return prev[lb] > max ? max + 1 : prev[lb];
}

/*
 * The same distance, bit-parallel (Hyyrö 2003, the optimal string
 * alignment variant of Myers' algorithm): one pass over b with a handful
 * of word operations per byte, for a pattern a of at most 32 bytes whose
 * byte masks are in peq. spell_lookup() computes thousands of these per
 * word typed; the table above is the reference the tests hold it to.
 */
struct spell_pattern {
	uint32_t	 peq[256];
	int		 len;
};

static void
pattern_init(struct spell_pattern *p, const char *a, int la)
{
	int	 i;

	memset(p->peq, 0, sizeof(p->peq));
	p->len = la;
	for (i = 0; i < la; i++)
		p->peq[(unsigned char)a[i]] |= 1u << i;
}

static int
osa_bits(const struct spell_pattern *p, const char *b, int lb)
{
	uint32_t	 vp = ~0u, vn = 0, d0 = 0, pm_old = 0, high;
	int		 d = p->len, j;

	if (p->len == 0)
		return lb;
	high = 1u << (p->len - 1);
	for (j = 0; j < lb; j++) {
		uint32_t	 pm = p->peq[(unsigned char)b[j]], tr, hp, hn;

		tr = ((~d0 & pm) << 1) & pm_old;
		d0 = (((pm & vp) + vp) ^ vp) | pm | vn | tr;
		hp = vn | ~(d0 | vp);
		hn = d0 & vp;
		d += (hp & high) != 0;
		d -= (hn & high) != 0;
		hp = (hp << 1) | 1;
		hn <<= 1;
		vp = hn | ~(d0 | hp);
		vn = hp & d0;
		pm_old = pm;
	}
	return d;
}

int
spell_distance_bits(const char *a, int la, const char *b, int lb)
{
	struct spell_pattern	 p;

	if (la > SPELL_MAXLEN || lb > SPELL_MAXLEN)
		return -1;
	pattern_init(&p, a, la);
	return osa_bits(&p, b, lb);
}

/*
 * Set bits. The baseline x86-64 Debian builds for has no popcnt
 * instruction, so spell_lookup() is built twice, with and without it, and
 * the loader picks the one this processor runs (GCC's target_clones):
 * the scan takes half the time with it.
 */
static inline int
bits_set(uint64_t x)
{
	return __builtin_popcountll(x);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WITH_POPCNT	__attribute__((target_clones("popcnt", "default")))
#else
#define WITH_POPCNT
#endif

static int
by_bucket(const void *x, const void *y)
{
	const struct spell_word	*a = x, *b = y;

	if (a->w[0] != b->w[0])
		return (unsigned char)a->w[0] - (unsigned char)b->w[0];
	if (a->len != b->len)
		return a->len - b->len;
	return b->tracks - a->tracks;	/* most used first within a bucket */
}

static int
tail_order(const void *x, const void *y)
{
	return strcmp(words[*(const uint32_t *)x].w + 1, words[*(const uint32_t *)y].w + 1);
}

void
spell_free(void)
{
	free(words);
	free(masks);
	free(by_tail);
	free(arena);
	words = NULL;
	masks = NULL;
	by_tail = NULL;
	arena = NULL;
	nwords = 0;
	loaded = 0;
}

int
spell_set_words(const char *const *w, const int *tracks, size_t n)
{
	size_t	 i, bytes = 0, o = 0;
	int	 len, b;

	spell_free();
	for (i = 0; i < n; i++)
		bytes += strlen(w[i]) + 1;
	if ((words = calloc(n + 1, sizeof(*words))) == NULL ||
	    (arena = malloc(bytes + 1)) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		len = (int)strlen(w[i]);
		if (len == 0 || len > SPELL_MAXLEN)
			continue;
		memcpy(arena + o, w[i], (size_t)len + 1);
		words[nwords].w = arena + o;
		words[nwords].len = len;
		words[nwords].tracks = tracks[i];
		nwords++;
		o += (size_t)len + 1;
	}
	qsort(words, nwords, sizeof(*words), by_bucket);
	if ((masks = malloc((nwords + 1) * sizeof(*masks))) == NULL ||
	    (by_tail = malloc((nwords + 1) * sizeof(*by_tail))) == NULL)
		abort();
	for (i = 0; i < nwords; i++) {
		masks[i] = letter_set(words[i].w, words[i].len);
		by_tail[i] = (uint32_t)i;
	}
	qsort(by_tail, nwords, sizeof(*by_tail), tail_order);
	for (i = 0, b = 0; b < 256; b++)
		for (len = 0; len <= SPELL_MAXLEN + 1; len++) {
			while (i < nwords && ((unsigned char)words[i].w[0] < b ||
			    ((unsigned char)words[i].w[0] == b && words[i].len < len)))
				i++;
			bucket[b][len] = i;
		}
	loaded = 1;
	return 0;
}

/* Load (or reload) the dictionary when the library moved on (r NULL: no request). */
static void
spell_refresh(struct req *r)
{
	static const struct db_stmt st = {
		"spell_words",
		"SELECT word, tracks FROM search_words WHERE length(word) <= 32",
		0
	};
	PGresult	*res;
	uint64_t	 v = 0;
	int		 live = revoke_library_version(&v) == 0;
	uint64_t	 t0 = now_us(), took;
	const char	**w;
	int		*t, i, n;

	if (loaded && (!live || v == loaded_version || t0 < next_load_us))
		return;
	if (db_exec(r, &res, &st, NULL) != E_OK)
		return;		/* keep what we have */
	n = PQntuples(res);
	if ((w = calloc((size_t)n + 1, sizeof(*w))) == NULL ||
	    (t = calloc((size_t)n + 1, sizeof(*t))) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		w[i] = PQgetvalue(res, i, 0);
		t[i] = atoi(PQgetvalue(res, i, 1));
	}
	spell_set_words(w, t, (size_t)n);
	free(w);
	free(t);
	if (r == NULL)
		PQclear(res);
	loaded_version = v;
	took = now_us() - t0;
	next_load_us = t0 + took + (20 * took > SPELL_RELOAD_MIN_US ? 20 * took :
	    SPELL_RELOAD_MIN_US);
	log_debug("spelling dictionary loaded", "\"words\":%d,\"ms\":%.1f", n,
	    (double)took / 1000.0);
}

void
spell_preload(void)
{
	if (db_ok())
		spell_refresh(NULL);
}

static int
cand_order(const void *x, const void *y)
{
	const struct spell_cand	*a = x, *b = y;

	if (a->distance != b->distance)
		return a->distance - b->distance;
	return b->tracks - a->tracks;
}

/* Keep the best max candidates in out (n of them so far). */
static int
consider(struct spell_cand *out, int n, int max, const struct spell_word *sw, int d)
{
	int	 worst = 0, k;

	if (n < max) {
		out[n].word = sw->w;
		out[n].distance = d;
		out[n].tracks = sw->tracks;
		return n + 1;
	}
	/* full: replace the worst if this one is better */
	for (k = 1; k < n; k++)
		if (cand_order(&out[k], &out[worst]) > 0)
			worst = k;
	if (d < out[worst].distance || (d == out[worst].distance &&
	    sw->tracks > out[worst].tracks)) {
		out[worst].word = sw->w;
		out[worst].distance = d;
		out[worst].tracks = sw->tracks;
	}
	return n;
}

/* The first index in by_tail whose word's tail is not below tail. */
static size_t
tail_from(const char *tail)
{
	size_t	 lo = 0, hi = nwords;

	while (lo < hi) {
		size_t	 mid = lo + (hi - lo) / 2;

		if (strcmp(words[by_tail[mid]].w + 1, tail) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The words whose tail is tail, of length len, beginning with first (or,
 * first < 0, with anything but the byte not): one edit away.
 */
static int
by_tail_add(const char *tail, int len, int first, int not, struct spell_cand *out,
    int n, int max)
{
	size_t	 i;

	for (i = tail_from(tail); i < nwords; i++) {
		const struct spell_word	*sw = &words[by_tail[i]];
		int			 b = (unsigned char)sw->w[0];

		if (strcmp(sw->w + 1, tail) != 0)
			break;
		if (sw->len == len && (first >= 0 ? b == first : b != not))
			n = consider(out, n, max, sw, 1);
	}
	return n;
}

int
spell_split_ascii(const char *q, char (*out)[SPELL_MAXLEN + 1], int max)
{
	const unsigned char	*p;
	int			 n = 0;

	for (p = (const unsigned char *)q; *p != '\0'; p++)
		if (*p >= 0x80)
			return -1;
	p = (const unsigned char *)q;
	while (*p != '\0' && n < max) {
		size_t	 len = 0;

		while (*p != '\0' && !isalnum(*p))
			p++;
		while (isalnum(p[len]))
			len++;
		if (len > 0 && len <= SPELL_MAXLEN) {
			size_t	 i;

			for (i = 0; i < len; i++)
				out[n][i] = (char)tolower(p[i]);
			out[n++][len] = '\0';
		}
		p += len;
	}
	return n;
}

int
spell_count(const char *word)
{
	size_t	 i;

	if (word[0] == '\0' || nwords == 0)
		return 0;
	for (i = tail_from(word + 1); i < nwords; i++) {
		const struct spell_word	*sw = &words[by_tail[i]];

		if (strcmp(sw->w + 1, word + 1) != 0)
			break;
		if (sw->w[0] == word[0])
			return sw->tracks;
	}
	return 0;
}

WITH_POPCNT int
spell_lookup(const char *word, int reach, struct spell_cand *out, int max)
{
	int			 len = (int)strlen(word), n = 0, l;
	int			 c0 = (unsigned char)word[0];
	uint64_t		 mask;
	struct spell_pattern	 pat;
	char			 swapped[SPELL_MAXLEN + 1];

	if (len == 0 || len > SPELL_MAXLEN || max <= 0 || nwords == 0)
		return 0;
	mask = letter_set(word, len);
	pattern_init(&pat, word, len);
	/* the words that begin as this one, within reach */
	for (l = len - reach < 1 ? 1 : len - reach; l <= len + reach && l <= SPELL_MAXLEN; l++) {
		size_t	 i;

		for (i = bucket[c0][l]; i < bucket[c0][l + 1]; i++) {
			int	 d;

			if (bits_set(mask & ~masks[i]) > reach ||
			    bits_set(masks[i] & ~mask) > reach)
				continue;
			if ((d = osa_bits(&pat, words[i].w, words[i].len)) <= reach)
				n = consider(out, n, max, &words[i], d);
		}
	}
	/* the others one edit away: that edit is their first letter */
	if (reach >= 1) {
		n = by_tail_add(word + 1, len, -1, c0, out, n, max);	/* changed */
		if (len < SPELL_MAXLEN)
			n = by_tail_add(word, len + 1, -1, c0, out, n, max);	/* added */
		if (len >= 2 && (unsigned char)word[1] != c0)		/* dropped */
			n = by_tail_add(word + 2, len - 1, (unsigned char)word[1], 0,
			    out, n, max);
		if (len >= 2 && (unsigned char)word[1] != c0) {		/* swapped */
			memcpy(swapped, word, (size_t)len + 1);
			swapped[0] = word[1];
			swapped[1] = word[0];
			n = by_tail_add(swapped + 1, len, (unsigned char)word[1], 0,
			    out, n, max);
		}
	}
	qsort(out, (size_t)n, sizeof(*out), cand_order);
	return n;
}

int
spell_candidates(struct req *r, const char *word, int reach,
    struct spell_cand *out, int max)
{
	spell_refresh(r);
	return spell_lookup(word, reach, out, max);
}

int
spell_known(struct req *r, const char *word)
{
	spell_refresh(r);
	return spell_count(word);
}
