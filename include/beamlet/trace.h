/* trace.h - correlation ids: W3C trace context (traceparent) that follows one request through
 * the cluster (docs/tracing.md).
 *
 * A trace is a 16-byte trace id shared by everything one request causes, plus the 8-byte span id
 * of the current hop and the W3C trace flags (bit 0: sampled). Text form, as the `traceparent`
 * HTTP header: "00-<32 hex trace id>-<16 hex parent/span id>-<2 hex flags>".
 *
 * The node keeps a *current trace* on its loop: while a process handles a message that carried a
 * trace (a gen_server call from a traced caller, a traced pub/sub message, the reply to a call made
 * under a trace, a local message sent under one), that trace is current; log lines get its trace
 * id, and what the handler causes carries it on (bl_call, bl_service_call, bl_pubsub_publish,
 * events, local sends). It is cleared when the handler returns. Code that starts work of its own
 * (an edge: a CLI command, an HTTP request, a task taken from a queue) sets it with bl_trace_set
 * or bl_trace_begin and clears it with bl_trace_set(n, NULL) when done.
 * Loop thread only, like the rest of the API. */
#ifndef BEAMLET_TRACE_H
#define BEAMLET_TRACE_H

#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_TRACEPARENT_LEN 56 /* "00-" + 32 + "-" + 16 + "-" + 2, NUL included */
#define BL_TRACE_ID_LEN 33    /* 32 hex digits, NUL included */
#define BL_TRACE_SAMPLED 0x01 /* W3C trace-flags bit: events are recorded for this trace */

typedef struct bl_trace {
    uint8_t trace_id[16];
    uint8_t span_id[8]; /* this hop's span; sent on as the next hop's parent id */
    uint8_t flags;      /* BL_TRACE_SAMPLED, ... */
    uint8_t valid;      /* 0: no trace */
} bl_trace;

/* Parse a traceparent (len bytes, no NUL needed): version 00 exactly 55 characters; a later
 * version at least 55 with '-' after the flags (the rest ignored, as the W3C spec says); lowercase
 * hex; version ff, an all-zero trace id or parent id refused. The parent id becomes span_id.
 * BL_OK or BL_EINVAL (out cleared). */
int bl_trace_parse(const char *s, size_t len, bl_trace *out);
/* "00-...": cap >= BL_TRACEPARENT_LEN. BL_OK, or BL_EINVAL for an invalid trace or short cap. */
int bl_trace_format(const bl_trace *t, char *out, size_t cap);
/* The 32 hex digits of the trace id: cap >= BL_TRACE_ID_LEN. */
int bl_trace_id_hex(const bl_trace *t, char *out, size_t cap);
/* 1 when s is 32 lowercase hex digits, not all zero (a trace id as `events --trace` takes it). */
int bl_trace_id_valid(const char *s);
/* The trace of a stored trace id (32 lowercase hex digits, as bl_trace_id_hex gives it and
 * bl_trace_id_valid accepts it) with a new random span id and the given flags: to work under a
 * record's trace later (a task's transitions). BL_OK, or BL_EINVAL (out cleared). */
int bl_trace_from_id(const char *id, uint8_t flags, bl_trace *out);
/* A new trace (random trace id and span id from the kernel's CSPRNG); flags: BL_TRACE_SAMPLED or
 * 0. */
int bl_trace_new(bl_trace *out, uint8_t flags);
/* The next hop: same trace id and flags, a new random span id. */
int bl_trace_child(const bl_trace *parent, bl_trace *out);

/* The current trace, or NULL. */
const bl_trace *bl_trace_current(const bl_node *n);
/* Make t (copied) the current trace; NULL clears it. */
void bl_trace_set(bl_node *n, const bl_trace *t);
/* At an edge: continue traceparent when it is valid (a child span of it), else start a new trace
 * with new_flags; the result becomes current and is copied to *out (may be NULL). Returns 1 when
 * traceparent was taken, 0 when a new trace was started. */
int bl_trace_begin(bl_node *n, const char *traceparent, uint8_t new_flags, bl_trace *out);

/* 1 when the current trace is sampled (a trace event would be recorded): build an event's
 * detail only then. */
int bl_trace_sampled(const bl_node *n);
/* Record a trace event on this node ("what" touched the current trace): only when the current
 * trace is sampled and an event log is running (the health service). detail_json: a JSON object
 * text or NULL. Shown by `beamlet events --trace ID`. */
void bl_trace_event(bl_node *n, const char *what, const char *detail_json);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
