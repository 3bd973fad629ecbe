/*
 * tests/unit_media.c: fcgi/media.c against real files. The group setup
 * makes its fixtures in a fresh temp dir with ffmpeg (3-second 440 Hz
 * stereo sine at 44.1 kHz, one file per format, tags and covers where the
 * format carries them) and in C (the hostile ones: empty, random, cut
 * short); the teardown removes the dir and releases the libraries.
 *
 * One behaviour per test; a test's name says the behaviour.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "../fcgi/djamms.h"

/* ---- fixtures ------------------------------------------------------- */

static char	 fixdir[64];

#define TAGS	" -metadata title='Sine Wave' -metadata artist='The Testers'" \
		" -metadata album='Fixture Album' -metadata genre=Electronic" \
		" -metadata date=2021 -metadata track=7/12 "
#define COVER	" -i cover.jpg -map 0 -map 1 -c:v copy "

/* ffmpeg's part; the shell stops at the first failure. */
static const char fixture_script[] =
	"set -e\n"
	"F='ffmpeg -nostdin -hide_banner -loglevel error -y'\n"
	"$F -f lavfi -i sine=frequency=440:duration=3:sample_rate=44100 -ac 2 sine.wav\n"
	"$F -f lavfi -i color=c=red:s=640x480 -frames:v 1 cover.jpg\n"
	"$F -i sine.wav" COVER "-c:a libmp3lame -b:a 128k -id3v2_version 3" TAGS
	    "-metadata:s:v title='Album cover' -metadata:s:v comment='Cover (front)' t.mp3\n"
	"$F -i sine.wav -c:a libmp3lame -b:a 128k -id3v2_version 0 -write_id3v1 0 bare.mp3\n"
	"$F -i sine.wav" COVER "-c:a flac -disposition:v attached_pic" TAGS "t.flac\n"
	"$F -i sine.wav -c:a libvorbis" TAGS "t.ogg\n"
	"$F -i sine.wav -c:a libopus -b:a 96k" TAGS "t.opus\n"
	"$F -i sine.wav" COVER "-c:a aac -b:a 128k -disposition:v attached_pic" TAGS "t.m4a\n"
	"$F -i sine.wav -c:a aac -b:a 128k -f adts t.aac\n"
	"$F -i sine.wav -c:a copy" TAGS "tagged.wav\n"
	"$F -i sine.wav -t 1 -c:a copy -metadata title=\"$BADTITLE\""
	    " -metadata artist=\"$LONGARTIST\" bad.wav\n"
	"$F -i sine.wav -t 1 -c:a aac -f mp4 plain.mp4\n"
	"$F -i sine.wav -t 1 -c:a flac -f ogg oggflac.ogg\n"
	"$F -f lavfi -i color=c=blue:s=32x32 -frames:v 1 p.png\n"
	"$F -f lavfi -i color=c=green:s=12000x8 -frames:v 1 wide.png\n"
	"$F -f lavfi -i 'color=c=red@0.5:s=200x100,format=rgba' -frames:v 1 alpha.png\n"
	/* clicks at 128 BPM; a -20 dBFS 997 Hz tone; silence */
	"$F -f lavfi -i \"aevalsrc='0.8*sin(2*PI*1000*t)*lt(mod(t,60/128),0.02)':"
	    "s=44100:d=30\" -ac 2 -c:a libmp3lame -b:a 192k clicks128.mp3\n"
	"$F -f lavfi -i \"aevalsrc='0.1*sin(2*PI*997*t)|0.1*sin(2*PI*997*t)':"
	    "s=48000:d=10\" -c:a flac tone.flac\n"
	"$F -f lavfi -i anullsrc=r=44100:cl=mono -t 5 -c:a pcm_s16le silence.wav\n"
	"printf 'hello, this is not music\\n' > x.mp3\n"
	"cp /bin/true y.mp3\n";

/* A fixture's path; four can be alive at once. */
static const char *
fx(const char *name)
{
	static char	 ring[4][PATH_MAX];
	static int	 next;
	char		*p = ring[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", fixdir, name);
	return p;
}

static void
write_bytes(const char *name, const void *data, size_t len)
{
	FILE	*f = fopen(fx(name), "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Deterministic noise, so a failure reproduces. */
static void
noise(unsigned char *buf, size_t len, uint64_t seed)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		buf[i] = (unsigned char)(seed >> 32);
	}
}

static unsigned char *
read_all(const char *path, size_t *len)
{
	FILE		*f = fopen(path, "rb");
	unsigned char	*buf;
	long		 n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int
group_setup(void **state)
{
	static unsigned char	 rnd[65536];
	char			 cmd[PATH_MAX + 64], longartist[401], *p;
	unsigned char		*mp3;
	size_t			 len;
	FILE			*sh;
	int			 i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.log_level = LOG_ERROR;
	snprintf(fixdir, sizeof(fixdir), "/tmp/djamms-media.XXXXXX");
	if (mkdtemp(fixdir) == NULL)
		return -1;

	/* 200 x "é" (400 bytes) for a tag longer than media_info holds. */
	for (p = longartist, i = 0; i < 200; i++, p += 2)
		memcpy(p, "\xc3\xa9", 2);
	*p = '\0';
	setenv("BADTITLE", "  caf\xe9\tbar  ", 1);	/* Latin-1, a tab, spaces */
	setenv("LONGARTIST", longartist, 1);
	snprintf(cmd, sizeof(cmd), "cd '%s' && sh -s", fixdir);
	if ((sh = popen(cmd, "w")) == NULL)
		return -1;
	fputs(fixture_script, sh);
	if (pclose(sh) != 0) {
		fprintf(stderr, "fixtures: ffmpeg failed in %s\n", fixdir);
		return -1;
	}

	write_bytes("empty.mp3", "", 0);
	noise(rnd, sizeof(rnd), 0x5eed);
	write_bytes("random.mp3", rnd, sizeof(rnd));
	/* A valid MPEG-1 layer III header (128 kbps, 44.1 kHz), then noise. */
	memcpy(rnd, "\xff\xfb\x90\x64", 4);
	write_bytes("header_then_noise.mp3", rnd, sizeof(rnd));
	mp3 = read_all(fx("t.mp3"), &len);
	write_bytes("truncated.mp3", mp3, 1024);
	free(mp3);
	return 0;
}

static int
group_teardown(void **state)
{
	char	 cmd[PATH_MAX + 16];

	media_shutdown();
	if (fixdir[0] != '\0' && getenv("KEEP_TEST_DIRS") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fixdir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* ---- helpers -------------------------------------------------------- */

static void
expect_sniff(const char *name, enum media_format fmt, const char *mime,
    const char *ext)
{
	const char	*m = "unset";

	assert_int_equal(media_sniff(fx(name), &m), fmt);
	assert_non_null(m);
	assert_string_equal(m, mime);
	assert_string_equal(media_format_name(fmt), ext);
}

/* Either the sniff refuses it, or the probe does. */
static void
expect_refused(const char *name)
{
	struct media_info	 mi;
	enum media_format	 fmt;

	if ((fmt = media_sniff(fx(name), NULL)) == MF_UNKNOWN)
		return;
	assert_int_equal(media_probe(fx(name), fmt, &mi), -1);
	assert_int_equal(mi.duration_ms, 0);
	assert_null(mi.mime);
}

static void
probe(const char *name, enum media_format fmt, struct media_info *mi)
{
	assert_int_equal(media_sniff(fx(name), NULL), fmt);
	assert_int_equal(media_probe(fx(name), fmt, mi), 0);
	assert_int_equal(mi->format, fmt);
}

static void
expect_fixture_tags(const struct media_info *mi)
{
	assert_string_equal(mi->title, "Sine Wave");
	assert_string_equal(mi->artist, "The Testers");
	assert_string_equal(mi->album, "Fixture Album");
	assert_string_equal(mi->genre, "Electronic");
	assert_int_equal(mi->year, 2021);
	assert_int_equal(mi->track_no, 7);
}

static void
expect_no_tags(const struct media_info *mi)
{
	assert_string_equal(mi->title, "");
	assert_string_equal(mi->artist, "");
	assert_string_equal(mi->album, "");
	assert_string_equal(mi->genre, "");
	assert_int_equal(mi->year, 0);
	assert_int_equal(mi->track_no, 0);
}

static void
expect_sine_properties(const struct media_info *mi, int rate)
{
	assert_in_range(mi->duration_ms, 2900, 3100);
	assert_int_equal(mi->sample_rate, rate);
	assert_int_equal(mi->channels, 2);
	assert_true(mi->bitrate_kbps > 0);
}

static int
utf8_valid(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	int			 n;

	while (*p != '\0') {
		n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
		    (*p & 0xf8) == 0xf0 ? 3 : -1;
		if (n < 0)
			return 0;
		for (p++; n > 0; n--, p++)
			if ((*p & 0xc0) != 0x80)
				return 0;
	}
	return 1;
}

/* Entries of dir other than "." and "..", -1 if it does not exist. */
static int
dir_entries(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
expect_image(const char *dir, const char *name, int side, const char *magic,
    size_t magic_len, size_t magic_off)
{
	char		 path[PATH_MAX];
	unsigned char	*buf;
	size_t		 len;
	VipsImage	*img;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	buf = read_all(path, &len);
	assert_true(len > magic_off + magic_len);
	assert_memory_equal(buf + magic_off, magic, magic_len);
	free(buf);
	img = vips_image_new_from_file(path, NULL);
	assert_non_null(img);
	assert_int_equal(vips_image_get_width(img), side);
	assert_int_equal(vips_image_get_height(img), side);
	if (magic_off == 0)			/* JPEG: no alpha, three bands */
		assert_int_equal(vips_image_get_bands(img), 3);
	g_object_unref(img);
}

static void
segment_is(const char *in, const char *want)
{
	char	 out[72];

	media_path_segment(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
guess_is(const char *path, const char *title, const char *artist)
{
	char	 t[256], a[256];

	memset(t, 'x', sizeof(t));
	memset(a, 'x', sizeof(a));
	media_guess_from_filename(path, t, sizeof(t), a, sizeof(a));
	assert_string_equal(t, title);
	assert_string_equal(a, artist);
}

/* ---- sniffing: each format by its bytes ------------------------------ */

static void
test_mp3_with_id3_is_sniffed_as_mp3(void **state)
{
	expect_sniff("t.mp3", MF_MP3, "audio/mpeg", "mp3");
}

static void
test_mp3_without_any_tag_is_sniffed_as_mp3(void **state)
{
	expect_sniff("bare.mp3", MF_MP3, "audio/mpeg", "mp3");
}

static void
test_flac_is_sniffed_as_flac(void **state)
{
	expect_sniff("t.flac", MF_FLAC, "audio/flac", "flac");
}

static void
test_wav_is_sniffed_as_wav(void **state)
{
	expect_sniff("sine.wav", MF_WAV, "audio/wav", "wav");
}

static void
test_adts_aac_is_sniffed_as_aac(void **state)
{
	expect_sniff("t.aac", MF_AAC, "audio/aac", "aac");
}

static void
test_m4a_is_sniffed_as_m4a(void **state)
{
	expect_sniff("t.m4a", MF_M4A, "audio/mp4", "m4a");
}

static void
test_ogg_vorbis_is_sniffed_as_ogg(void **state)
{
	expect_sniff("t.ogg", MF_OGG, "audio/ogg", "ogg");
}

static void
test_ogg_opus_is_sniffed_as_opus(void **state)
{
	expect_sniff("t.opus", MF_OPUS, "audio/opus", "opus");
}

static void
test_sniff_ignores_the_name(void **state)
{
	char	 renamed[PATH_MAX];

	/* FLAC bytes under an .mp3 name are still FLAC. */
	snprintf(renamed, sizeof(renamed), "%s", fx("flac-in-disguise.mp3"));
	assert_int_equal(link(fx("t.flac"), renamed), 0);
	assert_int_equal(media_sniff(renamed, NULL), MF_FLAC);
	unlink(renamed);
}

/* ---- sniffing: what is not audio ------------------------------------ */

static void
test_text_named_mp3_is_unknown(void **state)
{
	const char	*m = NULL;

	assert_int_equal(media_sniff(fx("x.mp3"), &m), MF_UNKNOWN);
	assert_non_null(m);
	assert_string_equal(m, "text/plain");	/* libmagic's word, for logs */
}

static void
test_executable_named_mp3_is_unknown(void **state)
{
	assert_int_equal(media_sniff(fx("y.mp3"), NULL), MF_UNKNOWN);
}

static void
test_png_is_unknown(void **state)
{
	assert_int_equal(media_sniff(fx("p.png"), NULL), MF_UNKNOWN);
}

static void
test_empty_file_is_unknown(void **state)
{
	assert_int_equal(media_sniff(fx("empty.mp3"), NULL), MF_UNKNOWN);
}

static void
test_missing_file_and_directory_are_unknown(void **state)
{
	const char	*m = "unset";

	assert_int_equal(media_sniff(fx("no-such-file.mp3"), &m), MF_UNKNOWN);
	assert_null(m);
	assert_int_equal(media_sniff(fixdir, &m), MF_UNKNOWN);
	assert_null(m);
}

static void
test_audio_in_plain_mp4_container_is_unknown(void **state)
{
	/* Only the audio brands "M4A " and "M4B " make an M4A. */
	assert_int_equal(media_sniff(fx("plain.mp4"), NULL), MF_UNKNOWN);
}

static void
test_ogg_flac_is_unknown(void **state)
{
	assert_int_equal(media_sniff(fx("oggflac.ogg"), NULL), MF_UNKNOWN);
}

static void
test_random_bytes_are_refused(void **state)
{
	expect_refused("random.mp3");
}

static void
test_mp3_header_then_random_bytes_is_refused(void **state)
{
	expect_refused("header_then_noise.mp3");
}

static void
test_mp3_truncated_to_1k_is_refused(void **state)
{
	expect_refused("truncated.mp3");
}

static void
test_probe_refuses_a_file_as_another_format(void **state)
{
	struct media_info	 mi;

	assert_int_equal(media_probe(fx("sine.wav"), MF_FLAC, &mi), -1);
	assert_int_equal(media_probe(fx("t.flac"), MF_OPUS, &mi), -1);
	assert_int_equal(media_probe(fx("t.mp3"), MF_UNKNOWN, &mi), -1);
	assert_int_equal(media_probe(fx("empty.mp3"), MF_MP3, &mi), -1);
	assert_int_equal(media_probe(fx("empty.mp3"), MF_WAV, &mi), -1);
}

/* ---- probing: tags and properties ----------------------------------- */

static void
test_mp3_tags_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.mp3", MF_MP3, &mi);
	expect_fixture_tags(&mi);
	assert_string_equal(mi.mime, "audio/mpeg");
	assert_string_equal(mi.ext, "mp3");
}

static void
test_mp3_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.mp3", MF_MP3, &mi);
	expect_sine_properties(&mi, 44100);
	assert_in_range(mi.bitrate_kbps, 120, 136);
}

static void
test_flac_tags_and_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.flac", MF_FLAC, &mi);
	expect_fixture_tags(&mi);
	expect_sine_properties(&mi, 44100);
	assert_string_equal(mi.mime, "audio/flac");
}

static void
test_ogg_vorbis_tags_and_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.ogg", MF_OGG, &mi);
	expect_fixture_tags(&mi);
	expect_sine_properties(&mi, 44100);
	assert_string_equal(mi.ext, "ogg");
}

static void
test_opus_tags_and_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.opus", MF_OPUS, &mi);
	expect_fixture_tags(&mi);
	expect_sine_properties(&mi, 48000);	/* Opus always decodes at 48 kHz */
	assert_string_equal(mi.mime, "audio/opus");
}

static void
test_m4a_tags_and_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("t.m4a", MF_M4A, &mi);
	expect_fixture_tags(&mi);
	expect_sine_properties(&mi, 44100);
	assert_string_equal(mi.mime, "audio/mp4");
}

static void
test_wav_properties_are_read(void **state)
{
	struct media_info	 mi;

	probe("sine.wav", MF_WAV, &mi);
	expect_sine_properties(&mi, 44100);
	assert_int_equal(mi.bitrate_kbps, 1411);	/* 44100 * 16 * 2 */
	assert_string_equal(mi.mime, "audio/wav");
}

static void
test_wav_info_tags_are_read(void **state)
{
	struct media_info	 mi;

	probe("tagged.wav", MF_WAV, &mi);
	expect_fixture_tags(&mi);
}

static void
test_adts_aac_properties_are_read_and_tags_are_empty(void **state)
{
	struct media_info	 mi;

	probe("t.aac", MF_AAC, &mi);
	expect_sine_properties(&mi, 44100);
	expect_no_tags(&mi);
	assert_string_equal(mi.mime, "audio/aac");
}

static void
test_missing_tags_leave_empty_strings(void **state)
{
	struct media_info	 mi;

	probe("bare.mp3", MF_MP3, &mi);
	expect_no_tags(&mi);
	expect_sine_properties(&mi, 44100);
	probe("sine.wav", MF_WAV, &mi);
	expect_no_tags(&mi);
}

static void
test_ill_formed_utf8_and_controls_in_tags_are_cleaned(void **state)
{
	struct media_info	 mi;

	/* "  caf\xe9\tbar  ": a Latin-1 byte, a tab, spaces around. */
	probe("bad.wav", MF_WAV, &mi);
	assert_string_equal(mi.title, "caf\xef\xbf\xbd bar");
}

static void
test_long_tags_are_cut_between_characters(void **state)
{
	struct media_info	 mi;

	probe("bad.wav", MF_WAV, &mi);
	assert_int_equal(strlen(mi.artist), 254);	/* 127 "é", not 127.5 */
	assert_true(utf8_valid(mi.artist));
}

/* ---- covers ----------------------------------------------------------- */

static void
test_probe_sees_covers_in_mp3_flac_m4a_and_none_in_wav(void **state)
{
	struct media_info	 mi;

	probe("t.mp3", MF_MP3, &mi);
	assert_true(mi.has_cover);
	probe("t.flac", MF_FLAC, &mi);
	assert_true(mi.has_cover);
	probe("t.m4a", MF_M4A, &mi);
	assert_true(mi.has_cover);
	probe("sine.wav", MF_WAV, &mi);
	assert_false(mi.has_cover);
	probe("t.ogg", MF_OGG, &mi);
	assert_false(mi.has_cover);
}

static void
expect_cover_extracted(const char *name)
{
	unsigned char	*data, *jpg;
	size_t		 len, jlen;

	assert_int_equal(media_cover_extract(fx(name), &data, &len), 0);
	jpg = read_all(fx("cover.jpg"), &jlen);
	assert_int_equal(len, jlen);			/* the very bytes embedded */
	assert_memory_equal(data, jpg, len);
	free(jpg);
	free(data);
}

static void
test_cover_is_extracted_from_mp3(void **state)
{
	expect_cover_extracted("t.mp3");
}

static void
test_cover_is_extracted_from_flac(void **state)
{
	expect_cover_extracted("t.flac");
}

static void
test_cover_is_extracted_from_m4a(void **state)
{
	expect_cover_extracted("t.m4a");
}

static void
test_no_cover_in_wav(void **state)
{
	unsigned char	*data = (unsigned char *)"unset";
	size_t		 len = 99;

	assert_int_equal(media_cover_extract(fx("sine.wav"), &data, &len), 1);
	assert_null(data);
	assert_int_equal(len, 0);
}

static void
test_cover_extract_refuses_what_is_not_audio(void **state)
{
	unsigned char	*data;
	size_t		 len;

	assert_int_equal(media_cover_extract(fx("x.mp3"), &data, &len), -1);
	assert_null(data);
	assert_int_equal(media_cover_extract(fx("truncated.mp3"), &data, &len), -1);
	assert_null(data);
}

static void
test_covers_write_makes_six_square_thumbnails(void **state)
{
	static const int	 sides[3] = { 150, 300, 600 };
	unsigned char		*jpg;
	size_t			 len;
	char			 name[16];
	const char		*dir = fx("covers-ok");
	int			 i;

	jpg = read_all(fx("cover.jpg"), &len);		/* 640x480 */
	assert_int_equal(media_covers_write(jpg, len, dir), 0);
	free(jpg);
	assert_int_equal(dir_entries(dir), 6);		/* no temp file left */
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "%d.jpg", sides[i]);
		expect_image(dir, name, sides[i], "\xff\xd8\xff", 3, 0);
		snprintf(name, sizeof(name), "%d.webp", sides[i]);
		expect_image(dir, name, sides[i], "WEBP", 4, 8);
	}
}

static void
test_covers_write_flattens_alpha_for_jpeg(void **state)
{
	unsigned char	*png;
	size_t		 len;
	const char	*dir = fx("covers-alpha");
	char		 path[PATH_MAX];
	VipsImage	*img;
	double		*px;
	int		 n;

	png = read_all(fx("alpha.png"), &len);		/* half-transparent red */
	assert_int_equal(media_covers_write(png, len, dir), 0);
	free(png);
	snprintf(path, sizeof(path), "%s/150.jpg", dir);
	assert_non_null(img = vips_image_new_from_file(path, NULL));
	assert_int_equal(vips_image_get_bands(img), 3);
	assert_int_equal(vips_getpoint(img, &px, &n, 75, 75, NULL), 0);
	assert_int_equal(n, 3);
	assert_in_range((int)px[0], 240, 255);		/* red on white, not on black */
	assert_in_range((int)px[1], 110, 145);
	g_free(px);
	g_object_unref(img);
}

static void
test_covers_write_failure_leaves_the_dir_empty(void **state)
{
	unsigned char	 junk[4096];
	const char	*dir = fx("covers-junk");

	noise(junk, sizeof(junk), 42);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(media_covers_write(junk, sizeof(junk), dir), -1);
	assert_int_equal(dir_entries(dir), 0);
}

static void
test_covers_write_failure_does_not_create_the_dir(void **state)
{
	/* A JPEG cut off before its first scan: the header does not parse. */
	unsigned char	*jpg;
	size_t		 len;
	const char	*dir = fx("covers-never");

	jpg = read_all(fx("cover.jpg"), &len);
	assert_int_equal(media_covers_write(jpg, 200, dir), -1);
	free(jpg);
	assert_int_equal(dir_entries(dir), -1);
}

static void
test_covers_write_refuses_huge_dimensions(void **state)
{
	unsigned char	*png;
	size_t		 len;
	const char	*dir = fx("covers-wide");

	png = read_all(fx("wide.png"), &len);		/* 12000x8, 401 bytes */
	assert_int_equal(media_covers_write(png, len, dir), -1);
	free(png);
	assert_int_equal(dir_entries(dir), -1);
}

static void
test_covers_write_refuses_big_progressive_jpeg(void **state)
{
	VipsImage	*img;
	unsigned char	*jpg;
	size_t		 len, i;

	/* A 16x16 progressive JPEG whose frame header then says 5000x4000:
	 * decoded whole, that would be hundreds of MB. */
	assert_int_equal(vips_init("test"), 0);		/* a no-op if running */
	assert_int_equal(vips_black(&img, 16, 16, "bands", 3, NULL), 0);
	assert_int_equal(vips_jpegsave_buffer(img, (void **)&jpg, &len,
	    "interlace", TRUE, NULL), 0);
	g_object_unref(img);
	for (i = 0; i + 9 < len; i++)
		if (jpg[i] == 0xff && jpg[i + 1] == 0xc2)	/* SOF2 */
			break;
	assert_true(i + 9 < len);
	memcpy(jpg + i + 5, "\x0f\xa0\x13\x88", 4);	/* height 4000, width 5000 */
	assert_int_equal(media_covers_write(jpg, len, fx("covers-progressive")), -1);
	assert_int_equal(dir_entries(fx("covers-progressive")), -1);
	g_free(jpg);
}

static void
test_covers_write_refuses_more_than_40_mb(void **state)
{
	unsigned char	*jpg, *big;
	size_t		 len, n = 40u * 1024 * 1024 + 1;

	jpg = read_all(fx("cover.jpg"), &len);
	assert_non_null(big = calloc(1, n));
	memcpy(big, jpg, len);				/* a valid JPEG, then zeros */
	assert_int_equal(media_covers_write(big, n, fx("covers-big")), -1);
	assert_int_equal(dir_entries(fx("covers-big")), -1);
	free(big);
	free(jpg);
}

static void
test_covers_write_refuses_non_cover_image_types(void **state)
{
	static const char	 svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>";

	assert_int_equal(media_covers_write((const unsigned char *)svg,
	    sizeof(svg) - 1, fx("covers-svg")), -1);
	assert_int_equal(dir_entries(fx("covers-svg")), -1);
}

/* ---- names ------------------------------------------------------------ */

static void
test_segment_transliterates_latin_letters(void **state)
{
	segment_is("Motörhead", "Motorhead");
	segment_is("Björk Guðmundsdóttir", "Bjork_Gudmundsdottir");
	segment_is("Straße", "Strasse");
	segment_is("Sigur Rós", "Sigur_Ros");
	segment_is("Æther œuvre", "AEther_oeuvre");
	segment_is("Ñandú Garçon", "Nandu_Garcon");
	segment_is("København Åse", "Kobenhavn_Ase");
	segment_is("Łódź Dvořák", "Lodz_Dvorak");
}

static void
test_segment_drops_combining_marks(void **state)
{
	segment_is("Beyonce\xcc\x81", "Beyonce");	/* decomposed é */
}

static void
test_segment_neutralises_slashes_and_dot_dot(void **state)
{
	segment_is("AC/DC", "AC_DC");
	segment_is("../../etc/passwd", "etc_passwd");
	segment_is("..", "unknown");
	segment_is("a\\b", "a_b");
}

static void
test_segment_of_nothing_is_unknown(void **state)
{
	segment_is("", "unknown");
	segment_is(NULL, "unknown");
	segment_is("   ", "unknown");
	segment_is("???", "unknown");
}

static void
test_segment_is_at_most_64_bytes(void **state)
{
	char	 in[200], out[72];

	memset(in, 'a', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	media_path_segment(in, out, sizeof(out));
	assert_int_equal(strlen(out), 64);
	/* A two-letter transliteration at the edge is cut, not overflowed. */
	memset(in, 'b', 63);
	strcpy(in + 63, "ßßß");
	media_path_segment(in, out, sizeof(out));
	assert_int_equal(strlen(out), 64);
	assert_int_equal(out[63], 's');
	/* And a small buffer is respected. */
	media_path_segment("abcdef", out, 4);
	assert_string_equal(out, "abc");
}

static void
test_segment_has_no_leading_dot(void **state)
{
	segment_is(".hidden", "hidden");
	segment_is("...x", "x");
	segment_is("-rf", "rf");
	segment_is("a.b", "a.b");
}

static void
test_segment_replaces_control_characters(void **state)
{
	segment_is("a\tb\nc\x01" "d\x7f", "a_b_c_d");
}

static void
test_segment_replaces_emoji_and_other_scripts(void **state)
{
	segment_is("I \xe2\x9d\xa4 NY \xf0\x9f\x8e\xb5", "I_NY");
	segment_is("\xf0\x9f\x8e\xb5\xf0\x9f\x8e\xb5", "unknown");
	segment_is("坂本 龍一", "unknown");
	segment_is("ab\xff" "cd", "ab_cd");		/* ill-formed UTF-8 */
}

static void
test_segment_collapses_underscores(void **state)
{
	segment_is("a  -  b", "a_-_b");
	segment_is("__a___b__", "a_b");
}

static void
test_guess_splits_artist_and_title(void **state)
{
	guess_is("Artist - Title.mp3", "Title", "Artist");
}

static void
test_guess_strips_directory_and_underscores(void **state)
{
	guess_is("/music/in/Some_Artist_-_Some_Title.flac", "Some Title", "Some Artist");
}

static void
test_guess_without_separator_is_all_title(void **state)
{
	guess_is("just a title.ogg", "just a title", "");
	guess_is("Artist-Title.mp3", "Artist-Title", "");
}

static void
test_guess_splits_at_the_first_separator_only(void **state)
{
	guess_is("Artist - Part 1 - Part 2.mp3", "Part 1 - Part 2", "Artist");
}

static void
test_guess_keeps_dots_that_are_not_an_extension(void **state)
{
	guess_is("Mr. Big - To Be With You", "To Be With You", "Mr. Big");
	guess_is("  Spaced  -  Out  .mp3", "Out", "Spaced");
}

static void
test_guess_of_nothing_is_empty(void **state)
{
	guess_is("/music/dir/", "", "");
	guess_is("", "", "");
	guess_is(NULL, "", "");
}

static void
test_guess_cleans_ill_formed_utf8(void **state)
{
	guess_is("caf\xe9 - x.mp3", "x", "caf\xef\xbf\xbd");
}

static void
test_format_names(void **state)
{
	assert_string_equal(media_format_name(MF_MP3), "mp3");
	assert_string_equal(media_format_name(MF_OPUS), "opus");
	assert_string_equal(media_format_name(MF_UNKNOWN), "unknown");
	assert_string_equal(media_format_name((enum media_format)99), "unknown");
}

/* Last: after it, libvips is gone for good (it cannot start twice). */
static void
test_shutdown_twice_is_safe_and_sniffing_comes_back(void **state)
{
	unsigned char	 b[1] = { 0 };

	media_shutdown();
	media_shutdown();
	assert_int_equal(media_sniff(fx("t.flac"), NULL), MF_FLAC);
	assert_int_equal(media_covers_write(b, 1, fx("covers-after")), -1);
}

/* ---- analysis --------------------------------------------------------- */

static void
test_bpm_is_the_median_of_beat_intervals(void **state)
{
	const double	 steady[] = { 0, 0.5, 1.0, 1.5, 2.0, 2.5 };
	/* one missed beat (1 s) and one doubled (0.25 s) do not move it */
	const double	 rough[] = { 0, 0.5, 1.0, 2.0, 2.5, 2.75, 3.0, 3.5, 4.0 };
	const double	 few[] = { 0, 0.5, 1.0, 1.5 };
	const double	 apart[] = { 0, 5, 10, 15, 20, 25 };

	assert_true(fabs(media_bpm_from_beats(steady, 6) - 120) < 1e-9);
	assert_true(fabs(media_bpm_from_beats(rough, 9) - 120) < 1e-9);
	assert_true(media_bpm_from_beats(few, 4) == 0);
	assert_true(media_bpm_from_beats(apart, 6) == 0);	/* no interval in range */
	assert_true(media_bpm_from_beats(NULL, 0) == 0);
}

static void
test_analysis_finds_the_tempo_of_a_click_track(void **state)
{
	struct media_analysis	 a;
	char			 err[128] = "";

	assert_int_equal(media_analyze(fx("clicks128.mp3"), &a, err, sizeof(err)), 0);
	assert_true(a.seconds > 29 && a.seconds < 31.5);
	assert_true(a.has_bpm);
	assert_true(a.bpm > 126.5 && a.bpm < 129.5);
	assert_true(a.bpm_confidence > 0.5);
	assert_true(a.has_loudness);
}

static void
test_analysis_measures_loudness_and_peak(void **state)
{
	struct media_analysis	 a;
	char			 err[128] = "";

	/* EBU Tech 3341: a 997 Hz tone at -20 dBFS on both channels is -20 LUFS */
	assert_int_equal(media_analyze(fx("tone.flac"), &a, err, sizeof(err)), 0);
	assert_true(a.has_loudness);
	assert_true(fabs(a.lufs + 20) < 0.3);
	assert_true(fabs(a.peak_dbfs + 20) < 0.2);
	assert_true(a.lra < 1);
	assert_true(fabs(a.seconds - 10) < 0.1);	/* 48 kHz resampled, still 10 s */
	assert_false(a.has_bpm);			/* a steady tone has no beat */
}

static void
test_analysis_of_silence_has_no_loudness_nor_tempo(void **state)
{
	struct media_analysis	 a;
	char			 err[128] = "";

	assert_int_equal(media_analyze(fx("silence.wav"), &a, err, sizeof(err)), 0);
	assert_false(a.has_loudness);
	assert_false(a.has_bpm);
}

static void
test_analysis_refuses_what_is_not_audio(void **state)
{
	struct media_analysis	 a;
	char			 err[128] = "";

	assert_int_equal(media_analyze(fx("x.mp3"), &a, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(media_analyze(fx("truncated.mp3"), &a, err, sizeof(err)), -1);
	assert_int_equal(media_analyze(fx("nonexistent.mp3"), &a, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* sniffing */
		cmocka_unit_test(test_mp3_with_id3_is_sniffed_as_mp3),
		cmocka_unit_test(test_mp3_without_any_tag_is_sniffed_as_mp3),
		cmocka_unit_test(test_flac_is_sniffed_as_flac),
		cmocka_unit_test(test_wav_is_sniffed_as_wav),
		cmocka_unit_test(test_adts_aac_is_sniffed_as_aac),
		cmocka_unit_test(test_m4a_is_sniffed_as_m4a),
		cmocka_unit_test(test_ogg_vorbis_is_sniffed_as_ogg),
		cmocka_unit_test(test_ogg_opus_is_sniffed_as_opus),
		cmocka_unit_test(test_sniff_ignores_the_name),
		cmocka_unit_test(test_text_named_mp3_is_unknown),
		cmocka_unit_test(test_executable_named_mp3_is_unknown),
		cmocka_unit_test(test_png_is_unknown),
		cmocka_unit_test(test_empty_file_is_unknown),
		cmocka_unit_test(test_missing_file_and_directory_are_unknown),
		cmocka_unit_test(test_audio_in_plain_mp4_container_is_unknown),
		cmocka_unit_test(test_ogg_flac_is_unknown),
		cmocka_unit_test(test_random_bytes_are_refused),
		cmocka_unit_test(test_mp3_header_then_random_bytes_is_refused),
		cmocka_unit_test(test_mp3_truncated_to_1k_is_refused),
		cmocka_unit_test(test_probe_refuses_a_file_as_another_format),
		/* probing */
		cmocka_unit_test(test_mp3_tags_are_read),
		cmocka_unit_test(test_mp3_properties_are_read),
		cmocka_unit_test(test_flac_tags_and_properties_are_read),
		cmocka_unit_test(test_ogg_vorbis_tags_and_properties_are_read),
		cmocka_unit_test(test_opus_tags_and_properties_are_read),
		cmocka_unit_test(test_m4a_tags_and_properties_are_read),
		cmocka_unit_test(test_wav_properties_are_read),
		cmocka_unit_test(test_wav_info_tags_are_read),
		cmocka_unit_test(test_adts_aac_properties_are_read_and_tags_are_empty),
		cmocka_unit_test(test_missing_tags_leave_empty_strings),
		cmocka_unit_test(test_ill_formed_utf8_and_controls_in_tags_are_cleaned),
		cmocka_unit_test(test_long_tags_are_cut_between_characters),
		/* covers */
		cmocka_unit_test(test_probe_sees_covers_in_mp3_flac_m4a_and_none_in_wav),
		cmocka_unit_test(test_cover_is_extracted_from_mp3),
		cmocka_unit_test(test_cover_is_extracted_from_flac),
		cmocka_unit_test(test_cover_is_extracted_from_m4a),
		cmocka_unit_test(test_no_cover_in_wav),
		cmocka_unit_test(test_cover_extract_refuses_what_is_not_audio),
		cmocka_unit_test(test_covers_write_makes_six_square_thumbnails),
		cmocka_unit_test(test_covers_write_flattens_alpha_for_jpeg),
		cmocka_unit_test(test_covers_write_failure_leaves_the_dir_empty),
		cmocka_unit_test(test_covers_write_failure_does_not_create_the_dir),
		cmocka_unit_test(test_covers_write_refuses_huge_dimensions),
		cmocka_unit_test(test_covers_write_refuses_big_progressive_jpeg),
		cmocka_unit_test(test_covers_write_refuses_more_than_40_mb),
		cmocka_unit_test(test_covers_write_refuses_non_cover_image_types),
		/* names */
		cmocka_unit_test(test_segment_transliterates_latin_letters),
		cmocka_unit_test(test_segment_drops_combining_marks),
		cmocka_unit_test(test_segment_neutralises_slashes_and_dot_dot),
		cmocka_unit_test(test_segment_of_nothing_is_unknown),
		cmocka_unit_test(test_segment_is_at_most_64_bytes),
		cmocka_unit_test(test_segment_has_no_leading_dot),
		cmocka_unit_test(test_segment_replaces_control_characters),
		cmocka_unit_test(test_segment_replaces_emoji_and_other_scripts),
		cmocka_unit_test(test_segment_collapses_underscores),
		cmocka_unit_test(test_guess_splits_artist_and_title),
		cmocka_unit_test(test_guess_strips_directory_and_underscores),
		cmocka_unit_test(test_guess_without_separator_is_all_title),
		cmocka_unit_test(test_guess_splits_at_the_first_separator_only),
		cmocka_unit_test(test_guess_keeps_dots_that_are_not_an_extension),
		cmocka_unit_test(test_guess_of_nothing_is_empty),
		cmocka_unit_test(test_guess_cleans_ill_formed_utf8),
		cmocka_unit_test(test_format_names),
		/* analysis */
		cmocka_unit_test(test_bpm_is_the_median_of_beat_intervals),
		cmocka_unit_test(test_analysis_finds_the_tempo_of_a_click_track),
		cmocka_unit_test(test_analysis_measures_loudness_and_peak),
		cmocka_unit_test(test_analysis_of_silence_has_no_loudness_nor_tempo),
		cmocka_unit_test(test_analysis_refuses_what_is_not_audio),
		cmocka_unit_test(test_shutdown_twice_is_safe_and_sniffing_comes_back),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
