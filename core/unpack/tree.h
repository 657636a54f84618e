/* Path operations confined to a root directory, for diff apply.
 *
 * Every lookup resolves symlinks *inside* the root, as a chroot would (and
 * as containerd's fs.RootPath does): an absolute symlink target starts at
 * the root and `..` stops there, so nothing can be reached outside it.  The
 * kernel does that with openat2 RESOLVE_IN_ROOT; where openat2 is missing
 * (ENOSYS) a user-space walker does the same one component at a time with
 * O_NOFOLLOW and readlinkat.
 *
 * Functions return 0 or -errno.
 */
#ifndef BERTH_CORE_UNPACK_TREE_H
#define BERTH_CORE_UNPACK_TREE_H

#include <stdbool.h>
#include <sys/types.h>

/* Hook called for each directory the resolver creates: `fd` is the new
 * directory (O_PATH), `path` its resolved path relative to the root. */
typedef int (*tree_mkdir_hook) (void *data, int fd, const char *path);

/* Open the directory `path` (relative; "" = the root) below `rootfd`,
 * resolved in root.  `flags` is O_PATH or O_RDONLY (O_DIRECTORY|O_CLOEXEC
 * are added).  With `create`, missing directories are made (0755, then
 * `hook`), as containerd's mkparent does.  Returns the new fd in *ret_fd. */
int tree_open_dir (int rootfd, const char *path, int flags, bool create, tree_mkdir_hook hook, void *hook_data,
                   int *ret_fd);

/* Remove `name` below `parent` and everything under it, never following a
 * symlink (os.RemoveAll).  A missing name is fine. */
int tree_remove_all (int parent, const char *name);

/* Whether openat2 is used (false after ENOSYS or the testing knob). */
bool tree_have_openat2 (void);

#endif
