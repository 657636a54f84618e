/* Garbage collection of content: mark-and-sweep over the metadata, then
 * over the content store's blobs (containerd's metadata/gc.go model).
 *
 * Mark, per namespace: roots are image targets (and image labels
 * containerd.io/gc.ref.content*), content of leases that have not expired
 * (containerd.io/gc.expire), and content labelled containerd.io/gc.root;
 * edges are content labels containerd.io/gc.ref.content[.<anything>] whose
 * value is a digest.  Sweep: expired leases, unmarked content records, then
 * blobs of the store that no namespace has a record for.  Ingests are left
 * to the store (it cleans stale ones itself).  Containers are roots too:
 * they hold their snapshot (snapshotter, key) and what their gc.ref labels name.
 *
 * Snapshots (containerd's metadata/gc.go): roots are snapshots held by a
 * live lease ("snapshots/<snapshotter>" resources) and snapshots labelled
 * containerd.io/gc.root; edges are a snapshot's parent and the labels
 * containerd.io/gc.ref.snapshot.<snapshotter>[/<anything>] = <key> on
 * content (the image config that ctr and the pull label with the chainID),
 * images and snapshots, and containerd.io/gc.ref.content* on snapshots.
 * Unmarked snapshot records are removed (children first); gc_run() then
 * removes from each snapshotter plugin the snapshots no record names.
 *
 * The whole run holds the metadata lock (meta_lock), so nothing can add a
 * reference between mark and sweep.  Everything here blocks (SQLite writes,
 * store deletes): call it from a worker thread, except gc_schedule() and
 * gc_start()/gc_stop(), which belong to the loop thread.
 *
 * When it runs: after deletions (gc_schedule, debounced by
 * GC_DEBOUNCE_MS), every GC_PERIOD_MS (an internal default, not yet a
 * config key), synchronously for deletes with `sync`, and on demand.
 */
#ifndef BERTH_CORE_GC_H
#define BERTH_CORE_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include "metadata/meta.h"
#include "registry.h"

#define GC_DEBOUNCE_MS 100

/* A daemon-side pull labels its lease with the id of the daemon process
 * that runs it (gc_instance; not a content-only fetch).  A lease with
 * another id belongs to a pull that died with an earlier daemon (a crash
 * or a restart mid-pull): GC no longer counts the half-made snapshots it
 * holds (keys "extract-<lease>-...") as roots, so they go at the next run
 * (one of them may name a backend snapshot the plugin had already
 * committed under another name).  Its content stays held until the lease
 * expires, so that the pull's next try does not fetch it again.  gc_run
 * also removes the staging trees of such pulls
 * (<root>/io.berth.unpack/<instance>/, every instance but ours). */
#define GC_LABEL_PULL_INSTANCE "io.berth.pull.instance"
#define GC_STAGING_DIR "io.berth.unpack"

/* This process's instance id: 32 hex digits, random, made once; thread-safe. */
const char *gc_instance (void);
#define GC_PERIOD_MS (10 * 60 * 1000)

enum gc_kind
{
  GC_CONTENT, /* a content record in a namespace */
  GC_LEASE,   /* an expired lease */
  GC_BLOB,    /* a blob of the content store (no namespace) */
  GC_SNAPSHOT, /* a snapshot record in a namespace; id "<snapshotter>/<key>" */
};

const char *gc_kind_name (enum gc_kind k); /* "content", "lease", "blob", "snapshot" */

struct gc_item
{
  enum gc_kind kind;
  char *ns; /* NULL for blobs */
  char *id; /* digest or lease id */
  int64_t size; /* bytes (content, blobs); 0 for leases */
  char *reason;
};

struct gc_report
{
  bool dry_run;
  struct gc_item *items; /* removed, or that would be removed */
  size_t n;
  int64_t bytes; /* blob bytes freed (or that would be) */
  int64_t duration_ns;
};

void gc_report_clear (struct gc_report *r);

/* The content store the services and GC use (io.berth.content.v1.local):
 * BERTH_E_UNAVAILABLE naming it when it is missing or not ok. */
int gc_content_store (struct daemon *d, plugin **ret, berth_error **err);

/* One mark-and-sweep.  ns limits the metadata sweep to one namespace (NULL:
 * all); the blob sweep always considers every namespace's records.  store
 * may be NULL (metadata only).  now: ns since the epoch, for lease expiry. */
int gc_collect (meta *m, plugin *store, const char *ns, bool dry_run, int64_t now, struct gc_report *ret,
                berth_error **err);
/* The chains that keep digest alive in ns (NULL: every namespace), one line
 * each, e.g. "image docker.io/library/busybox:latest -> index sha256:... ->
 * sha256:... (label containerd.io/gc.ref.content.m.0)", or why it would be
 * collected.  *ret_text is malloc'ed. */
int gc_explain_in (meta *m, plugin *store, const char *ns, const char *digest, int64_t now, char **ret_text,
                   berth_error **err);

/* The daemon's forms, on d->meta and the content store. */
int gc_run (struct daemon *d, const char *ns, bool dry_run, struct gc_report *ret, berth_error **err);
int gc_explain (struct daemon *d, const char *ns, const char *digest, char **ret_text, berth_error **err);

/* Loop thread: ask for a run soon (debounced; a request during a run
 * queues one more run). */
void gc_schedule (struct daemon *d);
/* Loop thread: arm the periodic run. */
int gc_start (struct daemon *d, berth_error **err);
void gc_stop (struct daemon *d);

#endif
