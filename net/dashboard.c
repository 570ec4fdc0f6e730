/* dashboard.c - serves the embedded dashboard files (see dashboard.h). */
#include "net/dashboard.h"
#include "net/httpd.h"

#include <string.h>

/* Defined by the C file net/dashboard/embed.cmake generates. */
extern const unsigned char dashboard_index_html[], dashboard_app_js[],
    dashboard_style_css[];
extern const size_t dashboard_index_html_len, dashboard_app_js_len,
    dashboard_style_css_len;

/* The page loads nothing but its own files and talks to the nodes' JSON
 * endpoints (any origin: the other members). */
static const char *const HEADERS[] = {
    "Cache-Control: no-cache", "X-Content-Type-Options: nosniff",
    "Content-Security-Policy: default-src 'self'; connect-src *; "
    "img-src 'self' data:",
    NULL};

static const char *const PATHS[] = {"/", "/dashboard.js", "/dashboard.css"};

const char *dashboard_file(const char *path, size_t *len, const char **type)
{
    if (strcmp(path, PATHS[0]) == 0) {
        *len = dashboard_index_html_len;
        *type = "text/html; charset=utf-8";
        return (const char *)dashboard_index_html;
    }
    if (strcmp(path, PATHS[1]) == 0) {
        *len = dashboard_app_js_len;
        *type = "text/javascript; charset=utf-8";
        return (const char *)dashboard_app_js;
    }
    if (strcmp(path, PATHS[2]) == 0) {
        *len = dashboard_style_css_len;
        *type = "text/css; charset=utf-8";
        return (const char *)dashboard_style_css;
    }
    return NULL;
}

static void handle(void *data, struct httpd_req *r)
{
    size_t len;
    const char *type;
    const char *body = dashboard_file(data, &len, &type);
    httpd_respond(r, 200, type, body, len, HEADERS);
}

int dashboard_register(struct httpd *s)
{
    for (size_t i = 0; i < sizeof PATHS / sizeof PATHS[0]; i++) {
        int rv = httpd_route(s, "GET", PATHS[i], handle, (void *)PATHS[i]);
        if (rv != 0)
            return rv;
    }
    return 0;
}

unsigned long dashboard_bytes(void)
{
    return (unsigned long)(dashboard_index_html_len + dashboard_app_js_len +
                           dashboard_style_css_len);
}
