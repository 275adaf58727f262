/* gossip.h - discovery by UDP multicast heartbeats, packet-compatible with Elixir libcluster's
 * Cluster.Strategy.Gossip (optionally encrypted with its shared secret). */
#ifndef BL_CLUSTER_GOSSIP_H
#define BL_CLUSTER_GOSSIP_H

#include "../runtime/internal.h"

typedef struct bl_gossip bl_gossip;
typedef void (*bl_gossip_found_cb)(bl_node *n, const char *node, void *ud);

/* Start sending heartbeats every cfg->gossip_interval_ms and listening, on n's loop. found() runs
 * for every valid heartbeat from another node. Returns NULL with err filled on failure. */
bl_gossip *bl_gossip_start(bl_node *n, bl_gossip_found_cb found, void *ud, char *err,
                           size_t errlen);
void bl_gossip_stop(bl_gossip *g);

/* Packet codec, exposed for tests and fuzzing. encode: returns bytes written or -1.
 * decode: 0 and the node name, or -1 (garbage, wrong secret, not a heartbeat). secret may be
 * NULL or "" for plain packets. */
int bl_gossip_encode(const char *node, const char *secret, unsigned char *out, size_t outsz);
int bl_gossip_decode(const unsigned char *pkt, size_t len, const char *secret, char *node,
                     size_t nodesz);

#endif
