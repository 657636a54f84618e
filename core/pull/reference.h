/* Image references ("busybox", "localhost:5000/x/y:tag", "host/repo@sha256:…")
 * parsed and normalised as docker and containerd do it (the
 * distribution/reference grammar, ParseNormalizedNamed):
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [domain "/"] path-component ("/" path-component)*
 *   domain     := host [":" port]     host := domain-name | "[" IPv6 "]"
 *   path-comp  := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest     := algorithm ":" hex (>= 32 hex characters)
 *
 * Normalisation: a first component without '.' or ':' that is not
 * "localhost" and has no upper-case letter is part of the path, and the
 * domain becomes docker.io; a docker.io name with one component gets
 * "library/"; index.docker.io is docker.io; no tag and no digest means
 * ":latest".  The name (domain + path) is at most 255 characters.
 *
 * Pure functions, thread-safe.  Errors are BERTH_E_INVALID with
 * "invalid reference format: ..." saying what is wrong.
 */
#ifndef BERTH_CORE_PULL_REFERENCE_H
#define BERTH_CORE_PULL_REFERENCE_H

#include <stdbool.h>

#include "error.h"

#define REFERENCE_DEFAULT_DOMAIN "docker.io"
#define REFERENCE_NAME_MAX 255
#define REFERENCE_TAG_MAX 128

typedef struct reference
{
  char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
  char *path;   /* repository within the domain: "library/busybox" */
  char *tag;    /* NULL when the reference has only a digest */
  char *digest; /* "sha256:…", NULL if none */
} reference;

/* Parse and normalise s.  A reference with neither tag nor digest gets the
 * tag "latest".  Both may be present ("name:tag@digest"): pulls then go by
 * digest and the tag is kept for display, as docker does. */
int reference_parse (const char *s, reference **ret, berth_error **err);

/* Parse without normalising: s must already be a full name
 * ("docker.io/library/busybox:latest"); no defaults are added. */
int reference_parse_strict (const char *s, reference **ret, berth_error **err);

reference *reference_free (reference *r);
void reference_freep (reference **r);

/* "docker.io/library/busybox:latest", "host/repo:tag@sha256:…".  Newly
 * allocated, NULL on ENOMEM. */
char *reference_string (const reference *r);
/* domain/path only. */
char *reference_name (const reference *r);
/* The short form docker prints: "busybox:latest", "user/app:1",
 * "localhost:5000/x/y:tag". */
char *reference_familiar (const reference *r);

/* The host a registry client talks to for this domain: "registry-1.docker.io"
 * for docker.io, the domain itself otherwise (static or points into r). */
const char *reference_registry_host (const reference *r);

#endif
