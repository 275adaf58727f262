/* keycodec.c - the wire form of API key replication between gateways ({bl_gw_keys, [Key]} with
 * Key = {Id, Name, Role, Sha256, CreatedMs, CreatedOn, Revoked, RevokedMs}), and role names.
 * Pure functions on bytes, apart from the key table, so that the decoder is fuzzed on its own
 * (test/fuzz/fuzz_keysync.c): a peer's message is untrusted input. */
#include "gw_int.h"

#include <string.h>

static const char *ROLE_NAMES[] = {"viewer", "operator", "admin"};

const char *bl__gw_role_name(int role)
{
    return role >= 0 && role <= 2 ? ROLE_NAMES[role] : "none";
}

int bl__gw_role_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, ROLE_NAMES[i])) return i;
    return -1;
}

void bl__gw_key_encode(ei_x_buff *x, const gw_apikey *k)
{
    ei_x_encode_tuple_header(x, 8);
    ei_x_encode_binary(x, k->id, (long)strlen(k->id));
    ei_x_encode_binary(x, k->name, (long)strlen(k->name));
    ei_x_encode_atom(x, bl__gw_role_name(k->role));
    ei_x_encode_binary(x, k->hash, 32);
    ei_x_encode_ulonglong(x, k->created_ms);
    ei_x_encode_atom(x, k->created_on[0] ? k->created_on : "undefined");
    ei_x_encode_atom(x, k->revoked ? "true" : "false");
    ei_x_encode_ulonglong(x, k->revoked_ms);
}

/* a binary of at most outsz - 1 bytes, NUL-terminated; text: with no NUL inside */
static int get_bin(const char *buf, int *idx, char *out, size_t outsz, long *len, int text)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT || size < 0 ||
        (size_t)size >= outsz)
        return -1;
    if (ei_decode_binary(buf, idx, out, len) < 0 || (text && memchr(out, 0, (size_t)*len)))
        return -1;
    out[*len] = 0;
    return 0;
}

/* key ids are 16 lowercase hex digits (auth.c makes them; Authorization headers carry them) */
static int id_ok(const char *id)
{
    if (strlen(id) != 16) return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* an atom into out (outsz bytes): decoded whole first (ei writes up to MAXATOMLEN_UTF8 bytes) */
static int get_atom(const char *buf, int *idx, char *out, size_t outsz)
{
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_atom(buf, idx, a) < 0 || strlen(a) >= outsz) return -1;
    memcpy(out, a, strlen(a) + 1);
    return 0;
}

static int decode_key(const char *buf, int *idx, gw_apikey *k)
{
    char role[16], rev[8], hash[40];
    long len;
    int ta;
    memset(k, 0, sizeof(*k));
    if (ei_decode_tuple_header(buf, idx, &ta) < 0 || ta != 8 ||
        get_bin(buf, idx, k->id, sizeof(k->id), &len, 1) || !id_ok(k->id) ||
        get_bin(buf, idx, k->name, sizeof(k->name), &len, 1) ||
        get_atom(buf, idx, role, sizeof(role)) || get_bin(buf, idx, hash, sizeof(hash), &len, 0) ||
        len != 32 || ei_decode_ulonglong(buf, idx, &k->created_ms) < 0 ||
        get_atom(buf, idx, k->created_on, sizeof(k->created_on)) ||
        get_atom(buf, idx, rev, sizeof(rev)) || ei_decode_ulonglong(buf, idx, &k->revoked_ms) < 0 ||
        (k->role = bl__gw_role_parse(role)) < 0 || (strcmp(rev, "true") && strcmp(rev, "false")))
        return -1;
    memcpy(k->hash, hash, 32);
    k->revoked = !strcmp(rev, "true");
    if (!strcmp(k->created_on, "undefined")) k->created_on[0] = 0;
    return 0;
}

int bl__gw_keys_decode(const char *buf, int *idx, bl__gw_key_fn fn, void *ud)
{
    int type, size, arity, n = 0;
    /* a proper list, or the improper chain of one-element lists older nodes sent */
    while (ei_get_type(buf, idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        if (ei_decode_list_header(buf, idx, &arity) < 0) return -1;
        for (int i = 0; i < arity; i++) {
            gw_apikey k;
            if (decode_key(buf, idx, &k)) return -1;
            fn(&k, ud);
            n++;
        }
    }
    if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_NIL_EXT) return -1;
    return n;
}
