/* render.h - turning reply terms into what a person or a program reads: JSON and tables. */
#ifndef BL_CLI_RENDER_H
#define BL_CLI_RENDER_H

#include <ei.h>
#include <jansson.h>
#include <stdio.h>

/* Any term to JSON: maps -> objects (keys as strings), lists/tuples -> arrays, atoms -> strings
 * (true/false -> booleans, undefined -> null), binaries -> strings, numbers -> numbers. */
json_t *bl_term_to_json(const char *buf, int *index);
/* JSON to a term (the other way): bl__json_to_term, one encoder for every layer */
#include "../runtime/jsonterm.h"
/* Members list (a JSON array of member objects) as an aligned table; colour states when tty. */
void bl_print_members_table(FILE *out, json_t *members, int tty);
/* Cluster status object as readable lines. */
void bl_print_status(FILE *out, json_t *status, int tty);

#endif
