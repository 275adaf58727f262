/* fuzz_promtext.c - the Prometheus text merge of the gateway (c_src/gateway/promtext.c), which
 * parses what cluster members send for /metrics?scope=cluster: any bytes, split into up to four
 * members' texts at 0xff bytes, must merge without a crash, an over-read or a leak, and the result
 * must have every sample line carry the node label first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* one exact-size copy per member, so ASan sees any read past a text's end */
    const char *nodes[4] = {"a@h", "b@h", "c\"d\\@h", "e@h"};
    char *texts[4] = {0};
    size_t lens[4] = {0};
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && n < 4; i++) {
        if (i == size || data[i] == 0xff) {
            lens[n] = i - start;
            texts[n] = malloc(lens[n] ? lens[n] : 1);
            if (lens[n]) memcpy(texts[n], data + start, lens[n]);
            n++;
            start = i + 1;
        }
    }
    size_t len = 0;
    char *out = bl__prom_merge(nodes, (const char *const *)texts, lens, n, &len);
    if (out) {
        /* a sample line starts with its name and "{node=" */
        for (char *p = out, *e; p < out + len; p = e + 1) {
            e = memchr(p, '\n', (size_t)(out + len - p));
            if (!e) break;
            if (*p != '#' && e > p && !memmem(p, (size_t)(e - p), "{node=\"", 7)) abort();
        }
        free(out);
    }
    for (int i = 0; i < n; i++)
        free(texts[i]);
    return 0;
}
