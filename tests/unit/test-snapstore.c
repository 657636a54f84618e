/* Tests for sdk/snapstore (libberth-snapstore, include/berth/snapstore.h):
 * containerd's snapshots/storage semantics through the public API, with the
 * daemon's real host table (registry_host) for errors and label maps.
 *
 * Each test works in its own directory under a work directory that main()
 * creates and removes.
 */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <berth/snapstore.h>

#include "cleanup.h"
#include "check-sdk.h"
#include "error.h"
#include "host-objects.h"
#include "registry.h"

#define ck_assert_contains(haystack, needle)                                                       \
  do                                                                                               \
    {                                                                                              \
      const char *h_ = (haystack);                                                                 \
      ck_assert_msg (h_ != NULL && strstr (h_, (needle)) != NULL, "`%s` does not contain `%s`",    \
                     h_ ? h_ : "(null)", (needle));                                                \
    }                                                                                              \
  while (0)

static char workdir[64];

static char *
join (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  ck_assert_int_ge (vasprintf (&p, fmt, ap), 0);
  va_end (ap);
  return p;
}

static char *
make_tmpdir (void)
{
  char *dir = join ("%s/t.XXXXXX", workdir);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  return dir;
}

static const struct berth_host *host;

static berth_snapstore *
open_store (const char *dir)
{
  _cleanup_free_ char *path = join ("%s/metadata.db", dir);
  berth_snapstore *s = NULL;
  ck_ok (berth_snapstore_open (host, path, &s, err));
  ck_assert_ptr_nonnull (s);
  return s;
}

static berth_snaptx *
begin (berth_snapstore *s, int writable)
{
  berth_snaptx *tx = NULL;
  ck_ok (berth_snapstore_begin (s, writable, &tx, err));
  return tx;
}

static void
commit (berth_snaptx *tx)
{
  ck_ok (berth_snapstore_commit (tx, err));
}

/* Create key on parent in its own transaction; returns the record. */
static struct berth_snapstore_snapshot *
create (berth_snapstore *s, uint32_t kind, const char *key, const char *parent, const berth_labels *labels)
{
  berth_snaptx *tx = begin (s, 1);
  struct berth_snapstore_snapshot *snap = NULL;
  ck_ok (berth_snapstore_create (tx, kind, key, parent, labels, &snap, err));
  commit (tx);
  ck_assert_ptr_nonnull (snap);
  ck_assert_ptr_nonnull (snap->parent_ids);
  return snap;
}

static void
commit_active (berth_snapstore *s, const char *key, const char *name, char id[BERTH_SNAPSTORE_ID_MAX])
{
  berth_snaptx *tx = begin (s, 1);
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = 3, .bytes = 4096 };
  ck_ok (berth_snapstore_commit_active (tx, key, name, NULL, &u, id, err));
  commit (tx);
}

/* base <- mid <- top, all committed; ids returned. */
static void
make_chain (berth_snapstore *s, char base[BERTH_SNAPSTORE_ID_MAX], char mid[BERTH_SNAPSTORE_ID_MAX],
            char top[BERTH_SNAPSTORE_ID_MAX])
{
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "base-a", NULL, NULL));
  commit_active (s, "base-a", "base", base);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "mid-a", "base", NULL));
  commit_active (s, "mid-a", "mid", mid);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "top-a", "mid", NULL));
  commit_active (s, "top-a", "top", top);
}

/* ---- tests ----------------------------------------------------------------- */

START_TEST (test_parent_chains_list_ids_from_the_nearest_parent_to_the_base)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  char base[BERTH_SNAPSTORE_ID_MAX], mid[BERTH_SNAPSTORE_ID_MAX], top[BERTH_SNAPSTORE_ID_MAX];
  make_chain (s, base, mid, top);
  ck_assert_str_ne (base, mid);
  ck_assert_str_ne (mid, top);

  struct berth_snapstore_snapshot *c = create (s, BERTH_SNAPSHOT_ACTIVE, "container", "top", NULL);
  ck_assert_uint_eq (c->kind, BERTH_SNAPSHOT_ACTIVE);
  ck_assert_uint_eq (c->n_parents, 3);
  ck_assert_str_eq (c->parent_ids[0], top);
  ck_assert_str_eq (c->parent_ids[1], mid);
  ck_assert_str_eq (c->parent_ids[2], base);
  ck_assert_ptr_null (c->parent_ids[3]);

  /* get answers the same as create did. */
  berth_snaptx *tx = begin (s, 0);
  struct berth_snapstore_snapshot *g = NULL;
  ck_ok (berth_snapstore_get (tx, "container", &g, err));
  ck_assert_str_eq (g->id, c->id);
  ck_assert_uint_eq (g->n_parents, 3);
  ck_assert_str_eq (g->parent_ids[2], base);
  berth_snapstore_snapshot_free (g);

  /* A base snapshot has an empty (but present) chain. */
  ck_ok (berth_snapstore_get (tx, "base", &g, err));
  ck_assert_uint_eq (g->n_parents, 0);
  ck_assert_ptr_nonnull (g->parent_ids);
  ck_assert_ptr_null (g->parent_ids[0]);
  berth_snapstore_snapshot_free (g);
  berth_snapstore_rollback (tx);

  berth_snapstore_snapshot_free (c);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_commit_keeps_the_id_moves_the_key_and_records_usage)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_labels l = { 0 };
  labels_set (&l, "active-label", "x");
  struct berth_snapstore_snapshot *a = create (s, BERTH_SNAPSHOT_ACTIVE, "work", NULL, &l);
  labels_clear (&l);

  berth_snaptx *tx = begin (s, 1);
  labels_set (&l, "containerd.io/snapshot.ref", "sha256:abc");
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = 12, .bytes = 65536 };
  char id[BERTH_SNAPSTORE_ID_MAX];
  ck_ok (berth_snapstore_commit_active (tx, "work", "layer1", &l, &u, id, err));
  labels_clear (&l);
  commit (tx);
  ck_assert_str_eq (id, a->id);

  tx = begin (s, 0);
  struct berth_snapstore_snapshot *g = NULL;
  ck_fails (berth_snapstore_get (tx, "work", &g, err), BERTH_E_NOTFOUND, "`work`");
  ck_ok (berth_snapstore_get (tx, "layer1", &g, err));
  ck_assert_str_eq (g->id, a->id);
  ck_assert_uint_eq (g->kind, BERTH_SNAPSHOT_COMMITTED);
  ck_assert_int_eq (g->inodes, 12);
  ck_assert_int_eq (g->bytes, 65536);
  berth_snapstore_snapshot_free (g);

  struct berth_snapshot_info info = { .size = sizeof info, .labels = &l };
  char gid[BERTH_SNAPSTORE_ID_MAX];
  ck_ok (berth_snapstore_get_info (tx, "layer1", &info, gid, err));
  ck_assert_str_eq (gid, a->id);
  ck_assert_str_eq (info.name, "layer1");
  ck_assert_str_eq (info.parent, "");
  ck_assert_uint_eq (info.kind, BERTH_SNAPSHOT_COMMITTED);
  ck_assert_int_gt (info.created_at, 0);
  /* The active snapshot's labels were dropped, the commit's kept. */
  ck_assert_ptr_null (labels_get (&l, "active-label"));
  ck_assert_str_eq (labels_get (&l, "containerd.io/snapshot.ref"), "sha256:abc");
  labels_clear (&l);
  berth_snapstore_rollback (tx);

  berth_snapstore_snapshot_free (a);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_create_refuses_taken_keys_missing_and_uncommitted_parents)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "a", NULL, NULL));
  berth_snaptx *tx = begin (s, 1);
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "a", NULL, NULL, NULL, err), BERTH_E_EXISTS,
            "snapshot `a` already exists");
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_VIEW, "v", "nope", NULL, NULL, err), BERTH_E_NOTFOUND,
            "parent snapshot `nope` of `v` does not exist");
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "b", "a", NULL, NULL, err), BERTH_E_INVALID,
            "parent `a` of `b` is not a committed snapshot");
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "", NULL, NULL, NULL, err), BERTH_E_INVALID,
            "must not be empty");
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_COMMITTED, "c", NULL, NULL, NULL, err), BERTH_E_INVALID,
            "kind committed cannot be created");
  berth_snapstore_rollback (tx);

  /* A read transaction cannot write. */
  tx = begin (s, 0);
  ck_fails (berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "z", NULL, NULL, NULL, err), BERTH_E_INTERNAL,
            "writable");
  berth_snapstore_rollback (tx);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_commit_refuses_views_committed_snapshots_and_taken_names)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  char base[BERTH_SNAPSTORE_ID_MAX], mid[BERTH_SNAPSTORE_ID_MAX], top[BERTH_SNAPSTORE_ID_MAX];
  make_chain (s, base, mid, top);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_VIEW, "look", "top", NULL));
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "work", "top", NULL));
  berth_snaptx *tx = begin (s, 1);
  ck_fails (berth_snapstore_commit_active (tx, "look", "x", NULL, NULL, NULL, err), BERTH_E_PRECONDITION,
            "`look` is a view snapshot, not active");
  ck_fails (berth_snapstore_commit_active (tx, "mid", "x", NULL, NULL, NULL, err), BERTH_E_PRECONDITION,
            "`mid` is a committed snapshot");
  ck_fails (berth_snapstore_commit_active (tx, "work", "base", NULL, NULL, NULL, err), BERTH_E_EXISTS,
            "snapshot `base` already exists");
  ck_fails (berth_snapstore_commit_active (tx, "gone", "x", NULL, NULL, NULL, err), BERTH_E_NOTFOUND,
            "snapshot `gone` does not exist");
  berth_snapstore_rollback (tx);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_remove_is_refused_while_children_exist)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  char base[BERTH_SNAPSTORE_ID_MAX], mid[BERTH_SNAPSTORE_ID_MAX], top[BERTH_SNAPSTORE_ID_MAX];
  make_chain (s, base, mid, top);
  struct berth_snapstore_snapshot *v = create (s, BERTH_SNAPSHOT_VIEW, "look", "top", NULL);

  berth_snaptx *tx = begin (s, 1);
  ck_fails (berth_snapstore_remove (tx, "top", NULL, NULL, err), BERTH_E_PRECONDITION,
            "cannot remove snapshot with child: `top` is the parent of `look`");
  ck_fails (berth_snapstore_remove (tx, "base", NULL, NULL, err), BERTH_E_PRECONDITION,
            "cannot remove snapshot with child");
  ck_fails (berth_snapstore_remove (tx, "nope", NULL, NULL, err), BERTH_E_NOTFOUND, "`nope`");
  char id[BERTH_SNAPSTORE_ID_MAX];
  uint32_t kind = 0;
  ck_ok (berth_snapstore_remove (tx, "look", id, &kind, err));
  ck_assert_str_eq (id, v->id);
  ck_assert_uint_eq (kind, BERTH_SNAPSHOT_VIEW);
  /* Children go first, then the chain unwinds. */
  ck_ok (berth_snapstore_remove (tx, "top", id, &kind, err));
  ck_assert_str_eq (id, top);
  ck_assert_uint_eq (kind, BERTH_SNAPSHOT_COMMITTED);
  ck_ok (berth_snapstore_remove (tx, "mid", id, NULL, err));
  ck_ok (berth_snapstore_remove (tx, "base", id, NULL, err));
  ck_assert_str_eq (id, base);
  commit (tx);

  tx = begin (s, 0);
  char **ids = NULL;
  ck_ok (berth_snapstore_ids (tx, &ids, err));
  ck_assert_ptr_null (ids[0]);
  berth_snapstore_strv_free (ids);
  berth_snapstore_rollback (tx);
  berth_snapstore_snapshot_free (v);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_rollback_forgets_what_the_transaction_did)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_snaptx *tx = begin (s, 1);
  ck_ok (berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "a", NULL, NULL, NULL, err));
  berth_snapstore_rollback (tx);
  tx = begin (s, 0);
  struct berth_snapstore_snapshot *g = NULL;
  ck_fails (berth_snapstore_get (tx, "a", &g, err), BERTH_E_NOTFOUND, "`a` does not exist");
  berth_snapstore_rollback (tx);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_labels_are_set_replaced_and_deleted_by_fieldpath)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_labels l = { 0 };
  labels_set (&l, "a", "1");
  labels_set (&l, "b", "2");
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "k", NULL, &l));
  labels_clear (&l);

  berth_snaptx *tx = begin (s, 1);
  struct berth_snapshot_info before = { .size = sizeof before };
  ck_ok (berth_snapstore_get_info (tx, "k", &before, NULL, err));

  /* labels.b absent from the input deletes b; labels.c sets c; a stays. */
  berth_labels in = { 0 };
  labels_set (&in, "c", "3");
  labels_set (&in, "a", "ignored");
  struct berth_snapshot_info info = { .size = sizeof info, .labels = &in };
  snprintf (info.name, sizeof info.name, "k");
  const char *const paths[] = { "labels.b", "labels.c", NULL };
  struct berth_snapshot_info out = { .size = sizeof out, .labels = &l };
  ck_ok (berth_snapstore_update_info (tx, &info, paths, &out, err));
  ck_assert_str_eq (labels_get (&l, "a"), "1");
  ck_assert_ptr_null (labels_get (&l, "b"));
  ck_assert_str_eq (labels_get (&l, "c"), "3");
  ck_assert_int_ge (out.updated_at, before.updated_at);
  labels_clear (&l);

  /* No fieldpaths: every label replaced. */
  ck_ok (berth_snapstore_update_info (tx, &info, NULL, &out, err));
  ck_assert_str_eq (labels_get (&l, "a"), "ignored");
  ck_assert_str_eq (labels_get (&l, "c"), "3");
  ck_assert_uint_eq (l.n, 2);
  labels_clear (&l);

  const char *const bad[] = { "parent", NULL };
  ck_fails (berth_snapstore_update_info (tx, &info, bad, NULL, err), BERTH_E_INVALID,
            "cannot update `parent` field on snapshot `k`");
  snprintf (info.name, sizeof info.name, "missing");
  ck_fails (berth_snapstore_update_info (tx, &info, NULL, NULL, err), BERTH_E_NOTFOUND, "`missing`");

  /* containerd's 4096-byte limit on key + value. */
  char *big = calloc (1, 5000);
  memset (big, 'v', 4999);
  labels_set (&in, "huge", big);
  free (big);
  snprintf (info.name, sizeof info.name, "k");
  ck_fails (berth_snapstore_update_info (tx, &info, NULL, NULL, err), BERTH_E_INVALID, "maximum size");
  labels_clear (&in);
  commit (tx);
  berth_snapstore_close (s);
}
END_TEST

struct walk_seen
{
  char names[16][BERTH_NAME_MAX];
  char parents[16][BERTH_NAME_MAX];
  uint32_t kinds[16];
  size_t n;
  berth_snapstore *s; /* used from inside the callback */
  size_t stop_after;
};

static int
walk_collect (const struct berth_snapshot_info *info, void *data)
{
  struct walk_seen *w = data;
  ck_assert_uint_lt (w->n, 16);
  ck_assert_ptr_null (info->labels);
  snprintf (w->names[w->n], sizeof w->names[0], "%s", info->name);
  snprintf (w->parents[w->n], sizeof w->parents[0], "%s", info->parent);
  w->kinds[w->n] = info->kind;
  w->n++;
  if (w->s)
    {
      /* The walk holds no transaction while calling back. */
      berth_snaptx *tx = begin (w->s, 0);
      berth_snapstore_rollback (tx);
    }
  return w->stop_after && w->n == w->stop_after ? 1 : 0;
}

static size_t
walk_names (berth_snapstore *s, const char *const *filters, struct walk_seen *w)
{
  memset (w, 0, sizeof *w);
  ck_ok (berth_snapstore_walk (s, NULL, filters, walk_collect, w, err));
  return w->n;
}

START_TEST (test_walk_filters_by_kind_name_parent_and_labels)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  char base[BERTH_SNAPSTORE_ID_MAX], mid[BERTH_SNAPSTORE_ID_MAX], top[BERTH_SNAPSTORE_ID_MAX];
  make_chain (s, base, mid, top);
  berth_labels l = { 0 };
  labels_set (&l, "containerd.io/gc.root", "yes");
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_VIEW, "look", "top", &l));
  labels_clear (&l);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "work", "mid", NULL));

  struct walk_seen w;
  ck_assert_uint_eq (walk_names (s, NULL, &w), 5);
  /* In key order, with parents by name. */
  ck_assert_str_eq (w.names[0], "base");
  ck_assert_str_eq (w.names[1], "look");
  ck_assert_str_eq (w.parents[1], "top");
  ck_assert_uint_eq (w.kinds[1], BERTH_SNAPSHOT_VIEW);

  const char *const committed[] = { "kind==committed", NULL };
  ck_assert_uint_eq (walk_names (s, committed, &w), 3);
  const char *const on_mid[] = { "parent==mid", NULL };
  ck_assert_uint_eq (walk_names (s, on_mid, &w), 2);
  const char *const lbl[] = { "labels.\"containerd.io/gc.root\"", NULL };
  ck_assert_uint_eq (walk_names (s, lbl, &w), 1);
  ck_assert_str_eq (w.names[0], "look");
  const char *const either[] = { "name==work", "kind==view", NULL };
  ck_assert_uint_eq (walk_names (s, either, &w), 2);
  const char *const re[] = { "name~=^(ba|to)", "kind!=active", NULL };
  ck_assert_uint_eq (walk_names (s, re, &w), 4); /* base, top, + look (view), mid (committed) */

  const char *const broken[] = { "name==", NULL };
  ck_fails (berth_snapstore_walk (s, NULL, broken, walk_collect, &w, err), BERTH_E_INVALID, "invalid filter");

  /* The callback may use the store, and a non-zero return stops the walk. */
  memset (&w, 0, sizeof w);
  w.s = s;
  w.stop_after = 2;
  ck_ok (berth_snapstore_walk (s, NULL, NULL, walk_collect, &w, err));
  ck_assert_uint_eq (w.n, 2);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_records_survive_reopening_and_ids_are_never_reused)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  char base[BERTH_SNAPSTORE_ID_MAX], mid[BERTH_SNAPSTORE_ID_MAX], top[BERTH_SNAPSTORE_ID_MAX];
  make_chain (s, base, mid, top);
  struct berth_snapstore_snapshot *last = create (s, BERTH_SNAPSHOT_ACTIVE, "last", "top", NULL);
  berth_snapstore_close (s);

  s = open_store (dir);
  berth_snaptx *tx = begin (s, 1);
  struct berth_snapstore_snapshot *g = NULL;
  ck_ok (berth_snapstore_get (tx, "last", &g, err));
  ck_assert_str_eq (g->id, last->id);
  ck_assert_uint_eq (g->n_parents, 3);
  ck_assert_str_eq (g->parent_ids[0], top);
  berth_snapstore_snapshot_free (g);
  ck_ok (berth_snapstore_remove (tx, "last", NULL, NULL, err));
  commit (tx);
  berth_snapstore_close (s);

  /* The removed snapshot had the highest id; its id is not handed out again. */
  s = open_store (dir);
  struct berth_snapstore_snapshot *again = create (s, BERTH_SNAPSHOT_ACTIVE, "last", "top", NULL);
  ck_assert_str_ne (again->id, last->id);
  ck_assert_int_gt (atoll (again->id), atoll (last->id));
  berth_snapstore_snapshot_free (again);
  berth_snapstore_snapshot_free (last);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_a_crash_between_mkdir_and_commit_leaves_a_directory_the_ids_do_not_name)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *snapdir = join ("%s/snapshots", dir);
  ck_assert_int_eq (mkdir (snapdir, 0700), 0);
  berth_snapstore *s = open_store (dir);
  struct berth_snapstore_snapshot *kept = create (s, BERTH_SNAPSHOT_ACTIVE, "kept", NULL, NULL);
  _cleanup_free_ char *kept_dir = join ("%s/%s", snapdir, kept->id);
  ck_assert_int_eq (mkdir (kept_dir, 0700), 0);

  /* The plugin records "lost" and makes its directory, then "crashes"
   * before the commit: a child process dies with the transaction open. */
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      berth_snapstore *cs = open_store (dir);
      berth_snaptx *tx = NULL;
      struct berth_snapstore_snapshot *snap = NULL;
      if (berth_snapstore_begin (cs, 1, &tx, NULL) < 0
          || berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, "lost", NULL, NULL, &snap, NULL) < 0)
        _exit (2);
      char *d = join ("%s/%s", snapdir, snap->id);
      _exit (mkdir (d, 0700) == 0 ? 0 : 3);
    }
  int status = 0;
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0, "child status %d", status);

  berth_snapstore_close (s);
  s = open_store (dir);
  berth_snaptx *tx = begin (s, 0);
  struct berth_snapstore_snapshot *g = NULL;
  ck_fails (berth_snapstore_get (tx, "lost", &g, err), BERTH_E_NOTFOUND, "`lost`");
  char **ids = NULL;
  ck_ok (berth_snapstore_ids (tx, &ids, err));
  berth_snapstore_rollback (tx);

  /* Cleanup's view: every directory whose name is not an id is an orphan. */
  size_t orphans = 0, known = 0;
  DIR *d = opendir (snapdir);
  ck_assert_ptr_nonnull (d);
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      if (e->d_name[0] == '.')
        continue;
      bool found = false;
      for (char **p = ids; *p; p++)
        found |= strcmp (*p, e->d_name) == 0;
      if (found)
        known++;
      else
        {
          orphans++;
          ck_assert_int_eq (berth_snapstore_remove_tree (s, dirfd (d), e->d_name, NULL), 0);
        }
    }
  closedir (d);
  ck_assert_uint_eq (known, 1);
  ck_assert_uint_eq (orphans, 1);
  ck_assert_str_eq (ids[0], kept->id);
  ck_assert_ptr_null (ids[1]);
  berth_snapstore_strv_free (ids);
  berth_snapstore_snapshot_free (kept);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_a_second_transaction_in_the_same_thread_is_an_error_not_a_deadlock)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_snaptx *tx = begin (s, 0);
  berth_snaptx *tx2 = NULL;
  ck_fails (berth_snapstore_begin (s, 1, &tx2, err), BERTH_E_INTERNAL, "already open in this thread");
  ck_assert_ptr_null (tx2);
  struct walk_seen w = { 0 };
  ck_fails (berth_snapstore_walk (s, NULL, NULL, walk_collect, &w, err), BERTH_E_INTERNAL, "already open");
  berth_snapstore_rollback (tx);
  berth_snapstore_close (s);
}
END_TEST

struct racer
{
  berth_snapstore *s;
  int n;
  int failures;
};

static void *
race (void *data)
{
  struct racer *r = data;
  for (int i = 0; i < 20; i++)
    {
      char key[64];
      snprintf (key, sizeof key, "t%d-%d", r->n, i);
      berth_snaptx *tx = NULL;
      if (berth_snapstore_begin (r->s, 1, &tx, NULL) < 0
          || berth_snapstore_create (tx, BERTH_SNAPSHOT_ACTIVE, key, "base", NULL, NULL, NULL) < 0
          || berth_snapstore_commit (tx, NULL) < 0)
        r->failures++;
    }
  return NULL;
}

static int
count_cb (const struct berth_snapshot_info *info, void *data)
{
  (void) info;
  (*(size_t *) data)++;
  return 0;
}

START_TEST (test_threads_create_snapshots_at_the_same_time)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_snapstore_snapshot_free (create (s, BERTH_SNAPSHOT_ACTIVE, "base-a", NULL, NULL));
  char id[BERTH_SNAPSTORE_ID_MAX];
  commit_active (s, "base-a", "base", id);
  pthread_t t[6];
  struct racer rs[6];
  for (int i = 0; i < 6; i++)
    {
      rs[i] = (struct racer){ .s = s, .n = i };
      ck_assert_int_eq (pthread_create (&t[i], NULL, race, &rs[i]), 0);
    }
  for (int i = 0; i < 6; i++)
    {
      pthread_join (t[i], NULL);
      ck_assert_int_eq (rs[i].failures, 0);
    }
  const char *const on_base[] = { "parent==base", NULL };
  size_t n = 0;
  ck_ok (berth_snapstore_walk (s, NULL, on_base, count_cb, &n, err));
  ck_assert_uint_eq (n, 120);
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_disk_usage_counts_hard_linked_inodes_once)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  _cleanup_free_ char *tree = join ("%s/tree", dir);
  _cleanup_free_ char *sub = join ("%s/tree/sub", dir);
  _cleanup_free_ char *f = join ("%s/tree/f", dir);
  _cleanup_free_ char *l1 = join ("%s/tree/sub/link", dir);
  _cleanup_free_ char *sym = join ("%s/tree/sym", dir);
  ck_assert_int_eq (mkdir (tree, 0755), 0);
  ck_assert_int_eq (mkdir (sub, 0755), 0);
  int fd = open (f, O_WRONLY | O_CREAT, 0644);
  ck_assert_int_ge (fd, 0);
  char buf[8192];
  memset (buf, 'x', sizeof buf);
  ck_assert_int_eq (write (fd, buf, sizeof buf), (ssize_t) sizeof buf);
  fsync (fd);
  close (fd);
  ck_assert_int_eq (link (f, l1), 0);
  ck_assert_int_eq (symlink ("f", sym), 0);

  struct berth_snapshot_usage u = { .size = sizeof u };
  ck_ok (berth_snapstore_disk_usage (s, tree, &u, err));
  /* tree, sub, f (once for two names), sym */
  ck_assert_int_eq (u.inodes, 4);
  struct stat st_tree, st_sub, st_f, st_sym;
  stat (tree, &st_tree);
  stat (sub, &st_sub);
  stat (f, &st_f);
  lstat (sym, &st_sym);
  ck_assert_int_eq (u.bytes, (int64_t) (st_tree.st_blocks + st_sub.st_blocks + st_f.st_blocks + st_sym.st_blocks) * 512);

  _cleanup_free_ char *missing = join ("%s/nope", dir);
  ck_fails (berth_snapstore_disk_usage (s, missing, &u, err), BERTH_E_NOTFOUND, "nope");

  /* remove_tree copes with read-only directories and leaves nothing. */
  ck_assert_int_eq (chmod (sub, 0555), 0);
  ck_assert_int_eq (chmod (tree, 0500), 0);
  ck_ok (berth_snapstore_remove_tree (s, AT_FDCWD, tree, err));
  ck_assert_int_eq (access (tree, F_OK), -1);
  ck_ok (berth_snapstore_remove_tree (s, AT_FDCWD, tree, err)); /* already gone: fine */
  berth_snapstore_close (s);
}
END_TEST

START_TEST (test_open_refuses_a_newer_schema)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  berth_snapstore *s = open_store (dir);
  berth_snapstore_close (s);
  _cleanup_free_ char *cmd = join ("sqlite3 '%s/metadata.db' 'PRAGMA user_version = 99' 2>/dev/null", dir);
  if (system (cmd) != 0)
    {
      /* No sqlite3 shell: write the header field by hand (offset 60). */
      _cleanup_free_ char *path = join ("%s/metadata.db", dir);
      int fd = open (path, O_WRONLY);
      ck_assert_int_ge (fd, 0);
      unsigned char v[4] = { 0, 0, 0, 99 };
      ck_assert_int_eq (pwrite (fd, v, 4, 60), 4);
      close (fd);
    }
  _cleanup_free_ char *path = join ("%s/metadata.db", dir);
  ck_fails (berth_snapstore_open (host, path, &s, err), BERTH_E_INTERNAL, "schema version 99");
  ck_assert_ptr_null (s);
}
END_TEST

static Suite *
snapstore_suite (void)
{
  Suite *su = suite_create ("snapstore");
  TCase *tc = tcase_create ("store");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_parent_chains_list_ids_from_the_nearest_parent_to_the_base);
  tcase_add_test (tc, test_commit_keeps_the_id_moves_the_key_and_records_usage);
  tcase_add_test (tc, test_create_refuses_taken_keys_missing_and_uncommitted_parents);
  tcase_add_test (tc, test_commit_refuses_views_committed_snapshots_and_taken_names);
  tcase_add_test (tc, test_remove_is_refused_while_children_exist);
  tcase_add_test (tc, test_rollback_forgets_what_the_transaction_did);
  tcase_add_test (tc, test_labels_are_set_replaced_and_deleted_by_fieldpath);
  tcase_add_test (tc, test_walk_filters_by_kind_name_parent_and_labels);
  tcase_add_test (tc, test_records_survive_reopening_and_ids_are_never_reused);
  tcase_add_test (tc, test_a_crash_between_mkdir_and_commit_leaves_a_directory_the_ids_do_not_name);
  tcase_add_test (tc, test_a_second_transaction_in_the_same_thread_is_an_error_not_a_deadlock);
  tcase_add_test (tc, test_threads_create_snapshots_at_the_same_time);
  tcase_add_test (tc, test_disk_usage_counts_hard_linked_inodes_once);
  tcase_add_test (tc, test_open_refuses_a_newer_schema);
  suite_add_tcase (su, tc);
  return su;
}

int
main (void)
{
  host = registry_host ();
  snprintf (workdir, sizeof workdir, "/tmp/berth-snapstore.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  SRunner *sr = srunner_create (snapstore_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  char *cmd = NULL;
  if (asprintf (&cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", workdir, workdir) >= 0)
    {
      if (system (cmd) != 0)
        fprintf (stderr, "could not remove %s\n", workdir);
      free (cmd);
    }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
