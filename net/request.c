/* request.c - strict parsing of HTTP API input. */
#include "net/request.h"
#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int request_parse_increment(const void *body, size_t len, int64_t *by,
                            char *err, size_t errlen)
{
    *by = 1;
    const char *b = body;
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' ||
                       b[i] == '\t'))
        i++;
    if (i == len)
        return 0;
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        snprintf(err, errlen, "malformed JSON body: %s", je.text);
        return ERR_MALFORMED;
    }
    int rv = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(j)) {
        snprintf(err, errlen, "body must be a JSON object like {\"by\": 1}");
        rv = ERR_INVALID;
        goto out;
    }
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "by") != 0) {
            snprintf(err, errlen, "unknown field \"%.64s\" (only \"by\")", k);
            rv = ERR_INVALID;
            goto out;
        }
    }
    v = json_object_get(j, "by");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            snprintf(err, errlen,
                     "\"by\" must be an integer from 1 to 9223372036854775807");
            rv = ERR_INVALID;
            goto out;
        }
        *by = (int64_t)json_integer_value(v);
    }
out:
    json_decref(j);
    return rv;
}

int request_check_key(const char *key, size_t len, size_t max, char *out,
                      char *err, size_t errlen)
{
    if (len == 0 || len > max) {
        snprintf(err, errlen, "Idempotency-Key must be 1..%zu bytes", max);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if (key[i] < 0x21 || key[i] > 0x7e) {
            snprintf(err, errlen,
                     "Idempotency-Key must be printable ASCII without spaces");
            return ERR_INVALID;
        }
    }
    memcpy(out, key, len);
    out[len] = '\0';
    return 0;
}
