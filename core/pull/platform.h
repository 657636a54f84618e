/* Platforms: parsing "os/arch[/variant]", normalisation, the host default,
 * and choosing manifests from an index, with containerd's rules
 * (containerd/platforms: Parse, Normalize, Only, DefaultSpec):
 *
 *   - normalisation: lower case; macos → darwin; x86_64/x86-64 → amd64
 *     (variant v1 dropped); aarch64 → arm64 (variant 8/v8 dropped, so arm64
 *     and arm64/v8 are the same platform); armhf → arm/v7; armel → arm/v6;
 *     arm without variant → arm/v7; i386 → 386.
 *   - matching a wanted platform accepts, in order of preference: itself;
 *     for amd64/vN the lower levels then 386; for arm/vN the lower variants
 *     down to v5; for arm64 also arm/v8 … arm/v5 (aarch32 mode).
 *   - an index entry without a platform matches anything, ranked last.
 *
 * Not implemented: Windows os.version matching (entries are matched on
 * os/arch/variant only).  Pure functions, thread-safe.
 */
#ifndef BERTH_CORE_PULL_PLATFORM_H
#define BERTH_CORE_PULL_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/pull/oci.h"
#include "error.h"

/* Parse a --platform specifier: "linux/amd64", "linux/arm64/v8",
 * "linux/arm/v7", "windows/amd64", or one part ("linux" → host arch;
 * "arm64" → host os).  The result is normalised as containerd's Parse
 * leaves it (arm/v7 written as arm, arm64 with a variant keeps v8).
 * BERTH_E_INVALID with the reason otherwise. */
int platform_parse (const char *specifier, oci_platform **ret, berth_error **err);

/* The platform berthd runs as (compile-time architecture, linux). */
oci_platform *platform_default (void);

/* Normalise in place (see above).  0 or BERTH_E_NOMEM. */
int platform_normalize (oci_platform *p, berth_error **err);

/* "os/arch" or "os/arch/variant"; NULL on ENOMEM. */
char *platform_format (const oci_platform *p);

/* A matcher: which platforms are acceptable and in which order. */
typedef struct platform_matcher platform_matcher;

/* Only p and what it can run (containerd platforms.Only). */
int platform_matcher_only (const oci_platform *p, platform_matcher **ret, berth_error **err);
/* platform_matcher_only (platform_default ()). */
int platform_matcher_default (platform_matcher **ret, berth_error **err);
/* Every platform (--all-platforms). */
int platform_matcher_all (platform_matcher **ret, berth_error **err);
platform_matcher *platform_matcher_free (platform_matcher *m);
void platform_matcher_freep (platform_matcher **m);

bool platform_match (const platform_matcher *m, const oci_platform *p);
/* Preference of p: 0 is best, -1 means no match. */
int platform_rank (const platform_matcher *m, const oci_platform *p);

/* The manifests of index to pull for m, best first: entries whose media type
 * is an image manifest or index (OCI or Docker) and whose platform matches
 * (an entry without a platform matches, last).  With an "all" matcher,
 * every such entry in index order.  *ret_descs is a malloc'd array of
 * pointers INTO index (free the array only; index must outlive it).
 * BERTH_E_NOTFOUND when nothing matches, the message listing the platforms
 * the index has. */
int platform_select (const oci_index *index, const platform_matcher *m, const oci_descriptor ***ret_descs,
                     size_t *ret_n, berth_error **err);

#endif
