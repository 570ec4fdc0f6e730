/* compose.c - `nftraft compose-hash` (see cmd/compose.h): flags, reading
 * the file, and printing the hash of its canonical form. */
#include "cmd/compose.h"
#include "core/err.h"
#include "core/strbuf.h"
#include "dstack/compose.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "nftraft compose-hash [--app-compose] FILE [--raw] [--print-app-compose]\n"
    "       nftraft compose-hash --docker-compose FILE [--name N] [--kms] "
    "[--gateway] [--allowed-env NAME]... [--manifest-version N] [--raw] "
    "[--print-app-compose]";

static void help(void)
{
    printf(
        "usage: %s\n\n"
        "Print dstack's compose hash (0x + 64 hex digits) of an app-compose "
        "JSON\n"
        "document, computed as dstack's SDKs compute it: keys sorted "
        "recursively,\n"
        "compact JSON, raw UTF-8, JavaScript string escaping and number "
        "printing,\n"
        "then SHA-256. Normalization (as the SDKs' normalize=True) is on: "
        "runner\n"
        "\"bash\" drops docker_compose_file, "
        "\"docker-compose\"/\"nerdctl-compose\"\n"
        "drop bash_script, and an empty pre_launch_script is dropped.\n\n"
        "  --app-compose FILE      hash this app-compose.json (also: a bare "
        "FILE)\n"
        "  --docker-compose FILE   build the app-compose the seed builds "
        "around a\n"
        "                          docker-compose.yml: runner docker-compose, "
        "the\n"
        "                          file's text as docker_compose_file, "
        "manifest\n"
        "                          version, and only the options given below "
        "(the\n"
        "                          Python SDK drops unset fields)\n"
        "  --name N                \"name\"\n"
        "  --kms                   \"kms_enabled\": true\n"
        "  --gateway               \"gateway_enabled\": true\n"
        "  --allowed-env NAME      add NAME to \"allowed_envs\" (repeatable)\n"
        "  --manifest-version N    \"manifest_version\" (default 2)\n"
        "  --raw                   no normalization\n"
        "  --print-app-compose     also print the canonical JSON that was "
        "hashed\n"
        "\nExit status: 0, 1 (unreadable file or invalid JSON), 2 (bad "
        "usage).\n",
        USAGE);
}

struct opts {
    const char *app, *dc, *name; /* --app-compose / FILE, --docker-compose */
    bool kms, gw, raw, print;
    long manifest;
    json_t *envs; /* --allowed-env names; the caller json_decref()s it */
};

/* argv into o: 0, -1 after --help, or 2 after a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        {"app-compose", required_argument, NULL, 'a'},
        {"docker-compose", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"kms", no_argument, NULL, 'k'},
        {"gateway", no_argument, NULL, 'g'},
        {"allowed-env", required_argument, NULL, 'e'},
        {"manifest-version", required_argument, NULL, 'm'},
        {"raw", no_argument, NULL, 'r'},
        {"print-app-compose", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->app = optarg;
            break;
        case 'd':
            o->dc = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'k':
            o->kms = true;
            break;
        case 'g':
            o->gw = true;
            break;
        case 'e':
            json_array_append_new(o->envs, json_string(optarg));
            break;
        case 'm':
            o->manifest = strtol(optarg, &end, 10);
            if (*end || o->manifest < 1 || o->manifest > 1000) {
                fprintf(stderr,
                        "nftraft compose-hash: --manifest-version "
                        "wants a positive integer\nusage: %s\n",
                        USAGE);
                return 2;
            }
            break;
        case 'r':
            o->raw = true;
            break;
        case 'p':
            o->print = true;
            break;
        case 'h':
            help();
            return -1;
        default:
            fprintf(stderr, "nftraft compose-hash: %s\nusage: %s\n",
                    c == ':' ? "an option needs a value" : "unknown option",
                    USAGE);
            return 2;
        }
    }
    if (optind < argc && o->app == NULL && o->dc == NULL)
        o->app = argv[optind++];
    if (optind < argc || (o->app == NULL) == (o->dc == NULL)) {
        fprintf(stderr,
                "nftraft compose-hash: give one FILE (app-compose) "
                "or --docker-compose FILE\nusage: %s\n",
                USAGE);
        return 2;
    }
    return 0;
}

/* The whole file (malloc'd, NUL-terminated, length in *len), or NULL with
 * the reason in err. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct strbuf b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_put(&b, buf, n);
    bool bad = ferror(f) || b.oom;
    fclose(f);
    if (bad) {
        free(b.p);
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    *len = b.len;
    return b.p ? b.p : strdup("");
}

/* The app-compose the seed builds around a docker-compose file's text as
 * compact JSON into *out (malloc'd, NULL when out of memory): 0, or
 * ERR_MALFORMED when the text is not UTF-8. */
static int docker_app_compose(const struct opts *o, const char *text,
                              size_t len, char **out)
{
    json_t *s = json_stringn(text, len);
    *out = NULL;
    if (s == NULL)
        return ERR_MALFORMED;
    json_t *doc = json_object();
    json_object_set_new(doc, "runner", json_string("docker-compose"));
    json_object_set_new(doc, "docker_compose_file", s);
    json_object_set_new(doc, "manifest_version", json_integer(o->manifest));
    if (o->name)
        json_object_set_new(doc, "name", json_string(o->name));
    if (o->kms)
        json_object_set_new(doc, "kms_enabled", json_true());
    if (o->gw)
        json_object_set_new(doc, "gateway_enabled", json_true());
    if (json_array_size(o->envs) > 0)
        json_object_set(doc, "allowed_envs", o->envs);
    *out = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    return 0;
}

/* Read the file, hash it and print: the exit code (0 or 1). */
static int hash_file(const struct opts *o)
{
    const char *path = o->app ? o->app : o->dc;
    char err[512];
    size_t len;
    char *text = read_file(path, &len, err, sizeof err);
    if (text == NULL) {
        fprintf(stderr, "nftraft compose-hash: %s\n", err);
        return 1;
    }
    char *doc = text;
    size_t doc_len = len;
    if (o->dc != NULL) {
        if (docker_app_compose(o, text, len, &doc) != 0) {
            fprintf(stderr, "nftraft compose-hash: %s is not valid UTF-8\n",
                    o->dc);
            free(text);
            return 1;
        }
        doc_len = doc ? strlen(doc) : 0;
    }
    char *canon = NULL;
    int r =
        doc ? compose_canonical(doc, doc_len, !o->raw, &canon, err, sizeof err)
            : ERR_NOMEM;
    if (doc != text)
        free(doc);
    free(text);
    if (r != 0) {
        fprintf(stderr, "nftraft compose-hash: %s: %s\n", path,
                r == ERR_NOMEM ? "out of memory" : err);
        return 1;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)canon, strlen(canon), d);
    if (o->print)
        printf("%s\n", canon);
    printf("0x");
    for (int i = 0; i < 32; i++)
        printf("%02x", d[i]);
    printf("\n");
    free(canon);
    return 0;
}

int compose_cmd(int argc, char **argv)
{
    struct opts o = {.manifest = 2, .envs = json_array()};
    int rv = parse_opts(argc, argv, &o);
    if (rv == 0)
        rv = hash_file(&o);
    json_decref(o.envs);
    return rv < 0 ? 0 : rv;
}
