/* dashboard.c - serves the embedded dashboard files (see dashboard.h). */
#include "net/dashboard.h"
#include "net/httpd.h"

#include <stddef.h>

/* Defined by the C file net/dashboard/embed.cmake generates. */
extern const unsigned char dashboard_index_html[], dashboard_app_js[],
    dashboard_style_css[];
extern const size_t dashboard_index_html_len, dashboard_app_js_len,
    dashboard_style_css_len;

/* The page loads nothing but its own files and talks to the nodes' JSON
 * endpoints (any origin: the other members). */
static const char *const HEADERS[] = {
    "Cache-Control: no-cache",
    "X-Content-Type-Options: nosniff",
    "Content-Security-Policy: default-src 'self'; connect-src *; "
    "img-src 'self' data:",
    NULL};

static void serve(struct httpd_req *r, const char *type,
                  const unsigned char *body, size_t len)
{
    httpd_respond(r, 200, type, (const char *)body, len, HEADERS);
}

static void handle_index(void *data, struct httpd_req *r)
{
    (void)data;
    serve(r, "text/html; charset=utf-8", dashboard_index_html,
          dashboard_index_html_len);
}

static void handle_js(void *data, struct httpd_req *r)
{
    (void)data;
    serve(r, "text/javascript; charset=utf-8", dashboard_app_js,
          dashboard_app_js_len);
}

static void handle_css(void *data, struct httpd_req *r)
{
    (void)data;
    serve(r, "text/css; charset=utf-8", dashboard_style_css,
          dashboard_style_css_len);
}

int dashboard_register(struct httpd *s)
{
    int rv = httpd_route(s, "GET", "/", handle_index, NULL);
    if (rv == 0)
        rv = httpd_route(s, "GET", "/dashboard.js", handle_js, NULL);
    if (rv == 0)
        rv = httpd_route(s, "GET", "/dashboard.css", handle_css, NULL);
    return rv;
}

unsigned long dashboard_bytes(void)
{
    return (unsigned long)(dashboard_index_html_len + dashboard_app_js_len +
                           dashboard_style_css_len);
}
