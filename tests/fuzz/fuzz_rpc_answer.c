/* fuzz_rpc_answer.c - a JSON-RPC answer body from an untrusted node through
 * rpc_parse_answer (id, error, revert data, result), then the typed checks
 * the client applies to results: hex quantities, hex call data, and
 * eth_getLogs arrays. */
#include "chain/hex.h"
#include "chain/rpc.h"
#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root, *result;
    char msg[1024];
    int rv =
        rpc_parse_answer(data, size, 1, 200, &root, &result, msg, sizeof msg);
    if (rv != 0) {
        if (root != NULL || result != NULL ||
            memchr(msg, '\0', sizeof msg) == NULL)
            abort();
        return 0;
    }
    if (root == NULL || result == NULL)
        abort();
    const char *s = json_string_value(result);
    if (s != NULL) {
        uint64_t v;
        (void)hex_quantity(s, &v);
        uint8_t buf[512];
        size_t n = 0;
        if (hex_decode(s, strlen(s), buf, sizeof buf, &n) == 0 &&
            n > sizeof buf)
            abort();
    }
    (void)rpc_check_logs(result, 16);
    json_decref(root);
    return 0;
}
