/* crypto.h - OpenSSL's libcrypto, loaded only when something needs it.
 *
 * Only gossip with a shared secret and the gateway's API keys use cryptography; linking (or even
 * loading) libcrypto in every node would add about 1.5 MB of resident memory to it. The symbols are
 * resolved once per process with dlopen and never change afterwards. (The handshake's MD5 is ei's:
 * dist/hsm.c.) */
#ifndef BL_RUNTIME_CRYPTO_H
#define BL_RUNTIME_CRYPTO_H

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

typedef struct bl_crypto {
    int (*Digest)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *);
    const EVP_MD *(*sha256)(void);
    const EVP_CIPHER *(*aes_256_cbc)(void);
    int (*RAND_bytes)(unsigned char *, int);
    EVP_CIPHER_CTX *(*CTX_new)(void);
    void (*CTX_free)(EVP_CIPHER_CTX *);
    int (*EncryptInit_ex)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *,
                          const unsigned char *);
    int (*EncryptUpdate)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
    int (*EncryptFinal_ex)(EVP_CIPHER_CTX *, unsigned char *, int *);
    int (*DecryptInit_ex)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *,
                          const unsigned char *);
    int (*DecryptUpdate)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
    int (*DecryptFinal_ex)(EVP_CIPHER_CTX *, unsigned char *, int *);
    int (*memcmp_ct)(const void *, const void *, size_t); /* CRYPTO_memcmp: constant time */
} bl_crypto;

/* The loaded library, or NULL when libcrypto.so.3 cannot be loaded. */
const bl_crypto *bl_crypto_get(void);

#endif
