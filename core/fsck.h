/* Consistency checks of berthd's store (start-up recovery, `berth fsck`)
 * and the disk usage report (`berth system df`).
 *
 * What is compared: the metadata database itself (PRAGMA quick_check), the
 * runtime plugins' task directories (<state>/<runtime plugin>/<ns>/<id>/meta)
 * and the bundles (<state>/bundles/<ns>/<id>/config.json), content records
 * and image targets against the content store's blobs (size always, sha256
 * when verify_digests), snapshot records against the snapshotter plugins
 * (both ways, and the paths of active snapshots' mounts), containers
 * against their snapshot records, and ingests by age.
 *
 * Nothing is deleted silently.  What does not match is either left in place
 * and reported, or (repair) put aside under <root>/quarantine/<UTC time>/
 * (files and directories are moved, blobs copied through the store's
 * reader and then deleted from the store, records written there as JSON
 * and then dropped); every item names what, why and where it went.  The
 * exceptions are said per item in its action: orphan plugin snapshots and
 * stale ingests are derived data (unpacked or fetched again when needed)
 * and are removed through the plugin.
 *
 * Everything here blocks (disk, SQLite, plugin calls): worker threads or
 * start-up only.
 */
#ifndef BERTH_CORE_FSCK_H
#define BERTH_CORE_FSCK_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon.h"

#define FSCK_QUARANTINE_DIR "quarantine"
/* An ingest not written for this long is stale (the local store's own
 * start-up cleaning uses its ingest_max_age). */
#define FSCK_INGEST_STALE_NS (INT64_C (24) * 3600 * 1000000000)

struct fsck_opts
{
  bool repair;         /* quarantine / drop; otherwise only report */
  bool verify_digests; /* hash every blob (slow on big stores) */
  bool live;           /* the daemon is serving: never move meta.db or task state */
  bool drop_records;   /* drop records that point at nothing (fsck --repair, not start-up) */
};

struct fsck_item
{
  char *kind;    /* "metadata", "task-state", "bundle", "blob", "content", "image", "snapshot", "container", "ingest" */
  char *ns;      /* NULL when not namespaced */
  char *id;      /* digest, key, path... */
  char *problem; /* why it is reported */
  char *action;  /* what was done; NULL: nothing (still a problem) */
  char *path;    /* where it went (quarantine), or NULL */
  int64_t size;
};

struct fsck_report
{
  struct fsck_item *items;
  size_t n;
  int64_t blobs, records, snapshots, files; /* how many were checked */
  char *quarantine;                         /* the run's quarantine dir, when one was made */
  bool repair;
};

void fsck_report_clear (struct fsck_report *r);
/* Problems left (items without an action). */
size_t fsck_report_unresolved (const struct fsck_report *r);

/* The files that must be sane before the metadata is opened and the plugins
 * start: meta.db, task directories, bundles.  Start-up (live false) moves
 * what is broken to the quarantine; live only reports. */
int fsck_files (const char *root, const char *state, const struct fsck_opts *o, struct fsck_report *r,
                berth_error **err);
/* Metadata against the plugins' data (see the top of this file). */
int fsck_store (struct daemon *d, const struct fsck_opts *o, struct fsck_report *r, berth_error **err);

/* Start-up hooks: run the checks, log one line per item and a summary,
 * never fail (the daemon starts whatever they find). */
void fsck_startup_files (const char *root, const char *state);
void fsck_startup_store (struct daemon *d);

/* berth.services.v1.System (core/api/service-system.c). */
int service_system_register (struct daemon *d, berth_error **err);

/* ---- disk usage ---------------------------------------------------------- */

struct df_row
{
  char *type; /* "images", "containers", "snapshots", "content", "ingests", "quarantine", "build-cache" */
  char *name; /* snapshotter id for "snapshots", "" otherwise */
  int64_t count, active; /* active: images used by a container, containers with a task... */
  int64_t size;          /* bytes; -1: not applicable */
  int64_t reclaimable;   /* bytes GC would free; -1: not applicable */
};

struct df_item
{
  char *type;
  char *ns;
  char *name;
  int64_t size;
  char *detail;
};

struct df_report
{
  struct df_row *rows;
  size_t n_rows;
  struct df_item *items; /* verbose only */
  size_t n_items;
};

void df_report_clear (struct df_report *r);
int fsck_df (struct daemon *d, bool verbose, struct df_report *ret, berth_error **err);

/* Bytes used by the files under path (st_blocks, like du), 0 when missing. */
int64_t fsck_du (const char *path);

#endif
