/* fuzz_gossip.c - libFuzzer target for the libcluster gossip packet decoder
 * (c_src/cluster/gossip.c).
 *
 * Input: one control byte, then a packet. Control bits 0-1 pick the mode, bits 2-7 the size of
 * the caller's name buffer (0: BL_NODE_LEN):
 *   mode 0/2: decode the packet as received, without a secret and with the secret "fuzz";
 *   mode 1/3: encrypt the packet as a plaintext heartbeat the way libcluster does (AES-256-CBC,
 *             key sha256("fuzz"), PKCS#7), so the fuzzer reaches the term parser behind the
 *             decryption; decoding it with the secret must agree with decoding the plaintext.
 * Whenever a packet is accepted, the name must be NUL-terminated inside the buffer, be
 * printable ASCII with exactly one '@', and survive an encode/decode round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cluster/gossip.h"

#define SECRET "fuzz"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_gossip: %s\n", what);
    abort();
}

static void check_accepted(const char *node, size_t nodesz)
{
    size_t len = strnlen(node, nodesz);
    if (len >= nodesz) die("name not terminated in the buffer");
    int at = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)node[i];
        if (c <= 0x20 || c >= 0x7f) die("non-printable name");
        if (c == '@') at++;
    }
    if (at != 1) die("name without exactly one '@'");
    unsigned char pkt[1024];
    char back[BL_NODE_LEN];
    for (int keyed = 0; keyed < 2; keyed++) {
        const char *sec = keyed ? SECRET : NULL;
        int l = bl_gossip_encode(node, sec, pkt, sizeof(pkt));
        if (l <= 0) die("cannot encode an accepted name");
        if (bl_gossip_decode(pkt, (size_t)l, sec, back, sizeof(back)) != 0) die("round trip");
        if (strcmp(back, node) != 0) die("round trip changed the name");
    }
}

static int decode(const unsigned char *p, size_t len, const char *secret, char *node, size_t nodesz)
{
    /* exact-size heap copy: ASan catches any read past the packet */
    unsigned char *c = malloc(len ? len : 1);
    if (!c) return -2;
    if (len) memcpy(c, p, len);
    memset(node, 0x55, nodesz);
    int r = bl_gossip_decode(c, len, secret, node, nodesz);
    free(c);
    if (r != 0 && r != -1) die("bad return code");
    if (r == 0) check_accepted(node, nodesz);
    return r;
}

/* libcluster's encrypt: zero IV (any IV will do), key sha256(SECRET), PKCS#7. */
static size_t encrypt(const unsigned char *p, size_t len, unsigned char *out)
{
    unsigned char key[32], iv[16] = {0};
    unsigned int kl = 0;
    if (EVP_Digest(SECRET, strlen(SECRET), key, &kl, EVP_sha256(), NULL) != 1) die("sha256");
    memcpy(out, iv, 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx, out + 16, &l1, p, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + 16 + l1, &l2) != 1)
        die("encrypt");
    EVP_CIPHER_CTX_free(ctx);
    return 16 + (size_t)l1 + (size_t)l2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    unsigned mode = data[0] & 3;
    size_t nodesz = data[0] >> 2 ? (size_t)(data[0] >> 2) : BL_NODE_LEN;
    const unsigned char *p = data + 1;
    size_t len = size - 1;
    char node[BL_NODE_LEN], node2[BL_NODE_LEN];
    if (mode == 0 || mode == 2) {
        decode(p, len, NULL, node, nodesz);
        decode(p, len, SECRET, node, nodesz);
        decode(p, len, "", node, nodesz);
    } else {
        static unsigned char enc[4096 + 48];
        size_t el = encrypt(p, len, enc);
        int a = decode(p, len, NULL, node, nodesz);
        int b = decode(enc, el, SECRET, node2, nodesz);
        /* the decoder refuses packets over its size limit before decrypting */
        if (el <= 1024 && a != b) die("encrypted and plain decodes disagree");
        if (el <= 1024 && a == 0 && strcmp(node, node2) != 0) die("encrypted name differs");
        if (decode(enc, el, "wrong", node2, nodesz) == 0) die("wrong secret accepted");
    }
    return 0;
}
