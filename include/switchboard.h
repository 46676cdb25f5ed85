/* libswitchboard: sockets the way the Socket Programming HOWTO teaches them,
 * done right. One include for everything. */
#ifndef SWITCHBOARD_H
#define SWITCHBOARD_H

#define SB_VERSION_MAJOR 0
#define SB_VERSION_MINOR 1
#define SB_VERSION_PATCH 0
#define SB_VERSION_STRING "0.1.0"

#include "switchboard/error.h"
#include "switchboard/buf.h"
#include "switchboard/pack.h"
#include "switchboard/frame.h"
#include "switchboard/addr.h"
#include "switchboard/sock.h"
#include "switchboard/stream.h"
#include "switchboard/loop.h"
#include "switchboard/conn.h"
#include "switchboard/server.h"
#include "switchboard/http.h"
#include "switchboard/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Library version string, e.g. "0.1.0". */
const char *sb_version(void);

#ifdef __cplusplus
}
#endif

#endif
