/* log.c - one line per event on stderr, with level, UTC time and node; text or JSON. A line
 * logged while a trace is current carries its id: "trace_id" in JSON, " trace=ID" at the end of
 * a text line (docs/tracing.md).
 *
 * JSON lines are built with jansson so any message text is escaped correctly. */
#include "internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static const char *LEVELS[] = {"error", "warn", "info", "debug"};

void bl_logv(bl_node *n, bl_log_level lvl, const char *fmt, va_list ap)
{
    if (n && lvl > n->cfg.log_level) return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    const char *node = n && n->name[0] ? n->name : "-";
    char tid[BL_TRACE_ID_LEN] = "";
    if (n && n->ctx.trace.valid) bl_trace_id_hex(&n->ctx.trace, tid, sizeof(tid));
    if (n && n->cfg.log_format == BL_LOG_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "level", LEVELS[lvl], "node",
                              node, "msg", msg);
        if (o && tid[0]) json_object_set_new(o, "trace_id", json_string(tid));
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (line) fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %-5s %s: %s%s%s\n", ts, LEVELS[lvl], node, msg, tid[0] ? " trace=" : "",
                tid);
    }
}

void bl_log(bl_node *n, bl_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bl_logv(n, lvl, fmt, ap);
    va_end(ap);
}
