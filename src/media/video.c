/* FFmpeg-backed video source: count/index pass at open, frame-accurate get(). */
#include "media/video.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "core/alloc.h"
#include "core/error.h"

#define AVIO_BUF_BYTES 65536

struct sam_video {
    const uint8_t *data; /* borrowed input bytes */
    size_t n, pos;       /* memory-reader cursor */
    sam_media_limits lim;

    AVFormatContext *fmt;
    AVIOContext *avio;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int demux_eof, flushed;

    struct SwsContext *sws;
    int sws_w, sws_h, sws_fmt, sws_cs, sws_range;
    uint8_t *tmp; /* (coded_h + 2, tmp_stride) RGB straight from swscale, padded */
    int tmp_stride;

    int coded_w, coded_h; /* decoded picture size (stream's declared size) */
    int width, height;    /* upright size */
    int rotation;         /* clockwise degrees applied to decoded pictures */
    int count;
    int64_t *pts;  /* (count) presentation time of each frame in stream time base */
    uint8_t *key;  /* (count) 1 where the frame is a keyframe (a seek target) */
    int seekable;  /* pts known and strictly increasing */
    AVRational tb;
    double fps;
    int next;      /* index of the frame the decoder yields next, -1 unknown */
    sam_video_frame_fn on_frame; /* optional, called for each frame during the open scan */
    void *on_frame_user;
    uint8_t *scan_rgb; /* (height, width, 3) while on_frame is used */
    int expected;      /* frame count the container states or implies (0 unknown) */
    long long ffmpeg_bytes; /* estimate of FFmpeg's own buffers, added to the accounting allocator */
    char codec[32];
};

/* ---- memory I/O for libavformat ---- */

static int mem_read(void *opaque, uint8_t *buf, int size) {
    sam_video *v = opaque;
    size_t left = v->n - v->pos;
    if (left == 0) return AVERROR_EOF;
    size_t k = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, v->data + v->pos, k);
    v->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
    sam_video *v = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return (int64_t)v->n;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)v->pos; break;
    case SEEK_END: base = (int64_t)v->n; break;
    default: return -1;
    }
    int64_t p = base + off;
    if (p < 0 || p > (int64_t)v->n) return -1;
    v->pos = (size_t)p;
    return p;
}

static const char *averr(int e, char *buf, size_t n) {
    av_strerror(e, buf, n);
    return buf;
}

static void close_streams(sam_video *v) {
    avcodec_free_context(&v->dec);
    if (v->fmt) avformat_close_input(&v->fmt);
    if (v->avio) {
        av_freep(&v->avio->buffer);
        avio_context_free(&v->avio);
    }
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
}

/* Clockwise rotation the ffmpeg CLI applies by default (its get_rotation()). */
static int stream_rotation(AVStream *st) {
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!m) return 0;
    double theta = -round(av_display_rotation_get(m));
    if (isnan(theta)) return 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) return 90;
    if (fabs(theta - 180) < 1.0) return 180;
    if (fabs(theta - 270) < 1.0) return 270;
    return 0;
}

/* Open demuxer + decoder from the start of the bytes. */
static sam2d_status open_streams(sam_video *v) {
    char eb[128];
    v->pos = 0;
    v->demux_eof = v->flushed = 0;
    v->next = 0;
    uint8_t *buf = av_malloc(AVIO_BUF_BYTES);
    if (!buf) return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
    v->avio = avio_alloc_context(buf, AVIO_BUF_BYTES, 0, v, mem_read, NULL, mem_seek);
    v->fmt = avformat_alloc_context();
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->avio || !v->fmt || !v->pkt || !v->frame) {
        if (!v->avio) av_free(buf);
        return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
    }
    v->fmt->pb = v->avio;
    v->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    int r = avformat_open_input(&v->fmt, NULL, NULL, NULL);
    if (r < 0) {
        v->fmt = NULL; /* freed by avformat_open_input on failure */
        return SAM_ERR(SAM2D_ERR_FORMAT, "not a video FFmpeg can read (%s)", averr(r, eb, sizeof eb));
    }
    r = avformat_find_stream_info(v->fmt, NULL);
    if (r < 0) return SAM_ERR(SAM2D_ERR_FORMAT, "video: cannot read stream info (%s)", averr(r, eb, sizeof eb));
    const AVCodec *codec = NULL;
    r = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r == AVERROR_DECODER_NOT_FOUND) {
        int s = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        const char *nm = s >= 0 ? avcodec_get_name(v->fmt->streams[s]->codecpar->codec_id) : "?";
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "video: no decoder for codec %s in this FFmpeg build", nm);
    }
    if (r < 0) return SAM_ERR(SAM2D_ERR_FORMAT, "not a video: the file has no video stream");
    v->stream = r;
    AVStream *st = v->fmt->streams[r];
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC)
        return SAM_ERR(SAM2D_ERR_FORMAT, "not a video: the only picture is attached cover art");
    /* Text art and the like are "video" to FFmpeg but not to us. */
    if (st->codecpar->codec_id == AV_CODEC_ID_ANSI || st->codecpar->codec_id == AV_CODEC_ID_BINTEXT ||
        st->codecpar->codec_id == AV_CODEC_ID_XBIN || st->codecpar->codec_id == AV_CODEC_ID_IDF)
        return SAM_ERR(SAM2D_ERR_FORMAT, "not a video (FFmpeg reads it as %s text art)",
                       avcodec_get_name(st->codecpar->codec_id));
    for (unsigned i = 0; i < v->fmt->nb_streams; i++)
        if ((int)i != r) v->fmt->streams[i]->discard = AVDISCARD_ALL;
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
    if (avcodec_parameters_to_context(v->dec, st->codecpar) < 0)
        return SAM_ERR(SAM2D_ERR_FORMAT, "video: bad codec parameters");
    v->dec->thread_count = 0; /* FFmpeg picks; output does not depend on it */
    v->dec->pkt_timebase = st->time_base;
    r = avcodec_open2(v->dec, codec, NULL);
    if (r < 0)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "video: cannot open %s decoder (%s)", codec->name,
                       averr(r, eb, sizeof eb));
    snprintf(v->codec, sizeof v->codec, "%s", codec->name);
    v->tb = st->time_base;
    return SAM2D_OK;
}

static sam2d_status reopen(sam_video *v) {
    close_streams(v);
    return open_streams(v);
}

/* Next decoded frame into v->frame. 1 = frame, 0 = end of stream. */
static sam2d_status decode_next(sam_video *v, int *got) {
    char eb[128];
    int errors = 0;
    *got = 0;
    for (;;) {
        av_frame_unref(v->frame);
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            *got = 1;
            return SAM2D_OK;
        }
        if (r == AVERROR_EOF) return SAM2D_OK;
        if (r != AVERROR(EAGAIN)) {
            /* a damaged picture: skip it as the ffmpeg CLI does, but not forever */
            if (++errors > 64)
                return SAM_ERR(SAM2D_ERR_FORMAT, "video: decoding failed (%s)", averr(r, eb, sizeof eb));
            continue;
        }
        if (v->demux_eof) {
            if (v->flushed) return SAM2D_OK;
            avcodec_send_packet(v->dec, NULL);
            v->flushed = 1;
            continue;
        }
        r = av_read_frame(v->fmt, v->pkt);
        if (r < 0) {
            /* end of data, or unreadable rest (truncation): drain what we have */
            v->demux_eof = 1;
            continue;
        }
        if (v->pkt->stream_index == v->stream) {
            /* A corrupt packet is skipped as the ffmpeg CLI does; the decoder resyncs. */
            r = avcodec_send_packet(v->dec, v->pkt);
            (void)r;
        }
        av_packet_unref(v->pkt);
    }
}

static int64_t frame_pts(const AVFrame *f) {
    return f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
}

static sam2d_status too_many(int n, int max) {
    return SAM_ERR(SAM2D_ERR_LIMIT, "Video has too many frames (%d > %d); raise MAX_VIDEO_FRAMES", n, max);
}

static sam2d_status too_large(int w, int h, int max) {
    return SAM_ERR(SAM2D_ERR_LIMIT, "Video dimensions exceed maximum (%dx%d > %d); raise MAX_FRAME_DIMENSION", w, h,
                   max);
}

static sam2d_status convert(sam_video *v, uint8_t *rgb);

/* Decode everything once: exact count, presentation times, keyframes; limits enforced as we go. */
static sam2d_status scan(sam_video *v, int meta_frames) {
    int cap = meta_frames > 0 && meta_frames <= v->lim.max_frames ? meta_frames + 1 : 64;
    v->pts = sam_malloc(sizeof(int64_t) * (size_t)cap);
    v->key = sam_malloc((size_t)cap);
    if (!v->pts || !v->key) return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory for index");
    v->seekable = 1;
    for (;;) {
        int got;
        SAM_TRY(decode_next(v, &got));
        if (!got) break;
        AVFrame *f = v->frame;
        /* metadata can lie: the decoded pictures are what counts */
        int fw = f->width, fh = f->height;
        int uw = v->rotation % 180 ? fh : fw, uh = v->rotation % 180 ? fw : fh;
        if (v->lim.oversize == SAM_OVERSIZE_REFUSE && v->lim.max_dimension > 0 &&
            (uw > v->lim.max_dimension || uh > v->lim.max_dimension))
            return too_large(uw, uh, v->lim.max_dimension);
        if (v->lim.max_frames > 0 && v->count >= v->lim.max_frames)
            return too_many(meta_frames > v->count + 1 ? meta_frames : v->count + 1, v->lim.max_frames);
        if (v->count == cap) {
            cap *= 2;
            int64_t *np = sam_realloc(v->pts, sizeof(int64_t) * (size_t)cap);
            if (np) v->pts = np;
            uint8_t *nk = np ? sam_realloc(v->key, (size_t)cap) : NULL;
            if (!np || !nk) return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory for index");
            v->key = nk;
        }
        int64_t p = frame_pts(f);
        if (p == AV_NOPTS_VALUE || (v->count > 0 && p <= v->pts[v->count - 1])) v->seekable = 0;
        v->pts[v->count] = p;
        v->key[v->count] = f->key_frame ? 1 : 0;
        v->count++;
        if (v->on_frame) {
            SAM_TRY(convert(v, v->scan_rgb));
            SAM_TRY(v->on_frame(v->on_frame_user, v->count - 1, v->expected, v->scan_rgb, v->width, v->height));
        }
    }
    if (v->count == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "video: no frame could be decoded (corrupt or truncated)");
    return SAM2D_OK;
}

sam2d_status sam_video_open_memory(const uint8_t *data, size_t n, const sam_media_limits *lim, sam_video **out) {
    return sam_video_open_memory_ex(data, n, lim, NULL, NULL, out);
}

sam2d_status sam_video_open_memory_ex(const uint8_t *data, size_t n, const sam_media_limits *lim,
                                      sam_video_frame_fn on_frame, void *user, sam_video **out) {
    *out = NULL;
    if (!data || n == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "empty input (0 bytes): not a video");
    av_log_set_level(AV_LOG_QUIET);
    sam_video *v = sam_calloc(1, sizeof(*v));
    if (!v) return SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
    v->data = data;
    v->n = n;
    if (lim) v->lim = *lim;
    else sam_media_limits_default(&v->lim);
    sam2d_status s = open_streams(v);
    if (s != SAM2D_OK) goto fail;
    AVStream *st = v->fmt->streams[v->stream];
    v->coded_w = st->codecpar->width;
    v->coded_h = st->codecpar->height;
    v->rotation = stream_rotation(st);
    v->width = v->rotation % 180 ? v->coded_h : v->coded_w;
    v->height = v->rotation % 180 ? v->coded_w : v->coded_h;
    if (v->coded_w <= 0 || v->coded_h <= 0) {
        s = SAM_ERR(SAM2D_ERR_FORMAT, "video: invalid dimensions %dx%d", v->coded_w, v->coded_h);
        goto fail;
    }
    /* Refuse from metadata before decoding anything. */
    if (v->lim.oversize == SAM_OVERSIZE_REFUSE && v->lim.max_dimension > 0 &&
        (v->width > v->lim.max_dimension || v->height > v->lim.max_dimension)) {
        s = too_large(v->width, v->height, v->lim.max_dimension);
        goto fail;
    }
    if ((size_t)v->coded_w * v->coded_h > ((size_t)1 << 28)) {
        s = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "video: %dx%d pictures are too large to decode", v->coded_w, v->coded_h);
        goto fail;
    }
    int meta = st->nb_frames > 0 && st->nb_frames < INT32_MAX ? (int)st->nb_frames : 0;
    AVRational afr = st->avg_frame_rate;
    v->expected = meta;
    if (!meta && afr.num > 0 && afr.den > 0) {
        double dur = -1;
        if (st->duration > 0 && st->duration != AV_NOPTS_VALUE) dur = st->duration * av_q2d(st->time_base);
        else if (v->fmt->duration > 0) dur = v->fmt->duration / (double)AV_TIME_BASE;
        /* an estimate: refuse early only when clearly over (5% slack); exact check while decoding */
        if (dur > 0) {
            double est = dur * av_q2d(afr);
            if (est < 1e9) v->expected = (int)(est + 0.5);
            if (v->lim.max_frames > 0 && est > v->lim.max_frames * 1.05 + 1 && est < 1e9) meta = (int)(est + 0.5);
        }
    }
    if (v->lim.max_frames > 0 && meta > v->lim.max_frames) {
        s = too_many(meta, v->lim.max_frames);
        goto fail;
    }
    /* swscale's SIMD paths write whole blocks past the row end: give it padded rows */
    v->tmp_stride = ((v->coded_w * 3 + 63) & ~63) + 64;
    v->tmp = sam_malloc((size_t)v->tmp_stride * (v->coded_h + 2));
    if (!v->tmp) {
        s = SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
        goto fail;
    }
    v->on_frame = on_frame;
    v->on_frame_user = user;
    if (on_frame) {
        v->scan_rgb = sam_malloc((size_t)v->width * v->height * 3);
        if (!v->scan_rgb) {
            s = SAM_ERR(SAM2D_ERR_NOMEM, "video: no memory");
            goto fail;
        }
    }
    s = scan(v, meta);
    sam_free(v->scan_rgb);
    v->scan_rgb = NULL;
    v->on_frame = NULL;
    if (s != SAM2D_OK) goto fail;
    if (st->nb_frames > 0 && v->count + 2 < st->nb_frames) {
        s = SAM_ERR(SAM2D_ERR_FORMAT, "video is truncated or corrupt: the container lists %lld frames, %d decode",
                    (long long)st->nb_frames, v->count);
        goto fail;
    }
    if (afr.num > 0 && afr.den > 0) v->fps = av_q2d(afr);
    else if (v->count > 1 && v->seekable && v->pts[v->count - 1] > v->pts[0])
        v->fps = (v->count - 1) / ((v->pts[v->count - 1] - v->pts[0]) * av_q2d(v->tb));
    s = reopen(v);
    if (s != SAM2D_OK) goto fail;
    /* FFmpeg allocates outside sam_malloc: count an estimate (reference pictures + I/O buffer)
     * so that memory budgets see it */
    v->ffmpeg_bytes = 6LL * v->coded_w * v->coded_h * 3 / 2 + AVIO_BUF_BYTES;
    sam_mem_account(v->ffmpeg_bytes);
    *out = v;
    return SAM2D_OK;
fail:
    sam_video_free(v);
    return s;
}

void sam_video_free(sam_video *v) {
    if (!v) return;
    sam_mem_account(-v->ffmpeg_bytes);
    close_streams(v);
    sws_freeContext(v->sws);
    sam_free(v->tmp);
    sam_free(v->scan_rgb);
    sam_free(v->pts);
    sam_free(v->key);
    sam_free(v);
}

int sam_video_count(const sam_video *v) { return v->count; }
int sam_video_width(const sam_video *v) { return v->width; }
int sam_video_height(const sam_video *v) { return v->height; }
double sam_video_fps(const sam_video *v) { return v->fps; }
int sam_video_rotation(const sam_video *v) { return v->rotation; }
const char *sam_video_codec_name(const sam_video *v) { return v->codec; }

double sam_video_time(const sam_video *v, int i) {
    if (i < 0 || i >= v->count) return 0;
    if (v->seekable) return (v->pts[i] - v->pts[0]) * av_q2d(v->tb);
    return v->fps > 0 ? i / v->fps : 0;
}

size_t sam_video_resident_bytes(const sam_video *v) {
    /* index + conversion buffer + the estimate of FFmpeg's own buffers */
    return sizeof(*v) + (size_t)v->count * 9 + sam_alloc_size(v->tmp) + (size_t)v->ffmpeg_bytes;
}

/* Convert v->frame to upright RGB in rgb. */
static sam2d_status convert(sam_video *v, uint8_t *rgb) {
    AVFrame *f = v->frame;
    int cs = f->colorspace, full = f->color_range == AVCOL_RANGE_JPEG;
    if (!v->sws || v->sws_w != f->width || v->sws_h != f->height || v->sws_fmt != f->format || v->sws_cs != cs ||
        v->sws_range != full) {
        sws_freeContext(v->sws);
        /* a mid-stream size change is scaled to the declared size, as the ffmpeg CLI does */
        v->sws = sws_getContext(f->width, f->height, f->format, v->coded_w, v->coded_h, AV_PIX_FMT_RGB24, SWS_BICUBIC,
                                NULL, NULL, NULL);
        if (!v->sws) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "video: cannot convert pixel format %d to RGB", f->format);
        /* the stream's own YCbCr matrix and range (BT.601 when unspecified) */
        sws_setColorspaceDetails(v->sws, sws_getCoefficients(cs), full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                                 1 << 16, 1 << 16);
        v->sws_w = f->width;
        v->sws_h = f->height;
        v->sws_fmt = f->format;
        v->sws_cs = cs;
        v->sws_range = full;
    }
    uint8_t *dst = v->tmp;
    int dst_stride = v->tmp_stride;
    sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, &dst, &dst_stride);
    int W = v->coded_w, H = v->coded_h, ow = v->width;
    if (!v->rotation) {
        for (int y = 0; y < H; y++) memcpy(rgb + (size_t)y * W * 3, v->tmp + (size_t)y * dst_stride, (size_t)W * 3);
        return SAM2D_OK;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int nx, ny;
            if (v->rotation == 90) nx = H - 1 - y, ny = x;
            else if (v->rotation == 180) nx = W - 1 - x, ny = H - 1 - y;
            else nx = y, ny = W - 1 - x;
            const uint8_t *s = v->tmp + (size_t)y * dst_stride + (size_t)x * 3;
            uint8_t *d = rgb + ((size_t)ny * ow + nx) * 3;
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
        }
    return SAM2D_OK;
}

/* Index of the frame with presentation time p, or -1. */
static int index_of_pts(const sam_video *v, int64_t p) {
    int lo = 0, hi = v->count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->pts[mid] == p) return mid;
        if (v->pts[mid] < p) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Restart decoding at keyframe k (0: from the very start, which is always exact). */
static sam2d_status restart_at(sam_video *v, int k) {
    if (k <= 0 || av_seek_frame(v->fmt, v->stream, v->pts[k], AVSEEK_FLAG_BACKWARD) < 0) return reopen(v);
    avcodec_flush_buffers(v->dec);
    v->demux_eof = v->flushed = 0;
    v->next = -1; /* learnt from the first frame's pts */
    return SAM2D_OK;
}

/* Last keyframe at or before i (0 when none). */
static int key_at_or_before(const sam_video *v, int i) {
    while (i > 0 && !v->key[i]) i--;
    return i < 0 ? 0 : i;
}

/* Where to restart for frame i: -1 = keep decoding forward, else a keyframe index. */
static int restart_point(const sam_video *v, int i) {
    if (!v->seekable) return v->next >= 0 && v->next <= i ? -1 : 0;
    int k = key_at_or_before(v, i);
    /* forward decoding from here is cheaper than a seek unless a keyframe lies in between */
    if (v->next >= 0 && v->next <= i && k <= v->next) return -1;
    return k;
}

sam2d_status sam_video_get(sam_video *v, int i, uint8_t *rgb) {
    if (i < 0 || i >= v->count) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "video: frame %d out of range (0..%d)", i, v->count - 1);
    int from = restart_point(v, i); /* keyframe we restarted at, -1 none */
    if (from >= 0) SAM_TRY(restart_at(v, from));
    for (;;) {
        int got, idx = -1;
        SAM_TRY(decode_next(v, &got));
        if (got) {
            if (v->seekable) {
                /* Identify every picture by its time: after a seek the decoder may drop
                 * pictures whose references precede the keyframe (open GOPs), so
                 * counting outputs would drift. */
                idx = index_of_pts(v, frame_pts(v->frame));
            } else {
                /* no usable times: only ever decoded from the start, where outputs match the count */
                idx = v->next;
            }
            if (idx >= v->count) return SAM_ERR(SAM2D_ERR_FORMAT, "video: more frames than counted (changed input?)");
            /* after a seek, a picture the decoder flags as damaged (missing references)
             * is not the frame the counting pass saw: go further back instead */
            int damaged = from > 0 && ((v->frame->flags & AV_FRAME_FLAG_CORRUPT) || v->frame->decode_error_flags);
            if (idx >= 0 && idx <= i && !(idx == i && damaged)) {
                v->next = idx + 1;
                if (idx == i) return convert(v, rgb);
                continue;
            }
        }
        /* Frame i was not produced: the stream ended, a later picture came first, or a time
         * is unknown. Decoders drop pictures after a seek to an open-GOP keyframe when their
         * references are missing, so restart one keyframe earlier; from the start every
         * frame comes out as in the counting pass. */
        if (from == 0)
            return SAM_ERR(SAM2D_ERR_FORMAT, "video: frame %d cannot be decoded again (input changed?)", i);
        if (!v->seekable) from = 0;
        else from = from > 0 ? key_at_or_before(v, from - 1) : key_at_or_before(v, i);
        SAM_TRY(restart_at(v, from));
    }
}
