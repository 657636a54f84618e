/* libarchive, loaded at first use.
 *
 * berthd does not link libarchive: it drags in libxml2, ICU and libstdc++,
 * whose relocations and constructors cost an idle daemon ~2 MiB of RSS,
 * and an idle daemon never unpacks.  Instead lazy_archive_load() dlopens
 * libarchive (RTLD_NOW | RTLD_LOCAL, by the SONAME configure found) the
 * first time a layer is applied and fills `lazy_archive` with the
 * functions core uses.
 *
 * Usage, in a file that calls libarchive:
 *
 *   #include <archive.h>
 *   #include <archive_entry.h>
 *   #include "core/util/lazy-archive.h"
 *
 * after which archive_read_new () & co. are calls through `lazy_archive`,
 * so the call sites read as plain libarchive.  Each entry point calls
 * lazy_archive_load() before any of them.  A function core starts to use
 * is added to the struct, the #define list and the table in
 * lazy-archive.c.
 */
#ifndef BERTH_CORE_UTIL_LAZY_ARCHIVE_H
#define BERTH_CORE_UTIL_LAZY_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "error.h"

struct lazy_archive
{
  __typeof__ (archive_read_new) *read_new;
  __typeof__ (archive_read_free) *read_free;
  __typeof__ (archive_read_support_format_tar) *read_support_format_tar;
  __typeof__ (archive_read_support_format_empty) *read_support_format_empty;
  __typeof__ (archive_read_open) *read_open;
  __typeof__ (archive_read_next_header) *read_next_header;
  __typeof__ (archive_read_data_block) *read_data_block;
  __typeof__ (archive_error_string) *error_string;
  __typeof__ (archive_set_error) *set_error;
  __typeof__ (archive_entry_pathname) *entry_pathname;
  __typeof__ (archive_entry_hardlink) *entry_hardlink;
  __typeof__ (archive_entry_symlink) *entry_symlink;
  __typeof__ (archive_entry_filetype) *entry_filetype;
  __typeof__ (archive_entry_perm) *entry_perm;
  __typeof__ (archive_entry_uid) *entry_uid;
  __typeof__ (archive_entry_gid) *entry_gid;
  __typeof__ (archive_entry_size) *entry_size;
  __typeof__ (archive_entry_rdevmajor) *entry_rdevmajor;
  __typeof__ (archive_entry_rdevminor) *entry_rdevminor;
  __typeof__ (archive_entry_atime) *entry_atime;
  __typeof__ (archive_entry_atime_nsec) *entry_atime_nsec;
  __typeof__ (archive_entry_atime_is_set) *entry_atime_is_set;
  __typeof__ (archive_entry_mtime) *entry_mtime;
  __typeof__ (archive_entry_mtime_nsec) *entry_mtime_nsec;
  __typeof__ (archive_entry_mtime_is_set) *entry_mtime_is_set;
  __typeof__ (archive_entry_xattr_reset) *entry_xattr_reset;
  __typeof__ (archive_entry_xattr_next) *entry_xattr_next;
};

/* Filled by the first successful lazy_archive_load(); read-only after. */
extern struct lazy_archive lazy_archive;

/* Load libarchive once (thread-safe: pthread_once).  0, or
 * BERTH_E_INTERNAL with "cannot load libarchive.so.13: <dlerror>", every
 * call alike. */
int lazy_archive_load (berth_error **err);

#define archive_read_new lazy_archive.read_new
#define archive_read_free lazy_archive.read_free
#define archive_read_support_format_tar lazy_archive.read_support_format_tar
#define archive_read_support_format_empty lazy_archive.read_support_format_empty
#define archive_read_open lazy_archive.read_open
#define archive_read_next_header lazy_archive.read_next_header
#define archive_read_data_block lazy_archive.read_data_block
#define archive_error_string lazy_archive.error_string
#define archive_set_error lazy_archive.set_error
#define archive_entry_pathname lazy_archive.entry_pathname
#define archive_entry_hardlink lazy_archive.entry_hardlink
#define archive_entry_symlink lazy_archive.entry_symlink
#define archive_entry_filetype lazy_archive.entry_filetype
#define archive_entry_perm lazy_archive.entry_perm
#define archive_entry_uid lazy_archive.entry_uid
#define archive_entry_gid lazy_archive.entry_gid
#define archive_entry_size lazy_archive.entry_size
#define archive_entry_rdevmajor lazy_archive.entry_rdevmajor
#define archive_entry_rdevminor lazy_archive.entry_rdevminor
#define archive_entry_atime lazy_archive.entry_atime
#define archive_entry_atime_nsec lazy_archive.entry_atime_nsec
#define archive_entry_atime_is_set lazy_archive.entry_atime_is_set
#define archive_entry_mtime lazy_archive.entry_mtime
#define archive_entry_mtime_nsec lazy_archive.entry_mtime_nsec
#define archive_entry_mtime_is_set lazy_archive.entry_mtime_is_set
#define archive_entry_xattr_reset lazy_archive.entry_xattr_reset
#define archive_entry_xattr_next lazy_archive.entry_xattr_next

#endif
