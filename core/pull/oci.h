/* OCI image-spec and Docker v2.2 documents: validation and typed parsing.
 *
 * Everything here is a pure function over bytes (no I/O, no logging) and is
 * safe to call from any thread.  Input is hostile: a document larger than
 * OCI_DOC_MAX or nested deeper than OCI_DEPTH_MAX is refused before json-c
 * sees it, and every field is type-checked before it is used.
 *
 * What "valid" means (oci_validate) is what image-spec's Go validator decides
 * (schema/validator.go: JSON syntax as encoding/json reads it, Go typed decoding
 * with case-insensitive keys, the draft-04 schemas with `format` assertions),
 * plus the spec MUSTs that upstream leaves out: every digest is checked
 * (go-digest rules), sizes are >= 0, input is UTF-8.  That is the verdict of
 * `../shared/tools/oci-validate --strict`, which agrees with the image-spec
 * corpus on every document.  berth also refuses, where Go would silently take
 * the last value, an object with a duplicate key: two parsers reading one
 * manifest differently is how confusion attacks start.
 *
 * The typed parsers (oci_manifest_parse, ...) validate first, then read the
 * document the way Go's encoding/json (hence containerd) does: keys match
 * case-insensitively and a later key wins.  They also refuse a document whose
 * shape contradicts its type (CVE-2021-41190: a manifest with "manifests", an
 * index with "layers" or "config"), and Docker schema 1 with a message that
 * says what to do.
 *
 * Ownership: every ret_ struct is allocated by the callee and freed with its
 * oci_*_free() (NULL-safe, returns NULL).  Strings are NUL-terminated UTF-8;
 * a string that holds a NUL (\u0000) is refused where it would be truncated
 * (digests, media types, platform fields, map keys).
 */
#ifndef BERTH_CORE_PULL_OCI_H
#define BERTH_CORE_PULL_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Media types. */
#define OCI_MT_DESCRIPTOR "application/vnd.oci.descriptor.v1+json"
#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYOUT "application/vnd.oci.layout.header.v1+json"
#define OCI_MT_EMPTY "application/vnd.oci.empty.v1+json"
#define OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define OCI_MT_LAYER_NONDIST "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define OCI_MT_LAYER_NONDIST_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define OCI_MT_LAYER_NONDIST_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_MANIFEST_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define DOCKER_MT_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define DOCKER_MT_LAYER_FOREIGN_GZIP "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define DOCKER_MT_MANIFEST_V1 "application/vnd.docker.distribution.manifest.v1+json"
#define DOCKER_MT_MANIFEST_V1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

#define OCI_SCHEMA1_MESSAGE \
  "schema 1 manifests are deprecated and not supported; push the image with a current client"

/* Limits on hostile input.  Configs carry history and env, so they get the
 * same bound as manifests; registries cap manifests at 4 MiB too. */
#define OCI_DOC_MAX (4u * 1024 * 1024)
#define OCI_DEPTH_MAX 64
/* Longest digest the typed structs hold (sha512 is 7 + 128).  The validator
 * accepts longer ones of unregistered algorithms, as the spec does. */
#define OCI_DIGEST_MAX 256

/* What a media type is, for a caller that dispatches on it. */
typedef enum oci_kind
{
  OCI_KIND_UNKNOWN = 0,
  OCI_KIND_DESCRIPTOR,
  OCI_KIND_MANIFEST, /* OCI image manifest or Docker v2 schema 2 */
  OCI_KIND_INDEX,    /* OCI image index or Docker manifest list */
  OCI_KIND_CONFIG,   /* OCI image config or Docker container image v1 */
  OCI_KIND_LAYOUT,   /* oci-layout file */
  OCI_KIND_LAYER,    /* any OCI or Docker layer type (tar, gzip, zstd, foreign) */
  OCI_KIND_SCHEMA1,  /* Docker v2 schema 1: always refused */
} oci_kind;

oci_kind oci_media_type_kind (const char *media_type);
/* True for Docker's schema-2 types (as opposed to the OCI ones). */
bool oci_media_type_is_docker (const char *media_type);

/* ---- digests ---------------------------------------------------------- */

typedef enum oci_digest_alg
{
  OCI_DIGEST_OTHER = 0, /* syntactically valid, algorithm not registered */
  OCI_DIGEST_SHA256,
  OCI_DIGEST_SHA384,
  OCI_DIGEST_SHA512,
} oci_digest_alg;

/* go-digest Digest.Validate(): "alg:encoded"; sha256/sha384/sha512 need
 * exactly 64/96/128 lowercase hex characters; other algorithms must match
 * [a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+.  0 or BERTH_E_INVALID. */
int oci_digest_validate (const char *digest, size_t len, berth_error **err);
/* Algorithm of an already validated digest. */
oci_digest_alg oci_digest_algorithm (const char *digest);
/* The encoded part (after ':'), or NULL. */
const char *oci_digest_encoded (const char *digest);

/* ---- types ------------------------------------------------------------ */

/* A string map (annotations, labels) in document order.  Keys are unique. */
typedef struct oci_map
{
  size_t n;
  char **keys;
  char **values;
} oci_map;

const char *oci_map_get (const oci_map *m, const char *key);

/* Image platform (image-spec image-index.md).  os_features may be NULL. */
typedef struct oci_platform
{
  char *architecture;
  char *os;
  char *os_version; /* NULL if absent */
  char **os_features; /* NULL-terminated, NULL if absent */
  char *variant;    /* NULL if absent */
} oci_platform;

oci_platform *oci_platform_free (oci_platform *p);
void oci_platform_freep (oci_platform **p);
/* Deep copy; NULL on ENOMEM. */
oci_platform *oci_platform_dup (const oci_platform *p);

/* Content descriptor.  A descriptor lives inside its document's struct and is
 * released with it; oci_descriptor_clear() frees a standalone one. */
typedef struct oci_descriptor
{
  char *media_type;
  char digest[OCI_DIGEST_MAX];
  int64_t size;         /* >= 0; a claim, not checked against anything here */
  char **urls;          /* NULL-terminated, NULL if absent */
  oci_map annotations;  /* n == 0 if absent */
  oci_platform *platform; /* NULL if absent */
  char *artifact_type;  /* NULL if absent */
  uint8_t *data;        /* decoded "data" (embedded content), NULL if absent */
  size_t data_len;
} oci_descriptor;

void oci_descriptor_clear (oci_descriptor *d);
/* Deep copy into *ret (which is overwritten, not cleared).  0 or BERTH_E_NOMEM. */
int oci_descriptor_copy (oci_descriptor *ret, const oci_descriptor *src, berth_error **err);

/* Image manifest, OCI or Docker v2 schema 2. */
typedef struct oci_manifest
{
  char *media_type;      /* the document's field, else the type it was parsed as */
  char *artifact_type;   /* NULL if absent */
  oci_descriptor config;
  oci_descriptor *layers;
  size_t n_layers;       /* >= 1 */
  oci_descriptor *subject; /* NULL if absent */
  oci_map annotations;
} oci_manifest;

/* Image index or Docker manifest list. */
typedef struct oci_index
{
  char *media_type;
  char *artifact_type;
  oci_descriptor *manifests;
  size_t n_manifests;    /* may be 0 */
  oci_descriptor *subject;
  oci_map annotations;
} oci_index;

typedef struct oci_history
{
  char *created;    /* RFC 3339 as written, NULL if absent */
  char *created_by;
  char *author;
  char *comment;
  bool empty_layer;
} oci_history;

/* Image config, OCI or Docker container image v1.  Strings are NULL when the
 * document does not set them.  entrypoint/cmd: NULL = unset (inherit), an
 * empty vector = explicitly empty, as Docker distinguishes them. */
typedef struct oci_config
{
  char *architecture;
  char *os;
  char *variant;
  char *os_version;
  char **os_features;
  char *created;
  char *author;
  struct
  {
    char *user;
    char **env;           /* "NAME=value" each */
    char **entrypoint;
    char **cmd;
    char *working_dir;
    char **exposed_ports; /* keys, e.g. "80/tcp" */
    char **volumes;       /* keys */
    oci_map labels;
    char *stop_signal;
    bool args_escaped;
  } config;
  char *rootfs_type;      /* "layers" */
  char **diff_ids;        /* NULL-terminated, never NULL after a parse */
  size_t n_diff_ids;
  oci_history *history;
  size_t n_history;
} oci_config;

typedef struct oci_layout
{
  char *image_layout_version; /* "1.0.0" */
} oci_layout;

/* ---- API -------------------------------------------------------------- */

/* Validate JSON bytes (len bytes, need not be NUL-terminated) as a document
 * of media_type: one of the OCI descriptor, manifest, index, config and
 * layout types, or a Docker schema-2 manifest, manifest list or config.
 * 0 if valid; BERTH_E_INVALID with the reason (a manifest or index
 * document with schemaVersion 1 is invalid, the reason being
 * OCI_SCHEMA1_MESSAGE); BERTH_E_NOTSUP for the schema-1 media types and for
 * a media type there is no validator for (layers, artifacts). */
int oci_validate (const char *media_type, const char *json, size_t len, berth_error **err);

/* media_type: what the registry or the parent descriptor said the document
 * is; must be a manifest type for oci_manifest_parse, an index type for
 * oci_index_parse, a config type for oci_config_parse.  NULL means "take the
 * document's mediaType field, else OCI".  A mediaType field of another kind
 * than media_type is refused (BERTH_E_INVALID); Docker schema 1, by media
 * type or by schemaVersion, is BERTH_E_NOTSUP with OCI_SCHEMA1_MESSAGE.
 * A digest longer than OCI_DIGEST_MAX - 1 is BERTH_E_NOTSUP. */
int oci_manifest_parse (const char *media_type, const char *json, size_t len, oci_manifest **ret,
                        berth_error **err);
int oci_index_parse (const char *media_type, const char *json, size_t len, oci_index **ret,
                     berth_error **err);
int oci_config_parse (const char *media_type, const char *json, size_t len, oci_config **ret,
                      berth_error **err);
int oci_descriptor_parse (const char *json, size_t len, oci_descriptor *ret, berth_error **err);
int oci_layout_parse (const char *json, size_t len, oci_layout **ret, berth_error **err);

oci_manifest *oci_manifest_free (oci_manifest *m);
oci_index *oci_index_free (oci_index *i);
oci_config *oci_config_free (oci_config *c);
oci_layout *oci_layout_free (oci_layout *l);
void oci_manifest_freep (oci_manifest **m);
void oci_index_freep (oci_index **i);
void oci_config_freep (oci_config **c);
void oci_layout_freep (oci_layout **l);

/* The media type of a document that came without one (an OCI manifest or
 * index may omit mediaType; a file from disk has no Content-Type): the
 * document's mediaType field if it is a known type, else guessed from
 * schemaVersion and shape ("manifests" → index, "config"+"layers" →
 * manifest, schemaVersion 1 → Docker schema 1, "rootfs" → config,
 * "imageLayoutVersion" → layout).  Returns one of the static OCI_MT_* /
 * DOCKER_MT_* strings, or NULL if the bytes are not JSON or say nothing. */
const char *oci_detect_media_type (const char *json, size_t len);

#endif
