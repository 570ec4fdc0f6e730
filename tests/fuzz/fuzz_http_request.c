/* fuzz_http_request.c - a raw HTTP/1 request through h2o's own parser
 * (picohttpparser, as the server parses it), then every check net/ runs
 * before routing: method, target (which must then be encodable as a JSON
 * string: a 404 echoes it), body framing, query values, Idempotency-Key,
 * and the /increment body. */
#include "core/config.h"
#include "core/err.h"
#include "fsm/fsm.h"
#include "net/request.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* picohttpparser's API as exported by libh2o (no header is installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method,
                      size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers,
                      size_t *num_headers, size_t last_len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    (void)request_framing_problem(buf, size);
    const char *m, *p;
    size_t ml, pl, nh = 64;
    int minor;
    struct phr_header h[64];
    int head =
        phr_parse_request(buf, size, &m, &ml, &p, &pl, &minor, h, &nh, 0);
    if (head <= 0)
        return 0;
    (void)request_check_method(m, ml);
    if (request_check_target(p, pl) == 0) {
        json_t *s = json_stringn(p, pl);
        if (s == NULL)
            abort(); /* a target we pass must be JSON-encodable */
        json_decref(s);
        const char *q = memchr(p, '?', pl);
        static const char *const names[] = {"from", "limit", "stale", ""};
        for (size_t i = 0; q != NULL && i < 4; i++) {
            char out[32];
            int rv = request_query_value(q + 1, pl - (size_t)(q + 1 - p),
                                         names[i], out, sizeof out);
            uint64_t v;
            if (rv != 0)
                continue;
            if (strlen(out) >= sizeof out)
                abort();
            (void)config_parse_u64(out, 0, INT64_MAX, &v);
        }
    }
    for (size_t i = 0; i < nh; i++) {
        char key[FSM_KEY_MAX + 1], err[128];
        if (h[i].name != NULL && h[i].name_len == 15 &&
            strncasecmp(h[i].name, "idempotency-key", 15) == 0 &&
            request_check_key(h[i].value, h[i].value_len, FSM_KEY_MAX, key, err,
                              sizeof err) == 0 &&
            strlen(key) != h[i].value_len)
            abort();
    }
    int64_t by;
    char err[256];
    if (request_parse_increment(buf + head, size - (size_t)head, &by, err,
                                sizeof err) == 0 &&
        by < 1)
        abort();
    return 0;
}
