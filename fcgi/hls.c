/*
 * fcgi/hls.c: HLS renditions of a track, for the "hls" job, and the
 * signed URL that lets nginx serve them with no worker involved. One
 * ffmpeg run encodes the three AAC renditions (64, 128, 256 kbit/s, 6 s
 * MPEG-TS segments) and writes the master playlist with each one's
 * bandwidth and codec, so a player picks the rendition its connection
 * carries and switches as that changes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "djamms.h"

static int
exists(const char *path)
{
	struct stat	 st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* The last non-empty line of ffmpeg's log, printable ASCII only. */
static void
last_line(const char *log, char *out, size_t cap)
{
	FILE	*f = fopen(log, "r");
	char	 line[512], keep[512] = "";
	size_t	 i, o = 0;

	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (line[0] != '\n' && line[0] != '\0')
				snprintf(keep, sizeof(keep), "%s", line);
		fclose(f);
	}
	for (i = 0; keep[i] != '\0' && o + 1 < cap; i++)
		if (keep[i] >= 0x20 && keep[i] < 0x7f)
			out[o++] = keep[i];
	out[o] = '\0';
}

const struct hls_rendition hls_renditions[] = {
	{ "64k", 64000 }, { "128k", 128000 }, { "256k", 256000 },
};
const size_t	 hls_nrenditions = sizeof(hls_renditions) / sizeof(hls_renditions[0]);

int
hls_build(const char *track_id, const char *src, char *err, size_t errlen)
{
	char		 root[4096], work[4200], final[4200], old[4200], log[4300];
	char		 out_pat[4300], seg_pat[4300], in[4200], why[300], path[4400];
	char		 bitrate_opt[sizeof(hls_renditions) / sizeof(hls_renditions[0])][16];
	char		 stream_map[128] = "";
	const char	*demuxer;
	pid_t		 pid = getpid();
	int		 rc;
	size_t		 i;

	if (!uuid_valid(track_id)) {
		snprintf(err, errlen, "not a track id");
		return 1;
	}
	snprintf(root, sizeof(root), "%s/hls", cfg.storage_dir);
	if (mkdir(root, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", root, strerror(errno));
		return -1;
	}
	snprintf(work, sizeof(work), "%s/.tmp-%s-%ld", root, track_id, (long)pid);
	snprintf(final, sizeof(final), "%s/%s", root, track_id);
	snprintf(old, sizeof(old), "%s/.old-%s-%ld", root, track_id, (long)pid);
	rm_tree(work);
	if (mkdir(work, 0755) != 0) {
		snprintf(err, errlen, "cannot create the work directory: %s", strerror(errno));
		return -1;
	}
	snprintf(log, sizeof(log), "%s/ffmpeg.log", work);
	snprintf(out_pat, sizeof(out_pat), "%s/%%v/index.m3u8", work);
	snprintf(seg_pat, sizeof(seg_pat), "%s/%%v/seg%%03d.ts", work);
	snprintf(in, sizeof(in), "file:%s", src);
	/*
	 * ffmpeg reads the file with the demuxer our sniff chose, as the
	 * workers do: never as a playlist or a concat list it guessed, which
	 * could name other files.
	 */
	if ((demuxer = media_demuxer(media_sniff(src, NULL))) == NULL) {
		snprintf(err, errlen, "not an audio file djamms accepts");
		rm_tree(work);
		return 1;
	}
	{
		char		*argv[64];
		char		 e[256] = "";
		int		 n = 0;

#define ARG(a)	(argv[n++] = (char *)(a))
		ARG(cfg.ffmpeg); ARG("-nostdin"); ARG("-hide_banner"); ARG("-loglevel");
		ARG("error"); ARG("-protocol_whitelist"); ARG("file"); ARG("-f");
		ARG(demuxer); ARG("-i"); ARG(in);
		for (i = 0; i < hls_nrenditions; i++) {
			ARG("-map");
			ARG("0:a:0");
		}
		ARG("-vn"); ARG("-sn"); ARG("-dn"); ARG("-map_metadata"); ARG("-1");
		ARG("-c:a"); ARG("aac"); ARG("-ac"); ARG("2"); ARG("-ar"); ARG("44100");
		for (i = 0; i < hls_nrenditions; i++) {
			snprintf(bitrate_opt[i], sizeof(bitrate_opt[i]), "-b:a:%zu", i);
			ARG(bitrate_opt[i]);
			ARG(hls_renditions[i].name);
			snprintf(stream_map + strlen(stream_map), sizeof(stream_map) -
			    strlen(stream_map), "%sa:%zu,name:%s", i ? " " : "", i,
			    hls_renditions[i].name);
		}
		ARG("-f"); ARG("hls"); ARG("-hls_time"); ARG("6");
		ARG("-hls_playlist_type"); ARG("vod"); ARG("-hls_flags");
		ARG("independent_segments"); ARG("-hls_segment_type"); ARG("mpegts");
		ARG("-hls_segment_filename"); ARG(seg_pat); ARG("-master_pl_name");
		ARG("master.m3u8"); ARG("-var_stream_map"); ARG(stream_map); ARG(out_pat);
		ARG(NULL);
#undef ARG
		rc = proc_run(argv, NULL, log, (int)cfg.hls_timeout_s, e, sizeof(e));
		if (rc != 0) {
			last_line(log, why, sizeof(why));
			/* not started (126, 127), killed or timed out: worth a retry */
			if (rc < 0 || rc == 126 || rc == 127) {
				snprintf(err, errlen, "%s", e);
				rc = -1;
			} else {
				snprintf(err, errlen, "ffmpeg: %s", why[0] ? why : e);
				rc = 1;
			}
			rm_tree(work);
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/master.m3u8", work);
	for (i = 0, rc = exists(path); i < hls_nrenditions && rc; i++) {
		snprintf(path, sizeof(path), "%s/%s/index.m3u8", work, hls_renditions[i].name);
		rc = exists(path);
	}
	unlink(log);
	if (!rc) {
		snprintf(err, errlen, "ffmpeg wrote no complete playlists");
		rm_tree(work);
		return 1;
	}
	/* the new set in place at once; readers of the old one get 404s */
	if (rename(final, old) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot move the old renditions: %s", strerror(errno));
		rm_tree(work);
		return -1;
	}
	if (rename(work, final) != 0) {
		snprintf(err, errlen, "cannot put the renditions in place: %s",
		    strerror(errno));
		rename(old, final);
		rm_tree(work);
		return -1;
	}
	rm_tree(old);
	return 0;
}

void
hls_remove(const char *track_id)
{
	char	 dir[4200];

	if (!uuid_valid(track_id))
		return;
	snprintf(dir, sizeof(dir), "%s/hls/%s", cfg.storage_dir, track_id);
	rm_tree(dir);
}

void
hls_master_url(const char *track_id, long expires, char *out, size_t cap)
{
	char		 material[512], sig[32];
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;
	int		 n;

	n = snprintf(material, sizeof(material), "%ld/hls/%s %.*s", expires, track_id,
	    (int)cfg.media_secret_len, cfg.media_secret);
	if (n < 0 || (size_t)n >= sizeof(material))
		n = (int)sizeof(material) - 1;
	EVP_Digest(material, (size_t)n, md, &mdlen, EVP_md5(), NULL);
	b64url_encode(md, 16, sig);
	snprintf(out, cap, "/hls/%s/%ld/%s/master.m3u8", track_id, expires, sig);
	OPENSSL_cleanse(material, sizeof(material));
}
