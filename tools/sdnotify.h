/*
 * sdnotify.h - the node's messages to systemd (Type=notify units).
 */
#ifndef DKV_SDNOTIFY_H
#define DKV_SDNOTIFY_H

/* Send state ("READY=1", "STOPPING=1", "STATUS=...", lines joined by
 * '\n') to the service manager: 1 when sent, 0 when not run by one (no
 * $NOTIFY_SOCKET), -1 when sending failed (nothing else to do then). */
int dkv_sd_notify(const char *state);

#endif
