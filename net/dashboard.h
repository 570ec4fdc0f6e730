/* dashboard.h - the operator dashboard served by every node: GET / (HTML),
 * /dashboard.js and /dashboard.css, embedded in the binary at build time
 * from net/dashboard/ (no CDN, works offline). The page polls the nodes'
 * JSON endpoints itself; see net/dashboard/app.js. */
#ifndef NFTRAFT_DASHBOARD_H
#define NFTRAFT_DASHBOARD_H

#include <stddef.h>

struct httpd;

/* Add the dashboard's three GET routes to s. 0, or ERR_TOOBIG when s has
 * no room for them. */
int dashboard_register(struct httpd *s);

/* The embedded file served at path ("/", "/dashboard.js",
 * "/dashboard.css"): its bytes (static, not NUL-terminated) and length in
 * *len, its Content-Type in *type; NULL for any other path. */
const char *dashboard_file(const char *path, size_t *len, const char **type);

/* The page's total weight in bytes (HTML + JS + CSS, uncompressed). */
unsigned long dashboard_bytes(void);

#endif
