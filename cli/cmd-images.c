/* berth images: the containerd Images service, plus the manifests, indexes
 * and configs read from the Content service to show what an image is.
 *
 * Like ctr: `ls` prints REF TYPE DIGEST SIZE PLATFORMS LABELS, where SIZE is
 * the sum of the descriptors an image needs on this host (the target, the
 * manifest chosen for the host platform, its config and layers — ctr's
 * Image.Size) and PLATFORMS every platform the image offers.  Unlike ctr,
 * an image whose manifest or index is missing from the content store shows
 * "-" as its size rather than a partial sum.
 *
 * Docker-style shortcuts live here too: `berth rmi` (images rm) and
 * `berth tag` (images tag).  `images pull` is berth pull (cli/cmd-pull.c),
 * `images convert` lives in cli/cmd-convert.c (cli/images.h: the platform
 * helpers below are shared with it).
 */
#include <config.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "images.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"

/* Manifests, indexes and configs are small; anything above this is not a
 * document the CLI should hold in memory. */
#define DOCUMENT_MAX (8u << 20)
/* Indexes nest (an index of indexes); containerd does not limit it, we
 * stop at a depth no real image reaches. */
#define WALK_DEPTH_MAX 8

typedef Containerd__Services__Images__V1__Image image_t;
typedef Containerd__Types__Descriptor descriptor_t;

static const struct option ls_options[] = {
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option no_options[] = {
  { NULL, 0, NULL, 0 },
};

static const struct option rm_options[] = {
  { "sync", no_argument, NULL, 's' },
  { NULL, 0, NULL, 0 },
};

static const struct option tag_options[] = {
  { "force", no_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

/* ---- platforms ---- */

void
platform_normalize (struct platform *p)
{
  for (char *c = p->os; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  const char *a = p->arch;
  if (strcmp (a, "i386") == 0)
    snprintf (p->arch, sizeof p->arch, "386");
  else if (strcmp (a, "x86_64") == 0 || strcmp (a, "x86-64") == 0)
    snprintf (p->arch, sizeof p->arch, "amd64");
  else if (strcmp (a, "aarch64") == 0 || strcmp (a, "arm64") == 0)
    {
      snprintf (p->arch, sizeof p->arch, "arm64");
      if (strcmp (p->variant, "8") == 0 || strcmp (p->variant, "v8") == 0)
        p->variant[0] = 0;
    }
  else if (strcmp (a, "armhf") == 0)
    {
      snprintf (p->arch, sizeof p->arch, "arm");
      snprintf (p->variant, sizeof p->variant, "v7");
    }
  else if (strcmp (a, "armel") == 0)
    {
      snprintf (p->arch, sizeof p->arch, "arm");
      snprintf (p->variant, sizeof p->variant, "v6");
    }
  else if (strcmp (a, "arm") == 0)
    {
      if (p->variant[0] == 0 || strcmp (p->variant, "7") == 0)
        snprintf (p->variant, sizeof p->variant, "v7");
      else if (isdigit ((unsigned char) p->variant[0]) && p->variant[1] == 0)
        {
          char v = p->variant[0];
          snprintf (p->variant, sizeof p->variant, "v%c", v);
        }
    }
}

void
platform_format (const struct platform *p, char *buf, size_t len)
{
  snprintf (buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

void
platform_host (struct platform *p)
{
  struct utsname u;
  memset (p, 0, sizeof *p);
  snprintf (p->os, sizeof p->os, "linux");
  if (uname (&u) == 0)
    snprintf (p->arch, sizeof p->arch, "%.31s", u.machine);
  if (strncmp (p->arch, "armv", 4) == 0)
    {
      snprintf (p->variant, sizeof p->variant, "v%c", p->arch[4]);
      snprintf (p->arch, sizeof p->arch, "arm");
    }
  platform_normalize (p);
}

bool
platform_parse (const char *s, struct platform *p)
{
  memset (p, 0, sizeof *p);
  char part[3][32] = { "", "", "" };
  size_t n = 0;
  for (const char *c = s; n < 3; n++)
    {
      const char *e = strchr (c, '/');
      size_t len = e ? (size_t) (e - c) : strlen (c);
      if (len == 0 || len >= sizeof part[n])
        return false;
      memcpy (part[n], c, len);
      if (e == NULL)
        break;
      c = e + 1;
    }
  if (n == 3)
    return false; /* more than three parts */
  if (n == 0)
    {
      /* "arm64" alone: an architecture of the host's OS (containerd). */
      snprintf (p->os, sizeof p->os, "linux");
      snprintf (p->arch, sizeof p->arch, "%s", part[0]);
    }
  else
    {
      snprintf (p->os, sizeof p->os, "%s", part[0]);
      snprintf (p->arch, sizeof p->arch, "%s", part[1]);
      snprintf (p->variant, sizeof p->variant, "%s", part[2]);
    }
  platform_normalize (p);
  return true;
}

bool
platform_matches (const struct platform *want, const struct platform *have)
{
  return strcmp (want->os, have->os) == 0 && strcmp (want->arch, have->arch) == 0
         && (want->variant[0] == 0 || have->variant[0] == 0 || strcmp (want->variant, have->variant) == 0);
}

bool
platform_matches_host (const struct platform *want)
{
  struct platform host;
  platform_host (&host);
  return platform_matches (want, &host);
}

static const char *
json_str (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

bool
platform_from_json (json_object *o, struct platform *p)
{
  memset (p, 0, sizeof *p);
  const char *os = json_str (o, "os"), *arch = json_str (o, "architecture"), *var = json_str (o, "variant");
  if (os == NULL && arch == NULL)
    return false;
  snprintf (p->os, sizeof p->os, "%s", os ? os : "");
  snprintf (p->arch, sizeof p->arch, "%s", arch ? arch : "");
  snprintf (p->variant, sizeof p->variant, "%s", var ? var : "");
  platform_normalize (p);
  return true;
}

/* ---- walking an image through the content store ---- */

/* Documents read during one command, by digest, so that an image listed
 * twice (two tags) or a manifest shared by two indexes is read once. */
struct doc_cache
{
  struct doc_cache *next;
  char *digest;
  json_object *doc; /* NULL: missing or unreadable */
  int code;
  char *why;
};

struct walk
{
  struct cli *cli;
  struct doc_cache *cache;
  bool connection_failed;
};

static void
walk_done (struct walk *w)
{
  while (w->cache)
    {
      struct doc_cache *n = w->cache->next;
      free (w->cache->digest);
      json_object_put (w->cache->doc);
      free (w->cache->why);
      free (w->cache);
      w->cache = n;
    }
}

/* The parsed document for digest (borrowed from the cache), or NULL with
 * *ret_why saying why (not found, too large, not JSON). */
static json_object *
walk_read (struct walk *w, const char *digest, const char **ret_why)
{
  for (struct doc_cache *c = w->cache; c; c = c->next)
    if (strcmp (c->digest, digest) == 0)
      {
        *ret_why = c->why;
        return c->doc;
      }
  struct doc_cache *c = calloc (1, sizeof *c);
  if (c == NULL || (c->digest = strdup (digest)) == NULL)
    {
      free (c);
      *ret_why = "out of memory";
      return NULL;
    }
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = w->connection_failed ? BERTH_E_UNAVAILABLE
                               : content_read_all (w->cli, digest, DOCUMENT_MAX, &data, &len, &err);
  if (r < 0)
    {
      if (err == NULL)
        w->connection_failed = true;
      c->code = r;
      c->why = strdup (err ? berth_error_message (err) : "cannot connect");
    }
  else
    {
      json_tokener *tok = json_tokener_new ();
      c->doc = tok ? json_tokener_parse_ex (tok, data, (int) len) : NULL;
      if (c->doc == NULL || tok->char_offset != (int) len)
        {
          json_object_put (c->doc);
          c->doc = NULL;
          c->code = BERTH_E_INVALID;
          c->why = strdup ("not valid JSON");
        }
      json_tokener_free (tok);
    }
  c->next = w->cache;
  w->cache = c;
  *ret_why = c->why;
  return c->doc;
}

static json_object *
json_array (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_array))
    return v;
  return NULL;
}

static json_object *
json_obj (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_object))
    return v;
  return NULL;
}

static int64_t
json_size (json_object *desc)
{
  json_object *v;
  if (desc && json_object_object_get_ex (desc, "size", &v) && json_object_is_type (v, json_type_int))
    return json_object_get_int64 (v);
  return -1;
}

/* A set of platform strings, kept sorted and unique. */
struct strset
{
  size_t n;
  char **v;
};

static int
strset_add (struct strset *s, const char *str)
{
  size_t i = 0;
  while (i < s->n && strcmp (s->v[i], str) < 0)
    i++;
  if (i < s->n && strcmp (s->v[i], str) == 0)
    return 0;
  char **n = realloc (s->v, (s->n + 2) * sizeof *n);
  if (n == NULL)
    return -1;
  s->v = n;
  memmove (s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
  if ((s->v[i] = strdup (str)) == NULL)
    {
      memmove (s->v + i, s->v + i + 1, (s->n - i) * sizeof *s->v);
      return -1;
    }
  s->n++;
  s->v[s->n] = NULL;
  return 0;
}

static void
strset_free (struct strset *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->v[i]);
  free (s->v);
  s->v = NULL;
  s->n = 0;
}

/* Every platform an image offers (containerd's images.Platforms): a
 * descriptor's platform where an index gives one, else the config's
 * os/architecture.  Returns false when a document on the way is missing. */
static bool
walk_platforms (struct walk *w, const char *mt, const char *digest, int depth, struct strset *out)
{
  const char *why;
  if (depth > WALK_DEPTH_MAX)
    return false;
  if (media_type_is_index (mt))
    {
      json_object *doc = walk_read (w, digest, &why);
      json_object *ms = json_array (doc, "manifests");
      if (ms == NULL)
        return false;
      bool ok = true;
      for (size_t i = 0; i < json_object_array_length (ms); i++)
        {
          json_object *d = json_object_array_get_idx (ms, i);
          struct platform p;
          if (platform_from_json (json_obj (d, "platform"), &p))
            {
              if (strcmp (p.os, "unknown") == 0 || strcmp (p.arch, "unknown") == 0)
                continue; /* attestation manifests (buildkit) */
              char s[100];
              platform_format (&p, s, sizeof s);
              if (strset_add (out, s) < 0)
                return false;
            }
          else if (!walk_platforms (w, json_str (d, "mediaType"), json_str (d, "digest"), depth + 1, out))
            ok = false;
        }
      return ok;
    }
  if (media_type_is_manifest (mt))
    {
      json_object *doc = walk_read (w, digest, &why);
      json_object *config = json_obj (doc, "config");
      const char *cd = json_str (config, "digest");
      if (cd == NULL)
        return false;
      json_object *cfg = walk_read (w, cd, &why);
      struct platform p;
      if (cfg == NULL)
        return false;
      if (platform_from_json (cfg, &p))
        {
          p.variant[0] = 0; /* containerd takes only os and architecture from a config */
          platform_normalize (&p);
          char s[100];
          platform_format (&p, s, sizeof s);
          if (strset_add (out, s) < 0)
            return false;
        }
      return true;
    }
  return true;
}

/* What the image needs on this host, in bytes (containerd's Image.Size with
 * the default platform): the descriptor itself, then for an index the first
 * manifest for the host (or without a platform), for a manifest its config
 * and layers.  Returns false when a document on the way is missing. */
static bool
walk_size (struct walk *w, const char *mt, const char *digest, int64_t size, int depth, int64_t *total)
{
  const char *why;
  if (depth > WALK_DEPTH_MAX || size < 0)
    return false;
  *total += size;
  if (media_type_is_index (mt))
    {
      json_object *ms = json_array (walk_read (w, digest, &why), "manifests");
      if (ms == NULL)
        return false;
      for (size_t i = 0; i < json_object_array_length (ms); i++)
        {
          json_object *d = json_object_array_get_idx (ms, i);
          struct platform p;
          if (platform_from_json (json_obj (d, "platform"), &p) && !platform_matches_host (&p))
            continue;
          return walk_size (w, json_str (d, "mediaType"), json_str (d, "digest"), json_size (d), depth + 1, total);
        }
      return true;
    }
  if (media_type_is_manifest (mt))
    {
      json_object *doc = walk_read (w, digest, &why);
      if (doc == NULL)
        return false;
      int64_t s = json_size (json_obj (doc, "config"));
      if (s < 0)
        return false;
      *total += s;
      json_object *layers = json_array (doc, "layers");
      for (size_t i = 0; layers && i < json_object_array_length (layers); i++)
        {
          s = json_size (json_object_array_get_idx (layers, i));
          if (s < 0)
            return false;
          *total += s;
        }
    }
  return true;
}

/* ---- image records ---- */

static json_object *
descriptor_json (const descriptor_t *d)
{
  json_object *o = json_object_new_object ();
  if (d == NULL)
    return o;
  json_object_object_add (o, "mediaType", json_object_new_string (d->media_type ? d->media_type : ""));
  json_object_object_add (o, "digest", json_object_new_string (d->digest ? d->digest : ""));
  json_object_object_add (o, "size", json_object_new_int64 (d->size));
  if (d->n_annotations)
    json_object_object_add (o, "annotations", pb_labels_json ((void **) d->annotations, d->n_annotations));
  return o;
}

static json_object *
image_json (const image_t *img)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "name", json_object_new_string (img->name));
  json_object_object_add (o, "target", descriptor_json (img->target));
  json_object_object_add (o, "labels", pb_labels_json ((void **) img->labels, img->n_labels));
  json_object_object_add (o, "createdAt", timestamp_json (img->created_at));
  json_object_object_add (o, "updatedAt", timestamp_json (img->updated_at));
  return o;
}

static int
image_cmp (const void *a, const void *b)
{
  const image_t *const *ia = a, *const *ib = b;
  return strcmp ((*ia)->name, (*ib)->name);
}

static const char *
target_mt (const image_t *img)
{
  return img->target && img->target->media_type ? img->target->media_type : "";
}

static const char *
target_digest (const image_t *img)
{
  return img->target && img->target->digest ? img->target->digest : "";
}

/* ---- ls ---- */

static int
ls_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_TABLE;
  bool quiet = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'q': quiet = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }

  Containerd__Services__Images__V1__ListImagesRequest req
      = CONTAINERD__SERVICES__IMAGES__V1__LIST_IMAGES_REQUEST__INIT;
  req.n_filters = (size_t) (argc - optind);
  req.filters = argv + optind;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, IMAGES_SERVICE "List", &req.base,
                 &containerd__services__images__v1__list_images_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "listing images");
  Containerd__Services__Images__V1__ListImagesResponse *lr = (void *) resp;
  if (lr->n_images) /* an empty repeated field is NULL, which qsort must not get */
    qsort (lr->images, lr->n_images, sizeof *lr->images, image_cmp);

  int ret = CLI_EXIT_OK;
  if (quiet)
    {
      for (size_t i = 0; i < lr->n_images; i++)
        puts (lr->images[i]->name);
      protobuf_c_message_free_unpacked (resp, NULL);
      return ret;
    }

  struct walk w = { .cli = cli };
  _cleanup_(table_freep) table *t = NULL;
  json_object *a = NULL;
  if (format == CLI_FORMAT_JSON)
    a = json_object_new_array ();
  else if ((t = table_new ("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS", NULL)) == NULL)
    ret = cli_fail (cli, NULL, "out of memory");
  for (size_t i = 0; i < lr->n_images && ret == CLI_EXIT_OK; i++)
    {
      const image_t *img = lr->images[i];
      int64_t size = 0;
      bool have_size = img->target
                       && walk_size (&w, target_mt (img), target_digest (img), img->target->size, 0, &size);
      struct strset plats = { 0 };
      bool have_plats = img->target && walk_platforms (&w, target_mt (img), target_digest (img), 0, &plats);
      if (a)
        {
          json_object *o = image_json (img);
          json_object_object_add (o, "size", have_size ? json_object_new_int64 (size) : NULL);
          json_object *pa = json_object_new_array ();
          for (size_t j = 0; j < plats.n; j++)
            json_object_array_add (pa, json_object_new_string (plats.v[j]));
          json_object_object_add (o, "platforms", pa);
          json_object_object_add (o, "complete", json_object_new_boolean (have_size && have_plats));
          json_object_array_add (a, o);
        }
      else
        {
          char sz[HUMAN_SIZE_MAX];
          _cleanup_free_ char *pl = NULL;
          if (plats.n)
            {
              size_t len = 0;
              for (size_t j = 0; j < plats.n; j++)
                len += strlen (plats.v[j]) + 1;
              if ((pl = calloc (1, len)) != NULL)
                for (size_t j = 0; j < plats.n; j++)
                  {
                    if (j)
                      strcat (pl, ",");
                    strcat (pl, plats.v[j]);
                  }
            }
          _cleanup_free_ char *labels = pb_labels_string ((void **) img->labels, img->n_labels);
          if (table_add (t, img->name, target_mt (img), target_digest (img), have_size ? human_size (sz, size) : "-",
                         pl, labels)
              < 0)
            ret = cli_fail (cli, NULL, "out of memory");
        }
      strset_free (&plats);
    }
  if (w.connection_failed)
    ret = CLI_EXIT_FAIL;
  else if (a)
    cli_print_json (TAKE_PTR (a));
  else if (ret == CLI_EXIT_OK)
    table_print (t, stdout);
  json_object_put (a);
  walk_done (&w);
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

/* ---- inspect ---- */

/* The documents of one manifest: {"manifest": ..., "config": ...}, null
 * where missing, and the digests that were missing in *missing. */
static void
inspect_manifest (struct walk *w, json_object *into, const char *digest, json_object *missing)
{
  const char *why;
  json_object *m = walk_read (w, digest, &why);
  json_object_object_add (into, "manifest", json_object_get (m));
  if (m == NULL)
    {
      json_object_array_add (missing, json_object_new_string (digest));
      return;
    }
  const char *cd = json_str (json_obj (m, "config"), "digest");
  json_object *cfg = cd ? walk_read (w, cd, &why) : NULL;
  json_object_object_add (into, "config", json_object_get (cfg));
  if (cd && cfg == NULL)
    json_object_array_add (missing, json_object_new_string (cd));
}

static json_object *
inspect_image (struct walk *w, const image_t *img)
{
  json_object *o = image_json (img);
  json_object *missing = json_object_new_array ();
  const char *mt = target_mt (img), *digest = target_digest (img), *why;
  if (media_type_is_index (mt))
    {
      json_object *idx = walk_read (w, digest, &why);
      json_object_object_add (o, "index", json_object_get (idx));
      if (idx == NULL)
        json_object_array_add (missing, json_object_new_string (digest));
      json_object *ms = json_array (idx, "manifests");
      json_object *list = json_object_new_array ();
      for (size_t i = 0; ms && i < json_object_array_length (ms); i++)
        {
          json_object *d = json_object_array_get_idx (ms, i);
          const char *cmt = json_str (d, "mediaType"), *cd = json_str (d, "digest");
          if (cd == NULL || !media_type_is_manifest (cmt))
            continue;
          json_object *e = json_object_new_object ();
          json_object_object_add (e, "descriptor", json_object_get (d));
          inspect_manifest (w, e, cd, missing);
          json_object_array_add (list, e);
        }
      json_object_object_add (o, "manifests", list);
    }
  else if (media_type_is_manifest (mt))
    inspect_manifest (w, o, digest, missing);
  json_object_object_add (o, "missing", missing);
  return o;
}

/* Images/Get; NOTFOUND is reported as "image `X`: not found". */
static int
image_get (struct cli *cli, const char *name, ProtobufCMessage **ret, berth_error **err)
{
  Containerd__Services__Images__V1__GetImageRequest req = CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
  req.name = (char *) name;
  return cli_unary (cli, IMAGES_SERVICE "Get", &req.base,
                    &containerd__services__images__v1__get_image_response__descriptor, ret, err);
}

static int
report_image_error (struct cli *cli, int r, const berth_error *err, const char *verb, const char *name)
{
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "image `%s`: not found", name);
  return cli_call_failed (cli, err, "%s image `%s`", verb, name);
}

static int
inspect_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (cli, "an image name is needed");
  int ret = CLI_EXIT_OK;
  struct walk w = { .cli = cli };
  json_object *a = json_object_new_array ();
  for (int i = optind; i < argc; i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = image_get (cli, argv[i], &resp, &err);
      if (r < 0 && err == NULL)
        {
          ret = CLI_EXIT_FAIL;
          break;
        }
      if (r < 0)
        {
          ret = report_image_error (cli, r, err, "inspecting", argv[i]);
          continue;
        }
      Containerd__Services__Images__V1__GetImageResponse *gr = (void *) resp;
      if (gr->image)
        json_object_array_add (a, inspect_image (&w, gr->image));
      protobuf_c_message_free_unpacked (resp, NULL);
      if (w.connection_failed)
        {
          ret = CLI_EXIT_FAIL;
          break;
        }
    }
  if (!w.connection_failed)
    cli_print_json (TAKE_PTR (a));
  json_object_put (a);
  walk_done (&w);
  return ret;
}

/* ---- rm ---- */

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  bool sync = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 's': sync = true; break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (cli, "an image name is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Images__V1__DeleteImageRequest req
          = CONTAINERD__SERVICES__IMAGES__V1__DELETE_IMAGE_REQUEST__INIT;
      req.name = argv[i];
      /* As ctr: only the last delete waits for the garbage collection. */
      req.sync = sync && i == argc - 1;
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = cli_unary (cli, IMAGES_SERVICE "Delete", &req.base, &google__protobuf__empty__descriptor, &resp, &err);
      if (r < 0 && err == NULL)
        return CLI_EXIT_FAIL;
      if (r < 0)
        {
          /* Keep going with the others; fail at the end (docker rmi). */
          ret = report_image_error (cli, r, err, "removing", argv[i]);
          continue;
        }
      protobuf_c_message_free_unpacked (resp, NULL);
      puts (argv[i]);
    }
  return ret;
}

/* ---- tag ---- */

static int
tag_run (struct cli *cli, int argc, char **argv)
{
  bool force = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f': force = true; break;
      default: return CLI_EXIT_USAGE;
      }
  if (argc - optind < 2)
    return cli_usage_error (cli, "a source image and at least one new name are needed");
  const char *source = argv[optind];
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = image_get (cli, source, &resp, &err);
  if (r < 0 && err == NULL)
    return CLI_EXIT_FAIL;
  if (r < 0)
    return report_image_error (cli, r, err, "reading", source);
  Containerd__Services__Images__V1__GetImageResponse *gr = (void *) resp;
  int ret = CLI_EXIT_OK;
  for (int i = optind + 1; i < argc && gr->image; i++)
    {
      /* The new name gets the source's target and labels. */
      image_t img = CONTAINERD__SERVICES__IMAGES__V1__IMAGE__INIT;
      img.name = argv[i];
      img.target = gr->image->target;
      img.n_labels = gr->image->n_labels;
      img.labels = gr->image->labels;
      Containerd__Services__Images__V1__CreateImageRequest creq
          = CONTAINERD__SERVICES__IMAGES__V1__CREATE_IMAGE_REQUEST__INIT;
      creq.image = &img;
      _cleanup_error_ berth_error *cerr = NULL;
      ProtobufCMessage *cresp = NULL;
      r = cli_unary (cli, IMAGES_SERVICE "Create", &creq.base,
                     &containerd__services__images__v1__create_image_response__descriptor, &cresp, &cerr);
      if (r == BERTH_E_EXISTS && force)
        {
          /* Replace in place (an Update without a mask replaces target
           * and labels), so the old target is never unreferenced in
           * between as with delete + create. */
          berth_error_free (TAKE_PTR (cerr));
          Containerd__Services__Images__V1__UpdateImageRequest ureq
              = CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
          ureq.image = &img;
          r = cli_unary (cli, IMAGES_SERVICE "Update", &ureq.base,
                         &containerd__services__images__v1__update_image_response__descriptor, &cresp, &cerr);
        }
      if (r < 0 && cerr == NULL)
        {
          ret = CLI_EXIT_FAIL;
          break;
        }
      if (r == BERTH_E_EXISTS)
        {
          ret = cli_fail (cli, NULL, "image `%s` already exists (use --force to replace it)", argv[i]);
          continue;
        }
      if (r < 0)
        {
          ret = cli_call_failed (cli, cerr, "tagging `%s` as `%s`", source, argv[i]);
          continue;
        }
      protobuf_c_message_free_unpacked (cresp, NULL);
      puts (argv[i]);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

/* ---- label ---- */

static int
label_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (argc - optind < 2)
    return cli_usage_error (cli, "an image name and at least one KEY=VALUE are needed");
  const char *name = argv[optind];
  _cleanup_(pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__images__v1__image__labels_entry__descriptor };
  if (pb_labels_add_args (&labels, argc - optind - 1, argv + optind + 1) < 0)
    return cli_fail (cli, NULL, "out of memory");
  _cleanup_strv_ char **paths = pb_labels_mask_paths (&labels);
  if (paths == NULL)
    return cli_fail (cli, NULL, "out of memory");

  /* One Update with a mask entry per key; an empty value removes the
   * label (containerd's image store does that for "labels.<key>"). */
  image_t img = CONTAINERD__SERVICES__IMAGES__V1__IMAGE__INIT;
  img.name = (char *) name;
  img.n_labels = labels.n;
  img.labels = (Containerd__Services__Images__V1__Image__LabelsEntry **) labels.entries;
  Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
  mask.n_paths = labels.n;
  mask.paths = paths;
  Containerd__Services__Images__V1__UpdateImageRequest req
      = CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
  req.image = &img;
  req.update_mask = &mask;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, IMAGES_SERVICE "Update", &req.base,
                     &containerd__services__images__v1__update_image_response__descriptor, &resp, &err);
  if (r < 0 && err == NULL)
    return CLI_EXIT_FAIL;
  if (r < 0)
    return report_image_error (cli, r, err, "labelling", name);
  /* As ctr: print the labels the image has now. */
  Containerd__Services__Images__V1__UpdateImageResponse *ur = (void *) resp;
  if (ur->image)
    {
      _cleanup_free_ char *s = pb_labels_string ((void **) ur->image->labels, ur->image->n_labels);
      puts (s ? s : "");
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "remove", NULL };

/* Where commands sit in images_commands[], for the shortcuts. */
enum
{
  IMAGES_LS = 3,
  IMAGES_RM = 5,
  IMAGES_TAG = 6,
};

static const struct cli_command images_commands[] = {
  {
    .name = "convert",
    .args = "--estargz|--uncompressed|--zstd [OPTIONS] SOURCE TARGET",
    .summary = "Convert an image's layers to eStargz, uncompressed tar or zstd as a new image",
    .help = image_convert_help,
    .shortopts = IMAGE_CONVERT_SHORTOPTS,
    .options = image_convert_options,
    .run = image_convert_run,
    .complete = "__images",
  },
  {
    .name = "inspect",
    .args = "NAME...",
    .summary = "Show images as JSON, with their index, manifests and configs",
    .options = no_options,
    .run = inspect_run,
    .complete = "__images",
  },
  {
    .name = "label",
    .args = "NAME KEY=VALUE...",
    .summary = "Set labels of an image (KEY= removes one, a bare KEY sets \"true\")",
    .options = no_options,
    .run = label_run,
    .complete = "__images",
  },
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List images",
    .help = "  -q, --quiet           print only the names\n"
            "      --format FORMAT   table (default) or json\n"
            "  FILTER is a containerd filter, e.g. name==docker.io/library/busybox:latest\n"
            "  or 'labels.\"com.example\"==x'.\n",
    .shortopts = "q",
    .options = ls_options,
    .run = ls_run,
  },
  {
    .name = "pull",
    .args = "[OPTIONS] REF",
    .summary = "Pull an image from a registry (= berth pull)",
    .help = cli_pull_help,
    .shortopts = CLI_PULL_SHORTOPTS,
    .options = cli_pull_options,
    .run = berth_cmd_pull,
  },
  {
    .name = "rm",
    .aliases = rm_aliases,
    .args = "[OPTIONS] NAME...",
    .summary = "Remove images (content goes with the next garbage collection)",
    .help = "      --sync            wait for the garbage collection after the last one\n",
    .options = rm_options,
    .run = rm_run,
    .complete = "__images",
  },
  {
    .name = "tag",
    .args = "[OPTIONS] SOURCE TARGET...",
    .summary = "Give an image more names",
    .help = "  -f, --force           replace a TARGET that exists\n",
    .shortopts = "f",
    .options = tag_options,
    .run = tag_run,
    .complete = "__images",
  },
  { 0 },
};

static const char *const images_aliases[] = { "image", "i", NULL };

const struct cli_group cli_group_images = {
  .name = "images",
  .aliases = images_aliases,
  .summary = "Manage images",
  .commands = images_commands,
  .default_command = &images_commands[IMAGES_LS],
};

/* berth rmi = berth images rm; berth tag = berth images tag (docker). */
const struct cli_group cli_group_rmi = {
  .name = "rmi",
  .summary = "Remove images (= images rm)",
  .self = &images_commands[IMAGES_RM],
};

const struct cli_group cli_group_tag = {
  .name = "tag",
  .summary = "Give an image more names (= images tag)",
  .self = &images_commands[IMAGES_TAG],
};
