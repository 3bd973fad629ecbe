/*
 * tests/it_search.c: search end to end. Typos, accents, word order,
 * missing and extra words on a few tracks made here; what a write does
 * to search at once; suggestions, clicks, history and popular queries;
 * bad input. And the relevance set (tests/search/relevance.tsv) over the
 * real catalogue, when run-all loads one (SEARCH_RELEVANCE_CSV).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http.h"

static long	 run_id;

/* A catalogue track; OUT: id. 0 if made. */
static int
track(const char *title, const char *artist, int popularity, char id[37])
{
	snprintf(id, 37, "%s", it_psql("INSERT INTO tracks (title, artist, album, genre,"
	    " duration, year, popularity, source) VALUES ('%s', '%s', 'Album %ld',"
	    " 'srch%ld', 200, 1976, %d, 'catalog') RETURNING id", title, artist, run_id,
	    run_id, popularity));
	return strlen(id) == 36 ? 0 : -1;
}

/* GET /api/music/search?<args> as s. */
static struct http_res
search(const struct it_session *s, const char *args)
{
	char	 path[1100];

	snprintf(path, sizeof(path), "/api/music/search?%s", args);
	return http_bearer("GET", path, s->access, NULL);
}

/* Whether the first n results hold a track with this title. */
static int
has_title(const struct http_res *res, const char *title, int n)
{
	char	 key[64];
	int	 i;

	for (i = 0; i < n; i++) {
		const char	*t;

		snprintf(key, sizeof(key), "tracks.%d.title", i);
		if ((t = json_str(res, key)) != NULL && strcmp(t, title) == 0)
			return 1;
	}
	return 0;
}

/*
 * Search as s until a track with this title is among the first n results,
 * at most tries times, 100 ms apart (a write behind the API's back reaches
 * the workers a moment after it commits). OUT: *last, the last answer
 * (the caller frees it). Whether the title was found.
 */
static int
search_until_title(const struct it_session *s, const char *args, const char *title,
    int n, int tries, struct http_res *last)
{
	int	 i;

	for (i = 0; i < tries; i++) {
		if (i > 0) {
			http_free(last);
			sleep_ms(100);
		}
		*last = search(s, args);
		if (has_title(last, title, n))
			return 1;
	}
	return 0;
}

static struct it_session	 u;
static char			 eagles[37], beyonce[37], other[37];

static int
fixtures(void)
{
	static int	 done;

	if (done)
		return 0;
	if (it_new_user("search", &u) != 0 ||
	    track("Hotel California", "Eagles", 84, eagles) != 0 ||
	    track("Halo", "Beyoncé", 80, beyonce) != 0 ||
	    track("California Gurls", "Katy Perry", 70, other) != 0)
		return -1;
	done = 1;
	return 0;
}

static void
test_search_forgives_typos_accents_and_word_order(void)
{
	static const struct {
		const char	*q;
		const char	*title;
	} cases[] = {
		{ "hotel%20califronia", "Hotel California" },	/* swapped letters */
		{ "california%20hotel", "Hotel California" },	/* word order */
		{ "eagels%20hotel", "Hotel California" },
		{ "HOTEL%20CALIFORNIA%20eagles", "Hotel California" },
		{ "beyonce%20halo", "Halo" },			/* no accent */
		{ "Beyonc%C3%A9", "Halo" },
		{ "hotel%20california%20xqzv", "Hotel California" },	/* an extra word */
		{ "hot", "Hotel California" },			/* as you type */
	};
	size_t	 i;
	char	 args[256];

	expect(fixtures() == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_res	 res;

		snprintf(args, sizeof(args), "q=%s&genre=srch%ld&type=track", cases[i].q,
		    run_id);
		res = search(&u, args);
		expect_status(&res, 200);
		if (!has_title(&res, cases[i].title, 3))
			t_fail(__FILE__, __LINE__, "\"%s\" did not find %s: %.300s",
			    cases[i].q, cases[i].title, res.body);
		http_free(&res);
	}
}

/*
 * Two edits in a short word: "bony" finds "bunny" (one letter wrong, one
 * left out) but not "baby" (two letters wrong: a word people can spell).
 * The new words reach the spelling dictionary when it next reloads.
 */
static void
test_search_short_words_forgive_two_slips_not_two_wrong_letters(void)
{
	char		 bunny[37], baby[37], args[256];
	struct http_res	 res;
	int		 seen;

	expect(fixtures() == 0);
	expect(track("Bunny Hop", "Warren Lapin", 50, bunny) == 0);
	expect(track("Baby Steps", "Warren Lapin", 90, baby) == 0);
	snprintf(args, sizeof(args), "q=bony&genre=srch%ld&type=track", run_id);
	seen = search_until_title(&u, args, "Bunny Hop", 3, 80, &res);
	if (seen && has_title(&res, "Baby Steps", 20))
		t_fail(__FILE__, __LINE__, "\"bony\" found \"Baby Steps\": %.300s",
		    res.body);
	http_free(&res);
	expect(seen);
}

static void
test_search_says_what_it_corrected_and_counts_facets(void)
{
	struct http_res	 res;
	char		 args[256];

	expect(fixtures() == 0);
	snprintf(args, sizeof(args), "q=hotel%%20califronia&genre=srch%ld", run_id);
	res = search(&u, args);
	expect_status(&res, 200);
	expect_json_str(&res, "did_you_mean", "hotel california");
	expect(json_int(&res, "total", 0) >= 1);
	snprintf(args, sizeof(args), "srch%ld", run_id);
	expect_json_str(&res, "facets.genre.0.name", args);
	http_free(&res);
	snprintf(args, sizeof(args), "q=hotel%%20california&genre=srch%ld", run_id);
	res = search(&u, args);
	expect(json_has(&res, "did_you_mean") && json_str(&res, "did_you_mean") == NULL);
	expect_json_str(&res, "facets.decade.0.name", "1970s");
	expect(json_has(&res, "artists"));
	http_free(&res);
}

/*
 * A query with one word too many finds the tracks that have every other
 * word (any n - 1 of n), and only those while there are some: "hotel
 * california eagles xqzv" and "eagles xqzv hotel california" find Hotel
 * California (3 of 4 words), never California Gurls (1 of 4), which the
 * last try (any word) would. Each type answers with its own groups only.
 */
static void
test_search_extra_word_keeps_the_rest_and_types_show_their_groups(void)
{
	static const char *const qs[] = { "hotel%20california%20eagles%20xqzv",
	    "eagles%20xqzv%20hotel%20california", "xqzv%20eagles%20california%20hotel" };
	static const struct {
		const char	*type;
		int		 artists, albums;
	} types[] = {
		{ "track", 0, 0 }, { "artist", 1, 0 }, { "album", 0, 1 }, { "all", 1, 1 },
	};
	struct http_res	 res;
	char		 args[256];
	size_t		 i;

	expect(fixtures() == 0);
	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		snprintf(args, sizeof(args), "q=%s&genre=srch%ld&type=track", qs[i], run_id);
		res = search(&u, args);
		expect_status(&res, 200);
		if (json_int(&res, "total", -1) != 1 || !has_title(&res, "Hotel California", 1))
			t_fail(__FILE__, __LINE__, "\"%s\": want Hotel California alone: %.300s",
			    qs[i], res.body);
		http_free(&res);
	}
	/* two words missing: only the last try (any word) finds something */
	snprintf(args, sizeof(args), "q=california%%20xqzv%%20wwvq&genre=srch%ld&type=track",
	    run_id);
	res = search(&u, args);
	expect(json_int(&res, "total", -1) == 2);
	http_free(&res);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		snprintf(args, sizeof(args), "q=hotel%%20califronia&genre=srch%ld&type=%s",
		    run_id, types[i].type);
		res = search(&u, args);
		expect_status(&res, 200);
		expect(json_has(&res, "facets.genre"));
		if (json_has(&res, "artists") != types[i].artists ||
		    json_has(&res, "albums") != types[i].albums)
			t_fail(__FILE__, __LINE__, "type=%s: artists %d, albums %d: %.300s",
			    types[i].type, json_has(&res, "artists"), json_has(&res, "albums"),
			    res.body);
		if (types[i].artists)
			expect_json_str(&res, "artists.0.name", "Eagles");
		http_free(&res);
	}
}

/*
 * A signed-in caller's own likes and plays lift tracks that are otherwise
 * equal (a like 0.5, a play 0.05, ten plays at most); nobody else's order
 * moves. Equal tracks come in the order of their ids.
 */
static void
test_search_lifts_the_callers_likes_and_plays(void)
{
	struct it_session	 v;
	struct http_res		 res;
	char			 id[3][37], tmp[37], args[128], path[128];
	int			 i, j;

	expect(fixtures() == 0);
	expect(it_new_user("searchlift", &v) == 0);
	for (i = 0; i < 3; i++)
		expect(track("Quillfeather Nocturne", "Ostrova Lune", 40, id[i]) == 0);
	for (i = 0; i < 3; i++)		/* by id, as the database orders uuids */
		for (j = i + 1; j < 3; j++)
			if (strcmp(id[j], id[i]) < 0) {
				memcpy(tmp, id[i], 37);
				memcpy(id[i], id[j], 37);
				memcpy(id[j], tmp, 37);
			}
	snprintf(args, sizeof(args), "q=quillfeather%%20nocturne&genre=srch%ld&type=track",
	    run_id);
	expect(search_until_title(&u, args, "Quillfeather Nocturne", 1, 50, &res));
	http_free(&res);
	/* v likes the last by id and plays the middle one three times */
	snprintf(path, sizeof(path), "/api/user/favorites/%s", id[2]);
	expect(it_status("POST", path, v.access, NULL) == 200);
	for (i = 0; i < 3; i++)
		expect(strlen(it_psql("INSERT INTO playback_history (user_id, track_id,"
		    " duration_played, source) VALUES ('%s', '%s', 200, 'queue') RETURNING id",
		    v.id, id[1])) == 36);
	res = search(&v, args);
	expect_status(&res, 200);
	expect_json_str(&res, "tracks.0.id", id[2]);
	expect_json_str(&res, "tracks.1.id", id[1]);
	expect_json_str(&res, "tracks.2.id", id[0]);
	http_free(&res);
	res = search(&u, args);
	expect_json_str(&res, "tracks.0.id", id[0]);
	expect_json_str(&res, "tracks.1.id", id[1]);
	expect_json_str(&res, "tracks.2.id", id[2]);
	http_free(&res);
}

/*
 * A write through the API is searchable (or gone) as soon as it commits;
 * one behind the API's back (psql) as soon as its announcement arrives.
 */
static void
test_search_sees_writes_at_once(void)
{
	static struct it_session	 admin;
	char		 id[37], args[256], path[128];
	struct http_res	 res;
	int		 i, seen = 0, gone = 0;

	expect(fixtures() == 0);
	expect(it_new_admin("srchadm", &admin) == 0);
	snprintf(args, sizeof(args), "q=zanzibarian%%20nights&genre=srch%ld", run_id);
	res = search(&u, args);
	expect(json_int(&res, "total", -1) == 0);
	http_free(&res);
	/* inserted by hand: announced, so found within a second */
	expect(track("Zanzibarian Nights", "Nobody Yet", 10, id) == 0);
	seen = search_until_title(&u, args, "Zanzibarian Nights", 1, 20, &res);
	http_free(&res);
	expect(seen);
	/* renamed through the API: the next search, whoever answers it */
	snprintf(path, sizeof(path), "/api/music/tracks/%s", id);
	expect(it_status("PUT", path, admin.access,
	    "{\"title\":\"Zanzibarian Mornings\"}") == 200);
	snprintf(args, sizeof(args), "q=zanzibarian%%20mornings&genre=srch%ld", run_id);
	res = search(&u, args);
	expect(has_title(&res, "Zanzibarian Mornings", 1));
	http_free(&res);
	snprintf(args, sizeof(args), "q=zanzibarian%%20nights&genre=srch%ld&type=track",
	    run_id);
	res = search(&u, args);
	expect(!has_title(&res, "Zanzibarian Nights", 10));
	http_free(&res);
	/* a delete behind the API's back: announced, so gone within a second */
	snprintf(args, sizeof(args), "q=zanzibarian%%20mornings&genre=srch%ld", run_id);
	it_psql("DELETE FROM tracks WHERE id = '%s'", id);
	for (i = 0; i < 20; i++) {
		sleep_ms(100);
		res = search(&u, args);
		gone = json_int(&res, "total", -1) == 0;
		http_free(&res);
		if (gone)
			break;
	}
	res = search(&u, args);
	expect(json_int(&res, "total", -1) == 0);
	http_free(&res);
}

static void
test_search_empty_query_lists_everything_with_a_cursor(void)
{
	char		 args[400], cursor[256] = "";
	int		 seen = 0, pages = 0;

	expect(fixtures() == 0);
	for (;;) {
		struct http_res	 res;
		const char	*next;
		int		 i;

		snprintf(args, sizeof(args), "q=&genre=srch%ld&limit=2%s%s", run_id,
		    cursor[0] ? "&cursor=" : "", cursor);
		res = search(&u, args);
		expect_status(&res, 200);
		for (i = 0; i < 2; i++) {
			char	 key[32];

			snprintf(key, sizeof(key), "tracks.%d.id", i);
			seen += json_str(&res, key) != NULL;
		}
		next = json_str(&res, "next_cursor");
		snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
		http_free(&res);
		if (++pages > 10 || cursor[0] == '\0')
			break;
	}
	expect(seen >= 3);
}

/*
 * Every page of the ranked results for word, 50 at a time: OUT: ids[] and
 * pops[] (popularity) in order, at most max; *total as the first page
 * said; returns how many, *pages how many pages it took. -1 on a bad page.
 */
static int
search_walk(const char *word, char ids[][37], int *pops, int max, long long *total,
    int *pages)
{
	char	 args[400], cursor[256] = "";
	int	 n = 0, i;

	*total = -1;
	for (*pages = 0; *pages < 20; ) {
		struct http_res	 res;
		const char	*next;

		snprintf(args, sizeof(args), "q=%s&type=track&limit=50%s%s", word,
		    cursor[0] ? "&cursor=" : "", cursor);
		res = search(&u, args);
		if (res.status != 200) {
			http_free(&res);
			return -1;
		}
		if (*total < 0)
			*total = json_int(&res, "total", -1);
		for (i = 0; i < 50 && n < max; i++) {
			char		 key[32];
			const char	*id;

			snprintf(key, sizeof(key), "tracks.%d.id", i);
			if ((id = json_str(&res, key)) == NULL)
				break;
			snprintf(ids[n], 37, "%s", id);
			snprintf(key, sizeof(key), "tracks.%d.popularity", i);
			pops[n++] = (int)json_int(&res, key, -1);
		}
		next = json_str(&res, "next_cursor");
		snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
		http_free(&res);
		++*pages;
		if (cursor[0] == '\0')
			break;
	}
	return n;
}

/* How many of ids[0..n) appear twice. */
static int
dups(char ids[][37], int n)
{
	int	 d = 0, i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			d += strcmp(ids[i], ids[j]) == 0;
	return d;
}

/*
 * Ranked results page past the caller's lifted window (the best 200 by
 * text and popularity): a walk in pages of 50 sees every hit once, as
 * many as the total says, and the last page says there is no next one.
 */
static void
test_search_pages_reach_every_hit(void)
{
	static char	 seen[600][37];
	static int	 pops[600];
	char		 word[32];
	int		 nseen, pages, mine;
	long long	 total;

	expect(fixtures() == 0);
	snprintf(word, sizeof(word), "pagewalk%ld", run_id);
	it_psql("INSERT INTO tracks (title, artist, album, genre, duration, year,"
	    " popularity, source) SELECT '%s ' || g, 'Walker %ld', 'Walks', 'walk',"
	    " 200, 1990, g %% 101, 'catalog' FROM generate_series(1, 230) g", word, run_id);
	nseen = search_walk(word, seen, pops, 600, &total, &pages);
	mine = atoi(it_psql("SELECT count(*) FROM tracks WHERE title LIKE '%s %%'", word));
	expect(mine == 230);
	expect(total >= 230);
	expect(nseen == total);
	expect(dups(seen, nseen) == 0);
	expect(pages == 5);
}

/*
 * A search ranks the 300 most popular of its matches (HIT_LIMIT). They
 * are asked of the popular band's index (popularity 25 and over) first and
 * of the rest's for what the band leaves (sql/021_search_bands.sql): with
 * the band short of 300 (about 270 of 360 matches in it) and with the band
 * holding more (about 320 of 430), the hits are exactly the 300 most
 * popular, by popularity and then id, each once.
 */
static void
test_search_keeps_the_most_popular_across_the_band(void)
{
	static char	 seen[600][37];
	static int	 pops[600];
	const int	 sizes[] = { 360, 430 };
	int		 c;

	expect(fixtures() == 0);
	for (c = 0; c < 2; c++) {
		char		 word[32], last[64];
		const char	*idlast;
		long long	 total;
		int		 n, pages, plast, above = 0, in_band, i;

		snprintf(word, sizeof(word), "bandwalk%d%ld", c, run_id);
		it_psql("INSERT INTO tracks (title, artist, album, genre, duration, year,"
		    " popularity, source) SELECT '%s ' || g, 'Bander %ld', 'Bands', 'band',"
		    " 200, 1990, g %% 101, 'catalog' FROM generate_series(1, %d) g", word,
		    run_id, sizes[c]);
		in_band = atoi(it_psql("SELECT count(*) FROM tracks WHERE title LIKE '%s %%'"
		    " AND popularity >= 25", word));
		expect(c == 0 ? in_band < 300 : in_band > 300);
		/* the 300th of the most popular: popularity, then id */
		snprintf(last, sizeof(last), "%s", it_psql("SELECT popularity || ' ' || id"
		    " FROM tracks WHERE title LIKE '%s %%' ORDER BY popularity DESC, id"
		    " OFFSET 299 LIMIT 1", word));
		plast = atoi(last);
		idlast = strchr(last, ' ');
		idlast = idlast != NULL ? idlast + 1 : "";
		n = search_walk(word, seen, pops, 600, &total, &pages);
		expect(total == 300);
		expect(n == 300);
		expect(dups(seen, n) == 0);
		for (i = 0; i < n; i++)
			above += pops[i] > plast ||
			    (pops[i] == plast && strcmp(seen[i], idlast) <= 0);
		expect(above == 300);
	}
}

static void
test_search_history_click_suggest_and_popular(void)
{
	struct http_res	 res;
	char		 body[256];

	expect(fixtures() == 0);
	res = search(&u, "q=hotel%20califronia");
	http_free(&res);
	expect(strcmp(it_psql("SELECT count(*) > 0 FROM search_history WHERE user_id = '%s'"
	    " AND query = 'hotel califronia'", u.id), "t") == 0);
	snprintf(body, sizeof(body), "{\"query\":\"hotel califronia\",\"track_id\":\"%s\"}",
	    eagles);
	expect(it_status("POST", "/api/music/search/click", u.access, body) == 204);
	expect(strcmp(it_psql("SELECT clicked_track_id FROM search_history WHERE user_id ="
	    " '%s' ORDER BY searched_at DESC LIMIT 1", u.id), eagles) == 0);
	snprintf(body, sizeof(body), "{\"query\":\"never searched\",\"track_id\":\"%s\"}",
	    eagles);
	expect(it_status("POST", "/api/music/search/click", u.access, body) == 404);
	res = http_bearer("GET", "/api/music/search/suggest?q=hotel%20cal", u.access, NULL);
	expect_status(&res, 200);
	expect(res.body != NULL && strstr(res.body, "Hotel California") != NULL);
	expect(strstr(res.body, "hotel califronia") != NULL);	/* the caller's own */
	http_free(&res);
	res = http_bearer("GET", "/api/music/search/popular?days=1", u.access, NULL);
	expect_status(&res, 200);
	expect(res.body != NULL && strstr(res.body, "hotel califronia") != NULL);
	http_free(&res);
	/* the caller's search history has it too */
	res = http_bearer("GET", "/api/user/search-history", u.access, NULL);
	expect(res.body != NULL && strstr(res.body, "hotel califronia") != NULL);
	http_free(&res);
}

/* The words the database's search_split makes of q, comma-separated. */
static const char *
db_split(const char *q)
{
	return it_psql("SELECT coalesce(string_agg(x, ',' ORDER BY i), '') FROM (SELECT x, i"
	    " FROM regexp_split_to_table(search_normalize(%s), '[^[:alnum:]]+')"
	    " WITH ORDINALITY s(x, i) WHERE x <> '' AND length(x) <= 32 ORDER BY i"
	    " LIMIT 8) w", q);
}

/*
 * The worker splits an ASCII query itself (spell_split_ascii(), whose unit
 * test holds these same cases); the database, which splits every other
 * query, makes the same words of them.
 */
static void
test_search_database_splits_ascii_as_the_worker(void)
{
	struct http_res	 res;

	expect_str(db_split("'  Hotel---CALIFORNIA!! '"), "hotel,california");
	expect_str(db_split("E'AC/DC\\tdon''t 2024'"), "ac,dc,don,t,2024");
	expect_str(db_split("'a b c d e f g h i j'"), "a,b,c,d,e,f,g,h");
	expect_str(db_split("' ?! _-'"), "");
	expect_str(db_split("repeat('x', 33) || ' Ok'"), "ok");
	expect_str(db_split("repeat('x', 32)"), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	/* every ASCII byte: lower() and [[:alnum:]] as the worker has them */
	expect_str(it_psql("SELECT search_normalize(s) = translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',"
	    " 'abcdefghijklmnopqrstuvwxyz') AND (SELECT string_agg(c, '' ORDER BY ascii(c))"
	    " FROM regexp_split_to_table(s, '') c WHERE c ~ '[[:alnum:]]')"
	    " = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'"
	    " FROM (SELECT string_agg(chr(i), '' ORDER BY i) AS s FROM generate_series(1, 127) i) a"),
	    "t");
	/* and a query so split finds what it should */
	expect(fixtures() == 0);
	res = search(&u, "q=HOTEL---califronia!!");
	expect(res.body != NULL && has_title(&res, "Hotel California", 1));
	http_free(&res);
}

/* The history rows of s for query q: "<count>:<max result_count>:<genre>". */
static const char *
recorded(const struct it_session *s, const char *q)
{
	return it_psql("SELECT count(*) || ':' || coalesce(max(result_count), -1) || ':'"
	    " || coalesce(max(filters->>'genre'), '-') FROM search_history"
	    " WHERE user_id = '%s' AND query = '%s'", s->id, q);
}

/*
 * Every search is one history row with its count and filters, whichever
 * of the tries (every word, common words corrected, an extra word, any
 * word) answered it, and when none found anything.
 */
static void
test_search_records_each_search_once(void)
{
	struct it_session	 v;
	struct http_res		 res;
	char			 args[160], want[64];

	expect(fixtures() == 0 && it_new_user("srchrec", &v) == 0);
	res = search(&v, "q=hotel%20califronia");
	expect_status(&res, 200);
	http_free(&res);
	expect_str(recorded(&v, "hotel califronia"), "1:1:-");
	/* an extra word: found by the try that leaves one out */
	res = search(&v, "q=hotel%20california%20zzqxv");
	expect(res.body != NULL && has_title(&res, "Hotel California", 1));
	http_free(&res);
	expect_str(recorded(&v, "hotel california zzqxv"), "1:1:-");
	/* nothing found: the last try records it, with its filter */
	snprintf(args, sizeof(args), "q=hotel%%20california&genre=none%ld", run_id);
	res = search(&v, args);
	expect_status(&res, 200);
	http_free(&res);
	snprintf(want, sizeof(want), "1:0:none%ld", run_id);
	expect_str(recorded(&v, "hotel california"), want);
	snprintf(args, sizeof(args), "q=hotel&genre=none%ld", run_id);
	res = search(&v, args);
	http_free(&res);
	expect_str(recorded(&v, "hotel"), want);
	res = search(&v, "q=zzqxv%20wwvvq%20kkjjh");
	expect_status(&res, 200);
	expect(json_int(&res, "total", -1) == 0);
	http_free(&res);
	expect_str(recorded(&v, "zzqxv wwvvq kkjjh"), "1:0:-");
	/* quotes and a backslash reach the history as typed */
	res = search(&v, "q=hotel%20%22califronia%22%20%5C");
	expect_status(&res, 200);
	http_free(&res);
	expect_str(it_psql("SELECT count(*) || ':' || max(result_count) FROM search_history"
	    " WHERE user_id = '%s' AND query = 'hotel ' || chr(34) || 'califronia'"
	    " || chr(34) || ' ' || chr(92)", v.id), "1:1");
	/* the same search again (from the cache now) is one more row */
	res = search(&v, "q=hotel%20califronia");
	http_free(&res);
	expect_str(recorded(&v, "hotel califronia"), "2:1:-");
}

/* Searches from several threads at once, each on its own connection. */
struct search_load {
	const struct it_session	*s;
	const char		*args;
	int			 each, failed;
	pthread_mutex_t		 mu;
};

static void *
search_load_thread(void *arg)
{
	struct search_load	*l = arg;
	CURL			*c;
	struct curl_slist	*h;
	char			 url[512], auth[2100];
	int			 i;

	snprintf(url, sizeof(url), "%s/api/music/search?%s", getenv("BASE_URL"), l->args);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", l->s->access);
	h = curl_slist_append(NULL, auth);
	c = it_curl_handle(url, 30);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	for (i = 0; i < l->each; i++) {
		long	 st = 0;

		if (curl_easy_perform(c) != CURLE_OK ||
		    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK ||
		    st != 200) {
			pthread_mutex_lock(&l->mu);
			l->failed++;
			pthread_mutex_unlock(&l->mu);
		}
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

/* n threads, each searching args as s each times. */
static void
search_load_start(struct search_load *l, pthread_t *th, int n,
    const struct it_session *s, const char *args, int each)
{
	memset(l, 0, sizeof(*l));
	l->s = s;
	l->args = args;
	l->each = each;
	pthread_mutex_init(&l->mu, NULL);
	it_threads(th, n, search_load_thread, l);
}

/* Waits for the n threads. Returns how many searches were not a 200. */
static int
search_load_join(struct search_load *l, pthread_t *th, int n)
{
	it_join(th, n);
	pthread_mutex_destroy(&l->mu);
	return l->failed;
}

/*
 * Under load the workers write the history in batches (fcgi/history.c):
 * 8 clients searching at once still leave one row per search, each with
 * its count, once the batches are written (at most 50 ms after).
 */
static void
test_search_history_under_load_keeps_every_search(void)
{
	struct it_session	 v;
	struct search_load	 l;
	pthread_t		 th[8];
	char			 args[160], q[64];
	const char		*got = "";
	int			 i, writes;

	expect(fixtures() == 0 && it_new_user("srchload", &v) == 0);
	snprintf(q, sizeof(q), "hotel califronia x%ld", run_id);
	snprintf(args, sizeof(args), "q=hotel%%20califronia%%20x%ld", run_id);
	search_load_start(&l, th, 8, &v, args, 25);
	expect(search_load_join(&l, th, 8) == 0);
	for (i = 0; i < 40; i++) {
		if (i > 0)
			sleep_ms(50);
		got = recorded(&v, q);
		if (strcmp(got, "200:1:-") == 0)
			break;
	}
	expect_str(got, "200:1:-");
	/* and nothing more arrives later */
	sleep_ms(200);
	expect_str(recorded(&v, q), "200:1:-");
	expect_str(it_psql("SELECT count(DISTINCT searched_at) > 1 FROM search_history"
	    " WHERE user_id = '%s'", v.id), "t");
	/* rows written by one statement share its transaction id */
	writes = atoi(it_psql("SELECT count(DISTINCT xmin::text) FROM search_history"
	    " WHERE user_id = '%s'", v.id));
	printf("    history under load: 200 searches written by %d statements\n", writes);
	expect(writes > 0 && writes < 200);
}

/*
 * A clear of the history while searches run: no search answered before
 * the clear is in the history afterwards, whichever worker held it.
 */
static void
test_search_history_clear_under_load_stays_cleared(void)
{
	struct it_session	 v;
	struct search_load	 l;
	pthread_t		 th[32];
	struct http_res		 res;
	char			 args[160];

	expect(fixtures() == 0 && it_new_user("srchclr", &v) == 0);
	snprintf(args, sizeof(args), "q=hotel%%20califronia%%20y%ld", run_id);
	search_load_start(&l, th, 32, &v, args, 40);
	sleep_ms(200);
	res = http_bearer("DELETE", "/api/user/search-history", v.access, NULL);
	expect_status(&res, 204);
	http_free(&res);
	expect(search_load_join(&l, th, 32) == 0);
	sleep_ms(300);		/* every batch written */
	expect_str(it_psql("SELECT count(*) FROM search_history s JOIN users u"
	    " ON u.id = s.user_id WHERE u.id = '%s'"
	    " AND s.searched_at < u.search_history_cleared_at", v.id), "0");
	expect_str(it_psql("SELECT search_history_cleared_at IS NOT NULL FROM users"
	    " WHERE id = '%s'", v.id), "t");
}

/*
 * Ask suggest for q as v until the answer holds needle (want 1) or no
 * longer does (want 0): a change reaches the caches a moment after its
 * commit. 1 when it did within about 2 s.
 */
static int
suggest_until(const struct it_session *v, const char *q, const char *needle, int want)
{
	struct http_res	 res;
	int		 i, has = !want;

	for (i = 0; i < 40 && has != want; i++) {
		if (i > 0)
			sleep_ms(50);
		res = http_bearer("GET", q, v->access, NULL);
		has = res.body != NULL && strstr(res.body, needle) != NULL;
		http_free(&res);
	}
	return has == want;
}

/*
 * Suggestions are cached (the library's per prefix, the caller's recent
 * searches per user) but never outlive a change: a new track, a new
 * search, a cleared history show at the next keystroke.
 */
static void
test_suggest_cache_follows_writes(void)
{
	struct it_session	 v;
	struct http_res		 res;
	char			 id[37];
	int			 i;

	expect(fixtures() == 0);
	expect(it_new_user("suggest", &v) == 0);
	res = http_bearer("GET", "/api/music/search/suggest?q=quixotic%20bal", v.access, NULL);
	expect_status(&res, 200);
	expect(res.body != NULL && strstr(res.body, "Quixotic Ballad") == NULL);
	http_free(&res);
	/* asked twice: the second answer comes from the cache, the same */
	res = http_bearer("GET", "/api/music/search/suggest?q=quixotic%20bal", v.access, NULL);
	expect(res.body != NULL && strcmp(res.body, "{\"suggestions\":[]}") == 0);
	http_free(&res);
	expect(track("Quixotic Ballad", "Nobody Yet", 10, id) == 0);
	expect(suggest_until(&v, "/api/music/search/suggest?q=quixotic%20bal",
	    "{\"kind\":\"title\",\"text\":\"Quixotic Ballad\"}", 1));
	/* the caller's own searches: at once, newest first, and only theirs */
	res = search(&v, "q=quixotic%20\"balad\"");
	http_free(&res);
	res = search(&v, "q=Quixotic%20Ballads");
	http_free(&res);
	res = http_bearer("GET", "/api/music/search/suggest?q=QUIXO", v.access, NULL);
	expect_status(&res, 200);
	expect_json_str(&res, "suggestions.0.kind", "recent");
	expect_json_str(&res, "suggestions.0.text", "Quixotic Ballads");
	expect_json_str(&res, "suggestions.1.text", "quixotic \"balad\"");
	expect_json_str(&res, "suggestions.2.text", "Quixotic Ballad");
	http_free(&res);
	res = http_bearer("GET", "/api/music/search/suggest?q=quixo", u.access, NULL);
	expect(res.body != NULL && strstr(res.body, "\"recent\"") == NULL);
	http_free(&res);
	expect(it_status("DELETE", "/api/user/search-history", v.access, NULL) == 204);
	res = http_bearer("GET", "/api/music/search/suggest?q=quixo", v.access, NULL);
	expect(res.body != NULL && strstr(res.body, "\"recent\"") == NULL &&
	    strstr(res.body, "Quixotic Ballad") != NULL);
	http_free(&res);
	/*
	 * A history written or deleted elsewhere (another machine's worker,
	 * psql) reaches the workers' cached lists by the announcement alone:
	 * every worker has the (empty) list by now.
	 */
	for (i = 0; i < 16; i++) {
		res = http_bearer("GET", "/api/music/search/suggest?q=quixo", v.access, NULL);
		expect(res.body != NULL && strstr(res.body, "\"recent\"") == NULL);
		http_free(&res);
	}
	it_psql("INSERT INTO search_history (user_id, query, filters, result_count)"
	    " VALUES ('%s', 'quixotic from elsewhere', '{}', 0)", v.id);
	expect(suggest_until(&v, "/api/music/search/suggest?q=quixo",
	    "{\"kind\":\"recent\",\"text\":\"quixotic from elsewhere\"}", 1));
	it_psql("DELETE FROM search_history WHERE user_id = '%s'", v.id);
	expect(suggest_until(&v, "/api/music/search/suggest?q=quixo", "\"recent\"", 0));
	it_psql("DELETE FROM tracks WHERE id = '%s'", id);
}

static void
test_search_bad_input_is_400(void)
{
	static char	 big[400];

	expect(fixtures() == 0);
	memset(big, 'a', sizeof(big) - 1);
	expect(it_status("GET", "/api/music/search?q=x&type=song", u.access, NULL) == 400);
	expect(it_status("GET", "/api/music/search?q=x&limit=abc", u.access, NULL) == 400);
	expect(it_status("GET", "/api/music/search?q=x&cursor=bm9wZQ", u.access, NULL) == 400);
	expect(it_status("GET", "/api/music/search?q=x&year_from=x", u.access, NULL) == 400);
	expect(it_status("GET", "/api/music/search?q=x&sort=title", u.access, NULL) == 400);
	{
		char	 path[600];

		snprintf(path, sizeof(path), "/api/music/search?q=%s", big);
		expect(it_status("GET", path, u.access, NULL) == 400);
	}
	expect(it_status("GET", "/api/music/search/suggest", u.access, NULL) == 400);
	expect(it_status("POST", "/api/music/search/click", u.access,
	    "{\"query\":\"x\",\"track_id\":\"nope\"}") == 422);
	expect(it_status("GET", "/api/music/search?q=x", NULL, NULL) == 401);
	/* quotes, operators and backslashes are text, never query syntax */
	expect(it_status("GET", "/api/music/search?q=%27%20%7C%20%21%20%26%20%5C%3A*", u.access,
	    NULL) == 200);
}

/*
 * The relevance set over the real catalogue: recall@10 >= 95%, and the
 * mean reciprocal rank reported. Only when run-all loaded a catalogue.
 */
static void
test_search_relevance_set(void)
{
	const char	*csv = getenv("SEARCH_RELEVANCE_CSV");
	char		 path[1100], line[1024];
	FILE		*f;
	int		 n = 0, hits = 0;
	double		 mrr = 0;

	if (csv == NULL) {
		printf("    (no catalogue loaded: run by tests/run-all's relevance stage)\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/tests/search/relevance.tsv", getenv("TOP"));
	expect((f = fopen(path, "r")) != NULL);
	if (sh("eval \"$(%s/tools/stack env %s)\"; %s catalog '%s' >/dev/null 2>&1",
	    getenv("TOP"), getenv("STACK_DIR"), getenv("DJAMMS_BIN"), csv) != 0) {
		fclose(f);
		t_fail(__FILE__, __LINE__, "cannot load %s", csv);
		return;
	}
	expect(it_new_user("relevance", &u) == 0);
	while (fgets(line, sizeof(line), f) != NULL) {
		char		*q, *artist, *title, *e, args[1024];
		struct http_res	 res;
		int		 rank = 0, i;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = '\0';
		q = line;
		if ((artist = strchr(q, '\t')) == NULL)
			continue;
		*artist++ = '\0';
		if ((title = strchr(artist, '\t')) != NULL)
			*title++ = '\0';
		else
			title = "";
		e = curl_easy_escape(NULL, q, 0);
		snprintf(args, sizeof(args), "q=%s&type=track&limit=10", e);
		curl_free(e);
		res = search(&u, args);
		for (i = 0; i < 10 && rank == 0; i++) {
			char		 k1[32], k2[32];
			const char	*a, *t;

			snprintf(k1, sizeof(k1), "tracks.%d.artist", i);
			snprintf(k2, sizeof(k2), "tracks.%d.title", i);
			if ((a = json_str(&res, k1)) != NULL && (t = json_str(&res, k2)) != NULL &&
			    strcasestr(a, artist) != NULL && strcasestr(t, title) != NULL)
				rank = i + 1;
		}
		if (rank == 0)
			printf("    missed: \"%s\" (%s%s%s)\n", q, artist, *title ? " - " : "",
			    title);
		http_free(&res);
		n++;
		hits += rank > 0;
		mrr += rank > 0 ? 1.0 / rank : 0;
	}
	fclose(f);
	expect(n >= 60);
	printf("    relevance: recall@10 %d/%d = %.1f%%, MRR %.3f\n", hits, n,
	    100.0 * hits / n, mrr / n);
	expect(hits * 100 >= n * 95);
}

/*
 * Searches go to the search socket's workers (nginx's djamms_search
 * upstream), and nothing else does: suggest and the rest of the API stay
 * with the API's workers. The pool's status counts what each answered.
 */
static void
test_search_has_workers_of_its_own(void)
{
	struct http_res	 res;
	long long	 before, after;
	int		 i;

	expect(fixtures() == 0);
	before = it_pool_counter("search_requests_served");
	expect(before >= 0);
	for (i = 0; i < 3; i++) {
		res = search(&u, "q=hotel");
		expect_status(&res, 200);
		http_free(&res);
	}
	/* counted after the answer went out: give the worker a moment */
	for (i = 0; i < 20; i++) {
		if ((after = it_pool_counter("search_requests_served")) >= before + 3)
			break;
		sleep_ms(50);
	}
	expect(after == before + 3);
	res = http_bearer("GET", "/api/music/search/suggest?q=hot", u.access, NULL);
	expect_status(&res, 200);
	http_free(&res);
	res = http_bearer("GET", "/api/music/tracks?limit=5", u.access, NULL);
	expect_status(&res, 200);
	http_free(&res);
	sleep_ms(100);
	expect(it_pool_counter("search_requests_served") == after);
	/* the search socket's workers answer in the one error shape too */
	res = search(&u, "q=hotel&limit=zero");
	expect_status(&res, 400);
	expect(json_str(&res, "error.code") != NULL);
	http_free(&res);
}

const struct it_test search_tests[] = {
#define T(f) { #f, f }
	T(test_search_forgives_typos_accents_and_word_order),
	T(test_search_has_workers_of_its_own),
	T(test_search_says_what_it_corrected_and_counts_facets),
	T(test_search_short_words_forgive_two_slips_not_two_wrong_letters),
	T(test_search_sees_writes_at_once),
	T(test_search_empty_query_lists_everything_with_a_cursor),
	T(test_search_pages_reach_every_hit),
	T(test_search_keeps_the_most_popular_across_the_band),
	T(test_search_history_click_suggest_and_popular),
	T(test_search_records_each_search_once),
	T(test_search_history_under_load_keeps_every_search),
	T(test_search_history_clear_under_load_stays_cleared),
	T(test_search_extra_word_keeps_the_rest_and_types_show_their_groups),
	T(test_search_lifts_the_callers_likes_and_plays),
	T(test_search_database_splits_ascii_as_the_worker),
	T(test_suggest_cache_follows_writes),
	T(test_search_bad_input_is_400),
	T(test_search_relevance_set),
#undef T
};
const size_t search_ntests = sizeof(search_tests) / sizeof(search_tests[0]);

void
search_tests_init(const char *dir, const char *repo)
{
	(void)dir;
	(void)repo;
	run_id = (long)getpid() % 100000;
}
