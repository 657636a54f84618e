/* berth pull (= berth images pull, berth content fetch): the daemon-side
 * pull of berth.services.v1.Pull, with per-layer progress: live bars on a
 * terminal, one plain line per phase change otherwise, nothing with
 * --quiet.  Credentials from --user travel in the request only. */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "berth/services/v1/pull.pb-c.h"
#include "cleanup.h"
#include "cli.h"

typedef Berth__Services__V1__PullProgress pb_progress;
typedef Berth__Services__V1__LayerProgress pb_layer;

enum
{
  OPT_PLATFORM = 0x100,
  OPT_ALL_PLATFORMS,
  OPT_PLAIN_HTTP,
  OPT_SKIP_UNPACK,
  OPT_SNAPSHOTTER,
  OPT_MAX_DOWNLOADS,
};

const struct option cli_pull_options[] = {
  { "platform", required_argument, NULL, OPT_PLATFORM },
  { "all-platforms", no_argument, NULL, OPT_ALL_PLATFORMS },
  { "plain-http", no_argument, NULL, OPT_PLAIN_HTTP },
  { "user", required_argument, NULL, 'u' },
  { "quiet", no_argument, NULL, 'q' },
  { "skip-unpack", no_argument, NULL, OPT_SKIP_UNPACK },
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { "max-concurrent-downloads", required_argument, NULL, OPT_MAX_DOWNLOADS },
  { NULL, 0, NULL, 0 },
};

const char cli_pull_help[] =
  "  --platform OS/ARCH[/VARIANT]  pull this platform (repeatable; default: the host's)\n"         \
  "  --all-platforms               pull every platform of an index\n"                             \
  "  --plain-http                  talk HTTP, not HTTPS, to the registry\n"                       \
  "  -u, --user USER[:PASSWORD]    credentials for this pull (prompted when PASSWORD is missing)\n" \
  "  -q, --quiet                   print only the image's digest\n"                               \
  "  --max-concurrent-downloads N  layers fetched at once (default: the daemon's config)\n"
  "  --snapshotter NAME            unpack with this snapshotter (overlayfs, native; default overlayfs,\n"
  "                                native where overlayfs cannot run)\n"
  "  --skip-unpack                 fetch the content and record the image, unpack nothing\n";

static void
human_size (double b, char *buf, size_t len)
{
  const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  size_t u = 0;
  while (b >= 1024 && u + 1 < ARRAY_SIZE (units))
    {
      b /= 1024;
      u++;
    }
  snprintf (buf, len, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
}

struct pull_view
{
  bool tty;
  bool quiet;
  int lines;          /* lines drawn by the last frame (tty) */
  char **last_phase;  /* per layer, for plain output */
  size_t nlast;
  pb_progress *last;  /* the final message, kept for the summary */
};

static int
term_width (void)
{
  struct winsize ws;
  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
    return ws.ws_col;
  return 80;
}

static void
short_digest (const char *d, char *buf, size_t len)
{
  const char *hex = strchr (d, ':');
  snprintf (buf, len, "%.12s", hex ? hex + 1 : d);
}

static void
draw_tty (struct pull_view *v, const pb_progress *p)
{
  int width = term_width ();
  if (v->lines > 0)
    printf ("\033[%dA", v->lines);
  int lines = 0;
  printf ("\033[2K%s %s\n", p->status, p->image);
  lines++;
  for (size_t i = 0; i < p->n_layers; i++)
    {
      const pb_layer *l = p->layers[i];
      char d[16], done[24], total[24], rate[24] = "";
      short_digest (l->digest, d, sizeof d);
      human_size ((double) l->offset, done, sizeof done);
      human_size ((double) l->total, total, sizeof total);
      if (l->rate > 0 && strcmp (l->phase, "downloading") == 0)
        {
          human_size (l->rate, rate, sizeof rate);
          strcat (rate, "/s");
        }
      int barw = width - 70;
      if (barw > 40)
        barw = 40;
      char bar[64] = "";
      if (barw >= 10)
        {
          int fill = l->total > 0 ? (int) ((double) l->offset / (double) l->total * barw) : 0;
          if (fill > barw)
            fill = barw;
          for (int k = 0; k < barw; k++)
            bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
          bar[barw] = '\0';
        }
      if (strcmp (l->phase, "error") == 0)
        printf ("\033[2K%s  %-11s %s\n", d, l->phase, l->error);
      else if (barw >= 10)
        printf ("\033[2K%s  %-11s |%s| %9s / %-9s %s\n", d, l->phase, bar, done, total, rate);
      else
        printf ("\033[2K%s  %-11s %9s / %-9s %s\n", d, l->phase, done, total, rate);
      lines++;
    }
  printf ("\033[2Kelapsed: %.1f s\n", p->elapsed);
  lines++;
  v->lines = lines;
  fflush (stdout);
}

static void
draw_plain (struct pull_view *v, const pb_progress *p)
{
  if (v->nlast < p->n_layers)
    {
      char **nl = realloc (v->last_phase, p->n_layers * sizeof (char *));
      if (nl == NULL)
        return;
      for (size_t i = v->nlast; i < p->n_layers; i++)
        nl[i] = NULL;
      v->last_phase = nl;
      v->nlast = p->n_layers;
    }
  for (size_t i = 0; i < p->n_layers; i++)
    {
      const pb_layer *l = p->layers[i];
      if (v->last_phase[i] && strcmp (v->last_phase[i], l->phase) == 0)
        continue;
      free (v->last_phase[i]);
      v->last_phase[i] = strdup (l->phase);
      char total[24];
      human_size ((double) l->total, total, sizeof total);
      if (strcmp (l->phase, "error") == 0)
        printf ("%s: %s: %s\n", l->digest, l->phase, l->error);
      else if (l->resumed > 0 && strcmp (l->phase, "downloading") == 0)
        {
          char resumed[24];
          human_size ((double) l->resumed, resumed, sizeof resumed);
          printf ("%s: %s (%s, resuming after %s)\n", l->digest, l->phase, total, resumed);
        }
      else
        printf ("%s: %s (%s)\n", l->digest, l->phase, total);
    }
  fflush (stdout);
}

static int
on_progress (const ProtobufCMessage *m, void *data, berth_error **err)
{
  struct pull_view *v = data;
  const pb_progress *p = (const pb_progress *) m;
  if (!v->quiet)
    {
      if (v->tty)
        draw_tty (v, p);
      else
        draw_plain (v, p);
    }
  if (p->done)
    {
      if (v->last)
        protobuf_c_message_free_unpacked (&v->last->base, NULL);
      /* The message is the library's; keep a copy of what the summary needs. */
      size_t len = protobuf_c_message_get_packed_size (m);
      _cleanup_free_ uint8_t *buf = malloc (len ? len : 1);
      if (buf)
        {
          protobuf_c_message_pack (m, buf);
          v->last = berth__services__v1__pull_progress__unpack (NULL, len, buf);
        }
    }
  return 0;
}

/* "user:password", or "user" and a password read from the terminal. */
static int
split_user (const char *arg, char **ret_user, char **ret_secret)
{
  const char *colon = strchr (arg, ':');
  if (colon)
    {
      *ret_user = strndup (arg, (size_t) (colon - arg));
      *ret_secret = strdup (colon + 1);
      return *ret_user && *ret_secret ? 0 : -1;
    }
  *ret_user = strdup (arg);
  if (!isatty (STDIN_FILENO))
    return -1;
  fprintf (stderr, "Password: ");
  struct termios old, quiet;
  tcgetattr (STDIN_FILENO, &old);
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t) ECHO;
  tcsetattr (STDIN_FILENO, TCSANOW, &quiet);
  char buf[1024];
  char *got = fgets (buf, sizeof buf, stdin);
  tcsetattr (STDIN_FILENO, TCSANOW, &old);
  fputc ('\n', stderr);
  if (got == NULL)
    return -1;
  buf[strcspn (buf, "\n")] = '\0';
  *ret_secret = strdup (buf);
  explicit_bzero (buf, sizeof buf);
  return *ret_secret ? 0 : -1;
}

static int
pull_common (struct cli *cli, int argc, char **argv, bool content_only)
{
  Berth__Services__V1__PullRequest req = BERTH__SERVICES__V1__PULL_REQUEST__INIT;
  _cleanup_free_ char **platforms = calloc ((size_t) argc + 1, sizeof (char *));
  _cleanup_free_ char *user = NULL, *secret = NULL;
  bool quiet = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case OPT_PLATFORM: platforms[req.n_platforms++] = optarg; break;
      case OPT_ALL_PLATFORMS: req.all_platforms = true; break;
      case OPT_PLAIN_HTTP: req.plain_http = true; break;
      case OPT_SKIP_UNPACK: req.skip_unpack = true; break;
      case OPT_SNAPSHOTTER: req.snapshotter = optarg; break;
      case OPT_MAX_DOWNLOADS:
        req.max_concurrent_downloads = atoi (optarg);
        if (req.max_concurrent_downloads < 1)
          return cli_usage_error (cli, "--max-concurrent-downloads must be a positive number");
        break;
      case 'q': quiet = true; break;
      case 'u':
        free (user);
        free (secret);
        user = secret = NULL;
        if (split_user (optarg, &user, &secret) < 0)
          return cli_usage_error (cli, "--user %s: no password given and no terminal to ask for it", optarg);
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (cli, "expected one image reference");
  req.reference = argv[optind];
  req.platforms = platforms;
  req.content_only = content_only;
  if (content_only)
    req.skip_unpack = true;
  if (user)
    {
      req.username = user;
      req.secret = secret;
    }

  grpc_client *client = cli_client (cli);
  if (client == NULL)
    return CLI_EXIT_FAIL;
  struct pull_view v = { .tty = isatty (STDOUT_FILENO), .quiet = quiet };
  struct grpc_client_md md[] = { { "containerd-namespace", cli->ns } };
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_client_server_stream (client, "/berth.services.v1.Pull/Pull", md, ARRAY_SIZE (md), &req.base,
                                     &berth__services__v1__pull_progress__descriptor, on_progress, &v, &err);
  if (secret)
    explicit_bzero (secret, strlen (secret));
  for (size_t i = 0; i < v.nlast; i++)
    free (v.last_phase[i]);
  free (v.last_phase);
  if (r < 0)
    {
      if (v.last)
        protobuf_c_message_free_unpacked (&v.last->base, NULL);
      return cli_fail (cli, err, "pulling %s", req.reference);
    }
  if (v.last)
    {
      if (quiet)
        printf ("%s\n", v.last->target_digest);
      else
        {
          /* Layers a remote snapshotter serves ("lazy") arrive later, through it. */
          int64_t total = 0, lazy = 0;
          for (size_t i = 0; i < v.last->n_layers; i++)
            if (v.last->layers[i]->phase && strcmp (v.last->layers[i]->phase, "lazy") == 0)
              lazy += v.last->layers[i]->total;
            else
              total += v.last->layers[i]->total;
          char size[24], rate[24], lz[24];
          human_size ((double) total, size, sizeof size);
          human_size (v.last->elapsed > 0 ? (double) total / v.last->elapsed : 0, rate, sizeof rate);
          human_size ((double) lazy, lz, sizeof lz);
          printf ("%s: %s\n%s in %.1f s (%s/s)", v.last->image, v.last->target_digest, size, v.last->elapsed, rate);
          if (lazy > 0)
            printf ("; %s served lazily by the snapshotter", lz);
          printf ("\n");
        }
      protobuf_c_message_free_unpacked (&v.last->base, NULL);
    }
  return CLI_EXIT_OK;
}

int
berth_cmd_pull (struct cli *cli, int argc, char **argv)
{
  return pull_common (cli, argc, argv, false);
}

int
berth_cmd_pull_content (struct cli *cli, int argc, char **argv)
{
  return pull_common (cli, argc, argv, true);
}

static const struct cli_command pull_command = {
  .name = "pull",
  .args = "[OPTIONS] REF",
  .summary = "pull an image from a registry (daemon-side, with per-layer progress)",
  .help = cli_pull_help,
  .shortopts = CLI_PULL_SHORTOPTS,
  .options = cli_pull_options,
  .run = berth_cmd_pull,
};

int
cli_pull_image (struct cli *cli, const char *ref, const char *snapshotter, bool plain_http)
{
  char *argv[8];
  int argc = 0;
  argv[argc++] = (char *) "pull";
  if (plain_http)
    argv[argc++] = (char *) "--plain-http";
  if (snapshotter && *snapshotter)
    {
      argv[argc++] = (char *) "--snapshotter";
      argv[argc++] = (char *) snapshotter;
    }
  argv[argc++] = (char *) ref;
  argv[argc] = NULL;
  const struct cli_command *saved = cli->command;
  int saved_optind = optind;
  cli->command = &pull_command;
  optind = 0;
  /* Progress goes to stderr: stdout is the container's. */
  fflush (stdout);
  int out = dup (STDOUT_FILENO);
  if (out >= 0)
    dup2 (STDERR_FILENO, STDOUT_FILENO);
  int r = pull_common (cli, argc, argv, false);
  fflush (stdout);
  if (out >= 0)
    {
      dup2 (out, STDOUT_FILENO);
      close (out);
    }
  cli->command = saved;
  optind = saved_optind;
  return r;
}

const struct cli_group cli_group_pull = {
  .name = "pull",
  .summary = "pull an image (same as `images pull`)",
  .self = &pull_command,
};
