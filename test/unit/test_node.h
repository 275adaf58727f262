/* test_node.h - one node per unit-test binary for what needs a bl_node but no network: the
 * control codec interns the pids it decodes in a node (runtime/intern.c). Made on first use,
 * freed at exit (so the ASan leak check sees every byte returned). */
#ifndef BL_TEST_NODE_H
#define BL_TEST_NODE_H

#include <stdio.h>
#include <stdlib.h>

#include "beamlet/beamlet.h"

static bl_node *test_node_n;

static inline void test_node_free(void)
{
    bl_node_free(test_node_n);
    test_node_n = NULL;
}

static inline bl_node *test_node(void)
{
    if (!test_node_n) {
        bl_config cfg;
        bl_config_init(&cfg);
        snprintf(cfg.name, sizeof(cfg.name), "unit@localhost");
        snprintf(cfg.cookie, sizeof(cfg.cookie), "unit");
        cfg.log_level = BL_LOG_ERROR;
        if (bl_node_new(&cfg, &test_node_n) != BL_OK) abort();
        atexit(test_node_free);
    }
    return test_node_n;
}

#endif
