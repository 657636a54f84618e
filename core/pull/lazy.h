/* core/pull: layers pulled lazily through a remote snapshotter.
 *
 * A snapshotter plugin with the capability LAZY_CAPABILITY (the fuse
 * snapshotter) can serve an eStargz layer straight from the registry while
 * it downloads in the background.  The pull then prepares such a layer with
 * containerd's remote-snapshotter labels plus LAZY_LABEL_* (where the blob
 * is and how to reach it) instead of downloading it; the plugin answers
 * EXISTS when it serves the layer (docs/design-notes.md, "Lazy pulls").
 * Secrets (an Authorization header) never go into a label: they are
 * written to a 0600 file under <state>/io.berth.remote/ whose path is the
 * label.
 *
 * When the plugin's copy of the blob is complete and verified, it
 * publishes LAZY_TOPIC_COMPLETE; the core then files that copy in the
 * content store (content op `adopt`, ABI 1.3: a hard link, no second copy)
 * and records it in the namespace, so that the image is whole again and GC
 * keeps the blob.
 */
#ifndef BERTH_CORE_PULL_LAZY_H
#define BERTH_CORE_PULL_LAZY_H
#include <stdint.h>
#include "host-objects.h"
#include "pull/registry.h"

struct daemon;

#define LAZY_CAPABILITY "remote-snapshot"
#define LAZY_TOPIC_COMPLETE "/snapshots/io.berth.blob-complete"

#define LAZY_LABEL_PREFIX "containerd.io/snapshot/io.berth.remote."
#define LAZY_LABEL_URL LAZY_LABEL_PREFIX "url"
#define LAZY_LABEL_SIZE LAZY_LABEL_PREFIX "size"
#define LAZY_LABEL_TOC_DIGEST LAZY_LABEL_PREFIX "toc-digest"
#define LAZY_LABEL_PLAIN_HTTP LAZY_LABEL_PREFIX "plain-http"
#define LAZY_LABEL_HEADERS_FILE LAZY_LABEL_PREFIX "headers-file"
#define LAZY_LABEL_CA_FILE LAZY_LABEL_PREFIX "ca-file"

/* The directory of the headers and CA files, under the state directory. */
#define LAZY_STATE_DIR "io.berth.remote"

/* Where a lazily served blob comes from, for renewing its token. */
struct lazy_source
{
  const char *host; /* the registry host of the session ("docker.io") */
  const char *repo; /* "library/busybox" */
  const struct registry_options *ro;
};

/* Add the LAZY_LABEL_* labels for blob `digest` (size bytes, eStargz TOC
 * toc_digest) of namespace ns reached through a, writing its headers and
 * CAs to files when there are any.  When the headers hold a Bearer token,
 * a thread of this module writes the headers file again with a fresh token
 * (from src) at about 2/3 of each token's lifetime, until lazy_forget. */
int lazy_labels (const char *state_dir, const char *ns, const char *digest, int64_t size, const char *toc_digest,
                 const struct registry_blob_access *a, const struct lazy_source *src, berth_labels *l,
                 berth_error **err);

/* Remove the files lazy_labels wrote for digest (the layer was not served
 * lazily after all, or its blob is in the store now). */
void lazy_forget (const char *state_dir, const char *ns, const char *digest);

/* Start and stop taking LAZY_TOPIC_COMPLETE (the daemon's workers, meta and
 * plugins must outlive lazy_stop). */
void lazy_start (struct daemon *d);
void lazy_stop (void);

/* registry_publish's hook: true when topic is LAZY_TOPIC_COMPLETE (taken:
 * the blob is adopted on a worker thread), false for any other topic. */
bool lazy_publish (const char *ns, const char *topic, const char *const *fields);

#endif
