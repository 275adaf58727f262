/* services.c - starts the cluster services every node runs (docs/services.md), after the
 * built-in processes and the cluster layer. Each service is a registered process with a
 * documented message protocol. */
#include "../runtime/internal.h"

int bl_registry_start(bl_node *n);
int bl_global_start(bl_node *n);
int bl_pubsub_start(bl_node *n);
int bl_health_start(bl_node *n);
int bl_cconf_start(bl_node *n);

int bl_services_start(bl_node *n)
{
    int rc = BL_OK;
    (void)n;
    if (rc == BL_OK) rc = bl_pg_start(n);
    if (rc == BL_OK) rc = bl_registry_start(n);
    if (rc == BL_OK) rc = bl_global_start(n);
    if (rc == BL_OK) rc = bl_pubsub_start(n);
    if (rc == BL_OK) rc = bl_cconf_start(n);
    /* node metrics, health and alerts (c_src/health/); the admin CLI's nodes need none */
    if (rc == BL_OK && !bl_is_tool_node(n->name)) rc = bl_health_start(n);
    return rc;
}
