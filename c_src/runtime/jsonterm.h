/* jsonterm.h - JSON to an Erlang term, the one encoder every layer uses (jsonterm.c): the
 * cluster configuration's change notices, the CLI's request and payload arguments, the gateway's
 * and the CLI's task payloads. */
#ifndef BL_RUNTIME_JSONTERM_H
#define BL_RUNTIME_JSONTERM_H

#include <ei.h>
#include <jansson.h>

/* object keys as atoms (our own field names: `service call`, the admin replies, change
 * notices); without it keys are binaries (a user's payload, whose keys are data) */
#define BL__JT_ATOM_KEYS 1u
#define BL__JT_MAX_DEPTH 64

/* Objects -> maps, arrays -> lists, strings -> binaries, integers and reals -> numbers,
 * true/false -> atoms, null -> undefined; appended to x (a term body, no version byte).
 * 0, or -1 (NULL, nested deeper than BL__JT_MAX_DEPTH, a key too long for an atom, out of
 * memory): x then holds a partial term, not to be sent. */
int bl__json_to_term(const json_t *j, ei_x_buff *x, unsigned flags);

#endif
