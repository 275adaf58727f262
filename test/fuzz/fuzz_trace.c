/* fuzz_trace.c - libFuzzer target for the trace-context parsers (docs/tracing.md):
 *   byte 0 % 3 == 0: the rest is a traceparent (HTTP header, CLI flag, pub/sub opts):
 *                    bl_trace_parse must not read past it, and what it accepts must format back
 *                    to the same 55 characters (version 00) or to a version-00 form of it;
 *                    the same bytes as a trace id: bl_trace_from_id;
 *   == 1: an encoded gen_server call tag (checked with bl_term_check first, as every incoming
 *         term is): bl__tag_trace;
 *   == 2: an encoded seq_trace token (checked the same way): bl__seqtok_decode. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/term.h"
#include "runtime/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024) return 0;
    const char *b = (const char *)data + 1;
    size_t n = size - 1;
    char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any over-read */
    if (!copy) return 0;
    memcpy(copy, b, n);
    switch (data[0] % 3) {
    case 0: {
        bl_trace t;
        if (bl_trace_parse(copy, n, &t) == BL_OK) {
            char out[BL_TRACEPARENT_LEN];
            if (bl_trace_format(&t, out, sizeof(out)) != BL_OK) abort();
            if (n == 55 && copy[0] == '0' && copy[1] == '0' && memcmp(out, copy, 55)) abort();
            if (memcmp(out + 3, copy + 3, 50)) abort(); /* ids and separators kept */
            bl_trace again;
            if (bl_trace_parse(out, 55, &again) != BL_OK ||
                memcmp(again.trace_id, t.trace_id, 16) || memcmp(again.span_id, t.span_id, 8))
                abort();
        } else if (t.valid) {
            abort();
        }
        /* the same bytes as a stored trace id: taken only as 32 lowercase hex digits, and
         * then given back unchanged */
        char id[48];
        size_t idn = n < sizeof(id) - 1 ? n : sizeof(id) - 1;
        memcpy(id, copy, idn);
        id[idn] = 0;
        bl_trace f;
        if (bl_trace_from_id(id, 0, &f) == BL_OK) {
            char hex[BL_TRACE_ID_LEN];
            if (!bl_trace_id_valid(id) || bl_trace_id_hex(&f, hex, sizeof(hex)) != BL_OK ||
                strcmp(hex, id))
                abort();
        } else if (f.valid || bl_trace_id_valid(id)) {
            abort();
        }
        break;
    }
    case 1: {
        size_t i = 0;
        bl_trace t;
        if (n && bl_term_check(copy, n, &i) == 0 && i == n && bl__tag_trace(copy, (int)n, &t) &&
            !t.valid)
            abort();
        break;
    }
    default: {
        size_t i = 0;
        bl_seqtok tok;
        if (n && bl_term_check(copy, n, &i) == 0 && i == n &&
            bl__seqtok_decode(copy, 0, n, &tok) == 0 &&
            (!tok.valid || tok.fl_len <= 0 || tok.fl_len > BL_SEQTOK_MAX))
            abort();
        break;
    }
    }
    free(copy);
    return 0;
}
