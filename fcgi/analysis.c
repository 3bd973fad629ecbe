/*
 * fcgi/analysis.c: what a track sounds like, for the "analysis" job. The
 * file is decoded whole with libavcodec and resampled by libswresample to
 * 44.1 kHz float (stereo, or mono for a mono file); libebur128 measures
 * the EBU R128 integrated loudness, loudness range and sample peak; aubio
 * tracks the beats of the mono mix, and the tempo comes from the
 * intervals between them (aubio's own running estimate drifts at the
 * start and end of a track); none when aubio has no confidence in its
 * beats (a steady tone, speech).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aubio/aubio.h>
#include <ebur128.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "djamms.h"

#define RATE	44100
#define WIN	1024	/* aubio's analysis window */
#define HOP	512	/* and its step */

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
media_bpm_from_beats(const double *beats, size_t n)
{
	double	*iv, med, sum = 0;
	size_t	 i, k = 0, m = 0;

	if (n < 5)
		return 0;
	if ((iv = malloc(n * sizeof(*iv))) == NULL)
		abort();
	for (i = 1; i < n; i++) {
		double	 d = beats[i] - beats[i - 1];

		if (d >= 0.2 && d <= 3.0)
			iv[k++] = d;
	}
	if (k < 4) {
		free(iv);
		return 0;
	}
	qsort(iv, k, sizeof(*iv), cmp_double);
	med = k % 2 ? iv[k / 2] : (iv[k / 2 - 1] + iv[k / 2]) / 2;
	/*
	 * The mean of the intervals near the median: beat times come in
	 * whole analysis steps (11.6 ms), and the median alone would be one
	 * of two neighbouring steps (126 or 129 for 128 BPM).
	 */
	for (i = 0; i < k; i++)
		if (fabs(iv[i] - med) <= med * 0.08) {
			sum += iv[i];
			m++;
		}
	free(iv);
	return 60.0 / (sum / (double)m);
}

struct analyzer {
	ebur128_state	*loud;
	aubio_tempo_t	*tempo;
	fvec_t		*hop, *beat;
	size_t		 fill;		/* samples in hop */
	double		*beats;
	size_t		 nbeats, capbeats;
	int		 channels;
	long long	 frames;
};

/* n frames of interleaved float. */
static void
feed(struct analyzer *a, const float *pcm, size_t n)
{
	size_t	 i;
	int	 c;

	ebur128_add_frames_float(a->loud, pcm, n);
	a->frames += (long long)n;
	for (i = 0; i < n; i++) {
		float	 m = 0;

		for (c = 0; c < a->channels; c++)
			m += pcm[i * (size_t)a->channels + (size_t)c];
		a->hop->data[a->fill++] = m / (float)a->channels;
		if (a->fill < HOP)
			continue;
		a->fill = 0;
		aubio_tempo_do(a->tempo, a->hop, a->beat);
		if (a->beat->data[0] == 0)
			continue;
		if (a->nbeats == a->capbeats) {
			a->capbeats = a->capbeats ? a->capbeats * 2 : 256;
			if ((a->beats = realloc(a->beats, a->capbeats *
			    sizeof(*a->beats))) == NULL)
				abort();
		}
		a->beats[a->nbeats++] = aubio_tempo_get_last_s(a->tempo);
	}
}

/*
 * Convert a decoded frame, or (in NULL) drain what swr holds at the end.
 * The output buffer grows to what swr says the frame can give: a NULL
 * input flushes the resampler, so it is never used to empty the buffer
 * between frames (that cuts the signal at every frame).
 */
static int
convert(struct analyzer *a, SwrContext *swr, const AVFrame *in, float **buf,
    int *cap)
{
	int	 want = swr_get_out_samples(swr, in ? in->nb_samples : 0), n;

	if (want < 0)
		return -1;
	if (want + 16 > *cap) {
		*cap = want + 16;
		if ((*buf = realloc(*buf, sizeof(float) * (size_t)*cap *
		    (size_t)a->channels)) == NULL)
			abort();
	}
	if (in != NULL) {
		n = swr_convert(swr, (uint8_t **)buf, *cap,
		    (const uint8_t **)in->extended_data, in->nb_samples);
		if (n > 0)
			feed(a, *buf, (size_t)n);
		return n < 0 ? -1 : 0;
	}
	while ((n = swr_convert(swr, (uint8_t **)buf, *cap, NULL, 0)) > 0)
		feed(a, *buf, (size_t)n);
	return n < 0 ? -1 : 0;
}

int
media_analyze(const char *path, struct media_analysis *out, char *err,
    size_t errlen)
{
	AVFormatContext		*fmt = NULL;
	AVCodecContext		*cc = NULL;
	const AVCodec		*dec;
	const AVStream		*st = NULL;
	SwrContext		*swr = NULL;
	AVPacket		*pkt = NULL;
	AVFrame			*frame = NULL;
	AVChannelLayout		 in_layout, out_layout;
	struct analyzer		 a;
	float			*buf = NULL;
	int			 bufcap = 0;
	double			 v;
	unsigned		 i;
	int			 rc = -1, r, c;

	memset(out, 0, sizeof(*out));
	memset(&a, 0, sizeof(a));
	memset(&in_layout, 0, sizeof(in_layout));
	memset(&out_layout, 0, sizeof(out_layout));
	if (media_open_audio(path, &fmt) != 0 ||
	    avformat_find_stream_info(fmt, NULL) < 0) {
		snprintf(err, errlen, "not an audio file");
		goto out;
	}
	for (i = 0; i < fmt->nb_streams && st == NULL; i++)
		if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO &&
		    !(fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC))
			st = fmt->streams[i];
	if (st == NULL || (dec = avcodec_find_decoder(st->codecpar->codec_id)) == NULL) {
		snprintf(err, errlen, "no audio stream that can be decoded");
		goto out;
	}
	if ((cc = avcodec_alloc_context3(dec)) == NULL ||
	    avcodec_parameters_to_context(cc, st->codecpar) < 0) {
		snprintf(err, errlen, "decoder unavailable");
		goto out;
	}
	cc->thread_count = 1;
	if (avcodec_open2(cc, dec, NULL) < 0 || cc->sample_rate <= 0 ||
	    cc->ch_layout.nb_channels <= 0) {
		snprintf(err, errlen, "the decoder refused the stream");
		goto out;
	}
	if (cc->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
		av_channel_layout_default(&in_layout, cc->ch_layout.nb_channels);
	else if (av_channel_layout_copy(&in_layout, &cc->ch_layout) < 0)
		goto nomem;
	a.channels = cc->ch_layout.nb_channels >= 2 ? 2 : 1;
	av_channel_layout_default(&out_layout, a.channels);
	if (swr_alloc_set_opts2(&swr, &out_layout, AV_SAMPLE_FMT_FLT, RATE,
	    &in_layout, cc->sample_fmt, cc->sample_rate, 0, NULL) < 0 ||
	    swr_init(swr) < 0) {
		snprintf(err, errlen, "cannot resample the stream");
		goto out;
	}
	a.loud = ebur128_init((unsigned)a.channels, RATE, EBUR128_MODE_I |
	    EBUR128_MODE_LRA | EBUR128_MODE_SAMPLE_PEAK);
	a.tempo = new_aubio_tempo("default", WIN, HOP, RATE);
	a.hop = new_fvec(HOP);
	a.beat = new_fvec(1);
	pkt = av_packet_alloc();
	frame = av_frame_alloc();
	if (a.loud == NULL || a.tempo == NULL || a.hop == NULL || a.beat == NULL ||
	    pkt == NULL || frame == NULL)
		goto nomem;

	/* A packet the decoder rejects is skipped, as a player would. */
	while ((r = av_read_frame(fmt, pkt)) >= 0) {
		if (pkt->stream_index == st->index && avcodec_send_packet(cc, pkt) >= 0)
			while (avcodec_receive_frame(cc, frame) >= 0) {
				if (convert(&a, swr, frame, &buf, &bufcap) != 0) {
					snprintf(err, errlen, "cannot resample the stream");
					goto out;
				}
				av_frame_unref(frame);
			}
		av_packet_unref(pkt);
	}
	avcodec_send_packet(cc, NULL);
	while (avcodec_receive_frame(cc, frame) >= 0) {
		convert(&a, swr, frame, &buf, &bufcap);
		av_frame_unref(frame);
	}
	convert(&a, swr, NULL, &buf, &bufcap);
	if (a.frames < RATE / 2) {
		snprintf(err, errlen, "less than half a second of audio decoded");
		goto out;
	}

	out->seconds = (double)a.frames / RATE;
	if (ebur128_loudness_global(a.loud, &v) == EBUR128_SUCCESS && isfinite(v)) {
		out->has_loudness = 1;
		out->lufs = v;
		if (ebur128_loudness_range(a.loud, &v) == EBUR128_SUCCESS && isfinite(v))
			out->lra = v;
		out->peak_dbfs = -HUGE_VAL;
		for (c = 0; c < a.channels; c++)
			if (ebur128_sample_peak(a.loud, (unsigned)c, &v) == EBUR128_SUCCESS &&
			    v > 0 && 20 * log10(v) > out->peak_dbfs)
				out->peak_dbfs = 20 * log10(v);
		if (!isfinite(out->peak_dbfs))
			out->peak_dbfs = -120;
	}
	v = aubio_tempo_get_confidence(a.tempo);
	if (isfinite(v) && v >= 0.01 &&
	    (out->bpm = media_bpm_from_beats(a.beats, a.nbeats)) > 0) {
		out->has_bpm = 1;
		out->bpm_confidence = v;
	} else
		out->bpm = 0;
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	free(buf);
	free(a.beats);
	if (a.beat != NULL)
		del_fvec(a.beat);
	if (a.hop != NULL)
		del_fvec(a.hop);
	if (a.tempo != NULL)
		del_aubio_tempo(a.tempo);
	if (a.loud != NULL)
		ebur128_destroy(&a.loud);
	av_frame_free(&frame);
	av_packet_free(&pkt);
	swr_free(&swr);
	av_channel_layout_uninit(&in_layout);
	av_channel_layout_uninit(&out_layout);
	avcodec_free_context(&cc);
	avformat_close_input(&fmt);
	return rc;
}
