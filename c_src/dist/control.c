/* control.c - decode and encode distribution control messages (see control.h). */
#include "control.h"
#include "term.h"

#include <stddef.h>
#include <string.h>

#define PASS_THROUGH 112
#define VERSION 131

const char *bl_ctl_name(long op)
{
    switch (op) {
    case BL_CTL_LINK:
        return "LINK";
    case BL_CTL_SEND:
        return "SEND";
    case BL_CTL_EXIT:
        return "EXIT";
    case BL_CTL_UNLINK:
        return "UNLINK";
    case BL_CTL_NODE_LINK:
        return "NODE_LINK";
    case BL_CTL_REG_SEND:
        return "REG_SEND";
    case BL_CTL_GROUP_LEADER:
        return "GROUP_LEADER";
    case BL_CTL_EXIT2:
        return "EXIT2";
    case BL_CTL_SEND_TT:
        return "SEND_TT";
    case BL_CTL_EXIT_TT:
        return "EXIT_TT";
    case BL_CTL_REG_SEND_TT:
        return "REG_SEND_TT";
    case BL_CTL_EXIT2_TT:
        return "EXIT2_TT";
    case BL_CTL_MONITOR_P:
        return "MONITOR_P";
    case BL_CTL_DEMONITOR_P:
        return "DEMONITOR_P";
    case BL_CTL_MONITOR_P_EXIT:
        return "MONITOR_P_EXIT";
    case BL_CTL_SEND_SENDER:
        return "SEND_SENDER";
    case BL_CTL_SEND_SENDER_TT:
        return "SEND_SENDER_TT";
    case BL_CTL_PAYLOAD_EXIT:
        return "PAYLOAD_EXIT";
    case BL_CTL_PAYLOAD_EXIT_TT:
        return "PAYLOAD_EXIT_TT";
    case BL_CTL_PAYLOAD_EXIT2:
        return "PAYLOAD_EXIT2";
    case BL_CTL_PAYLOAD_EXIT2_TT:
        return "PAYLOAD_EXIT2_TT";
    case BL_CTL_PAYLOAD_MONITOR_P_EXIT:
        return "PAYLOAD_MONITOR_P_EXIT";
    case BL_CTL_SPAWN_REQUEST:
        return "SPAWN_REQUEST";
    case BL_CTL_SPAWN_REQUEST_TT:
        return "SPAWN_REQUEST_TT";
    case BL_CTL_SPAWN_REPLY:
        return "SPAWN_REPLY";
    case BL_CTL_SPAWN_REPLY_TT:
        return "SPAWN_REPLY_TT";
    case BL_CTL_ALIAS_SEND:
        return "ALIAS_SEND";
    case BL_CTL_ALIAS_SEND_TT:
        return "ALIAS_SEND_TT";
    case BL_CTL_UNLINK_ID:
        return "UNLINK_ID";
    case BL_CTL_UNLINK_ID_ACK:
        return "UNLINK_ID_ACK";
    default:
        return "UNKNOWN";
    }
}

/* Field kinds in the control tuple after the op code. */
enum {
    F_FROM,
    F_TO,
    F_TOPROC,
    F_TONAME,
    F_SKIP,
    F_REF,
    F_REASON,
    F_ID,
    F_FROMPROC,
    F_GL,     /* a group leader pid: skipped; we send the sender's own pid */
    F_MFA,    /* {Module, Function, Arity} */
    F_OPTS,   /* a proper list of spawn options */
    F_FLAGS,  /* a small non-negative integer */
    F_RESULT, /* a pid (into from) or an error atom (into toname) */
    F_TOKEN,  /* the seq_trace token of the _TT variants (any term, kept as offset + length) */
};

/* has_msg: 1 a message follows, 2 the exit reason follows as the message (EXIT_PAYLOAD) */
typedef struct {
    long op;
    int arity;
    int has_msg;
    unsigned char fields[6];
} layout;

static const layout LAYOUTS[] = {
    {BL_CTL_LINK, 3, 0, {F_FROM, F_TO}},
    {BL_CTL_SEND, 3, 1, {F_SKIP, F_TO}},
    {BL_CTL_EXIT, 4, 0, {F_FROM, F_TO, F_REASON}},
    {BL_CTL_UNLINK, 3, 0, {F_FROM, F_TO}},
    {BL_CTL_NODE_LINK, 1, 0, {0}},
    {BL_CTL_REG_SEND, 4, 1, {F_FROM, F_SKIP, F_TONAME}},
    {BL_CTL_GROUP_LEADER, 3, 0, {F_FROM, F_TO}},
    {BL_CTL_EXIT2, 4, 0, {F_FROM, F_TO, F_REASON}},
    {BL_CTL_SEND_TT, 4, 1, {F_SKIP, F_TO, F_TOKEN}},
    {BL_CTL_EXIT_TT, 5, 0, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {BL_CTL_REG_SEND_TT, 5, 1, {F_FROM, F_SKIP, F_TONAME, F_TOKEN}},
    {BL_CTL_EXIT2_TT, 5, 0, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {BL_CTL_MONITOR_P, 4, 0, {F_FROM, F_TOPROC, F_REF}},
    {BL_CTL_DEMONITOR_P, 4, 0, {F_FROM, F_TOPROC, F_REF}},
    {BL_CTL_MONITOR_P_EXIT, 5, 0, {F_FROMPROC, F_TO, F_REF, F_REASON}},
    {BL_CTL_SEND_SENDER, 3, 1, {F_FROM, F_TO}},
    {BL_CTL_SEND_SENDER_TT, 4, 1, {F_FROM, F_TO, F_TOKEN}},
    {BL_CTL_PAYLOAD_EXIT, 3, 2, {F_FROM, F_TO}},
    {BL_CTL_PAYLOAD_EXIT_TT, 4, 2, {F_FROM, F_TO, F_TOKEN}},
    {BL_CTL_PAYLOAD_EXIT2, 3, 2, {F_FROM, F_TO}},
    {BL_CTL_PAYLOAD_EXIT2_TT, 4, 2, {F_FROM, F_TO, F_TOKEN}},
    {BL_CTL_PAYLOAD_MONITOR_P_EXIT, 4, 2, {F_FROMPROC, F_TO, F_REF}},
    {BL_CTL_SPAWN_REQUEST, 6, 1, {F_REF, F_FROM, F_GL, F_MFA, F_OPTS}},
    {BL_CTL_SPAWN_REQUEST_TT, 7, 1, {F_REF, F_FROM, F_GL, F_MFA, F_OPTS, F_TOKEN}},
    {BL_CTL_SPAWN_REPLY, 5, 0, {F_REF, F_TO, F_FLAGS, F_RESULT}},
    {BL_CTL_SPAWN_REPLY_TT, 6, 0, {F_REF, F_TO, F_FLAGS, F_RESULT, F_TOKEN}},
    {BL_CTL_ALIAS_SEND, 3, 1, {F_FROM, F_REF}},
    {BL_CTL_ALIAS_SEND_TT, 4, 1, {F_FROM, F_REF, F_TOKEN}},
    {BL_CTL_UNLINK_ID, 4, 0, {F_ID, F_FROM, F_TO}},
    {BL_CTL_UNLINK_ID_ACK, 4, 0, {F_ID, F_FROM, F_TO}},
};

static const layout *find_layout(long op)
{
    for (size_t i = 0; i < sizeof(LAYOUTS) / sizeof(LAYOUTS[0]); i++)
        if (LAYOUTS[i].op == op) return &LAYOUTS[i];
    return NULL;
}

static int is_atom_type(int type)
{
    return type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
           type == ERL_SMALL_ATOM_UTF8_EXT;
}

static int decode_atom_strict(const char *b, int *idx, char *out)
{
    int type, size;
    if (ei_get_type(b, idx, &type, &size) < 0 || !is_atom_type(type)) return -1;
    return ei_decode_atom(b, idx, out);
}

/* {Module, Function, Arity}: two atoms and a small integer (the arity of the argument list). */
static int decode_mfa(const char *b, int *idx, bl_ctl *out)
{
    int ar;
    if (ei_decode_tuple_header(b, idx, &ar) < 0 || ar != 3) return -1;
    if (decode_atom_strict(b, idx, out->mod) < 0 || decode_atom_strict(b, idx, out->fun) < 0)
        return -1;
    if (ei_decode_long(b, idx, &out->arity) < 0 || out->arity < 0 || out->arity > 255) return -1;
    out->has_mfa = 1;
    return 0;
}

/* A proper list (possibly empty, possibly a STRING_EXT); *n gets its length. Its elements were
 * checked by bl_term_check already. */
static int skip_proper_list(const char *b, size_t end, int *idx, int *n)
{
    int type, size;
    if (ei_get_type(b, idx, &type, &size) < 0) return -1;
    if (type == ERL_NIL_EXT) {
        *n = 0;
        return ei_decode_list_header(b, idx, &size);
    }
    if (type == ERL_STRING_EXT) {
        size_t j = (size_t)*idx;
        if (bl_term_check(b, end, &j) != 0) return -1;
        *idx = (int)j;
        *n = size;
        return 0;
    }
    if (type != ERL_LIST_EXT) return -1;
    if (ei_decode_list_header(b, idx, &size) < 0) return -1;
    size_t j = (size_t)*idx;
    for (int i = 0; i < size; i++)
        if (bl_term_check(b, end, &j) != 0) return -1;
    *idx = (int)j;
    *n = size;
    if (ei_get_type(b, idx, &type, &size) < 0 || type != ERL_NIL_EXT) return -1;
    return ei_decode_list_header(b, idx, &size);
}

/* A pid, or (for MONITOR_P targets) a registered name atom. */
static int decode_proc(bl_node *n, const char *b, int *idx, bl_pid *pid, int *is_pid, char *name)
{
    int type, size;
    if (ei_get_type(b, idx, &type, &size) < 0) return -1;
    if (is_atom_type(type)) {
        *is_pid = 0;
        return ei_decode_atom(b, idx, name);
    }
    *is_pid = 1;
    return bl_decode_pid(n, b, idx, pid);
}

/* A term inside the validated control tuple: a plain atom (the SEND's unused '' and most
 * skipped fields) directly, anything else with the bounded walk. */
static int skip_field(const char *p, size_t end, int *idx)
{
    size_t j = (size_t)*idx;
    unsigned char tag = (unsigned char)p[j];
    if ((tag == ERL_SMALL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_EXT) && j + 2 <= end &&
        (unsigned char)p[j + 1] <= end - j - 2) {
        *idx = (int)(j + 2 + (unsigned char)p[j + 1]);
        return 0;
    }
    if (bl_term_check(p, end, &j) != 0) return -1;
    *idx = (int)j;
    return 0;
}

static int decode(bl_node *n, const char *p, size_t len, size_t end, int msg_valid, bl_ctl *out);

int bl_ctl_decode(bl_node *n, const char *p, size_t len, bl_ctl *out)
{
    memset(out, 0, offsetof(bl_ctl, toname)); /* the hot path: not the 4 KB of names and refs */
    out->toname[0] = 0;
    out->opts = NULL;
    if (len < 3 || (unsigned char)p[0] != PASS_THROUGH || (unsigned char)p[1] != VERSION)
        return BL_CTL_EMALFORMED;
    size_t end = 2;
    if (bl_term_check(p, len, &end) != 0) return BL_CTL_EMALFORMED;
    return decode(n, p, len, end, 0, out);
}

int bl_ctl_decode_valid(bl_node *n, const char *p, size_t len, size_t ctl_end, bl_ctl *out)
{
    memset(out, 0, offsetof(bl_ctl, toname));
    out->toname[0] = 0;
    out->opts = NULL;
    if (len < 3 || ctl_end < 3 || ctl_end > len || (unsigned char)p[0] != PASS_THROUGH ||
        (unsigned char)p[1] != VERSION)
        return BL_CTL_EMALFORMED;
    return decode(n, p, len, ctl_end, 1, out);
}

/* p[2..end) is a well-formed control term; the message after it (if any) was checked already
 * when msg_valid. */
static int decode(bl_node *n, const char *p, size_t len, size_t end, int msg_valid, bl_ctl *out)
{
    /* Control and message are validated; ei_decode_* may now read them. */
    int idx = 2, arity;
    if (ei_decode_tuple_header(p, &idx, &arity) < 0 || arity < 1) return BL_CTL_EMALFORMED;
    long op;
    if (ei_decode_long(p, &idx, &op) < 0) return BL_CTL_EMALFORMED;
    out->op = op;
    const layout *l = find_layout(op);
    if (!l) return BL_CTL_EUNKNOWN;
    if (arity != l->arity) return BL_CTL_EMALFORMED;

    for (int f = 0; f < arity - 1; f++) {
        int is_pid = 1;
        switch (l->fields[f]) {
        case F_FROM:
            if (bl_decode_pid(n, p, &idx, &out->from) < 0) return BL_CTL_EMALFORMED;
            out->has_from = 1;
            break;
        case F_TO:
            if (bl_decode_pid(n, p, &idx, &out->to) < 0) return BL_CTL_EMALFORMED;
            out->has_to = 1;
            break;
        case F_FROMPROC:
            if (decode_proc(n, p, &idx, &out->from, &is_pid, out->toname) < 0)
                return BL_CTL_EMALFORMED;
            out->has_from = is_pid;
            out->has_toname = !is_pid;
            break;
        case F_TOPROC:
            if (decode_proc(n, p, &idx, &out->to, &is_pid, out->toname) < 0)
                return BL_CTL_EMALFORMED;
            out->has_to = is_pid;
            out->has_toname = !is_pid;
            break;
        case F_TONAME:
            if (ei_decode_atom(p, &idx, out->toname) < 0) return BL_CTL_EMALFORMED;
            out->has_toname = 1;
            break;
        case F_REF:
            if (bl__decode_ref(n, p, &idx, &out->ref) < 0) return BL_CTL_EMALFORMED;
            out->has_ref = 1;
            break;
        case F_ID:
            if (ei_decode_ulonglong(p, &idx, &out->unlink_id) < 0) return BL_CTL_EMALFORMED;
            break;
        case F_MFA:
            if (decode_mfa(p, &idx, out) < 0) return BL_CTL_EMALFORMED;
            break;
        case F_OPTS: {
            int start = idx, nopts;
            if (skip_proper_list(p, end, &idx, &nopts) < 0) return BL_CTL_EMALFORMED;
            out->opts_off = (size_t)start;
            out->opts_len = (size_t)(idx - start);
            break;
        }
        case F_FLAGS:
            if (ei_decode_long(p, &idx, &out->spawn_flags) < 0 || out->spawn_flags < 0 ||
                out->spawn_flags >= (1L << 27))
                return BL_CTL_EMALFORMED;
            break;
        case F_RESULT:
            if (decode_proc(n, p, &idx, &out->from, &is_pid, out->toname) < 0)
                return BL_CTL_EMALFORMED;
            out->has_from = is_pid;
            out->has_toname = !is_pid;
            break;
        case F_TOKEN: {
            size_t start = (size_t)idx, j = start;
            if (bl_term_check(p, end, &j) != 0) return BL_CTL_EMALFORMED;
            out->token_off = start;
            out->token_len = j - start;
            /* [] (the atom in old nodes' encoding) means no token */
            out->has_token = !(j - start == 1 && (unsigned char)p[start] == ERL_NIL_EXT);
            idx = (int)j;
            break;
        }
        case F_REASON: {
            size_t start = (size_t)idx, j = start;
            if (bl_term_check(p, end, &j) != 0) return BL_CTL_EMALFORMED;
            out->has_reason = 1;
            out->reason_off = start;
            out->reason_len = j - start;
            idx = (int)j;
            break;
        }
        default: /* F_SKIP: iterative, never ei_skip_term's recursion */
            if (skip_field(p, end, &idx) != 0) return BL_CTL_EMALFORMED;
            break;
        }
    }
    if ((size_t)idx != end) return BL_CTL_EMALFORMED;

    if (l->has_msg) {
        if (end >= len || (unsigned char)p[end] != VERSION) return BL_CTL_EMALFORMED;
        size_t m = end + 1;
        if (msg_valid)
            m = len;
        else if (bl_term_check(p, len, &m) != 0 || m != len)
            return BL_CTL_EMALFORMED;
        out->has_msg = 1;
        out->msg_off = end + 1;
        out->msg_end = m;
        if (l->has_msg == 2) {
            out->has_reason = 1;
            out->reason_off = out->msg_off;
            out->reason_len = m - out->msg_off;
        }
        if (l->op == BL_CTL_SPAWN_REQUEST || l->op == BL_CTL_SPAWN_REQUEST_TT) {
            int li = (int)out->msg_off, nargs; /* the argument list: proper, of length Arity */
            if (skip_proper_list(p, len, &li, &nargs) < 0 || (size_t)li != len ||
                nargs != out->arity)
                return BL_CTL_EMALFORMED;
        }
    } else if (end != len) {
        return BL_CTL_EMALFORMED;
    }
    return BL_CTL_OK;
}

int bl_ctl_encode(ei_x_buff *x, const bl_ctl *c, const char *reason, int reason_len)
{
    const layout *l = find_layout(c->op);
    if (!l) return -1;
    x->index = 0;
    if (ei_x_encode_version(x) < 0 || ei_x_encode_tuple_header(x, l->arity) < 0 ||
        ei_x_encode_long(x, c->op) < 0)
        return -1;
    for (int f = 0; f < l->arity - 1; f++) {
        int rc = 0;
        switch (l->fields[f]) {
        case F_FROM:
            rc = bl_x_encode_pid(x, &c->from);
            break;
        case F_FROMPROC: /* a name monitor reports the name as the exiting process */
            rc = c->has_toname ? ei_x_encode_atom(x, c->toname) : bl_x_encode_pid(x, &c->from);
            break;
        case F_TO:
            rc = bl_x_encode_pid(x, &c->to);
            break;
        case F_TOPROC:
            rc = c->has_toname ? ei_x_encode_atom(x, c->toname) : bl_x_encode_pid(x, &c->to);
            break;
        case F_TONAME:
            rc = ei_x_encode_atom(x, c->toname);
            break;
        case F_REF:
            rc = bl__x_encode_ref(x, &c->ref);
            break;
        case F_ID:
            rc = ei_x_encode_ulonglong(x, c->unlink_id);
            break;
        case F_REASON:
            rc = reason ? ei_x_append_buf(x, reason, reason_len) : ei_x_encode_atom(x, "normal");
            break;
        case F_GL:
            rc = bl_x_encode_pid(x, &c->from);
            break;
        case F_MFA:
            rc = ei_x_encode_tuple_header(x, 3) < 0 || ei_x_encode_atom(x, c->mod) < 0 ||
                         ei_x_encode_atom(x, c->fun) < 0 || ei_x_encode_long(x, c->arity) < 0
                     ? -1
                     : 0;
            break;
        case F_OPTS:
            rc = c->opts && c->opts_len_enc > 0 ? ei_x_append_buf(x, c->opts, c->opts_len_enc)
                                                : ei_x_encode_empty_list(x);
            break;
        case F_FLAGS:
            rc = ei_x_encode_long(x, c->spawn_flags);
            break;
        case F_RESULT:
            rc = c->has_toname ? ei_x_encode_atom(x, c->toname) : bl_x_encode_pid(x, &c->from);
            break;
        case F_TOKEN:
            rc = c->token_enc && c->token_enc_len > 0
                     ? ei_x_append_buf(x, c->token_enc, c->token_enc_len)
                     : ei_x_encode_empty_list(x);
            break;
        default:
            rc = ei_x_encode_atom(x, "");
            break;
        }
        if (rc < 0) return -1;
    }
    return 0;
}
