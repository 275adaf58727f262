/* export.c - the table of C functions a node exports as Module:Function/Arity.
 *
 * BEAM's spawn/4, rpc:call, erpc:call/cast/multicall reach a C node as SPAWN_REQUEST for M:F/A
 * (directly, or wrapped in erpc:execute_call/execute_cast), rpc:block_call as a rex request;
 * otp/apply.c resolves erlang:apply/2,3 and funs to the M:F/A they name and otp/spawn.c looks it
 * up here. One hash keyed by "mod:fun/arity", owned by the node. erlang:apply/2,3 themselves
 * cannot be exported: they are resolved before the table is asked. Each entry says whether it is
 * an application's C function or one of the node's built-ins (otp/bif.c, otp/pinfo.c), whose
 * errors carry the stack frames BEAM's BIFs have. */
#include "../runtime/internal.h"

#include <stdlib.h>
#include <string.h>

struct bl_export {
    UT_hash_handle hh;
    char key[2 * BL_NAME_LEN + 16];
    bl_export_fn fn;
    void *ud;
    int builtin; /* BL__EXPORT_*: how its errors' stack frames read (otp/apply.c) */
};

static int make_key(char *key, size_t len, const char *mod, const char *fun, int arity)
{
    if (!mod || !fun || !mod[0] || !fun[0] || arity < 0 || arity > 255) return -1;
    if (strlen(mod) >= BL_NAME_LEN || strlen(fun) >= BL_NAME_LEN) return -1;
    snprintf(key, len, "%s:%s/%d", mod, fun, arity);
    return 0;
}

static int add(bl_node *n, const char *mod, const char *fun, int arity, bl_export_fn fn, void *ud,
               int builtin)
{
    char key[2 * BL_NAME_LEN + 16];
    if (!n || !fn || make_key(key, sizeof(key), mod, fun, arity) < 0) return BL_EINVAL;
    if (!strcmp(key, "erlang:apply/2") || !strcmp(key, "erlang:apply/3")) return BL_EINVAL;
    struct bl_export *e = NULL;
    HASH_FIND_STR(n->exports, key, e);
    if (e) return BL_EEXIST;
    e = calloc(1, sizeof(*e));
    if (!e) return BL_ENOMEM;
    memcpy(e->key, key, sizeof(key));
    e->fn = fn;
    e->ud = ud;
    e->builtin = builtin;
    HASH_ADD_STR(n->exports, key, e);
    return BL_OK;
}

int bl_export(bl_node *n, const char *mod, const char *fun, int arity, bl_export_fn fn, void *ud)
{
    return add(n, mod, fun, arity, fn, ud, BL__EXPORT_C);
}

int bl__export_builtin(bl_node *n, const char *mod, const char *fun, int arity, bl_export_fn fn,
                       int builtin)
{
    return add(n, mod, fun, arity, fn, NULL, builtin);
}

int bl__export_kind(const bl_export_ent *e)
{
    return e ? e->builtin : BL__EXPORT_C;
}

int bl_unexport(bl_node *n, const char *mod, const char *fun, int arity)
{
    char key[2 * BL_NAME_LEN + 16];
    if (!n || make_key(key, sizeof(key), mod, fun, arity) < 0) return BL_EINVAL;
    struct bl_export *e = NULL;
    HASH_FIND_STR(n->exports, key, e);
    if (!e) return BL_ENOPROC;
    HASH_DEL(n->exports, e);
    free(e);
    return BL_OK;
}

const bl_export_ent *bl_export_find(bl_node *n, const char *mod, const char *fun, int arity)
{
    char key[2 * BL_NAME_LEN + 16];
    if (make_key(key, sizeof(key), mod, fun, arity) < 0) return NULL;
    struct bl_export *e = NULL;
    HASH_FIND_STR(n->exports, key, e);
    return e;
}

int bl_export_invoke(const bl_export_ent *e, bl_proc *self, const char *args, int index,
                     ei_x_buff *result)
{
    int arity = 0;
    int i = index;
    if (ei_decode_list_header(args, &i, &arity) < 0) return BL_FN_ERROR;
    return e->fn(self, args, index, arity, result, e->ud);
}

void bl_exports_free(bl_node *n)
{
    struct bl_export *e, *t;
    HASH_ITER(hh, n->exports, e, t) {
        HASH_DEL(n->exports, e);
        free(e);
    }
}
