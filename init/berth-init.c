/* berth-init: a minimal pid 1 for `berth run --init`.
 *
 *   berth-init [--] COMMAND [ARG]...
 *
 * Runs COMMAND as its only child and then, until that child exits:
 *  - reaps every zombie it inherits (orphans re-parent to pid 1 in the
 *    container's pid namespace; outside one, berth-init makes itself a child
 *    subreaper so that the same holds, which is also how the tests run it);
 *  - forwards every signal it receives to the child (SIGKILL and SIGSTOP
 *    cannot be caught: the kernel applies them to pid 1 itself);
 * and exits with the child's status (128 + signal number when the child was
 * killed by a signal, as a shell reports it).  126/127: COMMAND could not be
 * executed / not found.  2: usage.
 *
 * Why a separate pid 1: the kernel does not deliver signals without a handler
 * to a namespace's init, so a program that never installs a SIGTERM handler
 * ignores `berth stop` when it is pid 1; and nobody else reaps orphans.
 *
 * The child runs in its own process group which, with a terminal on stdin,
 * becomes the foreground group, so that ^C and ^Z reach it from the tty
 * directly (and are not forwarded a second time: the tty does not signal
 * berth-init's group any more).
 *
 * Built statically: it is bind-mounted into images that may have no libc.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals raised by a fault in berth-init itself: never waited for. */
static const int fault_signals[] = { SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS };

static void
usage (FILE *f)
{
  fprintf (f, "usage: berth-init [--] COMMAND [ARG]...\n"
              "Run COMMAND as pid 1's only child: reap zombies, forward signals, exit with its status.\n");
}

static int
exit_code (int status)
{
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return 1;
}

static void
child_exec (char **argv, const sigset_t *orig_mask)
{
  /* Own process group, and the terminal's foreground one when there is a
   * terminal (SIGTTOU is still blocked here, so tcsetpgrp does not stop us). */
  if (setpgid (0, 0) == 0 && isatty (STDIN_FILENO))
    (void)tcsetpgrp (STDIN_FILENO, getpid ());
  signal (SIGTTIN, SIG_DFL);
  signal (SIGTTOU, SIG_DFL);
  sigprocmask (SIG_SETMASK, orig_mask, NULL);
  execvp (argv[0], argv);
  int e = errno;
  fprintf (stderr, "berth-init: exec %s: %s\n", argv[0], strerror (e));
  _exit (e == ENOENT ? 127 : 126);
}

int
main (int argc, char **argv)
{
  int first = 1;
  if (argc > 1 && (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0))
    {
      usage (stdout);
      return 0;
    }
  if (argc > 1 && strcmp (argv[1], "--") == 0)
    first = 2;
  else if (argc > 1 && argv[1][0] == '-')
    {
      fprintf (stderr, "berth-init: unknown option %s\n", argv[1]);
      usage (stderr);
      return 2;
    }
  if (first >= argc)
    {
      usage (stderr);
      return 2;
    }

  if (getpid () != 1 && prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    fprintf (stderr, "berth-init: warning: cannot become a child subreaper (%s); orphans will not be reaped here\n",
             strerror (errno));

  /* Every signal is blocked and taken with sigwaitinfo(): no handlers, no
   * races between a handler and waitpid(). */
  sigset_t all, orig;
  sigfillset (&all);
  for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
    sigdelset (&all, fault_signals[i]);
  if (sigprocmask (SIG_BLOCK, &all, &orig) < 0)
    {
      fprintf (stderr, "berth-init: sigprocmask: %s\n", strerror (errno));
      return 1;
    }
  /* We are in the background once the child owns the terminal. */
  signal (SIGTTIN, SIG_IGN);
  signal (SIGTTOU, SIG_IGN);

  pid_t child = fork ();
  if (child < 0)
    {
      fprintf (stderr, "berth-init: fork: %s\n", strerror (errno));
      return 1;
    }
  if (child == 0)
    child_exec (argv + first, &orig);

  for (;;)
    {
      siginfo_t si;
      int sig = sigwaitinfo (&all, &si);
      if (sig < 0)
        {
          if (errno == EINTR)
            continue;
          fprintf (stderr, "berth-init: sigwaitinfo: %s\n", strerror (errno));
          kill (child, SIGKILL);
          return 1;
        }
      if (sig != SIGCHLD)
        {
          if (kill (child, sig) < 0 && errno != ESRCH)
            fprintf (stderr, "berth-init: forwarding signal %d: %s\n", sig, strerror (errno));
          continue;
        }
      /* SIGCHLD coalesces: reap everything that is ready. */
      int status, child_status = -1;
      pid_t pid;
      while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
        if (pid == child)
          child_status = status;
      if (child_status != -1)
        return exit_code (child_status);
    }
}
