/* disthdr.c - distribution headers, atom cache and fragments (see disthdr.h).
 *
 * Header layout (erts/doc/guides/erl_ext_dist.md, "Distribution Header"): after 131 and the kind
 * ('D' = 68, 'E' = 69 with SequenceId and FragmentId, 'F' = 70 with both and nothing else) comes
 * NumberOfAtomCacheRefs, then (if not 0) NumberOfAtomCacheRefs/2+1 flag bytes holding one
 * half-byte per ref (bit 3: new entry, bits 0-2: segment; even refs in the low half) and one
 * more half-byte whose bit 0 says lengths are 2 bytes (LongAtoms), then per ref the index inside
 * the segment and, for a new entry, length and UTF-8 text. Fragment ids count down to 1. */
#include "disthdr.h"
#include "term.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define VERSION 131
#define PASS_THROUGH 112
#define MAX_FUN_NEST 16 /* term.c walks funs inside funs to a depth of 8 */
#define HDR_NORMAL 68
#define HDR_FRAG 69
#define HDR_CONT 70
#define MAX_OCC 2048               /* atom occurrences replaced per outgoing message */
#define SCRATCH_KEEP (1024 * 1024) /* a larger rewrite buffer is given back after use */
/* A reassembled message keeps SEQ_FRONT bytes free in front of its buffer, and when its bytes
 * after the last atom cache ref (a large binary, say) are SEQ_TAIL_IN_PLACE or more, only what
 * comes before them is rewritten and put in that room: the tail is not copied again. */
#define SEQ_FRONT 512
#define SEQ_TAIL_IN_PLACE (256 * 1024)

typedef struct bl_dh_ref {
    const char *text;
    uint16_t len;
} bl_dh_ref;

/* An incoming sequence being reassembled. */
typedef struct dh_seq {
    UT_hash_handle hh;
    uint64_t id;
    uint64_t next; /* fragment id expected next */
    char *buf;     /* SEQ_FRONT bytes of room, then the message's len bytes (of cap) */
    size_t len, cap;
    unsigned nrefs;
    bl_dh_ref *refs; /* the sequence's own copy of its header's atoms (the cache may change) */
    size_t acct;     /* bytes counted in dc->seq_bytes */
    size_t res;      /* of which message bytes: what was reserved up front, or what came */
} dh_seq;

/* An outgoing sequence: the whole rewritten message, sent from off on. Later frames to the same
 * destination wait in follow (as pass-through frames, encoded when they go out, so the cache
 * changes in stream order): Erlang keeps signals from one process to another in order, and a
 * small message must not overtake a large one to the same process. */
typedef struct dh_job {
    struct dh_job *next;
    uint64_t id;
    uint64_t frag; /* id of the next fragment */
    char *body;
    size_t len, off;
    char *dst; /* the destination term of its control message (pid, name or alias) */
    size_t dstlen;
    bl_sendq follow;
} dh_job;

struct bl_dh_conn {
    uint64_t flags;
    bl_acache in, out;
    dh_seq *seqs;
    size_t seq_bytes;
    uint32_t nseqs, njobs;
    dh_job *jobs, *jobs_tail;
    size_t job_bytes;    /* of large messages, not yet in the send queue */
    size_t follow_bytes; /* of frames waiting behind them */
    uint64_t next_seq;
    bl_dh_stats st;
};

typedef struct {
    uint16_t slot, len;
    uint8_t isnew;
    const char *text;
} plan_ref;

typedef struct {
    uint32_t pos; /* offset of the atom's tag in its part */
    uint16_t enc; /* encoded size of the atom replaced */
    uint8_t ref;  /* ref index */
    uint8_t part; /* 0: control, 1: message */
} plan_occ;

struct bl_dh_scratch {
    char *out; /* rewritten incoming message */
    size_t cap;
    char *held; /* a reassembled buffer rewritten in place: the last message, freed with the next */
    size_t ctl_end; /* where its control term ends */
    /* outgoing plan: which slots this message uses (stamp == gen) and as which ref */
    uint32_t gen;
    uint32_t stamp[BL_ACACHE_SLOTS];
    uint8_t ix[BL_ACACHE_SLOTS];
    plan_ref refs[BL_DH_MAX_REFS];
    unsigned nrefs;
    plan_occ occ[MAX_OCC];
    unsigned nocc;
    int long_atoms;
};

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* ---- lifecycle ---- */

bl_dh_conn *bl_dh_conn_new(uint64_t peer_flags, bl_apool *pool)
{
    bl_dh_conn *dc = calloc(1, sizeof(*dc));
    if (!dc) return NULL;
    bl_acache_init(&dc->in, pool);
    bl_acache_init(&dc->out, pool);
    dc->flags = peer_flags;
    dc->next_seq = 1;
    return dc;
}

static void seq_free(bl_dh_conn *dc, dh_seq *q)
{
    HASH_DEL(dc->seqs, q);
    dc->seq_bytes -= q->acct;
    dc->nseqs--;
    free(q->buf);
    free(q->refs);
    free(q);
}

void bl_dh_conn_free(bl_dh_conn *dc)
{
    if (!dc) return;
    dh_seq *q, *t;
    HASH_ITER(hh, dc->seqs, q, t) seq_free(dc, q);
    while (dc->jobs) {
        dh_job *j = dc->jobs;
        dc->jobs = j->next;
        bl_sendq_free(&j->follow);
        free(j->dst);
        free(j->body);
        free(j);
    }
    bl_acache_free(&dc->in);
    bl_acache_free(&dc->out);
    free(dc);
}

int bl_dh_sends_headers(const bl_dh_conn *dc)
{
    return dc && (dc->flags & (BL_DH_DFLAG_DIST_HDR_ATOM_CACHE | BL_DH_DFLAG_FRAGMENTS));
}

void bl_dh_conn_stats(const bl_dh_conn *dc, bl_dh_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!dc) return;
    *st = dc->st;
    st->cache_in = dc->in.count;
    st->cache_out = dc->out.count;
    st->seqs_in = dc->nseqs;
    st->seqs_out = dc->njobs;
    st->bytes = sizeof(*dc) + dc->in.bytes + dc->out.bytes + dc->seq_bytes + dc->job_bytes +
                dc->follow_bytes;
}

bl_dh_scratch *bl_dh_scratch_new(void)
{
    bl_dh_scratch *s = calloc(1, sizeof(*s));
    if (s) s->gen = 1;
    return s;
}

void bl_dh_scratch_free(bl_dh_scratch *s)
{
    if (!s) return;
    free(s->out);
    free(s->held);
    free(s);
}

/* ---- receiving: the header ---- */

/* Parse NumberOfAtomCacheRefs, flags and refs at p[*off], updating the incoming cache; refs[i]
 * points into the cache (valid until the cache changes). */
static int parse_refs(bl_dh_conn *dc, const unsigned char *p, size_t len, size_t *off,
                      bl_dh_ref *refs, unsigned *nrefs, const char **why)
{
    size_t i = *off;
    if (i >= len) return (*why = "truncated distribution header", BL_DH_EMALFORMED);
    unsigned n = p[i++];
    *nrefs = n;
    if (n == 0) {
        *off = i;
        return 0;
    }
    size_t fbytes = n / 2 + 1;
    if (fbytes > len - i) return (*why = "truncated atom cache flags", BL_DH_EMALFORMED);
    const unsigned char *flags = p + i;
    i += fbytes;
    int long_atoms = (flags[n / 2] >> (4 * (n % 2))) & 1;
    uint8_t seen[BL_ACACHE_SLOTS / 8];
    memset(seen, 0, sizeof(seen));
    for (unsigned r = 0; r < n; r++) {
        unsigned nib = (flags[r / 2] >> (4 * (r % 2))) & 0xF;
        if (i >= len) return (*why = "truncated atom cache ref", BL_DH_EMALFORMED);
        unsigned slot = ((nib & 7) << 8) | p[i++];
        /* BEAM puts a slot at most once in a header; twice could leave a ref to replaced text */
        if (seen[slot / 8] & (1u << (slot % 8)))
            return (*why = "atom cache slot used twice in one header", BL_DH_EMALFORMED);
        seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
        if (nib & 8) { /* new entry */
            size_t alen;
            if (long_atoms) {
                if (2 > len - i) return (*why = "truncated atom cache entry", BL_DH_EMALFORMED);
                alen = ((size_t)p[i] << 8) | p[i + 1];
                i += 2;
            } else {
                if (i >= len) return (*why = "truncated atom cache entry", BL_DH_EMALFORMED);
                alen = p[i++];
            }
            if (alen > BL_ACACHE_MAX_TEXT)
                return (*why = "atom cache entry longer than 255 characters", BL_DH_EMALFORMED);
            if (alen > len - i) return (*why = "truncated atom cache entry", BL_DH_EMALFORMED);
            if (bl_acache_set(&dc->in, slot, (const char *)p + i, alen) != 0)
                return (*why = "out of memory for the atom cache", BL_DH_ENOMEM);
            i += alen;
        }
        const bl_acache_ent *e = bl_acache_get(&dc->in, slot);
        if (!e) return (*why = "reference to an empty atom cache slot", BL_DH_EMALFORMED);
        refs[r].text = e->text;
        refs[r].len = e->len;
    }
    dc->st.refs_in += n;
    *off = i;
    return 0;
}

/* ---- receiving: rewriting into pass-through form ---- */

typedef struct {
    bl_dh_scratch *s;
    const char *src;
    size_t copied; /* src bytes before this are in the output */
    size_t olen, limit;
    const bl_dh_ref *refs;
    unsigned nrefs;
    int err;
    unsigned nfun;                /* open funs ... */
    size_t fun_at[MAX_FUN_NEST]; /* ... and where each one's Size field is in the output */
} rw_ctx;

static int out_reserve(rw_ctx *r, size_t n)
{
    bl_dh_scratch *s = r->s;
    if (n > r->limit || r->olen > r->limit - n) return (r->err = BL_DH_ETOOBIG, -1);
    if (r->olen + n <= s->cap) return 0;
    size_t ncap = s->cap ? s->cap * 2 : 4096;
    if (ncap < r->olen + n) ncap = r->olen + n;
    if (ncap > r->limit) ncap = r->limit;
    char *nb = realloc(s->out, ncap);
    if (!nb) return (r->err = BL_DH_ENOMEM, -1);
    s->out = nb;
    s->cap = ncap;
    return 0;
}

static int out_put(rw_ctx *r, const void *p, size_t n)
{
    if (out_reserve(r, n) != 0) return -1;
    if (n) memcpy(r->s->out + r->olen, p, n);
    r->olen += n;
    return 0;
}

static int rw_ref(void *ud, size_t pos, unsigned idx)
{
    rw_ctx *r = ud;
    if (idx >= r->nrefs) return (r->err = BL_DH_EMALFORMED, -1);
    if (out_put(r, r->src + r->copied, pos - r->copied) != 0) return -1;
    const bl_dh_ref *a = &r->refs[idx];
    unsigned char h[3];
    size_t hl;
    if (a->len <= 255) { /* as term_to_binary and BEAM's distribution encode atoms */
        h[0] = 119;
        h[1] = (unsigned char)a->len;
        hl = 2;
    } else {
        h[0] = 118;
        h[1] = (unsigned char)(a->len >> 8);
        h[2] = (unsigned char)a->len;
        hl = 3;
    }
    if (out_put(r, h, hl) != 0 || out_put(r, a->text, a->len) != 0) return -1;
    r->copied = pos + 2;
    return 0;
}

/* A fun's Size counts its own bytes: resolving refs inside it makes it longer, so its Size is
 * rewritten when it ends (term.c walks funs to a bounded depth). */
static int rw_fun(void *ud, size_t pos, int begin)
{
    rw_ctx *r = ud;
    if (out_put(r, r->src + r->copied, pos - r->copied) != 0) return -1;
    r->copied = pos;
    if (begin) {
        if (r->nfun == MAX_FUN_NEST) return (r->err = BL_DH_EMALFORMED, -1);
        r->fun_at[r->nfun++] = r->olen;
        return 0;
    }
    if (!r->nfun) return (r->err = BL_DH_EMALFORMED, -1);
    size_t at = r->fun_at[--r->nfun], size = r->olen - at;
    if (size > UINT32_MAX) return (r->err = BL_DH_ETOOBIG, -1);
    unsigned char *d = (unsigned char *)r->s->out + at;
    d[0] = (unsigned char)(size >> 24);
    d[1] = (unsigned char)(size >> 16);
    d[2] = (unsigned char)(size >> 8);
    d[3] = (unsigned char)size;
    return 0;
}

/* b[0..blen): control term, then optionally the message term, no version bytes. With tail_at,
 * a message term whose last tail_min bytes or more hold no atom cache ref (nor fun) is rewritten
 * up to there only: *tail_at says where that unchanged tail starts in b, and *outlen counts the
 * rewritten part alone (the caller puts it in front of the tail). Otherwise *tail_at is blen. */
static int rewrite(bl_dh_scratch *s, const char *b, size_t blen, const bl_dh_ref *refs,
                   unsigned nrefs, size_t max_msg, const char **out, size_t *outlen,
                   const char **why, size_t tail_min, size_t *tail_at)
{
    if (s->cap > SCRATCH_KEEP && blen < SCRATCH_KEEP / 4) { /* give a big buffer back */
        free(s->out);
        s->out = NULL;
        s->cap = 0;
    }
    if (tail_at) *tail_at = blen;
    rw_ctx r = {.s = s, .src = b, .limit = max_msg + 3, .refs = refs, .nrefs = nrefs};
    bl_term_hooks h = {.ref = rw_ref, .fun = rw_fun, .ud = &r};
    static const char lead[2] = {(char)PASS_THROUGH, (char)VERSION};
    size_t first = blen + 3 < r.limit ? blen + 3 : r.limit;
    if (tail_at && first > 4096) first = 4096; /* most of it may never be copied here */
    if (out_reserve(&r, first) != 0 || out_put(&r, lead, 2)) goto fail;
    size_t i = 0;
    if (bl_term_walk(b, blen, &i, &h) != 0) goto fail;
    if (out_put(&r, b + r.copied, i - r.copied) != 0) goto fail;
    s->ctl_end = r.olen;
    if (i < blen) {
        static const char v = (char)VERSION;
        if (out_put(&r, &v, 1) != 0) goto fail;
        r.copied = i;
        if (bl_term_walk(b, blen, &i, &h) != 0) goto fail;
        if (i != blen) {
            r.err = BL_DH_EMALFORMED;
            goto fail;
        }
        if (tail_at && i - r.copied >= tail_min) {
            if (i - r.copied > r.limit - r.olen) { /* as out_put would have said */
                r.err = BL_DH_ETOOBIG;
                goto fail;
            }
            *tail_at = r.copied;
        } else if (out_put(&r, b + r.copied, i - r.copied) != 0) {
            goto fail;
        }
    }
    *out = s->out;
    *outlen = r.olen;
    return BL_DH_MSG;
fail:
    if (!r.err) r.err = BL_DH_EMALFORMED;
    *why = r.err == BL_DH_ETOOBIG  ? "message over max_message_size with its atoms resolved"
           : r.err == BL_DH_ENOMEM ? "out of memory resolving atom cache refs"
                                   : "malformed term or atom cache ref after a distribution header";
    return r.err;
}

size_t bl_dh_ctl_end(const bl_dh_scratch *s)
{
    return s->ctl_end;
}

/* ---- receiving: fragments ---- */

static int seq_start(bl_dh_conn *dc, uint64_t id, uint64_t frag, const bl_dh_ref *refs,
                     unsigned nrefs, const char *b, size_t blen, size_t max_msg, const char **why)
{
    dh_seq *q = NULL;
    HASH_FIND(hh, dc->seqs, &id, sizeof(id), q);
    if (q) return (*why = "fragment sequence id already in use", BL_DH_EMALFORMED);
    if (blen > max_msg) return (*why = "fragmented message over max_message_size", BL_DH_ETOOBIG);
    size_t tbytes = 0;
    for (unsigned k = 0; k < nrefs; k++)
        tbytes += refs[k].len;
    size_t over = sizeof(*q) + nrefs * sizeof(bl_dh_ref) + tbytes, acct = over + blen;
    if (dc->seq_bytes > 2 * max_msg || acct > 2 * max_msg - dc->seq_bytes)
        return (*why = "fragments in progress over 2 x max_message_size", BL_DH_ETOOBIG);
    /* Room for the whole message at once if its fragments are as long as this one (BEAM's are,
     * all but the last), so it is not grown and moved fragment by fragment. What is reserved
     * counts as held, within the same bound; without room for it, only what came is held. */
    size_t res = blen;
    if (blen > 0 && frag > 1) {
        size_t all = frag <= max_msg / blen ? blen * (size_t)frag : max_msg;
        if (all > max_msg) all = max_msg;
        if (over + all <= 2 * max_msg - dc->seq_bytes) res = all;
    }
    acct = over + res;
    q = calloc(1, sizeof(*q));
    if (!q) return (*why = "out of memory for a fragment", BL_DH_ENOMEM);
    q->refs = nrefs ? malloc(nrefs * sizeof(bl_dh_ref) + tbytes) : NULL;
    q->cap = res ? res : 1;
    q->res = res;
    q->buf = malloc(SEQ_FRONT + q->cap);
    if ((nrefs && !q->refs) || !q->buf) {
        free(q->refs);
        free(q->buf);
        free(q);
        return (*why = "out of memory for a fragment", BL_DH_ENOMEM);
    }
    char *t = nrefs ? (char *)(q->refs + nrefs) : NULL;
    for (unsigned k = 0; k < nrefs; k++) {
        memcpy(t, refs[k].text, refs[k].len);
        q->refs[k].text = t;
        q->refs[k].len = refs[k].len;
        t += refs[k].len;
    }
    q->nrefs = nrefs;
    memcpy(q->buf + SEQ_FRONT, b, blen);
    q->len = blen;
    q->id = id;
    q->next = frag - 1;
    q->acct = acct;
    dc->seq_bytes += acct;
    dc->nseqs++;
    HASH_ADD(hh, dc->seqs, id, sizeof(q->id), q);
    return BL_DH_NONE;
}

static int seq_cont(bl_dh_conn *dc, bl_dh_scratch *s, uint64_t id, uint64_t frag, const char *b,
                    size_t blen, size_t max_msg, const char **out, size_t *outlen, const char **why)
{
    dh_seq *q = NULL;
    HASH_FIND(hh, dc->seqs, &id, sizeof(id), q);
    if (!q) return (*why = "fragment of an unknown sequence", BL_DH_EMALFORMED);
    if (frag != q->next) return (*why = "fragment out of order", BL_DH_EMALFORMED);
    if (blen > max_msg - q->len)
        return (*why = "fragmented message over max_message_size", BL_DH_ETOOBIG);
    size_t add = q->len + blen > q->res ? q->len + blen - q->res : 0; /* beyond what was held */
    if (add > 2 * max_msg - dc->seq_bytes)
        return (*why = "fragments in progress over 2 x max_message_size", BL_DH_ETOOBIG);
    if (q->len + blen > q->cap) {
        size_t ncap = q->cap * 2;
        if (ncap < q->len + blen) ncap = q->len + blen;
        if (ncap > max_msg) ncap = max_msg;
        char *nb = realloc(q->buf, SEQ_FRONT + ncap);
        if (!nb) return (*why = "out of memory for a fragment", BL_DH_ENOMEM);
        q->buf = nb;
        q->cap = ncap;
    }
    memcpy(q->buf + SEQ_FRONT + q->len, b, blen);
    q->len += blen;
    q->res += add;
    q->acct += add;
    dc->seq_bytes += add;
    if (frag > 1) {
        q->next = frag - 1;
        return BL_DH_NONE;
    }
    char *m = q->buf + SEQ_FRONT;
    size_t tail_at;
    int rc = rewrite(s, m, q->len, q->refs, q->nrefs, max_msg, out, outlen, why, SEQ_TAIL_IN_PLACE,
                     &tail_at);
    if (rc == BL_DH_MSG && tail_at < q->len) {
        /* the rewritten head goes just before the tail, over bytes already rewritten (or into
         * the room in front): the message ends up in q->buf, kept until the next one is read */
        if (*outlen > SEQ_FRONT + tail_at) { /* refs grew the head past the room: copy it all */
            rw_ctx r = {.s = s, .limit = max_msg + 3, .olen = *outlen};
            if (out_put(&r, m + tail_at, q->len - tail_at) != 0) {
                rc = r.err;
                *why = rc == BL_DH_ETOOBIG ? "message over max_message_size with its atoms resolved"
                                           : "out of memory resolving atom cache refs";
            } else {
                *out = s->out;
                *outlen = r.olen;
            }
        } else {
            char *head = m + tail_at - *outlen;
            memmove(head, s->out, *outlen);
            *out = head;
            *outlen += q->len - tail_at;
            free(s->held);
            s->held = q->buf;
            q->buf = NULL;
        }
    }
    seq_free(dc, q);
    if (rc == BL_DH_MSG) dc->st.reassembled++;
    return rc;
}

int bl_dh_recv(bl_dh_conn *dc, bl_dh_scratch *s, const char *p, size_t len, size_t max_msg,
               const char **out, size_t *outlen, const char **why)
{
    const unsigned char *u = (const unsigned char *)p;
    bl_dh_ref refs[BL_DH_MAX_REFS];
    unsigned nrefs = 0;
    free(s->held); /* the last message rewritten in place has been handled */
    s->held = NULL;
    if (len < 2 || u[0] != VERSION) return (*why = "bad distribution header", BL_DH_EMALFORMED);
    dc->st.hdr_in++;
    size_t off = 2;
    int rc;
    switch (u[1]) {
    case HDR_NORMAL:
        if ((rc = parse_refs(dc, u, len, &off, refs, &nrefs, why)) != 0) return rc;
        return rewrite(s, p + off, len - off, refs, nrefs, max_msg, out, outlen, why, 0, NULL);
    case HDR_FRAG: {
        if (len < 2 + 16) return (*why = "truncated fragment header", BL_DH_EMALFORMED);
        uint64_t id = get64(u + 2), frag = get64(u + 10);
        off = 18;
        dc->st.frags_in++;
        if (frag == 0) return (*why = "fragment id 0", BL_DH_EMALFORMED);
        if ((rc = parse_refs(dc, u, len, &off, refs, &nrefs, why)) != 0) return rc;
        if (frag == 1) { /* a sequence of one */
            dh_seq *q = NULL;
            HASH_FIND(hh, dc->seqs, &id, sizeof(id), q);
            if (q) return (*why = "fragment sequence id already in use", BL_DH_EMALFORMED);
            return rewrite(s, p + off, len - off, refs, nrefs, max_msg, out, outlen, why, 0, NULL);
        }
        return seq_start(dc, id, frag, refs, nrefs, p + off, len - off, max_msg, why);
    }
    case HDR_CONT: {
        if (len < 2 + 16) return (*why = "truncated fragment header", BL_DH_EMALFORMED);
        dc->st.frags_in++;
        return seq_cont(dc, s, get64(u + 2), get64(u + 10), p + 18, len - 18, max_msg, out, outlen,
                        why);
    }
    default:
        return (*why = "unknown distribution header", BL_DH_EMALFORMED);
    }
}

/* ---- sending: the plan ---- */

typedef struct {
    bl_dh_scratch *s;
    bl_dh_conn *dc;
    const char *buf;
    uint8_t part;
    unsigned in_fun; /* atoms inside a fun stay whole: a ref would change the fun's Size */
} plan_ctx;

static int plan_fun(void *ud, size_t pos, int begin)
{
    plan_ctx *p = ud;
    (void)pos;
    if (begin) p->in_fun++;
    else if (p->in_fun) p->in_fun--;
    return 0;
}

static int plan_atom(void *ud, size_t pos, size_t text, size_t len)
{
    plan_ctx *p = ud;
    bl_dh_scratch *s = p->s;
    const char *t = p->buf + text;
    unsigned char tag = (unsigned char)p->buf[pos];
    if (p->in_fun || s->nocc == MAX_OCC || pos > UINT32_MAX) return 0; /* stays a full atom */
    /* Only atoms in the form a cache ref comes back as (SMALL_ATOM_UTF8, or ATOM_UTF8 when
     * longer than 255 bytes; what ei writes): the receiver then sees exactly the bytes we were
     * given. Latin-1 atoms (their bytes are not UTF-8 text) stay as they are. */
    if (tag != (len <= 255 ? 119 : 118)) return 0;
    unsigned slot = bl_acache_slot_of(t, len);
    unsigned r;
    if (s->stamp[slot] == s->gen) {
        r = s->ix[slot];
        if (s->refs[r].len != len || memcmp(s->refs[r].text, t, len) != 0) return 0;
    } else {
        if (s->nrefs == BL_DH_MAX_REFS) return 0;
        r = s->nrefs++;
        s->stamp[slot] = s->gen;
        s->ix[slot] = (uint8_t)r;
        const bl_acache_ent *e = bl_acache_get(&p->dc->out, slot);
        plan_ref *pr = &s->refs[r];
        pr->slot = (uint16_t)slot;
        pr->len = (uint16_t)len;
        pr->text = t;
        pr->isnew = !(e && e->len == len && memcmp(e->text, t, len) == 0);
        if (pr->isnew && len > 255) s->long_atoms = 1;
    }
    plan_occ *o = &s->occ[s->nocc++];
    o->pos = (uint32_t)pos;
    o->enc = (uint16_t)(text + len - pos);
    o->ref = (uint8_t)r;
    o->part = p->part;
    return 0;
}

static void plan_reset(bl_dh_scratch *s)
{
    if (++s->gen == 0) { /* wrapped: clear the stamps once every 2^32 messages */
        memset(s->stamp, 0, sizeof(s->stamp));
        s->gen = 1;
    }
    s->nrefs = s->nocc = 0;
    s->long_atoms = 0;
}

/* Plan ctl[1..) and msg[1..); returns the rewritten body size (both terms, no version bytes).
 * A term that cannot be walked is sent as it is, or when check is set refused: (size_t)-1. */
static size_t plan(bl_dh_conn *dc, bl_dh_scratch *s, const char *ctl, size_t ctllen,
                   const char *msg, size_t msglen, size_t *ctl_body, int check)
{
    plan_reset(s);
    plan_ctx p = {.s = s, .dc = dc, .buf = ctl, .part = 0};
    bl_term_hooks h = {.atom = plan_atom, .fun = plan_fun, .ud = &p};
    size_t i = 1, j = 1;
    int ok = bl_term_walk(ctl, ctllen, &i, &h) == 0 && i == ctllen;
    if (ok && msg) {
        p.buf = msg;
        p.part = 1;
        ok = bl_term_walk(msg, msglen, &j, &h) == 0 && j == msglen;
    }
    if (!ok && check) return (size_t)-1;
    if (!ok) plan_reset(s); /* not a term we can walk: send it as it is */
    size_t saved_ctl = 0, saved = 0;
    for (unsigned k = 0; k < s->nocc; k++) {
        saved += s->occ[k].enc - 2u;
        if (s->occ[k].part == 0) saved_ctl += s->occ[k].enc - 2u;
    }
    *ctl_body = ctllen - 1 - saved_ctl;
    return ctllen - 1 + (msg ? msglen - 1 : 0) - saved;
}

static size_t header_size(const bl_dh_scratch *s, int frag)
{
    size_t n = s->nrefs, sz = (frag ? 18 : 2) + 1;
    if (!n) return sz;
    sz += n / 2 + 1;
    for (unsigned k = 0; k < n; k++)
        sz += 1 + (s->refs[k].isnew ? (s->long_atoms ? 2u : 1u) + s->refs[k].len : 0u);
    return sz;
}

/* Write the header and record the new entries in the outgoing cache. */
static size_t header_write(bl_dh_conn *dc, const bl_dh_scratch *s, unsigned char *d, int frag,
                           uint64_t id, uint64_t fragid)
{
    size_t i = 0;
    d[i++] = VERSION;
    d[i++] = frag ? HDR_FRAG : HDR_NORMAL;
    if (frag) {
        put64(d + i, id);
        put64(d + i + 8, fragid);
        i += 16;
    }
    unsigned n = s->nrefs;
    d[i++] = (unsigned char)n;
    if (!n) return i;
    unsigned char *flags = d + i;
    memset(flags, 0, n / 2 + 1);
    i += n / 2 + 1;
    for (unsigned k = 0; k < n; k++) {
        const plan_ref *r = &s->refs[k];
        unsigned nib = (r->isnew ? 8u : 0u) | (r->slot >> 8);
        flags[k / 2] |= (unsigned char)(nib << (4 * (k % 2)));
        d[i++] = (unsigned char)(r->slot & 0xFF);
        if (r->isnew) {
            if (s->long_atoms) d[i++] = (unsigned char)(r->len >> 8);
            d[i++] = (unsigned char)r->len;
            memcpy(d + i, r->text, r->len);
            i += r->len;
            /* on failure the slot is marked unknown and is sent as new next time */
            (void)bl_acache_set(&dc->out, r->slot, r->text, r->len);
        }
    }
    if (s->long_atoms) flags[n / 2] |= (unsigned char)(1u << (4 * (n % 2)));
    dc->st.refs_out += n;
    return i;
}

/* Copy ctl[1..) and msg[1..) to d with the planned atoms replaced by refs. */
static size_t body_write(const bl_dh_scratch *s, char *d, const char *ctl, size_t ctllen,
                         const char *msg, size_t msglen)
{
    size_t o = 0;
    unsigned k = 0;
    for (int part = 0; part < 2; part++) {
        const char *src = part ? msg : ctl;
        size_t slen = part ? msglen : ctllen;
        if (!src) break;
        size_t copied = 1;
        for (; k < s->nocc && s->occ[k].part == part; k++) {
            const plan_occ *oc = &s->occ[k];
            memcpy(d + o, src + copied, oc->pos - copied);
            o += oc->pos - copied;
            d[o++] = 82;
            d[o++] = (char)oc->ref;
            copied = oc->pos + oc->enc;
        }
        memcpy(d + o, src + copied, slen - copied);
        o += slen - copied;
    }
    return o;
}

static void put_len(char *d, size_t len)
{
    unsigned char *p = (unsigned char *)d;
    p[0] = (unsigned char)(len >> 24);
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
}

/* Where the destination of a control message is: {Op, ...} with the target pid, name or alias at
 * element 3 for most ops, 4 for REG_SEND(_TT) and UNLINK_ID(_ACK). ctl starts with 131. Returns
 * 0 with [*off, *off + *len), or -1 for ops without one (SPAWN_REQUEST: the node itself). */
static int ctl_dest(const char *ctl, size_t ctllen, size_t *off, size_t *len)
{
    const unsigned char *u = (const unsigned char *)ctl;
    if (ctllen < 5 || u[1] != 104 || u[2] < 3 || u[3] != 97) return -1;
    unsigned op = u[4], elem;
    switch (op) {
    case 6:  /* REG_SEND */
    case 16: /* REG_SEND_TT */
    case 35: /* UNLINK_ID */
    case 36: /* UNLINK_ID_ACK */
        elem = 4;
        break;
    case 29: /* SPAWN_REQUEST(_TT): to the node */
    case 30:
        return -1;
    default:
        elem = 3;
        break;
    }
    if (u[2] < elem) return -1;
    size_t i = 5;
    for (unsigned k = 2; k < elem; k++)
        if (bl_term_check(ctl, ctllen, &i) != 0) return -1;
    size_t start = i;
    if (bl_term_check(ctl, ctllen, &i) != 0) return -1;
    *off = start;
    *len = i - start;
    return 0;
}

static void job_push(bl_dh_conn *dc, dh_job *j)
{
    j->next = NULL;
    if (dc->jobs_tail)
        dc->jobs_tail->next = j;
    else
        dc->jobs = j;
    dc->jobs_tail = j;
}

/* A frame held behind a job: 'p', ctl, msg, as it would have been sent without headers. */
static int follow(bl_dh_conn *dc, dh_job *j, const char *ctl, size_t ctllen, const char *msg,
                  size_t msglen)
{
    size_t payload = 1 + ctllen + (msg ? msglen : 0);
    char *d = bl_sendq_reserve(&j->follow, 4 + payload);
    if (!d) return -1;
    put_len(d, payload);
    d[4] = PASS_THROUGH;
    memcpy(d + 5, ctl, ctllen);
    if (msg) memcpy(d + 5 + ctllen, msg, msglen);
    bl_sendq_commit(&j->follow, 4 + payload);
    dc->follow_bytes += 4 + payload;
    return 0;
}

static int send_now(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, const char *ctl, size_t ctllen,
                    const char *msg, size_t msglen, size_t limit, int check);

int bl_dh_send(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, const char *ctl, size_t ctllen,
               const char *msg, size_t msglen, size_t limit, int check)
{
    if (ctllen < 2 || (msg && msglen < 2)) return -1;
    if (check && msg && (unsigned char)msg[0] != VERSION) return -3;
    size_t doff, dlen;
    if (dc->jobs && ctl_dest(ctl, ctllen, &doff, &dlen) == 0) {
        for (dh_job *j = dc->jobs; j; j = j->next) {
            if (j->dstlen != dlen || memcmp(j->dst, ctl + doff, dlen) != 0) continue;
            size_t m = 1;
            if (check && msg && (bl_term_check(msg, msglen, &m) != 0 || m != msglen)) return -3;
            if (dc->follow_bytes > limit) return -2;
            return follow(dc, j, ctl, ctllen, msg, msglen);
        }
    }
    return send_now(dc, s, q, ctl, ctllen, msg, msglen, limit, check);
}

static int send_now(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, const char *ctl, size_t ctllen,
                    const char *msg, size_t msglen, size_t limit, int check)
{
    size_t ctl_body;
    size_t body = plan(dc, s, ctl, ctllen, msg, msglen, &ctl_body, check);
    if (body == (size_t)-1) return -3;
    if (!(dc->flags & BL_DH_DFLAG_FRAGMENTS) || body <= BL_DH_FRAG_SIZE) {
        size_t hs = header_size(s, 0);
        char *d = bl_sendq_reserve(q, 4 + hs + body);
        if (!d) return -1;
        put_len(d, hs + body);
        size_t w = header_write(dc, s, (unsigned char *)d + 4, 0, 0, 0);
        w += body_write(s, d + 4 + w, ctl, ctllen, msg, msglen);
        bl_sendq_commit(q, 4 + w);
        dc->st.hdr_out++;
        return 0;
    }
    /* fragments: the first holds the whole control message (as BEAM requires) */
    if (dc->job_bytes > limit) return -2;
    size_t first = ctl_body > BL_DH_FRAG_SIZE ? ctl_body : BL_DH_FRAG_SIZE;
    if (first > body) first = body;
    uint64_t nfrag = 1 + (body - first + BL_DH_FRAG_SIZE - 1) / BL_DH_FRAG_SIZE;
    size_t doff = 0, dlen = 0;
    int keyed = ctl_dest(ctl, ctllen, &doff, &dlen) == 0;
    dh_job *j = calloc(1, sizeof(*j));
    char *b = malloc(body);
    char *dst = keyed ? malloc(dlen) : NULL;
    size_t hs = header_size(s, 1);
    char *d = j && b && (dst || !keyed) ? bl_sendq_reserve(q, 4 + hs + first) : NULL;
    if (!d) {
        free(j);
        free(b);
        free(dst);
        return -1;
    }
    if (keyed) memcpy(dst, ctl + doff, dlen);
    j->dst = dst;
    j->dstlen = dlen;
    bl_sendq_init(&j->follow);
    j->id = dc->next_seq++;
    put_len(d, hs + first);
    size_t w = header_write(dc, s, (unsigned char *)d + 4, 1, j->id, nfrag);
    (void)body_write(s, b, ctl, ctllen, msg, msglen);
    memcpy(d + 4 + w, b, first);
    bl_sendq_commit(q, 4 + w + first);
    dc->st.hdr_out++;
    dc->st.frags_out++;
    dc->st.fragmented++;
    j->body = b;
    j->len = body;
    j->off = first;
    j->frag = nfrag - 1;
    dc->job_bytes += body - first;
    dc->njobs++;
    job_push(dc, j);
    return 0;
}

size_t bl_dh_pending(const bl_dh_conn *dc)
{
    return dc ? dc->job_bytes + dc->follow_bytes : 0;
}

static int resubmit(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, bl_sendq *from);

int bl_dh_pump(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, size_t low_water)
{
    int moved = 0;
    while (dc && dc->jobs && bl_sendq_bytes(q) < low_water) {
        dh_job *j = dc->jobs;
        size_t n = j->len - j->off;
        if (n > BL_DH_FRAG_SIZE) n = BL_DH_FRAG_SIZE;
        char *d = bl_sendq_reserve(q, 4 + 18 + n);
        if (!d) return -1;
        put_len(d, 18 + n);
        unsigned char *h = (unsigned char *)d + 4;
        h[0] = VERSION;
        h[1] = HDR_CONT;
        put64(h + 2, j->id);
        put64(h + 10, j->frag);
        memcpy(d + 4 + 18, j->body + j->off, n);
        bl_sendq_commit(q, 4 + 18 + n);
        j->off += n;
        dc->job_bytes -= n;
        dc->st.frags_out++;
        dc->st.hdr_out++;
        moved++;
        dc->jobs = j->next;
        if (!dc->jobs) dc->jobs_tail = NULL;
        if (--j->frag == 0) {
            dc->njobs--;
            dc->follow_bytes -= bl_sendq_bytes(&j->follow);
            bl_sendq held = j->follow;
            free(j->dst);
            free(j->body);
            free(j);
            /* what waited for it goes now, in order (possibly behind a new job) */
            if (resubmit(dc, s, q, &held) != 0) return -1;
        } else {
            job_push(dc, j); /* round robin between sequences */
        }
    }
    return moved;
}

/* Send every pass-through frame of from (freed) through bl_dh_send into q, in order. */
static int resubmit(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, bl_sendq *from)
{
    int rc = 0;
    for (bl_chunk *c = from->head; c && rc == 0; c = c->next) {
        size_t i = c->start;
        while (i + 4 <= c->end) {
            const unsigned char *u = (const unsigned char *)c->data + i;
            size_t len = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
            if (len > c->end - i - 4) {
                rc = -1;
                break;
            }
            const char *p = c->data + i + 4;
            i += 4 + len;
            if (len == 0) { /* a tick */
                char *d = bl_sendq_reserve(q, 4);
                if (!d) {
                    rc = -1;
                    break;
                }
                memset(d, 0, 4);
                bl_sendq_commit(q, 4);
                continue;
            }
            /* 'p', 131, control term, then 131 and the message term if any */
            size_t e = 2;
            if (len < 3 || (unsigned char)p[0] != PASS_THROUGH || (unsigned char)p[1] != VERSION ||
                bl_term_check(p, len, &e) != 0) {
                rc = -1;
                break;
            }
            const char *msg = e < len ? p + e : NULL;
            if (bl_dh_send(dc, s, q, p + 1, e - 1, msg, msg ? len - e : 0, SIZE_MAX, 0) != 0) {
                rc = -1;
                break;
            }
        }
    }
    bl_sendq_free(from);
    return rc;
}

int bl_dh_requeue(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q)
{
    bl_sendq old = *q;
    bl_sendq_init(q);
    int rc = resubmit(dc, s, q, &old);
    if (rc != 0) bl_sendq_free(q);
    return rc;
}
