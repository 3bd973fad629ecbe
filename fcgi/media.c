/*
 * fcgi/media.c: what an audio file is. The format comes from the bytes
 * (libmagic, confirmed by a few checks of our own), never from a name or
 * a client header; tags and audio properties from TagLib's C API; cover
 * art, exact durations and what TagLib 1.13's C API cannot open (ADTS,
 * WAV, Opus) from libavformat; thumbnails from libvips.
 *
 * A worker is one thread: each library is set up on first use, once per
 * process, and media_shutdown() releases them at exit. Every input is
 * hostile until proven otherwise: files are only ever read, libavformat
 * is held to the demuxer the sniff chose and to the file protocol, and
 * libvips to the image loaders a cover can legitimately use.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <magic.h>
#include <taglib/tag_c.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <vips/vips.h>

#include "djamms.h"

#define COVER_MAX_BYTES	(40u * 1024 * 1024)
#define COVER_MAX_SIDE	10000
#define COVER_MAX_WHOLE_PIXELS	(4096 * 4096)	/* when decoded in one piece */
#define HEAD_BYTES	512	/* an Ogg page header with 255 segments fits */

static const struct {
	const char	*name;		/* also the file extension */
	const char	*mime;
	const char	*demuxer;	/* libavformat's name for it */
} formats[] = {
	[MF_UNKNOWN]	= { "unknown",	NULL,		NULL },
	[MF_MP3]	= { "mp3",	"audio/mpeg",	"mp3" },
	[MF_FLAC]	= { "flac",	"audio/flac",	"flac" },
	[MF_WAV]	= { "wav",	"audio/wav",	"wav" },
	[MF_AAC]	= { "aac",	"audio/aac",	"aac" },
	[MF_M4A]	= { "m4a",	"audio/mp4",	"mov" },
	[MF_OGG]	= { "ogg",	"audio/ogg",	"ogg" },
	[MF_OPUS]	= { "opus",	"audio/opus",	"ogg" },
};

/* What libmagic may answer, and the format the bytes must then confirm. */
static const struct {
	const char		*mime;
	enum media_format	 fmt;
} magic_mimes[] = {
	{ "audio/mpeg",			MF_MP3 },
	{ "audio/x-mpeg",		MF_MP3 },
	{ "audio/mp3",			MF_MP3 },
	{ "audio/x-mp3",		MF_MP3 },
	{ "audio/x-mpeg-3",		MF_MP3 },
	{ "audio/flac",			MF_FLAC },
	{ "audio/x-flac",		MF_FLAC },
	{ "audio/x-wav",		MF_WAV },
	{ "audio/wav",			MF_WAV },
	{ "audio/wave",			MF_WAV },
	{ "audio/vnd.wave",		MF_WAV },
	{ "audio/x-hx-aac-adts",	MF_AAC },
	{ "audio/aac",			MF_AAC },
	{ "audio/x-aac",		MF_AAC },
	{ "audio/x-m4a",		MF_M4A },
	{ "audio/mp4",			MF_M4A },
	{ "video/mp4",			MF_M4A },
	{ "audio/ogg",			MF_OGG },
	{ "application/ogg",		MF_OGG },
};

static magic_t	 magic_cookie;
static char	 unknown_mime[128];	/* media_sniff's answer for MF_UNKNOWN */

enum { VIPS_NEVER, VIPS_UP, VIPS_GONE };	/* libvips cannot start twice */
static int	 vips_state = VIPS_NEVER;

const char *
media_format_name(enum media_format fmt)
{
	if ((unsigned)fmt >= sizeof(formats) / sizeof(formats[0]))
		return "unknown";
	return formats[fmt].name;
}

const char *
media_demuxer(enum media_format fmt)
{
	if (fmt <= MF_UNKNOWN || (unsigned)fmt >= sizeof(formats) / sizeof(formats[0]))
		return NULL;
	return formats[fmt].demuxer;
}

void
media_shutdown(void)
{
	if (magic_cookie != NULL) {
		magic_close(magic_cookie);
		magic_cookie = NULL;
	}
	if (vips_state == VIPS_UP) {
		vips_shutdown();
		vips_state = VIPS_GONE;
	}
}

/* ---- UTF-8 ------------------------------------------------------------ */

/*
 * Decode the sequence at s (NUL-terminated). OUT: *cp. Returns its length
 * in bytes, 0 if it is not well-formed UTF-8 (overlong forms, surrogates
 * and code points past U+10FFFF included). Never reads past a NUL.
 */
static size_t
utf8_decode(const unsigned char *s, uint32_t *cp)
{
	uint32_t	 c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		if ((s[1] & 0xc0) != 0x80)
			return 0;
		*cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		return 2;
	}
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		c = (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 |
		    (s[2] & 0x3f);
		if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		*cp = c;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		c = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
		    (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
		if (c < 0x10000 || c > 0x10ffff)
			return 0;
		*cp = c;
		return 4;
	}
	return 0;
}

/*
 * Copy s into out (cap bytes) as clean text: ill-formed bytes become
 * U+FFFD, control characters (C0, DEL, C1) a space, leading and trailing
 * spaces go, and a cut falls between characters. s may be NULL.
 */
static void
utf8_clean(char *out, size_t cap, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = 0, k, n;
	uint32_t		 cp;
	char			 ch[4];

	if (cap == 0)
		return;
	while (p != NULL && *p != '\0') {
		if ((k = utf8_decode(p, &cp)) == 0) {
			memcpy(ch, "\xef\xbf\xbd", 3);
			n = 3;
			k = 1;
		} else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			ch[0] = ' ';
			n = 1;
		} else {
			memcpy(ch, p, k);
			n = k;
		}
		p += k;
		if (len == 0 && n == 1 && ch[0] == ' ')
			continue;
		if (len + n >= cap)
			break;
		memcpy(out + len, ch, n);
		len += n;
	}
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
}

/* ---- sniffing --------------------------------------------------------- */

static int
magic_ready(void)
{
	if (magic_cookie != NULL)
		return 0;
	if ((magic_cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR)) == NULL)
		return -1;
	if (magic_load(magic_cookie, NULL) != 0) {
		magic_close(magic_cookie);
		magic_cookie = NULL;
		return -1;
	}
	return 0;
}

/*
 * The length of the MPEG audio frame (layer I-III, MPEG 1/2/2.5) whose
 * header is h, or 0 if h is not a usable frame header (bad sync, reserved
 * version or layer, free-format or bad bitrate, reserved sample rate).
 */
static size_t
mpeg_frame_len(const unsigned char h[4])
{
	static const unsigned short	 kbps[2][3][16] = {
		{	/* MPEG 1: layer I, II, III */
			{ 0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352,
			  384, 416, 448, 0 },
			{ 0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
			  320, 384, 0 },
			{ 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
			  256, 320, 0 },
		}, {	/* MPEG 2 and 2.5 */
			{ 0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192,
			  224, 256, 0 },
			{ 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144,
			  160, 0 },
			{ 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144,
			  160, 0 },
		},
	};
	static const unsigned	 rates[3] = { 44100, 48000, 32000 };
	unsigned		 version, layer, bitrate, rate, pad, v1;

	if (h[0] != 0xff || (h[1] & 0xe0) != 0xe0)
		return 0;
	version = (h[1] >> 3) & 3;		/* 0: 2.5, 1: reserved, 2: 2, 3: 1 */
	layer = (h[1] >> 1) & 3;		/* 0: reserved, 1: III, 2: II, 3: I */
	if (version == 1 || layer == 0 || (h[2] >> 4) == 15 || ((h[2] >> 2) & 3) == 3)
		return 0;
	v1 = version == 3;
	bitrate = kbps[!v1][3 - layer][h[2] >> 4] * 1000u;
	rate = rates[(h[2] >> 2) & 3] >> (version == 3 ? 0 : version == 2 ? 1 : 2);
	pad = (h[2] >> 1) & 1;
	if (bitrate == 0)
		return 0;		/* free format: too rare to trust */
	if (layer == 3)
		return (12 * bitrate / rate + pad) * 4;
	if (layer == 1 && !v1)
		return 72 * bitrate / rate + pad;
	return 144 * bitrate / rate + pad;
}

/* Two MPEG audio frames of one stream, back to back, from off. */
static int
mpeg_frames_at(int fd, off_t off)
{
	unsigned char	 a[4], b[4];
	size_t		 len;

	if (pread(fd, a, 4, off) != 4 || (len = mpeg_frame_len(a)) == 0)
		return 0;
	if (pread(fd, b, 4, off + (off_t)len) != 4 || mpeg_frame_len(b) == 0)
		return 0;
	/* Same version and layer, same sample rate. */
	return (a[1] & 0xfe) == (b[1] & 0xfe) && (a[2] & 0x0c) == (b[2] & 0x0c);
}

/* Where the audio starts after an ID3v2 tag at the start of head, or 0. */
static off_t
id3v2_end(const unsigned char *head, size_t n)
{
	if (n < 10 || memcmp(head, "ID3", 3) != 0 || head[3] == 0xff ||
	    head[4] == 0xff || ((head[6] | head[7] | head[8] | head[9]) & 0x80))
		return 0;
	return 10 + ((off_t)head[6] << 21 | (off_t)head[7] << 14 |
	    (off_t)head[8] << 7 | head[9]) + ((head[5] & 0x10) ? 10 : 0);
}

/*
 * libmagic said MPEG audio, which it also says for anything that starts
 * with an ID3v2 tag: look past the tag for what really follows.
 */
static enum media_format
sniff_after_id3(int fd, const unsigned char *head, size_t n)
{
	unsigned char	 b[4];
	off_t		 off;

	if ((off = id3v2_end(head, n)) == 0 || pread(fd, b, 4, off) != 4)
		return MF_MP3;
	if (memcmp(b, "fLaC", 4) == 0)
		return MF_FLAC;
	if (b[0] == 0xff && (b[1] & 0xf6) == 0xf0)
		return MF_AAC;		/* an ADTS sync word: layer bits 00 */
	return MF_MP3;
}

/* The codec in the first Ogg page: Vorbis, Opus, or nothing we take. */
static enum media_format
sniff_ogg(const unsigned char *head, size_t n)
{
	size_t	 data;

	if (n < 27 || memcmp(head, "OggS", 4) != 0)
		return MF_UNKNOWN;
	data = 27 + (size_t)head[26];
	if (n >= data + 8 && memcmp(head + data, "OpusHead", 8) == 0)
		return MF_OPUS;
	if (n >= data + 7 && memcmp(head + data, "\x01vorbis", 7) == 0)
		return MF_OGG;
	return MF_UNKNOWN;	/* Ogg FLAC, Speex, Theora... */
}

static enum media_format
sniff_bytes(int fd, const char *mime, const unsigned char *head, size_t n)
{
	enum media_format	 fmt = MF_UNKNOWN;
	size_t			 i;

	for (i = 0; i < sizeof(magic_mimes) / sizeof(magic_mimes[0]); i++)
		if (strcmp(mime, magic_mimes[i].mime) == 0) {
			fmt = magic_mimes[i].fmt;
			break;
		}
	switch (fmt) {
	case MF_MP3:
		if (n >= 3 && memcmp(head, "ID3", 3) == 0)
			return sniff_after_id3(fd, head, n);
		return MF_MP3;
	case MF_M4A:
		/* Audio-only brands; a video/mp4 with sound is not a track. */
		if (n >= 12 && memcmp(head + 4, "ftyp", 4) == 0 &&
		    (memcmp(head + 8, "M4A ", 4) == 0 || memcmp(head + 8, "M4B ", 4) == 0))
			return MF_M4A;
		return MF_UNKNOWN;
	case MF_OGG:
		return sniff_ogg(head, n);
	case MF_UNKNOWN:
		/* libmagic can miss MPEG audio with no tag (its frame rules are
		 * narrow); two valid frames back to back are convincing. */
		if (strcmp(mime, "application/octet-stream") != 0)
			return MF_UNKNOWN;
		if (mpeg_frames_at(fd, id3v2_end(head, n)))
			return MF_MP3;
		return MF_UNKNOWN;
	default:
		return fmt;
	}
}

/*
 * OUT: *mime is the format's MIME type, or for MF_UNKNOWN libmagic's own
 * answer (valid until the next call; NULL when the file could not be read).
 */
enum media_format
media_sniff(const char *path, const char **mime)
{
	unsigned char		 head[HEAD_BYTES];
	struct stat		 st;
	const char		*m;
	enum media_format	 fmt = MF_UNKNOWN;
	ssize_t			 n;
	int			 fd;

	if (mime != NULL)
		*mime = NULL;
	unknown_mime[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return MF_UNKNOWN;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (n = pread(fd, head, sizeof(head), 0)) < 0 || magic_ready() != 0 ||
	    (m = magic_descriptor(magic_cookie, fd)) == NULL) {
		close(fd);
		return MF_UNKNOWN;
	}
	if (n > 0)
		fmt = sniff_bytes(fd, m, head, (size_t)n);
	close(fd);
	if (mime != NULL) {
		if (fmt != MF_UNKNOWN)
			*mime = formats[fmt].mime;
		else {
			snprintf(unknown_mime, sizeof(unknown_mime), "%s", m);
			*mime = unknown_mime;
		}
	}
	return fmt;
}

/* ---- libavformat ------------------------------------------------------ */

/*
 * Open path with the demuxer fmt calls for, through the file protocol
 * only (a path is never taken for a URL). OUT: *ctx. 0 or -1.
 */
static int
av_open(const char *path, enum media_format fmt, AVFormatContext **ctx)
{
	static int		 quiet;
	const AVInputFormat	*ifmt;
	AVDictionary		*opts = NULL;
	char			 url[PATH_MAX + 8];
	int			 rc;

	*ctx = NULL;
	if (!quiet) {
		av_log_set_level(AV_LOG_QUIET);
		quiet = 1;
	}
	if (fmt <= MF_UNKNOWN || fmt > MF_OPUS ||
	    (ifmt = av_find_input_format(formats[fmt].demuxer)) == NULL)
		return -1;
	rc = snprintf(url, sizeof(url), "file:%s", path);
	if (rc < 0 || (size_t)rc >= sizeof(url))
		return -1;
	av_dict_set(&opts, "protocol_whitelist", "file", 0);
	rc = avformat_open_input(ctx, url, ifmt, &opts);	/* frees *ctx on failure */
	av_dict_free(&opts);
	return rc < 0 ? -1 : 0;
}

/* The front cover if one is marked so, else the first embedded picture. */
static const AVStream *
av_cover_stream(const AVFormatContext *ctx)
{
	const AVStream			*st, *first = NULL;
	const AVDictionaryEntry		*e;
	unsigned			 i;

	for (i = 0; i < ctx->nb_streams; i++) {
		st = ctx->streams[i];
		if (!(st->disposition & AV_DISPOSITION_ATTACHED_PIC) ||
		    st->attached_pic.data == NULL || st->attached_pic.size <= 0)
			continue;
		e = av_dict_get(st->metadata, "comment", NULL, 0);
		if (e != NULL && strcmp(e->value, "Cover (front)") == 0)
			return st;
		if (first == NULL)
			first = st;
	}
	return first;
}

static const AVStream *
av_audio_stream(const AVFormatContext *ctx)
{
	unsigned	 i;

	for (i = 0; i < ctx->nb_streams; i++)
		if (ctx->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO &&
		    !(ctx->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC))
			return ctx->streams[i];
	return NULL;
}

/* A tag from the container, else from the audio stream (Ogg keeps them there). */
static const char *
av_tag(const AVFormatContext *ctx, const AVStream *st, const char *key)
{
	const AVDictionaryEntry	*e;

	if ((e = av_dict_get(ctx->metadata, key, NULL, 0)) == NULL && st != NULL)
		e = av_dict_get(st->metadata, key, NULL, 0);
	return e != NULL ? e->value : NULL;
}

/* The leading number of "2021-05-01" or "7/12"; 0 unless in 1..max. */
static int
leading_number(const char *s, int max)
{
	long	 v = 0;
	int	 digits = 0;

	if (s == NULL)
		return 0;
	while (*s == ' ')
		s++;
	for (; *s >= '0' && *s <= '9' && digits < 6; s++, digits++)
		v = v * 10 + (*s - '0');
	return digits > 0 && v >= 1 && v <= max ? (int)v : 0;
}

/*
 * What libavformat knows. Always: has_cover, and the duration when the
 * container states it. With full (the formats TagLib's C API cannot
 * open): tags and every audio property too, reading a little of the
 * stream when the header does not say. 0, or -1 if it is not audio.
 */
static int
av_probe(const char *path, enum media_format fmt, struct media_info *out,
    int full, int *av_ms)
{
	AVFormatContext		*ctx;
	const AVStream		*audio;
	int64_t			 ms = 0;
	int			 rc = -1;

	*av_ms = 0;
	if (av_open(path, fmt, &ctx) != 0)
		return -1;
	out->has_cover = av_cover_stream(ctx) != NULL;
	if (full && avformat_find_stream_info(ctx, NULL) < 0)
		goto out;
	if ((audio = av_audio_stream(ctx)) == NULL)
		goto out;
	if (audio->duration != AV_NOPTS_VALUE && audio->duration > 0)
		ms = av_rescale_q(audio->duration, audio->time_base, (AVRational){ 1, 1000 });
	else if (full && ctx->duration != AV_NOPTS_VALUE && ctx->duration > 0)
		ms = ctx->duration / (AV_TIME_BASE / 1000);
	if (ms > 0 && ms < INT_MAX)
		*av_ms = (int)ms;
	if (full) {
		int64_t	 bps = ctx->bit_rate > 0 ? ctx->bit_rate : audio->codecpar->bit_rate;

		utf8_clean(out->title, sizeof(out->title), av_tag(ctx, audio, "title"));
		utf8_clean(out->artist, sizeof(out->artist), av_tag(ctx, audio, "artist"));
		utf8_clean(out->album, sizeof(out->album), av_tag(ctx, audio, "album"));
		utf8_clean(out->genre, sizeof(out->genre), av_tag(ctx, audio, "genre"));
		out->year = leading_number(av_tag(ctx, audio, "date"), 9999);
		if (out->year == 0)
			out->year = leading_number(av_tag(ctx, audio, "year"), 9999);
		out->track_no = leading_number(av_tag(ctx, audio, "track"), 9999);
		out->duration_ms = *av_ms;
		out->bitrate_kbps = bps > 0 && bps < INT_MAX ? (int)((bps + 500) / 1000) : 0;
		out->sample_rate = audio->codecpar->sample_rate;
		out->channels = audio->codecpar->ch_layout.nb_channels;
		if (out->sample_rate <= 0 || out->channels <= 0)
			goto out;
	}
	rc = 0;
out:
	avformat_close_input(&ctx);
	return rc;
}

int
media_open_audio(const char *path, AVFormatContext **ctx)
{
	enum media_format	 fmt;

	*ctx = NULL;
	if ((fmt = media_sniff(path, NULL)) == MF_UNKNOWN)
		return -1;
	return av_open(path, fmt, ctx);
}

int
media_cover_extract(const char *path, unsigned char **data, size_t *len)
{
	AVFormatContext		*ctx;
	const AVStream		*st;
	enum media_format	 fmt;
	int			 rc;

	*data = NULL;
	*len = 0;
	if ((fmt = media_sniff(path, NULL)) == MF_UNKNOWN ||
	    av_open(path, fmt, &ctx) != 0)
		return -1;
	if ((st = av_cover_stream(ctx)) == NULL)
		rc = 1;
	else {
		if ((*data = malloc((size_t)st->attached_pic.size)) == NULL)
			abort();
		memcpy(*data, st->attached_pic.data, (size_t)st->attached_pic.size);
		*len = (size_t)st->attached_pic.size;
		rc = 0;
	}
	avformat_close_input(&ctx);
	return rc;
}

/* ---- TagLib ----------------------------------------------------------- */

/* TagLib 1.13's C API names no WAV, Opus or ADTS reader: those go to libav. */
static int
taglib_type(enum media_format fmt, TagLib_File_Type *type)
{
	switch (fmt) {
	case MF_MP3:	*type = TagLib_File_MPEG; return 0;
	case MF_FLAC:	*type = TagLib_File_FLAC; return 0;
	case MF_M4A:	*type = TagLib_File_MP4; return 0;
	case MF_OGG:	*type = TagLib_File_OggVorbis; return 0;
	default:	return -1;
	}
}

/* Copy a string TagLib handed over, and give it back. */
static void
taglib_take(char *out, size_t cap, char *s)
{
	utf8_clean(out, cap, s);
	if (s != NULL)
		taglib_free(s);
}

static int
taglib_probe(const char *path, TagLib_File_Type type, struct media_info *out)
{
	TagLib_File			*f;
	TagLib_Tag			*tag;
	const TagLib_AudioProperties	*ap;
	unsigned			 year, track;
	int				 rc = -1, secs;

	taglib_set_strings_unicode(1);
	taglib_set_string_management_enabled(0);
	if ((f = taglib_file_new_type(path, type)) == NULL)
		return -1;
	if (!taglib_file_is_valid(f))
		goto out;
	if ((tag = taglib_file_tag(f)) != NULL) {
		taglib_take(out->title, sizeof(out->title), taglib_tag_title(tag));
		taglib_take(out->artist, sizeof(out->artist), taglib_tag_artist(tag));
		taglib_take(out->album, sizeof(out->album), taglib_tag_album(tag));
		taglib_take(out->genre, sizeof(out->genre), taglib_tag_genre(tag));
		year = taglib_tag_year(tag);
		track = taglib_tag_track(tag);
		out->year = year <= 9999 ? (int)year : 0;
		out->track_no = track <= 9999 ? (int)track : 0;
	}
	if ((ap = taglib_file_audioproperties(f)) == NULL)
		goto out;
	secs = taglib_audioproperties_length(ap);
	out->duration_ms = secs > 0 && secs < INT_MAX / 1000 ? secs * 1000 : 0;
	out->bitrate_kbps = taglib_audioproperties_bitrate(ap);
	out->sample_rate = taglib_audioproperties_samplerate(ap);
	out->channels = taglib_audioproperties_channels(ap);
	if (out->sample_rate > 0 && out->channels > 0)
		rc = 0;
out:
	taglib_file_free(f);
	return rc;
}

int
media_probe(const char *path, enum media_format fmt, struct media_info *out)
{
	TagLib_File_Type	 type;
	struct stat		 st;
	int			 av_ms;

	memset(out, 0, sizeof(*out));
	/* TagLib would block on a FIFO: only a regular file is read. */
	if (fmt <= MF_UNKNOWN || fmt > MF_OPUS || stat(path, &st) != 0 ||
	    !S_ISREG(st.st_mode))
		return -1;
	if (taglib_type(fmt, &type) == 0) {
		if (taglib_probe(path, type, out) != 0)
			goto fail;
		/*
		 * TagLib's C API counts whole seconds. libav's figure, from
		 * the container, is exact: take it when the two agree, so a
		 * hostile header cannot make up a length TagLib did not see.
		 */
		if (av_probe(path, fmt, out, 0, &av_ms) == 0 && av_ms > 0 &&
		    av_ms >= out->duration_ms - 1000 && av_ms <= out->duration_ms + 1000)
			out->duration_ms = av_ms;
	} else if (av_probe(path, fmt, out, 1, &av_ms) != 0)
		goto fail;
	if (out->duration_ms <= 0)
		goto fail;
	out->format = fmt;
	out->mime = formats[fmt].mime;
	out->ext = formats[fmt].name;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* ---- covers ----------------------------------------------------------- */

/* libvips warnings (a truncated JPEG...) as log lines, not bare stderr. */
static void
vips_warning(const char *domain, GLogLevelFlags level, const char *msg, void *arg)
{
	char	 esc[512];

	json_escape_into(esc, 0, sizeof(esc), msg);
	log_msg(LOG_DEBUG, "libvips warning", "\"detail\":\"%s\"", esc);
}

/* The only image loaders libvips may run in this process. */
static const char *const cover_loaders[] = {
	"VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadWebp",
	"VipsForeignLoadNsgif",
};

static int
vips_ready(void)
{
	size_t	 i;

	if (vips_state == VIPS_UP)
		return 0;
	if (vips_state == VIPS_GONE)
		return -1;
	if (vips_init("djamms") != 0) {
		vips_error_clear();
		vips_state = VIPS_GONE;
		return -1;
	}
	vips_concurrency_set(1);		/* workers are single-threaded */
	vips_cache_set_max(0);			/* memory matters more than reuse */
	vips_block_untrusted_set(TRUE);		/* no ImageMagick, matio... */
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (i = 0; i < sizeof(cover_loaders) / sizeof(cover_loaders[0]); i++)
		vips_operation_block_set(cover_loaders[i], FALSE);
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
	    vips_warning, NULL);
	vips_state = VIPS_UP;
	return 0;
}

/*
 * JPEG, PNG, WebP or GIF by their signatures, and libvips agrees. The
 * signature comes first: asked about bytes no loader claims, libvips
 * goes down its whole list, ImageMagick's sniffers included (which then
 * dlopen every coder it has).
 */
static const char *
cover_loader(const unsigned char *d, size_t n)
{
	const char	*name;
	size_t		 i;

	if (!((n >= 3 && memcmp(d, "\xff\xd8\xff", 3) == 0) ||
	    (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) ||
	    (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) ||
	    (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))))
		return NULL;
	if ((name = vips_foreign_find_load_buffer(d, n)) == NULL)
		return NULL;
	for (i = 0; i < sizeof(cover_loaders) / sizeof(cover_loaders[0]); i++)
		if (strncmp(name, cover_loaders[i], strlen(cover_loaders[i])) == 0 &&
		    strcmp(name + strlen(cover_loaders[i]), "Buffer") == 0)
			return name;
	return NULL;
}

struct cover_file {
	char	 name[16];		/* "300.webp" */
	void	*buf;			/* g_malloc'd by libvips */
	size_t	 len;
	char	 tmp[PATH_MAX];		/* "" once renamed or removed */
	int	 placed;		/* renamed into place by this call */
};

/* Both encodings of one square thumbnail. */
static int
cover_encode(VipsImage *img, struct cover_file *jpg, struct cover_file *webp)
{
	VipsImage	*flat = NULL;
	double		 white[3] = { 255, 255, 255 };
	VipsArrayDouble	*bg = NULL;
	int		 rc = -1;

	if (vips_webpsave_buffer(img, &webp->buf, &webp->len, "Q", 80, "strip", TRUE,
	    NULL) != 0)
		goto out;
	/* JPEG has no alpha: flatten onto white rather than let it go black. */
	if (vips_image_hasalpha(img)) {
		bg = vips_array_double_new(white, 3);
		if (vips_flatten(img, &flat, "background", bg, NULL) != 0)
			goto out;
	}
	if (vips_jpegsave_buffer(flat != NULL ? flat : img, &jpg->buf, &jpg->len,
	    "Q", 85, "strip", TRUE, NULL) != 0)
		goto out;
	rc = 0;
out:
	if (bg != NULL)
		vips_area_unref(VIPS_AREA(bg));
	if (flat != NULL)
		g_object_unref(flat);
	return rc;
}

/*
 * The picture is decoded once, to the largest size (with shrink-on-load
 * where the format has it); the smaller sizes come from that, in memory.
 * files[] is 150 jpg/webp, 300 jpg/webp, 600 jpg/webp.
 */
static int
cover_render(const unsigned char *data, size_t len, struct cover_file files[6])
{
	static const int	 sizes[3] = { 150, 300, 600 };
	VipsImage		*t = NULL, *big = NULL, *small = NULL;
	int			 i, rc = -1;

	for (i = 0; i < 3; i++) {
		snprintf(files[2 * i].name, sizeof(files[0].name), "%d.jpg", sizes[i]);
		snprintf(files[2 * i + 1].name, sizeof(files[0].name), "%d.webp", sizes[i]);
	}
	if (vips_thumbnail_buffer((void *)data, len, &t, sizes[2], "height", sizes[2],
	    "crop", VIPS_INTERESTING_CENTRE, NULL) != 0)
		goto out;
	if ((big = vips_image_copy_memory(t)) == NULL)
		goto out;
	g_object_unref(t);
	t = NULL;
	if (cover_encode(big, &files[4], &files[5]) != 0)
		goto out;
	for (i = 0; i < 2; i++) {
		if (vips_thumbnail_image(big, &t, sizes[i], "height", sizes[i],
		    "crop", VIPS_INTERESTING_CENTRE, NULL) != 0 ||
		    (small = vips_image_copy_memory(t)) == NULL ||
		    cover_encode(small, &files[2 * i], &files[2 * i + 1]) != 0)
			goto out;
		g_object_unref(t);
		g_object_unref(small);
		t = small = NULL;
	}
	rc = 0;
out:
	if (small != NULL)
		g_object_unref(small);
	if (big != NULL)
		g_object_unref(big);
	if (t != NULL)
		g_object_unref(t);
	return rc;
}

/* Write buf to a new temp file next to its final name, durably. OUT: f->tmp. */
static int
cover_write_tmp(const char *dir, struct cover_file *f)
{
	const char	*p = f->buf;
	size_t		 left = f->len;
	ssize_t		 n;
	int		 fd, rc;
	char		 name[sizeof(f->name)];

	/* Not a dot-file: whoever removes the directory sees leftovers too. */
	memcpy(name, f->name, sizeof(name));	/* (a copy: GCC fears an overlap) */
	rc = snprintf(f->tmp, sizeof(f->tmp), "%s/%s.tmp-XXXXXX", dir, name);
	if (rc < 0 || (size_t)rc >= sizeof(f->tmp)) {
		f->tmp[0] = '\0';
		return -1;
	}
	if ((fd = mkostemp(f->tmp, O_CLOEXEC)) < 0) {
		f->tmp[0] = '\0';
		return -1;
	}
	while (left > 0) {
		if ((n = write(fd, p, left)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		p += n;
		left -= (size_t)n;
	}
	rc = left == 0 && fchmod(fd, 0644) == 0 && fsync(fd) == 0 ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* OUT: final, dir/name. */
static int
cover_final(const char *dir, const struct cover_file *f, char final[PATH_MAX])
{
	int	 n;

	n = snprintf(final, PATH_MAX, "%s/%s", dir, f->name);
	return n < 0 || n >= PATH_MAX ? -1 : 0;
}

static int
fsync_dir(const char *dir)
{
	int	 fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * Every encoding is made in memory before the first byte reaches dir, so
 * a bad picture leaves nothing; then temp files, fsync, and the renames.
 */
int
media_covers_write(const unsigned char *data, size_t len, const char *dir)
{
	struct cover_file	 files[6];
	VipsImage		*head;
	struct stat		 st;
	const char		*loader;
	int			 made_dir = 0, rc = -1, i, w, h, interlaced = 0;

	memset(files, 0, sizeof(files));
	if (data == NULL || len == 0 || len > COVER_MAX_BYTES || vips_ready() != 0)
		return -1;

	/* Decompression bombs: the header's dimensions, before any pixel. */
	if ((loader = cover_loader(data, len)) == NULL) {
		vips_error_clear();
		return -1;
	}
	if ((head = vips_image_new_from_buffer(data, len, "", "access",
	    VIPS_ACCESS_SEQUENTIAL, NULL)) == NULL) {
		vips_error_clear();
		return -1;
	}
	w = vips_image_get_width(head);
	h = vips_image_get_height(head);
	if (vips_image_get_typeof(head, "interlaced") != 0 &&
	    vips_image_get_int(head, "interlaced", &interlaced) != 0)
		interlaced = 1;
	g_object_unref(head);
	if (w <= 0 || h <= 0 || w > COVER_MAX_SIDE || h > COVER_MAX_SIDE)
		return -1;
	/*
	 * Progressive JPEG, interlaced PNG and GIF are decoded whole, not a
	 * strip at a time: 10000x10000 of those is 350-650 MB in a worker.
	 */
	if ((interlaced || strstr(loader, "Nsgif") != NULL) &&
	    (long long)w * h > COVER_MAX_WHOLE_PIXELS)
		return -1;

	if (cover_render(data, len, files) != 0)
		goto out;

	if (mkdir(dir, 0755) == 0)
		made_dir = 1;
	else if (errno != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		goto out;
	for (i = 0; i < 6; i++)
		if (cover_write_tmp(dir, &files[i]) != 0)
			goto out;
	for (i = 0; i < 6; i++) {
		char	 final[PATH_MAX];

		if (cover_final(dir, &files[i], final) != 0 ||
		    rename(files[i].tmp, final) != 0)
			goto out;
		files[i].tmp[0] = '\0';
		files[i].placed = 1;
	}
	if (fsync_dir(dir) != 0)
		goto out;
	rc = 0;
out:
	for (i = 0; i < 6; i++) {
		if (files[i].tmp[0] != '\0')
			unlink(files[i].tmp);
		if (rc != 0 && files[i].placed) {
			char	 final[PATH_MAX];

			if (cover_final(dir, &files[i], final) == 0)
				unlink(final);
		}
		g_free(files[i].buf);
	}
	if (rc != 0) {
		vips_error_clear();
		if (made_dir)
			rmdir(dir);
	}
	return rc;
}

/* ---- names ------------------------------------------------------------ */

/* ASCII for U+00C0..U+017F (Latin-1 Supplement letters, Latin Extended-A). */
static const char *const translit[0x180 - 0xc0] = {
	/* U+00C0 */ "A", "A", "A", "A", "A", "A", "AE", "C",
	/* U+00C8 */ "E", "E", "E", "E", "I", "I", "I", "I",
	/* U+00D0 */ "D", "N", "O", "O", "O", "O", "O", NULL,
	/* U+00D8 */ "O", "U", "U", "U", "U", "Y", "TH", "ss",
	/* U+00E0 */ "a", "a", "a", "a", "a", "a", "ae", "c",
	/* U+00E8 */ "e", "e", "e", "e", "i", "i", "i", "i",
	/* U+00F0 */ "d", "n", "o", "o", "o", "o", "o", NULL,
	/* U+00F8 */ "o", "u", "u", "u", "u", "y", "th", "y",
	/* U+0100 */ "A", "a", "A", "a", "A", "a", "C", "c",
	/* U+0108 */ "C", "c", "C", "c", "C", "c", "D", "d",
	/* U+0110 */ "D", "d", "E", "e", "E", "e", "E", "e",
	/* U+0118 */ "E", "e", "E", "e", "G", "g", "G", "g",
	/* U+0120 */ "G", "g", "G", "g", "H", "h", "H", "h",
	/* U+0128 */ "I", "i", "I", "i", "I", "i", "I", "i",
	/* U+0130 */ "I", "i", "IJ", "ij", "J", "j", "K", "k",
	/* U+0138 */ "k", "L", "l", "L", "l", "L", "l", "L",
	/* U+0140 */ "l", "L", "l", "N", "n", "N", "n", "N",
	/* U+0148 */ "n", "n", "N", "n", "O", "o", "O", "o",
	/* U+0150 */ "O", "o", "OE", "oe", "R", "r", "R", "r",
	/* U+0158 */ "R", "r", "S", "s", "S", "s", "S", "s",
	/* U+0160 */ "S", "s", "T", "t", "T", "t", "T", "t",
	/* U+0168 */ "U", "u", "U", "u", "U", "u", "U", "u",
	/* U+0170 */ "U", "u", "U", "u", "W", "w", "Y", "y",
	/* U+0178 */ "Y", "Z", "z", "Z", "z", "Z", "z", "s",
};

#define SEGMENT_MAX	64

/*
 * Besides the contract: separators never lead or trail ("_", and a
 * leading "-" that a tool could take for an option), and combining marks
 * (U+0300..U+036F, as in decomposed "e\u0301") are dropped, so NFD text
 * reads like NFC text.
 */
void
media_path_segment(const char *in, char *out, size_t cap)
{
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 max, len = 0, k;
	uint32_t		 cp;
	char			 one[2] = { 0, 0 };
	const char		*rep;

	if (cap == 0)
		return;
	max = cap - 1 < SEGMENT_MAX ? cap - 1 : SEGMENT_MAX;
	while (p != NULL && *p != '\0') {
		if ((k = utf8_decode(p, &cp)) == 0) {
			rep = "_";
			k = 1;
		} else if (cp < 0x80) {
			one[0] = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
			    (cp >= '0' && cp <= '9') || cp == '.' || cp == '-' ||
			    cp == '_' ? (char)cp : '_';
			rep = one;
		} else if (cp >= 0xc0 && cp < 0x180 && translit[cp - 0xc0] != NULL)
			rep = translit[cp - 0xc0];
		else if (cp >= 0x300 && cp <= 0x36f)
			rep = "";
		else
			rep = "_";
		p += k;
		for (; *rep != '\0'; rep++) {
			if (*rep == '_' && (len == 0 || out[len - 1] == '_'))
				continue;
			if (len == 0 && (*rep == '.' || *rep == '-'))
				continue;
			if (len >= max)
				goto done;
			out[len++] = *rep;
		}
	}
done:
	while (len > 0 && out[len - 1] == '_')
		len--;
	if (len == 0) {
		len = strlen("unknown") < cap - 1 ? strlen("unknown") : cap - 1;
		memcpy(out, "unknown", len);
	}
	out[len] = '\0';
}

/* "flac", "mp3", "m4a": 1 to 5 ASCII letters and digits. */
static int
looks_like_extension(const char *s)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (n >= 5 || !((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9')))
			return 0;
	return n > 0;
}

void
media_guess_from_filename(const char *path, char *title, size_t tcap,
    char *artist, size_t acap)
{
	char		 name[1024];
	const char	*base;
	char		*dot, *sep, *c;
	size_t		 n;

	if (tcap > 0)
		title[0] = '\0';
	if (acap > 0)
		artist[0] = '\0';
	if (path == NULL)
		return;
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	n = strlen(base);
	if (n >= sizeof(name)) {
		n = sizeof(name) - 1;
		while (n > 0 && ((unsigned char)base[n] & 0xc0) == 0x80)
			n--;		/* cut between characters */
	}
	memcpy(name, base, n);
	name[n] = '\0';
	if ((dot = strrchr(name, '.')) != NULL && dot != name &&
	    looks_like_extension(dot + 1))
		*dot = '\0';
	for (c = name; *c != '\0'; c++)
		if (*c == '_')
			*c = ' ';
	if ((sep = strstr(name, " - ")) != NULL) {
		*sep = '\0';
		utf8_clean(artist, acap, name);
		utf8_clean(title, tcap, sep + 3);
	} else
		utf8_clean(title, tcap, name);
}
