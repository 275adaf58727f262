/* pg.h - OTP pg process groups, from C (docs/services.md, "pg groups").
 *
 * Every beamlet node runs the default scope `pg`: a registered process that speaks the protocol
 * of OTP's kernel/src/pg.erl with every connected node, BEAM or beamlet. A C process joined to a
 * group shows up in BEAM's pg:get_members/1,2; BEAM members (and other beamlet nodes' members)
 * show up here. More scopes can be started with bl_pg_start_scope().
 *
 * Groups are arbitrary Erlang terms, passed as an encoded term body (no version byte, e.g. built
 * with ei_x_new + ei_x_encode_*). Two groups are the same when their encodings are byte-equal:
 * atoms, integers, binaries, strings, lists and tuples encode identically on BEAM and ei; avoid
 * maps and floats as group names.
 *
 * A process that joined is linked to the scope process (which traps exits): when it ends, the
 * scope sends `leave` for exactly its groups at once (BEAM's own monitor only fires when the
 * connection drops). All functions run on the loop thread only. */
#ifndef BEAMLET_PG_H
#define BEAMLET_PG_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_PG_DEFAULT_SCOPE "pg"
#define BL_PG_NOT_JOINED 1 /* bl_pg_leave: the process was not in the group (nothing sent) */

/* Start another scope (a registered process named scope). BL_EEXIST if the name is taken. */
int bl_pg_start_scope(bl_node *n, const char *scope);

/* Join p (a local process) to group in scope (NULL: "pg"). Joining twice makes two memberships,
 * as in pg. BL_ENOPROC: no such scope or p has ended; BL_EINVAL: group is not one term. */
int bl_pg_join(bl_proc *p, const char *scope, const char *group, int glen);
/* Undo one join. BL_OK, BL_PG_NOT_JOINED, or a BL_E* code. */
int bl_pg_leave(bl_proc *p, const char *scope, const char *group, int glen);

/* Members of group, local and remote: fills up to max pids into out (out may be NULL with max
 * 0) and returns how many there are, or a BL_E* code. */
int bl_pg_get_members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out,
                      int max);
/* Only this node's members. */
int bl_pg_get_local_members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out,
                            int max);

typedef enum { BL_PG_JOIN = 1, BL_PG_LEAVE = 2 } bl_pg_event;
/* A change in scope: pids joined or left group (encoded term body, glen bytes). Local and remote
 * changes are reported, including every member of a peer whose node went down. The callback may
 * call the bl_pg_* functions; events they cause are reported after it returns. */
typedef void (*bl_pg_cb)(bl_node *n, const char *scope, bl_pg_event ev, const char *group, int glen,
                         const bl_pid *pids, int npids, void *ud);
/* Returns a subscription id (> 0) or a BL_E* code. */
int bl_pg_monitor(bl_node *n, const char *scope, bl_pg_cb cb, void *ud);
void bl_pg_demonitor(bl_node *n, const char *scope, int id);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
