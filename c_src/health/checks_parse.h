/* checks_parse.h - parsing of health check config and targets (checks_parse.c). */
#ifndef BL_HEALTH_CHECKS_PARSE_H
#define BL_HEALTH_CHECKS_PARSE_H

#include "beamlet/health.h"

#include <stddef.h>
#include <sys/socket.h>

/* "IP:PORT", "[IPv6]:PORT" or "localhost:PORT" -> *ss. 0 or -1. */
int bl__parse_hostport(const char *t, struct sockaddr_storage *ss, socklen_t *sl);
/* Parse the health_checks config text into out (max). Returns how many, or -1 with err. */
int bl__checks_parse(const char *json, bl_health_check_spec *out, int max, char *err,
                     size_t errlen);

#endif
