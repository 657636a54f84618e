/* containerd.services.diff.v1.Diff: Apply (the client-side unpack of
 * `ctr images pull`: Snapshots.Prepare + Diff.Apply + Snapshots.Commit).
 *
 * Apply streams the layer from the content store (the blob must be visible
 * in the call's namespace) through core/unpack, as containerd's
 * diff/apply/apply_linux.go does:
 *   - a single overlay mount with an upperdir: apply into the upperdir
 *     directly, whiteouts written for overlayfs (UNPACK_OVERLAY);
 *   - anything else (a bind mount of a native or first-layer snapshot):
 *     mount it on a private temporary directory under <root>/tmpmounts and
 *     apply there with whiteouts as deletions (UNPACK_NATIVE); the mount and
 *     the directory are always removed afterwards.
 * The answer is the applied (uncompressed) layer: media type
 * application/vnd.oci.image.layer.v1.tar, digest = diffID, size =
 * uncompressed bytes.  Payloads (stream processors) are not supported and
 * ignored, as is Diff (creating a diff) which answers Unimplemented.
 *
 * Blocking work runs on the worker pool.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "fs.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.pb-c.h"
#include "github.com/containerd/containerd/api/types/mount.pb-c.h"
#include "plugin-calls.h"
#include "unpack/unpack.h"

#define APPLIED_MEDIA_TYPE "application/vnd.oci.image.layer.v1.tar"

struct diff_job
{
  struct daemon *d;
  Containerd__Services__Diff__V1__ApplyRequest *req;
  char *ns;
  int r;
  berth_error *err;
  struct unpack_result res;
};

static void
diff_job_free (void *data)
{
  struct diff_job *j = data;
  if (j->req)
    protobuf_c_message_free_unpacked (&j->req->base, NULL);
  berth_error_free (j->err);
  free (j->ns);
  free (j);
}

/* The content store's blob, read front to back. */
struct blob_reader
{
  plugin *store;
  berth_content_reader *r;
  int64_t off;
  berth_error *err;
};

static ssize_t
blob_read (void *data, void *buf, size_t len)
{
  struct blob_reader *br = data;
  size_t n = 0;
  int r = content_reader_read_at (br->store, br->r, buf, len, br->off, &n, br->err ? NULL : &br->err);
  if (r < 0)
    return r;
  br->off += (int64_t) n;
  return (ssize_t) n;
}

/* upperdir= of an overlay mount, or NULL. */
static const char *
overlay_upper (const Containerd__Types__Mount *m)
{
  if (m->type == NULL || strcmp (m->type, "overlay") != 0)
    return NULL;
  for (size_t i = 0; i < m->n_options; i++)
    if (strncmp (m->options[i], "upperdir=", 9) == 0 && m->options[i][9] != '\0')
      return m->options[i] + 9;
  return NULL;
}

static const struct
{
  const char *name;
  unsigned long set, clear;
} mount_flags[] = {
  { "ro", MS_RDONLY, 0 },          { "rw", 0, MS_RDONLY },        { "bind", MS_BIND, 0 },
  { "rbind", MS_BIND | MS_REC, 0 }, { "nosuid", MS_NOSUID, 0 },    { "suid", 0, MS_NOSUID },
  { "nodev", MS_NODEV, 0 },        { "dev", 0, MS_NODEV },        { "noexec", MS_NOEXEC, 0 },
  { "exec", 0, MS_NOEXEC },        { "noatime", MS_NOATIME, 0 },  { "relatime", MS_RELATIME, 0 },
  { "sync", MS_SYNCHRONOUS, 0 },   { "async", 0, MS_SYNCHRONOUS },
};

/* Mount one containerd mount on target (mount.Mount.Mount's rules: known
 * flags become mount flags, the rest the data string; bind mounts that ask
 * for more than MS_BIND|MS_REC are remounted with those flags). */
static int
mount_one (const Containerd__Types__Mount *m, const char *target, berth_error **err)
{
  unsigned long flags = 0;
  _cleanup_free_ char *data = NULL;
  size_t dlen = 0;
  for (size_t i = 0; i < m->n_options; i++)
    {
      const char *o = m->options[i];
      size_t k;
      for (k = 0; k < ARRAY_SIZE (mount_flags); k++)
        if (strcmp (o, mount_flags[k].name) == 0)
          {
            flags = (flags | mount_flags[k].set) & ~mount_flags[k].clear;
            break;
          }
      if (k < ARRAY_SIZE (mount_flags))
        continue;
      size_t ol = strlen (o);
      char *nd = realloc (data, dlen + ol + 2);
      if (nd == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      data = nd;
      if (dlen)
        data[dlen++] = ',';
      memcpy (data + dlen, o, ol + 1);
      dlen += ol;
    }
  const char *type = m->type && *m->type ? m->type : "none";
  if (strcmp (type, "bind") == 0 || strcmp (type, "rbind") == 0)
    flags |= MS_BIND | (strcmp (type, "rbind") == 0 ? MS_REC : 0);
  if (mount (m->source, target, type, flags & ~(unsigned long) (flags & MS_BIND ? MS_RDONLY : 0), data) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "mounting %s (%s) on %s: %s", m->source, type, target,
                            strerror (errno));
  if ((flags & MS_BIND) && (flags & MS_RDONLY))
    if (mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
      {
        int e = errno;
        umount2 (target, MNT_DETACH);
        return berth_error_set (err, BERTH_E_INTERNAL, e, "remounting %s read-only: %s", target, strerror (e));
      }
  return 0;
}

static int
apply_stream (struct diff_job *j, const char *root, enum unpack_mode mode, plugin *store, berth_content_reader *rd,
              berth_error **err)
{
  struct blob_reader br = { .store = store, .r = rd };
  struct unpack_options o = {
    .mode = mode,
    .compression = UNPACK_AUTO,
    .media_type = j->req->diff->media_type,
    .same_owner = geteuid () == 0,
  };
  int r = unpack_apply (root, blob_read, &br, &o, &j->res, err);
  if (r == 0)
    {
      /* ctr commits the snapshot right after Apply answers: the tree must be
       * on disk by then, or a power loss leaves a committed layer with
       * zeroed files (the pull path does the same). */
      int fd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0 || syncfs (fd) < 0)
        r = berth_error_set (err, berth_errcode_from_errno (errno), errno, "syncing %s", root);
      if (fd >= 0)
        close (fd);
    }
  if (r < 0 && br.err)
    {
      /* The store's error explains better than "read failed". */
      berth_error_free (*err);
      *err = NULL;
      r = berth_error_take (err, TAKE_PTR (br.err));
    }
  berth_error_free (br.err);
  return r;
}

static int
diff_apply (struct diff_job *j, berth_error **err)
{
  Containerd__Services__Diff__V1__ApplyRequest *q = j->req;
  if (q->diff == NULL || q->diff->digest == NULL || *q->diff->digest == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "diff descriptor with a digest is required");
  if (q->n_mounts == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "no mounts to apply the diff to");

  struct meta_content rec = { 0 };
  int r = meta_content_get (j->d->meta, j->ns, q->diff->digest, &rec, err);
  meta_content_clear (&rec);
  if (r < 0)
    return r;
  plugin *store = NULL;
  r = gc_content_store (j->d, &store, err);
  if (r < 0)
    return r;
  berth_ctx ctx;
  ctx_init (&ctx, j->ns, NULL);
  berth_content_reader *rd = NULL;
  r = content_reader_open (store, &ctx, q->diff->digest, &rd, err);
  if (r < 0)
    return r;

  const char *upper = q->n_mounts == 1 ? overlay_upper (q->mounts[0]) : NULL;
  if (upper)
    r = apply_stream (j, upper, UNPACK_OVERLAY, store, rd, err);
  else
    {
      _cleanup_free_ char *base = NULL, *dir = NULL;
      if (asprintf (&base, "%s/tmpmounts", j->d->cfg->root) < 0 || asprintf (&dir, "%s/diff-XXXXXX", base) < 0)
        r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      else if (fs_mkdir_p (base, 0700) < 0 || mkdtemp (dir) == NULL)
        r = berth_error_set (err, BERTH_E_INTERNAL, errno, "creating a temporary mount point in %s: %s", base,
                             strerror (errno));
      size_t mounted = 0;
      for (size_t i = 0; r == 0 && i < q->n_mounts; i++)
        {
          r = mount_one (q->mounts[i], dir, err);
          if (r == 0)
            mounted++;
        }
      if (r == 0)
        r = apply_stream (j, dir, UNPACK_NATIVE, store, rd, err);
      for (size_t i = 0; i < mounted; i++)
        if (umount2 (dir, 0) < 0 && umount2 (dir, MNT_DETACH) < 0 && r == 0)
          r = berth_error_set (err, BERTH_E_INTERNAL, errno, "unmounting %s: %s", dir, strerror (errno));
      if (dir)
        rmdir (dir); /* fails only if something is still mounted there (reported above) */
    }
  content_reader_close (store, rd);
  if (r < 0)
    return berth_error_wrap (err, "applying %s", q->diff->digest);
  return 0;
}

static void
diff_work (void *data)
{
  struct diff_job *j = data;
  j->r = diff_apply (j, &j->err);
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "diff apply");
}

static void
diff_reply (grpc_call *call, void *data)
{
  struct diff_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  Containerd__Types__Descriptor applied = CONTAINERD__TYPES__DESCRIPTOR__INIT;
  applied.media_type = (char *) APPLIED_MEDIA_TYPE;
  applied.digest = j->res.diff_id;
  applied.size = j->res.uncompressed;
  Containerd__Services__Diff__V1__ApplyResponse resp = CONTAINERD__SERVICES__DIFF__V1__APPLY_RESPONSE__INIT;
  resp.applied = &applied;
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

static void
apply_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Containerd__Services__Diff__V1__ApplyRequest *req
      = svc_unpack (call, &containerd__services__diff__v1__apply_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct diff_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL)
    {
      free (j);
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = d;
  j->req = req;
  svc_defer (d, call, diff_work, diff_reply, diff_job_free, j);
}

static void
diff_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  (void) msg;
  (void) len;
  (void) data;
  grpc_call_finish (call, BERTH_E_NOTSUP, "diff creation is not supported yet");
}

int
service_diff_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method methods[] = {
    { .path = "/containerd.services.diff.v1.Diff/Apply",
      .kind = GRPC_UNARY,
      .on_message = apply_handle,
      .on_cancel = svc_on_cancel,
      .data = d },
    { .path = "/containerd.services.diff.v1.Diff/Diff", .kind = GRPC_UNARY, .on_message = diff_handle, .data = d },
  };
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    {
      int r = grpc_server_register (d->server, &methods[i]);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", methods[i].path);
    }
  return 0;
}
