/* util.c - small helpers shared by the runtime, cluster and service layers. */
#include "internal.h"

#include <string.h>
#include <sys/time.h>

unsigned long long bl_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000ull + (unsigned long long)tv.tv_usec / 1000ull;
}

int bl_is_tool_node(const char *node)
{
    return strncmp(node, "beamlet_cli_", 12) == 0;
}

int bl_is_plain_peer(bl_node *n, const char *node)
{
    return bl_is_connected(n, node) && !(bl_conn_peer_flags(n, node) & BL_DFLAG_SPAWN);
}
