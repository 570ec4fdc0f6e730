/* fuzz_json_body.c - POST /increment bodies (request_parse_increment) and
 * Idempotency-Key values (request_check_key): what they accept must be
 * what the API promises (by >= 1; a key of printable ASCII, copied whole). */
#include "fsm/fsm.h"
#include "net/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t by = 0;
    char err[256];
    if (request_parse_increment(data, size, &by, err, sizeof err) == 0 &&
        by < 1)
        abort();
    char key[FSM_KEY_MAX + 1];
    if (request_check_key((const char *)data, size, FSM_KEY_MAX, key, err,
                          sizeof err) == 0) {
        if (size == 0 || size > FSM_KEY_MAX || memcmp(key, data, size) != 0 ||
            key[size] != '\0')
            abort();
        for (size_t i = 0; i < size; i++)
            if (key[i] < 0x21 || key[i] > 0x7e)
                abort();
    }
    return 0;
}
