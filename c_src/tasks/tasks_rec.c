/* tasks_rec.c - the task record (tasks_int.h): one map encoding shared by the replication
 * messages between coordinators, the SQLite copy and the replies of `beamlet_tasks`, and its
 * decoder (a table of keys; unknown keys are skipped, so newer nodes may add fields). */
#include "tasks_int.h"
#include "beamlet/trace.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const STATE[TS__COUNT] = {"queued", "assigned",  "running",  "succeeded",
                                             "failed", "cancelled", "timed_out"};
static const char *const PRIO[3] = {"high", "normal", "low"};

const char *bl__task_state_name(int s)
{
    return s >= 0 && s < TS__COUNT ? STATE[s] : "unknown";
}

int bl__task_state_parse(const char *s)
{
    for (int i = 0; i < TS__COUNT; i++)
        if (!strcmp(s, STATE[i])) return i;
    return -1;
}

const char *bl__task_prio_name(int p)
{
    return p >= 0 && p < 3 ? PRIO[p] : "normal";
}

/* trace ids come from the runtime's trace API (runtime/trace.c: the kernel's CSPRNG) */
void bl__trace_id_new(char out[BL_TRACE_ID_LEN])
{
    bl_trace t;
    bl_trace_new(&t, 0); /* fails only for NULL */
    bl_trace_id_hex(&t, out, BL_TRACE_ID_LEN);
}

int bl__term_dup(const char *buf, int *idx, char **out, int *len)
{
    int start = *idx;
    if (bl__skip_term(buf, idx) < 0) return -1;
    int n = *idx - start;
    if (n <= 0 || n > TASK_MAX_TERM) return -1;
    char *p = malloc((size_t)n);
    if (!p) return -1;
    memcpy(p, buf + start, (size_t)n);
    free(*out);
    *out = p;
    *len = n;
    return 0;
}

int bl__get_bin(const char *buf, int *idx, char *out, size_t cap)
{
    int type, size;
    long len;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_UTF8_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_EXT) {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, a) < 0 || strlen(a) >= cap) return -1;
        memcpy(out, a, strlen(a) + 1);
        return 0;
    }
    if (type != ERL_BINARY_EXT || size < 0 || (size_t)size >= cap ||
        ei_decode_binary(buf, idx, out, &len) < 0)
        return -1;
    out[len] = 0;
    return (long)strlen(out) == len ? 0 : -1; /* no NUL inside */
}

static void kv_bin(ei_x_buff *x, const char *k, const char *v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_binary(x, v, (long)strlen(v));
}

static void kv_u64(ei_x_buff *x, const char *k, unsigned long long v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_ulonglong(x, v);
}

static void kv_atom(ei_x_buff *x, const char *k, const char *v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_atom(x, v);
}

static void kv_term(ei_x_buff *x, const char *k, const char *t, int len)
{
    ei_x_encode_atom(x, k);
    if (t && len > 0)
        ei_x_append_buf(x, t, len);
    else
        ei_x_encode_atom(x, "undefined");
}

int bl__task_encode(const task *t, ei_x_buff *x, int full)
{
    int ok = t->state == TS_SUCCEEDED;
    ei_x_encode_map_header(x, 22 + (full ? 1 : 0));
    kv_bin(x, "id", t->id);
    kv_bin(x, "type", t->type);
    if (full) kv_term(x, "payload", t->payload, t->payload_len);
    ei_x_encode_atom(x, "capabilities");
    if (t->ncaps) {
        ei_x_encode_list_header(x, (long)t->ncaps);
        for (unsigned i = 0; i < t->ncaps; i++)
            ei_x_encode_binary(x, t->caps[i], (long)strlen(t->caps[i]));
    }
    ei_x_encode_empty_list(x);
    kv_atom(x, "priority", bl__task_prio_name(t->prio));
    kv_u64(x, "timeout_ms", t->timeout_ms);
    kv_u64(x, "retries", t->retries);
    kv_u64(x, "queue_timeout_ms", t->queue_timeout_ms);
    if (t->idem[0])
        kv_bin(x, "idempotency_key", t->idem);
    else
        kv_atom(x, "idempotency_key", "undefined");
    kv_bin(x, "trace_id", t->trace_id);
    kv_atom(x, "state", bl__task_state_name(t->state));
    kv_u64(x, "attempt", t->attempt);
    kv_u64(x, "lost", t->lost);
    if (t->agent[0])
        kv_atom(x, "agent", t->agent);
    else
        kv_atom(x, "agent", "undefined");
    kv_u64(x, "submitted_ms", t->submitted_ms);
    kv_u64(x, "updated_ms", t->updated_ms);
    kv_u64(x, "next_at_ms", t->next_at_ms);
    /* result: the value of a succeeded task; error: the last failure's reason */
    kv_term(x, "result", ok ? t->result : NULL, ok ? t->result_len : 0);
    kv_term(x, "error", ok ? NULL : t->result, ok ? 0 : t->result_len);
    ei_x_encode_atom(x, "progress");
    ei_x_encode_map_header(x, 2);
    kv_u64(x, "percent", t->progress);
    kv_bin(x, "note", t->note);
    ei_x_encode_atom(x, "history");
    if (t->nhist) {
        ei_x_encode_list_header(x, (long)t->nhist);
        for (unsigned i = 0; i < t->nhist; i++) {
            const task_hist *h = &t->hist[i];
            ei_x_encode_map_header(x, 4);
            kv_atom(x, "state", bl__task_state_name(h->state));
            kv_u64(x, "time_ms", h->time_ms);
            kv_atom(x, "agent", h->agent[0] ? h->agent : "undefined");
            kv_u64(x, "attempt", h->attempt);
        }
    }
    ei_x_encode_empty_list(x);
    kv_u64(x, "ver", t->ver);
    kv_u64(x, "term", t->term);
    return 0;
}

void bl__task_free(task *t)
{
    if (!t) return;
    free(t->payload);
    free(t->result);
    free(t->hist);
    free(t);
}

/* the next history entry (the oldest but the first dropped when full); NULL out of memory */
static task_hist *hist_slot(task *t)
{
    if (t->nhist == TASK_HIST_MAX) { /* keep the first (queued) and the latest ones */
        memmove(&t->hist[1], &t->hist[2], sizeof(t->hist[0]) * (TASK_HIST_MAX - 2));
        t->nhist--;
    }
    if (t->nhist == t->caphist) {
        unsigned cap = t->caphist ? t->caphist * 2 : 4;
        if (cap > TASK_HIST_MAX) cap = TASK_HIST_MAX;
        task_hist *h = realloc(t->hist, cap * sizeof(*h));
        if (!h) return NULL;
        t->hist = h;
        t->caphist = cap;
    }
    task_hist *h = &t->hist[t->nhist++];
    memset(h, 0, sizeof(*h));
    return h;
}

void bl__task_hist_add(task *t, int state, unsigned long long now_ms)
{
    task_hist *h = hist_slot(t);
    if (!h) return; /* out of memory: the transition is not in the history */
    h->state = (unsigned char)state;
    h->attempt = t->attempt;
    h->time_ms = now_ms;
    snprintf(h->agent, sizeof(h->agent), "%s", state == TS_QUEUED ? "" : t->agent);
}

void bl__task_assign(task *dst, task *src)
{
    free(dst->payload);
    free(dst->result);
    free(dst->hist);
    bl__repl_link link = dst->link;
    double ca = dst->check_after, dl = dst->deadline;
    int rp = dst->repl_pending, di = dst->dirty, orph = dst->orphan;
    UT_hash_handle hh = dst->hh;
    open_ent open = dst->open;
    *dst = *src;
    dst->hh = hh;
    dst->open = open;
    dst->link = link;
    dst->check_after = ca;
    dst->deadline = dl;
    dst->repl_pending = rp;
    dst->dirty = di;
    dst->orphan = orph;
    src->payload = src->result = NULL;
    src->hist = NULL;
    src->nhist = src->caphist = 0;
}

/* ---- decoding ---- */

static int get_u64(const char *buf, int *idx, unsigned long long *v)
{
    return ei_decode_ulonglong(buf, idx, v);
}

static int get_uint(const char *buf, int *idx, unsigned *v)
{
    unsigned long long u;
    if (get_u64(buf, idx, &u) < 0 || u > 0xffffffffull) return -1;
    *v = (unsigned)u;
    return 0;
}

static int get_atom(const char *buf, int *idx, char *a)
{
    return ei_decode_atom(buf, idx, a);
}

/* an atom, or undefined -> "" */
static int get_node(const char *buf, int *idx, char *out, size_t cap)
{
    char a[MAXATOMLEN_UTF8];
    if (get_atom(buf, idx, a) < 0 || strlen(a) >= cap) return -1;
    snprintf(out, cap, "%s", strcmp(a, "undefined") ? a : "");
    return 0;
}

static int opt_term(const char *buf, int *idx, char **out, int *len)
{
    char a[MAXATOMLEN_UTF8];
    int i = *idx;
    if (ei_decode_atom(buf, &i, a) == 0 && !strcmp(a, "undefined")) {
        *idx = i;
        return 0;
    }
    return bl__term_dup(buf, idx, out, len);
}

typedef int (*field_fn)(task *t, const char *buf, int *idx);

static int f_id(task *t, const char *b, int *i)
{
    return bl__get_bin(b, i, t->id, sizeof(t->id));
}
static int f_type(task *t, const char *b, int *i)
{
    return bl__get_bin(b, i, t->type, sizeof(t->type));
}
static int f_payload(task *t, const char *b, int *i)
{
    return opt_term(b, i, &t->payload, &t->payload_len);
}
static int f_caps(task *t, const char *b, int *i)
{
    bl__list_it it;
    int more;
    t->ncaps = 0;
    if (bl__list_begin(&it, b, i) < 0) return -1;
    while ((more = bl__list_next(&it)) > 0) {
        if (t->ncaps >= TASK_MAX_CAPS ||
            bl__get_bin(b, i, t->caps[t->ncaps], sizeof(t->caps[0])) < 0)
            return -1;
        t->ncaps++;
    }
    return more;
}
static int f_prio(task *t, const char *b, int *i)
{
    char a[MAXATOMLEN_UTF8];
    if (get_atom(b, i, a) < 0) return -1;
    t->prio = !strcmp(a, "high") ? 0 : !strcmp(a, "low") ? 2 : 1;
    return 0;
}
static int f_timeout(task *t, const char *b, int *i)
{
    return get_uint(b, i, &t->timeout_ms);
}
static int f_retries(task *t, const char *b, int *i)
{
    return get_uint(b, i, &t->retries);
}
static int f_qtimeout(task *t, const char *b, int *i)
{
    return get_uint(b, i, &t->queue_timeout_ms);
}
static int f_idem(task *t, const char *b, int *i)
{
    char a[MAXATOMLEN_UTF8];
    int j = *i;
    if (ei_decode_atom(b, &j, a) == 0 && !strcmp(a, "undefined")) {
        *i = j;
        t->idem[0] = 0;
        return 0;
    }
    return bl__get_bin(b, i, t->idem, sizeof(t->idem));
}
static int f_trace(task *t, const char *b, int *i)
{
    return bl__get_bin(b, i, t->trace_id, sizeof(t->trace_id));
}
static int f_state(task *t, const char *b, int *i)
{
    char a[MAXATOMLEN_UTF8];
    if (get_atom(b, i, a) < 0 || (t->state = bl__task_state_parse(a)) < 0) return -1;
    return 0;
}
static int f_attempt(task *t, const char *b, int *i)
{
    return get_uint(b, i, &t->attempt);
}
static int f_lost(task *t, const char *b, int *i)
{
    return get_uint(b, i, &t->lost);
}
static int f_agent(task *t, const char *b, int *i)
{
    return get_node(b, i, t->agent, sizeof(t->agent));
}
static int f_sub(task *t, const char *b, int *i)
{
    return get_u64(b, i, &t->submitted_ms);
}
static int f_upd(task *t, const char *b, int *i)
{
    return get_u64(b, i, &t->updated_ms);
}
static int f_next(task *t, const char *b, int *i)
{
    return get_u64(b, i, &t->next_at_ms);
}
static int f_result(task *t, const char *b, int *i)
{
    char a[MAXATOMLEN_UTF8];
    int j = *i;
    if (ei_decode_atom(b, &j, a) == 0 && !strcmp(a, "undefined")) {
        *i = j;
        return 0; /* the other one of result / error carries it */
    }
    return bl__term_dup(b, i, &t->result, &t->result_len);
}
static int f_progress(task *t, const char *b, int *i)
{
    int ar;
    if (ei_decode_map_header(b, i, &ar) < 0) return -1;
    for (int k = 0; k < ar; k++) {
        char key[MAXATOMLEN_UTF8];
        if (get_atom(b, i, key) < 0) return -1;
        if (!strcmp(key, "percent")) {
            if (get_uint(b, i, &t->progress) < 0) return -1;
        } else if (!strcmp(key, "note")) {
            if (bl__get_bin(b, i, t->note, sizeof(t->note)) < 0) return -1;
        } else if (bl__skip_term(b, i) < 0) {
            return -1;
        }
    }
    return 0;
}
static int f_hist(task *t, const char *b, int *i)
{
    bl__list_it it;
    int more;
    t->nhist = 0;
    if (bl__list_begin(&it, b, i) < 0) return -1;
    while ((more = bl__list_next(&it)) > 0) {
        int ar;
        task_hist *h;
        if (t->nhist >= TASK_HIST_MAX || ei_decode_map_header(b, i, &ar) < 0 ||
            !(h = hist_slot(t)))
            return -1;
        for (int k = 0; k < ar; k++) {
            char key[MAXATOMLEN_UTF8], a[MAXATOMLEN_UTF8];
            int st;
            if (get_atom(b, i, key) < 0) return -1;
            if (!strcmp(key, "state")) {
                if (get_atom(b, i, a) < 0 || (st = bl__task_state_parse(a)) < 0) return -1;
                h->state = (unsigned char)st;
            } else if (!strcmp(key, "time_ms")) {
                if (get_u64(b, i, &h->time_ms) < 0) return -1;
            } else if (!strcmp(key, "agent")) {
                if (get_node(b, i, h->agent, sizeof(h->agent)) < 0) return -1;
            } else if (!strcmp(key, "attempt")) {
                if (get_uint(b, i, &h->attempt) < 0) return -1;
            } else if (bl__skip_term(b, i) < 0) {
                return -1;
            }
        }
    }
    return more;
}
static int f_ver(task *t, const char *b, int *i)
{
    return get_u64(b, i, &t->ver);
}
static int f_term(task *t, const char *b, int *i)
{
    return get_u64(b, i, &t->term);
}

static const struct {
    const char *key;
    field_fn fn;
} FIELDS[] = {
    {"id", f_id},
    {"type", f_type},
    {"payload", f_payload},
    {"capabilities", f_caps},
    {"priority", f_prio},
    {"timeout_ms", f_timeout},
    {"retries", f_retries},
    {"queue_timeout_ms", f_qtimeout},
    {"idempotency_key", f_idem},
    {"trace_id", f_trace},
    {"state", f_state},
    {"attempt", f_attempt},
    {"lost", f_lost},
    {"agent", f_agent},
    {"submitted_ms", f_sub},
    {"updated_ms", f_upd},
    {"next_at_ms", f_next},
    {"result", f_result},
    {"error", f_result},
    {"progress", f_progress},
    {"history", f_hist},
    {"ver", f_ver},
    {"term", f_term},
};

task *bl__task_decode(const char *buf, int *idx)
{
    int ar;
    if (ei_decode_map_header(buf, idx, &ar) < 0 || ar < 0) return NULL;
    task *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->prio = 1;
    for (int k = 0; k < ar; k++) {
        char key[MAXATOMLEN_UTF8];
        if (get_atom(buf, idx, key) < 0) goto bad;
        size_t f;
        for (f = 0; f < sizeof(FIELDS) / sizeof(FIELDS[0]); f++)
            if (!strcmp(key, FIELDS[f].key)) break;
        if (f == sizeof(FIELDS) / sizeof(FIELDS[0])) {
            if (bl__skip_term(buf, idx) < 0) goto bad;
        } else if (FIELDS[f].fn(t, buf, idx) < 0) {
            goto bad;
        }
    }
    if (!t->id[0] || !t->type[0]) goto bad;
    if (!bl_trace_id_valid(t->trace_id)) bl__trace_id_new(t->trace_id);
    return t;
bad:
    bl__task_free(t);
    return NULL;
}
