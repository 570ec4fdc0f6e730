/* cli.c - helpers shared by the `nftraft` subcommands (see cli.h). */
#include "cmd/cli.h"

#include <curl/curl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int cli_bad_usage(const char *cmd, const char *msg, const char *usage)
{
    fprintf(stderr, "nftraft %s: %s\nusage: %s\n", cmd, msg, usage);
    return 2;
}

struct buf {
    char *p;
    size_t n;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, ptr, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

long cli_http(const char *method, const char *url, const char *body,
              const char *key, long timeout_ms, char **out, char *err,
              size_t errlen)
{
    CURL *c = curl_easy_init();
    struct buf b = {0};
    struct curl_slist *h = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    if (c == NULL) {
        snprintf(err, errlen, "cannot initialise libcurl");
        *out = NULL;
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    if (key != NULL) {
        char kh[256];
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, kh);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    } else {
        snprintf(err, errlen, "%s: %s", url,
                 ebuf[0] ? ebuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (status == 0) {
        free(b.p);
        b.p = NULL;
    }
    *out = b.p;
    return status;
}

json_t *cli_get_json(const char *url, long timeout_ms)
{
    char *body = NULL, err[256];
    long st =
        cli_http("GET", url, NULL, NULL, timeout_ms, &body, err, sizeof err);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

int cli_read_nodes(const char *dir, struct cli_node *nodes)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/nodes", dir);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    while (n < CLI_MAX_NODES && fscanf(f, "%d %95s %d", &nodes[n].id,
                                       nodes[n].url, &nodes[n].pid) == 3)
        n++;
    fclose(f);
    return n;
}

bool cli_pid_is_nftraftd(pid_t pid)
{
    char p[64], cmd[256] = "";
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return false;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    cmd[n] = '\0';
    return strstr(cmd, "nftraftd") != NULL;
}

bool cli_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int cli_self_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return -1;
    exe[k] = '\0';
    snprintf(out, n, "%s", dirname(exe));
    return 0;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double cli_step_begin(const char *step, const char *what)
{
    printf("up: %-9s %s ... ", step, what);
    fflush(stdout);
    return mono_s();
}

void cli_step_end(double t0, const char *result)
{
    printf("%s (%.1f s)\n", result, mono_s() - t0);
    fflush(stdout);
}
