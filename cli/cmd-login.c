/* berth login / berth logout: credentials in docker's config.json
 * (cli/dockercfg.h), shared with docker, nerdctl and skopeo, and read by
 * berthd's registry client when it pulls.
 *
 * login checks the credentials against the registry before saving them
 * (GET /v2/, then whatever the WWW-Authenticate challenge asks for: Basic
 * on /v2/ itself, or Bearer from the token realm with the credentials) and
 * prints "Login Succeeded" only once they are checked and written.  With
 * --no-verify it saves without asking the registry and says so.  Neither
 * command talks to berthd.
 *
 * Like docker, a loopback registry (localhost, 127.0.0.0/8, ::1) that does
 * not answer HTTPS is tried over plain HTTP; --plain-http forces it for
 * any host.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "cleanup.h"
#include "cli.h"
#include "dockercfg.h"
#include "helpers.h"
#include "lazy-curl.h"

#define HUB_REGISTRY "registry-1.docker.io"
#define VERIFY_CONNECT_TIMEOUT_S 10L
#define VERIFY_TIMEOUT_S 30L

enum
{
  OPT_PASSWORD_STDIN = 0x100,
  OPT_PLAIN_HTTP,
  OPT_NO_VERIFY,
};

static const struct option login_options[] = {
  { "username", required_argument, NULL, 'u' },
  { "password", required_argument, NULL, 'p' },
  { "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
  { "plain-http", no_argument, NULL, OPT_PLAIN_HTTP },
  { "no-verify", no_argument, NULL, OPT_NO_VERIFY },
  { NULL, 0, NULL, 0 },
};

static const struct option no_options[] = {
  { NULL, 0, NULL, 0 },
};

static void
free_secretp (char **s)
{
  if (*s)
    {
      explicit_bzero (*s, strlen (*s));
      free (*s);
      *s = NULL;
    }
}

/* ---- checking credentials against the registry ---- */

struct response
{
  long status;
  char *challenge; /* WWW-Authenticate, first one */
  char *body;
  size_t body_len;
};

static void
response_reset (struct response *r)
{
  free (r->challenge);
  if (r->body)
    explicit_bzero (r->body, r->body_len); /* may hold a token */
  free (r->body);
  memset (r, 0, sizeof *r);
}

static size_t
on_header (char *buf, size_t size, size_t n, void *data)
{
  struct response *r = data;
  size_t len = size * n;
  static const char name[] = "www-authenticate:";
  if (r->challenge == NULL && len > sizeof name - 1 && strncasecmp (buf, name, sizeof name - 1) == 0)
    {
      const char *v = buf + sizeof name - 1;
      size_t vl = len - (sizeof name - 1);
      while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
      while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
      r->challenge = strndup (v, vl);
    }
  /* A new status line (redirect, 100 Continue): forget the old headers. */
  if (len > 5 && strncmp (buf, "HTTP/", 5) == 0)
    {
      free (r->challenge);
      r->challenge = NULL;
    }
  return len;
}

static size_t
on_body (char *buf, size_t size, size_t n, void *data)
{
  struct response *r = data;
  size_t len = size * n;
  if (r->body_len + len > (1u << 20))
    return 0; /* a token answer is small; abort anything else */
  char *nb = realloc (r->body, r->body_len + len + 1);
  if (nb == NULL)
    return 0;
  memcpy (nb + r->body_len, buf, len);
  r->body = nb;
  r->body_len += len;
  r->body[r->body_len] = 0;
  return len;
}

/* One GET; credentials (Basic) when user is set.  Returns 0 with the
 * response, or BERTH_E_UNAVAILABLE with curl's error (*ret_curl_code
 * set for the HTTPS→HTTP fallback). */
static int
http_get (const char *url, const char *user, const char *secret, struct response *resp, CURLcode *ret_curl_code,
          berth_error **err)
{
  CURL *h = curl_easy_init ();
  if (h == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "starting an HTTP request");
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_USERAGENT, "berth/" PACKAGE_VERSION);
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (h, CURLOPT_MAXREDIRS, 5L);
  /* libcurl sends credentials only to the host they were given for, also
   * after a redirect (CURLOPT_UNRESTRICTED_AUTH stays off). */
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the _STR forms, the others deprecated */
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt (h, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, VERIFY_CONNECT_TIMEOUT_S);
  curl_easy_setopt (h, CURLOPT_TIMEOUT, VERIFY_TIMEOUT_S);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, resp);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, resp);
  if (user)
    {
      curl_easy_setopt (h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
      curl_easy_setopt (h, CURLOPT_USERNAME, user);
      curl_easy_setopt (h, CURLOPT_PASSWORD, secret);
    }
  CURLcode rc = curl_easy_perform (h);
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &resp->status);
  curl_easy_cleanup (h);
  *ret_curl_code = rc;
  if (rc != CURLE_OK)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "GET %s: %s", url, *errbuf ? errbuf : curl_easy_strerror (rc));
  return 0;
}

/* A parameter of a challenge: `Bearer realm="https://auth",service="reg"`. */
static char *
challenge_param (const char *ch, const char *name)
{
  const char *p = strchr (ch, ' ');
  size_t nl = strlen (name);
  while (p && *p)
    {
      while (*p == ' ' || *p == ',')
        p++;
      const char *eq = strchr (p, '=');
      if (eq == NULL)
        return NULL;
      bool match = (size_t) (eq - p) == nl && strncasecmp (p, name, nl) == 0;
      const char *v = eq + 1;
      const char *end;
      if (*v == '"')
        {
          v++;
          end = strchr (v, '"');
          if (end == NULL)
            return NULL;
          p = end + 1;
        }
      else
        {
          end = v + strcspn (v, ",");
          p = end;
        }
      if (match)
        return strndup (v, (size_t) (end - v));
    }
  return NULL;
}

static bool
is_loopback (const char *host)
{
  if (strncmp (host, "localhost", 9) == 0 && (host[9] == 0 || host[9] == ':'))
    return true;
  return strncmp (host, "127.", 4) == 0 || strncmp (host, "[::1]", 5) == 0;
}

static char *
url_escape (const char *s)
{
  char *e = curl_easy_escape (NULL, s, 0);
  char *r = e ? strdup (e) : NULL;
  curl_free (e);
  return r;
}

/* Are user/secret good for the registry at host?  0 when the registry
 * accepted them (or needs none), BERTH_E_PERMISSION when it refused them,
 * another error when it could not be asked. */
static int
verify_credentials (const char *key, bool plain_http, const char *user, const char *secret, berth_error **err)
{
  const char *host = strcmp (key, DOCKERCFG_HUB_KEY) == 0 ? HUB_REGISTRY : key;
  /* Loads libcurl (the CLI does not link it: see lazy-curl.h). */
  if (lazy_curl_load (err) < 0)
    return berth_error_wrap (err, "login");
  _cleanup_free_ char *base = NULL;
  if (asprintf (&base, "%s://%s/v2/", plain_http ? "http" : "https", host) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "login");
  struct response resp = { 0 };
  CURLcode cc = CURLE_OK;
  _cleanup_error_ berth_error *first = NULL;
  int r = http_get (base, NULL, NULL, &resp, &cc, &first);
  if (r < 0 && !plain_http && is_loopback (host)
      && (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_COULDNT_CONNECT || cc == CURLE_RECV_ERROR
          || cc == CURLE_PEER_FAILED_VERIFICATION))
    {
      free (base);
      base = NULL;
      if (asprintf (&base, "http://%s/v2/", host) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "login");
      response_reset (&resp);
      r = http_get (base, NULL, NULL, &resp, &cc, err);
    }
  else if (r < 0)
    r = berth_error_take (err, TAKE_PTR (first));
  if (r < 0)
    {
      response_reset (&resp);
      return r;
    }

  if (resp.status == 200)
    {
      /* No authentication at all: anything "works". */
      response_reset (&resp);
      return 0;
    }
  if (resp.status != 401 || resp.challenge == NULL)
    {
      long st = resp.status;
      response_reset (&resp);
      return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "GET %s: unexpected HTTP status %ld", base, st);
    }

  _cleanup_free_ char *challenge = TAKE_PTR (resp.challenge);
  response_reset (&resp);
  if (strncasecmp (challenge, "Basic", 5) == 0)
    {
      r = http_get (base, user, secret, &resp, &cc, err);
      long st = resp.status;
      response_reset (&resp);
      if (r < 0)
        return r;
      if (st == 200)
        return 0;
      if (st == 401 || st == 403)
        return berth_error_set (err, BERTH_E_PERMISSION, 0, "unauthorized: incorrect username or password");
      return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "GET %s with credentials: HTTP status %ld", base, st);
    }
  if (strncasecmp (challenge, "Bearer", 6) == 0)
    {
      _cleanup_free_ char *realm = challenge_param (challenge, "realm");
      _cleanup_free_ char *service = challenge_param (challenge, "service");
      if (realm == NULL)
        return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "the registry's challenge has no realm: %s", challenge);
      _cleanup_free_ char *esc_service = service ? url_escape (service) : NULL;
      _cleanup_free_ char *esc_user = url_escape (user);
      _cleanup_free_ char *url = NULL;
      if (esc_user == NULL || (service && esc_service == NULL)
          || asprintf (&url, "%s%saccount=%s%s%s", realm, strchr (realm, '?') ? "&" : "?", esc_user,
                       service ? "&service=" : "", service ? esc_service : "")
                 < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "login");
      r = http_get (url, user, secret, &resp, &cc, err);
      long st = resp.status;
      bool has_token = false;
      if (r == 0 && st == 200 && resp.body)
        {
          json_object *o = json_tokener_parse (resp.body);
          json_object *t;
          has_token = o && ((json_object_object_get_ex (o, "token", &t) && json_object_get_string_len (t) > 0)
                            || (json_object_object_get_ex (o, "access_token", &t)
                                && json_object_get_string_len (t) > 0));
          json_object_put (o);
        }
      response_reset (&resp);
      if (r < 0)
        return r;
      if (st == 200 && has_token)
        return 0;
      if (st == 200)
        return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "the token server at %s answered without a token", realm);
      if (st == 401 || st == 403)
        return berth_error_set (err, BERTH_E_PERMISSION, 0, "unauthorized: incorrect username or password");
      return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "token server %s: HTTP status %ld", realm, st);
    }
  return berth_error_set (err, BERTH_E_NOTSUP, 0, "the registry asks for an authentication scheme berth does not know: %s",
                          challenge);
}

/* ---- login ---- */

/* All of stdin, without the trailing newline(s) (docker's
 * --password-stdin). */
static int
read_stdin_secret (char **ret)
{
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;)
    {
      if (len + 256 > cap)
        {
          cap = cap ? cap * 2 : 256;
          if (cap > 65536)
            {
              free_secretp (&buf);
              return -E2BIG;
            }
          char *nb = realloc (buf, cap);
          if (nb == NULL)
            {
              free_secretp (&buf);
              return -ENOMEM;
            }
          buf = nb;
        }
      ssize_t n = read (STDIN_FILENO, buf + len, cap - len - 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          free_secretp (&buf);
          return -e;
        }
      if (n == 0)
        break;
      len += (size_t) n;
    }
  if (buf == NULL && (buf = calloc (1, 1)) == NULL)
    return -ENOMEM;
  buf[len] = 0;
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    buf[--len] = 0;
  *ret = buf;
  return 0;
}

static int
login_run (struct cli *cli, int argc, char **argv)
{
  const char *user_arg = NULL;
  _cleanup_(free_secretp) char *secret = NULL;
  bool password_stdin = false, plain_http = false, verify = true;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'u': user_arg = optarg; break;
      case 'p':
        free_secretp (&secret);
        if ((secret = strdup (optarg)) == NULL)
          return cli_fail (cli, NULL, "out of memory");
        break;
      case OPT_PASSWORD_STDIN: password_stdin = true; break;
      case OPT_PLAIN_HTTP: plain_http = true; break;
      case OPT_NO_VERIFY: verify = false; break;
      default: return CLI_EXIT_USAGE;
      }
  if (argc - optind > 1)
    return cli_usage_error (cli, "unexpected argument `%s` (one server at most)", argv[optind + 1]);
  if (password_stdin && secret)
    return cli_usage_error (cli, "--password and --password-stdin are mutually exclusive");
  if (password_stdin && user_arg == NULL)
    return cli_usage_error (cli, "--password-stdin needs --username");

  _cleanup_free_ char *key = dockercfg_server_key (optind < argc ? argv[optind] : NULL);
  if (key == NULL || *key == 0)
    return key ? cli_usage_error (cli, "empty server name") : cli_fail (cli, NULL, "out of memory");
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_(dockercfg_freep) dockercfg *cfg = NULL;
  if (dockercfg_load (NULL, &cfg, &err) < 0)
    return cli_fail (cli, err, "login");

  if (secret)
    fputs ("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n", stderr);
  if (password_stdin)
    {
      int r = read_stdin_secret (&secret);
      if (r < 0)
        return cli_fail (cli, NULL, "reading the password from stdin: %s", strerror (-r));
    }

  _cleanup_free_ char *user = user_arg ? strdup (user_arg) : NULL;
  if (user_arg && user == NULL)
    return cli_fail (cli, NULL, "out of memory");
  if (user == NULL)
    {
      if (!cli_can_prompt ())
        return cli_usage_error (cli, "a username is needed: use --username (no terminal to ask on)");
      /* Offer the name saved last time, as docker does. */
      _cleanup_free_ char *old_user = NULL;
      _cleanup_(free_secretp) char *old_secret = NULL;
      _cleanup_error_ berth_error *ignored = NULL;
      dockercfg_get (cfg, key, &old_user, &old_secret, &ignored);
      _cleanup_free_ char *prompt = NULL;
      if (asprintf (&prompt, old_user ? "Username (%s): " : "Username: ", old_user) < 0)
        return cli_fail (cli, NULL, "out of memory");
      int r = cli_prompt (prompt, true, &user);
      if (r < 0)
        return cli_fail (cli, NULL, "reading the username: %s", strerror (-r));
      if (*user == 0 && old_user)
        {
          free (user);
          user = TAKE_PTR (old_user);
        }
    }
  if (*user == 0)
    return cli_usage_error (cli, "the username is empty");
  if (secret == NULL)
    {
      if (!cli_can_prompt ())
        return cli_usage_error (cli, "a password is needed: use --password-stdin (no terminal to ask on)");
      int r = cli_prompt ("Password: ", false, &secret);
      if (r < 0)
        return cli_fail (cli, NULL, "reading the password: %s", strerror (-r));
    }
  if (*secret == 0)
    return cli_usage_error (cli, "the password is empty");

  if (verify)
    {
      int r = verify_credentials (key, plain_http, user, secret, &err);
      if (r < 0)
        return cli_fail (cli, err, "login to %s", key);
    }

  const char *helper = dockercfg_helper (cfg, key);
  if (dockercfg_store (cfg, key, user, secret, &err) < 0)
    return cli_fail (cli, err, "saving the credentials for %s", key);
  if (helper == NULL)
    fprintf (stderr, "WARNING! Your password is stored unencrypted in %s.\n", dockercfg_path (cfg));
  puts (verify ? "Login Succeeded" : "Credentials saved (not verified)");
  return CLI_EXIT_OK;
}

/* ---- logout ---- */

static int
logout_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (argc - optind > 1)
    return cli_usage_error (cli, "unexpected argument `%s` (one server at most)", argv[optind + 1]);
  _cleanup_free_ char *key = dockercfg_server_key (optind < argc ? argv[optind] : NULL);
  if (key == NULL)
    return cli_fail (cli, NULL, "out of memory");
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_(dockercfg_freep) dockercfg *cfg = NULL;
  if (dockercfg_load (NULL, &cfg, &err) < 0)
    return cli_fail (cli, err, "logout");
  bool found = false;
  if (dockercfg_erase (cfg, key, &found, &err) < 0)
    return cli_fail (cli, err, "removing the credentials for %s", key);
  if (found)
    printf ("Removing login credentials for %s\n", key);
  else
    printf ("Not logged in to %s\n", key);
  return CLI_EXIT_OK;
}

static const struct cli_command login_command = {
  .name = "login",
  .args = "[OPTIONS] [SERVER]",
  .summary = "Save credentials for a registry (docker's config.json; default server: Docker Hub)",
  .help = "  -u, --username USER   the user name (asked on a terminal when missing)\n"
          "  -p, --password PASS   the password (insecure: it shows in the process list)\n"
          "      --password-stdin  read the password from standard input\n"
          "      --plain-http      check the credentials over HTTP, not HTTPS\n"
          "      --no-verify       save without checking them with the registry\n"
          "  The file is $DOCKER_CONFIG/config.json, or ~/.docker/config.json; a\n"
          "  credsStore or credHelpers entry there sends them to docker-credential-NAME.\n",
  .shortopts = "u:p:",
  .options = login_options,
  .run = login_run,
};

static const struct cli_command logout_command = {
  .name = "logout",
  .args = "[SERVER]",
  .summary = "Remove the credentials saved for a registry",
  .options = no_options,
  .run = logout_run,
};

const struct cli_group cli_group_login = {
  .name = "login",
  .summary = "Log in to a registry",
  .self = &login_command,
};

const struct cli_group cli_group_logout = {
  .name = "logout",
  .summary = "Log out from a registry",
  .self = &logout_command,
};
