/* crypto.c - loading libcrypto on first use (see crypto.h). */
#include "crypto.h"
#include "dlib.h"

#include <pthread.h>
#include <stddef.h>

/* Written once under pthread_once, read-only afterwards: a cache of library symbols. */
static bl_crypto table;
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcrypto.so.3", NULL};
    const bl__dsym syms[] = {
        {"EVP_Digest", (void **)&table.Digest},
        {"EVP_sha256", (void **)&table.sha256},
        {"EVP_aes_256_cbc", (void **)&table.aes_256_cbc},
        {"RAND_bytes", (void **)&table.RAND_bytes},
        {"EVP_CIPHER_CTX_new", (void **)&table.CTX_new},
        {"EVP_CIPHER_CTX_free", (void **)&table.CTX_free},
        {"EVP_EncryptInit_ex", (void **)&table.EncryptInit_ex},
        {"EVP_EncryptUpdate", (void **)&table.EncryptUpdate},
        {"EVP_EncryptFinal_ex", (void **)&table.EncryptFinal_ex},
        {"EVP_DecryptInit_ex", (void **)&table.DecryptInit_ex},
        {"EVP_DecryptUpdate", (void **)&table.DecryptUpdate},
        {"EVP_DecryptFinal_ex", (void **)&table.DecryptFinal_ex},
        {"CRYPTO_memcmp", (void **)&table.memcmp_ct},
    };
    /* the handle stays open for the process's life; a failed load is never retried */
    loaded = bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), NULL, 0) != NULL;
}

const bl_crypto *bl_crypto_get(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}
