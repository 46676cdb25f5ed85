/** @file
 * libswitchboard: sockets the way the Socket Programming HOWTO teaches them,
 * done right. One include for everything. */
#ifndef SWITCHBOARD_H
#define SWITCHBOARD_H

#include "switchboard/version.h"
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
#include "switchboard/proxy.h"

#endif
