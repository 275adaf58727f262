/* test_cnode.h - what the C nodes of the test suites and benches share (trace_node, pubsub_node,
 * registry_node, global_node, pubsub_bench_node, bench_node; test_worker and pg_worker parse
 * their own flags): the start-up `beamlet node` does (its flags and environment through
 * bl_config_from_args, the node made and started), the TLS flags, the loop run to its end, and
 * the two helpers their gen_server control processes use (a binary argument as text,
 * ok | {error, Reason} from a bl_ status). Each such program is one .c file; these are
 * static inlines so that it stays one file to build. */
#ifndef BL_TEST_CNODE_H
#define BL_TEST_CNODE_H

#include "beamlet/beamlet.h"
#include "beamlet/config.h"

#include <stdio.h>
#include <stdlib.h>

static inline const char *test_cnode_env(const char *name)
{
    return getenv(name);
}

/* args: the flags of `beamlet node` (no program name) -> a started node in *out. Returns 0, or
 * the exit code after printing "PROG: why": 2 for bad flags, 1 when the node could not be made
 * or started. */
static inline int test_cnode_start(const char *prog, int nargs, char **args, bl_node **out)
{
    bl_config cfg;
    char err[512];
    *out = NULL;
    bl_config_init(&cfg);
    if (bl_config_from_args(&cfg, nargs, args, test_cnode_env, err, sizeof(err)) != BL_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    bl_node *n = NULL;
    int rc = bl_node_new(&cfg, &n);
    if (rc == BL_OK) rc = bl_node_start(n);
    if (rc != BL_OK) {
        fprintf(stderr, "%s: start: %s\n", prog, bl_strerror(rc));
        if (n) bl_node_free(n);
        return 1;
    }
    *out = n;
    return 0;
}

/* one --tls* flag of a node that parses its own flags (test_worker, pg_worker), as `beamlet node`
 * takes it: --tls-cert F -> bl_config_set("tls_cert", F). 0 when taken; else -1, the reason
 * printed. */
static inline int test_cnode_tls_opt(bl_config *cfg, const char *opt, const char *val)
{
    char key[32], err[256];
    snprintf(key, sizeof(key), "%s", opt + 2);
    for (char *p = key; *p; p++)
        if (*p == '-') *p = '_';
    if (bl_config_set(cfg, key, val, err, sizeof(err)) == BL_OK) return 0;
    fprintf(stderr, "%s\n", err);
    return -1;
}

/* a set-up step after the start failed (rc, a bl_ status): "PROG: start: why", the node freed;
 * returns the exit code 1 */
static inline int test_cnode_fail(const char *prog, bl_node *n, int rc)
{
    fprintf(stderr, "%s: start: %s\n", prog, bl_strerror(rc));
    bl_node_free(n);
    return 1;
}

/* the node's loop until it stops, then the node freed; returns the exit code (0 or 1) */
static inline int test_cnode_run(bl_node *n)
{
    int rc = bl_node_run(n);
    bl_node_free(n);
    return rc == 0 ? 0 : 1;
}

/* a node with one control process: NAME spawned with ops and ud (its bl_proc to *self when not
 * NULL), then the loop; the node is freed either way. Returns the exit code. */
static inline int test_cnode_serve(const char *prog, bl_node *n, const char *name,
                                   const bl_proc_ops *ops, void *ud, bl_proc **self)
{
    int rc = bl_spawn(n, name, ops, ud, self);
    return rc == BL_OK ? test_cnode_run(n) : test_cnode_fail(prog, n, rc);
}

/* a binary argument into out as a C string; -1 when it is not a binary or does not fit */
static inline int test_cnode_get_bin(const char *buf, int *idx, char *out, size_t cap)
{
    int type, size;
    long len;
    if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT || size < 0 ||
        (size_t)size >= cap || ei_decode_binary(buf, idx, out, &len) < 0)
        return -1;
    out[len] = '\0';
    return 0;
}

/* ok, or {error, Reason} with Reason the status' bl_strerror as an atom */
static inline int test_cnode_reply_rc(ei_x_buff *reply, int rc)
{
    if (rc == BL_OK) return ei_x_encode_atom(reply, "ok");
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, bl_strerror(rc));
}

#endif
