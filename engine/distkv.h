/*
 * distkv.h - the engine's public interface: the one header that fs/ and
 * tools/ include.  Each part keeps its own header, named here; what is
 * not reachable from this file (engine/internal.h, engine/net/net.h,
 * engine/net/cluster_int.h) is the engine's own business.
 */
#ifndef DKV_DISTKV_H
#define DKV_DISTKV_H

#include "errors.h"   /* the error dialect: negative errnos and DKV_E_* codes */
#include "report.h"   /* messages of a running node */
#include "mp.h"       /* byte buffers, the msgpack writer and reader */
#include "path.h"     /* paths as canonical element encodings */
#include "range.h"    /* tick range sets */
#include "hashtab.h"  /* growing a chained hash table */
#include "engine.h"   /* the tree, sessions, dkv_engine_apply, watchers, hooks */
#include "acl.h"      /* ACLs: matching paths, binding sessions */
#include "types.h"    /* type checks: types, matches, the checker */
#include "auth.h"     /* users, login methods, password hashing */
#include "pathtext.h" /* the colon notation for path elements */
#include "yamltext.h" /* values as YAML text and back */
#include "jsontext.h" /* values as JSON text */
#include "config.h"   /* configuration: defaults, file, -C key=value */
#include "py.h"       /* embedded Python */
#include "codec.h"    /* codecs and converters: values per user */
#include "code.h"     /* stored code: its records and their checker */
#include "log.h"      /* change logs and state files */
#include "errlog.h"   /* the error log: records of what failed */
#include "net/server.h"  /* the client-protocol server */
#include "net/cluster.h" /* replication between nodes */
#include "net/client.h"  /* the blocking client library */

#endif
