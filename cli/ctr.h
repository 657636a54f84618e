/* Containers and tasks for the docker-style verbs (run, ps, logs, exec, ...)
 * and the ctr-style `containers` / `tasks` groups: name resolution, task
 * calls, statuses as docker prints them, the client side of a task's stdio
 * (FIFOs the CLI creates and copies to the terminal), and container removal.
 *
 * Naming (as docker): a container has a 64-hex id (random) and a name (the
 * label io.berth.name; --name or a generated "adjective_noun"-free short id
 * when none is given).  A reference resolves to the container whose id or
 * name equals it, else to the one container whose id starts with it;
 * several matches are an error that lists them.
 *
 * Stdio: FIFOs live in <fifo base>/<namespace>/<container id>/ where the
 * base is $BERTH_FIFO_DIR, else /run/berth/fifo for root, else
 * $XDG_RUNTIME_DIR/berth/fifo.  The daemon opens the write ends (stdout,
 * stderr) and the read end (stdin) by path, as containerd's shims do.  The
 * directory is removed with the container. */
#ifndef BERTH_CLI_CTR_H
#define BERTH_CLI_CTR_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cli.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.pb-c.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.pb-c.h"
#include "github.com/containerd/containerd/api/types/task/task.pb-c.h"

#define CONTAINERS_SERVICE "/containerd.services.containers.v1.Containers/"
#define TASKS_SERVICE "/containerd.services.tasks.v1.Tasks/"
#define SNAPSHOTS_SERVICE "/containerd.services.snapshots.v1.Snapshots/"

#define LABEL_NAME "io.berth.name"
#define LABEL_LOG_PATH "io.berth.log.path"
/* --runtime runc|crun with io.berth.runtime.v1.oci: which named runtime. */
#define LABEL_OCI_RUNTIME "io.berth.runtime.oci"
#define LABEL_INIT_PATH "io.berth.init" /* "1" when run with --init */
#define SPEC_TYPE_URL "types.containerd.io/opencontainers/runtime-spec/1/Spec"
#define RUNTIME_NAMESPACES "io.berth.runtime.v1.namespaces"
#define RUNTIME_OCI "io.berth.runtime.v1.oci"
/* Without --runtime: containerd's default name; berthd maps it to its
 * [runtime] default. */
#define RUNTIME_DEFAULT "io.containerd.runc.v2"

/* docker's exit statuses for `run` and `exec` */
#define EXIT_BERTH_ERROR 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_NOT_FOUND 127

typedef Containerd__Services__Containers__V1__Container pb_container;
typedef Containerd__V1__Types__Process pb_process;

/* A container looked up by reference: resp owns c. */
struct ctr_ref
{
  ProtobufCMessage *resp;
  pb_container *c;
};
void ctr_ref_clear (struct ctr_ref *r);

/* Every container of the namespace (resp owns them). */
struct ctr_list
{
  ProtobufCMessage *resp;
  pb_container **v;
  size_t n;
};
int ctr_list_all (struct cli *cli, struct ctr_list *ret, berth_error **err);
void ctr_list_clear (struct ctr_list *l);

/* Resolve ref (id, name, unique id prefix).  Prints the error (not found,
 * ambiguous, connection) and returns CLI_EXIT_FAIL, or CLI_EXIT_OK. */
int ctr_resolve (struct cli *cli, const char *ref, struct ctr_ref *ret);

const char *ctr_label (const pb_container *c, const char *key);
/* The name (label), else the 12-char short id; into buf (>= 13 bytes). */
const char *ctr_name (const pb_container *c, char *buf);

/* Tasks/Get of the init process (exec_id NULL) or an exec.  Returns 0 with
 * *ret (free with protobuf_c_message_free_unpacked of *ret_resp) or
 * BERTH_E_NOTFOUND when there is no task. */
int task_get (struct cli *cli, const char *id, const char *exec_id, ProtobufCMessage **ret_resp, pb_process **ret,
              berth_error **err);
int task_kill (struct cli *cli, const char *id, const char *exec_id, int sig, bool all, berth_error **err);
/* Tasks/Delete; *ret_status gets the exit status when non-NULL. */
int task_delete (struct cli *cli, const char *id, uint32_t *ret_status, berth_error **err);
int task_wait (struct cli *cli, const char *id, const char *exec_id, uint32_t *ret_status, berth_error **err);
/* SIGTERM, then SIGKILL after timeout_s (negative: wait for ever); waits
 * until the task stopped. */
int task_stop (struct cli *cli, const char *id, long timeout_s, berth_error **err);

/* "Up 3 seconds", "Exited (0) 2 seconds ago", "Created", "Paused" into buf
 * (>= 64 bytes); p NULL means no task.  state gets docker's State.Status. */
const char *ctr_status (const pb_container *c, const pb_process *p, time_t now, char *buf, const char **state);
/* When berthd says p's shim is not answering (the Process extension field
 * 1000, docs/design-notes.md "A frozen shim"): true, with how long it has
 * been silent and the runtime's error (may be NULL). */
bool ctr_shim_silent (const pb_process *p, int64_t *ret_silent_ms, char *ret_why, size_t why_len);
/* "3 seconds", "About a minute" (docker's HumanDuration). */
const char *human_duration (double seconds, char *buf, size_t len);

/* A signal by number or name ("9", "KILL", "SIGKILL"); -1 if unknown. */
int parse_signal (const char *s);

/* Remove a container: task (killed first when force), container record,
 * its snapshot, its FIFO directory.  Prints errors; returns an exit code. */
int ctr_remove (struct cli *cli, const pb_container *c, bool force);

/* ---- stdio ---- */

struct ctr_fifos
{
  char dir[4096];
  char in[4200], out[4200], err[4200]; /* "" = not used */
};
/* The FIFO directory of a container (not created). */
int ctr_fifo_dir (const char *ns, const char *id, char *buf, size_t len);
/* Create the FIFOs named prefix{stdin,stdout,stderr} in the container's
 * directory: stdin only with want_in, stderr only without tty. */
int ctr_fifos_create (const char *ns, const char *id, const char *prefix, bool want_in, bool tty, struct ctr_fifos *ret,
                      berth_error **err);
void ctr_fifos_unlink (const struct ctr_fifos *f);

/* Copy the task's streams (paths from Tasks/Get or ctr_fifos_create) to our
 * stdout/stderr and our stdin to the task, until the process exits (Tasks/
 * Wait on the main thread) and its output is drained.  Forwards signals
 * with Tasks/Kill (sig_proxy), the terminal size with ResizePty (tty), and
 * stdin EOF as CloseIO.  Puts our terminal in raw mode with tty.
 * *ret_status: the exit status.  Returns 0 or a negative error (printed). */
struct attach_opts
{
  const char *id;
  const char *exec_id;        /* NULL = init */
  const char *in, *out, *err; /* FIFO paths; NULL or "" = none */
  bool tty;
  bool sig_proxy;
  /* called once the FIFOs are open, before waiting (starts the task for
   * run/start -a); returns 0 or an exit code to stop with */
  int (*start) (struct cli *cli, void *data);
  void *data;
};
int ctr_attach (struct cli *cli, const struct attach_opts *o, uint32_t *ret_status);

/* Map a create/start error to docker's 125/126/127. */
int exit_code_for_error (const berth_error *err);

#endif
