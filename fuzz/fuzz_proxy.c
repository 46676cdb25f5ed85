/* fuzz_proxy: libFuzzer target for the PROXY protocol parser. Any bytes
 * must give a length within the input, -EAGAIN or SB_EMALFORMED; a length
 * is a fixed point (the header alone parses to the same length), every
 * prefix of a header is incomplete, and a header with anything after it
 * still parses to the same length. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/proxy.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c))                                                                    \
            abort();                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_proxy_info info;
    int rc = sb_proxy_parse(data, size, &info);

    CHECK(rc == -EAGAIN || rc == SB_EMALFORMED || (rc > 0 && (size_t)rc <= size));
    if (rc <= 0)
        return 0;
    CHECK(rc <= SB_PROXY_MAX);
    CHECK(info.version == 1 || info.version == 2);
    CHECK(info.local || info.src_len > 0);
    CHECK(sb_proxy_parse(data, (size_t)rc, NULL) == rc);
    for (size_t i = 0; i < (size_t)rc; i++)
        CHECK(sb_proxy_parse(data, i, NULL) == -EAGAIN);
    return 0;
}
