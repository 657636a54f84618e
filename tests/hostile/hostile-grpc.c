/* hostile-grpc: a misbehaving gRPC client for berthd's API socket.
 *
 *   hostile-grpc SOCKET ATTACK [ARG]
 *
 * Speaks HTTP/2 by hand (frames written byte by byte where the attack needs
 * it) and uses nghttp2 only for HPACK, so that it can send what a real client
 * library refuses to: garbage prefaces, half header blocks, 4 GiB length
 * prefixes, streams past the advertised limit.  Each attack prints what the
 * daemon answered, one "answer:" line per case, and exits 1 when an answer
 * is not the expected one (the daemon crashed, hung, or gave the wrong
 * status).  Attacks: see the table at the end.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <nghttp2/nghttp2.h>

enum
{
  F_DATA = 0,
  F_HEADERS = 1,
  F_RST = 3,
  F_SETTINGS = 4,
  F_PING = 6,
  F_GOAWAY = 7,
  F_WINDOW = 8,
  F_CONT = 9,
};
#define FL_END_STREAM 1
#define FL_END_HEADERS 4
#define FL_ACK 1

#define MAX_SID 8192 /* streams tracked per connection */

static const char *sock_path;
static int failures;

struct sres
{
  bool seen, done;
  int http, grpc; /* -1: none */
  uint32_t rst; /* RST_STREAM code + 1, 0: none */
  char msg[160];
  int64_t win; /* our send window on the stream */
};

struct hc
{
  int fd;
  nghttp2_hd_deflater *def;
  nghttp2_hd_inflater *inf;
  uint8_t *rbuf;
  size_t rlen, rcap;
  int32_t next_sid;
  int64_t conn_win, peer_initial;
  bool closed, goaway;
  uint32_t goaway_code;
  char goaway_msg[160];
  struct sres *st; /* by (sid - 1) / 2 */
  int32_t hdr_sid; /* HEADERS being inflated */
  bool refused_any;
  bool in_pump; /* handling frames: writes must not read (rbuf is in use) */
  bool quiet; /* answer no SETTINGS or PING (raw byte trickles) */
  bool writing; /* inside hc_write: replies wait in pend (no frame splicing) */
  uint8_t *pend;
  size_t pend_len;
};

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
check (bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  printf ("%s ", ok ? "answer:" : "FAIL:");
  vprintf (fmt, ap);
  printf ("\n");
  fflush (stdout);
  va_end (ap);
  if (!ok)
    failures++;
}

static struct sres *
st_of (struct hc *h, int32_t sid)
{
  if (sid <= 0 || (sid & 1) == 0 || (sid - 1) / 2 >= MAX_SID)
    return NULL;
  return &h->st[(sid - 1) / 2];
}

static int
raw_connect (void)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

static void handle_frame (struct hc *h, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p,
                          size_t len);
static int hc_write (struct hc *h, const void *buf, size_t len);

/* Our answers to the server's frames (ACKs, WINDOW_UPDATEs) go out between
 * whole frames of ours, never inside one. */
static void
hc_reply (struct hc *h, uint8_t type, uint8_t flags, int32_t sid, const void *payload, size_t len)
{
  h->pend = realloc (h->pend, h->pend_len + 9 + len);
  uint8_t *f = h->pend + h->pend_len;
  f[0] = (uint8_t) (len >> 16);
  f[1] = (uint8_t) (len >> 8);
  f[2] = (uint8_t) len;
  f[3] = type;
  f[4] = flags;
  f[5] = (uint8_t) (sid >> 24);
  f[6] = (uint8_t) (sid >> 16);
  f[7] = (uint8_t) (sid >> 8);
  f[8] = (uint8_t) sid;
  if (len)
    memcpy (f + 9, payload, len);
  h->pend_len += 9 + len;
}

static void
hc_flush (struct hc *h)
{
  if (h->writing || h->pend_len == 0 || h->quiet)
    return;
  uint8_t *p = h->pend;
  size_t n = h->pend_len;
  h->pend = NULL;
  h->pend_len = 0;
  hc_write (h, p, n);
  free (p);
}

/* Read what is there (waiting up to timeout_ms for the first byte) and
 * handle every complete frame.  -1 once the server closed. */
static int
hc_pump (struct hc *h, int timeout_ms)
{
  if (h->closed || h->in_pump)
    return h->closed ? -1 : 0;
  struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
  if (poll (&pfd, 1, timeout_ms) <= 0)
    return 0;
  if (h->rcap - h->rlen < 65536)
    {
      h->rcap = h->rcap * 2 + 65536;
      h->rbuf = realloc (h->rbuf, h->rcap);
    }
  ssize_t n = recv (h->fd, h->rbuf + h->rlen, h->rcap - h->rlen, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
    {
      h->closed = true;
      return -1;
    }
  if (n < 0)
    return 0;
  h->rlen += (size_t) n;
  size_t off = 0;
  h->in_pump = true;
  while (h->rlen - off >= 9)
    {
      const uint8_t *f = h->rbuf + off;
      size_t len = (size_t) f[0] << 16 | (size_t) f[1] << 8 | f[2];
      if (h->rlen - off < 9 + len)
        break;
      int32_t sid = (int32_t) (((uint32_t) f[5] << 24 | (uint32_t) f[6] << 16 | (uint32_t) f[7] << 8 | f[8])
                               & 0x7fffffff);
      handle_frame (h, f[3], f[4], sid, f + 9, len);
      off += 9 + len;
    }
  h->in_pump = false;
  memmove (h->rbuf, h->rbuf + off, h->rlen - off);
  h->rlen -= off;
  hc_flush (h);
  return 1;
}

/* Write all of buf, handling incoming frames meanwhile (the server may block
 * on us otherwise).  -1 when the server closed. */
static int
hc_write (struct hc *h, const void *buf, size_t len)
{
  const uint8_t *p = buf;
  int64_t deadline = now_ms () + 20000;
  bool outer = !h->writing;
  h->writing = true;
  while (len > 0)
    {
      if (h->closed || now_ms () > deadline)
        {
          h->writing = !outer;
          return -1;
        }
      struct pollfd pfd = { .fd = h->fd, .events = POLLIN | POLLOUT };
      if (poll (&pfd, 1, 1000) <= 0)
        continue;
      if (pfd.revents & POLLIN)
        hc_pump (h, 0);
      if (pfd.revents & (POLLERR | POLLHUP))
        {
          h->closed = true;
          continue;
        }
      if (!(pfd.revents & POLLOUT))
        continue;
      ssize_t n = send (h->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EINTR)
            continue;
          h->closed = true;
          continue;
        }
      p += n;
      len -= (size_t) n;
    }
  if (outer)
    {
      h->writing = false;
      hc_flush (h);
    }
  return 0;
}

static int
hc_frame (struct hc *h, uint8_t type, uint8_t flags, int32_t sid, const void *payload, size_t len)
{
  uint8_t *f = malloc (9 + len);
  f[0] = (uint8_t) (len >> 16);
  f[1] = (uint8_t) (len >> 8);
  f[2] = (uint8_t) len;
  f[3] = type;
  f[4] = flags;
  f[5] = (uint8_t) (sid >> 24);
  f[6] = (uint8_t) (sid >> 16);
  f[7] = (uint8_t) (sid >> 8);
  f[8] = (uint8_t) sid;
  if (len)
    memcpy (f + 9, payload, len);
  int r = hc_write (h, f, 9 + len);
  free (f);
  return r;
}

static void
be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static void
handle_frame (struct hc *h, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p, size_t len)
{
  struct sres *s = st_of (h, sid);
  switch (type)
    {
    case F_SETTINGS:
      if (flags & FL_ACK)
        break;
      for (size_t i = 0; i + 6 <= len; i += 6)
        {
          uint16_t id = (uint16_t) (p[i] << 8 | p[i + 1]);
          uint32_t v = (uint32_t) p[i + 2] << 24 | (uint32_t) p[i + 3] << 16 | (uint32_t) p[i + 4] << 8
                       | p[i + 5];
          if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
            {
              for (int k = 0; k < MAX_SID; k++)
                h->st[k].win += (int64_t) v - h->peer_initial;
              h->peer_initial = v;
            }
        }
      hc_reply (h, F_SETTINGS, FL_ACK, 0, NULL, 0);
      break;
    case F_PING:
      if (!(flags & FL_ACK) && len == 8 && !h->quiet)
        hc_reply (h, F_PING, FL_ACK, 0, p, 8);
      break;
    case F_WINDOW:
      if (len == 4)
        {
          uint32_t inc = ((uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3])
                         & 0x7fffffff;
          if (sid == 0)
            h->conn_win += inc;
          else if (s)
            s->win += inc;
        }
      break;
    case F_GOAWAY:
      h->goaway = true;
      if (len >= 8)
        {
          h->goaway_code = (uint32_t) p[4] << 24 | (uint32_t) p[5] << 16 | (uint32_t) p[6] << 8 | p[7];
          size_t k = len - 8 < sizeof h->goaway_msg - 1 ? len - 8 : sizeof h->goaway_msg - 1;
          memcpy (h->goaway_msg, p + 8, k);
          h->goaway_msg[k] = '\0';
        }
      break;
    case F_RST:
      if (s && len == 4)
        {
          s->rst = 1 + ((uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3]);
          s->done = true;
          if (s->rst - 1 == NGHTTP2_REFUSED_STREAM)
            h->refused_any = true;
        }
      break;
    case F_DATA:
      if (len > 0)
        {
          uint8_t w[4];
          be32 (w, (uint32_t) len);
          hc_reply (h, F_WINDOW, 0, 0, w, 4);
          if (s && !(flags & FL_END_STREAM))
            hc_reply (h, F_WINDOW, 0, sid, w, 4);
        }
      if (s && (flags & FL_END_STREAM))
        s->done = true;
      break;
    case F_HEADERS:
    case F_CONT:
      {
        if (type == F_HEADERS)
          {
            h->hdr_sid = sid;
            if (flags & 0x8) /* PADDED */
              {
                if (len < 1 || p[0] >= len)
                  break;
                len -= 1 + p[0];
                p++;
              }
            if (flags & 0x20) /* PRIORITY */
              {
                if (len < 5)
                  break;
                p += 5;
                len -= 5;
              }
          }
        s = st_of (h, h->hdr_sid);
        bool final = (flags & FL_END_HEADERS) != 0;
        for (;;)
          {
            nghttp2_nv nv;
            int iflags = 0;
            ssize_t r = nghttp2_hd_inflate_hd2 (h->inf, &nv, &iflags, p, len, final);
            if (r < 0)
              {
                fprintf (stderr, "hpack: %s\n", nghttp2_strerror ((int) r));
                h->closed = true;
                return;
              }
            p += r;
            len -= (size_t) r;
            if ((iflags & NGHTTP2_HD_INFLATE_EMIT) && s)
              {
                s->seen = true;
                if (nv.namelen == 7 && memcmp (nv.name, ":status", 7) == 0)
                  s->http = atoi ((const char *) nv.value);
                else if (nv.namelen == 11 && memcmp (nv.name, "grpc-status", 11) == 0)
                  s->grpc = atoi ((const char *) nv.value);
                else if (nv.namelen == 12 && memcmp (nv.name, "grpc-message", 12) == 0)
                  snprintf (s->msg, sizeof s->msg, "%.*s", (int) nv.valuelen, nv.value);
              }
            if (iflags & NGHTTP2_HD_INFLATE_FINAL)
              {
                nghttp2_hd_inflate_end_headers (h->inf);
                break;
              }
            if (r == 0 && len == 0)
              break;
          }
        if (s && type == F_HEADERS && (flags & FL_END_STREAM))
          s->done = true;
        break;
      }
    default:
      break;
    }
}

static struct hc *
hc_new_fd (int fd)
{
  struct hc *h = calloc (1, sizeof *h);
  h->fd = fd;
  h->next_sid = 1;
  h->conn_win = 65535;
  h->peer_initial = 65535;
  h->st = calloc (MAX_SID, sizeof *h->st);
  for (int k = 0; k < MAX_SID; k++)
    {
      h->st[k].http = h->st[k].grpc = -1;
      h->st[k].win = 65535;
    }
  nghttp2_hd_deflate_new (&h->def, 4096);
  nghttp2_hd_inflate_new (&h->inf);
  return h;
}

/* A connection with the preface and our SETTINGS sent (none read yet). */
static struct hc *
hc_new (void)
{
  int fd = raw_connect ();
  if (fd < 0)
    return NULL;
  struct hc *h = hc_new_fd (fd);
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  uint8_t set[6] = { 0, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE };
  be32 (set + 2, 1u << 20);
  uint8_t w[4];
  be32 (w, 16u << 20);
  uint8_t first[24 + 9 + 6 + 9 + 4];
  memcpy (first, preface, 24);
  memcpy (first + 24, (uint8_t[9]) { 0, 0, 6, F_SETTINGS, 0, 0, 0, 0, 0 }, 9);
  memcpy (first + 33, set, 6);
  memcpy (first + 39, (uint8_t[9]) { 0, 0, 4, F_WINDOW, 0, 0, 0, 0, 0 }, 9);
  memcpy (first + 48, w, 4);
  hc_write (h, first, sizeof first); /* nothing (a SETTINGS ACK) may go before the preface */
  return h;
}

static void
hc_free (struct hc *h)
{
  if (h == NULL)
    return;
  close (h->fd);
  nghttp2_hd_deflate_del (h->def);
  nghttp2_hd_inflate_del (h->inf);
  free (h->rbuf);
  free (h->pend);
  free (h->st);
  free (h);
}

#define NV(n, v) \
  { (uint8_t *) (n), (uint8_t *) (v), strlen (n), strlen (v), NGHTTP2_NV_FLAG_NONE }

/* Encode request headers; returns the block length. */
static size_t
hc_encode (struct hc *h, uint8_t *out, size_t cap, const char *path, const char *ct)
{
  nghttp2_nv nva[] = { NV (":method", "POST"), NV (":scheme", "http"), NV (":path", path),
                       NV (":authority", "berth"), NV ("content-type", ct), NV ("te", "trailers"),
                       NV ("containerd-namespace", "hostile") };
  ssize_t n = nghttp2_hd_deflate_hd (h->def, out, cap, nva, sizeof nva / sizeof nva[0]);
  return n < 0 ? 0 : (size_t) n;
}

static int32_t
hc_open (struct hc *h, const char *path, const char *ct, bool end_stream)
{
  uint8_t blk[1024];
  size_t n = hc_encode (h, blk, sizeof blk, path, ct);
  int32_t sid = h->next_sid;
  h->next_sid += 2;
  struct sres *s = st_of (h, sid);
  if (s)
    s->win = h->peer_initial;
  /* On a write error the stream stays, unanswered, with h->closed set. */
  hc_frame (h, F_HEADERS, FL_END_HEADERS | (end_stream ? FL_END_STREAM : 0), sid, blk, n);
  return s ? sid : -1;
}

/* DATA within the flow-control windows (waits for WINDOW_UPDATEs). */
static int
hc_data (struct hc *h, int32_t sid, const uint8_t *p, size_t len, bool end_stream)
{
  struct sres *s = st_of (h, sid);
  if (s == NULL)
    return -1;
  do
    {
      int64_t room = h->conn_win < s->win ? h->conn_win : s->win;
      if (room > 16384)
        room = 16384;
      if (room <= 0 && len > 0)
        {
          int64_t t0 = now_ms ();
          while ((h->conn_win <= 0 || s->win <= 0) && !h->closed && !s->done && now_ms () - t0 < 10000)
            hc_pump (h, 100);
          if (h->closed || s->done || h->conn_win <= 0 || s->win <= 0)
            return -1;
          continue;
        }
      size_t k = len < (size_t) room ? len : (size_t) room;
      bool last = k == len;
      if (hc_frame (h, F_DATA, last && end_stream ? FL_END_STREAM : 0, sid, p, k) < 0)
        return -1;
      h->conn_win -= (int64_t) k;
      s->win -= (int64_t) k;
      p += k;
      len -= k;
    }
  while (len > 0);
  return 0;
}

/* A gRPC message: flags, declared length, then body (may be shorter). */
static int
hc_msg (struct hc *h, int32_t sid, uint8_t flags, uint32_t declared, const uint8_t *body, size_t len,
        bool end_stream)
{
  uint8_t *buf = malloc (5 + len);
  buf[0] = flags;
  be32 (buf + 1, declared);
  if (len)
    memcpy (buf + 5, body, len);
  int r = hc_data (h, sid, buf, 5 + len, end_stream);
  free (buf);
  return r;
}

static bool
hc_wait (struct hc *h, int32_t sid, int timeout_ms)
{
  struct sres *s = st_of (h, sid);
  if (s == NULL)
    return false;
  int64_t t0 = now_ms ();
  while (!s->done && !h->closed && now_ms () - t0 < timeout_ms)
    hc_pump (h, 50);
  return s->done;
}

/* Wait until the server has closed the connection. */
static bool
hc_wait_closed (struct hc *h, int timeout_ms)
{
  int64_t t0 = now_ms ();
  while (!h->closed && now_ms () - t0 < timeout_ms)
    hc_pump (h, 50);
  return h->closed;
}

static const char *
describe (struct hc *h, int32_t sid)
{
  static char buf[320];
  struct sres *s = st_of (h, sid);
  if (s->grpc >= 0)
    snprintf (buf, sizeof buf, "http %d grpc-status %d \"%s\"", s->http, s->grpc, s->msg);
  else if (s->rst)
    snprintf (buf, sizeof buf, "RST_STREAM code %u", s->rst - 1);
  else if (h->goaway)
    snprintf (buf, sizeof buf, "GOAWAY code %u \"%s\"", h->goaway_code, h->goaway_msg);
  else if (h->closed)
    snprintf (buf, sizeof buf, "connection closed");
  else
    snprintf (buf, sizeof buf, "no answer");
  return buf;
}

/* One unary call on a fresh connection: grpc-status or -1. */
static int
unary (const char *path, const uint8_t *msg, size_t len, char *why, size_t whylen)
{
  struct hc *h = hc_new ();
  if (h == NULL)
    return -2;
  int32_t sid = hc_open (h, path, "application/grpc", false);
  hc_msg (h, sid, 0, (uint32_t) len, msg, len, true);
  hc_wait (h, sid, 10000);
  int g = st_of (h, sid)->grpc;
  snprintf (why, whylen, "%s", describe (h, sid));
  hc_free (h);
  return g;
}

/* ---- attacks -------------------------------------------------------- */

#define VERSION_PATH "/containerd.services.version.v1.Version/Version"

/* A well-behaved call on h: Version answers 0. */
static bool
still_serves (struct hc *h)
{
  int32_t sid = hc_open (h, VERSION_PATH, "application/grpc", false);
  if (sid < 0 || hc_msg (h, sid, 0, 0, NULL, 0, true) < 0 || !hc_wait (h, sid, 10000))
    return false;
  return st_of (h, sid)->grpc == 0;
}

static bool
fresh_still_serves (void)
{
  struct hc *h = hc_new ();
  bool ok = h && still_serves (h);
  hc_free (h);
  return ok;
}

static const char *const methods[] = {
  "/containerd.services.containers.v1.Containers/Get",
  "/containerd.services.containers.v1.Containers/List",
  "/containerd.services.containers.v1.Containers/ListStream",
  "/containerd.services.containers.v1.Containers/Create",
  "/containerd.services.containers.v1.Containers/Update",
  "/containerd.services.containers.v1.Containers/Delete",
  "/containerd.services.content.v1.Content/Info",
  "/containerd.services.content.v1.Content/Update",
  "/containerd.services.content.v1.Content/List",
  "/containerd.services.content.v1.Content/Delete",
  "/containerd.services.content.v1.Content/Read",
  "/containerd.services.content.v1.Content/Status",
  "/containerd.services.content.v1.Content/ListStatuses",
  "/containerd.services.content.v1.Content/Write",
  "/containerd.services.content.v1.Content/Abort",
  "/containerd.services.diff.v1.Diff/Apply",
  "/containerd.services.diff.v1.Diff/Diff",
  "/containerd.services.events.v1.Events/Publish",
  "/containerd.services.events.v1.Events/Forward",
  "/containerd.services.events.v1.Events/Subscribe",
  "/containerd.services.images.v1.Images/Get",
  "/containerd.services.images.v1.Images/List",
  "/containerd.services.images.v1.Images/Create",
  "/containerd.services.images.v1.Images/Update",
  "/containerd.services.images.v1.Images/Delete",
  "/containerd.services.introspection.v1.Introspection/Plugins",
  "/containerd.services.introspection.v1.Introspection/Server",
  "/containerd.services.leases.v1.Leases/Create",
  "/containerd.services.leases.v1.Leases/Delete",
  "/containerd.services.leases.v1.Leases/List",
  "/containerd.services.leases.v1.Leases/AddResource",
  "/containerd.services.leases.v1.Leases/DeleteResource",
  "/containerd.services.leases.v1.Leases/ListResources",
  "/containerd.services.namespaces.v1.Namespaces/Get",
  "/containerd.services.namespaces.v1.Namespaces/List",
  "/containerd.services.namespaces.v1.Namespaces/Create",
  "/containerd.services.namespaces.v1.Namespaces/Update",
  "/containerd.services.namespaces.v1.Namespaces/Delete",
  "/containerd.services.snapshots.v1.Snapshots/Prepare",
  "/containerd.services.snapshots.v1.Snapshots/View",
  "/containerd.services.snapshots.v1.Snapshots/Mounts",
  "/containerd.services.snapshots.v1.Snapshots/Commit",
  "/containerd.services.snapshots.v1.Snapshots/Remove",
  "/containerd.services.snapshots.v1.Snapshots/Stat",
  "/containerd.services.snapshots.v1.Snapshots/Update",
  "/containerd.services.snapshots.v1.Snapshots/List",
  "/containerd.services.snapshots.v1.Snapshots/Usage",
  "/containerd.services.snapshots.v1.Snapshots/Cleanup",
  "/containerd.services.tasks.v1.Tasks/Create",
  "/containerd.services.tasks.v1.Tasks/Start",
  "/containerd.services.tasks.v1.Tasks/Delete",
  "/containerd.services.tasks.v1.Tasks/DeleteProcess",
  "/containerd.services.tasks.v1.Tasks/Get",
  "/containerd.services.tasks.v1.Tasks/List",
  "/containerd.services.tasks.v1.Tasks/Kill",
  "/containerd.services.tasks.v1.Tasks/Exec",
  "/containerd.services.tasks.v1.Tasks/ResizePty",
  "/containerd.services.tasks.v1.Tasks/CloseIO",
  "/containerd.services.tasks.v1.Tasks/Pause",
  "/containerd.services.tasks.v1.Tasks/Resume",
  "/containerd.services.tasks.v1.Tasks/ListPids",
  "/containerd.services.tasks.v1.Tasks/Checkpoint",
  "/containerd.services.tasks.v1.Tasks/Update",
  "/containerd.services.tasks.v1.Tasks/Metrics",
  "/containerd.services.tasks.v1.Tasks/Wait",
  "/containerd.services.version.v1.Version/Version",
  "/berth.services.v1.Pull/Pull",
  "/berth.services.v1.GC/Explain",
};

/* Payloads every method gets: broken protobuf, and valid protobuf whose
 * fields have the wrong wire types or another message's shape. */
static const struct
{
  const char *name;
  const uint8_t *p;
  size_t len;
} payloads[] = {
  { "truncated varint", (const uint8_t *) "\x08\xff\xff\xff", 4 },
  { "length past the end", (const uint8_t *) "\x0a\x7f" "abc", 5 },
  { "field number 0", (const uint8_t *) "\x00\x01", 2 },
  { "wire type 7", (const uint8_t *) "\x0f\x01", 2 },
  { "10-byte varint overflow", (const uint8_t *) "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12 },
  { "varint where strings go", (const uint8_t *) "\x08\x01\x10\x02\x18\x03\x20\x04\x28\x05", 10 },
  { "fixed64 where strings go", (const uint8_t *) "\x09\x01\x02\x03\x04\x05\x06\x07\x08", 9 },
  { "nested garbage as field 1-3",
    (const uint8_t *) "\x0a\x04\x0a\x02\xff\xff\x12\x03\x1a\x01\x00\x1a\x02\x08\x80", 15 },
  { "another message (Version response)", (const uint8_t *) "\x0a\x05" "1.0.0\x12\x04" "abcd", 13 },
  { "strings with NUL, ../ and invalid UTF-8",
    (const uint8_t *) "\x0a\x0a../../\x00\xff\xfe\x12\x05/\x00etc\x1a\x01\xc3", 24 },
};

static void
attack_malformed (void)
{
  size_t n = sizeof methods / sizeof methods[0], answered = 0;
  for (size_t m = 0; m < n; m++)
    for (size_t k = 0; k < sizeof payloads / sizeof payloads[0]; k++)
      {
        struct hc *h = hc_new ();
        if (h == NULL)
          {
            check (false, "%s %s: cannot connect", methods[m], payloads[k].name);
            continue;
          }
        int32_t sid = hc_open (h, methods[m], "application/grpc", false);
        hc_msg (h, sid, 0, (uint32_t) payloads[k].len, payloads[k].p, payloads[k].len, true);
        bool done = hc_wait (h, sid, 3000);
        struct sres *s = st_of (h, sid);
        /* A server-streaming method may accept the message and keep the
         * stream open (Subscribe waits for events): we reset it. */
        bool streaming = strstr (methods[m], "/Subscribe") || strstr (methods[m], "/ListStream")
                         || strstr (methods[m], "/Read") || strstr (methods[m], "/Pull");
        bool ok = done ? (s->grpc >= 0 || s->rst) : (streaming && !h->closed);
        if (done && s->grpc == 0)
          ok = true; /* a lenient decode is no failure: it must not crash */
        if (!ok || getenv ("HOSTILE_VERBOSE"))
          check (ok, "%s [%s]: %s", methods[m], payloads[k].name,
                 done ? describe (h, sid) : "streaming (reset by the client)");
        if (ok)
          answered++;
        if (!done)
          {
            uint8_t code[4];
            be32 (code, NGHTTP2_CANCEL);
            hc_frame (h, F_RST, 0, sid, code, 4);
          }
        hc_free (h);
      }
  check (fresh_still_serves (), "malformed/wrong-type protobuf: %zu of %zu calls answered with a status, "
         "Version still 0", answered, n * (sizeof payloads / sizeof payloads[0]));
  /* The typical answer, shown once. */
  char why[320];
  int g = unary ("/containerd.services.images.v1.Images/Get", payloads[0].p, payloads[0].len, why,
                 sizeof why);
  check (g == 3, "Images/Get with a truncated varint: %s", why);
  g = unary ("/containerd.services.images.v1.Images/Get", payloads[5].p, payloads[5].len, why, sizeof why);
  check (g == 3 || g == 5, "Images/Get with varints where strings go: %s", why);
}

static void
attack_huge (void)
{
  const uint32_t lens[] = { 0xffffffffu, 0x80000000u, (16u << 20) + 1 };
  for (size_t i = 0; i < 3; i++)
    {
      struct hc *h = hc_new ();
      int32_t sid = hc_open (h, "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      int64_t t0 = now_ms ();
      hc_msg (h, sid, 0, lens[i], (const uint8_t *) "x", 1, false);
      hc_wait (h, sid, 5000);
      struct sres *s = st_of (h, sid);
      check (s->grpc == 8, "length prefix %u on Content/Write: %s after %lld ms", lens[i], describe (h, sid),
             (long long) (now_ms () - t0));
      check (still_serves (h), "same connection serves Version afterwards");
      hc_free (h);
    }
}

static void
attack_compressed (void)
{
  struct hc *h = hc_new ();
  int32_t sid = hc_open (h, VERSION_PATH, "application/grpc", false);
  hc_msg (h, sid, 1, 0, NULL, 0, true);
  hc_wait (h, sid, 5000);
  check (st_of (h, sid)->grpc == 12, "compressed flag set: %s", describe (h, sid));
  sid = hc_open (h, VERSION_PATH, "application/grpc", false);
  hc_msg (h, sid, 0x80, 0, NULL, 0, true);
  hc_wait (h, sid, 5000);
  check (st_of (h, sid)->grpc == 13, "reserved flag bits set: %s", describe (h, sid));
  check (still_serves (h), "same connection serves Version afterwards");
  hc_free (h);
}

static void
attack_unknown (void)
{
  const char *paths[] = { "/no.such.Service/Method", "/containerd.services.version.v1.Version/Nope",
                          "/", "garbage-without-slash", "/containerd.services.version.v1.Version/Version/x" };
  struct hc *h = hc_new ();
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    {
      int32_t sid = hc_open (h, paths[i], "application/grpc", false);
      hc_msg (h, sid, 0, 0, NULL, 0, true);
      hc_wait (h, sid, 5000);
      struct sres *s = st_of (h, sid);
      /* nghttp2 itself resets a :path that is not a valid request target. */
      check (s->grpc == 12 || s->rst == 1 + NGHTTP2_PROTOCOL_ERROR, "path %s: %s", paths[i], describe (h, sid));
      if (h->closed)
        {
          hc_free (h);
          h = hc_new ();
        }
    }
  check (still_serves (h), "same connection serves Version afterwards");
  hc_free (h);
}

static void
attack_content_type (void)
{
  const char *cts[] = { "text/html", "application/grpc-web", "application/grpcx", "application/json", "" };
  struct hc *h = hc_new ();
  for (size_t i = 0; i < sizeof cts / sizeof cts[0]; i++)
    {
      int32_t sid = hc_open (h, VERSION_PATH, cts[i], false);
      hc_msg (h, sid, 0, 0, NULL, 0, true);
      hc_wait (h, sid, 5000);
      struct sres *s = st_of (h, sid);
      check (s->http == 415 && s->grpc == 13, "content-type \"%s\": %s", cts[i], describe (h, sid));
    }
  check (still_serves (h), "same connection serves Version afterwards");
  hc_free (h);
}

static void
attack_reset_mid_message (void)
{
  struct hc *h = hc_new ();
  uint8_t half[1000];
  memset (half, 'r', sizeof half);
  int n = 0;
  for (int i = 0; i < 100; i++)
    {
      int32_t sid = hc_open (h, "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      hc_msg (h, sid, 0, 100000, half, sizeof half, false);
      uint8_t code[4];
      be32 (code, NGHTTP2_CANCEL);
      hc_frame (h, F_RST, 0, sid, code, 4);
      n++;
    }
  check (still_serves (h), "%d streams reset in the middle of a message: same connection serves Version", n);
  /* GOAWAY from the client while calls are open, then keep the socket. */
  for (int i = 0; i < 10; i++)
    {
      int32_t sid = hc_open (h, "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      hc_msg (h, sid, 0, 100000, half, sizeof half, false);
    }
  uint8_t ga[8] = { 0 };
  be32 (ga, (uint32_t) h->next_sid - 2);
  be32 (ga + 4, NGHTTP2_NO_ERROR);
  hc_frame (h, F_GOAWAY, 0, 0, ga, 8);
  hc_pump (h, 200);
  hc_free (h);
  check (fresh_still_serves (), "client GOAWAY with 10 half-sent messages, then close: server serves others");
}

static void
attack_garbage_preface (void)
{
  const char *junk[] = { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
                         "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" /* TLS hello */ };
  for (size_t i = 0; i < 3; i++)
    {
      int fd = raw_connect ();
      struct hc *h = hc_new_fd (fd);
      hc_write (h, junk[i], strlen (junk[i]));
      bool closed = hc_wait_closed (h, 5000);
      check (closed, "garbage preface #%zu: %s", i + 1, h->goaway ? "GOAWAY then close" : closed ? "closed" : "still open");
      hc_free (h);
    }
  /* Valid preface, then frames that make no sense. */
  struct hc *h = hc_new ();
  uint8_t junk2[64];
  memset (junk2, 0xee, sizeof junk2);
  hc_write (h, junk2, sizeof junk2);
  bool closed = hc_wait_closed (h, 5000);
  check (closed, "valid preface then 64 bytes of 0xee: %s code %u", h->goaway ? "GOAWAY" : "closed", h->goaway_code);
  hc_free (h);
  check (fresh_still_serves (), "server serves others afterwards");
}

/* Byte-by-byte trickles; the daemon must drop each within its
 * request_timeout (arg: seconds configured) plus a margin. */
static void
attack_slowloris (int timeout_s)
{
  int limit_ms = timeout_s * 1000 + 3000;
  /* 1. The preface, one byte every 300 ms, forever. */
  {
    int fd = raw_connect ();
    struct hc *h = hc_new_fd (fd);
    h->quiet = true;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    int64_t t0 = now_ms ();
    for (size_t i = 0; !h->closed && now_ms () - t0 < limit_ms + 5000; i++)
      {
        uint8_t b = (uint8_t) preface[i % (sizeof preface - 1)];
        if (hc_write (h, &b, 1) < 0)
          break;
        hc_pump (h, 300);
      }
    check (h->closed && now_ms () - t0 <= limit_ms, "preface trickled 1 byte/300 ms: %s after %lld ms",
           h->goaway ? "GOAWAY + close" : "closed", (long long) (now_ms () - t0));
    hc_free (h);
  }
  /* 2. HEADERS without END_HEADERS, then nothing. */
  {
    struct hc *h = hc_new ();
    hc_pump (h, 200);
    h->quiet = true; /* no SETTINGS ACK inside the header block */
    uint8_t blk[1024];
    size_t n = hc_encode (h, blk, sizeof blk, VERSION_PATH, "application/grpc");
    hc_frame (h, F_HEADERS, 0, 1, blk, n / 2);
    int64_t t0 = now_ms ();
    bool closed = hc_wait_closed (h, limit_ms + 5000);
    check (closed && now_ms () - t0 <= limit_ms, "header block never finished: %s \"%s\" after %lld ms",
           h->goaway ? "GOAWAY" : "closed", h->goaway_msg, (long long) (now_ms () - t0));
    hc_free (h);
  }
  /* 3. A frame header trickled: 9 bytes, one every 500 ms, then stall. */
  {
    struct hc *h = hc_new ();
    hc_pump (h, 200);
    uint8_t hd[9] = { 0, 0, 8, F_PING, 0, 0, 0, 0, 0 };
    int64_t t0 = now_ms ();
    h->quiet = true; /* no SETTINGS ACK in the middle of the trickle */
    for (int i = 0; i < 9 && !h->closed; i++)
      {
        hc_write (h, hd + i, 1);
        hc_pump (h, 500);
      }
    bool closed = hc_wait_closed (h, limit_ms + 5000);
    check (closed && now_ms () - t0 <= limit_ms, "PING frame header trickled 1 byte/500 ms: %s \"%s\" after %lld ms",
           h->goaway ? "GOAWAY" : "closed", h->goaway_msg, (long long) (now_ms () - t0));
    hc_free (h);
  }
  /* 4. A gRPC message trickled: 100 bytes declared, 1 byte / 400 ms. */
  {
    struct hc *h = hc_new ();
    int32_t sid = hc_open (h, "/containerd.services.images.v1.Images/List", "application/grpc", false);
    uint8_t pre[5] = { 0 };
    be32 (pre + 1, 100);
    int64_t t0 = now_ms ();
    for (int i = 0; i < 5; i++)
      hc_data (h, sid, pre + i, 1, false);
    while (!st_of (h, sid)->done && !h->closed && now_ms () - t0 < limit_ms + 5000)
      {
        uint8_t b = 0;
        hc_data (h, sid, &b, 1, false);
        hc_pump (h, 400);
      }
    struct sres *s = st_of (h, sid);
    check (s->grpc == 4 && now_ms () - t0 <= limit_ms, "message trickled 1 byte/400 ms: %s after %lld ms",
           describe (h, sid), (long long) (now_ms () - t0));
    check (still_serves (h), "same connection serves Version afterwards");
    hc_free (h);
  }
  /* 5. A unary request never half-closed. */
  {
    struct hc *h = hc_new ();
    int32_t sid = hc_open (h, VERSION_PATH, "application/grpc", false);
    hc_msg (h, sid, 0, 0, NULL, 0, false);
    int64_t t0 = now_ms ();
    hc_wait (h, sid, limit_ms + 5000);
    check (st_of (h, sid)->grpc == 4 && now_ms () - t0 <= limit_ms, "unary request never half-closed: %s after %lld ms",
           describe (h, sid), (long long) (now_ms () - t0));
    hc_free (h);
  }
  check (fresh_still_serves (), "server serves others afterwards");
}

/* Connections that say nothing at all: closed after idle_timeout (arg). */
static void
attack_idle (int idle_s)
{
  struct hc *h = hc_new ();
  hc_pump (h, 200);
  int64_t t0 = now_ms ();
  bool closed = hc_wait_closed (h, idle_s * 1000 + 5000);
  check (closed && h->goaway && h->goaway_code == 0, "idle connection: %s code %u \"%s\" after %lld ms",
         h->goaway ? "GOAWAY" : closed ? "closed" : "still open", h->goaway_code, h->goaway_msg,
         (long long) (now_ms () - t0));
  hc_free (h);
}

/* arg = conns: each opens the advertised 128 streams with a full Version
 * request; one more connection opens 1000 streams at once. */
static void
attack_streams (int nconns)
{
  struct hc **hs = calloc ((size_t) nconns, sizeof *hs);
  int opened = 0, ok = 0, other = 0;
  for (int i = 0; i < nconns; i++)
    {
      hs[i] = hc_new ();
      if (hs[i] == NULL)
        {
          check (false, "connection %d refused", i);
          continue;
        }
      hc_pump (hs[i], 50);
      for (int k = 0; k < 128; k++)
        {
          int32_t sid = hc_open (hs[i], VERSION_PATH, "application/grpc", false);
          if (sid < 0)
            break;
          hc_msg (hs[i], sid, 0, 0, NULL, 0, true);
          opened++;
        }
    }
  for (int i = 0; i < nconns; i++)
    if (hs[i])
      {
        for (int32_t sid = 1; sid < hs[i]->next_sid; sid += 2)
          {
            hc_wait (hs[i], sid, 10000);
            if (st_of (hs[i], sid)->grpc == 0)
              ok++;
            else if (other++ < 3)
              printf ("  stream %d of connection %d: %s\n", sid, i, describe (hs[i], sid));
          }
        hc_free (hs[i]);
      }
  free (hs);
  check (ok == opened && ok > 0, "%d connections x 128 streams: %d of %d calls answered 0 (%d other)", nconns, ok,
         opened, other);

  /* 1000 streams opened at once on one connection, each with a message
   * half sent so that none can finish before the next one opens. */
  struct hc *h = hc_new ();
  hc_pump (h, 100);
  int sent = 0;
  for (int k = 0; k < 1000 && !h->closed; k++)
    {
      int32_t sid = hc_open (h, "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      if (sid < 0)
        break;
      hc_msg (h, sid, 0, 100, (const uint8_t *) "x", 1, false);
      sent++;
    }
  hc_wait_closed (h, 3000);
  int refused = 0, reset = 0;
  for (int32_t sid = 1; sid < h->next_sid; sid += 2)
    {
      uint32_t r = st_of (h, sid)->rst;
      if (r == 1 + NGHTTP2_REFUSED_STREAM)
        refused++;
      else if (r)
        reset++;
    }
  check (h->closed || refused > 0, "1000 streams at once on one connection (limit 128): %d sent, %d REFUSED_STREAM, "
         "%d other resets, %s code %u \"%s\"", sent, refused, reset, h->goaway ? "GOAWAY" : h->closed ? "closed" : "open",
         h->goaway_code, h->goaway_msg);
  hc_free (h);
  check (fresh_still_serves (), "server serves others afterwards");
}

/* Fill the per-connection buffer cap (arg: the cap in KiB): streams each with
 * a 1 MiB message of which all but one byte are sent. */
static void
attack_buffer (int cap_kib)
{
  size_t cap = (size_t) cap_kib << 10;
  uint8_t *body = malloc (1u << 20);
  memset (body, 'b', 1u << 20);
  struct hc *h = hc_new ();
  hc_pump (h, 100);
  int accepted = 0, exhausted = 0, other = 0, nstreams = 0;
  int32_t sids[64];
  for (int k = 0; k < 64 && !h->closed; k++)
    {
      int32_t sid = hc_open (h, "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      sids[nstreams++] = sid;
      hc_msg (h, sid, 0, 1u << 20, body, (1u << 20) - 1, false);
      hc_pump (h, 0);
    }
  hc_pump (h, 300);
  for (int i = 0; i < nstreams; i++)
    {
      struct sres *s = st_of (h, sids[i]);
      if (!s->done)
        accepted++;
      else if (s->grpc == 8)
        exhausted++;
      else
        other++;
    }
  size_t want = cap / (1u << 20);
  check (accepted <= (int) want && exhausted > 0 && other == 0,
         "64 streams x 1 MiB partial messages on one connection (cap %d KiB): %d held, %d RESOURCE_EXHAUSTED "
         "(\"%s\"), %d other",
         cap_kib, accepted, exhausted, exhausted ? st_of (h, sids[nstreams - 1])->msg : "", other);
  check (fresh_still_serves (), "another connection serves Version meanwhile");
  if (getenv ("HOSTILE_HOLD_MS"))
    hc_pump (h, atoi (getenv ("HOSTILE_HOLD_MS")));
  hc_free (h);
  free (body);
}

/* Many connections each holding partial messages: the total cap. */
static void
attack_flood (int nconns)
{
  uint8_t *body = malloc (1u << 20);
  memset (body, 'f', 1u << 20);
  struct hc **hs = calloc ((size_t) nconns, sizeof *hs);
  int held = 0, exhausted = 0, refused = 0;
  for (int i = 0; i < nconns; i++)
    {
      hs[i] = hc_new ();
      if (hs[i] == NULL)
        {
          refused++;
          continue;
        }
      for (int k = 0; k < 4 && !hs[i]->closed; k++)
        {
          int32_t sid = hc_open (hs[i], "/containerd.services.content.v1.Content/Write", "application/grpc", false);
          hc_msg (hs[i], sid, 0, 1u << 20, body, (1u << 20) - 1, false);
        }
      hc_pump (hs[i], 0);
    }
  for (int i = 0; i < nconns; i++)
    if (hs[i])
      {
        hc_pump (hs[i], 20);
        for (int32_t sid = 1; sid < hs[i]->next_sid; sid += 2)
          {
            struct sres *s = st_of (hs[i], sid);
            if (s->grpc == 8)
              exhausted++;
            else if (!s->done && !hs[i]->closed)
              held++;
          }
      }
  check (exhausted > 0 && fresh_still_serves (),
         "%d connections x 4 x 1 MiB partial messages: %d held, %d RESOURCE_EXHAUSTED, %d connections refused; "
         "Version still served",
         nconns, held, exhausted, refused);
  if (getenv ("HOSTILE_HOLD_MS"))
    {
      int64_t t0 = now_ms ();
      while (now_ms () - t0 < atoi (getenv ("HOSTILE_HOLD_MS")))
        for (int i = 0; i < nconns; i++)
          if (hs[i])
            hc_pump (hs[i], 0);
    }
  for (int i = 0; i < nconns; i++)
    hc_free (hs[i]);
  free (hs);
  free (body);
}

/* Past max_connections (arg): idle ones are closed to make room; busy ones
 * make the server refuse. */
static void
attack_conns (int maxc)
{
  int n = maxc + 50, open_ok = 0, goaway = 0;
  struct hc **hs = calloc ((size_t) n, sizeof *hs);
  for (int i = 0; i < n; i++)
    {
      hs[i] = hc_new ();
      if (hs[i])
        hc_pump (hs[i], 0);
    }
  for (int i = 0; i < n; i++)
    if (hs[i])
      {
        hc_pump (hs[i], 5);
        if (hs[i]->goaway || hs[i]->closed)
          goaway++;
        else
          open_ok++;
      }
  check (goaway >= 50 && fresh_still_serves (),
         "%d idle connections against max_connections %d: %d still open, %d closed (oldest idle first); "
         "a new client is served", n, maxc, open_ok, goaway);
  for (int i = 0; i < n; i++)
    hc_free (hs[i]);
  /* Busy connections: each holds one call open (a message never finished). */
  int busy = 0, refused = 0;
  for (int i = 0; i < n; i++)
    {
      hs[i] = hc_new ();
      if (hs[i] == NULL)
        {
          refused++;
          continue;
        }
      int32_t sid = hc_open (hs[i], "/containerd.services.content.v1.Content/Write", "application/grpc", false);
      hc_msg (hs[i], sid, 0, 10, (const uint8_t *) "x", 1, false);
      busy++;
    }
  int closed = 0;
  for (int i = 0; i < n; i++)
    if (hs[i])
      {
        hc_pump (hs[i], 5);
        if (hs[i]->closed)
          closed++;
      }
  check (closed + refused >= 50, "%d busy connections against max_connections %d: %d closed by the server "
         "(refused at accept)", n, maxc, closed + refused);
  for (int i = 0; i < n; i++)
    hc_free (hs[i]);
  free (hs);
  check (fresh_still_serves (), "once they are gone a new client is served");
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    {
      fprintf (stderr, "usage: %s SOCKET ATTACK [ARG]\n"
               "attacks: malformed huge compressed unknown content-type reset garbage slowloris SECS "
               "idle SECS streams CONNS buffer CAP_KIB flood CONNS conns MAX\n", argv[0]);
      return 2;
    }
  sock_path = argv[1];
  const char *a = argv[2];
  int arg = argc > 3 ? atoi (argv[3]) : 0;
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (strcmp (a, "malformed") == 0)
    attack_malformed ();
  else if (strcmp (a, "huge") == 0)
    attack_huge ();
  else if (strcmp (a, "compressed") == 0)
    attack_compressed ();
  else if (strcmp (a, "unknown") == 0)
    attack_unknown ();
  else if (strcmp (a, "content-type") == 0)
    attack_content_type ();
  else if (strcmp (a, "reset") == 0)
    attack_reset_mid_message ();
  else if (strcmp (a, "garbage") == 0)
    attack_garbage_preface ();
  else if (strcmp (a, "slowloris") == 0)
    attack_slowloris (arg ? arg : 30);
  else if (strcmp (a, "idle") == 0)
    attack_idle (arg ? arg : 300);
  else if (strcmp (a, "streams") == 0)
    attack_streams (arg ? arg : 20);
  else if (strcmp (a, "buffer") == 0)
    attack_buffer (arg ? arg : 32768);
  else if (strcmp (a, "flood") == 0)
    attack_flood (arg ? arg : 50);
  else if (strcmp (a, "conns") == 0)
    attack_conns (arg ? arg : 1024);
  else
    {
      fprintf (stderr, "unknown attack %s\n", a);
      return 2;
    }
  return failures ? 1 : 0;
}
