/* dlib.h - loading a shared library on demand (dlopen), for the optional dependencies a node
 * only maps when a feature is used: libcrypto (runtime/crypto.c), libmicrohttpd (gateway/mhd.c),
 * libcurl (health/webhook.c) and SQLite (store/sqlite.c, for the health store and pub/sub's
 * outbox). One mechanism: the first of several candidate sonames that opens and has every
 * symbol of a table of {name, slot} wins. Private to libbeamlet. */
#ifndef BL_RUNTIME_DLIB_H
#define BL_RUNTIME_DLIB_H

#include <stddef.h>

typedef struct bl__dsym {
    const char *name; /* the symbol */
    void **slot;      /* where its address goes: (void **)&table.fn */
} bl__dsym;

/* Open the first of sonames (NULL-terminated) that loads and defines every symbol of syms[0..n)
 * and fill the slots. Returns the handle (for bl__dlib_close), or NULL with every slot NULL and
 * the reason in err ("" on success; err may be NULL). */
void *bl__dlib_open(const char *const *sonames, const bl__dsym *syms, size_t n, char *err,
                    size_t errlen);
/* NULL is fine. */
void bl__dlib_close(void *h);

#endif
