/* global.h - cluster-wide unique names, from C (docs/services.md, "Global names").
 *
 * Every cluster-member node runs the registered process `beamlet_global`. Names are atoms.
 *  - Mixed clusters (mode beam): a name is registered in OTP `global` through a BEAM node (rex),
 *    so global:whereis_name/1 and global:send/2 on every BEAM node reach the C process; the node
 *    first connects to every BEAM node of the cluster. The name is unregistered when the process
 *    ends.
 *  - C-only clusters (mode beamlet): each node owns its registrations and replicates them to the
 *    beamlet members; names of failed or departed nodes disappear; a clash found after a partition
 *    heals is resolved on every node the same way (bl_global_resolve).
 * Mode auto (the default) picks beam when a BEAM member is connected at registration time.
 * Lookups look in the beamlet table, then (when a BEAM node is connected) in OTP global.
 * Loop thread only, like the rest of the API. */
#ifndef BEAMLET_GLOBAL_H
#define BEAMLET_GLOBAL_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_GLOBAL_RANDOM_EXIT = 0, /* random_exit_name: the loser is killed (exit signal kill) */
    BL_GLOBAL_RANDOM_NOTIFY,   /* random_notify_name: the loser gets {global_name_conflict, Name} */
    BL_GLOBAL_NOTIFY_ALL,      /* notify_all_name: both get {global_name_conflict, Name, Other} */
} bl_global_resolve;

typedef enum { BL_GLOBAL_AUTO = 0, BL_GLOBAL_BEAM, BL_GLOBAL_BEAMLET } bl_global_mode;

/* Clash resolution for names in the beamlet table (C-only clusters); default random_exit. */
int bl_global_set_resolve(bl_node *n, bl_global_resolve method);
int bl_global_set_mode(bl_node *n, bl_global_mode mode);

/* Result: status BL_OK with pid set (register: the registered pid; whereis/send: the name's pid),
 * BL_EEXIST (register: name taken), BL_ENOPROC (whereis/send: no such name), or another BL_E*
 * code. Runs later, on the loop, only if p is still alive. */
typedef void (*bl_global_cb)(bl_proc *p, int status, const bl_pid *pid, void *ud);

/* Register name for p (a local process). cb may be NULL. */
int bl_global_register(bl_proc *p, const char *name, bl_global_cb cb, void *ud);
/* Unregister a name p holds (asynchronous for beam names). BL_ENOPROC if p holds no such name. */
int bl_global_unregister(bl_proc *p, const char *name);
/* Look a name up (beamlet table, then OTP global). */
int bl_global_whereis(bl_proc *p, const char *name, bl_global_cb cb, void *ud);
/* Look up and send msg (with version byte) to the name's pid. */
int bl_global_send(bl_proc *p, const char *name, const char *msg, int len, bl_global_cb cb,
                   void *ud);

const char *bl_global_resolve_name(bl_global_resolve m);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
