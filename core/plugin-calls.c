#include <config.h>

#include <stdio.h>

#include "error.h"
#include "plugin-calls.h"

/* Checks common to every wrapper: a plugin of the right kind that is ok. */
static int
call_check (plugin *p, uint32_t kind, const char *method, berth_error **err)
{
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "%s: no such plugin", method);
  if (p->desc.kind != kind)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: plugin %s is not of the right kind", method, p->full_name);
  if (p->status != PLUGIN_OK)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "%s: plugin %s is %s", method, p->full_name,
                            plugin_status_name (p->status));
  return 0;
}

/* Normalise a plugin's answer and take its error record. */
static int
call_result (plugin *p, const char *method, int r, berth_error *e, berth_error **err)
{
  if (r == 0)
    {
      berth_error_free (e);
      return 0;
    }
  if (r > 0 || r < BERTH_E_MIN)
    {
      berth_error_free (e);
      return berth_error_set (err, BERTH_E_INTERNAL, 0, "%s %s: returned invalid code %d", p->full_name, method, r);
    }
  if (e == NULL || e->msg == NULL)
    {
      berth_error_free (e);
      return berth_error_set (err, r, 0, "%s %s: %s", p->full_name, method, berth_errcode_name (r));
    }
  e->code = r;
  berth_error_take (err, e);
  return berth_error_wrap (err, "%s %s", p->full_name, method);
}

int
content_info (plugin *p, berth_ctx *ctx, const char *digest, struct berth_content_info *ret_info, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "info", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.info == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement info", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.info (p->self, ctx, digest, ret_info, e);
  return call_result (p, "info", rc, e, err);
}

int
content_update (plugin *p, berth_ctx *ctx, const struct berth_content_info *info, const char *const *fieldpaths, struct berth_content_info *ret_info, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "update", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.update == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement update", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.update (p->self, ctx, info, fieldpaths, ret_info, e);
  return call_result (p, "update", rc, e, err);
}

int
content_walk (plugin *p, berth_ctx *ctx, const char *const *filters, berth_content_info_fn fn, void *data, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "walk", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.walk == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement walk", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.walk (p->self, ctx, filters, fn, data, e);
  return call_result (p, "walk", rc, e, err);
}

int
content_delete (plugin *p, berth_ctx *ctx, const char *digest, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "delete", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.delete == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement delete", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.delete (p->self, ctx, digest, e);
  return call_result (p, "delete", rc, e, err);
}

int
content_reader_open (plugin *p, berth_ctx *ctx, const char *digest, berth_content_reader **ret_reader, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "reader_open", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.reader_open == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement reader_open", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.reader_open (p->self, ctx, digest, ret_reader, e);
  return call_result (p, "reader_open", rc, e, err);
}

int
content_reader_read_at (plugin *p, berth_content_reader *r, void *buf, size_t len, int64_t off, size_t *ret_n, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "reader_read_at", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.reader_read_at == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement reader_read_at", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.reader_read_at (p->self, r, buf, len, off, ret_n, e);
  return call_result (p, "reader_read_at", rc, e, err);
}

int64_t
content_reader_size (plugin *p, berth_content_reader *r)
{
  if (call_check (p, BERTH_KIND_CONTENT, "reader_size", NULL) < 0 || p->ops.content.reader_size == NULL)
    return BERTH_E_NOTSUP;
  return p->ops.content.reader_size (p->self, r);
}

void
content_reader_close (plugin *p, berth_content_reader *r)
{
  if (call_check (p, BERTH_KIND_CONTENT, "reader_close", NULL) == 0 && p->ops.content.reader_close != NULL)
    p->ops.content.reader_close (p->self, r);
}

int
content_writer_open (plugin *p, berth_ctx *ctx, const char *ref, int64_t total, const char *expected, berth_content_writer **ret_writer, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "writer_open", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.writer_open == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement writer_open", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.writer_open (p->self, ctx, ref, total, expected, ret_writer, e);
  return call_result (p, "writer_open", rc, e, err);
}

int
content_writer_write (plugin *p, berth_content_writer *w, const void *buf, size_t len, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "writer_write", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.writer_write == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement writer_write", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.writer_write (p->self, w, buf, len, e);
  return call_result (p, "writer_write", rc, e, err);
}

int
content_writer_status (plugin *p, berth_content_writer *w, struct berth_content_status *ret_status, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "writer_status", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.writer_status == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement writer_status", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.writer_status (p->self, w, ret_status, e);
  return call_result (p, "writer_status", rc, e, err);
}

int
content_writer_commit (plugin *p, berth_content_writer *w, int64_t size, const char *expected, const berth_labels *labels, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "writer_commit", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.writer_commit == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement writer_commit", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.writer_commit (p->self, w, size, expected, labels, e);
  return call_result (p, "writer_commit", rc, e, err);
}

int
content_writer_truncate (plugin *p, berth_content_writer *w, int64_t size, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "writer_truncate", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.writer_truncate == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement writer_truncate", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.writer_truncate (p->self, w, size, e);
  return call_result (p, "writer_truncate", rc, e, err);
}

void
content_writer_close (plugin *p, berth_content_writer *w)
{
  if (call_check (p, BERTH_KIND_CONTENT, "writer_close", NULL) == 0 && p->ops.content.writer_close != NULL)
    p->ops.content.writer_close (p->self, w);
}

int
content_status (plugin *p, berth_ctx *ctx, const char *ref, struct berth_content_status *ret_status, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "status", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.status == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement status", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.status (p->self, ctx, ref, ret_status, e);
  return call_result (p, "status", rc, e, err);
}

int
content_list_statuses (plugin *p, berth_ctx *ctx, const char *const *filters, berth_content_status_fn fn, void *data, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "list_statuses", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.list_statuses == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement list_statuses", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.list_statuses (p->self, ctx, filters, fn, data, e);
  return call_result (p, "list_statuses", rc, e, err);
}

int
content_abort (plugin *p, berth_ctx *ctx, const char *ref, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_CONTENT, "abort", err);
  if (rc < 0)
    return rc;
  if (p->ops.content.abort == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement abort", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.content.abort (p->self, ctx, ref, e);
  return call_result (p, "abort", rc, e, err);
}

/* The host's copy of the ops is zero-padded, so a 1.2 store reads as NULL
 * here anyway; the size check says which ABI the store lacks. */
int
content_adopt (plugin *store, berth_ctx *ctx, int fd, int64_t size, const char *digest, const berth_labels *labels,
               berth_error **err)
{
  int rc = call_check (store, BERTH_KIND_CONTENT, "adopt", err);
  if (rc < 0)
    return rc;
  if (!BERTH_HAS (struct berth_content_ops, &store->ops.content, adopt) || store->ops.content.adopt == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement adopt (content store ABI 1.3)",
                            store->full_name);
  berth_error *e = berth_error_new ();
  rc = store->ops.content.adopt (store->self, ctx, fd, size, digest, labels, e);
  return call_result (store, "adopt", rc, e, err);
}

int
snapshotter_stat (plugin *p, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "stat", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.stat == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement stat", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.stat (p->self, ctx, key, ret_info, e);
  return call_result (p, "stat", rc, e, err);
}

int
snapshotter_update (plugin *p, berth_ctx *ctx, const struct berth_snapshot_info *info, const char *const *fieldpaths, struct berth_snapshot_info *ret_info, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "update", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.update == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement update", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.update (p->self, ctx, info, fieldpaths, ret_info, e);
  return call_result (p, "update", rc, e, err);
}

int
snapshotter_usage (plugin *p, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "usage", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.usage == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement usage", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.usage (p->self, ctx, key, ret_usage, e);
  return call_result (p, "usage", rc, e, err);
}

int
snapshotter_mounts (plugin *p, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "mounts", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.mounts == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement mounts", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.mounts (p->self, ctx, key, ret_mounts, e);
  return call_result (p, "mounts", rc, e, err);
}

int
snapshotter_prepare (plugin *p, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels, berth_mounts *ret_mounts, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "prepare", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.prepare == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement prepare", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.prepare (p->self, ctx, key, parent, labels, ret_mounts, e);
  return call_result (p, "prepare", rc, e, err);
}

int
snapshotter_view (plugin *p, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels, berth_mounts *ret_mounts, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "view", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.view == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement view", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.view (p->self, ctx, key, parent, labels, ret_mounts, e);
  return call_result (p, "view", rc, e, err);
}

int
snapshotter_commit (plugin *p, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "commit", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.commit == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement commit", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.commit (p->self, ctx, name, key, labels, e);
  return call_result (p, "commit", rc, e, err);
}

int
snapshotter_remove (plugin *p, berth_ctx *ctx, const char *key, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "remove", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.remove == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement remove", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.remove (p->self, ctx, key, e);
  return call_result (p, "remove", rc, e, err);
}

int
snapshotter_walk (plugin *p, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "walk", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.walk == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement walk", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.walk (p->self, ctx, filters, fn, data, e);
  return call_result (p, "walk", rc, e, err);
}

int
snapshotter_cleanup (plugin *p, berth_ctx *ctx, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_SNAPSHOTTER, "cleanup", err);
  if (rc < 0)
    return rc;
  if (p->ops.snapshotter.cleanup == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement cleanup", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.snapshotter.cleanup (p->self, ctx, e);
  return call_result (p, "cleanup", rc, e, err);
}

int
runtime_create (plugin *p, berth_ctx *ctx, const struct berth_task_create *req, struct berth_process_state *ret_state, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "create", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.create == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement create", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.create (p->self, ctx, req, ret_state, e);
  return call_result (p, "create", rc, e, err);
}

int
runtime_start (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int32_t *ret_pid, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "start", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.start == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement start", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.start (p->self, ctx, id, exec_id, ret_pid, e);
  return call_result (p, "start", rc, e, err);
}

int
runtime_state (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_process_state *ret_state, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "state", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.state == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement state", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.state (p->self, ctx, id, exec_id, ret_state, e);
  return call_result (p, "state", rc, e, err);
}

int
runtime_kill (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int signal, int all, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "kill", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.kill == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement kill", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.kill (p->self, ctx, id, exec_id, signal, all, e);
  return call_result (p, "kill", rc, e, err);
}

int
runtime_pids (plugin *p, berth_ctx *ctx, const char *id, berth_pid_fn fn, void *data, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "pids", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.pids == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement pids", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.pids (p->self, ctx, id, fn, data, e);
  return call_result (p, "pids", rc, e, err);
}

int
runtime_exec (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, const char *spec_json, const struct berth_task_io *io, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "exec", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.exec == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement exec", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.exec (p->self, ctx, id, exec_id, spec_json, io, e);
  return call_result (p, "exec", rc, e, err);
}

int
runtime_pause (plugin *p, berth_ctx *ctx, const char *id, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "pause", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.pause == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement pause", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.pause (p->self, ctx, id, e);
  return call_result (p, "pause", rc, e, err);
}

int
runtime_resume (plugin *p, berth_ctx *ctx, const char *id, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "resume", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.resume == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement resume", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.resume (p->self, ctx, id, e);
  return call_result (p, "resume", rc, e, err);
}

int
runtime_wait (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "wait", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.wait == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement wait", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.wait (p->self, ctx, id, exec_id, ret_exit, e);
  return call_result (p, "wait", rc, e, err);
}

int
runtime_resize_pty (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, uint32_t width, uint32_t height, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "resize_pty", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.resize_pty == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement resize_pty", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.resize_pty (p->self, ctx, id, exec_id, width, height, e);
  return call_result (p, "resize_pty", rc, e, err);
}

int
runtime_close_io (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int close_stdin, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "close_io", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.close_io == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement close_io", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.close_io (p->self, ctx, id, exec_id, close_stdin, e);
  return call_result (p, "close_io", rc, e, err);
}

int
runtime_update (plugin *p, berth_ctx *ctx, const char *id, const char *resources_json, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "update", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.update == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement update", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.update (p->self, ctx, id, resources_json, e);
  return call_result (p, "update", rc, e, err);
}

int
runtime_stats (plugin *p, berth_ctx *ctx, const char *id, berth_buf *ret_json, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "stats", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.stats == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement stats", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.stats (p->self, ctx, id, ret_json, e);
  return call_result (p, "stats", rc, e, err);
}

int
runtime_delete (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "delete", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.delete == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement delete", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.delete (p->self, ctx, id, exec_id, ret_exit, e);
  return call_result (p, "delete", rc, e, err);
}

int
runtime_list (plugin *p, berth_ctx *ctx, berth_task_fn fn, void *data, berth_error **err)
{
  int rc = call_check (p, BERTH_KIND_RUNTIME, "list", err);
  if (rc < 0)
    return rc;
  if (p->ops.runtime.list == NULL)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s does not implement list", p->full_name);
  berth_error *e = berth_error_new ();
  rc = p->ops.runtime.list (p->self, ctx, fn, data, e);
  return call_result (p, "list", rc, e, err);
}
