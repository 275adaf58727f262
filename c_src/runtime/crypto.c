/* crypto.c - loading libcrypto on first use (see crypto.h). */
#include "crypto.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

/* Written once under pthread_once, read-only afterwards: a cache of library symbols. */
static bl_crypto table;
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&table.Digest, "EVP_Digest"},
        {(void **)&table.sha256, "EVP_sha256"},
        {(void **)&table.aes_256_cbc, "EVP_aes_256_cbc"},
        {(void **)&table.RAND_bytes, "RAND_bytes"},
        {(void **)&table.CTX_new, "EVP_CIPHER_CTX_new"},
        {(void **)&table.CTX_free, "EVP_CIPHER_CTX_free"},
        {(void **)&table.EncryptInit_ex, "EVP_EncryptInit_ex"},
        {(void **)&table.EncryptUpdate, "EVP_EncryptUpdate"},
        {(void **)&table.EncryptFinal_ex, "EVP_EncryptFinal_ex"},
        {(void **)&table.DecryptInit_ex, "EVP_DecryptInit_ex"},
        {(void **)&table.DecryptUpdate, "EVP_DecryptUpdate"},
        {(void **)&table.DecryptFinal_ex, "EVP_DecryptFinal_ex"},
        {(void **)&table.memcmp_ct, "CRYPTO_memcmp"},
    };
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) return; /* the handle stays open: harmless, and never retried */
    }
    loaded = 1;
}

const bl_crypto *bl_crypto_get(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}
