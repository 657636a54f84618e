/* berth.services.v1.Pull: runs pull_run() on the worker pool and streams its
 * progress.  The pulling thread packs each snapshot and hands the bytes to
 * the loop (grpc_call_* are loop-only); a snapshot not yet sent is replaced
 * by a newer one, so a slow client sees fewer frames, never a backlog.  A
 * client that goes away cancels the pull. */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/service-util.h"
#include "berth/services/v1/pull.pb-c.h"
#include "cleanup.h"
#include "events.h"
#include "pull/pull.h"

struct pull_call
{
  struct daemon *d;
  grpc_call *call; /* NULL once the client went away */
  Berth__Services__V1__PullRequest *req;
  char *ns;
  volatile int cancelled;
  pthread_mutex_t lock;
  uint8_t *frame; /* latest packed PullProgress not yet sent (under lock) */
  size_t frame_len;
  bool post_pending; /* a flush is queued on the loop (under lock) */
  int r;
  berth_error *err;
};

static void
pull_call_free (struct pull_call *pc)
{
  if (pc->req)
    {
      if (pc->req->secret)
        explicit_bzero (pc->req->secret, strlen (pc->req->secret));
      protobuf_c_message_free_unpacked (&pc->req->base, NULL);
    }
  free (pc->ns);
  free (pc->frame);
  berth_error_free (pc->err);
  pthread_mutex_destroy (&pc->lock);
  free (pc);
}

/* Loop thread: send the latest frame, if the client is still there. */
static void
pull_flush (void *data)
{
  struct pull_call *pc = data;
  pthread_mutex_lock (&pc->lock);
  uint8_t *frame = TAKE_PTR (pc->frame);
  size_t len = pc->frame_len;
  pc->post_pending = false;
  pthread_mutex_unlock (&pc->lock);
  if (frame && pc->call)
    grpc_call_send_raw (pc->call, frame, len);
  free (frame);
}

static uint8_t *
pack_status (const struct pull_status *st, size_t *ret_len)
{
  Berth__Services__V1__PullProgress p = BERTH__SERVICES__V1__PULL_PROGRESS__INIT;
  p.status = (char *) (st->status ? st->status : "");
  p.image = (char *) (st->image ? st->image : "");
  p.target_digest = (char *) (st->target_digest ? st->target_digest : "");
  p.target_media_type = (char *) (st->target_media_type ? st->target_media_type : "");
  p.target_size = st->target_size;
  p.done = st->done;
  p.elapsed = st->elapsed;
  _cleanup_free_ Berth__Services__V1__LayerProgress *ls = calloc (st->nlayers + 1, sizeof *ls);
  _cleanup_free_ Berth__Services__V1__LayerProgress **lp = calloc (st->nlayers + 1, sizeof *lp);
  if (ls == NULL || lp == NULL)
    return NULL;
  for (size_t i = 0; i < st->nlayers; i++)
    {
      const struct pull_layer *l = &st->layers[i];
      Berth__Services__V1__LayerProgress init = BERTH__SERVICES__V1__LAYER_PROGRESS__INIT;
      ls[i] = init;
      ls[i].digest = (char *) l->digest;
      ls[i].media_type = l->media_type ? l->media_type : (char *) "";
      ls[i].phase = (char *) pull_phase_name (l->phase);
      ls[i].offset = l->offset;
      ls[i].total = l->total;
      ls[i].resumed = l->resumed;
      ls[i].rate = l->rate;
      ls[i].error = l->error ? l->error : (char *) "";
      lp[i] = &ls[i];
    }
  p.layers = lp;
  p.n_layers = st->nlayers;
  size_t len = protobuf_c_message_get_packed_size (&p.base);
  uint8_t *buf = malloc (len ? len : 1);
  if (buf)
    protobuf_c_message_pack (&p.base, buf);
  *ret_len = len;
  return buf;
}

/* Pulling thread. */
static void
pull_progress (const struct pull_status *st, void *data)
{
  struct pull_call *pc = data;
  size_t len = 0;
  uint8_t *frame = pack_status (st, &len);
  if (frame == NULL)
    return;
  /* Progress also goes on the events stream (topic /pull/progress), for
   * whoever watches pulls they did not start. */
  if (events_has_subscribers (pc->d->events))
    {
      Berth__Services__V1__PullProgress *m = berth__services__v1__pull_progress__unpack (NULL, len, frame);
      if (m)
        {
          events_publish (pc->d->events, pc->ns, "/pull/progress", &m->base);
          protobuf_c_message_free_unpacked (&m->base, NULL);
        }
    }
  pthread_mutex_lock (&pc->lock);
  free (pc->frame);
  pc->frame = frame;
  pc->frame_len = len;
  bool post = !pc->post_pending;
  pc->post_pending = true;
  pthread_mutex_unlock (&pc->lock);
  if (post && loop_post (pc->d->loop, pull_flush, pc) < 0)
    {
      pthread_mutex_lock (&pc->lock);
      pc->post_pending = false;
      pthread_mutex_unlock (&pc->lock);
    }
}

static void
pull_work (void *data)
{
  struct pull_call *pc = data;
  Berth__Services__V1__PullRequest *q = pc->req;
  struct pull_request req = {
    .ns = pc->ns,
    .reference = q->reference,
    .platforms = (const char *const *) q->platforms,
    .nplatforms = q->n_platforms,
    .all_platforms = q->all_platforms,
    .plain_http = q->plain_http,
    .username = q->username && *q->username ? q->username : NULL,
    .secret = q->secret && *q->secret ? q->secret : NULL,
    .content_only = q->content_only,
    .skip_unpack = q->skip_unpack,
    .snapshotter = q->snapshotter && *q->snapshotter ? q->snapshotter : NULL,
    .max_concurrent_downloads = q->max_concurrent_downloads,
  };
  pc->r = pull_run (pc->d, &req, pull_progress, pc, &pc->cancelled, &pc->err);
}

static void
pull_done (void *data)
{
  struct pull_call *pc = data;
  pull_flush (pc); /* the last frame, if the pulling thread left one */
  if (pc->call)
    {
      grpc_call_set_data (pc->call, NULL);
      if (pc->r < 0)
        grpc_call_finish_error (pc->call, pc->err);
      else
        grpc_call_finish (pc->call, 0, NULL);
    }
  pull_call_free (pc);
}

static void
pull_cancel (grpc_call *call, void *data)
{
  struct pull_call *pc = grpc_call_get_data (call);
  if (pc)
    {
      pc->call = NULL;
      pc->cancelled = 1;
    }
}

static void
pull_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Berth__Services__V1__PullRequest *req = svc_unpack (call, &berth__services__v1__pull_request__descriptor, msg, len);
  if (req == NULL)
    return;
  if (req->reference == NULL || *req->reference == '\0')
    {
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_INVALID, "reference is required");
      return;
    }
  struct pull_call *pc = calloc (1, sizeof *pc);
  if (pc == NULL || (pc->ns = strdup (ns)) == NULL)
    {
      free (pc);
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  pc->d = d;
  pc->call = call;
  pc->req = req;
  pthread_mutex_init (&pc->lock, NULL);
  grpc_call_set_data (call, pc);
  if (workers_submit (d->workers, pull_work, pull_done, pc) < 0)
    {
      grpc_call_set_data (call, NULL);
      pull_call_free (pc);
      grpc_call_finish (call, BERTH_E_UNAVAILABLE, "cannot queue the pull: worker pool unavailable");
    }
}

int
service_pull_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method m = {
    .path = "/berth.services.v1.Pull/Pull",
    .kind = GRPC_SERVER_STREAM,
    .on_message = pull_handle,
    .on_cancel = pull_cancel,
    .data = d,
  };
  int r = grpc_server_register (d->server, &m);
  if (r < 0)
    return berth_error_set (err, r, 0, "registering %s", m.path);
  return 0;
}
