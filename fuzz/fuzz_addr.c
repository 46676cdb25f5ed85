/* fuzz_addr: libFuzzer target for the address parser. Any string must
 * parse or fail with an address error, and a parsed result must hold
 * NUL-terminated fields that fit their arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/addr.h"
#include "switchboard/error.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c))                                                                    \
            abort();                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_addr_spec spec;
    char *s = malloc(size + 1);
    int rc;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    memset(&spec, 0xa5, sizeof(spec));
    rc = sb_addr_parse(s, &spec);
    CHECK(rc == 0 || rc == SB_EBADADDR || rc == SB_EBADPORT || rc == SB_EPATHLEN);
    if (rc == 0) {
        CHECK(memchr(spec.host, '\0', sizeof(spec.host)) != NULL);
        CHECK(memchr(spec.port, '\0', sizeof(spec.port)) != NULL);
        if (spec.is_unix)
            CHECK(memchr(spec.path, '\0', sizeof(spec.path)) != NULL);
    }
    free(s);
    return 0;
}
