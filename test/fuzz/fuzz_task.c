/* fuzz_task.c - libFuzzer target for the task record decoder (c_src/tasks/tasks_rec.c), what
 * every coordinator and agent applies to records from the wire (replication, assignments,
 * offers) and from its SQLite copy: any term bl_term_check accepts (version byte first, as the
 * runtime delivers) is decoded; a record that decodes is encoded again and decoded again, and
 * must give the same fields. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "dist/term.h"
#include "tasks/tasks_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = guard_copy(data, size);
    size_t end = 1; /* after the version byte */
    if (!buf || size < 2 || (unsigned char)buf[0] != 131 || bl_term_check(buf, size, &end) != 0 ||
        end != size)
        return 0;
    int idx = 1;
    task *t = bl__task_decode(buf, &idx);
    if (!t) return 0;
    ei_x_buff x;
    ei_x_new(&x);
    bl__task_encode(t, &x, 1);
    int i2 = 0;
    task *u = bl__task_decode(x.buff, &i2);
    if (!u || i2 != x.index || strcmp(u->id, t->id) || strcmp(u->type, t->type) ||
        u->state != t->state || u->attempt != t->attempt || u->ver != t->ver ||
        u->payload_len != t->payload_len || u->nhist != t->nhist || u->ncaps != t->ncaps)
        abort();
    bl__task_free(u);
    bl__task_free(t);
    ei_x_free(&x);
    return 0;
}
