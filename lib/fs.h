/* Small file-system helpers shared by berthd and its tools. */
#ifndef BERTH_LIB_FS_H
#define BERTH_LIB_FS_H

#include <sys/types.h>

/* mkdir -p: missing parents get 0711, the last component `mode`; an existing
 * directory is fine.  Returns 0 or -errno. */
int fs_mkdir_p (const char *path, mode_t mode);

/* Unmount every mount at dir or below it, as /proc/self/mountinfo lists
 * them: the newest first (a mount another covers once the cover is gone),
 * detached when busy.  Returns how many were unmounted (0 when none, or
 * dir does not exist), or -errno. */
int fs_unmount_under (const char *dir);

#endif
