/* The docker CLI's credential file ($DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json), read and written the way `docker login` does so
 * that docker, nerdctl, skopeo and berth share one login:
 *
 *   { "auths": { "<server>": { "auth": base64("user:password") } },
 *     "credsStore": "<name>",               -- every server, through a helper
 *     "credHelpers": { "<server>": "<name>" } -- per server, wins over credsStore
 *     ...any other key, kept as it is... }
 *
 * A helper is the program docker-credential-<name> found on PATH, spoken to
 * with the docker-credential-helpers protocol: `store` reads
 * {"ServerURL","Username","Secret"} on stdin, `get` reads the server on
 * stdin and prints that JSON, `erase` reads the server on stdin.
 *
 * Saving is atomic (a temporary file in the same directory, fsync, rename),
 * the file is 0600 and a directory we create is 0700; a symlinked
 * config.json is written through to its target.  Keys are the docker ones:
 * Docker Hub is "https://index.docker.io/v1/", any other registry its
 * host[:port].
 *
 * Errors follow STYLE.md (0 or negative BERTH_E_*, berth_error last).
 * Not thread-safe; secrets are wiped from memory we own when freed.
 */
#ifndef BERTH_CLI_DOCKERCFG_H
#define BERTH_CLI_DOCKERCFG_H

#include <stdbool.h>

#include "error.h"

#define DOCKERCFG_HUB_KEY "https://index.docker.io/v1/"

typedef struct dockercfg dockercfg;

/* The file's path from the environment ($DOCKER_CONFIG, $HOME); malloc'ed. */
int dockercfg_default_path (char **ret, berth_error **err);

/* Load path (NULL: the default path).  A missing file is an empty
 * configuration; a file that is not a JSON object is BERTH_E_INVALID. */
int dockercfg_load (const char *path, dockercfg **ret, berth_error **err);
void dockercfg_free (dockercfg *c);
static inline void
dockercfg_freep (dockercfg **c)
{
  dockercfg_free (*c);
  *c = NULL;
}
const char *dockercfg_path (const dockercfg *c);

/* The key docker uses for a server given on the command line: NULL, "",
 * "docker.io", "index.docker.io", "registry-1.docker.io" (with or without
 * scheme and path) give DOCKERCFG_HUB_KEY; others their host[:port]
 * (scheme and path dropped).  malloc'ed. */
char *dockercfg_server_key (const char *server);

/* The helper that holds credentials for key (credHelpers, else credsStore),
 * or NULL when they live in the file itself.  Borrowed. */
const char *dockercfg_helper (const dockercfg *c, const char *key);

/* Credentials for key: from the helper, else from auths (an entry whose key
 * normalises to the same server also counts, e.g. "https://host/v2/").
 * BERTH_E_NOTFOUND when there are none. */
int dockercfg_get (const dockercfg *c, const char *key, char **ret_user, char **ret_secret, berth_error **err);

/* Store credentials for key: through the helper, or into auths and save. */
int dockercfg_store (dockercfg *c, const char *key, const char *user, const char *secret, berth_error **err);

/* Remove credentials for key (helper erase, and every matching auths entry,
 * then save).  *ret_found tells whether there were any. */
int dockercfg_erase (dockercfg *c, const char *key, bool *ret_found, berth_error **err);

/* Write the file atomically (0600; missing directory 0700). */
int dockercfg_save (dockercfg *c, berth_error **err);

/* Base64 (standard alphabet, padded), as the "auth" field uses.  Return
 * malloc'ed strings; decode returns NULL on malformed input. */
char *dockercfg_base64_encode (const void *data, size_t len);
char *dockercfg_base64_decode (const char *s, size_t *ret_len);

#endif
