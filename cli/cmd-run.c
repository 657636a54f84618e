/* berth run, create, start, restart, attach and exec: containerd's client
 * flow, as nerdctl drives it.
 *
 *   image (pulled when missing) -> its config from the Content service ->
 *   OCI spec (lib/ocispec) -> Snapshots/Prepare(key = container id, parent =
 *   the image's chain id, gc.root label) -> Containers/Create -> Tasks/Create
 *   (rootfs = the snapshot's mounts, stdio FIFOs the CLI created) ->
 *   Tasks/Start -> stdio copied until Tasks/Wait returns -> exit status.
 *
 * The snapshotter and chain id come from the image config's
 * containerd.io/gc.ref.snapshot.<snapshotter> label that unpacking sets;
 * when it is missing the chain id is computed from rootfs.diff_ids.
 * Exit statuses as docker's: the container's, 125 when berth fails, 126
 * when the command cannot be invoked, 127 when it is not found. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctr.h"
#include "helpers.h"
#include "ocispec.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.pb-c.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

#define DOCUMENT_MAX (8u << 20)

static void
json_object_putp (json_object **o)
{
  json_object_put (*o);
}

static void
pb_message_freep (ProtobufCMessage **m)
{
  if (*m)
    protobuf_c_message_free_unpacked (*m, NULL);
}
#define DEFAULT_SNAPSHOTTER "overlayfs"

enum
{
  OPT_RM = 0x100,
  OPT_NAME,
  OPT_ENV_FILE,
  OPT_TMPFS,
  OPT_MEMORY,
  OPT_CPUS,
  OPT_PIDS,
  OPT_CAP_ADD,
  OPT_CAP_DROP,
  OPT_PRIVILEGED,
  OPT_READ_ONLY,
  OPT_SECURITY_OPT,
  OPT_RUNTIME,
  OPT_SNAPSHOTTER,
  OPT_HOSTNAME,
  OPT_INIT,
  OPT_NET,
  OPT_PULL,
  OPT_PLAIN_HTTP,
  OPT_ENTRYPOINT,
  OPT_SIG_PROXY,
  OPT_LABEL,
};

const struct option cli_run_options[] = {
  { "rm", no_argument, NULL, OPT_RM },
  { "detach", no_argument, NULL, 'd' },
  { "interactive", no_argument, NULL, 'i' },
  { "tty", no_argument, NULL, 't' },
  { "name", required_argument, NULL, OPT_NAME },
  { "env", required_argument, NULL, 'e' },
  { "env-file", required_argument, NULL, OPT_ENV_FILE },
  { "volume", required_argument, NULL, 'v' },
  { "tmpfs", required_argument, NULL, OPT_TMPFS },
  { "workdir", required_argument, NULL, 'w' },
  { "user", required_argument, NULL, 'u' },
  { "memory", required_argument, NULL, OPT_MEMORY },
  { "cpus", required_argument, NULL, OPT_CPUS },
  { "pids-limit", required_argument, NULL, OPT_PIDS },
  { "cap-add", required_argument, NULL, OPT_CAP_ADD },
  { "cap-drop", required_argument, NULL, OPT_CAP_DROP },
  { "privileged", no_argument, NULL, OPT_PRIVILEGED },
  { "read-only", no_argument, NULL, OPT_READ_ONLY },
  { "security-opt", required_argument, NULL, OPT_SECURITY_OPT },
  { "runtime", required_argument, NULL, OPT_RUNTIME },
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { "hostname", required_argument, NULL, OPT_HOSTNAME },
  { "init", no_argument, NULL, OPT_INIT },
  { "net", required_argument, NULL, OPT_NET },
  { "network", required_argument, NULL, OPT_NET },
  { "pull", required_argument, NULL, OPT_PULL },
  { "plain-http", no_argument, NULL, OPT_PLAIN_HTTP },
  { "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
  { "sig-proxy", required_argument, NULL, OPT_SIG_PROXY },
  { "label", required_argument, NULL, OPT_LABEL },
  { NULL, 0, NULL, 0 },
};

const char cli_run_help[] = "  -d, --detach               run in the background and print the container id\n"
                            "      --rm                   remove the container when it exits\n"
                            "  -i, --interactive          keep stdin open (copy ours to the container)\n"
                            "  -t, --tty                  allocate a terminal\n"
                            "      --name NAME            name the container\n"
                            "  -e, --env KEY[=VAL]        set an environment variable (KEY alone: our value)\n"
                            "      --env-file FILE        read KEY=VAL lines\n"
                            "  -v, --volume HOST:CTR[:ro] bind-mount a host path\n"
                            "      --tmpfs PATH[:OPTS]    mount a tmpfs\n"
                            "  -w, --workdir DIR          working directory inside\n"
                            "  -u, --user USER[:GROUP]    user (name or uid) to run as\n"
                            "      --memory BYTES         memory limit (e.g. 64m)\n"
                            "      --cpus N               CPU limit (e.g. 0.5)\n"
                            "      --pids-limit N         process count limit\n"
                            "      --cap-add CAP, --cap-drop CAP  adjust the capabilities (ALL for all)\n"
                            "      --privileged           every capability, every device, no seccomp\n"
                            "      --read-only            read-only root filesystem\n"
                            "      --security-opt OPT     seccomp=PROFILE|unconfined, no-new-privileges\n"
                            "      --runtime NAME         namespaces, oci, runc, crun, or a runtime's full name\n"
                            "                             (default: the daemon's)\n"
                            "      --snapshotter NAME     snapshotter of the root filesystem (default: the image's)\n"
                            "      --hostname NAME        host name (default: the short id)\n"
                            "      --init                 run berth-init as pid 1 (reaps zombies, forwards signals)\n"
                            "      --net none|host        network: a private loopback-only namespace, or the host's\n"
                            "      --pull missing|always|never  pull the image (default missing)\n"
                            "      --plain-http           pull over HTTP\n"
                            "      --entrypoint CMD       replace the image's entrypoint\n"
                            "      --sig-proxy BOOL       forward signals to the container (default true)\n"
                            "      --label KEY=VAL        container label\n";

/* ---- image ---- */

/* docker's reference normalisation: "busybox" -> docker.io/library/busybox:latest */
static char *
normalize_ref (const char *ref)
{
  const char *slash = strchr (ref, '/');
  bool has_domain = slash
                    && (memchr (ref, '.', (size_t)(slash - ref)) || memchr (ref, ':', (size_t)(slash - ref))
                        || strncmp (ref, "localhost/", 10) == 0);
  char *out = NULL;
  const char *last = strrchr (ref, '/');
  last = last ? last + 1 : ref;
  bool has_tag = strchr (last, ':') != NULL || strchr (ref, '@') != NULL;
  if (asprintf (&out, "%s%s%s%s", has_domain ? "" : "docker.io/", has_domain || slash ? "" : "library/", ref,
                has_tag ? "" : ":latest")
      < 0)
    return NULL;
  return out;
}

static json_object *
jget (json_object *o, const char *k)
{
  json_object *v = NULL;
  return o && json_object_object_get_ex (o, k, &v) ? v : NULL;
}

static const char *
jstr (json_object *o, const char *k)
{
  json_object *v = jget (o, k);
  return v && json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
}

static const char *
host_arch (void)
{
  struct utsname u;
  static char buf[65];
  if (uname (&u) < 0)
    return "amd64";
  if (strcmp (u.machine, "x86_64") == 0)
    return "amd64";
  if (strcmp (u.machine, "aarch64") == 0)
    return "arm64";
  if (strncmp (u.machine, "arm", 3) == 0)
    return "arm";
  if (strcmp (u.machine, "i686") == 0 || strcmp (u.machine, "i386") == 0)
    return "386";
  snprintf (buf, sizeof buf, "%s", u.machine);
  return buf;
}

static json_object *
read_doc (struct cli *cli, const char *digest, berth_error **err)
{
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = content_read_all (cli, digest, DOCUMENT_MAX, &data, &len, err);
  if (r < 0)
    {
      if (*err == NULL)
        berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "cannot connect");
      return NULL;
    }
  json_tokener *tok = json_tokener_new ();
  json_object *o = tok ? json_tokener_parse_ex (tok, data, (int)len) : NULL;
  if (o == NULL || tok->char_offset != (int)len || !json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      o = NULL;
      berth_error_set (err, BERTH_E_INVALID, 0, "%s is not a JSON object", digest);
    }
  json_tokener_free (tok);
  return o;
}

/* The image's config digest for this host (through an index when needed). */
static int
image_config_digest (struct cli *cli, const char *mt, const char *digest, char **ret, berth_error **err)
{
  for (int depth = 0; depth < 8; depth++)
    {
      _cleanup_ (json_object_putp) json_object *doc = read_doc (cli, digest, err);
      if (doc == NULL)
        return berth_error_wrap (err, "reading %s", digest);
      const char *m = jstr (doc, "mediaType");
      if (m == NULL || *m == 0)
        m = mt;
      if (media_type_is_manifest (m) || (m == NULL && jget (doc, "config")))
        {
          const char *cd = jstr (jget (doc, "config"), "digest");
          if (cd == NULL)
            return berth_error_set (err, BERTH_E_INVALID, 0, "manifest %s has no config digest", digest);
          *ret = strdup (cd);
          return 0;
        }
      json_object *ms = jget (doc, "manifests");
      if (!media_type_is_index (m) && ms == NULL)
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s: unsupported media type %s", digest, m ? m : "(none)");
      const char *arch = host_arch ();
      json_object *pick = NULL;
      size_t n = ms && json_object_is_type (ms, json_type_array) ? json_object_array_length (ms) : 0;
      for (size_t i = 0; i < n && pick == NULL; i++)
        {
          json_object *e = json_object_array_get_idx (ms, i);
          json_object *p = jget (e, "platform");
          const char *os = jstr (p, "os"), *a = jstr (p, "architecture");
          if (os && a && strcmp (os, "linux") == 0 && strcmp (a, arch) == 0)
            pick = e;
        }
      /* An entry without a platform (an OCI layout's index.json) may be
       * anything: try it, as containerd does by reading its config. */
      for (size_t i = 0; i < n && pick == NULL; i++)
        {
          json_object *e = json_object_array_get_idx (ms, i);
          if (jget (e, "platform") == NULL)
            pick = e;
        }
      if (pick == NULL)
        return berth_error_set (err, BERTH_E_NOTFOUND, 0, "the image has no manifest for linux/%s", arch);
      static char dbuf[160], mbuf[160];
      snprintf (dbuf, sizeof dbuf, "%s", jstr (pick, "digest") ? jstr (pick, "digest") : "");
      snprintf (mbuf, sizeof mbuf, "%s", jstr (pick, "mediaType") ? jstr (pick, "mediaType") : "");
      digest = dbuf;
      mt = mbuf;
    }
  return berth_error_set (err, BERTH_E_INVALID, 0, "indexes nested too deeply");
}

/* chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)) */
static int
chain_id (json_object *config, char *out, size_t len, berth_error **err)
{
  json_object *ids = jget (jget (config, "rootfs"), "diff_ids");
  size_t n = ids && json_object_is_type (ids, json_type_array) ? json_object_array_length (ids) : 0;
  if (n == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "the image config has no rootfs.diff_ids");
  char cur[128] = "";
  for (size_t i = 0; i < n; i++)
    {
      const char *d = json_object_get_string (json_object_array_get_idx (ids, i));
      if (d == NULL || strlen (d) >= sizeof cur)
        return berth_error_set (err, BERTH_E_INVALID, 0, "rootfs.diff_ids[%zu] is not a digest", i);
      if (i == 0)
        {
          snprintf (cur, sizeof cur, "%s", d);
          continue;
        }
      char in[300];
      int l = snprintf (in, sizeof in, "%s %s", cur, d);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int mdlen = 0;
      if (EVP_Digest (in, (size_t)l, md, &mdlen, EVP_sha256 (), NULL) != 1)
        return berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 failed");
      strcpy (cur, "sha256:");
      for (unsigned k = 0; k < mdlen; k++)
        sprintf (cur + 7 + 2 * k, "%02x", md[k]);
    }
  snprintf (out, len, "%s", cur);
  return 0;
}

struct image
{
  char *name;          /* as stored */
  json_object *config; /* the whole config document */
  char *snapshotter;
  char chain[128];
};

static void
image_clear (struct image *im)
{
  free (im->name);
  json_object_put (im->config);
  free (im->snapshotter);
  *im = (struct image){ 0 };
}

static int
image_get (struct cli *cli, const char *name, ProtobufCMessage **ret, berth_error **err)
{
  Containerd__Services__Images__V1__GetImageRequest req = CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
  req.name = (char *)name;
  return cli_unary (cli, "/containerd.services.images.v1.Images/Get", &req.base,
                    &containerd__services__images__v1__get_image_response__descriptor, ret, err);
}

/* Find (pulling as asked) and read the image.  Prints errors; returns an
 * exit code (0 = ok). */
static int
image_resolve (struct cli *cli, const char *ref, const char *pull, bool plain_http, const char *want_snapshotter,
               struct image *im)
{
  _cleanup_free_ char *norm = normalize_ref (ref);
  if (norm == NULL)
    return cli_fail (cli, NULL, "out of memory");
  ProtobufCMessage *resp = NULL;
  _cleanup_error_ berth_error *err = NULL;
  const char *name = ref;
  int r = BERTH_E_NOTFOUND;
  if (strcmp (pull, "always") != 0)
    {
      r = image_get (cli, ref, &resp, &err);
      if (r == BERTH_E_NOTFOUND && strcmp (norm, ref) != 0)
        {
          berth_error_free (TAKE_PTR (err));
          name = norm;
          r = image_get (cli, norm, &resp, &err);
        }
      if (r < 0 && r != BERTH_E_NOTFOUND)
        return cli_call_failed (cli, err, "looking up image %s", ref);
    }
  if (r == BERTH_E_NOTFOUND)
    {
      if (strcmp (pull, "never") == 0)
        return cli_fail (cli, NULL, "image %s: not found (and --pull never)", ref);
      /* Pull the name as given when it has a domain, else docker's form. */
      name = strcmp (norm, ref) == 0 || strchr (ref, '/') ? ref : norm;
      if (strcmp (pull, "always") != 0)
        fprintf (stderr, "Unable to find image '%s' locally\n", ref);
      if (cli_pull_image (cli, name, want_snapshotter, plain_http) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
      berth_error_free (TAKE_PTR (err));
      r = image_get (cli, name, &resp, &err);
      if (r < 0)
        return cli_call_failed (cli, err, "looking up image %s after pulling it", name);
    }
  Containerd__Services__Images__V1__GetImageResponse *gr = (void *)resp;
  if (gr->image == NULL || gr->image->target == NULL)
    {
      protobuf_c_message_free_unpacked (resp, NULL);
      return cli_fail (cli, NULL, "image %s has no target", ref);
    }
  im->name = strdup (gr->image->name);
  _cleanup_free_ char *cfg_digest = NULL;
  r = image_config_digest (cli, gr->image->target->media_type, gr->image->target->digest, &cfg_digest, &err);
  protobuf_c_message_free_unpacked (resp, NULL);
  if (r < 0)
    return cli_fail (cli, err, "image %s", ref);
  im->config = read_doc (cli, cfg_digest, &err);
  if (im->config == NULL)
    return cli_fail (cli, err, "reading the config %s of image %s", cfg_digest, ref);

  /* Which snapshotter has it unpacked: the config's gc.ref.snapshot labels. */
  Containerd__Services__Content__V1__InfoRequest ir = CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
  ir.digest = cfg_digest;
  resp = NULL;
  r = cli_unary (cli, "/containerd.services.content.v1.Content/Info", &ir.base,
                 &containerd__services__content__v1__info_response__descriptor, &resp, &err);
  if (r < 0)
    return cli_call_failed (cli, err, "reading the labels of %s", cfg_digest);
  Containerd__Services__Content__V1__Info *info = ((Containerd__Services__Content__V1__InfoResponse *)resp)->info;
  const char *pref = want_snapshotter ? want_snapshotter : getenv ("BERTH_SNAPSHOTTER");
  const char *prefix = "containerd.io/gc.ref.snapshot.";
  const char *found_sn = NULL, *found_chain = NULL;
  for (size_t i = 0; info && i < info->n_labels; i++)
    {
      const char *k = info->labels[i]->key;
      if (strncmp (k, prefix, strlen (prefix)) != 0)
        continue;
      const char *sn = k + strlen (prefix);
      if (strchr (sn, '/'))
        continue;
      bool preferred = pref && *pref ? strcmp (sn, pref) == 0 : strcmp (sn, DEFAULT_SNAPSHOTTER) == 0;
      if (found_sn == NULL || preferred)
        {
          found_sn = sn;
          found_chain = info->labels[i]->value;
        }
      if (preferred)
        break;
    }
  if (found_sn && (want_snapshotter == NULL || strcmp (found_sn, want_snapshotter) == 0))
    {
      im->snapshotter = strdup (found_sn);
      snprintf (im->chain, sizeof im->chain, "%s", found_chain);
      protobuf_c_message_free_unpacked (resp, NULL);
      return 0;
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  if (want_snapshotter && found_sn && strcmp (pull, "never") == 0)
    return cli_fail (cli, NULL,
                     "image %s is not unpacked for snapshotter %s (it is for %s): pull it with --snapshotter %s, "
                     "or drop --pull never",
                     ref, want_snapshotter, found_sn, want_snapshotter);
  if (want_snapshotter && found_sn)
    {
      /* Unpacked elsewhere: unpack for the asked snapshotter. */
      if (cli_pull_image (cli, im->name, want_snapshotter, plain_http) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    }
  im->snapshotter = strdup (want_snapshotter ? want_snapshotter : (pref && *pref ? pref : DEFAULT_SNAPSHOTTER));
  if (chain_id (im->config, im->chain, sizeof im->chain, &err) < 0)
    return cli_fail (cli, err, "image %s", ref);
  return 0;
}

/* ---- spec and container ---- */

struct strv
{
  char **v;
  size_t n;
};

static int
strv_push (struct strv *s, const char *x)
{
  char **n = realloc (s->v, (s->n + 2) * sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  s->v = n;
  s->v[s->n] = strdup (x);
  if (s->v[s->n] == NULL)
    return -ENOMEM;
  s->v[++s->n] = NULL;
  return 0;
}

static void
strv_clear (struct strv *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->v[i]);
  free (s->v);
  *s = (struct strv){ 0 };
}

static const char *const *
strv_get (const struct strv *s)
{
  return s->n ? (const char *const *)s->v : NULL;
}

struct run_opts
{
  bool rm, detach, interactive, tty, sig_proxy, plain_http, create_only;
  const char *name, *pull, *runtime, *snapshotter, *image;
  struct strv env, volumes, tmpfs, cap_add, cap_drop, labels, entrypoint;
  struct ocispec_opts spec;
  char **args;
};

static void
run_opts_clear (struct run_opts *o)
{
  strv_clear (&o->env);
  strv_clear (&o->volumes);
  strv_clear (&o->tmpfs);
  strv_clear (&o->cap_add);
  strv_clear (&o->cap_drop);
  strv_clear (&o->labels);
  strv_clear (&o->entrypoint);
}

static bool
valid_name (const char *n)
{
  if (!isalnum ((unsigned char)n[0]))
    return false;
  for (const char *p = n; *p; p++)
    if (!isalnum ((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
      return false;
  return strlen (n) <= 128;
}

static int
random_hex (char *out, size_t bytes)
{
  unsigned char buf[64];
  int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || bytes > sizeof buf || read (fd, buf, bytes) != (ssize_t)bytes)
    {
      if (fd >= 0)
        close (fd);
      return -EIO;
    }
  close (fd);
  for (size_t i = 0; i < bytes; i++)
    sprintf (out + 2 * i, "%02x", buf[i]);
  return 0;
}

static int
parse_run (struct cli *cli, int argc, char **argv, struct run_opts *o)
{
  o->pull = "missing";
  o->sig_proxy = true;
  int c;
  _cleanup_error_ berth_error *err = NULL;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    {
      int r = 0;
      switch (c)
        {
        case OPT_RM: o->rm = true; break;
        case 'd': o->detach = true; break;
        case 'i': o->interactive = true; break;
        case 't': o->tty = true; break;
        case OPT_NAME:
          if (!valid_name (optarg))
            return cli_usage_error (cli, "invalid container name `%s`: use [a-zA-Z0-9][a-zA-Z0-9_.-]*", optarg);
          o->name = optarg;
          break;
        case 'e':
          if (strchr (optarg, '=') == NULL && getenv (optarg))
            {
              _cleanup_free_ char *kv = NULL;
              if (asprintf (&kv, "%s=%s", optarg, getenv (optarg)) < 0)
                return CLI_EXIT_FAIL;
              r = strv_push (&o->env, kv);
            }
          else
            r = strv_push (&o->env, optarg);
          break;
        case OPT_ENV_FILE:
          {
            char **lines = NULL;
            if (ocispec_parse_env_file (optarg, &lines, &err) < 0)
              {
                cli_fail (cli, err, "--env-file %s", optarg);
                return CLI_EXIT_USAGE;
              }
            for (char **l = lines; l && *l && r == 0; l++)
              r = strv_push (&o->env, *l);
            strv_free (lines);
            break;
          }
        case 'v': r = strv_push (&o->volumes, optarg); break;
        case OPT_TMPFS: r = strv_push (&o->tmpfs, optarg); break;
        case 'w': o->spec.workdir = optarg; break;
        case 'u': o->spec.user = optarg; break;
        case OPT_MEMORY:
          if (ocispec_parse_bytes (optarg, &o->spec.memory, &err) < 0)
            return cli_usage_error (cli, "--memory %s: %s", optarg, berth_error_message (err));
          break;
        case OPT_CPUS:
          if (ocispec_parse_cpus (optarg, &o->spec.cpus, &err) < 0)
            return cli_usage_error (cli, "--cpus %s: %s", optarg, berth_error_message (err));
          break;
        case OPT_PIDS:
          {
            char *end;
            errno = 0;
            long long n = strtoll (optarg, &end, 10);
            if (errno || *end || end == optarg || n == 0 || n < -1)
              return cli_usage_error (cli, "--pids-limit %s: expected a positive number (or -1: unlimited)", optarg);
            o->spec.pids_limit = n;
            break;
          }
        case OPT_CAP_ADD: r = strv_push (&o->cap_add, optarg); break;
        case OPT_CAP_DROP: r = strv_push (&o->cap_drop, optarg); break;
        case OPT_PRIVILEGED: o->spec.privileged = true; break;
        case OPT_READ_ONLY: o->spec.read_only = true; break;
        case OPT_SECURITY_OPT:
          if (strncmp (optarg, "seccomp=", 8) == 0 || strncmp (optarg, "seccomp:", 8) == 0)
            o->spec.seccomp = optarg + 8;
          else if (strcmp (optarg, "no-new-privileges") == 0 || strcmp (optarg, "no-new-privileges=true") == 0
                   || strcmp (optarg, "no-new-privileges:true") == 0)
            o->spec.no_new_privileges = true;
          else
            return cli_usage_error (cli, "--security-opt %s: supported: seccomp=PROFILE|unconfined, no-new-privileges",
                                    optarg);
          break;
        case OPT_RUNTIME: o->runtime = optarg; break;
        case OPT_SNAPSHOTTER: o->snapshotter = optarg; break;
        case OPT_HOSTNAME: o->spec.hostname = optarg; break;
        case OPT_INIT: o->spec.init = true; break;
        case OPT_NET:
          if (strcmp (optarg, "none") && strcmp (optarg, "host"))
            return cli_usage_error (cli, "--net %s: supported: none, host", optarg);
          o->spec.net = optarg;
          break;
        case OPT_PULL:
          if (strcmp (optarg, "missing") && strcmp (optarg, "always") && strcmp (optarg, "never"))
            return cli_usage_error (cli, "--pull %s: use missing, always or never", optarg);
          o->pull = optarg;
          break;
        case OPT_PLAIN_HTTP: o->plain_http = true; break;
        case OPT_ENTRYPOINT:
          o->spec.entrypoint_set = true;
          if (*optarg)
            r = strv_push (&o->entrypoint, optarg);
          break;
        case OPT_SIG_PROXY: o->sig_proxy = strcmp (optarg, "false") != 0 && strcmp (optarg, "0") != 0; break;
        case OPT_LABEL: r = strv_push (&o->labels, optarg); break;
        default: return CLI_EXIT_USAGE;
        }
      if (r < 0)
        return cli_fail (cli, NULL, "out of memory");
    }
  if (optind >= argc)
    return cli_usage_error (cli, "an image is needed");
  o->image = argv[optind];
  o->args = argv + optind + 1;
  o->spec.tty = o->tty;
  o->spec.env = strv_get (&o->env);
  o->spec.volumes = strv_get (&o->volumes);
  o->spec.tmpfs = strv_get (&o->tmpfs);
  o->spec.cap_add = strv_get (&o->cap_add);
  o->spec.cap_drop = strv_get (&o->cap_drop);
  o->spec.entrypoint = strv_get (&o->entrypoint);
  if (*o->args)
    o->spec.args = (const char *const *)o->args;
  if (getenv ("BERTH_INIT_PATH"))
    o->spec.init_path = getenv ("BERTH_INIT_PATH");
  return CLI_EXIT_OK;
}

static bool
name_taken (struct cli *cli, const char *name, int *ret)
{
  _cleanup_error_ berth_error *err = NULL;
  struct ctr_list l = { 0 };
  if (ctr_list_all (cli, &l, &err) < 0)
    {
      *ret = cli_call_failed (cli, err, "listing containers");
      return true;
    }
  bool taken = false;
  for (size_t i = 0; i < l.n && !taken; i++)
    {
      const char *n = ctr_label (l.v[i], LABEL_NAME);
      if (n && strcmp (n, name) == 0)
        {
          taken = true;
          *ret = cli_fail (cli, NULL, "the name %s is already in use by container %.12s", name, l.v[i]->id);
        }
    }
  ctr_list_clear (&l);
  return taken;
}

static Google__Protobuf__Any *
any_json (Google__Protobuf__Any *a, const char *type_url, const char *json)
{
  google__protobuf__any__init (a);
  a->type_url = (char *)type_url;
  a->value.data = (uint8_t *)json;
  a->value.len = strlen (json);
  return a;
}

/* Snapshots/Prepare + Containers/Create.  Returns an exit code. */
/* Creates the snapshot and the container.  *ret_prepared: the Prepare
 * response (the snapshot's mounts, for Tasks/Create without a Mounts call). */
static int
container_create (struct cli *cli, struct run_opts *o, const char *id, struct image *im,
                  ProtobufCMessage **ret_prepared)
{
  _cleanup_error_ berth_error *err = NULL;
  char shortid[13];
  snprintf (shortid, sizeof shortid, "%.12s", id);
  if (o->spec.hostname == NULL && (o->spec.net == NULL || strcmp (o->spec.net, "host") != 0))
    o->spec.hostname = shortid;
  _cleanup_ (json_object_putp) json_object *spec = ocispec_generate (im->config, &o->spec, &err);
  if (spec == NULL)
    return cli_fail (cli, err, "generating the container's spec");
  json_object *lnx = jget (spec, "linux");
  if (lnx && jget (lnx, "cgroupsPath") == NULL)
    {
      char cg[300];
      snprintf (cg, sizeof cg, "/%s/%s", cli->ns, id);
      json_object_object_add (lnx, "cgroupsPath", json_object_new_string (cg));
    }
  const char *spec_json
      = json_object_to_json_string_ext (spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

  /* The snapshot. */
  Containerd__Services__Snapshots__V1__PrepareSnapshotRequest pr
      = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
  struct pb_labels sl
      = { .entry_desc = &containerd__services__snapshots__v1__prepare_snapshot_request__labels_entry__descriptor };
  char now[32];
  time_rfc3339 (now, time (NULL));
  pb_labels_add (&sl, "containerd.io/gc.root", now);
  pr.snapshotter = im->snapshotter;
  pr.key = (char *)id;
  pr.parent = im->chain;
  pr.n_labels = sl.n;
  pr.labels = (void *)sl.entries;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, SNAPSHOTS_SERVICE "Prepare", &pr.base,
                     &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor, &resp, &err);
  pb_labels_free (&sl);
  if (r < 0)
    return cli_call_failed (cli, err, "preparing the root filesystem (snapshotter %s, parent %s)", im->snapshotter,
                            im->chain);
  _cleanup_ (pb_message_freep) ProtobufCMessage *prepared = resp;

  /* The container. */
  Containerd__Services__Containers__V1__Container c = CONTAINERD__SERVICES__CONTAINERS__V1__CONTAINER__INIT;
  Containerd__Services__Containers__V1__Container__Runtime rt
      = CONTAINERD__SERVICES__CONTAINERS__V1__CONTAINER__RUNTIME__INIT;
  Google__Protobuf__Any spec_any;
  struct pb_labels cl = { .entry_desc = &containerd__services__containers__v1__container__labels_entry__descriptor };
  c.id = (char *)id;
  c.image = im->name;
  c.snapshotter = im->snapshotter;
  c.snapshot_key = (char *)id;
  c.spec = any_json (&spec_any, SPEC_TYPE_URL, spec_json);
  rt.name = (char *)RUNTIME_DEFAULT;
  if (o->runtime)
    {
      if (strcmp (o->runtime, "namespaces") == 0)
        rt.name = (char *)RUNTIME_NAMESPACES;
      else if (strcmp (o->runtime, "oci") == 0)
        rt.name = (char *)RUNTIME_OCI;
      else if (strchr (o->runtime, '.') == NULL)
        {
          /* a named runtime of the oci plugin: runc, crun, ... */
          rt.name = (char *)RUNTIME_OCI;
          pb_labels_add (&cl, LABEL_OCI_RUNTIME, o->runtime);
        }
      else
        rt.name = (char *)o->runtime;
    }
  c.runtime = &rt;
  if (o->name)
    pb_labels_add (&cl, LABEL_NAME, o->name);
  if (o->spec.init)
    pb_labels_add (&cl, LABEL_INIT_PATH, "1");
  for (size_t i = 0; i < o->labels.n; i++)
    {
      _cleanup_free_ char *k = NULL, *v = NULL;
      if (cli_split_label (o->labels.v[i], &k, &v) == 0)
        pb_labels_add (&cl, k, v);
    }
  c.n_labels = cl.n;
  c.labels = (void *)cl.entries;
  Containerd__Services__Containers__V1__CreateContainerRequest cr
      = CONTAINERD__SERVICES__CONTAINERS__V1__CREATE_CONTAINER_REQUEST__INIT;
  cr.container = &c;
  resp = NULL;
  r = cli_unary (cli, CONTAINERS_SERVICE "Create", &cr.base,
                 &containerd__services__containers__v1__create_container_response__descriptor, &resp, &err);
  pb_labels_free (&cl);
  if (r < 0)
    {
      int ret = cli_call_failed (cli, err, "creating container %s", o->name ? o->name : shortid);
      Containerd__Services__Snapshots__V1__RemoveSnapshotRequest sr
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
      sr.snapshotter = im->snapshotter;
      sr.key = (char *)id;
      ProtobufCMessage *e = NULL;
      if (cli_unary (cli, SNAPSHOTS_SERVICE "Remove", &sr.base, &google__protobuf__empty__descriptor, &e, NULL) == 0)
        protobuf_c_message_free_unpacked (e, NULL);
      return ret;
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  *ret_prepared = TAKE_PTR (prepared);
  return CLI_EXIT_OK;
}

/* Tasks/Create with the snapshot's mounts: those of its Prepare response
 * when the caller has it, else from Snapshots/Mounts.  Returns 0 or a
 * berth error. */
static int
task_create (struct cli *cli, const char *id, const char *snapshotter, const char *snapshot_key,
             const Containerd__Services__Snapshots__V1__PrepareSnapshotResponse *prepared, const struct ctr_fifos *f,
             bool tty, berth_error **err)
{
  ProtobufCMessage *mresp = NULL;
  int r;
  size_t n_mounts;
  Containerd__Types__Mount **mounts;
  if (prepared)
    {
      n_mounts = prepared->n_mounts;
      mounts = prepared->mounts;
    }
  else
    {
      Containerd__Services__Snapshots__V1__MountsRequest mr
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_REQUEST__INIT;
      mr.snapshotter = (char *)snapshotter;
      mr.key = (char *)snapshot_key;
      r = cli_unary (cli, SNAPSHOTS_SERVICE "Mounts", &mr.base,
                     &containerd__services__snapshots__v1__mounts_response__descriptor, &mresp, err);
      if (r < 0)
        return berth_error_wrap (err, "getting the mounts of snapshot %s", snapshot_key);
      Containerd__Services__Snapshots__V1__MountsResponse *m = (void *)mresp;
      n_mounts = m->n_mounts;
      mounts = m->mounts;
    }
  Containerd__Services__Tasks__V1__CreateTaskRequest req = CONTAINERD__SERVICES__TASKS__V1__CREATE_TASK_REQUEST__INIT;
  req.container_id = (char *)id;
  req.n_rootfs = n_mounts;
  req.rootfs = mounts;
  if (f)
    {
      req.stdin = (char *)f->in;
      req.stdout = (char *)f->out;
      req.stderr = (char *)f->err;
    }
  req.terminal = tty;
  ProtobufCMessage *resp = NULL;
  r = cli_unary (cli, TASKS_SERVICE "Create", &req.base,
                 &containerd__services__tasks__v1__create_task_response__descriptor, &resp, err);
  if (mresp)
    protobuf_c_message_free_unpacked (mresp, NULL);
  if (r < 0)
    return r;
  protobuf_c_message_free_unpacked (resp, NULL);
  return 0;
}

static int
task_start (struct cli *cli, const char *id, const char *exec_id, berth_error **err)
{
  Containerd__Services__Tasks__V1__StartRequest req = CONTAINERD__SERVICES__TASKS__V1__START_REQUEST__INIT;
  req.container_id = (char *)id;
  if (exec_id)
    req.exec_id = (char *)exec_id;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "Start", &req.base,
                     &containerd__services__tasks__v1__start_response__descriptor, &resp, err);
  if (r == 0)
    protobuf_c_message_free_unpacked (resp, NULL);
  return r;
}

struct start_data
{
  const char *id, *name, *snapshotter, *snapshot_key;
  /* the snapshot's Prepare response (its mounts), or NULL */
  const Containerd__Services__Snapshots__V1__PrepareSnapshotResponse *prepared;
  const struct ctr_fifos *f;
  bool tty;
  bool create; /* Tasks/Create first */
  const char *exec_id;
};

/* attach's start callback: create (maybe) and start; errors => 125/126/127. */
static int
start_cb (struct cli *cli, void *data)
{
  struct start_data *d = data;
  _cleanup_error_ berth_error *err = NULL;
  if (d->create && task_create (cli, d->id, d->snapshotter, d->snapshot_key, d->prepared, d->f, d->tty, &err) < 0)
    {
      cli_call_failed (cli, err, "starting container %s", d->name);
      return err ? exit_code_for_error (err) : EXIT_BERTH_ERROR;
    }
  if (task_start (cli, d->id, d->exec_id, &err) < 0)
    {
      cli_call_failed (cli, err, "starting %s %s", d->exec_id ? "exec in" : "container", d->name);
      int code = err ? exit_code_for_error (err) : EXIT_BERTH_ERROR;
      if (d->exec_id)
        {
          Containerd__Services__Tasks__V1__DeleteProcessRequest dp
              = CONTAINERD__SERVICES__TASKS__V1__DELETE_PROCESS_REQUEST__INIT;
          dp.container_id = (char *)d->id;
          dp.exec_id = (char *)d->exec_id;
          ProtobufCMessage *e = NULL;
          if (cli_unary (cli, TASKS_SERVICE "DeleteProcess", &dp.base,
                         &containerd__services__tasks__v1__delete_response__descriptor, &e, NULL)
              == 0)
            protobuf_c_message_free_unpacked (e, NULL);
        }
      else
        task_delete (cli, d->id, NULL, NULL);
      return code;
    }
  return 0;
}

/* --rm: everything is known, no lookup needed. */
static int
remove_by_id (struct cli *cli, const char *id, const char *snapshotter)
{
  pb_container c = CONTAINERD__SERVICES__CONTAINERS__V1__CONTAINER__INIT;
  c.id = (char *)id;
  c.snapshotter = (char *)snapshotter;
  c.snapshot_key = (char *)id;
  return ctr_remove (cli, &c, true);
}

/* -d --rm: a detached child of ours waits for the exit and removes the
 * container (the daemon keeps no such flag; nerdctl does it client-side
 * too).  It runs in its own session with its own connection, stdio on
 * /dev/null, so that it outlives the terminal. */
static int
reaper_start (struct cli *cli, const char *id, const char *snapshotter)
{
  pid_t pid = fork ();
  if (pid < 0)
    return -1;
  if (pid > 0)
    {
      int st;
      waitpid (pid, &st, 0);
      return 0;
    }
  /* double fork: the grandchild is nobody's child to wait for */
  if (setsid () < 0 || fork () != 0)
    _exit (0);
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0)
    {
      dup2 (null, STDIN_FILENO);
      dup2 (null, STDOUT_FILENO);
      dup2 (null, STDERR_FILENO);
    }
  /* the parent's connection (and any other fd) is the parent's: a fresh
   * connection for us */
  close_range (3, ~0U, 0);
  cli->client = NULL;
  cli->timeout_ms = 0;
  if (task_wait (cli, id, NULL, NULL, NULL) == 0)
    remove_by_id (cli, id, snapshotter);
  _exit (0);
}

static int
run_common (struct cli *cli, int argc, char **argv, bool create_only)
{
  _cleanup_ (run_opts_clear) struct run_opts o = { .create_only = create_only };
  _cleanup_ (image_clear) struct image im = { 0 };
  _cleanup_error_ berth_error *err = NULL;
  int ret = parse_run (cli, argc, argv, &o);
  if (ret != CLI_EXIT_OK)
    return create_only ? ret : EXIT_BERTH_ERROR; /* docker run: 125 for its own errors */
  ret = EXIT_BERTH_ERROR;
  if (o.name && name_taken (cli, o.name, &ret))
    return EXIT_BERTH_ERROR;
  if (image_resolve (cli, o.image, o.pull, o.plain_http, o.snapshotter, &im) != CLI_EXIT_OK)
    return ret;
  char id[65];
  if (random_hex (id, 32) < 0)
    {
      cli_fail (cli, NULL, "reading /dev/urandom: %s", strerror (errno));
      return ret;
    }
  _cleanup_ (pb_message_freep) ProtobufCMessage *prepared = NULL;
  if (container_create (cli, &o, id, &im, &prepared) != CLI_EXIT_OK)
    return ret;
  char shortid[13];
  snprintf (shortid, sizeof shortid, "%.12s", id);
  const char *name = o.name ? o.name : shortid;
  if (create_only)
    {
      printf ("%s\n", id);
      return CLI_EXIT_OK;
    }
  if (o.detach)
    {
      struct ctr_fifos f = { 0 };
      bool have_fifos = o.interactive;
      if (have_fifos && ctr_fifos_create (cli->ns, id, "", true, o.tty, &f, &err) < 0)
        {
          cli_fail (cli, err, "container %s", name);
          return ret;
        }
      if (have_fifos)
        {
          /* stdin only: the output goes to the log */
          unlink (f.out);
          unlink (f.err);
          f.out[0] = f.err[0] = 0;
        }
      struct start_data sd = { .id = id,
                               .name = name,
                               .snapshotter = im.snapshotter,
                               .snapshot_key = id,
                               .prepared = (void *)prepared,
                               .f = have_fifos ? &f : NULL,
                               .tty = o.tty,
                               .create = true };
      int r = start_cb (cli, &sd);
      if (r != 0)
        {
          if (o.rm)
            remove_by_id (cli, id, im.snapshotter);
          return r;
        }
      printf ("%s\n", id);
      fflush (stdout);
      if (o.rm && reaper_start (cli, id, im.snapshotter) < 0)
        fprintf (stderr, "berth: --rm: cannot start the process that removes %s on exit: %s\n", shortid,
                 strerror (errno));
      return CLI_EXIT_OK;
    }

  struct ctr_fifos f;
  if (ctr_fifos_create (cli->ns, id, "", o.interactive, o.tty, &f, &err) < 0)
    {
      cli_fail (cli, err, "container %s", name);
      if (o.rm)
        remove_by_id (cli, id, im.snapshotter);
      return ret;
    }
  struct start_data sd = {
    .id = id,
    .name = name,
    .snapshotter = im.snapshotter,
    .snapshot_key = id,
    .prepared = (void *)prepared,
    .f = &f,
    .tty = o.tty,
    .create = true,
  };
  struct attach_opts ao = { .id = id,
                            .in = f.in,
                            .out = f.out,
                            .err = f.err,
                            .tty = o.tty,
                            .sig_proxy = o.sig_proxy && !o.tty,
                            .start = start_cb,
                            .data = &sd };
  uint32_t status = 0;
  int r = ctr_attach (cli, &ao, &status);
  if (r != 0)
    ret = r == CLI_EXIT_FAIL ? EXIT_BERTH_ERROR : r;
  else
    ret = (int)(status & 0xff) == (int)status ? (int)status : (int)(status & 0xff);
  if (o.rm)
    {
      if (remove_by_id (cli, id, im.snapshotter) != CLI_EXIT_OK && ret == 0)
        ret = EXIT_BERTH_ERROR;
    }
  ctr_fifos_unlink (&f);
  return ret;
}

static int
run_run (struct cli *cli, int argc, char **argv)
{
  return run_common (cli, argc, argv, false);
}

static int
create_run (struct cli *cli, int argc, char **argv)
{
  return run_common (cli, argc, argv, true);
}

/* ---- start, restart, attach ---- */

static const struct option start_options[] = {
  { "attach", no_argument, NULL, 'a' },
  { "interactive", no_argument, NULL, 'i' },
  { NULL, 0, NULL, 0 },
};

static bool
spec_terminal (const pb_container *c)
{
  if (c->spec == NULL || c->spec->value.len == 0)
    return false;
  _cleanup_free_ char *s = strndup ((const char *)c->spec->value.data, c->spec->value.len);
  _cleanup_ (json_object_putp) json_object *o = s ? json_tokener_parse (s) : NULL;
  json_object *t = jget (jget (o, "process"), "terminal");
  return t && json_object_get_boolean (t);
}

/* Start one container (deleting a stopped task first).  Returns an exit code. */
static int
start_one (struct cli *cli, const pb_container *c, bool attach, bool interactive)
{
  char nb[16];
  const char *name = ctr_name (c, nb);
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  int r = task_get (cli, c->id, NULL, &resp, &p, &err);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    return cli_call_failed (cli, err, "starting container %s", name);
  bool create = true;
  if (r == 0)
    {
      int st = p->status;
      protobuf_c_message_free_unpacked (resp, NULL);
      if (st == CONTAINERD__V1__TYPES__STATUS__RUNNING || st == CONTAINERD__V1__TYPES__STATUS__PAUSED)
        {
          if (!attach)
            return CLI_EXIT_OK; /* docker: starting a running container is a no-op */
          return cli_fail (cli, NULL, "container %s is already running: use berth attach", name);
        }
      if (st == CONTAINERD__V1__TYPES__STATUS__CREATED && !attach)
        create = false;
      else
        {
          berth_error_free (TAKE_PTR (err));
          if (st == CONTAINERD__V1__TYPES__STATUS__CREATED)
            task_kill (cli, c->id, NULL, SIGKILL, true, NULL);
          if (task_delete (cli, c->id, NULL, &err) < 0)
            return cli_call_failed (cli, err, "starting container %s: deleting its old task", name);
        }
    }
  bool tty = spec_terminal (c);
  struct start_data sd = { .id = c->id,
                           .name = name,
                           .snapshotter = c->snapshotter,
                           .snapshot_key = c->snapshot_key,
                           .tty = tty,
                           .create = create };
  if (!attach)
    {
      int x = start_cb (cli, &sd);
      return x == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
  struct ctr_fifos f;
  berth_error_free (TAKE_PTR (err));
  if (ctr_fifos_create (cli->ns, c->id, "", interactive, tty, &f, &err) < 0)
    return cli_fail (cli, err, "container %s", name);
  sd.f = &f;
  struct attach_opts ao = {
    .id = c->id, .in = f.in, .out = f.out, .err = f.err, .tty = tty, .sig_proxy = !tty, .start = start_cb, .data = &sd
  };
  uint32_t status = 0;
  r = ctr_attach (cli, &ao, &status);
  ctr_fifos_unlink (&f);
  return r != 0 ? r : (int)(status & 0xff);
}

static int
start_run (struct cli *cli, int argc, char **argv)
{
  bool attach = false, interactive = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'a': attach = true; break;
      case 'i': interactive = true; break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (cli, "a container is needed");
  if (attach && argc - optind > 1)
    return cli_usage_error (cli, "--attach takes one container");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      struct ctr_ref ref;
      if (ctr_resolve (cli, argv[i], &ref) != CLI_EXIT_OK)
        {
          ret = CLI_EXIT_FAIL;
          continue;
        }
      int r = start_one (cli, ref.c, attach, interactive);
      if (attach)
        ret = r;
      else if (r != CLI_EXIT_OK)
        ret = r;
      else
        printf ("%s\n", argv[i]);
      ctr_ref_clear (&ref);
    }
  return ret;
}

static const struct option restart_options[] = {
  { "time", required_argument, NULL, 't' },
  { NULL, 0, NULL, 0 },
};

static int
restart_run (struct cli *cli, int argc, char **argv)
{
  long timeout = 10;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 't':
        {
          char *end;
          timeout = strtol (optarg, &end, 10);
          if (*end || end == optarg)
            return cli_usage_error (cli, "--time %s: expected seconds", optarg);
          break;
        }
      default: return CLI_EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (cli, "a container is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      struct ctr_ref ref;
      if (ctr_resolve (cli, argv[i], &ref) != CLI_EXIT_OK)
        {
          ret = CLI_EXIT_FAIL;
          continue;
        }
      _cleanup_error_ berth_error *err = NULL;
      int r = task_stop (cli, ref.c->id, timeout, &err);
      if (r < 0 && r != BERTH_E_NOTFOUND && r != BERTH_E_PRECONDITION)
        ret = cli_call_failed (cli, err, "stopping container %s", argv[i]);
      else if (start_one (cli, ref.c, false, false) != CLI_EXIT_OK)
        ret = CLI_EXIT_FAIL;
      else
        printf ("%s\n", argv[i]);
      ctr_ref_clear (&ref);
    }
  return ret;
}

static int
attach_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (optind + 1 != argc)
    return cli_usage_error (cli, "one container is needed");
  struct ctr_ref ref;
  if (ctr_resolve (cli, argv[optind], &ref) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  int r = task_get (cli, ref.c->id, NULL, &resp, &p, &err);
  if (r < 0)
    {
      ctr_ref_clear (&ref);
      if (r == BERTH_E_NOTFOUND)
        return cli_fail (cli, NULL, "container %s is not running", argv[optind]);
      return cli_call_failed (cli, err, "attaching to %s", argv[optind]);
    }
  int ret;
  if (p->status != CONTAINERD__V1__TYPES__STATUS__RUNNING)
    ret = cli_fail (cli, NULL, "container %s is not running", argv[optind]);
  else if (p->stdout == NULL || *p->stdout == 0)
    ret = cli_fail (cli, NULL, "container %s was started without stdio streams (detached): use berth logs -f",
                    argv[optind]);
  else
    {
      struct attach_opts ao = { .id = ref.c->id,
                                .in = p->stdin,
                                .out = p->stdout,
                                .err = p->stderr,
                                .tty = p->terminal,
                                .sig_proxy = !p->terminal };
      uint32_t status = 0;
      r = ctr_attach (cli, &ao, &status);
      ret = r != 0 ? r : (int)(status & 0xff);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  ctr_ref_clear (&ref);
  return ret;
}

/* ---- exec ---- */

static const struct option exec_options[] = {
  { "interactive", no_argument, NULL, 'i' },   { "tty", no_argument, NULL, 't' },
  { "env", required_argument, NULL, 'e' },     { "user", required_argument, NULL, 'u' },
  { "workdir", required_argument, NULL, 'w' }, { "detach", no_argument, NULL, 'd' },
  { "exec-id", required_argument, NULL, 'x' }, { NULL, 0, NULL, 0 },
};

/* uid/gid of user[:group] in the container, from /proc/<pid>/root/etc. */
static int
resolve_user (pid_t pid, const char *user, uint32_t *uid, uint32_t *gid, berth_error **err)
{
  _cleanup_free_ char *u = strdup (user);
  if (u == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  char *g = strchr (u, ':');
  if (g)
    *g++ = 0;
  char *end;
  bool numeric = false;
  unsigned long n = strtoul (u, &end, 10);
  if (*u && *end == 0)
    {
      *uid = (uint32_t)n;
      *gid = 0;
      numeric = true;
    }
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/root/etc/passwd", (int)pid);
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  bool found = numeric;
  if (f)
    {
      struct passwd *pw;
      while ((pw = fgetpwent (f)) != NULL)
        if ((numeric && pw->pw_uid == *uid) || (!numeric && strcmp (pw->pw_name, u) == 0))
          {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
            found = true;
            break;
          }
    }
  if (!found)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "user \"%s\" not found in the container's /etc/passwd", u);
  if (g)
    {
      n = strtoul (g, &end, 10);
      if (*g && *end == 0)
        *gid = (uint32_t)n;
      else
        {
          snprintf (path, sizeof path, "/proc/%d/root/etc/group", (int)pid);
          _cleanup_fclose_ FILE *gf = fopen (path, "re");
          char line[1024];
          bool gfound = false;
          while (gf && fgets (line, sizeof line, gf))
            {
              char *c1 = strchr (line, ':');
              if (c1 == NULL)
                continue;
              *c1 = 0;
              if (strcmp (line, g) != 0)
                continue;
              char *c2 = strchr (c1 + 1, ':');
              if (c2)
                {
                  *gid = (uint32_t)strtoul (c2 + 1, NULL, 10);
                  gfound = true;
                }
              break;
            }
          if (!gfound)
            return berth_error_set (err, BERTH_E_NOTFOUND, 0, "group \"%s\" not found in the container's /etc/group",
                                    g);
        }
    }
  return 0;
}

static int
exec_run (struct cli *cli, int argc, char **argv)
{
  bool interactive = false, tty = false, detach = false;
  const char *user = NULL, *workdir = NULL, *exec_id_opt = NULL;
  _cleanup_ (strv_clear) struct strv env = { 0 };
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'i': interactive = true; break;
      case 't': tty = true; break;
      case 'd': detach = true; break;
      case 'u': user = optarg; break;
      case 'w': workdir = optarg; break;
      case 'x': exec_id_opt = optarg; break;
      case 'e':
        if (strchr (optarg, '=') == NULL)
          {
            const char *v = getenv (optarg);
            if (v == NULL)
              break;
            _cleanup_free_ char *kv = NULL;
            if (asprintf (&kv, "%s=%s", optarg, v) >= 0)
              strv_push (&env, kv);
          }
        else
          strv_push (&env, optarg);
        break;
      default: return EXIT_BERTH_ERROR;
      }
  if (optind + 2 > argc)
    {
      cli_usage_error (cli, "a container and a command are needed");
      return EXIT_BERTH_ERROR;
    }
  if (workdir && workdir[0] != '/')
    {
      cli_usage_error (cli, "--workdir %s: must be an absolute path", workdir);
      return EXIT_BERTH_ERROR;
    }
  int ret = EXIT_BERTH_ERROR;
  _cleanup_ (ctr_ref_clear) struct ctr_ref ref = { 0 };
  _cleanup_ (pb_message_freep) ProtobufCMessage *tresp = NULL;
  _cleanup_ (json_object_putp) json_object *spec = NULL;
  _cleanup_ (ctr_fifos_unlink) struct ctr_fifos f = { 0 };
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ char *sj = NULL;
  if (ctr_resolve (cli, argv[optind], &ref) != CLI_EXIT_OK)
    return ret;
  pb_process *p = NULL;
  int r = task_get (cli, ref.c->id, NULL, &tresp, &p, &err);
  /* A task whose shim is not answering may well be running: let the
   * daemon try, and say which shim did not answer. */
  if (r < 0
      || (p->status != CONTAINERD__V1__TYPES__STATUS__RUNNING
          && !(p->status == CONTAINERD__V1__TYPES__STATUS__UNKNOWN && ctr_shim_silent (p, NULL, NULL, 0))))
    {
      if (r < 0 && r != BERTH_E_NOTFOUND)
        cli_call_failed (cli, err, "exec in %s", argv[optind]);
      else
        cli_fail (cli, NULL, "container %s is not running", argv[optind]);
      return ret;
    }
  if (ref.c->spec == NULL)
    {
      cli_fail (cli, NULL, "container %s has no spec", argv[optind]);
      return ret;
    }
  sj = strndup ((const char *)ref.c->spec->value.data, ref.c->spec->value.len);
  spec = sj ? json_tokener_parse (sj) : NULL;
  json_object *proc = jget (spec, "process");
  if (proc == NULL)
    {
      cli_fail (cli, NULL, "container %s: its spec has no process", argv[optind]);
      return ret;
    }
  json_object *args = json_object_new_array ();
  for (int i = optind + 1; i < argc; i++)
    json_object_array_add (args, json_object_new_string (argv[i]));
  json_object_object_add (proc, "args", args);
  json_object_object_add (proc, "terminal", json_object_new_boolean (tty));
  if (workdir)
    json_object_object_add (proc, "cwd", json_object_new_string (workdir));
  json_object *penv = jget (proc, "env");
  if (penv == NULL)
    {
      penv = json_object_new_array ();
      json_object_object_add (proc, "env", penv);
    }
  for (size_t i = 0; i < env.n; i++)
    {
      size_t klen = strcspn (env.v[i], "=");
      bool replaced = false;
      for (size_t k = 0; k < json_object_array_length (penv) && !replaced; k++)
        {
          const char *e = json_object_get_string (json_object_array_get_idx (penv, k));
          if (e && strncmp (e, env.v[i], klen) == 0 && e[klen] == '=')
            {
              json_object_array_put_idx (penv, k, json_object_new_string (env.v[i]));
              replaced = true;
            }
        }
      if (!replaced)
        json_object_array_add (penv, json_object_new_string (env.v[i]));
    }
  if (user)
    {
      uint32_t uid = 0, gid = 0;
      if (resolve_user ((pid_t)p->pid, user, &uid, &gid, &err) < 0)
        {
          cli_fail (cli, err, "exec in %s", argv[optind]);
          return ret;
        }
      json_object *u = json_object_new_object ();
      json_object_object_add (u, "uid", json_object_new_int64 (uid));
      json_object_object_add (u, "gid", json_object_new_int64 (gid));
      json_object_object_add (proc, "user", u);
    }
  char exec_id[32];
  if (exec_id_opt)
    snprintf (exec_id, sizeof exec_id, "%s", exec_id_opt);
  else
    {
      strcpy (exec_id, "exec-");
      if (random_hex (exec_id + 5, 8) < 0)
        {
          cli_fail (cli, NULL, "reading /dev/urandom: %s", strerror (errno));
          return ret;
        }
    }
  char prefix[48];
  snprintf (prefix, sizeof prefix, "%s-", exec_id);
  if (!detach && ctr_fifos_create (cli->ns, ref.c->id, prefix, interactive, tty, &f, &err) < 0)
    {
      cli_fail (cli, err, "exec in %s", argv[optind]);
      return ret;
    }
  const char *pj = json_object_to_json_string_ext (proc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  Google__Protobuf__Any any;
  Containerd__Services__Tasks__V1__ExecProcessRequest er = CONTAINERD__SERVICES__TASKS__V1__EXEC_PROCESS_REQUEST__INIT;
  er.container_id = ref.c->id;
  er.exec_id = exec_id;
  er.stdin = f.in;
  er.stdout = f.out;
  er.stderr = f.err;
  er.terminal = tty;
  er.spec = any_json (&any, "types.containerd.io/opencontainers/runtime-spec/1/Process", pj);
  ProtobufCMessage *eresp = NULL;
  r = cli_unary (cli, TASKS_SERVICE "Exec", &er.base, &google__protobuf__empty__descriptor, &eresp, &err);
  if (r < 0)
    {
      cli_call_failed (cli, err, "exec in %s", argv[optind]);
      return err ? exit_code_for_error (err) : EXIT_BERTH_ERROR;
    }
  protobuf_c_message_free_unpacked (eresp, NULL);
  char nb[16];
  struct start_data sd = { .id = ref.c->id, .name = ctr_name (ref.c, nb), .exec_id = exec_id };
  if (detach)
    return start_cb (cli, &sd);
  struct attach_opts ao = { .id = ref.c->id,
                            .exec_id = exec_id,
                            .in = f.in,
                            .out = f.out,
                            .err = f.err,
                            .tty = tty,
                            .sig_proxy = !tty,
                            .start = start_cb,
                            .data = &sd };
  uint32_t status = 0;
  r = ctr_attach (cli, &ao, &status);
  ret = r != 0 ? (r == CLI_EXIT_FAIL ? EXIT_BERTH_ERROR : r) : (int)(status & 0xff);
  if (r == 0)
    {
      Containerd__Services__Tasks__V1__DeleteProcessRequest dp
          = CONTAINERD__SERVICES__TASKS__V1__DELETE_PROCESS_REQUEST__INIT;
      dp.container_id = ref.c->id;
      dp.exec_id = exec_id;
      ProtobufCMessage *e = NULL;
      if (cli_unary (cli, TASKS_SERVICE "DeleteProcess", &dp.base,
                     &containerd__services__tasks__v1__delete_response__descriptor, &e, NULL)
          == 0)
        protobuf_c_message_free_unpacked (e, NULL);
    }
  return ret;
}

/* ---- the commands ---- */

static const struct cli_command run_command = {
  .name = "run",
  .args = "[OPTIONS] IMAGE [COMMAND [ARG...]]",
  .summary = "Create and run a container (exit status: the container's; 125 berth, 126/127 command)",
  .help = cli_run_help,
  .shortopts = "ditu:e:v:w:",
  .options = cli_run_options,
  .run = run_run,
};

static const struct cli_command create_command = {
  .name = "create",
  .args = "[OPTIONS] IMAGE [COMMAND [ARG...]]",
  .summary = "Create a container (its root filesystem and record) without starting it",
  .help = cli_run_help,
  .shortopts = "ditu:e:v:w:",
  .options = cli_run_options,
  .run = create_run,
};

static const struct cli_command start_command = {
  .name = "start",
  .args = "[OPTIONS] CONTAINER...",
  .summary = "Start containers",
  .help = "  -a, --attach          copy the container's output and wait for it\n"
          "  -i, --interactive     with -a: copy our stdin too\n",
  .shortopts = "ai",
  .options = start_options,
  .run = start_run,
};

static const struct cli_command restart_command = {
  .name = "restart",
  .args = "[OPTIONS] CONTAINER...",
  .summary = "Stop (SIGTERM, SIGKILL after the timeout) and start containers",
  .help = "  -t, --time N          seconds to wait before SIGKILL (default 10)\n",
  .shortopts = "t:",
  .options = restart_options,
  .run = restart_run,
};

static const struct cli_command attach_command = {
  .name = "attach",
  .args = "CONTAINER",
  .summary = "Attach to a running container's stdio (those started in the foreground; -d ones: logs -f)",
  .run = attach_run,
};

static const struct cli_command exec_command = {
  .name = "exec",
  .args = "[OPTIONS] CONTAINER COMMAND [ARG...]",
  .summary = "Run a command in a running container",
  .help = "  -i, --interactive     keep stdin open\n"
          "  -t, --tty             allocate a terminal\n"
          "  -d, --detach          do not wait for the command\n"
          "  -e, --env KEY[=VAL]   set an environment variable\n"
          "  -u, --user USER[:GROUP]  user (name or uid)\n"
          "  -w, --workdir DIR     working directory\n"
          "      --exec-id ID      the process id (default: generated)\n",
  .shortopts = "itde:u:w:",
  .options = exec_options,
  .run = exec_run,
};

const struct cli_group cli_group_run = { .name = "run", .summary = "Create and run a container", .self = &run_command };
const struct cli_group cli_group_create
    = { .name = "create", .summary = "Create a container", .self = &create_command };
const struct cli_group cli_group_start = { .name = "start", .summary = "Start containers", .self = &start_command };
const struct cli_group cli_group_restart
    = { .name = "restart", .summary = "Restart containers", .self = &restart_command };
const struct cli_group cli_group_attach
    = { .name = "attach", .summary = "Attach to a running container", .self = &attach_command };
const struct cli_group cli_group_exec
    = { .name = "exec", .summary = "Run a command in a running container", .self = &exec_command };

/* For the ctr-style groups (cli/cmd-ps.c). */
int berth_cmd_exec (struct cli *cli, int argc, char **argv);
int berth_cmd_start (struct cli *cli, int argc, char **argv);
int berth_cmd_create (struct cli *cli, int argc, char **argv);
int
berth_cmd_exec (struct cli *cli, int argc, char **argv)
{
  return exec_run (cli, argc, argv);
}
int
berth_cmd_start (struct cli *cli, int argc, char **argv)
{
  return start_run (cli, argc, argv);
}
int
berth_cmd_create (struct cli *cli, int argc, char **argv)
{
  return create_run (cli, argc, argv);
}
