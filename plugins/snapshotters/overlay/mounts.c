/* io.berth.snapshotter.v1.overlayfs: the mounts of a snapshot, the l/
 * links and the short anchor for long lowerdir chains (see overlay.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "overlay.h"

char *
ovl_path (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  int r = vasprintf (&p, fmt, ap);
  va_end (ap);
  return r < 0 ? NULL : p;
}

void
ovl_mount_clear (struct ovl_mount *m)
{
  free (m->source);
  for (size_t i = 0; i < m->n; i++)
    free (m->options[i]);
  free (m->options);
  memset (m, 0, sizeof *m);
}

static int
mount_add_option (struct ovl_mount *m, char *opt)
{
  if (opt == NULL)
    return -ENOMEM;
  char **n = realloc (m->options, (m->n + 2) * sizeof *n);
  if (n == NULL)
    {
      free (opt);
      return -ENOMEM;
    }
  m->options = n;
  m->options[m->n++] = opt;
  m->options[m->n] = NULL;
  return 0;
}

size_t
ovl_options_length (char *const *options, size_t n)
{
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen (options[i]) + (i > 0);
  return len;
}

static int
bind_mount (struct ovl *s, const char *id, bool ro, struct ovl_mount *ret)
{
  ret->type = "bind";
  ret->source = ovl_path ("%s/%s/fs", s->snapshots, id);
  if (ret->source == NULL || mount_add_option (ret, strdup (ro ? "ro" : "rw")) < 0
      || mount_add_option (ret, strdup ("rbind")) < 0)
    return -ENOMEM;
  return 0;
}

int
ovl_link_create (struct ovl *s, const char *id)
{
  char *link = ovl_path ("%s/%s", s->links, id);
  char *target = ovl_path ("../snapshots/%s/fs", id);
  int r = link && target ? 0 : -ENOMEM;
  if (r == 0 && symlink (target, link) < 0)
    r = errno == EEXIST ? 0 : -errno;
  free (link);
  free (target);
  return r;
}

/* The lowerdir option with each parent spelled as prefix/<id> (link
 * forms) or <snapshots>/<id>/fs (prefix NULL). */
static char *
lowerdir_option (struct ovl *s, const struct berth_snapstore_snapshot *snap, const char *prefix)
{
  size_t len = strlen ("lowerdir=") + 1;
  for (size_t i = 0; i < snap->n_parents; i++)
    len += (prefix ? strlen (prefix) + 1 : strlen (s->snapshots) + 4) + strlen (snap->parent_ids[i]) + 1;
  char *opt = malloc (len);
  if (opt == NULL)
    return NULL;
  char *p = stpcpy (opt, "lowerdir=");
  for (size_t i = 0; i < snap->n_parents; i++)
    {
      if (i > 0)
        *p++ = ':';
      if (prefix)
        p += sprintf (p, "%s/%s", prefix, snap->parent_ids[i]);
      else
        p += sprintf (p, "%s/%s/fs", s->snapshots, snap->parent_ids[i]);
    }
  return opt;
}

int
ovl_mount_build (struct ovl *s, const struct berth_snapstore_snapshot *snap, struct ovl_mount *ret,
                 berth_error *err)
{
  memset (ret, 0, sizeof *ret);
  int r = 0;
  if (snap->n_parents == 0)
    /* Overlay needs a lower; a lone layer is its own tree.  As containerd,
     * a committed snapshot answers rw here too (only views are ro). */
    r = bind_mount (s, snap->id, snap->kind == BERTH_SNAPSHOT_VIEW, ret);
  else if (snap->kind != BERTH_SNAPSHOT_ACTIVE && snap->n_parents == 1)
    r = bind_mount (s, snap->parent_ids[0], true, ret);
  else
    {
      ret->type = "overlay";
      ret->source = strdup ("overlay");
      r = ret->source ? 0 : -ENOMEM;
      for (size_t i = 0; r == 0 && i < s->noptions; i++)
        r = mount_add_option (ret, strdup (s->options[i]));
      if (r == 0 && snap->kind == BERTH_SNAPSHOT_ACTIVE)
        {
          r = mount_add_option (ret, ovl_path ("workdir=%s/%s/work", s->snapshots, snap->id));
          if (r == 0)
            r = mount_add_option (ret, ovl_path ("upperdir=%s/%s/fs", s->snapshots, snap->id));
        }
      /* Full paths first (containerd's spelling), then the short forms. */
      const char *prefixes[] = { NULL, s->links, s->anchor };
      size_t nprefixes = s->anchor ? 3 : 2;
      size_t need = 0;
      for (size_t i = 0; r == 0 && i < nprefixes; i++)
        {
          char *opt = lowerdir_option (s, snap, prefixes[i]);
          if (opt == NULL)
            {
              r = -ENOMEM;
              break;
            }
          need = ovl_options_length (ret->options, ret->n) + 1 + strlen (opt);
          if (need <= s->max_data)
            {
              /* The links of older snapshots may predate this root (or a
               * crash): make sure each one exists before handing it out. */
              for (size_t j = 0; prefixes[i] && j < snap->n_parents && r == 0; j++)
                if ((r = ovl_link_create (s, snap->parent_ids[j])) < 0)
                  {
                    free (opt);
                    ovl_mount_clear (ret);
                    return s->host->error_set (err, BERTH_E_INTERNAL, -r, "creating link %s/%s", s->links,
                                               snap->parent_ids[j]);
                  }
              r = mount_add_option (ret, opt);
              if (r == 0)
                return 0;
              break;
            }
          free (opt);
        }
      if (r == 0)
        {
          ovl_mount_clear (ret);
          return s->host->error_set (err, BERTH_E_INVALID, 0,
                                     "a chain of %zu layers needs %zu bytes of overlay mount options even through "
                                     "short links, more than the kernel's %zu%s",
                                     snap->n_parents, need, s->max_data,
                                     s->anchor ? "" : " (no short_link_dir anchor available)");
        }
    }
  if (r < 0)
    {
      ovl_mount_clear (ret);
      return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  return 0;
}

int
ovl_mount_emit (struct ovl *s, const struct ovl_mount *m, berth_mounts *ret_mounts, berth_error *err)
{
  if (ret_mounts == NULL)
    return 0;
  int r = s->host->mounts_add (ret_mounts, m->type, m->source, NULL, (const char *const *) m->options);
  if (r < 0)
    return s->host->error_set (err, r, 0, "adding the %s mount of %s", m->type, m->source);
  return 0;
}

/* FNV-1a, enough to keep two roots' anchors apart. */
static uint32_t
fnv1a (const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 16777619u;
  return h;
}

int
ovl_anchor_setup (struct ovl *s, const char *dir)
{
  free (s->anchor);
  s->anchor = NULL;
  if (dir == NULL || *dir == '\0')
    return 0;
  char *anchor = ovl_path ("%s/bo-%08x", dir, fnv1a (s->root));
  if (anchor == NULL)
    return -ENOMEM;
  char buf[4096];
  ssize_t n = readlink (anchor, buf, sizeof buf - 1);
  if (n >= 0)
    {
      buf[n] = '\0';
      if (strcmp (buf, s->links) == 0)
        {
          s->anchor = anchor;
          return 0;
        }
    }
  else if (errno != ENOENT)
    {
      /* Something that is not a symlink (or unreadable): leave it alone. */
      int r = errno == EINVAL ? -EEXIST : -errno;
      free (anchor);
      return r;
    }
  /* Create or repoint atomically: a symlink under a temporary name, renamed over. */
  char *tmp = ovl_path ("%s.%ld", anchor, (long) getpid ());
  int r = tmp ? 0 : -ENOMEM;
  if (r == 0)
    {
      unlink (tmp);
      if (symlink (s->links, tmp) < 0 || rename (tmp, anchor) < 0)
        {
          r = -errno;
          unlink (tmp);
        }
    }
  free (tmp);
  if (r < 0)
    free (anchor);
  else
    s->anchor = anchor;
  return r;
}

void
ovl_anchor_remove (struct ovl *s)
{
  if (s->anchor == NULL)
    return;
  char buf[4096];
  ssize_t n = readlink (s->anchor, buf, sizeof buf - 1);
  if (n >= 0)
    {
      buf[n] = '\0';
      if (strcmp (buf, s->links) == 0)
        unlink (s->anchor);
    }
}
