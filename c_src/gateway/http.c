/* http.c - the gateway's HTTP server on the node's event loop.
 *
 * libmicrohttpd in external epoll mode: MHD keeps its listening and connection sockets in its own
 * epoll set; the loop watches that one fd (an ev_io) and MHD's next deadline (an ev_timer from
 * MHD_get_timeout) and calls MHD_run, which never blocks. Nothing here waits: a handler that
 * needs another process (a local service or a remote node) suspends its connection, and the
 * reply resumes it (32 connections per loop turn at most, so a storm's answers do not hold the
 * loop in one MHD_run). Limits: connections (total), request line + headers (MHD's per-connection
 * memory), body size (here), idle time (MHD's connection timeout); a slow client only ever holds
 * its own connection. TLS (MHD with GnuTLS) when a certificate and key are configured. */
#include "gw_int.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gw_callw {
    struct gw_callw *prev, *next; /* a DL list: a storm keeps hundreds in flight, and each one
                                   * completed leaves it in O(1), not by a walk of the list */
    bl__gw *g;
    gw_req *r;
    gw_call_cb cb;
} gw_callw;

/* The wrappers of calls in flight, per node: freed at stop when their process ends first. */
static gw_callw **calls_of(bl__gw *g)
{
    return (gw_callw **)&g->calls;
}

static void mhd_run(bl__gw *g);

static void rearm(bl__gw *g)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    ev_timer_stop(g->n->loop, &g->tm);
    if (g->mhd->get_timeout(g->d, &ms) == MHD_YES) {
        ev_timer_set(&g->tm, ms > 60000 ? 60.0 : ms / 1000.0, 0.);
        ev_timer_start(g->n->loop, &g->tm);
    }
}

/* Answered requests are resumed GW_RESUME_PER_TURN at a time, oldest first. MHD writes and
 * closes every resumed connection inside its next run, and a storm's answers arrive together:
 * resuming them all at once made one MHD_run hold the loop (and a BEAM call waiting behind it)
 * for tens of ms. The rest wait a loop turn each, after the loop has polled its sockets. */
#define GW_RESUME_PER_TURN 32

static void resume_share(bl__gw *g)
{
    for (int k = 0; k < GW_RESUME_PER_TURN && g->ready; k++) {
        gw_req *r = g->ready;
        DL_DELETE2(g->ready, r, rprev, rnext);
        r->resume_queued = 0;
        if (!r->suspended) continue;
        r->suspended = 0;
        g->mhd->resume_connection(r->c);
    }
}

static void mhd_run(bl__gw *g)
{
    if (!g->d) return;
    resume_share(g);
    g->mhd->run(g->d);
    rearm(g);
    if (g->ready) bl__gw_http_kick(g); /* the next share on the next turn */
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    mhd_run(w->data);
}

static void tm_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mhd_run(w->data);
}

void bl__gw_http_kick(bl__gw *g)
{
    if (!g->d) return;
    ev_timer_stop(g->n->loop, &g->tm);
    ev_timer_set(&g->tm, 0., 0.);
    ev_timer_start(g->n->loop, &g->tm);
}

/* ---- answers ---- */

void bl__gw_reply(gw_req *r, int status, const char *ctype, const char *body, size_t len)
{
    if (r->answered) return;
    free(r->resp);
    r->resp = malloc(len ? len : 1);
    if (!r->resp) {
        status = 500;
        len = 0;
        r->resp = malloc(1);
    } else if (len) {
        memcpy(r->resp, body, len);
    }
    r->resp_len = len;
    r->status = status;
    r->ctype = ctype;
    r->answered = 1;
}

void bl__gw_reply_json(gw_req *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!s) {
        bl__gw_problem(r, 500, "Internal Server Error", "the answer could not be encoded");
        return;
    }
    bl__gw_reply(r, status, "application/json", s, strlen(s));
    free(s);
}

static const char *slug(int status)
{
    switch (status) {
    case 400:
        return "bad-request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not-found";
    case 405:
        return "method-not-allowed";
    case 409:
        return "conflict";
    case 413:
        return "payload-too-large";
    case 414:
        return "uri-too-long";
    case 415:
        return "unsupported-media-type";
    case 422:
        return "unprocessable";
    case 429:
        return "too-many-requests";
    case 502:
        return "bad-gateway";
    case 503:
        return "unavailable";
    case 504:
        return "gateway-timeout";
    default:
        return "internal";
    }
}

void bl__gw_problem(gw_req *r, int status, const char *title, const char *detail)
{
    if (r->answered) return;
    char type[128];
    snprintf(type, sizeof(type), "https://beamlet.dev/problems/%s", slug(status));
    json_t *j = json_pack("{s:s, s:s, s:i}", "type", type, "title", title, "status", status);
    /* detail may quote client input: jansson refuses invalid UTF-8, so say so instead */
    json_t *d = detail ? json_string(detail) : NULL;
    if (detail) json_object_set_new(j, "detail", d ? d : json_string("(not valid UTF-8)"));
    json_t *inst = json_string(r->path);
    if (inst) json_object_set_new(j, "instance", inst);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    bl__gw_reply(r, status, "application/problem+json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

const char *bl__gw_arg(gw_req *r, const char *name)
{
    return r->c ? r->g->mhd->lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

const char *bl__gw_header(gw_req *r, const char *name)
{
    return r->c ? r->g->mhd->lookup_connection_value(r->c, MHD_HEADER_KIND, name) : NULL;
}

static void count_status(bl__gw *g, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) g->http_requests[cls]++;
}

static enum MHD_Result queue(gw_req *r)
{
    bl__gw *g = r->g;
    const bl__mhd *m = g->mhd;
    struct MHD_Response *resp =
        m->create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    m->add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    m->add_response_header(resp, "X-Content-Type-Options", "nosniff");
    m->add_response_header(resp, "Cache-Control", "no-store");
    if (r->ctype && !strncmp(r->ctype, "text/html", 9)) {
        m->add_response_header(resp, "Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; style-src 'self' "
                               "'unsafe-inline'; frame-ancestors 'none'");
        m->add_response_header(resp, "X-Frame-Options", "DENY");
    }
    if (r->retry_after[0]) m->add_response_header(resp, "Retry-After", r->retry_after);
    char tp[BL_TRACEPARENT_LEN];
    if (bl_trace_format(&r->trace, tp, sizeof(tp)) == BL_OK) /* the trace it joined or began */
        m->add_response_header(resp, "traceparent", tp);
    if (r->allow[0]) m->add_response_header(resp, "Allow", r->allow);
    if (r->status == 401) m->add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = m->queue_response(r->c, (unsigned)r->status, resp);
    m->destroy_response(resp);
    r->queued = 1;
    count_status(g, r->status);
    if (r->route && r->route->write) /* every write, whatever came of it */
        bl__gw_audit(g, r, r->status, r->status < 400 ? "ok" : "failed");
    if (bl_trace_sampled(g->n)) { /* r->trace is current here (on_request) */
        json_t *d =
            json_pack("{s:s, s:s, s:i}", "method", r->method, "path", r->path, "status", r->status);
        char *txt = d ? json_dumps(d, JSON_COMPACT) : NULL;
        bl_trace_event(g->n, "http.request", txt);
        free(txt);
        json_decref(d);
    }
    return rc;
}

/* ---- the event stream's response ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gw_stream *s = cls;
    if (s->dead) return MHD_CONTENT_READER_END_WITH_ERROR;
    ssize_t k = bl__gw_stream_read(s, buf, max);
    if (k > 0) return k;
    s->suspended = 1;
    s->r->g->mhd->suspend_connection(s->r->c);
    return 0;
}

static enum MHD_Result queue_stream(gw_req *r)
{
    const bl__mhd *m = r->g->mhd;
    struct MHD_Response *resp = m->create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                 stream_reader, r->stream, NULL);
    if (!resp) return MHD_NO;
    m->add_response_header(resp, "Content-Type", "text/event-stream");
    m->add_response_header(resp, "Cache-Control", "no-store");
    m->add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result rc = m->queue_response(r->c, 200, resp);
    m->destroy_response(resp);
    r->queued = 1;
    count_status(r->g, 200);
    return rc;
}

/* ---- calls on behalf of a request ---- */

static void req_free(gw_req *r)
{
    bl__gw *g = r->g;
    DL_DELETE(g->reqs, r);
    if (r->resume_queued) DL_DELETE2(g->ready, r, rprev, rnext);
    if (r->stream) bl__gw_stream_free(r->stream);
    json_decref(r->acc);
    free(r->text);
    free(r->body);
    free(r->resp);
    free(r);
}

static void call_cb(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    gw_callw *w = ud;
    gw_req *r = w->r;
    gw_call_cb cb = w->cb;
    DL_DELETE(*calls_of(w->g), w);
    free(w);
    r->outstanding--;
    if (!r->closed) cb(r, status, buf, index);
    bl__gw_call_done(r);
}

int bl__gw_call(gw_req *r, const char *proc, const char *node, const char *req, int reqlen,
                gw_call_cb cb)
{
    return bl__gw_call_tmo(r, proc, node, req, reqlen, GW_CALL_TIMEOUT_MS, cb);
}

int bl__gw_call_tmo(gw_req *r, const char *proc, const char *node, const char *req, int reqlen,
                    unsigned tmo_ms, gw_call_cb cb)
{
    gw_callw *w = calloc(1, sizeof(*w));
    if (!w) return BL_ENOMEM;
    w->g = r->g;
    w->r = r;
    w->cb = cb;
    int rc = bl_call(r->g->proc, NULL, proc, node, req, reqlen, tmo_ms, call_cb, w);
    if (rc != BL_OK) {
        free(w);
        return rc;
    }
    DL_PREPEND(*calls_of(r->g), w);
    r->outstanding++;
    return BL_OK;
}

void bl__gw_call_done(gw_req *r)
{
    if (r->outstanding > 0) return;
    if (r->closed) {
        req_free(r);
        return;
    }
    if (!r->answered)
        bl__gw_problem(r, 500, "Internal Server Error", "the request produced no answer");
    if (r->suspended && !r->resume_queued) { /* resumed by the next turns' mhd_run */
        r->resume_queued = 1;
        DL_APPEND2(r->g->ready, r, rprev, rnext);
        bl__gw_http_kick(r->g);
    }
}

/* ---- MHD callbacks ---- */

static void client_addr(bl__gw *g, struct MHD_Connection *c, char *out, size_t outsz)
{
    snprintf(out, outsz, "?");
    const union MHD_ConnectionInfo *ci =
        g->mhd->get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outsz);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)outsz);
}

static enum MHD_Result handle_request(bl__gw *g, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *upload_data,
                                      size_t *upload_size, void **con_cls);

/* The request's trace (W3C trace context): a valid traceparent header is continued (its sampled
 * flag kept), else a new trace begins, sampled for writes; it is current while the request's
 * code runs on the loop and comes back in the response's traceparent header. */
static void begin_trace(bl__gw *g, gw_req *r)
{
    const char *tp = g->mhd->lookup_connection_value(r->c, MHD_HEADER_KIND, "traceparent");
    bl_trace parent;
    if (tp && bl_trace_parse(tp, strlen(tp), &parent) == BL_OK) {
        bl_trace_child(&parent, &r->trace);
        return;
    }
    int write = strcmp(r->method, "GET") && strcmp(r->method, "HEAD");
    bl_trace_new(&r->trace, write ? BL_TRACE_SAMPLED : 0);
}

/* One open connection: when its current request began (the connection's start, or the end of
 * the previous request on a kept-alive connection). MHD's own timeout is an idle one, so a client
 * that trickles a byte now and then could hold a request open for ever; the sweep caps it. */
typedef struct gw_conn {
    struct gw_conn *prev, *next;
    struct MHD_Connection *c;
    ev_tstamp since;
    int streaming; /* an SSE stream: long-lived on purpose */
    int capped;    /* shut down by the sweep */
} gw_conn;

static gw_conn *conn_of(bl__gw *g, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        g->mhd->get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    bl__gw *g = cls;
    bl_trace saved = g->n->ctx.trace;
    gw_req *r = *con_cls;
    if (r) bl_trace_set(g->n, &r->trace);
    enum MHD_Result rc = handle_request(g, c, url, method, upload_data, upload_size, con_cls);
    g->n->ctx.trace = saved;
    return rc;
}

static enum MHD_Result handle_request(bl__gw *g, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *upload_data,
                                      size_t *upload_size, void **con_cls)
{
    gw_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r) return MHD_NO;
        r->g = g;
        r->c = c;
        r->role = GW_ROLE_NONE;
        snprintf(r->method, sizeof(r->method), "%s", method);
        if (strlen(url) >= sizeof(r->path)) r->status = 414;
        snprintf(r->path, sizeof(r->path), "%s", url);
        client_addr(g, c, r->addr, sizeof(r->addr));
        snprintf(r->who, sizeof(r->who), "anonymous");
        begin_trace(g, r);
        bl_trace_set(g->n, &r->trace);
        const char *cl = g->mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > g->n->cfg.http_max_body_bytes) r->too_big = 1;
        DL_PREPEND(g->reqs, r);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t k = *upload_size;
        *upload_size = 0;
        if (r->too_big) return MHD_YES;
        if (r->blen + k > g->n->cfg.http_max_body_bytes) {
            r->too_big = 1;
            free(r->body);
            r->body = NULL;
            r->blen = 0;
            return MHD_YES;
        }
        char *nb = realloc(r->body, r->blen + k + 1);
        if (!nb) return MHD_NO;
        memcpy(nb + r->blen, upload_data, k);
        r->body = nb;
        r->blen += k;
        r->body[r->blen] = 0;
        return MHD_YES;
    }
    if (r->queued) return MHD_YES;
    if (r->started_stream || r->answered) { /* resumed: the answer is ready */
        if (r->outstanding) {
            r->suspended = 1;
            g->mhd->suspend_connection(c);
            return MHD_YES;
        }
        return r->stream ? queue_stream(r) : queue(r);
    }
    if (r->status == 414)
        bl__gw_problem(r, 414, "URI Too Long", "the request target is too long");
    else if (r->too_big)
        bl__gw_problem(r, 413, "Content Too Large", "the request body is over http_max_body_bytes");
    else
        bl__gw_dispatch(r);
    if (r->stream) {
        r->started_stream = 1;
        gw_conn *k = conn_of(g, c);
        if (k) k->streaming = 1;
        return queue_stream(r);
    }
    if (r->outstanding) {
        r->suspended = 1;
        g->mhd->suspend_connection(c);
        return MHD_YES;
    }
    if (!r->answered)
        bl__gw_problem(r, 500, "Internal Server Error", "the request produced no answer");
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    bl__gw *g = cls;
    gw_conn *k = c ? conn_of(g, c) : NULL;
    if (k && !k->capped) k->since = ev_now(g->n->loop); /* the next request starts now */
    gw_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    r->c = NULL;
    if (r->stream) {
        r->stream->dead = 1;
        r->stream->r = NULL;
    }
    if (r->outstanding) {
        r->closed = 1; /* freed when the last call returns */
        return;
    }
    req_free(r);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    bl__gw *g = cls;
    gw_conn **head = (gw_conn **)&g->conns;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        g->nconns++;
        gw_conn *k = calloc(1, sizeof(*k));
        if (!k) return; /* not capped: the idle timeout and the limits still hold */
        k->c = c;
        k->since = ev_now(g->n->loop);
        DL_APPEND(*head, k);
        *socket_context = k;
        return;
    }
    if (g->nconns) g->nconns--;
    gw_conn *k = *socket_context;
    if (k) {
        DL_DELETE(*head, k);
        free(k);
        *socket_context = NULL;
    }
}

/* once a second: a connection whose request is still arriving (or whose answer is still being
 * read) after http_request_timeout_s is shut down; MHD sees the end of the socket at once and
 * closes the connection itself (the descriptor stays MHD's, so no other can take its number) */
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bl__gw *g = w->data;
    ev_tstamp cap = g->n->cfg.http_request_timeout_s, now = ev_now(loop);
    int cut = 0;
    for (gw_conn *k = g->conns; k; k = k->next) {
        if (k->streaming || k->capped || now - k->since < cap) continue;
        const union MHD_ConnectionInfo *ci =
            g->mhd->get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) continue;
        shutdown(ci->connect_fd, SHUT_RDWR);
        k->capped = 1;
        g->request_timeouts++;
        cut++;
    }
    if (cut) {
        bl_log(g->n, BL_LOG_INFO, "http: %d connection(s) closed: a request took over %u s",
               cut, g->n->cfg.http_request_timeout_s);
        bl__gw_http_kick(g);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    bl__gw *g = cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
        line[--l] = 0;
    bl_log(g->n, BL_LOG_DEBUG, "http: %s", line);
}

/* MHD's own unescaping, except that an escaped NUL (which would cut the path or a query value
 * short, "app.js%00.png" -> "app.js") makes the whole string one that matches nothing. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)c;
    bl__gw *g = cls;
    if (strstr(s, "%00")) {
        static const char bad[] = "/\x01nul";
        size_t l = strlen(s);
        memcpy(s, bad, l < sizeof(bad) ? l : sizeof(bad));
        s[l < sizeof(bad) - 1 ? l : sizeof(bad) - 1] = 0;
        return strlen(s);
    }
    return g->mhd->http_unescape(s);
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1024 * 1024 + 1);
    size_t k = buf ? fread(buf, 1, 1024 * 1024, f) : 0;
    fclose(f);
    if (!buf || k == 0 || k >= 1024 * 1024) {
        free(buf);
        snprintf(err, errlen, "%s: empty, unreadable or over 1 MiB", path);
        return NULL;
    }
    buf[k] = 0;
    return buf;
}

int bl__gw_http_start(bl__gw *g)
{
    bl_node *n = g->n;
    const bl_config *cfg = &n->cfg;
    g->port = cfg->http_port >= 0 ? cfg->http_port : !strcmp(cfg->role, "gateway") ? 8080 : 0;
    if (!g->port) return BL_OK;
    g->dashboard = cfg->dashboard != 0;
    g->loopback = !strncmp(cfg->http_address, "127.", 4);
    g->mhd = bl__mhd_get();
    if (!g->mhd) {
        bl_log(n, BL_LOG_ERROR,
               "http: cannot load libmicrohttpd.so.12 (Debian package libmicrohttpd12)");
        return BL_ECONFIG;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    char err[600];
    if (cfg->http_tls_cert[0] || cfg->http_tls_key[0]) {
        if (!cfg->http_tls_cert[0] || !cfg->http_tls_key[0]) {
            bl_log(n, BL_LOG_ERROR, "http: HTTPS needs both http_tls_cert and http_tls_key");
            return BL_ECONFIG;
        }
        if (!(g->tls_cert = read_file(cfg->http_tls_cert, err, sizeof(err))) ||
            !(g->tls_key = read_file(cfg->http_tls_key, err, sizeof(err)))) {
            bl_log(n, BL_LOG_ERROR, "http: invalid http_tls_cert/http_tls_key: %s", err);
            return BL_ECONFIG;
        }
        flags |= MHD_USE_TLS;
        g->tls = 1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g->port);
    inet_pton(AF_INET, cfg->http_address, &sa.sin_addr);
    struct MHD_OptionItem tls_opts[] = {
        {g->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, g->tls_key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, g->tls_cert},
        {MHD_OPTION_END, 0, NULL},
    };
    g->d = g->mhd->start_daemon(
        flags, (uint16_t)g->port, NULL, NULL, on_request, g, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->http_max_header_bytes,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, g, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        g, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, g, MHD_OPTION_UNESCAPE_CALLBACK, unescape, g,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!g->d) {
        bl_log(n, BL_LOG_ERROR, "http: cannot listen on %s:%d%s", cfg->http_address, g->port,
               g->tls ? " (or the TLS certificate/key were refused)" : "");
        return BL_ESYS;
    }
    const union MHD_DaemonInfo *di = g->mhd->get_daemon_info(g->d, MHD_DAEMON_INFO_EPOLL_FD);
    ev_io_init(&g->io, io_cb, di->epoll_fd, EV_READ);
    g->io.data = g;
    ev_io_start(n->loop, &g->io);
    ev_init(&g->tm, tm_cb);
    g->tm.data = g;
    rearm(g);
    ev_timer_init(&g->sweep, sweep_cb, 1.0, 1.0);
    g->sweep.data = g;
    ev_timer_start(n->loop, &g->sweep);
    bl_log(n, BL_LOG_INFO, "http: %s://%s:%d/ (dashboard %s, reads %s)", g->tls ? "https" : "http",
           cfg->http_address, g->port, g->dashboard ? "on" : "off",
           g->loopback || cfg->http_public_read ? "open" : "need a key");
    return BL_OK;
}

void bl__gw_http_stop(bl__gw *g)
{
    if (g->d) {
        /* MHD must not be stopped with suspended connections: let them go first (all now) */
        while (g->ready) {
            gw_req *r = g->ready;
            DL_DELETE2(g->ready, r, rprev, rnext);
            r->resume_queued = 0;
        }
        for (gw_stream *s = g->streams; s; s = s->next) {
            s->dead = 1;
            if (s->suspended && s->r && s->r->c) {
                s->suspended = 0;
                g->mhd->resume_connection(s->r->c);
            }
        }
        for (gw_req *r = g->reqs; r; r = r->next)
            if (r->suspended && r->c) {
                r->suspended = 0;
                if (!r->answered) bl__gw_problem(r, 503, "Service Unavailable", "node stopping");
                r->outstanding = 0;
                g->mhd->resume_connection(r->c);
            }
        g->mhd->run(g->d);
        ev_io_stop(g->n->loop, &g->io);
        ev_timer_stop(g->n->loop, &g->tm);
        ev_timer_stop(g->n->loop, &g->sweep);
        g->mhd->stop_daemon(g->d);
        g->d = NULL;
    }
    gw_callw *w, *wt;
    DL_FOREACH_SAFE(*calls_of(g), w, wt) {
        DL_DELETE(*calls_of(g), w);
        free(w);
    }
    while (g->reqs)
        req_free(g->reqs);
    free(g->tls_cert);
    free(g->tls_key);
    g->tls_cert = g->tls_key = NULL;
}
