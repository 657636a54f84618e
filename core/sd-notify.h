/* The two systemd service protocols berthd speaks, written out by hand:
 * readiness notification (sd_notify(3): one datagram to $NOTIFY_SOCKET) and
 * socket activation (sd_listen_fds(3): $LISTEN_PID/$LISTEN_FDS, fds from 3).
 *
 * Why not libsystemd: both protocols are documented by systemd as stable
 * interfaces meant to be reimplemented, and linking libsystemd costs berthd
 * about 1 MiB of resident memory (it pulls in libgcrypt, liblzma, liblz4 and
 * libzstd), a quarter of the 4 MiB idle budget (measured by bench/run).
 */
#ifndef BERTH_CORE_SD_NOTIFY_H
#define BERTH_CORE_SD_NOTIFY_H

#include <berth/plugin.h>

#define SD_LISTEN_FDS_FIRST 3

/* Send "KEY=VALUE\n..." to the service manager; 0 when not under one,
 * 1 when sent, a negative errno on failure. */
int sd_notify_send (const char *fmt, ...) BERTH_PRINTF (1, 2);

/* Number of sockets passed to this process (0 when none); the variables are
 * removed from the environment and the fds marked close-on-exec. */
int sd_listen_fd_count (void);

/* 1 when fd is a listening unix stream socket. */
int sd_fd_is_unix_listener (int fd);

#endif
