/* What cli/cmd-images.c shares with cli/cmd-convert.c: platforms as
 * containerd matches them, and `images convert` for the command table. */
#ifndef BERTH_CLI_IMAGES_H
#define BERTH_CLI_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "cli.h"

#define IMAGES_SERVICE "/containerd.services.images.v1.Images/"

struct platform
{
  char os[32];
  char arch[32];
  char variant[32];
};

/* containerd's platforms.Normalize, for the names that occur in practice. */
void platform_normalize (struct platform *p);
/* "os/arch[/variant]" into buf. */
void platform_format (const struct platform *p, char *buf, size_t len);
/* The host's platform, normalized. */
void platform_host (struct platform *p);
/* "os/arch[/variant]" (or "arch" alone for linux, as containerd's
 * platforms.Parse), normalized; false when malformed. */
bool platform_parse (const char *s, struct platform *p);
/* have matches want: same OS and architecture, and the same variant when
 * both name one (containerd's platforms.Only, simplified). */
bool platform_matches (const struct platform *want, const struct platform *have);
bool platform_matches_host (const struct platform *want);
/* platform from an object with os/architecture/variant (a descriptor's
 * "platform" or an image config); false when it has neither. */
bool platform_from_json (json_object *o, struct platform *p);

/* berth images convert (cli/cmd-convert.c). */
extern const struct option image_convert_options[];
extern const char image_convert_help[];
#define IMAGE_CONVERT_SHORTOPTS "q"
int image_convert_run (struct cli *cli, int argc, char **argv);

#endif
