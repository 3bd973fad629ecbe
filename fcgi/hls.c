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

int
hls_build(const char *track_id, const char *src, char *err, size_t errlen)
{
	char		 root[4096], work[4200], final[4200], old[4200], log[4300];
	char		 out_pat[4300], seg_pat[4300], in[4200], why[300], path[4400];
	const char	*names[] = { "64k", "128k", "256k" }, *demuxer;
	pid_t		 pid = getpid();
	int		 rc, i;

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
		char *const	 argv[] = {
			(char *)cfg.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
			"-protocol_whitelist", "file", "-f", (char *)demuxer, "-i", in,
			"-map", "0:a:0", "-map", "0:a:0", "-map", "0:a:0", "-vn", "-sn", "-dn",
			"-map_metadata", "-1", "-c:a", "aac", "-ac", "2", "-ar", "44100",
			"-b:a:0", "64k", "-b:a:1", "128k", "-b:a:2", "256k",
			"-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod",
			"-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
			"-hls_segment_filename", seg_pat, "-master_pl_name", "master.m3u8",
			"-var_stream_map", "a:0,name:64k a:1,name:128k a:2,name:256k",
			out_pat, NULL
		};
		char		 e[256] = "";

		rc = proc_run(argv, NULL, log, (int)cfg.hls_timeout_s, e, sizeof(e));
		if (rc != 0) {
			last_line(log, why, sizeof(why));
			/* 126/127: ffmpeg could not be started; a timeout: busy */
			if (strstr(e, "status 126") || strstr(e, "status 127") ||
			    strstr(e, "took more than") || strstr(e, "fork") ||
			    strstr(e, "signal")) {
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
	for (i = 0, rc = exists(path); i < 3 && rc; i++) {
		snprintf(path, sizeof(path), "%s/%s/index.m3u8", work, names[i]);
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
