/* One core wrapper per plugin method (ABI rule 5).  Each checks that the
 * plugin is ok, that the method is present in the host's zero-padded copy of
 * the ops (a NULL method answers BERTH_E_NOTSUP), hands the plugin a fresh
 * host-owned error record, and moves that record into *err on failure with
 * the plugin's name as context.  A plugin that returns a positive value or an
 * unknown code is answered as BERTH_E_INTERNAL.
 *
 * They may block as long as the plugin method does: call them from worker
 * threads, never from the event loop.
 */
#ifndef BERTH_CORE_PLUGIN_CALLS_H
#define BERTH_CORE_PLUGIN_CALLS_H

#include "registry.h"

/* content */
int content_info (plugin *p, berth_ctx *ctx, const char *digest, struct berth_content_info *ret_info, berth_error **err);
int content_update (plugin *p, berth_ctx *ctx, const struct berth_content_info *info, const char *const *fieldpaths,
                    struct berth_content_info *ret_info, berth_error **err);
int content_walk (plugin *p, berth_ctx *ctx, const char *const *filters, berth_content_info_fn fn, void *data,
                  berth_error **err);
int content_delete (plugin *p, berth_ctx *ctx, const char *digest, berth_error **err);
int content_reader_open (plugin *p, berth_ctx *ctx, const char *digest, berth_content_reader **ret_reader,
                         berth_error **err);
int content_reader_read_at (plugin *p, berth_content_reader *r, void *buf, size_t len, int64_t off, size_t *ret_n,
                            berth_error **err);
int64_t content_reader_size (plugin *p, berth_content_reader *r);
void content_reader_close (plugin *p, berth_content_reader *r);
int content_writer_open (plugin *p, berth_ctx *ctx, const char *ref, int64_t total, const char *expected,
                         berth_content_writer **ret_writer, berth_error **err);
int content_writer_write (plugin *p, berth_content_writer *w, const void *buf, size_t len, berth_error **err);
int content_writer_status (plugin *p, berth_content_writer *w, struct berth_content_status *ret_status,
                           berth_error **err);
int content_writer_commit (plugin *p, berth_content_writer *w, int64_t size, const char *expected,
                           const berth_labels *labels, berth_error **err);
int content_writer_truncate (plugin *p, berth_content_writer *w, int64_t size, berth_error **err);
void content_writer_close (plugin *p, berth_content_writer *w);
int content_status (plugin *p, berth_ctx *ctx, const char *ref, struct berth_content_status *ret_status,
                    berth_error **err);
int content_list_statuses (plugin *p, berth_ctx *ctx, const char *const *filters, berth_content_status_fn fn,
                           void *data, berth_error **err);
int content_abort (plugin *p, berth_ctx *ctx, const char *ref, berth_error **err);
/* ABI 1.3: file the complete file open as fd as the blob digest (see content.h).
 * NOTSUP when the store was built against older headers or leaves it NULL. */
int content_adopt (plugin *store, berth_ctx *ctx, int fd, int64_t size, const char *digest, const berth_labels *labels,
                   berth_error **err);

/* snapshotter */
int snapshotter_stat (plugin *p, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info,
                      berth_error **err);
int snapshotter_update (plugin *p, berth_ctx *ctx, const struct berth_snapshot_info *info,
                        const char *const *fieldpaths, struct berth_snapshot_info *ret_info, berth_error **err);
int snapshotter_usage (plugin *p, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage,
                       berth_error **err);
int snapshotter_mounts (plugin *p, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error **err);
int snapshotter_prepare (plugin *p, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
                         berth_mounts *ret_mounts, berth_error **err);
int snapshotter_view (plugin *p, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
                      berth_mounts *ret_mounts, berth_error **err);
int snapshotter_commit (plugin *p, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
                        berth_error **err);
int snapshotter_remove (plugin *p, berth_ctx *ctx, const char *key, berth_error **err);
int snapshotter_walk (plugin *p, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
                      berth_error **err);
int snapshotter_cleanup (plugin *p, berth_ctx *ctx, berth_error **err);

/* runtime */
int runtime_create (plugin *p, berth_ctx *ctx, const struct berth_task_create *req,
                    struct berth_process_state *ret_state, berth_error **err);
int runtime_start (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int32_t *ret_pid,
                   berth_error **err);
int runtime_state (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id,
                   struct berth_process_state *ret_state, berth_error **err);
int runtime_kill (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int signal, int all,
                  berth_error **err);
int runtime_pids (plugin *p, berth_ctx *ctx, const char *id, berth_pid_fn fn, void *data, berth_error **err);
int runtime_exec (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, const char *spec_json,
                  const struct berth_task_io *io, berth_error **err);
int runtime_pause (plugin *p, berth_ctx *ctx, const char *id, berth_error **err);
int runtime_resume (plugin *p, berth_ctx *ctx, const char *id, berth_error **err);
int runtime_wait (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
                  berth_error **err);
int runtime_resize_pty (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, uint32_t width,
                        uint32_t height, berth_error **err);
int runtime_close_io (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, int close_stdin,
                      berth_error **err);
int runtime_update (plugin *p, berth_ctx *ctx, const char *id, const char *resources_json, berth_error **err);
int runtime_stats (plugin *p, berth_ctx *ctx, const char *id, berth_buf *ret_json, berth_error **err);
int runtime_delete (plugin *p, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
                    berth_error **err);
int runtime_list (plugin *p, berth_ctx *ctx, berth_task_fn fn, void *data, berth_error **err);

#endif
