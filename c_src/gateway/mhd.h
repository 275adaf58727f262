/* mhd.h - libmicrohttpd, loaded on first use (dlopen) so that a node without HTTP neither links
 * nor maps it: only nodes that serve the gateway pay for the library and its TLS stack. The
 * table holds the few functions the gateway calls; the types and constants are the header's. */
#ifndef BL_GATEWAY_MHD_H
#define BL_GATEWAY_MHD_H

#include <microhttpd.h>

typedef struct bl__mhd {
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_run) *run;
    __typeof__(MHD_get_timeout) *get_timeout;
    __typeof__(MHD_get_daemon_info) *get_daemon_info;
    __typeof__(MHD_get_connection_info) *get_connection_info;
    __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
    __typeof__(MHD_get_connection_values) *get_connection_values;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_create_response_from_callback) *create_response_from_callback;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_suspend_connection) *suspend_connection;
    __typeof__(MHD_resume_connection) *resume_connection;
    __typeof__(MHD_http_unescape) *http_unescape;
} bl__mhd;

/* The table, or NULL when libmicrohttpd.so.12 (Debian libmicrohttpd12) cannot be loaded. */
const bl__mhd *bl__mhd_get(void);

#endif
