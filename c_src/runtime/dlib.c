/* dlib.c - loading a shared library on demand (dlib.h). */
#include "dlib.h"

#include <dlfcn.h>
#include <stdio.h>

static void clear(const bl__dsym *syms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        *syms[i].slot = NULL;
}

void *bl__dlib_open(const char *const *sonames, const bl__dsym *syms, size_t n, char *err,
                    size_t errlen)
{
    char why[256] = "no library named";
    if (err && errlen) err[0] = '\0';
    for (size_t k = 0; sonames && sonames[k]; k++) {
        void *h = dlopen(sonames[k], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(why, sizeof(why), "cannot load %s: %s", sonames[k], e ? e : "?");
            continue;
        }
        size_t i = 0;
        for (; i < n; i++) {
            (void)dlerror();
            if (!(*syms[i].slot = dlsym(h, syms[i].name))) break;
        }
        if (i == n) return h;
        snprintf(why, sizeof(why), "%s has no %s", sonames[k], syms[i].name);
        clear(syms, n);
        dlclose(h);
    }
    clear(syms, n);
    if (err && errlen) snprintf(err, errlen, "%s", why);
    return NULL;
}

void bl__dlib_close(void *h)
{
    if (h) dlclose(h);
}
