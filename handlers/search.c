/*
 * handlers/search.c: /api/music/search... Search that forgives typos, on
 * Postgres alone.
 *
 * What the user typed is normalised and split by the database, as the
 * library's words were (sql/012). Each word is then corrected in the
 * worker against the library's own words (spell.c): the word itself when
 * the library has it, and words within one to three edits (by length),
 * closest and most used first. The tracks are asked for in one statement:
 * every word or one of its corrections, in any order, the last word also
 * as a prefix; ranked by text relevance (title over artist over album),
 * popularity, how few corrections the match needed, and, for the caller,
 * their likes and plays; with the facets of the whole match. A query that
 * matches nothing with every word is tried again with one word left out
 * (an extra word), then with any word.
 *
 * Results are cached with the library lists (listcache.c, a library
 * change moves them on) for 15 minutes, per caller (likes and plays
 * count). Every search is written to the caller's search history.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define MAX_WORDS	8
#define MAX_CANDS	80
#define RANK_CANDS	8	/* candidates per word in the ranking query */
/*
 * The most popular matches ranked, at most: scoring them is most of a
 * broad search's time. 300 keep the relevance set whole at 145,000 and
 * at 1,000,000 tracks, with the same first ten results for every query of
 * it as 500, for the bench's user with 5,000 likes (2,000 before that,
 * then 1,000: 7% more searches a second, p99 15% lower at a million;
 * 1,000 to 500: a tenth less of the database's time there, the heaviest
 * queries a fifth less; 500 to 300, on search's own two workers, 16
 * connections flat out in turn: a first batch 1,303-1,369 req/s, p99
 * 19.2-22.0 ms against 1,266-1,318 and 18.6-19.9, no clear gain; a second
 * 1,413-1,444 against 1,284-1,301, p99 17.0-18.1 against 19.0-20.2; make
 * bench p99 18.7 and 19.4 against 20.7 and 20.9). The facets and the
 * total count these.
 */
#define HIT_LIMIT	300
/*
 * The caller's likes and plays can lift the best LIFT_WINDOW of the hits
 * (by text and popularity); the rest follow in that order. Each lifted
 * track costs two index probes.
 */
#define LIFT_WINDOW	200
/*
 * The hits are asked of the popular band's index first (popularity at or
 * over POPULAR_BAND, as sql/021_search_bands.sql indexes it) and of the
 * rest's only for as many as the band did not fill: no track below the
 * band outranks one in it, so the HIT_LIMIT most popular are the same, and
 * a broad search ("bad bony", 2,066 matches at a million tracks, 716 in
 * the band) reads a third of its matches. The limit of the second part is
 * 0 when the band has them all, and a LIMIT 0 never runs its scan.
 */
#define POPULAR_BAND	25
#define HIT_COLS	"t.id, t.genre, t.year, t.duration, t.artist, t.album," \
			" t.popularity, t.search_vec"
_Static_assert(LIFT_WINDOW <= HIT_LIMIT, "the window is within the hits");
#define SEARCH_TTL_S	900

struct word {
	const char		*typed;
	struct spell_cand	 cand[MAX_CANDS];
	int			 ncand;
	int			 known;		/* the library has it as typed */
	int			 prefix;	/* also as a prefix (the last word) */
};

/* How many edits a word of len letters may be away from what was meant. */
static int
reach_of(int len)
{
	return len <= 2 ? 0 : len == 3 ? 1 : len <= 8 ? 2 : 3;
}

/* What people write for common words in titles. */
static const char *const shorthand[][2] = {
	{ "u", "you" }, { "ur", "your" }, { "r", "are" }, { "n", "and" },
	{ "2", "to" }, { "4", "for" }, { "b", "be" }, { "luv", "love" },
	{ "tha", "the" }, { "da", "the" }, { "ya", "you" }, { "thru", "through" },
	{ "nite", "night" }, { "gonna", "going" }, { "wanna", "want" },
	{ "feat", "ft" }, { "ft", "feat" }, { "&", "and" },
};

/* A word the library has this often is taken as meant. */
#define COMMON_WORD	30
/* ... and one this common is nobody's two-edit typo of another word. */
#define VERY_COMMON_WORD 300

/*
 * The candidates of one word: itself, then (unless the library has it
 * often: a common word is not a typo) at most 30 words one edit away, 12
 * two edits away and 5 three away, most used first in each; and its
 * long form if it is a shorthand. The last word is also a prefix unless
 * it is a word of its own (as you type). A short word has hundreds of
 * words two edits away; past the dozen most used they are words of a
 * track or two ("bwoy" for "bony"), and each one more makes every
 * scored row dearer.
 */
static int
same_edges(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);

	return la > 0 && lb > 0 && a[0] == b[0] && a[la - 1] == b[lb - 1];
}

/* Stable: within each distance, same-edged words before the others. */
static void
edges_first(const char *typed, struct spell_cand *c, int n)
{
	struct spell_cand	 tmp[200];
	int			 i, k, o = 0, start;

	for (start = 0; start < n; start = i) {
		for (i = start; i < n && c[i].distance == c[start].distance; i++)
			;
		for (k = start; k < i; k++)
			if (same_edges(typed, c[k].word))
				tmp[o++] = c[k];
		for (k = start; k < i; k++)
			if (!same_edges(typed, c[k].word))
				tmp[o++] = c[k];
	}
	memcpy(c, tmp, sizeof(*c) * (size_t)n);
}

/*
 * How many letters of a are kept in b, in order (their longest common
 * subsequence). Spelling candidates are ASCII words of at most 32 letters;
 * anything longer counts as keeping nothing.
 */
static int
kept_in_order(const char *a, const char *b)
{
	int	 prev[34], cur[34], i, j, la = (int)strlen(a), lb = (int)strlen(b);

	if (la > 32 || lb > 32)
		return 0;
	memset(prev, 0, sizeof(prev));
	for (i = 1; i <= la; i++) {
		cur[0] = 0;
		for (j = 1; j <= lb; j++)
			cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 :
			    prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
		memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
	}
	return prev[lb];
}

static void
word_candidates_ex(struct req *r, struct word *w, int last, int force)
{
	/*
	 * A word the library has often is corrected only on a second try,
	 * every such word of the query at once: there the closest few
	 * spellings do ("weeknd" for "weekend", "chappell" for "chapel"),
	 * and the dozens of a common word's neighbours ("god", "gold",
	 * "food" for "good") only made that try scan half the index.
	 * A short word has dozens of words one letter away ("bony": "boy",
	 * "bond", "sony", "jony", "bons", ... 22 of them at a million
	 * tracks); its 12 closest (same ends first, then the most used)
	 * are kept. Every spelling is one more entry in the index scan and
	 * in each phrase and penalty test of every hit: the other ten were
	 * a tenth of the time of "bad bony", and changed no result of the
	 * bench's queries.
	 */
	static const int	 quota_of[3][4] = { { 1, 30, 12, 5 }, { 1, 6, 3, 1 },
	    { 1, 12, 12, 5 } };
	int			 n, i, per[4] = { 0, 0, 0, 0 }, known_tracks = 0;
	int			 ascii = 1, len = (int)strlen(w->typed);
	const int		*quota = quota_of[force ? 1 : len <= 5 ? 2 : 0];
	struct spell_cand	 all[200];
	const char		*p;

	for (p = w->typed; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = 0;
	w->ncand = 0;
	w->known = 0;
	/* a common word is taken as typed: no need to look further */
	if (ascii && !force && (known_tracks = spell_known(r, w->typed)) >= COMMON_WORD)
		n = 0;
	else
		n = ascii ? spell_candidates(r, w->typed,
		    reach_of(len), all, 200) : 0;
	w->known = known_tracks > 0;
	for (i = 0; i < n; i++)
		if (all[i].distance == 0) {
			w->known = 1;
			known_tracks = all[i].tracks;
		}
	/* Slips keep a word's ends more often than its middle: among words as
	 * far away, those with the same first and last letters come first. */
	edges_first(w->typed, all, n);
	w->cand[0].word = w->typed;
	w->cand[0].distance = 0;
	w->cand[0].tracks = known_tracks;
	w->ncand = 1;
	w->prefix = last && !w->known;
	for (i = 0; i < (int)(sizeof(shorthand) / sizeof(shorthand[0])); i++)
		if (strcmp(w->typed, shorthand[i][0]) == 0 && w->ncand < MAX_CANDS) {
			w->cand[w->ncand].word = shorthand[i][1];
			w->cand[w->ncand].distance = 1;
			w->cand[w->ncand].tracks = 0;
			w->ncand++;
		}
	if (w->known && known_tracks >= COMMON_WORD && !force)
		return;
	for (i = 0; i < n && w->ncand < MAX_CANDS; i++) {
		if (all[i].distance == 0 || per[all[i].distance] >= quota[all[i].distance])
			continue;
		/*
		 * Two edits reach far in a short word: there they must keep its
		 * first letter, and a common word ("feat" for "fein", "one" for
		 * "bony") must also keep its last one; nobody slips twice into a
		 * word they could spell.
		 */
		if (all[i].distance >= 2 &&
		    (all[i].word[0] != w->typed[0] ||
		    (all[i].tracks > VERY_COMMON_WORD && !same_edges(w->typed, all[i].word))))
			continue;
		/*
		 * ... and in a word of up to five letters, two edits may not
		 * both be wrong letters: "bunny" keeps b, n, y of "bony" (one
		 * letter wrong, one left out), "baby" keeps only its ends and
		 * "by" is two letters shorter. Such far spellings were a tenth
		 * of the hits of "bad bony" at a million tracks.
		 */
		if (all[i].distance == 2 && len <= 5 &&
		    kept_in_order(w->typed, all[i].word) < len - 1)
			continue;
		per[all[i].distance]++;
		w->cand[w->ncand++] = all[i];
	}
}

static void
word_candidates(struct req *r, struct word *w, int last)
{
	word_candidates_ex(r, w, last, 0);
}

/* A common word after all: with its corrections, for a second try. */
static void
expand_common(struct req *r, struct word *w, int last)
{
	word_candidates_ex(r, w, last, 1);
}

/* A tsquery lexeme: our words are [a-z0-9] or letters, never quotes. */
static void
add_lexeme_w(char *q, size_t cap, const char *word, int prefix, const char *weight)
{
	size_t	 o = strlen(q);
	size_t	 i;

	if (o + strlen(word) + 8 >= cap)
		return;
	q[o++] = '\'';
	for (i = 0; word[i] != '\0'; i++)
		if (word[i] != '\'' && word[i] != '\\')
			q[o++] = word[i];
	q[o++] = '\'';
	if (prefix || weight != NULL)
		q[o++] = ':';
	if (prefix)
		q[o++] = '*';
	if (weight != NULL)
		q[o++] = weight[0];
	q[o] = '\0';
}

static void
add_lexeme(char *q, size_t cap, const char *word, int prefix)
{
	add_lexeme_w(q, cap, word, prefix, NULL);
}

/*
 * (w1 | w2 | ...) of word i, min to max edits away, in the fields of
 * weight; at most ncap of them (the candidates come closest and most used
 * first). "()" when there are none: callers ask only for what exists.
 */
static void
add_group_n(char *q, size_t cap, const struct word *w, int last, int min, int max,
    const char *weight, int ncap)
{
	int	 i, first = 1, k = 0;

	strncat(q, "(", cap - strlen(q) - 1);
	for (i = 0; i < w->ncand && k < ncap; i++) {
		if (w->cand[i].distance < min || w->cand[i].distance > max)
			continue;
		k++;
		if (!first)
			strncat(q, " | ", cap - strlen(q) - 1);
		add_lexeme_w(q, cap, w->cand[i].word, last && i == 0 && w->prefix, weight);
		first = 0;
	}
	strncat(q, ")", cap - strlen(q) - 1);
}

static void
add_group_w(char *q, size_t cap, const struct word *w, int last, int max,
    const char *weight)
{
	add_group_n(q, cap, w, last, 0, max, weight, MAX_CANDS);
}

/*
 * The query every track must match: all groups (skip == -1), all but one
 * of them, whichever (skip == -3), or any group (skip == -2).
 */
static void
build_match_n(char *q, size_t cap, const struct word *w, int n, int skip, int ncap)
{
	int	 i, first = 1;

	q[0] = '\0';
	if (skip == -3) {
		char	 part[4096];
		int	 k;

		for (k = 0; k < n; k++) {
			build_match_n(part, sizeof(part), w, n, k, ncap);
			if (k > 0)
				strncat(q, " | ", cap - strlen(q) - 1);
			strncat(q, "(", cap - strlen(q) - 1);
			strncat(q, part, cap - strlen(q) - 1);
			strncat(q, ")", cap - strlen(q) - 1);
		}
		return;
	}
	for (i = 0; i < n; i++) {
		if (i == skip)
			continue;
		if (!first)
			strncat(q, skip == -2 ? " | " : " & ", cap - strlen(q) - 1);
		add_group_n(q, cap, &w[i], i == n - 1, 0, 3, NULL, ncap);
		first = 0;
	}
}

static void
build_match(char *q, size_t cap, const struct word *w, int n, int skip)
{
	build_match_n(q, cap, w, n, skip, MAX_CANDS);
}

/*
 * At most how many tracks word w's group matches: the dictionary's count
 * of each of its spellings, added up; -1 when that is not known (a
 * prefix, a shorthand, a word in another script, whose tracks the
 * dictionary does not count).
 */
static long
group_tracks(const struct word *w, int last)
{
	const char	*p;
	long		 sum = 0;
	int		 i;

	if (last && w->prefix)
		return -1;
	for (p = w->typed; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return -1;
	for (i = 0; i < w->ncand; i++) {
		if (w->cand[i].distance > 3)
			continue;
		if (i > 0 && w->cand[i].tracks <= 0)
			return -1;
		sum += w->cand[i].tracks;
	}
	return sum;
}

/*
 * The k-th index condition every hit meets (from 0), into q, and in
 * *tracks at most how many tracks it matches (-1: not known); 0 when
 * there is no such condition. The conditions are ANDed, and each is a key
 * of its own in the GIN scan, which intersects the keys and tests each
 * track against one key's words at a time, where one query
 * of them all was tested against every track any spelling of any word had
 * ("bad bony" walked the 14,000 tracks of the spellings of "bony", each
 * against all 26 spellings):
 *   every word (skip == -1): one condition a word;
 *   all but one (skip == -3): one a pair of words, either of them (no two
 *     words are both missing: the same tracks as any n - 1 of n words,
 *     "chapel roan good luck babe" 11 to 7.5 ms at a million tracks);
 *   any word (skip == -2): one condition, any word.
 */
static int
match_key(char *q, size_t cap, const struct word *w, int n, int skip, int k, long *tracks)
{
	long	 a, b;
	int	 i, j;

	q[0] = '\0';
	*tracks = -1;
	if (skip == -2) {
		if (k > 0)
			return 0;
		build_match(q, cap, w, n, skip);
		return 1;
	}
	if (skip == -1) {
		if (k >= n)
			return 0;
		add_group_n(q, cap, &w[k], k == n - 1, 0, 3, NULL, MAX_CANDS);
		*tracks = group_tracks(&w[k], k == n - 1);
		return 1;
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (k-- == 0) {
				add_group_n(q, cap, &w[i], i == n - 1, 0, 3, NULL, MAX_CANDS);
				strncat(q, " | ", cap - strlen(q) - 1);
				add_group_n(q, cap, &w[j], j == n - 1, 0, 3, NULL, MAX_CANDS);
				a = group_tracks(&w[i], i == n - 1);
				b = group_tracks(&w[j], j == n - 1);
				*tracks = a < 0 || b < 0 ? -1 : a + b;
				return 1;
			}
	return 0;
}

#define MAX_KEYS	28	/* conditions of a try: pairs of 8 words */
_Static_assert(MAX_KEYS >= MAX_WORDS * (MAX_WORDS - 1) / 2, "a try's conditions fit");
#define KEY_SPREAD	8

/*
 * Which of a try's conditions the index is asked, and which are tested on
 * the tracks it finds: the first *nindex after this (the one that matches
 * fewest tracks first, as $1), the rest after them, each group in its
 * order. Every condition holds of every hit either way; only the cost
 * differs. A condition that matches over KEY_SPREAD times more tracks than
 * the rarest one costs the GIN scan more to read (its words' posting
 * lists, whole) than testing it on the few tracks the others leave costs:
 * "the weekend starboy" 3.8 to 1.0 ms at a million tracks ("starboy" is
 * rare, "the" and "weekend" are not), "chapel roan good luck babe" 7.8 to
 * 3.9 ms (the pairs with "good" and "roan" matched 20,000 to 29,000 tracks
 * each), a tenth of the database's time over the bench's 75 queries; none
 * slower. 2 asked the index too little (the database's time doubled), 4,
 * 16 and 64 did about as well as 8. Unknown counts stay in the index.
 */
static void
order_keys(const char **key, const long *tracks, int n, int *nindex)
{
	const char	*sorted[MAX_KEYS];
	int		 i, m = -1, o = 0, pass;

	*nindex = n;
	for (i = 0; i < n; i++)
		if (tracks[i] >= 0 && (m < 0 || tracks[i] < tracks[m]))
			m = i;
	if (m < 0)
		return;
	sorted[o++] = key[m];
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			int	 ask = tracks[i] < 0 || tracks[i] <= KEY_SPREAD * tracks[m];

			if (i != m && ask == (pass == 0))
				sorted[o++] = key[i];
		}
		if (pass == 0)
			*nindex = o;
	}
	memcpy(key, sorted, sizeof(*key) * (size_t)n);
}

/*
 * The conditions tested on the tracks (not asked of the index) as one
 * tsquery, all of them: one parameter however many there are, so that a
 * search's statement has few shapes to prepare. NULL when there are none.
 */
static const char *
tested_keys(struct req *r, const char *const *key, int n)
{
	size_t	 len = 1;
	char	*q;
	int	 i;

	if (n == 0)
		return NULL;
	for (i = 0; i < n; i++)
		len += strlen(key[i]) + 5;
	q = pool_alloc(r->pool, len);	/* never NULL: the pool aborts */
	q[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(q, " & ");
		strcat(q, "(");
		strcat(q, key[i]);
		strcat(q, ")");
	}
	return q;
}

/* Allow-listed filters, appended as parameters. */
struct filters {
	const char	*genre, *yfrom, *yto, *dmin, *dmax;
};

/*
 * Whether the database splits an ASCII query as spell_split_ascii() does:
 * search_normalize() is lower() of unaccent(), which maps no ASCII
 * character, and [[:alnum:]] is [0-9A-Za-z] there, unless its locale says
 * otherwise (a Turkish lower() of "I"). Asked once a worker. -1: not yet.
 */
static int	 ascii_split_agrees = -1;

static enum app_err
ascii_split_check(struct req *r)
{
	static const struct db_stmt st = {
		"search_split_check",
		"SELECT search_normalize($1) = $2 AND (SELECT string_agg(c, ''"
		" ORDER BY ascii(c)) FROM regexp_split_to_table($1, '') c"
		" WHERE c ~ '[[:alnum:]]') = $3",
		3
	};
	char		 all[128], low[128];
	PGresult	*res;
	enum app_err	 err;
	int		 c;

	for (c = 1; c < 128; c++) {
		all[c - 1] = (char)c;
		low[c - 1] = (char)tolower(c);
	}
	all[127] = low[127] = '\0';
	if ((err = db_exec_plan(r, &res, &st, (const char *const[]){ all, low,
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" },
	    DB_PLAN_ANY)) != E_OK)
		return err;
	ascii_split_agrees = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (!ascii_split_agrees)
		log_warn("the database's lower case or letters differ from ASCII's"
		    " (its locale): it splits every query", NULL);
	return E_OK;
}

/*
 * Split and normalise q as the library's words were. OUT: w, n. An ASCII
 * query (most are) is split here, which saves a round trip to the
 * database; any other by the database, which has the unaccent rules and
 * the locale's lower case.
 */
static enum app_err
split_query(struct req *r, const char *q, struct word *w, int *n)
{
	static const struct db_stmt st = {
		"search_split",
		"SELECT x FROM regexp_split_to_table(search_normalize($1),"
		" '[^[:alnum:]]+') WITH ORDINALITY s(x, i) WHERE x <> ''"
		" AND length(x) <= " STR(SPELL_MAXLEN) " ORDER BY i LIMIT " STR(MAX_WORDS),
		1
	};
	char		 aw[MAX_WORDS][SPELL_MAXLEN + 1];
	PGresult	*res;
	enum app_err	 err;
	int		 i, k;

	if (ascii_split_agrees != 0 && (k = spell_split_ascii(q, aw, MAX_WORDS)) >= 0) {
		if (ascii_split_agrees < 0 && (err = ascii_split_check(r)) != E_OK)
			return err;
		if (ascii_split_agrees == 1) {
			for (i = 0; i < k; i++) {
				memset(&w[i], 0, sizeof(w[i]));
				w[i].typed = pool_strdup(r->pool, aw[i]);
			}
			*n = k;
			return E_OK;
		}
	}
	if ((err = db_exec_plan(r, &res, &st, (const char *const[]){ q }, DB_PLAN_ANY)) !=
	    E_OK)
		return err;
	*n = PQntuples(res) < MAX_WORDS ? PQntuples(res) : MAX_WORDS;
	for (i = 0; i < *n; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].typed = pool_strdup(r->pool, PQgetvalue(res, i, 0));
	}
	return E_OK;
}

/*
 * The statement: $1 the match, $2 the exact query (every word as typed),
 * $3 the caller, $4 the words as a phrase anywhere and $5 in the artist
 * field (a track that has the second has the first, so the second is
 * tested only then), then the penalty's tsqueries, the filters, the
 * ranking query, limit, offset and the number of artist/album groups.
 *
 * %1$s: the per-word tsqueries of the penalty (qs columns), %2$s the
 * filters, %3$s the penalty, %4$d the parameter of the ranking query.
 * Every tsquery is parsed once, not per row, and as tsquery text
 * ($n::tsquery), not through to_tsquery(): the words come from
 * split_query() already normalised and cut at every character that is not
 * a letter or digit, which is what to_tsquery('simple') would have made of
 * them (the same for every one of the 94,861 words of the 145k catalogue),
 * and running the text search parser on each lexeme of a dozen queries
 * was a tenth of the statement's time. The hits carry the
 * columns the scoring and the facets read, so that no track is looked up
 * twice; only the page shown is joined back for its documents. They
 * come in two parts (POPULAR_BAND above), each with the filters (%2$s). Text
 * relevance is ts_rank against the match with each word's RANK_CANDS
 * closest candidates only: its cost grows with the size of the query, and
 * which candidate matched is the penalty's business. Not ts_rank_cd: cover
 * density zeroes 32 KB per query item for every row it scores (about 1 MB
 * a row for a three-word query), which made it a tenth of a search's CPU;
 * the phrase bonuses below already reward words next to each other.
 * The score is double precision throughout: numeric constants made every
 * row's sum numeric arithmetic, a sixth of the scoring (the values are the
 * same: p / 100 rounds to the same double either way). The caller's like
 * and plays of each of the LIFT_WINDOW best are asked track by track, an index
 * probe each that reads no more than it counts (one like, ten plays), in
 * scalar subqueries the planner cannot turn into a hash of them all: the
 * join it made of the caller's likes read every one of them, a third of a
 * search's time at a million tracks for the bench's user with 5,000.
 */
static const char search_sql_head[] =
	"WITH qs AS MATERIALIZED (SELECT $2::tsquery AS eq,"
	"  $4::tsquery AS ph,"
	"  $5::tsquery AS aph, $%4$d::tsquery AS rq %1$s),"
	" hot AS MATERIALIZED ("
	"  SELECT " HIT_COLS " FROM tracks t"
	"  WHERE t.is_active AND t.popularity >= " STR(POPULAR_BAND)
	"  AND t.search_vec @@ $1::tsquery %2$s"
	"  ORDER BY t.popularity DESC, t.id LIMIT " STR(HIT_LIMIT) "),"
	" hit AS MATERIALIZED (SELECT * FROM hot UNION ALL"
	"  (SELECT " HIT_COLS " FROM tracks t"
	"  WHERE t.is_active AND t.popularity < " STR(POPULAR_BAND)
	"  AND t.search_vec @@ $1::tsquery %2$s"
	"  ORDER BY t.popularity DESC, t.id"
	"  LIMIT " STR(HIT_LIMIT) " - (SELECT count(*) FROM hot))),"
	" m AS MATERIALIZED ("
	"  SELECT t.id, t.genre, t.year, t.duration, t.artist, t.album,"
	"    ts_rank('{0.1,0.25,0.5,1.0}', t.search_vec, qs.rq, 32)"
	"    + t.popularity / 100::float8"
	"    + CASE WHEN t.search_vec @@ qs.eq THEN 1::float8 ELSE 0 END"
	"    + CASE WHEN t.search_vec @@ qs.aph THEN 0.6::float8"
	"      WHEN t.search_vec @@ qs.ph THEN 0.3::float8 ELSE 0 END"
	"    %3$s AS base"
	"  FROM hit t, qs),"
	" top AS (SELECT id, base FROM m ORDER BY base DESC, id LIMIT " STR(LIFT_WINDOW) "),"
	" lifted AS (SELECT top.id, top.base"
	"   + (SELECT count(*) FROM (SELECT 1 FROM user_favorites f"
	"     WHERE f.user_id = $3::uuid AND f.track_id = top.id LIMIT 1) l) * 0.5::float8"
	"   + (SELECT count(*) FROM (SELECT 1 FROM playback_history h"
	"     WHERE h.user_id = $3::uuid AND h.track_id = top.id LIMIT 10) p) * 5 / 100::float8"
	"   AS score FROM top)";

static const char search_sql_tail[] =
	" (SELECT 'r', t.api_doc, r.score::text,"
	"   array_to_string(tsvector_to_array(t.search_vec), ' ')"
	"   FROM (SELECT id, score FROM ranked ORDER BY score DESC, id"
	"     LIMIT $%d::int OFFSET $%d::int) r JOIN tracks t ON t.id = r.id"
	"   ORDER BY r.score DESC, r.id)";

/*
 * The best artists and albums among the hits, for the types that show
 * them (type=track answers tracks alone: grouping a thousand hits by
 * artist and by album for nothing was 0.8 of the 5.5 ms of "karol g" at a
 * million tracks).
 */
static const char search_sql_artists[] =
	" UNION ALL (SELECT 'a', artist, count(*)::text, max(base)::text FROM m"
	"   GROUP BY artist ORDER BY max(base) DESC, artist LIMIT $%d::int)";
static const char search_sql_albums[] =
	" UNION ALL (SELECT 'b', album, count(*)::text, artist FROM m"
	"   WHERE album IS NOT NULL GROUP BY album, artist"
	"   ORDER BY max(base) DESC, album LIMIT $%d::int)";
/*
 * The facets (genre, decade, duration) and how many hits there are, in one
 * pass over the hits: one aggregate with a hash table per grouping set and
 * the empty set for the count ('n'), instead of three sorted or hashed
 * groupings and a count, each reading the hits again (a tenth of the
 * database's time at a million tracks; the grouping sets took a third of
 * that). The rows come in no order: add_facets() orders them and keeps the
 * ten biggest genres; a group of tracks without a genre or a year has no
 * name and is left out.
 */
static const char search_sql_facets[] =
	" UNION ALL (SELECT CASE WHEN GROUPING(genre) = 0 THEN 'g'"
	"   WHEN GROUPING(dec) = 0 THEN 'd' WHEN GROUPING(dur) = 0 THEN 'l' ELSE 'n' END,"
	"   coalesce(genre, (dec * 10)::text || 's', dur), count(*)::text, NULL"
	"   FROM (SELECT genre, year / 10 AS dec, CASE WHEN duration < 180 THEN 'under_3_min'"
	"     WHEN duration < 300 THEN '3_to_5_min' ELSE 'over_5_min' END AS dur FROM m) f"
	"   GROUP BY GROUPING SETS ((genre), (dec), (dur), ()))";

/*
 * The order of all the hits: the lifted ones, then the rest by text and
 * popularity. No track below the window outranks one in it (its score is
 * at most its base, which is at most any lifted track's base, and on equal
 * bases the lower id is in the window), so the two parts simply follow
 * each other and every page is cut from one order. A page that ends within
 * the window needs only the first part.
 */
static const char search_sql_ranked[] =
	", ranked AS (SELECT id, score FROM lifted)";
static const char search_sql_ranked_all[] =
	", ranked AS (SELECT id, score FROM lifted UNION ALL"
	" (SELECT id, base FROM m ORDER BY base DESC, id OFFSET " STR(LIFT_WINDOW) "))";

/*
 * The words (or their spellings) next to each other in the order typed:
 * "bad bunny" as a name, not "bad" somewhere and "boy" elsewhere.
 */
static void
build_phrase(char *q, size_t cap, const struct word *w, int n, const char *weight)
{
	int	 i;

	q[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(q, " <-> ", cap - strlen(q) - 1);
		add_group_w(q, cap, &w[i], i == n - 1, 3, weight);
	}
}

/* The words as typed, every one required, the last as a prefix. */
static void
build_exact(char *q, size_t cap, const struct word *w, int n)
{
	int	 i;

	q[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(q, " & ", cap - strlen(q) - 1);
		add_lexeme(q, cap, w[i].typed, i == n - 1 && w[i].prefix);
	}
}

/*
 * The penalty of the corrections a track needed: for each word, nothing
 * when the track has it as typed, more the further the nearest spelling
 * it has. One tsquery parameter per distance the word's spellings have,
 * from $first on, each with the spellings of that distance alone (the
 * arms are tried nearest first, so a track with a nearer one never gets
 * that far). required: every hit has some spelling of every word (the
 * match leaves none out; always so for a query of one word, which is
 * never retried without it); then the furthest distance needs no test:
 * a track that reached it has one of those.
 * OUT: sql, args (pool), *nargs moved on.
 */
static void
build_penalty(struct req *r, char *sql, size_t cap, char *cols, size_t ccap,
    const struct word *w, int n, int required, const char **args, int *nargs)
{
	static const char *const cost[] = { "0", "0.2", "0.35", "0.8" };
	int			 i, d, k, far;

	sql[0] = '\0';
	cols[0] = '\0';
	for (i = 0; i < n; i++) {
		int	 has[4] = { 1, 0, 0, 0 };

		for (k = 1; k < w[i].ncand; k++)
			if (w[i].cand[k].distance <= 3)
				has[w[i].cand[k].distance] = 1;
		for (far = 3; !has[far]; far--)
			;
		/*
		 * A word with no other spelling that every hit must have
		 * (required) costs nothing anywhere.
		 */
		if (far == 0 && required)
			continue;
		snprintf(sql + strlen(sql), cap - strlen(sql), " - CASE");
		/* the furthest distance of a required word needs no test */
		for (d = 0; d <= (required ? far - 1 : far); d++) {
			char	*g;

			if (!has[d])
				continue;
			g = pool_alloc(r->pool, 2048);
			g[0] = '\0';
			add_group_n(g, 2048, &w[i], i == n - 1, d, d, NULL, MAX_CANDS);
			args[(*nargs)++] = g;
			snprintf(cols + strlen(cols), ccap - strlen(cols),
			    ", $%d::tsquery AS p%d", *nargs, *nargs);
			snprintf(sql + strlen(sql), cap - strlen(sql),
			    " WHEN t.search_vec @@ qs.p%d THEN %s::float8", *nargs, cost[d]);
		}
		/* else: a required word's furthest spellings; or none of it */
		snprintf(sql + strlen(sql), cap - strlen(sql), " ELSE %s END",
		    cost[required ? far : 3]);
	}
}

static void
add_filter(char *sql, size_t cap, const char *fmt, const char *val,
    const char **args, int *nargs)
{
	if (val == NULL)
		return;
	args[(*nargs)++] = val;
	snprintf(sql + strlen(sql), cap - strlen(sql), fmt, *nargs);
}

/*
 * The best spelling of each word among those the top track has: what
 * "did you mean" proposes. NULL when it is what was typed.
 */
static char *
did_you_mean(struct req *r, const struct word *w, int n, const char *lexemes)
{
	char	*out = pool_alloc(r->pool, 512), have[1200];
	int	 i, k, changed = 0;

	out[0] = '\0';
	snprintf(have, sizeof(have), " %s ", lexemes);
	for (i = 0; i < n; i++) {
		const char	*best = w[i].typed;
		char		 pat[80];

		snprintf(pat, sizeof(pat), " %s ", w[i].typed);
		if (strstr(have, pat) == NULL) {
			for (k = 1; k < w[i].ncand; k++) {
				snprintf(pat, sizeof(pat), " %s ", w[i].cand[k].word);
				if (strstr(have, pat) != NULL) {
					best = w[i].cand[k].word;
					changed = 1;
					break;
				}
			}
		}
		snprintf(out + strlen(out), 512 - strlen(out), "%s%s", i ? " " : "", best);
	}
	return changed ? out : NULL;
}

/* The number of hits: the row of kind n (0 when there is none). */
static long
hit_count(PGresult *res)
{
	int	i;

	for (i = PQntuples(res) - 1; i >= 0; i--)
		if (PQgetvalue(res, i, 0)[0] == 'n')
			return atol(PQgetvalue(res, i, 2));
	return 0;
}

/*
 * Whether facet row a goes before row b of the same kind: genres by count,
 * biggest first, then by name (byte by byte, whatever the database's
 * collation); decades in time; durations by name.
 */
static int
facet_before(PGresult *res, int a, int b)
{
	const char	*na = PQgetvalue(res, a, 1), *nb = PQgetvalue(res, b, 1);
	long		 ca, cb;

	switch (PQgetvalue(res, a, 0)[0]) {
	case 'g':
		ca = atol(PQgetvalue(res, a, 2));
		cb = atol(PQgetvalue(res, b, 2));
		return ca != cb ? ca > cb : strcmp(na, nb) < 0;
	case 'd':
		return atol(na) < atol(nb);
	default:
		return strcmp(na, nb) < 0;
	}
}

/*
 * The facet rows of one kind, named, in order, the first max of them (all
 * when max is 0; an insertion sort: a search has a few dozen genres at
 * most among the hits it groups, and a handful of decades).
 */
static struct json_object *
facet_list(struct mpool *pool, PGresult *res, char kind, int max)
{
	struct json_object	*a = json_object_new_array();
	int			*idx = pool_alloc(pool, sizeof(*idx) * (size_t)(PQntuples(res) + 1));
	int			 n = 0, i, j;

	for (i = 0; i < PQntuples(res); i++) {
		if (PQgetvalue(res, i, 0)[0] != kind || PQgetisnull(res, i, 1))
			continue;
		for (j = n++; j > 0 && facet_before(res, i, idx[j - 1]); j--)
			idx[j] = idx[j - 1];
		idx[j] = i;
	}
	for (i = 0; i < n && (max == 0 || i < max); i++) {
		struct json_object	*e = json_object_new_object();

		json_object_object_add(e, "name", pg_json_str(res, idx[i], 1));
		json_object_object_add(e, "count", pg_json_int(res, idx[i], 2));
		json_object_array_add(a, e);
	}
	return a;
}

/*
 * Facets from rows of kinds g, d and l; artists and albums from rows of
 * kinds a and b, in the statement's order, and only when the type shows
 * them (the statement asked for them then alone).
 */
static void
add_facets(struct req *r, struct json_object *o, PGresult *res, int with_artists,
    int with_albums)
{
	struct json_object	*facets = json_object_new_object();
	struct json_object	*artists = json_object_new_array();
	struct json_object	*albums = json_object_new_array();
	int			 i;

	for (i = 0; i < PQntuples(res); i++) {
		char			 kind = PQgetvalue(res, i, 0)[0];
		struct json_object	*e;

		if (kind != 'a' && kind != 'b')
			continue;
		e = json_object_new_object();
		json_object_object_add(e, "name", pg_json_str(res, i, 1));
		json_object_object_add(e, "track_count", pg_json_int(res, i, 2));
		if (kind == 'b')
			json_object_object_add(e, "artist", pg_json_str(res, i, 3));
		json_object_array_add(kind == 'a' ? artists : albums, e);
	}
	json_object_object_add(facets, "genre", facet_list(r->pool, res, 'g', 10));
	json_object_object_add(facets, "decade", facet_list(r->pool, res, 'd', 0));
	json_object_object_add(facets, "duration", facet_list(r->pool, res, 'l', 0));
	json_object_object_add(o, "facets", facets);
	if (with_artists)
		json_object_object_add(o, "artists", artists);
	else
		json_object_put(artists);
	if (with_albums)
		json_object_object_add(o, "albums", albums);
	else
		json_object_put(albums);
}

static char *
cursor_of(struct req *r, long offset)
{
	char	*raw = pool_printf(r->pool, "o:%ld", offset);
	char	*out = pool_alloc(r->pool, (strlen(raw) + 2) / 3 * 4 + 1);

	b64url_encode((unsigned char *)raw, strlen(raw), out);
	return out;
}

/*
 * An empty query: every track, in a stable order (by id), a page at a
 * time with a keyset cursor; clients sync their copy of the library so.
 */
static enum app_err
music_search_all(struct req *r, const struct filters *f, long limit,
    const char *after)
{
	char			 sql[1024], slim[24], *raw, *next;
	const char		*args[8];
	int			 nargs = 0, rows;
	struct db_stmt		 st = { NULL, sql, 0 };
	PGresult		*res;
	struct json_object	*o;
	enum app_err		 err;

	snprintf(sql, sizeof(sql), "SELECT t.api_doc, t.id FROM tracks t WHERE t.is_active");
	add_filter(sql, sizeof(sql), " AND t.id > $%d::uuid", after, args, &nargs);
	add_filter(sql, sizeof(sql), " AND t.genre = $%d", f->genre, args, &nargs);
	add_filter(sql, sizeof(sql), " AND t.year >= $%d::int", f->yfrom, args, &nargs);
	add_filter(sql, sizeof(sql), " AND t.year <= $%d::int", f->yto, args, &nargs);
	add_filter(sql, sizeof(sql), " AND t.duration >= $%d::int", f->dmin, args, &nargs);
	add_filter(sql, sizeof(sql), " AND t.duration <= $%d::int", f->dmax, args, &nargs);
	snprintf(slim, sizeof(slim), "%ld", limit + 1);
	add_filter(sql, sizeof(sql), " ORDER BY t.id LIMIT $%d::int", slim, args, &nargs);
	st.nparams = nargs;
	if ((err = db_exec(r, &res, &st, args)) != E_OK)
		return err;
	rows = PQntuples(res) > limit ? (int)limit : PQntuples(res);
	next = NULL;
	if (PQntuples(res) > limit) {
		raw = pool_printf(r->pool, "i:%s", PQgetvalue(res, rows - 1, 1));
		next = pool_alloc(r->pool, (strlen(raw) + 2) / 3 * 4 + 1);
		b64url_encode((unsigned char *)raw, strlen(raw), next);
	}
	o = json_object_new_object();
	json_object_object_add(o, "query", json_object_new_string(""));
	json_object_object_add(o, "limit", json_object_new_int64(limit));
	json_object_object_add(o, "next_cursor", next ? json_object_new_string(next) : NULL);
	if ((err = resp_json_list(r, 200, "tracks", res, 0, rows, o)) != E_OK)
		return err;
	return likes_mark_page(r);
}

/*
 * The tries, in order: every word; every word with the common words
 * corrected too (the Weekend for the Weeknd); all but one (an extra word);
 * any. The fewest words a query needs for each.
 */
static const int	 try_words[4] = { 1, 1, 2, 3 };

/* A word the library has often, taken as typed: the second try corrects it. */
static int
common_as_typed(const struct word *w)
{
	return w->known && w->ncand == 1;
}

/* GET /api/music/search */
static enum app_err
music_search(struct req *r)
{
	static const char *const known[] = { "q", "type", "genre", "year_from",
	    "year_to", "duration_min", "duration_max", "limit", "cursor", NULL };
	const char		*q = req_query(r, "q"), *type = req_query(r, "type");
	const char		*cur = req_query(r, "cursor"), *lim = req_query(r, "limit");
	const char		*after = NULL;
	struct filters		 f;
	struct word		 w[MAX_WORDS];
	struct listcache	 lc;
	struct json_object	*o, *filters;
	char			*canon, sql[32768], where[2048], penalty[8192], slim[16];
	char			 soff[24], sgroups[24], key[8192], exact[1024];
	const char		*keys[MAX_KEYS];
	long			 ktracks[MAX_KEYS];
	int			 nkeys, nindex;
	char			 rank[8192];
	char			 phrase[8192], aphrase[8192], pcols[2048];
	const char		*args[128];	/* 8 words: at most 73 */
	int			 nargs, n = 0, tries, i;
	int			 artists, albums;
	const char		*sfilters;
	long			 limit = 20, offset = 0, total = 0;
	PGresult		*res = NULL;
	enum app_err		 err;
	struct db_stmt		 st = { NULL, sql, 0 };

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_int(r, "year_from", 0, 9999, &f.yfrom)) != E_OK ||
	    (err = query_int(r, "year_to", 0, 9999, &f.yto)) != E_OK ||
	    (err = query_int(r, "duration_min", 0, 1000000, &f.dmin)) != E_OK ||
	    (err = query_int(r, "duration_max", 0, 1000000, &f.dmax)) != E_OK)
		return err;
	f.genre = req_query(r, "genre");
	if (q == NULL)
		q = "";
	if (strlen(q) > 200)
		return req_fail(r, E_BAD_REQUEST, "q is at most 200 bytes", NULL);
	if (f.genre != NULL && strlen(f.genre) > 100)
		return req_fail(r, E_BAD_REQUEST, "genre is at most 100 bytes", NULL);
	if (type == NULL)
		type = "all";
	if (strcmp(type, "track") != 0 && strcmp(type, "artist") != 0 &&
	    strcmp(type, "album") != 0 && strcmp(type, "all") != 0)
		return req_fail(r, E_BAD_REQUEST, "type must be track, artist, album or all",
		    NULL);
	if (lim != NULL && config_parse_long(lim, 1, 1000000, &limit) != 0)
		return req_fail(r, E_BAD_REQUEST, "limit must be a whole number >= 1", NULL);
	if (limit > 100)
		limit = 100;
	if (cur != NULL) {
		unsigned char	 raw[64];
		size_t		 len;

		/* "o:<offset>" for ranked results, "i:<last id>" for the full list */
		if (b64url_decode(cur, strlen(cur), raw, sizeof(raw) - 1, &len) != 0 ||
		    len < 3 || raw[1] != ':')
			return req_fail(r, E_BAD_REQUEST, "cursor is not one this API made",
			    NULL);
		raw[len] = '\0';
		if (raw[0] == 'o' && config_parse_long((char *)raw + 2, 0, 10000,
		    &offset) == 0)
			;
		else if (raw[0] == 'i' && uuid_valid((char *)raw + 2))
			after = pool_strdup(r->pool, (char *)raw + 2);
		else
			return req_fail(r, E_BAD_REQUEST, "cursor is not one this API made",
			    NULL);
	}
	filters = json_object_new_object();
	pool_json(r->pool, filters);
	if (f.genre)
		json_object_object_add(filters, "genre", json_object_new_string(f.genre));
	if (f.yfrom)
		json_object_object_add(filters, "year_from", json_object_new_string(f.yfrom));
	if (f.yto)
		json_object_object_add(filters, "year_to", json_object_new_string(f.yto));
	if (f.dmin)
		json_object_object_add(filters, "duration_min", json_object_new_string(f.dmin));
	if (f.dmax)
		json_object_object_add(filters, "duration_max", json_object_new_string(f.dmax));
	sfilters = json_object_to_json_string_ext(filters, JSON_C_TO_STRING_PLAIN);

	if ((err = split_query(r, q, w, &n)) != E_OK)
		return err;
	if (n == 0)
		return music_search_all(r, &f, limit, after);
	if (after != NULL)
		return req_fail(r, E_BAD_REQUEST, "cursor is not one this API made", NULL);

	canon = pool_printf(r->pool, "search|%s|%s|%s|%s|%s|%s|%s|%s|%ld|%ld|%s", q,
	    type, f.genre ? f.genre : "", f.yfrom ? f.yfrom : "", f.yto ? f.yto : "",
	    f.dmin ? f.dmin : "", f.dmax ? f.dmax : "", r->user_id ? r->user_id : "",
	    limit, offset, "v1");
	if (listcache_get(r, canon, SEARCH_TTL_S, &lc)) {
		const char	*t = strstr(r->body, "\"total\":");

		history_add(r, q, sfilters, t ? atol(t + 8) : 0);
		return likes_mark_page(r);
	}

	for (i = 0; i < n; i++)
		word_candidates(r, &w[i], i == n - 1);
	build_exact(exact, sizeof(exact), w, n);
	snprintf(slim, sizeof(slim), "%ld", limit);
	snprintf(soff, sizeof(soff), "%ld", offset);
	snprintf(sgroups, sizeof(sgroups), "%ld", strcmp(type, "all") == 0 ? 5 : limit);
	artists = strcmp(type, "artist") == 0 || strcmp(type, "all") == 0;
	albums = strcmp(type, "album") == 0 || strcmp(type, "all") == 0;
	for (tries = 0; tries < 4; tries++) {
		int	 skip = tries <= 1 ? -1 : tries == 2 ? -3 : -2;

		if (tries == 1) {
			int	 more = 0;

			for (i = 0; i < n; i++)
				if (common_as_typed(&w[i])) {
					expand_common(r, &w[i], i == n - 1);
					more |= w[i].ncand > 1;
				}
			if (!more)
				continue;
			build_exact(exact, sizeof(exact), w, n);
		}
		if (n < try_words[tries])
			break;
		for (nkeys = 0; nkeys < MAX_KEYS &&
		    match_key(key, sizeof(key), w, n, skip, nkeys, &ktracks[nkeys]); nkeys++)
			keys[nkeys] = pool_strdup(r->pool, key);
		order_keys(keys, ktracks, nkeys, &nindex);
		nargs = 0;
		args[nargs++] = keys[0];
		args[nargs++] = exact;
		args[nargs++] = r->user_id;
		build_phrase(phrase, sizeof(phrase), w, n, NULL);
		args[nargs++] = phrase;
		build_phrase(aphrase, sizeof(aphrase), w, n, "B");
		args[nargs++] = aphrase;
		build_penalty(r, penalty, sizeof(penalty), pcols, sizeof(pcols), w, n,
		    skip == -1, args, &nargs);
		where[0] = '\0';
		for (i = 1; i < nindex; i++)
			add_filter(where, sizeof(where), " AND t.search_vec @@ $%d::tsquery",
			    keys[i], args, &nargs);
		add_filter(where, sizeof(where), " AND ts_match_vq(t.search_vec, $%d::tsquery)",
		    tested_keys(r, keys + nindex, nkeys - nindex), args, &nargs);
		add_filter(where, sizeof(where), " AND t.genre = $%d", f.genre, args, &nargs);
		add_filter(where, sizeof(where), " AND t.year >= $%d::int", f.yfrom, args, &nargs);
		add_filter(where, sizeof(where), " AND t.year <= $%d::int", f.yto, args, &nargs);
		add_filter(where, sizeof(where), " AND t.duration >= $%d::int", f.dmin, args,
		    &nargs);
		add_filter(where, sizeof(where), " AND t.duration <= $%d::int", f.dmax, args,
		    &nargs);
		build_match_n(rank, sizeof(rank), w, n, skip, RANK_CANDS);
		args[nargs++] = rank;
		snprintf(sql, sizeof(sql), search_sql_head, pcols, where, penalty, nargs);
		strncat(sql, offset + limit > LIFT_WINDOW ? search_sql_ranked_all :
		    search_sql_ranked, sizeof(sql) - strlen(sql) - 1);
		args[nargs++] = slim;
		args[nargs++] = soff;
		snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), search_sql_tail,
		    nargs - 1, nargs);
		if (artists || albums)
			args[nargs++] = sgroups;
		if (artists)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
			    search_sql_artists, nargs);
		if (albums)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
			    search_sql_albums, nargs);
		strncat(sql, search_sql_facets, sizeof(sql) - strlen(sql) - 1);
		st.nparams = nargs;
		/*
		 * The statement's plan does not depend on the words (a GIN scan
		 * of search_vec, whatever they are): planning it for each search
		 * cost a third of the database's time.
		 */
		if ((err = db_exec_plan(r, &res, &st, args, DB_PLAN_GENERIC)) != E_OK)
			return err;
		total = hit_count(res);
		if (total > 0)
			break;
	}
	/* in the caller's history once, with the count of the try that answered */
	history_add(r, q, sfilters, total);

	/* the body: tracks (documents from the database), then the rest */
	o = json_object_new_object();
	{
		const char	*top = NULL;
		char		*dym;
		int		 first = -1, count = 0;

		for (i = 0; i < PQntuples(res); i++)
			if (PQgetvalue(res, i, 0)[0] == 'r') {
				if (first < 0)
					first = i;
				count++;
			}
		if (first >= 0)
			top = PQgetvalue(res, first, 3);
		json_object_object_add(o, "query", json_object_new_string(q));
		json_object_object_add(o, "type", json_object_new_string(type));
		json_object_object_add(o, "total", json_object_new_int64(total));
		json_object_object_add(o, "limit", json_object_new_int64(limit));
		dym = top != NULL ? did_you_mean(r, w, n, top) : NULL;
		json_object_object_add(o, "did_you_mean", dym ? json_object_new_string(dym) :
		    NULL);
		json_object_object_add(o, "next_cursor", offset + count < total &&
		    offset + limit < 10000 ? json_object_new_string(cursor_of(r,
		    offset + limit)) : NULL);
		add_facets(r, o, res, artists, albums);
		if (strcmp(type, "track") != 0 && strcmp(type, "all") != 0)
			count = 0;	/* artists or albums only */
		err = resp_json_list(r, 200, "tracks", res, 1, first < 0 ? 0 : count, o);
		/* the rows are ordered r first: resp_json_list takes rows 0.. */
		if (first > 0)
			return E_INTERNAL;
	}
	if (err != E_OK)
		return err;
	listcache_put(r, &lc);
	return likes_mark_page(r);
}

/*
 * GET /api/music/search/suggest?q=: as you type. The caller's own recent
 * searches (the last 200) that begin with what was typed (normalised),
 * then titles, artists and albums that do, most popular first. Each kind
 * looks at the first 1,000 names of the range at most, so a one-letter
 * prefix costs no more than a long one (its suggestions are then the most
 * popular of those, not of every name). The prefix indexes carry the name
 * and the popularity (sql/022_suggest_index_only.sql), so those 1,000 are
 * read from the index alone.
 *
 * The two halves are cached apart, so that typing costs the database
 * nothing once a prefix was asked for: the library's suggestions for a
 * prefix are shared by everyone, with the library lists (listcache.c);
 * the caller's recent searches are kept by each worker under the
 * caller's history generation (suggest_recent() below), so a search
 * shows up in the next suggestion.
 */
#define SUGGEST_TTL_S	900
#define RECENT_TTL_S	3600
#define RECENT_MAX	3

static const struct db_stmt st_suggest_library = {
	"search_suggest_library",
	"WITH p AS (SELECT search_normalize($1) AS s)"
	" (SELECT 'norm', s FROM p)"
	" UNION ALL (SELECT 'artist', artist FROM (SELECT artist, popularity FROM tracks"
	"   WHERE is_active"
	"   AND search_normalize(artist) COLLATE \"C\" >= (SELECT s FROM p)"
	"   AND search_normalize(artist) COLLATE \"C\" < (SELECT s || chr(1114111) FROM p)"
	"   ORDER BY search_normalize(artist) COLLATE \"C\" LIMIT 1000) x"
	"   GROUP BY artist ORDER BY max(popularity) DESC LIMIT $2::int)"
	" UNION ALL (SELECT 'title', title FROM (SELECT title, popularity FROM tracks"
	"   WHERE is_active"
	"   AND search_normalize(title) COLLATE \"C\" >= (SELECT s FROM p)"
	"   AND search_normalize(title) COLLATE \"C\" < (SELECT s || chr(1114111) FROM p)"
	"   ORDER BY search_normalize(title) COLLATE \"C\" LIMIT 1000) x"
	"   GROUP BY title ORDER BY max(popularity) DESC LIMIT $2::int)"
	" UNION ALL (SELECT 'album', album FROM (SELECT album, popularity FROM tracks"
	"   WHERE is_active AND album IS NOT NULL"
	"   AND search_normalize(album) COLLATE \"C\" >= (SELECT s FROM p)"
	"   AND search_normalize(album) COLLATE \"C\" < (SELECT s || chr(1114111) FROM p)"
	"   ORDER BY search_normalize(album) COLLATE \"C\" LIMIT 1000) x"
	"   GROUP BY album ORDER BY max(popularity) DESC LIMIT $2::int)",
	2
};

static const struct db_stmt st_suggest_recent = {
	"search_suggest_recent",
	"SELECT search_normalize(query), query FROM (SELECT query, searched_at"
	" FROM search_history WHERE user_id = $1 ORDER BY searched_at DESC LIMIT 200) h"
	" GROUP BY query ORDER BY max(searched_at) DESC",
	1
};

/*
 * {"kind":kind,"text":text} after out's len bytes; out as it was when it
 * would not fit in cap (callers size it so that it does).
 */
static size_t
suggestion_into(char *out, size_t len, size_t cap, const char *kind, const char *text)
{
	size_t	 o = len;
	int	 k;

	k = snprintf(out + o, cap - o, "%s{\"kind\":\"%s\",\"text\":\"",
	    len > 0 ? "," : "", kind);
	if (k < 0 || (o += (size_t)k) + 3 >= cap ||
	    (o = json_escape_into(out, o, cap, text)) + 3 >= cap) {
		out[len] = '\0';
		return len;
	}
	memcpy(out + o, "\"}", 3);
	return o + 2;
}

/*
 * The library's suggestions for q: OUT: *norm (q normalised) and the
 * suggestions, as JSON objects separated by commas. Cached as
 * "<length of norm>:<norm><suggestions>".
 */
static enum app_err
suggest_library(struct req *r, const char *q, const char *slim, const char **norm,
    const char **list)
{
	struct listcache	 lc;
	const char		*cached, *canon;
	char			*text, *end;
	size_t			 len, cap, n;
	PGresult		*res;
	enum app_err		 err;
	int			 i;

	canon = pool_printf(r->pool, "suggest|%s|%s", q, slim);
	if ((cached = listcache_lookup(r, canon, SUGGEST_TTL_S, &lc, &len)) != NULL) {
		n = strtoul(cached, &end, 10);
		if (*end == ':' && n <= len - (size_t)(end + 1 - cached)) {
			*norm = pool_printf(r->pool, "%.*s", (int)n, end + 1);
			*list = pool_printf(r->pool, "%.*s",
			    (int)(len - (size_t)(end + 1 - cached) - n), end + 1 + n);
			return E_OK;
		}
	}
	if ((err = db_exec(r, &res, &st_suggest_library,
	    (const char *const[]){ q, slim })) != E_OK)
		return err;
	if (PQntuples(res) < 1)
		return E_INTERNAL;
	*norm = pool_strdup(r->pool, PQgetvalue(res, 0, 1));
	for (cap = 64, i = 1; i < PQntuples(res); i++)
		cap += 40 + 6 * (size_t)PQgetlength(res, i, 1);
	text = pool_alloc(r->pool, cap);
	for (len = 0, i = 1; i < PQntuples(res); i++)
		len = suggestion_into(text, len, cap, PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 1));
	text[len] = '\0';
	*list = text;
	cached = pool_printf(r->pool, "%zu:%s%s", strlen(*norm), *norm, text);
	listcache_store(r, &lc, cached, strlen(cached));
	return E_OK;
}

/*
 * The caller's recent searches, kept by this worker for its recent
 * callers (a slot per user id hash) under the user's history generation
 * (revoke.c: moved on by every change, here or announced by sql/020), so
 * a keystroke costs no round trip. While the generations are not live
 * they come from Redis, stamped with shver:<user> as before.
 */
#define RECENT_SLOTS	64

static struct recent_slot {
	char		 uid[37];
	uint32_t	 gen;
	char		*list;
	size_t		 len;
} recent_slots[RECENT_SLOTS];

void
suggest_free(void)
{
	size_t	 i;

	for (i = 0; i < RECENT_SLOTS; i++) {
		free(recent_slots[i].list);
		memset(&recent_slots[i], 0, sizeof(recent_slots[i]));
	}
}

/*
 * The caller's recent searches, newest first, each as "<normalised>\0<as
 * typed>\0". OUT: *len.
 */
static const char *
suggest_recent(struct req *r, size_t *len)
{
	struct recent_slot	*slot = NULL;
	const char		*cached;
	char			 stamp[96], *key = NULL, *out;
	size_t			 cap = 1, o = 0;
	uint32_t		 gen;
	PGresult		*res;
	int			 i;

	*len = 0;
	if (r->user_id == NULL)
		return "";
	if (revoke_history_gen(r->user_id, &gen) == 0) {
		slot = &recent_slots[str_hash(r->user_id) % RECENT_SLOTS];
		if (slot->list != NULL && slot->gen == gen &&
		    strcmp(slot->uid, r->user_id) == 0) {
			*len = slot->len;
			return slot->list;
		}
	} else {
		key = pool_printf(r->pool, "recent:%s", r->user_id);
		if ((cached = rds_stamped_get(r, key, "shver", "recent", stamp,
		    sizeof(stamp), len)) != NULL)
			return cached;
	}
	/* the generation was read before the rows: a later change is seen */
	if (db_exec(r, &res, &st_suggest_recent, (const char *const[]){ r->user_id })
	    != E_OK)
		return "";		/* suggestions without them */
	for (i = 0; i < PQntuples(res); i++)
		cap += (size_t)PQgetlength(res, i, 0) + (size_t)PQgetlength(res, i, 1) + 2;
	out = pool_alloc(r->pool, cap);
	for (i = 0; i < PQntuples(res); i++) {
		memcpy(out + o, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0) + 1);
		o += (size_t)PQgetlength(res, i, 0) + 1;
		memcpy(out + o, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1) + 1);
		o += (size_t)PQgetlength(res, i, 1) + 1;
	}
	out[o] = '\0';
	if (slot != NULL) {
		free(slot->list);
		if ((slot->list = malloc(o + 1)) == NULL)
			abort();
		memcpy(slot->list, out, o + 1);
		slot->len = o;
		slot->gen = gen;
		snprintf(slot->uid, sizeof(slot->uid), "%s", r->user_id);
	} else
		rds_stamped_put(r, key, stamp, out, o, RECENT_TTL_S);
	*len = o;
	return out;
}

static enum app_err
music_search_suggest(struct req *r)
{
	static const char *const known[] = { "q", "limit", NULL };
	const char	*q = req_query(r, "q"), *l = req_query(r, "limit");
	const char	*norm, *list, *recent, *p;
	long		 limit = 5;
	char		 slim[16], *out;
	size_t		 rlen, cap, len, nlen;
	enum app_err	 err;
	int		 shown = 0;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (q == NULL || *q == '\0' || strlen(q) > 100)
		return req_fail(r, E_BAD_REQUEST, "q must be 1 to 100 bytes", NULL);
	if (l != NULL && config_parse_long(l, 1, 20, &limit) != 0)
		return req_fail(r, E_BAD_REQUEST, "limit must be 1 to 20", NULL);
	snprintf(slim, sizeof(slim), "%ld", limit);
	/* q is compared as text, never used as a pattern */
	if ((err = suggest_library(r, q, slim, &norm, &list)) != E_OK)
		return err;
	recent = suggest_recent(r, &rlen);
	cap = strlen(list) + 64 + RECENT_MAX * 40 + 6 * rlen;
	out = pool_alloc(r->pool, cap);
	len = 0;
	nlen = strlen(norm);
	for (p = recent; p < recent + rlen && shown < RECENT_MAX; ) {
		const char	*typed = p + strlen(p) + 1;

		if (typed >= recent + rlen)
			break;		/* not a pair: an entry from another version */
		if (strncmp(p, norm, nlen) == 0) {
			len = suggestion_into(out, len, cap, "recent", typed);
			shown++;
		}
		p = typed + strlen(typed) + 1;
	}
	if (*list != '\0')
		len += (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? "," : "",
		    list);
	return resp_json_text(r, 200, pool_printf(r->pool, "{\"suggestions\":[%.*s]}",
	    (int)len, out), strlen("{\"suggestions\":[]}") + len);
}

/*
 * POST /api/music/search/click {"query", "track_id"}: the result the
 * caller chose, recorded on their latest search for that query.
 */
static enum app_err
music_search_click(struct req *r)
{
	static const char *const allowed[] = { "query", "track_id", NULL };
	static const struct db_stmt st = {
		"search_click",
		"UPDATE search_history SET clicked_track_id = $3 WHERE id = ("
		" SELECT h.id FROM search_history h WHERE h.user_id = $1 AND h.query = $2"
		" ORDER BY h.searched_at DESC LIMIT 1)"
		" AND EXISTS (SELECT 1 FROM tracks WHERE id = $3 AND is_active)",
		3
	};
	struct json_object	*body;
	const char		*q, *track;
	PGresult		*res;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "query", 1, 0, 200, &q, NULL)) != E_OK ||
	    (err = body_string(r, body, "track_id", 1, 36, 36, &track, NULL)) != E_OK)
		return err;
	if (!uuid_valid(track))
		return body_fail(r, "track_id", "must be a track id");
	if ((err = db_exec(r, &res, &st, (const char *const[]){ r->user_id, q,
	    track })) != E_OK)
		return err;
	if (atol(PQcmdTuples(res)) == 0)
		return req_fail(r, E_NOT_FOUND, "no such search of yours, or no such track",
		    NULL);
	r->status = 204;
	return E_OK;
}

/* GET /api/music/search/popular?days=7&limit=10: what people search for. */
static enum app_err
music_search_popular(struct req *r)
{
	static const char *const known[] = { "days", "limit", NULL };
	static const struct db_stmt st = {
		"search_popular",
		"SELECT coalesce(json_agg(json_build_object('query', q, 'count', n)"
		" ORDER BY n DESC, q), '[]')::text FROM ("
		" SELECT search_normalize(query) AS q, count(*) AS n FROM search_history"
		" WHERE searched_at > now() - make_interval(days => $1::int)"
		" AND query <> '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2::int) x",
		2
	};
	const char		*d = req_query(r, "days"), *l = req_query(r, "limit");
	long			 days = 7, limit = 10;
	char			 sd[16], sl[16];
	PGresult		*res;
	struct json_object	*o;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (d != NULL && config_parse_long(d, 1, 365, &days) != 0)
		return req_fail(r, E_BAD_REQUEST, "days must be 1 to 365", NULL);
	if (l != NULL && config_parse_long(l, 1, 100, &limit) != 0)
		return req_fail(r, E_BAD_REQUEST, "limit must be 1 to 100", NULL);
	snprintf(sd, sizeof(sd), "%ld", days);
	snprintf(sl, sizeof(sl), "%ld", limit);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ sd, sl })) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "days", json_object_new_int64(days));
	json_object_object_add(o, "queries", json_tokener_parse(PQgetvalue(res, 0, 0)));
	return resp_json(r, 200, o);
}

static const struct route search_routes[] = {
	/* method	pattern				handler			needs */
	{ M_GET,	"/api/music/search",		music_search,		P_READ_TRACKS, 0 },
	{ M_GET,	"/api/music/search/suggest",	music_search_suggest,	P_READ_TRACKS,
	    ROUTE_READS_HISTORY },
	{ M_POST,	"/api/music/search/click",	music_search_click,	P_READ_TRACKS,
	    ROUTE_READS_HISTORY },
	{ M_GET,	"/api/music/search/popular",	music_search_popular,	P_READ_TRACKS,
	    ROUTE_READS_HISTORY },
};

const struct route_table search_route_table = {
	search_routes, sizeof(search_routes) / sizeof(search_routes[0])
};
