/* render.h - turning reply terms into what a person or a program reads: JSON and tables. */
#ifndef BL_CLI_RENDER_H
#define BL_CLI_RENDER_H

#include <ei.h>
#include <jansson.h>
#include <stdio.h>

/* Any term to JSON: maps -> objects (keys as strings), lists/tuples -> arrays, atoms -> strings
 * (true/false -> booleans, undefined -> null), binaries -> strings, numbers -> numbers. */
json_t *bl_term_to_json(const char *buf, int *index);
/* JSON to a term (the other way): objects -> maps with atom keys, arrays -> lists, strings ->
 * binaries, numbers, true/false -> atoms, null -> undefined. */
void bl_json_to_term(ei_x_buff *r, json_t *j);
/* JSON to a term body (objects -> maps with binary keys, strings -> binaries, null ->
 * undefined); 0 or -1. */
int bl_json_to_term_bin(json_t *j, ei_x_buff *x); /* gateway/termjson.c */
/* Members list (a JSON array of member objects) as an aligned table; colour states when tty. */
void bl_print_members_table(FILE *out, json_t *members, int tty);
/* Cluster status object as readable lines. */
void bl_print_status(FILE *out, json_t *status, int tty);

#endif
