/* registry_node.c - a beamlet node that drives the service registry's C API for
 * bl_registry_tests (test/services/registry). Flags: those of `beamlet node`.
 *
 * Its `reg_ctl` process answers gen_server calls:
 *   {c_register, Name, TtlMs, [Tag], Process} -> {ok, Id} | {error, Reason}  (bl_registry_register)
 *   {c_find, Name, TagAny}                    -> Count                        (bl_registry_find)
 *   {c_call, Name, Req, TimeoutMs}            -> {ok, Reply} | {error, Reason} (bl_service_call)
 *   {c_set_health, Id, 0|1|2} | {c_deregister, Id} | {c_renew, Id} -> ok | {error, Reason}
 *   c_events   -> [{added | removed | health_changed, Id, Node}] seen by a C watcher, oldest first
 *   c_invalid  -> ok when every malformed input is refused with BL_EINVAL, else {error, Case} */
#include "../../lib/test_cnode.h"
#include "beamlet/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 256

typedef struct pending {
    struct pending *next;
    bl_from from;
} pending;

typedef struct {
    bl_node *n;
    int nev;
    struct {
        int ev;
        char id[BL_REG_ID_LEN];
        char node[BL_NODE_LEN];
    } ev[MAX_EVENTS];
    pending *calls;
} ctl;

static const char *EV[] = {"added", "removed", "health_changed"};

static void on_watch(bl_node *n, bl_registry_event ev, const bl_service_entry *e, void *ud)
{
    (void)n;
    ctl *c = ud;
    if (c->nev >= MAX_EVENTS) return;
    c->ev[c->nev].ev = (int)ev;
    snprintf(c->ev[c->nev].id, BL_REG_ID_LEN, "%s", e->id);
    snprintf(c->ev[c->nev].node, BL_NODE_LEN, "%s", e->node);
    c->nev++;
}

static void count_cb(bl_node *n, const bl_service_entry *e, void *ud)
{
    (void)n;
    (void)e;
    (*(int *)ud)++;
}

static void call_cb(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    ctl *c = bl_proc_data(p);
    pending *pd = ud, **pp;
    for (pp = &c->calls; *pp && *pp != pd; pp = &(*pp)->next)
        ;
    if (*pp) *pp = pd->next;
    ei_x_buff r;
    ei_x_new(&r);
    if (status == BL_OK) {
        int end = index;
        ei_skip_term(buf, &end);
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "ok");
        ei_x_append_buf(&r, buf + index, end - index);
    } else {
        test_cnode_reply_rc(&r, status);
    }
    bl_reply(c->n, &pd->from, r.buff, r.index);
    ei_x_free(&r);
    free(pd);
}

static int invalid_cases(bl_node *n)
{
    const char *tags[40];
    for (int i = 0; i < 40; i++)
        tags[i] = "t";
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    const char *nulltag[1] = {NULL};
    bl_service_entry cases[6] = {
        {.name = NULL},
        {.name = ""},
        {.name = "x", .port = 70000},
        {.name = "x", .ntags = 40, .tags = tags},
        {.name = longname},
        {.name = "x", .ntags = 1, .tags = nulltag},
    };
    for (int i = 0; i < 6; i++)
        if (bl_registry_register(n, &cases[i], NULL, 0) != BL_EINVAL) return i + 1;
    if (bl_registry_register(n, NULL, NULL, 0) != BL_EINVAL) return 7;
    if (bl_registry_deregister(n, "no-such-id") != BL_ENOPROC) return 8;
    if (bl_registry_set_health(n, "no-such-id", BL_HEALTH_PASSING) != BL_ENOPROC) return 9;
    if (bl_registry_configure(n, (bl_lb_policy)7, 0) != BL_EINVAL) return 10;
    return 0;
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                    void *ud)
{
    ctl *c = ud;
    bl_node *n = c->n;
    char tag[MAXATOMLEN_UTF8], name[BL_REG_ID_LEN], id[BL_REG_ID_LEN];
    int j = idx, ar;
    if (ei_decode_atom(buf, &j, tag) == 0) {
        if (!strcmp(tag, "c_events")) {
            for (int i = 0; i < c->nev; i++) {
                ei_x_encode_list_header(reply, 1);
                ei_x_encode_tuple_header(reply, 3);
                ei_x_encode_atom(reply, EV[c->ev[i].ev]);
                ei_x_encode_binary(reply, c->ev[i].id, (long)strlen(c->ev[i].id));
                ei_x_encode_atom(reply, c->ev[i].node);
            }
            return ei_x_encode_empty_list(reply);
        }
        if (!strcmp(tag, "c_invalid")) {
            int k = invalid_cases(n);
            if (!k) return ei_x_encode_atom(reply, "ok");
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, "error");
            return ei_x_encode_long(reply, k);
        }
        return test_cnode_reply_rc(reply, BL_EINVAL);
    }
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &ar) < 0 || ei_decode_atom(buf, &j, tag) < 0)
        return test_cnode_reply_rc(reply, BL_EINVAL);
    if (!strcmp(tag, "c_register") && ar == 5) {
        long ttl;
        int k;
        char tagv[8][64], proc[BL_NAME_LEN];
        const char *tags[8];
        if (test_cnode_get_bin(buf, &j, name, sizeof(name)) < 0 ||
            ei_decode_long(buf, &j, &ttl) < 0 || ei_decode_list_header(buf, &j, &k) < 0 || k > 8)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        for (int i = 0; i < k; i++) {
            if (test_cnode_get_bin(buf, &j, tagv[i], sizeof(tagv[i])) < 0)
                return test_cnode_reply_rc(reply, BL_EINVAL);
            tags[i] = tagv[i];
        }
        if (k && ei_skip_term(buf, &j) < 0) return test_cnode_reply_rc(reply, BL_EINVAL);
        if (test_cnode_get_bin(buf, &j, proc, sizeof(proc)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        const char *mk[1] = {"process"}, *mv[1] = {proc};
        bl_service_entry e = {.name = name,
                              .version = "2.0",
                              .address = "127.0.0.1",
                              .port = 4000,
                              .ttl_ms = (unsigned)ttl,
                              .ntags = k,
                              .tags = tags,
                              .nmeta = 1,
                              .meta_keys = mk,
                              .meta_values = mv};
        int rc = bl_registry_register(n, &e, id, sizeof(id));
        if (rc != BL_OK) return test_cnode_reply_rc(reply, rc);
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_binary(reply, id, (long)strlen(id));
    }
    if (!strcmp(tag, "c_find") && ar == 3) {
        char any[64];
        if (test_cnode_get_bin(buf, &j, name, sizeof(name)) < 0 ||
            test_cnode_get_bin(buf, &j, any, sizeof(any)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        const char *anyv[1] = {any};
        bl_service_query q = {.name = name, .health = -1, .ntags_any = 1, .tags_any = anyv};
        int count = 0;
        int k = bl_registry_find(n, &q, count_cb, &count);
        return ei_x_encode_long(reply, k == count ? k : -1);
    }
    if (!strcmp(tag, "c_call") && ar == 4) {
        long tmo;
        if (test_cnode_get_bin(buf, &j, name, sizeof(name)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        int req = j;
        if (ei_skip_term(buf, &j) < 0) return test_cnode_reply_rc(reply, BL_EINVAL);
        int reqlen = j - req;
        if (ei_decode_long(buf, &j, &tmo) < 0 || tmo < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        pending *pd = calloc(1, sizeof(*pd));
        if (!pd) return test_cnode_reply_rc(reply, BL_ENOMEM);
        pd->from = *from;
        int rc = bl_service_call(self, name, buf + req, reqlen, (unsigned)tmo, NULL, call_cb, pd);
        if (rc != BL_OK) {
            free(pd);
            return test_cnode_reply_rc(reply, rc);
        }
        pd->next = c->calls;
        c->calls = pd;
        return 1;
    }
    if ((!strcmp(tag, "c_deregister") || !strcmp(tag, "c_renew")) && ar == 2) {
        if (test_cnode_get_bin(buf, &j, id, sizeof(id)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        return test_cnode_reply_rc(reply, tag[2] == 'd' ? bl_registry_deregister(n, id)
                                                        : bl_registry_renew(n, id));
    }
    if (!strcmp(tag, "c_set_health") && ar == 3) {
        long h;
        if (test_cnode_get_bin(buf, &j, id, sizeof(id)) < 0 || ei_decode_long(buf, &j, &h) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        return test_cnode_reply_rc(reply, bl_registry_set_health(n, id, (bl_health)h));
    }
    return test_cnode_reply_rc(reply, BL_EINVAL);
}

static void ctl_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    ctl *c = ud;
    while (c->calls) {
        pending *pd = c->calls;
        c->calls = pd->next;
        free(pd);
    }
}

int main(int argc, char **argv)
{
    ctl *c = calloc(1, sizeof(*c));
    if (!c) return 1;
    static const bl_proc_ops ops = {.on_call = ctl_call, .on_terminate = ctl_terminate};
    int code = test_cnode_start("registry_node", argc - 1, argv + 1, &c->n);
    int wid = code ? 0 : bl_registry_watch(c->n, on_watch, c);
    if (!code && wid <= 0) code = test_cnode_fail("registry_node", c->n, wid < 0 ? wid : BL_EINVAL);
    if (!code) code = test_cnode_serve("registry_node", c->n, "reg_ctl", &ops, c, NULL);
    free(c);
    return code;
}
