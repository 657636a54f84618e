/* The daemon-side pull: reference → registry → content store → image record.
 *
 * pull_run() blocks (run it on the worker pool): it resolves the reference
 * through the hosts.toml endpoints, fetches the manifest (or index, then the
 * manifests of the wanted platforms), the config and the layers — layers in
 * parallel, each streamed into the content store's resumable ingest, so a
 * pull that is cut (a dropped connection, a killed daemon) continues from
 * the bytes already on disk — and records the image.  Everything it stores
 * is held by a lease while it runs (containerd.io/gc.expire one hour ahead,
 * so a crash leaves nothing pinned forever) and referenced afterwards by the
 * image record and the containerd.io/gc.ref.content.* labels of the
 * manifests, as containerd does.  For content_only pulls (berth content
 * fetch, as ctr content fetch) the lease is kept for 24 hours instead.
 *
 * Progress: `fn` is called from the pulling thread with a snapshot of every
 * layer (at most every 100 ms, and at each phase change); it must copy what
 * it keeps.
 */
#ifndef BERTH_CORE_PULL_H
#define BERTH_CORE_PULL_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"

struct pull_request
{
  const char *ns;
  const char *reference;
  const char *const *platforms; /* "os/arch[/variant]"; NULL/0: the host's */
  size_t nplatforms;
  bool all_platforms;
  bool plain_http;
  const char *username; /* credentials for this pull only; never logged */
  const char *secret;
  bool content_only;    /* no image record; the lease stays (24 h) */
  bool skip_unpack;     /* fetch and record the image, but unpack nothing */
  const char *snapshotter; /* NULL: overlayfs, else native where overlayfs cannot run */
  int max_concurrent_downloads; /* 0: [registry] max_concurrent_downloads */
};

enum pull_phase
{
  PULL_WAITING,
  PULL_DOWNLOADING,
  PULL_VERIFYING,
  PULL_DONE,
  PULL_EXISTS,
  PULL_EXTRACTING,
  PULL_ERROR,
  PULL_LAZY, /* served by a remote snapshotter; fetched by it, not by the pull */
};

const char *pull_phase_name (enum pull_phase p);

struct pull_layer
{
  char digest[256]; /* OCI_DIGEST_MAX */
  char *media_type;
  enum pull_phase phase;
  int64_t offset;  /* bytes held */
  int64_t total;
  int64_t resumed; /* bytes already on disk when this pull began */
  double rate;     /* bytes/s over the last second */
  char *error;
};

struct pull_status
{
  const char *status; /* "resolving", "fetching", "done" */
  const char *image;  /* normalised reference */
  const char *target_digest;
  const char *target_media_type;
  int64_t target_size;
  const struct pull_layer *layers;
  size_t nlayers;
  bool done;
  double elapsed; /* seconds */
};

typedef void (*pull_progress_fn) (const struct pull_status *st, void *data);

int pull_run (struct daemon *d, const struct pull_request *req, pull_progress_fn fn, void *data,
              const volatile int *cancelled, berth_error **err);

#endif
