/* core/pull: registry credentials from the Docker client's config.json.
 *
 * <dir>/config.json, dir = docker_config_dir, else $DOCKER_CONFIG, else
 * $HOME/.docker.  For a registry host:
 *   1. credHelpers[<key>] → run docker-credential-<helper> get;
 *   2. credsStore → run docker-credential-<store> get;
 *   3. auths[<key>]: "auth" (base64 user:password), or "username" +
 *      "password", and "identitytoken".
 * Keys match with or without a scheme and a path ("https://host/v1/",
 * "http://host", "host"); docker.io is "https://index.docker.io/v1/" (also
 * found as index.docker.io, registry-1.docker.io or docker.io).
 *
 * Helpers get the server URL on stdin and answer {"Username", "Secret"} on
 * stdout; Username "<token>" means Secret is an identity token.  They run
 * through PATH with a bounded time (5 s, then SIGKILL) and bounded output;
 * "credentials not found" (exit status != 0 with that text) is no
 * credentials, not an error.  A missing config.json is no credentials.
 *
 * Nothing here logs, and error messages never contain a secret.
 */
#ifndef BERTH_CORE_PULL_CREDENTIALS_H
#define BERTH_CORE_PULL_CREDENTIALS_H

#include <stddef.h>

#include "error.h"

struct registry_credentials
{
  char *username;       /* NULL when none */
  char *secret;         /* password */
  char *identity_token; /* OAuth2 refresh token (identitytoken / "<token>") */
};

void credentials_clear (struct registry_credentials *c);

/* Look up `host` ("docker.io", "localhost:5000").  Fills *ret (all NULL
 * when nothing matches) and returns 0; a malformed config.json or a failing
 * helper is an error (BERTH_E_INVALID / BERTH_E_UNAVAILABLE). */
int credentials_lookup (const char *docker_config_dir, const char *host, struct registry_credentials *ret,
                        berth_error **err);

/* The same on a config.json text already read (tests, fuzzing); helpers run
 * as above. */
int credentials_from_config (const char *json, size_t len, const char *host, struct registry_credentials *ret,
                             berth_error **err);

/* Run docker-credential-<helper> get for server_url. */
int credentials_run_helper (const char *helper, const char *server_url, struct registry_credentials *ret,
                            berth_error **err);

/* The key docker uses for host: "https://index.docker.io/v1/" for
 * docker.io, else the host itself.  Static string or `host`. */
const char *credentials_server_key (const char *host);

#endif
