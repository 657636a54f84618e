/* core/pull: the endpoints of one registry host, from containerd's certs.d
 * layout (docs/hosts.md of containerd, "hosts.toml Content Description").
 *
 * <config_path>/<dir>/hosts.toml, where <dir> is the first that exists of
 * "host_port_", "host:port" and "_default".  [host."<url>"] tables come
 * first, in document order; the root `server` (with the root-level keys)
 * last.  Without a hosts.toml in the directory, Docker's certificate files
 * (*.crt: CAs, *.cert + *.key: client pairs) configure the default server.
 * Without a directory, the default server alone.
 *
 * The default server (no `server` key): docker.io → https://registry-1.docker.io;
 * localhost / 127.0.0.0/8 / ::1 → https with skip_verify and HTTP fallback
 * when a port other than 443 is given (https only without a port, http only
 * on port 80); anything else → https.  plain_http (--plain-http) makes the
 * default server http.  An http:// host with TLS settings (ca, client,
 * skip_verify) on a port other than 80 tries https first and falls back to
 * http, as containerd does.
 *
 * Relative paths (ca, client) are relative to the hosts.toml's directory.
 */
#ifndef BERTH_CORE_PULL_HOSTS_H
#define BERTH_CORE_PULL_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum
{
  HOST_CAP_PULL = 1 << 0,
  HOST_CAP_RESOLVE = 1 << 1,
  HOST_CAP_PUSH = 1 << 2,
};

struct registry_host
{
  char *scheme;        /* "https" or "http" */
  char *host;          /* "mirror.example.com:5000" */
  char *path;          /* API root: "/v2" or the override_path path */
  unsigned caps;       /* HOST_CAP_* */
  bool skip_verify;
  bool http_fallback;  /* scheme is https; on a TLS failure use http */
  bool mirror;         /* host differs from the namespace: requests carry ?ns= */
  char **ca;           /* NULL-terminated CA files (appended to the system roots) */
  char **client_cert;  /* NULL-terminated; client_key[i] pairs with it ("" = same file) */
  char **client_key;
  char **headers;      /* NULL-terminated "Name: value" lines */
};

struct registry_hosts
{
  struct registry_host *items;
  size_t n;
  char *dir; /* the certs.d directory used, NULL if none */
};

/* Endpoints for `host` under config_path (may be NULL: defaults only). */
int hosts_load (const char *config_path, const char *host, bool plain_http, struct registry_hosts **ret,
                berth_error **err);

/* Parse one hosts.toml text (base_dir resolves relative paths; `host` is the
 * registry namespace).  Used by hosts_load, the tests and the fuzzer. */
int hosts_parse (const char *text, size_t len, const char *base_dir, const char *host, bool plain_http,
                 struct registry_hosts **ret, berth_error **err);

void hosts_free (struct registry_hosts *h);
static inline void
hosts_freep (struct registry_hosts **h)
{
  hosts_free (*h);
  *h = NULL;
}

/* True for "localhost", "127.x.y.z", "::1" (port and brackets ignored). */
bool hosts_is_localhost (const char *host);

#endif
