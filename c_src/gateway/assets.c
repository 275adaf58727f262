/* assets.c - the files the gateway serves from the binary: the dashboard (index.html, app.js,
 * app.css, the vendored front-end libraries under vendor/) and the OpenAPI document. They are
 * embedded at build time with the assembler's .incbin (the Makefile rebuilds this object when an
 * asset changes), so a node serves its dashboard offline, with no files beside it. */
#include "gw_int.h"

#include <string.h>

#define ASSET(sym, file)                                                                           \
    __asm__(".section .rodata\n.balign 16\n.hidden " #sym "\n.global " #sym "\n" #sym ":\n"        \
            ".incbin \"c_src/gateway/assets/" file "\"\n.hidden " #sym "_end\n.global " #sym       \
            "_end\n" #sym "_end:\n.byte 0\n.previous\n");                                          \
    extern const unsigned char sym[], sym##_end[];

ASSET(a_index, "index.html")
ASSET(a_app_js, "app.js")
ASSET(a_app_css, "app.css")
ASSET(a_openapi, "openapi.json")
ASSET(a_htm, "vendor/htm-preact-standalone.module.js")
ASSET(a_uplot_js, "vendor/uPlot.iife.min.js")
ASSET(a_uplot_css, "vendor/uPlot.min.css")

static const struct {
    const char *name, *ctype;
    const unsigned char *start, *end;
} ASSETS[] = {
    {"index.html", "text/html; charset=utf-8", a_index, a_index_end},
    {"app.js", "text/javascript; charset=utf-8", a_app_js, a_app_js_end},
    {"app.css", "text/css; charset=utf-8", a_app_css, a_app_css_end},
    {"openapi.json", "application/json", a_openapi, a_openapi_end},
    {"htm-preact.js", "text/javascript; charset=utf-8", a_htm, a_htm_end},
    {"uPlot.js", "text/javascript; charset=utf-8", a_uplot_js, a_uplot_js_end},
    {"uPlot.css", "text/css; charset=utf-8", a_uplot_css, a_uplot_css_end},
};

const unsigned char *bl__gw_asset(const char *name, size_t *len, const char **ctype)
{
    for (size_t i = 0; i < sizeof(ASSETS) / sizeof(ASSETS[0]); i++)
        if (!strcmp(name, ASSETS[i].name)) {
            *len = (size_t)(ASSETS[i].end - ASSETS[i].start);
            *ctype = ASSETS[i].ctype;
            return ASSETS[i].start;
        }
    return NULL;
}
